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

import numpy as np
import torch

from evacamel.world.noise import fbm, noise_tables

__all__ = ["CamelSprite", "render_camels", "sprite_from_cutout", "COATS", "POSES", "SPECIES"]

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
# primitives: capsules (a, b, r_a, r_b, zc, half-thickness scale, material) and
# ellipsoids (centre, semi-axes a, b, angle, zc, depth semi-axis, material)
# ----------------------------------------------------------------------------------
COAT, LEG, HAIR, DARK, MUZZLE = range(5)


class _Builder:
    def __init__(self) -> None:
        self.caps: list[list[float]] = []
        self.ells: list[list[float]] = []

    def cap(self, a, b, ra, rb, zc=0.0, mat=COAT, thick=1.0):
        self.caps.append([a[0], a[1], b[0], b[1], ra, rb, zc, thick, mat])

    def ell(self, c, ax, by, angle=0.0, zc=0.0, depth=None, mat=COAT):
        self.ells.append([c[0], c[1], ax, by, angle, zc, depth if depth is not None else min(ax, by), mat])


def _limb(bld: _Builder, pts, radii, zc: float, mats) -> None:
    """A chain of tapered capsules through ``pts`` with ``radii`` at each point."""
    for i in range(len(pts) - 1):
        bld.cap(pts[i], pts[i + 1], radii[i], radii[i + 1], zc, mats[i])


def _foot(bld: _Builder, at, r: float, zc: float) -> None:
    """The broad, flat camel foot pad, toes forward."""
    bld.ell((at[0] + 0.035, at[1] - 0.005), 2.2 * r, 0.9 * r, 0.05, zc, 0.8 * r, LEG)
    bld.ell((at[0] + 0.09, at[1] - 0.025), 0.9 * r, 0.45 * r, 0.0, zc + 0.01, 0.5 * r, DARK)


