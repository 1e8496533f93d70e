"""Sky: a gradient from the horizon to the zenith, haze, the sun and its glow, clouds.

All colours are linear RGB (the renderer tone-maps and gamma-encodes at the end).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from evacamel.world.noise import fbm, noise_tables
from evacamel.world.rng import scene_rng

__all__ = ["SkyParams", "sample_sky_params", "sky_color", "srgb_to_linear"]


def srgb_to_linear(c: np.ndarray | list[float]) -> np.ndarray:
    return np.asarray(c, dtype=np.float64) ** 2.2


@dataclass
class SkyParams:
    """Per-scene sky and light: vectors ``B x 3 x 1``, scalars ``B x 1``."""

    sun_dir: torch.Tensor       # unit vector towards the sun (world x, y, z)
    sun_color: torch.Tensor     # linear RGB, intensity included
    zenith: torch.Tensor
    horizon: torch.Tensor
    gradient: torch.Tensor      # how fast the sky turns from horizon to zenith colour
    haze_m: torch.Tensor        # distance at which 63% of the terrain's light is replaced by haze
    cloud_cover: torch.Tensor   # 0 clear .. 1 overcast-ish
    cloud_scale: torch.Tensor
    table: torch.Tensor


def sample_sky_params(seeds: list[int], device=None) -> SkyParams:
    """Draw each seed's sky (deterministic per seed)."""
    cols: dict[str, list] = {}
    for s in seeds:
        r = scene_rng(s, 3)
        elev = math.radians(r.uniform(12, 55))
        az = r.uniform(-math.pi, math.pi)
        cols.setdefault("sun_dir", []).append([math.cos(elev) * math.sin(az), math.sin(elev), math.cos(elev) * math.cos(az)])
        warm = r.uniform(0, 1) * (1.0 - (elev - math.radians(12)) / math.radians(43)) ** 2
        sun = srgb_to_linear([1.0, 0.96 - 0.10 * warm, 0.90 - 0.25 * warm]) * r.uniform(3.2, 4.2)
        cols.setdefault("sun_color", []).append(sun)
        dust = r.uniform(0, 1) ** 3  # dusty skies are paler and yellower
        zen = (1 - dust) * np.array([0.20, 0.42, 0.78]) + dust * np.array([0.55, 0.62, 0.70])
        zen = zen * r.uniform(0.85, 1.1) + r.normal(0, 0.02, 3)
        hor = (1 - dust) * np.array([0.78, 0.85, 0.92]) + dust * np.array([0.88, 0.82, 0.70])
        hor = hor * r.uniform(0.9, 1.05) + r.normal(0, 0.015, 3)
        cols.setdefault("zenith", []).append(srgb_to_linear(np.clip(zen, 0.02, 1)))
        cols.setdefault("horizon", []).append(srgb_to_linear(np.clip(hor, 0.05, 1)))
        cols.setdefault("gradient", []).append(r.uniform(2.5, 6.0))
        cols.setdefault("haze_m", []).append(float(np.exp(r.uniform(np.log(2500), np.log(12000)))) * (1 - 0.6 * dust))
        cols.setdefault("cloud_cover", []).append(0.0 if r.random() < 0.35 else r.uniform(0.05, 0.7))
        cols.setdefault("cloud_scale", []).append(r.uniform(800, 3000))

    def vec(name: str) -> torch.Tensor:
        return torch.tensor(np.asarray(cols[name]), dtype=torch.float32, device=device).view(len(seeds), 3, 1)

    def sca(name: str) -> torch.Tensor:
        return torch.tensor(cols[name], dtype=torch.float32, device=device).view(-1, 1)

    return SkyParams(sun_dir=vec("sun_dir"), sun_color=vec("sun_color"), zenith=vec("zenith"),
                     horizon=vec("horizon"), gradient=sca("gradient"), haze_m=sca("haze_m"),
                     cloud_cover=sca("cloud_cover"), cloud_scale=sca("cloud_scale"),
                     table=noise_tables(seeds, 31, device))


def sky_color(p: SkyParams, dirs: torch.Tensor, *, clouds: bool = True) -> torch.Tensor:
    """Sky radiance (linear RGB) along unit directions ``dirs`` (``B x 3 x P``) -> ``B x 3 x P``."""
    dy = dirs[:, 1:2]
    up = dy.clamp_min(0)
    mu = (dirs * p.sun_dir).sum(1, keepdim=True).clamp_min(0)
    t = 1 - torch.exp(-up * p.gradient[:, :, None])
    col = p.horizon + (p.zenith - p.horizon) * t
    # haze brightening low in the sky, stronger towards the sun
    col = col + 0.25 * p.horizon * torch.exp(-up * 25) + p.sun_color * 0.06 * mu**6
    if clouds:
        h = 1500.0
        inv = h / dy.clamp_min(0.02)
        cx = dirs[:, 0:1] * inv / p.cloud_scale[:, :, None]
        cz = dirs[:, 2:3] * inv / p.cloud_scale[:, :, None]
        n = fbm(p.table, cx[:, 0], cz[:, 0], octaves=5)[:, None]
        cover = p.cloud_cover[:, :, None]
        dens = ((n - (0.55 - 0.9 * cover)) / 0.35).clamp(0, 1)
        dens = dens * dens * (3 - 2 * dens) * (up / 0.04).clamp(0, 1) * cover.gt(0)
        lit = 0.75 + 0.25 * fbm(p.table, cx[:, 0] * 2.3 + 5.0, cz[:, 0] * 2.3, octaves=3)[:, None]
        cloud = (p.sun_color * 0.22 + p.horizon * 0.55) * lit
        col = col + (cloud - col) * dens * 0.9
    # the sun's glow and disc
    col = col + p.sun_color * (0.18 * mu**16 + 0.6 * mu**400)
    disc = ((mu - 0.99990) / 0.00004).clamp(0, 1)
    return col + p.sun_color * 8.0 * disc
