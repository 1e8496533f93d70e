"""Dune heightfields: seeded, batched, evaluated at any world point.

A scene's terrain is a sum of

* a slow undulation (fBm, hundreds of meters) that lifts and lowers whole dune fields,
* a main family of transverse dunes: an asymmetric ridge profile (long gentle stoss
  slope, short steep slip face, sharp crest) along the wind, its crest lines meandering
  by domain warping and its height varying along and across the crests,
* a second, smaller dune family at an angle (star and linear dunes where it is strong),
* medium and fine fBm detail (hummocks, footprints of wind).

Ripples (centimetre scale) are not part of the height: the renderer adds them to the
shading normal near the camera. Heights are meters; the same formula is evaluated by
the ray marcher (for exact depth) and by the sun-shadow pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from evacamel.world.noise import fbm, noise_tables, value_noise
from evacamel.world.rng import scene_rng

__all__ = ["TerrainParams", "WideTerrain", "sample_terrain_params", "terrain_height", "wide_landforms", "rough_relief"]


@dataclass
class TerrainParams:
    """Per-scene terrain parameters, each a ``B x 1`` float32 tensor (tables ``B x N*N``)."""

    table_a: torch.Tensor
    table_b: torch.Tensor
    wind_cos: torch.Tensor
    wind_sin: torch.Tensor
    wavelength: torch.Tensor      # main dune spacing (m)
    dune_amp: torch.Tensor        # main dune height (m)
    stoss: torch.Tensor           # fraction of the period that is the gentle slope
    warp: torch.Tensor            # crest meander strength (in wavelengths)
    cross_amp: torch.Tensor       # second family height (m)
    cross_wavelength: torch.Tensor
    cross_cos: torch.Tensor
    cross_sin: torch.Tensor
    base_amp: torch.Tensor        # slow undulation (m)
    base_scale: torch.Tensor
    detail_amp: torch.Tensor      # medium detail (m)
    offset_x: torch.Tensor        # where in the infinite desert the camera stands
    offset_z: torch.Tensor
    wide: WideTerrain | None = None  # the wider world's landforms (None: dunes only)


@dataclass
class WideTerrain:
    """Landforms of the wider world (:mod:`evacamel.world.scene`), each ``B x 1`` (0 = absent).

    Added to the dunes by :func:`terrain_height`; distances from the camera are measured
    in the camera's frame (the scene's ``x, z`` before the desert offset).
    """

    table: torch.Tensor           # B x 1 x (N+1) x (N+1) noise of these landforms
    rough_amp: torch.Tensor       # rocky outcrops: height (m)
    rough_scale: torch.Tensor     # their size (m)
    mesa_amp: torch.Tensor        # mesas and buttes: height of their flat tops (m)
    mesa_scale: torch.Tensor      # their size (m)
    mesa_level: torch.Tensor      # noise level above which the ground is a mesa (-1..1)
    mesa_clear_m: torch.Tensor    # no mesa closer to the camera than this (m)
    mountain_amp: torch.Tensor    # distant mountains: peak height (m)
    mountain_scale: torch.Tensor  # their size (m)
    mountain_start_m: torch.Tensor  # distance from the camera where they begin (m)
    present: frozenset[str] = frozenset({"rough", "mesas", "mountains"})  # terms some scene has (others skipped)
    mesas_from_m: float = 0.0       # the nearest any scene's mesas or mountains begin (m):
    mountains_from_m: float = 0.0   # points all nearer than that skip the term (it is 0 there)


def sample_terrain_params(seeds: list[int], device=None) -> TerrainParams:
    """Draw the terrain of each seed (deterministic per seed) -> batched :class:`TerrainParams`."""
    cols: dict[str, list[float]] = {}

    def put(name: str, value: float) -> None:
        cols.setdefault(name, []).append(float(value))

    for s in seeds:
        r = scene_rng(s, 1)
        wind = r.uniform(0, 2 * math.pi)
        put("wind_cos", math.cos(wind))
        put("wind_sin", math.sin(wind))
        lam = float(np.exp(r.uniform(np.log(25), np.log(140))))
        put("wavelength", lam)
        put("dune_amp", lam * r.uniform(0.08, 0.2) * (0.4 if r.random() < 0.1 else 1.0))
        put("stoss", r.uniform(0.62, 0.82))
        put("warp", r.uniform(0.15, 0.6))
        cross = wind + r.choice([-1, 1]) * r.uniform(0.9, 1.6)
        put("cross_cos", math.cos(cross))
        put("cross_sin", math.sin(cross))
        put("cross_wavelength", lam * r.uniform(0.25, 0.6))
        put("cross_amp", lam * r.uniform(0.0, 0.05))
        put("base_amp", r.uniform(1.0, 12.0))
        put("base_scale", r.uniform(250, 700))
        put("detail_amp", r.uniform(0.15, 0.6))
        put("offset_x", r.uniform(-5000, 5000))
        put("offset_z", r.uniform(-5000, 5000))
    kw = {k: torch.tensor(v, dtype=torch.float32, device=device).view(-1, 1) for k, v in cols.items()}
    return TerrainParams(table_a=noise_tables(seeds, 11, device), table_b=noise_tables(seeds, 12, device), **kw)


def _smin(a: torch.Tensor, b: torch.Tensor, k: float) -> torch.Tensor:
    """Smooth minimum (polynomial), blending over ``k``."""
    h = (0.5 + 0.5 * (b - a) / k).clamp(0, 1)
    return b + (a - b) * h - k * h * (1 - h)


def _ridge(phase: torch.Tensor, stoss: torch.Tensor | float, k: float) -> torch.Tensor:
    """Asymmetric dune profile in [0, 1] of a phase (in periods): slow rise, sharp crest, steep fall."""
    s = phase - torch.floor(phase)
    up = s / stoss
    down = (1 - s) / (1 - stoss)
    tri = _smin(up, down, k).clamp_min(0)
    # rounded troughs, sharp crests
    return tri * tri * (1.6 - 0.6 * tri)


def terrain_height(p: TerrainParams, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Terrain height in meters at world points ``x, z`` (``B x P`` meters) -> ``B x P``."""
    cx, cz = x, z
    x = x + p.offset_x
    z = z + p.offset_z
    lam = p.wavelength
    # slow undulation of the whole field
    base = p.base_amp * fbm(p.table_a, x / p.base_scale, z / p.base_scale, octaves=3)
    # main dunes: coordinates along (a) and across (b) the wind
    a = x * p.wind_cos + z * p.wind_sin
    b = z * p.wind_cos - x * p.wind_sin
    wx, wz = x / (lam * 2.5), z / (lam * 2.5)
    warp = fbm(p.table_b, wx, wz, octaves=3)
    phase = a / lam + p.warp * warp * 2.0 + 0.15 * value_noise(p.table_a, b / (lam * 0.9) + 91.0, a / (lam * 3.0))
    ridge = _ridge(phase, p.stoss, 0.06)
    amp_mod = 0.55 + 0.45 * fbm(p.table_a, wx * 0.6 + 40.0, wz * 0.6 - 13.0, octaves=2)
    along = 0.75 + 0.25 * value_noise(p.table_b, b / (lam * 1.3), a / (lam * 2.0) + 57.0)
    dunes = p.dune_amp * (amp_mod * along).clamp_min(0.05) * ridge
    # second family at an angle
    a2 = x * p.cross_cos + z * p.cross_sin
    cross = p.cross_amp * _ridge(a2 / p.cross_wavelength + 0.7 * warp, 0.55, 0.1)
    # medium detail
    detail = p.detail_amp * fbm(p.table_b, x / 9.0 + 300.0, z / 9.0, octaves=3)
    if p.wide is None:
        return base + dunes + cross + detail
    return base + dunes + cross + detail + wide_landforms(p.wide, x, z, cx, cz)


