"""Batch transforms on the device: uint8/uint16 batches -> normalised float tensors.

A loader's batch (``ARCHITECTURE.md``) is moved to the device and turned into

* ``x``: float32 ``B x 6 x S x S``, ``(image / 255 - mean) / std`` per channel, with the
  dataset's statistics (``meta.json["stats"]``; bg channels first, then fg_bg);
* ``mask``: float32 ``B x 1 x s x s`` in [0, 1] (fractional at area-resized edges);
* ``depth``: float32 ``B x 1 x s x s`` in [0, 1] (the ``meters_to_target`` target).

The seed used one transform object for both splits and its test inputs were never
normalised. Here there are two classes: :class:`EvalTransform` (never random) and
:class:`TrainTransform` (the same normalisation plus augmentation). Both normalise with
the same statistics; a test checks that they agree when augmentation is off.

Augmentation (:class:`TrainTransform`): a horizontal flip per sample, applied to input,
mask and depth together; colour jitter (kornia ``ColorJitter``) on the images only, with
the *same* random parameters for a sample's bg and fg_bg (they are one scene through one
camera: independent jitter would make the whole frame differ, not just the camel).
Randomness comes from torch's global generator (kornia's) and, for the flips, from an
optional ``generator``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from evacamel.loading.stats import DEFAULT_STATS, read_stats

__all__ = [
    "normalization_from_stats",
    "stats_from_normalization",
    "batch_to_float",
    "normalize",
    "denormalize",
    "hflip_samples",
    "EvalTransform",
    "TrainTransform",
    "load_stats",
]


def load_stats(source: dict[str, Any] | str | os.PathLike | None) -> dict[str, Any]:
    """Statistics from a stats dict, a dataset folder (its ``meta.json``), or ``None``
    (-> :data:`evacamel.loading.stats.DEFAULT_STATS`, the documented fallback)."""
    if source is None:
        return DEFAULT_STATS
    if isinstance(source, (str, os.PathLike)):
        stats = read_stats(Path(source))
        return stats if stats is not None else DEFAULT_STATS
    return source


def normalization_from_stats(stats: dict[str, Any] | None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mean, std)``, float32 ``1 x 6 x 1 x 1`` each: bg RGB then fg_bg RGB."""
    stats = load_stats(stats)
    mean = torch.tensor(stats["bg"]["mean"] + stats["fg_bg"]["mean"], dtype=torch.float32)
    std = torch.tensor(stats["bg"]["std"] + stats["fg_bg"]["std"], dtype=torch.float32)
    if mean.numel() != 6 or std.numel() != 6 or bool((std <= 0).any()):
        raise ValueError(f"statistics need 3 means and 3 positive stds for bg and fg_bg, "
                         f"got mean={mean.tolist()} std={std.tolist()}")
    return mean.view(1, 6, 1, 1), std.view(1, 6, 1, 1)


def stats_from_normalization(mean: Sequence[float], std: Sequence[float]) -> dict[str, Any]:
    """The inverse of :func:`normalization_from_stats`: 6 means and 6 stds (bg RGB, then
    fg_bg RGB, as a checkpoint stores them) -> the statistics dict the transforms take."""
    return {"bg": {"mean": list(mean[:3]), "std": list(std[:3])},
            "fg_bg": {"mean": list(mean[3:]), "std": list(std[3:])}}


