"""Camel cut-outs from ordinary photographs: OpenCV's GrabCut from a box.

Camel photographs rarely have transparency. :func:`cut_out` takes a photo and a box
around the camel (``x, y, w, h`` in the photo's pixels; without one, a centred box
leaving a tenth of the width and height on each side, not a guess of where the camel
is), runs GrabCut (a graph cut between colour models of the box's inside and its
outside, refined a few times) and writes

* ``<out>/<stem>.png``: the cut-out, RGBA, alpha = the camel (for ``make-dataset --camels``);
* ``<out>/preview/<stem>.png``: the photo with the mask tinted and the box drawn, to check
  the cut-out before using it (a sub-folder, so ``--camels <out>`` never reads it).

Photos larger than :data:`MAX_SIDE` are shrunk first (area filtering, OpenCV), as the
dataset uses cut-outs at ``camel_size`` (at most 512 px) anyway.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
from PIL import Image

from evacamel.dataset.atomic import atomic_write
from evacamel.dataset.photo import read_photo

__all__ = ["Box", "MAX_SIDE", "parse_box", "default_box", "grabcut_mask",
           "preview_image", "cutout_paths", "check_outputs", "cut_out"]

MAX_SIDE = 1024
"""Photos are shrunk so that their longer side is at most this (pixels)."""

_ITERATIONS = 5


class Box(NamedTuple):
    """A box in pixels: left ``x``, top ``y``, width ``w``, height ``h``."""

    x: int
    y: int
    w: int
    h: int


def parse_box(text: str) -> Box:
    """``"x,y,w,h"`` (integers, pixels of the original photo) -> :class:`Box`.

    Raises:
        ValueError: not four integers, or a width or height under 2 (one line).
    """
    try:
        values = [int(v) for v in text.replace(" ", "").split(",")]
    except ValueError:
        values = []
    if len(values) != 4:
        raise ValueError(f"--box {text!r}: give x,y,w,h as four integers in pixels, "
                         "e.g. --box 40,30,200,180")
    box = Box(*values)
    if box.w < 2 or box.h < 2 or box.x < 0 or box.y < 0:
        raise ValueError(f"--box {text!r}: x and y must be >= 0, w and h at least 2 pixels")
    return box


def default_box(height: int, width: int) -> Box:
    """A centred box leaving a tenth of the width and of the height on each side."""
    dx, dy = max(1, width // 10), max(1, height // 10)
    return Box(dx, dy, width - 2 * dx, height - 2 * dy)


def _shrink(rgb: np.ndarray) -> tuple[np.ndarray, float]:
    """The photo with its longer side at most :data:`MAX_SIDE` (area filter) and the scale."""
    h, w = rgb.shape[:2]
    scale = min(1.0, MAX_SIDE / max(h, w))
    if scale == 1.0:
        return rgb, 1.0
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA), scale


def _check_box(box: Box, height: int, width: int, name: str) -> None:
    if box.x + box.w > width or box.y + box.h > height:
        raise ValueError(f"{name}: box x,y,w,h = {','.join(map(str, box))} reaches outside "
                         f"the {width} x {height} photo; make x + w <= {width} and "
                         f"y + h <= {height}")
    if box.w >= width and box.h >= height:
        raise ValueError(f"{name}: the box covers the whole photo, so GrabCut has no "
                         "background to learn from; draw it around the camel")


def grabcut_mask(rgb: np.ndarray, box: Box, *, iterations: int = _ITERATIONS) -> np.ndarray:
    """GrabCut's foreground inside ``box``: uint8 ``H x W x 3`` RGB -> bool ``H x W``.

    Deterministic: OpenCV's GrabCut seeds its colour models with k-means, whose RNG is
    reset here first.
    """
    cv2.setRNGSeed(0)
    mask = np.zeros(rgb.shape[:2], np.uint8)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    cv2.grabCut(bgr, mask, tuple(int(v) for v in box), bgd, fgd, iterations,
                cv2.GC_INIT_WITH_RECT)
    return (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)


def preview_image(rgb: np.ndarray, mask: np.ndarray, box: Box) -> np.ndarray:
    """The photo for checking a cut-out: outside the mask dimmed, the mask tinted green,
    the box drawn in red. uint8 ``H x W x 3`` in and out."""
    out = rgb.astype(np.float32)
    out[~mask] *= 0.35
    out[mask] = 0.6 * out[mask] + 0.4 * np.array([60.0, 220.0, 60.0])
    out = np.ascontiguousarray(out.round().clip(0, 255).astype(np.uint8))
    thickness = max(1, round(max(rgb.shape[:2]) / 300))
    cv2.rectangle(out, (box.x, box.y), (box.x + box.w - 1, box.y + box.h - 1), (230, 30, 30),
                  thickness)
    return out


def _png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def cutout_paths(photo: str | os.PathLike, out: str | os.PathLike) -> tuple[Path, Path]:
    """Where :func:`cut_out` writes ``photo``'s cut-out and preview in ``out``."""
    stem = Path(photo).stem
    return Path(out) / f"{stem}.png", Path(out) / "preview" / f"{stem}.png"


