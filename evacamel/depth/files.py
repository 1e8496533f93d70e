"""Small file helpers for depth rewriting: 16-bit depth PNGs, RGB images, meta.json, the index.

Every write goes to a temporary name in the same folder and is moved into place with
``os.replace``, so a crash leaves either the old file or the new one, never half a file.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from evacamel.dataset.atomic import atomic_write as atomic_write_bytes  # noqa: F401 (re-exported)
from evacamel.dataset.atomic import write_json
from evacamel.depth_units import png_to_meters
from evacamel.dataset.codec import read_image
from evacamel.dataset.codec import encode_depth

__all__ = ["read_depth_png", "write_depth_png", "read_rgb", "read_meta", "write_meta",
           "read_index_columns", "atomic_write_bytes", "resize_depth"]


def read_depth_png(path: str | os.PathLike) -> torch.Tensor:
    """A 16-bit depth PNG (meters * 64) -> ``1 x H x W`` float32 meters."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"depth map not found: {path}")
    try:
        with Image.open(path) as im:
            arr = np.array(im)
    except OSError as exc:
        raise ValueError(f"cannot read depth map {path}: {exc}") from None
    if arr.ndim != 2 or arr.dtype not in (np.uint16, np.int32, np.uint8):
        raise ValueError(f"depth map {path} is not a single-channel 16-bit PNG "
                         f"(got shape {arr.shape}, dtype {arr.dtype})")
    return png_to_meters(arr.astype(np.int64).clip(0, 65535).astype(np.float32))[None]


def write_depth_png(path: str | os.PathLike, depth_m: torch.Tensor) -> None:
    """``H x W`` or ``1 x H x W`` meters -> 16-bit PNG (``round(m * 64)``), written atomically."""
    # The dataset writer's encoder, so rewritten maps are encoded like written ones.
    atomic_write_bytes(Path(path), encode_depth(depth_m.detach().float().cpu().reshape(depth_m.shape[-2:])))


def read_rgb(path: str | os.PathLike) -> torch.Tensor:
    """An image file (JPEG/PNG) -> ``3 x H x W`` uint8 (the data pipeline's decoder)."""
    return read_image(path, channels=3)


def read_meta(root: Path) -> dict:
    """``<root>/meta.json`` as a dict; clear errors for a missing or foreign file."""
    path = Path(root) / "meta.json"
    if not path.is_file():
        raise FileNotFoundError(f"not an evacamel dataset (no meta.json): {root}")
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != "evacamel-dataset":
        raise ValueError(f"{path} is not an evacamel dataset's meta.json (format is not 'evacamel-dataset')")
    return meta


def write_meta(root: Path, meta: dict) -> None:
    """Write ``<root>/meta.json`` atomically."""
    write_json(Path(root) / "meta.json", meta)


def read_index_columns(root: Path, columns: tuple[str, ...]) -> list[tuple[str, ...]]:
    """The given columns of ``<root>/dataset_info.csv``, one tuple per row."""
    path = Path(root) / "dataset_info.csv"
    if not path.is_file():
        raise FileNotFoundError(f"dataset index not found: {path}")
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path} lacks the column(s) {', '.join(missing)}")
        return [tuple(row[c] for c in columns) for row in reader]


def resize_depth(depth_m: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Resize ``B x 1 x H x W`` exact depth (meters) to ``size`` by nearest sampling.

    As :mod:`evacamel.dataset` does: every pixel keeps a depth that exists in the
    scene (averaging across the edge of a near dune and the sky would invent a
    half-way depth of ~500 m). No-op when the size already matches.
    """
    hw = (size, size) if isinstance(size, int) else tuple(size)
    if tuple(depth_m.shape[-2:]) == hw:
        return depth_m.float()
    return F.interpolate(depth_m.float(), size=hw, mode="nearest-exact")
