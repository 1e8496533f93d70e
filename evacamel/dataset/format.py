"""The dataset folder's names and its small files: meta.json, sources.json, dataset_info.csv.

Reading (:func:`read_meta`, :func:`read_sources`, :func:`read_index`,
:func:`load_sample`), and what the writer needs to know about a folder: its identity
(:func:`identity`: everything in meta.json but ``stats``, ``depth``, ``zip_parts`` and
the library version) and whether it may be written (:func:`prepare_root`).
See :mod:`evacamel.dataset` for the layout.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from evacamel.dataset.atomic import write_json
from evacamel.depth_units import png_to_meters

if TYPE_CHECKING:
    from evacamel.dataset.plan import Plan

__all__ = ["FORMAT", "FORMAT_VERSION", "INDEX_NAME", "META_NAME", "SOURCES_NAME", "WORK",
           "INDEX_COLUMNS", "DATASET_ENTRIES", "identity", "prepare_root", "is_complete",
           "rows_to_csv", "format_number", "read_meta", "read_sources", "read_index", "load_sample"]

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
DATASET_ENTRIES = {META_NAME, INDEX_NAME, SOURCES_NAME, WORK, "bg", "fg", "fg_bg", "mask",
                    "depth", "bg_depth"}


def work_folders(root: Path) -> list[Path]:
    """The folders a writer puts temporary files in (for cleaning up after killed runs)."""
    return [root, *(root / d for d in DATASET_ENTRIES if (root / d).is_dir()),
            root / WORK / "chunks", root / WORK / "sources", root / WORK / "bg_depth_full"]


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


def prepare_root(root: Path, plan: Plan) -> bool:
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
        diffs = _differences(identity(there), identity(plan.meta))
        if diffs:
            raise FileExistsError(
                f"{root}: holds another dataset ({'; '.join(diffs[:6])}); it is left untouched: "
                "choose another output folder, or delete this one to rebuild it")
        return bool(there.get("complete"))
    foreign = sorted(p.name for p in root.iterdir()
                     if p.name not in DATASET_ENTRIES and not p.name.endswith(".tmp"))
    ours = sorted(p.name for p in root.iterdir() if p.name in DATASET_ENTRIES)
    if foreign or ours:
        raise FileExistsError(
            f"{root}: not empty and has no {META_NAME} (holds {', '.join((foreign + ours)[:5])}"
            f"{', ...' if len(foreign) + len(ours) > 5 else ''}); it is left untouched: "
            "choose an empty or new output folder")
    write_json(meta_path, plan.meta)
    return False


def is_complete(root: Path) -> bool:
    """Whether ``root`` holds a finished dataset (``meta.json`` with ``"complete": true``)."""
    try:
        return bool(read_meta(root).get("complete"))
    except (FileNotFoundError, ValueError):
        return False


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
    from evacamel.dataset.codec import read_image

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
