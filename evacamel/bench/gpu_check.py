"""``make gpu-check`` (``evacamel bench gpu_check``): the GPU path in one run, one table.

On a machine with one CUDA GPU it checks, at the full profile's sizes (seed U-Net, 256 px,
batch 128), in about 5 minutes:

* the CUDA paths: bf16 autocast, fp16 with the grad scaler, channels_last,
  ``torch.compile``, pinned non-blocking copies, exact resume;
* ``bench train --profile full``: the seed's fp32 loop beside ours (bf16, channels_last,
  compile), samples/s and model FLOPs utilisation of the detected GPU's peak;
* rendering training data on the GPU beside the training step (samples/s, ratio);
* a T4 rehearsal: the full profile's training step (micro-batch chosen automatically),
  the seed's fp32 loop at the batch that fits and the evaluation pass, under
  ``torch.cuda.set_per_process_memory_fraction`` capped to 15 GB, peak memory of each
  against the 13 GB target;
* a time-boxed full-profile training on GPU-rendered data with its held-out metrics.

The T4 rehearsal and the time-boxed training take their data where the chapters do,
:func:`evacamel.loading.prepare.training_data` with ``data="render"``: rendered on the
device as the Trainer reads it.

Without CUDA the same code runs at toy sizes on the CPU (quick profile, a few steps; about
half a minute on 2 cores), says so in the title and in every row that could not run, and
gives labelled *estimates* for a T4 instead of measurements. CI runs that mode. The exit
status is 1 if any check failed.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import math
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from evacamel.cli_args import positive_float
from evacamel.bench.render import measure_render
from evacamel.bench.train import fitting_batch, measure_our_loop, measure_seed_loop, mfu
from evacamel.footprint import footprint, gpu_peak_tflops, random_batch
from evacamel.loading.prepare import TrainData, training_data
from evacamel.loading.render import TensorBatches, plan_seeds
from evacamel.loading.transforms import EvalTransform
from evacamel.model import CamelUNet
from evacamel.profiles import Profile, get_profile
from evacamel.train import TrainConfig, Trainer, stop_after

HELP = "the GPU path in one table (CUDA: full profile; without CUDA: toy sizes on the CPU)"

__all__ = ["Row", "Setup", "setup_for", "run_checks", "format_table", "add_arguments", "main"]

T4_BYTES = 15 * 10**9
"""The T4 rehearsal's memory cap (a T4 has 15 GB; Colab shows 15,360 MiB)."""
TARGET_BYTES = 13 * 10**9
"""Every chapter's peak GPU memory must stay under this on a T4."""


@dataclass
class Row:
    section: str
    check: str
    result: str  # "ok", "FAIL", "skip", "est." (an estimate, not a measurement)
    value: str
    note: str = ""


@dataclass(frozen=True)
class Setup:
    """Sizes of the check: the full profile on CUDA, toy ones on a CPU."""

    device: torch.device
    profile: Profile
    toy: Profile
    bench_steps: int
    train_seconds: float
    train_samples: int
    test_samples: int
    pool: int

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"


def setup_for(device: torch.device, train_seconds: float | None = None) -> Setup:
    """The full profile on CUDA; on a CPU the quick profile at toy sizes."""
    toy = get_profile("quick").replace(input_size=64, width=8, batch_size=8, lr=3e-3)
    if device.type == "cuda":
        return Setup(device, get_profile("full"), toy, bench_steps=10,
                     train_seconds=train_seconds or 150.0, train_samples=4096,
                     test_samples=512, pool=128)
    quick = get_profile("quick").replace(batch_size=8)
    return Setup(device, quick, toy, bench_steps=2, train_seconds=train_seconds or 8.0,
                 train_samples=128, test_samples=32, pool=8)


def _random_data(p: Profile, n_train: int, n_test: int, device: torch.device) -> TrainData:
    """Random batch-format samples (only sizes matter) with a plain normalisation."""
    g = torch.Generator().manual_seed(0)
    train, test = (TensorBatches(*random_batch(n, p.input_size, g, p.output_stride).values()) for n in (n_train, n_test))
    tf = EvalTransform(None).to(device)
    return TrainData(train_set=train, test_set=test, train_transform=tf, eval_transform=tf,
                     mean=tf.mean.flatten().tolist(), std=tf.std.flatten().tolist(),
                     collate_fn=_as_batch)


