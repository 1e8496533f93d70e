"""``evacamel bench real``: which world and which sizes make a CPU model that finds real camels.

Each configuration (a profile with some fields changed: world, blend, input size,
width, epochs ...) makes its dataset, trains, and is measured with its final weights
(not the best epoch's: that choice looks at the test split) on

* the synthetic held-out split of the **classic** world (the kind of split the profiles'
  numbers have always been measured on: backgrounds and camels never trained on) and of
  the **wide** world, both the quick profile's (400 samples) at the configuration's image
  sizes, so every row is measured on the same samples;
* the proxy of real photographs (:mod:`evacamel.dataset.proxy`): procedural camels on
  real photographs, and the held-out family of scenes.

One table, one row per configuration: CPU minutes of training (process CPU time, all
threads; the wall time depends on the machine's load), and mask IoU on each set::

    python -m evacamel bench real --configs quick-classic,quick-wide --work bench-results/real

Training runs one configuration at a time; datasets and the proxy are kept in ``--work``
and reused by later runs.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from evacamel.baselines import compare_masks
from evacamel.cli_args import positive_int
from evacamel.dataset.proxy import write_proxy
from evacamel.dataset.write import ensure_dataset
from evacamel.loading.prepare import training_data
from evacamel.profiles import Profile, get_profile
from evacamel.train import TrainConfig, Trainer

HELP = "train configurations (world, sizes) on CPU; mask IoU on synthetic test splits and the proxy"

__all__ = ["Configuration", "CONFIGURATIONS", "measure_configuration", "measure_model", "format_rows",
           "add_arguments", "main"]


@dataclass(frozen=True)
class Configuration:
    """A profile (``base``) with ``changes`` (any :class:`~evacamel.profiles.Profile` field),
    trained with ``train`` (any :class:`~evacamel.train.TrainConfig` field) changed."""

    name: str
    base: str
    changes: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)

    def profile(self) -> Profile:
        return get_profile(self.base).replace(**self.changes)


_SEED_LIKE = {"compose_mode": "perspective", "output_stride": 2, "dice_weight": 0.0}
"""The cpu profile before it was made for photographs: camels standing only, masks at 32 px."""

CONFIGURATIONS = {c.name: c for c in (
    Configuration("quick-classic", "quick", {"world": "classic", "blend": "paste"}),
    Configuration("quick-wide", "quick", {"world": "wide", "blend": "realistic"}),
    # the cpu profile one step at a time: its world, its compositing, its output and loss
    Configuration("cpu-classic", "cpu", {"world": "classic", "blend": "paste", **_SEED_LIKE}),
    Configuration("cpu-wide", "cpu", {**_SEED_LIKE}),
    Configuration("cpu-mixed", "cpu", {**_SEED_LIKE, "compose_mode": "mixed"}),
    Configuration("cpu", "cpu"),
    # the other ways to spend CPU minutes on resolution (10 epochs: about the same time)
    Configuration("cpu-96", "cpu", {"input_size": 96, "source_size": 192, "depth_size": 192, "epochs": 10}),
    Configuration("cpu-w24", "cpu", {"width": 24, "epochs": 10}),
)}
"""The configurations measured (``--configs`` picks some by name)."""


def _dataset(profile: Profile, work: Path, world: str | None = None) -> Path:
    """The profile's dataset in ``work`` (made once), in its own world or ``world``'s."""
    p = profile if world is None else profile.replace(world=world, blend="paste" if world == "classic"
                                                      else "realistic")
    mode = "" if p.compose_mode == "perspective" else f"-{p.compose_mode}"
    root = work / "data" / f"{p.name}-{p.world}-{p.blend}{mode}-{p.samples}-{p.source_size}"
    return ensure_dataset(p, root, progress=False)


def _test_profile(profile: Profile) -> Profile:
    """Whose test splits every configuration is measured on: the quick profile's (400
    samples of 10 held-out backgrounds and camels) at ``profile``'s image sizes."""
    return get_profile("quick").replace(source_size=profile.source_size, input_size=profile.input_size,
                                        depth_size=profile.depth_size, camel_size=profile.camel_size,
                                        output_stride=profile.output_stride)


