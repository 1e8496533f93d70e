import math

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from evacamel.depth_units import meters_to_target
from evacamel.metrics import (METRIC_NAMES, MetricAccumulator, depth_ssim, dice, iou,
                              per_sample_iou, pixel_accuracy, seed_depth_accuracy_to_ssim)

BIG = 20.0  # a logit that is surely "camel"
# SSIM comes from float32 11x11 Gaussian convolutions, and torch may pick another conv
# algorithm (another rounding) for another batch size: a few 1e-7 per pixel, more after
# the variance subtraction. 1e-5 on a mean SSIM is far below what a real batching bug
# moves it (a misweighted batch: ~1e-2 on these inputs).
SSIM_ACROSS_BATCHINGS = 1e-5


def logits_of(mask: torch.Tensor) -> torch.Tensor:
    return torch.where(mask > 0, torch.tensor(BIG), torch.tensor(-BIG))


def skimage_ssim(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(np.mean([structural_similarity(
        a[i, 0].double().numpy(), b[i, 0].double().numpy(), gaussian_weights=True, sigma=1.5,
        use_sample_covariance=False, data_range=1.0) for i in range(a.shape[0])]))


def structured(n: int = 48) -> torch.Tensor:
    y, x = torch.meshgrid(torch.linspace(0, 1, n), torch.linspace(0, 1, n), indexing="ij")
    ramp = 0.3 + 0.5 * y
    disk = ((x - 0.5) ** 2 + (y - 0.6) ** 2 < 0.05).float() * 0.3
    return (ramp + disk).clamp(0, 1)[None, None]


@pytest.mark.parametrize("case", ["random", "structured", "shifted", "dark"])
def test_depth_ssim_matches_scikit_image(case):
    g = torch.Generator().manual_seed(1)
    if case == "random":
        a = torch.rand(3, 1, 37, 53, generator=g)
        b = (a + 0.3 * torch.randn(a.shape, generator=g)).clamp(0, 1)
    elif case == "structured":
        a = structured()
        b = (a + 0.05 * torch.randn(a.shape, generator=g)).clamp(0, 1)
    elif case == "shifted":
        a = structured()
        b = torch.roll(a, 3, dims=-1)
    else:
        a = structured() * 0.05
        b = a.flip(-2)
    assert depth_ssim(b, a) == pytest.approx(skimage_ssim(b, a), abs=1e-4)


def test_ssim_of_identical_and_constant_maps():
    a = structured()
    assert depth_ssim(a, a) == pytest.approx(1.0, abs=1e-6)
    const = torch.full((1, 1, 32, 32), 0.4)
    assert depth_ssim(const, const) == pytest.approx(1.0, abs=1e-6)
    other = torch.full((1, 1, 32, 32), 0.6)
    assert depth_ssim(other, const) == pytest.approx(skimage_ssim(other, const), abs=1e-4)
    assert depth_ssim(other, const) < 1


def test_mask_metrics_by_hand():
    target = torch.zeros(1, 1, 4, 4)
    target[..., :2, :2] = 1  # 4 camel pixels
    pred = torch.zeros(1, 1, 4, 4)
    pred[..., :2, 1:3] = 1  # 4 predicted, 2 overlap
    lg = logits_of(pred)
    assert pixel_accuracy(lg, target) == pytest.approx(12 / 16)
    assert iou(lg, target) == pytest.approx(2 / 6)
    assert dice(lg, target) == pytest.approx(4 / 8)


def test_mask_edge_cases():
    empty = torch.zeros(2, 1, 8, 8)
    full = torch.ones(2, 1, 8, 8)
    # both empty: nothing to find and nothing found is a perfect answer
    assert iou(logits_of(empty), empty) == 1.0 and dice(logits_of(empty), empty) == 1.0
    # camel present, nothing predicted
    assert iou(logits_of(empty), full) == 0.0 and dice(logits_of(empty), full) == 0.0
    # all foreground predicted on an empty target
    assert iou(logits_of(full), empty) == 0.0
    assert pixel_accuracy(logits_of(full), empty) == 0.0
    assert iou(logits_of(full), full) == 1.0 and pixel_accuracy(logits_of(full), full) == 1.0
    assert per_sample_iou(logits_of(empty), empty).tolist() == [1.0, 1.0]


def test_all_background_scores_high_accuracy_but_zero_iou():
    target = torch.zeros(1, 1, 100, 100)
    target[..., :30, :30] = 1  # 9% camel
    lg = logits_of(torch.zeros_like(target))
    assert pixel_accuracy(lg, target) == pytest.approx(0.91)
    assert iou(lg, target) == 0.0


def test_threshold_is_applied_to_probabilities():
    lg = torch.full((1, 1, 2, 2), math.log(0.6 / 0.4) + 1e-4)  # p just above 0.6
    target = torch.ones(1, 1, 2, 2)
    assert iou(lg, target, threshold=0.5) == 1.0
    assert iou(lg, target, threshold=0.7) == 0.0
    with pytest.raises(ValueError):
        iou(lg, target, threshold=1.0)


def test_accumulator_is_exact_whatever_the_batching():
    g = torch.Generator().manual_seed(3)
    n = 10
    mask_t = (torch.rand(n, 1, 24, 24, generator=g) > 0.8).float()
    logits = torch.randn(n, 1, 24, 24, generator=g) * 3
    depth_t = torch.rand(n, 1, 24, 24, generator=g)
    depth_t[:, :, :4] = 0.0  # sky rows: excluded from the metric-depth values
    depth_p = (depth_t + 0.05 * torch.randn(depth_t.shape, generator=g)).clamp(0, 1)
    whole = MetricAccumulator()
    whole.update(logits, depth_p, mask_t, depth_t)
    parts = MetricAccumulator()
    for s in (slice(0, 3), slice(3, 4), slice(4, 10)):
        parts.update(logits[s], depth_p[s], mask_t[s], depth_t[s])
    a, b = whole.compute(), parts.compute()
    assert set(a) == set(METRIC_NAMES)
    for k in ("mask_accuracy", "mask_iou", "mask_dice"):  # integer counts: exact
        assert a[k] == b[k], k
    assert a["depth_ssim"] == pytest.approx(b["depth_ssim"], abs=SSIM_ACROSS_BATCHINGS)
    for k in set(a) - {"depth_ssim"}:  # elementwise float32, sums in float64
        assert a[k] == pytest.approx(b[k], rel=1e-6), k
    assert a["mask_iou"] == pytest.approx(iou(logits, mask_t))
    assert a["mask_dice"] == pytest.approx(dice(logits, mask_t))
    assert a["depth_ssim"] == pytest.approx(depth_ssim(depth_p, depth_t), abs=1e-7)
    assert a["depth_rmse"] == pytest.approx(float((depth_p - depth_t).pow(2).mean().sqrt()), rel=1e-5)


def test_depth_metrics_in_meters_by_hand():
    true_m = torch.full((1, 1, 16, 16), 10.0)
    pred_m = true_m.clone()
    pred_m[..., :8, :] = 12.0  # half the pixels 20% too far
    acc = MetricAccumulator()
    mask = torch.zeros(1, 1, 16, 16)
    acc.update(logits_of(mask), meters_to_target(pred_m), mask, meters_to_target(true_m))
    m = acc.compute()
    assert m["depth_absrel"] == pytest.approx(0.1, rel=1e-4)
    assert m["depth_rmse_m"] == pytest.approx(math.sqrt(0.5 * 4), rel=1e-4)
    assert m["depth_delta1"] == pytest.approx(1.0)  # 1.2 < 1.25


def test_merge_equals_one_accumulator():
    g = torch.Generator().manual_seed(5)
    args = [torch.randn(2, 1, 16, 16, generator=g), torch.rand(2, 1, 16, 16, generator=g),
            (torch.rand(2, 1, 16, 16, generator=g) > 0.5).float(), torch.rand(2, 1, 16, 16, generator=g)]
    one = MetricAccumulator()
    one.update(*args)
    a, b = MetricAccumulator(), MetricAccumulator()
    a.update(*[t[:1] for t in args])
    b.update(*[t[1:] for t in args])
    merged, whole = a.merge(b).compute(), one.compute()
    assert merged["depth_ssim"] == pytest.approx(whole["depth_ssim"], abs=SSIM_ACROSS_BATCHINGS)
    assert merged == pytest.approx(whole | {"depth_ssim": merged["depth_ssim"]}, rel=1e-6, abs=1e-6)


def test_seed_depth_accuracy_was_one_minus_dssim():
    assert seed_depth_accuracy_to_ssim(0.7497) == pytest.approx(0.4994)
