"""The baselines: what they predict, that they are fitted on the fitting split only, the table."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from evacamel.baselines import (BASELINES, _best_threshold, evaluate_baselines, fit_baselines,
                                format_comparison)
from evacamel.bench.loader import write_sample_dataset
from evacamel.dataset.format import read_index
from evacamel.loading.loader import open_dataset
from evacamel.loading.transforms import batch_to_float
from evacamel.loading.batch import collate_samples

S = 64  # files are 64 px: the baselines see them unresized


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Path:
    """PNG pairs: fg_bg is bg with the camel pasted, nothing else differs (no noise)."""
    return write_sample_dataset(tmp_path_factory.mktemp("clean") / "ds", 16, S, image_format="png")


def _targets(root: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    ds = open_dataset(root, split, input_size=S, output_size=S)
    _, mask, depth = batch_to_float(collate_samples([ds[i] for i in range(len(ds))]))
    return mask, depth


def test_difference_finds_a_pasted_camel_exactly(clean):
    rows = evaluate_baselines(clean, input_size=S, output_size=S)
    diff = rows["difference |fg_bg - bg|"]
    assert diff["mask_iou"] == 1.0
    assert 0 < diff["mask_threshold"] < 0.2
    assert math.isnan(diff["depth_ssim"])
    assert list(rows) == list(BASELINES)
    assert all(r["samples"] == 4.0 for r in rows.values())  # the test split: one background


def test_all_background_scores_accuracy_but_no_iou(clean):
    mask, _ = _targets(clean, "test")
    bg = evaluate_baselines(clean, input_size=S, output_size=S)["all background"]
    assert bg["mask_iou"] == 0.0
    assert bg["mask_accuracy"] == pytest.approx(float((mask < 0.5).float().mean()))
    assert math.isnan(bg["depth_rmse_m"])


def test_depth_baselines_are_the_fitting_split_means(clean):
    _, depth = _targets(clean, "train")
    rows = evaluate_baselines(clean, "train", fit_split="train", input_size=S, output_size=S)
    constant, per_row = rows["constant depth"], rows["per-row mean depth"]
    # scored on the split it was fitted on, the mean's RMSE is the targets' std
    assert constant["depth_rmse"] == pytest.approx(float(depth.double().std(unbiased=False)),
                                                   rel=1e-5)
    row_std = (depth.double() - depth.double().mean((0, 1, 3), keepdim=True)).pow(2).mean().sqrt()
    assert per_row["depth_rmse"] == pytest.approx(float(row_std), rel=1e-5)
    assert per_row["depth_rmse"] < constant["depth_rmse"]  # the ground recedes up the picture
    assert math.isnan(constant["mask_iou"])


def test_threshold_never_sees_the_scored_labels(clean, tmp_path):
    root = tmp_path / "ds"
    shutil.copytree(clean, root)
    before = evaluate_baselines(root, input_size=S, output_size=S)["difference |fg_bg - bg|"]
    for row in read_index(root):
        if row["split"] == "test":  # the scored split's labels say: no camel anywhere
            Image.fromarray(np.zeros((S, S), np.uint8), "L").save(root / row["mask_paths"])
    after = evaluate_baselines(root, input_size=S, output_size=S)["difference |fg_bg - bg|"]
    assert after["mask_threshold"] == before["mask_threshold"]
    assert after["mask_iou"] == 0.0
    refit = fit_baselines(root, "test", input_size=S, output_size=S)
    assert refit.threshold != before["mask_threshold"]  # fitted on those labels it would move


def test_best_threshold_by_hand():
    camel = torch.zeros(512, dtype=torch.float64)
    ground = torch.zeros(512, dtype=torch.float64)
    camel[100], camel[10] = 90, 10     # most camel pixels differ strongly
    ground[5], ground[50] = 1000, 5    # the ground barely, a few pixels more
    # levels >= 51..100: IoU 90/100; >= 11..50: 90/105; >= 6..10: 100/105 (best, the
    # first of equals is taken); >= 0..5: 100/1105
    assert _best_threshold(camel, ground) == 6 / 512


def test_format_comparison_fits_a_column():
    rows = {"network": {"mask_iou": 0.8512, "depth_rmse_m": 12.3, "depth_absrel": 0.2,
                        "depth_delta1": 0.6, "depth_ssim": 0.9},
            "difference |fg_bg - bg|": {"mask_iou": 0.61, "depth_ssim": math.nan}}
    text = format_comparison(rows)
    lines = text.splitlines()
    assert all(len(line) <= 80 for line in lines)
    assert "0.851" in lines[1] and "12.300" in lines[1]
    assert lines[2].startswith("difference |fg_bg - bg|") and lines[2].split()[-1] == "-"
    assert lines[2].split()[-5] == "0.610"
