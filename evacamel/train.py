"""Training: a Trainer one can read top to bottom.

::

    cfg = TrainConfig.from_profile("quick", epochs=5, lr=3e-3)
    history = Trainer(cfg).fit()           # or: evacamel train --profile quick --epochs 5

What one step does (:meth:`Trainer.train_step`)::

    uint8 batch --(pinned, non_blocking)--> device --transform--> x, mask, depth (float32)
    x (channels_last) --model under autocast (bf16 on CUDA)--> logits, depth
    loss = 100 BCE + 100 DSSIM + 0.1 L1 (fp32) --backward (grad scaler for fp16)--> step

The speed techniques, each a :class:`TrainConfig` field:

* ``amp``: bf16 autocast on CUDA (fp16 with a gradient scaler where bf16 is missing);
  fp32 on CPU. Losses and metrics are always computed in fp32.
* ``channels_last``: NHWC memory layout on CUDA, what tensor cores want for convs.
* cudnn autotuning (``torch.backends.cudnn.benchmark``) on CUDA: fixed input sizes.
* ``compile``: ``torch.compile`` (off by default: it takes a minute to compile).
* Batches travel as uint8 (4x less than float32) in pinned memory, copied with
  ``non_blocking=True``, and become floats on the device (:mod:`evacamel.loading.transforms`).

Checkpoints (:mod:`evacamel.checkpoint`): ``last.pt`` every ``checkpoint_every`` steps
and at the end of each epoch, ``best.pt`` when the one declared ``best_metric``
improves. Each holds the model, optimiser, scheduler, grad scaler, every RNG state, the
epoch, the step within it, and the data order (a permutation drawn from
``seed + epoch``, see :class:`evacamel.distributed.EpochSampler`), so
``Trainer.resume(path).fit()`` ends with the same weights as a run never interrupted.
Each also holds the model config and the input normalisation, so prediction needs
nothing else (:mod:`evacamel.predict`).

Multi-GPU: ``torchrun --nproc_per_node=N -m evacamel train ...``; each process takes
its slice of every global batch, gradients are averaged by DistributedDataParallel,
metrics are all-reduced, and rank 0 alone shows progress and writes files.

The run folder (``paths.run_dir(profile)`` or ``out``) holds ``config.json``,
``history.csv``, ``history.json``, ``last.pt`` and ``best.pt``.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from evacamel import paths
from evacamel.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from evacamel.dataset.atomic import atomic_write
from evacamel.distributed import (DistInfo, EpochSampler, ShardSampler, all_reduce_sum,
                                  barrier, init_distributed)
from evacamel.losses import CamelLoss, LossTerms
from evacamel.metrics import METRIC_NAMES, MetricAccumulator
from evacamel.model import CamelUNet, split_outputs
from evacamel.profiles import Profile, get_profile

__all__ = ["TrainConfig", "Trainer", "train", "resolve_device", "resolve_amp", "autocast",
           "METRIC_DIRECTION", "CHECKPOINT_FORMAT"]

CHECKPOINT_FORMAT = "evacamel-checkpoint"

METRIC_DIRECTION = {name: "max" for name in METRIC_NAMES}
METRIC_DIRECTION.update(depth_rmse="min", depth_rmse_m="min", depth_absrel="min")
"""Whether a larger (``max``) or smaller (``min``) value of each metric is better."""

LOSS_TERMS = ("loss", "bce", "dssim", "l1")


# ----------------------------------------------------------------------------------------
# configuration
# ----------------------------------------------------------------------------------------


@dataclass
class TrainConfig:
    """Everything a run depends on. :meth:`from_profile` fills the sizes from a profile."""

    profile: str = "quick"
    # sizes (from the profile unless overridden)
    epochs: int = 3
    batch_size: int = 32
    """Samples per optimiser step over all processes (the global batch)."""
    lr: float = 2e-3
    width: int = 16
    input_size: int = 64
    num_workers: int = 0
    seed: int = 0
    # optimisation
    optimizer: str = "adamw"
    """``adam`` or ``adamw``."""
    weight_decay: float = 1e-4
    """AdamW's decoupled decay (Adam: L2 added to the gradient)."""
    schedule: str = "onecycle"
    """``onecycle`` (warm up to ``lr``, cosine down), ``cosine`` (linear warm-up, cosine to 0)
    or ``constant``."""
    warmup: float = 0.15
    """Fraction of all steps spent warming up."""
    accum_steps: int = 1
    """Micro-batches per optimiser step and process (gradient accumulation)."""
    # loss constants: the seed's 10 BCE + 100 DSSIM + 0.1 L1, except the mask's weight
    mask_weight: float = 100.0
    """BCE weight. The seed used 10; then the DSSIM term dominates the shared features and a
    short run learns no mask at all (quick profile data, 12 epochs at lr 2e-3: test IoU
    0.00 with 10, 0.54 with 100; it predicts "no camel" everywhere and still scores 97.6%
    pixel accuracy), so the trainer weights BCE like DSSIM. ``10`` restores the seed's."""
    dssim_weight: float = 100.0
    l1_weight: float = 0.1
    augment: str = "auto"
    """Training augmentation (:class:`evacamel.loading.transforms.TrainTransform`): ``full``
    (flips and colour jitter), ``flip`` (flips only), ``off``; ``auto`` is ``full`` on CUDA
    and ``flip`` on CPU, where kornia's colour jitter costs more than a training step."""
    # speed
    device: str = "auto"
    """``auto`` (CUDA if available), ``cpu``, ``cuda``, ``cuda:1`` ..."""
    amp: str = "auto"
    """``auto`` (bf16 on CUDA, fp16 where bf16 is missing, off on CPU), ``bf16``, ``fp16``, ``off``."""
    channels_last: str = "auto"
    """``auto`` (on for CUDA), ``on``, ``off``."""
    compile: bool = False
    # checkpoints and output
    checkpoint_every: int = 0
    """Also save ``last.pt`` every this many optimiser steps (0: only at each epoch's end)."""
    best_metric: str = "mask_iou"
    """The one validation metric that picks ``best.pt`` (see :data:`METRIC_DIRECTION`)."""
    data: str | None = None
    """Dataset folder (default: the profile's, built if missing)."""
    out: str | None = None
    """Run folder (default: ``paths.run_dir(profile)``), e.g. on a mounted Google Drive."""
    stop_after_steps: int | None = None
    """Stop after this many optimiser steps in total *without saving*, as a crash or a
    disconnect would (for tests and demonstrations of resume)."""

    @classmethod
    def from_profile(cls, profile: str | Profile | None = None, **overrides: Any) -> "TrainConfig":
        """The profile's sizes and schedule, then ``overrides`` (``None`` values are ignored)."""
        p = get_profile(profile)
        values = dict(profile=p.name, epochs=p.epochs, batch_size=p.batch_size, lr=p.lr,
                      width=p.width, input_size=p.input_size, num_workers=p.num_workers,
                      seed=p.seed)
        for key, value in overrides.items():
            if key not in {f.name for f in dataclasses.fields(cls)}:
                raise ValueError(f"unknown training option {key!r}")
            if value is not None:
                values[key] = value
        return cls(**values)

    def __post_init__(self) -> None:
        if self.best_metric not in METRIC_DIRECTION:
            raise ValueError(f"best_metric {self.best_metric!r} is not one of: "
                             f"{', '.join(METRIC_DIRECTION)}")
        if self.optimizer not in ("adam", "adamw"):
            raise ValueError(f"optimizer must be 'adam' or 'adamw', not {self.optimizer!r}")
        if self.schedule not in ("onecycle", "cosine", "constant"):
            raise ValueError(f"schedule must be onecycle, cosine or constant, not {self.schedule!r}")
        if self.amp not in ("auto", "bf16", "fp16", "off"):
            raise ValueError(f"amp must be auto, bf16, fp16 or off, not {self.amp!r}")
        if self.augment not in ("auto", "full", "flip", "off"):
            raise ValueError(f"augment must be auto, full, flip or off, not {self.augment!r}")
        if self.channels_last not in ("auto", "on", "off"):
            raise ValueError(f"channels_last must be auto, on or off, not {self.channels_last!r}")
        if self.input_size % 32:
            raise ValueError(f"input_size {self.input_size} must be a multiple of 32")
        if self.epochs < 1 or self.batch_size < 1 or self.accum_steps < 1 or self.lr <= 0:
            raise ValueError("epochs, batch_size and accum_steps must be >= 1 and lr > 0")

    def data_profile(self) -> Profile:
        """The profile with this run's input size, for the data pipeline (the dataset
        itself, its seed included, is the profile's)."""
        return get_profile(self.profile).replace(input_size=self.input_size)

    def run_dir(self) -> Path:
        return Path(self.out) if self.out else paths.run_dir(self.profile)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> ``cuda`` when available, else ``cpu``; other names as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


