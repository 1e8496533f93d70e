"""The profile's ``data="render"`` switch: training_data -> Trainer -> evaluation, no files."""

from __future__ import annotations

import pytest
import torch

import evacamel.loading.stream as stream_module
from evacamel.loading.prepare import training_data
from evacamel.loading.render import RenderedSplit, plan_seeds
from evacamel.profiles import get_profile
from evacamel.train import TrainConfig, Trainer, stop_after

PROFILE = get_profile("quick").replace(data="render", n_backgrounds=6, n_camels=6, samples=24,
                                       source_size=64, depth_size=64, camel_size=64, input_size=32,
                                       test_fraction=0.34, batch_size=4, width=8)


def test_only_the_full_profile_renders():
    assert get_profile("full").data == "render"
    assert get_profile("quick").data == "files" and get_profile("cpu").data == "files"


def test_render_profile_trains_and_evaluates_without_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # anything written by mistake would land here
    data = training_data(PROFILE, device="cpu", progress=False)
    seeds = plan_seeds(PROFILE)
    assert isinstance(data.train_set, RenderedSplit) and isinstance(data.test_set, RenderedSplit)
    assert (len(data.train_set), len(data.test_set)) == (seeds["train"].samples, seeds["test"].samples)
    assert len(data.train_set) + len(data.test_set) == PROFILE.samples
    cfg = TrainConfig.from_profile(PROFILE, epochs=1, device="cpu", out=str(tmp_path / "run"))
    trainer = Trainer(cfg, data, progress=False, verbose=False)
    trainer.fit(on_step=stop_after(2))
    assert trainer.global_step == 2
    metrics = trainer.evaluate()
    assert 0.0 <= metrics["mask_iou"] <= 1.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no dataset was written


def test_sample_is_a_function_of_its_index():
    data = training_data(PROFILE, device="cpu", progress=False)
    batch = data.train_set.__getitems__([5, 2, 7])
    again = [data.train_set[i] for i in (5, 2, 7)]  # another order, one at a time
    for key in ("image", "mask", "depth"):
        assert torch.equal(batch[key].int(), torch.stack([a[key] for a in again]).int())
    assert not torch.equal(batch["image"][0], batch["image"][1])
    assert batch["image"].dtype == torch.uint8 and batch["image"].shape == (3, 6, 32, 32)
    assert batch["depth"].dtype == torch.uint16 and batch["depth"].shape == (3, 1, 16, 16)


def test_training_pools_hold_no_test_source(monkeypatch):
    rendered: dict[str, list[int]] = {"bg": [], "fg": []}
    real_bg, real_fg = stream_module.render_backgrounds, stream_module.render_camels

    def spy_bg(seeds, *a, **k):
        rendered["bg"].extend(seeds)
        return real_bg(seeds, *a, **k)

    def spy_fg(seeds, *a, **k):
        rendered["fg"].extend(seeds)
        return real_fg(seeds, *a, **k)

    monkeypatch.setattr(stream_module, "render_backgrounds", spy_bg)
    monkeypatch.setattr(stream_module, "render_camels", spy_fg)
    data = training_data(PROFILE, device="cpu", progress=False)
    seeds = plan_seeds(PROFILE)
    train_pool = data.train_set.stream
    assert set(train_pool._backgrounds.seeds) == set(seeds["train"].backgrounds)
    assert set(rendered["bg"]) == set(seeds["train"].backgrounds) | set(seeds["test"].backgrounds)
    assert set(rendered["fg"]) == set(seeds["train"].camels) | set(seeds["test"].camels)
    test_seeds = set(seeds["test"].backgrounds) | set(seeds["test"].camels)
    assert not set(train_pool._backgrounds.seeds) & test_seeds
    assert not {train_pool._seed("camel", j) for j in range(train_pool.n_fg)} & test_seeds
    assert data.test_set.stream.n_bg == len(seeds["test"].backgrounds)


