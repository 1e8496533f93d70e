"""The wider world: kinds of ground, landforms, roads, props and skies, drawn per scene.

Real photographs of camels are not all taken among dunes. :class:`SceneParams` is a
distribution over scenes; each scene's seed draws, from its own generators (salts 20..29,
so the classic draws of :mod:`~evacamel.world.background` never change):

* a **ground**: ``dunes`` (the classic field), ``sand`` (a sand sheet with low dunes),
  ``gravel`` (a flat reg of pebbles) or ``rock`` (a hamada with rocky outcrops);
* **landforms**: cliffs and mesas at mid distance, distant mountains (in the heightfield);
* a **road** (asphalt or a dirt track) on flat grounds (in the ground's albedo);
* **props**: rocks, scrub, and man-made structures (a fence of posts, walls, building
  blocks, a pyramid or an obelisk), exact geometry (:mod:`~evacamel.world.props`);
* a **sky** other than the classic one (deep blue, hazy white, overcast, golden hour).

Every feature has a probability (0 turns it off); ``render_backgrounds(..., scene=None)``
renders the classic dunes, unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from evacamel.world.noise import fbm, noise_tables, value_noise
from evacamel.world.props import PropSpec, box_planes, pyramid_planes
from evacamel.world.rng import scene_rng
from evacamel.world.sky import SkyParams, srgb_to_linear
from evacamel.world.terrain import TerrainParams, WideTerrain, rough_relief

__all__ = ["GROUNDS", "SKIES", "SceneParams", "SceneDraw", "draw_scenes", "wide_terrain", "wide_sky",
           "ROCK_PALETTES"]

GROUNDS = ("dunes", "sand", "gravel", "rock")
SKIES = ("classic", "deep blue", "hazy", "overcast", "golden")

# sRGB albedos of desert rock: sandstones, basalt, granite, limestone
ROCK_PALETTES: dict[str, tuple[float, float, float]] = {
    "red sandstone": (0.62, 0.34, 0.22),
    "orange sandstone": (0.74, 0.48, 0.30),
    "brown": (0.45, 0.35, 0.27),
    "dark basalt": (0.30, 0.27, 0.25),
    "grey granite": (0.50, 0.48, 0.45),
    "limestone": (0.72, 0.66, 0.55),
}
SCRUB_COLORS = ((0.30, 0.31, 0.20), (0.45, 0.42, 0.30), (0.40, 0.33, 0.24), (0.25, 0.27, 0.18), (0.50, 0.46, 0.36))
PLASTER_COLORS = ((0.90, 0.87, 0.80), (0.82, 0.70, 0.52), (0.86, 0.62, 0.48), (0.70, 0.66, 0.60))


@dataclass(frozen=True)
class SceneParams:
    """The distribution of scenes (each field a probability per scene unless noted).

    Attributes:
        grounds: weights of :data:`GROUNDS` (``dunes``, ``sand``, ``gravel``, ``rock``).
        mesas: cliffs and mesas at mid distance.
        mountains: a distant mountain range.
        road: a road or track (only on flat grounds: sand, gravel, rock).
        rocks: scattered rocks and boulders (rock grounds mostly have some, unless 0).
        scrub: scattered bushes.
        structures: one to three man-made structures (fence, wall, building, monument).
        skies: a sky other than the classic one (:data:`SKIES`).
        prop_density: multiplies the number of rocks and bushes (0: none).
    """

    grounds: tuple[float, float, float, float] = (0.3, 0.2, 0.25, 0.25)
    mesas: float = 0.3
    mountains: float = 0.4
    road: float = 0.3
    rocks: float = 0.5
    scrub: float = 0.45
    structures: float = 0.35
    skies: float = 0.5
    prop_density: float = 1.0

    def __post_init__(self) -> None:
        if len(self.grounds) != len(GROUNDS) or min(self.grounds) < 0 or sum(self.grounds) <= 0:
            raise ValueError(f"grounds must be {len(GROUNDS)} non-negative weights of {GROUNDS}, got {self.grounds}")
        for name in ("mesas", "mountains", "road", "rocks", "scrub", "structures", "skies"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"SceneParams.{name} is a probability in [0, 1], got {getattr(self, name)}")


@dataclass
class SceneDraw:
    """What one scene's seed drew (plain values, for display and records)."""

    ground: str
    features: list[str] = field(default_factory=list)
    sky: str = "classic"
    rock: str = "brown"
    road: str | None = None
    props: list[PropSpec] = field(default_factory=list)