def _as_batch(batch):
    return batch


def _config(p: Profile, device: torch.device, out: Path, **kw) -> TrainConfig:
    values = dict(device=str(device), epochs=1, num_workers=0, schedule="constant", out=str(out))
    values.update(kw)
    return TrainConfig.from_profile(p, **values)


def _trainer(p: Profile, s: Setup, out: Path, data: TrainData | None = None, **kw) -> Trainer:
    data = data or _random_data(p, 4 * p.batch_size, 8, s.device)
    return Trainer(_config(p, s.device, out, **kw), data, progress=False, verbose=False)


def _sync(s: Setup) -> None:
    if s.cuda:
        torch.cuda.synchronize(s.device)


# ----------------------------------------------------------------------------------------
# the CUDA paths
# ----------------------------------------------------------------------------------------


def check_amp(s: Setup, out: Path) -> list[Row]:
    """bf16 autocast and fp16 with the grad scaler: a few steps with finite losses."""
    rows = []
    for amp, name in (("bf16", "bf16 autocast"), ("fp16", "fp16 + grad scaler")):
        t = _trainer(s.toy, s, out / amp, amp=amp)
        # fp16's first steps are skipped while the grad scaler finds its scale; torch warns
        warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step",
                                category=UserWarning)
        batches = [t.data.train_set[list(range(i * 8, i * 8 + 8))] for i in range(3)]
        losses = [float(t.train_step([b])[1]) / 8 for b in batches]
        ok = all(math.isfinite(v) for v in losses) and t.amp_dtype is not None
        scale = f", grad scale {t.scaler.get_scale():g}" if amp == "fp16" else ""
        rows.append(Row("CUDA paths", name, "ok" if ok else "FAIL",
                        f"loss {losses[0]:.2f} -> {losses[-1]:.2f}{scale}",
                        "" if s.cuda else f"CPU autocast ({amp}), not CUDA's"))
    return rows


def check_channels_last(s: Setup) -> list[Row]:
    """The same model's output in NCHW and NHWC memory layout (fp32)."""
    torch.manual_seed(0)
    model = CamelUNet(width=s.toy.width).to(s.device).eval()
    x = torch.randn(2, 6, s.toy.input_size, s.toy.input_size, device=s.device)
    with torch.no_grad():
        a = model(x)
        b = copy.deepcopy(model).to(memory_format=torch.channels_last)(
            x.contiguous(memory_format=torch.channels_last))
    rel = float((a - b).abs().max() / a.abs().max().clamp_min(1e-12))
    tol = 1e-2 if s.cuda else 1e-4  # TF32 convolutions on CUDA pick other algorithms per layout
    return [Row("CUDA paths", "channels_last", "ok" if rel <= tol else "FAIL",
                f"max rel. difference {rel:.1e} (<= {tol:g})")]


def check_pinned(s: Setup, out: Path) -> list[Row]:
    """The Trainer's loader hands out pinned batches; a non-blocking copy arrives intact."""
    if not s.cuda:
        return [Row("CUDA paths", "pinned non-blocking copy", "skip", "-",
                    "CPU mode: pinned memory needs CUDA")]
    t = _trainer(s.toy, s, out / "pinned")
    from evacamel.distributed import EpochSampler

    batch = next(iter(t._loader(EpochSampler(len(t.data.train_set), 8, seed=0, epoch=0))))
    pinned = all(v.is_pinned() for v in batch.values())
    moved = t._to_device(batch)
    _sync(s)
    same = all(torch.equal(moved[k].cpu(), batch[k]) for k in batch)
    return [Row("CUDA paths", "pinned non-blocking copy", "ok" if pinned and same else "FAIL",
                f"pinned {pinned}, copied intact {same}")]


def _weights(t: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in t.raw_model.state_dict().items()}


