"""Seeded procedural camels as RGBA sprites, and sprites from a student's cut-outs.

A camel is a side view built from smooth implicit solids: tapered capsules (legs, neck,
tail, muzzle) and ellipsoids (torso, humps, chest, rump, thighs, head), each with a
depth offset (the far legs sit behind the body). Per pixel, the implicit solids give

* a 2D signed distance (smooth union, so joints blend into fillets) whose value in
  pixels gives an analytically anti-aliased alpha (no jagged edges at any size),
* a front-surface height per solid, smooth-maxed, whose gradient is the surface normal
  for shading (soft light from above, sky ambient, darkening of the far side),
* a material (coat, lighter lower legs, darker hair on humps and neck, dark hooves,
  eye and nostril) blended by which solid is in front.

Coat colours, fur texture, species (dromedary: one hump, bactrian: two), pose
(standing, walking, grazing, sitting), proportions and size vary per seed. Sprites face
right; compose flips them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch

from evacamel.world.noise import fbm, noise_tables

__all__ = ["CamelSprite", "CamelParams", "render_camels", "sprite_from_cutout", "COATS", "WIDE_COATS", "POSES", "SPECIES"]

SPECIES = ("dromedary", "bactrian")
POSES = ("standing", "walking", "grazing", "sitting")
# sRGB coat colours of real camels
COATS: dict[str, tuple[float, float, float]] = {
    "sand": (0.78, 0.63, 0.44),
    "tan": (0.70, 0.53, 0.34),
    "light brown": (0.62, 0.45, 0.29),
    "brown": (0.50, 0.35, 0.22),
    "dark brown": (0.36, 0.25, 0.16),
    "cream": (0.88, 0.80, 0.66),
    "grey-brown": (0.58, 0.50, 0.42),
    "reddish": (0.66, 0.42, 0.27),
}


@dataclass
class CamelSprite:
    """A camel as an RGBA sprite.

    Attributes:
        rgba: ``4 x s x s`` float32 in [0, 1], straight alpha, camel facing right.
        meters_per_side: physical size of the sprite's side (meters).
        foot_v: row of the feet (ground contact) as a fraction of ``s`` from the top.
        attributes: ``species``, ``pose``, ``coat``, ``height_m`` ... (free-form).
        seed: the seed it was drawn from (``None`` for cut-outs).
    """

    rgba: torch.Tensor
    meters_per_side: float
    foot_v: float
    attributes: dict = field(default_factory=dict)
    seed: int | None = None


# ----------------------------------------------------------------------------------
# the solids: tapered capsules and ellipsoids in a side view (meters, x forward, y up),
# each with a depth offset ``zc`` (towards the viewer) and a material
# ----------------------------------------------------------------------------------
COAT, LEG, HAIR, DARK, MUZZLE = range(5)
N_MATERIALS = 5


class _Capsule(NamedTuple):
    """A tapered capsule from ``(ax, ay)`` (radius ``ra``) to ``(bx, by)`` (radius ``rb``)."""

    ax: float
    ay: float
    bx: float
    by: float
    ra: float
    rb: float
    zc: float
    thick: float
    mat: int

    def scaled(self, k: float) -> "_Capsule":
        return self._replace(ax=self.ax * k, ay=self.ay * k, bx=self.bx * k, by=self.by * k,
                             ra=self.ra * k, rb=self.rb * k, zc=self.zc * k)

    def bounds(self) -> tuple[float, float, float, float]:
        """``(x_lo, y_lo, x_hi, y_hi)`` of its side view (m)."""
        return (min(self.ax - self.ra, self.bx - self.rb), min(self.ay - self.ra, self.by - self.rb),
                max(self.ax + self.ra, self.bx + self.rb), max(self.ay + self.ra, self.by + self.rb))

    def evaluate(self, X: torch.Tensor, Y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Signed distance (m) and front-surface height (m) on the points ``X, Y``."""
        ax, ay, ra, rb, zc = self.ax, self.ay, self.ra, self.rb, self.zc
        ex, ey = self.bx - ax, self.by - ay
        h = (((X - ax) * ex + (Y - ay) * ey) / max(ex * ex + ey * ey, 1e-12)).clamp(0, 1)
        dx, dy = X - ax - ex * h, Y - ay - ey * h
        dist = torch.sqrt(dx * dx + dy * dy)
        rad = ra + (rb - ra) * h
        s = dist / rad
        sd = dist - rad
        z = zc + rad * torch.sqrt((1 - s * s).clamp_min(0)) - 4 * rad * (s - 1).clamp_min(0)
        return sd, z


