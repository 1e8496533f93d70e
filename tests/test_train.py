"""The Trainer: exact resume, history files, best checkpoint, configuration."""

from __future__ import annotations

import json

import pytest
import torch
from _train_fakes import fake_data, tiny_config

from evacamel.checkpoint import load_checkpoint
from evacamel.profiles import get_profile
from evacamel.train import TrainConfig, Trainer


def _run(out, **overrides) -> Trainer:
    trainer = Trainer(tiny_config(out, **overrides), fake_data(), progress=False, verbose=False)
    trainer.fit()
    return trainer


def _assert_same_state(a: Trainer, b: Trainer) -> None:
    for (name, p), (_, q) in zip(a.raw_model.state_dict().items(), b.raw_model.state_dict().items()):
        assert torch.equal(p, q), f"{name} differs (max {float((p.float() - q.float()).abs().max())})"
    sa, sb = a.optimizer.state_dict()["state"], b.optimizer.state_dict()["state"]
    for k in sa:
        for key in ("exp_avg", "exp_avg_sq"):
            assert torch.equal(sa[k][key], sb[k][key])
    assert a.scheduler.get_last_lr() == b.scheduler.get_last_lr()
    assert a.global_step == b.global_step


def _metrics(history):
    return [{k: v for k, v in row.items() if "seconds" not in k and "per_s" not in k}
            for row in history]


@pytest.mark.parametrize("stop_at, every", [(5, 2), (4, 0)], ids=["mid-epoch", "epoch-boundary"])
def test_interrupted_and_resumed_run_ends_with_the_same_weights(tmp_path, stop_at, every):
    # 24 train samples, batch 8: 3 steps per epoch, 2 epochs. The crash at step 5 loses
    # step 5 (last checkpoint at step 4, mid-epoch 2); the crash at step 4 resumes from
    # the end-of-epoch-1 checkpoint (step 3).
    whole = _run(tmp_path / "whole", checkpoint_every=every)
    crashed = _run(tmp_path / "resumed", checkpoint_every=every, stop_after_steps=stop_at)
    assert crashed.global_step == stop_at
    saved = load_checkpoint(tmp_path / "resumed" / "last.pt")
    assert saved["global_step"] == (4 if every else 3)
    resumed = Trainer.resume(tmp_path / "resumed" / "last.pt", fake_data(), progress=False,
                             verbose=False)
    assert resumed.global_step == saved["global_step"]
    resumed.fit()
    _assert_same_state(whole, resumed)
    assert _metrics(resumed.history) == _metrics(whole.history)
    final = load_checkpoint(tmp_path / "resumed" / "last.pt")
    assert final["epoch"] == 2 and final["global_step"] == 6


def test_run_folder_has_history_and_checkpoints_that_describe_themselves(tmp_path):
    trainer = _run(tmp_path, epochs=2)
    names = {p.name for p in tmp_path.iterdir()}
    assert {"last.pt", "best.pt", "history.csv", "history.json", "config.json"} <= names
    history = json.loads((tmp_path / "history.json").read_text())
    assert [r["epoch"] for r in history["epochs"]] == [1, 2]
    for key in ("train_bce", "train_dssim", "train_l1", "test_loss", "mask_iou", "mask_dice",
                "mask_accuracy", "depth_ssim", "depth_rmse_m", "depth_absrel", "depth_delta1"):
        assert key in history["epochs"][0]
    csv_lines = (tmp_path / "history.csv").read_text().splitlines()
    assert len(csv_lines) == 3 and "mask_iou" in csv_lines[0]
    ckpt = load_checkpoint(tmp_path / "best.pt")
    assert ckpt["model_config"] == {"width": 4, "in_channels": 6, "input_size": 32,
                                    "output_size": 16}
    assert ckpt["normalization"]["mean"] == [0.5] * 6
    assert ckpt["best"]["metric"] == "mask_iou"
    ious = [r["mask_iou"] for r in trainer.history]
    assert ckpt["best"]["epoch"] == 1 + ious.index(max(ious))
    # the loss went down on this easy data
    assert trainer.history[-1]["train_loss"] < trainer.history[0]["train_loss"]


def test_best_checkpoint_follows_one_declared_metric_and_its_direction(tmp_path):
    trainer = Trainer(tiny_config(tmp_path, best_metric="depth_rmse_m"), fake_data(),
                      progress=False, verbose=False)
    assert trainer._update_best({"epoch": 1, "depth_rmse_m": 5.0})
    assert not trainer._update_best({"epoch": 2, "depth_rmse_m": 6.0})  # larger is worse
    assert trainer._update_best({"epoch": 3, "depth_rmse_m": 4.0})
    assert trainer.best == {"metric": "depth_rmse_m", "value": 4.0, "epoch": 3}
    with pytest.raises(ValueError, match="best_metric"):
        tiny_config(tmp_path, best_metric="mean_of_iou_and_ssim")


