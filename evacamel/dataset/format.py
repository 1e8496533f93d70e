"""The on-disk format, one owner: names, the folder list, meta.json, the index, the path check.

Everything that reads or writes a dataset folder asks this module:

* **names**: :data:`META_NAME`, :data:`INDEX_NAME`, :data:`SOURCES_NAME`, :data:`WORK`,
  :data:`EXACT_DEPTH_DIR`, the one list of dataset folders (:data:`DATASET_FOLDERS`) and
  of a dataset's entries (:data:`DATASET_ENTRIES`, what an archive of it holds);
* **meta.json**: :func:`read_meta` is the one reader, :func:`check_meta` the one check of
  its shape (format, version, sizes, depth units of :mod:`evacamel.depth_units`),
  :func:`write_meta` the one writer; :func:`identity` and :func:`prepare_root` for the
  writer;
* **the index** (``dataset_info.csv``): :data:`INDEX_COLUMNS`; :func:`parse_index` is the
  one parser (columns checked, numbers parsed, every path checked), :func:`read_index`
  reads it from a folder, :func:`rows_to_csv` writes it;
* **the path check**: :func:`resolve_in_dataset` turns a dataset-relative path into a
  path inside the dataset folder, or refuses it (absolute, ``..``, backslashes, drive
  letters, NUL, or a symlink leading out of the folder). Every reader and writer of index
  paths goes through it, so a downloaded dataset can never make evacamel read or write
  outside its own folder;
* :func:`load_sample`: one composite and its targets, decoded.

See :mod:`evacamel.dataset` for the layout.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from evacamel.dataset.atomic import write_json
from evacamel.dataset.codec import read_image
from evacamel.depth_units import PNG_STEPS_PER_M, png_to_meters

__all__ = ["FORMAT", "FORMAT_VERSION", "INDEX_NAME", "META_NAME", "SOURCES_NAME", "WORK",
           "EXACT_DEPTH_DIR", "IMAGE_FORMATS", "DATASET_FOLDERS", "DATASET_FILES",
           "DATASET_ENTRIES", "INDEX_COLUMNS", "PATH_COLUMNS", "REQUIRED_COLUMNS",
           "resolve_in_dataset", "check_meta", "meta_from_bytes", "read_meta", "write_meta",
           "identity", "CLASSIC_WORLD", "prepare_root", "is_complete", "work_folders", "format_number",
           "rows_to_csv", "parse_index", "read_index", "read_sources", "load_sample"]

FORMAT = "evacamel-dataset"
FORMAT_VERSION = 1
INDEX_NAME = "dataset_info.csv"
META_NAME = "meta.json"
SOURCES_NAME = "sources.json"
WORK = ".work"
"""Only while writing: per-chunk rows, per-source records, full-size background depth."""
EXACT_DEPTH_DIR = "exact_depth"
"""Only after ``evacamel depth`` replaced ``depth/``: the exact maps (hard links)."""
IMAGE_FORMATS = ("jpg", "png")
"""File formats of ``bg`` and ``fg_bg`` images (targets are always PNG)."""
DATASET_FOLDERS = ("bg", "fg", "fg_bg", "mask", "depth", "bg_depth")
"""The dataset's folders of images (the one list; a zip member's dataset path starts at
the first of these it contains)."""
DATASET_FILES = (META_NAME, INDEX_NAME, SOURCES_NAME)
DATASET_ENTRIES = DATASET_FILES + DATASET_FOLDERS
"""Everything a finished dataset consists of (what an archive of it holds)."""
INDEX_COLUMNS = (
    "fg_bg_paths", "mask_paths", "selected_bg_paths", "depth_map_paths", "part",
    "sample_id", "fg_paths", "bg_id", "fg_id", "split", "x", "y", "w", "h", "flip",
    "distance_m", "visible_fraction",
)
REQUIRED_COLUMNS = ("fg_bg_paths", "mask_paths", "selected_bg_paths", "depth_map_paths")
"""The seed's four path columns: every index has them."""
PATH_COLUMNS = REQUIRED_COLUMNS + ("fg_paths",)
"""Columns holding dataset-relative paths (checked by :func:`resolve_in_dataset`)."""
_INT_COLUMNS = ("part", "sample_id", "bg_id", "fg_id", "flip")
_FLOAT_COLUMNS = ("x", "y", "w", "h", "distance_m", "visible_fraction")
_DRIVE = re.compile(r"^[A-Za-z]:")


# -- the path check -------------------------------------------------------------------------

