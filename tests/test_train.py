"""The Trainer: exact resume, history files, best checkpoint, configuration."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
import torch
from _train_fakes import fake_data, tiny_config

from evacamel.checkpoint import load_checkpoint
from evacamel.profiles import get_profile
from evacamel.train import TrainConfig, Trainer, resolve_amp, resume_config, stop_after


def _run(out, stop_at: int | None = None, **overrides) -> Trainer:
    trainer = Trainer(tiny_config(out, **overrides), fake_data(), progress=False, verbose=False)
    trainer.fit(on_step=stop_after(stop_at) if stop_at else None)
    return trainer


def _assert_same_state(a: Trainer, b: Trainer) -> None:
    wa, wb = a.raw_model.state_dict(), b.raw_model.state_dict()
    assert wa and list(wa) == list(wb)  # zip() below would stop early on a shorter one
    for (name, p), (_, q) in zip(wa.items(), wb.items()):
        assert torch.equal(p, q), f"{name} differs (max {float((p.float() - q.float()).abs().max())})"
    sa, sb = a.optimizer.state_dict()["state"], b.optimizer.state_dict()["state"]
    assert sa and sa.keys() == sb.keys(), "no optimiser state to compare (no step taken?)"
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
    crashed = _run(tmp_path / "resumed", stop_at=stop_at, checkpoint_every=every)
    assert crashed.global_step == stop_at and not crashed.finished
    saved = load_checkpoint(tmp_path / "resumed" / "last.pt")
    assert saved["global_step"] == (4 if every else 3)
    resumed = Trainer.resume(tmp_path / "resumed" / "last.pt", fake_data(), progress=False,
                             verbose=False)
    assert resumed.global_step == saved["global_step"]
    resumed.fit()
    assert resumed.finished
    _assert_same_state(whole, resumed)
    assert _metrics(resumed.history) == _metrics(whole.history)
    final = load_checkpoint(tmp_path / "resumed" / "last.pt")
    assert final["epoch"] == 2 and final["global_step"] == 6


def test_run_folder_has_history_and_checkpoints_that_describe_themselves(tmp_path):
    trainer = _run(tmp_path, epochs=2)
    names = {p.name for p in tmp_path.iterdir()}
    assert names == {"last.pt", "best.pt", "history.csv", "history.json", "config.json"}
    history = json.loads((tmp_path / "history.json").read_text())
    assert [r["epoch"] for r in history["epochs"]] == [1, 2]
    for key in ("train_bce", "train_dssim", "train_l1", "test_loss", "mask_iou", "mask_dice",
                "mask_accuracy", "depth_ssim", "depth_rmse_m", "depth_absrel", "depth_delta1"):
        assert key in history["epochs"][0]
    csv_lines = (tmp_path / "history.csv").read_text().splitlines()
    assert len(csv_lines) == 3 and "mask_iou" in csv_lines[0]
    ckpt = load_checkpoint(tmp_path / "best.pt")
    assert ckpt["model_config"] == {"width": 4, "in_channels": 6, "output_stride": 2,
                                    "input_size": 32, "output_size": 16}
    assert ckpt["normalization"]["mean"] == [0.5] * 6
    assert ckpt["best"]["metric"] == "mask_iou"
    ious = [r["mask_iou"] for r in trainer.history]
    assert ckpt["best"]["epoch"] == 1 + ious.index(max(ious))
    assert json.loads((tmp_path / "config.json").read_text()) == trainer.cfg.as_dict()


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
    cpu = TrainConfig.from_profile("cpu")  # the model for photographs: its output and loss
    assert (cpu.output_stride, cpu.dice_weight) == (get_profile("cpu").output_stride, get_profile("cpu").dice_weight)
    assert cpu.data_profile().output_size == cpu.input_size // cpu.output_stride
    with pytest.raises(ValueError, match="unknown training option"):
        TrainConfig.from_profile("quick", learning_rate=1)
    with pytest.raises(ValueError, match="multiple of 32"):
        TrainConfig.from_profile("quick", input_size=48)


@pytest.mark.parametrize("field, value", [("width", 0), ("warmup", 1.0), ("warmup", -0.1),
                                          ("epochs", 0), ("batch_size", 0), ("lr", 0.0),
                                          ("checkpoint_every", -1), ("augment", "some"),
                                          ("output_stride", 4)])
def test_config_refuses_values_that_cannot_train(tmp_path, field, value):
    with pytest.raises(ValueError, match=field.split("_")[0]):
        tiny_config(tmp_path, **{field: value})


def test_config_is_frozen_and_says_how_long_an_epoch_is(tmp_path):
    cfg = tiny_config(tmp_path)  # batch 8
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.epochs = 5
    longer = dataclasses.replace(cfg, epochs=5)
    assert (cfg.epochs, longer.epochs) == (2, 5)
    assert cfg.steps_per_epoch(24) == cfg.steps_per_epoch(31) == 3  # the rest is dropped
    assert longer.total_steps(24) == 15
    trainer = Trainer(longer, fake_data(n_train=24), progress=False, verbose=False)
    assert (trainer.steps_per_epoch, trainer.total_steps) == (3, 15)
    with pytest.raises(ValueError, match="fewer than one batch"):
        cfg.steps_per_epoch(7)


def test_constructing_a_trainer_builds_no_dataset(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default data/ and runs/ folders would appear here
    cfg = tiny_config(tmp_path / "run", data=str(tmp_path / "dataset"))
    Trainer(cfg, fake_data(), progress=False, verbose=False)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(TypeError):
        Trainer(cfg)  # the data is not optional


def test_on_step_callback_sees_every_step_and_can_stop_the_run(tmp_path):
    seen = []
    trainer = Trainer(tiny_config(tmp_path, checkpoint_every=1), fake_data(), progress=False,
                      verbose=False)
    trainer.fit(on_step=lambda t: seen.append(t.global_step) or t.global_step == 4)
    assert seen == [1, 2, 3, 4] and trainer.global_step == 4 and not trainer.finished
    # stopped as a disconnect: step 4 was not saved, the checkpoint of step 3 was
    assert load_checkpoint(tmp_path / "last.pt")["global_step"] == 3


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


def test_resume_takes_where_and_how_but_refuses_what_changes_the_result(tmp_path):
    _run(tmp_path / "run", stop_at=3, checkpoint_every=1)
    ckpt = tmp_path / "run" / "last.pt"
    moved = Trainer.resume(ckpt, fake_data(), progress=False, verbose=False,
                           changes={"data": str(tmp_path / "elsewhere"), "checkpoint_every": 7})
    assert moved.cfg.data == str(tmp_path / "elsewhere") and moved.cfg.checkpoint_every == 7
    with pytest.raises(ValueError, match="cannot change lr"):
        Trainer.resume(ckpt, fake_data(), progress=False, verbose=False, changes={"lr": 0.5})


def test_resume_writes_beside_the_checkpoint_never_where_the_checkpoint_says(tmp_path):
    _run(tmp_path / "original", stop_at=2, checkpoint_every=1)
    shared = tmp_path / "downloaded"
    shared.mkdir()
    shutil.copyfile(tmp_path / "original" / "last.pt", shared / "last.pt")
    before = sorted(p.name for p in (tmp_path / "original").iterdir())
    assert resume_config(shared / "last.pt").out == str(shared.resolve())
    assert resume_config(shared / "last.pt", out=tmp_path / "x").out == str(tmp_path / "x")
    Trainer.resume(shared / "last.pt", fake_data(), progress=False, verbose=False).fit()
    assert sorted(p.name for p in (tmp_path / "original").iterdir()) == before
    assert {"best.pt", "history.json"} <= {p.name for p in shared.iterdir()}


def test_a_resumed_run_is_not_stopped_by_leftover_temporary_files(tmp_path):
    _run(tmp_path, stop_at=2, checkpoint_every=1)
    (tmp_path / ".best.pt.copy.tmp").mkdir()  # what a full disk left behind (even a folder)
    (tmp_path / ".best.pt.copy.tmp" / "x").write_bytes(b"partial")
    (tmp_path / ".last.pt.abc123.tmp").write_bytes(b"partial")
    resumed = Trainer.resume(tmp_path / "last.pt", fake_data(), progress=False, verbose=False)
    resumed.fit()
    assert resumed.finished
    assert load_checkpoint(tmp_path / "best.pt")["best"] == resumed.best


def test_a_full_disk_while_best_is_copied_leaves_no_temporary_file(tmp_path, monkeypatch):
    from evacamel import checkpoint

    _run(tmp_path, stop_at=4)  # epoch 1 done (steps 1-3): last.pt and best.pt of epoch 1
    best_before = (tmp_path / "best.pt").read_bytes()

    def full_disk(src, dst, length=0):
        dst.write(src.read(100))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint.shutil, "copyfileobj", full_disk)
    resumed = Trainer.resume(tmp_path / "last.pt", fake_data(), progress=False, verbose=False)
    resumed._update_best = lambda row: True  # epoch 2 "improves": best.pt is copied
    with pytest.raises(OSError, match="No space"):
        resumed.fit()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "best.pt", "config.json", "history.csv", "history.json", "last.pt"]
    assert (tmp_path / "best.pt").read_bytes() == best_before
    monkeypatch.undo()
    again = Trainer.resume(tmp_path / "last.pt", fake_data(), progress=False, verbose=False)
    again.fit()
    assert again.finished


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
    assert seed.items == ours.items == 4
    assert trainer.global_step == 0 and trainer.amp_dtype is None  # fp32 on CPU
    assert ours.name == "our loop (uint8, fp32)"


def test_auto_amp_is_bf16_only_where_it_is_native(monkeypatch):
    cuda = torch.device("cuda")
    assert resolve_amp("auto", torch.device("cpu")) is None
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))  # T4
    assert resolve_amp("auto", cuda) is torch.float16
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))  # H100
    assert resolve_amp("auto", cuda) is torch.bfloat16
    assert resolve_amp("fp16", cuda) is torch.float16 and resolve_amp("off", cuda) is None


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory):
    from evacamel.dataset.write import write_dataset

    other = get_profile("quick").replace(n_backgrounds=4, n_camels=4, samples=16, source_size=64,
                                         depth_size=64, camel_size=64)
    return write_dataset(tmp_path_factory.mktemp("data") / "mine", other, progress=False, workers=1)


def test_a_given_complete_dataset_is_used_as_it_is(small_dataset):
    """`evacamel train --data D` trains on D even when its counts differ from the profile's."""
    from evacamel.loading.prepare import training_data

    data = training_data("quick", root=small_dataset, device="cpu", progress=False)
    assert len(data.train_set) + len(data.test_set) == 16
    assert data.train_set[0]["image"].shape == (6, 64, 64)
    assert len(data.mean) == len(data.std) == 6


