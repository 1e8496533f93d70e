"""Train and eval transforms: normalisation with the statistics, consistent augmentation."""

from __future__ import annotations

import pytest
import torch

from evacamel.loading.stats import DEFAULT_STATS
from evacamel.loading.transforms import (EvalTransform, TrainTransform, hflip_samples,
                                      normalization_from_stats)

STATS = {"bg": {"mean": [0.1, 0.2, 0.3], "std": [0.5, 0.25, 0.125]},
         "fg_bg": {"mean": [0.4, 0.5, 0.6], "std": [0.2, 0.2, 0.4]},
         "mask": {"mean": [0.1], "std": [0.3]}, "depth": {"mean": [0.5], "std": [0.2]}}


def _batch(b: int = 4, s: int = 16, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"image": torch.randint(0, 256, (b, 6, s, s), generator=g, dtype=torch.uint8),
            "mask": torch.randint(0, 256, (b, 1, s // 2, s // 2), generator=g, dtype=torch.uint8),
            "depth": torch.randint(0, 65536, (b, 1, s // 2, s // 2), generator=g,
                                   dtype=torch.int32).to(torch.uint16)}


def test_eval_normalises_with_the_stats_and_scales_targets():
    batch = _batch()
    x, mask, depth = EvalTransform(STATS)(batch)
    assert x.dtype == mask.dtype == depth.dtype == torch.float32
    assert x.shape == (4, 6, 16, 16) and mask.shape == depth.shape == (4, 1, 8, 8)
    mean = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5, 0.6]).view(1, 6, 1, 1)
    std = torch.tensor([0.5, 0.25, 0.125, 0.2, 0.2, 0.4]).view(1, 6, 1, 1)
    torch.testing.assert_close(x, (batch["image"].float() / 255 - mean) / std)
    torch.testing.assert_close(mask, batch["mask"].float() / 255)
    torch.testing.assert_close(depth, batch["depth"].to(torch.int32).float() / 65535)
    assert 0 <= float(depth.min()) and float(depth.max()) <= 1


def test_eval_is_deterministic_and_train_without_augmentation_equals_eval():
    batch = _batch()
    ev = EvalTransform(STATS)
    a, b = ev(batch), ev(batch)
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    plain = TrainTransform(STATS, hflip=0.0, jitter_p=0.0)
    assert all(torch.equal(u, v) for u, v in zip(plain(batch), a))
    # both kept apart: the eval object has no augmentation at all
    assert not hasattr(ev, "jitter")


def test_train_flip_is_consistent_across_input_and_targets():
    batch = _batch()
    x0, m0, d0 = EvalTransform(STATS)(batch)
    x1, m1, d1 = TrainTransform(STATS, hflip=1.0, jitter_p=0.0)(batch)
    assert torch.equal(x1, x0.flip(-1)) and torch.equal(m1, m0.flip(-1)) and torch.equal(d1, d0.flip(-1))
    g = torch.Generator().manual_seed(1)
    x2, m2, d2 = TrainTransform(STATS, hflip=0.5, jitter_p=0.0, generator=g)(batch)
    flipped = [not torch.equal(x2[i], x0[i]) for i in range(4)]
    assert any(flipped) and not all(flipped)
    for i, f in enumerate(flipped):
        ref = (x0[i].flip(-1), m0[i].flip(-1), d0[i].flip(-1)) if f else (x0[i], m0[i], d0[i])
        assert torch.equal(x2[i], ref[0]) and torch.equal(m2[i], ref[1]) and torch.equal(d2[i], ref[2])


def test_jitter_changes_images_only_and_bg_fg_bg_alike():
    batch = _batch()
    batch["image"][:, 3:] = batch["image"][:, :3]  # fg_bg == bg (no camel)
    torch.manual_seed(0)
    x, mask, depth = TrainTransform(STATS, hflip=0.0, jitter_p=1.0, brightness=0.4)(batch)
    x0, m0, d0 = EvalTransform(STATS)(batch)
    assert not torch.allclose(x, x0)  # the images changed
    assert torch.equal(mask, m0) and torch.equal(depth, d0)  # the targets did not
    mean, std = normalization_from_stats(STATS)
    images = x * std + mean
    torch.testing.assert_close(images[:, :3], images[:, 3:], atol=1e-5, rtol=0)  # same jitter


def test_default_stats_and_bad_stats():
    ev = EvalTransform(None)
    mean, _ = normalization_from_stats(DEFAULT_STATS)
    assert torch.equal(ev.mean, mean)
    bad = {**STATS, "bg": {"mean": [0.1, 0.2, 0.3], "std": [0.5, 0.0, 0.1]}}
    with pytest.raises(ValueError, match="positive"):
        EvalTransform(bad)


def test_hflip_samples_and_denormalize_roundtrip():
    a = torch.arange(8.0).view(2, 1, 1, 4)
    (out,) = hflip_samples(torch.tensor([True, False]), a)
    assert out[0, 0, 0].tolist() == [3, 2, 1, 0] and out[1, 0, 0].tolist() == [4, 5, 6, 7]
    batch = _batch()
    ev = EvalTransform(STATS)
    x, _, _ = ev(batch)
    torch.testing.assert_close(ev.denormalize(x), batch["image"].float() / 255)
