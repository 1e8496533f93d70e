"""Seeded, batched value noise and fractal (fBm) noise in torch.

Each image in a batch has its own random lattice (a periodic ``N x N`` table), drawn from
its own seed, so a scene never depends on which other scenes share its batch. Noise at
float coordinates is the lattice blended with a quintic fade (C2 continuous, so shading
from its gradient shows no grid creases). The fade is applied to the coordinates and the
blend done by one :func:`torch.nn.functional.grid_sample` call (bilinear at faded
coordinates equals quintic value noise), which is the fastest way on CPU and GPU alike.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["TABLE_SIZE", "noise_tables", "value_noise", "fbm"]

TABLE_SIZE = 256


def noise_tables(seeds: list[int], salt: int, device=None) -> torch.Tensor:
    """``B x 1 x (N+1) x (N+1)`` float32 periodic tables of uniform values in [-1, 1], one per seed.

    The last row and column repeat the first (N = :data:`TABLE_SIZE`), so bilinear
    sampling wraps around seamlessly.
    """
    rows = []
    for s in seeds:
        g = torch.Generator().manual_seed((int(s) * 1_000_003 + salt * 7919) % (2**63 - 1))
        rows.append(torch.rand(1, TABLE_SIZE, TABLE_SIZE, generator=g) * 2 - 1)
    t = torch.stack(rows)
    return F.pad(t, (0, 1, 0, 1), mode="circular").to(device)


def _fade_coord(x: torch.Tensor) -> torch.Tensor:
    """Lattice coordinate -> faded, wrapped grid_sample coordinate in [-1, 1]."""
    xf = torch.floor(x)
    f = x - xf
    f = f * f * f * (f * (f * 6 - 15) + 10)
    return (torch.remainder(xf, TABLE_SIZE) + f) * (2.0 / TABLE_SIZE) - 1


def value_noise(table: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Value noise of ``table`` (``B x 1 x N+1 x N+1``) at ``x, y`` (``B x ...``, lattice units).

    Returns the shape of ``x``, values in [-1, 1].
    """
    shape = x.shape
    B = shape[0]
    grid = torch.stack([_fade_coord(x).reshape(B, 1, -1), _fade_coord(y).reshape(B, 1, -1)], -1)
    out = F.grid_sample(table, grid, mode="bilinear", padding_mode="border", align_corners=True)
    return out.view(shape)


_ROT = (math.cos(0.6), math.sin(0.6))


def fbm(table: torch.Tensor, x: torch.Tensor, y: torch.Tensor, octaves: int = 4,
        gain: float = 0.5, lacunarity: float = 2.03) -> torch.Tensor:
    """Fractal sum of ``octaves`` value-noise octaves (each rotated and shifted); shape of ``x``.

    Normalised by the sum of the octave weights, so the result stays in [-1, 1].
    """
    c, s = _ROT
    total = None
    amp, norm = 1.0, 0.0
    for i in range(octaves):
        n = value_noise(table, x + 17.3 * i, y - 31.7 * i)
        total = n * amp if total is None else total.add_(n, alpha=amp)
        norm += amp
        amp *= gain
        if i + 1 < octaves:
            x, y = (c * x - s * y) * lacunarity, (s * x + c * y) * lacunarity
    return total / norm
