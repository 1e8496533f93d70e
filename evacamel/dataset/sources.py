"""A student's own pictures as dataset sources: folders of backgrounds and camel cut-outs.

:func:`evacamel.dataset.write.write_dataset` takes these instead of the procedural world
(``evacamel make-dataset --backgrounds DIR --camels DIR [--camel-masks DIR]``):

* **backgrounds**: any RGB images (JPEG, PNG, BMP, WebP, TIFF), read by
  :func:`evacamel.dataset.photo.read_photo` (upright, 16-bit kept, size limits),
  centre-cropped to a square and area-resized to the dataset's ``source_size``. An image
  smaller than that (its shorter side) is refused: upscaling would only blur it.
* **camel cut-outs**: RGBA PNGs whose alpha is the camel, or RGB images with a mask file
  of the same stem (any image extension; white = camel) in a masks folder. A cut-out must
  show a camel: not empty, not opaque everywhere, not a few pixels or a thin line.

Everything is checked before anything is written, and every problem names its file.
Files are taken in sorted name order, so the ids (``bg_0000`` ...) are reproducible.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from evacamel.dataset.photo import center_square, photo_size, read_photo, resize_area

__all__ = [
    "IMAGE_EXTENSIONS",
    "list_images",
    "load_background",
    "load_cutout",
    "check_visible_camel",
    "MIN_CAMEL_PIXELS",
    "MIN_CAMEL_SIDE",
    "FolderSources",
    "folder_fingerprint",
    "export_example_folders",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
MIN_CAMEL_PIXELS = 64
"""Fewest camel pixels (alpha >= 128) a cut-out may have."""
MIN_CAMEL_SIDE = 8
"""Smallest width and height, in pixels, of a cut-out's camel (its bounding box)."""


def list_images(folder: str | os.PathLike, what: str = "images") -> list[Path]:
    """The image files of ``folder`` (not recursive), sorted by name.

    Raises:
        FileNotFoundError: ``folder`` is not a folder.
        ValueError: it holds no image file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: {what} folder not found")
    files = sorted(p for p in folder.iterdir()
                   if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith("."))
    if not files:
        raise ValueError(f"{folder}: no {what} found (looked for {', '.join(IMAGE_EXTENSIONS)})")
    return files


def load_background(path: str | os.PathLike, size: int) -> torch.Tensor:
    """A background photo, upright (EXIF), centre-cropped to a square and area-resized:
    uint8 ``3 x size x size``.

    Raises:
        ValueError: unreadable, multi-frame, over the pixel limit (``$EVACAMEL_MAX_PIXELS``),
            or its shorter side is smaller than ``size`` (upscaling would only blur it).
    """
    w, h = photo_size(path)
    if min(w, h) < size:
        raise ValueError(f"{path}: background is {w}x{h}, smaller than the output size "
                         f"{size}x{size} (its shorter side must be at least {size} px)")
    rgb = read_photo(path, mode="RGB", at_least=size)
    rgb = resize_area(center_square(rgb), (size, size))
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).contiguous()


def _mask_for(path: Path, mask_dir: Path | None) -> Path | None:
    if mask_dir is None:
        return None
    for ext in IMAGE_EXTENSIONS:
        for cand in (mask_dir / (path.stem + ext), mask_dir / (path.stem + ext.upper())):
            if cand.is_file():
                return cand
    return None


def check_visible_camel(alpha: np.ndarray, where: str) -> None:
    """Refuse an alpha/mask (uint8 ``H x W``) that shows no usable camel: empty, fully
    opaque (not a cut-out), or whose camel (alpha >= 128) covers fewer than
    :data:`MIN_CAMEL_PIXELS` pixels or is thinner than :data:`MIN_CAMEL_SIDE` pixels."""
    if alpha.max(initial=0) == 0:
        raise ValueError(f"{where}: mask is empty (no camel pixel)")
    if alpha.min(initial=255) == 255:
        raise ValueError(f"{where}: fully opaque everywhere, so it is not a cut-out; give a "
                         "transparent background or a mask that is black around the camel")
    rows, cols = np.nonzero(alpha >= 128)
    height = int(rows.max() - rows.min() + 1) if rows.size else 0
    width = int(cols.max() - cols.min() + 1) if cols.size else 0
    if rows.size < MIN_CAMEL_PIXELS or min(height, width) < MIN_CAMEL_SIDE:
        raise ValueError(f"{where}: the visible camel is {width} x {height} pixels "
                         f"({rows.size} pixels); a cut-out needs at least {MIN_CAMEL_PIXELS} "
                         f"camel pixels spanning {MIN_CAMEL_SIDE} x {MIN_CAMEL_SIDE}")


def _alpha_of(path: Path, rgba: np.ndarray, mask_path: Path | None,
              mask_dir: str | os.PathLike | None) -> tuple[np.ndarray, str]:
    """The cut-out's alpha (uint8 ``H x W``) and where it came from."""
    if mask_path is not None:
        mask = cv2.cvtColor(read_photo(mask_path, mode="RGB", min_side=1), cv2.COLOR_RGB2GRAY)
        if mask.shape != rgba.shape[:2]:
            raise ValueError(f"{mask_path}: mask is {mask.shape[1]}x{mask.shape[0]} but its "
                             f"image {path} is {rgba.shape[1]}x{rgba.shape[0]}")
        return mask, str(mask_path)
    with Image.open(path) as img:
        has_alpha = img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info
    if not has_alpha:
        hint = f" in {mask_dir}" if mask_dir is not None else " (no masks folder given)"
        raise ValueError(f"{path}: camel image has no alpha channel and no mask file "
                         f"named {path.stem}.<ext>{hint}")
    return rgba[..., 3], f"{path} (alpha channel)"