def test_train_command_stops_resumes_beside_the_checkpoint_and_refuses_bad_arguments(
        small_dataset, tmp_path, capsys):
    from evacamel.cli import main

    run = ["--data", str(small_dataset), "--epochs", "1", "--batch-size", "4", "--width", "4",
           "--no-progress"]
    assert main(["train", *run, "--out", str(tmp_path / "a"), "--stop-after-steps", "2",
                 "--checkpoint-every", "1"]) == 0
    out = capsys.readouterr().out
    assert "stopped after step 2" in out and "--resume" in out  # last.pt: step 1
    assert main(["train", *run, "--out", str(tmp_path / "c"), "--stop-after-steps", "1"]) == 0
    out = capsys.readouterr().out  # no checkpoint yet: nothing to resume from
    assert "before any checkpoint" in out and "--resume" not in out
    assert not (tmp_path / "c" / "last.pt").exists()
    (tmp_path / "b").mkdir()
    shutil.copyfile(tmp_path / "a" / "last.pt", tmp_path / "b" / "last.pt")
    assert main(["train", "--resume", str(tmp_path / "b" / "last.pt"), "--no-progress"]) == 0
    assert "best mask_iou" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["config.json", "last.pt"]
    assert {"best.pt", "history.json"} <= {p.name for p in (tmp_path / "b").iterdir()}
    for bad in (["--width", "0"], ["--warmup", "1"], ["--warmup", "-0.5"], ["--epochs", "0"],
                ["--batch-size", "0"], ["--input-size", "48"], ["--lr", "nan"]):
        with pytest.raises(SystemExit) as info:
            main(["train", *bad])
        assert info.value.code == 2 and f"argument {bad[0]}" in capsys.readouterr().err


