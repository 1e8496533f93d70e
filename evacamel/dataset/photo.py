"""The one reader of a user's photos: backgrounds, camel cut-outs, ``predict``'s pairs.

A student's photos come from phones, editors and the web: rotated by an EXIF tag, 16-bit,
palette, grey + alpha, CMYK, animated, tiny, or huge. :func:`read_photo` turns any of them
into what the rest of evacamel expects, a uint8 ``H x W x 3`` (RGB) or ``H x W x 4``
(RGBA, straight alpha) array, upright, or refuses it with ONE line naming the file and
what to do:

* **EXIF orientation** is applied (a phone photo taken upright is read upright).
* **16-bit** images keep their picture (``value >> 8``), never clip to white; palette,
  grey, grey + alpha, CMYK and bilevel images are converted to RGB(A).
* **Refused**: a folder or missing file, an unreadable or empty file, a multi-frame image
  (animated GIF/PNG/WebP, multi-page TIFF: which frame would be meant?), an image whose
  shorter side is under ``min_side`` pixels, and one of more than ``max_pixels`` pixels
  (a "decompression bomb": a 50 KB PNG can claim 20000 x 20000 pixels, 1.2 GB decoded).
  The size checks read only the file's header.

Decoding. RGB JPEGs, most photos, are decoded by OpenCV (``cv2.imdecode``), which applies
EXIF orientation itself; with ``at_least`` a large JPEG is decoded at 1/2, 1/4 or 1/8
scale directly (``IMREAD_REDUCED_COLOR_*``: the DCT does the reduction) as long as its
shorter side stays at least ``at_least`` pixels. ``evacamel bench decode`` (4000 x 3000
photos to a 1024 px square: decode + EXIF + crop + area resize, both ways on the same
files) measured OpenCV at x1.1-1.4 PIL's rate for JPEG over four runs on a loaded 2-core
machine (4.5 vs 3.2 photos/s in the last) and about the same rate for PNG (x0.8-1.1).
Everything else is
decoded by PIL (with :func:`PIL.ImageOps.exif_transpose`): PNG (no faster with OpenCV, and
libpng under OpenCV prints its own line to stderr on a truncated file, where PIL raises),
the other formats, and RGBA cut-outs (OpenCV reads alpha only with ``IMREAD_UNCHANGED``,
which skips EXIF and keeps 16 bits).
:func:`resize_area` resizes with area filtering (``cv2.INTER_AREA``).
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = ["MAX_PIXELS", "MAX_PIXELS_ENV", "MIN_SIDE", "max_pixels_limit", "read_photo", "photo_size", "resize_area",
           "center_square", "decode_with_pil", "decode_with_cv2"]

MAX_PIXELS = 100_000_000
"""Default pixel limit (100 Mpx, 300 MB decoded as RGB; a 200 Mpx phone photo needs
raising it with :data:`MAX_PIXELS_ENV`)."""
MAX_PIXELS_ENV = "EVACAMEL_MAX_PIXELS"
"""Environment variable that sets the pixel limit for every command and notebook."""
_RAISE = f"shrink the image, or raise the limit with {MAX_PIXELS_ENV}=<pixels>"
MIN_SIDE = 16
"""Default smallest shorter side, in pixels."""

_MODES = ("RGB", "RGBA")
_CV2_REDUCED = ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4),
                (2, cv2.IMREAD_REDUCED_COLOR_2))
_CV2_FORMATS = {"JPEG"}  # see the module docstring


def max_pixels_limit() -> int:
    """The pixel limit: ``$EVACAMEL_MAX_PIXELS`` if set, else :data:`MAX_PIXELS`."""
    text = os.environ.get(MAX_PIXELS_ENV, "").strip().replace("_", "").replace(",", "")
    if not text:
        return MAX_PIXELS
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"{MAX_PIXELS_ENV}={os.environ[MAX_PIXELS_ENV]!r}: give a whole number "
                         "of pixels, e.g. 200000000")
    return int(text)


def _open(path: Path, max_pixels: int) -> Image.Image:
    """The file opened lazily by PIL (header read, pixels not yet decoded); PIL's own bomb
    check (at twice ``Image.MAX_IMAGE_PIXELS``) is lifted to ``max_pixels`` if that is higher."""
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a folder, not an image file; name one image file")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: image file not found")
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: empty file (0 bytes), not an image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our limit decides
            if max_pixels <= 2 * (Image.MAX_IMAGE_PIXELS or 0):
                return Image.open(path)
            saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, max_pixels
            try:
                return Image.open(path)
            finally:
                Image.MAX_IMAGE_PIXELS = saved
    except Image.DecompressionBombError as exc:
        size = re.search(r"\((\d+) pixels\)", str(exc))
        claimed = f"{int(size[1]):,} pixels" if size else "too many pixels"
        raise ValueError(f"{path}: {claimed} is more than the limit of {max_pixels:,} (a possible "
                         f"decompression bomb); {_RAISE}") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ValueError(f"{path}: not a readable image ({exc})") from None


def _check_header(img: Image.Image, path: Path, max_pixels: int, min_side: int) -> None:
    w, h = img.size
    if w * h > max_pixels:
        raise ValueError(f"{path}: {w} x {h} pixels is more than the limit of {max_pixels:,} "
                         f"(a possible decompression bomb); {_RAISE}")
    if min(w, h) < min_side:
        raise ValueError(f"{path}: {w} x {h} pixels is too small; an image needs at least "
                         f"{min_side} pixels on its shorter side")
    if getattr(img, "n_frames", 1) > 1 and img.format != "MPO":  # MPO: a phone JPEG + preview
        raise ValueError(f"{path}: has {img.n_frames} frames (an animation or a multi-page "
                         "file); save the one picture you mean as PNG or JPEG")


def photo_size(path: str | os.PathLike, *, max_pixels: int | None = None) -> tuple[int, int]:
    """``(width, height)`` as stored (before EXIF orientation), from the header only."""
    path = Path(path)
    with _open(path, max_pixels or max_pixels_limit()) as img:
        return img.size


def _reduced_flag(size: tuple[int, int], at_least: int | None) -> tuple[int, int]:
    """The largest JPEG reduction (8, 4, 2) keeping the shorter side >= ``at_least``."""
    if at_least:
        for factor, flag in _CV2_REDUCED:
            if min(size) // factor >= at_least:
                return factor, flag
    return 1, cv2.IMREAD_COLOR


def decode_with_cv2(path: str | os.PathLike, *, at_least: int | None = None,
                    fmt: str = "JPEG", size: tuple[int, int] = (0, 0)) -> np.ndarray:
    """OpenCV: uint8 RGB ``H x W x 3``, EXIF orientation applied, 16-bit scaled to 8-bit.

    ``at_least`` (JPEG only): decode at 1/2, 1/4 or 1/8 scale while the shorter side of
    the stored ``size`` stays at least that many pixels.
    """
    path = Path(path)
    _, flag = _reduced_flag(size, at_least) if fmt == "JPEG" else (1, cv2.IMREAD_COLOR)
    data = np.fromfile(path, dtype=np.uint8)
    try:
        bgr = cv2.imdecode(data, flag)
    except cv2.error as exc:  # what OpenCV raises on some malformed files
        raise ValueError(f"{path}: not a readable image ({' '.join(str(exc).split())[-200:]})") from None
    if bgr is None:
        raise ValueError(f"{path}: not a readable image (OpenCV could not decode it)")
    if bgr.dtype != np.uint8:  # IMREAD_COLOR already scales 16-bit down; be sure
        bgr = (bgr >> 8).astype(np.uint8) if bgr.dtype == np.uint16 else bgr.astype(np.uint8)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _to_8bit(img: Image.Image) -> Image.Image:
    """16/32-bit grey and float images as 8-bit grey with the same picture."""
    if img.mode.startswith("I;16") or img.mode in ("I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        scale = 1.0 if img.mode == "F" and arr.max(initial=0) <= 1.0 else 1 / 257
        arr = arr * (255.0 if scale == 1.0 else scale)
        return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "L")
    return img


def decode_with_pil(path: str | os.PathLike, img: Image.Image | None = None, *,
                    mode: str = "RGB", at_least: int | None = None) -> np.ndarray:
    """PIL: uint8 ``H x W x C`` in ``mode`` ("RGB" or "RGBA"), EXIF orientation applied.

    ``at_least`` (JPEG only): :meth:`PIL.Image.Image.draft` decodes at a reduced scale
    while the shorter side stays at least that many pixels.
    """
    path = Path(path)
    img = Image.open(path) if img is None else img
    try:
        if at_least and img.format == "JPEG":
            w, h = img.size
            factor, _ = _reduced_flag(img.size, at_least)
            img.draft("RGB", (w // factor, h // factor))
        img.load()
        img = _to_8bit(ImageOps.exif_transpose(img))
        if mode == "RGBA" or img.mode not in ("RGBA", "LA", "PA", "P"):
            return np.array(img.convert(mode), dtype=np.uint8)  # a writable copy
        return np.array(img.convert("RGBA").convert("RGB"), dtype=np.uint8)
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ValueError(f"{path}: not a readable image ({' '.join(str(exc).split())})") from None


def read_photo(path: str | os.PathLike, *, mode: str = "RGB", max_pixels: int | None = None,
               min_side: int = MIN_SIDE, at_least: int | None = None) -> np.ndarray:
    """A user's photo, upright, as uint8 ``H x W x 3`` (``mode="RGB"``) or ``H x W x 4``
    (``"RGBA"``, straight alpha; an image without alpha gets alpha 255).

    Args:
        path: the image file (JPEG, PNG, BMP, WebP, TIFF, GIF ...).
        mode: ``"RGB"`` or ``"RGBA"``.
        max_pixels: refuse images with more pixels (width x height); default
            :func:`max_pixels_limit` (``$EVACAMEL_MAX_PIXELS``, else 100 Mpx).
        min_side: refuse images whose shorter side is smaller.
        at_least: if given, a large JPEG may be decoded at 1/2, 1/4 or 1/8 scale as long
            as its shorter side stays at least this many pixels (much faster; the caller
            resizes to its final size anyway).

    Raises:
        FileNotFoundError, IsADirectoryError: no such file, or a folder.
        ValueError: unreadable, empty, multi-frame, too small or too large; one line
            naming ``path`` and the limit.
    """
    if mode not in _MODES:
        raise ValueError(f"read_photo: mode {mode!r}: choose one of {', '.join(_MODES)}")
    path = Path(path)
    max_pixels = max_pixels or max_pixels_limit()
    with _open(path, max_pixels) as img:
        _check_header(img, path, max_pixels, min_side)
        if mode == "RGB" and img.format in _CV2_FORMATS:
            fmt, size = str(img.format), img.size
        else:
            return decode_with_pil(path, img, mode=mode, at_least=at_least)
    return decode_with_cv2(path, at_least=at_least, fmt=fmt, size=size)


def center_square(rgb: np.ndarray) -> np.ndarray:
    """The largest centred square of an ``H x W x C`` array (a view)."""
    h, w = rgb.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return rgb[top:top + side, left:left + side]


def resize_area(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 ``H x W x C`` -> ``h x w x C`` (``size = (h, w)``) by area filtering
    (``cv2.INTER_AREA``; the array itself when already that size)."""
    h, w = size
    if rgb.shape[:2] == (h, w):
        return rgb
    out = cv2.resize(np.ascontiguousarray(rgb), (w, h), interpolation=cv2.INTER_AREA)
    return out[..., None] if out.ndim == 2 and rgb.ndim == 3 else out
