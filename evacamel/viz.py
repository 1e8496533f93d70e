"""Figures for the course: image grids, mask overlays, depth colour maps.

All functions take torch tensors in the library's conventions (images float
``B x 3 x H x W`` or ``3 x H x W`` in [0, 1], masks ``1 x H x W`` in [0, 1], depth in
meters or as the [0, 1] target) and return matplotlib figures, so notebooks stay short
and the book shows the same pictures.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

__all__ = ["to_numpy_image", "depth_to_rgb", "overlay_mask", "show_grid", "show_rows"]


def to_numpy_image(img: torch.Tensor) -> np.ndarray:
    """``C x H x W`` float tensor in [0, 1] (C = 1, 3 or 4) -> ``H x W (x C)`` numpy for imshow."""
    img = img.detach().float().cpu().clamp(0, 1)
    if img.ndim == 2:
        return img.numpy()
    if img.shape[0] == 1:
        return img[0].numpy()
    return img.permute(1, 2, 0).numpy()


def depth_to_rgb(depth: torch.Tensor, *, vmin: float | None = None, vmax: float | None = None,
                 cmap: str = "magma", log: bool = True) -> torch.Tensor:
    """Colour-map a depth map: ``1 x H x W`` (or ``H x W``) meters -> ``3 x H x W`` float in [0, 1].

    Near is bright (the seed's convention). ``log`` spaces the colours by log depth;
    ``vmin``/``vmax`` (meters) fix the range so several maps compare (default: the map's own).
    """
    d = depth.detach().float().cpu().squeeze()
    if log:
        d = torch.log(d.clamp_min(1e-3))
        vmin = None if vmin is None else float(np.log(vmin))
        vmax = None if vmax is None else float(np.log(vmax))
    lo = float(d.min()) if vmin is None else vmin
    hi = float(d.max()) if vmax is None else vmax
    t = 1.0 - ((d - lo) / max(hi - lo, 1e-12)).clamp(0, 1)
    rgb = plt.get_cmap(cmap)(t.numpy())[..., :3]
    return torch.from_numpy(rgb).permute(2, 0, 1).float()


def overlay_mask(image: torch.Tensor, mask: torch.Tensor, color: Sequence[float] = (1.0, 0.1, 0.6),
                 alpha: float = 0.5) -> torch.Tensor:
    """Tint ``image`` (``3 x H x W``) where ``mask`` (``1 x H x W`` in [0, 1]) is set; same shape out."""
    m = mask.detach().float().cpu()
    if m.shape[-2:] != image.shape[-2:]:
        m = torch.nn.functional.interpolate(m[None], size=image.shape[-2:], mode="nearest")[0]
    c = torch.tensor(color, dtype=torch.float32).view(3, 1, 1)
    img = image.detach().float().cpu()
    return img * (1 - alpha * m) + c * (alpha * m)


def show_grid(images: Sequence[torch.Tensor] | torch.Tensor, *, ncols: int = 4,
              titles: Sequence[str] | None = None, suptitle: str | None = None,
              size: float = 2.5, cmap: str | None = None) -> plt.Figure:
    """A grid of images (each ``C x H x W`` in [0, 1]); returns the figure."""
    images = list(images)
    n = len(images)
    ncols = max(1, min(ncols, n))
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            arr = to_numpy_image(images[i])
            ax.imshow(arr, cmap=cmap or ("gray" if arr.ndim == 2 else None), vmin=0, vmax=1)
            if titles is not None:
                ax.set_title(titles[i], fontsize=9)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def show_rows(rows: dict[str, Sequence[torch.Tensor]], *, size: float = 2.2,
              suptitle: str | None = None) -> plt.Figure:
    """One row per named image list (e.g. ``{"fg_bg": ..., "mask": ..., "depth": ...}``)."""
    names = list(rows)
    ncols = max(len(v) for v in rows.values())
    fig, axes = plt.subplots(len(names), ncols, figsize=(size * ncols, size * len(names)),
                             squeeze=False)
    for r, name in enumerate(names):
        for c, ax in enumerate(axes[r]):
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if c < len(rows[name]):
                arr = to_numpy_image(rows[name][c])
                ax.imshow(arr, cmap="gray" if arr.ndim == 2 else None, vmin=0, vmax=1)
        axes[r][0].set_ylabel(name, fontsize=10)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def plot_unet_blocks(model: torch.nn.Module, input_size: int) -> plt.Figure:
    """Parameters and feature-map size of each U-Net block (``down0`` ... ``depth_head``)."""
    from evacamel.model import summary

    rows = summary(model, input_size)
    blocks: dict[str, list[int]] = {}
    for r in rows:
        block = r.name.split(".")[0]
        entry = blocks.setdefault(block, [0, r.output_shape[-1], r.output_shape[1]])
        entry[0] += r.params
        entry[1], entry[2] = r.output_shape[-1], r.output_shape[1]
    names = list(blocks)
    params = [blocks[n][0] for n in names]
    fig, ax = plt.subplots(figsize=(10, 3.6))
    colors = ["#c2894b" if n.startswith("down") else "#4b7fc2" if n.startswith("up") else "#666"
              for n in names]
    bars = ax.bar(names, params, color=colors)
    for bar, n in zip(bars, names):
        ax.annotate(f"{blocks[n][2]}ch\n{blocks[n][1]}px", (bar.get_x() + bar.get_width() / 2,
                    bar.get_height()), ha="center", va="bottom", fontsize=7)
    ax.set_ylabel("parameters")
    ax.set_ylim(0, max(params) * 1.25)
    ax.set_title(f"Parameters per block (total {sum(params):,}); channels and size of each "
                 f"block's output at {input_size} px input")
    ax.tick_params(axis="x", rotation=45)
    fig.tight_layout()
    return fig
