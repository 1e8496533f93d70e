"""Image bytes with the dataset's fixed settings (the same pixels always give the same bytes).

* RGB images: JPEG (quality from the profile, 4:2:0, baseline, not optimised) or PNG, by PIL.
* Masks and depth: greyscale PNGs (8-bit, 16-bit) by :func:`encode_png_gray`, a minimal
  encoder with a fixed row filter and zlib level.
* Camel sprites: RGBA PNG, by PIL.

Plus the two resamplings used before storing: depth (nearest: no blended depths) and
RGBA sprites (premultiplied, antialiased).
(On the same library versions: another libjpeg or zlib may encode differently.)
"""

from __future__ import annotations

import io
import os
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.io as tio
from PIL import Image

from evacamel.depth_units import meters_to_png

__all__ = ["decode_image_bytes", "read_image", "JPEG_SUBSAMPLING", "RGBA_PNG_LEVEL",
           "float01_to_hwc_uint8", "encode_rgb", "encode_png_gray", "encode_mask", "encode_depth",
           "encode_rgba", "resize_depth", "resize_rgba"]

JPEG_SUBSAMPLING = 2
"""4:2:0 chroma subsampling (PIL's code 2), as most cameras and the seed's OpenCV."""
RGBA_PNG_LEVEL = 6
"""zlib level of RGBA sprite (and PNG image) files, through PIL."""
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def float01_to_hwc_uint8(x: torch.Tensor) -> np.ndarray:
    """float ``C x H x W`` in [0, 1] -> numpy uint8 ``H x W x C`` (or ``H x W`` for C = 1),
    ``floor(x * 255 + 0.5)``: rounds half up (the files' fixed rounding), clamped."""
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
    Image.fromarray(float01_to_hwc_uint8(rgba), "RGBA").save(buf, "PNG", compress_level=RGBA_PNG_LEVEL)
    return buf.getvalue()


def resize_depth(depth: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Depth ``... x H x W`` (meters, float) -> ``... x h x w`` by nearest sampling.

    Every pixel keeps a depth that exists in the scene (averaging across the edge of a
    near dune and the sky would invent a half-way depth of ~500 m). ``size`` is ``h = w``
    or ``(h, w)``; ``depth`` has at least 3 dims (``1 x H x W`` or ``B x 1 x H x W``).
    Same size: ``depth`` itself. Integer factors: a strided view (the values of
    ``F.interpolate(mode="nearest-exact")``, without its copy).
    """
    h, w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    H, W = depth.shape[-2:]
    if (H, W) == (h, w):
        return depth
    if H % h == 0 and W % w == 0:
        # nearest-exact picks source pixel dst * step + step // 2 along each axis
        sh, sw = H // h, W // w
        return depth[..., sh // 2::sh, sw // 2::sw]
    squeeze = depth.ndim == 3
    d = depth[None] if squeeze else depth
    d = F.interpolate(d, size=(h, w), mode="nearest-exact")
    return d[0] if squeeze else d


def resize_rgba(rgba: torch.Tensor, size: int) -> torch.Tensor:
    """Square straight-alpha ``4 x s x s`` -> ``4 x size x size`` (premultiplied, antialiased)."""
    if rgba.shape[-1] == size and rgba.shape[-2] == size:
        return rgba
    a = rgba[3:4]
    x = torch.cat([rgba[:3] * a, a])[None]
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)[0]
    a = x[3:4].clamp(0, 1)
    rgb = torch.where(a > 1e-6, x[:3] / a.clamp_min(1e-6), torch.zeros_like(x[:3]))
    return torch.cat([rgb.clamp(0, 1), a])


# -- decoding ---------------------------------------------------------------------------

def decode_image_bytes(data: bytes | bytearray | memoryview, *, name: str = "<bytes>",
                       channels: int | None = None) -> torch.Tensor:
    """Decode JPEG or PNG bytes to a ``C x H x W`` tensor.

    Args:
        data: the encoded file.
        name: the file's name, used in error messages.
        channels: 3 (RGB), 1 (grey) or ``None`` (as stored; a 16-bit PNG stays 16-bit).

    Returns:
        uint8 ``C x H x W`` (8-bit files) or uint16 ``1 x H x W`` (16-bit PNG, ``channels``
        ``None`` or 1).

    Raises:
        ValueError: the bytes are not a readable image; the message names ``name``.
    """
    buf = torch.frombuffer(bytearray(data), dtype=torch.uint8)
    if buf.numel() == 0:
        raise ValueError(f"{name}: empty file, not an image")
    mode = {None: tio.ImageReadMode.UNCHANGED, 3: tio.ImageReadMode.RGB,
            1: tio.ImageReadMode.GRAY}[channels]
    try:
        with warnings.catch_warnings():
            # torchvision 0.29 deprecates its codecs for torchcodec; they remain the
            # fastest JPEG/PNG (and 16-bit PNG) decoders at hand.
            warnings.simplefilter("ignore", DeprecationWarning)
            img = _decode(buf, bytes(data[:8]) == b"\x89PNG\r\n\x1a\n", channels, mode)
    except RuntimeError as exc:
        raise ValueError(f"{name}: not a readable JPEG/PNG image ({exc})") from None
    if channels is not None and img.shape[0] != channels:
        raise ValueError(f"{name}: expected {channels} channel(s), decoded {img.shape[0]}")
    return img


def _decode(buf: torch.Tensor, is_png: bool, channels: int | None,
            mode: tio.ImageReadMode) -> torch.Tensor:
    if is_png and channels in (None, 1):
        img = tio.decode_png(buf, tio.ImageReadMode.UNCHANGED)
        if img.shape[0] != 1 and channels == 1:
            img = tio.decode_png(buf, mode)
        return img
    return tio.decode_image(buf, mode)


def read_image(path: str | os.PathLike, *, channels: int | None = None) -> torch.Tensor:
    """Read and decode an image file; see :func:`decode_image_bytes`.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: it is not a readable image.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: image file not found") from None
    return decode_image_bytes(data, name=str(path), channels=channels)


