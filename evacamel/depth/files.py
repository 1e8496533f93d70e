"""Depth map files: 16-bit depth PNGs (meters * 64) and RGB images, read and written.

Writes go to a temporary name in the same folder and are moved into place with
``os.replace``, so a crash leaves either the old file or the new one, never half a file.
The dataset's names, meta.json, index and path check are :mod:`evacamel.dataset.format`'s.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from evacamel.dataset.atomic import atomic_write
from evacamel.dataset.codec import encode_depth, read_image
from evacamel.depth_units import png_to_meters

__all__ = ["read_depth_png", "write_depth_png", "read_rgb"]


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
    atomic_write(Path(path), encode_depth(depth_m.detach().float().cpu().reshape(depth_m.shape[-2:])))


def read_rgb(path: str | os.PathLike) -> torch.Tensor:
    """An image file (JPEG/PNG) -> ``3 x H x W`` uint8 (the data pipeline's decoder)."""
    return read_image(path, channels=3)
