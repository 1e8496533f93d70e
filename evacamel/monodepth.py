"""The course's small monocular depth model: one composite in, depth out.

Offline there are no pretrained depth weights, so the course ships its own: the U-Net of
:mod:`evacamel.model` with a 3-channel input (the composite ``fg_bg`` alone, no
background), trained once on the procedural world by the ordinary
:class:`~evacamel.train.Trainer` with the depth terms of the loss only (DSSIM + L1 on
the log-depth target of :mod:`evacamel.depth_units`; the mask's weight is 0), and saved
in half precision beside a JSON record of how it was made and what it scores::

    est = MonoDepthEstimator.shipped()            # evacamel/weights/mono_depth.pt
    depth_m = est.estimate(images)                # B x 3 x H x W in [0, 1] -> B x 1 x H x W meters
    record = shipped_record()                     # command, data, time, held-out scores

Reproduce it (about two minutes of two CPU cores; see the record for the measured time)::

    evacamel depth-model --profile quick --out evacamel/weights

The held-out scores (:func:`heldout_scores`) are :func:`~evacamel.depth.align.evaluate_depth`
on the test split of the training dataset (backgrounds and camels never seen in
training), on the ground (not sky, not camel) and overall (not sky), both as the model
predicts (meters, no fit) and after the per-image scale-and-shift fit used for
pretrained relative models.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from evacamel import paths
from evacamel.dataset.atomic import atomic_write
from evacamel.dataset.format import read_meta
from evacamel.dataset.write import ensure_dataset
from evacamel.depth.align import METRIC_DEPTH, evaluate_depth
from evacamel.depth.compare import Examples, load_examples
from evacamel.depth.estimators import DepthEstimator
from evacamel.depth_units import target_to_meters
from evacamel.loading.batch import resize_area
from evacamel.loading.prepare import TrainData, training_data
from evacamel.model import CamelUNet, split_outputs
from evacamel.profiles import Profile, get_profile
from evacamel.train import TrainConfig, Trainer

__all__ = ["WEIGHTS_DIR", "SHIPPED_WEIGHTS", "SHIPPED_RECORD", "MODEL_FORMAT", "MonoDepthEstimator",
           "composite_only", "train_mono_depth", "heldout_scores", "save_mono_depth",
           "shipped_record", "format_scores", "heldout_sample_dataset", "mono_training_dataset",
           "MONO_TRAINING", "MONO_DATA",
           "HELDOUT_SAMPLE_SIZE"]

WEIGHTS_DIR = Path(__file__).parent / "weights"
SHIPPED_WEIGHTS = WEIGHTS_DIR / "mono_depth.pt"
"""The shipped model: fp16 weights, model config and input normalisation (package data)."""
SHIPPED_RECORD = WEIGHTS_DIR / "mono_depth.json"
"""How the shipped model was made and what it scores."""
MODEL_FORMAT = "evacamel-mono-depth"
HELDOUT_SAMPLE_SIZE = 128
"""Samples of the small dataset the record's held-out sample is the test split of
(:func:`heldout_sample_dataset`): quick to make in a unit test (32 test samples)."""

MONO_DATA: dict[str, Any] = {"seed": 1, "n_backgrounds": 400, "n_camels": 60, "samples": 2400,
                             "test_fraction": 0.1}
"""How the training dataset differs from its profile's (default: quick) dataset.