# -- drawing ---------------------------------------------------------------------------
def _draw_features(r: np.random.Generator, params: SceneParams, ground: str) -> list[str]:
    feats = []
    for name in ("mesas", "mountains", "road", "rocks", "scrub", "structures"):
        p = getattr(params, name)
        if name == "road" and ground == "dunes":
            p = 0.0
        if name == "rocks" and ground == "rock" and p > 0:
            p = max(p, 0.85)  # a hamada is strewn with rocks
        if r.random() < p:
            feats.append(name)
    return feats


def _ground_point(r: np.random.Generator, hfov: float, d_lo: float, d_hi: float) -> tuple[float, float]:
    """A point in (or just beside) the camera's view, log-uniform in distance."""
    d = float(np.exp(r.uniform(np.log(d_lo), np.log(d_hi))))
    az = r.uniform(-0.5, 0.5) * (hfov + 0.2)
    return d * math.sin(az), d * math.cos(az)


def _draw_rocks_and_scrub(r: np.random.Generator, draw: SceneDraw, params: SceneParams, hfov: float,
                          rock_rgb: np.ndarray) -> list[tuple[str, float, float, float]]:
    """(kind, x, z, size) of rocks and bushes; their heights come from the terrain later."""
    out = []
    if "rocks" in draw.features:
        for _ in range(int(r.uniform(3, 22) * params.prop_density)):
            size = float(np.exp(r.uniform(np.log(0.2), np.log(2.2))))
            x, z = _ground_point(r, hfov, max(2.5, 5 * size), 150.0)
            out.append(("rock", x, z, size))
    if "scrub" in draw.features:
        for _ in range(int(r.uniform(4, 35) * params.prop_density)):
            size = float(np.exp(r.uniform(np.log(0.3), np.log(1.4))))
            x, z = _ground_point(r, hfov, max(3.0, 5 * size), 200.0)
            out.append(("scrub", x, z, size))
    return out


def _draw_structures(r: np.random.Generator, hfov: float) -> list[tuple[str, float, float, float]]:
    """(kind, x, z, size) of one to three man-made structures."""
    out = []
    for _ in range(int(r.integers(1, 4))):
        what = ["fence", "wall", "building", "monument"][int(r.choice(4, p=[0.3, 0.25, 0.3, 0.15]))]
        lo, hi = {"fence": (6, 40), "wall": (10, 120), "building": (20, 300), "monument": (60, 2500)}[what]
        x, z = _ground_point(r, hfov, lo, hi)
        out.append((what, x, z, r.uniform(0, 1)))
    return out


def draw_scenes(seeds: list[int], params: SceneParams, hfovs: list[float]) -> list[SceneDraw]:
    """Each scene's draws (deterministic per seed; ``hfovs`` are the cameras' horizontal fields of view)."""
    draws = []
    w = np.asarray(params.grounds, dtype=np.float64)
    for s, hfov in zip(seeds, hfovs):
        r = scene_rng(s, 20)
        ground = GROUNDS[int(r.choice(len(GROUNDS), p=w / w.sum()))]
        d = SceneDraw(ground=ground, features=_draw_features(r, params, ground))
        d.sky = SKIES[1 + int(r.integers(0, len(SKIES) - 1))] if r.random() < params.skies else "classic"
        d.rock = list(ROCK_PALETTES)[int(r.integers(0, len(ROCK_PALETTES)))]
        if "road" in d.features:
            d.road = "asphalt" if r.random() < 0.45 else "track"
        draws.append(d)
    return draws


