"""Paste camels on backgrounds: placements, occlusion, exact masks and depth.

Two ways to place a camel (:func:`sample_placements`):

``"perspective"`` (default)
    The camel stands on the terrain. A forward distance is drawn (log-uniform, so near
    and far camels are equally common), a column, and the visible ground point at that
    distance in that column is found from the background's depth map; the sprite's
    size in pixels follows from the camera (focal length / distance). Sometimes the
    camel is pushed a little behind a dune crest so that the crest hides its feet or
    more. Candidates are drawn until the camel is mostly visible.
``"seed"``
    The seed project's recipe, scaled to the image size: a square of side 320..640 px at
    1024 (0.3125..0.625 of the size) at a random place fully inside the image, flipped
    with probability 0.5.

:func:`compose` pastes the sprites (alpha blending, anti-aliased resampling) and returns

* ``mask``: exactly the visible camel pixels (sprite alpha >= 0.5 and not hidden),
* ``depth``: the background's depth, with the camel's depth where the camel is visible.
  In perspective mode the camel is a vertical billboard at its forward distance ``D``:
  its depth along each pixel's ray is ``D * camera.ray_lengths()`` (exact for a flat
  camel facing the camera), and terrain nearer than that hides it. In seed mode the
  whole camel gets one depth, the background's depth at its feet (the middle of the
  sprite's bottom edge of the alpha, clamped into the image), and nothing hides it.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F

from evacamel.depth_units import FAR_M
from evacamel.world.background import Backgrounds
from evacamel.world.blend import BlendParams, harmonize, poisson_blend
from evacamel.world.camel import CamelSprite
from evacamel.world.camera import Camera
from evacamel.world.looks import Look, local_contrast, look_colors, sensor_noise, soften, vignette_factor

__all__ = ["Placement", "Composite", "sample_placements", "compose", "SEED_SIDE_RANGE", "MODES"]

MODES = ("perspective", "seed")
SEED_SIDE_RANGE = (320 / 1024, 640 / 1024)
"""Seed mode: the sprite's side as a fraction of the image size (320..640 px at 1024)."""


@dataclass
class Placement:
    """Where a sprite goes: its box in source pixels (top-left ``x, y``, size ``w, h``).

    The box may extend beyond the image. ``flip`` mirrors the sprite (camel facing left).
    ``distance_m`` is the camel's forward distance (perspective mode), ``None`` in seed mode.
    ``harmonize`` (0: off) and ``poisson`` choose the blending of this sample
    (:mod:`~evacamel.world.blend`); they are drawn only when ``sample_placements`` gets
    ``blend=``.
    """

    x: float
    y: float
    w: float
    h: float
    flip: bool
    distance_m: float | None = None
    harmonize: float = 0.0
    poisson: bool = False


@dataclass
class Composite:
    """Camels on backgrounds.

    Attributes:
        fg_bg: ``B x 3 x S x S`` float32 in [0, 1].
        mask: ``B x 1 x S x S`` float32, exactly 0 or 1: the visible camel pixels.
        depth: ``B x 1 x S x S`` float32 meters: background depth, camel depth where visible.
        visible_fraction: ``B`` float32: visible camel pixels / all camel pixels of the box.
    """

    fg_bg: torch.Tensor
    mask: torch.Tensor
    depth: torch.Tensor
    visible_fraction: torch.Tensor


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"unknown compose mode {mode!r}; choose one of {MODES}")


def _check_pairs(backgrounds: Backgrounds, sprites: Sequence, what: str = "sprites") -> None:
    if len(backgrounds) != len(sprites):
        raise ValueError(f"{len(backgrounds)} backgrounds but {len(sprites)} {what}: give one per background")


_RAY_CACHE: dict[tuple[Camera, str], torch.Tensor] = {}


def _ray_lengths(cam: Camera, device) -> torch.Tensor:
    key = (cam, str(device))
    rl = _RAY_CACHE.get(key)
    if rl is None:
        if len(_RAY_CACHE) > 256:
            _RAY_CACHE.clear()
        rl = _RAY_CACHE[key] = cam.ray_lengths(device)[0]
    return rl


