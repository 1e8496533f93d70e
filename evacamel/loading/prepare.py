"""The data a training run needs, made ready: dataset, packed cache, statistics, transforms.

::

    data = training_data("quick")                  # makes data/quick if missing, packs it
    trainer = Trainer(TrainConfig.from_profile("quick"), data)

:func:`training_data` is the one place that may write a dataset for training: it makes
the profile's dataset if it is missing (a complete dataset named by ``root`` is used as
it is), packs it at the profile's input size, computes the training split's statistics,
and returns both splits with the device transforms normalised by those statistics. The
:class:`~evacamel.train.Trainer` only takes the result.

A profile whose ``data`` is ``"render"`` (the full profile: a GPU) makes no files: its
training and test splits are rendered on the device as they are read
(:func:`~evacamel.loading.render.rendered_training_data`), unless ``root`` names a dataset.

It is one process's work: in a multi-process run (``torchrun``) :func:`evacamel.train.train`
lets rank 0 call it first and the other processes after, when the files exist.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from evacamel.dataset.format import is_complete
from evacamel.dataset.write import ensure_dataset
from evacamel.loading.loader import collate_for, open_dataset
from evacamel.loading.pack import ensure_packed
from evacamel.loading.render import rendered_training_data
from evacamel.loading.stats import ensure_stats
from evacamel.loading.traindata import AUGMENTATIONS, TrainData, make_transforms
from evacamel.paths import dataset_dir
from evacamel.profiles import Profile, get_profile

__all__ = ["TrainData", "training_data", "make_transforms", "AUGMENTATIONS", "chapter_dataset",
           "DEMO_SIZES", "DEMO_SEED_OFFSET"]

DEMO_SIZES = {"samples": 600, "n_backgrounds": 8, "n_camels": 8}
"""The files a rendering profile's chapters read (examples, statistics, baselines): this
many samples of this many backgrounds and camels, at the profile's sizes and world."""

DEMO_SEED_OFFSET = 7919
"""The demo dataset's seed is the profile's plus this: its world seeds are then none of the
ones the profile's plan trains on (each is a 31-bit hash of the plan seed), so its test
split is a fair test for a model trained on the rendered data."""


def _prepare_files(profile: Profile, root: Path | None, progress: bool) -> tuple[Path, dict[str, Any]]:
    """The dataset folder and its training statistics, each made if missing."""
    if root is None or not is_complete(root):
        # A complete dataset named by root is used as it is (any sizes or counts: only the
        # profile's input/output sizes matter here); otherwise the profile's is made there.
        root = ensure_dataset(profile, root, progress=progress)
    ensure_packed(profile, root=root, progress=progress)
    return root, ensure_stats(profile, root=root, progress=progress)


def training_data(profile: Profile | str | None = None, *, root: str | os.PathLike | None = None,
                  augment: str = "auto", device: torch.device | str | None = None,
                  progress: bool = True) -> TrainData:
    """The profile's dataset as :class:`TrainData`, made, packed and measured if needed.

    Args:
        profile: sizes (the dataset's, and ``input_size``/``output_size`` for the model;
            ``TrainConfig.data_profile()`` gives a run's). Its ``data`` says where the
            samples come from: ``"files"`` (a dataset folder) or ``"render"`` (rendered on
            ``device`` as they are read, the plan's splits and sizes, no files).
        root: the dataset folder (default ``data/<profile>``). A complete dataset there is
            used as it is, whatever its counts; otherwise the profile's is made there.
            Naming one reads files even where the profile renders.
        augment: one of :data:`AUGMENTATIONS`.
        device: where the transforms compute, and rendered samples are made (default:
            CUDA if available, else the CPU).
        progress: progress bars while making, packing and measuring.
    """
    profile = get_profile(profile)
    device = torch.device(device if device is not None else
                          "cuda" if torch.cuda.is_available() else "cpu")
    if profile.data == "render" and root is None:
        return rendered_training_data(profile, augment=augment, device=device)
    root, stats = _prepare_files(profile, Path(root) if root is not None else None, progress)
    train_set, test_set = (open_dataset(root, split, input_size=profile.input_size,
                                        output_size=profile.output_size)
                           for split in ("train", "test"))
    train_tf, eval_tf, mean, std = make_transforms(stats, augment, device)
    return TrainData(train_set=train_set, test_set=test_set, train_transform=train_tf,
                     eval_transform=eval_tf, mean=mean, std=std, collate_fn=collate_for(train_set))


def chapter_dataset(profile: Profile | str | None = None, *, progress: bool = True) -> Path:
    """The dataset folder the chapters read (examples, statistics, baselines), made if missing.

    Where the profile's ``data`` is ``"files"`` it is the training data's folder
    (:func:`~evacamel.dataset.write.ensure_dataset`, ``data/<profile>``). Where it is
    ``"render"`` (the full profile: trained on samples rendered on the GPU) it is a small
    dataset of the same world and sizes (:data:`DEMO_SIZES`; ``data/<profile>-demo``): the
    40,000 files of the whole plan would take minutes to write in every Colab session.
    """
    p = get_profile(profile)
    if p.data == "files":
        return ensure_dataset(p, progress=progress)
    demo = p.replace(**DEMO_SIZES, seed=p.seed + DEMO_SEED_OFFSET)
    return ensure_dataset(demo, dataset_dir(f"{p.name}-demo"), progress=progress)
