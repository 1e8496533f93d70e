"""Solids standing on the terrain: rocks, scrub, posts, walls, buildings, monuments.

Every prop is exact geometry in the scene's camera, so its depth is exact:

* **convex cells**: the intersection of six half-spaces ``n . p <= d`` (unused planes are
  always true): posts, walls, building blocks, pyramids, obelisks;
* optionally cut by an **ellipsoid** (a centre, three semi-axes and a yaw): scrub
  bushes, and rocks (an ellipsoid chipped by a few planes, so it has flat faces).

A ray from the camera (at the origin of the camera frame) meets a convex polyhedron
where the last plane it enters is crossed before the first one it leaves; an ellipsoid
by a quadratic. To stay fast, a cheap bounding-sphere test picks the (scene, prop, pixel)
triples worth solving; only those are solved, and a scatter keeps the nearest hit per pixel.
Heights are world heights (the camera is at ``(0, cam_y, 0)``). The same tables give the
props' top surface for the sun's shadow maps, so props cast shadows on the ground.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["PROP_KINDS", "PropSpec", "Props", "PropHits", "pack_props", "intersect_props", "props_top_height",
           "box_planes", "pyramid_planes"]

PROP_KINDS = ("rock", "scrub", "wood", "mud", "plaster", "stone")
"""Materials of props (index = kind id): texture and roughness follow the kind."""

N_PLANES = 6
_FREE_PLANE = (0.0, 1.0, 0.0, 1e9)  # y <= 1e9: always true


@dataclass
class PropSpec:
    """One prop, drawn per scene (world meters, camera frame ``x`` right, ``z`` forward).

    ``shape`` is ``"ellipsoid"`` (``center``, ``radii``, ``yaw``, cut by ``planes`` if
    any) or ``"convex"`` (``planes``: up to six ``(nx, ny, nz, d)``, inside where
    ``n . p <= d``); ``center`` and ``radius`` bound it. ``color`` is linear RGB;
    ``kind`` one of :data:`PROP_KINDS`.
    """

    shape: str
    kind: str
    color: tuple[float, float, float]
    center: tuple[float, float, float]
    radius: float
    radii: tuple[float, float, float] = (0.0, 0.0, 0.0)
    yaw: float = 0.0
    planes: tuple[tuple[float, float, float, float], ...] = ()


def box_planes(center: tuple[float, float, float], half: tuple[float, float, float],
               yaw: float) -> tuple[tuple[float, float, float, float], ...]:
    """Six planes of a box: ``center`` of its base (m), half sizes ``(along, height/2, across)``, yaw (rad)."""
    cx, y0, cz = center
    hu, hh, hw = half
    eu = (math.cos(yaw), 0.0, math.sin(yaw))
    ew = (-math.sin(yaw), 0.0, math.cos(yaw))
    cy = y0 + hh
    planes = []
    for e, h in ((eu, hu), (ew, hw)):
        dc = e[0] * cx + e[2] * cz
        planes.append((e[0], 0.0, e[2], dc + h))
        planes.append((-e[0], 0.0, -e[2], -dc + h))
    planes.append((0.0, 1.0, 0.0, cy + hh))
    planes.append((0.0, -1.0, 0.0, -(cy - hh)))
    return tuple(planes)


def pyramid_planes(center: tuple[float, float, float], half_base: float, height: float, yaw: float,
                   top_fraction: float = 0.0) -> tuple[tuple[float, float, float, float], ...]:
    """A square pyramid on its base (``center`` of the base), cut flat at ``top_fraction`` of its height."""
    cx, y0, cz = center
    planes = []
    for k in range(4):
        a = yaw + k * math.pi / 2
        ex, ez = math.cos(a), math.sin(a)
        n = np.array([ex * height, half_base, ez * height])
        n = n / np.linalg.norm(n)
        px, pz = cx + ex * half_base, cz + ez * half_base
        planes.append((float(n[0]), float(n[1]), float(n[2]), float(n[0] * px + n[1] * y0 + n[2] * pz)))
    top = y0 + height * (top_fraction if top_fraction > 0 else 2.0)
    planes.append((0.0, 1.0, 0.0, top))
    planes.append((0.0, -1.0, 0.0, -y0 + 0.5))  # the base, sunk half a meter
    return tuple(planes)


@dataclass
class Props:
    """A batch's props as tensors (``B`` scenes, ``N`` props each, padded with inactive ones).

    ``spheres`` ``B x N x 4``: bounding sphere (centre, radius; radius 0 = inactive);
    ``ellipsoid`` ``B x N`` bool; ``radii`` ``B x N x 3`` and ``yaw`` ``B x N`` for ellipsoids;
    ``planes`` ``B x N x 6 x 4`` for convex props; ``color`` ``B x N x 3`` linear RGB;
    ``kind`` ``B x N`` long (index into :data:`PROP_KINDS`).
    """

    spheres: torch.Tensor
    ellipsoid: torch.Tensor
    radii: torch.Tensor
    yaw: torch.Tensor
    planes: torch.Tensor
    color: torch.Tensor
    kind: torch.Tensor

    @property
    def count(self) -> int:
        return self.spheres.shape[1]


def pack_props(per_scene: list[list[PropSpec]], device) -> Props:
    """Pad each scene's props to the batch's largest count and stack them."""
    B, N = len(per_scene), max(1, max(len(p) for p in per_scene))
    spheres = np.zeros((B, N, 4), np.float32)
    spheres[:, :, 1] = -1e6  # inactive: far below, radius 0
    ell = np.zeros((B, N), bool)
    radii = np.ones((B, N, 3), np.float32)
    yaw = np.zeros((B, N), np.float32)
    planes = np.tile(np.array(_FREE_PLANE, np.float32), (B, N, N_PLANES, 1))
    color = np.zeros((B, N, 3), np.float32)
    kind = np.zeros((B, N), np.int64)
    for b, props in enumerate(per_scene):
        for n, p in enumerate(props):
            spheres[b, n] = (*p.center, p.radius)
            ell[b, n] = p.shape == "ellipsoid"
            radii[b, n] = p.radii if ell[b, n] else (1.0, 1.0, 1.0)
            yaw[b, n] = p.yaw
            if p.planes:
                planes[b, n, :len(p.planes)] = p.planes
            color[b, n] = p.color
            kind[b, n] = PROP_KINDS.index(p.kind)
    t = lambda a: torch.from_numpy(a).to(device)  # noqa: E731
    return Props(t(spheres), t(ell), t(radii), t(yaw), t(planes), t(color), t(kind))


@dataclass
class PropHits:
    """The nearest prop on each pixel's ray (``B x P``; ``inf`` / ``-1`` where none)."""

    distance: torch.Tensor   # along the ray (m)
    normal: torch.Tensor     # B x 3 x P unit outward normals (0 where none)
    index: torch.Tensor      # which prop (long)


