"""Choosing a dataset source and making DataLoaders of batch dicts.

:func:`open_dataset` picks the packed cache, the folder's files or its zip parts;
:func:`make_loader` wraps it in a DataLoader that yields the batch format of
``ARCHITECTURE.md``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import (BatchSampler, DataLoader, Dataset, RandomSampler, Sampler,
                              SequentialSampler)

from evacamel.loading.batch import collate_samples
from evacamel.loading.files import FolderDataset, ZipDataset, find_zip_parts
from evacamel.loading.pack import PackedDataset, find_packed
from evacamel.dataset.format import INDEX_NAME
from evacamel.profiles import Profile, get_profile

__all__ = ["open_dataset", "returns_batches", "collate_for", "make_loader"]


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
    if prefer in ("auto", "folder") and (root / INDEX_NAME).is_file() and \
            (root / "fg_bg").is_dir():
        return FolderDataset(root, split, input_size=input_size, output_size=output_size)
    if prefer in ("auto", "zip") and find_zip_parts(root):
        return ZipDataset(root, split, input_size=input_size, output_size=output_size)
    raise FileNotFoundError(f"{root}: no dataset here (no packed cache, no {INDEX_NAME} with "
                            f"files, no zip parts); make one with `evacamel make-dataset` "
                            f"or evacamel.dataset.write.ensure_dataset(profile)")


def _identity(batch: Any) -> Any:
    return batch


def returns_batches(dataset: Dataset) -> bool:
    """True for datasets that hand out whole batch dicts (``__getitems__``: the packed cache,
    also through ``Subset``), False for per-sample datasets (folders, zip parts)."""
    return callable(getattr(dataset, "__getitems__", None))


def collate_for(dataset: Dataset) -> Callable[[Any], dict[str, torch.Tensor]]:
    """The ``collate_fn`` a DataLoader over ``dataset`` needs (picklable, for workers)."""
    return _identity if returns_batches(dataset) else collate_samples


def make_loader(profile: Profile | str | None, split: str, *,
                root: str | os.PathLike | None = None, batch_size: int | None = None,
                shuffle: bool | None = None, num_workers: int | None = None,
                generator: torch.Generator | None = None, sampler: Sampler | None = None,
                drop_last: bool | None = None, prefer: str = "auto",
                pin_memory: bool | None = None) -> DataLoader:
    """A DataLoader of batch dicts for ``split`` of the profile's dataset.

    Uses the packed cache when it exists (build it with
    :func:`evacamel.loading.pack.ensure_packed`), fetching whole batches (a memory copy
    per row and array); else decodes the folder's files or its zip parts.

    Args:
        profile: a profile or its name (sizes and defaults come from it).
        split: ``"train"`` or ``"test"`` (or ``"all"``).
        root: the dataset folder (default ``paths.dataset_dir(profile.name)``).
        batch_size: default ``profile.batch_size``.
        shuffle: default ``split == "train"``; ignored when ``sampler`` is given.
        num_workers: default ``profile.num_workers`` for files and zips, 0 for the packed
            cache: there a batch is one memory copy in this process (about 14,000 samples
            of 6 x 256 x 256 per CPU-second), while a worker must also hand every batch
            over through fresh shared memory, which costs about five times more CPU per
            sample (``python -m evacamel bench loader``). On CUDA the GPU computes
            asynchronously while the next batch is copied, so nothing is lost.
        generator: seeds the shuffling (reproducible order).
        sampler: a per-sample index sampler (e.g. ``DistributedSampler``); batches are
            made from it.
        drop_last: default ``split == "train"``.
        prefer: see :func:`open_dataset`.
        pin_memory: default: when CUDA is available.

    Yields:
        ``{"image": uint8 B x 6 x S x S, "mask": uint8 B x 1 x s x s,
        "depth": uint16 B x 1 x s x s}`` (CPU tensors).
    """
    from evacamel.paths import dataset_dir

    profile = get_profile(profile)
    root = Path(root) if root is not None else dataset_dir(profile.name)
    dataset = open_dataset(root, split, input_size=profile.input_size,
                           output_size=profile.output_size, prefer=prefer)
    batch_size = int(batch_size or profile.batch_size)
    shuffle = (split == "train") if shuffle is None else shuffle
    packed = returns_batches(dataset)
    if num_workers is None:
        num_workers = 0 if packed else profile.num_workers
    num_workers = int(num_workers)
    drop_last = (split == "train") if drop_last is None else drop_last
    pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
    if sampler is None:
        sampler = RandomSampler(dataset, generator=generator) if shuffle else \
            SequentialSampler(dataset)
    common: dict[str, Any] = dict(num_workers=num_workers, pin_memory=pin_memory,
                                  persistent_workers=num_workers > 0)
    if num_workers > 0:
        common["prefetch_factor"] = 4
    if packed:
        # Packed: the dataset returns whole batch dicts, one memory copy per array.
        return DataLoader(dataset, batch_sampler=BatchSampler(sampler, batch_size, drop_last),
                          collate_fn=_identity, **common)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=drop_last,
                      collate_fn=collate_samples, **common)
