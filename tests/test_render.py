"""Training data rendered on the device: the dataset plan's split, held out, deterministic."""

from __future__ import annotations

import torch

from evacamel.dataset.format import read_sources
from evacamel.dataset.write import ensure_dataset
from evacamel.loading.render import plan_seeds, render_split, rendered_training_data
from evacamel.profiles import get_profile

PROFILE = get_profile("quick").replace(n_backgrounds=6, n_camels=6, samples=24, source_size=64,
                                       depth_size=64, camel_size=64, input_size=32,
                                       test_fraction=0.34)


def _all(data) -> dict[str, torch.Tensor]:
    return data.__getitems__(list(range(len(data))))


def _equal(a, b) -> bool:
    x, y = _all(a), _all(b)
    return all(torch.equal(x[k].int(), y[k].int()) for k in ("image", "mask", "depth"))


def test_split_is_the_written_datasets(tmp_path):
    root = ensure_dataset(PROFILE, tmp_path / "ds", progress=False, workers=1)
    sources = read_sources(root)
    seeds = plan_seeds(PROFILE)
    for kind, key in (("backgrounds", "backgrounds"), ("camels", "camels")):
        for split in ("train", "test"):
            written = [r["seed"] for r in sources[kind] if r["split"] == split]
            assert getattr(seeds[split], key) == written
    assert not set(seeds["train"].backgrounds) & set(seeds["test"].backgrounds)
    assert not set(seeds["train"].camels) & set(seeds["test"].camels)
    assert seeds["test"].backgrounds and seeds["test"].camels


def test_rendered_data_is_deterministic_and_held_out():
    one = rendered_training_data(PROFILE, train_samples=10, test_samples=6, device="cpu", pool=3)
    two = rendered_training_data(PROFILE, train_samples=10, test_samples=6, device="cpu", pool=3)
    assert len(one.train_set) == 10 and len(one.test_set) == 6
    assert _equal(one.train_set, two.train_set) and _equal(one.test_set, two.test_set)
    assert not torch.equal(_all(one.train_set)["image"][:6], _all(one.test_set)["image"])  # the splits differ
    other = rendered_training_data(PROFILE, train_samples=10, test_samples=6, device="cpu",
                                   pool=3, seed=5)
    assert not _equal(one.train_set, other.train_set)
    assert len(one.mean) == 6 and all(s > 0 for s in one.std)
    batch = one.train_set.__getitems__([0, 3])
    assert batch["image"].shape == (2, 6, 32, 32) and batch["image"].dtype == torch.uint8
    assert batch["depth"].shape == (2, 1, 16, 16) and batch["depth"].dtype == torch.uint16


def test_training_split_renders_only_training_sources(monkeypatch):
    import evacamel.loading.stream as stream

    rendered: list[int] = []
    real_bg, real_fg = stream.render_backgrounds, stream.render_camels

    def spy_bg(seeds, *a, **k):
        rendered.extend(seeds)
        return real_bg(seeds, *a, **k)

    def spy_fg(seeds, *a, **k):
        rendered.extend(seeds)
        return real_fg(seeds, *a, **k)

    monkeypatch.setattr(stream, "render_backgrounds", spy_bg)
    monkeypatch.setattr(stream, "render_camels", spy_fg)
    seeds = plan_seeds(PROFILE)
    data = render_split(PROFILE, seeds["train"], 8, seed=0, device="cpu", batch_size=4, pool=2)
    assert len(data) == 8 and rendered
    train = set(seeds["train"].backgrounds) | set(seeds["train"].camels)
    test = set(seeds["test"].backgrounds) | set(seeds["test"].camels)
    assert set(rendered) <= train and not set(rendered) & test
