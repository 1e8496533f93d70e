"""Compositing: placements, exact masks, depth and occlusion, CLAHE."""

import math

import pytest
import torch

from evacamel.world.compose import SEED_SIDE_RANGE, Composite, Placement, compose, sample_placements
from evacamel.depth_units import FAR_M
from evacamel.world.enhance import clahe
from evacamel.world import Backgrounds, Camera, CamelSprite, render_backgrounds, render_camels

S = 64


@pytest.fixture(scope="module")
def world():
    bgs = render_backgrounds([1, 2, 3, 4, 5, 6], S)
    camels = render_camels([10, 11, 12, 13, 14, 15], 48)
    return bgs, camels


def _square_sprite(side: int = 20) -> CamelSprite:
    rgba = torch.zeros(4, side, side)
    rgba[0] = 1.0
    rgba[3, side // 4:, side // 4: 3 * side // 4] = 1.0
    return CamelSprite(rgba=rgba, meters_per_side=2.0, foot_v=1.0, attributes={}, seed=None)


def _flat_bg(depth_rows: torch.Tensor) -> Backgrounds:
    """A grey background whose depth is given per row (S values)."""
    cam = Camera(height_m=2.0, pitch_rad=0.0, focal_px=40.0, size=S)
    depth = depth_rows.view(1, 1, S, 1).expand(1, 1, S, S).clone()
    return Backgrounds(rgb=torch.full((1, 3, S, S), 0.5), depth=depth, cameras=[cam], seeds=[0])


def test_seed_mode_sizes_places_and_flips(world):
    bgs, camels = world
    g = torch.Generator().manual_seed(0)
    flips = []
    for _ in range(10):
        for p in sample_placements(bgs, camels, mode="seed", generator=g):
            assert SEED_SIDE_RANGE[0] * S <= p.w <= SEED_SIDE_RANGE[1] * S and p.w == p.h
            assert 0 <= p.x <= S - p.w and 0 <= p.y <= S - p.h and p.distance_m is None
            flips.append(p.flip)
    assert 0.3 < sum(flips) / len(flips) < 0.7
    c = compose(bgs, camels, sample_placements(bgs, camels, mode="seed", generator=g), mode="seed")
    assert torch.all(c.visible_fraction > 0.99)


def test_placements_are_reproducible(world):
    bgs, camels = world
    a = sample_placements(bgs, camels, generator=torch.Generator().manual_seed(3))
    b = sample_placements(bgs, camels, generator=torch.Generator().manual_seed(3))
    assert a == b


def test_mask_is_binary_and_exactly_the_visible_camel(world):
    bgs, camels = world
    pl = sample_placements(bgs, camels, generator=torch.Generator().manual_seed(1))
    c = compose(bgs, camels, pl, shadow=0.0)
    shaded = compose(bgs, camels, pl)
    assert torch.equal(shaded.mask, c.mask) and torch.equal(shaded.depth, c.depth)
    assert float((shaded.fg_bg - c.fg_bg).max()) <= 0 < float((c.fg_bg - shaded.fg_bg).max())
    assert c.fg_bg.shape == (6, 3, S, S) and c.mask.shape == c.depth.shape == (6, 1, S, S)
    assert set(c.mask.unique().tolist()) <= {0.0, 1.0}
    assert float(c.fg_bg.min()) >= 0 and float(c.fg_bg.max()) <= 1
    for i, p in enumerate(pl):
        m = c.mask[i, 0].bool()
        assert m.any(), "the camel should be visible"
        assert 0.3 <= float(c.visible_fraction[i]) <= 1.0
        cam_depth = p.distance_m * bgs.cameras[i].ray_lengths()[0]
        # on the mask: the camel's depth, in front of the terrain; elsewhere: the background's
        assert torch.allclose(c.depth[i, 0][m], cam_depth[m])
        assert bool((cam_depth[m] < bgs.depth[i, 0][m]).all())
        assert torch.equal(c.depth[i, 0][~m], bgs.depth[i, 0][~m])
        # outside the box nothing changed
        x0, y0 = max(0, math.floor(p.x + 0.5)), max(0, math.floor(p.y + 0.5))
        outside = torch.ones(S, S, dtype=torch.bool)
        outside[y0:y0 + round(p.h), x0:x0 + round(p.w)] = False
        assert torch.equal(c.fg_bg[i][:, outside], bgs.rgb[i][:, outside])


def test_farther_camel_is_smaller_and_deeper():
    bg = _flat_bg(torch.full((S,), FAR_M))
    cam = bg.cameras[0]
    sprite = _square_sprite()
    sizes, depths = [], []
    for dist in (10.0, 20.0, 40.0):
        side = sprite.meters_per_side * cam.focal_px / dist
        pl = Placement(x=S / 2 - side / 2, y=S * 0.6 - side, w=side, h=side, flip=False, distance_m=dist)
        c = compose(bg, [sprite], [pl])
        m = c.mask[0, 0].bool()
        sizes.append(int(m.sum()))
        depths.append(float(c.depth[0, 0][m].mean()))
    assert sizes[0] > sizes[1] > sizes[2] > 0
    assert depths[0] < depths[1] < depths[2]
    assert depths[1] == pytest.approx(20.0, rel=0.02)


def test_perspective_placement_size_follows_distance(world):
    bgs, camels = world
    pl = sample_placements(bgs, camels, generator=torch.Generator().manual_seed(2))
    for i, p in enumerate(pl):
        cam = bgs.cameras[i]
        expected = camels[i].meters_per_side * cam.focal_px / p.distance_m
        assert p.w == pytest.approx(expected, rel=0.15)


def test_terrain_nearer_than_the_camel_hides_it():
    rows = torch.full((S,), FAR_M)
    rows[40:] = 5.0  # a near dune covers the lower part of the image
    bg = _flat_bg(rows)
    sprite = _square_sprite()
    pl = Placement(x=20, y=20, w=30, h=30, flip=False, distance_m=15.0)
    c = compose(bg, [sprite], [pl])
    m = c.mask[0, 0].bool()
    assert m[:40].any() and not m[40:].any()
    assert torch.equal(c.fg_bg[0][:, 40:], bg.rgb[0][:, 40:])
    assert 0.2 < float(c.visible_fraction[0]) < 0.9
    # nothing hides the camel when it stands in front of the dune
    pl.distance_m = 4.0
    c2 = compose(bg, [sprite], [pl])
    assert float(c2.visible_fraction[0]) == pytest.approx(1.0)
    assert bool(c2.mask[0, 0, 40:].any())


def test_seed_mode_depth_is_the_ground_at_the_feet():
    rows = torch.linspace(FAR_M, 3.0, S)
    bg = _flat_bg(rows)
    sprite = _square_sprite()
    pl = Placement(x=10, y=10, w=30, h=30, flip=True, distance_m=None)
    c = compose(bg, [sprite], [pl], mode="seed")
    m = c.mask[0, 0].bool()
    feet_row = 10 + 30 - 1
    assert torch.allclose(c.depth[0, 0][m], rows[feet_row].expand(int(m.sum())))
    assert float(c.visible_fraction[0]) == 1.0


def test_bad_arguments(world):
    bgs, camels = world
    with pytest.raises(ValueError, match="mode"):
        sample_placements(bgs, camels, mode="nope", generator=torch.Generator())
    with pytest.raises(ValueError, match="backgrounds"):
        sample_placements(bgs, camels[:2], generator=torch.Generator())


def test_clahe_keeps_shape_and_range_and_raises_contrast():
    g = torch.Generator().manual_seed(0)
    # a flat, low-contrast, warm image: luminance within 0.45..0.5
    img = (0.45 + 0.05 * torch.rand(2, 1, 128, 128, generator=g)).expand(2, 3, 128, 128).clone()
    img[:, 0] *= 1.1
    out = clahe(img)
    assert out.shape == img.shape and out.dtype == img.dtype
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    lum_in, lum_out = img.mean(1), out.mean(1)
    assert float(lum_out.std()) > 2 * float(lum_in.std())
    assert float((out[:, 0] - out[:, 2]).mean()) > 0.03  # the tint survives
    assert clahe(img[0]).shape == (3, 128, 128)
    with pytest.raises(ValueError, match="RGB"):
        clahe(torch.rand(2, 1, 8, 8))


# -- the box-only compose against a straightforward full-image reference ----------------
def _reference_compose(bgs: Backgrounds, sprites, placements, mode: str) -> Composite:
    """Full-image compose without contact shadows: every step on whole S x S images."""
    from evacamel.world.compose import _resample_sprite

    B, _, H_img, W_img = bgs.rgb.shape
    rgb, depth = bgs.rgb.clone(), bgs.depth.clone()
    mask = torch.zeros(B, 1, H_img, W_img)
    vis_frac = torch.zeros(B)
    for i, (sp, pl) in enumerate(zip(sprites, placements)):
        W, H = max(1, round(pl.w)), max(1, round(pl.h))
        x0, y0 = math.floor(pl.x + 0.5), math.floor(pl.y + 0.5)
        res = _resample_sprite(sp, W, H, pl.flip, "cpu")
        # the resampled box on a transparent canvas with room all round, cropped to the image
        M = W + H + abs(x0) + abs(y0)
        canvas = torch.zeros(4, H_img + 2 * M, W_img + 2 * M)
        canvas[:, M + y0:M + y0 + H, M + x0:M + x0 + W] = res
        canvas = canvas[:, M:M + H_img, M:M + W_img]
        a, pm = canvas[3:4], canvas[:3]
        if mode == "perspective":
            cam_depth = pl.distance_m * bgs.cameras[i].ray_lengths()
            vis = cam_depth < bgs.depth[i]
        else:
            rows = torch.nonzero((res[3] >= 0.5).any(1)).flatten()
            fr = min(H_img - 1, max(0, y0 + int(rows[-1])))
            fc = min(W_img - 1, max(0, x0 + W // 2))
            cam_depth = bgs.depth[i, :, fr, fc].expand(1, H_img, W_img)
            vis = torch.ones(1, H_img, W_img, dtype=torch.bool)
        visf = vis.float()
        rgb[i] = (rgb[i] * (1 - a * visf) + pm * visf).clamp(0, 1)
        m = (a >= 0.5) & vis
        depth[i] = torch.where(m, cam_depth, bgs.depth[i])
        mask[i] = m.float()
        total = int((res[3] >= 0.5).sum())
        vis_frac[i] = float(m.sum()) / total if total else 0.0
    return Composite(fg_bg=rgb, mask=mask, depth=depth, visible_fraction=vis_frac)


@pytest.mark.parametrize("mode", ["perspective", "seed"])
def test_box_only_compose_equals_full_image_reference(world, mode):
    bgs, camels = world
    pl = sample_placements(bgs, camels, mode=mode, generator=torch.Generator().manual_seed(5))
    # boxes hanging over each border, one flipped and one entirely outside
    pl[0] = Placement(x=-12.3, y=20.0, w=30.4, h=30.4, flip=True, distance_m=pl[0].distance_m)
    pl[1] = Placement(x=S - 15.6, y=S - 20.2, w=27.0, h=27.0, flip=False, distance_m=pl[1].distance_m)
    pl[2] = Placement(x=10.0, y=-9.5, w=24.0, h=24.0, flip=True, distance_m=pl[2].distance_m)
    pl[3] = Placement(x=S + 3.0, y=5.0, w=20.0, h=20.0, flip=False, distance_m=pl[3].distance_m)
    got = compose(bgs, camels, pl, mode=mode, shadow=0.0)
    ref = _reference_compose(bgs, camels, pl, mode)
    assert torch.equal(got.mask, ref.mask) and torch.equal(got.depth, ref.depth)
    assert torch.allclose(got.fg_bg, ref.fg_bg, atol=1e-6)
    assert torch.allclose(got.visible_fraction, ref.visible_fraction)
    assert bool(got.mask[0].any()) and bool(got.mask[2].any()) and not got.mask[3].any()


def test_compose_touches_only_the_box_even_with_shadows_and_reuses_out(world):
    bgs, camels = world
    pl = sample_placements(bgs, camels, generator=torch.Generator().manual_seed(6))
    c = compose(bgs, camels, pl)
    for i, p in enumerate(pl):
        x0, y0 = max(0, math.floor(p.x + 0.5)), max(0, math.floor(p.y + 0.5))
        outside = torch.ones(S, S, dtype=torch.bool)
        outside[y0:y0 + round(p.h), x0:x0 + round(p.w)] = False
        assert torch.equal(c.fg_bg[i][:, outside], bgs.rgb[i][:, outside])
    # the same results written into caller-provided tensors (stale contents overwritten)
    out = Composite(fg_bg=torch.rand(6, 3, S, S), mask=torch.rand(6, 1, S, S), depth=torch.rand(6, 1, S, S),
                    visible_fraction=torch.zeros(6))
    again = compose(bgs, camels, pl, out=out)
    assert again.fg_bg is out.fg_bg and again.mask is out.mask and again.depth is out.depth
    assert torch.equal(again.fg_bg, c.fg_bg) and torch.equal(again.mask, c.mask)
    assert torch.equal(again.depth, c.depth) and torch.equal(again.visible_fraction, c.visible_fraction)
    with pytest.raises(ValueError, match="out.mask"):
        compose(bgs, camels, pl, out=Composite(out.fg_bg, out.mask[:, :, :8], out.depth, out.visible_fraction))


def test_sprite_edited_in_place_is_resampled_afresh():
    bg = _flat_bg(torch.full((S,), FAR_M))
    sprite = _square_sprite()
    pl = Placement(x=10, y=10, w=30, h=30, flip=False, distance_m=10.0)
    red = compose(bg, [sprite], [pl], shadow=0.0)
    sprite.rgba[1] = 1.0  # now yellow: the cached resampling must not be reused
    yellow = compose(bg, [sprite], [pl], shadow=0.0)
    m = red.mask[0, 0].bool() & (red.fg_bg[0, 0] > 0.999)  # the opaque inside
    assert int(m.sum()) > 100
    assert float(red.fg_bg[0, 1][m].max()) < 0.01 and float(yellow.fg_bg[0, 1][m].min()) > 0.99


# -- blending and looks: colours only, on the camel's pixels only --------------------------
from evacamel.world import BlendParams, LookParams, SceneParams  # noqa: E402
from evacamel.world.blend import harmonize, poisson_blend  # noqa: E402


def test_blend_draws_only_when_asked_and_keep_the_geometry(world):
    bgs, camels = world
    plain = sample_placements(bgs, camels, generator=torch.Generator().manual_seed(4))
    again = sample_placements(bgs, camels, generator=torch.Generator().manual_seed(4), blend=None)
    assert plain == again and all(p.harmonize == 0 and not p.poisson for p in plain)
    blended = sample_placements(bgs, camels, generator=torch.Generator().manual_seed(4),
                                blend=BlendParams(harmonize=1.0, poisson=1.0))
    first, other = plain[0], blended[0]
    assert (first.x, first.y, first.w, first.flip, first.distance_m) == (other.x, other.y, other.w, other.flip,
                                                                        other.distance_m)
    assert all(0.2 <= p.harmonize <= 0.7 and p.poisson for p in blended)


@pytest.mark.parametrize("how", ["harmonize", "poisson", "look"])
def test_blending_changes_only_camel_colours(world, how):
    bgs, camels = world
    pl = sample_placements(bgs, camels, generator=torch.Generator().manual_seed(7))
    plain = compose(bgs, camels, pl)
    if how == "look":
        looked = render_backgrounds([1, 2, 3, 4, 5, 6], S, look=LookParams(blur=0.0, jpeg=0.0))
        bgs2 = Backgrounds(bgs.rgb, bgs.depth, bgs.cameras, bgs.seeds, looks=looked.looks)
        got = compose(bgs2, camels, pl)
    else:
        for p in pl:
            p.harmonize, p.poisson = (0.6, False) if how == "harmonize" else (0.0, True)
        got = compose(bgs, camels, pl)
    assert torch.equal(got.mask, plain.mask) and torch.equal(got.depth, plain.depth)
    assert torch.equal(got.visible_fraction, plain.visible_fraction)
    untouched = plain.fg_bg == bgs.rgb                 # where no camel (nor its shadow) is
    camel = plain.mask.bool().expand_as(untouched)
    assert torch.equal(got.fg_bg[untouched & ~camel], bgs.rgb[untouched & ~camel])
    assert not torch.equal(got.fg_bg[camel], plain.fg_bg[camel])
    assert float(got.fg_bg.min()) >= 0 and float(got.fg_bg.max()) <= 1


def test_harmonize_moves_colour_statistics_towards_the_scene():
    g = torch.Generator().manual_seed(0)
    camel = (torch.tensor([0.3, 0.2, 0.1]).view(3, 1, 1) + 0.05 * torch.rand(3, 20, 20, generator=g)).clamp(0, 1)
    scene = (torch.tensor([0.8, 0.7, 0.5]).view(3, 1, 1) + 0.1 * torch.rand(3, 40, 40, generator=g)).clamp(0, 1)
    on = torch.ones(20, 20, dtype=torch.bool)
    assert torch.equal(harmonize(camel, on, scene, 0.0), camel)
    half, full = harmonize(camel, on, scene, 0.5), harmonize(camel, on, scene, 1.0)
    d = lambda x: float((x.mean((1, 2)) - scene.mean((1, 2))).abs().sum())  # noqa: E731
    assert d(full) < d(half) < d(camel) and d(full) < 0.05


def test_poisson_blend_changes_only_the_given_pixels():
    g = torch.Generator().manual_seed(1)
    bg = torch.rand(3, 30, 30, generator=g) * 0.2 + 0.6
    comp = bg.clone()
    on = torch.zeros(30, 30, dtype=torch.bool)
    on[10:20, 8:22] = True
    comp[:, on] = 0.1
    out = poisson_blend(comp, bg, on)
    assert torch.equal(out[:, ~on], comp[:, ~on])
    assert float(out[:, on].mean()) > 0.3, "the camel's colours flow from the bright border"


def test_wide_world_composites_keep_exact_masks_and_depth():
    bgs = render_backgrounds([70, 71, 72, 73], S, scene=SceneParams(), look=LookParams())
    camels = render_camels([1, 2, 3, 4], 48)
    pl = sample_placements(bgs, camels, generator=torch.Generator().manual_seed(0), blend=BlendParams())
    c = compose(bgs, camels, pl)
    assert set(c.mask.unique().tolist()) <= {0.0, 1.0}
    for i, p in enumerate(pl):
        m = c.mask[i, 0].bool()
        cam_depth = p.distance_m * bgs.cameras[i].ray_lengths()[0]
        assert torch.allclose(c.depth[i, 0][m], cam_depth[m])
        assert torch.equal(c.depth[i, 0][~m], bgs.depth[i, 0][~m])