def _alpha_points(sprite: CamelSprite, n: int = 24) -> tuple[torch.Tensor, torch.Tensor]:
    """Sprite-relative ``(u, v)`` in [0, 1] of a coarse grid of points inside the camel."""
    a = F.adaptive_avg_pool2d(sprite.rgba[3:4].float().cpu()[None], n)[0, 0]
    vv, uu = torch.nonzero(a >= 0.5, as_tuple=True)
    if vv.numel() == 0:
        vv, uu = torch.nonzero(a > 0, as_tuple=True)
    return (uu.float() + 0.5) / n, (vv.float() + 0.5) / n


def _seed_placement(S: int, g: torch.Generator) -> Placement:
    lo, hi = SEED_SIDE_RANGE
    r = torch.rand(4, generator=g).tolist()
    side = S * (lo + (hi - lo) * r[0])
    return Placement(x=(S - side) * r[1], y=(S - side) * r[2], w=side, h=side, flip=r[3] < 0.5, distance_m=None)


def _distance_range(cam: Camera, meters_per_side: float) -> tuple[float, float]:
    """Forward distances (m) at which the sprite is between ~10% and ~55% of the image."""
    S, f, m = cam.size, cam.focal_px, meters_per_side
    d_lo = max(3.0, f * m / (0.55 * S))
    d_hi = max(d_lo * 1.5, min(400.0, f * m / (0.10 * S)))
    return d_lo, d_hi


class _Stand(NamedTuple):
    """A point on the visible ground where a camel may stand (camera-relative meters)."""

    x: float
    y: float
    z: float          # forward distance
    behind: bool      # pushed behind a crest (its feet may be hidden)


def _stand_at(dep: torch.Tensor, rl: torch.Tensor, cam: Camera, row: int, col: int, col_f: float,
              draws: torch.Tensor, meters_per_side: float) -> _Stand:
    """The ground point of pixel ``(row, col)``; sometimes (``draws[0] < 0.3``) behind the crest there."""
    S, f = cam.size, cam.focal_px
    cp, sp = math.cos(cam.pitch_rad), math.sin(cam.pitch_rad)
    Z = float(dep[row, col] / rl[row, col])
    v = row + 0.5 - S / 2
    u = col_f - S / 2
    # the ground point on this pixel's ray at forward distance Z
    dz = f * cp - v * sp
    Y = (-v * cp - f * sp) * Z / dz
    X = u * Z / dz
    if draws[0] < 0.3 and row > 2:
        above = dep[max(0, row - 6):row, col]
        if above.numel() and float(above.max()) > dep[row, col] * 1.3:
            # a crest: stand a little behind it, feet lower than the crest
            Z = Z + float(draws[1]) * (1.0 + 0.15 * Z)
            Y = Y - float(draws[2]) * 0.5 * meters_per_side
            return _Stand(X, Y, Z, True)
    return _Stand(X, Y, Z, False)


def _stands(dep: torch.Tensor, rl: torch.Tensor, cam: Camera, meters_per_side: float, g: torch.Generator,
            tries: int, rounds: int = 4) -> Iterator[_Stand]:
    """Candidate stands: rounds of ``tries`` (distance, column) draws, each the bottom-most pixel
    of its column whose ground is at that distance (columns without one are skipped).

    Only the drawn columns are ever looked at: no full-image work per placement.
    """
    S = cam.size
    d_lo, d_hi = _distance_range(cam, meters_per_side)
    for _ in range(rounds):
        r = torch.rand(tries, 5, generator=g)
        D = d_lo * (d_hi / d_lo) ** r[:, 0]
        col = (0.04 + 0.92 * r[:, 1]) * S
        c = col.long().clamp(0, S - 1)
        coldep = dep.index_select(1, c)                     # S x tries
        colfwd = coldep / rl.index_select(1, c)             # forward distance of each pixel
        ok = (coldep < FAR_M * 0.999) & ((colfwd / D).log().abs() < 0.05)
        rows = torch.arange(S).view(S, 1).expand_as(ok)
        row = torch.where(ok, rows, torch.full_like(rows, -1)).amax(0)   # bottom-most match
        for t in range(tries):
            if row[t] >= 0:
                yield _stand_at(dep, rl, cam, int(row[t]), int(c[t]), float(col[t]), r[t, 2:], meters_per_side)


