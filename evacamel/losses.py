"""The seed's loss: ``10 x BCE(mask) + 100 x DSSIM(depth) + 0.1 x L1(depth)``.

* BCE is binary cross-entropy on the mask *logits* (``BCEWithLogits``: stable, no
  sigmoid in the model).
* DSSIM is kornia's ``ssim_loss``: ``(1 - SSIM) / 2``, a dissimilarity in [0, 1]
  (Gaussian window 11, sigma 1.5). It is computed on depth in the [0, 1] target range,
  for which SSIM's constants (``max_val = 1``) are meant; the seed ran it on
  standardised depth (about -2.8..1.7), where they are not.
* L1 is the mean absolute depth error in target units.
* Dice (not the seed's; weight 0 by default) is ``1 - `` the soft Dice coefficient of the
  mask over the whole batch: ``1 - 2 sum(p t) / (sum(p) + sum(t))``, ``p`` the predicted
  probabilities. BCE weighs every pixel alike, so with camels on a few percent of the
  pixels "no camel anywhere" is a deep first minimum; Dice counts only the camel and
  what is predicted as camel, like the IoU it stands in for.

Each term is returned unweighted, so a log shows what was optimised.
"""

from __future__ import annotations

from dataclasses import dataclass

import kornia
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["LossTerms", "camel_loss", "dice_loss", "CamelLoss", "SEED_WEIGHTS"]

SEED_WEIGHTS = {"mask_weight": 10.0, "dssim_weight": 100.0, "l1_weight": 0.1}
"""The seed's empirically chosen constants."""


@dataclass
class LossTerms:
    """The total loss (for ``backward``) and its unweighted components (scalar tensors)."""

    total: torch.Tensor
    bce: torch.Tensor
    dssim: torch.Tensor
    l1: torch.Tensor
    dice: torch.Tensor

    def as_dict(self) -> dict[str, float]:
        """Python floats, for logs and progress bars."""
        return {k: float(getattr(self, k).detach()) for k in ("total", "bce", "dssim", "l1", "dice")}


def dice_loss(mask_logits: torch.Tensor, mask_target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """``1 -`` the soft Dice coefficient over the whole batch, a scalar in [0, 1].

    ``mask_logits`` ``B x 1 x H x W`` float (logits), ``mask_target`` the same shape in
    [0, 1]. ``eps`` (in pixels) keeps a batch without camels defined: predicting none
    there scores 0.
    """
    p = torch.sigmoid(mask_logits.float())
    t = mask_target.float()
    return 1 - (2 * (p * t).sum() + eps) / (p.sum() + t.sum() + eps)


def camel_loss(mask_logits: torch.Tensor, depth_pred: torch.Tensor, mask_target: torch.Tensor,
               depth_target: torch.Tensor, *, mask_weight: float = 10.0,
               dssim_weight: float = 100.0, l1_weight: float = 0.1, dice_weight: float = 0.0,
               window_size: int = 11) -> LossTerms:
    """The weighted loss and its terms.

    Args:
        mask_logits: ``B x 1 x H x W`` float, any range (logits).
        depth_pred: ``B x 1 x H x W`` float, the predicted depth target (ideally [0, 1]).
        mask_target: ``B x 1 x H x W`` float in [0, 1] (soft at area-resized edges).
        depth_target: ``B x 1 x H x W`` float in [0, 1] (:mod:`evacamel.depth_units`).
    """
    # Losses in fp32 even under autocast: SSIM's variances lose precision in half.
    mask_logits, depth_pred = mask_logits.float(), depth_pred.float()
    mask_target, depth_target = mask_target.float(), depth_target.float()
    bce = F.binary_cross_entropy_with_logits(mask_logits, mask_target)
    dssim = kornia.losses.ssim_loss(depth_pred, depth_target, window_size, max_val=1.0)
    l1 = F.l1_loss(depth_pred, depth_target)
    dice = dice_loss(mask_logits, mask_target)
    total = mask_weight * bce + dssim_weight * dssim + l1_weight * l1 + dice_weight * dice
    return LossTerms(total=total, bce=bce, dssim=dssim, l1=l1, dice=dice)


class CamelLoss(nn.Module):
    """:func:`camel_loss` with its constants held (defaults: the seed's 10, 100, 0.1, no Dice)."""

    def __init__(self, mask_weight: float = 10.0, dssim_weight: float = 100.0,
                 l1_weight: float = 0.1, window_size: int = 11, dice_weight: float = 0.0) -> None:
        super().__init__()
        self.mask_weight = mask_weight
        self.dssim_weight = dssim_weight
        self.l1_weight = l1_weight
        self.dice_weight = dice_weight
        self.window_size = window_size

    def forward(self, mask_logits: torch.Tensor, depth_pred: torch.Tensor,
                mask_target: torch.Tensor, depth_target: torch.Tensor) -> LossTerms:
        return camel_loss(mask_logits, depth_pred, mask_target, depth_target,
                          mask_weight=self.mask_weight, dssim_weight=self.dssim_weight,
                          l1_weight=self.l1_weight, dice_weight=self.dice_weight,
                          window_size=self.window_size)

    def extra_repr(self) -> str:
        return (f"mask_weight={self.mask_weight}, dssim_weight={self.dssim_weight}, "
                f"l1_weight={self.l1_weight}, dice_weight={self.dice_weight}")