def _path_problem(rel: Any) -> str | None:
    """Why ``rel`` is not a plain relative path inside a dataset, or ``None`` (no file access)."""
    if not isinstance(rel, str) or not rel:
        return "is empty"
    if "\0" in rel:
        return "contains a NUL character"
    if "\\" in rel:
        return "contains a backslash (write paths with '/')"
    if rel.startswith("/") or _DRIVE.match(rel):
        return "is absolute"
    parts = _parts(rel)
    if ".." in parts:
        return "contains '..'"
    if not parts:
        return "names the dataset folder itself"
    return None


def _parts(rel: str) -> list[str]:
    """``rel``'s components, as a POSIX path has them (no empty ones, no ``.``)."""
    return [part for part in rel.split("/") if part not in ("", ".")]


def _through_symlink_outside(root: Path, rel: str) -> bool:
    """Whether ``root / rel`` (``rel`` plain: no ``..``, relative) leads outside ``root``.

    Only a symlink among ``rel``'s own components can: ``lstat`` each (two calls for
    ``fg_bg/img.jpg``, not a ``realpath`` of the whole path per file); where one is a
    symlink, the real path decides.
    """
    path = os.fspath(root)
    for part in _parts(rel):
        path = os.path.join(path, part)
        try:
            if not stat.S_ISLNK(os.lstat(path).st_mode):
                continue
        except (FileNotFoundError, NotADirectoryError):
            return False  # not there (yet): nothing below it can be a symlink
        real, real_root = os.path.realpath(os.path.join(root, rel)), os.path.realpath(root)
        return os.path.commonpath([real, real_root]) != real_root
    return False


def _where(row: int | None, column: str | None) -> str:
    if row is None and column is None:
        return ""
    return f"{INDEX_NAME} row {row}, column {column}: " if row is not None else f"{column}: "


def resolve_in_dataset(root: str | os.PathLike, rel: str, *, row: int | None = None,
                       column: str | None = None) -> Path:
    """``root / rel`` after checking that it stays inside the dataset folder ``root``.

    The one path check of the format, used by every reader and writer of index paths.

    Args:
        root: the dataset folder.
        rel: a dataset-relative path as the index writes it (``fg_bg/img_00000001.jpg``).
        row, column: where ``rel`` comes from, for the error message.

    Returns:
        ``Path(root) / rel`` (not resolved).

    Raises:
        ValueError: ``rel`` is empty, absolute (``/x``, ``C:x``), contains ``..``, a
            backslash or NUL, or leads outside ``root`` through a symlink; the message
            names the row and column (when given) and the path.
    """
    root = Path(root)
    problem = _path_problem(rel)
    if problem is None and _through_symlink_outside(root, rel):
        problem = "leads outside the dataset folder through a symlink"
    if problem is not None:
        raise ValueError(f"{root}: {_where(row, column)}path {rel!r} {problem}; a dataset's "
                         "files must stay inside its folder (a broken or hostile dataset: "
                         "refused)")
    return root / rel


# -- meta.json ------------------------------------------------------------------------------

def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def check_meta(meta: Any, *, name: str = META_NAME) -> dict:
    """The one check of meta.json's shape: ``meta`` itself, or a one-line ValueError.

    Checked: an object of format :data:`FORMAT` and a known ``format_version``; where
    present, ``complete`` a bool, ``source_size``/``depth_size`` positive ints,
    ``image_format`` one of :data:`IMAGE_FORMATS`, ``counts``/``stats`` objects, and
    ``depth`` an object whose units are :mod:`evacamel.depth_units`' (``png_steps_per_m``).
    """
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{name}: not an {FORMAT} meta.json (its \"format\" is not {FORMAT!r})")
    version = meta.get("format_version", FORMAT_VERSION)
    problems = []
    if not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        problems.append(f"format_version {version!r} (this evacamel reads 1..{FORMAT_VERSION})")
    if "complete" in meta and not isinstance(meta["complete"], bool):
        problems.append(f"complete {meta['complete']!r} (true or false)")
    for key in ("source_size", "depth_size"):
        if key in meta and not _positive_int(meta[key]):
            problems.append(f"{key} {meta[key]!r} (a positive integer)")
    if "image_format" in meta and meta["image_format"] not in IMAGE_FORMATS:
        problems.append(f"image_format {meta['image_format']!r} (one of {', '.join(IMAGE_FORMATS)})")
    for key in ("counts", "stats", "generator", "world"):
        if meta.get(key) is not None and not isinstance(meta[key], dict):
            problems.append(f"{key} (an object)")
    depth = meta.get("depth", {})
    if not isinstance(depth, dict):
        problems.append("depth (an object)")
    elif depth.get("png_steps_per_m", PNG_STEPS_PER_M) != PNG_STEPS_PER_M:
        problems.append(f"depth.png_steps_per_m {depth['png_steps_per_m']!r} (this evacamel "
                        f"stores depth at {PNG_STEPS_PER_M} steps per meter)")
    if problems:
        raise ValueError(f"{name}: unusable meta.json: {'; '.join(problems)}")
    return meta