def measure_configuration(config: Configuration, work: str | Path) -> dict[str, float]:
    """Train ``config`` and measure it; returns the row :func:`format_rows` prints."""
    work = Path(work)
    profile = config.profile()
    root = _dataset(profile, work)
    data = training_data(profile, root=root, progress=False, device="cpu")
    cfg = TrainConfig.from_profile(profile, out=str(work / "runs" / config.name), data=str(root),
                                   device="cpu", **config.train)
    trainer = Trainer(cfg, data, progress=False, verbose=False)
    wall, cpu = time.perf_counter(), time.process_time()
    trainer.fit()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    row = measure_model(trainer.raw_model, trainer.data.eval_transform, profile, work, root)
    return {"wall_min": wall / 60, "cpu_min": cpu / 60, **row}


def measure_model(model: torch.nn.Module, transform: Any, profile: Profile, work: str | Path,
                  root: str | Path) -> dict[str, float]:
    """Mask IoU of a trained ``model`` (trained on ``root``, at ``profile``'s sizes) and of
    the difference baseline on the classic and wide test splits and the proxy parts."""
    work = Path(work)
    proxy = write_proxy(work / f"proxy-{profile.source_size}", profile)
    tests = _test_profile(profile)
    sets = {"classic test": (_dataset(tests, work, "classic"), "test"),
            "wide test": (_dataset(tests, work, "wide"), "test"),
            **{name: (path, "all") for name, path in proxy.items()}}
    table = compare_masks(model, transform, sets, fit_data=root, input_size=profile.input_size,
                          output_size=profile.output_size)
    row: dict[str, float] = {}
    for name, scores in table.items():
        row[name] = scores["network"]
        row[f"{name} difference"] = scores["difference"]
    return row


_SETS = ("classic test", "wide test", "real photographs", "held-out scenes")


def format_rows(rows: dict[str, dict[str, float]]) -> str:
    """The table: one row per configuration, the difference baseline's IoU in brackets."""
    width = max([len("configuration")] + [len(n) for n in rows])
    heads = ("classic", "wide", "photos", "held-out")
    lines = [f"{'configuration':<{width}} {'CPU min':>7} {'wall':>5}"
             + "".join(f" {h:>12}" for h in heads)]
    for name, row in rows.items():
        cells = "".join(f" {row[s]:>5.3f} ({row[s + ' difference']:.2f})" for s in _SETS)
        lines.append(f"{name:<{width}} {row['cpu_min']:>7.1f} {row['wall_min']:>5.1f}{cells}")
    lines.append("mask IoU of the final weights; in brackets the |fg_bg - bg| baseline "
                 "(threshold fitted on the configuration's training split)")
    return "\n".join(lines)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--configs", default="quick-classic,quick-wide",
                   help="comma-separated names of: " + ", ".join(CONFIGURATIONS))
    p.add_argument("--work", default="bench-results/real",
                   help="folder for datasets, runs and the proxy (kept and reused)")
    p.add_argument("--threads", type=positive_int, default=None, help="torch threads (default: torch's)")


def main(args: argparse.Namespace) -> int:
    names = [n.strip() for n in args.configs.split(",") if n.strip()]
    unknown = [n for n in names if n not in CONFIGURATIONS]
    if unknown or not names:
        unknown = unknown or ["(none given)"]
        raise ValueError(f"--configs: unknown {', '.join(unknown)}; choose from "
                         + ", ".join(CONFIGURATIONS))
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = {}
    for name in names:
        rows[name] = measure_configuration(CONFIGURATIONS[name], args.work)
        print(format_rows({name: rows[name]}).splitlines()[1], flush=True)
    print(format_rows(rows))
    return 0
