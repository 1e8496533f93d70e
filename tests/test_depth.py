"""evacamel.depth: conversions, alignment, evaluation, storage mappings, the seed pipeline, estimators."""

from __future__ import annotations

import math

import pytest
import torch

from evacamel.depth_units import FAR_M, NEAR_M, meters_to_target, target_to_meters
from evacamel.depth import (METRIC_DEPTH, RELATIVE_DEPTH, RELATIVE_DISPARITY, DepthModelUnavailable,
                            HFDepthEstimator, align_scale, align_scale_shift, build_tiny_depth_model,
                            depth_errors, depth_to_disparity, disparity_to_depth, evaluate_depth,
                            jpeg_round_trip, seed_depth_pipeline, seed_normalise, to_stored_meters,
                            valid_depth_mask, value_at_depth)
from evacamel.depth.storage import calibrate, needs_calibration, stored_meaning


def _scene(b: int = 3, h: int = 24, w: int = 32, seed: int = 0) -> torch.Tensor:
    """Exact-like depth: sky (FAR_M) in the top rows, terrain from ~300 m down to ~3 m."""
    g = torch.Generator().manual_seed(seed)
    rows = torch.linspace(0, 1, h).view(1, 1, h, 1)
    base = 3.0 * torch.exp((1 - rows) * math.log(100.0))  # 300 m at the top .. 3 m at the bottom
    noise = 1 + 0.2 * torch.rand(b, 1, h, w, generator=g)
    d = (base * noise).expand(b, 1, h, w).clone()
    d[:, :, : h // 5] = FAR_M
    return d


# -- conversions ---------------------------------------------------------------------------


def test_depth_disparity_round_trip_and_limits():
    d = torch.tensor([0.5, 1.0, 10.0, 999.0])
    assert torch.allclose(disparity_to_depth(depth_to_disparity(d)), d, rtol=1e-6)
    assert torch.allclose(depth_to_disparity(torch.tensor([4.0])), torch.tensor([0.25]))
    # zero / negative disparity means "farther than anything": the cap
    assert disparity_to_depth(torch.tensor([0.0, -1.0]), max_depth=500.0).tolist() == [500.0, 500.0]
    assert torch.isfinite(depth_to_disparity(torch.tensor([0.0]))).all()


def test_valid_mask_excludes_sky_nonfinite_and_masked():
    d = torch.tensor([[[[5.0, FAR_M, float("nan"), 0.0, 20.0]]]])
    assert valid_depth_mask(d).tolist() == [[[[True, False, False, False, True]]]]
    m = torch.tensor([[[[1, 1, 1, 1, 0]]]])
    assert valid_depth_mask(d, m).tolist() == [[[[True, False, False, False, False]]]]
    assert valid_depth_mask(d, max_depth=10.0).tolist() == [[[[True, False, False, False, False]]]]


# -- alignment -----------------------------------------------------------------------------


def test_align_recovers_known_scale_and_shift_per_image():
    g = torch.Generator().manual_seed(1)
    pred = torch.rand(4, 1, 16, 16, generator=g, dtype=torch.float64)
    scale = torch.tensor([2.5, -0.3, 1e-2, 40.0], dtype=torch.float64)
    shift = torch.tensor([-1.0, 0.7, 3.0, -12.5], dtype=torch.float64)
    target = scale.view(-1, 1, 1, 1) * pred + shift.view(-1, 1, 1, 1)
    s, t = align_scale_shift(pred.float(), target.float())
    assert s.shape == (4,) and s.dtype == torch.float64
    assert torch.allclose(s, scale, rtol=1e-5, atol=1e-5)
    assert torch.allclose(t, shift, rtol=1e-5, atol=1e-5)


def test_align_ignores_masked_outliers():
    g = torch.Generator().manual_seed(2)
    pred = torch.rand(2, 1, 8, 8, generator=g, dtype=torch.float64)
    target = 3.0 * pred + 0.5
    mask = torch.ones_like(pred, dtype=torch.bool)
    mask[:, :, :2] = False
    target[:, :, :2] = 1e6  # garbage where the mask is off
    target[0, 0, 0, 0] = float("nan")
    s, t = align_scale_shift(pred, target, mask)
    assert torch.allclose(s, torch.full((2,), 3.0, dtype=torch.float64), atol=1e-9)
    assert torch.allclose(t, torch.full((2,), 0.5, dtype=torch.float64), atol=1e-9)
    s_all, _ = align_scale_shift(pred, target.nan_to_num(0.0))  # without the mask the fit is ruined
    assert (s_all - 3.0).abs().min() > 1.0


def test_align_whole_batch_fit_differs_from_per_image():
    pred = torch.rand(2, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    target = torch.cat([2 * pred[:1] + 1, 5 * pred[1:] - 1])
    s, t = align_scale_shift(pred, target)
    assert torch.allclose(s, torch.tensor([2.0, 5.0], dtype=torch.float64), atol=1e-9)
    s1, t1 = align_scale_shift(pred, target, per_image=False)
    assert s1.shape == (2,) and s1[0] == s1[1] and not torch.allclose(s1, s)


def test_align_degenerate_cases():
    pred = torch.ones(2, 1, 4, 4)
    target = torch.arange(32, dtype=torch.float32).view(2, 1, 4, 4)
    s, t = align_scale_shift(pred, target)  # constant prediction: best is the mean
    assert s.tolist() == [0.0, 0.0]
    assert torch.allclose(t, target.double().flatten(1).mean(1))
    s, t = align_scale_shift(torch.rand(1, 1, 4, 4), torch.rand(1, 1, 4, 4), torch.zeros(1, 1, 4, 4))
    assert torch.isnan(s).all() and torch.isnan(t).all()
    with pytest.raises(ValueError, match="shape"):
        align_scale_shift(torch.rand(1, 1, 4, 4), torch.rand(1, 1, 4, 5))


def test_align_scale_only():
    pred = torch.rand(3, 1, 5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) + 0.1
    s = align_scale(pred, 7.0 * pred)
    assert torch.allclose(s, torch.full((3,), 7.0, dtype=torch.float64), atol=1e-9)


# -- evaluation ----------------------------------------------------------------------------


def test_evaluate_disparity_output_with_known_scale_shift_is_perfect():
    exact = _scene()
    disp = depth_to_disparity(exact).double()
    pred = (disp - 0.01) / 4.0  # a network's relative disparity: unknown scale 4 and shift 0.01
    ev = evaluate_depth(pred.float(), exact, output_kind=RELATIVE_DISPARITY)
    assert ev.space == "disparity"
    assert torch.allclose(ev.scale, torch.full((3,), 4.0, dtype=torch.float64), rtol=1e-4)
    assert torch.allclose(ev.shift, torch.full((3,), 0.01, dtype=torch.float64), atol=1e-6)
    assert ev.absrel < 1e-4 and ev.rmse < 1e-2 and ev.delta1 == 1.0
    assert not ev.valid[:, :, 0].any()  # the sky is not scored
    # the same numbers read as depth are wrong: affine in disparity is not affine in depth
    wrong = evaluate_depth(pred.float(), exact, output_kind=RELATIVE_DEPTH)
    assert wrong.space == "depth" and wrong.absrel > 100 * ev.absrel


def test_evaluate_depth_output_with_known_scale_shift_is_perfect():
    exact = _scene()
    pred = 0.5 * exact - 1.0  # affine in depth
    ev = evaluate_depth(pred, exact, output_kind=RELATIVE_DEPTH)
    assert ev.space == "depth"
    assert torch.allclose(ev.scale, torch.full((3,), 2.0, dtype=torch.float64), rtol=1e-5)
    assert torch.allclose(ev.shift, torch.full((3,), 2.0, dtype=torch.float64), rtol=1e-4)
    assert ev.absrel < 1e-5 and ev.delta1 == 1.0
    # read as disparity, the same maps fit badly
    assert evaluate_depth(pred, exact, output_kind=RELATIVE_DISPARITY).absrel > 0.05


def test_evaluate_metric_without_alignment_and_known_errors():
    exact = _scene(b=2)
    ev = evaluate_depth(exact * 1.1, exact, output_kind=METRIC_DEPTH, alignment="none")
    assert ev.absrel == pytest.approx(0.1, rel=1e-5)
    assert ev.delta1 == 1.0
    ev2 = evaluate_depth(exact * 1.3, exact, output_kind=METRIC_DEPTH, alignment="none")
    assert ev2.delta1 == 0.0 and ev2.absrel == pytest.approx(0.3, rel=1e-5)
    assert evaluate_depth(exact * 1.3, exact, output_kind=METRIC_DEPTH, alignment="scale").absrel < 1e-5


def test_evaluate_respects_extra_mask():
    exact = _scene(b=1)
    pred = exact.clone()
    pred[..., :, :8] *= 3  # wrong on the left, right elsewhere
    mask = torch.ones_like(exact, dtype=torch.bool)
    mask[..., :, :8] = False
    assert evaluate_depth(pred, exact, output_kind=METRIC_DEPTH, alignment="none", mask=mask).absrel < 1e-6
    assert evaluate_depth(pred, exact, output_kind=METRIC_DEPTH, alignment="none").absrel > 0.1


def test_depth_errors_by_hand():
    y = torch.tensor([[[[2.0, 4.0]]]])
    p = torch.tensor([[[[3.0, 4.0]]]])
    e = depth_errors(p, y, torch.ones_like(y, dtype=torch.bool))
    assert e["absrel"].item() == pytest.approx(0.25)
    assert e["rmse"].item() == pytest.approx(math.sqrt(0.5))
    assert e["delta1"].item() == pytest.approx(0.5)  # 3/2 = 1.5 >= 1.25
    none = depth_errors(p, y, torch.zeros_like(y, dtype=torch.bool))
    assert torch.isnan(none["absrel"]).all()


def test_evaluate_rejects_bad_input():
    with pytest.raises(ValueError, match="output kind"):
        evaluate_depth(torch.ones(1, 1, 2, 2), torch.ones(1, 1, 2, 2), output_kind="inverse")
    with pytest.raises(ValueError, match="shape"):
        evaluate_depth(torch.ones(1, 1, 2, 2), torch.ones(1, 1, 4, 4), output_kind=METRIC_DEPTH)


# -- the training target ---------------------------------------------------------------------


def test_target_round_trip_reexported():
    import evacamel.depth as depth

    assert depth.meters_to_target is meters_to_target and depth.target_to_meters is target_to_meters
    d = torch.tensor([1.0, 10.0, 100.0, 1000.0])
    t = meters_to_target(d)
    assert torch.allclose(t, torch.tensor([1.0, 2 / 3, 1 / 3, 0.0]), atol=1e-6)
    assert torch.allclose(target_to_meters(t), d, rtol=1e-5)


# -- the seed pipeline ---------------------------------------------------------------------------


def test_seed_normalise_minmax_inverted():
    d = torch.tensor([[[[2.0, 4.0, 6.0]]], [[[20.0, 40.0, 60.0]]]])
    t = seed_normalise(d, METRIC_DEPTH)
    # near = 1, far = 0, and 4 m and 40 m get the same value: meaning lost across images
    assert t.tolist() == [[[[1.0, 0.5, 0.0]]], [[[1.0, 0.5, 0.0]]]]
    disp = seed_normalise(depth_to_disparity(d), RELATIVE_DISPARITY)
    assert disp[0, 0, 0, 0] == 1.0 and disp[0, 0, 0, 2] == 0.0


def test_jpeg_round_trip_loses_precision_and_pipeline_is_inconsistent():
    exact = _scene(b=2, h=64, w=64)
    exact[1] = exact[1] * 3  # the second scene is farther away
    exact[1][exact[1] > FAR_M] = FAR_M
    maps = seed_normalise(exact)
    jpg = jpeg_round_trip(maps, 40)
    assert jpg.shape == maps.shape and jpg.dtype == torch.float32
    err = (jpg - maps).abs()
    assert err.max() > 1 / 255  # compression, not just 8-bit rounding
    assert torch.equal(seed_depth_pipeline(exact), jpg)
    # the same band of exact depth reads differently in the two maps
    v = value_at_depth(jpg, exact, 20.0, 30.0)
    assert v.shape == (2,) and torch.isfinite(v).all()
    t = value_at_depth(meters_to_target(exact), exact, 20.0, 30.0)
    assert (t[0] - t[1]).abs() < 0.02  # a fixed encoding: the same value
    with pytest.raises(ValueError, match="quality"):
        jpeg_round_trip(maps, 0)


# -- storage mappings --------------------------------------------------------------------------


def test_stored_meters_metric_and_seed():
    d = _scene(b=2)
    assert torch.equal(to_stored_meters(d, METRIC_DEPTH), d.clamp(0, FAR_M))
    assert not needs_calibration(METRIC_DEPTH, "auto") and needs_calibration(RELATIVE_DISPARITY, "auto")
    stored = to_stored_meters(d, METRIC_DEPTH, "seed")
    # the training target read back from the stored meters is the seed-style map
    assert torch.allclose(meters_to_target(stored), seed_normalise(d), atol=1e-5)
    assert "min-max" in stored_meaning(METRIC_DEPTH, "seed")


def test_stored_pseudo_meters_for_disparity_keep_affine_disparity():
    g = torch.Generator().manual_seed(3)
    raw = 5 * torch.rand(2, 1, 16, 16, generator=g)
    cal = calibrate(raw)
    assert cal["lo"] < cal["hi"]
    stored = to_stored_meters(raw, RELATIVE_DISPARITY, "auto", cal)
    assert stored.min() >= NEAR_M - 1e-5 and stored.max() <= FAR_M + 1e-3
    inside = (raw > cal["lo"]) & (raw < cal["hi"])
    # 1 / stored is affine in the raw output (between the clip points)
    s, t = align_scale_shift(raw, depth_to_disparity(stored), inside)
    fit = s.view(-1, 1, 1, 1) * raw + t.view(-1, 1, 1, 1)
    assert torch.allclose(fit[inside].float(), depth_to_disparity(stored)[inside], atol=1e-5)
    # the top of the range is 1 m, the bottom the sky
    hi = to_stored_meters(torch.full((1, 1, 1, 1), cal["hi"] + 1), RELATIVE_DISPARITY, "auto", cal)
    lo = to_stored_meters(torch.full((1, 1, 1, 1), cal["lo"] - 1), RELATIVE_DISPARITY, "auto", cal)
    assert hi.item() == pytest.approx(NEAR_M) and lo.item() == pytest.approx(FAR_M)
    with pytest.raises(ValueError, match="calibration"):
        to_stored_meters(raw, RELATIVE_DISPARITY, "auto")
    with pytest.raises(ValueError, match="normalisation"):
        to_stored_meters(raw, RELATIVE_DISPARITY, "minmax")


# -- the transformers estimator -------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    pytest.importorskip("transformers")
    return build_tiny_depth_model(tmp_path_factory.mktemp("tiny-depth"))


def test_tiny_model_estimates_at_input_size(tiny_model):
    est = HFDepthEstimator(tiny_model, device="cpu")
    assert est.output_kind == RELATIVE_DISPARITY
    assert est.describe() == {"kind": "transformers", "model": str(tiny_model), "output": RELATIVE_DISPARITY,
                              "architecture": "DepthAnythingForDepthEstimation"}
    g = torch.Generator().manual_seed(0)
    images = torch.rand(3, 3, 40, 52, generator=g)
    out = est.estimate(images)
    assert out.shape == (3, 1, 40, 52) and out.dtype == torch.float32 and torch.isfinite(out).all()
    assert out.std() > 0
    assert est.estimate(images, size=(16, 16)).shape == (3, 1, 16, 16)
    # batched == one by one (no cross-talk between images of a batch)
    one = torch.cat([est.estimate(images[i:i + 1]) for i in range(3)])
    assert torch.allclose(out, one, atol=1e-4)
    # deterministic weights: the same folder built again gives the same outputs
    with pytest.raises(ValueError, match="B x 3"):
        est.estimate(images[:, :1])


def test_tiny_model_pipeline_scores_and_stores(tiny_model):
    est = HFDepthEstimator(tiny_model, device="cpu")
    exact = _scene(b=2, h=32, w=32)
    images = meters_to_target(exact).expand(-1, 3, -1, -1)  # any picture will do
    out = est.estimate(images)
    ev = evaluate_depth(out, exact, output_kind=est.output_kind)
    assert 0 <= ev.delta1 <= 1 and ev.absrel >= 0 and torch.isfinite(torch.tensor(ev.rmse))
    stored = to_stored_meters(out, est.output_kind, "auto", calibrate(out))
    assert stored.shape == out.shape and (stored >= NEAR_M - 1e-4).all() and (stored <= FAR_M + 1e-3).all()


def test_missing_model_says_what_to_download(tmp_path):
    pytest.importorskip("transformers")
    with pytest.raises(DepthModelUnavailable, match="huggingface-cli download evacamel-test/no-such-model"):
        HFDepthEstimator("evacamel-test/no-such-model", local_files_only=True)
    with pytest.raises(FileNotFoundError, match="no config.json"):
        HFDepthEstimator(tmp_path)
    with pytest.raises(FileNotFoundError, match="not found"):
        HFDepthEstimator(tmp_path / "missing")


def test_missing_transformers_says_what_to_install(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "transformers" or name.startswith("transformers."):
            raise ImportError("No module named 'transformers'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(DepthModelUnavailable, match=r'pip install "evacamel\[depth\]"'):
        HFDepthEstimator("anything")