class _Ellipsoid(NamedTuple):
    """An ellipsoid centred at ``(cx, cy)``, semi-axes ``a, b`` turned by ``angle``, ``depth`` deep."""

    cx: float
    cy: float
    a: float
    b: float
    angle: float
    zc: float
    depth: float
    mat: int

    def scaled(self, k: float) -> "_Ellipsoid":
        return self._replace(cx=self.cx * k, cy=self.cy * k, a=self.a * k, b=self.b * k,
                             zc=self.zc * k, depth=self.depth * k)

    def bounds(self) -> tuple[float, float, float, float]:
        """``(x_lo, y_lo, x_hi, y_hi)`` of its side view (m): the circle of its larger semi-axis."""
        r = max(self.a, self.b)
        return (self.cx - r, self.cy - r, self.cx + r, self.cy + r)

    def evaluate(self, X: torch.Tensor, Y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Signed distance (m, approximate) and front-surface height (m) on the points ``X, Y``."""
        cx, cy, a, b, dep = self.cx, self.cy, self.a, self.b, self.depth
        ca, sa = math.cos(self.angle), math.sin(self.angle)
        qx = (X - cx) * ca + (Y - cy) * sa
        qy = (Y - cy) * ca - (X - cx) * sa
        e = torch.sqrt((qx / a) ** 2 + (qy / b) ** 2)
        sd = (e - 1) * min(a, b)
        z = self.zc + dep * torch.sqrt((1 - e * e).clamp_min(0)) - 4 * dep * (e - 1).clamp_min(0)
        return sd, z


class _Builder:
    """Collects a camel's solids (capsules first, then ellipsoids, in the order added)."""

    def __init__(self) -> None:
        self.caps: list[_Capsule] = []
        self.ells: list[_Ellipsoid] = []

    def cap(self, a, b, ra, rb, zc=0.0, mat=COAT, thick=1.0):
        self.caps.append(_Capsule(a[0], a[1], b[0], b[1], ra, rb, zc, thick, mat))

    def ell(self, c, ax, by, angle=0.0, zc=0.0, depth=None, mat=COAT):
        self.ells.append(_Ellipsoid(c[0], c[1], ax, by, angle, zc, depth if depth is not None else min(ax, by), mat))

    def solids(self) -> list[_Capsule | _Ellipsoid]:
        return [*self.caps, *self.ells]


def _limb(bld: _Builder, pts, radii, zc: float, mats) -> None:
    """A chain of tapered capsules through ``pts`` with ``radii`` at each point."""
    for i in range(len(pts) - 1):
        bld.cap(pts[i], pts[i + 1], radii[i], radii[i + 1], zc, mats[i])


def _foot(bld: _Builder, at, r: float, zc: float) -> None:
    """The broad, flat camel foot pad, toes forward."""
    bld.ell((at[0] + 0.035, at[1] - 0.005), 2.2 * r, 0.9 * r, 0.05, zc, 0.8 * r, LEG)
    bld.ell((at[0] + 0.09, at[1] - 0.025), 0.9 * r, 0.45 * r, 0.0, zc + 0.01, 0.5 * r, DARK)


# -- a camel's body, part by part (units: meters before the overall scale) --------------
class _BodyPlan(NamedTuple):
    """The drawn proportions of one camel."""

    species: str
    pose: str
    scale: float       # overall size
    leg_len: float     # leg length factor
    neck_len: float    # neck length factor
    hump: float        # hump size factor
    half_length: float  # half the torso's length
    body_y: float      # height of the torso's centre

    @property
    def bactrian(self) -> bool:
        return self.species == "bactrian"

    @property
    def sitting(self) -> bool:
        return self.pose == "sitting"


def _draw_body_plan(r: np.random.Generator) -> _BodyPlan:
    species = SPECIES[int(r.random() < 0.35)]
    pose = POSES[int(r.choice(4, p=[0.34, 0.30, 0.18, 0.18]))]
    sc = r.uniform(0.85, 1.1)
    leg_len = r.uniform(0.93, 1.08)
    nk = r.uniform(0.9, 1.12)
    hump = r.uniform(0.8, 1.2)
    bl = 0.8 * r.uniform(0.92, 1.08)
    leg_h = (1.12 if species != "bactrian" else 1.0) * leg_len       # ground to belly
    body_y = leg_h + 0.36 if pose != "sitting" else 0.66
    return _BodyPlan(species, pose, sc, leg_len, nk, hump, bl, body_y)


def _add_torso(bld: _Builder, b: _BodyPlan, r: np.random.Generator) -> None:
    """Barrel, deep chest, narrower rump, belly tucked up towards the flank; the hump(s)."""
    bl, body_y, hump = b.half_length, b.body_y, b.hump
    bld.ell((0.0, body_y), bl, 0.36, -0.03, 0.0, 0.4)
    bld.ell((0.58 * bl, body_y - 0.07), 0.36, 0.4, 0.35, 0.02, 0.4)
    bld.ell((-0.78 * bl, body_y + 0.02), 0.34, 0.34, -0.25, 0.0, 0.38)
    bld.ell((0.1 * bl, body_y - 0.12), 0.72 * bl, 0.26, -0.12, 0.02, 0.38)
    if b.bactrian:
        tilt = r.normal(0, 0.15, 2)
        for hx, tl in ((-0.45 * bl, tilt[0]), (0.33 * bl, tilt[1])):
            bld.ell((hx, body_y + 0.27 * hump), 0.24 * hump, 0.33 * hump, tl, 0.0, 0.26, COAT)
            bld.ell((hx + 0.02, body_y + 0.47 * hump), 0.17 * hump, 0.15 * hump, tl, 0.03, 0.18, HAIR)
    else:
        bld.ell((-0.08 * bl, body_y + 0.26 * hump), 0.52 * hump, 0.38 * hump, -0.08, 0.0, 0.34)


def _draw_leg_swing(b: _BodyPlan, r: np.random.Generator) -> dict[str, float]:
    """Each side's leg angle (radians): camels pace, the legs of one side move together."""
    if b.pose == "walking":
        s = r.uniform(0.16, 0.30)
        return {"near": s, "far": -s}
    return {"near": r.uniform(-0.03, 0.07), "far": r.uniform(-0.07, 0.03)}


def _add_folded_legs(bld: _Builder, b: _BodyPlan, side: str, zc: float) -> None:
    """A sitting camel's legs of one side, folded under the body."""
    fx, hx, body_y = 0.55 * b.half_length, -0.66 * b.half_length, b.body_y
    kx = fx + 0.32 + (0.05 if side == "near" else -0.03)
    _limb(bld, [(fx, body_y - 0.05), (kx, 0.11), (fx - 0.2, 0.07)], [0.14, 0.09, 0.065], zc, [COAT, LEG])
    sx = hx + 0.42 + (0.04 if side == "near" else -0.04)
    _limb(bld, [(hx, body_y - 0.02), (sx, 0.13), (hx - 0.2, 0.07)], [0.17, 0.1, 0.065], zc, [COAT, LEG])
    _foot(bld, (hx - 0.22, 0.06), 0.06, zc)


def _add_standing_legs(bld: _Builder, b: _BodyPlan, a: float, zc: float) -> None:
    """The front and hind leg of one side at swing angle ``a``."""
    fx, hx, body_y, leg_len = 0.55 * b.half_length, -0.66 * b.half_length, b.body_y, b.leg_len
    # front leg: forearm, knee, cannon, fetlock, pad
    top = (fx, body_y - 0.12)
    knee_y = 0.56 * leg_len
    lift = max(0.0, -a) * 0.6 if b.pose == "walking" else 0.0
    knee = (top[0] + math.tan(a) * (top[1] - knee_y), knee_y + lift * 0.3)
    fet = (knee[0] + math.sin(a - 1.6 * lift) * (knee_y - 0.09), knee[1] - math.cos(a - 1.6 * lift) * (knee_y - 0.09))
    _limb(bld, [top, knee, fet], [0.14, 0.065, 0.05], zc, [COAT, LEG])
    bld.ell(knee, 0.075, 0.08, 0.0, zc + 0.005, 0.07, LEG)
    _foot(bld, fet, 0.06, zc)
    # hind leg: thigh, stifle, hock pointing back, cannon, pad
    b_ = -a
    bld.ell((hx + 0.05, body_y - 0.22), 0.22, 0.4, 0.25, zc * 0.6, 0.3)
    hock = (hx - 0.1 + math.tan(b_) * (body_y - 0.6), 0.62 * leg_len + max(0.0, -b_) * 0.15)
    hfet = (hock[0] + 0.06 + math.sin(b_) * 0.5, 0.09 + max(0.0, -b_) * 0.12)
    _limb(bld, [(hx + 0.08, body_y - 0.25), (hx - 0.02, hock[1] + 0.22), hock, hfet],
          [0.16, 0.1, 0.06, 0.05], zc, [COAT, COAT, LEG])
    _foot(bld, hfet, 0.06, zc)


def _neck_points(b: _BodyPlan, r: np.random.Generator) -> tuple[list[tuple[float, float]], float]:
    """The neck's line (down and forward from the chest, then up) and the head's angle."""
    nk = b.neck_len
    base = (0.7 * b.half_length, b.body_y + 0.04)
    if b.pose == "grazing":
        # the neck falls steadily to the head at grass height, whatever the legs' length
        # (short-legged bactrians used to kink back up)
        end_y = 0.58
        drop = max(0.2, b.body_y + 0.04 - end_y)
        return [base, (base[0] + 0.35 * nk, base[1] - 0.33 * drop), (base[0] + 0.55 * nk, base[1] - 0.75 * drop),
                (base[0] + 0.62 * nk, end_y)], -1.1
    if b.sitting:
        pts = [base, (base[0] + 0.3 * nk, base[1] - 0.12), (base[0] + 0.45 * nk, base[1] + 0.3 * nk),
               (base[0] + 0.52 * nk, base[1] + 0.75 * nk)]
        return pts, r.uniform(-0.25, 0.0)
    dip = r.uniform(0.1, 0.28)
    pts = [base, (base[0] + 0.38 * nk, base[1] - dip), (base[0] + 0.58 * nk, base[1] + 0.3 * nk),
           (base[0] + 0.66 * nk, base[1] + 0.72 * nk)]
    return pts, r.uniform(-0.3, 0.05)


def _add_neck_and_head(bld: _Builder, b: _BodyPlan, r: np.random.Generator) -> None:
    pts, head_ang = _neck_points(b, r)
    _limb(bld, pts, [0.24, 0.15, 0.12, 0.105], 0.0, [COAT, COAT, COAT])
    if b.bactrian:  # shaggy hair under the neck
        bld.cap((pts[0][0] + 0.1, pts[0][1] - 0.15), (pts[1][0] + 0.03, pts[1][1] - 0.1), 0.13, 0.1, 0.06, HAIR)
    top = pts[-1]
    ca, sa = math.cos(head_ang), math.sin(head_ang)

    def hp(dx, dy):
        return (top[0] + dx * ca - dy * sa, top[1] + dx * sa + dy * ca)

    bld.ell(hp(0.06, 0.02), 0.17, 0.13, head_ang, 0.02, 0.12)
    bld.cap(hp(0.1, -0.01), hp(0.44, -0.05), 0.105, 0.075, 0.02, MUZZLE)
    bld.ell(hp(0.44, -0.095), 0.07, 0.045, head_ang, 0.03, 0.05, MUZZLE)
    bld.cap(hp(-0.04, 0.09), hp(-0.09, 0.17), 0.035, 0.02, 0.0, COAT)
    bld.ell(hp(0.11, 0.055), 0.026, 0.018, head_ang, 0.15, 0.02, DARK)
    bld.ell(hp(0.45, -0.03), 0.022, 0.012, head_ang + 0.4, 0.1, 0.01, DARK)


def _add_rump_and_tail(bld: _Builder, b: _BodyPlan) -> None:
    """Full buttocks joining rump and thighs, and the tail rooted in them, hanging against them."""
    rx, body_y = -0.78 * b.half_length, b.body_y
    bld.ell((rx + 0.02, body_y - 0.16), 0.27, 0.3, 0.1, 0.0, 0.34)
    t0 = (rx - 0.24, body_y + 0.1)
    tm = (rx - 0.29, body_y - 0.12)
    t1 = (rx - 0.28, tm[1] - (0.4 if not b.sitting else 0.2))
    _limb(bld, [t0, tm, t1], [0.05, 0.042, 0.03], 0.06, [COAT, COAT])
    bld.ell((t1[0] - 0.005, t1[1] - 0.05), 0.04, 0.1, 0.05, 0.06, 0.03, HAIR)


def _build_camel(r: np.random.Generator) -> tuple[list[_Capsule | _Ellipsoid], _BodyPlan]:
    """Draw a camel: its solids (scaled to meters) and its body plan."""
    b = _draw_body_plan(r)
    bld = _Builder()
    _add_torso(bld, b, r)
    # legs: far pair first (behind the body, darker), then the near pair
    swing = _draw_leg_swing(b, r)
    for side, zc in (("far", -0.22), ("near", 0.22)):
        if b.sitting:
            _add_folded_legs(bld, b, side, zc)
        else:
            _add_standing_legs(bld, b, swing[side], zc)
    _add_neck_and_head(bld, b, r)
    _add_rump_and_tail(bld, b)
    return [s.scaled(b.scale) for s in bld.solids()], b


def _smin(a: torch.Tensor, b: torch.Tensor, k: float) -> torch.Tensor:
    """Polynomial smooth minimum; exactly ``min`` when ``|a - b| >= k``."""
    h = (0.5 + 0.5 * (b - a) / k).clamp(0, 1)
    return b + (a - b) * h - k * h * (1 - h)


# -- rasterising and shading a sprite ---------------------------------------------------
class _SpriteFrame(NamedTuple):
    """How the sprite's pixels map to meters (the camel's side view)."""

    side: float          # meters per sprite side
    px: float            # meters per pixel
    x0: float            # meters at the left edge
    ytop: float          # meters at the top edge
    margin: float        # meters below the feet
    xs: torch.Tensor     # column centres (m), ``s``
    ys: torch.Tensor     # row centres (m), ``s``


def _sprite_frame(bounds: list[tuple[float, float, float, float]], size: int, device) -> _SpriteFrame:
    """A square frame around the solids' bounds, feet near the bottom edge."""
    x_lo = min(b[0] for b in bounds)
    x_hi = max(b[2] for b in bounds)
    y_hi = max(b[3] for b in bounds)
    side = max(x_hi - x_lo, y_hi) * 1.08
    margin = 0.03 * side
    cx = (x_lo + x_hi) / 2
    px = side / size
    x0m = cx - side / 2
    ytop = side - margin
    coords = (torch.arange(size, device=device, dtype=torch.float32) + 0.5) * px
    return _SpriteFrame(side=side, px=px, x0=x0m, ytop=ytop, margin=margin, xs=x0m + coords, ys=ytop - coords)


class _Raster(NamedTuple):
    """The solids on the sprite's pixels (``s x s`` unless noted)."""

    sd: torch.Tensor          # smooth-union signed distance (m)
    z: torch.Tensor           # front-surface height (m), -1 where empty
    materials: torch.Tensor   # N_MATERIALS x s x s weights of each material in front


def _rasterise(solids: list[_Capsule | _Ellipsoid], fr: _SpriteFrame, size: int, device) -> _Raster:
    """Evaluate each solid on its own box of pixels and blend them (smooth min, soft max)."""
    k_sd, k_z = 0.035, 0.02
    px = fr.px
    pad = 2 * k_sd + 2 * px
    sd = torch.full((size, size), 1.0, device=device)
    zsum = torch.zeros(size, size, device=device)
    msum = torch.zeros(N_MATERIALS, size, size, device=device)
    for solid in solids:
        bx0, by0, bx1, by1 = solid.bounds()
        c0 = max(0, int((bx0 - pad - fr.x0) / px))
        c1 = min(size, int(math.ceil((bx1 + pad - fr.x0) / px)))
        r0 = max(0, int((fr.ytop - by1 - pad) / px))
        r1 = min(size, int(math.ceil((fr.ytop - by0 + pad) / px)))
        if c1 <= c0 or r1 <= r0:
            continue
        sdi, zi = solid.evaluate(fr.xs[c0:c1].view(1, -1), fr.ys[r0:r1].view(-1, 1))
        sd[r0:r1, c0:c1] = _smin(sd[r0:r1, c0:c1], sdi, k_sd)
        wz = torch.exp(zi / k_z)
        zsum[r0:r1, c0:c1] += wz
        msum[solid.mat, r0:r1, c0:c1] += wz
    z = k_z * torch.log(zsum.clamp_min(1e-30))
    z = torch.where(zsum > 1e-30, z, torch.full_like(z, -1.0)).clamp_min(-1.0)
    return _Raster(sd=sd, z=z, materials=msum / zsum.clamp_min(1e-30))


def _draw_palette(r: np.random.Generator, species: str, device) -> tuple[str, torch.Tensor]:
    """The coat's name and the linear albedo of each material (``N_MATERIALS x 3``)."""
    coat_name = list(COATS)[int(r.choice(len(COATS), p=[0.18, 0.18, 0.16, 0.12, 0.07, 0.1, 0.08, 0.11]))]
    coat = np.array(COATS[coat_name]) * r.uniform(0.92, 1.06)
    if species == "bactrian" and r.random() < 0.6:
        coat = coat * 0.8
    hair = coat * r.uniform(0.62, 0.85)
    leg = np.clip(coat * r.uniform(1.0, 1.15), 0, 1)
    muzzle = np.clip(coat * r.uniform(0.95, 1.12), 0, 1)
    dark = np.array([0.16, 0.12, 0.09])
    pal = torch.tensor(np.stack([coat, leg, hair, dark, muzzle]) ** 2.2, dtype=torch.float32, device=device)
    return coat_name, pal


def _unit0(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm(dim=0, keepdim=True)


def _furred_surface(ras: _Raster, fr: _SpriteFrame, pal: torch.Tensor, seed: int, size: int,
                    r: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Albedo ``3 x s x s`` (materials, fur streaks and patches, darker underside) and unit normals."""
    gy, gx = torch.gradient(ras.z, spacing=fr.px)
    n = _unit0(torch.stack([-gx, gy, torch.ones_like(gx)]).clamp(-6, 6))  # rows go down: y-gradient is -gy
    alb = torch.einsum("mc,mhw->chw", pal, ras.materials)
    # fur: fine streaks (mostly vertical), broader patches
    tab = noise_tables([int(seed)], 91, pal.device)
    XX = fr.xs.view(1, 1, -1).expand(1, size, size)
    YY = fr.ys.view(1, -1, 1).expand(1, size, size)
    fur = fbm(tab, XX / 0.03, YY / 0.011, octaves=3)
    patch = fbm(tab, XX / 0.35 + 50, YY / 0.35, octaves=3)
    texs = r.uniform(0.10, 0.22)
    alb = alb * (1 + texs * fur + 0.12 * patch)
    # tufts: a small bump from fine fur noise tilts the shading normal (no more smooth toy)
    tuft = fbm(tab, XX / 0.012 + 9.0, YY / 0.02 - 4.0, octaves=2)[0]
    tgy, tgx = torch.gradient(tuft, spacing=max(fr.px, 0.004))
    bump = 0.0025 * float(r.uniform(0.7, 1.3))
    n = _unit0(n + torch.stack([-tgx, tgy, torch.zeros_like(tgx)]) * bump)
    # the underside (belly, under the neck and jaw) is darker, the back sun-bleached
    under = (-n[1:2]).clamp(0, 1)
    alb = alb * (1 - 0.28 * under) * (1 + 0.06 * n[1:2].clamp(0, 1))
    return alb, n


class _Light(NamedTuple):
    """The camel's light: a direction (sprite frame: x forward, y up, z towards the viewer) and strengths."""

    direction: tuple[float, float, float] = (0.35, 0.8, 0.5)
    sun: float = 1.15
    sky: float = 0.45


def _shade(alb: torch.Tensor, n: torch.Tensor, ras: _Raster, alpha: torch.Tensor,
           lt: _Light = _Light()) -> torch.Tensor:
    """Straight RGBA ``4 x s x s``: light from ``lt``, sky ambient, far side and creases darker."""
    shade_far = 1 - 0.35 * (ras.z < -0.05).float()[None]
    light = torch.tensor(lt.direction, device=alb.device)
    light = light / light.norm()
    ndl = (n * light.view(3, 1, 1)).sum(0, keepdim=True).clamp_min(0)
    sky = 0.5 + 0.5 * n[1:2]
    occl = (1 - torch.exp(-(-ras.sd).clamp_min(0) / 0.05))[None] * 0.35 + 0.65
    col = alb * (lt.sun * ndl + lt.sky * sky) * occl * shade_far
    rgb = (1 - torch.exp(-col * 1.7)).clamp(0, 1) ** (1 / 2.2)
    return torch.cat([rgb * (alpha > 0)[None], alpha[None]]).clamp(0, 1)


# -- the wider camels ---------------------------------------------------------------------
WIDE_COATS: dict[str, tuple[float, float, float]] = {
    "white": (0.90, 0.87, 0.80),
    "pale grey": (0.74, 0.72, 0.68),
    "near black": (0.20, 0.15, 0.11),
    "dark brown": (0.30, 0.20, 0.13),
    "chestnut": (0.55, 0.30, 0.16),
    "golden": (0.80, 0.62, 0.36),
    "dusty": (0.66, 0.58, 0.48),
}


@dataclass(frozen=True)
class CamelParams:
    """Wider camels, each field a probability per camel (drawn from its seed).

    Attributes:
        coats: a coat from :data:`WIDE_COATS` (white, near black, chestnut ...) instead of the classic palette.
        patchy: a piebald coat (white patches).
        light: a light other than the classic soft top light (side, back, low sun, overcast).
    """

    coats: float = 0.5
    patchy: float = 0.12
    light: float = 0.7

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"CamelParams.{name} is a probability in [0, 1], got {getattr(self, name)}")


class _WideDraw(NamedTuple):
    coat: str | None      # a WIDE_COATS name, or None: the classic coat
    patchy: bool
    light: _Light


def _draw_wide_camel(seed: int, params: CamelParams) -> _WideDraw:
    r = np.random.default_rng([int(seed) & 0xFFFFFFFF, 78])
    coat = list(WIDE_COATS)[int(r.integers(0, len(WIDE_COATS)))] if r.random() < params.coats else None
    patchy = bool(r.random() < params.patchy)
    if r.random() >= params.light:
        return _WideDraw(coat, patchy, _Light())
    az, el = r.uniform(-math.pi, math.pi), r.uniform(0.1, 1.4)
    soft = r.random() < 0.2  # overcast: little sun, much sky
    d = (math.cos(el) * math.cos(az), math.sin(el), math.cos(el) * math.sin(az))
    return _WideDraw(coat, patchy, _Light(d, r.uniform(0.2, 0.5) if soft else r.uniform(0.9, 1.5),
                                          r.uniform(0.7, 1.0) if soft else r.uniform(0.25, 0.55)))


def _wide_palette(pal: torch.Tensor, coat: str, seed: int) -> torch.Tensor:
    """The palette with a coat from :data:`WIDE_COATS` (legs, hair, muzzle follow the coat)."""
    r = np.random.default_rng([int(seed) & 0xFFFFFFFF, 79])
    c = np.array(WIDE_COATS[coat]) * r.uniform(0.92, 1.06)
    rows = [c, np.clip(c * r.uniform(0.95, 1.1), 0, 1), c * r.uniform(0.7, 0.9), np.array([0.16, 0.12, 0.09]),
            np.clip(c * r.uniform(0.9, 1.1), 0, 1)]
    return torch.tensor(np.stack(rows) ** 2.2, dtype=pal.dtype, device=pal.device)


def _piebald(alb: torch.Tensor, fr: _SpriteFrame, seed: int, size: int) -> torch.Tensor:
    """White patches with soft edges on the coat."""
    tab = noise_tables([int(seed)], 92, alb.device)
    XX = fr.xs.view(1, 1, -1).expand(1, size, size)
    YY = fr.ys.view(1, -1, 1).expand(1, size, size)
    w = ((fbm(tab, XX / 0.25, YY / 0.25, octaves=3) - 0.1) / 0.08).clamp(0, 1)
    white = torch.tensor([0.9, 0.87, 0.8], device=alb.device).view(3, 1, 1) ** 2.2
    return alb + (white - alb) * w


def _render_one(seed: int, size: int, device, wide: CamelParams | None = None) -> CamelSprite:
    """Draw, rasterise and shade camel ``seed`` at ``size`` pixels (``wide``: the wider camels' draws too)."""
    r = np.random.default_rng([int(seed) & 0xFFFFFFFF, 77])
    solids, body = _build_camel(r)
    bounds = [s.bounds() for s in solids]
    fr = _sprite_frame(bounds, size, device)
    ras = _rasterise(solids, fr, size, device)
    alpha = (0.5 - ras.sd / fr.px).clamp(0, 1)
    coat_name, pal = _draw_palette(r, body.species, device)
    wd = _draw_wide_camel(seed, wide) if wide is not None else _WideDraw(None, False, _Light())
    if wd.coat is not None:
        coat_name, pal = wd.coat, _wide_palette(pal, wd.coat, seed)
    alb, n = _furred_surface(ras, fr, pal, seed, size, r)
    if wd.patchy:
        alb, coat_name = _piebald(alb, fr, seed, size), coat_name + " piebald"
    rgba = _shade(alb, n, ras, alpha, wd.light)
    x_lo, x_hi, y_hi = min(b[0] for b in bounds), max(b[2] for b in bounds), max(b[3] for b in bounds)
    attrs = {"species": body.species, "pose": body.pose, "scale": float(body.scale),
             "coat": coat_name, "height_m": float(y_hi), "length_m": float(x_hi - x_lo)}
    return CamelSprite(rgba=rgba.contiguous(), meters_per_side=float(fr.side), foot_v=float(1 - fr.margin / fr.side),
                       attributes=attrs, seed=int(seed))


def render_camels(seeds: Sequence[int], size: int, *, device=None, coat: CamelParams | None = None) -> list[CamelSprite]:
    """One procedural camel per seed as a ``4 x size x size`` RGBA sprite (deterministic per seed).

    ``coat``: the wider camels' distribution (:class:`CamelParams`: coats, piebald, light);
    ``None`` draws the classic camels (the same pixels as before it existed).
    """
    if size < 8:
        raise ValueError(f"camel sprite size must be at least 8 pixels, got {size}")
    device = torch.device(device) if device is not None else torch.device("cpu")
    return [_render_one(int(s), size, device, coat) for s in seeds]


def sprite_from_cutout(rgba: torch.Tensor, *, height_m: float = 2.1) -> CamelSprite:
    """A student's own camel cut-out as a sprite.

    Args:
        rgba: ``4 x H x W`` float in [0, 1] (or uint8 0..255), straight alpha; the camel as
            given (facing right or left).
        height_m: the camel's real height, which sets ``meters_per_side``.

    The image is cropped to the alpha's bounding box, padded to a square (camel centred
    horizontally, feet at the bottom) and ``foot_v`` is the bottom row of the alpha.

    Raises:
        ValueError: not 4 channels, or the alpha is empty.
    """
    if rgba.ndim != 3 or rgba.shape[0] != 4:
        raise ValueError(f"cut-out must be 4 x H x W RGBA, got shape {tuple(rgba.shape)}")
    x = rgba.float()
    if rgba.dtype == torch.uint8:
        x = x / 255.0
    a = x[3]
    on = a > 0.5 / 255
    if not bool(on.any()):
        raise ValueError("cut-out has an empty alpha (no camel pixels)")
    rows = torch.nonzero(on.any(1)).flatten()
    cols = torch.nonzero(on.any(0)).flatten()
    r0, r1 = int(rows[0]), int(rows[-1]) + 1
    c0, c1 = int(cols[0]), int(cols[-1]) + 1
    crop = x[:, r0:r1, c0:c1]
    h, w = crop.shape[1:]
    side = max(h, w)
    pad = torch.zeros(4, side, side, dtype=crop.dtype)
    top = side - h
    left = (side - w) // 2
    pad[:, top:top + h, left:left + w] = crop
    pad[:3] = torch.where(pad[3:4] > 0, pad[:3], torch.zeros_like(pad[:3]))
    return CamelSprite(rgba=pad.clamp(0, 1), meters_per_side=float(height_m) * side / h, foot_v=1.0,
                       attributes={"species": "cutout", "pose": "unknown", "height_m": float(height_m)},
                       seed=None)
