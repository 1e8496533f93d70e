"""Helpers for comparing depth maps on a few examples of a dataset (notebook 02)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from evacamel.depth.align import DepthEvaluation, evaluate_depth
from evacamel.depth.estimators import ExactDepth
from evacamel.depth.files import read_index_columns, read_rgb

__all__ = ["Examples", "load_examples", "score_table"]


@dataclass
class Examples:
    """A few samples of a dataset: ``images`` float ``B x 3 x S x S`` in [0, 1], ``exact_m``
    float ``B x 1 x d x d`` meters (the exact depth, even if ``depth/`` was rewritten), and
    the samples' depth paths ``keys``."""

    images: torch.Tensor
    exact_m: torch.Tensor
    keys: list[str]


def load_examples(root: str | os.PathLike, n: int = 8, *, split: str | None = "test") -> Examples:
    """``n`` samples of ``split`` (``None``: any) with their exact depth at the dataset's depth size.

    The first sample of each background first (in index order), so the examples show as
    many different scenes as possible; then further samples in index order.
    """
    root = Path(root)
    rows = read_index_columns(root, ("fg_bg_paths", "depth_map_paths", "split", "selected_bg_paths"))
    rows = [r for r in rows if split is None or r[2] == split]
    if not rows:
        raise ValueError(f"{root / 'dataset_info.csv'} has no {split!r} samples")
    seen: set[str] = set()
    firsts = [r for r in rows if not (r[3] in seen or seen.add(r[3]))]  # first row of each background
    rows = (firsts + [r for r in rows if r not in firsts])[:n]
    images = torch.stack([read_rgb(root / r[0]) for r in rows]).float() / 255.0
    keys = [r[1] for r in rows]
    exact = ExactDepth(root)
    size = int(exact.meta.get("depth_size") or images.shape[-1])
    return Examples(images, exact.estimate(None, size=(size, size), keys=keys), keys)


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
