"""What a stored depth map means when an estimator made it.

Every depth PNG of a dataset holds ``round(meters * 64)`` (see
:mod:`evacamel.depth_units`), so loaders and the training target
(``meters_to_target``) never need to know where a map came from. An estimator's output
is turned into those (pseudo-)meters by one of these documented mappings, recorded in
``meta.json["depth"]["source"]["stored"]``:

``normalisation="auto"`` (the default; no per-image normalisation):

* **metric depth** (exact depth, metric models): the meters themselves, clamped to
  ``[0, FAR_M]``.
* **relative disparity** (Depth Anything, MiDaS/DPT): *pseudo-meters*. One affine map
  for the **whole dataset** takes the output ``x`` to ``s = clip((x - lo) / (hi - lo), 0, 1)``
  with ``lo``/``hi`` the 1st/99th percentiles of the outputs on the first images
  (the *calibration*, stored in meta.json), and ``s`` is read as a disparity between
  ``1/FAR_M`` and ``1/NEAR_M``: ``d = 1 / (s / NEAR_M + (1 - s) / FAR_M)``. So ``s = 1``
  is 1 m, ``s = 0`` is the sky (1000 m), and ``1 / d`` stays affine in the network's
  output: aligning the stored map in disparity space scores it like the raw output.
  These are **not meters**: the network knows depth only up to scale and shift.
* **relative depth**: ``d = NEAR_M + s * (FAR_M - NEAR_M)`` with ``s`` as above.

``normalisation="seed"`` (the original project's maps, for comparison): per image,
min-max of the output, inverted so near = 1 (:func:`~evacamel.depth.seed.seed_normalise`),
stored as ``target_to_meters(t)``, so the training target ``meters_to_target`` read back
from the PNG *is* the seed-style map ``t`` (up to the PNG's 1/64 m rounding).
"""

from __future__ import annotations

import torch

from evacamel.depth_units import FAR_M, NEAR_M, target_to_meters
from evacamel.depth.align import METRIC_DEPTH, OUTPUT_KINDS, RELATIVE_DEPTH, RELATIVE_DISPARITY
from evacamel.depth.seed import seed_normalise

__all__ = ["NORMALISATIONS", "CALIBRATION_QUANTILES", "needs_calibration", "calibrate",
           "to_stored_meters", "stored_meaning"]

NORMALISATIONS = ("auto", "seed")
CALIBRATION_QUANTILES = (0.01, 0.99)
_MAX_CALIBRATION_VALUES = 4_000_000


def _check(kind: str, normalisation: str) -> None:
    if kind not in OUTPUT_KINDS:
        raise ValueError(f"unknown output kind {kind!r}; choose one of: {', '.join(OUTPUT_KINDS)}")
    if normalisation not in NORMALISATIONS:
        raise ValueError(f"unknown normalisation {normalisation!r}; choose one of: {', '.join(NORMALISATIONS)}")


def needs_calibration(kind: str, normalisation: str) -> bool:
    """True for relative outputs stored without per-image normalisation."""
    _check(kind, normalisation)
    return normalisation == "auto" and kind != METRIC_DEPTH


def calibrate(outputs: torch.Tensor) -> dict:
    """The dataset-wide ``lo``/``hi`` (1st/99th percentiles) of some estimator outputs (any shape)."""
    v = outputs.detach().float().flatten()
    v = v[torch.isfinite(v)]
    if v.numel() == 0:
        raise ValueError("cannot calibrate on outputs without a finite value")
    if v.numel() > _MAX_CALIBRATION_VALUES:  # torch.quantile's size limit; an even subsample
        v = v[torch.linspace(0, v.numel() - 1, _MAX_CALIBRATION_VALUES, device=v.device).long()]
    q = torch.quantile(v.cpu(), torch.tensor(CALIBRATION_QUANTILES))
    lo, hi = float(q[0]), float(q[1])
    if not hi > lo:
        hi = lo + 1e-6
    return {"lo": lo, "hi": hi, "quantiles": list(CALIBRATION_QUANTILES), "values": int(outputs.numel())}


def to_stored_meters(output: torch.Tensor, kind: str, normalisation: str = "auto",
                     calibration: dict | None = None) -> torch.Tensor:
    """Estimator output ``B x 1 x H x W`` -> the (pseudo-)meters to store, same shape, float32.

    See the module docstring for each mapping. ``calibration`` (from :func:`calibrate`)
    is required exactly when :func:`needs_calibration` is true.
    """
    _check(kind, normalisation)
    x = output.float()
    if normalisation == "seed":
        return target_to_meters(seed_normalise(x, kind))
    if kind == METRIC_DEPTH:
        return x.clamp(0.0, FAR_M)
    if calibration is None:
        raise ValueError(f"storing {kind} without per-image normalisation needs a calibration (lo, hi)")
    lo, hi = float(calibration["lo"]), float(calibration["hi"])
    s = ((x - lo) / (hi - lo)).clamp(0.0, 1.0)
    if kind == RELATIVE_DISPARITY:
        return 1.0 / (s / NEAR_M + (1.0 - s) / FAR_M)
    assert kind == RELATIVE_DEPTH
    return NEAR_M + s * (FAR_M - NEAR_M)


def stored_meaning(kind: str, normalisation: str = "auto") -> str:
    """One line saying what the stored PNG values mean (recorded in meta.json)."""
    _check(kind, normalisation)
    if normalisation == "seed":
        return ("seed-style: t = per-image min-max of the output, inverted so near = 1; stored as "
                "target_to_meters(t), so meters_to_target(stored) = t. Not meters; not comparable across images")
    if kind == METRIC_DEPTH:
        return f"meters (clamped to [0, {FAR_M:g}])"
    if kind == RELATIVE_DISPARITY:
        return (f"pseudo-meters: d = 1 / (s/{NEAR_M:g} + (1 - s)/{FAR_M:g}), s = clip((x - lo)/(hi - lo), 0, 1), "
                "x = raw output, lo/hi = calibration (one for the whole dataset). Relative: align (scale and "
                "shift of 1/d) before comparing with meters")
    return (f"pseudo-meters: d = {NEAR_M:g} + s * ({FAR_M:g} - {NEAR_M:g}), s = clip((x - lo)/(hi - lo), 0, 1). "
            "Relative: align (scale and shift of d) before comparing with meters")