# -- terrain ---------------------------------------------------------------------------
_GROUND_SHAPES = {  # dune height factor range, base undulation factor, detail factor, outcrop height range (m)
    "dunes": ((1.0, 1.0), 1.0, 1.0, (0.0, 0.0)),
    "sand": ((0.06, 0.25), 0.5, 0.8, (0.0, 0.0)),
    "gravel": ((0.0, 0.05), 0.4, 0.35, (0.0, 0.4)),
    "rock": ((0.0, 0.08), 0.6, 0.6, (0.5, 2.5)),
}


def wide_terrain(tp: TerrainParams, draws: list[SceneDraw], seeds: list[int], device) -> TerrainParams:
    """The classic terrain reshaped per ground kind, with the drawn landforms (a new :class:`TerrainParams`)."""
    cols: dict[str, list[float]] = {k: [] for k in (
        "dune", "base", "detail", "rough_amp", "rough_scale", "mesa_amp", "mesa_scale", "mesa_level",
        "mesa_clear_m", "mountain_amp", "mountain_scale", "mountain_start_m")}
    for s, d in zip(seeds, draws):
        r = scene_rng(s, 21)
        (dlo, dhi), base, detail, (rlo, rhi) = _GROUND_SHAPES[d.ground]
        vals = {"dune": r.uniform(dlo, dhi), "base": base, "detail": detail,
                "rough_amp": r.uniform(rlo, rhi), "rough_scale": r.uniform(6, 30),
                "mesa_amp": r.uniform(25, 140) if "mesas" in d.features else 0.0,
                "mesa_scale": r.uniform(250, 700), "mesa_level": r.uniform(0.1, 0.3),
                "mesa_clear_m": r.uniform(150, 450),
                "mountain_amp": r.uniform(200, 650) if "mountains" in d.features else 0.0,
                "mountain_scale": r.uniform(900, 2500), "mountain_start_m": r.uniform(1200, 3000)}
        for k, v in vals.items():
            cols[k].append(float(v))
    col = {k: torch.tensor(v, dtype=torch.float32, device=device).view(-1, 1) for k, v in cols.items()}
    present = frozenset(name for name, amp in (("rough", "rough_amp"), ("mesas", "mesa_amp"),
                                               ("mountains", "mountain_amp")) if max(cols[amp]) > 0)
    starts = {name: min([c for a, c in zip(cols[amp], cols[start]) if a > 0] or [0.0])
              for name, amp, start in (("mesas", "mesa_amp", "mesa_clear_m"),
                                       ("mountains", "mountain_amp", "mountain_start_m"))}
    wide = WideTerrain(table=noise_tables(seeds, 22, device), present=present, mesas_from_m=starts["mesas"],
                       mountains_from_m=starts["mountains"], **{k: col[k] for k in (
        "rough_amp", "rough_scale", "mesa_amp", "mesa_scale", "mesa_level", "mesa_clear_m", "mountain_amp",
        "mountain_scale", "mountain_start_m")})
    kw = {k: getattr(tp, k) for k in tp.__dataclass_fields__}
    kw.update(dune_amp=tp.dune_amp * col["dune"], cross_amp=tp.cross_amp * col["dune"],
              base_amp=tp.base_amp * col["base"], detail_amp=tp.detail_amp * col["detail"], wide=wide)
    return TerrainParams(**kw)


# -- props -----------------------------------------------------------------------------
def _rock(x: float, y: float, z: float, size: float, yaw: float, color, r: np.random.Generator) -> PropSpec:
    """A boulder: an ellipsoid chipped flat by a few random planes, partly sunk in the ground."""
    radii = (size * r.uniform(0.7, 1.3), size * r.uniform(0.55, 1.0), size * r.uniform(0.7, 1.3))
    cy = y + r.uniform(-0.25, 0.2) * radii[1]
    planes = []
    for _ in range(int(r.integers(3, 7))):
        a, e = r.uniform(0, 2 * math.pi), r.uniform(-0.2, 1.1)
        nv = (math.cos(e) * math.cos(a), math.sin(e), math.cos(e) * math.sin(a))
        reach = r.uniform(0.55, 0.9) * (abs(nv[0]) * radii[0] + abs(nv[1]) * radii[1] + abs(nv[2]) * radii[2])
        planes.append((nv[0], nv[1], nv[2], nv[0] * x + nv[1] * cy + nv[2] * z + reach))
    return PropSpec("ellipsoid", "rock", color, (x, cy, z), max(radii), radii, yaw, tuple(planes))