def meta_from_bytes(data: bytes | str, *, name: str = META_NAME) -> dict:
    """Parse and check meta.json's text (e.g. read from a zip part); see :func:`check_meta`."""
    try:
        meta = json.loads(data)
    except ValueError as exc:
        raise ValueError(f"{name}: not valid JSON ({exc})") from None
    return check_meta(meta, name=name)


def read_meta(root: str | os.PathLike) -> dict:
    """``<root>/meta.json`` as a dict, checked (:func:`check_meta`): the one reader.

    Raises:
        FileNotFoundError: no meta.json (not a dataset folder).
        ValueError: unreadable JSON, or not an evacamel dataset's meta.json.
    """
    path = Path(root) / META_NAME
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no meta.json, so {Path(root)} is not a dataset "
                                "(make one with `evacamel make-dataset`)") from None
    except IsADirectoryError:
        raise ValueError(f"{path}: a folder, not a meta.json file") from None
    return meta_from_bytes(data, name=str(path))


def write_meta(root: str | os.PathLike, meta: Mapping) -> None:
    """Write ``<root>/meta.json`` atomically (indented JSON, newline at the end)."""
    write_json(Path(root) / META_NAME, dict(meta))


def is_complete(root: str | os.PathLike) -> bool:
    """Whether ``root`` holds a finished dataset (``meta.json`` with ``"complete": true``)."""
    try:
        return bool(read_meta(root).get("complete"))
    except (FileNotFoundError, ValueError):
        return False


CLASSIC_WORLD = {"name": "classic", "blend": "paste",
                 "params": {"scene": None, "look": None, "camel": None, "blend": None}}
"""``meta.json["world"]`` of the classic world with the seed's paste (what a dataset
without a ``world`` record was made with)."""


def identity(meta: Mapping) -> dict:
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
    ident.setdefault("world", CLASSIC_WORLD)  # written before worlds were recorded
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


def _refuse_unless_same(root: Path, meta: Mapping) -> bool:
    """``root``'s meta.json describes the dataset ``meta``: returns whether it is complete."""
    try:
        there = read_meta(root)
    except ValueError as exc:
        raise FileExistsError(f"{exc}; this folder is not a dataset this run can continue: "
                              "choose another --out") from None
    diffs = _differences(identity(there), identity(meta))
    if diffs:
        raise FileExistsError(
            f"{root}: holds another dataset ({'; '.join(diffs[:6])}); it is left untouched: "
            "choose another output folder, or delete this one to rebuild it")
    return bool(there.get("complete"))


def prepare_root(root: Path, meta: Mapping) -> bool:
    """Check ``root`` can hold the dataset ``meta`` describes; write its unfinished meta.json.

    Returns:
        True if ``root`` already holds this dataset, complete.

    Raises:
        FileExistsError: ``root`` is a file, holds another dataset, or unrelated files.
    """
    if root.exists() and not root.is_dir():
        raise FileExistsError(f"{root}: exists and is not a folder")
    root.mkdir(parents=True, exist_ok=True)
    if (root / META_NAME).is_file():
        return _refuse_unless_same(root, meta)
    known = DATASET_ENTRIES + (WORK,)
    foreign = sorted(p.name for p in root.iterdir()
                     if p.name not in known and not p.name.endswith(".tmp"))
    ours = sorted(p.name for p in root.iterdir() if p.name in known)
    if foreign or ours:
        raise FileExistsError(
            f"{root}: not empty and has no {META_NAME} (holds {', '.join((foreign + ours)[:5])}"
            f"{', ...' if len(foreign) + len(ours) > 5 else ''}); it is left untouched: "
            "choose an empty or new output folder")
    write_meta(root, meta)
    return False


def work_folders(root: Path) -> list[Path]:
    """The folders a writer puts temporary files in (for cleaning up after killed runs)."""
    return [root, *(root / d for d in DATASET_FOLDERS + (WORK,) if (root / d).is_dir()),
            root / WORK / "chunks", root / WORK / "sources", root / WORK / "bg_depth_full"]


