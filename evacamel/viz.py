"""Figures for the course: image grids, mask overlays, depth colour maps.

All functions take torch tensors in the library's conventions (images float
``B x 3 x H x W`` or ``3 x H x W`` in [0, 1], masks ``1 x H x W`` in [0, 1], depth in
meters or as the [0, 1] target) and return matplotlib figures, so notebooks stay short
and the book shows the same pictures.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
import torch

from evacamel.colab import widget_frontend

if TYPE_CHECKING:
    import ipywidgets as widgets

    from evacamel.loading.stats import Histograms
    from evacamel.model import BlockRow

__all__ = ["to_numpy_image", "depth_to_rgb", "overlay_mask", "show_grid", "show_rows",
           "plot_value_vs_depth", "plot_history", "show_predictions", "prediction_browser",
           "show_samples", "plot_value_histograms", "plot_mask_coverage",
           "plot_camel_placements", "show_depth_maps", "crop_to_masks"]


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


def plot_value_vs_depth(maps: dict[str, torch.Tensor], depth_m: torch.Tensor, *,
                        max_depth: float = 999.0, points: int = 400, size: float = 3.6) -> plt.Figure:
    """What each encoding says for each true distance: one panel per named map set.

    ``maps``: name -> ``B x 1 x H x W`` values (e.g. the seed's min-max maps, our target);
    ``depth_m``: ``B x 1 x H x W`` exact meters. Each image is one colour of dots (a seeded
    sample of ``points`` pixels nearer than ``max_depth``), x = true depth (log scale).
    A consistent encoding puts all images on one curve.
    """
    d = depth_m.detach().float().cpu()
    g = torch.Generator().manual_seed(0)
    fig, axes = plt.subplots(1, len(maps), figsize=(size * len(maps), size * 0.85), squeeze=False)
    colors = plt.get_cmap("tab10")
    for ax, (name, m) in zip(axes[0], maps.items()):
        m = m.detach().float().cpu()
        for i in range(d.shape[0]):
            idx = torch.nonzero((d[i] < max_depth).flatten()).flatten()
            if idx.numel() == 0:
                continue
            idx = idx[torch.randperm(idx.numel(), generator=g)[:points]]
            ax.scatter(d[i].flatten()[idx].numpy(), m[i].flatten()[idx].numpy(), s=3, alpha=0.6,
                       color=colors(i % 10), label=f"image {i}")
        ax.set_xscale("log")
        ax.set_xlabel("true depth (m)")
        ax.set_ylabel("stored value")
        ax.set_title(name, fontsize=10)
        ax.grid(alpha=0.3)
    if d.shape[0] <= 10:
        axes[0][-1].legend(fontsize=7, markerscale=3, loc="best")
    fig.tight_layout()
    return fig


# -- training curves and predictions (evacamel.train, evacamel.predict) -----------------


def plot_history(history: "Sequence[dict[str, float]] | str", *,
                 title: str | None = None) -> plt.Figure:
    """Training curves: total loss, its unweighted components, and the test metrics per epoch.

    ``history``: the per-epoch rows of :class:`evacamel.train.Trainer` (``trainer.history``),
    or a run folder / ``history.json`` path. Train values are solid, test values dashed.
    """
    import json
    from pathlib import Path

    if isinstance(history, (str, Path)):
        path = Path(history)
        path = path / "history.json" if path.is_dir() else path
        history = json.loads(path.read_text(encoding="utf-8"))["epochs"]
    rows = list(history)
    epochs = [r["epoch"] for r in rows]
    fig, axes = plt.subplots(3, 1, figsize=(6.5, 7.2), sharex=True)  # fits a column
    ax = axes[0]
    ax.plot(epochs, [r["train_loss"] for r in rows], "o-", label="train")
    ax.plot(epochs, [r["test_loss"] for r in rows], "o--", label="test")
    ax.set_title("total loss (weighted BCE + DSSIM + L1)", fontsize=10)
    ax.set_ylabel("loss")
    ax = axes[1]
    for i, term in enumerate(("bce", "dssim", "l1")):
        color = plt.get_cmap("tab10")(i)
        ax.plot(epochs, [r[f"train_{term}"] for r in rows], "o-", color=color, label=f"{term} train")
        ax.plot(epochs, [r[f"test_{term}"] for r in rows], "o--", color=color, label=f"{term} test")
    ax.set_yscale("log")
    ax.set_title("loss components (unweighted)", fontsize=10)
    ax = axes[2]
    for i, name in enumerate(("mask_iou", "mask_dice", "depth_ssim", "depth_delta1")):
        if name in rows[0]:
            ax.plot(epochs, [r[name] for r in rows], "o-", color=plt.get_cmap("tab10")(i + 3),
                    label=name)
    ax.set_ylim(0, 1.02)
    ax.set_title("test metrics", fontsize=10)
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
        ax.xaxis.get_major_locator().set_params(integer=True)
    axes[-1].set_xlabel("epoch")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def show_predictions(samples: dict[str, torch.Tensor], *, suptitle: str | None = None,
                     size: float = 1.9) -> plt.Figure:
    """Inputs, targets and predictions, one column per sample.

    ``samples``: :func:`evacamel.predict.predict_samples` output (``fg_bg``, ``mask``,
    ``mask_prob``, ``depth``, ``depth_pred``, optional ``iou``/``depth_ssim``). Rows: the
    composite, the true mask and the predicted one as overlays, the true and predicted
    depth in one colour map (meters, log scale 1..1000 m, near = bright).
    """
    from evacamel.depth_units import FAR_M, NEAR_M, target_to_meters

    n = samples["fg_bg"].shape[0]

    def depth_rgb(t: torch.Tensor) -> torch.Tensor:
        return depth_to_rgb(target_to_meters(t), vmin=NEAR_M, vmax=FAR_M)

    rows = {
        "fg_bg": [samples["fg_bg"][i] for i in range(n)],
        "true mask": [overlay_mask(samples["fg_bg"][i], samples["mask"][i], color=(0.1, 0.9, 0.2))
                      for i in range(n)],
        "predicted mask": [overlay_mask(samples["fg_bg"][i], (samples["mask_prob"][i] > 0.5).float())
                           for i in range(n)],
        "true depth": [depth_rgb(samples["depth"][i]) for i in range(n)],
        "predicted depth": [depth_rgb(samples["depth_pred"][i]) for i in range(n)],
    }
    fig = show_rows(rows, size=size, suptitle=suptitle)
    if "iou" in samples:
        for i, ax in enumerate(fig.axes[:n]):
            label = f"IoU {float(samples['iou'][i]):.2f}"
            if "depth_ssim" in samples:
                label += f"\nSSIM {float(samples['depth_ssim'][i]):.2f}"
            ax.set_title(label, fontsize=8)
        fig.tight_layout()
    return fig


def prediction_browser(get_samples: Callable[[int], dict[str, torch.Tensor]], count: int, *,
                       description: str = "sample") -> "widgets.VBox | plt.Figure":
    """A slider over ``count`` samples that draws :func:`show_predictions` of the chosen one.

    ``get_samples(i)`` returns the :func:`evacamel.predict.predict_samples` dict of sample
    ``i`` (e.g. ``lambda i: predict_samples(model, test_set, [i])``).

    With a widget frontend (Jupyter, Colab; see :func:`evacamel.colab.widget_frontend`)
    this returns the ipywidgets browser (ipywidgets 7.6+ and 8). Without one (the book
    build, nbval, a script) it makes no widget at all and returns the figure of sample 0,
    what the browser first shows, as a static stand-in.
    """
    def figure(i: int) -> plt.Figure:
        return show_predictions(get_samples(i), size=2.2, suptitle=f"{description} {i}")

    if not widget_frontend():
        fig = figure(0)
        plt.close(fig)  # shown once, as the cell's result, not again by the inline backend
        return fig
    # Here, not at the top: ~0.2 s that headless runs (the book, CI) never need.
    import ipywidgets as widgets  # 7.6+ (Colab ships 7.7.1) and 8.x
    from IPython.display import display

    slider = widgets.IntSlider(value=0, min=0, max=max(0, count - 1), description=description,
                               continuous_update=False)
    out = widgets.Output()

    def draw(change: object = None) -> None:
        with out:
            out.clear_output(wait=True)
            fig = figure(slider.value)
            display(fig)
            plt.close(fig)

    slider.observe(draw, names="value")
    draw()
    return widgets.VBox([slider, out])


def show_samples(samples: Sequence[dict], *, suptitle: str | None = None,
                 size: float = 2.2) -> plt.Figure:
    """Dataset samples as columns; rows ``bg``, ``fg_bg``, mask over ``fg_bg``, ``depth``.

    Each sample is a dict as :func:`evacamel.dataset.format.load_sample` returns: ``bg`` and
    ``fg_bg`` ``3 x H x W`` (uint8 or float in [0, 1]), ``mask`` ``1 x H x W`` in [0, 1],
    ``depth`` meters ``1 x h x w`` or ``None`` (the depth row is left out if any is
    missing). Depth colours share one log range, 1 m (bright) to 1000 m (dark).
    """
    def as_float(x: torch.Tensor) -> torch.Tensor:
        return x.float() / 255.0 if x.dtype == torch.uint8 else x.float()

    rows = {"bg": [as_float(s["bg"]) for s in samples],
            "fg_bg": [as_float(s["fg_bg"]) for s in samples],
            "mask": [overlay_mask(as_float(s["fg_bg"]), s["mask"]) for s in samples]}
    if samples and all(s.get("depth") is not None for s in samples):
        rows["depth"] = [depth_to_rgb(s["depth"], vmin=1.0, vmax=1000.0) for s in samples]
    return show_rows(rows, size=size, suptitle=suptitle)


# -- dataset statistics (notebook 03) -------------------------------------------------------

def plot_value_histograms(hist: "object", *, title: str | None = None) -> plt.Figure:
    """Pixel-value and depth histograms from :func:`evacamel.loading.stats.compute_histograms`.

    Panels: bg and fg_bg values per channel (0..255), mask values (log counts: almost all
    0, a few 255, fractional edges between), and depth in meters (log axis, from the
    [0, 1] target of the batches).
    """
    import matplotlib.ticker as mpl_ticker

    from evacamel.depth_units import target_to_meters

    counts = hist.counts
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
    x = np.arange(256)
    for kind, style in (("bg", "--"), ("fg_bg", "-")):
        for c, color in enumerate(("tab:red", "tab:green", "tab:blue")):
            h = counts[kind][c]
            axes[0].plot(x, h / h.sum(), style, color=color, lw=1,
                         label=f"{kind} {'RGB'[c]}")
    axes[0].set(title="image values (bg dashed, fg_bg solid)", xlabel="value (0..255)",
                ylabel="share of pixels")
    axes[0].legend(fontsize=7, ncol=2)
    m = counts["mask"][0]
    axes[1].bar(x[m > 0], m[m > 0], width=2.0, color="tab:purple", log=True)
    axes[1].set(title="mask values", xlabel="value (0 = background, 255 = camel)",
                ylabel="pixels (log)")
    d = counts["depth"][0].reshape(256, 256).sum(1).astype(np.float64)  # 256 target bins
    sky = d[0] / max(d.sum(), 1)  # the lowest bin holds the sky (1000 m)
    centers = target_to_meters(torch.tensor((np.arange(256) + 0.5) / 256)).numpy()
    widths = np.abs(np.diff(target_to_meters(torch.tensor(np.arange(257) / 256)).numpy()))
    axes[2].bar(centers[1:], d[1:] / max(d.sum(), 1), width=widths[1:], color="tab:brown")
    axes[2].set(xscale="log", title=f"depth of the ground (sky: {100 * sky:.0f}% of pixels)",
                xlabel="meters (log)", ylabel="share of pixels")
    axes[2].xaxis.set_major_formatter(mpl_ticker.ScalarFormatter())
    fig.suptitle(title or f"value distributions ({hist.samples} samples)")  # type: ignore[attr-defined]
    fig.tight_layout()
    return fig


def plot_mask_coverage(coverage: np.ndarray, *, title: str | None = None) -> plt.Figure:
    """Per-sample camel share of the mask, with the accuracy of answering "background"."""
    cov = np.asarray(coverage, dtype=np.float64) * 100
    fig, ax = plt.subplots(figsize=(7, 3.6))
    ax.hist(cov, bins=40, color="tab:orange", edgecolor="white")
    mean = float(cov.mean()) if cov.size else 0.0
    ax.axvline(mean, color="black", ls="--", label=f"mean {mean:.1f}% camel")
    ax.set(xlabel="camel pixels in the mask (%)", ylabel="samples",
           title=title or f'"all background" pixel accuracy: {100 - mean:.1f}%')
    ax.legend()
    fig.tight_layout()
    return fig


def plot_camel_placements(rows: Sequence[dict], source_size: int, *,
                          title: str | None = None) -> plt.Figure:
    """Camel size (box side / image side), distance and visible share, per split, from
    ``dataset_info.csv`` rows (:func:`evacamel.dataset.format.read_index`)."""
    import matplotlib.ticker as mpl_ticker

    fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
    splits = sorted({str(r.get("split", "all")) for r in rows})
    for sp in splits:
        mine = [r for r in rows if str(r.get("split", "all")) == sp]
        size = [float(r["w"]) / source_size for r in mine]
        dist = [float(r["distance_m"]) for r in mine if r.get("distance_m") not in (None, "")]
        vis = [float(r["visible_fraction"]) for r in mine if r.get("visible_fraction") not in (None, "")]
        axes[0].hist(size, bins=30, alpha=0.6, label=sp)
        if dist:
            axes[1].hist(dist, bins=np.geomspace(max(min(dist), 0.5), max(dist) + 1, 30),
                         alpha=0.6, label=sp)
        axes[2].hist(vis, bins=30, range=(0, 1), alpha=0.6, label=sp)
    axes[0].set(title="camel size", xlabel="sprite side / image side", ylabel="samples")
    axes[1].set(title="camel distance", xlabel="meters (log)", xscale="log")
    axes[1].xaxis.set_major_locator(mpl_ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    axes[1].xaxis.set_major_formatter(mpl_ticker.ScalarFormatter())
    axes[1].xaxis.set_minor_formatter(mpl_ticker.NullFormatter())
    axes[2].set(title="visible share of the camel", xlabel="visible fraction")
    for ax in axes:
        ax.legend()
    fig.suptitle(title or f"camel placements ({len(rows)} samples)")
    fig.tight_layout()
    return fig


def show_depth_maps(depths: Sequence[torch.Tensor] | torch.Tensor, *, ncols: int = 4,
                    titles: Sequence[str] | None = None, suptitle: str | None = None,
                    size: float = 1.7, vmin: float = 1.0, vmax: float = 1000.0,
                    cmap: str = "magma_r") -> plt.Figure:
    """Depth maps in meters (each ``1 x H x W``) on one log colour scale, with a colour bar.

    Near is bright (``magma_r``: the colours of :func:`depth_to_rgb`); ``vmin``/``vmax``
    (meters) fix the scale so the maps compare; the bar's ticks are in meters.
    """
    from matplotlib.colors import LogNorm

    maps = [d.detach().float().cpu().squeeze().clamp(vmin, vmax).numpy() for d in depths]
    n = len(maps)
    ncols = max(1, min(ncols, n))
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols + 0.9, size * nrows),
                             squeeze=False)
    norm = LogNorm(vmin=vmin, vmax=vmax)
    shown = None
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            shown = ax.imshow(maps[i], cmap=cmap, norm=norm)
            if titles is not None:
                ax.set_title(titles[i], fontsize=8)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    if shown is not None:
        bar = fig.colorbar(shown, ax=axes.ravel().tolist(), fraction=0.04, pad=0.02)
        bar.set_label("depth (m, log scale)", fontsize=8)
        bar.ax.tick_params(labelsize=8)
    return fig


def crop_to_masks(samples: dict[str, torch.Tensor], *, margin: float = 0.5,
                  min_side: int = 12) -> dict[str, torch.Tensor]:
    """Each sample cropped to a square around its true camel, resized back to full size.

    ``samples``: :func:`evacamel.evaluate.predict_samples` output. The square holds the
    bounding box of ``mask`` (the target) grown by ``margin`` of its side on each side,
    at least ``min_side`` output pixels, clipped to the image. Images (``bg``, ``fg_bg``)
    and maps (``mask``, ``mask_prob``, ``depth``, ``depth_pred``) are cropped alike (the
    maps are half the image size: the crop scales with them) and resized with nearest
    neighbours, so pixels stay visible as blocks. Scores are kept. Same keys and shapes.
    """
    out = {k: v.clone() for k, v in samples.items()}
    side_out = samples["mask"].shape[-1]
    for i in range(samples["mask"].shape[0]):
        rows, cols = torch.nonzero(samples["mask"][i, 0] >= 0.5, as_tuple=True)
        if rows.numel() == 0:
            continue
        cy = (int(rows.min()) + int(rows.max()) + 1) / 2
        cx = (int(cols.min()) + int(cols.max()) + 1) / 2
        extent = max(int(rows.max() - rows.min()), int(cols.max() - cols.min())) + 1
        side = min(side_out, max(min_side, round(extent * (1 + 2 * margin))))
        top = int(min(max(round(cy - side / 2), 0), side_out - side))
        left = int(min(max(round(cx - side / 2), 0), side_out - side))
        for key, value in samples.items():
            if value.ndim != 4:
                continue
            scale = value.shape[-1] / side_out
            t, l_, s = round(top * scale), round(left * scale), round(side * scale)
            crop = value[i:i + 1, :, t:t + s, l_:l_ + s].float()
            out[key][i] = torch.nn.functional.interpolate(
                crop, size=value.shape[-2:], mode="nearest")[0].to(value.dtype)
    return out


# -- figures sized for the book's column (chapters 03 and 04) --------------------------------

__all__ += ["COLUMN_INCHES", "plot_value_distributions", "plot_camel_distributions",
            "plot_block_costs"]

COLUMN_INCHES = 7.0
"""The widest figure the book's content column shows at its natural size (~700 px at 100 dpi)."""

_SPLIT_COLORS = {"train": "tab:orange", "test": "tab:blue"}


def _draw_image_values(ax: plt.Axes, counts: dict, step: int = 4) -> None:
    """bg (dashed) and fg_bg (solid) value shares per channel, ``step`` values per bin."""
    edges = np.arange(0, 256, step)
    for kind, style in (("bg", "--"), ("fg_bg", "-")):
        for c, color in enumerate(("tab:red", "tab:green", "tab:blue")):
            h = np.add.reduceat(counts[kind][c].astype(np.float64), edges)
            ax.plot(edges + step / 2, h / max(h.sum(), 1), style, color=color, lw=1,
                    label=f"{kind} {'RGB'[c]}")
    ax.set(title=f"image values (bg dashed, fg_bg solid; bins of {step})",
           xlabel="value (0..255)", ylabel="share of pixels", xlim=(0, 255))
    ax.legend(fontsize=7, ncol=2)


def _draw_mask_values(ax: plt.Axes, counts: dict) -> None:
    """How many mask pixels hold each value (log counts)."""
    m = counts["mask"][0]
    x = np.arange(256)
    ax.bar(x[m > 0], m[m > 0], width=2.5, color="tab:purple", log=True)
    ax.set(title="mask values: background, camel, and partly covered edges",
           xlabel="value (0 = background, 255 = camel)", ylabel="pixels (log)",
           xlim=(-5, 260))


def _draw_ground_depth(ax: plt.Axes, counts: dict) -> None:
    """Depth of the non-sky pixels (log meters), the sky's share in the title."""
    import matplotlib.ticker as mpl_ticker

    from evacamel.depth_units import target_to_meters

    d = counts["depth"][0].reshape(256, 256).sum(1).astype(np.float64)  # 256 target bins
    total = max(d.sum(), 1)
    sky = d[0] / total  # the lowest bin holds the sky (1000 m)
    centers = target_to_meters(torch.tensor((np.arange(256) + 0.5) / 256)).numpy()
    edges = target_to_meters(torch.tensor(np.arange(257) / 256)).numpy()
    ax.bar(centers[1:], d[1:] / total, width=np.abs(np.diff(edges))[1:], color="tab:brown")
    ax.set(xscale="log", title=f"depth of the ground (the sky, not drawn: {100 * sky:.0f}% "
           "of pixels)", xlabel="meters (log)", ylabel="share of pixels")
    ax.xaxis.set_major_formatter(mpl_ticker.ScalarFormatter())


def plot_value_distributions(hist: Histograms, *, width: float = COLUMN_INCHES) -> plt.Figure:
    """:func:`plot_value_histograms` stacked in one column, ``width`` inches wide.

    ``hist``: :func:`evacamel.loading.stats.compute_histograms` output. Rows: image
    values per channel (binned), mask values (log counts), depth of the ground in
    meters (log axis; the sky's share in the title).
    """
    fig, axes = plt.subplots(3, 1, figsize=(width, 0.95 * width))
    counts = hist.counts
    _draw_image_values(axes[0], counts)
    _draw_mask_values(axes[1], counts)
    _draw_ground_depth(axes[2], counts)
    fig.tight_layout()
    return fig


def _split_hist(ax: plt.Axes, values: dict[str, list[float]], bins: "np.ndarray | int",
                **kwargs: object) -> None:
    """One outline histogram per split, as shares of that split's samples."""
    for split, v in values.items():
        if v:
            ax.hist(v, bins=bins, weights=np.full(len(v), 1 / len(v)), histtype="step",
                    lw=1.6, color=_SPLIT_COLORS.get(split), label=f"{split} ({len(v)})",
                    **kwargs)
    ax.set_ylabel("share of samples")
    ax.legend(fontsize=8)


def plot_camel_distributions(rows: Sequence[dict], source_size: int, *,
                             width: float = COLUMN_INCHES) -> plt.Figure:
    """Camel distance, size and visible share per split, stacked, ``width`` inches wide.

    ``rows``: ``dataset_info.csv`` rows (:func:`evacamel.dataset.format.read_index`);
    each split is drawn as shares of its own samples, so the splits compare.
    """
    import matplotlib.ticker as mpl_ticker

    def column(name: str, scale: float = 1.0) -> dict[str, list[float]]:
        out: dict[str, list[float]] = {}
        for r in rows:
            if r.get(name) not in (None, ""):
                out.setdefault(str(r.get("split", "all")), []).append(float(r[name]) / scale)
        return out

    fig, axes = plt.subplots(3, 1, figsize=(width, 0.95 * width))
    dist = column("distance_m")
    if dist:
        low = max(min(min(v) for v in dist.values()), 0.5)
        high = max(max(v) for v in dist.values()) + 1
        _split_hist(axes[0], dist, np.geomspace(low, high, 30))
        axes[0].set_xscale("log")
        axes[0].xaxis.set_major_locator(mpl_ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        axes[0].xaxis.set_major_formatter(mpl_ticker.ScalarFormatter())
        axes[0].xaxis.set_minor_formatter(mpl_ticker.NullFormatter())
    axes[0].set(title="camel distance (log axis: equal widths are equal ratios)",
                xlabel="meters (log)")
    _split_hist(axes[1], column("w", source_size), 30)
    axes[1].set(title="camel size", xlabel="sprite side / image side")
    _split_hist(axes[2], column("visible_fraction"), 30, range=(0, 1))
    axes[2].set(title="visible share of the camel", xlabel="visible fraction")
    fig.tight_layout()
    return fig


def plot_block_costs(rows: Sequence[BlockRow], *, width: float = COLUMN_INCHES) -> plt.Figure:
    """Parameters and forward FLOPs per U-Net block, one panel above the other.

    ``rows``: :func:`evacamel.model.block_summary` output. Encoder blocks brown, decoder
    blocks blue, heads grey; each bar of the lower panel is labelled with the block's
    output size, so the cost can be read against the resolution it works at.
    """
    names = [r.name for r in rows]
    colors = ["#c2894b" if n.startswith("down") else "#4b7fc2" if n.startswith("up") else "#666"
              for n in names]
    fig, axes = plt.subplots(2, 1, figsize=(width, 0.75 * width), sharex=True)
    params = [r.params / 1e6 for r in rows]
    flops = [r.flops / 1e9 for r in rows]
    axes[0].bar(names, params, color=colors)
    axes[0].set(ylabel="parameters (millions)",
                title=f"parameters: {sum(params):.2f} million in all")
    bars = axes[1].bar(names, flops, color=colors)
    sides = [r.output_shape[-1] for r in rows]
    for bar, side in zip(bars, sides):
        axes[1].annotate(f"{side} px", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                         ha="center", va="bottom", fontsize=7)
    axes[1].set(ylabel="GFLOP per sample", ylim=(0, max(flops) * 1.2),
                title=f"forward cost: {sum(flops):.1f} GFLOP per sample "
                      "(labels: the block's output size)")
    axes[1].tick_params(axis="x", rotation=45)
    for ax in axes:
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def show_map_rows(rows: dict[str, Sequence[torch.Tensor] | torch.Tensor], *, unit: str = "m",
                  size: float = 1.4) -> None:
    """Rows of 4 framed maps with a colour bar per row (chapter 02).

    Args:
        rows: row label -> 4 maps: ``3 x H x W`` images in [0, 1], or ``1 x H x W`` depth in
            meters (log colours, near bright; any row whose label holds "depth") or values
            in [0, 1] (``unit="value"``: grey, 1 white).
        unit: ``"m"`` (depth in meters) or ``"value"``.
        size: inches per map.
    """
    from matplotlib.colors import LogNorm, Normalize

    from evacamel.depth_units import FAR_M

    fig, axes = plt.subplots(len(rows), 4, figsize=(4 * size + 1.3, len(rows) * size),
                             squeeze=False, layout="constrained")
    for r, (name, maps) in enumerate(rows.items()):
        im = None
        for c, ax in enumerate(axes[r]):
            m = maps[c].detach().float().cpu()
            if m.shape[0] == 3:
                ax.imshow(m.permute(1, 2, 0).clamp(0, 1))
            elif unit == "m" or "depth" in name:
                im = ax.imshow(m[0], cmap="magma_r", norm=LogNorm(1.0, FAR_M))
            else:
                im = ax.imshow(m[0], cmap="gray", norm=Normalize(0.0, 1.0))
            ax.set_xticks([]), ax.set_yticks([])
        axes[r, 0].set_ylabel(name, fontsize=9)
        label = "depth (m)" if im is not None and im.norm.vmax > 1 else "stored value"
        bar = fig.colorbar(im or axes[r, -1].images[0], ax=axes[r, :], label=label,
                           fraction=0.05, pad=0.02)
        bar.ax.set_visible(im is not None)  # image rows keep the bar's room, so maps align
    plt.show()
