"""The packed training cache: a dataset pre-resized to training sizes in memory-mapped files.

The seed decoded four full-size JPEGs per sample every epoch (about 15 samples/s). The
packed cache does that work once: every row of ``dataset_info.csv`` is decoded, resized
with area filtering to the batch format and stored in three ``.npy`` files that are
memory-mapped when read, so a batch costs one memory copy per row and array::

    <dataset>/packed-<S>/       (packed-<S>-<s> where s is not S/2)
      image.npy      uint8  N x 6 x S x S   (bg RGB, fg_bg RGB)
      mask.npy       uint8  N x 1 x s x s
      depth.npy      uint16 N x 1 x s x s   (meters_to_target * 65535)
      manifest.json  what it was made from; written last (its presence = complete)

Row ``i`` of the arrays is row ``i`` of ``dataset_info.csv``; the manifest lists the row
ids of each split. The manifest records a fingerprint of the source (sha256 of
``dataset_info.csv`` and of ``meta.json`` without its ``"stats"``), so a cache made
from another version of the dataset (e.g. after ``evacamel depth`` rewrote the depth
maps) is detected as stale and rebuilt.

Building (:func:`pack_dataset`, ``evacamel pack``) is

* parallel: chunks of rows are decoded by a pool of processes, each writing its rows
  straight into the memory-mapped arrays;
* resumable: each finished chunk leaves a done-marker; an interrupted build rerun with
  the same source and sizes only does the missing chunks;
* atomic: ``manifest.json`` is written to a temporary name and renamed last, so a reader
  never takes a half-built cache for a finished one.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import multiprocessing as mp
import os
import shutil
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info
from evacamel.colab import progress_bar

from evacamel.dataset.atomic import folder_lock, write_json
from evacamel.dataset.format import INDEX_NAME, META_NAME, meta_from_bytes, read_meta
from evacamel.dataset.write import ensure_dataset
from evacamel.loading.files import ImageDataset, ZipSource, find_zip_parts, open_image_dataset
from evacamel.profiles import Profile, get_profile

__all__ = [
    "PACK_FORMAT",
    "PACK_FORMAT_VERSION",
    "packed_dir",
    "source_fingerprint",
    "read_manifest",
    "find_packed",
    "open_arrays",
    "pack_dataset",
    "ensure_packed",
    "PackedDataset",
]

PACK_FORMAT = "evacamel-packed"
PACK_FORMAT_VERSION = 1
MANIFEST = "manifest.json"
_BUILD = "build.json"
_CHUNKS = "chunks"
_ARRAYS = {"image": "image.npy", "mask": "mask.npy", "depth": "depth.npy"}


def packed_dir(root: str | os.PathLike, input_size: int, output_size: int | None = None) -> Path:
    """Where the cache for these sizes lives: ``<root>/packed-<S>`` for targets at half the
    input's side (the seed U-Net's), ``<root>/packed-<S>-<s>`` for any other ``s``."""
    S = int(input_size)
    s = int(output_size or S // 2)
    return Path(root) / (f"packed-{S}" if s == S // 2 else f"packed-{S}-{s}")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _index_and_meta(root: Path) -> tuple[bytes, dict[str, Any]]:
    """The index's bytes and meta.json (``{}`` if absent), from the folder or its zip parts."""
    if (root / INDEX_NAME).is_file():
        meta = read_meta(root) if (root / META_NAME).is_file() else {}
        return (root / INDEX_NAME).read_bytes(), meta
    parts = find_zip_parts(root)
    if not parts:
        raise FileNotFoundError(f"{root}: no {INDEX_NAME} and no zip parts")
    src = ZipSource(parts)
    try:
        index = src.read(INDEX_NAME) if INDEX_NAME in src.members else \
            (root / INDEX_NAME).read_bytes()
        meta = meta_from_bytes(src.read(META_NAME), name=src.describe(META_NAME)) \
            if META_NAME in src.members else {}
    finally:
        src.close()
    return index, meta


def source_fingerprint(root: str | os.PathLike) -> dict[str, Any]:
    """What a cache is made from: hashes of the index and of meta.json (minus ``stats``,
    ``zip_parts``).

    Works for a dataset folder and for zip parts (the index/meta read from the parts).
    """
    index, meta = _index_and_meta(Path(root))
    meta.pop("stats", None)
    meta.pop("zip_parts", None)  # the same files packed differently
    return {"index_sha256": _sha256(index),
            "meta_sha256": _sha256(json.dumps(meta, sort_keys=True).encode("utf-8")),
            "seed": meta.get("seed"), "profile": meta.get("profile")}


