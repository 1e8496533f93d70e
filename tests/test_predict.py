"""Evaluation and prediction from a checkpoint (evacamel.predict, evaluate/predict commands)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _train_fakes import SIZE, FakeCamels, fake_data, tiny_config
from PIL import Image

from evacamel.cli import main as cli_main
from evacamel.predict import (evaluate, format_metrics, load_model, predict_pair,
                              predict_samples, prepare_pair, score_samples)
from evacamel.train import Trainer


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    trainer = Trainer(tiny_config(out, epochs=1), fake_data(), progress=False, verbose=False)
    trainer.fit()
    return trainer, out / "best.pt"


def test_checkpoint_alone_rebuilds_the_model(trained):
    trainer, ckpt = trained
    model = load_model(ckpt, device="cpu")
    assert (model.input_size, model.output_size, model.model.width) == (SIZE, SIZE // 2, 4)
    assert model.mean == [0.5] * 6 and model.std == [0.25] * 6
    for (k, a), b in zip(trainer.raw_model.state_dict().items(), model.model.state_dict().values()):
        assert torch.equal(a, b), k
    assert not model.model.training


def test_evaluate_equals_the_trainers_own_evaluation(trained):
    trainer, ckpt = trained
    test_set = FakeCamels(8, seed=2)
    metrics = evaluate(load_model(ckpt, "cpu"), test_set, batch_size=3)
    for key, value in trainer.history[-1].items():
        if key in metrics:
            assert metrics[key] == pytest.approx(value, rel=1e-6, abs=1e-9), key
    assert metrics["samples"] == 8
    table = format_metrics(metrics)
    assert "mask_iou" in table and "depth_ssim" in table and "accuracy" not in table.split("\n")[0]


def test_per_sample_scores_and_predictions_line_up(trained):
    _, ckpt = trained
    model = load_model(ckpt, "cpu")
    test_set = FakeCamels(8, seed=2)
    scores = score_samples(model, test_set, batch_size=3)
    assert scores["iou"].shape == (8,) and scores["depth_ssim"].shape == (8,)
    picked = predict_samples(model, test_set, [5, 1])
    assert picked["fg_bg"].shape == (2, 3, SIZE, SIZE)
    assert picked["mask_prob"].shape == (2, 1, SIZE // 2, SIZE // 2)
    torch.testing.assert_close(picked["iou"], scores["iou"][[5, 1]])
    assert torch.equal(picked["fg_bg"][0], test_set[5]["image"][3:].float() / 255)


def test_prepare_pair_at_the_input_size_is_the_training_input():
    sample = FakeCamels(1, seed=3)[0]
    image = prepare_pair(sample["image"][:3], sample["image"][3:], SIZE)
    assert torch.equal(image[0], sample["image"])
    with pytest.raises(ValueError, match="differ in size"):
        prepare_pair(torch.zeros(3, 10, 10), torch.zeros(3, 12, 10), SIZE)


def test_predict_pair_any_size_returns_maps_at_that_size(trained):
    _, ckpt = trained
    bg = torch.randint(0, 256, (3, 50, 77), dtype=torch.uint8)
    pred = predict_pair(ckpt, bg, bg.float() / 255)
    for t in (pred.mask_prob, pred.mask, pred.depth_m, pred.depth_target):
        assert t.shape == (1, 50, 77)
    assert set(pred.mask.unique().tolist()) <= {0.0, 1.0}
    assert float(pred.depth_m.min()) >= 1.0 and float(pred.depth_m.max()) <= 1000.0
    with pytest.raises(ValueError, match="3 x H x W"):
        predict_pair(ckpt, torch.zeros(50, 77), torch.zeros(50, 77))


def test_predict_command_writes_mask_depth_and_preview_pngs(trained, tmp_path, capsys):
    _, ckpt = trained
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (90, 60, 3), dtype=np.uint8)
    Image.fromarray(arr).save(tmp_path / "bg.png")
    arr[30:50, 20:40] = 240
    Image.fromarray(arr).save(tmp_path / "cam.png")
    status = cli_main(["predict", str(ckpt), "--bg", str(tmp_path / "bg.png"),
                       "--fg-bg", str(tmp_path / "cam.png"), "--out", str(tmp_path / "out")])
    assert status == 0
    mask = Image.open(tmp_path / "out" / "cam_mask.png")
    depth = Image.open(tmp_path / "out" / "cam_depth.png")
    preview = Image.open(tmp_path / "out" / "cam_depth_preview.png")
    assert (mask.mode, mask.size) == ("L", (60, 90))
    assert set(np.unique(np.array(mask)).tolist()) <= {0, 255}
    assert depth.size == (60, 90) and np.array(depth).dtype == np.uint16
    d = np.array(depth).astype(np.float64) / 64
    assert d.min() >= 1.0 - 1 / 64 and d.max() <= 1000.0 + 1 / 64
    assert (preview.mode, preview.size) == ("RGB", (60, 90))
    assert "cam_mask.png" in capsys.readouterr().out


def test_bad_checkpoint_and_missing_image_fail_with_one_clear_line(trained, tmp_path, capsys):
    _, ckpt = trained
    bogus = tmp_path / "bogus.pt"
    bogus.write_bytes(b"not a checkpoint")
    assert cli_main(["evaluate", str(bogus)]) == 1
    assert "bogus.pt" in capsys.readouterr().err
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not an evacamel training checkpoint"):
        load_model(tmp_path / "other.pt")
    assert cli_main(["predict", str(ckpt), "--bg", str(tmp_path / "nope.jpg"),
                     "--fg-bg", str(tmp_path / "nope2.jpg")]) == 1
    assert "nope.jpg" in capsys.readouterr().err


def test_overview_command_draws_new_scenes(trained, tmp_path, capsys):
    _, ckpt = trained
    out = tmp_path / "fig" / "overview.jpg"
    assert cli_main(["overview", str(ckpt), "--out", str(out), "--scenes", "2", "--size", "96"]) == 0
    with Image.open(out) as img:
        assert img.format == "JPEG" and img.width > 200 and img.height > img.width  # 5 rows x 2
    assert cli_main(["overview", str(tmp_path / "none.pt"), "--out", str(out)]) == 1
    assert "none.pt: no such checkpoint" in capsys.readouterr().err
