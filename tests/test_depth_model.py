"""The shipped monocular depth model (evacamel.monodepth), its baselines and ``evacamel depth-model``.

Nothing here downloads: the shipped weights are package data, the datasets are made
from the procedural world.
"""

from __future__ import annotations

import json

import pytest
import torch

from evacamel.cli import main as cli_main
from evacamel.dataset.format import read_index, read_meta
from evacamel.dataset.write import write_dataset
from evacamel.depth import ConstantDepth, ExactDepth, RowMeanDepth, training_baselines
from evacamel.depth_units import FAR_M, meters_to_target
from evacamel.monodepth import (SHIPPED_RECORD, SHIPPED_WEIGHTS, MonoDepthEstimator, format_scores,
                                heldout_sample_dataset, heldout_scores, shipped_record)
from evacamel.profiles import get_profile

# How close a fresh evaluation of the shipped weights must come to the recorded score.
# The weights are stored in fp16 and run in float32 on the CPU either way, so the model
# itself reproduces to ~1e-6; what can move a score is the dataset's JPEG codec (another
# libjpeg may round a few composites' pixels differently) and float summation order.
# Both move AbsRel by well under 1% and delta1 by a few pixels in 10^5. A real change
# (a wrong normalisation, untrained weights, a model that ignores the picture) moves
# delta1 by 0.05 or more and AbsRel by tens of percent: see the tests below.
DELTA1_TOL = 0.005
ABSREL_REL_TOL = 0.02


@pytest.fixture(scope="module")
def heldout_sample(tmp_path_factory):
    """The record's held-out sample dataset, made again here (about 10 s of CPU)."""
    record = shipped_record()
    folder = tmp_path_factory.mktemp("heldout-sample") / "data"
    return heldout_sample_dataset(record["heldout_sample"]["profile"], folder,
                                  record["heldout_sample"]["dataset_samples"])


def test_shipped_weights_are_small_fp16_package_data():
    state = torch.load(SHIPPED_WEIGHTS, map_location="cpu", weights_only=True)
    floats = [v for v in state["model"].values() if v.is_floating_point()]
    assert floats and all(v.dtype == torch.float16 for v in floats)
    assert SHIPPED_WEIGHTS.stat().st_size < 3_000_000
    record = json.loads(SHIPPED_RECORD.read_text())
    assert record["command"].startswith("evacamel depth-model")
    assert record["weights_bytes"] == SHIPPED_WEIGHTS.stat().st_size
    assert record["training"]["seconds"] > 0


def test_shipped_model_reproduces_its_recorded_heldout_score(heldout_sample):
    recorded = shipped_record()["heldout_sample"]
    n = int(read_meta(heldout_sample)["counts"]["test"])
    assert n == recorded["samples"]
    now = heldout_scores({"model": MonoDepthEstimator.shipped()}, heldout_sample, n)["model"]
    for key, value in recorded["scores"].items():
        if key.endswith("delta1"):
            assert now[key] == pytest.approx(value, abs=DELTA1_TOL), key
        elif key.endswith("absrel"):
            assert now[key] == pytest.approx(value, rel=ABSREL_REL_TOL), key


def test_shipped_model_beats_both_baselines_on_the_heldout_sample(heldout_sample):
    n = int(read_meta(heldout_sample)["counts"]["test"])
    est = {**training_baselines(heldout_sample), "model": MonoDepthEstimator.shipped()}
    scores = heldout_scores(est, heldout_sample, n)
    model = scores["model"]
    for name in ("constant training mean", "per-row training mean"):
        assert model["ground/no fit/delta1"] > scores[name]["ground/no fit/delta1"], name
        assert model["ground/no fit/absrel"] < scores[name]["ground/no fit/absrel"], name
    assert "per-row training mean" in format_scores(scores)


def test_a_wrongly_normalised_model_misses_the_recorded_score(heldout_sample):
    """The tolerance above is tight enough to notice a broken input pipeline."""
    recorded = shipped_record()["heldout_sample"]["scores"]
    est = MonoDepthEstimator.shipped()
    est.mean = torch.zeros_like(est.mean)  # as if normalisation were forgotten
    est.std = torch.ones_like(est.std)
    n = int(read_meta(heldout_sample)["counts"]["test"])
    now = heldout_scores({"m": est}, heldout_sample, n)["m"]
    assert abs(now["ground/no fit/delta1"] - recorded["ground/no fit/delta1"]) > 10 * DELTA1_TOL


