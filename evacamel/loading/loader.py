"""Choosing a dataset source and making DataLoaders of batch dicts.

:func:`open_dataset` picks the packed cache, the folder's files or its zip parts;
:func:`make_loader` wraps it in a DataLoader that yields the batch format of
``ARCHITECTURE.md``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import (BatchSampler, DataLoader, Dataset, RandomSampler, Sampler,
                              SequentialSampler)

from evacamel.loading.batch import collate_samples
from evacamel.loading.files import open_image_dataset
from evacamel.loading.pack import PackedDataset, find_packed
from evacamel.paths import dataset_dir
from evacamel.profiles import Profile, get_profile

__all__ = ["open_dataset", "returns_batches", "collate_for", "LoaderOptions", "make_loader"]


def open_dataset(root: str | os.PathLike, split: str = "train", *, input_size: int,
                 output_size: int | None = None, prefer: str = "auto") -> Dataset:
    """The best dataset for ``root``: the packed cache if it exists and is current,
    else the folder's files, else its zip parts.

    Args:
        prefer: ``"auto"`` (that order), or force ``"packed"``, ``"folder"`` or ``"zip"``.

    Raises:
        FileNotFoundError: nothing usable at ``root`` (or not the forced kind).
    """
    root = Path(root)
    output_size = int(output_size or input_size // 2)
    if prefer not in ("auto", "packed", "folder", "zip"):
        raise ValueError(f"prefer={prefer!r}: choose auto, packed, folder or zip")
    if prefer in ("auto", "packed"):
        packed = find_packed(root, input_size, output_size)
        if packed is not None:
            return PackedDataset(packed, split)
        if prefer == "packed":
            raise FileNotFoundError(f"{root}: no current packed cache for input size "
                                    f"{input_size} (build it with `evacamel pack`)")
    return open_image_dataset(root, split, input_size=input_size, output_size=output_size,
                              prefer=prefer)


def _identity(batch: Any) -> Any:
    return batch


def returns_batches(dataset: Dataset) -> bool:
    """True for datasets that hand out whole batch dicts (``__getitems__``: the packed cache,
    also through ``Subset``), False for per-sample datasets (folders, zip parts)."""
    return callable(getattr(dataset, "__getitems__", None))


def collate_for(dataset: Dataset) -> Callable[[Any], dict[str, torch.Tensor]]:
    """The ``collate_fn`` a DataLoader over ``dataset`` needs (picklable, for workers)."""
    return _identity if returns_batches(dataset) else collate_samples


@dataclass(frozen=True)
class LoaderOptions:
    """How :func:`make_loader` batches; ``None`` takes the default named.

    Attributes:
        batch_size: default ``profile.batch_size``.
        shuffle: default ``split == "train"``; ignored when ``sampler`` is given.
        drop_last: default ``split == "train"``.
        num_workers: default ``profile.num_workers`` for files and zips, 0 for the packed
            cache: there a batch is one memory copy in this process (about 14,000 samples
            of 6 x 256 x 256 per CPU-second), while a worker must also hand every batch
            over through fresh shared memory, which costs about five times more CPU per
            sample (``python -m evacamel bench loader``). On CUDA the GPU computes
            asynchronously while the next batch is copied, so nothing is lost.
        pin_memory: default: when CUDA is available.
        generator: seeds the shuffling (reproducible order).
        sampler: a per-sample index sampler (e.g. ``DistributedSampler``, or a list of
            indices); batches are made from it.
        prefer: which source, see :func:`open_dataset`.
    """

    batch_size: int | None = None
    shuffle: bool | None = None
    drop_last: bool | None = None
    num_workers: int | None = None
    pin_memory: bool | None = None
    generator: torch.Generator | None = None
    sampler: Sampler | Sequence[int] | None = None
    prefer: str = "auto"


def make_loader(profile: Profile | str | None, split: str, *,
                root: str | os.PathLike | None = None,
                options: LoaderOptions | None = None) -> DataLoader:
    """A DataLoader of batch dicts for ``split`` of the profile's dataset.

    Uses the packed cache when it exists (build it with
    :func:`evacamel.loading.pack.ensure_packed`), fetching whole batches (a memory copy
    per row and array); else decodes the folder's files or its zip parts.

    Args:
        profile: a profile or its name (sizes and defaults come from it).
        split: ``"train"`` or ``"test"`` (or ``"all"``).
        root: the dataset folder (default ``paths.dataset_dir(profile.name)``).
        options: see :class:`LoaderOptions` (default: all defaults).

    Yields:
        ``{"image": uint8 B x 6 x S x S, "mask": uint8 B x 1 x s x s,
        "depth": uint16 B x 1 x s x s}`` (CPU tensors).
    """
    profile = get_profile(profile)
    o = options or LoaderOptions()
    root = Path(root) if root is not None else dataset_dir(profile.name)
    dataset = open_dataset(root, split, input_size=profile.input_size,
                           output_size=profile.output_size, prefer=o.prefer)
    batch_size = int(o.batch_size or profile.batch_size)
    packed = returns_batches(dataset)
    num_workers = int((0 if packed else profile.num_workers) if o.num_workers is None
                      else o.num_workers)
    drop_last = (split == "train") if o.drop_last is None else o.drop_last
    sampler = o.sampler
    if sampler is None:
        shuffle = (split == "train") if o.shuffle is None else o.shuffle
        sampler = RandomSampler(dataset, generator=o.generator) if shuffle else \
            SequentialSampler(dataset)
    common: dict[str, Any] = dict(
        num_workers=num_workers, persistent_workers=num_workers > 0,
        pin_memory=torch.cuda.is_available() if o.pin_memory is None else o.pin_memory)
    if num_workers > 0:
        common["prefetch_factor"] = 4
    if packed:
        # Packed: the dataset returns whole batch dicts, one memory copy per array.
        return DataLoader(dataset, batch_sampler=BatchSampler(sampler, batch_size, drop_last),
                          collate_fn=_identity, **common)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=drop_last,
                      collate_fn=collate_samples, **common)