def _bush(x: float, y: float, z: float, size: float, color, r: np.random.Generator) -> list[PropSpec]:
    """A bush: a few overlapping flattened blobs on the ground."""
    out = []
    for _ in range(int(r.integers(2, 6))):
        s = size * r.uniform(0.45, 0.8)
        px, pz = x + r.normal(0, 0.45 * size), z + r.normal(0, 0.45 * size)
        radii = (s * r.uniform(0.8, 1.3), s * r.uniform(0.35, 0.75), s * r.uniform(0.8, 1.3))
        tone = tuple(c * r.uniform(0.7, 1.2) for c in color)
        out.append(PropSpec("ellipsoid", "scrub", tone, (px, y + radii[1] * r.uniform(0.2, 0.7), pz), max(radii),
                            radii, r.uniform(0, math.pi)))
    return out


def _prop_spec(kind: str, x: float, y: float, z: float, size: float, r: np.random.Generator,
               colors: dict[str, np.ndarray]) -> list[PropSpec]:
    """The solids of one drawn prop standing at ground height ``y``."""
    jitter = lambda c: tuple(float(v) for v in srgb_to_linear(np.clip(c * r.uniform(0.8, 1.15), 0, 1)))  # noqa: E731
    yaw = r.uniform(0, math.pi)
    if kind == "rock":
        return [_rock(x, y, z, size, yaw, jitter(colors[kind]), r)]
    if kind == "scrub":
        return _bush(x, y, z, size, jitter(colors[kind]), r)
    if kind == "fence":
        n, gap, h = int(r.integers(4, 14)), r.uniform(2.0, 4.0), r.uniform(1.0, 1.7)
        w, dirn = r.uniform(0.06, 0.1), r.uniform(0, math.pi)
        out = []
        for i in range(n):
            px, pz = x + i * gap * math.cos(dirn), z + i * gap * math.sin(dirn)
            out.append(PropSpec("convex", "wood", jitter(colors["wood"]), (px, y + h / 2, pz), h,
                                planes=box_planes((px, y - 0.3, pz), (w, h / 2 + 0.15, w), dirn)))
        return out
    if kind == "wall":
        L, h, t = r.uniform(4, 30), r.uniform(1.2, 3.0), r.uniform(0.3, 0.7)
        return [PropSpec("convex", "mud", jitter(colors["mud"]), (x, y + h / 2, z), math.hypot(L, h) / 2 + 1,
                         planes=box_planes((x, y - 0.5, z), (L / 2, h / 2 + 0.25, t / 2), yaw))]
    if kind == "building":
        a, b, h = r.uniform(3, 12), r.uniform(3, 12), r.uniform(2.8, 8)
        c = PLASTER_COLORS[int(r.integers(0, len(PLASTER_COLORS)))]
        return [PropSpec("convex", "plaster", jitter(np.array(c)), (x, y + h / 2, z), math.hypot(a, b, h) / 2 + 1,
                         planes=box_planes((x, y - 0.5, z), (a / 2, h / 2 + 0.25, b / 2), yaw))]
    if r.random() < 0.6:  # a pyramid, sometimes cut flat (a mastaba)
        half = r.uniform(15, 115)
        h = half * r.uniform(1.1, 1.35)
        top = 0.0 if r.random() < 0.75 else r.uniform(0.35, 0.6)
        return [PropSpec("convex", "stone", jitter(colors["stone"]), (x, y + h / 2, z), math.hypot(half * 1.42, h / 2) + 1,
                         planes=pyramid_planes((x, y, z), half, h, yaw, top))]
    w, h = r.uniform(0.8, 2.5), r.uniform(8, 28)
    return [PropSpec("convex", "stone", jitter(colors["stone"]), (x, y + h / 2, z), math.hypot(w, h / 2) + 1,
                     planes=box_planes((x, y - 0.5, z), (w / 2, h / 2 + 0.25, w / 2), yaw)),
            PropSpec("convex", "stone", jitter(colors["stone"]), (x, y + h + w, z), w * 1.5,
                     planes=pyramid_planes((x, y + h, z), w / 2, w, yaw))]