RESUME_CAN_CHANGE = frozenset({"data", "device", "num_workers", "checkpoint_every", "amp",
                               "channels_last", "compile"})
"""Config fields a resumed run may change (``evacamel train --resume --data NEW ...``)."""


def resolve_amp(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype (``None``: fp32). ``auto`` is bf16 on CUDA with bf16, fp16 on older
    CUDA GPUs, fp32 on CPU (CPU autocast is slower than fp32 for these convs)."""
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return None
    if amp == "auto":
        # Native bf16 only (Ampere, sm_80, and newer): is_bf16_supported() also says yes on
        # a T4 (sm_75), where bf16 is emulated without tensor cores.
        native = torch.cuda.get_device_capability(device)[0] >= 8
        return torch.bfloat16 if native else torch.float16
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[amp]


def autocast(device: torch.device, dtype: torch.dtype | None):
    """``torch.autocast`` for ``dtype``, or a no-op context for fp32."""
    if dtype is None:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


# ----------------------------------------------------------------------------------------
# data: datasets of uint8 sample dicts, and the device transforms
# ----------------------------------------------------------------------------------------


@dataclass
class TrainData:
    """What the Trainer needs from the data pipeline.

    ``train_set``/``test_set`` yield sample dicts (``image`` uint8 6 x S x S, ``mask``
    uint8 1 x s x s, ``depth`` uint16 1 x s x s; ARCHITECTURE.md "Batches"); the
    transforms turn a batch on the device into ``(x, mask, depth)`` floats; ``mean`` and
    ``std`` (6 floats each) are the input normalisation, stored in checkpoints.
    """

    train_set: Dataset
    test_set: Dataset
    train_transform: Callable[[dict[str, torch.Tensor]], tuple[torch.Tensor, ...]]
    eval_transform: Callable[[dict[str, torch.Tensor]], tuple[torch.Tensor, ...]]
    mean: list[float]
    std: list[float]
    collate_fn: Callable | None = None


def load_data(cfg: TrainConfig, device: torch.device, dist_info: DistInfo | None = None,
              progress: bool = True) -> TrainData:
    """The profile's dataset as :class:`TrainData`: built if missing, packed at the run's
    input size, normalised with the training split's statistics (rank 0 prepares, the
    other processes wait)."""
    from evacamel.loading.loader import collate_for, open_dataset
    from evacamel.loading.pack import ensure_packed
    from evacamel.loading.stats import ensure_stats
    from evacamel.dataset.write import ensure_dataset
    from evacamel.dataset.format import is_complete
    from evacamel.loading.transforms import EvalTransform, TrainTransform, normalization_from_stats

    profile = cfg.data_profile()
    dist_info = dist_info or DistInfo()
    root = Path(cfg.data) if cfg.data else None
    # A complete dataset named by --data is used as it is (any sizes or counts: only the
    # profile's input/output sizes matter here); otherwise the profile's is made there.
    given = root is not None and is_complete(root)
    if dist_info.is_main:
        root = root if given else ensure_dataset(profile, root, progress=progress)
        ensure_packed(profile, root=root, progress=progress)
        stats = ensure_stats(profile, root=root, progress=progress)
    barrier()
    if not dist_info.is_main:
        root = root if given else ensure_dataset(profile, root, progress=False)
        stats = ensure_stats(profile, root=root, progress=False)
    sets = [open_dataset(root, split, input_size=profile.input_size,
                         output_size=profile.output_size) for split in ("train", "test")]
    mean, std = normalization_from_stats(stats)
    augment = cfg.augment if cfg.augment != "auto" else ("full" if device.type == "cuda" else "flip")
    train_tf = {"full": lambda: TrainTransform(stats),
                "flip": lambda: TrainTransform(stats, jitter_p=0.0),
                "off": lambda: EvalTransform(stats)}[augment]()
    return TrainData(
        train_set=sets[0], test_set=sets[1],
        train_transform=train_tf.to(device), eval_transform=EvalTransform(stats).to(device),
        mean=mean.flatten().tolist(), std=std.flatten().tolist(),
        collate_fn=collate_for(sets[0]),
    )


def stats_from_normalization(mean: Sequence[float], std: Sequence[float]) -> dict[str, Any]:
    """A checkpoint's 6 means and stds as the statistics dict the transforms take."""
    return {"bg": {"mean": list(mean[:3]), "std": list(std[:3])},
            "fg_bg": {"mean": list(mean[3:]), "std": list(std[3:])}}


