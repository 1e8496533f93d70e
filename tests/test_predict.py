"""Evaluation (the one loop) and prediction from a checkpoint; the evaluate/predict commands."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from _train_fakes import SIZE, FakeCamels, eval_transform, fake_data, tiny_config
from PIL import Image
from torch import nn

from evacamel import predict
from evacamel.cli import main as cli_main
from evacamel.evaluate import evaluate, format_metrics, predict_samples, score_samples
from evacamel.predict import load_model, predict_pair, prepare_pair
from evacamel.profiles import get_profile
from evacamel.train import TrainConfig, Trainer


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A model that predicts camels (test IoU well above 0), trained under bf16 autocast,
    so that an evaluation not in fp32 would give other numbers than the checkpoint's."""
    out = tmp_path_factory.mktemp("run")
    trainer = Trainer(tiny_config(out, epochs=5, lr=1e-2, amp="bf16"), fake_data(n_train=48),
                      progress=False, verbose=False)
    trainer.fit()
    assert trainer.history[-1]["mask_iou"] > 0.2, trainer.history[-1]["mask_iou"]
    return trainer, out / "best.pt"


class Probe(nn.Module):
    """Records how it is called; returns ``B x 2 x S/2 x S/2`` (mask logits, depth)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(6, 2, 1)
        self.calls: list[dict] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(nn.functional.avg_pool2d(x, 2))
        self.calls.append({"grad": torch.is_grad_enabled(), "training": self.training,
                           "dtype": out.dtype})
        return out


def test_evaluation_runs_in_eval_mode_without_gradients_in_fp32_and_keeps_the_rng():
    probe = Probe().train()
    rng = torch.get_rng_state()
    with torch.autocast("cpu", dtype=torch.bfloat16):  # as in a bf16 training step
        metrics = evaluate(probe, FakeCamels(5, seed=3), eval_transform, batch_size=2)
    assert probe.calls == [{"grad": False, "training": False, "dtype": torch.float32}] * 3
    assert probe.training  # its mode is given back
    assert torch.equal(torch.get_rng_state(), rng)  # training's augmentation RNG untouched
    assert metrics["samples"] == 5 and 0 <= metrics["mask_iou"] <= 1


def test_checkpoint_evaluation_equals_the_trainers_recorded_metrics(trained):
    trainer, ckpt = trained
    model = load_model(ckpt, "cpu")
    metrics = evaluate(model.model, FakeCamels(8, seed=2), model.transform, batch_size=4)
    best = trainer.history[trainer.best["epoch"] - 1]
    assert best["mask_iou"] > 0.1  # the model predicts camels: the numbers mean something
    for key in ("mask_iou", "mask_dice", "mask_accuracy", "depth_ssim", "depth_rmse",
                "depth_rmse_m", "depth_absrel", "depth_delta1"):
        assert metrics[key] == pytest.approx(best[key], rel=1e-6, abs=1e-9), key
    assert metrics["samples"] == 8
    table = format_metrics(metrics)
    assert "mask_iou" in table and "depth_ssim" in table and "accuracy" not in table.split("\n")[0]


def test_evaluation_is_the_fp32_forward_pass_computed_by_hand(trained):
    _, ckpt = trained
    model = load_model(ckpt, "cpu")
    test_set = FakeCamels(8, seed=2)
    x, mask, depth = eval_transform({k: torch.stack([test_set[i][k] for i in range(8)])
                                     for k in ("image", "mask", "depth")})
    with torch.no_grad():
        out = model.model.eval()(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model.model(x).float()
    inter = ((out[:, :1] > 0) & (mask >= 0.5)).sum().item()
    union = ((out[:, :1] > 0) | (mask >= 0.5)).sum().item()
    rmse = float((out[:, 1:].clamp(0, 1) - depth).pow(2).mean().sqrt())
    low_rmse = float((low[:, 1:].clamp(0, 1) - depth).pow(2).mean().sqrt())
    assert abs(low_rmse - rmse) > 1e-4 * rmse  # bf16 would be seen
    metrics = evaluate(model.model, test_set, model.transform)
    assert metrics["mask_iou"] == pytest.approx(inter / union, rel=1e-12)
    assert metrics["depth_rmse"] == pytest.approx(rmse, rel=1e-5)


def test_per_sample_scores_and_predictions_line_up(trained):
    _, ckpt = trained
    model = load_model(ckpt, "cpu")
    test_set = FakeCamels(8, seed=2)
    scores = score_samples(model.model, test_set, model.transform, batch_size=3)
    assert scores["iou"].shape == (8,) and scores["depth_ssim"].shape == (8,)
    assert float(scores["iou"].max()) > 0
    picked = predict_samples(model.model, test_set, model.transform, [5, 1])
    assert picked["fg_bg"].shape == (2, 3, SIZE, SIZE)
    assert picked["mask_prob"].shape == (2, 1, SIZE // 2, SIZE // 2)
    torch.testing.assert_close(picked["iou"], scores["iou"][[5, 1]])
    assert torch.equal(picked["fg_bg"][0], test_set[5]["image"][3:].float() / 255)


def test_evaluating_nothing_is_an_error_not_a_perfect_score(trained, tmp_path, monkeypatch, capsys):
    _, ckpt = trained
    model = load_model(ckpt, "cpu")
    with pytest.raises(ValueError, match="no samples"):
        evaluate(model.model, FakeCamels(0), model.transform)
    monkeypatch.setattr(predict, "open_split", lambda *a, **k: FakeCamels(0))  # an empty split
    assert cli_main(["evaluate", str(ckpt), "--data", str(tmp_path), "--json"]) == 1
    out, err = capsys.readouterr()
    assert "mask_iou" not in out and "NaN" not in out
    assert err.count("\n") == 1 and "no samples" in err


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
    with pytest.raises(ValueError, match="at least"):
        predict_pair(ckpt, torch.zeros(3, 1, 1), torch.zeros(3, 1, 1))


def test_a_full_resolution_model_trains_saves_and_predicts_at_the_input_size(tmp_path):
    """``output_stride=1``: targets at the input size all the way through the checkpoint."""
    trainer = Trainer(tiny_config(tmp_path, epochs=1, output_stride=1), fake_data(n_train=16, output_stride=1),
                      progress=False, verbose=False)
    trainer.fit()
    model = load_model(tmp_path / "last.pt", "cpu")
    assert (model.input_size, model.output_size, model.model.output_stride) == (SIZE, SIZE, 1)
    picked = predict_samples(model.model, FakeCamels(2, seed=2, output_stride=1), model.transform, [0])
    assert picked["mask_prob"].shape[-2:] == (SIZE, SIZE)
    assert TrainConfig.from_profile(get_profile("quick").replace(output_stride=1)).output_stride == 1


def test_predict_pair_is_the_evaluated_prediction(trained):
    _, ckpt = trained
    model = load_model(ckpt, "cpu")
    test_set = FakeCamels(2, seed=2)
    picked = predict_samples(model.model, test_set, model.transform, [1])
    image = test_set[1]["image"]
    pred = predict_pair(model, image[:3], image[3:])  # at the input size: resized back to it
    expected = torch.nn.functional.interpolate(picked["mask_prob"], size=(SIZE, SIZE),
                                               mode="bilinear", antialias=True)
    torch.testing.assert_close(pred.mask_prob, expected[0].clamp(0, 1), rtol=0, atol=1e-6)


def _pair(tmp_path):
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (90, 60, 3), dtype=np.uint8)
    Image.fromarray(arr).save(tmp_path / "bg.png")
    arr[30:50, 20:40] = 240
    Image.fromarray(arr).save(tmp_path / "cam.png")
    return ["--bg", str(tmp_path / "bg.png"), "--fg-bg", str(tmp_path / "cam.png")]


def test_predict_command_writes_mask_depth_and_preview_pngs(trained, tmp_path, capsys):
    _, ckpt = trained
    status = cli_main(["predict", str(ckpt), *_pair(tmp_path), "--out", str(tmp_path / "out")])
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


def test_predict_command_never_overwrites_silently_nor_writes_outside_out(trained, tmp_path, capsys):
    _, ckpt = trained
    pair = _pair(tmp_path)
    out = tmp_path / "out"
    assert cli_main(["predict", str(ckpt), *pair, "--out", str(out)]) == 0
    first = (out / "cam_mask.png").read_bytes()
    capsys.readouterr()
    assert cli_main(["predict", str(ckpt), *pair, "--out", str(out)]) == 1
    assert "exists" in capsys.readouterr().err
    assert cli_main(["predict", str(ckpt), *pair, "--out", str(out), "--overwrite"]) == 0
    assert (out / "cam_mask.png").read_bytes() == first
    Image.open(tmp_path / "bg.png").save(tmp_path / "x_mask.png")  # an input named like an output
    assert cli_main(["predict", str(ckpt), "--bg", str(tmp_path / "x_mask.png"), pair[2], pair[3],
                     "--name", "x", "--out", str(tmp_path), "--overwrite"]) == 1
    assert "input" in capsys.readouterr().err
    for name in ("../../x", "a/b", ".."):  # refused by argparse: usage, exit status 2
        with pytest.raises(SystemExit) as refused:
            cli_main(["predict", str(ckpt), *pair, "--out", str(out), "--name", name])
        assert refused.value.code == 2
        assert "argument --name: must be a plain file name" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bg.png", "cam.png", "out", "x_mask.png"]


class _Code:
    def __reduce__(self):
        return (print, ("code ran while loading",))


def _bad_checkpoints(tmp_path, ckpt):
    files = {"random.pt": np.random.default_rng(0).bytes(2048), "empty.pt": b"",
             "text.pt": b"hello, I am not a checkpoint\n" * 10,
             "code.pt": pickle.dumps({"model": _Code()}, protocol=2)}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    torch.save({"model": _Code()}, tmp_path / "torch_code.pt")
    state = torch.load(ckpt, weights_only=True)
    state["model_config"]["width"] = state["config"]["width"] = 8  # the weights are width 4
    torch.save(state, tmp_path / "wider.pt")
    return [tmp_path / n for n in [*files, "torch_code.pt", "wider.pt"]]


def test_bad_checkpoints_fail_with_one_line_naming_the_file(trained, tmp_path, capsys, monkeypatch):
    _, ckpt = trained
    monkeypatch.setenv("EVACAMEL_DATA", str(tmp_path / "data"))  # no dataset is made for them
    for bad in _bad_checkpoints(tmp_path, ckpt):
        for argv in (["evaluate", str(bad), "--data", str(tmp_path)],
                     ["predict", str(bad), *_pair(tmp_path), "--out", str(tmp_path / "o")],
                     ["train", "--resume", str(bad), "--no-progress"]):
            assert cli_main(argv) == 1, (bad.name, argv[0])
            out, err = capsys.readouterr()
            assert err.count("\n") == 1 and bad.name in err, (bad.name, argv[0], err)
            assert "code ran" not in out
    assert not (tmp_path / "data").exists()
    with pytest.raises(ValueError, match="another width"):
        load_model(tmp_path / "wider.pt")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not an evacamel training checkpoint"):
        load_model(tmp_path / "other.pt")


def test_missing_image_fails_with_one_clear_line(trained, tmp_path, capsys):
    _, ckpt = trained
    assert cli_main(["predict", str(ckpt), "--bg", str(tmp_path / "nope.jpg"),
                     "--fg-bg", str(tmp_path / "nope2.jpg")]) == 1
    err = capsys.readouterr().err
    assert "nope.jpg" in err and err.count("\n") == 1


def test_overview_command_draws_new_scenes(trained, tmp_path, capsys):
    _, ckpt = trained
    out = tmp_path / "fig" / "overview.jpg"
    assert cli_main(["overview", str(ckpt), "--out", str(out), "--scenes", "2", "--size", "96"]) == 0
    with Image.open(out) as img:
        assert img.format == "JPEG" and img.width > 200 and img.height > img.width  # 5 rows x 2
    assert cli_main(["overview", str(tmp_path / "none.pt"), "--out", str(out)]) == 1
    assert "none.pt: no such checkpoint" in capsys.readouterr().err
    with pytest.raises(SystemExit) as refused:  # argparse: usage, exit status 2
        cli_main(["overview", str(ckpt), "--out", str(tmp_path / "x.txt")])
    assert refused.value.code == 2
    assert ".png or .jpg" in capsys.readouterr().err and not (tmp_path / "x.txt").exists()