def place_props(draws: list[SceneDraw], seeds: list[int], params: SceneParams, hfovs: list[float],
                ground_height, sand: np.ndarray) -> None:
    """Draw each scene's props and stand them on the terrain (fills ``draws[i].props``).

    ``ground_height(xs, zs)`` gives the terrain's world height at ``B`` lists of points
    (padded to equal length); ``sand`` the scenes' sand colours (sRGB ``B x 3``).
    """
    spots = []
    for i, (s, d, hfov) in enumerate(zip(seeds, draws, hfovs)):
        r = scene_rng(s, 23)
        rock = np.array(ROCK_PALETTES[d.rock])
        items = _draw_rocks_and_scrub(r, d, params, hfov, rock)
        if "structures" in d.features:
            items += _draw_structures(r, hfov)
        spots.append(items)
    n = max(1, max(len(x) for x in spots))
    xs = [[it[1] for it in items] + [0.0] * (n - len(items)) for items in spots]
    zs = [[it[2] for it in items] + [0.0] * (n - len(items)) for items in spots]
    heights = ground_height(xs, zs)
    for i, (s, d, items) in enumerate(zip(seeds, draws, spots)):
        r = scene_rng(s, 24)
        colors = {"rock": np.array(ROCK_PALETTES[d.rock]), "wood": np.array([0.40, 0.33, 0.25]),
                  "mud": np.clip(sand[i] * 0.85, 0, 1), "stone": np.clip(sand[i] * 0.95 + 0.03, 0, 1),
                  "scrub": np.array(SCRUB_COLORS[int(r.integers(0, len(SCRUB_COLORS)))])}
        for k, (kind, x, z, size) in enumerate(items):
            d.props += _prop_spec(kind, x, float(heights[i][k]), z, size, r, colors)


# -- ground albedo -----------------------------------------------------------------------
@dataclass
class GroundLook:
    """Per-scene ground materials, batched (``B x 3 x 1`` linear colours, ``B x 1`` values)."""

    rock: torch.Tensor
    gravel: torch.Tensor
    gravel_cover: torch.Tensor     # 0..1 share of the ground covered by pebbles
    road: torch.Tensor             # road albedo
    road_kind: torch.Tensor        # 0 none, 1 asphalt, 2 track
    road_line: torch.Tensor        # B x 3: (cos, sin, offset) of the road's centre line
    road_width: torch.Tensor
    strata: torch.Tensor           # period (m) of the rock's horizontal bands