def load_cutout(path: str | os.PathLike, mask_dir: str | os.PathLike | None = None) -> torch.Tensor:
    """A camel cut-out as float ``4 x h x w`` RGBA in [0, 1] (straight alpha), upright.

    The alpha comes from a mask file of the same stem in ``mask_dir`` if there is one
    (white = camel), else from the image's own alpha channel.

    Raises:
        ValueError: unreadable; no alpha and no mask; no visible camel (empty, fully
            opaque, or a camel of a few pixels or a thin line, see
            :func:`check_visible_camel`); a mask of another size.
    """
    path = Path(path)
    rgba = read_photo(path, mode="RGBA", min_side=1)
    mask_path = _mask_for(path, Path(mask_dir) if mask_dir is not None else None)
    alpha, where = _alpha_of(path, rgba, mask_path, mask_dir)
    check_visible_camel(alpha, where)
    rgba = np.concatenate([rgba[..., :3], alpha[..., None]], axis=-1)
    return torch.from_numpy(rgba).permute(2, 0, 1).float().div_(255.0)


def folder_fingerprint(files: list[Path]) -> str:
    """A short hash of file names and sizes: tells whether a folder changed."""
    h = hashlib.sha1()
    for f in files:
        h.update(f"{f.name}\0{f.stat().st_size}\n".encode())
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class FolderSources:
    """The student's folders. ``None`` for either part means: use the procedural world.

    Attributes:
        backgrounds: folder of background photos, or ``None``.
        camels: folder of camel cut-outs, or ``None``.
        camel_masks: folder of masks for RGB cut-outs (same stem), or ``None``.
    """

    backgrounds: Path | None = None
    camels: Path | None = None
    camel_masks: Path | None = None

    @classmethod
    def of(cls, backgrounds: str | os.PathLike | None = None,
           camels: str | os.PathLike | None = None,
           camel_masks: str | os.PathLike | None = None) -> "FolderSources":
        return cls(*(Path(p).expanduser() if p is not None else None
                     for p in (backgrounds, camels, camel_masks)))

    def background_files(self) -> list[Path] | None:
        return None if self.backgrounds is None else list_images(self.backgrounds, "background images")

    def camel_files(self) -> list[Path] | None:
        return None if self.camels is None else list_images(self.camels, "camel cut-outs")

    def check(self, source_size: int) -> tuple[list[Path] | None, list[Path] | None]:
        """Read every file once and raise on the first bad one; returns the file lists."""
        if self.camel_masks is not None and not Path(self.camel_masks).is_dir():
            raise FileNotFoundError(f"{self.camel_masks}: camel masks folder not found")
        bgs, fgs = self.background_files(), self.camel_files()
        for f in bgs or []:
            load_background(f, source_size)
        for f in fgs or []:
            load_cutout(f, self.camel_masks)
        return bgs, fgs


def export_example_folders(folder: str | os.PathLike, backgrounds: torch.Tensor,
                           cutouts: list[torch.Tensor]) -> FolderSources:
    """Write pictures as a student's folders would hold them (for demos and tests).

    ``folder/backgrounds/desert_<i>.jpg`` from float ``B x 3 x S x S`` in [0, 1], and
    ``folder/camels/camel_<j>.png`` RGBA cut-outs from float ``4 x h x w`` sprites; the
    last camel is written the other supported way, as an RGB JPEG plus
    ``folder/camel_masks/camel_<j>.png`` (white = camel).

    Returns:
        The :class:`FolderSources` to pass to ``write_dataset(source=...)``.
    """
    folder = Path(folder)
    bg_dir, fg_dir, mask_dir = folder / "backgrounds", folder / "camels", folder / "camel_masks"
    for d in (bg_dir, fg_dir, mask_dir):
        d.mkdir(parents=True, exist_ok=True)

    def u8(x: torch.Tensor) -> np.ndarray:
        return (x.detach().float().cpu().clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()

    for i, rgb in enumerate(backgrounds):
        Image.fromarray(u8(rgb), "RGB").save(bg_dir / f"desert_{i}.jpg", quality=95)
    for j, rgba in enumerate(cutouts):
        arr = u8(rgba)
        if j == len(cutouts) - 1 and j > 0:
            Image.fromarray(np.ascontiguousarray(arr[..., :3]), "RGB").save(fg_dir / f"camel_{j}.jpg", quality=95)
            Image.fromarray(np.ascontiguousarray(arr[..., 3]), "L").save(mask_dir / f"camel_{j}.png")
        else:
            Image.fromarray(arr, "RGBA").save(fg_dir / f"camel_{j}.png")
    return FolderSources(bg_dir, fg_dir, mask_dir)
