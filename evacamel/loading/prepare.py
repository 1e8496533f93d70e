"""The data a training run needs, made ready: dataset, packed cache, statistics, transforms.

::

    data = training_data("quick")                  # makes data/quick if missing, packs it
    trainer = Trainer(TrainConfig.from_profile("quick"), data)

:func:`training_data` is the one place that may write a dataset for training: it makes
the profile's dataset if it is missing (a complete dataset named by ``root`` is used as
it is), packs it at the profile's input size, computes the training split's statistics,
and returns both splits with the device transforms normalised by those statistics. The
:class:`~evacamel.train.Trainer` only takes the result.

It is one process's work: in a multi-process run (``torchrun``) :func:`evacamel.train.train`
lets rank 0 call it first and the other processes after, when the files exist.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from evacamel.dataset.format import is_complete
from evacamel.dataset.write import ensure_dataset
from evacamel.loading.loader import collate_for, open_dataset
from evacamel.loading.pack import ensure_packed
from evacamel.loading.stats import ensure_stats
from evacamel.loading.transforms import EvalTransform, TrainTransform, normalization_from_stats
from evacamel.profiles import Profile, get_profile

__all__ = ["TrainData", "training_data", "make_transforms", "AUGMENTATIONS"]

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


def _prepare_files(profile: Profile, root: Path | None, progress: bool) -> tuple[Path, dict[str, Any]]:
    """The dataset folder and its training statistics, each made if missing."""
    if root is None or not is_complete(root):
        # A complete dataset named by root is used as it is (any sizes or counts: only the
        # profile's input/output sizes matter here); otherwise the profile's is made there.
        root = ensure_dataset(profile, root, progress=progress)
    ensure_packed(profile, root=root, progress=progress)
    return root, ensure_stats(profile, root=root, progress=progress)


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


def training_data(profile: Profile | str | None = None, *, root: str | os.PathLike | None = None,
                  augment: str = "auto", device: torch.device | str | None = None,
                  progress: bool = True) -> TrainData:
    """The profile's dataset as :class:`TrainData`, made, packed and measured if needed.

    Args:
        profile: sizes (the dataset's, and ``input_size``/``output_size`` for the model;
            ``TrainConfig.data_profile()`` gives a run's).
        root: the dataset folder (default ``data/<profile>``). A complete dataset there is
            used as it is, whatever its counts; otherwise the profile's is made there.
        augment: one of :data:`AUGMENTATIONS`.
        device: where the transforms compute (default: CUDA if available, else the CPU).
        progress: progress bars while making, packing and measuring.
    """
    profile = get_profile(profile)
    device = torch.device(device if device is not None else
                          "cuda" if torch.cuda.is_available() else "cpu")
    root, stats = _prepare_files(profile, Path(root) if root is not None else None, progress)
    train_set, test_set = (open_dataset(root, split, input_size=profile.input_size,
                                        output_size=profile.output_size)
                           for split in ("train", "test"))
    train_tf, eval_tf, mean, std = make_transforms(stats, augment, device)
    return TrainData(train_set=train_set, test_set=test_set, train_transform=train_tf,
                     eval_transform=eval_tf, mean=mean, std=std, collate_fn=collate_for(train_set))
