"""The on-disk dataset: write it (from the procedural world or your own folders), read it.

The layout is the one of ``ARCHITECTURE.md`` (the seed's, and more)::

    <root>/
      meta.json            format, generator, seed, sizes, counts, depth units; "complete"
      dataset_info.csv     one row per composite (see INDEX_COLUMNS)
      sources.json         the backgrounds and camels: split, seed or original file,
                           camera (backgrounds), meters_per_side/foot_v/attributes (camels)
      bg/bg_%04d.<ext>     backgrounds (CLAHE applied if asked), source_size
      fg/fg_%04d.png       camel sprites, RGBA, camel_size
      bg_depth/bg_%04d.png 16-bit, depth_size: the empty background's depth (m * 64)
      fg_bg/img_%08d.<ext> composites, source_size
      mask/img_%08d.png    8-bit L, 0/255, source_size: exactly the visible camel pixels
      depth/img_%08d.png   16-bit, depth_size: meters * 64 (nearest-sampled, no blending)
      dataset_<k>.zip      optional zip parts (``zip_parts``): the rows of part k
      dataset_bg.zip       with zip parts: bg/, bg_depth/, fg/ and sources.json

How it is written (:func:`write_dataset`):

1. **Plan** (cheap, no pixels): which backgrounds and camels are held out for test
   (``profile.test_fraction`` of each, drawn from the seed), and for every sample its
   background, camel and split. Train samples pair train backgrounds with train camels
   only, test samples test with test; the (background, camel) pairs of a split are
   visited in a seeded order, so every pair is used before any repeats, in runs that
   share a background (see ``_pair_sequence``).
2. **Sources**: backgrounds and camels are rendered (or read from your folders) once, in
   fixed groups, and written to ``bg/``, ``fg/``, ``bg_depth/``; then ``sources.json``.
   (When ``depth_size`` is smaller than ``source_size``, the compositing reads the
   background depth at full size from ``.work/bg_depth_full/``, so occlusion is exact.)
3. **Samples**, in fixed chunks of ``chunk_size`` samples, over worker processes. A
   chunk's random numbers come from ``(seed, chunk index)`` alone, and workers read the
   sources back *from the written files*, so the bytes do not depend on the number of
   workers, on sharding, or on interruptions. Each chunk's index rows go to
   ``.work/chunks/`` when all its files are written.
4. **Finalize**: ``dataset_info.csv`` (the chunks' rows in order), the zip parts, then
   ``meta.json`` with ``"complete": true``, last; ``.work/`` is removed.

Every file is written to a temporary name in its folder and renamed (``os.replace``),
so a killed run never leaves a half-written file. Rerun, it skips every chunk whose rows
and files exist and finishes the rest; on a complete dataset it changes nothing. A
folder that holds another dataset (other seed, sizes, profile, sources...) or files that
are not a dataset is refused, never overwritten.

Determinism: the same arguments give byte-identical files (fixed JPEG settings: quality
from the profile, 4:2:0, baseline, not optimised; mask and depth PNGs by
:func:`encode_png_gray` with a fixed filter and zlib level; torch single-threaded in the
compositing), whatever ``workers`` or ``shard``.
(On the same library versions: another libjpeg or zlib may encode differently.)

Sharding (several machines): ``shard=(i, n)`` writes the sources and the chunks
``c`` with ``c % n == i``. A shard that finds every chunk done finalizes; otherwise copy
the shards' folders into one (``.work/`` included, e.g. ``rsync -a``) and run
``evacamel make-dataset ... --finalize`` (or any unsharded run, which also writes what is
missing).

Your own pictures (see :mod:`evacamel.data.sources`): with your own backgrounds there is
no camera and no exact depth, so compositing uses the seed's recipe (``mode="seed"``),
no ``depth/`` or ``bg_depth/`` file is written and ``meta.json["depth"]["source"]`` is
``"none"``; ``dataset_info.csv`` still names the ``depth/`` files, which ``evacamel
depth`` (a monocular estimator) writes later. Your own camels work with either mode.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import multiprocessing as mp
import os
import shutil
import signal
import struct
import sys
import time
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from evacamel.data.depth_units import FAR_M, depth_meta, meters_to_png, png_to_meters
from evacamel.data.sources import FolderSources, folder_fingerprint, load_background, load_cutout
from evacamel.profiles import Profile, get_profile

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "INDEX_COLUMNS",
    "WriteInterrupted",
    "write_dataset",
    "ensure_dataset",
    "finalize_dataset",
    "read_meta",
    "read_index",
    "read_sources",
    "load_sample",
    "default_chunk_size",
    "encode_png_gray",
]

FORMAT = "evacamel-dataset"
FORMAT_VERSION = 1
INDEX_NAME = "dataset_info.csv"
META_NAME = "meta.json"
SOURCES_NAME = "sources.json"
WORK = ".work"
INDEX_COLUMNS = (
    "fg_bg_paths", "mask_paths", "selected_bg_paths", "depth_map_paths", "part",
    "sample_id", "fg_paths", "bg_id", "fg_id", "split", "x", "y", "w", "h", "flip",
    "distance_m", "visible_fraction",
)
_DATASET_ENTRIES = {META_NAME, INDEX_NAME, SOURCES_NAME, WORK, "bg", "fg", "fg_bg", "mask",
                    "depth", "bg_depth"}

JPEG_SUBSAMPLING = 2
"""4:2:0 chroma subsampling (PIL's code 2), as most cameras and the seed's OpenCV."""
RGBA_PNG_LEVEL = 6
"""zlib level of RGBA sprite (and PNG image) files, through PIL."""
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_BG_CACHE = 4
"""Decoded backgrounds kept per process (samples come in runs of one background)."""

# Purposes of derived random streams (never reorder: they fix the dataset's bytes).
_P_BG_SEED, _P_FG_SEED, _P_SPLIT_BG, _P_SPLIT_FG, _P_PAIRS, _P_CHUNK = 1, 2, 3, 4, 5, 6


class WriteInterrupted(RuntimeError):
    """Raised by the ``stop_after_chunks`` testing hook of :func:`write_dataset`."""


# -- small helpers ------------------------------------------------------------------------

def derive_seed(*keys: int) -> int:
    """A 63-bit seed from integer keys (``numpy.random.SeedSequence``): independent streams."""
    state = np.random.SeedSequence([int(k) for k in keys]).generate_state(2, np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1])) & (2**63 - 1)


def default_chunk_size(source_size: int) -> int:
    """Samples per chunk: 32 at <= 512 px, 8 at 1024 px (a chunk's batch stays ~100 MB)."""
    return int(max(1, min(32, 2**23 // (source_size * source_size))))


def _group_size(size: int) -> int:
    """Backgrounds or camels rendered per call (fixed by the size: determinism)."""
    return int(max(1, min(64, 2**22 // (size * size))))


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder."""
    tmp = _tmp_name(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _write_json(path: Path, obj: Any) -> None:
    _atomic_write(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode("utf-8"))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _clean_stale_temps(root: Path) -> None:
    """Remove ``.name.<pid>.tmp`` files left by dead processes (killed runs)."""
    for folder in [root, *(root / d for d in _DATASET_ENTRIES if (root / d).is_dir()),
                   root / WORK / "chunks", root / WORK / "sources", root / WORK / "bg_depth_full"]:
        if not folder.is_dir():
            continue
        with os.scandir(folder) as it:
            for entry in it:
                name = entry.name
                if name.startswith(".") and name.endswith(".tmp"):
                    pid = name[:-4].rsplit(".", 1)[-1]
                    if pid.isdigit() and not _pid_alive(int(pid)):
                        with contextlib.suppress(OSError):
                            os.unlink(entry.path)


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


# -- encoding -----------------------------------------------------------------------------

def _to_uint8(x: torch.Tensor) -> np.ndarray:
    """float ``C x H x W`` in [0, 1] -> uint8 ``H x W x C`` (or ``H x W`` for C = 1)."""
    a = (x.detach().float() * 255.0).add_(0.5).clamp_(0, 255).to(torch.uint8)  # round half up
    a = a.permute(1, 2, 0).contiguous().cpu().numpy()
    return a[..., 0] if a.shape[-1] == 1 else a


def encode_rgb(arr: np.ndarray, image_format: str, jpeg_quality: int) -> bytes:
    """uint8 ``H x W x 3`` -> JPEG or PNG bytes with the dataset's fixed settings."""
    buf = io.BytesIO()
    img = Image.fromarray(arr, "RGB")
    if image_format == "jpg":
        img.save(buf, "JPEG", quality=int(jpeg_quality), subsampling=JPEG_SUBSAMPLING,
                 optimize=False, progressive=False)
    elif image_format == "png":
        img.save(buf, "PNG", compress_level=RGBA_PNG_LEVEL)
    else:
        raise ValueError(f"image_format {image_format!r}: choose 'jpg' or 'png'")
    return buf.getvalue()


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def encode_png_gray(arr: np.ndarray, *, sub_filter: bool, level: int,
                    strategy: int = zlib.Z_DEFAULT_STRATEGY) -> bytes:
    """A greyscale PNG (8-bit from uint8, 16-bit from uint16) of ``H x W`` ``arr``.

    A minimal encoder (signature, IHDR, one IDAT, IEND) because PIL cannot choose the
    row filter: its adaptive filtering costs twice the time. ``sub_filter`` uses PNG
    filter 1 (difference with the pixel to the left: smooth depth compresses well),
    else filter 0. Any PNG reader decodes it; the bytes are a pure function of the input.
    """
    if arr.ndim != 2 or arr.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"encode_png_gray: need H x W uint8 or uint16, got {arr.dtype} {arr.shape}")
    h, w = arr.shape
    bpp = arr.dtype.itemsize
    raw = np.ascontiguousarray(arr, dtype=">u2" if bpp == 2 else np.uint8).view(np.uint8).reshape(h, w * bpp)
    body = np.empty((h, w * bpp + 1), dtype=np.uint8)
    body[:, 0] = 1 if sub_filter else 0
    body[:, 1:] = raw
    if sub_filter:
        np.subtract(raw[:, bpp:], raw[:, :-bpp], out=body[:, 1 + bpp:])  # uint8 wraps: mod 256
    comp = zlib.compressobj(level, zlib.DEFLATED, 15, 9, strategy)
    idat = comp.compress(body.tobytes()) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", w, h, 8 * bpp, 0, 0, 0, 0)
    return _PNG_SIGNATURE + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def encode_mask(mask: np.ndarray) -> bytes:
    """uint8 ``H x W`` (0/255) -> 8-bit greyscale PNG bytes (run-length deflate: tiny, fast)."""
    return encode_png_gray(mask, sub_filter=False, level=6, strategy=zlib.Z_RLE)


def encode_depth(depth_m: torch.Tensor) -> bytes:
    """Meters ``1 x H x W`` (or ``H x W``) -> 16-bit greyscale PNG bytes (meters * 64)."""
    values = meters_to_png(depth_m.squeeze(0) if depth_m.ndim == 3 else depth_m)
    return encode_png_gray(values, sub_filter=True, level=1)


def encode_rgba(rgba: torch.Tensor) -> bytes:
    """float ``4 x h x w`` RGBA in [0, 1] -> RGBA PNG bytes."""
    buf = io.BytesIO()
    Image.fromarray(_to_uint8(rgba), "RGBA").save(buf, "PNG", compress_level=RGBA_PNG_LEVEL)
    return buf.getvalue()


def _resize_depth(depth: torch.Tensor, size: int) -> torch.Tensor:
    """``... x 1 x H x W`` meters -> ``size x size`` by nearest sampling (no blended depths)."""
    if depth.shape[-1] == size and depth.shape[-2] == size:
        return depth
    squeeze = depth.ndim == 3
    d = depth[None] if squeeze else depth
    d = F.interpolate(d, size=(size, size), mode="nearest-exact")
    return d[0] if squeeze else d


def _resize_rgba(rgba: torch.Tensor, size: int) -> torch.Tensor:
    """Square straight-alpha ``4 x s x s`` -> ``4 x size x size`` (premultiplied, antialiased)."""
    if rgba.shape[-1] == size and rgba.shape[-2] == size:
        return rgba
    a = rgba[3:4]
    x = torch.cat([rgba[:3] * a, a])[None]
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)[0]
    a = x[3:4].clamp(0, 1)
    rgb = torch.where(a > 1e-6, x[:3] / a.clamp_min(1e-6), torch.zeros_like(x[:3]))
    return torch.cat([rgb.clamp(0, 1), a])


# -- the plan -----------------------------------------------------------------------------

@dataclass
class _Plan:
    """Everything about a dataset except pixels; picklable (sent to workers)."""

    profile: Profile
    seed: int
    mode: str
    clahe: bool
    chunk_size: int
    zip_parts: int
    folders: FolderSources
    bg_files: list[Path] | None
    fg_files: list[Path] | None
    bg_test: np.ndarray
    fg_test: np.ndarray
    sample_bg: np.ndarray
    sample_fg: np.ndarray
    sample_test: np.ndarray
    meta: dict = field(default_factory=dict)

    @property
    def n_samples(self) -> int:
        return len(self.sample_bg)

    @property
    def n_chunks(self) -> int:
        return (self.n_samples + self.chunk_size - 1) // self.chunk_size

    @property
    def n_bg(self) -> int:
        return len(self.bg_test)

    @property
    def n_fg(self) -> int:
        return len(self.fg_test)

    @property
    def has_depth(self) -> bool:
        return self.bg_files is None

    @property
    def ext(self) -> str:
        return self.profile.image_format

    def chunk_range(self, c: int) -> range:
        return range(c * self.chunk_size, min((c + 1) * self.chunk_size, self.n_samples))

    # relative paths (posix, as written in dataset_info.csv)
    def bg_rel(self, i: int) -> str:
        return f"bg/bg_{i:04d}.{self.ext}"

    def fg_rel(self, j: int) -> str:
        return f"fg/fg_{j:04d}.png"

    def bg_depth_rel(self, i: int) -> str:
        return f"bg_depth/bg_{i:04d}.png"

    def bg_depth_full_rel(self, i: int) -> str:
        """The depth the compositing reads: source_size (a work file when depth_size differs)."""
        if self.profile.depth_size == self.profile.source_size:
            return self.bg_depth_rel(i)
        return f"{WORK}/bg_depth_full/bg_{i:04d}.png"

    def sample_rels(self, k: int) -> tuple[str, str, str]:
        return (f"fg_bg/img_{k:08d}.{self.ext}", f"mask/img_{k:08d}.png",
                f"depth/img_{k:08d}.png")


def _split_ids(n: int, fraction: float, seed: int, purpose: int) -> np.ndarray:
    """Boolean ``n``: which ids are held out for test (``round(n * fraction)``, >= 1 and
    <= n - 1 when ``fraction > 0`` and ``n >= 2``), drawn from the seed."""
    n_test = int(round(n * fraction))
    if fraction > 0 and n >= 2:
        n_test = min(max(n_test, 1), n - 1)
    else:
        n_test = 0
    gen = torch.Generator().manual_seed(derive_seed(seed, purpose))
    perm = torch.randperm(n, generator=gen).numpy()
    test = np.zeros(n, dtype=bool)
    test[perm[:n_test]] = True
    return test


def _pair_sequence(bgs: np.ndarray, fgs: np.ndarray, n: int, seed: int,
                   stream: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` (background, camel) pairs, in runs of one background.

    Rounds visit every background once (in a seeded order), each for a run of
    ``L = min(#camels, ceil(n / #backgrounds))`` camels taken from that background's own
    seeded camel order, continuing where its previous run stopped. So every background is
    used, every pair is used once before any repeats, and consecutive samples share a
    background (a worker decodes it once per run).
    """
    nb, nf = len(bgs), len(fgs)
    run = int(min(nf, max(1, -(-n // nb))))
    gen = torch.Generator().manual_seed(derive_seed(seed, _P_PAIRS, stream))
    fg_order = torch.argsort(torch.rand(nb, nf, generator=gen), dim=1).numpy()
    out_b, out_f, have, r = [], [], 0, 0
    while have < n:
        b = torch.randperm(nb, generator=gen).numpy().repeat(run)
        f = fg_order[b, (r * run + np.tile(np.arange(run), nb)) % nf]
        out_b.append(bgs[b])
        out_f.append(fgs[f])
        have += len(b)
        r += 1
    return np.concatenate(out_b)[:n], np.concatenate(out_f)[:n]


def _assign_samples(n: int, bg_test: np.ndarray, fg_test: np.ndarray, fraction: float,
                    seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per sample: background id, camel id, is-test. Test samples are spread evenly
    (every 1/fraction-th sample), and use test backgrounds and test camels only."""
    has_test = bool(bg_test.any() and fg_test.any())
    n_test = int(round(n * fraction)) if has_test else 0
    if has_test and n >= 2:
        n_test = min(max(n_test, 1), n - 1)
    k = np.arange(n)
    sample_test = ((k + 1) * n_test // max(n, 1) - k * n_test // max(n, 1)) == 1
    sample_bg = np.zeros(n, dtype=np.int64)
    sample_fg = np.zeros(n, dtype=np.int64)
    for is_test in (False, True):
        where = np.flatnonzero(sample_test == is_test)
        if len(where):
            sample_bg[where], sample_fg[where] = _pair_sequence(
                np.flatnonzero(bg_test == is_test), np.flatnonzero(fg_test == is_test),
                len(where), seed, int(is_test))
    return sample_bg, sample_fg, sample_test


def _as_folders(source: Any) -> FolderSources:
    if source is None or (isinstance(source, str) and source == "procedural"):
        return FolderSources()
    if isinstance(source, FolderSources):
        return source
    if isinstance(source, Mapping):
        unknown = set(source) - {"backgrounds", "camels", "camel_masks"}
        if unknown:
            raise ValueError(f"source: unknown key(s) {sorted(unknown)}; use backgrounds, "
                             "camels, camel_masks")
        return FolderSources.of(source.get("backgrounds"), source.get("camels"),
                                source.get("camel_masks"))
    raise ValueError(f"source={source!r}: use 'procedural', a FolderSources or a dict "
                     "{'backgrounds': DIR, 'camels': DIR, 'camel_masks': DIR}")


def _make_plan(profile: Profile, *, seed: int | None, source: Any, mode: str | None,
               clahe: bool, zip_parts: int, chunk_size: int | None) -> _Plan:
    from evacamel import __version__

    folders = _as_folders(source)
    seed = int(profile.seed if seed is None else seed)
    if seed < 0:
        raise ValueError(f"seed={seed}: must be >= 0")
    if profile.samples < 1:
        raise ValueError(f"samples={profile.samples}: must be >= 1")
    if profile.image_format not in ("jpg", "png"):
        raise ValueError(f"image_format={profile.image_format!r}: choose 'jpg' or 'png'")
    if zip_parts < 0:
        raise ValueError(f"zip_parts={zip_parts}: must be >= 0")
    bg_files, fg_files = folders.check(profile.source_size)
    if mode is None:
        mode = "seed" if bg_files is not None else profile.compose_mode
    if mode not in ("perspective", "seed"):
        raise ValueError(f"mode={mode!r}: choose 'perspective' or 'seed'")
    if bg_files is not None and mode == "perspective":
        raise ValueError(f"{folders.backgrounds}: your own backgrounds have no camera and no "
                         "depth, so camels cannot stand on their ground; use mode='seed' "
                         "(--mode seed)")
    n_bg = len(bg_files) if bg_files is not None else profile.n_backgrounds
    n_fg = len(fg_files) if fg_files is not None else profile.n_camels
    if n_bg < 1 or n_fg < 1:
        raise ValueError(f"need at least one background and one camel (got {n_bg}, {n_fg})")
    bg_test = _split_ids(n_bg, profile.test_fraction, seed, _P_SPLIT_BG)
    fg_test = _split_ids(n_fg, profile.test_fraction, seed, _P_SPLIT_FG)
    sample_bg, sample_fg, sample_test = _assign_samples(
        profile.samples, bg_test, fg_test, profile.test_fraction, seed)
    chunk_size = int(chunk_size or default_chunk_size(profile.source_size))

    def describe(files: list[Path] | None, folder: Path | None) -> Any:
        if files is None:
            return "procedural"
        return {"folder": str(folder), "files": len(files), "fingerprint": folder_fingerprint(files)}

    has_depth = bg_files is None
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "generator": {
            "name": "evacamel", "version": __version__,
            "source": "procedural" if bg_files is None and fg_files is None else "folders",
            "backgrounds": describe(bg_files, folders.backgrounds),
            "camels": describe(fg_files, folders.camels),
            "chunk_size": chunk_size,
        },
        "seed": seed,
        "profile": profile.name,
        "compose_mode": mode,
        "clahe": bool(clahe),
        "source_size": profile.source_size,
        "depth_size": profile.depth_size,
        "camel_size": profile.camel_size,
        "image_format": profile.image_format,
        "jpeg_quality": profile.jpeg_quality,
        "test_fraction": profile.test_fraction,
        "zip_parts": int(zip_parts),
        "counts": {"backgrounds": n_bg, "camels": n_fg, "samples": int(profile.samples),
                   "train": int((~sample_test).sum()), "test": int(sample_test.sum()),
                   "train_backgrounds": int((~bg_test).sum()), "test_backgrounds": int(bg_test.sum()),
                   "train_camels": int((~fg_test).sum()), "test_camels": int(fg_test.sum())},
        "depth": {**depth_meta(), "source": "exact" if has_depth else "none"},
        "complete": False,
    }
    return _Plan(profile, seed, mode, bool(clahe), chunk_size, int(zip_parts), folders,
                 bg_files, fg_files, bg_test, fg_test, sample_bg, sample_fg, sample_test, meta)


def _identity(meta: Mapping) -> dict:
    """The fields that make two dataset folders the same dataset."""
    gen = dict(meta.get("generator") or {})
    gen.pop("version", None)
    for key in ("backgrounds", "camels"):
        if isinstance(gen.get(key), dict):
            gen[key] = {k: v for k, v in gen[key].items() if k != "folder"}
    # zip_parts only packs the same files differently: the run that finishes decides it.
    ident = {k: v for k, v in meta.items()
             if k not in ("generator", "complete", "stats", "depth", "zip_parts")}
    ident["generator"] = gen
    return json.loads(json.dumps(ident))


def _differences(a: Mapping, b: Mapping, prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, Mapping) and isinstance(vb, Mapping):
            out += _differences(va, vb, f"{prefix}{key}.")
        elif va != vb:
            out.append(f"{prefix}{key}: {va!r} there, {vb!r} asked")
    return out


def _prepare_root(root: Path, plan: _Plan) -> bool:
    """Check ``root`` can hold this dataset and write its (unfinished) meta.json.

    Returns:
        True if ``root`` already holds this dataset, complete.

    Raises:
        FileExistsError: ``root`` is a file, holds another dataset, or unrelated files.
    """
    if root.exists() and not root.is_dir():
        raise FileExistsError(f"{root}: exists and is not a folder")
    root.mkdir(parents=True, exist_ok=True)
    meta_path = root / META_NAME
    if meta_path.is_file():
        try:
            there = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise FileExistsError(f"{meta_path}: unreadable meta.json ({exc}); this folder is "
                                  "not a dataset this run can continue; choose another --out") from None
        if there.get("format") != FORMAT:
            raise FileExistsError(f"{meta_path}: not an {FORMAT} meta.json; choose another folder")
        diffs = _differences(_identity(there), _identity(plan.meta))
        if diffs:
            raise FileExistsError(
                f"{root}: holds another dataset ({'; '.join(diffs[:6])}); it is left untouched: "
                "choose another output folder, or delete this one to rebuild it")
        return bool(there.get("complete"))
    foreign = sorted(p.name for p in root.iterdir()
                     if p.name not in _DATASET_ENTRIES and not p.name.endswith(".tmp"))
    ours = sorted(p.name for p in root.iterdir() if p.name in _DATASET_ENTRIES)
    if foreign or ours:
        raise FileExistsError(
            f"{root}: not empty and has no {META_NAME} (holds {', '.join((foreign + ours)[:5])}"
            f"{', ...' if len(foreign) + len(ours) > 5 else ''}); it is left untouched: "
            "choose an empty or new output folder")
    _write_json(meta_path, plan.meta)
    return False


# -- the worker ---------------------------------------------------------------------------

def _camera_to_dict(camera: Any) -> Any:
    if camera is None:
        return None
    if dataclasses.is_dataclass(camera):
        return {k: (float(v) if isinstance(v, float) else v)
                for k, v in dataclasses.asdict(camera).items()}
    raise TypeError(f"cannot record camera {camera!r}")


def _camera_from_dict(d: Any) -> Any:
    if d is None:
        return None
    from evacamel.synth import Camera

    return Camera(**d)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


class _Writer:
    """Writes one group of sources or one chunk of samples; one per process."""

    def __init__(self, root: Path, plan: _Plan):
        self.root = root
        self.plan = plan
        self._bg: dict[int, tuple] = {}  # LRU (insertion order) of decoded backgrounds
        self._fg: dict[int, torch.Tensor] = {}  # uint8 RGBA sprites
        self._sources: dict | None = None

    # -- sources --------------------------------------------------------------------
    def _side(self, kind: str, i: int) -> Path:
        return self.root / WORK / "sources" / f"{kind}_{i:04d}.json"

    def source_done(self, kind: str, i: int) -> bool:
        return self._side(kind, i).is_file()

    def write_bg_group(self, ids: list[int]) -> int:
        """Render (or read) backgrounds ``ids`` and write those not yet written."""
        plan, p = self.plan, self.plan.profile
        todo = [i for i in ids if not self.source_done("bg", i)]
        if not todo:
            return 0
        if plan.bg_files is None:
            from evacamel.synth import render_backgrounds

            seeds = [derive_seed(plan.seed, _P_BG_SEED, i) % 2**31 for i in ids]
            bgs = render_backgrounds(seeds, p.source_size, device="cpu")
            rgb, depth, cameras = bgs.rgb, bgs.depth, list(bgs.cameras)
        else:
            rgb = torch.stack([load_background(plan.bg_files[i], p.source_size) for i in ids])
            rgb = rgb.float() / 255.0
            depth, cameras, seeds = None, [None] * len(ids), [None] * len(ids)
        if plan.clahe:
            from evacamel.data.enhance import clahe

            rgb = clahe(rgb)
        for n, i in enumerate(ids):
            if i not in todo:
                continue
            _atomic_write(self.root / plan.bg_rel(i),
                          encode_rgb(_to_uint8(rgb[n]), p.image_format, p.jpeg_quality))
            if depth is not None:
                _atomic_write(self.root / plan.bg_depth_rel(i),
                              encode_depth(_resize_depth(depth[n], p.depth_size)))
                if plan.bg_depth_full_rel(i) != plan.bg_depth_rel(i):
                    _atomic_write(self.root / plan.bg_depth_full_rel(i), encode_depth(depth[n]))
            side = {"id": i, "file": plan.bg_rel(i), "split": "test" if plan.bg_test[i] else "train",
                    "seed": seeds[n],
                    "origin": None if plan.bg_files is None else plan.bg_files[i].name,
                    "depth_file": plan.bg_depth_rel(i) if depth is not None else None,
                    "camera": _camera_to_dict(cameras[n])}
            _write_json(self._side("bg", i), side)
        return len(todo)

    def write_fg_group(self, ids: list[int]) -> int:
        """Render (or read) camels ``ids`` and write those not yet written."""
        plan, p = self.plan, self.plan.profile
        todo = [j for j in ids if not self.source_done("fg", j)]
        if not todo:
            return 0
        if plan.fg_files is None:
            from evacamel.synth import render_camels

            seeds = [derive_seed(plan.seed, _P_FG_SEED, j) % 2**31 for j in ids]
            sprites = render_camels(seeds, p.camel_size, device="cpu")
        else:
            from evacamel.synth import sprite_from_cutout

            sprites = []
            for j in ids:
                try:
                    sprite = sprite_from_cutout(load_cutout(plan.fg_files[j], plan.folders.camel_masks))
                except ValueError as exc:
                    msg = str(exc)
                    raise ValueError(msg if str(plan.fg_files[j]) in msg
                                     else f"{plan.fg_files[j]}: {msg}") from None
                sprite.rgba = _resize_rgba(sprite.rgba, p.camel_size)
                sprites.append(sprite)
            seeds = [None] * len(ids)
        for n, j in enumerate(ids):
            if j not in todo:
                continue
            s = sprites[n]
            _atomic_write(self.root / plan.fg_rel(j), encode_rgba(s.rgba))
            side = {"id": j, "file": plan.fg_rel(j), "split": "test" if plan.fg_test[j] else "train",
                    "seed": seeds[n],
                    "origin": None if plan.fg_files is None else plan.fg_files[j].name,
                    "meters_per_side": float(s.meters_per_side), "foot_v": float(s.foot_v),
                    "attributes": _jsonable(dict(getattr(s, "attributes", {}) or {}))}
            _write_json(self._side("fg", j), side)
        return len(todo)

    def write_sources_json(self) -> None:
        plan = self.plan
        bgs = [json.loads(self._side("bg", i).read_text()) for i in range(plan.n_bg)]
        fgs = [json.loads(self._side("fg", j).read_text()) for j in range(plan.n_fg)]
        _write_json(self.root / SOURCES_NAME, {"backgrounds": bgs, "camels": fgs})

    # -- reading sources back ------------------------------------------------------------
    def sources(self) -> dict:
        if self._sources is None:
            self._sources = json.loads((self.root / SOURCES_NAME).read_text(encoding="utf-8"))
        return self._sources

    def background(self, i: int) -> tuple[torch.Tensor, np.ndarray, torch.Tensor, Any]:
        """Background ``i`` read back from its files (a small LRU cache per process).

        Returns float rgb ``3 x S x S`` in [0, 1], the same as uint8 ``S x S x 3`` numpy,
        float depth ``1 x S x S`` meters (``FAR_M`` without depth), and its camera.
        """
        from evacamel.data.io import read_image

        hit = self._bg.pop(i, None)
        if hit is None:
            plan, S = self.plan, self.plan.profile.source_size
            u8 = read_image(self.root / plan.bg_rel(i), channels=3)
            if plan.has_depth:
                depth = png_to_meters(read_image(self.root / plan.bg_depth_full_rel(i)).to(torch.int32))
            else:
                depth = torch.full((1, S, S), FAR_M)
            camera = _camera_from_dict(self.sources()["backgrounds"][i].get("camera"))
            hit = (u8.float().div_(255.0), u8.permute(1, 2, 0).contiguous().numpy(), depth, camera)
            while len(self._bg) >= _BG_CACHE:
                self._bg.pop(next(iter(self._bg)))
        self._bg[i] = hit  # most recently used last
        return hit

    def sprite(self, j: int) -> Any:
        """Camel ``j`` read back from its file and ``sources.json`` (float RGBA sprite)."""
        from evacamel.data.io import read_image
        from evacamel.synth import CamelSprite

        if j not in self._fg:
            path = self.root / self.plan.fg_rel(j)
            rgba = read_image(path)
            if rgba.shape[0] != 4:
                raise ValueError(f"{path}: camel sprite must be RGBA, has {rgba.shape[0]} channels")
            self._fg[j] = rgba  # uint8: a quarter of the memory
        info = self.sources()["camels"][j]
        return CamelSprite(rgba=self._fg[j].float().div_(255.0), meters_per_side=info["meters_per_side"],
                           foot_v=info["foot_v"], attributes=info["attributes"], seed=info["seed"])

    # -- samples ----------------------------------------------------------------------
    def chunk_csv(self, c: int) -> Path:
        return self.root / WORK / "chunks" / f"chunk_{c:06d}.csv"

    def chunk_done(self, c: int) -> bool:
        if not self.chunk_csv(c).is_file():
            return False
        return all((self.root / rel).is_file() for k in self.plan.chunk_range(c)
                   for rel in self._needed(k))

    def _needed(self, k: int) -> tuple[str, ...]:
        rels = self.plan.sample_rels(k)
        return rels if self.plan.has_depth else rels[:2]

    def write_chunk(self, c: int) -> int:
        """Compose chunk ``c`` and write its missing files, then its rows; returns its size.

        Samples are composed one at a time in order, their placements drawn from one
        generator seeded by ``(seed, c)``, so a chunk's bytes depend on nothing else.
        Only the sprite's box can differ from the background, so the composite's uint8
        image and the mask are built from that box (the rest is the background's bytes).
        """
        from evacamel.data.compose import compose, sample_placements
        from evacamel.synth import Backgrounds

        plan, p = self.plan, self.plan.profile
        S = p.source_size
        ks = list(plan.chunk_range(c))
        if self.chunk_done(c):
            return len(ks)
        gen = torch.Generator().manual_seed(derive_seed(plan.seed, _P_CHUNK, c))
        rows = []
        for k in ks:
            i, j = int(plan.sample_bg[k]), int(plan.sample_fg[k])
            rgb, rgb_u8, depth, camera = self.background(i)
            bg = Backgrounds(rgb=rgb[None], depth=depth[None], cameras=[camera],
                             seeds=[self.sources()["backgrounds"][i]["seed"]])
            sprite = self.sprite(j)
            pl = sample_placements(bg, [sprite], mode=plan.mode, generator=gen)[0]
            comp = compose(bg, [sprite], [pl], mode=plan.mode)
            # the box the sprite may touch (2 px margin over any rounding), clipped
            x0, y0 = max(0, int(np.floor(pl.x)) - 2), max(0, int(np.floor(pl.y)) - 2)
            x1, y1 = min(S, int(np.ceil(pl.x + pl.w)) + 2), min(S, int(np.ceil(pl.y + pl.h)) + 2)
            fg_bg_rel, mask_rel, depth_rel = plan.sample_rels(k)
            if not (self.root / fg_bg_rel).is_file():
                img = rgb_u8.copy()
                if x1 > x0 and y1 > y0:
                    img[y0:y1, x0:x1] = _to_uint8(comp.fg_bg[0, :, y0:y1, x0:x1])
                _atomic_write(self.root / fg_bg_rel, encode_rgb(img, p.image_format, p.jpeg_quality))
            if not (self.root / mask_rel).is_file():
                m = np.zeros((S, S), dtype=np.uint8)
                if x1 > x0 and y1 > y0:
                    m[y0:y1, x0:x1] = (comp.mask[0, 0, y0:y1, x0:x1] > 0.5).numpy().astype(np.uint8) * 255
                _atomic_write(self.root / mask_rel, encode_mask(m))
            if plan.has_depth and not (self.root / depth_rel).is_file():
                _atomic_write(self.root / depth_rel, encode_depth(_resize_depth(comp.depth[0], p.depth_size)))
            rows.append({
                "fg_bg_paths": fg_bg_rel, "mask_paths": mask_rel,
                "selected_bg_paths": plan.bg_rel(i), "depth_map_paths": depth_rel,
                "part": "", "sample_id": k, "fg_paths": plan.fg_rel(j),
                "bg_id": i, "fg_id": j, "split": "test" if plan.sample_test[k] else "train",
                "x": _num(pl.x), "y": _num(pl.y), "w": _num(pl.w), "h": _num(pl.h),
                "flip": int(bool(pl.flip)),
                "distance_m": "" if pl.distance_m is None else f"{float(pl.distance_m):.3f}",
                "visible_fraction": f"{float(comp.visible_fraction[0]):.4f}",
            })
        _atomic_write(self.chunk_csv(c), _rows_to_csv(rows).encode("utf-8"))
        return len(ks)


def _num(v: Any) -> str:
    v = float(v)
    return str(int(v)) if v.is_integer() else f"{v:.2f}"


def _rows_to_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(INDEX_COLUMNS), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


_WORKER: _Writer | None = None


def _init_worker(root: Path, plan: _Plan) -> None:
    global _WORKER
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
    torch.set_num_threads(1)
    _WORKER = _Writer(root, plan)


def _run_task(task: tuple[str, Any]) -> tuple[str, int]:
    assert _WORKER is not None
    kind, arg = task
    if kind == "bg":
        return kind, _WORKER.write_bg_group(arg)
    if kind == "fg":
        return kind, _WORKER.write_fg_group(arg)
    return kind, _WORKER.write_chunk(arg)


def _run_tasks(root: Path, plan: _Plan, tasks: list[tuple[str, Any]], workers: int,
               on_done) -> None:
    """Run tasks in-process (workers = 1) or over a process pool; ``on_done(kind, n)``."""
    global _WORKER
    if not tasks:
        return
    if workers <= 1 or len(tasks) == 1:
        saved = _WORKER
        _WORKER = _Writer(root, plan)
        try:
            with _torch_threads(1):
                for task in tasks:
                    on_done(*_run_task(task))
        finally:
            _WORKER = saved
        return
    method = "fork" if sys.platform.startswith("linux") else "spawn"
    ctx = mp.get_context(method)
    pool = ctx.Pool(min(workers, len(tasks)), initializer=_init_worker, initargs=(root, plan))
    try:
        for kind, n in pool.imap_unordered(_run_task, tasks):
            on_done(kind, n)
        pool.close()
    except BaseException:
        pool.terminate()
        raise
    finally:
        pool.join()


# -- finalizing ---------------------------------------------------------------------------

def _write_zip(path: Path, root: Path, rels: list[str]) -> None:
    """A deterministic stored (uncompressed) zip of ``rels`` (relative to ``root``)."""
    tmp = _tmp_name(path)
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
            for rel in rels:
                info = zipfile.ZipInfo(rel, date_time=_ZIP_DATE)
                info.external_attr = 0o644 << 16
                info.compress_type = zipfile.ZIP_STORED
                zf.writestr(info, (root / rel).read_bytes())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _finalize(root: Path, plan: _Plan, *, require: bool) -> bool:
    """Merge the chunks' rows, write zips and the complete meta.json. False if chunks are missing."""
    writer = _Writer(root, plan)
    missing = [c for c in range(plan.n_chunks) if not writer.chunk_csv(c).is_file()]
    if missing:
        if require:
            raise ValueError(
                f"{root}: cannot finalize: {len(missing)} of {plan.n_chunks} chunks are not written "
                f"(first: chunk {missing[0]}, samples {plan.chunk_range(missing[0]).start}.."
                f"{plan.chunk_range(missing[0]).stop - 1}); run the missing shards into this folder "
                "(or an unsharded run) first")
        return False
    rows: list[dict] = []
    for c in range(plan.n_chunks):
        with open(writer.chunk_csv(c), newline="", encoding="utf-8") as f:
            rows += list(csv.DictReader(f))
    for row in rows:
        for rel in (row["fg_bg_paths"], row["mask_paths"]) + \
                ((row["depth_map_paths"],) if plan.has_depth else ()):
            if not (root / rel).is_file():
                raise FileNotFoundError(f"{root / rel}: listed in chunk rows but missing; "
                                        f"delete {root / WORK / 'chunks'} and rerun to rewrite it")
    n = len(rows)
    parts = max(plan.zip_parts, 1)
    for r, row in enumerate(rows):
        row["part"] = r * parts // n if plan.zip_parts else 0
    _atomic_write(root / INDEX_NAME, _rows_to_csv(rows).encode("utf-8"))
    if plan.zip_parts:
        for part in range(plan.zip_parts):
            path = root / f"dataset_{part}.zip"
            if path.is_file():
                continue
            rels = []
            for row in rows:
                if row["part"] == part:
                    rels += [row["fg_bg_paths"], row["mask_paths"]]
                    if plan.has_depth:
                        rels.append(row["depth_map_paths"])
            _write_zip(path, root, rels)
        path = root / "dataset_bg.zip"
        if not path.is_file():
            rels = [plan.bg_rel(i) for i in range(plan.n_bg)]
            if plan.has_depth:
                rels += [plan.bg_depth_rel(i) for i in range(plan.n_bg)]
            rels += [plan.fg_rel(j) for j in range(plan.n_fg)] + [SOURCES_NAME]
            _write_zip(path, root, rels)
    meta = dict(plan.meta)
    meta["complete"] = True
    _write_json(root / META_NAME, meta)
    shutil.rmtree(root / WORK, ignore_errors=True)
    return True


# -- the public API -----------------------------------------------------------------------

def _parse_shard(shard: Any) -> tuple[int, int]:
    if shard is None:
        return 0, 1
    if isinstance(shard, str):
        try:
            i, n = (int(v) for v in shard.split("/"))
        except ValueError:
            raise ValueError(f"shard {shard!r}: write it as i/n, e.g. 0/4") from None
    else:
        i, n = (int(v) for v in shard)
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"shard {i}/{n}: need 0 <= i < n")
    return i, n


def _write_all(root: Path, plan: _Plan, *, shard_i: int, shard_n: int, workers: int,
               disable: bool | None, stop_after_chunks: int | None) -> None:
    """Stages 1-3 of :func:`write_dataset` (sources, samples, finalize)."""
    from tqdm.auto import tqdm

    profile = plan.profile
    # 1. sources (every shard writes them all: identical bytes, atomic renames)
    writer = _Writer(root, plan)
    g_bg, g_fg = _group_size(profile.source_size), _group_size(profile.camel_size)
    tasks: list[tuple[str, Any]] = []
    for kind, n, g in (("bg", plan.n_bg, g_bg), ("fg", plan.n_fg, g_fg)):
        for start in range(0, n, g):
            ids = list(range(start, min(start + g, n)))
            if not all(writer.source_done(kind, i) for i in ids):
                tasks.append((kind, ids))
    if tasks or not (root / SOURCES_NAME).is_file():
        todo = sum(len(ids) for _, ids in tasks)
        with tqdm(total=plan.n_bg + plan.n_fg, initial=plan.n_bg + plan.n_fg - todo,
                  desc="backgrounds and camels", unit="img", disable=disable) as bar:
            _run_tasks(root, plan, tasks, workers, lambda kind, n: bar.update(n))
        writer.write_sources_json()

    # 2. samples
    if stop_after_chunks is not None and stop_after_chunks <= 0:
        raise WriteInterrupted("stopped before the first chunk (testing hook)")
    mine = [c for c in range(plan.n_chunks) if c % shard_n == shard_i]
    todo_chunks = [c for c in mine if not writer.chunk_done(c)]
    total = sum(len(plan.chunk_range(c)) for c in mine)
    left = sum(len(plan.chunk_range(c)) for c in todo_chunks)
    if todo_chunks:
        done_chunks = 0

        def on_chunk(kind: str, n: int) -> None:
            nonlocal done_chunks
            bar.update(n)
            done_chunks += 1
            if stop_after_chunks is not None and done_chunks >= stop_after_chunks:
                raise WriteInterrupted(f"stopped after {done_chunks} chunks (testing hook)")

        with tqdm(total=total, initial=total - left, desc="samples", unit="sample",
                  disable=disable, smoothing=0.1) as bar:
            _run_tasks(root, plan, [("chunk", c) for c in todo_chunks], workers, on_chunk)

    # 3. finalize when every chunk is there (an unsharded run, or the last shard)
    _finalize(root, plan, require=shard_n == 1)


def write_dataset(out: str | os.PathLike, profile: Profile | str | None = None, *,
                  seed: int | None = None, source: Any = "procedural",
                  shard: tuple[int, int] | str | None = None, workers: int | None = None,
                  progress: bool | None = True, zip_parts: int = 0, clahe: bool = False,
                  mode: str | None = None, chunk_size: int | None = None,
                  finalize_only: bool = False, stop_after_chunks: int | None = None) -> Path:
    """Write (or finish) the dataset of ``profile`` in ``out``; see the module doc.

    Args:
        out: the dataset folder (created; must be empty or hold this same dataset).
        profile: a :class:`~evacamel.profiles.Profile` or its name (sizes and counts:
            ``n_backgrounds``, ``n_camels``, ``samples``, ``test_fraction``,
            ``source_size``, ``depth_size``, ``camel_size``, ``image_format``,
            ``jpeg_quality``, ``compose_mode``).
        seed: the dataset's seed (default ``profile.seed``); everything follows from it.
        source: ``"procedural"`` (default), or your folders as a
            :class:`~evacamel.data.sources.FolderSources` or a dict with keys
            ``backgrounds``, ``camels``, ``camel_masks`` (either folder may be left out
            to use the procedural world for that part).
        shard: ``(i, n)`` or ``"i/n"``: write only chunks ``c % n == i`` (plus sources).
        workers: processes (default: every usable CPU); 1 runs in this process.
        progress: show tqdm progress bars (``None``: only in a terminal or notebook).
        zip_parts: also write ``dataset_0.zip`` ... ``dataset_<N-1>.zip`` and
            ``dataset_bg.zip`` (the seed shipped 10 parts).
        clahe: equalise the backgrounds' brightness with CLAHE (the seed's step).
        mode: ``"perspective"`` or ``"seed"`` (default: the profile's; ``"seed"`` with
            your own backgrounds).
        chunk_size: samples per chunk (default :func:`default_chunk_size`); part of the
            dataset's identity (other chunks, other random draws).
        finalize_only: only merge the shards' chunks and finish (error if any is missing).
        stop_after_chunks: testing hook: raise :class:`WriteInterrupted` after this many
            chunks were written by this call (simulates a killed run); 0 stops after the
            sources (the benchmark times the two stages apart this way).

    Returns:
        ``out`` as a Path.

    Raises:
        FileExistsError: ``out`` holds another dataset or unrelated files (untouched).
        FileNotFoundError / ValueError: bad source folders or files (the file is named).
    """
    root = Path(out).expanduser()
    profile = get_profile(profile)
    shard_i, shard_n = _parse_shard(shard)
    plan = _make_plan(profile, seed=seed, source=source, mode=mode, clahe=clahe,
                      zip_parts=int(zip_parts), chunk_size=chunk_size)
    if _prepare_root(root, plan):
        shutil.rmtree(root / WORK, ignore_errors=True)  # leftovers of a finished run
        return root
    _clean_stale_temps(root)
    if finalize_only:
        _finalize(root, plan, require=True)
        return root
    for d in ("bg", "fg", "fg_bg", "mask", WORK + "/chunks", WORK + "/sources") + \
            (("bg_depth", "depth") if plan.has_depth else ()) + \
            ((WORK + "/bg_depth_full",) if plan.has_depth and
             profile.depth_size != profile.source_size else ()):
        (root / d).mkdir(parents=True, exist_ok=True)
    workers = _default_workers() if workers is None else max(1, int(workers))
    disable = None if progress is None else not progress

    try:
        _write_all(root, plan, shard_i=shard_i, shard_n=shard_n, workers=workers,
                   disable=disable, stop_after_chunks=stop_after_chunks)
    except FileNotFoundError:
        # Another process on the same folder finished the dataset (and removed .work/)
        # while this one was still writing: fine, the bytes are the same.
        if not _is_complete(root):
            raise
    return root


def _is_complete(root: Path) -> bool:
    try:
        return bool(read_meta(root).get("complete"))
    except (FileNotFoundError, ValueError):
        return False


def finalize_dataset(out: str | os.PathLike, profile: Profile | str | None = None,
                     **kwargs: Any) -> Path:
    """Merge the shards written into ``out`` and finish it (same arguments as the shards)."""
    return write_dataset(out, profile, finalize_only=True, **kwargs)


def ensure_dataset(profile: Profile | str | None = None, root: str | os.PathLike | None = None,
                   *, progress: bool | None = True, workers: int | None = None,
                   poll_s: float = 1.0, **kwargs: Any) -> Path:
    """The profile's dataset folder, built first if it is not complete.

    Default folder: ``paths.dataset_dir(profile.name)`` (``data/<profile>``). Safe when
    several processes call it at once: one builds (it holds ``<root>.lock``, created with
    ``O_CREAT | O_EXCL``), the others wait for it and return the same folder. A lock left
    by a dead process is taken over.

    Raises:
        FileExistsError: the folder holds another dataset (e.g. the profile changed):
            delete it to rebuild.
    """
    from evacamel.paths import dataset_dir

    profile = get_profile(profile)
    root = Path(root) if root is not None else dataset_dir(profile.name)
    lock = root.with_name(root.name + ".lock")
    while True:
        if _is_complete(root):
            # Still checks the folder is this profile's dataset (never returns a stale one).
            return write_dataset(root, profile, progress=False, workers=1, **kwargs)
        root.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                pid = int(lock.read_text().strip() or 0)
            except (OSError, ValueError):
                pid = 0
            if pid and not _pid_alive(pid):
                with contextlib.suppress(OSError):
                    lock.unlink()  # its builder died; take over (the build resumes)
                continue
            time.sleep(poll_s)
            continue
        try:
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
            return write_dataset(root, profile, progress=progress, workers=workers, **kwargs)
        finally:
            with contextlib.suppress(OSError):
                lock.unlink()


# -- reading ------------------------------------------------------------------------------

def read_meta(root: str | os.PathLike) -> dict:
    """``<root>/meta.json`` as a dict.

    Raises:
        FileNotFoundError: no meta.json (not a dataset folder).
        ValueError: unreadable JSON.
    """
    path = Path(root) / META_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no meta.json, so {Path(root)} is not a dataset "
                                "(make one with `evacamel make-dataset`)") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None


def read_sources(root: str | os.PathLike) -> dict:
    """``<root>/sources.json``: ``{"backgrounds": [...], "camels": [...]}`` (split, seed,
    camera, camel attributes)."""
    path = Path(root) / SOURCES_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no sources.json (dataset not written yet?)")
    return json.loads(path.read_text(encoding="utf-8"))


_INT_COLUMNS = ("part", "sample_id", "bg_id", "fg_id", "flip")
_FLOAT_COLUMNS = ("x", "y", "w", "h", "distance_m", "visible_fraction")


def read_index(root: str | os.PathLike) -> list[dict]:
    """``<root>/dataset_info.csv`` as one dict per row, numbers parsed.

    Paths stay strings relative to ``root``; ``part, sample_id, bg_id, fg_id, flip`` are
    ints; ``x, y, w, h`` ints when whole, else floats; ``distance_m`` a float or ``None``
    (seed mode); ``visible_fraction`` a float. A seed-style index (only the first five
    columns) is read as it is.

    Raises:
        FileNotFoundError: no ``dataset_info.csv``.
    """
    path = Path(root) / INDEX_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no dataset index (unfinished dataset? rerun "
                                "`evacamel make-dataset`)")
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        for key in _INT_COLUMNS:
            if row.get(key) not in (None, ""):
                row[key] = int(row[key])
        for key in _FLOAT_COLUMNS:
            v = row.get(key)
            if v is None:
                continue
            if v == "":
                row[key] = None
            else:
                fv = float(v)
                row[key] = int(fv) if key in ("x", "y", "w", "h") and fv.is_integer() else fv
    return rows


def load_sample(root: str | os.PathLike, row: Mapping | int) -> dict[str, Any]:
    """One composite and its targets, decoded (for notebooks and checks).

    Args:
        root: the dataset folder.
        row: a row of :func:`read_index`, or its position in the index.

    Returns:
        ``{"bg": uint8 3 x S x S, "fg_bg": uint8 3 x S x S,
        "mask": float32 1 x S x S in {0, 1}, "depth": float32 1 x d x d meters or None
        (no depth written yet), "row": the row}``.
    """
    from evacamel.data.io import read_image

    root = Path(root)
    if isinstance(row, int):
        row = read_index(root)[row]
    out: dict[str, Any] = {
        "bg": read_image(root / row["selected_bg_paths"], channels=3),
        "fg_bg": read_image(root / row["fg_bg_paths"], channels=3),
        "mask": read_image(root / row["mask_paths"], channels=1).float() / 255.0,
        "depth": None,
        "row": dict(row),
    }
    depth_path = root / row["depth_map_paths"]
    if depth_path.is_file():
        raw = read_image(depth_path)
        if raw.dtype != torch.uint16:
            raise ValueError(f"{depth_path}: depth must be a 16-bit PNG, got {raw.dtype}")
        out["depth"] = png_to_meters(raw.to(torch.int32))
    return out
