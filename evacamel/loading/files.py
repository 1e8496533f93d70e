"""torch Datasets over a dataset folder's files or its zip parts.

Every dataset here yields samples (and :func:`evacamel.loading.loader.make_loader`
batches) in the batch format of ``ARCHITECTURE.md``::

    {"image": uint8 6 x S x S (bg RGB, fg_bg RGB), "mask": uint8 1 x s x s,
     "depth": uint16 1 x s x s (meters_to_target * 65535)}

with ``S = profile.input_size`` and ``s = profile.output_size``, each resized once with
area filtering. Normalisation and augmentation are *not* done here: they run on the
device, on whole batches, in :mod:`evacamel.loading.transforms` (separate train and eval
objects, so the test split can never miss its normalisation as the seed's did).

Three sources, one format:

* :class:`FolderDataset`: the files of a dataset folder (``dataset_info.csv`` + images).
* :class:`ZipDataset`: the same files read straight out of zip parts, without
  extracting anything (each worker process opens its own ``ZipFile`` handles lazily).
* :class:`evacamel.loading.pack.PackedDataset`: the pre-resized memory-mapped cache; a
  batch costs about a memory copy. ``make_loader`` uses it whenever it exists.

The index is parsed and its paths checked by :mod:`evacamel.dataset.format`; every file
is read through :func:`~evacamel.dataset.format.resolve_in_dataset` (folders) or looked
up among the zip members (zips), so a dataset never makes us read outside it.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import torch
from torch.utils.data import Dataset

from evacamel.dataset.codec import decode_image_bytes
from evacamel.dataset.format import (DATASET_FOLDERS, INDEX_NAME, META_NAME, parse_index, read_index,
                                     resolve_in_dataset)
from evacamel.loading.batch import make_sample

__all__ = [
    "SPLITS",
    "select_split",
    "FolderSource",
    "ZipSource",
    "ImageDataset",
    "FolderDataset",
    "ZipDataset",
    "find_zip_parts",
    "open_image_dataset",
]

SPLITS = ("train", "test", "all")
"""Split names a dataset accepts; ``"all"`` is every row."""


def select_split(rows: list[dict], split: str, *, name: str = INDEX_NAME) -> list[int]:
    """Indices (in file order) of the rows of ``split`` (``train``, ``test`` or ``all``).

    Raises:
        ValueError: unknown split, or ``train``/``test`` asked of an index without a
            ``split`` column (the seed's own index has none; use ``"all"``).
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    if split == "all":
        return list(range(len(rows)))
    if rows and "split" not in rows[0]:
        raise ValueError(f"{name}: no 'split' column, so no {split!r} split; use split='all'")
    return [i for i, r in enumerate(rows) if r["split"] == split]


def _member_key(name: str) -> str | None:
    """The dataset-relative path of a zip member, or None for folders and odd names."""
    if name.endswith("/"):
        return None
    parts = PurePosixPath(name.replace("\\", "/")).parts
    for i, part in enumerate(parts):
        if part in DATASET_FOLDERS:
            return "/".join(parts[i:])
    return parts[-1] if parts and parts[-1] in (INDEX_NAME, META_NAME) else None


# -- where the bytes come from ----------------------------------------------------------

class FolderSource:
    """Reads dataset files from a folder by their dataset-relative paths (checked by
    :func:`~evacamel.dataset.format.resolve_in_dataset`: never outside the folder)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        if not (self.root / INDEX_NAME).is_file():
            raise FileNotFoundError(f"{self.root / INDEX_NAME}: dataset index not found")

    def read_index(self) -> list[dict]:
        """The folder's ``dataset_info.csv``, parsed and checked."""
        return read_index(self.root)

    def read(self, relpath: str, *, row: int | None = None, column: str | None = None) -> bytes:
        """The bytes of ``relpath``; ``row`` and ``column`` name it in errors."""
        path = resolve_in_dataset(self.root, relpath, row=row, column=column)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: file listed in {INDEX_NAME} not found") from None

    def describe(self, relpath: str) -> str:
        return str(self.root / relpath)


class ZipSource:
    """Reads dataset files straight out of zip parts, without extracting.

    The member table (names only, from each zip's central directory) is built once;
    ``ZipFile`` handles are opened lazily and per process, so the object can be sent to
    DataLoader workers (each opens its own handles; sharing one handle across forked
    processes would interleave their reads).
    """

    def __init__(self, archives: Sequence[str | os.PathLike]):
        self.archives = [Path(a) for a in archives]
        if not self.archives:
            raise FileNotFoundError("no zip parts given")
        self.members: dict[str, tuple[int, str]] = {}
        for i, archive in enumerate(self.archives):
            if not archive.is_file():
                raise FileNotFoundError(f"{archive}: zip part not found")
            try:
                with zipfile.ZipFile(archive) as zf:
                    names = zf.namelist()
            except zipfile.BadZipFile as exc:
                raise ValueError(f"{archive}: not a readable zip file ({exc})") from None
            for name in names:
                key = _member_key(name)
                if key is not None:
                    self.members.setdefault(key, (i, name))
        self._handles: dict[int, zipfile.ZipFile] = {}
        self._pid = os.getpid()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_handles"] = {}
        return state

    def _zip(self, i: int) -> zipfile.ZipFile:
        if self._pid != os.getpid():  # forked into a worker: never reuse the parent's
            self._handles, self._pid = {}, os.getpid()
        zf = self._handles.get(i)
        if zf is None:
            zf = self._handles[i] = zipfile.ZipFile(self.archives[i])
        return zf

    def read_index(self, beside: Path | None = None) -> list[dict]:
        """The index, parsed and checked: from a zip part, else ``beside`` (default
        ``dataset_info.csv`` beside the first part)."""
        if INDEX_NAME in self.members:
            text, name = self.read(INDEX_NAME).decode("utf-8"), self.describe(INDEX_NAME)
        else:
            candidate = beside or self.archives[0].parent / INDEX_NAME
            if not candidate.is_file():
                raise FileNotFoundError(f"{INDEX_NAME} is in none of the zip parts "
                                        f"({', '.join(map(str, self.archives))}) nor at {candidate}")
            text, name = candidate.read_text(encoding="utf-8"), str(candidate)
        return parse_index(text, name=name)

    def read(self, relpath: str, *, row: int | None = None, column: str | None = None) -> bytes:
        """The bytes of member ``relpath`` (looked up, never a file-system path)."""
        try:
            i, name = self.members[relpath]
        except KeyError:
            raise FileNotFoundError(f"{relpath}: not in any zip part "
                                    f"({', '.join(a.name for a in self.archives)})") from None
        return self._zip(i).read(name)

    def describe(self, relpath: str) -> str:
        i, name = self.members.get(relpath, (0, relpath))
        return f"{self.archives[i]}:{name}"

    def close(self) -> None:
        for zf in self._handles.values():
            zf.close()
        self._handles = {}


# -- datasets ---------------------------------------------------------------------------

class ImageDataset(Dataset):
    """Samples decoded from full-size files and resized once (area filter) per access.

    Args:
        source: a :class:`FolderSource` or :class:`ZipSource`.
        split: ``"train"``, ``"test"`` or ``"all"``.
        input_size: ``S``, side of the 6-channel input.
        output_size: ``s``, side of the mask and depth targets (default ``S // 2``).

    ``ds[i]`` is ``{"image": uint8 6 x S x S, "mask": uint8 1 x s x s,
    "depth": uint16 1 x s x s}``; ``ds.row_ids[i]`` is its row in ``dataset_info.csv``.
    """

    def __init__(self, source: FolderSource | ZipSource, split: str = "train", *,
                 input_size: int, output_size: int | None = None,
                 rows: list[dict] | None = None):
        self.source = source
        self.split = split
        self.input_size = int(input_size)
        self.output_size = int(output_size or input_size // 2)
        self.rows = rows if rows is not None else source.read_index()
        self.row_ids = select_split(self.rows, split)

    def __len__(self) -> int:
        return len(self.row_ids)

    def _decode(self, row_id: int, column: str, channels: int | None) -> torch.Tensor:
        relpath = self.rows[row_id][column]
        data = self.source.read(relpath, row=row_id, column=column)
        return decode_image_bytes(data, name=self.source.describe(relpath), channels=channels)

    def load_row(self, row_id: int) -> dict[str, torch.Tensor]:
        """The sample of row ``row_id`` of the index (any split)."""
        bg = self._decode(row_id, "selected_bg_paths", 3)
        fg_bg = self._decode(row_id, "fg_bg_paths", 3)
        mask = self._decode(row_id, "mask_paths", 1)
        depth = self._decode(row_id, "depth_map_paths", None)
        if depth.dtype != torch.uint16:
            raise ValueError(f"{self.source.describe(self.rows[row_id]['depth_map_paths'])}: "
                             f"depth must be a 16-bit PNG (meters * 64), got {depth.dtype} "
                             f"with {depth.shape[0]} channel(s)")
        return make_sample(bg, fg_bg, mask, depth, self.input_size, self.output_size)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.load_row(self.row_ids[i])


class FolderDataset(ImageDataset):
    """:class:`ImageDataset` over a dataset folder (``<root>/dataset_info.csv`` + files)."""

    def __init__(self, root: str | os.PathLike, split: str = "train", *, input_size: int,
                 output_size: int | None = None):
        super().__init__(FolderSource(root), split, input_size=input_size,
                         output_size=output_size)
        self.root = Path(root)


def find_zip_parts(root: str | os.PathLike) -> list[Path]:
    """The zip parts of a dataset: ``*.zip`` in ``root`` and its ``zips/``/``parts/``."""
    root = Path(root)
    found: list[Path] = []
    for folder in (root, root / "zips", root / "parts"):
        if folder.is_dir():
            found += sorted(p for p in folder.glob("*.zip") if p.is_file())
    return found


class ZipDataset(ImageDataset):
    """:class:`ImageDataset` read straight from zip parts (no extraction).

    Args:
        archives: a folder holding the parts (see :func:`find_zip_parts`) or a list of
            zip files. ``dataset_info.csv`` may be inside a part or beside the first.
    """

    def __init__(self, archives: str | os.PathLike | Sequence[str | os.PathLike],
                 split: str = "train", *, input_size: int, output_size: int | None = None):
        if isinstance(archives, (str, os.PathLike)) and Path(archives).is_dir():
            root = Path(archives)
            parts = find_zip_parts(root)
            if not parts:
                raise FileNotFoundError(f"{root}: no zip parts (*.zip) found")
            beside = root / INDEX_NAME
        else:
            parts = [Path(archives)] if isinstance(archives, (str, os.PathLike)) else \
                [Path(a) for a in archives]
            beside = None
        source = ZipSource(parts)
        super().__init__(source, split, input_size=input_size, output_size=output_size,
                         rows=source.read_index(beside if beside and beside.is_file() else None))


def open_image_dataset(root: str | os.PathLike, split: str = "train", *, input_size: int,
                       output_size: int | None = None, prefer: str = "auto") -> ImageDataset:
    """The dataset of ``root``'s files: its folder (index and ``fg_bg/``), else its zip parts.

    Args:
        prefer: ``"auto"`` (that order), or force ``"folder"`` or ``"zip"``.

    Raises:
        FileNotFoundError: no files (or not of the forced kind) at ``root``.
    """
    root = Path(root)
    if prefer not in ("auto", "folder", "zip"):
        raise ValueError(f"prefer={prefer!r}: choose auto, folder or zip")
    if prefer in ("auto", "folder") and (root / INDEX_NAME).is_file() and (root / "fg_bg").is_dir():
        return FolderDataset(root, split, input_size=input_size, output_size=output_size)
    if prefer in ("auto", "zip") and find_zip_parts(root):
        return ZipDataset(root, split, input_size=input_size, output_size=output_size)
    raise FileNotFoundError(f"{root}: no dataset here (no {INDEX_NAME} with files, no zip "
                            "parts); make one with `evacamel make-dataset` or "
                            "evacamel.dataset.write.ensure_dataset(profile)")