def _build_camel(r: np.random.Generator) -> tuple[_Builder, dict]:
    species = SPECIES[int(r.random() < 0.35)]
    pose = POSES[int(r.choice(4, p=[0.34, 0.30, 0.18, 0.18]))]
    sc = r.uniform(0.85, 1.1)          # overall size
    leg_len = r.uniform(0.93, 1.08)
    nk = r.uniform(0.9, 1.12)          # neck length
    hump = r.uniform(0.8, 1.2)
    bl = 0.8 * r.uniform(0.92, 1.08)   # half torso length
    bac = species == "bactrian"
    sit = pose == "sitting"
    bld = _Builder()

    leg_h = (1.12 if not bac else 1.0) * leg_len       # ground to belly
    body_y = leg_h + 0.36 if not sit else 0.66
    # torso: barrel, deep chest, narrower rump, belly tucked up towards the flank
    bld.ell((0.0, body_y), bl, 0.36, -0.03, 0.0, 0.4)
    bld.ell((0.58 * bl, body_y - 0.07), 0.36, 0.4, 0.35, 0.02, 0.4)
    bld.ell((-0.78 * bl, body_y + 0.02), 0.34, 0.34, -0.25, 0.0, 0.38)
    bld.ell((0.1 * bl, body_y - 0.12), 0.72 * bl, 0.26, -0.12, 0.02, 0.38)
    if bac:
        tilt = r.normal(0, 0.15, 2)
        for hx, tl in ((-0.45 * bl, tilt[0]), (0.33 * bl, tilt[1])):
            bld.ell((hx, body_y + 0.27 * hump), 0.24 * hump, 0.33 * hump, tl, 0.0, 0.26, COAT)
            bld.ell((hx + 0.02, body_y + 0.47 * hump), 0.17 * hump, 0.15 * hump, tl, 0.03, 0.18, HAIR)
    else:
        bld.ell((-0.08 * bl, body_y + 0.26 * hump), 0.52 * hump, 0.38 * hump, -0.08, 0.0, 0.34)

    # legs: far pair first (behind the body, darker), then the near pair
    fx, hx = 0.55 * bl, -0.66 * bl
    if pose == "walking":
        s = r.uniform(0.16, 0.30)
        swing = {"near": s, "far": -s}  # camels pace: the legs of one side move together
    else:
        swing = {"near": r.uniform(-0.03, 0.07), "far": r.uniform(-0.07, 0.03)}
    for side, zc in (("far", -0.22), ("near", 0.22)):
        a = swing[side]
        if sit:
            kx = fx + 0.32 + (0.05 if side == "near" else -0.03)
            _limb(bld, [(fx, body_y - 0.05), (kx, 0.11), (fx - 0.2, 0.07)], [0.14, 0.09, 0.065], zc, [COAT, LEG])
            sx = hx + 0.42 + (0.04 if side == "near" else -0.04)
            _limb(bld, [(hx, body_y - 0.02), (sx, 0.13), (hx - 0.2, 0.07)], [0.17, 0.1, 0.065], zc, [COAT, LEG])
            _foot(bld, (hx - 0.22, 0.06), 0.06, zc)
            continue
        # front leg: forearm, knee, cannon, fetlock, pad
        top = (fx, body_y - 0.12)
        knee_y = 0.56 * leg_len
        lift = max(0.0, -a) * 0.6 if pose == "walking" else 0.0
        knee = (top[0] + math.tan(a) * (top[1] - knee_y), knee_y + lift * 0.3)
        fet = (knee[0] + math.sin(a - 1.6 * lift) * (knee_y - 0.09), knee[1] - math.cos(a - 1.6 * lift) * (knee_y - 0.09))
        _limb(bld, [top, knee, fet], [0.14, 0.065, 0.05], zc, [COAT, LEG])
        bld.ell(knee, 0.075, 0.08, 0.0, zc + 0.005, 0.07, LEG)
        _foot(bld, fet, 0.06, zc)
        # hind leg: thigh, stifle, hock pointing back, cannon, pad
        b = -a
        bld.ell((hx + 0.05, body_y - 0.22), 0.22, 0.4, 0.25, zc * 0.6, 0.3)
        hock = (hx - 0.1 + math.tan(b) * (body_y - 0.6), 0.62 * leg_len + max(0.0, -b) * 0.15)
        hfet = (hock[0] + 0.06 + math.sin(b) * 0.5, 0.09 + max(0.0, -b) * 0.12)
        _limb(bld, [(hx + 0.08, body_y - 0.25), (hx - 0.02, hock[1] + 0.22), hock, hfet],
              [0.16, 0.1, 0.06, 0.05], zc, [COAT, COAT, LEG])
        _foot(bld, hfet, 0.06, zc)

    # neck: down and forward from the chest, then up to the head
    base = (0.7 * bl, body_y + 0.04)
    if pose == "grazing":
        # the neck falls steadily to the head at grass height, whatever the legs' length
        # (short-legged bactrians used to kink back up)
        end_y = 0.58
        drop = max(0.2, body_y + 0.04 - end_y)
        pts = [base, (base[0] + 0.35 * nk, base[1] - 0.33 * drop), (base[0] + 0.55 * nk, base[1] - 0.75 * drop),
               (base[0] + 0.62 * nk, end_y)]
        head_ang = -1.1
    elif sit:
        pts = [base, (base[0] + 0.3 * nk, base[1] - 0.12), (base[0] + 0.45 * nk, base[1] + 0.3 * nk),
               (base[0] + 0.52 * nk, base[1] + 0.75 * nk)]
        head_ang = r.uniform(-0.25, 0.0)
    else:
        dip = r.uniform(0.1, 0.28)
        pts = [base, (base[0] + 0.38 * nk, base[1] - dip), (base[0] + 0.58 * nk, base[1] + 0.3 * nk),
               (base[0] + 0.66 * nk, base[1] + 0.72 * nk)]
        head_ang = r.uniform(-0.3, 0.05)
    _limb(bld, pts, [0.24, 0.15, 0.12, 0.105], 0.0, [COAT, COAT, COAT])
    if bac:  # shaggy hair under the neck
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
    # full buttocks joining rump and thighs, and the tail rooted in them, hanging against them
    rx = -0.78 * bl
    bld.ell((rx + 0.02, body_y - 0.16), 0.27, 0.3, 0.1, 0.0, 0.34)
    t0 = (rx - 0.24, body_y + 0.1)
    tm = (rx - 0.29, body_y - 0.12)
    t1 = (rx - 0.28, tm[1] - (0.4 if not sit else 0.2))
    _limb(bld, [t0, tm, t1], [0.05, 0.042, 0.03], 0.06, [COAT, COAT])
    bld.ell((t1[0] - 0.005, t1[1] - 0.05), 0.04, 0.1, 0.05, 0.06, 0.03, HAIR)

    attrs = {"species": species, "pose": pose, "scale": float(sc)}
    for c in bld.caps:
        for i in (0, 1, 2, 3, 4, 5, 6):
            c[i] *= sc
    for e in bld.ells:
        for i in (0, 1, 2, 3, 5, 6):
            e[i] *= sc
    return bld, attrs