# ----------------------------------------------------------------------------------------
# the trainer
# ----------------------------------------------------------------------------------------


class Trainer:
    """Trains a :class:`CamelUNet` as :class:`TrainConfig` says; see the module docstring.

    Args:
        cfg: the run's configuration.
        data: datasets and transforms (default: :func:`load_data`, the profile's dataset).
        dist_info: this process in a multi-process run (default: from the environment).
        progress: show tqdm progress bars (rank 0 only).
        verbose: print one summary line per epoch (rank 0 only).
    """

    def __init__(self, cfg: TrainConfig, data: TrainData | None = None, *,
                 dist_info: DistInfo | None = None, progress: bool = True,
                 verbose: bool = True) -> None:
        self.cfg = cfg
        self.dist = dist_info or init_distributed()
        self.progress = progress and self.dist.is_main
        self.verbose = verbose and self.dist.is_main
        self.device = resolve_device(cfg.device)
        if self.device.type == "cuda" and self.dist.enabled:
            self.device = torch.device("cuda", self.dist.local_rank)
        self.amp_dtype = resolve_amp(cfg.amp, self.device)
        self.channels_last = cfg.channels_last == "on" or (
            cfg.channels_last == "auto" and self.device.type == "cuda")
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed sizes: let cudnn pick the fastest convs
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True

        # Seed first, so the initial weights depend on cfg.seed only (the same on every rank).
        torch.manual_seed(cfg.seed)
        # the model (raw_model: the nn.Module whose weights we save)
        self.raw_model = CamelUNet(width=cfg.width).to(self.device)
        if self.channels_last:
            self.raw_model = self.raw_model.to(memory_format=torch.channels_last)
        self.model: nn.Module = self.raw_model
        if cfg.compile:
            self.model = torch.compile(self.model)
        if self.dist.enabled:
            self.model = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.loss_fn = CamelLoss(cfg.mask_weight, cfg.dssim_weight, cfg.l1_weight)
        self.data = data or load_data(cfg, self.device, self.dist, progress=progress)

        # data order: one global batch per optimiser step, split over processes and micro-batches
        self.micro_batch = cfg.batch_size // (self.dist.world_size * cfg.accum_steps)
        self.steps_per_epoch = EpochSampler(
            len(self.data.train_set), cfg.batch_size, seed=cfg.seed, epoch=0,
            world_size=self.dist.world_size, accum_steps=cfg.accum_steps).steps
        self.total_steps = cfg.epochs * self.steps_per_epoch

        # optimiser, schedule, scaler
        opt_cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
        self.optimizer = opt_cls(self.raw_model.parameters(), lr=cfg.lr,
                                 weight_decay=cfg.weight_decay)
        self.scheduler = self._make_scheduler()
        self.scaler = torch.amp.GradScaler(self.device.type,
                                           enabled=self.amp_dtype == torch.float16)

        # where we are
        self.epoch = 0            # the epoch in progress (or next to start)
        self.step_in_epoch = 0    # optimiser steps done in self.epoch
        self.global_step = 0      # optimiser steps done in all
        self.epoch_sums = torch.zeros(len(LOSS_TERMS) + 1, dtype=torch.float64)  # n, loss terms
        self.history: list[dict[str, float]] = []
        self.best: dict[str, Any] = {"metric": cfg.best_metric, "value": None, "epoch": None}
        self._rng_to_restore: dict | None = None

    def _make_scheduler(self) -> torch.optim.lr_scheduler.LRScheduler:
        cfg, total = self.cfg, max(1, self.total_steps)
        if cfg.schedule == "onecycle":
            return torch.optim.lr_scheduler.OneCycleLR(
                self.optimizer, max_lr=cfg.lr, total_steps=total, pct_start=cfg.warmup,
                anneal_strategy="cos", cycle_momentum=False, div_factor=25.0,
                final_div_factor=1e3)
        warm = max(1, int(cfg.warmup * total))
        if cfg.schedule == "cosine":
            def factor(step: int) -> float:
                if step < warm:
                    return (step + 1) / warm
                return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))
        else:
            def factor(step: int) -> float:
                return 1.0
        return torch.optim.lr_scheduler.LambdaLR(self.optimizer, factor)

    # -- data ------------------------------------------------------------------------------

    def _loader(self, dataset: Dataset, sampler: torch.utils.data.Sampler,
                seed: int) -> DataLoader:
        """A loader over ``dataset`` in ``sampler``'s order (a generator of its own, so
        making it never touches the global RNG that augmentation draws from)."""
        workers = self.cfg.num_workers
        return DataLoader(dataset, batch_size=self.micro_batch, sampler=sampler,
                          num_workers=workers, pin_memory=self.device.type == "cuda",
                          collate_fn=self.data.collate_fn, drop_last=False,
                          persistent_workers=False, prefetch_factor=4 if workers else None,
                          generator=torch.Generator().manual_seed(seed))

    def _to_device(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: v.to(self.device, non_blocking=True) if isinstance(v, torch.Tensor) else v
                for k, v in batch.items()}

    def _forward(self, model: nn.Module, x: torch.Tensor, *, amp: bool = True
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(self.device, self.amp_dtype if amp else None):
            out = model(x)
        mask_logits, depth = split_outputs(out.float())
        return mask_logits, depth

    # -- one step ----------------------------------------------------------------------------

    def train_step(self, micro_batches: list[dict[str, torch.Tensor]]) -> torch.Tensor:
        """One optimiser step over this process's micro-batches of one global batch.

        Returns the summed loss terms ``[n, n*total, n*bce, n*dssim, n*l1]`` (float64, on
        the device: reading them would wait for the GPU, so the caller does it rarely).
        """
        self.model.train()
        sums = torch.zeros(len(LOSS_TERMS) + 1, dtype=torch.float64, device=self.device)
        for i, batch in enumerate(micro_batches):
            x, mask, depth = self.data.train_transform(self._to_device(batch))
            last = i == len(micro_batches) - 1
            sync = self.model.no_sync() if (self.dist.enabled and not last) else nullcontext()
            with sync:
                mask_logits, depth_pred = self._forward(self.model, x)
                terms: LossTerms = self.loss_fn(mask_logits, depth_pred, mask, depth)
                self.scaler.scale(terms.total / len(micro_batches)).backward()
            n = x.shape[0]  # (no host-to-device copy here: a scalar add and a stack)
            sums[0] += n
            sums[1:] += n * torch.stack([terms.total, terms.bce, terms.dssim, terms.l1]).detach().double()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        return sums

    # -- one epoch ---------------------------------------------------------------------------

    def train_epoch(self) -> bool:
        """Train the rest of ``self.epoch``; False if stopped early by ``stop_after_steps``."""
        cfg = self.cfg
        sampler = EpochSampler(len(self.data.train_set), cfg.batch_size, seed=cfg.seed,
                               epoch=self.epoch, start_step=self.step_in_epoch,
                               rank=self.dist.rank, world_size=self.dist.world_size,
                               accum_steps=cfg.accum_steps)
        loader = iter(self._loader(self.data.train_set, sampler, cfg.seed + self.epoch))
        if self._rng_to_restore is not None:  # resuming: the generators as they were saved
            set_rng_state(self._rng_to_restore)
            self._rng_to_restore = None
        bar = _progress(range(self.step_in_epoch, self.steps_per_epoch), self.progress,
                        desc=f"epoch {self.epoch + 1}/{cfg.epochs}", unit="step",
                        initial=self.step_in_epoch, total=self.steps_per_epoch)
        self._bar = bar
        device_sums = torch.zeros_like(self.epoch_sums, device=self.device)
        for _ in bar:
            micro = [next(loader) for _ in range(cfg.accum_steps)]
            device_sums += self.train_step(micro)
            self.step_in_epoch += 1
            self.global_step += 1
            if self.progress and (self.step_in_epoch % 25 == 0 or
                                  self.step_in_epoch == self.steps_per_epoch):
                bar.set_postfix(_train_postfix(self.epoch_sums + device_sums.cpu(),
                                               self.scheduler.get_last_lr()[0]))
            if cfg.stop_after_steps is not None and self.global_step >= cfg.stop_after_steps:
                bar.close()
                return False
            if cfg.checkpoint_every and self.global_step % cfg.checkpoint_every == 0 \
                    and self.step_in_epoch < self.steps_per_epoch:
                self.epoch_sums += device_sums.cpu()
                device_sums.zero_()
                self.save("last.pt")
        self.epoch_sums += device_sums.cpu()
        return True

    @torch.no_grad()
    def evaluate(self, dataset: Dataset | None = None) -> dict[str, float]:
        """Loss terms and the full metric set on ``dataset`` (default: the test split).

        Each process evaluates its shard; the sums are all-reduced, so every process gets
        the exact values of the whole split. The forward pass runs in fp32 (no autocast),
        as ``evacamel evaluate`` does, so a checkpoint's recorded metrics are the ones that
        command reports.
        """
        dataset = self.data.test_set if dataset is None else dataset
        model = self.raw_model
        model.eval()
        acc = MetricAccumulator(device=self.device)
        loss_sums = torch.zeros(len(LOSS_TERMS) + 1, dtype=torch.float64, device=self.device)
        sampler = ShardSampler(len(dataset), self.dist.rank, self.dist.world_size)
        loader = self._loader(dataset, sampler, self.cfg.seed)
        for batch in _progress(loader, self.progress, desc="  test", unit="batch", leave=False):
            x, mask, depth = self.data.eval_transform(self._to_device(batch))
            mask_logits, depth_pred = self._forward(model, x, amp=False)
            terms = self.loss_fn(mask_logits, depth_pred, mask, depth)
            acc.update(mask_logits, depth_pred, mask, depth)
            n = x.shape[0]
            loss_sums[0] += n
            loss_sums[1:] += n * torch.stack([terms.total, terms.bce, terms.dssim, terms.l1]).double()
        all_reduce_sum(acc.state)
        all_reduce_sum(loss_sums)
        losses = _mean_terms(loss_sums.cpu())
        return {**{f"test_{k}": v for k, v in losses.items()}, **acc.compute()}

    # -- the whole run -----------------------------------------------------------------------

    def fit(self) -> list[dict[str, float]]:
        """Train to ``cfg.epochs`` (from where a resumed run stopped); returns the history.

        Per epoch: train, evaluate on the test split, append a history row, save
        ``last.pt`` (and ``best.pt`` if ``best_metric`` improved), write the history.
        """
        cfg = self.cfg
        if self.dist.is_main:
            out = cfg.run_dir()
            out.mkdir(parents=True, exist_ok=True)
            atomic_write(out / "config.json", json.dumps(cfg.as_dict(), indent=2).encode())
        while self.epoch < cfg.epochs:
            t0 = time.perf_counter()
            samples = (self.steps_per_epoch - self.step_in_epoch) * cfg.batch_size
            if not self.train_epoch():
                return self.history  # "interrupted": nothing saved since the last checkpoint
            train_seconds = time.perf_counter() - t0
            sums = all_reduce_sum(self.epoch_sums.clone().to(self.device)).cpu()
            metrics = self.evaluate()
            row = {"epoch": self.epoch + 1, "step": self.global_step,
                   "lr": self.scheduler.get_last_lr()[0],
                   **{f"train_{k}": v for k, v in _mean_terms(sums).items()},
                   **metrics,
                   "train_seconds": train_seconds,
                   "train_samples_per_s": samples / max(train_seconds, 1e-9),
                   "seconds": time.perf_counter() - t0}
            self.history.append(row)
            if self.progress and getattr(self, "_bar", None) is not None:
                self._bar.set_postfix({**_train_postfix(sums, row["lr"]),
                                       "mask_iou": f"{row['mask_iou']:.3f}",
                                       "depth_ssim": f"{row['depth_ssim']:.3f}"})
                self._bar.close()
            if self.verbose:
                print(_epoch_line(row, cfg.epochs), flush=True)
            improved = self._update_best(row)
            self.epoch += 1
            self.step_in_epoch = 0
            self.epoch_sums.zero_()
            self.save("last.pt")
            if improved:
                self.save("best.pt", copy_of="last.pt")
            self.write_history()
        return self.history

    def _update_best(self, row: dict[str, float]) -> bool:
        value = row[self.cfg.best_metric]
        best = self.best["value"]
        better = best is None or (value > best if METRIC_DIRECTION[self.cfg.best_metric] == "max"
                                  else value < best)
        if better and not math.isnan(value):
            self.best.update(value=float(value), epoch=int(row["epoch"]))
            return True
        return False

    # -- files -------------------------------------------------------------------------------

    def write_history(self) -> None:
        """``history.csv`` and ``history.json`` in the run folder (rank 0; atomic)."""
        if not self.dist.is_main or not self.history:
            return
        out = self.cfg.run_dir()
        atomic_write(out / "history.json", json.dumps(
            {"config": self.cfg.as_dict(), "best": self.best, "epochs": self.history},
            indent=2).encode())
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(self.history[0]))
        writer.writeheader()
        writer.writerows(self.history)
        atomic_write(out / "history.csv", buf.getvalue().encode())

    def state_dict(self) -> dict[str, Any]:
        """Everything to continue exactly (tensors and primitives only: ``weights_only``)."""
        return {
            "format": CHECKPOINT_FORMAT,
            "format_version": 1,
            "config": self.cfg.as_dict(),
            "model_config": {"width": self.cfg.width, "in_channels": 6,
                             "input_size": self.cfg.input_size,
                             "output_size": self.cfg.input_size // 2},
            "normalization": {"mean": list(self.data.mean), "std": list(self.data.std)},
            "model": {k: v.detach().cpu().contiguous() for k, v in
                      self.raw_model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "global_step": self.global_step,
            "epoch_sums": self.epoch_sums.clone(),
            "data_order": {"rule": "torch.randperm(n, Generator().manual_seed(seed + epoch))",
                           "seed": self.cfg.seed, "epoch": self.epoch,
                           "start_step": self.step_in_epoch, "global_batch": self.cfg.batch_size},
            "history": self.history,
            "best": dict(self.best),
            "rng": rng_state(),
            "metrics": self.history[-1] if self.history else {},
        }

    def save(self, name: str, copy_of: str | None = None) -> Path | None:
        """Write checkpoint ``name`` into the run folder atomically (rank 0 only).

        ``copy_of``: copy that existing checkpoint instead of serialising again.
        """
        if not self.dist.is_main:
            return None
        path = self.cfg.run_dir() / name
        if copy_of is not None:
            tmp = path.with_name(f".{name}.copy.tmp")
            shutil.copyfile(self.cfg.run_dir() / copy_of, tmp)
            os.replace(tmp, path)
            return path
        return save_checkpoint(self.state_dict(), path)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a :meth:`state_dict` (the RNG states are restored when training resumes)."""
        self.raw_model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.epoch = int(state["epoch"])
        self.step_in_epoch = int(state["step_in_epoch"])
        self.global_step = int(state["global_step"])
        self.epoch_sums = state["epoch_sums"].clone()
        self.history = list(state["history"])
        self.best = dict(state["best"])
        self._rng_to_restore = state["rng"]

    @classmethod
    def resume(cls, checkpoint: str | os.PathLike, data: TrainData | None = None, *,
               out: str | None = None, epochs: int | None = None,
               stop_after_steps: int | None = None, changes: dict[str, Any] | None = None,
               **kwargs: Any) -> "Trainer":
        """A Trainer that continues the run saved in ``checkpoint`` exactly.

        The configuration is the checkpoint's; ``out`` may move the run folder (a
        Drive folder mounted elsewhere), ``stop_after_steps`` may stop it again, and
        ``changes`` may set the fields of :data:`RESUME_CAN_CHANGE` (where the data is,
        the device, workers, checkpoint interval, speed options: none changes the
        result on a CPU). Raises ValueError if ``epochs`` or any other field differs
        (the schedule and the result depend on them).
        """
        state = load_checkpoint(checkpoint)
        if state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{checkpoint}: not an evacamel training checkpoint")
        saved = dict(state["config"])
        if epochs is not None and epochs != saved["epochs"]:
            raise ValueError(f"{checkpoint}: the run was configured for {saved['epochs']} epochs; "
                             f"resuming with {epochs} would change its schedule")
        saved["out"] = str(out) if out is not None else (saved["out"] or
                                                         str(Path(checkpoint).resolve().parent))
        saved["stop_after_steps"] = stop_after_steps
        changes = dict(changes or {})
        refused = sorted(k for k, v in changes.items()
                         if k not in RESUME_CAN_CHANGE and v != saved.get(k))
        if refused:
            raise ValueError(f"{checkpoint}: cannot change {', '.join(refused)} when resuming "
                             f"(the run was configured with "
                             f"{', '.join(f'{k}={saved.get(k)!r}' for k in refused)}); "
                             f"start a new run instead")
        saved.update({k: v for k, v in changes.items() if k in RESUME_CAN_CHANGE})
        trainer = cls(TrainConfig(**saved), data, **kwargs)
        trainer.load_state_dict(state)
        return trainer


# ----------------------------------------------------------------------------------------
# helpers: progress bars and log lines
# ----------------------------------------------------------------------------------------


def _progress(iterable: Iterable, enabled: bool, **kwargs: Any) -> Any:
    from evacamel.colab import progress_bar

    return progress_bar(iterable, disable=not enabled, dynamic_ncols=True, **kwargs)


def _mean_terms(sums: torch.Tensor) -> dict[str, float]:
    n = float(sums[0])
    return {k: float(sums[i + 1]) / n if n else float("nan") for i, k in enumerate(LOSS_TERMS)}


def _train_postfix(sums: torch.Tensor, lr: float) -> dict[str, str]:
    m = _mean_terms(sums)
    return {"loss": f"{m['loss']:.3f}", "bce": f"{m['bce']:.4f}", "dssim": f"{m['dssim']:.4f}",
            "l1": f"{m['l1']:.4f}", "lr": f"{lr:.2e}"}


def _epoch_line(row: dict[str, float], epochs: int) -> str:
    return (f"epoch {row['epoch']}/{epochs}  train loss {row['train_loss']:.3f} "
            f"(bce {row['train_bce']:.4f} dssim {row['train_dssim']:.4f} l1 {row['train_l1']:.4f})"
            f"  test: mask_iou {row['mask_iou']:.4f} mask_dice {row['mask_dice']:.4f} "
            f"mask_accuracy {row['mask_accuracy']:.4f} depth_ssim {row['depth_ssim']:.4f} "
            f"depth_rmse_m {row['depth_rmse_m']:.2f} depth_absrel {row['depth_absrel']:.4f} "
            f"depth_delta1 {row['depth_delta1']:.4f}  ({row['train_samples_per_s']:.0f} samples/s)")


def train(profile: str | Profile | None = None, *, resume: str | os.PathLike | None = None,
          train_data: TrainData | None = None, progress: bool = True, verbose: bool = True,
          **overrides: Any) -> Trainer:
    """Train a profile's run (or resume one) and return the finished :class:`Trainer`.

    ``overrides`` are :class:`TrainConfig` fields (``epochs=5``, ``lr=3e-3``,
    ``out=...``, ``data="path/to/dataset"``); ``train_data`` is already-built
    :class:`TrainData` (tests, notebooks), else it is built from the config.
    """
    data = train_data
    if resume is not None:
        trainer = Trainer.resume(resume, data, out=overrides.get("out"),
                                 epochs=overrides.get("epochs"),
                                 stop_after_steps=overrides.get("stop_after_steps"),
                                 changes={k: v for k, v in overrides.items()
                                          if k not in ("out", "epochs", "stop_after_steps")},
                                 progress=progress, verbose=verbose)
    else:
        trainer = Trainer(TrainConfig.from_profile(profile, **overrides), data,
                          progress=progress, verbose=verbose)
    trainer.fit()
    return trainer