def _smoothstep(e0: torch.Tensor | float, e1: torch.Tensor | float, x: torch.Tensor) -> torch.Tensor:
    t = ((x - e0) / (e1 - e0)).clamp(0, 1)
    return t * t * (3 - 2 * t)


def rough_relief(w: WideTerrain, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Rocky outcrops in [0, 1] at desert points ``x, z`` (ridged noise, flat between outcrops)."""
    n = fbm(w.table, x / w.rough_scale + 11.0, z / w.rough_scale - 7.0, octaves=3)
    return _smoothstep(0.15, 0.7, n) ** 1.5


def wide_landforms(w: WideTerrain, x: torch.Tensor, z: torch.Tensor, cx: torch.Tensor,
                   cz: torch.Tensor) -> torch.Tensor:
    """Height (m) of outcrops, mesas and mountains at desert points ``x, z`` (``cx, cz``: camera frame)."""
    dist = torch.sqrt(cx * cx + cz * cz)
    out = torch.zeros_like(x)
    if "rough" in w.present:  # the photographer stands in the open
        out = out + w.rough_amp * rough_relief(w, x, z) * _smoothstep(4.0, 20.0, dist)
    far = float(dist.max()) if dist.numel() else 0.0
    if "mesas" in w.present and far > w.mesas_from_m:
        out = out + _mesas(w, x, z, dist)
    if "mountains" in w.present and far > w.mountains_from_m:
        out = out + _mountains(w, x, z, dist)
    return out


def _mesas(w: WideTerrain, x: torch.Tensor, z: torch.Tensor, dist: torch.Tensor) -> torch.Tensor:
    # mesas: flat tops, steep cliffs, a second step on some (buttes on plateaus)
    n = fbm(w.table, x / w.mesa_scale + 57.0, z / w.mesa_scale + 3.0, octaves=3)
    steps = 0.65 * _smoothstep(w.mesa_level, w.mesa_level + 0.04, n) \
        + 0.35 * _smoothstep(w.mesa_level + 0.16, w.mesa_level + 0.19, n)
    return w.mesa_amp * steps * _smoothstep(w.mesa_clear_m, 1.6 * w.mesa_clear_m, dist)


def _mountains(w: WideTerrain, x: torch.Tensor, z: torch.Tensor, dist: torch.Tensor) -> torch.Tensor:
    """Ridged noise rising beyond a distance."""
    m = 1 - fbm(w.table, x / w.mountain_scale - 31.0, z / w.mountain_scale + 77.0, octaves=5).abs() * 1.4
    peaks = m.clamp_min(0) ** 1.5 * _smoothstep(w.mountain_start_m, 1.5 * w.mountain_start_m, dist)
    return w.mountain_amp * peaks