def _smin(a: torch.Tensor, b: torch.Tensor, k: float) -> torch.Tensor:
    """Polynomial smooth minimum; exactly ``min`` when ``|a - b| >= k``."""
    h = (0.5 + 0.5 * (b - a) / k).clamp(0, 1)
    return b + (a - b) * h - k * h * (1 - h)


def _primitives(bld: _Builder) -> list[tuple[str, list[float], float]]:
    """Each solid as (kind, params, bounding radius around its centre) for cropping."""
    out = []
    for c in bld.caps:
        ax, ay, bx, by, ra, rb = c[:6]
        out.append(("cap", c, (min(ax - ra, bx - rb), min(ay - ra, by - rb), max(ax + ra, bx + rb), max(ay + ra, by + rb))))
    for e in bld.ells:
        cx, cy, a, b = e[:4]
        r = max(a, b)
        out.append(("ell", e, (cx - r, cy - r, cx + r, cy + r)))
    return out


def _eval_solid(kind: str, p: list[float], X: torch.Tensor, Y: torch.Tensor):
    """Signed distance (m), front-surface height (m) of one solid on the points ``X, Y``."""
    if kind == "cap":
        ax, ay, bx, by, ra, rb, zc, _thick, _mat = p
        ex, ey = bx - ax, by - ay
        h = (((X - ax) * ex + (Y - ay) * ey) / max(ex * ex + ey * ey, 1e-12)).clamp(0, 1)
        dx, dy = X - ax - ex * h, Y - ay - ey * h
        dist = torch.sqrt(dx * dx + dy * dy)
        rad = ra + (rb - ra) * h
        s = dist / rad
        sd = dist - rad
        z = zc + rad * torch.sqrt((1 - s * s).clamp_min(0)) - 4 * rad * (s - 1).clamp_min(0)
        return sd, z
    cx, cy, a, b, ang, zc, dep, _mat = p
    ca, sa = math.cos(ang), math.sin(ang)
    qx = (X - cx) * ca + (Y - cy) * sa
    qy = (Y - cy) * ca - (X - cx) * sa
    e = torch.sqrt((qx / a) ** 2 + (qy / b) ** 2)
    sd = (e - 1) * min(a, b)
    z = zc + dep * torch.sqrt((1 - e * e).clamp_min(0)) - 4 * dep * (e - 1).clamp_min(0)
    return sd, z


