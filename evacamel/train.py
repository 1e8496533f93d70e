"""Training: a Trainer one can read top to bottom.

::

    cfg = TrainConfig.from_profile("quick", epochs=5, lr=3e-3)
    data = training_data(cfg.data_profile())  # evacamel.loading.prepare: dataset, cache, stats
    history = Trainer(cfg, data).fit()        # or: evacamel train --profile quick --epochs 5

The Trainer takes its data; it never makes a dataset (:func:`train` and the command do
that first). The configuration is frozen: derive a variant with ``dataclasses.replace``;
``cfg.steps_per_epoch(len(data.train_set))`` says how long an epoch is before training.

What one step does (:meth:`Trainer.train_step`)::

    uint8 batch --(pinned, non_blocking)--> device --transform--> x, mask, depth (float32)
    x (channels_last) --model under autocast (bf16 on CUDA)--> logits, depth
    loss = 100 BCE + 100 DSSIM + 0.1 L1 (fp32) --backward (grad scaler for fp16)--> step

The speed techniques, each a :class:`TrainConfig` field:

* ``amp``: bf16 autocast on CUDA (fp16 with a gradient scaler where bf16 is missing);
  fp32 on CPU. Losses and metrics are always computed in fp32, and evaluation
  (:mod:`evacamel.evaluate`, the one loop) runs the model in fp32.
* ``channels_last``: NHWC memory layout on CUDA, what tensor cores want for convs.
* cudnn autotuning (``torch.backends.cudnn.benchmark``) on CUDA: fixed input sizes.
* ``compile``: ``torch.compile`` (off by default: it takes a minute to compile).
* Batches travel as uint8 (4x less than float32) in pinned memory, copied with
  ``non_blocking=True``, and become floats on the device (:mod:`evacamel.loading.transforms`).

Checkpoints (:mod:`evacamel.checkpoint`): ``last.pt`` every ``checkpoint_every`` steps
and at the end of each epoch, ``best.pt`` when the one declared ``best_metric``
improves. Each holds the model, optimiser, scheduler, grad scaler, every RNG state, the
epoch, the step within it, and the data order (a permutation drawn from
``seed + epoch``, see :class:`evacamel.distributed.EpochSampler`), so a run resumed from
it (:meth:`Trainer.resume`) ends with the same weights as a run never interrupted. Each
also holds the model config and the input normalisation, so prediction needs nothing
else (:mod:`evacamel.predict`). ``fit(on_step=stop_after(n))`` stops after step ``n``
without saving, as a disconnect would (tests and demonstrations of resume).

Multi-GPU: ``torchrun --nproc_per_node=N -m evacamel train ...``; each process takes
its slice of every global batch, gradients are averaged by DistributedDataParallel,
metrics are all-reduced, and rank 0 alone shows progress and writes files.

The run folder (``paths.run_dir(profile)`` or ``out``) holds ``config.json``,
``history.csv``, ``history.json``, ``last.pt`` and ``best.pt``.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import io
import json
import math
import os
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from evacamel import paths
from evacamel.checkpoint import (check_weights, copy_checkpoint, load_checkpoint, load_weights,
                                 rng_state, save_checkpoint, set_rng_state)
from evacamel.dataset.atomic import atomic_write
from evacamel.distributed import (DistInfo, EpochSampler, all_reduce_sum, barrier,
                                  init_distributed, resolve_device)
from evacamel.evaluate import LOSS_TERMS, evaluate, loss_sums, mean_losses
from evacamel.footprint import (MemoryFit, choose_micro_batch, cuda_step_peak, footprint,
                                memory_budget, random_batch)
from evacamel.loading.prepare import AUGMENTATIONS, TrainData, training_data
from evacamel.loading.render import loader_options
from evacamel.losses import CamelLoss, LossTerms
from evacamel.metrics import METRIC_DIRECTION
from evacamel.model import OUTPUT_STRIDES, CamelUNet, split_outputs
from evacamel.profiles import Profile, get_profile

__all__ = ["TrainConfig", "Trainer", "train", "resume_config", "read_training_checkpoint",
           "stop_after", "make_scheduler", "resolve_amp", "autocast", "CHECKPOINT_FORMAT",
           "RESUME_CAN_CHANGE"]

CHECKPOINT_FORMAT = "evacamel-checkpoint"

StepCallback = Callable[["Trainer"], Any]
"""Called after each optimiser step; a true result stops training at once, unsaved."""


# ----------------------------------------------------------------------------------------
# configuration
# ----------------------------------------------------------------------------------------


_CHOICES = {"optimizer": ("adam", "adamw"), "schedule": ("onecycle", "cosine", "constant"),
            "amp": ("auto", "bf16", "fp16", "off"), "augment": AUGMENTATIONS,
            "channels_last": ("auto", "on", "off"), "best_metric": tuple(METRIC_DIRECTION)}


@dataclass(frozen=True)
class TrainConfig:
    """Everything a run depends on. :meth:`from_profile` fills the sizes from a profile.

    Frozen: ``dataclasses.replace(cfg, epochs=5)`` makes a variant.
    """

    profile: str = "quick"
    # sizes (from the profile unless overridden)
    epochs: int = 3
    batch_size: int = 32
    """Samples per optimiser step over all processes (the global batch)."""
    lr: float = 2e-3
    width: int = 16
    input_size: int = 64
    output_stride: int = 2
    """Input side over output side (:data:`evacamel.model.OUTPUT_STRIDES`): 2 as the seed, 1
    predicts at the input's side."""
    in_channels: int = 6
    """Model input channels: 6 (bg RGB, fg_bg RGB), or 3 for a monocular model whose data
    transforms pass the composite only (:mod:`evacamel.monodepth`)."""
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
    """Fraction of all steps spent warming up, in [0, 1)."""
    accum_steps: int | None = None
    """Micro-batches per optimiser step and process (gradient accumulation). ``None``
    (automatic): 1 on a CPU; on CUDA the fewest that keep a step's peak memory within
    the device's free memory (:func:`evacamel.footprint.choose_micro_batch`), so the
    global batch stays ``batch_size`` on any GPU."""
    # loss constants: the seed's 10 BCE + 100 DSSIM + 0.1 L1, except the mask's weight
    mask_weight: float = 100.0
    """BCE weight. The seed used 10; then the DSSIM term dominates the shared features and a
    short run learns no mask at all (quick profile data, 12 epochs at lr 2e-3: test IoU
    0.00 with 10, 0.54 with 100; it predicts "no camel" everywhere and still scores 97.6%
    pixel accuracy), so the trainer weights BCE like DSSIM. ``10`` restores the seed's."""
    dssim_weight: float = 100.0
    l1_weight: float = 0.1
    dice_weight: float = 0.0
    """Weight of the mask's Dice loss (:func:`evacamel.losses.dice_loss`; not the seed's)."""
    augment: str = "auto"
    """Training augmentation (:data:`evacamel.loading.prepare.AUGMENTATIONS`): ``full``
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
    """The one validation metric that picks ``best.pt`` (see
    :data:`evacamel.metrics.METRIC_DIRECTION`)."""
    data: str | None = None
    """Dataset folder (default: the profile's, built if missing)."""
    out: str | None = None
    """Run folder (default: ``paths.run_dir(profile)``), e.g. on a mounted Google Drive."""

    @classmethod
    def from_profile(cls, profile: str | Profile | None = None, **overrides: Any) -> "TrainConfig":
        """The profile's sizes and schedule, then ``overrides`` (``None`` values are ignored)."""
        p = get_profile(profile)
        values = dict(profile=p.name, epochs=p.epochs, batch_size=p.batch_size, lr=p.lr,
                      width=p.width, input_size=p.input_size, output_stride=p.output_stride,
                      dice_weight=p.dice_weight, num_workers=p.num_workers,
                      seed=p.seed)
        for key, value in overrides.items():
            if key not in {f.name for f in dataclasses.fields(cls)}:
                raise ValueError(f"unknown training option {key!r}")
            if value is not None:
                values[key] = value
        return cls(**values)

    def __post_init__(self) -> None:
        for name, choices in _CHOICES.items():
            if getattr(self, name) not in choices:
                raise ValueError(f"{name} must be one of {', '.join(choices)}, "
                                 f"not {getattr(self, name)!r}")
        if self.input_size < 32 or self.input_size % 32:
            raise ValueError(f"input_size {self.input_size} must be a positive multiple of 32")
        accum = 1 if self.accum_steps is None else self.accum_steps  # None: automatic
        if min(self.epochs, self.batch_size, accum, self.width) < 1 or self.lr <= 0:
            raise ValueError("epochs, batch_size, accum_steps and width must be >= 1 and lr > 0")
        if self.output_stride not in OUTPUT_STRIDES:
            raise ValueError(f"output_stride must be 1 or 2, not {self.output_stride!r}")
        if self.in_channels not in (3, 6):
            raise ValueError(f"in_channels must be 6 (bg + fg_bg) or 3 (fg_bg), not {self.in_channels}")
        if not 0.0 <= self.warmup < 1.0:
            raise ValueError(f"warmup is a fraction of all steps in [0, 1), not {self.warmup}")
        if min(self.checkpoint_every, self.num_workers) < 0 or \
                min(self.mask_weight, self.dssim_weight, self.l1_weight, self.dice_weight,
                    self.weight_decay) < 0:
            raise ValueError("checkpoint_every, num_workers, loss weights and weight_decay "
                             "must not be negative")

    def steps_per_epoch(self, train_samples: int) -> int:
        """Optimiser steps in one epoch over ``train_samples`` samples (the remainder of a
        global batch is dropped, see :class:`~evacamel.distributed.EpochSampler`)."""
        if train_samples < self.batch_size:
            raise ValueError(f"the training set has {train_samples} samples, fewer than one "
                             f"batch of {self.batch_size}")
        return train_samples // self.batch_size

    def total_steps(self, train_samples: int) -> int:
        """Optimiser steps of the whole run."""
        return self.epochs * self.steps_per_epoch(train_samples)

    def data_profile(self) -> Profile:
        """The profile with this run's input size, for the data pipeline (the dataset
        itself, its seed included, is the profile's)."""
        return get_profile(self.profile).replace(input_size=self.input_size,
                                                 output_stride=self.output_stride)

    def run_dir(self) -> Path:
        return Path(self.out) if self.out else paths.run_dir(self.profile)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


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


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig,
                   total_steps: int) -> torch.optim.lr_scheduler.LRScheduler:
    """The learning-rate schedule ``cfg.schedule`` over ``total_steps`` optimiser steps."""
    total = max(1, total_steps)
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=cfg.lr, total_steps=total, pct_start=cfg.warmup,
            anneal_strategy="cos", cycle_momentum=False, div_factor=25.0, final_div_factor=1e3)
    warm = max(1, int(cfg.warmup * total))
    if cfg.schedule == "cosine":
        def factor(step: int) -> float:
            if step < warm:
                return (step + 1) / warm
            return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))
    else:
        def factor(step: int) -> float:
            return 1.0
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def stop_after(steps: int) -> StepCallback:
    """An ``on_step`` callback for :meth:`Trainer.fit` that stops after optimiser step
    ``steps`` in total, without saving, as a crash or a disconnect would."""
    return lambda trainer: trainer.global_step >= steps