def check_outputs(photos: list[str | os.PathLike], out: str | os.PathLike,
                  overwrite: bool = False) -> None:
    """Refuse, before anything is written: an ``out`` that is a file, two photos with one
    cut-out name, an output that is one of the photos, an existing output (unless
    ``overwrite``). Raises FileExistsError or NotADirectoryError (one line)."""
    out = Path(out)
    for folder in (out, out / "preview"):
        if folder.exists() and not folder.is_dir():
            raise NotADirectoryError(f"--out {out}: {folder} is a file, not a folder; "
                                     "name a folder for the cut-outs")
    inputs, seen = {Path(p).resolve(): p for p in photos}, {}
    for photo in photos:
        for path in cutout_paths(photo, out):
            if path.resolve() in inputs:
                raise FileExistsError(f"{path}: is one of the input photos; choose another --out")
            if path.resolve() in seen:
                raise FileExistsError(f"{photo} and {seen[path.resolve()]} would both be cut out "
                                      f"to {path}; rename one or cut them out separately")
            seen[path.resolve()] = photo
            if path.exists() and not overwrite:
                raise FileExistsError(f"{path}: exists; pass --overwrite to replace it, or "
                                      "choose another --out")


def cut_out(photo: str | os.PathLike, out: str | os.PathLike,
            box: Box | None = None, *, overwrite: bool = False) -> tuple[Path, Path, float]:
    """Cut the camel in ``box`` (the photo's pixels; default :func:`default_box`) out of
    ``photo``; write the RGBA cut-out and its preview (see the module doc).

    Returns:
        ``(cut-out path, preview path, share of the box the mask covers)``.

    Raises:
        ValueError: an unreadable photo, a box outside it or covering all of it, or an
            empty result (one line naming the file).
        FileExistsError: an output is the photo, or exists (unless ``overwrite``).
    """
    photo, out = Path(photo), Path(out)
    check_outputs([photo], out, overwrite)
    rgb = read_photo(photo, mode="RGB")
    h, w = rgb.shape[:2]
    box = box or default_box(h, w)
    _check_box(box, h, w, str(photo))
    small, scale = _shrink(rgb)
    sbox = Box(*(int(round(v * scale)) for v in box))
    mask = grabcut_mask(small, Box(sbox.x, sbox.y, max(2, sbox.w), max(2, sbox.h)))
    if not mask.any():
        raise ValueError(f"{photo}: GrabCut found nothing in the box; draw the box closer "
                         "around the camel (--box x,y,w,h)")
    rgba = np.dstack([small, mask.astype(np.uint8) * 255])
    cut_path, preview_path = cutout_paths(photo, out)
    preview_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(cut_path, _png(rgba))
    atomic_write(preview_path, _png(preview_image(small, mask, sbox)))
    return cut_path, preview_path, float(mask.sum()) / max(1, sbox.w * sbox.h)
