"""What a training run takes from the data pipeline: :class:`TrainData` and its transforms.

Made by :func:`evacamel.loading.prepare.training_data` (from files, or rendered on the
device: :mod:`evacamel.loading.render`); the :class:`~evacamel.train.Trainer` only takes it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from evacamel.loading.transforms import EvalTransform, TrainTransform, normalization_from_stats

__all__ = ["TrainData", "make_transforms", "AUGMENTATIONS", "BatchTransform"]

BatchTransform = Callable[[dict[str, torch.Tensor]], tuple[torch.Tensor, ...]]

AUGMENTATIONS = ("auto", "full", "flip", "off")
"""Training augmentation: ``full`` (flips and colour jitter), ``flip`` (flips only),
``off``; ``auto`` is ``full`` on CUDA and ``flip`` on CPU, where kornia's colour jitter
costs more than a training step."""


@dataclass(frozen=True)
class TrainData:
    """What the Trainer needs from the data pipeline.

    ``train_set``/``test_set`` yield sample dicts (``image`` uint8 6 x S x S, ``mask``
    uint8 1 x s x s, ``depth`` uint16 1 x s x s; ARCHITECTURE.md "Batches"); the
    transforms turn a batch on the device into ``(x, mask, depth)`` float32 (``x``
    normalised ``B x 6 x S x S``, ``mask`` and ``depth`` ``B x 1 x s x s`` in [0, 1]);
    ``mean`` and ``std`` (6 floats each, bg RGB then fg_bg RGB) are the input
    normalisation, stored in checkpoints; ``collate_fn`` makes a batch dict for a
    DataLoader over ``train_set`` (``None``: PyTorch's default).
    """

    train_set: Dataset
    test_set: Dataset
    train_transform: BatchTransform
    eval_transform: BatchTransform
    mean: list[float]
    std: list[float]
    collate_fn: Callable | None = None

    def to(self, device: torch.device | str) -> "TrainData":
        """The same data with transforms that are modules moved to ``device``."""
        moved = {name: getattr(self, name).to(device)
                 for name in ("train_transform", "eval_transform")
                 if isinstance(getattr(self, name), nn.Module)}
        return dataclasses.replace(self, **moved) if moved else self


def _train_transform(augment: str, stats: dict[str, Any], device: torch.device) -> EvalTransform:
    if augment not in AUGMENTATIONS:
        raise ValueError(f"augment must be one of {', '.join(AUGMENTATIONS)}, not {augment!r}")
    if augment == "auto":
        augment = "full" if device.type == "cuda" else "flip"
    if augment == "full":
        return TrainTransform(stats)
    if augment == "flip":
        return TrainTransform(stats, jitter_p=0.0)
    return EvalTransform(stats)


def make_transforms(stats: dict[str, Any], augment: str, device: torch.device
                    ) -> tuple[BatchTransform, BatchTransform, list[float], list[float]]:
    """``(train_transform, eval_transform, mean, std)`` on ``device`` for training
    statistics ``stats`` (:func:`~evacamel.loading.stats.compute_stats`) and ``augment``
    (one of :data:`AUGMENTATIONS`)."""
    mean, std = normalization_from_stats(stats)
    return (_train_transform(augment, stats, device).to(device), EvalTransform(stats).to(device),
            mean.flatten().tolist(), std.flatten().tolist())
