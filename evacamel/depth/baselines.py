"""Depth maps that ignore the picture: what a depth model must beat.

Both are fitted on the exact depth of a dataset's *training* split, over the pixels
nearer than the sky (the ones scored), in the model's target space
(:func:`~evacamel.depth_units.meters_to_target`: log depth, near = 1), and answer every
image with the same map, in meters:

* :class:`ConstantDepth`: one value everywhere, the training mean of the target
  (what a network that learnt nothing from its input would predict);
* :class:`RowMeanDepth`: the training mean of each image row. The sky is at the top
  and the ground nearest at the bottom in every scene, so this map already knows a
  lot: a strong baseline.

They are :class:`~evacamel.depth.estimators.DepthEstimator` s (``output_kind`` metric
depth), so they are scored exactly like the models (:func:`~evacamel.depth.align.evaluate_depth`).
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F

from evacamel.dataset.format import read_index
from evacamel.depth.align import METRIC_DEPTH, valid_depth_mask
from evacamel.depth.estimators import DepthEstimator, ExactDepth
from evacamel.depth_units import meters_to_target, target_to_meters

__all__ = ["ConstantDepth", "RowMeanDepth", "training_depth_target", "training_baselines"]


def training_depth_target(root: str | os.PathLike, *, split: str = "train", size: int | None = None,
                          batch: int = 256, limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean training target of ``split`` over the pixels nearer than the sky: ``(overall, per_row)``.

    The sky is left out because it is never scored (:func:`~evacamel.depth.align.valid_depth_mask`):
    a baseline fitted on the scored pixels is the strongest of its kind. ``overall`` is a
    0-dim float64 tensor, ``per_row`` is ``size`` float64 values (top row first; a row
    that is sky in every map gets the sky's target, 0), both in target units [0, 1].
    ``size``: the side the maps are read at (default: the dataset's depth size). Reads
    ``batch`` maps at a time; ``limit``: only the first ``limit`` maps of the split, in
    index order (a large dataset's mean is known well long before its last map).
    """
    exact = ExactDepth(root)
    size = int(size or exact.meta.get("depth_size") or 0)
    if size <= 0:
        raise ValueError(f"{root}: meta.json gives no depth_size; pass size=")
    keys = [r["depth_map_paths"] for r in read_index(root) if r.get("split") == split][:limit]
    if not keys:
        raise ValueError(f"{root} has no {split!r} samples to fit a baseline on")
    sums = torch.zeros(size, dtype=torch.float64)
    counts = torch.zeros(size, dtype=torch.float64)
    for i in range(0, len(keys), batch):
        depth_m = exact.estimate(None, size=size, keys=keys[i:i + batch])
        valid = valid_depth_mask(depth_m).double()
        sums += (meters_to_target(depth_m).double() * valid).sum(dim=(0, 1, 3))
        counts += valid.sum(dim=(0, 1, 3))
    per_row = torch.where(counts > 0, sums / counts.clamp_min(1), torch.zeros_like(sums))
    return sums.sum() / counts.sum().clamp_min(1), per_row


class _FixedMap(DepthEstimator):
    """Every image gets the same target map ``1 x 1 x h x w`` (shown in meters)."""

    output_kind = METRIC_DEPTH
    needs_images = False

    def __init__(self, target_map: torch.Tensor, kind: str) -> None:
        self.target_map = target_map.float().reshape(1, 1, *target_map.shape[-2:])
        self.kind = kind

    def estimate(self, images: torch.Tensor | None, *, size: int | tuple[int, int] | None = None,
                 keys=None) -> torch.Tensor:
        """``B x 1 x h x w`` meters; ``B`` from ``images`` or ``keys``; ``h x w`` from ``size`` or the images."""
        if images is None and keys is None:
            raise ValueError(f"{self.kind}: give images or keys (for the batch size)")
        b = images.shape[0] if images is not None else len(keys)
        if size is None:
            if images is None:
                raise ValueError(f"{self.kind}: give size= or images")
            size = tuple(images.shape[-2:])
        hw = (size, size) if isinstance(size, int) else tuple(size)
        target = F.interpolate(self.target_map, size=hw, mode="bilinear", align_corners=False)
        return target_to_meters(target).expand(b, 1, *hw).contiguous()

    def describe(self) -> dict:
        return {"kind": self.kind, "model": None, "output": self.output_kind}


class ConstantDepth(_FixedMap):
    """One target value (e.g. the training mean) everywhere: no input used."""

    def __init__(self, target: float | torch.Tensor) -> None:
        super().__init__(torch.as_tensor(target, dtype=torch.float64).reshape(1, 1), "constant")


class RowMeanDepth(_FixedMap):
    """One target value per image row (top row first), e.g. the training mean of each row."""

    def __init__(self, per_row: torch.Tensor) -> None:
        super().__init__(torch.as_tensor(per_row, dtype=torch.float64).reshape(-1, 1), "per-row mean")


def training_baselines(root: str | os.PathLike, *, split: str = "train",
                       limit: int | None = 4000) -> dict[str, DepthEstimator]:
    """``{"constant training mean": ConstantDepth, "per-row training mean": RowMeanDepth}``
    fitted on ``split`` of the dataset at ``root`` (one pass over its first ``limit``
    depth maps; ``None``: all)."""
    overall, rows = training_depth_target(root, split=split, limit=limit)
    return {"constant training mean": ConstantDepth(overall), "per-row training mean": RowMeanDepth(rows)}
