"""Camels on backgrounds, a whole batch at once: the compositor for rendering on a GPU.

:func:`compose_batched` does what :func:`evacamel.world.compose.compose` does sample by
sample (anti-aliased resampling, premultiplied alpha, the exact mask, the depth with the
occlusion test, the contact shadow, colour harmonisation, both compose modes), as batched
tensor ops: no Python work per sample beyond reading the placements. On a GPU the
per-sample compose is bound by kernel launches (a few dozen small ops per camel);
``evacamel bench render`` prints both rates and their ratio.

Resampling: every sprite goes into its box with the triangle filter of PyTorch's
``F.interpolate(mode="bilinear", antialias=True)`` (the per-sample resampler), written as
two batched matrix products, ``box = Ry @ sprite @ Rx^T``, whose weight matrices hold
each sample's scale and flip; one gather then moves the boxes to their places in the
images. (``F.grid_sample`` would be one call too, but it does not anti-alias: a 128 px
sprite shrunk to 30 px would alias and differ from the per-sample compose.)

Equal to the per-sample compose, up to float rounding, for the ``paste`` blend and for
harmonisation, without looks; on the CPU the per-sample resampler runs on uint8, so there
the colours agree within 2/255 and a mask pixel may differ where the sprite's alpha is
within 1/255 of the 0.5 threshold (``tests/test_compose_batch.py`` states the tolerances).

What it does differently, by design:

* **Poisson blending** (OpenCV's ``seamlessClone``: per sample, on the CPU) is not done
  here: placements asking for it are refused. It is an option of the files path (the
  dataset writer); rendered training data uses the harmonised paste.
* **Looks** (the wide world's photographic edits): the camel gets the look's colour steps
  and vignette exactly as per sample (pointwise), but the look's blur, local contrast and
  sensor noise run over the whole image and are kept on the camel's pixels, where the
  per-sample compose runs them on the camel's box: near the box's edges the blur sees
  the scene outside it, and the noise is another draw of the same strength (on the
  device, in one call).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import kornia
import torch

from evacamel.world.background import Backgrounds
from evacamel.world.camel import CamelSprite
from evacamel.world.compose import Composite, Placement, _check_mode, _check_pairs, _ray_lengths
from evacamel.world.looks import local_contrast, look_colors, soften, vignette_factor

__all__ = ["compose_batched", "resample_boxes"]


class _Boxes(NamedTuple):
    """The placements' boxes in whole pixels, each a ``B`` long int64 tensor (as
    ``compose._Box``: ``W x H`` at ``(x0, y0)``, possibly overhanging the image)."""

    x0: torch.Tensor
    y0: torch.Tensor
    W: torch.Tensor
    H: torch.Tensor
    flip: torch.Tensor      # bool

    @staticmethod
    def of(placements: Sequence[Placement], device: torch.device) -> "_Boxes":
        rows = [(int((p.x + 0.5) // 1), int((p.y + 0.5) // 1), max(1, int(round(p.w))),
                 max(1, int(round(p.h))), int(bool(p.flip))) for p in placements]
        t = torch.tensor(rows, dtype=torch.int64, device=device).view(-1, 5)
        return _Boxes(t[:, 0], t[:, 1], t[:, 2], t[:, 3], t[:, 4].bool())


def _aa_weights(box_len: torch.Tensor, src_len: int, out_len: int, flip: torch.Tensor | None
                ) -> torch.Tensor:
    """``B x out_len x src_len`` float32: PyTorch's anti-aliased bilinear weights that resample
    ``src_len`` pixels into ``box_len[b]`` (rows past ``box_len[b]`` are zero); ``flip``
    mirrors the output (``B`` bool)."""
    dev = box_len.device
    i = torch.arange(out_len, device=dev).view(1, -1, 1)
    n = box_len.view(-1, 1, 1)
    if flip is not None:
        i = torch.where(flip.view(-1, 1, 1), n - 1 - i, i)
    scale = src_len / n.float()                                   # B x 1 x 1
    inv = torch.where(scale >= 1, 1 / scale, torch.ones_like(scale))
    center = scale * (i.float() + 0.5)
    j = torch.arange(src_len, device=dev, dtype=torch.float32).view(1, 1, -1)
    w = (1 - ((j + 0.5 - center) * inv).abs()).clamp_min(0)
    w = w / w.sum(-1, keepdim=True).clamp_min(1e-12)
    return w * ((i >= 0) & (i < n)).float()


def resample_boxes(sprites: torch.Tensor, W: torch.Tensor, H: torch.Tensor, flip: torch.Tensor
                   ) -> torch.Tensor:
    """Each sprite resampled into its own ``W[b] x H[b]`` box, mirrored where ``flip[b]``.

    Args:
        sprites: ``B x C x h x w`` float32 (premultiplied RGBA for compositing).
        W, H: ``B`` int64 box sizes; flip: ``B`` bool.

    Returns:
        ``B x C x max(H) x max(W)`` float32; box ``b`` in the top-left ``H[b] x W[b]``,
        zeros elsewhere. The filter is ``F.interpolate(..., mode="bilinear",
        antialias=True, align_corners=False)``'s.
    """
    h, w = sprites.shape[-2:]
    ry = _aa_weights(H, h, int(H.max()), None)                    # B x Hm x h
    rx = _aa_weights(W, w, int(W.max()), flip)                    # B x Wm x w
    return torch.matmul(torch.matmul(ry[:, None], sprites), rx[:, None].transpose(-1, -2))


def _place(boxes: torch.Tensor, b: _Boxes, S: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(images B x C x S x S, inside B x 1 x S x S bool)``: each box pasted at its place
    (one gather; zeros and False outside the box)."""
    B, C, Hm, Wm = boxes.shape
    r = torch.arange(S, device=boxes.device).view(1, S, 1) - b.y0.view(-1, 1, 1)
    c = torch.arange(S, device=boxes.device).view(1, 1, S) - b.x0.view(-1, 1, 1)
    inside = (r >= 0) & (r < b.H.view(-1, 1, 1)) & (c >= 0) & (c < b.W.view(-1, 1, 1))
    idx = (r.clamp(0, Hm - 1) * Wm + c.clamp(0, Wm - 1)).view(B, 1, S * S).expand(B, C, S * S)
    out = boxes.reshape(B, C, Hm * Wm).gather(2, idx).view(B, C, S, S)
    return out * inside[:, None], inside[:, None]


