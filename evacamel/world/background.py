"""Render seeded desert backgrounds with exact depth by batched heightfield ray casting.

How a picture is made (all steps are batched tensor operations, CPU or GPU):

1. Each seed draws a camera (height, pitch, field of view), a terrain
   (:mod:`evacamel.world.terrain`), a sky and sun (:mod:`evacamel.world.sky`) and a
   sand colour.
2. **Ray casting.** The camera has no roll, so every pixel's ray is described by its
   azimuth ``phi`` and its vertical slope ``sigma`` (rise per horizontal meter). The
   terrain is sampled along ``n_az`` vertical half-planes (azimuths spanning the image)
   at ``K`` log-spaced horizontal distances ``t_k`` (0.4 m .. 6 km): one height profile per
   azimuth. A ray of slope ``sigma`` first hits the terrain at the first sample whose
   elevation slope ``(h_k - h_cam) / t_k`` reaches ``sigma``; the running maximum of those
   slopes is sorted, so one ``searchsorted`` finds the hit of every pixel at once, and
   the exact crossing inside the segment follows by linear interpolation. The depth is
   the distance along the ray to that point (the sky and anything beyond
   :data:`~evacamel.depth_units.FAR_M` get ``FAR_M``).
3. **Shading.** Normals come from the profile gradients plus analytic sand ripples near
   the camera; sun light (Lambert) times a cast-shadow map (a sun-aligned height grid
   whose reverse running maximum tells which points see the sun), sky light, sand
   albedo varying with noise and height, then distance haze (aerial perspective), a
   filmic tone curve, vignetting and sensor grain.

With ``scene=SceneParams(...)`` the same steps render the wider world
(:mod:`evacamel.world.scene`): the terrain gains landforms, props
(:mod:`evacamel.world.props`) are intersected exactly and the nearer of terrain and prop
is shaded (ground materials: sand, gravel, rock, road); with ``look=LookParams(...)``
each image then gets its photographic look (:mod:`evacamel.world.looks`).
``scene=None, look=None`` is the classic world, unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from evacamel.depth_units import FAR_M
from evacamel.world.camera import Camera
from evacamel.world.looks import LookParams, apply_looks, draw_looks
from evacamel.world.noise import fbm, value_noise
from evacamel.world.props import PropHits, Props, intersect_props, pack_props, props_top_height
from evacamel.world.scene import (GroundLook, SceneDraw, SceneParams, draw_scenes, ground_albedo, ground_looks,
                                  place_props, wide_sky, wide_terrain)
from evacamel.world.sky import SkyParams, sample_sky_params, sky_color, srgb_to_linear
from evacamel.world.rng import scene_rng
from evacamel.world.terrain import TerrainParams, sample_terrain_params, terrain_height

__all__ = ["Backgrounds", "render_backgrounds", "sample_camera", "SAND_PALETTES"]

T_NEAR_M = 0.4
T_FAR_M = 6000.0

# sRGB albedos of sands seen in photographs: pale gypsum/quartz to red iron-rich dunes
SAND_PALETTES: dict[str, tuple[float, float, float]] = {
    "white": (0.93, 0.90, 0.84),
    "pale": (0.90, 0.80, 0.64),
    "beige": (0.84, 0.72, 0.55),
    "golden": (0.88, 0.68, 0.42),
    "ochre": (0.85, 0.58, 0.33),
    "orange": (0.86, 0.50, 0.27),
    "red": (0.74, 0.38, 0.22),
    "grey": (0.70, 0.65, 0.58),
}


@dataclass
class Backgrounds:
    """A batch of rendered backgrounds.

    Attributes:
        rgb: ``B x 3 x S x S`` float32 in [0, 1].
        depth: ``B x 1 x S x S`` float32 meters along each pixel's ray; sky and beyond
            ``FAR_M`` are ``FAR_M``.
        cameras: the camera of each image.
        seeds: the seed of each image.
        scenes: what each scene of the wider world drew (``None``: classic dunes).
        looks: each image's photographic look (``None``: none applied).
    """

    rgb: torch.Tensor
    depth: torch.Tensor
    cameras: list[Camera]
    seeds: list[int]
    scenes: list[SceneDraw] | None = None
    looks: list | None = None

    def __len__(self) -> int:
        return self.rgb.shape[0]

    def __getitem__(self, idx) -> "Backgrounds":
        """A sub-batch: ``bgs[i]`` (kept as a batch of one) or ``bgs[a:b]`` or a list of indices."""
        if isinstance(idx, int):
            idx = [idx]
        if isinstance(idx, slice):
            idx = list(range(len(self)))[idx]
        idx = list(idx)
        pick = lambda v: None if v is None else [v[i] for i in idx]  # noqa: E731
        return Backgrounds(self.rgb[idx], self.depth[idx], [self.cameras[i] for i in idx],
                           [self.seeds[i] for i in idx], pick(self.scenes), pick(self.looks))


def sample_camera(seed: int, size: int) -> Camera:
    """The camera of scene ``seed`` at ``size`` pixels (the same scene at any size)."""
    r = scene_rng(seed, 0)
    height = float(np.exp(r.uniform(np.log(1.6), np.log(8.0))))
    pitch = math.radians(r.uniform(0.5, 7.5))
    hfov = math.radians(r.uniform(48, 72))
    return Camera(height_m=height, pitch_rad=pitch, focal_px=size / 2 / math.tan(hfov / 2), size=size)


class _SandColors(NamedTuple):
    """Per-scene sand: linear albedos ``B x 3 x 1`` and texture strength ``B x 1 x 1``."""

    main: torch.Tensor      # on crests and slopes
    trough: torch.Tensor    # in the hollows between dunes
    texture: torch.Tensor   # how strongly albedo patches show


def _sand_colors(seeds: Sequence[int], device) -> _SandColors:
    """Each scene's sand colours, drawn from :data:`SAND_PALETTES` (deterministic per seed)."""
    names = list(SAND_PALETTES)
    main, trough, tex = [], [], []
    for s in seeds:
        r = scene_rng(s, 4)
        w = np.array([0.5, 1, 1.2, 1.5, 1.2, 1, 0.8, 0.5])
        a, b = r.choice(len(names), 2, replace=False, p=w / w.sum())
        m = r.uniform(0, 1)
        c = (1 - m) * np.array(SAND_PALETTES[names[a]]) + m * np.array(SAND_PALETTES[names[b]])
        c = np.clip(c * r.uniform(0.9, 1.05) + r.normal(0, 0.015, 3), 0.05, 1)
        t = np.clip(c * np.array([r.uniform(0.8, 1.0), r.uniform(0.72, 0.95), r.uniform(0.65, 0.95)]), 0.03, 1)
        main.append(srgb_to_linear(c))
        trough.append(srgb_to_linear(t))
        tex.append(r.uniform(0.5, 1.0))
    as_t = lambda v: torch.tensor(np.asarray(v), dtype=torch.float32, device=device)  # noqa: E731
    return _SandColors(as_t(main).view(-1, 3, 1), as_t(trough).view(-1, 3, 1), as_t(tex).view(-1, 1, 1))