def read_manifest(folder: str | os.PathLike) -> dict[str, Any]:
    """The manifest of a finished cache.

    Raises:
        FileNotFoundError: no manifest (the cache is missing or unfinished).
        ValueError: not a packed-cache manifest, or an unknown format version.
    """
    path = Path(folder) / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no packed cache here (missing or unfinished; "
                                f"build it with `evacamel pack`)") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: unreadable manifest ({exc})") from None
    if manifest.get("format") != PACK_FORMAT or manifest.get("format_version") != PACK_FORMAT_VERSION:
        raise ValueError(f"{path}: not a {PACK_FORMAT} v{PACK_FORMAT_VERSION} manifest")
    return manifest


def find_packed(root: str | os.PathLike, input_size: int,
                output_size: int | None = None) -> Path | None:
    """The cache folder for these sizes if it is finished and made from the dataset as it
    is now (fingerprint match); else ``None``. A cache without its source beside it
    (e.g. shipped alone) is trusted as it is."""
    folder = packed_dir(root, input_size, output_size)
    try:
        manifest = read_manifest(folder)
    except (FileNotFoundError, ValueError):
        return None
    if manifest["input_size"] != input_size or \
            manifest["output_size"] != int(output_size or input_size // 2):
        return None
    try:
        current = source_fingerprint(root)
    except FileNotFoundError:
        return folder
    return folder if current == manifest["source"] else None


# -- building -----------------------------------------------------------------------------

def open_arrays(folder: str | os.PathLike, mode: str = "r") -> dict[str, np.memmap]:
    """A cache's arrays, memory-mapped (``mode`` as ``np.load``'s ``mmap_mode``):
    ``{"image": uint8 N x 6 x S x S, "mask": uint8 N x 1 x s x s, "depth": uint16 ...}``."""
    return {k: np.load(Path(folder) / f, mmap_mode=mode) for k, f in _ARRAYS.items()}


_WORKER_DATASET: Any = None


def _worker_init(dataset: Any) -> None:
    """Pool initializer: the dataset is sent once per worker, not once per chunk."""
    global _WORKER_DATASET
    _WORKER_DATASET = dataset
    torch.set_num_threads(1)


def _pack_chunk(dataset: Any, folder: str, chunk: int, start: int, stop: int) -> int:
    """Decode rows ``start:stop`` into the arrays and leave the chunk's done-marker.

    ``dataset`` ``None`` means the one given to this worker by :func:`_worker_init`.
    """
    dataset = _WORKER_DATASET if dataset is None else dataset
    folder_p = Path(folder)
    arrays = open_arrays(folder_p, "r+")
    for row in range(start, stop):
        sample = dataset.load_row(row)
        arrays["image"][row] = sample["image"].numpy()
        arrays["mask"][row] = sample["mask"].numpy()
        arrays["depth"][row] = sample["depth"].numpy()
    for arr in arrays.values():
        arr.flush()
    marker = folder_p / _CHUNKS / f"{chunk:06d}.done"
    marker.write_text(f"{start} {stop}\n")
    return stop - start


def _prepare_arrays(folder: Path, plan: dict[str, Any], force: bool) -> None:
    """Sparse arrays of the final size and the build record, unless an interrupted build
    of the same plan left them (then its finished chunks are kept)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MANIFEST).unlink(missing_ok=True)  # invalid from here until finished
    build_path = folder / _BUILD
    previous = json.loads(build_path.read_text()) if build_path.is_file() else None
    if previous != plan or force:
        shutil.rmtree(folder / _CHUNKS, ignore_errors=True)
        for name in _ARRAYS.values():
            (folder / name).unlink(missing_ok=True)
        n, S, s = plan["rows"], plan["input_size"], plan["output_size"]
        shapes = {"image": ((n, 6, S, S), np.uint8), "mask": ((n, 1, s, s), np.uint8),
                  "depth": ((n, 1, s, s), np.uint16)}
        for key, (shape, dtype) in shapes.items():
            np.lib.format.open_memmap(folder / _ARRAYS[key], mode="w+", dtype=dtype,
                                      shape=shape).flush()
        write_json(build_path, plan)
    (folder / _CHUNKS).mkdir(exist_ok=True)


def _pack_missing_chunks(dataset: ImageDataset, folder: Path, chunk_rows: int,
                         workers: int | None, progress: bool | None, desc: str) -> None:
    """Decode every chunk without a done-marker, in this process or a process pool."""
    n = len(dataset.rows)
    chunks = [(c, s, min(s + chunk_rows, n)) for c, s in enumerate(range(0, n, chunk_rows))]
    todo = [c for c in chunks if not (folder / _CHUNKS / f"{c[0]:06d}.done").is_file()]
    workers = (os.cpu_count() or 1) if workers is None else int(workers)
    workers = min(workers, len(todo))
    with progress_bar(total=n, initial=n - sum(c[2] - c[1] for c in todo), unit="sample", desc=desc,
              disable=None if progress is None else not progress) as bar:
        if workers <= 1:
            for c, s, e in todo:
                bar.update(_pack_chunk(dataset, str(folder), c, s, e))
            return
        with ProcessPoolExecutor(workers, mp_context=mp.get_context(),
                                 initializer=_worker_init, initargs=(dataset,)) as pool:
            futures = [pool.submit(_pack_chunk, None, str(folder), c, s, e) for c, s, e in todo]
            for fut in as_completed(futures):
                bar.update(fut.result())


def _write_manifest(folder: Path, plan: dict[str, Any], rows: list[dict]) -> None:
    """The manifest (written last: its presence means complete); the build's leftovers go."""
    splits: dict[str, list[int]] = {"train": [], "test": []}
    for i, row in enumerate(rows):
        splits.setdefault(row.get("split") or "all", []).append(i)
    manifest = {"format": PACK_FORMAT, "format_version": PACK_FORMAT_VERSION,
                "source": plan["source"], "input_size": plan["input_size"],
                "output_size": plan["output_size"], "count": plan["rows"],
                "arrays": {k: {"file": f, "dtype": "uint16" if k == "depth" else "uint8"}
                           for k, f in _ARRAYS.items()},
                "depth_encoding": "meters_to_target(depth) * 65535",
                "splits": splits}
    write_json(folder / MANIFEST, manifest)
    shutil.rmtree(folder / _CHUNKS, ignore_errors=True)
    (folder / _BUILD).unlink(missing_ok=True)


def pack_dataset(root: str | os.PathLike, input_size: int, output_size: int | None = None, *,
                 workers: int | None = None, chunk_rows: int = 128, force: bool = False,
                 progress: bool | None = None) -> Path:
    """Build (or finish, or reuse) the packed cache of the dataset at ``root``.

    Args:
        root: a dataset folder (files, or zip parts with the index).
        input_size: ``S``; ``output_size`` defaults to ``S // 2``.
        workers: processes decoding chunks (default: CPU count; 0 or 1: in this process).
        chunk_rows: rows per chunk (the unit of resumption).
        force: rebuild even if a current cache exists.
        progress: a progress bar (``None``: only when interactive).

    Returns:
        The cache folder (``<root>/packed-<S>``).
    """
    root = Path(root)
    output_size = int(output_size or input_size // 2)
    if input_size < 2 or chunk_rows < 1:
        raise ValueError(f"input_size {input_size} and chunk_rows {chunk_rows}: need input_size "
                         ">= 2 (targets are half its size) and chunk_rows >= 1")
    folder = packed_dir(root, input_size, output_size)
    if not force and find_packed(root, input_size, output_size) == folder and \
            (folder / MANIFEST).is_file():
        return folder
    source = source_fingerprint(root)
    dataset = open_image_dataset(root, "all", input_size=input_size, output_size=output_size)
    n = len(dataset.rows)
    if n == 0:
        raise ValueError(f"{root}: {INDEX_NAME} has no rows; nothing to pack")
    plan = {"source": source, "input_size": input_size, "output_size": output_size,
            "rows": n, "chunk_rows": chunk_rows, "format_version": PACK_FORMAT_VERSION}
    _prepare_arrays(folder, plan, force)
    _pack_missing_chunks(dataset, folder, chunk_rows, workers, progress,
                         desc=f"pack {root.name} @ {input_size}")
    _write_manifest(folder, plan, dataset.rows)
    return folder


def ensure_packed(profile: Profile | str | None = None, *, root: str | os.PathLike | None = None,
                  workers: int | None = None, progress: bool | None = None) -> Path:
    """The profile's packed cache, built if missing or stale.

    With ``root`` omitted, the profile's dataset is made first if it is missing
    (:func:`evacamel.dataset.write.ensure_dataset`).
    """
    profile = get_profile(profile)
    root = Path(root) if root is not None else ensure_dataset(profile)
    folder = find_packed(root, profile.input_size, profile.output_size)
    if folder is not None:
        return folder
    with _build_lock(packed_dir(root, profile.input_size, profile.output_size)):
        return pack_dataset(root, profile.input_size, profile.output_size, workers=workers,
                            progress=progress)


def _build_lock(folder: Path, poll_s: float = 0.5):
    """One builder at a time per cache folder; the others wait, then find the finished cache."""
    return folder_lock(folder, poll_s)


# -- reading ------------------------------------------------------------------------------

class PackedDataset(Dataset):
    """One split of a packed cache.

    ``ds[i]`` is one sample dict (copied out of the memory map); ``ds.__getitems__(idx)``
    returns a whole batch dict, one memory copy per row and array (what
    :func:`evacamel.loading.loader.make_loader` uses with a ``BatchSampler``), written
    straight into shared memory inside DataLoader workers so it is not copied again on
    its way to the main process.

    Batch: ``{"image": uint8 B x 6 x S x S, "mask": uint8 B x 1 x s x s,
    "depth": uint16 B x 1 x s x s}``.
    """

    def __init__(self, folder: str | os.PathLike, split: str = "train"):
        self.folder = Path(folder)
        self.manifest = read_manifest(self.folder)
        self.split = split
        self.input_size = int(self.manifest["input_size"])
        self.output_size = int(self.manifest["output_size"])
        if split == "all":
            ids = range(self.manifest["count"])
        elif split in self.manifest["splits"]:
            ids = self.manifest["splits"][split]
        else:
            raise ValueError(f"{self.folder}: no split {split!r} in the cache "
                             f"(has: {', '.join(self.manifest['splits'])})")
        self.row_ids = np.asarray(ids, dtype=np.int64)
        self._arrays: dict[str, np.memmap] | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_arrays"] = None
        return state

    @property
    def arrays(self) -> dict[str, np.memmap]:
        """The memory-mapped arrays (opened on first use, in each process)."""
        if self._arrays is None:
            self._arrays = open_arrays(self.folder, "r")
            n = self.manifest["count"]
            for key, arr in self._arrays.items():
                if arr.shape[0] != n:
                    raise ValueError(f"{self.folder / _ARRAYS[key]}: {arr.shape[0]} rows, "
                                     f"manifest says {n}")
        return self._arrays

    def __len__(self) -> int:
        return len(self.row_ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        row = int(self.row_ids[i])
        return {k: torch.from_numpy(np.array(a[row])) for k, a in self.arrays.items()}

    def __getitems__(self, indices: list[int] | np.ndarray) -> dict[str, torch.Tensor]:
        rows = self.row_ids[np.asarray(indices, dtype=np.int64)].tolist()
        shared = get_worker_info() is not None
        batch = {}
        for key, arr in self.arrays.items():
            tensor, out = _empty_batch((len(rows), *arr.shape[1:]), arr.dtype, shared)
            for j, r in enumerate(rows):  # one memcpy per row (faster than np.take)
                out[j] = arr[r]
            batch[key] = tensor
        return batch


def _empty_batch(shape: tuple[int, ...], dtype: np.dtype,
                 shared: bool) -> tuple[torch.Tensor, np.ndarray]:
    """Uninitialised batch memory that is cheap to fill: ``(tensor, numpy view of it)``.

    In this process: a numpy array (numpy asks the kernel for transparent huge pages for
    large arrays, so filling it costs far fewer page faults than 4 KiB pages). In a
    DataLoader worker: a tensor allocated straight in shared memory, which the worker
    queue then hands to the main process without another copy (``torch.empty(...)
    .share_memory_()`` would copy once more).
    """
    if not shared:
        out = np.empty(shape, dtype=dtype)
        return torch.from_numpy(out), out
    tdtype = torch.uint16 if dtype == np.uint16 else torch.uint8
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    storage = torch.UntypedStorage._new_shared(nbytes)
    _populate(storage.data_ptr(), nbytes)
    tensor = torch.empty(0, dtype=tdtype).set_(storage, 0, shape)
    return tensor, tensor.numpy()


_MADV_POPULATE_WRITE = 23
_madvise: Any = None


def _populate(address: int, nbytes: int) -> None:
    """Pre-fault fresh shared memory in one system call (Linux >= 5.14), instead of one
    page fault per 4 KiB page while copying into it (about 1.4x faster batches in a
    worker). Best effort: does nothing where unsupported."""
    global _madvise
    if _madvise is None:
        _madvise = False
        if sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
                _madvise = libc.madvise
            except (OSError, AttributeError):
                pass
    if _madvise and nbytes >= 1 << 20 and _madvise(address, nbytes, _MADV_POPULATE_WRITE) != 0:
        _madvise = False  # EINVAL on older kernels: stop trying