def batch_to_float(batch: dict[str, torch.Tensor], device: torch.device | str | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Batch dict -> ``(image, mask, depth)`` float32 in [0, 1] on ``device``.

    ``image`` uint8 ``B x 6 x S x S`` -> /255; ``mask`` uint8 -> /255; ``depth`` uint16
    -> /65535. Copies are non-blocking (pinned batches overlap with compute).
    """
    device = torch.device(device) if device is not None else batch["image"].device
    image = batch["image"].to(device, non_blocking=True).float().div_(255.0)
    mask = batch["mask"].to(device, non_blocking=True).float().div_(255.0)
    depth = batch["depth"].to(device, non_blocking=True)
    if depth.dtype == torch.uint16:
        depth = depth.to(torch.int32)
    depth = depth.float().div_(65535.0)
    return image, mask, depth


def normalize(image: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """``(image - mean) / std`` for float ``B x 6 x H x W`` in [0, 1]."""
    return (image - mean.to(image.device)) / std.to(image.device)


def denormalize(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`normalize` (for showing model inputs), clamped to [0, 1]."""
    return (x * std.to(x.device) + mean.to(x.device)).clamp(0.0, 1.0)


def hflip_samples(flags: torch.Tensor, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Mirror (last axis) the samples where ``flags`` (bool ``B``) is true, in every
    tensor alike, so input and targets stay aligned."""
    out = []
    for t in tensors:
        f = flags.to(t.device).view(-1, *([1] * (t.dim() - 1)))
        out.append(torch.where(f, t.flip(-1), t))
    return tuple(out)


class EvalTransform(nn.Module):
    """Normalise a batch for evaluation: no randomness, ever.

    Args:
        stats: statistics dict (``meta.json["stats"]``), a dataset folder, or ``None``
            for :data:`~evacamel.loading.stats.DEFAULT_STATS`.
        device: where the output goes (default: where the module's buffers are; move
            the module with ``.to(device)``).

    ``forward(batch) -> (x, mask, depth)``: float32 ``B x 6 x S x S`` normalised,
    ``B x 1 x s x s`` in [0, 1], ``B x 1 x s x s`` in [0, 1].
    """

    def __init__(self, stats: dict[str, Any] | str | os.PathLike | None = None, *,
                 device: torch.device | str | None = None):
        super().__init__()
        mean, std = normalization_from_stats(load_stats(stats))
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)
        if device is not None:
            self.to(device)

    def forward(self, batch: dict[str, torch.Tensor]
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        image, mask, depth = batch_to_float(batch, self.mean.device)
        return normalize(image, self.mean, self.std), mask, depth

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """Back from ``x`` to images in [0, 1] (bg, fg_bg), e.g. to show them."""
        return denormalize(x, self.mean, self.std)


class TrainTransform(EvalTransform):
    """:class:`EvalTransform` plus augmentation (on the device, whole batch at once).

    Args:
        stats, device: as :class:`EvalTransform`.
        hflip: probability of mirroring a sample (input, mask and depth together).
        brightness, contrast, saturation, hue: kornia ``ColorJitter`` ranges, applied
            to the images only, with the same parameters for a sample's bg and fg_bg.
        jitter_p: probability of jittering a sample (0 disables jitter).
        generator: optional ``torch.Generator`` for the flips (on the CPU).
    """

    def __init__(self, stats: dict[str, Any] | str | os.PathLike | None = None, *,
                 device: torch.device | str | None = None, hflip: float = 0.5,
                 brightness: float = 0.2, contrast: float = 0.2, saturation: float = 0.2,
                 hue: float = 0.02, jitter_p: float = 0.8,
                 generator: torch.Generator | None = None):
        super().__init__(stats)
        self.hflip = float(hflip)
        self.generator = generator
        self.jitter = None
        if jitter_p > 0 and any(v > 0 for v in (brightness, contrast, saturation, hue)):
            # Imported here: kornia costs about a fifth of torch's import time (measured
            # with ``python -X importtime``) and evaluation and prediction never jitter.
            from kornia.augmentation import ColorJitter

            self.jitter = ColorJitter(brightness, contrast, saturation, hue, p=jitter_p)
        if device is not None:
            self.to(device)

    def forward(self, batch: dict[str, torch.Tensor]
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        image, mask, depth = batch_to_float(batch, self.mean.device)
        if self.hflip > 0:
            flags = torch.rand(image.shape[0], generator=self.generator) < self.hflip
            image, mask, depth = hflip_samples(flags, image, mask, depth)
        if self.jitter is not None:
            bg = self.jitter(image[:, :3])
            fg_bg = self.jitter(image[:, 3:], params=self.jitter._params)
            image = torch.cat([bg, fg_bg], dim=1)
        return normalize(image, self.mean, self.std), mask, depth
