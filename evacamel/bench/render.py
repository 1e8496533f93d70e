"""``evacamel bench render``: samples/s of rendering training data on the device beside the
samples/s of the training step that consumes them, in one run, and the ratio.

Rendering is :class:`evacamel.loading.stream.SyntheticStream` over the dataset plan's
training backgrounds and camels (:func:`evacamel.loading.render.plan_seeds`): the pool is
rendered once (timed apart: a one-off per session), then every batch is composed afresh
at the training size. Training is :meth:`evacamel.train.Trainer.train_step` (our loop:
uint8 batches, channels_last and autocast on CUDA) on random batches of the same size.
A ratio >= 1 means the GPU never waits for data.

It also times the two compositors on the same pairs and placements: the per-sample
:func:`evacamel.world.compose.compose` (a Python loop of small tensor ops: on a GPU,
bound by kernel launches) against the batched
:func:`evacamel.world.compose_batch.compose_batched` the stream uses. Without CUDA it
runs on the CPU and says so.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import torch

from evacamel.cli_args import positive_int
from evacamel.bench._timing import Measurement, measure, print_comparison
from evacamel.bench.train import measure_our_loop
from evacamel.loading.render import plan_seeds
from evacamel.loading.stream import SyntheticStream
from evacamel.profiles import get_profile
from evacamel.world.compose import compose
from evacamel.world.compose_batch import compose_batched

HELP = "samples/s of rendering training data on the device vs the training step's samples/s"

__all__ = ["measure_render", "measure_compose", "render_vs_train", "add_arguments", "main"]


def _training_stream(p: Any, batch_size: int, seed: int, device: torch.device,
                     pool: int) -> SyntheticStream:
    """A stream of the plan's training split, at most ``pool`` backgrounds and camels."""
    seeds = plan_seeds(p)["train"]
    return SyntheticStream(p, batch_size=batch_size, seed=seed, device=device,
                           pool_backgrounds=min(pool, len(seeds.backgrounds)),
                           pool_camels=min(pool, len(seeds.camels)),
                           background_seeds=seeds.backgrounds, camel_seeds=seeds.camels)


def measure_render(profile: Any = None, batches: int = 4, *, batch_size: int | None = None,
                   device: str | torch.device | None = None, pool: int = 32
                   ) -> tuple[Measurement, float]:
    """Composing ``batches`` batches from a rendered pool (``pool`` backgrounds and camels)
    of the plan's training split; returns the measurement and the seconds the pool took."""
    p = get_profile(profile)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    bs = batch_size or p.batch_size
    stream = _training_stream(p, bs, 1, device, pool)
    sync = torch.cuda.synchronize if device.type == "cuda" else None
    t0 = time.perf_counter()
    stream.pool()
    if sync:
        sync()
    pool_seconds = time.perf_counter() - t0
    generator = torch.Generator().manual_seed(0)

    def run(n: int) -> int:
        for _ in range(n):
            stream.compose_batch(generator)
        return n * bs

    m = measure(f"render on {device.type} (compose at {p.input_size} px)", lambda: run(batches),
                warmup=lambda: run(1), sync=sync)
    return m, pool_seconds


def measure_compose(profile: Any = None, batches: int = 2, *, batch_size: int | None = None,
                    device: str | torch.device | None = None, pool: int = 16
                    ) -> tuple[Measurement, Measurement]:
    """``(per-sample, batched)``: :func:`~evacamel.world.compose.compose` and
    :func:`~evacamel.world.compose_batch.compose_batched` timed on the same ``batches``
    batches of pairs and placements (drawn beforehand, not timed)."""
    p = get_profile(profile)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    bs = batch_size or p.batch_size
    stream = _training_stream(p, bs, 2, device, pool)
    g = torch.Generator().manual_seed(0)
    drawn = [list(zip(*(stream.draw_sample(g) for _ in range(bs)))) for _ in range(batches)]
    work = [(*stream.pairs(bi, fi), list(pls)) for bi, fi, pls in drawn]
    sync = torch.cuda.synchronize if device.type == "cuda" else None

    def timed(name: str, fn) -> Measurement:
        def run() -> int:
            for bgs, sprites, pls in work:
                fn(bgs, sprites, pls, mode=stream.mode)
            return batches * bs
        return measure(f"{name} on {device.type}", run, warmup=run, sync=sync)

    return timed("compose, per sample", compose), timed("compose_batched", compose_batched)


def render_vs_train(profile: Any = None, *, batches: int = 4, steps: int = 5,
                    batch_size: int | None = None, device: str | torch.device | None = None
                    ) -> tuple[Measurement, Measurement, float]:
    """``(training, rendering, pool seconds)`` measured in one run at the same batch size."""
    train, _ = measure_our_loop(profile, steps, batch_size=batch_size, device=device,
                                warmup=1, name="training step (our loop)")
    render, pool_seconds = measure_render(profile, batches, batch_size=batch_size, device=device)
    return train, render, pool_seconds


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", default=None, help="whose sizes (default: as get_profile)")
    p.add_argument("--batches", type=positive_int, default=4, help="rendered batches timed (default 4)")
    p.add_argument("--steps", type=positive_int, default=5, help="training steps timed (default 5)")
    p.add_argument("--batch-size", type=positive_int, default=None, help="default: the profile's")
    p.add_argument("--device", default=None, help="default: cuda if available, else cpu")


def main(args: argparse.Namespace) -> int:
    p = get_profile(args.profile)
    train, render, pool_seconds = render_vs_train(p, batches=args.batches, steps=args.steps,
                                                  batch_size=args.batch_size, device=args.device)
    print(f"profile {p.name}: pool of backgrounds and camels rendered in {pool_seconds:.1f} s "
          f"(once per session)")
    print_comparison("rendering vs training (ratio >= 1: the model never waits for data)",
                     train, render)
    per_sample, batched = measure_compose(p, batch_size=args.batch_size, device=args.device)
    print_comparison("compositing: per sample vs batched (same pairs and placements)",
                     per_sample, batched)
    if not torch.cuda.is_available():
        print("CPU mode: no CUDA device here, every rate above is the CPU's (on a GPU the "
              "per-sample compose is bound by kernel launches: run it there for the GPU's ratio)")
    return 0
