"""Helpers for comparing depth maps on a few examples of a dataset (notebook 02)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from evacamel.dataset.codec import read_image, resize_depth
from evacamel.dataset.format import INDEX_NAME, read_index, resolve_in_dataset
from evacamel.depth.align import DepthEvaluation, evaluate_depth
from evacamel.depth.estimators import ExactDepth
from evacamel.depth.files import read_rgb

__all__ = ["Examples", "load_examples", "score_table"]


@dataclass
class Examples:
    """A few samples of a dataset: ``images`` float ``B x 3 x S x S`` in [0, 1], ``exact_m``
    float ``B x 1 x d x d`` meters (the exact depth, even if ``depth/`` was rewritten),
    the samples' depth paths ``keys``, and ``camel`` bool ``B x 1 x d x d`` (the camel's
    pixels at the depth maps' size, nearest sampling; ``None`` if not asked for)."""

    images: torch.Tensor
    exact_m: torch.Tensor
    keys: list[str]
    camel: torch.Tensor | None = None


def _camel_masks(root: Path, rows: list[dict], size: int) -> torch.Tensor:
    """The rows' camel masks: bool ``B x 1 x size x size`` (nearest sampling, as depth)."""
    masks = [read_image(resolve_in_dataset(root, r["mask_paths"], column="mask_paths"), channels=1)
             for r in rows]
    return torch.stack([resize_depth(m.float()[None], size)[0] for m in masks]) >= 128


def load_examples(root: str | os.PathLike, n: int = 8, *, split: str | None = "test",
                  masks: bool = False) -> Examples:
    """``n`` samples of ``split`` (``None``: any) with their exact depth at the dataset's depth size.

    The first sample of each background first (in index order), so the examples show as
    many different scenes as possible; then further samples in index order. The same
    ``n`` gives the same samples every time. ``masks``: also read the camel masks.
    """
    root = Path(root)
    rows = [r for r in read_index(root) if split is None or r.get("split") == split]
    if not rows:
        raise ValueError(f"{root / INDEX_NAME} has no {split!r} samples")
    first_of_bg: dict[str, int] = {}
    for i, r in enumerate(rows):
        first_of_bg.setdefault(r["selected_bg_paths"], i)
    firsts = set(first_of_bg.values())
    rows = ([rows[i] for i in sorted(firsts)] + [r for i, r in enumerate(rows) if i not in firsts])[:n]
    images = torch.stack([read_rgb(resolve_in_dataset(root, r["fg_bg_paths"], column="fg_bg_paths"))
                          for r in rows]).float() / 255.0
    keys = [r["depth_map_paths"] for r in rows]
    exact = ExactDepth(root)
    size = int(exact.meta.get("depth_size") or images.shape[-1])
    camel = _camel_masks(root, rows, size) if masks else None
    return Examples(images, exact.estimate(None, size=(size, size), keys=keys), keys, camel)


def score_table(results: Mapping[str, DepthEvaluation] | Mapping[str, tuple[torch.Tensor, torch.Tensor, str]],
                **kwargs) -> str:
    """A text table of AbsRel, RMSE and delta < 1.25, one line per named result.

    Values are :class:`DepthEvaluation` or ``(pred, exact_m, output_kind)`` tuples
    (evaluated with :func:`evaluate_depth` and ``kwargs``).
    """
    lines = [f"{'':44s} {'AbsRel':>8s} {'RMSE (m)':>9s} {'d<1.25':>7s}"]
    for name, r in results.items():
        ev = r if isinstance(r, DepthEvaluation) else evaluate_depth(r[0], r[1], output_kind=r[2], **kwargs)
        lines.append(f"{name:44s} {ev.absrel:8.4f} {ev.rmse:9.2f} {ev.delta1:7.3f}")
    return "\n".join(lines)