def _max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


def check_resume(s: Setup, out: Path) -> list[Row]:
    """A run stopped after step 3 and resumed ends with the weights of one never stopped.

    On CUDA some kernels are not bitwise deterministic (bilinear upsampling's backward uses
    atomic adds), so the difference is compared with that of two uninterrupted runs."""
    data = _random_data(s.toy, 6 * s.toy.batch_size, 8, s.device)
    whole = [_weights(_fit(_trainer(s.toy, s, out / f"whole{i}", data, checkpoint_every=1)))
             for i in range(2 if s.cuda else 1)]
    stopped = _trainer(s.toy, s, out / "stopped", data, checkpoint_every=1)
    stopped.fit(on_step=stop_after(3))
    resumed = Trainer.resume(out / "stopped" / "last.pt", data, progress=False, verbose=False)
    resumed.fit()
    diff = _max_diff(whole[0], _weights(resumed))
    floor = _max_diff(whole[0], whole[1]) if len(whole) > 1 else 0.0
    ok = diff == 0.0 or diff <= 10 * floor
    kind = "bitwise" if diff == 0.0 else f"max |dw| {diff:.1e} vs {floor:.1e} between two full runs"
    return [Row("CUDA paths", "exact resume (stop at step 3, resume)", "ok" if ok else "FAIL",
                kind, "" if s.cuda else "on the CPU")]


def _fit(t: Trainer) -> Trainer:
    t.fit()
    return t


# ----------------------------------------------------------------------------------------
# speed, rendering, memory, a short training
# ----------------------------------------------------------------------------------------


def check_bench(s: Setup) -> tuple[list[Row], float]:
    """``bench train``: the seed's fp32 loop beside ours (and compiled on CUDA)."""
    p, steps = s.profile, s.bench_steps
    seed_batch = fitting_batch(p, device=s.device) if s.cuda else p.batch_size
    seed = measure_seed_loop(p, steps, batch_size=seed_batch, device=s.device, warmup=1)
    ours, trainer = measure_our_loop(p, steps, device=s.device, warmup=1)
    runs = [(seed, seed_batch), (ours, p.batch_size)]
    rows = []
    if s.cuda:
        t0 = time.perf_counter()
        try:
            compiled, _ = measure_our_loop(p, steps, device=s.device, compile=True, warmup=1)
            runs.append((compiled, p.batch_size))
            rows.append(Row("CUDA paths", "torch.compile", "ok",
                            f"compiled and trained in {time.perf_counter() - t0:.0f} s"))
        except Exception as exc:  # one line in the table, the other checks still run
            rows.append(Row("CUDA paths", "torch.compile", "FAIL", _first_line(exc)))
    else:
        rows.append(Row("CUDA paths", "torch.compile", "skip", "-",
                        "CPU mode: inductor's C++ build takes minutes on 2 cores"))
    peak = gpu_peak_tflops(torch.cuda.get_device_name(s.device)) if s.cuda else None
    for m, bs in runs:
        util = ""
        if peak is not None:
            achieved, share = mfu(m.rate, trainer.raw_model, p.input_size, peak[1])
            util = f", {achieved:.0f} TFLOP/s = {100 * share:.1f}% MFU of {peak[1]:g}"
        rows.append(Row(f"bench train ({p.name})", m.name, "ok",
                        f"{m.rate:,.1f} samples/s (x{m.rate / seed.rate:.1f}){util}",
                        f"batch {bs}" + ("" if s.cuda else ", CPU: no MFU")))
    return rows, ours.rate


def check_render(s: Setup, train_rate: float) -> tuple[list[Row], float]:
    """Rendering training data on the device beside the training step's samples/s;
    returns the rows and the rendering rate."""
    batches = 8 if s.cuda else 2
    render, pool_s = measure_render(s.profile, batches, device=s.device, pool=min(32, s.pool))
    ratio = render.rate / train_rate
    return [Row("rendering", render.name, "ok",
                f"{render.rate:,.1f} samples/s = x{ratio:.2f} the training step",
                f"pool rendered once in {pool_s:.1f} s; "
                + ("the GPU waits for data" if ratio < 1 else "the model never waits"))], render.rate