def test_config_comes_from_the_profile_and_overrides_win():
    p = get_profile("quick")
    cfg = TrainConfig.from_profile("quick", lr=1e-3, epochs=None, schedule="cosine")
    assert (cfg.batch_size, cfg.width, cfg.input_size, cfg.epochs) == (
        p.batch_size, p.width, p.input_size, p.epochs)
    assert cfg.lr == 1e-3 and cfg.schedule == "cosine"
    with pytest.raises(ValueError, match="unknown training option"):
        TrainConfig.from_profile("quick", learning_rate=1)
    with pytest.raises(ValueError, match="multiple of 32"):
        TrainConfig.from_profile("quick", input_size=48)


@pytest.mark.parametrize("schedule", ["onecycle", "cosine", "constant"])
def test_schedules_warm_up_and_end_where_they_should(tmp_path, schedule):
    trainer = Trainer(tiny_config(tmp_path, schedule=schedule, epochs=4, warmup=0.25), fake_data(),
                      progress=False, verbose=False)
    lrs = []
    for _ in range(trainer.total_steps):
        lrs.append(trainer.scheduler.get_last_lr()[0])
        trainer.optimizer.step()
        trainer.scheduler.step()
    peak = max(lrs)
    assert peak == pytest.approx(5e-3, rel=1e-6)
    if schedule == "constant":
        assert min(lrs) == peak
    else:
        assert lrs[0] < peak / 2 and lrs[-1] < peak / 10


def test_resume_refuses_a_different_number_of_epochs(tmp_path):
    trainer = Trainer(tiny_config(tmp_path), fake_data(), progress=False, verbose=False)
    trainer.save("last.pt")
    with pytest.raises(ValueError, match="epochs"):
        Trainer.resume(tmp_path / "last.pt", fake_data(), epochs=5)


def test_every_train_command_option_is_a_config_field():
    import argparse

    from evacamel.commands import train as train_command

    parser = argparse.ArgumentParser()
    train_command.add_arguments(parser)
    fields = set(TrainConfig.__dataclass_fields__)
    assert set(train_command._OPTIONS) <= fields
    args = parser.parse_args(["--epochs", "2", "--lr", "0.01", "--amp", "off", "--resume"])
    assert (args.epochs, args.lr, args.amp, args.resume) == (2, 0.01, "off", "auto")
    assert args.width is None  # not given: the profile's value is kept


def test_bench_train_times_both_loops_with_the_real_training_step():
    from evacamel.bench.train import measure_our_loop, measure_seed_loop

    seed = measure_seed_loop("quick", 1, batch_size=4, device="cpu", warmup=0)
    ours, trainer = measure_our_loop("quick", 1, batch_size=4, device="cpu", warmup=0)
    assert seed.items == ours.items == 4 and seed.seconds > 0 and ours.seconds > 0
    assert trainer.global_step == 0 and trainer.amp_dtype is None  # fp32 on CPU
    assert ours.name == "our loop (uint8, fp32)"


def test_a_given_complete_dataset_is_used_as_it_is(tmp_path):
    """`evacamel train --data D` trains on D even when its counts differ from the profile's."""
    from evacamel.dataset.write import write_dataset
    from evacamel.train import load_data

    other = get_profile("quick").replace(n_backgrounds=4, n_camels=4, samples=16, source_size=64,
                                         depth_size=64, camel_size=64)
    root = write_dataset(tmp_path / "mine", other, progress=False, workers=1)
    cfg = TrainConfig.from_profile("quick", data=str(root), out=str(tmp_path / "run"))
    data = load_data(cfg, torch.device("cpu"))
    assert len(data.train_set) + len(data.test_set) == 16
    assert data.train_set[0]["image"].shape == (6, 64, 64)


def test_resume_takes_where_and_how_but_refuses_what_changes_the_result(tmp_path):
    _run(tmp_path / "run", stop_after_steps=3, checkpoint_every=1)
    ckpt = tmp_path / "run" / "last.pt"
    moved = Trainer.resume(ckpt, fake_data(), progress=False, verbose=False,
                           changes={"data": str(tmp_path / "elsewhere"), "checkpoint_every": 7})
    assert moved.cfg.data == str(tmp_path / "elsewhere") and moved.cfg.checkpoint_every == 7
    with pytest.raises(ValueError, match="cannot change lr"):
        Trainer.resume(ckpt, fake_data(), progress=False, verbose=False, changes={"lr": 0.5})


def test_auto_amp_is_bf16_only_where_it_is_native(monkeypatch):
    from evacamel.train import resolve_amp

    cuda = torch.device("cuda")
    assert resolve_amp("auto", torch.device("cpu")) is None
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))  # T4
    assert resolve_amp("auto", cuda) is torch.float16
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))  # H100
    assert resolve_amp("auto", cuda) is torch.bfloat16
    assert resolve_amp("fp16", cuda) is torch.float16 and resolve_amp("off", cuda) is None
