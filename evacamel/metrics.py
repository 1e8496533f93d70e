"""Metrics, each named by what it computes.

Mask (prediction = ``sigmoid(logits) > threshold``, target = ``target >= 0.5``):

* ``mask_accuracy``: share of correctly classified pixels. Misleading alone: a camel
  covering 9% of the image lets "all background" score 91% (the seed's 98.89%).
* ``mask_iou``: intersection over union of camel pixels, |P n T| / |P u T|.
* ``mask_dice``: 2 |P n T| / (|P| + |T|).

Depth (prediction and target in the [0, 1] target space of
:mod:`evacamel.depth_units`, log depth with near = 1):

* ``depth_ssim``: mean structural similarity (Gaussian window 11, sigma 1.5,
  ``data_range`` 1, over the interior where the window fits: the same as
  scikit-image's ``structural_similarity(gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=1)``). The real SSIM: the seed's "depth
  accuracy" was ``1 - DSSIM = (1 + SSIM) / 2``.
* ``depth_rmse``: root mean squared error in target units (all pixels).
* ``depth_rmse_m``, ``depth_absrel``, ``depth_delta1``: RMSE in meters, mean
  ``|d - d*| / d*`` and the share of pixels with ``max(d/d*, d*/d) < 1.25``, after
  converting both maps to meters, over pixels whose true depth is nearer than the sky
  (the sky has no depth to measure).

:class:`MetricAccumulator` sums the raw counts over batches, so its values are exactly
those of the whole dataset at once (IoU and Dice are dataset-level: total intersection
over total union), whatever the batching, and its state all-reduces across processes.
"""

from __future__ import annotations

import math

import kornia
import torch

from evacamel.depth_units import FAR_M, target_to_meters

__all__ = [
    "binarize",
    "pixel_accuracy",
    "iou",
    "dice",
    "per_sample_iou",
    "ssim_map",
    "depth_ssim",
    "per_sample_depth_ssim",
    "MetricAccumulator",
    "METRIC_NAMES",
    "METRIC_DIRECTION",
    "METRIC_DESCRIPTIONS",
    "seed_depth_accuracy_to_ssim",
]

METRIC_NAMES = ("mask_accuracy", "mask_iou", "mask_dice", "depth_ssim", "depth_rmse",
                "depth_rmse_m", "depth_absrel", "depth_delta1")

METRIC_DIRECTION = {name: "max" for name in METRIC_NAMES}
METRIC_DIRECTION.update(depth_rmse="min", depth_rmse_m="min", depth_absrel="min")
"""Whether a larger (``max``) or smaller (``min``) value of each metric is better."""

METRIC_DESCRIPTIONS = {
    "mask_accuracy": "share of pixels classified right (threshold 0.5)",
    "mask_iou": "camel intersection / union, over the whole split",
    "mask_dice": "2 |P n T| / (|P| + |T|), over the whole split",
    "depth_ssim": "mean SSIM of depth (log-depth target in [0, 1])",
    "depth_rmse": "RMSE of the depth target (units of [0, 1])",
    "depth_rmse_m": "RMSE in meters, ground pixels (not sky)",
    "depth_absrel": "mean |d - d*| / d*, ground pixels",
    "depth_delta1": "share of ground pixels with max(d/d*, d*/d) < 1.25",
}
"""One line per metric saying what it measures (for tables)."""

_SSIM_WINDOW = 11