Another seed: none of its backgrounds or camels occurs in any dataset of seed 0 (every
profile's default), so every scene the chapters show is held out from this model. And
many backgrounds: a monocular model learns depth from the scenery, and the quick
profile's 30 training backgrounds (40 samples each, with nearly the same depth map) let
it memorise them (a first run at that size stayed below the per-row baseline)."""

MONO_TRAINING: dict[str, Any] = {"in_channels": 3, "mask_weight": 0.0, "dssim_weight": 100.0,
                                 "l1_weight": 100.0, "best_metric": "depth_delta1", "augment": "flip",
                                 "device": "cpu", "epochs": 6}
"""TrainConfig fields the shipped model was trained with (beyond its profile's sizes).
The mask weight is 0: only the depth head learns. L1 weighs as much as DSSIM (the seed's
0.1 makes L1 negligible beside 100 x DSSIM, and L1 is what ties the map to absolute depth)."""


class _CompositeOnly(nn.Module):
    """A batch transform that keeps only the composite's 3 channels of the input."""

    def __init__(self, transform: nn.Module) -> None:
        super().__init__()
        self.transform = transform

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        x, mask, depth = self.transform(batch)
        return (x[:, 3:6], mask, depth)


def composite_only(data: TrainData) -> TrainData:
    """``data`` for a monocular model: inputs ``B x 3 x S x S`` (fg_bg, normalised), not 6."""
    return dataclasses.replace(data, train_transform=_CompositeOnly(data.train_transform),
                               eval_transform=_CompositeOnly(data.eval_transform),
                               mean=list(data.mean[3:]), std=list(data.std[3:]))


class MonoDepthEstimator(DepthEstimator):
    """A trained 3-channel :class:`~evacamel.model.CamelUNet`'s depth head, as an estimator.

    ``estimate(images)``: float ``B x 3 x H x W`` in [0, 1] (any size) -> ``B x 1 x h x w``
    float32 meters in [1, 1000] (``size`` or the images' size). The images are
    area-resized to the model's input size, normalised, run in float32, and the predicted
    target is resized bilinearly (in target space) before it becomes meters.
    """

    output_kind = METRIC_DEPTH

    def __init__(self, model: CamelUNet, mean: list[float], std: list[float], input_size: int, *,
                 device: torch.device | str | None = None, name: str = "trained monocular model") -> None:
        self.device = torch.device(device or "cpu")
        self.model = model.float().eval().to(self.device)
        self.mean = torch.tensor(mean, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        self.input_size = int(input_size)
        self.name = name

    @classmethod
    def load(cls, path: str | os.PathLike, *, device: torch.device | str | None = None) -> "MonoDepthEstimator":
        """A model saved by :func:`save_mono_depth`; ValueError naming the file if it is not one."""
        path = Path(path)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: monocular depth weights not found; make them with: "
                                    "evacamel depth-model --out <folder>") from None
        except Exception as exc:  # noqa: BLE001 - untrusted file: one line, the file named
            raise ValueError(f"{path} is not a readable weights file ({type(exc).__name__}: {exc})") from None
        if not isinstance(state, dict) or state.get("format") != MODEL_FORMAT:
            raise ValueError(f"{path} is not an evacamel monocular depth model (format {MODEL_FORMAT!r})")
        mc = state["model_config"]
        model = CamelUNet(width=int(mc["width"]), in_channels=3)
        model.load_state_dict({k: v.float() for k, v in state["model"].items()})
        norm = state["normalization"]
        return cls(model, norm["mean"], norm["std"], int(mc["input_size"]), device=device, name=path.name)

    @classmethod
    def shipped(cls, *, device: torch.device | str | None = None) -> "MonoDepthEstimator":
        """The model shipped with the package (:data:`SHIPPED_WEIGHTS`)."""
        return cls.load(SHIPPED_WEIGHTS, device=device)

    @torch.no_grad()
    def estimate(self, images: torch.Tensor, *, size: int | tuple[int, int] | None = None,
                 keys=None) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images B x 3 x H x W, got shape {tuple(images.shape)}")
        hw = tuple(images.shape[-2:]) if size is None else (size, size) if isinstance(size, int) else tuple(size)
        x = resize_area(images.float().to(self.device).clamp(0, 1) * 255.0, self.input_size)
        x = (x.round() / 255.0 - self.mean) / self.std  # the uint8 rounding training data had
        _, target = split_outputs(self.model(x))
        target = F.interpolate(target, size=hw, mode="bilinear", align_corners=False)
        return target_to_meters(target)

    def describe(self) -> dict:
        return {"kind": "evacamel monocular U-Net", "model": self.name, "output": self.output_kind,
                "parameters": sum(p.numel() for p in self.model.parameters())}


def _evaluate_all(estimator: DepthEstimator, ex: Examples) -> dict[str, float]:
    pred = estimator.estimate(ex.images, size=tuple(ex.exact_m.shape[-2:]), keys=ex.keys).cpu()
    scores: dict[str, float] = {}
    for pixels, mask in (("ground", ~ex.camel), ("overall", None)):
        for fit, alignment in (("no fit", "none"), ("scale+shift", "scale_shift")):
            if alignment == "none" and estimator.output_kind != METRIC_DEPTH:
                scores.update({f"{pixels}/{fit}/{k}": math.nan for k in ("absrel", "rmse_m", "delta1")})
                continue  # relative outputs have no meters without a fit
            ev = evaluate_depth(pred, ex.exact_m, output_kind=estimator.output_kind, mask=mask,
                                alignment=alignment)
            for k, v in ev.as_dict().items():
                scores[f"{pixels}/{fit}/{k}"] = round(v, 4)
    return scores


def format_scores(scores: dict[str, dict[str, float]], pixels: str = "ground") -> str:
    """:func:`heldout_scores` as a text table (under 80 characters wide) for ``pixels``.

    One line per estimator: AbsRel, RMSE (m) and delta1 as predicted (``no fit``), then
    after the per-image scale-and-shift fit; ``-`` where there is no value (a relative
    output has no meters without a fit).
    """
    def cell(v: float, fmt: str) -> str:
        return f"{'-':>7s}" if math.isnan(v) else format(v, fmt)

    head = f"{'':26s}{'as predicted':^24s}{'scale+shift fit':^24s}"
    cols = f"{'':26s}" + f"{'AbsRel':>7s} {'RMSE m':>7s} {'delta1':>7s} " * 2
    lines = [(f"{pixels} pixels".ljust(26) + head[26:]).rstrip(), cols.rstrip()]
    for name, sc in scores.items():
        row = ""
        for fit in ("no fit", "scale+shift"):
            row += " ".join(cell(sc[f"{pixels}/{fit}/{k}"], f) for k, f in
                            (("absrel", "7.3f"), ("rmse_m", "7.1f"), ("delta1", "7.3f"))) + " "
        lines.append(f"{name[:25]:26s}{row.rstrip()}")
    return "\n".join(lines)


def heldout_scores(estimators: dict[str, DepthEstimator], root: str | os.PathLike,
                   n: int = 400) -> dict[str, dict[str, float]]:
    """Scores of each estimator on ``n`` test samples of the dataset at ``root``.

    Keys ``"<pixels>/<fit>/<metric>"``: pixels ``ground`` (not sky, not camel) or
    ``overall`` (not sky); fit ``no fit`` (the output as meters) or ``scale+shift`` (least
    squares per image in the estimator's own space); metric ``absrel``, ``rmse_m``,
    ``delta1`` (:func:`~evacamel.depth.align.evaluate_depth`), rounded to 4 decimals.
    """
    ex = load_examples(root, n, split="test", masks=True)
    return {name: _evaluate_all(est, ex) for name, est in estimators.items()}


def save_mono_depth(model: CamelUNet, data: TrainData, input_size: int, path: str | os.PathLike) -> Path:
    """Write ``model`` (fp16 weights), its config and input normalisation atomically."""
    state = {"format": MODEL_FORMAT, "format_version": 1,
             "model_config": {"width": model.width, "in_channels": 3, "input_size": int(input_size),
                              "output_size": int(input_size) // 2},
             "normalization": {"mean": [float(v) for v in data.mean], "std": [float(v) for v in data.std]},
             "model": {k: (v.half() if v.is_floating_point() else v).detach().cpu().contiguous()
                       for k, v in model.state_dict().items()}}
    path = Path(path)
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write(path, buf.getvalue())
    return path


def heldout_sample_dataset(profile: str | Profile, folder: str | os.PathLike,
                           samples: int = HELDOUT_SAMPLE_SIZE) -> Path:
    """A small dataset of ``profile``'s world in ``folder`` (made if missing): the same
    backgrounds, camels and split as the profile's own dataset (seed 0), only ``samples``
    samples. Nothing of seed 0 is in the model's training data (:data:`MONO_DATA`)."""
    return ensure_dataset(get_profile(profile).replace(samples=int(samples)), folder, progress=False)


def mono_training_dataset(profile: str | Profile = "quick", root: str | os.PathLike | None = None, *,
                          progress: bool = False) -> Path:
    """The training dataset of the monocular model: ``profile`` changed by :data:`MONO_DATA`,
    in ``root`` (default ``<data>/<profile>-mono``), made if missing."""
    p = get_profile(profile)
    root = Path(root) if root is not None else paths.data_dir() / f"{p.name}-mono"
    return ensure_dataset(p.replace(**MONO_DATA), root, progress=progress)


def train_mono_depth(profile: str = "quick", *, out: str | os.PathLike, data: str | os.PathLike | None = None,
                     command: str | None = None, heldout_sample: int = HELDOUT_SAMPLE_SIZE,
                     progress: bool = False, **overrides: Any) -> dict[str, Any]:
    """Train the monocular model on :func:`mono_training_dataset` (or ``data``); write
    ``mono_depth.pt`` and ``mono_depth.json`` into ``out``; return the record.

    ``overrides``: :class:`~evacamel.train.TrainConfig` fields beyond :data:`MONO_TRAINING`
    (e.g. ``epochs=1`` for a quick check; ``None`` values are ignored). The last epoch's
    weights are kept (no choice made on any test split). The run's checkpoints and the
    held-out sample dataset live in a temporary folder, deleted at the end. The record
    holds the scores on the whole test split of the training dataset and, unless
    ``heldout_sample`` is 0, on the test split of :func:`heldout_sample_dataset` (what
    the tests check).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    overrides = {k: v for k, v in overrides.items() if v is not None}
    root = Path(data) if data is not None else mono_training_dataset(profile, progress=progress)
    with tempfile.TemporaryDirectory(prefix="evacamel-mono-depth-") as work:
        cfg = TrainConfig.from_profile(profile, **{**MONO_TRAINING, **overrides}, data=str(root),
                                       out=str(Path(work) / "run"))
        mono = composite_only(training_data(cfg.data_profile(), root=cfg.data, augment=cfg.augment,
                                            device=cfg.device if cfg.device != "auto" else None,
                                            progress=progress))
        t0 = time.perf_counter()
        trainer = Trainer(cfg, mono, progress=progress, verbose=progress)
        trainer.fit()
        seconds = time.perf_counter() - t0
        weights = save_mono_depth(trainer.raw_model, mono, cfg.input_size, out / SHIPPED_WEIGHTS.name)
        record = {**_record(cfg, trainer, root, seconds, command), "weights_bytes": weights.stat().st_size}
        record.update(_heldout_record(MonoDepthEstimator.load(weights), root, cfg.profile,
                                      heldout_sample, Path(work) / "heldout-sample"))
    atomic_write(out / SHIPPED_RECORD.name, (json.dumps(record, indent=2) + "\n").encode())
    return record


def _heldout_record(est: DepthEstimator, root: Path, profile: str, sample: int, folder: Path) -> dict[str, Any]:
    """The record's held-out scores: the training dataset's test split, and the sample."""
    n_test = int(read_meta(root)["counts"]["test"])
    found = {"heldout_split": {"dataset": "the training dataset's test split", "samples": n_test,
                               "scores": heldout_scores({"m": est}, root, n_test)["m"]}}
    if sample:
        small = heldout_sample_dataset(profile, folder, sample)
        n_small = int(read_meta(small)["counts"]["test"])
        found["heldout_sample"] = {"profile": profile, "dataset_samples": sample, "samples": n_small,
                                   "scores": heldout_scores({"m": est}, small, n_small)["m"]}
    return found


def _record(cfg: TrainConfig, trainer: Trainer, root: Path, seconds: float, command: str | None) -> dict[str, Any]:
    meta = read_meta(root)
    last = trainer.history[-1]
    return {"format": MODEL_FORMAT, "command": command,
            "data": {"profile": cfg.profile, "changes": meta_changes(meta), "folder": root.name,
                     "seed": meta.get("seed"), "counts": meta.get("counts"), "train_split": "train",
                     "input": "fg_bg only (3 channels)"},
            "training": {"config": {**cfg.as_dict(), "data": root.name, "out": Path(cfg.run_dir()).name},
                         "seconds": round(seconds, 1),
                         "steps": trainer.global_step, "device": str(trainer.device),
                         "torch": torch.__version__, "machine": platform.machine(),
                         "threads": torch.get_num_threads()},
            "parameters": sum(p.numel() for p in trainer.raw_model.parameters()),
            "last_epoch_test": {k: round(float(last[k]), 4) for k in
                                ("depth_ssim", "depth_absrel", "depth_rmse_m", "depth_delta1")}}


def meta_changes(meta: dict[str, Any]) -> dict[str, Any]:
    """The dataset's :data:`MONO_DATA` fields as its ``meta.json`` records them."""
    counts = meta.get("counts", {})
    return {"seed": meta.get("seed"), "n_backgrounds": counts.get("backgrounds"),
            "n_camels": counts.get("camels"), "samples": counts.get("samples"),
            "test_fraction": meta.get("test_fraction")}


def shipped_record() -> dict[str, Any]:
    """The shipped model's record (:data:`SHIPPED_RECORD`) as a dict."""
    return json.loads(SHIPPED_RECORD.read_text())