def test_a_full_resolution_run_with_dice_resumes_to_the_same_weights(tmp_path):
    """The cpu profile's model (``output_stride=1``, Dice) continues after a disconnect."""
    data = fake_data(output_stride=1)
    options = dict(output_stride=1, dice_weight=10.0)
    whole = Trainer(tiny_config(tmp_path / "whole", **options), data, progress=False, verbose=False)
    whole.fit()
    crashed = Trainer(tiny_config(tmp_path / "resumed", **options), data, progress=False, verbose=False)
    crashed.fit(on_step=stop_after(4))
    cfg = resume_config(tmp_path / "resumed" / "last.pt")
    assert (cfg.output_stride, cfg.dice_weight) == (1, 10.0)
    resumed = Trainer.resume(tmp_path / "resumed" / "last.pt", data, progress=False, verbose=False)
    resumed.fit()
    _assert_same_state(whole, resumed)
    assert "train_dice" in whole.history[-1]


def test_a_checkpoint_from_before_the_dice_term_resumes(tmp_path):
    """Saved by the previous version: one loss sum fewer, history rows without Dice."""
    crashed = _run(tmp_path, stop_at=4)
    path = tmp_path / "last.pt"
    state = load_checkpoint(path)
    state["epoch_sums"] = state["epoch_sums"][:-1]
    for row in state["history"]:
        row.pop("train_dice"), row.pop("test_dice")
    state["config"].pop("dice_weight"), state["config"].pop("output_stride")
    torch.save(state, path)
    resumed = Trainer.resume(path, fake_data(), progress=False, verbose=False)
    resumed.fit()
    assert resumed.finished and crashed.global_step == 4
    header = (tmp_path / "history.csv").read_text().splitlines()[0].split(",")
    assert "train_dice" in header and "mask_iou" in header