class _Rows(NamedTuple):
    """Where the camel is in each box (``B`` long tensors, box-local), from alpha >= 0.5."""

    has: torch.Tensor       # bool: any camel pixel at all
    first: torch.Tensor     # its first row
    last: torch.Tensor      # its last row
    total: torch.Tensor     # float32: its pixels in the whole box (also outside the image)

    @staticmethod
    def of(on_box: torch.Tensor) -> "_Rows":
        """``on_box``: ``B x Hm x Wm`` bool."""
        rows = on_box.any(2)
        Hm = rows.shape[1]
        first = rows.int().argmax(1)
        last = Hm - 1 - rows.flip(1).int().argmax(1)
        return _Rows(rows.any(1), first, last, on_box.sum((1, 2)).float())


def _shadow_factor(on_box: torch.Tensor, rows: _Rows, b: _Boxes, ground: torch.Tensor,
                   distance: torch.Tensor, strength: float) -> torch.Tensor:
    """``B x 1 x S x S``: the contact shadow of :func:`evacamel.world.compose._contact_shadow`
    for every sample at once (1 where nothing darkens)."""
    dev, S = on_box.device, ground.shape[-1]
    h = rows.last - rows.first + 1
    lo = (rows.last - torch.clamp(h // 10, min=1)).clamp_min(0)
    r = torch.arange(on_box.shape[1], device=dev).view(1, -1)
    band = (on_box & ((r >= lo.view(-1, 1)) & (r <= rows.last.view(-1, 1)))[:, :, None]).any(1)
    cfirst = band.int().argmax(1).double()
    clast = (band.shape[1] - 1 - band.flip(1).int().argmax(1)).double()
    W, H = b.W.double(), b.H.double()
    cx, cy = (cfirst + clast + 1) / 2, rows.last.double() + 0.5
    rx = (0.6 * (clast - cfirst + 1)).clamp_min(1.0)
    ry = (0.06 * h.double()).clamp_min(0.75)
    rx_l = torch.minimum(rx, cx.clamp_min(0.25) / 2)
    rx_r = torch.minimum(rx, (W - cx).clamp_min(0.25) / 2)
    ry_dn = torch.minimum(ry, (H - cy).clamp_min(0.25) / 2)
    c0, c1 = (cx - 2 * rx_l).trunc().clamp_min(0), torch.minimum(W, (cx + 2 * rx_r).ceil())
    r0, r1 = (cy - 2 * ry).trunc().clamp_min(0), torch.minimum(H, (cy + 2 * ry_dn).ceil())
    col = lambda v: v.float().view(-1, 1, 1)  # noqa: E731
    i = (torch.arange(S, device=dev).view(1, S, 1) - b.y0.view(-1, 1, 1)).float()
    j = (torch.arange(S, device=dev).view(1, 1, S) - b.x0.view(-1, 1, 1)).float()
    window = (i >= col(r0)) & (i < col(r1)) & (j >= col(c0)) & (j < col(c1))
    dx, dy = j + 0.5 - col(cx), i + 0.5 - col(cy)
    dx = dx / torch.where(dx < 0, col(rx_l), col(rx_r))
    dy = dy / torch.where(dy > 0, col(ry_dn), col(ry))
    fall = torch.exp(-2.5 * (dx * dx + dy * dy))
    d = ground[:, 0]
    near = (d > col(0.6 * distance.double())) & (d < col(2.5 * distance.double()))
    keep = (window & near & rows.has.view(-1, 1, 1)).float()
    return (1 - strength * fall * keep)[:, None]


def _harmonized(straight: torch.Tensor, on: torch.Tensor, scene: torch.Tensor, ref: torch.Tensor,
                strength: torch.Tensor) -> torch.Tensor:
    """:func:`evacamel.world.blend.harmonize` for every sample at once: ``straight``
    ``B x 3 x S x S`` colours moved towards the statistics of ``scene`` on ``ref`` pixels,
    measured on the camel's ``on`` pixels (both ``B x 1 x S x S`` bool); ``strength`` ``B``
    (0: unchanged)."""
    def moments(x: torch.Tensor, m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mf = m.float()
        n = mf.sum((2, 3), keepdim=True).clamp_min(1)
        mu = (x * mf).sum((2, 3), keepdim=True) / n
        var = ((x - mu) ** 2 * mf).sum((2, 3), keepdim=True) / n
        return mu, var.sqrt().clamp_min(1e-3)

    ycc = kornia.color.rgb_to_ycbcr(straight)
    mu_c, sd_c = moments(ycc, on)
    mu_b, sd_b = moments(kornia.color.rgb_to_ycbcr(scene), ref)
    s = strength.view(-1, 1, 1, 1)
    out = (ycc - mu_c) * (sd_b / sd_c) ** s + mu_c + s * (mu_b - mu_c)
    done = kornia.color.ycbcr_to_rgb(out).clamp(0, 1)
    use = (strength > 0).view(-1, 1, 1, 1) & on.flatten(1).any(1).view(-1, 1, 1, 1)
    return torch.where(use, done, straight)


def _every_fourth(inside: torch.Tensor, b: _Boxes) -> torch.Tensor:
    """The pixels ``harmonize`` measures the scene on: every 4th row and column of the box's
    part inside the image, from its top-left corner."""
    S = inside.shape[-1]
    iy0, ix0 = b.y0.clamp_min(0).view(-1, 1, 1, 1), b.x0.clamp_min(0).view(-1, 1, 1, 1)
    r = torch.arange(S, device=inside.device).view(1, 1, S, 1)
    c = torch.arange(S, device=inside.device).view(1, 1, 1, S)
    return inside & ((r - iy0) % 4 == 0) & ((c - ix0) % 4 == 0)


def _camel_colors(pm: torch.Tensor, a: torch.Tensor, on: torch.Tensor, before: torch.Tensor,
                  ref: torch.Tensor, strength: torch.Tensor, looks: list | None) -> torch.Tensor:
    """The camels' premultiplied colours ``B x 3 x S x S`` after harmonisation and the
    scene's colour look (``compose._dressed_camel``, every sample at once)."""
    if not bool((strength > 0).any()) and looks is None:
        return pm
    straight = pm / a.clamp_min(1e-6)
    straight = _harmonized(straight, on, before, ref, strength)
    if looks is not None:
        S = pm.shape[-1]
        idx = torch.arange(S, device=pm.device)
        straight = look_colors(straight, looks) * vignette_factor(looks, idx, idx, S)
    dressed = straight.clamp(0, 1) * a
    if looks is not None:
        return dressed
    return torch.where((strength > 0).view(-1, 1, 1, 1), dressed, pm)


def _sensor_noise(looks: list, rgb: torch.Tensor, salt: int) -> torch.Tensor:
    """``B x 3 x S x S``: the noise of :func:`~evacamel.world.looks.sensor_noise` (luminance
    plus weaker colour noise, each look's strength), drawn on ``rgb``'s device in one call
    from a generator seeded by ``salt`` (not per look on the CPU)."""
    B, _, S, _ = rgb.shape
    g = torch.Generator(device=rgb.device).manual_seed(salt % 2**63)
    n = torch.randn(B, 4, S, S, generator=g, device=rgb.device, dtype=rgb.dtype)
    strength = torch.tensor([k.noise for k in looks], dtype=rgb.dtype, device=rgb.device)
    return (n[:, :1] + 0.35 * n[:, 1:]) * strength.view(-1, 1, 1, 1)


def _finish_looks(rgb: torch.Tensor, on: torch.Tensor, looks: list, salt: int) -> torch.Tensor:
    """The looks' blur, local contrast and noise over the whole images, kept on ``on``."""
    S = rgb.shape[-1]
    done = local_contrast(soften(rgb, looks, S), looks, S)
    if any(k.noise > 0 for k in looks):
        done = (done + _sensor_noise(looks, rgb, salt)).clamp(0, 1)
    return torch.where(on, done, rgb)


def _camel_depth(mode: str, backgrounds: Backgrounds, placements: Sequence[Placement], b: _Boxes,
                 rows: _Rows) -> tuple[torch.Tensor, torch.Tensor]:
    """``(camel depth B x 1 x S x S, not hidden B x 1 x S x S bool)``: a billboard at the
    placement's distance hidden by nearer terrain (perspective), or the background's depth
    at the feet everywhere, hidden by nothing (seed)."""
    bg_depth = backgrounds.depth
    B, _, S, _ = bg_depth.shape
    if mode == "perspective":
        dist = torch.tensor([float(p.distance_m) for p in placements], device=bg_depth.device)
        rl = torch.stack([_ray_lengths(cam, bg_depth.device) for cam in backgrounds.cameras])
        cam_depth = dist.view(-1, 1, 1, 1) * rl[:, None]
        return cam_depth, cam_depth < bg_depth
    foot_r = (b.y0 + rows.last).clamp(0, S - 1)
    foot_c = (b.x0 + b.W // 2).clamp(0, S - 1)
    feet = bg_depth[torch.arange(B, device=bg_depth.device), 0, foot_r, foot_c]
    return feet.view(-1, 1, 1, 1).expand(B, 1, S, S), torch.ones_like(bg_depth, dtype=torch.bool)


def _check_batchable(sprites: Sequence[CamelSprite], placements: Sequence[Placement], mode: str) -> None:
    if len({tuple(s.rgba.shape) for s in sprites}) > 1:
        raise ValueError("compose_batched needs sprites of one size (a pool's); compose takes any")
    for i, p in enumerate(placements):
        if p.poisson:
            raise ValueError(f"placement {i} asks for Poisson blending, a per-sample CPU step: "
                             "use evacamel.world.compose.compose, or draw placements without it")
        if mode == "perspective" and p.distance_m is None:
            raise ValueError(f"placement {i} has no distance_m; perspective mode needs one")


def compose_batched(backgrounds: Backgrounds, sprites: Sequence[CamelSprite],
                    placements: Sequence[Placement], *, mode: str = "perspective",
                    shadow: float = 0.35) -> Composite:
    """Paste ``sprites[i]`` on ``backgrounds[i]`` at ``placements[i]``, all at once.

    The same arguments and result as :func:`evacamel.world.compose.compose` (see the
    module doc for what differs: no Poisson blending, looks' blur and noise image-wide).
    Sprites must share one size; everything runs on the backgrounds' device.

    Returns:
        :class:`~evacamel.world.compose.Composite`: ``fg_bg`` ``B x 3 x S x S`` float32 in
        [0, 1], ``mask`` ``B x 1 x S x S`` exactly 0 or 1, ``depth`` ``B x 1 x S x S``
        meters, ``visible_fraction`` ``B``.
    """
    _check_mode(mode)
    _check_pairs(backgrounds, sprites)
    _check_pairs(backgrounds, placements, "placements")
    _check_batchable(sprites, placements, mode)
    bg, bg_depth = backgrounds.rgb, backgrounds.depth
    dev, S = bg.device, bg.shape[-1]
    src = torch.stack([s.rgba.to(dev, torch.float32) for s in sprites])
    src = torch.cat([src[:, :3] * src[:, 3:4], src[:, 3:4]], 1)      # premultiplied
    b = _Boxes.of(placements, dev)
    boxes = resample_boxes(src, b.W, b.H, b.flip).clamp_(0, 1)
    rows = _Rows.of(boxes[:, 3] >= 0.5)
    placed, inside = _place(boxes, b, S)
    inside = inside & rows.has.view(-1, 1, 1, 1)                      # nothing pasted without a camel row
    a, pm = placed[:, 3:4], placed[:, :3]
    cam_depth, vis = _camel_depth(mode, backgrounds, placements, b, rows)
    strength = torch.tensor([float(p.harmonize) for p in placements], device=dev)
    colors = _camel_colors(pm, a, inside & (a >= 0.5), bg, _every_fourth(inside, b), strength,
                           backgrounds.looks)
    region = bg
    if mode == "perspective" and shadow > 0:
        dist = torch.tensor([float(p.distance_m) for p in placements], device=dev)
        region = bg * _shadow_factor(boxes[:, 3] >= 0.5, rows, b, bg_depth, dist, shadow)
    visf = vis.to(a.dtype)
    rgb = torch.where(inside, (region * (1 - a * visf) + colors * visf).clamp(0, 1), bg)
    if backgrounds.looks is not None:
        salt = int(b.x0.sum() * 7919 + b.y0.sum())
        rgb = _finish_looks(rgb, inside & (a > 0) & vis, backgrounds.looks, salt)
    m = inside & (a >= 0.5) & vis
    depth = torch.where(m, cam_depth, bg_depth)
    frac = m.flatten(1).sum(1).float() / rows.total.clamp_min(1)
    return Composite(fg_bg=rgb, mask=m.to(bg.dtype), depth=depth, visible_fraction=frac)