def test_estimator_shapes_range_and_errors(tmp_path):
    est = MonoDepthEstimator.shipped()
    images = torch.rand(2, 3, 50, 70)
    out = est.estimate(images)
    assert out.shape == (2, 1, 50, 70) and out.dtype == torch.float32
    assert float(out.min()) >= 1.0 and float(out.max()) <= FAR_M
    assert est.estimate(images, size=16).shape == (2, 1, 16, 16)
    with pytest.raises(ValueError, match="B x 3 x H x W"):
        est.estimate(torch.rand(2, 6, 32, 32))
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="bad.pt"):
        MonoDepthEstimator.load(bad)
    with pytest.raises(FileNotFoundError, match="depth-model"):
        MonoDepthEstimator.load(tmp_path / "missing.pt")


def test_baselines_are_the_training_means_of_the_scored_pixels():
    rows = torch.tensor([0.0, 0.5, 0.8])  # a sky row, then two ground rows
    est = RowMeanDepth(rows)
    out = est.estimate(None, size=(3, 2), keys=["a", "b"])
    assert out.shape == (2, 1, 3, 2)
    assert torch.allclose(meters_to_target(out[0, 0, :, 0]), rows, atol=1e-6)
    const = ConstantDepth(0.5).estimate(torch.zeros(1, 3, 4, 4))
    assert torch.allclose(meters_to_target(const), torch.full((1, 1, 4, 4), 0.5), atol=1e-6)


def test_baselines_are_fitted_on_the_training_split_without_the_sky(tmp_path):
    root = write_dataset(tmp_path / "d", get_profile("quick").replace(n_backgrounds=4, n_camels=4, samples=16),
                         progress=False)
    keys = [r["depth_map_paths"] for r in read_index(root) if r["split"] == "train"]
    depth = ExactDepth(root).estimate(None, size=128, keys=keys)
    target = meters_to_target(depth).double()
    ground = depth < FAR_M
    base = training_baselines(root)
    constant = meters_to_target(base["constant training mean"].estimate(None, size=1, keys=["k"]))
    assert float(constant) == pytest.approx(float(target[ground].mean()), abs=1e-5)
    per_row = meters_to_target(base["per-row training mean"].estimate(None, size=128, keys=["k"]))[0, 0, :, 0]
    row = 100  # a ground row in every scene
    assert bool(ground[:, :, row].all())
    assert float(per_row[row]) == pytest.approx(float(target[:, :, row].mean()), abs=1e-5)


def test_depth_model_command_at_toy_size(tmp_path, capsys):
    """``evacamel depth-model`` end to end: one epoch on a tiny dataset, weights and record written."""
    data = write_dataset(tmp_path / "tiny", get_profile("quick").replace(n_backgrounds=4, n_camels=4, samples=48),
                         progress=False)
    out = tmp_path / "model"
    rc = cli_main(["depth-model", "--data", str(data), "--out", str(out), "--epochs", "1",
                   "--heldout-sample", "0", "--no-progress"])
    assert rc == 0
    record = json.loads((out / "mono_depth.json").read_text())
    assert record["training"]["config"]["in_channels"] == 3
    assert record["training"]["config"]["mask_weight"] == 0.0
    assert record["heldout_split"]["samples"] == read_meta(data)["counts"]["test"]
    assert set(record["heldout_split"]["scores"]) == set(shipped_record()["heldout_split"]["scores"])
    est = MonoDepthEstimator.load(out / "mono_depth.pt")
    assert est.estimate(torch.rand(1, 3, 64, 64)).shape == (1, 1, 64, 64)
    assert "mono_depth.pt" in capsys.readouterr().out


def test_shipped_files_are_declared_package_data():
    """A wheel carries the weights and the record: pyproject lists both (checked as text: py3.10 has no tomllib)."""
    pyproject = (SHIPPED_WEIGHTS.parents[2] / "pyproject.toml").read_text()
    line = next(x for x in pyproject.splitlines() if x.startswith("evacamel = ["))
    for f in (SHIPPED_WEIGHTS, SHIPPED_RECORD):
        assert f"weights/{f.name}" in line and f.is_file()


def test_train_config_takes_3_or_6_input_channels():
    from evacamel.train import TrainConfig

    assert TrainConfig(in_channels=3).in_channels == 3
    with pytest.raises(ValueError, match="in_channels"):
        TrainConfig(in_channels=4)
