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


# -- the wider world ---------------------------------------------------------------------
from evacamel.world import CamelParams, Look, LookParams, SceneParams, WorldParams, apply_looks  # noqa: E402
from evacamel.world.looks import draw_looks  # noqa: E402
from evacamel.world.props import Props, PropSpec, box_planes, intersect_props, pack_props  # noqa: E402

NO_FEATURES = dict(mesas=0.0, mountains=0.0, road=0.0, rocks=0.0, scrub=0.0, structures=0.0, skies=0.0)


def test_classic_switch_is_the_default_and_renders_the_classic_world(bgs):
    classic = WorldParams.classic()
    assert (classic.scene, classic.look, classic.camel, classic.blend) == (None, None, None, None)
    again = render_backgrounds([3, 7, 11, 19], 64, scene=classic.scene, look=classic.look)
    assert torch.equal(again.rgb, bgs.rgb) and torch.equal(again.depth, bgs.depth)
    assert again.scenes is None and again.looks is None
    camels = render_camels([5], 48)
    assert torch.equal(render_camels([5], 48, coat=classic.camel)[0].rgba, camels[0].rgba)


@pytest.fixture(scope="module")
def wide():
    return render_backgrounds(range(40, 52), 48, scene=SceneParams(), batch_size=5)


def test_wide_world_is_valid_varied_deterministic_and_independent_of_batch(wide):
    assert wide.rgb.shape == (12, 3, 48, 48) and wide.depth.shape == (12, 1, 48, 48)
    assert float(wide.rgb.min()) >= 0 and float(wide.rgb.max()) <= 1
    assert float(wide.depth.min()) > 0 and float(wide.depth.max()) <= FAR_M
    assert len({d.ground for d in wide.scenes}) >= 3
    assert any(d.props for d in wide.scenes) and any("road" in d.features for d in wide.scenes)
    alone = render_backgrounds([wide.seeds[6]], 48, scene=SceneParams())
    assert torch.equal(alone.rgb[0], wide.rgb[6]) and torch.equal(alone.depth[0], wide.depth[6])
    assert alone.scenes[0] == wide.scenes[6]


def test_each_ground_kind_is_drawn_when_it_is_the_only_one():
    for k, ground in enumerate(("dunes", "sand", "gravel", "rock")):
        weights = tuple(1.0 if i == k else 0.0 for i in range(4))
        b = render_backgrounds([1, 2], 32, scene=SceneParams(grounds=weights, **NO_FEATURES))
        assert [d.ground for d in b.scenes] == [ground, ground]
        assert all(not d.props and d.sky == "classic" for d in b.scenes)


def test_structures_only_bring_nearer_surfaces():
    seeds = list(range(60, 66))
    off = render_backgrounds(seeds, 48, scene=SceneParams(**NO_FEATURES))
    on = render_backgrounds(seeds, 48, scene=SceneParams(**{**NO_FEATURES, "structures": 1.0}))
    assert all(d.props for d in on.scenes)
    assert bool((on.depth <= off.depth).all()), "a structure can hide the ground, never push it away"
    assert bool((on.depth < off.depth).any())


def test_props_have_exact_depth():
    # a 2 m cube whose near face is 9 m ahead, a sphere of radius 1 centred 20 m ahead and 3 m left
    cube = PropSpec("convex", "mud", (0.5, 0.5, 0.5), (0.0, 0.0, 10.0), 2.0,
                    planes=box_planes((0.0, -1.0, 10.0), (1.0, 1.0, 1.0), 0.0))
    ball = PropSpec("ellipsoid", "rock", (0.5, 0.5, 0.5), (-3.0, 0.0, 20.0), 1.0, (1.0, 1.0, 1.0))
    props: Props = pack_props([[cube, ball]], "cpu")
    to_ball = torch.tensor([-3.0, 0.0, 20.0]) / math.hypot(3.0, 20.0)
    dirs = torch.stack([torch.tensor([0.0, 0.0, 1.0]), to_ball, torch.tensor([0.0, 1.0, 0.0])], 1)[None]
    hits = intersect_props(props, dirs, torch.zeros(1, 1))
    assert hits.distance[0, 0] == pytest.approx(9.0, abs=1e-4)
    assert hits.distance[0, 1] == pytest.approx(math.hypot(3.0, 20.0) - 1.0, abs=1e-4)
    assert math.isinf(float(hits.distance[0, 2])) and int(hits.index[0, 2]) == -1
    assert torch.allclose(hits.normal[0, :, 0], torch.tensor([0.0, 0.0, -1.0]))
    assert hits.index[0, :2].tolist() == [0, 1]


def test_default_look_changes_nothing_and_looks_never_touch_depth(wide):
    x = wide.rgb[:4]
    assert torch.equal(apply_looks(x, [Look()] * 4), x)
    looked = render_backgrounds(wide.seeds[:6], 48, scene=SceneParams(), look=LookParams())
    assert torch.equal(looked.depth, wide.depth[:6])
    assert not torch.equal(looked.rgb, wide.rgb[:6])
    assert looked.looks == render_backgrounds(wide.seeds[:6], 48, scene=SceneParams(), look=LookParams()).looks


@pytest.mark.parametrize("edit", ["tone", "saturation", "cast", "hdr", "vignette", "noise", "blur", "jpeg"])
def test_each_look_edit_changes_the_image_and_only_its_own_fields(wide, edit):
    only = LookParams(**{k: float(k == edit) for k in LookParams.__dataclass_fields__})
    looks = draw_looks(wide.seeds[:3], only)
    fields = {"tone": ("exposure", "contrast", "gamma"), "noise": ("noise",), "saturation": ("saturation",),
              "cast": ("cast",), "hdr": ("hdr",), "vignette": ("vignette",), "blur": ("blur",), "jpeg": ("jpeg",)}
    for k in looks:
        changed = {f for f in Look.__dataclass_fields__ if f != "noise_seed" and getattr(k, f) != getattr(Look(), f)}
        assert changed and changed <= set(fields[edit])
    x = torch.nn.functional.interpolate(wide.rgb[:3], size=400, mode="bilinear")  # blur of >= 0.3 px
    y = apply_looks(x, looks)
    assert y.shape == x.shape and float(y.min()) >= 0 and float(y.max()) <= 1
    assert all(not torch.equal(y[i], x[i]) for i in range(3))


def test_wider_camels_change_colours_not_shapes():
    classic = render_camels(range(6), 48)
    wide_c = render_camels(range(6), 48, coat=CamelParams(coats=1.0, patchy=1.0, light=1.0))
    for a, b in zip(classic, wide_c):
        assert torch.equal(a.rgba[3], b.rgba[3]) and a.meters_per_side == b.meters_per_side
        assert not torch.equal(a.rgba[:3], b.rgba[:3])
        assert b.attributes["coat"].endswith("piebald")
    assert render_camels([2], 48, coat=CamelParams())[0].attributes == render_camels([2], 48, coat=CamelParams())[0].attributes


def test_world_params_reject_bad_probabilities():
    with pytest.raises(ValueError, match="mesas"):
        SceneParams(mesas=1.5)
    with pytest.raises(ValueError, match="grounds"):
        SceneParams(grounds=(0, 0, 0, 0))
    with pytest.raises(ValueError, match="blur"):
        LookParams(blur=-0.1)
