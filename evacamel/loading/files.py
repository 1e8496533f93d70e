"""torch Datasets and DataLoaders over a dataset folder, its zip parts, or its packed cache.

Every dataset here yields samples (and :func:`make_loader` batches) in the batch format
of ``ARCHITECTURE.md``::

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
  batch costs about a memory copy. :func:`make_loader` uses it whenever it exists.
"""

from __future__ import annotations

import csv
import io
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import torch
from torch.utils.data import Dataset

from evacamel.loading.batch import collate_samples, make_sample
from evacamel.dataset.codec import decode_image_bytes
from evacamel.dataset.format import INDEX_NAME

__all__ = [
    "SPLITS",
    "DATASET_FOLDERS",
    "read_rows",
    "select_split",
    "FolderSource",
    "ZipSource",
    "ImageDataset",
    "FolderDataset",
    "ZipDataset",
    "find_zip_parts",
]

SPLITS = ("train", "test", "all")
"""Split names a dataset accepts; ``"all"`` is every row."""

DATASET_FOLDERS = ("bg", "fg", "fg_bg", "mask", "depth", "bg_depth")
"""Top-level folders of the on-disk format; a zip member's path is taken from the first
of these it contains, so ``dataset_3/fg_bg/img_00000001.jpg`` is ``fg_bg/img_00000001.jpg``."""

_COLUMNS = ("fg_bg_paths", "mask_paths", "selected_bg_paths", "depth_map_paths")


# -- the index ------------------------------------------------------------------------

def read_rows(text: str, *, name: str = INDEX_NAME) -> list[dict[str, str]]:
    """Parse ``dataset_info.csv`` text into one dict per row.

    Raises:
        ValueError: a required column (the seed's four path columns) is missing.
    """
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in _COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise ValueError(f"{name}: missing column(s) {', '.join(missing)}")
    return list(reader)


def select_split(rows: list[dict[str, str]], split: str, *,
                 name: str = INDEX_NAME) -> list[int]:
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
    return parts[-1] if parts and parts[-1] in (INDEX_NAME, "meta.json") else None


# -- where the bytes come from ----------------------------------------------------------

class FolderSource:
    """Reads dataset files from a folder by their dataset-relative paths."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        if not (self.root / INDEX_NAME).is_file():
            raise FileNotFoundError(f"{self.root / INDEX_NAME}: dataset index not found")

    def index_text(self) -> str:
        return (self.root / INDEX_NAME).read_text(encoding="utf-8")

    def read(self, relpath: str) -> bytes:
        path = self.root / relpath
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

    def index_text(self, beside: Path | None = None) -> str:
        """The index: from a zip part, else ``dataset_info.csv`` beside the first part."""
        if INDEX_NAME in self.members:
            return self.read(INDEX_NAME).decode("utf-8")
        candidate = beside or self.archives[0].parent / INDEX_NAME
        if candidate.is_file():
            return candidate.read_text(encoding="utf-8")
        raise FileNotFoundError(f"{INDEX_NAME} is in none of the zip parts "
                                f"({', '.join(map(str, self.archives))}) nor at {candidate}")

    def read(self, relpath: str) -> bytes:
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
                 index_text: str | None = None):
        self.source = source
        self.split = split
        self.input_size = int(input_size)
        self.output_size = int(output_size or input_size // 2)
        text = index_text if index_text is not None else source.index_text()
        self.rows = read_rows(text)
        self.row_ids = select_split(self.rows, split)

    def __len__(self) -> int:
        return len(self.row_ids)

    def _decode(self, relpath: str, channels: int | None) -> torch.Tensor:
        return decode_image_bytes(self.source.read(relpath), name=self.source.describe(relpath),
                                  channels=channels)

    def load_row(self, row_id: int) -> dict[str, torch.Tensor]:
        """The sample of row ``row_id`` of the index (any split)."""
        row = self.rows[row_id]
        bg = self._decode(row["selected_bg_paths"], 3)
        fg_bg = self._decode(row["fg_bg_paths"], 3)
        mask = self._decode(row["mask_paths"], 1)
        depth = self._decode(row["depth_map_paths"], None)
        if depth.dtype != torch.uint16:
            raise ValueError(f"{self.source.describe(row['depth_map_paths'])}: depth must be "
                             f"a 16-bit PNG (meters * 64), got {depth.dtype} "
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
                         index_text=source.index_text(beside if beside and beside.is_file()
                                                      else None))