def test_loaders_of_rendered_splits_take_no_workers_and_pin_nothing_made_on_a_gpu():
    from types import SimpleNamespace

    from evacamel.loading.render import loader_options

    cuda = torch.device("cuda")  # only compared, never used: no GPU needed
    on_gpu = RenderedSplit(SimpleNamespace(device=cuda), 8, seed=0)
    on_cpu = RenderedSplit(SimpleNamespace(device=torch.device("cpu")), 8, seed=0)
    assert loader_options(on_gpu, 4, cuda) == (0, False)   # CUDA does not fork; GPU memory is not pinned
    assert loader_options(on_cpu, 4, cuda) == (0, True)
    assert loader_options(torch.utils.data.TensorDataset(torch.zeros(2)), 4, cuda) == (4, True)


def test_a_model_trained_on_rendered_data_is_evaluated_on_the_rendered_test_split(monkeypatch):
    from types import SimpleNamespace

    import evacamel.predict as predict

    calls = []
    monkeypatch.setattr(predict, "rendered_split_of",
                        lambda p, split: calls.append((p.name, p.data, p.input_size, p.output_size, split))
                        or "rendered")
    monkeypatch.setattr(predict, "ensure_dataset", lambda *a, **k: pytest.fail("wrote a dataset"))
    model = SimpleNamespace(info={"config": {"profile": "full", "data": None}}, input_size=128,
                            output_size=64)
    assert predict.open_split(model) == "rendered"
    assert calls == [("full", "render", 128, 64, "test")]


def test_chapters_of_a_rendering_profile_read_a_small_dataset(tmp_path, monkeypatch):
    import evacamel.loading.prepare as prepare
    from evacamel.dataset.format import read_meta

    monkeypatch.setenv("EVACAMEL_DATA", str(tmp_path))
    monkeypatch.setitem(prepare.DEMO_SIZES, "samples", 12)
    monkeypatch.setitem(prepare.DEMO_SIZES, "n_backgrounds", 4)
    monkeypatch.setitem(prepare.DEMO_SIZES, "n_camels", 4)
    root = prepare.chapter_dataset(PROFILE, progress=False)
    assert root == tmp_path / "quick-demo"
    assert read_meta(root)["counts"]["samples"] == 12
    files = prepare.chapter_dataset(PROFILE.replace(data="files", samples=12, n_backgrounds=4,
                                                    n_camels=4), progress=False)
    assert files == tmp_path / "quick"  # a files profile: its own training data's folder


def test_footprint_of_a_rendering_run_counts_no_files():
    from evacamel.footprint import footprint

    rendered = footprint("full", device="cpu", gpu_name="T4", gpu_memory_bytes=15 * 10**9).table()
    assert "no dataset: samples rendered" in rendered and "packed cache" not in rendered
    files = footprint("full", root="data/full", device="cpu").table()  # a dataset named: files
    assert "packed cache" in files and "no dataset" not in files


def test_placements_are_drawn_once_per_sample(monkeypatch):
    from evacamel.loading.render import rendered_split_of

    split = rendered_split_of(PROFILE, "test", device="cpu")
    calls = []
    real = split.stream.draw_sample
    monkeypatch.setattr(split.stream, "draw_sample", lambda g: calls.append(1) or real(g))
    first = split.__getitems__([1, 4])
    again = split.__getitems__([4, 1, 2])
    assert len(calls) == 3  # samples 1 and 4 drawn once, then 2
    assert torch.equal(again["image"][0], first["image"][1]) and torch.equal(again["mask"][1], first["mask"][0])
    with pytest.raises(IndexError):
        split.__getitems__([len(split)])


def test_the_demo_dataset_of_the_full_profile_holds_nothing_its_training_renders():
    """Chapter 06 scores a full-profile model on the demo's test split: those backgrounds and
    camels must be unseen (the demo once shared the plan's seed: 2 of 2 were trained on)."""
    from evacamel.loading.prepare import DEMO_SEED_OFFSET, DEMO_SIZES

    full = get_profile("full")
    trained = plan_seeds(full)["train"]
    demo = plan_seeds(full.replace(**DEMO_SIZES, seed=full.seed + DEMO_SEED_OFFSET))
    for split in ("train", "test"):
        assert not set(demo[split].backgrounds) & set(trained.backgrounds)
        assert not set(demo[split].camels) & set(trained.camels)
