"""Photometric steps on batches of images: CLAHE brightness equalisation (kornia).

The seed equalised its 1024 backgrounds with CLAHE before compositing; :func:`clahe`
does the same, batched and on any device, on luminance only so colours are kept.
"""

from __future__ import annotations

import kornia
import torch

__all__ = ["clahe"]


def clahe(images: torch.Tensor, clip_limit: float = 2.0, grid: tuple[int, int] = (8, 8)) -> torch.Tensor:
    """Contrast-limited adaptive histogram equalisation of the luminance.

    Args:
        images: ``B x 3 x H x W`` (or ``3 x H x W``) float in [0, 1], RGB.
        clip_limit: histogram clip limit (kornia's meaning; 2 is mild, 40 is strong).
        grid: tiles along ``(rows, cols)``.

    Returns:
        The same shape and dtype, in [0, 1]: Y of YCbCr equalised with
        :func:`kornia.enhance.equalize_clahe`, chroma (Cb, Cr) unchanged.
    """
    if images.ndim not in (3, 4) or images.shape[-3] != 3:
        raise ValueError(f"clahe expects B x 3 x H x W or 3 x H x W RGB images, got shape {tuple(images.shape)}")
    single = images.ndim == 3
    x = images[None] if single else images
    dtype = x.dtype
    ycc = kornia.color.rgb_to_ycbcr(x.float().clamp(0, 1))
    y = kornia.enhance.equalize_clahe(ycc[:, :1].contiguous(), clip_limit=float(clip_limit), grid_size=tuple(grid))
    out = kornia.color.ycbcr_to_rgb(torch.cat([y, ycc[:, 1:]], 1)).clamp(0, 1).to(dtype)
    return out[0] if single else out