def _render_one(seed: int, size: int, device) -> CamelSprite:
    r = np.random.default_rng([int(seed) & 0xFFFFFFFF, 77])
    bld, attrs = _build_camel(r)
    prims = _primitives(bld)
    x_lo = min(b[0] for _, _, b in prims)
    x_hi = max(b[2] for _, _, b in prims)
    y_hi = max(b[3] for _, _, b in prims)
    side = max(x_hi - x_lo, y_hi) * 1.08
    margin = 0.03 * side
    cx = (x_lo + x_hi) / 2
    px = side / size
    x0m = cx - side / 2            # meters at the left edge
    ytop = side - margin           # meters at the top edge
    coords = (torch.arange(size, device=device, dtype=torch.float32) + 0.5) * px
    xs = x0m + coords              # column centres (m)
    ys = ytop - coords             # row centres (m)

    k_sd, k_z = 0.035, 0.02
    pad = 2 * k_sd + 2 * px
    sd = torch.full((size, size), 1.0, device=device)
    zsum = torch.zeros(size, size, device=device)
    msum = torch.zeros(5, size, size, device=device)
    for kind, p, (bx0, by0, bx1, by1) in prims:
        c0 = max(0, int((bx0 - pad - x0m) / px))
        c1 = min(size, int(math.ceil((bx1 + pad - x0m) / px)))
        r0 = max(0, int((ytop - by1 - pad) / px))
        r1 = min(size, int(math.ceil((ytop - by0 + pad) / px)))
        if c1 <= c0 or r1 <= r0:
            continue
        X = xs[c0:c1].view(1, -1)
        Y = ys[r0:r1].view(-1, 1)
        sdi, zi = _eval_solid(kind, p, X, Y)
        sd[r0:r1, c0:c1] = _smin(sd[r0:r1, c0:c1], sdi, k_sd)
        wz = torch.exp(zi / k_z)
        zsum[r0:r1, c0:c1] += wz
        msum[int(p[-1]), r0:r1, c0:c1] += wz
    alpha = (0.5 - sd / px).clamp(0, 1)
    z = k_z * torch.log(zsum.clamp_min(1e-30))
    z = torch.where(zsum > 1e-30, z, torch.full_like(z, -1.0)).clamp_min(-1.0)
    mw = msum / zsum.clamp_min(1e-30)

    # normal from the height field
    gy, gx = torch.gradient(z, spacing=px)
    n = torch.stack([-gx, gy, torch.ones_like(gx)]).clamp(-6, 6)   # rows go down: y-gradient is -gy
    n = n / n.norm(dim=0, keepdim=True)

    coat_name = list(COATS)[int(r.choice(len(COATS), p=[0.18, 0.18, 0.16, 0.12, 0.07, 0.1, 0.08, 0.11]))]
    coat = np.array(COATS[coat_name]) * r.uniform(0.92, 1.06)
    if attrs["species"] == "bactrian" and r.random() < 0.6:
        coat = coat * 0.8
    hair = coat * r.uniform(0.62, 0.85)
    leg = np.clip(coat * r.uniform(1.0, 1.15), 0, 1)
    muzzle = np.clip(coat * r.uniform(0.95, 1.12), 0, 1)
    dark = np.array([0.16, 0.12, 0.09])
    pal = torch.tensor(np.stack([coat, leg, hair, dark, muzzle]) ** 2.2, dtype=torch.float32, device=device)
    alb = torch.einsum("mc,mhw->chw", pal, mw)
    # fur: fine streaks (mostly vertical), broader patches
    tab = noise_tables([int(seed)], 91, device)
    XX = xs.view(1, 1, -1).expand(1, size, size)
    YY = ys.view(1, -1, 1).expand(1, size, size)
    fur = fbm(tab, XX / 0.03, YY / 0.011, octaves=3)
    patch = fbm(tab, XX / 0.35 + 50, YY / 0.35, octaves=3)
    texs = r.uniform(0.10, 0.22)
    alb = alb * (1 + texs * fur + 0.12 * patch)
    # tufts: a small bump from fine fur noise tilts the shading normal (no more smooth toy)
    tuft = fbm(tab, XX / 0.012 + 9.0, YY / 0.02 - 4.0, octaves=2)[0]
    tgy, tgx = torch.gradient(tuft, spacing=max(px, 0.004))
    bump = 0.0025 * float(r.uniform(0.7, 1.3))
    n = n + torch.stack([-tgx, tgy, torch.zeros_like(tgx)]) * bump
    n = n / n.norm(dim=0, keepdim=True)
    # the underside (belly, under the neck and jaw) is darker, the back sun-bleached
    under = (-n[1:2]).clamp(0, 1)
    alb = alb * (1 - 0.28 * under) * (1 + 0.06 * n[1:2].clamp(0, 1))
    shade_far = 1 - 0.35 * (z < -0.05).float()[None]

    light = torch.tensor([0.35, 0.8, 0.5], device=device)
    light = light / light.norm()
    ndl = (n * light.view(3, 1, 1)).sum(0, keepdim=True).clamp_min(0)
    sky = 0.5 + 0.5 * n[1:2]
    occl = (1 - torch.exp(-(-sd).clamp_min(0) / 0.05))[None] * 0.35 + 0.65
    col = alb * (1.15 * ndl + 0.45 * sky) * occl * shade_far
    rgb = (1 - torch.exp(-col * 1.7)).clamp(0, 1) ** (1 / 2.2)
    rgba = torch.cat([rgb * (alpha > 0)[None], alpha[None]]).clamp(0, 1)
    attrs.update({"coat": coat_name, "height_m": float(y_hi), "length_m": float(x_hi - x_lo)})
    return CamelSprite(rgba=rgba.contiguous(), meters_per_side=float(side), foot_v=float(1 - margin / side),
                       attributes=attrs, seed=int(seed))


def render_camels(seeds: Sequence[int], size: int, *, device=None) -> list[CamelSprite]:
    """One procedural camel per seed as a ``4 x size x size`` RGBA sprite (deterministic per seed)."""
    if size < 8:
        raise ValueError(f"camel sprite size must be at least 8 pixels, got {size}")
    device = torch.device(device) if device is not None else torch.device("cpu")
    return [_render_one(int(s), size, device) for s in seeds]


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