def _groups(P: int, device, k: int = 8) -> torch.Tensor:
    """``G x m`` indices grouping ``P`` points: ``k x k`` tiles of a square grid, else runs of ``k * k``.

    Groups at the grid's edge repeat their last index (duplicates are harmless: hits are
    reduced with min / max per point).
    """
    side = math.isqrt(P)
    if side * side == P and side >= k:
        t = torch.arange(0, side, k, device=device)
        local = torch.arange(k, device=device)
        rows = (t[:, None] + local[None, :]).clamp_max(side - 1)                 # tiles per side x k
        idx = rows[:, None, :, None] * side + rows[None, :, None, :]             # tile r, tile c, k, k
        return idx.reshape(-1, k * k)
    m = k * k
    return (torch.arange(0, P, m, device=device)[:, None] + torch.arange(m, device=device)[None, :]).clamp_max(P - 1)


def _expand(b: torch.Tensor, n: torch.Tensor, g: torch.Tensor, groups: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """(scene, prop, group) triples -> (scene, prop, point) triples of every point in each group."""
    m = groups.shape[1]
    return b.repeat_interleave(m), n.repeat_interleave(m), groups[g].reshape(-1)


def _candidates(props: Props, dirs: torch.Tensor, cam_y: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """(scene, prop, pixel) triples whose ray may meet the prop, and the sphere centres relative
    to the camera (``B x N x 3``).

    Tested per tile of pixels: the tile's cone of rays (its mean direction and the widest
    angle from it) against the prop's bounding sphere; every pixel of a tile that may be
    hit is a candidate.
    """
    B, _, P = dirs.shape
    c = props.spheres[..., :3] - torch.cat([torch.zeros_like(cam_y), cam_y, torch.zeros_like(cam_y)], 1)[:, None]
    r = props.spheres[..., 3]
    groups = _groups(P, dirs.device)
    tile = dirs[:, :, groups]                                                  # B x 3 x G x m
    axis = tile.mean(3)
    axis = axis / axis.norm(dim=1, keepdim=True).clamp_min(1e-12)
    spread = torch.acos((tile * axis[..., None]).sum(1).amin(2).clamp(-1, 1))  # B x G
    dist = c.norm(dim=-1).clamp_min(1e-6)                                      # B x N
    cos_a = (c[..., 0:1] * axis[:, None, 0] + c[..., 1:2] * axis[:, None, 1] + c[..., 2:3] * axis[:, None, 2]) \
        / dist[..., None]
    reach = torch.asin((r / dist).clamp(max=1.0))
    near = (torch.acos(cos_a.clamp(-1, 1)) <= spread[:, None] + reach[..., None] + 1e-4) | (dist <= r)[..., None]
    b, n, g = torch.nonzero(near & (r > 0)[..., None], as_tuple=True)
    b, n, p = _expand(b, n, g, groups)
    return b, n, p, c


def _hit_ellipsoids(props: Props, c: torch.Tensor, u: torch.Tensor, b: torch.Tensor,
                    n: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Entry and exit distances ``Q`` (``+inf, -inf``: missed) and entry normals ``Q x 3`` of
    rays ``u`` (``Q x 3``) on the ellipsoids of props ``(b, n)``."""
    cy, sy = torch.cos(props.yaw[b, n]), torch.sin(props.yaw[b, n])
    rad = props.radii[b, n]
    cen = c[b, n]

    def local(v):  # world -> ellipsoid frame, divided by the radii
        return torch.stack([v[:, 0] * cy + v[:, 2] * sy, v[:, 1], -v[:, 0] * sy + v[:, 2] * cy], 1) / rad

    a, q = local(u), local(cen)
    aa, ab, qq = (a * a).sum(1), (a * q).sum(1), (q * q).sum(1)
    disc = ab * ab - aa * (qq - 1)
    root = torch.sqrt(disc.clamp_min(0))
    hit = disc >= 0
    t_in = torch.where(hit, (ab - root) / aa, torch.full_like(ab, math.inf))
    t_out = torch.where(hit, (ab + root) / aa, torch.full_like(ab, -math.inf))
    g = (a * t_in.clamp(-1e7, 1e7)[:, None] - q) / rad  # gradient of the implicit function, ellipsoid frame
    nw = torch.stack([g[:, 0] * cy - g[:, 2] * sy, g[:, 1], g[:, 0] * sy + g[:, 2] * cy], 1)
    return t_in, t_out, nw / nw.norm(dim=1, keepdim=True).clamp_min(1e-12)


def _hit_planes(props: Props, cam_y: torch.Tensor, u: torch.Tensor, b: torch.Tensor,
                n: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Entry and exit distances ``Q`` and entry normals ``Q x 3`` of rays ``u`` in the planes of props ``(b, n)``."""
    pl = props.planes[b, n]                                   # Q x 6 x 4
    nrm, d = pl[..., :3], pl[..., 3] - pl[..., 1] * cam_y[b]   # camera at the origin
    den = (nrm * u[:, None]).sum(-1)
    t = d / torch.where(den.abs() < 1e-9, torch.full_like(den, 1e-9), den)
    entering, leaving = den < -1e-9, den > 1e-9
    parallel_ok = (den.abs() > 1e-9) | (d >= 0)
    t_in = torch.where(entering, t, torch.full_like(t, -math.inf)).max(1)
    t_out = torch.where(leaving, t, torch.full_like(t, math.inf)).amin(1)
    ok = parallel_ok.all(1)
    normal = torch.gather(nrm, 1, t_in.indices.view(-1, 1, 1).expand(-1, 1, 3))[:, 0]
    return (torch.where(ok, t_in.values, torch.full_like(t_out, math.inf)),
            torch.where(ok, t_out, torch.full_like(t_out, -math.inf)), normal)


def intersect_props(props: Props, dirs: torch.Tensor, cam_y: torch.Tensor) -> PropHits:
    """The nearest prop along every ray.

    Args:
        props: the batch's props.
        dirs: ``B x 3 x P`` unit ray directions (camera frame).
        cam_y: ``B x 1`` camera heights (world meters).
    """
    B, _, P = dirs.shape
    b, n, p, c = _candidates(props, dirs, cam_y)
    u = dirs.permute(0, 2, 1)[b, p]                            # Q x 3
    in_e, out_e, n_e = _hit_ellipsoids(props, c, u, b, n)
    in_p, out_p, n_p = _hit_planes(props, cam_y, u, b, n)
    is_e = props.ellipsoid[b, n]
    # a prop is its planes' convex cell, cut by its ellipsoid if it has one
    in_e = torch.where(is_e, in_e, torch.full_like(in_e, -math.inf))
    out_e = torch.where(is_e, out_e, torch.full_like(out_e, math.inf))
    t_in = torch.maximum(in_e, in_p)
    t = torch.where((t_in <= torch.minimum(out_e, out_p)) & (t_in > 0), t_in, torch.full_like(t_in, math.inf))
    nrm = torch.where((in_e >= in_p)[:, None], n_e, n_p)
    flat = b * P + p
    best = torch.full((B * P,), math.inf, device=dirs.device).scatter_reduce(0, flat, t, "amin")
    win = torch.isfinite(t) & (t == best[flat])
    q = torch.nonzero(win).flatten()
    # ties (rare): the lowest candidate number wins, the same on every device
    first = torch.full((B * P,), q.numel(), dtype=torch.long, device=dirs.device)
    first = first.scatter_reduce(0, flat[q], torch.arange(q.numel(), device=dirs.device), "amin")
    keep = q[first[flat[q]] == torch.arange(q.numel(), device=dirs.device)]
    index = torch.full((B * P,), -1, dtype=torch.long, device=dirs.device)
    index[flat[keep]] = n[keep]
    normal = torch.zeros(B * P, 3, device=dirs.device)
    normal[flat[keep]] = nrm[keep]
    return PropHits(distance=best.view(B, P), normal=normal.view(B, P, 3).permute(0, 2, 1),
                    index=index.view(B, P))


def props_top_height(props: Props, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """World height (m) of the props' top surface at points ``x, z`` (``B x Q``); ``-inf`` off the props.

    Points are tested in tiles (a square grid of points gives square tiles) against each
    prop's bounding circle, then solved exactly.
    """
    B, Q = x.shape
    groups = _groups(Q, x.device)
    tx, tz = x[:, groups], z[:, groups]                                          # B x G x m
    mx, mz = tx.mean(2), tz.mean(2)
    spread = torch.sqrt(((tx - mx[..., None]) ** 2 + (tz - mz[..., None]) ** 2).amax(2))
    cx, cz, r = props.spheres[..., 0:1], props.spheres[..., 2:3], props.spheres[..., 3:4]
    near = ((mx[:, None] - cx) ** 2 + (mz[:, None] - cz) ** 2 <= (r + spread[:, None]) ** 2) & (r > 0)
    b, n, g = torch.nonzero(near, as_tuple=True)
    b, n, q = _expand(b, n, g, groups)
    px, pz = x[b, q], z[b, q]
    # ellipsoids: the upper half at this point
    cy, sy = torch.cos(props.yaw[b, n]), torch.sin(props.yaw[b, n])
    rad, cen = props.radii[b, n], props.spheres[b, n, :3]
    lx = ((px - cen[:, 0]) * cy + (pz - cen[:, 2]) * sy) / rad[:, 0]
    lz = (-(px - cen[:, 0]) * sy + (pz - cen[:, 2]) * cy) / rad[:, 2]
    inside = 1 - lx * lx - lz * lz
    top_e = torch.where(inside > 0, cen[:, 1] + rad[:, 1] * torch.sqrt(inside.clamp_min(0)),
                        torch.full_like(px, -math.inf))
    # convex: the lowest upward plane over this point, if inside every vertical one
    pl = props.planes[b, n]
    ny = pl[..., 1]
    along = pl[..., 0] * px[:, None] + pl[..., 2] * pz[:, None]
    y_at = (pl[..., 3] - along) / torch.where(ny.abs() < 1e-6, torch.ones_like(ny), ny)
    inside_v = torch.where(ny.abs() < 1e-6, along <= pl[..., 3], torch.ones_like(ny, dtype=torch.bool)).all(1)
    top_c = torch.where(ny > 1e-6, y_at, torch.full_like(y_at, math.inf)).amin(1)
    top_c = torch.where(inside_v & torch.isfinite(top_c), top_c, torch.full_like(top_c, -math.inf))
    top = torch.where(props.ellipsoid[b, n], torch.minimum(top_e, top_c), top_c)
    out = torch.full((B * Q,), -math.inf, device=x.device)
    return out.scatter_reduce(0, b * Q + q, top, "amax").view(B, Q)