def binarize(mask_logits: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Logits (any shape) -> bool: ``sigmoid(logits) > threshold``, computed without sigmoid."""
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    return mask_logits > math.log(threshold / (1.0 - threshold))


def _counts(mask_logits: torch.Tensor, mask_target: torch.Tensor, threshold: float,
            dims: tuple[int, ...] | None) -> tuple[torch.Tensor, ...]:
    pred = binarize(mask_logits, threshold)
    true = mask_target >= 0.5
    inter = (pred & true).sum(dims) if dims else (pred & true).sum()
    p = pred.sum(dims) if dims else pred.sum()
    t = true.sum(dims) if dims else true.sum()
    correct = (pred == true).sum(dims) if dims else (pred == true).sum()
    return inter.double(), p.double(), t.double(), correct.double()


def _ratio_or_one(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """num / den, and 1.0 where den == 0 (both masks empty: a perfect answer)."""
    return torch.where(den > 0, num / den.clamp_min(1), torch.ones_like(num))


def pixel_accuracy(mask_logits: torch.Tensor, mask_target: torch.Tensor,
                   threshold: float = 0.5) -> float:
    """Share of correctly classified pixels over the whole batch, in [0, 1]."""
    _, _, _, correct = _counts(mask_logits, mask_target, threshold, None)
    return float(correct / mask_target.numel())


def iou(mask_logits: torch.Tensor, mask_target: torch.Tensor, threshold: float = 0.5) -> float:
    """Intersection over union over the whole batch, in [0, 1]; 1.0 if both masks are empty."""
    inter, p, t, _ = _counts(mask_logits, mask_target, threshold, None)
    return float(_ratio_or_one(inter, p + t - inter))


def dice(mask_logits: torch.Tensor, mask_target: torch.Tensor, threshold: float = 0.5) -> float:
    """Dice coefficient over the whole batch, in [0, 1]; 1.0 if both masks are empty."""
    inter, p, t, _ = _counts(mask_logits, mask_target, threshold, None)
    return float(_ratio_or_one(2 * inter, p + t))


def per_sample_iou(mask_logits: torch.Tensor, mask_target: torch.Tensor,
                   threshold: float = 0.5) -> torch.Tensor:
    """IoU of each sample: ``B x 1 x H x W`` inputs -> ``B`` float64 (1.0 where both are empty)."""
    inter, p, t, _ = _counts(mask_logits, mask_target, threshold, (1, 2, 3))
    return _ratio_or_one(inter, p + t - inter)


def ssim_map(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """SSIM map over the interior: ``B x C x H x W`` in [0, 1] -> ``B x C x (H-10) x (W-10)``."""
    if min(pred.shape[-2:]) < _SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {_SSIM_WINDOW} px, got {tuple(pred.shape[-2:])}")
    return kornia.metrics.ssim(pred.float().clamp(0, 1), target.float(), _SSIM_WINDOW,
                               max_val=1.0, padding="valid")


def depth_ssim(depth_pred: torch.Tensor, depth_target: torch.Tensor) -> float:
    """Mean SSIM of ``B x 1 x H x W`` depth targets in [0, 1] (prediction clamped to [0, 1])."""
    return float(ssim_map(depth_pred, depth_target).double().mean())


def per_sample_depth_ssim(depth_pred: torch.Tensor, depth_target: torch.Tensor) -> torch.Tensor:
    """Mean SSIM of each sample: ``B``, float64."""
    return ssim_map(depth_pred, depth_target).double().mean((1, 2, 3))


def seed_depth_accuracy_to_ssim(depth_accuracy: float) -> float:
    """The seed's "depth accuracy" (``1 - DSSIM = (1 + SSIM) / 2``) as the SSIM it hides.

    >>> round(seed_depth_accuracy_to_ssim(0.7497), 4)
    0.4994
    """
    return 2.0 * depth_accuracy - 1.0


class MetricAccumulator:
    """Exact dataset-level metrics over batches (see the module docstring for each name).

    ``update`` takes the model's outputs and the targets of one batch; ``compute`` returns
    a dict of floats for all :data:`METRIC_NAMES`. ``state`` is one float64 tensor of
    sums, so ``torch.distributed.all_reduce(acc.state)`` merges processes exactly.
    """

    _FIELDS = ("pixels", "correct", "inter", "pred", "true", "ssim_sum", "ssim_count",
               "sq_err", "valid", "sq_err_m", "absrel_sum", "delta1")

    def __init__(self, threshold: float = 0.5, device: torch.device | str | None = None) -> None:
        self.threshold = threshold
        self.state = torch.zeros(len(self._FIELDS), dtype=torch.float64, device=device)

    def reset(self) -> None:
        self.state.zero_()

    def merge(self, other: "MetricAccumulator") -> "MetricAccumulator":
        """Add another accumulator's sums into this one (returns self)."""
        self.state += other.state.to(self.state.device)
        return self

    @torch.no_grad()
    def update(self, mask_logits: torch.Tensor, depth_pred: torch.Tensor,
               mask_target: torch.Tensor, depth_target: torch.Tensor) -> None:
        """Add one batch: all ``B x 1 x H x W``; targets in [0, 1], depth in target units."""
        if self.state.device != mask_logits.device:
            self.state = self.state.to(mask_logits.device)
        inter, p, t, correct = _counts(mask_logits, mask_target, self.threshold, None)
        dp, dt = depth_pred.float().clamp(0, 1), depth_target.float()
        smap = ssim_map(dp, dt)
        sq = (dp - dt).double().pow(2).sum()
        dm_pred, dm_true = target_to_meters(dp).double(), target_to_meters(dt).double()
        valid = dm_true < FAR_M * 0.999
        err_m = (dm_pred - dm_true)[valid]
        ratio = torch.maximum(dm_pred / dm_true, dm_true / dm_pred)[valid]
        values = [mask_target.numel(), correct, inter, p, t, smap.double().sum(), smap.numel(),
                  sq, valid.sum(), err_m.pow(2).sum(), (err_m.abs() / dm_true[valid]).sum(),
                  (ratio < 1.25).sum()]
        self.state += torch.stack([torch.as_tensor(v, dtype=torch.float64, device=self.state.device)
                                   for v in values])

    def compute(self) -> dict[str, float]:
        """The metrics so far; NaN for depth-in-meters values when no pixel was valid."""
        s = dict(zip(self._FIELDS, self.state.cpu().tolist()))
        union = s["pred"] + s["true"] - s["inter"]
        nan = float("nan")
        return {
            "mask_accuracy": s["correct"] / s["pixels"] if s["pixels"] else nan,
            "mask_iou": s["inter"] / union if union else 1.0,
            "mask_dice": 2 * s["inter"] / (s["pred"] + s["true"]) if s["pred"] + s["true"] else 1.0,
            "depth_ssim": s["ssim_sum"] / s["ssim_count"] if s["ssim_count"] else nan,
            "depth_rmse": math.sqrt(s["sq_err"] / s["pixels"]) if s["pixels"] else nan,
            "depth_rmse_m": math.sqrt(s["sq_err_m"] / s["valid"]) if s["valid"] else nan,
            "depth_absrel": s["absrel_sum"] / s["valid"] if s["valid"] else nan,
            "depth_delta1": s["delta1"] / s["valid"] if s["valid"] else nan,
        }
