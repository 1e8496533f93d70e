"""What a run needs and how long it takes: disk, RAM, GPU memory, expected time; and the
micro-batch that fits the GPU.

::

    fp = footprint("full", root="data/full", device="cuda")  # measured where it can be
    print(fp.table())                                        # estimates are marked "~"

**Fitting the GPU.** A step's peak memory grows linearly with the micro-batch ``b``:
``fixed + b * per_sample`` (weights, gradients, Adam's two moments and cudnn workspace;
the activations saved for backward). :func:`choose_micro_batch` measures the peak at two
small micro-batches (``probe(b)``: bytes, e.g. :func:`cuda_step_peak` of one forward and
backward), extrapolates, and picks the largest divisor of the batch whose predicted peak
stays under the budget (:func:`memory_budget`: 75% of what is free on the device, within
``torch.cuda.set_per_process_memory_fraction``). The Trainer accumulates gradients over
``batch / micro`` micro-batches, so the optimiser still sees the global batch.

**Expected time** is an estimate, never a measurement: the model's FLOPs per sample
(``torch.utils.flop_counter``, forward + backward) times the samples of the run, over the
detected GPU's dense half-precision tensor-core peak (:data:`GPU_PEAK_TFLOPS`, vendor data
sheets) at an *assumed* model FLOPs utilisation (:data:`ASSUMED_UTILISATION`). Data
loading and evaluation overheads are not in it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from evacamel.loading.pack import packed_dir
from evacamel.model import CamelUNet, flops_per_sample
from evacamel.profiles import Profile, get_profile

__all__ = ["GPU_PEAK_TFLOPS", "ASSUMED_UTILISATION", "BUDGET_FRACTION", "PEAK_OVER_SAVED", "MemoryFit",
           "choose_micro_batch", "cuda_step_peak", "memory_budget", "random_batch",
           "packed_bytes", "folder_bytes", "ram_bytes", "gpu_peak_tflops", "train_flops",
           "activation_bytes_per_sample", "expected_train_seconds", "Footprint", "footprint"]

GPU_PEAK_TFLOPS: dict[str, float] = {
    # dense (no sparsity) tensor-core peak in the training's half precision: bf16 from
    # Ampere on, fp16 before (T4, V100). Vendor data sheets; the first name found in the
    # device's name wins, so "H100 PCIe" comes before "H100".
    "T4": 65.0, "V100": 125.0, "A10G": 70.0, "L4": 121.0, "A100": 312.0, "L40S": 362.0,
    "H100 PCIe": 756.0, "H100": 989.0, "H200": 989.0,
}
ASSUMED_UTILISATION = 0.30
"""Model FLOPs utilisation assumed for time estimates: the issue's target on an H100; a T4
in fp16 may do less. Only ``make gpu-check`` on the GPU measures it."""
PEAK_OVER_SAVED = 1.25
"""A step's peak over the activations it saves for backward (gradients of activations and
cudnn workspace in flight): about 1.12 for the seed model at 256 px in fp32 on a CPU (issue
12 measured 173 MiB per sample; :func:`activation_bytes_per_sample` counts 155), rounded up
for the estimate. The Trainer measures the real peak on the GPU instead."""
BUDGET_FRACTION = 0.75
"""Share of the device's free memory a training step may peak at: on a 15 GB T4 about
11 GiB, so a chapter stays under 13 GB with room for cudnn's autotuning and fragmentation."""


@dataclass(frozen=True)
class MemoryFit:
    """The micro-batch chosen for a per-process batch, and why (bytes)."""

    micro_batch: int
    accum_steps: int
    per_sample_bytes: float
    fixed_bytes: float
    budget_bytes: float

    @property
    def predicted_peak_bytes(self) -> float:
        return self.fixed_bytes + self.micro_batch * self.per_sample_bytes

    @property
    def fits(self) -> bool:
        return self.predicted_peak_bytes <= self.budget_bytes