def _peak(s: Setup, fn: Callable[[], object]) -> int:
    _sync(s)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(s.device)
    fn()
    _sync(s)
    return int(torch.cuda.max_memory_allocated(s.device))


def _memory_row(name: str, peak: int, note: str) -> Row:
    return Row("T4 rehearsal (15 GB cap)", name, "ok" if peak < TARGET_BYTES else "FAIL",
               f"peak {peak / 1e9:.2f} GB (< 13 GB)", note)


def check_t4(s: Setup, out: Path) -> list[Row]:
    """The full profile's GPU work under a 15 GB cap, peak memory of each step."""
    if not s.cuda:
        fp = footprint("full", device="cpu", gpu_name="T4", gpu_memory_bytes=T4_BYTES)
        return [Row("T4 rehearsal (15 GB cap)", "training step (estimate)", "est.",
                    f"~{fp.gpu_step_bytes / 1e9:.1f} GB at micro-batch {fp.micro_batch} x "
                    f"{fp.accum_steps}", "CPU mode: saved activations counted on the meta device")]
    total = torch.cuda.get_device_properties(s.device).total_memory
    torch.cuda.set_per_process_memory_fraction(min(1.0, T4_BYTES / total), s.device)
    try:
        p = s.profile
        # the chapters' data path on a GPU (rendered where it trains), its memory included
        data = training_data(p.replace(data="render", samples=p.batch_size + 64), device=s.device,
                             progress=False)
        t = _trainer(p, s, out / "t4", data)
        rows = [_memory_row("ch05 training step (auto micro-batch)",
                            _peak(s, lambda: t.fit(on_step=stop_after(1))),
                            f"micro-batch {t.micro_batch} x {t.accum_steps}, {t.amp_dtype}")]
        rows.append(_memory_row("ch06 evaluation", _peak(s, t.evaluate), f"batch {t.micro_batch}"))
        bs = fitting_batch(p, device=s.device)
        rows.append(_memory_row("ch05 speed table: seed fp32 loop",
                                _peak(s, lambda: measure_seed_loop(p, 1, batch_size=bs,
                                                                   device=s.device, warmup=0)),
                                f"batch {bs} (fitted)"))
        return rows
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, s.device)