# ----------------------------------------------------------------------------------------
# the trainer
# ----------------------------------------------------------------------------------------


class Trainer:
    """Trains a :class:`CamelUNet` as :class:`TrainConfig` says; see the module docstring.

    Args:
        cfg: the run's configuration.
        data: datasets and transforms (:func:`evacamel.loading.prepare.training_data`);
            the transforms are moved to the run's device.
        dist_info: this process in a multi-process run (default: from the environment).
        progress: show tqdm progress bars (rank 0 only).
        verbose: print one summary line per epoch (rank 0 only).
    """

    def __init__(self, cfg: TrainConfig, data: TrainData, *, dist_info: DistInfo | None = None,
                 progress: bool = True, verbose: bool = True) -> None:
        self.cfg = cfg
        self.dist = dist_info or init_distributed()
        self.progress = progress and self.dist.is_main
        self.verbose = verbose and self.dist.is_main
        self.device = resolve_device(cfg.device, self.dist)
        self.amp_dtype = resolve_amp(cfg.amp, self.device)
        self.channels_last = cfg.channels_last == "on" or (
            cfg.channels_last == "auto" and self.device.type == "cuda")
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed sizes: let cudnn pick the fastest convs
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        if len(data.test_set) == 0:
            raise ValueError("the test split is empty: there is nothing to measure the run on")
        self.data = data.to(self.device)
        self.steps_per_epoch = cfg.steps_per_epoch(len(data.train_set))
        self.total_steps = cfg.total_steps(len(data.train_set))

        # Seed first, so the initial weights depend on cfg.seed only (the same on every rank).
        torch.manual_seed(cfg.seed)
        self.raw_model, self.model = self._build_model()  # raw_model: the weights we save
        self.loss_fn = CamelLoss(cfg.mask_weight, cfg.dssim_weight, cfg.l1_weight,
                                 dice_weight=cfg.dice_weight)

        # data order: one global batch per optimiser step, split over processes and micro-batches
        self.memory_fit: MemoryFit | None = None  # how the micro-batch was chosen (CUDA, auto)
        self.accum_steps = self._accum_steps()
        self.micro_batch = cfg.batch_size // (self.dist.world_size * self.accum_steps)
        opt_cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
        self.optimizer = opt_cls(self.raw_model.parameters(), lr=cfg.lr,
                                 weight_decay=cfg.weight_decay)
        self.scheduler = make_scheduler(self.optimizer, cfg, self.total_steps)
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
        self._bar: Any = None

    def _build_model(self) -> tuple[nn.Module, nn.Module]:
        """``(raw_model, model)``: the U-Net, and what trains it (compiled, DDP-wrapped)."""
        raw_model = CamelUNet(width=self.cfg.width, in_channels=self.cfg.in_channels,
                              output_stride=self.cfg.output_stride).to(self.device)
        if self.channels_last:
            raw_model = raw_model.to(memory_format=torch.channels_last)
        model: nn.Module = torch.compile(raw_model) if self.cfg.compile else raw_model
        if self.dist.enabled:
            model = nn.parallel.DistributedDataParallel(
                model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        return raw_model, model

    def _accum_steps(self) -> int:
        """``cfg.accum_steps``, or when automatic: 1 on a CPU, and on CUDA the fewest
        micro-batches whose step fits the free memory (the most any process needs)."""
        cfg, world = self.cfg, self.dist.world_size
        accum = cfg.accum_steps or 1
        if cfg.accum_steps is None and self.device.type == "cuda" and cfg.batch_size % world == 0:
            self.memory_fit = choose_micro_batch(cfg.batch_size // world, self._memory_probe(),
                                                 memory_budget(self.device))
            agreed = torch.tensor([self.memory_fit.accum_steps], device=self.device)
            if self.dist.enabled:  # every rank must cut the global batch the same way
                torch.distributed.all_reduce(agreed, op=torch.distributed.ReduceOp.MAX)
            accum = int(agreed.item())
        if cfg.batch_size % (world * accum):
            raise ValueError(f"batch size {cfg.batch_size} is not divisible by world size x "
                             f"accumulation steps = {world} x {accum}")
        return accum

    def _memory_probe(self) -> Callable[[int], int]:
        """Peak bytes of one forward and backward at a micro-batch, on a copy of the model
        (the run's weights, BatchNorm statistics and random generators stay untouched)."""
        model = copy.deepcopy(self.raw_model)
        generator = torch.Generator().manual_seed(0)

        def step(micro_batch: int) -> None:
            batch = random_batch(micro_batch, self.cfg.input_size, generator, self.cfg.output_stride)
            x, mask, depth = self.data.eval_transform(self._to_device(batch))
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(self.device, self.amp_dtype):
                out = model(x)
            self.loss_fn(*split_outputs(out.float()), mask, depth).total.backward()
            model.zero_grad(set_to_none=True)

        return lambda micro_batch: cuda_step_peak(step, micro_batch, self.device)

    @property
    def finished(self) -> bool:
        """True when every epoch of the run is done (False after an ``on_step`` stop)."""
        return self.epoch >= self.cfg.epochs

    # -- data ------------------------------------------------------------------------------

    def _loader(self, sampler: EpochSampler) -> DataLoader:
        """A loader over the training set in ``sampler``'s order (a generator of its own, so
        making it never touches the global RNG that augmentation draws from)."""
        workers, pin = loader_options(self.data.train_set, self.cfg.num_workers, self.device)
        return DataLoader(self.data.train_set, batch_size=self.micro_batch, sampler=sampler,
                          num_workers=workers, pin_memory=pin,
                          collate_fn=self.data.collate_fn, drop_last=False,
                          persistent_workers=False, prefetch_factor=4 if workers else None,
                          generator=torch.Generator().manual_seed(self.cfg.seed + self.epoch))

    def _to_device(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: v.to(self.device, non_blocking=True) if isinstance(v, torch.Tensor) else v
                for k, v in batch.items()}

    def _forward(self, x: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """The training forward pass: channels_last and autocast as configured,
        fp32 out (chapter 05 prints it)."""
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(self.device, self.amp_dtype):
            out = self.model(x)
        return split_outputs(out.float())

    # -- one step ----------------------------------------------------------------------------

    def train_step(self, micro_batches: list[dict[str, torch.Tensor]]
                   ) -> torch.Tensor:
        """One optimiser step over this process's micro-batches of one batch.

        Returns the summed loss terms
        ``[n, n*total, n*bce, n*dssim, n*l1, n*dice]`` (float64, on the
        device: reading them would wait for the GPU, so the caller does it
        rarely). Chapter 05 prints this method: keep its lines
        under 80 characters.
        """
        self.model.train()
        sums = torch.zeros(len(LOSS_TERMS) + 1, dtype=torch.float64,
                           device=self.device)
        for i, batch in enumerate(micro_batches):
            x, mask, depth = self.data.train_transform(self._to_device(batch))
            last = i == len(micro_batches) - 1
            # several processes: average the gradients after the last one only
            sync = (self.model.no_sync() if self.dist.enabled and not last
                    else nullcontext())
            with sync:
                mask_logits, depth_pred = self._forward(x)  # autocast inside
                terms: LossTerms = self.loss_fn(mask_logits, depth_pred,
                                                mask, depth)
                loss = terms.total / len(micro_batches)
                self.scaler.scale(loss).backward()  # scaled for fp16 only
            sums += loss_sums(terms, x.shape[0])
        self.scaler.step(self.optimizer)  # unscales; skips a step on inf/NaN
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)  # ready for the next one
        self.scheduler.step()
        return sums

    # -- one epoch ---------------------------------------------------------------------------

    def train_epoch(self, on_step: StepCallback | None = None) -> bool:
        """Train the rest of ``self.epoch``; False if ``on_step`` stopped it early."""
        cfg = self.cfg
        sampler = EpochSampler(len(self.data.train_set), cfg.batch_size, seed=cfg.seed,
                               epoch=self.epoch, start_step=self.step_in_epoch,
                               rank=self.dist.rank, world_size=self.dist.world_size,
                               accum_steps=self.accum_steps)
        loader = iter(self._loader(sampler))
        if self._rng_to_restore is not None:  # resuming: the generators as they were saved
            set_rng_state(self._rng_to_restore)
            self._rng_to_restore = None
        self._bar = bar = _progress(range(self.step_in_epoch, self.steps_per_epoch), self.progress,
                                    desc=f"epoch {self.epoch + 1}/{cfg.epochs}", unit="step",
                                    initial=self.step_in_epoch, total=self.steps_per_epoch)
        device_sums = torch.zeros_like(self.epoch_sums, device=self.device)
        for _ in bar:
            micro = [next(loader) for _ in range(self.accum_steps)]
            device_sums += self.train_step(micro)
            self.step_in_epoch += 1
            self.global_step += 1
            if self.progress and (self.step_in_epoch % 25 == 0 or
                                  self.step_in_epoch == self.steps_per_epoch):
                bar.set_postfix(_train_postfix(self.epoch_sums + device_sums.cpu(),
                                               self.scheduler.get_last_lr()[0]))
            if on_step is not None and on_step(self):
                bar.close()
                return False  # as a disconnect: nothing saved since the last checkpoint
            if cfg.checkpoint_every and self.global_step % cfg.checkpoint_every == 0 \
                    and self.step_in_epoch < self.steps_per_epoch:
                self.epoch_sums += device_sums.cpu()
                device_sums.zero_()
                self.save("last.pt")
        self.epoch_sums += device_sums.cpu()
        return True

    def evaluate(self, dataset: Dataset | None = None) -> dict[str, float]:
        """Loss terms (``test_loss`` ...) and the full metric set on ``dataset`` (default:
        the test split), by :func:`evacamel.evaluate.evaluate`, the one evaluation loop.

        Each process evaluates its shard; the sums are all-reduced, so every process gets
        the exact values of the whole split, the ones ``evacamel evaluate`` reports. No
        progress bar: the epoch's line follows (and a notebook gets fewer widget messages).
        """
        result = evaluate(self.raw_model, self.data.test_set if dataset is None else dataset,
                          self.data.eval_transform, batch_size=self.micro_batch,
                          loss_fn=self.loss_fn, rank=self.dist.rank,
                          world_size=self.dist.world_size,
                          collate_fn=self.data.collate_fn, num_workers=self.cfg.num_workers)
        losses = {f"test_{k}": result.pop(k) for k in LOSS_TERMS}
        result.pop("samples")
        return {**losses, **result}

    # -- the whole run -----------------------------------------------------------------------

    def fit(self, on_step: StepCallback | None = None) -> list[dict[str, float]]:
        """Train to ``cfg.epochs`` (from where a resumed run stopped); returns the history.

        Per epoch: train, evaluate on the test split, append a history row, save
        ``last.pt`` (and ``best.pt`` if ``best_metric`` improved), write the history.
        ``on_step(trainer)`` is called after every optimiser step, before any periodic
        checkpoint; a true result stops the run at once, unsaved (e.g. :func:`stop_after`).
        """
        if self.dist.is_main:
            self.cfg.run_dir().mkdir(parents=True, exist_ok=True)
            atomic_write(self.cfg.run_dir() / "config.json",
                         json.dumps(self.cfg.as_dict(), indent=2).encode())
        if self.verbose and not self.finished:
            print(EPOCH_HEADER, flush=True)
        while not self.finished:
            t0 = time.perf_counter()
            samples = (self.steps_per_epoch - self.step_in_epoch) * self.cfg.batch_size
            if not self.train_epoch(on_step):
                return self.history
            train_seconds = time.perf_counter() - t0
            sums = all_reduce_sum(self.epoch_sums.clone().to(self.device)).cpu()
            row = {"epoch": self.epoch + 1, "step": self.global_step,
                   "lr": self.scheduler.get_last_lr()[0],
                   **{f"train_{k}": v for k, v in mean_losses(sums).items()},
                   **self.evaluate(),
                   "train_seconds": train_seconds,
                   "train_samples_per_s": samples / max(train_seconds, 1e-9),
                   "seconds": time.perf_counter() - t0}
            self.history.append(row)
            self._report(row, sums)
            self._end_epoch(row)
        return self.history

    def _report(self, row: dict[str, float], sums: torch.Tensor) -> None:
        """The epoch's numbers on the progress bar and in one printed line (rank 0)."""
        if self.progress and self._bar is not None:
            self._bar.set_postfix({**_train_postfix(sums, row["lr"]),
                                   "mask_iou": f"{row['mask_iou']:.3f}",
                                   "depth_ssim": f"{row['depth_ssim']:.3f}"})
            self._bar.close()
        if self.verbose:
            print(_epoch_line(row, self.cfg.epochs), flush=True)

    def _end_epoch(self, row: dict[str, float]) -> None:
        """Move to the next epoch and save: ``last.pt``, ``best.pt`` if better, the history."""
        improved = self._update_best(row)
        self.epoch += 1
        self.step_in_epoch = 0
        self.epoch_sums.zero_()
        self.save("last.pt")
        if improved and self.dist.is_main:
            copy_checkpoint(self.cfg.run_dir() / "last.pt", self.cfg.run_dir() / "best.pt")
        self.write_history()

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
        columns = list(dict.fromkeys(k for row in self.history for k in row))  # old rows may lack some
        writer = csv.DictWriter(buf, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(self.history)
        atomic_write(out / "history.csv", buf.getvalue().encode())

    def state_dict(self) -> dict[str, Any]:
        """Everything to continue exactly (tensors and primitives only: ``weights_only``)."""
        return {
            "format": CHECKPOINT_FORMAT,
            "format_version": 1,
            "config": self.cfg.as_dict(),
            "model_config": {"width": self.cfg.width, "in_channels": self.cfg.in_channels,
                             "output_stride": self.cfg.output_stride,
                             "input_size": self.cfg.input_size,
                             "output_size": self.cfg.input_size // self.cfg.output_stride},
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

    def save(self, name: str) -> Path | None:
        """Write checkpoint ``name`` into the run folder atomically (rank 0 only)."""
        if not self.dist.is_main:
            return None
        return save_checkpoint(self.state_dict(), self.cfg.run_dir() / name)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a :meth:`state_dict` (the RNG states are restored when training resumes).

        Raises:
            ValueError: the state does not fit this run (missing entries, other shapes).
        """
        try:
            load_weights(self.raw_model, state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            self.scaler.load_state_dict(state["scaler"])
            self.epoch = int(state["epoch"])
            self.step_in_epoch = int(state["step_in_epoch"])
            self.global_step = int(state["global_step"])
            # a run saved before the Dice term has one loss sum fewer: its Dice sum starts at 0
            saved_sums = state["epoch_sums"]
            self.epoch_sums = torch.zeros_like(self.epoch_sums)
            self.epoch_sums[:len(saved_sums)] = saved_sums
            self.history = list(state["history"])
            self.best = dict(state["best"])
            self._rng_to_restore = state["rng"]
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
            raise ValueError(f"its state does not fit this run ({_first_line(exc)})") from exc

    @classmethod
    def resume(cls, checkpoint: str | os.PathLike, data: TrainData, *,
               out: str | os.PathLike | None = None, epochs: int | None = None,
               changes: dict[str, Any] | None = None, **kwargs: Any) -> "Trainer":
        """A Trainer that continues the run saved in ``checkpoint`` exactly.

        The configuration is :func:`resume_config`'s (``out``, ``epochs``, ``changes``
        as there); ``data`` must be that configuration's (``training_data(cfg.data_profile(),
        root=cfg.data, ...)``); ``kwargs`` go to the constructor.
        """
        trainer = cls(resume_config(checkpoint, out=out, epochs=epochs, changes=changes),
                      data, **kwargs)
        trainer.restore(checkpoint)
        return trainer

    def restore(self, checkpoint: str | os.PathLike) -> None:
        """Continue from the state saved in ``checkpoint`` (a run of this configuration,
        see :func:`resume_config`). Raises ValueError naming the file if it does not fit."""
        state = read_training_checkpoint(checkpoint)
        try:
            self.load_state_dict(state)
        except ValueError as exc:
            raise ValueError(f"{checkpoint}: {exc}") from exc


def read_training_checkpoint(checkpoint: str | os.PathLike) -> dict[str, Any]:
    """A checkpoint written by :meth:`Trainer.save`, loaded safely (``weights_only``).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a readable training checkpoint (one line naming the file).
    """
    state = load_checkpoint(checkpoint)
    if state.get("format") != CHECKPOINT_FORMAT or not isinstance(state.get("config"), dict):
        raise ValueError(f"{checkpoint}: not an evacamel training checkpoint")
    return state


_REMOVED_FIELDS = ("stop_after_steps",)
"""Config fields older checkpoints hold that are no longer options (interruption is
``fit(on_step=...)`` now); ignored when resuming."""


def resume_config(checkpoint: str | os.PathLike, *, out: str | os.PathLike | None = None,
                  epochs: int | None = None, changes: dict[str, Any] | None = None) -> TrainConfig:
    """The configuration that continues ``checkpoint``'s run: the saved one, except

    * ``out``: the run folder; by default the checkpoint's own folder (never a folder
      named inside the checkpoint: a downloaded checkpoint does not decide where files go);
    * ``changes``: values for the fields of :data:`RESUME_CAN_CHANGE` (where the data is,
      the device, workers, checkpoint interval, speed options: none changes the result on
      a CPU); other fields given with another value are refused, as is another ``epochs``.

    Raises:
        ValueError: a refused change, or a checkpoint that is not a training checkpoint.
    """
    state = read_training_checkpoint(checkpoint)
    saved = dict(state["config"])
    for name in _REMOVED_FIELDS:
        saved.pop(name, None)
    if epochs is not None and epochs != saved.get("epochs"):
        raise ValueError(f"{checkpoint}: the run was configured for {saved.get('epochs')} epochs; "
                         f"resuming with {epochs} would change its schedule")
    changes = dict(changes or {})
    refused = sorted(k for k, v in changes.items() if k not in RESUME_CAN_CHANGE and v != saved.get(k))
    if refused:
        raise ValueError(f"{checkpoint}: cannot change {', '.join(refused)} when resuming "
                         f"(the run was configured with "
                         f"{', '.join(f'{k}={saved.get(k)!r}' for k in refused)}); "
                         f"start a new run instead")
    saved.update({k: v for k, v in changes.items() if k in RESUME_CAN_CHANGE})
    saved["out"] = str(out) if out is not None else str(Path(checkpoint).resolve().parent)
    try:
        cfg = TrainConfig(**saved)
        with torch.device("meta"):  # shapes only: nothing allocated, before any data is made
            model = CamelUNet(width=cfg.width, in_channels=cfg.in_channels,
                              output_stride=cfg.output_stride)
            check_weights(model.state_dict(), state.get("model"), f"width-{cfg.width} CamelUNet")
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{checkpoint}: cannot continue this run ({_first_line(exc)})") from exc
    return cfg


# ----------------------------------------------------------------------------------------
# helpers: progress bars and log lines
# ----------------------------------------------------------------------------------------


def _first_line(exc: BaseException) -> str:
    """The first line of an error's message (with its type, unless a ValueError)."""
    text = str(exc.args[0] if isinstance(exc, KeyError) and exc.args else exc).strip()
    first = text.splitlines()[0] if text else ""
    return first if isinstance(exc, ValueError) and first else f"{type(exc).__name__}: {first}"