def ground_looks(draws: list[SceneDraw], seeds: list[int], sand: np.ndarray, device) -> GroundLook:
    """Draw each scene's ground materials (``sand``: sRGB ``B x 3``)."""
    rows: dict[str, list] = {k: [] for k in GroundLook.__dataclass_fields__}
    for i, (s, d) in enumerate(zip(seeds, draws)):
        r = scene_rng(s, 25)
        rock = np.array(ROCK_PALETTES[d.rock]) * r.uniform(0.85, 1.1)
        grey = np.array([0.52, 0.48, 0.43]) * r.uniform(0.6, 1.2)
        gravel = np.clip(0.65 * sand[i] + 0.35 * (grey if r.random() < 0.6 else rock), 0, 1)
        cover = {"gravel": r.uniform(0.6, 1.0), "rock": r.uniform(0.2, 0.6)}.get(d.ground, 0.0)
        asphalt = np.array([0.30, 0.30, 0.31]) * r.uniform(0.8, 1.5)
        track = np.clip(sand[i] * r.uniform(0.75, 1.1), 0, 1)
        # the road's centre line passes through a point in view, along it or across it
        theta = r.uniform(-0.35, 0.35) if r.random() < 0.65 else math.pi / 2 + r.uniform(-0.5, 0.5)
        dist, az = float(np.exp(r.uniform(np.log(4), np.log(60)))), r.uniform(-0.3, 0.3)
        px, pz = dist * math.sin(az), dist * math.cos(az)
        offset = px * math.cos(theta) - pz * math.sin(theta)
        rows["rock"].append(srgb_to_linear(rock))
        rows["gravel"].append(srgb_to_linear(gravel))
        rows["gravel_cover"].append([cover])
        rows["road"].append(srgb_to_linear(asphalt if d.road == "asphalt" else track))
        rows["road_kind"].append([{None: 0, "asphalt": 1, "track": 2}[d.road]])
        rows["road_line"].append([math.cos(theta), -math.sin(theta), offset])
        rows["road_width"].append([r.uniform(5, 9) if d.road == "asphalt" else r.uniform(2.5, 4)])
        rows["strata"].append([r.uniform(1.5, 6)])
    t = lambda k, shape: torch.tensor(np.asarray(rows[k]), dtype=torch.float32, device=device).view(shape)  # noqa: E731
    B = len(seeds)
    return GroundLook(rock=t("rock", (B, 3, 1)), gravel=t("gravel", (B, 3, 1)), gravel_cover=t("gravel_cover", (B, 1)),
                      road=t("road", (B, 3, 1)), road_kind=t("road_kind", (B, 1)), road_line=t("road_line", (B, 3)),
                      road_width=t("road_width", (B, 1)), strata=t("strata", (B, 1)))


def _smooth(e0, e1, x: torch.Tensor) -> torch.Tensor:
    t = ((x - e0) / (e1 - e0)).clamp(0, 1)
    return t * t * (3 - 2 * t)


