"""Depth vs disparity, least-squares alignment, and scale-and-shift-invariant errors.

A monocular network sees one photo. It cannot know the scene's absolute scale (a toy
desert and a real one look alike), and networks trained on many data sets mixed
(MiDaS, Depth Anything) are trained to be right only *up to an unknown scale and shift*,
usually of the **disparity** (inverse depth, ``1 / meters``), not of the depth. So an
honest comparison with exact depth first finds, per image, the scale ``s`` and shift
``t`` that bring the prediction closest to the truth (least squares, in the space the
network predicts in), and only then measures the error:

* disparity outputs: fit ``s * pred + t`` to ``1 / exact`` (disparity space), then
  convert the aligned disparity to depth (:func:`disparity_to_depth`);
* depth outputs: fit ``s * pred + t`` to ``exact`` (depth space).

Errors are then computed in meters over the *valid* pixels (:func:`valid_depth_mask`:
finite, positive, nearer than the sky at :data:`~evacamel.depth_units.FAR_M`, and
inside an optional mask):

* ``absrel``: mean ``|d - d*| / d*``;
* ``rmse``: ``sqrt(mean((d - d*)^2))`` in meters;
* ``delta1``: share of pixels with ``max(d / d*, d* / d) < 1.25``.

Each is computed per image and averaged over images (images with fewer than two valid
pixels give NaN and are left out of the mean).

The same pixels are used for fitting and for scoring; everything is batched
(``B x 1 x H x W``) and runs on the inputs' device. Fits are solved in float64.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from evacamel.depth_units import FAR_M

__all__ = [
    "METRIC_DEPTH",
    "RELATIVE_DISPARITY",
    "RELATIVE_DEPTH",
    "OUTPUT_KINDS",
    "depth_to_disparity",
    "disparity_to_depth",
    "valid_depth_mask",
    "align_scale_shift",
    "align_scale",
    "depth_errors",
    "DepthEvaluation",
    "evaluate_depth",
]

METRIC_DEPTH = "metric depth"
"""Output in meters (e.g. GLPN, ZoeDepth, metric Depth Anything, our exact depth)."""
RELATIVE_DISPARITY = "relative disparity"
"""Output affine in inverse depth, unknown scale and shift (Depth Anything, MiDaS/DPT)."""
RELATIVE_DEPTH = "relative depth"
"""Output affine in depth, unknown scale and shift (e.g. the seed's min-max maps)."""
OUTPUT_KINDS = (METRIC_DEPTH, RELATIVE_DISPARITY, RELATIVE_DEPTH)


def _check_kind(kind: str) -> str:
    if kind not in OUTPUT_KINDS:
        raise ValueError(f"unknown output kind {kind!r}; choose one of: {', '.join(OUTPUT_KINDS)}")
    return kind


def depth_to_disparity(depth_m: torch.Tensor, *, min_depth: float = 1e-6) -> torch.Tensor:
    """Depth in meters (any shape) -> disparity ``1 / depth`` in 1/m (same shape, float).

    Depth below ``min_depth`` (including 0 and negatives) is clamped to ``min_depth``.
    """
    return 1.0 / depth_m.float().clamp_min(min_depth)


def disparity_to_depth(disparity: torch.Tensor, *, max_depth: float = FAR_M) -> torch.Tensor:
    """Disparity in 1/m (any shape) -> depth ``1 / disparity`` in meters, at most ``max_depth``.

    Disparity at or below ``1 / max_depth`` (including 0 and negatives: "farther than
    anything") gives ``max_depth``.
    """
    disp = disparity.float()
    far = torch.full_like(disp, float(max_depth))
    return torch.where(disp > 0, 1.0 / torch.where(disp > 0, disp, 1.0), far).clamp_max(max_depth)


def valid_depth_mask(depth_m: torch.Tensor, mask: torch.Tensor | None = None, *,
                     max_depth: float = FAR_M, min_depth: float = 0.0) -> torch.Tensor:
    """Pixels with a depth worth scoring: bool, same shape as ``depth_m``.

    Finite, ``min_depth < depth < max_depth`` (so the sky, stored as ``FAR_M``, is out),
    and, if given, where ``mask`` is true / nonzero (broadcast to ``depth_m``).
    """
    d = depth_m.float()
    valid = torch.isfinite(d) & (d > min_depth) & (d < max_depth)
    if mask is not None:
        valid = valid & mask.to(device=d.device).bool().expand_as(d)
    return valid


def _flat(x: torch.Tensor, per_image: bool) -> torch.Tensor:
    if x.ndim < 2:
        raise ValueError(f"expected a batch B x ... (at least 2 dims), got shape {tuple(x.shape)}")
    return x.reshape(x.shape[0], -1) if per_image else x.reshape(1, -1)


def _weights(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if pred.shape != target.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
    ok = torch.isfinite(pred) & torch.isfinite(target)
    if mask is not None:
        ok = ok & mask.to(device=pred.device).bool().expand_as(pred)
    return ok


def align_scale_shift(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None,
                      *, per_image: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Least-squares ``scale, shift`` minimising ``sum(mask * (scale * pred + shift - target)^2)``.

    Args:
        pred, target: ``B x ...`` (e.g. ``B x 1 x H x W``), same shape, any float dtype.
        mask: bool/0-1, broadcastable to ``pred``; pixels to fit on (default: all finite).
        per_image: one fit per image (``B`` values) or one fit for the whole batch
            (1 value, repeated ``B`` times), e.g. to test whether maps share one scale.

    Returns:
        ``(scale, shift)``: float64, shape ``B``. Closed form (the 2 x 2 normal
        equations). Where the prediction is constant over the mask, ``scale = 0`` and
        ``shift`` is the target's mean; with no valid pixel both are NaN.
    """
    ok = _weights(pred, target, mask)
    w = _flat(ok, per_image).double()
    p = _flat(torch.where(ok, pred, torch.zeros_like(pred)), per_image).double()
    y = _flat(torch.where(ok, target, torch.zeros_like(target)), per_image).double()
    n = w.sum(1)
    # Centre on the means first: the same closed form, numerically much better behaved.
    mean_p = (w * p).sum(1) / n
    mean_y = (w * y).sum(1) / n
    dp = (p - mean_p[:, None]) * w
    dy = (y - mean_y[:, None]) * w
    var = (dp * dp).sum(1)
    cov = (dp * dy).sum(1)
    degenerate = var <= 1e-300
    scale = torch.where(degenerate, torch.zeros_like(var), cov / torch.where(degenerate, 1.0, var))
    shift = mean_y - scale * mean_p
    if not per_image:
        scale, shift = scale.expand(pred.shape[0]), shift.expand(pred.shape[0])
    return scale.contiguous(), shift.contiguous()


def align_scale(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None,
                *, per_image: bool = True) -> torch.Tensor:
    """Least-squares ``scale`` alone (no shift): ``sum(p y) / sum(p^2)`` over the mask; ``B`` float64."""
    ok = _weights(pred, target, mask)
    p = _flat(torch.where(ok, pred, torch.zeros_like(pred)), per_image).double()
    y = _flat(torch.where(ok, target, torch.zeros_like(target)), per_image).double()
    den = (p * p).sum(1)
    scale = torch.where(den > 0, (p * y).sum(1) / torch.where(den > 0, den, 1.0), torch.nan)
    return scale.expand(pred.shape[0]).contiguous() if not per_image else scale


def _bcast(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.view(-1, *([1] * (like.ndim - 1))).to(like.device)


def depth_errors(pred_m: torch.Tensor, target_m: torch.Tensor, valid: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-image ``absrel``, ``rmse`` (m) and ``delta1`` over ``valid`` pixels: each ``B`` float64.

    ``pred_m``, ``target_m``: ``B x 1 x H x W`` meters; ``valid`` bool of the same shape.
    Images without a valid pixel give NaN.
    """
    p = pred_m.double().clamp_min(1e-9)
    y = target_m.double()
    w = valid.double()
    n = w.flatten(1).sum(1)
    y_safe = torch.where(valid, y, torch.ones_like(y))
    absrel = (w * (p - y).abs() / y_safe).flatten(1).sum(1) / n
    rmse = ((w * (p - y) ** 2).flatten(1).sum(1) / n).sqrt()
    ratio = torch.maximum(p / y_safe, y_safe / p)
    delta1 = (w * (ratio < 1.25).double()).flatten(1).sum(1) / n
    return {"absrel": absrel, "rmse": rmse, "delta1": delta1}


@dataclass
class DepthEvaluation:
    """The result of :func:`evaluate_depth`.

    ``absrel``, ``rmse`` (m), ``delta1``: means over images (NaN-images left out).
    ``per_image``: the ``B`` values of each; ``scale``, ``shift``: the fitted alignment
    (``B`` float64; 1 and 0 without alignment); ``aligned_m``: the aligned prediction in
    meters (``B x 1 x H x W``); ``valid``: the scored pixels; ``space``: where the fit ran.
    """

    absrel: float
    rmse: float
    delta1: float
    per_image: dict[str, torch.Tensor]
    scale: torch.Tensor
    shift: torch.Tensor
    aligned_m: torch.Tensor
    valid: torch.Tensor
    space: str
    alignment: str
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict[str, float]:
        """The three headline numbers, e.g. for a table."""
        return {"absrel": self.absrel, "rmse_m": self.rmse, "delta1": self.delta1}


def evaluate_depth(pred: torch.Tensor, exact_m: torch.Tensor, *, output_kind: str,
                   mask: torch.Tensor | None = None, alignment: str = "scale_shift",
                   per_image: bool = True, max_depth: float = FAR_M) -> DepthEvaluation:
    """Score an estimate against exact depth, after aligning it in its own space.

    Args:
        pred: ``B x 1 x H x W`` estimator output, of kind ``output_kind`` (one of
            :data:`OUTPUT_KINDS`), at the size of ``exact_m``.
        exact_m: ``B x 1 x H x W`` exact depth in meters (sky = ``FAR_M``).
        mask: optional extra mask of pixels to score (e.g. not the camel).
        alignment: ``"scale_shift"`` (least squares, the standard for relative outputs),
            ``"scale"`` (scale only) or ``"none"`` (take ``pred`` as it is: only
            meaningful for metric depth).
        per_image: align each image on its own (standard) or all with one fit (tests
            whether the maps share one scale and shift across images).
        max_depth: pixels at or beyond this (the sky) are not scored, and aligned
            predictions are capped at it.

    Disparity outputs are fitted to ``1 / exact`` and converted back with
    :func:`disparity_to_depth`; depth outputs are fitted to ``exact`` directly and
    clamped to ``[1e-3, max_depth]`` m.
    """
    kind = _check_kind(output_kind)
    if alignment not in ("scale_shift", "scale", "none"):
        raise ValueError(f"unknown alignment {alignment!r}; choose scale_shift, scale or none")
    if pred.shape != exact_m.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} and exact depth {tuple(exact_m.shape)} "
                         "differ in shape: resize the prediction first")
    exact = exact_m.float()
    valid = valid_depth_mask(exact, mask, max_depth=max_depth)
    space = "disparity" if kind == RELATIVE_DISPARITY else "depth"
    target = depth_to_disparity(exact) if space == "disparity" else exact
    p = pred.float().to(exact.device)
    b = p.shape[0]
    if alignment == "scale_shift":
        scale, shift = align_scale_shift(p, target, valid, per_image=per_image)
    elif alignment == "scale":
        scale = align_scale(p, target, valid, per_image=per_image)
        shift = torch.zeros_like(scale)
    else:
        scale = torch.ones(b, dtype=torch.float64, device=p.device)
        shift = torch.zeros_like(scale)
    aligned = (_bcast(scale, p) * p.double() + _bcast(shift, p)).float()
    if space == "disparity":
        aligned_m = disparity_to_depth(aligned, max_depth=max_depth)
    else:
        aligned_m = aligned.clamp(1e-3, max_depth)
    per = depth_errors(aligned_m, exact, valid)

    def mean(v: torch.Tensor) -> float:
        v = v[~torch.isnan(v)]
        return float(v.mean()) if v.numel() else float("nan")

    return DepthEvaluation(absrel=mean(per["absrel"]), rmse=mean(per["rmse"]), delta1=mean(per["delta1"]),
                           per_image=per, scale=scale, shift=shift, aligned_m=aligned_m, valid=valid,
                           space=space, alignment=alignment)
