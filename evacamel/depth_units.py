"""Depth units: 16-bit PNG values, meters, and the model's [0, 1] training target.

Three representations of the same depth, and the exact conversions between them:

* **meters** (float): metric distance along each pixel's ray, as the synthetic world
  computes it. The sky and anything beyond :data:`FAR_M` is :data:`FAR_M`.
* **PNG** (uint16): ``value = round(meters * PNG_STEPS_PER_M)``, i.e. a 1/64 m step,
  enough for 0..1023.98 m. Lossless, unlike the seed's quality-40 JPEG depth.
* **target** (float in [0, 1]): what the model learns. Log depth, normalised over a
  fixed range and inverted so near is bright (the seed's "near = white" convention,
  without its per-image min-max that made maps of different images incomparable)::

      target = 1 - log(d / NEAR_M) / log(FAR_M / NEAR_M),   d clamped to [NEAR_M, FAR_M]

  So 1 m -> 1.0, 10 m -> 0.667, 100 m -> 0.333, 1000 m (sky) -> 0.0. Log depth gives
  equal resolution to equal *relative* errors, which is how depth error is judged
  (AbsRel, delta < 1.25).

The constants are recorded in each dataset's ``meta.json`` under ``"depth"``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = [
    "NEAR_M",
    "FAR_M",
    "PNG_STEPS_PER_M",
    "meters_to_png",
    "png_to_meters",
    "meters_to_target",
    "target_to_meters",
    "depth_meta",
]

NEAR_M: float = 1.0
"""Depth that maps to target 1.0 (nearer is clamped)."""
FAR_M: float = 1000.0
"""Depth of the sky; maps to target 0.0 (farther is clamped)."""
PNG_STEPS_PER_M: int = 64
"""16-bit PNG depth: one step is 1/64 m; 65535 steps = 1023.98 m."""

_LOG_RANGE = math.log(FAR_M / NEAR_M)


def meters_to_png(depth_m: np.ndarray | torch.Tensor) -> np.ndarray:
    """Meters (any shape, float) -> uint16 PNG values (same shape, numpy)."""
    d = depth_m.detach().cpu().numpy() if isinstance(depth_m, torch.Tensor) else np.asarray(depth_m)
    return np.clip(np.rint(d.astype(np.float64) * PNG_STEPS_PER_M), 0, 65535).astype(np.uint16)


def png_to_meters(values: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint16 PNG values (any shape) -> float32 meters (same shape, torch)."""
    if isinstance(values, np.ndarray):
        values = torch.from_numpy(values.astype(np.float32))
    return values.float() / PNG_STEPS_PER_M


def meters_to_target(depth_m: torch.Tensor) -> torch.Tensor:
    """Meters (float tensor, any shape) -> training target in [0, 1], near = 1."""
    d = depth_m.float().clamp(NEAR_M, FAR_M)
    return 1.0 - torch.log(d / NEAR_M) / _LOG_RANGE


def target_to_meters(target: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`meters_to_target`: [0, 1] (clamped) -> meters in [NEAR_M, FAR_M]."""
    t = target.float().clamp(0.0, 1.0)
    return NEAR_M * torch.exp((1.0 - t) * _LOG_RANGE)


def depth_meta() -> dict:
    """The constants above as recorded in ``meta.json["depth"]``."""
    return {
        "unit": "m",
        "png_steps_per_m": PNG_STEPS_PER_M,
        "near_m": NEAR_M,
        "far_m": FAR_M,
        "target": "1 - log(d/near)/log(far/near), clamped to [near, far]",
    }