def road_weight(gl: GroundLook, hx: torch.Tensor, hz: torch.Tensor, footprint: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Road coverage ``B x P`` in [0, 1] at ground points, and the across / along coordinates (m)."""
    across = hx * gl.road_line[:, 0:1] + hz * gl.road_line[:, 1:2] - gl.road_line[:, 2:3]
    along = -hx * gl.road_line[:, 1:2] + hz * gl.road_line[:, 0:1]
    half = gl.road_width / 2
    soft = 0.15 + footprint
    w = _smooth(half + soft, half - soft, across.abs()) * (gl.road_kind > 0)
    return w, across, along


def ground_albedo(sand_alb: torch.Tensor, gl: GroundLook, tp: TerrainParams, hx: torch.Tensor, hz: torch.Tensor,
                  height: torch.Tensor, normals: torch.Tensor, footprint: torch.Tensor,
                  base: torch.Tensor) -> torch.Tensor:
    """Linear albedo ``B x 3 x P`` of the wider world's ground at hit points.

    Args:
        sand_alb: the classic sand albedo ``B x 3 x P``.
        hx, hz: hit points (camera frame, m); height: their world height (m); normals ``B x 3 x P``;
        footprint: meters per pixel on the ground there (fades detail finer than a pixel);
        base: ``B x 1`` the ground's height under the camera (mesa tops and mountains are rock).
    """
    wx, wz = hx + tp.offset_x, hz + tp.offset_z
    w = tp.wide
    steep = _smooth(0.8, 0.55, normals[:, 1])                       # cliffs and steep slopes
    crop = rough_relief(w, wx, wz) * (w.rough_amp > 0.5)            # outcrops (not the pebbles of a reg)
    above = height - base
    mesa = w.mesa_amp.clamp_min(1e-3)
    high = torch.maximum(_smooth(0.4 * mesa, 0.55 * mesa, above) * (w.mesa_amp > 0),
                         _smooth(60.0, 150.0, above))
    rock_w = torch.maximum(torch.maximum(steep, _smooth(0.2, 0.5, crop)), high)
    bands = 1 + 0.18 * torch.sin(height / gl.strata * 6.283 + 2 * value_noise(w.table, wx / 40, wz / 40))
    rock = gl.rock * (bands * (1 + 0.25 * fbm(w.table, wx / 3.0, wz / 3.0 + height / 3.0, octaves=3)))[:, None]
    speck = sum(value_noise(w.table, wx / s + 3 * k, wz / s) * (1 - footprint / (1.3 * s)).clamp(0, 1)
                for k, s in enumerate((0.09, 0.4, 1.6)))
    patches = fbm(w.table, wx / 15.0 - 5, wz / 15.0, octaves=3)
    cover = (gl.gravel_cover + 0.3 * patches).clamp(0, 1)[:, None]
    gravel = gl.gravel * (1 + 0.25 * speck + 0.15 * patches)[:, None]
    alb = sand_alb + (gravel - sand_alb) * cover
    alb = alb + (rock - alb) * rock_w[:, None]
    road, across, along = road_weight(gl, hx, hz, footprint)
    ruts = (gl.road_kind == 2) * _smooth(0.45, 0.2, (across.abs() - 0.8).abs()) * 0.25
    dash = (gl.road_kind == 1) * _smooth(0.12, 0.06, across.abs()) * (torch.sin(along * 0.6) > 0.3) \
        * (1 - footprint / 0.1).clamp(0, 1)
    road_alb = gl.road * (1 - ruts + 0.08 * patches)[:, None] * (1 + 0.2 * speck)[:, None]
    road_alb = road_alb + (0.6 - road_alb) * dash[:, None]
    return alb + (road_alb - alb) * road[:, None]


# -- sky ---------------------------------------------------------------------------------
_SKY_COLORS = {  # sRGB zenith, horizon, haze distance factor, cloud cover range
    "deep blue": ((0.10, 0.28, 0.70), (0.62, 0.76, 0.92), 1.6, (0.0, 0.2)),
    "hazy": ((0.62, 0.66, 0.72), (0.86, 0.84, 0.80), 0.4, (0.0, 0.3)),
    "overcast": ((0.58, 0.60, 0.63), (0.74, 0.74, 0.74), 0.6, (0.85, 1.0)),
    "golden": ((0.30, 0.40, 0.62), (0.98, 0.72, 0.45), 0.8, (0.1, 0.5)),
}


def _vec(values, like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(np.asarray(values), dtype=like.dtype, device=like.device)


def wide_sky(sky: SkyParams, draws: list[SceneDraw], seeds: list[int]) -> SkyParams:
    """The classic sky, replaced by the drawn kind where a scene drew one (a new :class:`SkyParams`)."""
    zen, hor, haze, cover, sun = (x.clone() for x in (sky.zenith, sky.horizon, sky.haze_m, sky.cloud_cover,
                                                       sky.sun_color))
    for i, (s, d) in enumerate(zip(seeds, draws)):
        if d.sky == "classic":
            continue
        r = scene_rng(s, 26)
        z, h, hz, (clo, chi) = _SKY_COLORS[d.sky]
        zen[i, :, 0] = _vec(srgb_to_linear(np.clip(np.array(z) * r.uniform(0.9, 1.1), 0, 1)), zen)
        hor[i, :, 0] = _vec(srgb_to_linear(np.clip(np.array(h) * r.uniform(0.92, 1.05), 0, 1)), zen)
        haze[i] *= hz
        cover[i] = r.uniform(clo, chi)
        if d.sky == "overcast":
            sun[i] *= 0.35
        if d.sky == "golden":
            sun[i, :, 0] *= _vec(srgb_to_linear([1.0, 0.78, 0.55]), sun)
    return SkyParams(sun_dir=sky.sun_dir, sun_color=sun, zenith=zen, horizon=hor, gradient=sky.gradient,
                     haze_m=haze, cloud_cover=cover, cloud_scale=sky.cloud_scale, table=sky.table)