def _visible_share(pl: Placement, points: tuple[torch.Tensor, torch.Tensor], dep: torch.Tensor,
                   rl: torch.Tensor) -> float:
    """Estimated visible fraction of the camel at ``pl`` on a coarse grid of its points."""
    S = dep.shape[-1]
    us, vs = points
    pu = pl.x + (1 - us if pl.flip else us) * pl.w
    pv = pl.y + vs * pl.h
    inside = (pu >= 0) & (pu < S) & (pv >= 0) & (pv < S)
    pi = pv.long().clamp(0, S - 1)
    pj = pu.long().clamp(0, S - 1)
    vis = inside & (dep[pi, pj] > pl.distance_m * rl[pi, pj])
    return float(vis.float().mean()) if vis.numel() else 0.0


def _perspective_placement(depth: torch.Tensor, cam: Camera, sprite: CamelSprite, g: torch.Generator,
                           tries: int = 48, min_visible: float = 0.6) -> Placement:
    """The first candidate stand where the camel is visible enough (else the most visible one)."""
    S, f, m = cam.size, cam.focal_px, sprite.meters_per_side
    rl = _ray_lengths(cam, torch.device("cpu"))
    dep = depth.float().cpu()
    points = _alpha_points(sprite)
    cp, sp = math.cos(cam.pitch_rad), math.sin(cam.pitch_rad)
    best, best_vis = None, -1.0
    for st in _stands(dep, rl, cam, m, g, tries):
        side = m * f / (st.z * cp - st.y * sp)
        cu, cv = cam.project(torch.tensor(st.x), torch.tensor(st.y), torch.tensor(st.z))
        flip = bool(torch.rand(1, generator=g).item() < 0.5)
        cand = Placement(x=float(cu) - side / 2, y=float(cv) - sprite.foot_v * side, w=side, h=side,
                         flip=flip, distance_m=st.z)
        frac = _visible_share(cand, points, dep, rl)
        if frac >= (0.4 if st.behind else min_visible):
            return cand
        if frac > best_vis:
            best, best_vis = cand, frac
    if best is None:
        # no ground found at any drawn distance: stand on the bottom row, centred
        Z = float(dep[S - 1, S // 2] / rl[S - 1, S // 2])
        side = m * f / max(Z * cp, 1e-3)
        best = Placement(x=S / 2 - side / 2, y=S - sprite.foot_v * side, w=side, h=side, flip=False, distance_m=Z)
    return best


def _draw_blend(pl: Placement, blend: BlendParams, g: torch.Generator) -> Placement:
    """The sample's blending choices, drawn after its placement."""
    r = torch.rand(3, generator=g, dtype=torch.float64).tolist()
    lo, hi = blend.strength
    pl.harmonize = lo + (hi - lo) * r[1] if r[0] < blend.harmonize else 0.0
    pl.poisson = r[2] < blend.poisson
    return pl


def sample_placements(backgrounds: Backgrounds, sprites: Sequence[CamelSprite], *, mode: str = "perspective",
                      generator: torch.Generator, blend: BlendParams | None = None) -> list[Placement]:
    """One placement for each ``(backgrounds[i], sprites[i])`` pair.

    Args:
        backgrounds: the backgrounds (their depth and cameras are used in perspective mode).
        sprites: one sprite per background.
        mode: ``"perspective"`` or ``"seed"`` (see the module docstring).
        generator: a CPU ``torch.Generator``; the same state gives the same placements.
        blend: how often to harmonise and Poisson-blend (:class:`~evacamel.world.blend.BlendParams`);
            ``None`` draws nothing more (the seed's hard paste, the same placements as before).
    """
    _check_mode(mode)
    _check_pairs(backgrounds, sprites)
    S = backgrounds.rgb.shape[-1]
    out = []
    for i, sprite in enumerate(sprites):
        if mode == "seed":
            pl = _seed_placement(S, generator)
        else:
            pl = _perspective_placement(backgrounds.depth[i, 0], backgrounds.cameras[i], sprite, generator)
        out.append(pl if blend is None else _draw_blend(pl, blend, generator))
    return out


class _CachedSprite(NamedTuple):
    """A sprite tensor's premultiplied uint8 copy, valid while the tensor lives unchanged."""

    ref: weakref.ref          # the sprite's ``rgba`` tensor
    version: int              # its in-place version counter when converted
    u8: torch.Tensor          # ``1 x 4 x h x w`` uint8 premultiplied, channels-last


_SPRITE_CACHE: dict[int, _CachedSprite] = {}
_SPRITE_CACHE_BYTES = 256 << 20


def _premultiplied_u8(rgba: torch.Tensor) -> torch.Tensor:
    """``4 x h x w`` float straight RGBA -> ``1 x 4 x h x w`` uint8 premultiplied, channels-last.

    Channels-last uint8 is what PyTorch's fast (vectorised) antialiased resampler takes.
    Cached per sprite tensor (by identity and in-place version) while the tensor lives.
    """
    key = id(rgba)
    cached = _SPRITE_CACHE.get(key)
    if cached is not None and cached.ref() is rgba and cached.version == rgba._version:
        return cached.u8
    x = rgba.float().permute(1, 2, 0)                  # h x w x 4 view
    out = torch.empty(x.shape, dtype=torch.float32, device=x.device)
    torch.mul(x[..., :3], x[..., 3:4], out=out[..., :3])
    out[..., 3] = x[..., 3]
    u8 = out.mul_(255.0).add_(0.5).clamp_(0, 255).to(torch.uint8).permute(2, 0, 1)[None]
    used = sum(v.u8.numel() for v in _SPRITE_CACHE.values())
    if used + u8.numel() > _SPRITE_CACHE_BYTES:
        _SPRITE_CACHE.clear()
    try:
        ref = weakref.ref(rgba, lambda _r, k=key: _SPRITE_CACHE.pop(k, None))
        _SPRITE_CACHE[key] = _CachedSprite(ref, rgba._version, u8)
    except TypeError:  # pragma: no cover - tensors are weak-referenceable
        pass
    return u8


def _resample_sprite(sprite: CamelSprite, W: int, H: int, flip: bool, device) -> torch.Tensor:
    """The sprite resampled into a ``W x H`` box: ``4 x H x W`` float32 premultiplied RGBA in [0, 1].

    Antialiased bilinear (triangle filter widened by the scale when shrinking). On CPU the
    filter runs on uint8 (PyTorch's vectorised path, ~10x faster than float, within 1/255
    of it); elsewhere in float32.
    """
    src = sprite.rgba
    if torch.device(device).type == "cpu":
        u8 = _premultiplied_u8(src.cpu())
        res = F.interpolate(u8, size=(H, W), mode="bilinear", antialias=True, align_corners=False)[0]
        res = torch.empty(res.shape, dtype=torch.float32, device=res.device).copy_(res).mul_(1 / 255.0)  # planar
    else:
        src = src.to(device=device, dtype=torch.float32)
        pm = torch.cat([src[:3] * src[3:4], src[3:4]])
        res = F.interpolate(pm[None], size=(H, W), mode="bilinear", antialias=True, align_corners=False)[0]
        res = res.clamp_(0, 1)
    return res.flip(-1) if flip else res


def _contact_shadow(on: torch.Tensor, rows: torch.Tensor, ground: torch.Tensor, distance: float,
                    strength: float) -> torch.Tensor | None:
    """The darkening under the feet (a soft, flat ellipse of ambient occlusion) in one box.

    ``on``: ``H x W`` bool, resampled sprite alpha >= 0.5 (the whole box), ``rows`` the
    indices of its non-empty rows; ``ground``: ``H x W`` the
    background depth there (``inf`` where the box is outside the image). Returns the
    ``H x W`` factor to multiply the background by (``None``: nothing to darken). Only
    terrain at about the camel's distance is darkened (not the sky, not a dune far behind).
    The ellipse is squeezed where needed so that it fades out (to under 1/20000) inside
    the box: nothing outside the sprite's box changes.
    """
    H, W = on.shape
    if rows.numel() == 0:
        return None
    last = int(rows[-1])
    h = last - int(rows[0]) + 1
    feet_band = on[max(0, last - max(1, h // 10)):last + 1].any(0)
    cols = torch.nonzero(feet_band).flatten()
    cx = (int(cols[0]) + int(cols[-1]) + 1) / 2
    rx = max(1.0, 0.6 * (int(cols[-1]) - int(cols[0]) + 1))
    ry = max(0.75, 0.06 * h)
    cy = last + 0.5
    # e = 4 (fall = exp(-10)) at the box's edges at the latest
    rx_l, rx_r = min(rx, max(cx, 0.25) / 2), min(rx, max(W - cx, 0.25) / 2)
    ry_dn = min(ry, max(H - cy, 0.25) / 2)
    c0, c1 = max(0, int(cx - 2 * rx_l)), min(W, int(math.ceil(cx + 2 * rx_r)))
    r0, r1 = max(0, int(cy - 2 * ry)), min(H, int(math.ceil(cy + 2 * ry_dn)))
    if c1 <= c0 or r1 <= r0:
        return None
    yy = torch.arange(r0, r1, device=on.device, dtype=torch.float32).view(-1, 1) + 0.5
    xx = torch.arange(c0, c1, device=on.device, dtype=torch.float32).view(1, -1) + 0.5
    dx, dy = xx - cx, yy - cy
    dx = dx / torch.where(dx < 0, torch.full_like(dx, rx_l), torch.full_like(dx, rx_r))
    dy = dy / torch.where(dy > 0, torch.full_like(dy, ry_dn), torch.full_like(dy, ry))
    fall = torch.exp(-2.5 * (dx * dx + dy * dy))
    d = ground[r0:r1, c0:c1]
    near = ((d > 0.6 * distance) & (d < 2.5 * distance)).to(fall.dtype)
    factor = torch.ones(H, W, device=on.device)
    factor[r0:r1, c0:c1] = 1 - strength * fall * near
    return factor


class _Box(NamedTuple):
    """A placement's box in whole pixels: ``W x H`` at ``(x0, y0)`` (may overhang the image),
    and its part inside the image, ``[iy0, iy1) x [ix0, ix1)``."""

    x0: int
    y0: int
    W: int
    H: int
    ix0: int
    iy0: int
    ix1: int
    iy1: int

    @staticmethod
    def of(pl: Placement, S: int) -> "_Box":
        W, H = max(1, int(round(pl.w))), max(1, int(round(pl.h)))
        x0, y0 = int(math.floor(pl.x + 0.5)), int(math.floor(pl.y + 0.5))
        return _Box(x0, y0, W, H, max(0, x0), max(0, y0), min(S, x0 + W), min(S, y0 + H))

    @property
    def empty(self) -> bool:
        return self.ix1 <= self.ix0 or self.iy1 <= self.iy0

    @property
    def image(self) -> tuple[slice, slice]:
        """Rows and columns of the image inside the box."""
        return slice(self.iy0, self.iy1), slice(self.ix0, self.ix1)

    @property
    def inside(self) -> tuple[slice, slice]:
        """Rows and columns of the box that are inside the image."""
        return slice(self.iy0 - self.y0, self.iy1 - self.y0), slice(self.ix0 - self.x0, self.ix1 - self.x0)


def _perspective_depth(bg_depth: torch.Tensor, box: _Box, pl: Placement, cam: Camera,
                       rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The camel's depth on the box (a billboard at ``pl.distance_m``) and where terrain does not hide it."""
    ys, xs = box.image
    cam_depth = (pl.distance_m * _ray_lengths(cam, bg_depth.device)[ys, xs])[None]
    return cam_depth, cam_depth < bg_depth[:, ys, xs]


def _seed_depth(bg_depth: torch.Tensor, box: _Box, pl: Placement, cam: Camera | None,
                rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The seed's depth: the background's at the camel's feet, everywhere; nothing hides it."""
    S = bg_depth.shape[-1]
    foot_row = min(S - 1, max(0, box.y0 + int(rows[-1])))
    foot_col = min(S - 1, max(0, box.x0 + box.W // 2))
    ys, xs = box.image
    return bg_depth[:, foot_row, foot_col].view(1, 1, 1).expand_as(bg_depth[:, ys, xs]), None


_CAMEL_DEPTH = {"perspective": _perspective_depth, "seed": _seed_depth}


class _Canvas(NamedTuple):
    """One image being composed: its outputs (written in place) and what it is made from."""

    rgb: torch.Tensor        # 3 x S x S, holding the background
    depth: torch.Tensor      # 1 x S x S
    mask: torch.Tensor       # 1 x S x S
    bg_depth: torch.Tensor   # 1 x S x S, the background's depth
    camera: Camera | None    # perspective mode only
    look: Look | None        # the background's photographic look, given to the camel too


def _dressed_camel(part: torch.Tensor, box: _Box, pl: Placement, look: Look | None, scene: torch.Tensor,
                   S: int) -> torch.Tensor:
    """The camel's premultiplied colours ``3 x h x w`` after harmonisation and the scene's colour look."""
    a = part[3:4]
    if pl.harmonize <= 0 and look is None:
        return part[:3]
    straight = part[:3] / a.clamp_min(1e-6)
    if pl.harmonize > 0:
        straight = harmonize(straight, a[0] >= 0.5, scene, pl.harmonize)
    if look is not None:
        ys, xs = box.image
        rows = torch.arange(ys.start, ys.stop, device=part.device)
        cols = torch.arange(xs.start, xs.stop, device=part.device)
        straight = look_colors(straight[None], [look])[0] * vignette_factor([look], rows, cols, S)[0]
    return straight.clamp(0, 1) * a


def _finish_camel(region: torch.Tensor, before: torch.Tensor, on: torch.Tensor, pl: Placement, look: Look | None,
                  box: _Box, S: int) -> None:
    """After the paste: the look's blur, local contrast and noise, and Poisson blending, on ``on`` pixels only."""
    if look is not None and (look.blur > 0 or look.hdr > 0 or look.noise > 0):
        done = local_contrast(soften(region[None], [look], S), [look], S)[0]
        if look.noise > 0:
            salt = 1 + box.x0 * 7919 + box.y0
            done = (done + sensor_noise([look], tuple(region.shape[-2:]), region.device, salt=salt)[0]).clamp(0, 1)
        region.copy_(torch.where(on, done, region))
    if pl.poisson:
        region.copy_(poisson_blend(region, before, on[0]))


def _paste_one(c: _Canvas, sprite: CamelSprite, pl: Placement, mode: str, shadow: float) -> float:
    """Paste one sprite into one image's outputs in place; returns its visible fraction.

    Only the sprite's box is read or written.
    """
    S = c.rgb.shape[-1]
    box = _Box.of(pl, S)
    if box.empty:
        return 0.0
    res = _resample_sprite(sprite, box.W, box.H, pl.flip, c.rgb.device)          # 4 x H x W premultiplied
    on_full = res[3] >= 0.5
    rows = torch.nonzero(res[3].amax(1) >= 0.5).flatten()   # the camel's rows in the box
    if rows.numel() == 0:
        return 0.0
    total = int(on_full.sum())
    part = res[(slice(None), *box.inside)]
    a = part[3:4]
    bgd = c.bg_depth[(slice(None), *box.image)]
    cam_depth, vis = _CAMEL_DEPTH[mode](c.bg_depth, box, pl, c.camera, rows)
    region = c.rgb[(slice(None), *box.image)]
    dressed = pl.harmonize > 0 or pl.poisson or c.look is not None
    before = region.clone() if pl.harmonize > 0 or pl.poisson else None
    colors = _dressed_camel(part, box, pl, c.look, before, S) if dressed else part[:3]
    if mode == "perspective" and shadow > 0:
        _darken_under_feet(region, on_full, rows, bgd, box, float(pl.distance_m), shadow)
    m = on_full[box.inside][None]
    if vis is None:
        region.mul_(1 - a).add_(colors)
    else:
        m = m & vis
        visf = vis.to(a.dtype)
        region.mul_(1 - a * visf).add_(colors * visf)
    region.clamp_(0, 1)
    if dressed:
        _finish_camel(region, before, (a > 0) if vis is None else (a > 0) & vis, pl, c.look, box, S)
    c.depth[(slice(None), *box.image)] = torch.where(m, cam_depth, bgd)
    c.mask[(slice(None), *box.image)] = m.to(c.mask.dtype)
    return float(m.sum()) / total


def _darken_under_feet(region: torch.Tensor, on_full: torch.Tensor, rows: torch.Tensor, bgd: torch.Tensor,
                       box: _Box, distance: float, strength: float) -> None:
    """Multiply the image ``region`` (``3 x`` the box inside the image) by the contact shadow."""
    ground = torch.full((box.H, box.W), math.inf, device=region.device)
    ground[box.inside] = bgd[0]
    factor = _contact_shadow(on_full, rows, ground, distance, strength)
    if factor is not None:
        region.mul_(factor[box.inside])


def compose(backgrounds: Backgrounds, sprites: Sequence[CamelSprite], placements: Sequence[Placement], *,
            mode: str = "perspective", shadow: float = 0.35, out: Composite | None = None) -> Composite:
    """Paste ``sprites[i]`` on ``backgrounds[i]`` at ``placements[i]``.

    Each sprite is resampled into its box with an anti-aliased bilinear filter (alpha
    premultiplied, so edges do not darken) and alpha-blended over the background. In
    perspective mode terrain nearer than the camel hides it; in seed mode nothing does
    and the camel's depth is the background depth at its feet (see the module doc).
    In perspective mode ``shadow`` (0 = off) darkens the ground under the feet (a soft
    contact shadow); it changes ``fg_bg`` only, never the mask or the depth.

    Each placement's ``harmonize`` and ``poisson`` blend the camel into the scene, and
    backgrounds rendered with a look (``backgrounds.looks``) give it to the camel
    (:mod:`~evacamel.world.looks`): colours only, on the camel's pixels only.

    Only each sprite's box (``placements[i]`` rounded, clipped to the image) is read and
    written; outside it every output equals the background exactly. The backgrounds are
    copied once into the outputs; the work per camel is proportional to its box.

    Args:
        out: optional :class:`Composite` whose ``fg_bg``, ``mask`` and ``depth`` (float32,
            the shapes above, on the backgrounds' device) are overwritten and returned,
            e.g. one kept by a writer that composes one sample at a time: this saves
            allocating (and page-faulting) ~20 MB per 1024 px sample.

    Returns:
        :class:`Composite` (``fg_bg``, binary ``mask``, ``depth`` in meters, ``visible_fraction``).
    """
    _check_mode(mode)
    _check_pairs(backgrounds, sprites)
    _check_pairs(backgrounds, placements, "placements")
    B, _, S, _ = backgrounds.rgb.shape
    device = backgrounds.rgb.device
    if out is None:
        rgb = backgrounds.rgb.clone()
        depth = backgrounds.depth.clone()
        mask = torch.zeros(B, 1, S, S, device=device, dtype=rgb.dtype)
    else:
        rgb, mask, depth = out.fg_bg, out.mask, out.depth
        for name, t, c in (("fg_bg", rgb, 3), ("mask", mask, 1), ("depth", depth, 1)):
            if t.shape != (B, c, S, S) or t.dtype != torch.float32 or t.device != device:
                raise ValueError(f"out.{name} must be float32 {(B, c, S, S)} on {device}, "
                                 f"got {t.dtype} {tuple(t.shape)} on {t.device}")
        rgb.copy_(backgrounds.rgb)
        depth.copy_(backgrounds.depth)
        mask.zero_()
    if mode == "perspective":
        for i, pl in enumerate(placements):
            if pl.distance_m is None:
                raise ValueError(f"placement {i} has no distance_m; perspective mode needs one")
    vis_frac = [0.0] * B
    for i, (sp, pl) in enumerate(zip(sprites, placements)):
        canvas = _Canvas(rgb[i], depth[i], mask[i], backgrounds.depth[i],
                         backgrounds.cameras[i] if mode == "perspective" else None,
                         None if backgrounds.looks is None else backgrounds.looks[i])
        vis_frac[i] = _paste_one(canvas, sp, pl, mode, shadow)
    return Composite(fg_bg=rgb, mask=mask, depth=depth,
                     visible_fraction=torch.tensor(vis_frac, dtype=torch.float32, device=device))