def _gather_rows(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``x``: ``B x C x N``, ``idx``: ``B x P`` -> ``B x C x P``."""
    return torch.gather(x, 2, idx[:, None, :].expand(-1, x.shape[1], -1))


class _ShadowFrame(NamedTuple):
    """Where a sun-aligned shadow grid lies on the ground."""

    sun_x: torch.Tensor     # ``B x 1 x 1`` horizontal unit vector towards the sun (x, z)
    sun_z: torch.Tensor
    center_z: float         # the grid's centre, straight ahead of the camera (m)
    half: float             # half its side (m)


def _shadow_map(tp: TerrainParams, sky: SkyParams, n: int, half: float, center_z: float,
                device, props: Props | None = None) -> tuple[torch.Tensor, _ShadowFrame]:
    """Sun visibility on a sun-aligned grid: ``B x 1 x n x n`` in [0, 1], plus the grid frame.

    With ``props``, the ground's height is raised to their tops: they cast shadows too.
    """
    B = tp.wavelength.shape[0]
    sd = sky.sun_dir[:, :, 0]
    horiz = torch.sqrt(sd[:, 0] ** 2 + sd[:, 2] ** 2).clamp_min(1e-6)
    ax, az = (sd[:, 0] / horiz).view(B, 1, 1), (sd[:, 2] / horiz).view(B, 1, 1)  # towards the sun
    tan_e = (sd[:, 1] / horiz).view(B, 1, 1)
    coords = torch.linspace(-half, half, n, device=device)
    beta, alpha = torch.meshgrid(coords, coords, indexing="ij")  # rows: across, cols: towards the sun
    alpha, beta = alpha[None], beta[None]
    x = alpha * ax + beta * az
    z = center_z + alpha * az - beta * ax
    h = terrain_height(tp, x.reshape(B, -1), z.reshape(B, -1)).view(B, n, n)
    if props is not None:
        h = torch.maximum(h, props_top_height(props, x.reshape(B, -1), z.reshape(B, -1)).view(B, n, n))
    g = h - alpha * tan_e
    rev = torch.flip(torch.cummax(torch.flip(g, [2]), 2).values, [2])
    ahead = torch.cat([rev[:, :, 1:], torch.full_like(rev[:, :, :1], -1e9)], 2)
    cell = 2 * half / (n - 1)
    occ = ahead - g - 0.15 * cell * tan_e
    pen = 0.3 + cell * tan_e
    lit = 1 - (occ / pen).clamp(0, 1)
    return lit[:, None], _ShadowFrame(ax, az, center_z, half)


def _sample_shadow(lit: torch.Tensor, frame: _ShadowFrame, hx: torch.Tensor, hz: torch.Tensor) -> torch.Tensor:
    """Sun visibility ``B x P`` at ground points ``hx, hz`` (``B x P``); 1 outside the grid."""
    ax, az = frame.sun_x[:, :, 0], frame.sun_z[:, :, 0]
    rx, rz = hx, hz - frame.center_z
    alpha = rx * ax + rz * az
    beta = rx * az - rz * ax
    grid = torch.stack([alpha / frame.half, beta / frame.half], -1)[:, None]  # B x 1 x P x 2
    s = F.grid_sample(lit - 1, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    return s[:, 0, 0] + 1


def _unit(d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``B x 3 x P`` -> (unit vectors, norms ``B x P``); written out (faster than ``norm`` on CPU)."""
    n = torch.sqrt(d[:, 0] * d[:, 0] + d[:, 1] * d[:, 1] + d[:, 2] * d[:, 2])
    return d / n[:, None], n


def _terrain_features(tp: TerrainParams, px: torch.Tensor, pz: torch.Tensor) -> torch.Tensor:
    """Per-point sand features for shading: ``B x 3 x P`` (albedo patches, ripple warp, ripple strength)."""
    wx = px + tp.offset_x
    wz = pz + tp.offset_z
    patch = fbm(tp.table_b, wx / 23.0 + 7.0, wz / 23.0, octaves=3)
    ra = wx * tp.wind_cos + wz * tp.wind_sin
    rb = wz * tp.wind_cos - wx * tp.wind_sin
    warp = value_noise(tp.table_b, rb / 1.7, ra / 3.1) * 0.6 + value_noise(tp.table_a, ra / 0.7, rb / 0.9) * 0.08
    rip = 0.5 + 0.5 * value_noise(tp.table_a, wx / 9.0 + 3.0, wz / 9.0)
    return torch.stack([patch, warp, rip], 1)


# -- the steps of one rendered batch ----------------------------------------------------
class _Rays(NamedTuple):
    """Every pixel's ray, pixels flattened (``P = S * S``)."""

    unit: torch.Tensor          # B x 3 x P unit directions (x, y, z)
    slope: torch.Tensor         # B x P rise per horizontal meter (sigma)
    azimuth: torch.Tensor       # B x P radians, 0 = forward (phi)
    length_per_h: torch.Tensor  # B x P ray length per horizontal meter


def _pixel_rays(cams: list[Camera], device) -> _Rays:
    """The rays of each camera's pixels."""
    B, P = len(cams), cams[0].size ** 2
    d = torch.stack([c.ray_directions(device) for c in cams]).view(B, 3, P)
    dn, dnorm = _unit(d)
    hl = torch.sqrt(d[:, 0] ** 2 + d[:, 2] ** 2)
    return _Rays(unit=dn, slope=d[:, 1] / hl, azimuth=torch.atan2(d[:, 0], d[:, 2]), length_per_h=dnorm / hl)


class _Profiles(NamedTuple):
    """The terrain along ``n_az`` vertical half-planes (azimuths) at ``K`` distances.

    ``values`` channels: height relative to the camera (m), its slope along the distance,
    its slope across the azimuth, height relative to the local mean (m), then the
    :func:`_terrain_features` (albedo patches, ripple warp, ripple strength).
    """

    values: torch.Tensor        # B x 7 x n_az x K
    running_slope: torch.Tensor  # B x n_az x K: running max of (height / distance) along each profile
    t: torch.Tensor             # K horizontal distances (m), log-spaced
    az_min: torch.Tensor        # B x 1: azimuth of profile 0
    az_step: torch.Tensor       # B x 1: azimuth between profiles


def _profile_gradients(Hc: torch.Tensor, t: torch.Tensor, az_step: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Height slopes of the coarse profiles ``B x n_c x K``: along the distance and across azimuths."""
    dt = torch.empty_like(Hc)
    dt[:, :, 1:-1] = (Hc[:, :, 2:] - Hc[:, :, :-2]) / (t[2:] - t[:-2])
    dt[:, :, 0] = dt[:, :, 1]
    dt[:, :, -1] = dt[:, :, -2]
    dp = torch.empty_like(Hc)
    dp[:, 1:-1] = (Hc[:, 2:] - Hc[:, :-2]) / (2 * az_step[:, :, None] * t)
    dp[:, 0] = dp[:, 1]
    dp[:, -1] = dp[:, -2]
    return dt, dp


def _terrain_profiles(tp: TerrainParams, rays: _Rays, cam_y: torch.Tensor, size: int, device) -> _Profiles:
    """Terrain profiles, evaluated on ``n_c`` azimuths and interpolated to ``n_az``."""
    B = cam_y.shape[0]
    n_az = int(1.5 * size) + 2
    n_c = max(48, size // 3) + 2
    K = int(min(1024, max(224, 0.75 * size)))
    pmin = rays.azimuth.amin(1, keepdim=True) - 1e-4
    pmax = rays.azimuth.amax(1, keepdim=True) + 1e-4
    az_c = pmin + (pmax - pmin) * torch.linspace(0, 1, n_c, device=device)   # B x n_c
    t = T_NEAR_M * (T_FAR_M / T_NEAR_M) ** torch.linspace(0, 1, K, device=device)  # K
    px = (torch.sin(az_c)[:, :, None] * t).reshape(B, -1)
    pz = (torch.cos(az_c)[:, :, None] * t).reshape(B, -1)
    Hc = (terrain_height(tp, px, pz) - cam_y).view(B, n_c, K)               # relative to camera
    feats_c = _terrain_features(tp, px, pz).view(B, -1, n_c, K)
    dt, dp = _profile_gradients(Hc, t, (pmax - pmin) / (n_c - 1))
    rel = Hc - F.avg_pool1d(Hc.reshape(B * n_c, 1, K), 15, 1, 7, count_include_pad=False).view(B, n_c, K)
    allc = torch.cat([Hc[:, None], dt[:, None], dp[:, None], rel[:, None], feats_c], 1)  # B x C x n_c x K
    allf = F.interpolate(allc, size=(n_az, K), mode="bilinear", align_corners=True)  # B x C x n_az x K
    run = torch.cummax(allf[:, 0] / t, dim=2).values
    return _Profiles(values=allf, running_slope=run, t=t, az_min=pmin, az_step=(pmax - pmin) / (n_az - 1))


class _Hits(NamedTuple):
    """Where each pixel's ray first meets the terrain (``B x P`` unless noted)."""

    profile: torch.Tensor      # index of the pixel's azimuth profile (j)
    is_sky: torch.Tensor       # bool: the ray never meets the terrain
    horizontal: torch.Tensor   # horizontal distance to the hit (m)
    distance: torch.Tensor     # distance along the ray (m)
    depth: torch.Tensor        # distance, sky and beyond FAR_M set to FAR_M
    values: torch.Tensor       # B x 7 x P: the profile channels at the hit


def _first_hits(prof: _Profiles, rays: _Rays) -> _Hits:
    """One ``searchsorted`` finds every pixel's first hit; linear interpolation inside the segment."""
    B, C, n_az, K = prof.values.shape
    t, sigma = prof.t, rays.slope
    j = ((rays.azimuth - prof.az_min) / prof.az_step).round().long().clamp(0, n_az - 1)  # B x P
    big = 4096.0
    offs = torch.arange(n_az, device=t.device, dtype=torch.float64)[None, :, None] * big
    seq = (prof.running_slope.double().clamp(-1000, 1000) + offs).view(B, -1)
    k = torch.searchsorted(seq, sigma.double() + j.double() * big) - j * K        # B x P in [0, K]
    is_sky = k >= K
    k1 = k.clamp(1, K - 1)
    k0 = k1 - 1
    flat = prof.values.view(B, C, -1)
    f0 = _gather_rows(flat, j * K + k0)
    f1 = _gather_rows(flat, j * K + k1)
    t0, t1 = t[k0], t[k1]
    g0 = f0[:, 0] - sigma * t0
    g1 = f1[:, 0] - sigma * t1
    w = (g0 / (g0 - g1).clamp_max(-1e-9)).clamp(0, 1)  # g0 < 0 <= g1
    w = torch.where(k == 0, torch.zeros_like(w), w)
    th = t0 + w * (t1 - t0)                                                    # horizontal hit distance
    dist = th * rays.length_per_h
    depth = torch.where(is_sky, torch.full_like(dist, FAR_M), dist.clamp_max(FAR_M))
    return _Hits(profile=j, is_sky=is_sky, horizontal=th, distance=dist, depth=depth,
                 values=f0 + (f1 - f0) * w[:, None])


def _ground_normals(tp: TerrainParams, rays: _Rays, hits: _Hits, focal_px: float | torch.Tensor,
                    ripples: torch.Tensor | None = None) -> torch.Tensor:
    """Unit normals ``B x 3 x P``: profile gradients plus sand ripples (faded where a pixel spans several).

    ``ripples`` (``B x 1``) scales the ripples per scene (default: full ripples everywhere).
    """
    gt, gp, relh, rwarp, ripmod = (hits.values[:, i] for i in (1, 2, 3, 5, 6))
    th, phi, sigma = hits.horizontal, rays.azimuth, rays.slope
    sp, cp = torch.sin(phi), torch.cos(phi)
    hgx = gt * sp + gp * cp
    hgz = gt * cp - gp * sp
    hx = th * sp
    hz = th * cp
    ra = (hx + tp.offset_x) * tp.wind_cos + (hz + tp.offset_z) * tp.wind_sin
    lam_r = 0.11
    rphase = (ra + rwarp) / lam_r
    rs = rphase - torch.floor(rphase)
    deriv = torch.where(rs < 0.72, torch.full_like(rs, 1 / 0.72), torch.full_like(rs, -1 / 0.28))
    fp_ground = hits.distance / focal_px / ((-sigma).clamp_min(0) + 0.04)
    ramp = (1 - fp_ground / (lam_r * 0.6)).clamp(0, 1) * ripmod * (1 - (relh.abs() / 4).clamp(0, 1) * 0.6)
    if ripples is not None:
        ramp = ramp * ripples
    r_amp = 0.005 / lam_r * ramp * deriv
    hgx = hgx + r_amp * tp.wind_cos
    hgz = hgz + r_amp * tp.wind_sin
    n, _ = _unit(torch.stack([-hgx, torch.ones_like(hgx), -hgz], 1))
    return n


def _sun_visibility(tp: TerrainParams, sky: SkyParams, th: torch.Tensor, hx: torch.Tensor, hz: torch.Tensor,
                    size: int, device, props: Props | None = None) -> torch.Tensor:
    """Cast shadows ``B x 1 x P`` in [0, 1] at surface points ``hx, hz`` (``th`` their horizontal
    distance): a fine map near the camera, a coarse one to 1.2 km.

    Far shadows cover few pixels each: a coarser far map costs little in the image.
    """
    lit_far, frame_far = _shadow_map(tp, sky, max(96, min(320, size // 3)), 700.0, 500.0, device, props)
    lit_near, frame_near = _shadow_map(tp, sky, max(128, min(384, 3 * size // 8)), 110.0, 90.0, device, props)
    sh_far = _sample_shadow(lit_far, frame_far, hx, hz)
    sh_near = _sample_shadow(lit_near, frame_near, hx, hz)
    blend = ((th - 60.0) / 40.0).clamp(0, 1)
    return (sh_near + (sh_far - sh_near) * blend)[:, None]


def _sand_albedo(tp: TerrainParams, sand: _SandColors, hits: _Hits) -> torch.Tensor:
    """Linear albedo ``B x 3 x P`` of the sand: troughs darker, patches."""
    relh, patch = hits.values[:, 3], hits.values[:, 4]
    tr = (-relh / (0.5 + 0.06 * tp.wavelength)).clamp(0, 1)[:, None]
    alb = sand.main + (sand.trough - sand.main) * tr * 0.8
    return alb * (1 + 0.10 * sand.texture * patch[:, None])


def _sunlit(alb: torch.Tensor, sky: SkyParams, normals: torch.Tensor, shadow: torch.Tensor) -> torch.Tensor:
    """Linear radiance ``B x 3 x P`` of a surface of albedo ``alb`` under the sun (with shadows) and the sky."""
    ndl = (normals * sky.sun_dir).sum(1, keepdim=True).clamp_min(0)
    ambient = sky.zenith * 0.40 + sky.horizon * 0.16
    return alb * (sky.sun_color * ndl * shadow * 0.42 + ambient * (0.5 + 0.5 * normals[:, 1:2]))


def _add_haze(col: torch.Tensor, sky: SkyParams, hits: _Hits, prof: _Profiles) -> torch.Tensor:
    """Aerial perspective: the colour fades to the horizon sky's with distance.

    The haze colour depends on the azimuth only: evaluated on the profile azimuths, gathered.
    """
    fog = 1 - torch.exp(-hits.distance[:, None] / sky.haze_m[:, :, None])
    n_az = prof.values.shape[2]
    az_f = prof.az_min + prof.az_step * torch.arange(n_az, device=col.device, dtype=torch.float32)
    horiz_dir = torch.stack([torch.sin(az_f), torch.zeros_like(az_f), torch.cos(az_f)], 1)
    haze_col = _gather_rows(sky_color(sky, horiz_dir, clouds=False), hits.profile)
    return col + (haze_col - col) * fog


def _paint_sky(col: torch.Tensor, sky: SkyParams, rays: _Rays, is_sky: torch.Tensor, size: int) -> None:
    """Write the sky into ``col`` (``B x 3 x P``, in place) where ``is_sky``.

    Clouds are smooth: the sky is rendered at half resolution, only down to the lowest sky row.
    """
    B, S = col.shape[0], size
    h2 = max(8, S // 2)
    rows2 = h2
    sky_rows = torch.nonzero(is_sky.view(B, S, S).any(2).any(0)).flatten()
    if S % 2 == 0 and h2 == S // 2:
        last = int(sky_rows[-1]) if sky_rows.numel() else -1
        rows2 = min(h2, (last + 1 + 1) // 2 + 2)  # 2 half-res rows of margin: rows <= last exact
    if rows2 > 0 and sky_rows.numel():
        src_rows = S if rows2 == h2 else 2 * rows2
        d2 = F.interpolate(rays.unit.view(B, 3, S, S)[:, :, :src_rows], size=(rows2, h2), mode="bilinear",
                           align_corners=False)
        d2, _ = _unit(d2.reshape(B, 3, -1))
        skyc = sky_color(sky, d2).view(B, 3, rows2, h2)
        skyc = F.interpolate(skyc, size=(src_rows, S), mode="bilinear", align_corners=False)
        top = col.view(B, 3, S, S)[:, :, :src_rows]
        top.copy_(torch.where(is_sky.view(B, 1, S, S)[:, :, :src_rows], skyc, top))


def _develop(col: torch.Tensor, seeds: list[int], size: int) -> torch.Tensor:
    """The camera: radiance ``B x 3 x P`` -> image ``B x 3 x S x S`` in [0, 1] (tone curve, vignetting, grain)."""
    B, S, device = col.shape[0], size, col.device
    img = _tone(col)
    u = (torch.arange(S, device=device, dtype=torch.float32) + 0.5) / S - 0.5
    r2 = (u[None, :] ** 2 + u[:, None] ** 2).view(1, 1, S * S)
    img = img * (1 - 0.3 * r2)
    img = img.view(B, 3, S, S)
    grains = []
    for s in seeds:
        g = torch.Generator().manual_seed(int(s) * 7 + 3)
        grains.append(torch.randn(1, S, S, generator=g))
    img = img + 0.01 * torch.stack(grains).to(device)
    return img.clamp(0, 1).contiguous()


def _render_chunk(seeds: list[int], size: int, device) -> Backgrounds:
    """Render a batch of scenes (see the module doc for the steps)."""
    B, S = len(seeds), size
    cams = [sample_camera(s, S) for s in seeds]
    tp = sample_terrain_params(seeds, device)
    sky = sample_sky_params(seeds, device)
    rays = _pixel_rays(cams, device)
    # the camera stands on the terrain
    zero = torch.zeros(B, 1, device=device)
    cam_y = terrain_height(tp, zero, zero) + torch.tensor([c.height_m for c in cams], device=device).view(B, 1)
    prof = _terrain_profiles(tp, rays, cam_y, S, device)
    hits = _first_hits(prof, rays)
    normals = _ground_normals(tp, rays, hits, cams[0].focal_px)
    th = hits.horizontal
    shadow = _sun_visibility(tp, sky, th, th * torch.sin(rays.azimuth), th * torch.cos(rays.azimuth), S, device)
    col = _sunlit(_sand_albedo(tp, _sand_colors(seeds, device), hits), sky, normals, shadow)
    col = _add_haze(col, sky, hits, prof)
    _paint_sky(col, sky, rays, hits.is_sky, S)
    return Backgrounds(rgb=_develop(col, seeds, S), depth=hits.depth.view(B, 1, S, S).contiguous(),
                       cameras=cams, seeds=[int(s) for s in seeds])


# -- the wider world (scene kinds, landforms, props, skies) -------------------------------
class _Surface(NamedTuple):
    """What each pixel sees first: the terrain or a prop (``B x P`` unless noted)."""

    on_prop: torch.Tensor      # bool
    is_sky: torch.Tensor       # bool: neither terrain nor prop
    distance: torch.Tensor     # along the ray (m)
    depth: torch.Tensor        # distance, sky and beyond FAR_M set to FAR_M
    horizontal: torch.Tensor   # horizontal distance (m)
    x: torch.Tensor            # surface point, camera frame (m)
    z: torch.Tensor
    height: torch.Tensor       # world height (m)
    footprint: torch.Tensor    # meters per pixel on the surface (for fading fine detail)


def _visible_surface(hits: _Hits, ph: PropHits, rays: _Rays, cam_y: torch.Tensor,
                     focal_px: torch.Tensor) -> _Surface:
    """Merge the terrain's first hits with the props' (the nearer wins)."""
    ground = torch.where(hits.is_sky, torch.full_like(hits.distance, math.inf), hits.distance)
    on_prop = ph.distance < ground
    dist = torch.where(on_prop, ph.distance, hits.distance)
    depth = torch.where(on_prop, ph.distance.clamp_max(FAR_M), hits.depth)
    th = torch.where(on_prop, ph.distance / rays.length_per_h, hits.horizontal)
    hx, hz = th * torch.sin(rays.azimuth), th * torch.cos(rays.azimuth)
    height = torch.where(on_prop, cam_y + ph.distance.clamp_max(1e7) * rays.unit[:, 1], hits.values[:, 0] + cam_y)
    grazing = torch.where(on_prop, torch.ones_like(dist), (-rays.slope).clamp_min(0) + 0.04)
    return _Surface(on_prop=on_prop, is_sky=hits.is_sky & ~on_prop, distance=dist, depth=depth, horizontal=th,
                    x=hx, z=hz, height=height, footprint=dist.clamp_max(FAR_M) / focal_px / grazing)


_PROP_TEXTURE = torch.tensor([  # per kind: fine texture, coarse patches, base brightness
    [0.30, 0.25, 1.00],   # rock
    [0.60, 0.30, 0.75],   # scrub
    [0.25, 0.10, 1.00],   # wood
    [0.12, 0.12, 1.00],   # mud brick
    [0.05, 0.06, 1.00],   # plaster
    [0.10, 0.10, 1.00],   # stone
])


def _prop_noise(table: torch.Tensor, surf: _Surface) -> torch.Tensor:
    """``B x 3 x P`` noise on the props' pixels (0 elsewhere): fine texture, coarse patches, bump.

    Computed only on the first ``M`` columns of a per-scene reordering that puts prop pixels
    first (``M``: the most prop pixels of any scene), not on the whole image.
    """
    B, P = surf.on_prop.shape
    m = int(surf.on_prop.sum(1).max())
    out = torch.zeros(B, 3, P, device=surf.x.device)
    if m == 0:
        return out
    cols = torch.argsort((~surf.on_prop).to(torch.int8), dim=1, stable=True)[:, :m]
    x, z, h, fp = (torch.gather(v, 1, cols) for v in (surf.x, surf.z, surf.height, surf.footprint))
    # two planar noises add up to a texture with no stripes on round surfaces
    fine = 0.6 * (fbm(table, x / 0.12, h / 0.12, octaves=2) + fbm(table, z / 0.12 + 31.0, h / 0.12 + 17.0, octaves=2))
    coarse = 0.6 * (fbm(table, x / 1.3 + 71.0, h / 1.3, octaves=2) + fbm(table, z / 1.3 - 5.0, h / 1.3 + 9.0, octaves=2))
    bump = value_noise(table, x / 0.25 + h / 0.25, z / 0.25) * (1 - fp / 0.1).clamp(0, 1)
    vals = torch.stack([fine * (1 - fp / 0.08).clamp(0, 1), coarse, bump], 1)
    return out.scatter_(2, cols[:, None].expand(-1, 3, -1), vals) * surf.on_prop[:, None]


def _prop_albedo(props: Props, ph: PropHits, noise: torch.Tensor) -> torch.Tensor:
    """Linear albedo ``B x 3 x P`` of the props at their hit points (0 elsewhere)."""
    idx = ph.index.clamp_min(0)
    color = torch.gather(props.color, 1, idx[:, :, None].expand(-1, -1, 3)).permute(0, 2, 1)
    kind = torch.gather(props.kind, 1, idx)
    tex = _PROP_TEXTURE.to(color.device)[kind]                       # B x P x 3
    shade = tex[..., 2] * (1 + tex[..., 0] * noise[:, 0] + tex[..., 1] * noise[:, 1])
    return color * (shade * (ph.index >= 0))[:, None]


def _wide_normals(tp: TerrainParams, rays: _Rays, hits: _Hits, ph: PropHits, surf: _Surface, focal_px: torch.Tensor,
                  ripples: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Unit normals ``B x 3 x P`` of the visible surface (props bumped a little by noise)."""
    ground = _ground_normals(tp, rays, hits, focal_px, ripples)
    bump = noise[:, 2]
    tilt = torch.stack([bump, torch.zeros_like(bump), -bump], 1) * 0.25
    prop, _ = _unit(ph.normal + tilt)
    return torch.where(surf.on_prop[:, None], prop, ground)


def _wide_albedo(tp: TerrainParams, sand: _SandColors, gl: GroundLook, hits: _Hits, props: Props, ph: PropHits,
                 surf: _Surface, normals: torch.Tensor, noise: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
    """Linear albedo ``B x 3 x P``: ground materials (sand, gravel, rock, road) or the props'."""
    ground = ground_albedo(_sand_albedo(tp, sand, hits), gl, tp, surf.x, surf.z, surf.height, normals,
                           surf.footprint, base)
    return torch.where(surf.on_prop[:, None], _prop_albedo(props, ph, noise), ground)


class _WideScene(NamedTuple):
    """A batch's drawn wider world."""

    draws: list[SceneDraw]
    terrain: TerrainParams
    sky: SkyParams
    sand: _SandColors
    ground: GroundLook
    props: Props


def _draw_wide(seeds: list[int], cams: list[Camera], params: SceneParams, device) -> _WideScene:
    """Draw each scene's wider world: ground, landforms, sky, materials, props on the terrain."""
    hfovs = [2 * math.atan(c.size / 2 / c.focal_px) for c in cams]
    draws = draw_scenes(seeds, params, hfovs)
    tp = wide_terrain(sample_terrain_params(seeds, device), draws, seeds, device)
    sky = wide_sky(sample_sky_params(seeds, device), draws, seeds)
    sand = _sand_colors(seeds, device)
    sand_srgb = sand.main[:, :, 0].cpu().double().numpy() ** (1 / 2.2)

    def ground_height(xs, zs):
        x = torch.tensor(xs, dtype=torch.float32, device=device)
        return terrain_height(tp, x, torch.tensor(zs, dtype=torch.float32, device=device)).cpu().tolist()

    place_props(draws, seeds, params, hfovs, ground_height, sand_srgb)
    return _WideScene(draws, tp, sky, sand, ground_looks(draws, seeds, sand_srgb, device),
                      pack_props([d.props for d in draws], device))


def _render_wide_chunk(seeds: list[int], size: int, device, params: SceneParams) -> Backgrounds:
    """Render a batch of the wider world's scenes (the classic steps, with props and materials)."""
    B, S = len(seeds), size
    cams = [sample_camera(s, S) for s in seeds]
    w = _draw_wide(seeds, cams, params, device)
    rays = _pixel_rays(cams, device)
    zero = torch.zeros(B, 1, device=device)
    base = terrain_height(w.terrain, zero, zero)
    cam_y = base + torch.tensor([c.height_m for c in cams], device=device).view(B, 1)
    prof = _terrain_profiles(w.terrain, rays, cam_y, S, device)
    hits = _first_hits(prof, rays)
    ph = intersect_props(w.props, rays.unit, cam_y)
    focal = torch.tensor([c.focal_px for c in cams], device=device).view(B, 1)  # each scene's own
    surf = _visible_surface(hits, ph, rays, cam_y, focal)
    ripples = torch.tensor([[1.0 if d.ground in ("dunes", "sand") else 0.0] for d in w.draws], device=device)
    noise = _prop_noise(w.terrain.wide.table, surf)
    normals = _wide_normals(w.terrain, rays, hits, ph, surf, focal, ripples, noise)
    shadow = _sun_visibility(w.terrain, w.sky, surf.horizontal, surf.x, surf.z, S, device, w.props)
    alb = _wide_albedo(w.terrain, w.sand, w.ground, hits, w.props, ph, surf, normals, noise, base)
    col = _sunlit(alb, w.sky, normals, shadow)
    # high ground (mountains, mesa tops) stands above most of the dust: less haze
    thin = torch.exp(-(surf.height - cam_y).clamp(0, 5000) / 350.0)
    col = _add_haze(col, w.sky, hits._replace(distance=surf.distance * thin), prof)
    _paint_sky(col, w.sky, rays, surf.is_sky, S)
    return Backgrounds(rgb=_develop(col, seeds, S), depth=surf.depth.view(B, 1, S, S).contiguous(),
                       cameras=cams, seeds=[int(s) for s in seeds], scenes=w.draws)


def _tone(col: torch.Tensor) -> torch.Tensor:
    """Linear radiance -> display [0, 1]: a filmic curve (toe and shoulder), then sRGB gamma."""
    x = (col * 1.25).clamp_min_(0)
    num = x * 2.51
    num.add_(0.03).mul_(x)
    den = x * 2.43
    den.add_(0.59).mul_(x).add_(0.14)
    return num.div_(den).clamp_(0, 1).pow_(1 / 2.2)  # ACES fit (Narkowicz), then gamma


def _render_part(seeds: list[int], size: int, device, scene: SceneParams | None,
                 look: LookParams | None) -> Backgrounds:
    """One batch: the classic or the wider world, then each image's photographic look."""
    part = _render_chunk(seeds, size, device) if scene is None else _render_wide_chunk(seeds, size, device, scene)
    if look is not None:
        part.looks = draw_looks(seeds, look)
        part.rgb = apply_looks(part.rgb, part.looks)
    return part


def render_backgrounds(seeds: Sequence[int], size: int, *, device=None, batch_size: int | None = None,
                       scene: SceneParams | None = None, look: LookParams | None = None) -> Backgrounds:
    """Render one desert background per seed.

    Args:
        seeds: one int per image; the same seed at the same size gives the same pixels
            (on CPU), whatever else is in the batch.
        size: side of the square images in pixels.
        device: torch device (default CPU).
        batch_size: scenes rendered together (default: as many as fit in ~1 M pixels).
        scene: the wider world's distribution (:class:`~evacamel.world.scene.SceneParams`);
            ``None`` renders the classic dunes (the same pixels as before it existed).
        look: the photographic looks' distribution (:class:`~evacamel.world.looks.LookParams`);
            each image draws its look from its seed; ``None``: no look.

    Returns:
        :class:`Backgrounds` with ``rgb`` ``B x 3 x S x S`` in [0, 1] and ``depth``
        ``B x 1 x S x S`` meters along each ray (sky = ``FAR_M``).
    """
    seeds = [int(s) for s in seeds]
    if size < 8:
        raise ValueError(f"background size must be at least 8 pixels, got {size}")
    device = torch.device(device) if device is not None else torch.device("cpu")
    if batch_size is None:
        batch_size = max(1, (1 << 20) // (size * size))
    if not seeds:
        return Backgrounds(torch.zeros(0, 3, size, size, device=device),
                           torch.zeros(0, 1, size, size, device=device), [], [])
    parts = [_render_part(seeds[i:i + batch_size], size, device, scene, look)
             for i in range(0, len(seeds), batch_size)]
    return Backgrounds(rgb=torch.cat([p.rgb for p in parts]), depth=torch.cat([p.depth for p in parts]),
                       cameras=[c for p in parts for c in p.cameras], seeds=seeds,
                       scenes=None if scene is None else [d for p in parts for d in p.scenes],
                       looks=None if look is None else [k for p in parts for k in p.looks])
