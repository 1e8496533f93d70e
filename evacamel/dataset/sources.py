"""A student's own pictures as dataset sources: folders of backgrounds and camel cut-outs.

:func:`evacamel.dataset.write.write_dataset` takes these instead of the procedural world
(``evacamel make-dataset --backgrounds DIR --camels DIR [--camel-masks DIR]``):

* **backgrounds**: any RGB images (JPEG, PNG, BMP, WebP, TIFF), centre-cropped to a square
  and resized to the dataset's ``source_size``. An image smaller than that (its shorter
  side) is refused: upscaling would only blur it.
* **camel cut-outs**: RGBA PNGs whose alpha is the camel, or RGB images with a mask file
  of the same stem (any image extension; white = camel) in a masks folder.

Everything is checked before anything is written, and every problem names its file.
Files are taken in sorted name order, so the ids (``bg_0000`` ...) are reproducible.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

__all__ = [
    "IMAGE_EXTENSIONS",
    "list_images",
    "load_background",
    "load_cutout",
    "FolderSources",
    "folder_fingerprint",
    "export_example_folders",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


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


def _open(path: Path) -> Image.Image:
    try:
        img = Image.open(path)
        img.load()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ValueError(f"{path}: not a readable image ({exc})") from None
    return img


def load_background(path: str | os.PathLike, size: int) -> torch.Tensor:
    """A background photo, centre-cropped to a square and resized: uint8 ``3 x size x size``.

    Raises:
        ValueError: unreadable, or its shorter side is smaller than ``size``.
    """
    path = Path(path)
    img = _open(path).convert("RGB")
    w, h = img.size
    side = min(w, h)
    if side < size:
        raise ValueError(f"{path}: background is {w}x{h}, smaller than the output size "
                         f"{size}x{size} (its shorter side must be at least {size} px)")
    left, top = (w - side) // 2, (h - side) // 2
    img = img.crop((left, top, left + side, top + side))
    if side != size:
        img = img.resize((size, size), Image.Resampling.LANCZOS)
    return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1).contiguous()


def _mask_for(path: Path, mask_dir: Path | None) -> Path | None:
    if mask_dir is None:
        return None
    for ext in IMAGE_EXTENSIONS:
        for cand in (mask_dir / (path.stem + ext), mask_dir / (path.stem + ext.upper())):
            if cand.is_file():
                return cand
    return None


def load_cutout(path: str | os.PathLike, mask_dir: str | os.PathLike | None = None) -> torch.Tensor:
    """A camel cut-out as float ``4 x h x w`` RGBA in [0, 1] (straight alpha).

    The alpha comes from a mask file of the same stem in ``mask_dir`` if there is one
    (white = camel), else from the image's own alpha channel.

    Raises:
        ValueError: unreadable; no alpha and no mask; an empty mask/alpha (no camel
            pixel); a fully opaque alpha (not a cut-out); a mask of another size.
    """
    path = Path(path)
    img = _open(path)
    mask_path = _mask_for(path, Path(mask_dir) if mask_dir is not None else None)
    rgb = np.asarray(img.convert("RGB"), dtype=np.uint8)
    if mask_path is not None:
        m = _open(mask_path)
        if m.size != img.size:
            raise ValueError(f"{mask_path}: mask is {m.size[0]}x{m.size[1]} but its image "
                             f"{path} is {img.size[0]}x{img.size[1]}")
        alpha = np.asarray(m.convert("L"), dtype=np.uint8)
        where = str(mask_path)
    elif img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        alpha = np.asarray(img.convert("RGBA"), dtype=np.uint8)[..., 3]
        where = f"{path} (alpha channel)"
        if alpha.min() == 255:
            raise ValueError(f"{path}: alpha channel is fully opaque, so it is not a cut-out; "
                             "give a transparent background or a mask file")
    else:
        hint = f" in {mask_dir}" if mask_dir is not None else " (no masks folder given)"
        raise ValueError(f"{path}: camel image has no alpha channel and no mask file "
                         f"named {path.stem}.<ext>{hint}")
    if alpha.max() == 0:
        raise ValueError(f"{where}: mask is empty (no camel pixel)")
    rgba = np.concatenate([rgb, alpha[..., None]], axis=-1)
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
