"""The batched compositor equals the per-sample one, sample for sample, in batch order."""

from __future__ import annotations

import sys

import pytest
import torch
import torch.nn.functional as F

from evacamel.world import render_backgrounds, render_camels
from evacamel.world.blend import BlendParams
from evacamel.world.compose import compose, sample_placements
from evacamel.world.compose_batch import compose_batched, resample_boxes

COMPOSE = sys.modules["evacamel.world.compose"]  # the module (evacamel.world exports the function)
S, N = 96, 8
HARMONIZE = BlendParams(harmonize=1.0, poisson=0.0)


@pytest.fixture(scope="module")
def world():
    return render_backgrounds(list(range(N)), S, device="cpu"), render_camels(list(range(N)), 64, device="cpu")


def _placements(world, mode, blend=None, seed=3):
    bgs, camels = world
    return sample_placements(bgs, camels, mode=mode, generator=torch.Generator().manual_seed(seed), blend=blend)


def _float_resampler(sprite, W, H, flip, device):
    """The per-sample compose's resampler off the CPU (float32; on the CPU it runs on uint8)."""
    src = sprite.rgba.to(device=device, dtype=torch.float32)
    pm = torch.cat([src[:3] * src[3:4], src[3:4]])
    res = F.interpolate(pm[None], size=(H, W), mode="bilinear", antialias=True, align_corners=False)[0]
    res = res.clamp_(0, 1)
    return res.flip(-1) if flip else res


def test_resampling_is_pytorchs_antialiased_filter():
    x = torch.rand(2, 4, 64, 48)
    W, H, flip = torch.tensor([30, 71]), torch.tensor([41, 20]), torch.tensor([True, False])
    out = resample_boxes(x, W, H, flip)
    assert out.shape == (2, 4, 41, 71)
    for b in range(2):
        ref = F.interpolate(x[b:b + 1], size=(int(H[b]), int(W[b])), mode="bilinear", antialias=True,
                            align_corners=False)[0]
        ref = ref.flip(-1) if flip[b] else ref
        torch.testing.assert_close(out[b, :, :H[b], :W[b]], ref, atol=1e-5, rtol=0)  # float32 sums in another order
        assert not out[b, :, H[b]:].any() and not out[b, :, :, W[b]:].any()


@pytest.mark.parametrize("mode", ["perspective", "seed"])
@pytest.mark.parametrize("blend", [None, HARMONIZE], ids=["paste", "harmonize"])
def test_equals_per_sample_compose(world, mode, blend, monkeypatch):
    # The same resampler on both sides (the per-sample one's float path): then the mask and
    # the depth are exactly equal and the colours agree to float rounding.
    monkeypatch.setattr(COMPOSE, "_resample_sprite", _float_resampler)
    bgs, camels = world
    pls = _placements(world, mode, blend)
    ref = compose(bgs, camels, pls, mode=mode)
    out = compose_batched(bgs, camels, pls, mode=mode)
    assert int(ref.mask.sum()) > 200  # there are camels to compare
    assert torch.equal(out.mask, ref.mask)
    assert torch.equal(out.depth, ref.depth)
    torch.testing.assert_close(out.fg_bg, ref.fg_bg, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.visible_fraction, ref.visible_fraction, atol=1e-6, rtol=0)


@pytest.mark.parametrize("mode", ["perspective", "seed"])
def test_close_to_the_cpu_compose(world, mode):
    # On the CPU the per-sample resampler runs on uint8 (within 1/255 of float): the colours
    # agree within 3/255 (1/255 of resampling, amplified up to ~2x by harmonisation's
    # division by alpha and its spread ratio), and a mask pixel may flip only where alpha is
    # within 1/255 of 0.5 (a few in a thousand).
    bgs, camels = world
    pls = _placements(world, mode, HARMONIZE)
    ref = compose(bgs, camels, pls, mode=mode)
    out = compose_batched(bgs, camels, pls, mode=mode)
    assert float((out.fg_bg - ref.fg_bg).abs().max()) <= 3 / 255
    assert int((out.mask != ref.mask).sum()) <= 0.005 * int(ref.mask.sum())


def test_batch_order_is_kept(world):
    bgs, camels = world
    pls = _placements(world, "perspective", HARMONIZE)
    out = compose_batched(bgs, camels, pls)
    perm = [5, 2, 7, 0, 3, 1, 6, 4]
    moved = compose_batched(bgs[perm], [camels[i] for i in perm], [pls[i] for i in perm])
    for key in ("fg_bg", "mask", "depth", "visible_fraction"):
        torch.testing.assert_close(getattr(moved, key), getattr(out, key)[perm], atol=1e-6, rtol=0)
    alone = compose_batched(bgs[6], [camels[6]], [pls[6]])
    assert torch.equal(alone.mask[0], out.mask[6]) and not torch.equal(out.mask[6], out.mask[5])


def test_refuses_what_it_cannot_batch(world):
    bgs, camels = world
    pls = _placements(world, "perspective", BlendParams(harmonize=0.0, poisson=1.0))
    with pytest.raises(ValueError, match="Poisson"):
        compose_batched(bgs, camels, pls)
    small = render_camels([1], 32, device="cpu")
    with pytest.raises(ValueError, match="one size"):
        compose_batched(bgs[:2], [camels[0], small[0]], _placements(world, "seed")[:2], mode="seed")


def test_bench_times_both_compositors_on_the_same_work():
    from evacamel.bench.render import measure_compose
    from evacamel.profiles import get_profile

    tiny = get_profile("quick").replace(n_backgrounds=4, n_camels=4, samples=16, input_size=32)
    per_sample, batched = measure_compose(tiny, batches=1, batch_size=4, device="cpu", pool=2)
    assert (per_sample.items, batched.items) == (4, 4)
    assert "per sample" in per_sample.name and "batched" in batched.name


def test_looks_change_colours_on_the_camel_only(monkeypatch):
    # The wide world's looks: mask and depth exactly the per-sample ones; outside the camel
    # every pixel is the background's; on it, the look's edits (see the module doc).
    from evacamel.world import world_params

    monkeypatch.setattr(COMPOSE, "_resample_sprite", _float_resampler)
    w = world_params("wide", "paste")
    bgs = render_backgrounds(list(range(4)), S, device="cpu", scene=w.scene, look=w.look)
    camels = render_camels(list(range(4)), 64, device="cpu", coat=w.camel)
    pls = sample_placements(bgs, camels, generator=torch.Generator().manual_seed(1))
    ref = compose(bgs, camels, pls)
    out = compose_batched(bgs, camels, pls)
    assert torch.equal(out.mask, ref.mask) and torch.equal(out.depth, ref.depth)
    pasted = torch.zeros_like(out.mask, dtype=torch.bool)
    for i, p in enumerate(pls):  # each camel's box
        y0, x0 = max(0, int(p.y + 0.5)), max(0, int(p.x + 0.5))
        pasted[i, :, y0:int(p.y + 0.5) + round(p.h), x0:int(p.x + 0.5) + round(p.w)] = True
    assert torch.equal(out.fg_bg * ~pasted, ref.fg_bg * ~pasted)
    assert float((out.fg_bg - ref.fg_bg).abs().max()) < 0.5
