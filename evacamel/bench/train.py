"""``evacamel bench train``: training samples/s of our loop beside the seed's plain fp32 loop.

Both loops train the profile's model (width, input size, batch size) with the same loss
and optimiser on the same in-memory batches, so the difference is the loop itself:

* **seed loop**: NCHW float32 inputs, already normalised on the host (what the seed's
  DataLoader produced), copied from pageable memory each step, fp32 everywhere.
* **our loop** (:meth:`evacamel.train.Trainer.train_step`, the code that trains): uint8
  batches in pinned memory copied with ``non_blocking=True`` and turned into floats on the
  device, channels_last, bf16 autocast and cudnn autotuning on CUDA, optional
  ``torch.compile``.

Data loading is left out on purpose (the batches are made once): the packed cache's own
speed is ``evacamel bench`` of the data pipeline. On CUDA it also prints the model FLOPs
utilisation: the model's forward + backward FLOPs (``torch.utils.flop_counter``) times
samples/s over the GPU's peak (default: H100 SXM dense bf16, 989 TFLOP/s).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.data import TensorDataset

from evacamel.cli_args import positive_float, positive_int
from evacamel.bench._timing import Measurement, measure, print_comparison
from evacamel.footprint import choose_micro_batch, cuda_step_peak, memory_budget
from evacamel.loading.prepare import TrainData
from evacamel.loading.transforms import EvalTransform
from evacamel.losses import CamelLoss
from evacamel.model import CamelUNet, flops_per_sample, split_outputs
from evacamel.profiles import get_profile
from evacamel.train import TrainConfig, Trainer

HELP = "training samples/s: our loop (uint8, channels_last, AMP, compile) vs the seed's fp32 loop"

H100_BF16_DENSE_TFLOPS = 989.0
"""NVIDIA H100 SXM dense bf16 tensor-core peak (no sparsity), TFLOP/s."""

__all__ = ["H100_BF16_DENSE_TFLOPS", "make_batches", "measure_seed_loop", "measure_our_loop",
           "fitting_batch", "speed_table", "mfu", "add_arguments", "main"]


def make_batches(n: int, batch_size: int, input_size: int, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """``n`` random batches in the batch format (uint8 image and mask, uint16 depth), on the CPU."""
    g = torch.Generator().manual_seed(seed)
    s = input_size // 2
    return [{"image": torch.randint(0, 256, (batch_size, 6, input_size, input_size), dtype=torch.uint8, generator=g),
             "mask": torch.randint(0, 256, (batch_size, 1, s, s), dtype=torch.uint8, generator=g),
             "depth": torch.randint(0, 65536, (batch_size, 1, s, s), dtype=torch.int32,
                                    generator=g).to(torch.uint16)}
            for _ in range(n)]


def _sync(device: torch.device):
    return torch.cuda.synchronize if device.type == "cuda" else None


def measure_seed_loop(profile: Any = None, steps: int = 20, *, batch_size: int | None = None,
                      device: str | torch.device | None = None, warmup: int = 3) -> Measurement:
    """The seed's way: fp32, NCHW, normalised float inputs from pageable host memory."""
    p = get_profile(profile)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    bs = batch_size or p.batch_size
    torch.backends.cudnn.benchmark = False
    torch.manual_seed(0)
    model = CamelUNet(p.width).to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, amsgrad=True)  # the seed's optimiser
    loss_fn = CamelLoss()
    tf = EvalTransform(None)
    floats = [tf(b) for b in make_batches(4, bs, p.input_size)]  # normalised on the host

    def step(i: int) -> None:
        x, mask, depth = (t.to(device) for t in floats[i % len(floats)])
        logits, d = split_outputs(model(x))
        loss = loss_fn(logits, d, mask, depth).total
        opt.zero_grad()
        loss.backward()
        opt.step()

    def run(n: int) -> int:
        for i in range(n):
            step(i)
        return n * bs

    return measure("seed loop (fp32, NCHW, float inputs)", lambda: run(steps),
                   warmup=lambda: run(warmup), sync=_sync(device))