# -- the index ------------------------------------------------------------------------------

def format_number(v: Any) -> str:
    """A number as the index writes it: an int when whole, else 2 decimals."""
    v = float(v)
    return str(int(v)) if v.is_integer() else f"{v:.2f}"


def rows_to_csv(rows: list[dict]) -> str:
    """Index rows (dicts keyed by :data:`INDEX_COLUMNS`) as CSV text with a header."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(INDEX_COLUMNS), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def _parse_number(value: str, key: str) -> int | float | None:
    if key in _INT_COLUMNS:
        return int(value)
    if value == "":
        return None
    fv = float(value)
    return int(fv) if key in ("x", "y", "w", "h") and fv.is_integer() else fv


def _parse_row(row: dict, i: int, name: str) -> dict:
    for key in PATH_COLUMNS:
        if key in row:
            problem = _path_problem(row[key])
            if problem is not None and not (key == "fg_paths" and row[key] == ""):
                raise ValueError(f"{name} row {i} (line {i + 2}), column {key}: path "
                                 f"{row[key]!r} {problem}; a dataset's files must stay inside "
                                 "its folder (a broken or hostile index: refused)")
    for key in _INT_COLUMNS + _FLOAT_COLUMNS:
        value = row.get(key)
        if value is None or (value == "" and key in _INT_COLUMNS):
            continue
        try:
            row[key] = _parse_number(value, key)
        except ValueError:
            raise ValueError(f"{name} row {i} (line {i + 2}), column {key}: {value!r} is not "
                             "a number") from None
    return row


def parse_index(text: str, *, name: str = INDEX_NAME) -> list[dict]:
    """``dataset_info.csv`` text as one dict per row: the one parser of the index.

    Paths stay strings relative to the dataset folder, each checked as
    :func:`resolve_in_dataset` does (without touching the disk); ``part, sample_id,
    bg_id, fg_id, flip`` are ints; ``x, y, w, h`` ints when whole, else floats;
    ``distance_m`` a float or ``None`` (seed mode); ``visible_fraction`` a float. A
    seed-style index (only the first five columns) is read as it is.

    Raises:
        ValueError: a required column (:data:`REQUIRED_COLUMNS`) is missing, or a row
            holds a path that leaves the dataset or a number that is not one; the
            message names ``name``, the row and the column.
    """
    reader = csv.DictReader(io.StringIO(text))
    try:
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{name}: missing column(s) {', '.join(missing)}")
        return [_parse_row(row, i, name) for i, row in enumerate(reader)]
    except csv.Error as exc:
        raise ValueError(f"{name}: not a readable CSV file ({exc})") from None


def read_index(root: str | os.PathLike) -> list[dict]:
    """``<root>/dataset_info.csv`` parsed by :func:`parse_index`.

    Raises:
        FileNotFoundError: no ``dataset_info.csv``.
        ValueError: see :func:`parse_index`.
    """
    path = Path(root) / INDEX_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError):
        raise FileNotFoundError(f"{path}: no dataset index (unfinished dataset? rerun "
                                "`evacamel make-dataset`)") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc.reason})") from None
    return parse_index(text, name=str(path))


def read_sources(root: str | os.PathLike) -> dict:
    """``<root>/sources.json``: ``{"backgrounds": [...], "camels": [...]}`` (split, seed,
    camera, camel attributes)."""
    path = Path(root) / SOURCES_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no sources.json (dataset not written yet?)")
    return json.loads(path.read_text(encoding="utf-8"))


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
    root = Path(root)
    row_id = row if isinstance(row, int) else None
    if isinstance(row, int):
        row = read_index(root)[row]

    def path(column: str) -> Path:
        return resolve_in_dataset(root, row[column], row=row_id, column=column)

    out: dict[str, Any] = {
        "bg": read_image(path("selected_bg_paths"), channels=3),
        "fg_bg": read_image(path("fg_bg_paths"), channels=3),
        "mask": read_image(path("mask_paths"), channels=1).float() / 255.0,
        "depth": None,
        "row": dict(row),
    }
    depth_path = path("depth_map_paths")
    if depth_path.is_file():
        raw = read_image(depth_path)
        if raw.dtype != torch.uint16:
            raise ValueError(f"{depth_path}: depth must be a 16-bit PNG, got {raw.dtype}")
        out["depth"] = png_to_meters(raw.to(torch.int32))
    return out