def check_training(s: Setup, out: Path, train_rate: float, render_rate: float) -> list[Row]:
    """A time-boxed training of the profile's model on rendered data; held-out metrics.
    The rendering is time-boxed too (about a minute at ``render_rate``)."""
    p = s.profile
    fits = int(render_rate * 60) // p.batch_size * p.batch_size if math.isfinite(render_rate) else 0
    n_train = min(s.train_samples, max(2 * p.batch_size, fits))
    n_test = min(s.test_samples, max(32, n_train // 8))
    t0 = time.perf_counter()
    # the chapters' path: training_data renders for a profile whose data is "render"
    rendered_profile = p.replace(data="render", samples=n_train + n_test,
                                 n_backgrounds=min(p.n_backgrounds, s.pool),
                                 n_camels=min(p.n_camels, s.pool))
    data = training_data(rendered_profile, device=s.device, progress=False)
    n_train, n_test = len(data.train_set), len(data.test_set)
    seeds = plan_seeds(rendered_profile)
    held_out = not (set(seeds["train"].backgrounds) & set(seeds["test"].backgrounds)
                    or set(seeds["train"].camels) & set(seeds["test"].camels))
    rendered = time.perf_counter() - t0
    steps = max(1, int(train_rate * s.train_seconds / p.batch_size))
    epochs = max(1, steps * p.batch_size // n_train)
    t = Trainer(_config(p, s.device, out / "timeboxed", epochs=epochs, schedule="onecycle"),
                data, progress=False, verbose=False)
    deadline = time.perf_counter() + s.train_seconds
    t.fit(on_step=lambda tr: time.perf_counter() > deadline)
    metrics = t.history[-1] if t.finished else t.evaluate()
    return [Row("time-boxed training", "held-out split", "ok" if held_out else "FAIL",
                f"{len(seeds['test'].backgrounds)} test backgrounds, "
                f"{len(seeds['test'].camels)} test camels never in training",
                f"{n_train}+{n_test} samples rendered as read (pools and statistics: "
                f"{rendered:.0f} s)"),
            Row("time-boxed training", f"{p.name} profile, {s.train_seconds:.0f} s",
                "ok" if math.isfinite(metrics["mask_iou"]) else "FAIL",
                f"mask IoU {metrics['mask_iou']:.3f}, depth SSIM {metrics['depth_ssim']:.3f}, "
                f"RMSE {metrics['depth_rmse_m']:.1f} m",
                f"{t.global_step} steps of {p.batch_size}; test split, held out")]


# ----------------------------------------------------------------------------------------
# the table
# ----------------------------------------------------------------------------------------


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:120]


def run_checks(s: Setup) -> list[Row]:
    """Every check; one that raises becomes a FAIL row and the others still run."""
    rows: list[Row] = []
    rate = float("nan")
    with tempfile.TemporaryDirectory(prefix="evacamel-gpu-check-") as tmp:
        out = Path(tmp)
        steps: list[tuple[str, Callable[[], list[Row]]]] = [
            ("autocast", lambda: check_amp(s, out)),
            ("channels_last", lambda: check_channels_last(s)),
            ("pinned", lambda: check_pinned(s, out)),
            ("resume", lambda: check_resume(s, out))]
        for name, fn in steps:
            rows += _guard(name, fn)
        try:
            bench_rows, rate = check_bench(s)
            rows += bench_rows
        except Exception as exc:
            rows.append(Row("bench train", "seed loop vs ours", "FAIL", _first_line(exc)))
        render_rate = float("nan")
        try:
            render_rows, render_rate = check_render(s, rate)
            rows += render_rows
        except Exception as exc:
            rows.append(Row("rendering", "rendering", "FAIL", _first_line(exc)))
        rows += _guard("T4 rehearsal", lambda: check_t4(s, out))
        rows += _guard("time-boxed training", lambda: check_training(s, out, rate, render_rate))
    return rows


def _guard(name: str, fn: Callable[[], list[Row]]) -> list[Row]:
    try:
        return fn()
    except Exception as exc:  # one line in the table, the other checks still run
        return [Row(name, name, "FAIL", _first_line(exc))]


def format_table(rows: list[Row], title: str) -> str:
    """One text table (also valid Markdown): section, check, result, value, note."""
    head = ("section", "check", "result", "value", "note")
    cells = [head] + [dataclasses.astuple(r) for r in rows]
    widths = [max(len(str(c[i])) for c in cells) for i in range(len(head))]
    line = lambda c: "| " + " | ".join(str(v).ljust(w) for v, w in zip(c, widths)) + " |"  # noqa: E731
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([title, "", line(head), rule] + [line(c) for c in cells[1:]])


def _title(s: Setup) -> str:
    if s.cuda:
        props = torch.cuda.get_device_properties(s.device)
        return (f"GPU check on {props.name} ({props.total_memory / 2**30:.0f} GiB), torch "
                f"{torch.__version__}: {s.profile.name} profile sizes")
    return (f"GPU check in CPU MODE (no CUDA device), torch {torch.__version__}: toy sizes "
            f"(quick profile, a few steps). No number below is a GPU measurement; "
            f"'est.' rows are estimates.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    p.add_argument("--train-seconds", type=positive_float, default=None,
                   help="the time-boxed training's length (default: 150 on CUDA, 8 on CPU)")


def main(args: argparse.Namespace) -> int:
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    s = setup_for(device, args.train_seconds)
    t0 = time.perf_counter()
    rows = run_checks(s)
    print(format_table(rows, _title(s)))
    failed = [r for r in rows if r.result == "FAIL"]
    print(f"\n{len(rows)} checks in {time.perf_counter() - t0:.0f} s: "
          + (f"{len(failed)} FAILED" if failed else "none failed"))
    return 1 if failed else 0