def _progress(steps: range, enabled: bool, **kwargs: Any) -> Any:
    """A progress bar over ``steps`` that refreshes at most ~10 times (and once a second):
    in a notebook each refresh is a few widget messages, and at tqdm's default rate a
    quick-profile cell sent ~2,700, enough for a headless executor (nbval, the book
    build) to lose the cell's last message and fail waiting for it."""
    from evacamel.colab import progress_bar

    return progress_bar(steps, disable=not enabled, dynamic_ncols=True, mininterval=1.0,
                        miniters=max(1, len(steps) // 10), **kwargs)


def _train_postfix(sums: torch.Tensor, lr: float) -> dict[str, str]:
    m = mean_losses(sums)
    return {"loss": f"{m['loss']:.3f}", "bce": f"{m['bce']:.4f}", "dssim": f"{m['dssim']:.4f}",
            "l1": f"{m['l1']:.4f}", "lr": f"{lr:.2e}"}


EPOCH_HEADER = ("epoch    loss    bce  dssim     l1 | test l1    IoU   SSIM delta1"
                "  samples/s")
"""The header of the per-epoch table the trainer prints: the train loss (weighted total)
and its unweighted terms, then the test split's L1, mask IoU, depth SSIM and delta1."""


def _epoch_line(row: dict[str, float], epochs: int) -> str:
    """One row of the per-epoch table (:data:`EPOCH_HEADER`), under 80 characters."""
    return (f"{row['epoch']:>2}/{epochs:<3}{row['train_loss']:>7.2f}{row['train_bce']:>7.4f}"
            f"{row['train_dssim']:>7.4f}{row['train_l1']:>7.4f} | {row['test_l1']:>7.4f}"
            f"{row['mask_iou']:>7.3f}{row['depth_ssim']:>7.3f}{row['depth_delta1']:>7.3f}"
            f"{row['train_samples_per_s']:>11.0f}")


def _training_data(cfg: TrainConfig, dist_info: DistInfo, progress: bool) -> TrainData:
    """The run's data (:func:`~evacamel.loading.prepare.training_data`). With several
    processes rank 0 makes what is missing first; the others wait, then open the files."""
    def prepare(show: bool) -> TrainData:
        return training_data(cfg.data_profile(), root=cfg.data, augment=cfg.augment,
                             device=resolve_device(cfg.device, dist_info), progress=show)

    data = prepare(progress) if dist_info.is_main else None
    barrier()
    return data if data is not None else prepare(False)


def train(profile: str | Profile | None = None, *, resume: str | os.PathLike | None = None,
          train_data: TrainData | None = None, on_step: StepCallback | None = None,
          progress: bool = True, verbose: bool = True, **overrides: Any) -> Trainer:
    """Train a profile's run (or resume one) and return the finished :class:`Trainer`.

    ``overrides`` are :class:`TrainConfig` fields (``epochs=5``, ``lr=3e-3``,
    ``out=...``, ``data="path/to/dataset"``); with ``resume`` (a checkpoint) they are
    :func:`resume_config`'s ``out``, ``epochs`` and ``changes``. ``train_data`` is
    already-built :class:`TrainData` (tests, notebooks); by default the configuration's
    dataset is made, packed and measured if needed
    (:func:`evacamel.loading.prepare.training_data`). ``on_step`` as :meth:`Trainer.fit`.
    """
    dist_info = init_distributed()
    if resume is not None:
        out, epochs = overrides.pop("out", None), overrides.pop("epochs", None)
        cfg = resume_config(resume, out=out, epochs=epochs, changes=overrides)
    else:
        cfg = TrainConfig.from_profile(profile, **overrides)
    data = train_data or _training_data(cfg, dist_info, progress)
    trainer = Trainer(cfg, data, dist_info=dist_info, progress=progress, verbose=verbose)
    if resume is not None:
        trainer.restore(resume)
    if verbose and dist_info.is_main:  # before the long part: what it needs, how long it takes
        run = cfg.data_profile().replace(batch_size=cfg.batch_size, width=cfg.width)
        files = cfg.data or (None if run.data == "render" else paths.dataset_dir(cfg.profile))
        print(footprint(run, root=files,
                        device=trainer.device,
                        train_samples=len(data.train_set), fit=trainer.memory_fit,
                        epochs=cfg.epochs).table(), flush=True)
    trainer.fit(on_step)
    return trainer
