"""The procedural desert world: backgrounds with exact depth, camel sprites, cut-outs."""

import math

import pytest
import torch

from evacamel.depth_units import FAR_M
from evacamel.world import Camera, render_backgrounds, render_camels, sprite_from_cutout
from evacamel.world.background import sample_camera


@pytest.fixture(scope="module")
def bgs():
    return render_backgrounds([3, 7, 11, 19], 64)


def test_backgrounds_shapes_dtypes_ranges(bgs):
    assert bgs.rgb.shape == (4, 3, 64, 64) and bgs.rgb.dtype == torch.float32
    assert bgs.depth.shape == (4, 1, 64, 64) and bgs.depth.dtype == torch.float32
    assert float(bgs.rgb.min()) >= 0 and float(bgs.rgb.max()) <= 1
    assert float(bgs.depth.min()) > 0 and float(bgs.depth.max()) <= FAR_M
    assert [c.size for c in bgs.cameras] == [64] * 4 and bgs.seeds == [3, 7, 11, 19]
    # every scene has sky and ground, and is not a flat colour
    for i in range(4):
        assert bool((bgs.depth[i] == FAR_M).any()) and bool((bgs.depth[i] < 100).any())
        assert float(bgs.rgb[i].std()) > 0.03


def test_backgrounds_deterministic_and_independent_of_batch(bgs):
    alone = render_backgrounds([7], 64)
    other = render_backgrounds([19, 5, 7], 64, batch_size=2)
    assert torch.equal(alone.rgb[0], bgs.rgb[1]) and torch.equal(alone.depth[0], bgs.depth[1])
    assert torch.equal(other.rgb[2], bgs.rgb[1]) and torch.equal(other.depth[0], bgs.depth[3])
    assert not torch.equal(bgs.rgb[0], bgs.rgb[1])


def test_sky_is_far_and_ground_is_near_at_the_bottom(bgs):
    for i, cam in enumerate(bgs.cameras):
        assert bool((bgs.depth[i, 0, 0] == FAR_M).all()), "top row should be sky"
        bottom = bgs.depth[i, 0, -1]
        # the bottom row sees the ground a few camera heights away
        assert float(bottom.max()) < 20 * cam.height_m
        assert float(bottom.min()) > 0.5 * cam.height_m


def test_terrain_depth_increases_toward_the_horizon(bgs):
    for i in range(4):
        col = bgs.depth[i, 0, :, 32].flip(0)  # bottom -> top
        ground = col[col < FAR_M]
        n = len(ground)
        assert n > 8
        steps = ground[1:] - ground[:-1]
        # a heightfield seen from above: the first hit along a column never comes closer
        assert float((steps >= -1e-3 * ground[1:]).float().mean()) > 0.97
        assert float(ground[-1]) > 3 * float(ground[0])


def test_camera_ray_lengths():
    cam = Camera(height_m=2.0, pitch_rad=0.1, focal_px=50.0, size=64)
    rl = cam.ray_lengths()
    assert rl.shape == (1, 64, 64)
    assert float(rl.min()) >= 1.0
    centre = rl[0, 31:33, 31:33].mean()
    assert math.isclose(float(centre), 1 / math.cos(0.1), rel_tol=2e-3)
    # a point on a pixel's ray at forward distance D projects back onto that pixel
    d = cam.ray_directions()[:, 10, 50]
    D = 12.0
    p = d * D / d[2]
    col, row = cam.project(p[0], p[1], p[2])
    assert abs(float(col) - 50.5) < 1e-3 and abs(float(row) - 10.5) < 1e-3
    assert math.isclose(float(p.norm()), D * float(rl[0, 10, 50]), rel_tol=1e-5)


def test_same_scene_at_any_size():
    assert sample_camera(5, 64).height_m == sample_camera(5, 1024).height_m
    assert sample_camera(5, 1024).focal_px == pytest.approx(16 * sample_camera(5, 64).focal_px)


@pytest.fixture(scope="module")
def camels():
    return render_camels(range(12), 48)


def test_camels_shapes_alpha_and_feet(camels):
    for c in camels:
        assert c.rgba.shape == (4, 48, 48) and c.rgba.dtype == torch.float32
        assert float(c.rgba.min()) >= 0 and float(c.rgba.max()) <= 1
        a = c.rgba[3]
        assert 0.05 < float((a >= 0.5).float().mean()) < 0.8
        soft = ((a > 0.02) & (a < 0.98)).sum()
        assert int(soft) > 10, "alpha edge should be anti-aliased"
        rows = torch.nonzero((a >= 0.5).any(1)).flatten()
        assert abs((int(rows[-1]) + 1) / 48 - c.foot_v) < 0.06
        assert 2.0 < c.meters_per_side < 4.5
        assert c.attributes["species"] in ("dromedary", "bactrian")


def test_camels_vary_and_are_deterministic(camels):
    again = render_camels([3], 48)[0]
    assert torch.equal(again.rgba, camels[3].rgba) and again.attributes == camels[3].attributes
    assert {c.attributes["species"] for c in camels} == {"dromedary", "bactrian"}
    assert len({c.attributes["pose"] for c in camels}) >= 3
    assert len({c.attributes["coat"] for c in camels}) >= 3


def test_sprite_from_cutout_crops_and_pads():
    rgba = torch.zeros(4, 40, 60)
    rgba[:3] = 0.5
    rgba[3, 10:30, 5:45] = 1.0
    s = sprite_from_cutout(rgba, height_m=2.0)
    assert s.rgba.shape == (4, 40, 40)
    assert s.foot_v == 1.0 and s.meters_per_side == pytest.approx(4.0)
    assert float(s.rgba[3, -1].sum()) == 40 and float(s.rgba[3, 0].sum()) == 0
    u8 = (rgba * 255).to(torch.uint8)
    assert torch.allclose(sprite_from_cutout(u8).rgba, s.rgba, atol=1 / 255)


def test_sprite_from_cutout_rejects_empty_alpha():
    with pytest.raises(ValueError, match="empty alpha"):
        sprite_from_cutout(torch.ones(4, 10, 10) * torch.tensor([1, 1, 1, 0.0]).view(4, 1, 1))
    with pytest.raises(ValueError, match="4 x H x W"):
        sprite_from_cutout(torch.ones(3, 10, 10))