def choose_micro_batch(batch: int, probe: Callable[[int], float], budget_bytes: float,
                       probe_sizes: tuple[int, int] = (2, 4)) -> MemoryFit:
    """The largest divisor of ``batch`` whose peak memory, extrapolated linearly from
    ``probe`` at two small micro-batches, is at most ``budget_bytes``.

    Args:
        batch: samples per optimiser step on this process (>= 1).
        probe: peak bytes of one training step at a micro-batch (e.g. :func:`cuda_step_peak`).
        budget_bytes: what a step may use (:func:`memory_budget`).
        probe_sizes: the two micro-batches probed (clipped to ``batch``).

    Returns:
        The fit; ``fits`` is False when even a micro-batch of 1 is predicted over budget
        (then the micro-batch is 1: the step may run out of memory).
    """
    if batch < 1:
        raise ValueError(f"batch must be >= 1, not {batch}")
    b1, b2 = (min(b, batch) for b in probe_sizes)
    p1 = float(probe(b1))
    if b2 > b1:
        slope = max(0.0, (float(probe(b2)) - p1) / (b2 - b1))
    else:  # a batch too small for two probes: the peak scales with the batch
        slope = p1 / b1
    fixed = max(0.0, p1 - b1 * slope)
    divisors = [d for d in range(batch, 0, -1) if batch % d == 0]
    micro = next((d for d in divisors if fixed + d * slope <= budget_bytes), 1)
    return MemoryFit(micro, batch // micro, slope, fixed, float(budget_bytes))


def cuda_step_peak(step: Callable[[int], object], micro_batch: int,
                   device: torch.device) -> int:
    """Peak bytes allocated on ``device`` by ``step(micro_batch)`` above what was allocated
    before it (``torch.cuda.max_memory_allocated``)."""
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    step(micro_batch)
    torch.cuda.synchronize(device)
    return int(torch.cuda.max_memory_allocated(device) - before)


def memory_budget(device: torch.device, fraction: float = BUDGET_FRACTION) -> int:
    """Bytes a training step may add on a CUDA ``device``: ``fraction`` of what is free
    (free memory plus this process's cached blocks), within the per-process cap that
    ``torch.cuda.set_per_process_memory_fraction`` set."""
    free, total = torch.cuda.mem_get_info(device)
    allocated = torch.cuda.memory_allocated(device)
    cached = torch.cuda.memory_reserved(device) - allocated
    get_cap = getattr(torch.cuda, "get_per_process_memory_fraction", None)  # torch >= 2.5
    cap = (get_cap(device) if get_cap is not None else 1.0) * total
    return int(fraction * max(0.0, min(free + cached, cap - allocated)))


def random_batch(batch: int, input_size: int, generator: torch.Generator,
                 output_stride: int = 2) -> dict[str, torch.Tensor]:
    """A batch in the loader format (``image`` uint8 B x 6 x S x S, ``mask`` uint8 and
    ``depth`` uint16 B x 1 x s x s, ``s = S / output_stride``) of random values, on the
    CPU: for probes and benchmarks, where only the sizes matter."""
    s = input_size // output_stride
    return {"image": torch.randint(0, 256, (batch, 6, input_size, input_size), dtype=torch.uint8,
                                   generator=generator),
            "mask": torch.randint(0, 256, (batch, 1, s, s), dtype=torch.uint8, generator=generator),
            "depth": torch.randint(0, 65536, (batch, 1, s, s), dtype=torch.int32,
                                   generator=generator).to(torch.uint16)}


# ----------------------------------------------------------------------------------------
# sizes on disk, in RAM, on the GPU
# ----------------------------------------------------------------------------------------


def packed_bytes(samples: int, input_size: int, output_stride: int = 2) -> int:
    """Bytes of a packed cache's arrays (:mod:`evacamel.loading.pack`) for ``samples`` rows:
    uint8 6 x S x S image, uint8 mask and uint16 depth at S / ``output_stride`` (plus three
    small headers)."""
    s = input_size // output_stride
    return samples * (6 * input_size ** 2 + s * s + 2 * s * s)


def folder_bytes(root: str | os.PathLike, skip: Callable[[Path], bool] | None = None) -> int:
    """Total size of the files under ``root`` (0 if it does not exist); ``skip(path)``
    leaves out a top-level entry (e.g. the packed caches)."""
    total = 0
    root = Path(root)
    if not root.is_dir():
        return 0
    for entry in root.iterdir():
        if skip is not None and skip(entry):
            continue
        paths = [entry] if entry.is_file() else [p for p in entry.rglob("*") if p.is_file()]
        total += sum(p.stat().st_size for p in paths)
    return total


def ram_bytes() -> int:
    """The machine's physical memory (0 if unknown)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):  # pragma: no cover - not POSIX
        return 0


def gpu_peak_tflops(name: str) -> tuple[str, float] | None:
    """``(key, TFLOP/s)`` of :data:`GPU_PEAK_TFLOPS` for a device name (e.g. "Tesla T4")."""
    for key, tflops in GPU_PEAK_TFLOPS.items():
        if key.lower() in name.lower():
            return key, tflops
    return None


def train_flops(width: int, input_size: int, output_stride: int = 2) -> int:
    """FLOPs of one training sample (forward + backward) of a width-``width`` U-Net,
    counted on the meta device (no memory, no compute)."""
    with torch.device("meta"):
        model = CamelUNet(width=width, output_stride=output_stride)
    return flops_per_sample(model, input_size, backward=True)


def activation_bytes_per_sample(width: int, input_size: int, dtype: torch.dtype = torch.float32,
                                output_stride: int = 2) -> int:
    """Bytes autograd saves for backward per sample (the part of a step's memory that
    grows with the batch), counted on the meta device with the model in ``dtype``
    (``bfloat16``/``float16`` approximate autocast). An estimate: cudnn workspace and
    allocator fragmentation come on top."""
    with torch.device("meta"):
        model = CamelUNet(width=width, output_stride=output_stride).to(dtype).train()
        x = torch.zeros(2, 6, input_size, input_size, dtype=dtype)
    seen: dict[int, int] = {}
    weights = {id(t) for t in model.parameters()}  # in the fixed part, not per sample

    def pack(t: torch.Tensor) -> torch.Tensor:
        base = t._base if t._base is not None else t
        if id(base) not in weights:
            seen[id(base)] = base.numel() * base.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x)
    return sum(seen.values()) // 2


def expected_train_seconds(flops_per_train_sample: float, samples: int, peak_tflops: float,
                           utilisation: float = ASSUMED_UTILISATION) -> float:
    """Seconds to train ``samples`` samples at ``utilisation`` of ``peak_tflops`` (estimate)."""
    return samples * flops_per_train_sample / (peak_tflops * 1e12 * utilisation)


# ----------------------------------------------------------------------------------------
# the report
# ----------------------------------------------------------------------------------------


@dataclass
class Footprint:
    """A run's footprint. Sizes in bytes, time in seconds; ``measured`` names the numbers
    that were measured (the rest are estimates, marked ``~`` in :meth:`table`)."""

    profile: str
    dataset_bytes: int
    packed_bytes: int
    ram_bytes: int
    gpu_name: str
    gpu_total_bytes: int
    gpu_step_bytes: float
    micro_batch: int
    accum_steps: int
    train_seconds: float | None
    peak_tflops: float | None
    measured: set[str] = field(default_factory=set)
    rendered: bool = False
    """The samples are rendered on the device as they are read (``Profile.data``): no files."""

    def _mark(self, name: str) -> str:
        return "" if name in self.measured else "~"

    def table(self) -> str:
        """A small table: disk, RAM, GPU memory, expected time (estimates marked ``~``)."""
        rows = self._data_rows() + [("GPU memory per step", self._gpu_line()),
                                    ("expected training time", self._time_line())]
        width = max(len(k) for k, _ in rows)
        return "\n".join([f"footprint of the {self.profile} profile (~ = estimate)"]
                         + [f"  {k:<{width}}  {v}" for k, v in rows])

    def _data_rows(self) -> list[tuple[str, str]]:
        gb = 1e9
        if self.rendered:
            return [("disk and RAM", "no dataset: samples rendered on the device as training "
                                     "reads them (its backgrounds and camels: ~0.1 GB)")]
        return [("disk: dataset", f"{self._mark('dataset')}{self.dataset_bytes / gb:.2f} GB"),
                ("disk: packed cache", f"{self.packed_bytes / gb:.2f} GB "
                                       f"({'on disk' if 'packed' in self.measured else 'exact size once packed'})"),
                ("RAM", f"{self.ram_bytes / gb:.1f} GB in the machine; the packed cache is "
                        + ("memory-mapped and fits" if self.packed_bytes < 0.8 * self.ram_bytes
                           else "larger: batches are read from disk"))]

    def _gpu_line(self) -> str:
        where = (f"on {self.gpu_name} ({self.gpu_total_bytes / 2**30:.1f} GiB)"
                 if self.gpu_total_bytes else "(no GPU here)")
        return (f"{self._mark('gpu')}{self.gpu_step_bytes / 2**30:.2f} GiB at micro-batch "
                f"{self.micro_batch} x {self.accum_steps} accumulation {where}")

    def _time_line(self) -> str:
        if self.train_seconds is None:
            return f"no estimate for {self.gpu_name or 'a CPU'} (GPUs known: {', '.join(GPU_PEAK_TFLOPS)})"
        return (f"~{self.train_seconds / 60:.0f} min on {self.gpu_name} (estimate: model FLOPs at "
                f"{100 * ASSUMED_UTILISATION:.0f}% of {self.peak_tflops:g} TFLOP/s dense half-precision peak; "
                f"data loading and evaluation not included)")


def footprint(profile: Profile | str | None = None, *, root: str | os.PathLike | None = None,
              device: torch.device | str | None = None, gpu_name: str | None = None,
              gpu_memory_bytes: int | None = None, train_samples: int | None = None,
              fit: MemoryFit | None = None, epochs: int | None = None) -> Footprint:
    """The footprint of ``profile``'s training run.

    Args:
        root: its dataset folder: sizes measured if it exists, estimated otherwise;
            ``None`` for a profile whose ``data`` is ``"render"``: no files at all.
        device: where it trains (default: CUDA if available); a CUDA device gives the GPU's
            name and memory.
        gpu_name: estimate for this GPU instead (e.g. ``"T4"`` on a machine without one).
        gpu_memory_bytes: that GPU's memory (e.g. ``15 * 10**9`` for a T4), to estimate the
            micro-batch that fits it.
        train_samples: training samples per epoch (default: the profile's, estimated).
        fit: the Trainer's :class:`MemoryFit` (measured); otherwise GPU memory is estimated
            (:func:`activation_bytes_per_sample`) for the whole batch in one step.
        epochs: default the profile's.
    """
    p = get_profile(profile)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    fp = Footprint(profile=p.name, dataset_bytes=0, packed_bytes=0, ram_bytes=ram_bytes(),
                   gpu_name=gpu_name or "", gpu_total_bytes=gpu_memory_bytes or 0, gpu_step_bytes=0.0,
                   micro_batch=p.batch_size, accum_steps=1, train_seconds=None, peak_tflops=None)
    _disk(fp, p, Path(root) if root is not None else None)
    fp.rendered = p.data == "render" and root is None  # as training_data decides
    if device.type == "cuda" and gpu_name is None:
        props = torch.cuda.get_device_properties(device)
        fp.gpu_name, fp.gpu_total_bytes = props.name, props.total_memory
    _gpu_memory(fp, p, fit)
    samples = train_samples or p.samples - round(p.samples * p.test_fraction)  # as the plan splits
    known = gpu_peak_tflops(fp.gpu_name) if fp.gpu_name else None
    if known is not None:
        fp.peak_tflops = known[1]
        fp.train_seconds = expected_train_seconds(train_flops(p.width, p.input_size, p.output_stride),
                                                  (epochs or p.epochs) * samples, known[1])
    return fp


def _disk(fp: Footprint, p: Profile, root: Path | None) -> None:
    """Dataset and packed-cache sizes: measured under ``root`` if it holds them."""
    packed = packed_dir(root, p.input_size, p.output_size) if root is not None else None
    if root is not None and root.is_dir():
        fp.dataset_bytes = folder_bytes(root, skip=lambda e: e.name.startswith("packed-"))
        fp.measured.add("dataset")
    else:
        # ~0.21 bytes per source pixel per sample: the full profile's dataset (8.8 GB for
        # 40,000 samples of 1024 px, JPEG 90, PNG masks and depth), as measured for issue 12
        fp.dataset_bytes = int(0.21 * p.samples * p.source_size ** 2)
    if packed is not None and packed.is_dir():
        fp.packed_bytes = folder_bytes(packed)
        fp.measured.add("packed")
    else:
        fp.packed_bytes = packed_bytes(p.samples, p.input_size, p.output_stride)


def _gpu_memory(fp: Footprint, p: Profile, fit: MemoryFit | None) -> None:
    """A step's GPU memory: the Trainer's measured fit, or an estimate (with the micro-batch
    :func:`choose_micro_batch` would pick where the GPU's memory is known)."""
    if fit is not None:
        fp.gpu_step_bytes, fp.micro_batch, fp.accum_steps = (fit.predicted_peak_bytes,
                                                             fit.micro_batch, fit.accum_steps)
        fp.measured.add("gpu")
        return
    with torch.device("meta"):
        params = sum(t.numel() for t in CamelUNet(width=p.width, output_stride=p.output_stride).parameters())
    half = torch.bfloat16 if fp.gpu_name else torch.float32
    per_sample = PEAK_OVER_SAVED * activation_bytes_per_sample(p.width, p.input_size, half, p.output_stride)
    fixed = 16 * params  # fp32 weights, gradients and Adam's two moments
    if fp.gpu_total_bytes:
        est = choose_micro_batch(p.batch_size, lambda b: fixed + b * per_sample,
                                 BUDGET_FRACTION * fp.gpu_total_bytes)
        fp.micro_batch, fp.accum_steps = est.micro_batch, est.accum_steps
    fp.gpu_step_bytes = fixed + fp.micro_batch * per_sample
