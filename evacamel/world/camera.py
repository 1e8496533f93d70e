"""A pinhole camera over the desert: ray directions, ray lengths and projection.

World frame (meters): ``x`` right, ``y`` up, ``z`` forward (the camera's viewing
direction projected on the ground). The camera sits at ``(0, ground + height_m, 0)``
and is tilted down by ``pitch_rad`` about the ``x`` axis (no roll, no yaw).

Pixels: row ``r`` and column ``c`` of a ``size x size`` image have centre offsets
``u = c + 0.5 - size/2`` (right) and ``v = r + 0.5 - size/2`` (down). The ray of pixel
``(u, v)`` has the (unnormalised) world direction::

    d = (u, -v cos(p) - f sin(p), f cos(p) - v sin(p))

so the image centre looks forward and down by ``p``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = ["Camera"]


@dataclass(frozen=True)
class Camera:
    """A pinhole camera a few meters above the ground, looking slightly down.

    Attributes:
        height_m: camera height above the ground right below it (meters).
        pitch_rad: downward tilt (radians, >= 0).
        focal_px: focal length in pixels at this image size.
        size: the image is ``size x size`` pixels.
    """

    height_m: float
    pitch_rad: float
    focal_px: float
    size: int

    def __post_init__(self) -> None:
        if self.size < 1 or self.focal_px <= 0 or self.height_m <= 0:
            raise ValueError(f"invalid camera {self}: size, focal_px and height_m must be positive")

    # -- rays -------------------------------------------------------------------------
    def pixel_offsets(self, device=None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(u, v)``: each ``size x size`` float32, pixel-centre offsets from the image centre."""
        s = self.size
        coords = torch.arange(s, device=device, dtype=torch.float32) + 0.5 - s / 2
        v, u = torch.meshgrid(coords, coords, indexing="ij")
        return u, v

    def ray_directions(self, device=None) -> torch.Tensor:
        """``3 x size x size`` float32 unnormalised world directions ``(x, y, z)`` (see module doc)."""
        u, v = self.pixel_offsets(device)
        cp, sp, f = math.cos(self.pitch_rad), math.sin(self.pitch_rad), self.focal_px
        return torch.stack([u, -v * cp - f * sp, f * cp - v * sp])

    def ray_lengths(self, device=None) -> torch.Tensor:
        """``1 x size x size`` float32: ray length per meter of forward (world ``z``) distance.

        A point at forward distance ``D`` on a pixel's ray is ``D * ray_lengths`` meters
        from the camera. Rays that never go forward (above a steep horizon) get ``1e9``.
        """
        d = self.ray_directions(device)
        norm = torch.sqrt(d[0:1] * d[0:1] + d[1:2] * d[1:2] + d[2:3] * d[2:3])  # faster than norm() on CPU
        dz = d[2:3]
        return torch.where(dz > 1e-6, norm / dz.clamp_min(1e-6), torch.full_like(dz, 1e9))

    # -- projection -------------------------------------------------------------------
    def project(self, x: torch.Tensor, y: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """World points relative to the camera (any equal shapes) -> image ``(col, row)`` floats.

        ``y`` is the height relative to the camera (negative below it). Columns and rows
        are continuous pixel coordinates (pixel ``c`` spans ``[c, c + 1)``).
        """
        cp, sp, f = math.cos(self.pitch_rad), math.sin(self.pitch_rad), self.focal_px
        yc = y * cp + z * sp
        zc = (z * cp - y * sp).clamp_min(1e-6)
        return f * x / zc + self.size / 2, -f * yc / zc + self.size / 2

    def horizon_row(self) -> float:
        """Row (continuous) of the horizon line of a flat world (rays parallel to the ground)."""
        return self.size / 2 - self.focal_px * math.tan(self.pitch_rad)