def measure_our_loop(profile: Any = None, steps: int = 20, *, batch_size: int | None = None,
                     device: str | torch.device | None = None, amp: str = "auto",
                     channels_last: str = "auto", compile: bool = False, warmup: int = 3,
                     name: str | None = None) -> tuple[Measurement, Any]:
    """Our training step (:meth:`evacamel.train.Trainer.train_step`) on uint8 pinned batches.

    Returns the measurement and the Trainer (for its model, device and settings).
    """
    p = get_profile(profile)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    bs = batch_size or p.batch_size
    cfg = TrainConfig.from_profile(p, batch_size=bs, device=str(device), amp=amp,
                                   channels_last=channels_last, compile=compile, epochs=1,
                                   schedule="constant", num_workers=0, out="/nonexistent")
    tf = EvalTransform(None).to(device)
    data = TrainData(train_set=TensorDataset(torch.zeros(bs)), test_set=TensorDataset(torch.zeros(1)),
                     train_transform=tf, eval_transform=tf, mean=tf.mean.flatten().tolist(),
                     std=tf.std.flatten().tolist())
    trainer = Trainer(cfg, data, progress=False, verbose=False)
    accum = trainer.accum_steps  # on CUDA: as many micro-batches as the memory needs
    batches = make_batches(4 * accum, trainer.micro_batch, p.input_size)
    if device.type == "cuda":
        batches = [{k: v.pin_memory() for k, v in b.items()} for b in batches]

    def run(n: int) -> int:
        for i in range(n):
            trainer.train_step([batches[(i * accum + j) % len(batches)] for j in range(accum)])
        return n * bs

    if name is None:
        parts = ["uint8 pinned" if device.type == "cuda" else "uint8"]
        if trainer.channels_last:
            parts.append("channels_last")
        parts.append({None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[trainer.amp_dtype])
        if compile:
            parts.append("compile")
        if accum > 1:
            parts.append(f"{trainer.micro_batch} x {accum} accumulated")
        name = "our loop (" + ", ".join(parts) + ")"
    m = measure(name, lambda: run(steps), warmup=lambda: run(warmup if not compile else warmup + 2),
                sync=_sync(device))
    return m, trainer


def fitting_batch(profile: Any = None, *, device: str | torch.device | None = None) -> int:
    """The largest batch (at most the profile's) at which the seed's fp32 loop fits the
    device's free memory (:func:`evacamel.footprint.choose_micro_batch` on a memory probe
    of its forward and backward); the profile's batch on a CPU.

    The fp32 loop needs about twice the memory of our bf16/fp16 one: at the full profile's
    batch of 128 it would need about 20 GB, more than a T4 has.
    """
    p = get_profile(profile)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type != "cuda":
        return p.batch_size
    torch.manual_seed(0)
    model = CamelUNet(p.width).to(device).train()
    loss_fn, tf = CamelLoss(), EvalTransform(None).to(device)

    def step(b: int) -> None:
        x, mask, depth = tf({k: v.to(device) for k, v in make_batches(1, b, p.input_size)[0].items()})
        loss_fn(*split_outputs(model(x)), mask, depth).total.backward()
        model.zero_grad(set_to_none=True)

    fit = choose_micro_batch(p.batch_size, lambda b: cuda_step_peak(step, b, device),
                             memory_budget(device) - 2 * 4 * sum(t.numel() for t in model.parameters()))
    return fit.micro_batch


def mfu(samples_per_s: float, model: torch.nn.Module, input_size: int,
        peak_tflops: float = H100_BF16_DENSE_TFLOPS) -> tuple[float, float]:
    """``(achieved TFLOP/s, utilisation in [0, 1])`` of training at ``samples_per_s``."""
    flops = flops_per_sample(model, input_size, backward=True)
    achieved = samples_per_s * flops / 1e12
    return achieved, achieved / peak_tflops


def speed_table(profile: Any = None, steps: int = 5, *, batch_size: int | None = None,
                device: str | torch.device | None = None, compile: bool = False,
                warmup: int = 2) -> list[Measurement]:
    """One measurement per speed technique, added one at a time (for notebook 05).

    Rows: the seed loop; uint8 inputs converted on the device; + channels_last; on CUDA
    + autocast (bf16, or fp16 with a grad scaler where bf16 is missing; on a CPU autocast
    is off, so there is no row to compare); + ``torch.compile`` if ``compile``. Every row
    runs at the same batch: ``batch_size``, by default the profile's on a CPU and on CUDA
    the largest at which the seed's fp32 loop fits (:func:`fitting_batch`).
    """
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    batch_size = batch_size or fitting_batch(profile, device=device)
    common = dict(batch_size=batch_size, device=device, warmup=warmup)
    rows = [measure_seed_loop(profile, steps, **common)]
    amp_on = "auto" if device.type == "cuda" else "off"
    variants = [("uint8 on the wire, float on the device", dict(amp="off", channels_last="off")),
                ("+ channels_last", dict(amp="off", channels_last="on"))]
    if device.type == "cuda":
        fp16 = torch.cuda.get_device_capability(device)[0] < 8
        variants.append((f"+ autocast ({'fp16 + grad scaler' if fp16 else 'bf16'})",
                         dict(amp=amp_on, channels_last="on")))
    if compile:
        variants.append(("+ torch.compile", dict(amp=amp_on, channels_last="on", compile=True)))
    for name, kw in variants:
        rows.append(measure_our_loop(profile, steps, name=name, **common, **kw)[0])
    return rows


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", default=None, help="whose model and batch size (default: as get_profile)")
    p.add_argument("--steps", type=positive_int, default=20, help="timed optimiser steps per loop (default 20)")
    p.add_argument("--batch-size", type=positive_int, default=None, help="default: the profile's")
    p.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    p.add_argument("--compile", action="store_true", help="also time our loop under torch.compile")
    p.add_argument("--peak-tflops", type=positive_float, default=H100_BF16_DENSE_TFLOPS,
                   help="GPU peak for the utilisation figure (default: H100 dense bf16, 989)")


def main(args: argparse.Namespace) -> int:
    p = get_profile(args.profile)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    bs = args.batch_size or p.batch_size
    print(f"profile {p.name}: width {p.width}, input {p.input_size}, batch {bs}, "
          f"{args.steps} steps on {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""))
    seed = measure_seed_loop(p, args.steps, batch_size=bs, device=device)
    ours, trainer = measure_our_loop(p, args.steps, batch_size=bs, device=device)
    rows: Sequence[Measurement] = [ours]
    if args.compile:
        compiled, _ = measure_our_loop(p, args.steps, batch_size=bs, device=device, compile=True)
        rows = [ours, compiled]
    print_comparison("training throughput", seed, *rows)
    if device.type == "cuda":
        for m in (seed, *rows):
            achieved, util = mfu(m.rate, trainer.raw_model, p.input_size, args.peak_tflops)
            print(f"  {m.name}: {achieved:.1f} TFLOP/s = {100 * util:.1f}% of "
                  f"{args.peak_tflops:g} TFLOP/s peak (model FLOPs utilisation)")
    return 0
