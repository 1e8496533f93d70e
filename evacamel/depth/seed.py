"""The seed's depth maps, reproduced on exact depth to show what they lose.

The original project ran DenseDepth (trained on indoor NYU rooms, so its depth saturates
at about 10 m) on each composite, then for each image: min-max normalised the output to
[0, 1], inverted it so near is white, and saved it as an 8-bit JPEG at quality 40.

Applied to our *exact* depth, the same steps show two losses that have nothing to do
with the network:

* **per-image min-max**: the same distance gets a different grey in every image (it
  depends on that image's nearest and farthest pixel), so maps cannot be compared and
  a model cannot learn distance from them, only an ordering within one image;
* **8-bit JPEG at quality 40**: 256 grey levels for the whole range (linear in depth:
  with the sky at 1000 m one level is about 4 m) plus blocky compression noise.

:func:`seed_normalise` and :func:`jpeg_round_trip` are the two steps;
:func:`seed_depth_pipeline` chains them. :func:`value_at_depth` measures the first loss:
the mean map value per image over pixels within a band of exact depth.
"""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image

from evacamel.depth.align import METRIC_DEPTH, OUTPUT_KINDS, RELATIVE_DEPTH, RELATIVE_DISPARITY

__all__ = ["seed_normalise", "jpeg_round_trip", "seed_depth_pipeline", "value_at_depth",
           "SEED_JPEG_QUALITY", "SEED_OUTPUT_KIND"]

SEED_JPEG_QUALITY = 40
"""The JPEG quality of the seed's depth maps."""
SEED_OUTPUT_KIND = RELATIVE_DEPTH
"""The seed's maps are ``1 - minmax(depth)``: affine in depth, with a per-image scale and shift."""


def seed_normalise(x: torch.Tensor, output_kind: str = METRIC_DEPTH,
                   valid: torch.Tensor | None = None) -> torch.Tensor:
    """Per-image min-max to [0, 1], near = 1: ``B x 1 x H x W`` -> same shape, float32.

    Depth outputs (metric or relative) are inverted (``1 - minmax(depth)``), disparity
    outputs are not (large disparity is already near). A constant image gives 0.
    ``valid`` (bool, same shape): take the min and max over these pixels only; the others
    are clipped to [0, 1] (e.g. the sky, which DenseDepth never saw as 1000 m).
    """
    if output_kind not in OUTPUT_KINDS:
        raise ValueError(f"unknown output kind {output_kind!r}; choose one of: {', '.join(OUTPUT_KINDS)}")
    v = x.float()
    if output_kind != RELATIVE_DISPARITY:
        v = -v
    shape = (-1, *([1] * (v.ndim - 1)))
    if valid is None:
        lo, hi = v.flatten(1).min(1).values, v.flatten(1).max(1).values
    else:
        ok = valid.bool().expand_as(v).flatten(1)
        lo = torch.where(ok, v.flatten(1), torch.inf).min(1).values
        hi = torch.where(ok, v.flatten(1), -torch.inf).max(1).values
        lo, hi = torch.where(ok.any(1), lo, 0.0), torch.where(ok.any(1), hi, 0.0)
    lo, hi = lo.view(shape), hi.view(shape)
    return ((v - lo) / (hi - lo).clamp_min(1e-12)).clamp(0, 1)


def jpeg_round_trip(maps: torch.Tensor, quality: int = SEED_JPEG_QUALITY) -> torch.Tensor:
    """8-bit greyscale JPEG encode + decode: ``B x 1 x H x W`` in [0, 1] -> same, float32.

    What saving the seed's maps as ``.jpg`` (PIL, 8-bit greyscale) and loading them
    back does.
    """
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be in 1..100, got {quality}")
    u8 = (maps.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    decoded = []
    for img in u8:
        buf = io.BytesIO()
        Image.fromarray(img[0]).save(buf, format="JPEG", quality=quality)
        buf.seek(0)
        with Image.open(buf) as im:
            decoded.append(torch.from_numpy(np.array(im.convert("L"))))
    return torch.stack(decoded)[:, None].float().div(255).to(maps.device)


def seed_depth_pipeline(depth_m: torch.Tensor, quality: int = SEED_JPEG_QUALITY, *,
                        max_depth: float | None = None) -> torch.Tensor:
    """The seed's storage applied to depth in meters: min-max per image, invert, JPEG.

    ``B x 1 x H x W`` meters -> ``B x 1 x H x W`` float in [0, 1] (near = 1), as the seed's
    depth files read back. Its kind is :data:`SEED_OUTPUT_KIND` (affine in depth).
    ``max_depth``: take min and max over pixels nearer than this only (e.g. ``FAR_M`` to
    leave the sky out, as DenseDepth's range ended at about 10 m); farther pixels get 0.
    """
    valid = None if max_depth is None else depth_m < max_depth
    return jpeg_round_trip(seed_normalise(depth_m, METRIC_DEPTH, valid), quality)


def value_at_depth(maps: torch.Tensor, depth_m: torch.Tensor, lo_m: float, hi_m: float) -> torch.Tensor:
    """Mean of ``maps`` per image over pixels whose exact depth is in ``[lo_m, hi_m)``.

    ``maps``, ``depth_m``: ``B x 1 x H x W``. Returns ``B`` float64 (NaN where an image has
    no pixel in the band). For a consistent encoding (one meaning per value) these are
    nearly equal across images; for per-image min-max they scatter.
    """
    band = ((depth_m >= lo_m) & (depth_m < hi_m)).double()
    n = band.flatten(1).sum(1)
    s = (maps.double() * band).flatten(1).sum(1)
    return torch.where(n > 0, s / n.clamp_min(1), torch.nan)
