"""Exact statistics: equal to numpy over the whole split, cached in meta.json, the table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from evacamel.bench.loader import write_sample_dataset
from evacamel.loading.files import FolderDataset
from evacamel.loading.pack import pack_dataset
from evacamel.loading.stats import (KINDS, SEED_STATS, Histograms, compute_stats, ensure_stats,
                                 read_stats, stats_table)
from evacamel.profiles import get_profile

S = 32


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return write_sample_dataset(tmp_path_factory.mktemp("st") / "ds", 16, 64)


def _numpy_stats(folder: Path, split: str) -> dict:
    """The reference: numpy over the whole split in float64."""
    manifest = json.loads((folder / "manifest.json").read_text())
    rows = manifest["splits"][split]
    image = np.load(folder / "image.npy")[rows].astype(np.float64) / 255
    mask = np.load(folder / "mask.npy")[rows].astype(np.float64) / 255
    depth = np.load(folder / "depth.npy")[rows].astype(np.float64) / 65535
    return {"bg": (image[:, :3].mean((0, 2, 3)), image[:, :3].std((0, 2, 3))),
            "fg_bg": (image[:, 3:].mean((0, 2, 3)), image[:, 3:].std((0, 2, 3))),
            "mask": (mask.mean((0, 2, 3)), mask.std((0, 2, 3))),
            "depth": (depth.mean((0, 2, 3)), depth.std((0, 2, 3)))}


@pytest.mark.parametrize("workers", [1, 2])
def test_packed_stats_equal_numpy(root, workers):
    folder = pack_dataset(root, S, workers=0, progress=False)
    for split in ("train", "test"):
        stats = compute_stats(folder, split, workers=workers)
        ref = _numpy_stats(folder, split)
        assert stats["count"] == len(json.loads((folder / "manifest.json").read_text())["splits"][split])
        for kind in KINDS:
            np.testing.assert_allclose(stats[kind]["mean"], ref[kind][0], rtol=0, atol=1e-6)
            np.testing.assert_allclose(stats[kind]["std"], ref[kind][1], rtol=0, atol=1e-6)
    assert stats["fg_bg"]["mean"] != stats["bg"]["mean"]  # the camel changes fg_bg


def test_file_dataset_and_batches_give_the_same(root):
    folder = pack_dataset(root, S, workers=0, progress=False)
    packed = compute_stats(folder, "train", workers=1)
    files = compute_stats(FolderDataset(root, "train", input_size=S), "train")
    ds = FolderDataset(root, "train", input_size=S)
    batches = compute_stats([{k: torch.stack([ds[i][k] for i in range(j, min(j + 3, len(ds)))])
                              for k in ("image", "mask", "depth")} for j in range(0, len(ds), 3)])
    for kind in KINDS:
        assert files[kind] == packed[kind] == batches[kind]


def test_histograms_exact_on_known_values():
    h = Histograms()
    image = torch.zeros(6, 2, 2, dtype=torch.uint8)
    image[3:] = 255  # fg_bg white, bg black
    mask = torch.tensor([[[0, 255], [0, 255]]], dtype=torch.uint8)
    depth = torch.full((1, 2, 2), 65535, dtype=torch.int32).to(torch.uint16)
    h.add_sample(image, mask, depth)
    m = h.moments()
    assert m["bg"]["mean"] == [0.0] * 3 and m["fg_bg"]["mean"] == [1.0] * 3
    assert m["mask"]["mean"] == [0.5] and m["mask"]["std"] == [0.5]
    assert m["depth"]["mean"] == [1.0] and m["depth"]["std"] == [0.0]
    with pytest.raises(ValueError, match="empty"):
        Histograms().moments()


def test_ensure_stats_caches_in_meta_json(root, tmp_path):
    import shutil

    ds = tmp_path / "ds"
    shutil.copytree(root, ds)
    profile = get_profile("quick").replace(input_size=S)
    before = json.loads((ds / "meta.json").read_text())
    stats = ensure_stats(profile, root=ds)
    after = json.loads((ds / "meta.json").read_text())
    assert after["stats"] == stats == read_stats(ds)
    assert {k: v for k, v in after.items() if k != "stats"} == before  # nothing else changed
    assert not list(ds.glob(".meta.json*"))  # no temporary left behind
    assert stats["split"] == "train" and stats["input_size"] == S
    # cached: a second call does not recompute (poison the cache to see it is reused)
    after["stats"]["mask"]["mean"] = [0.123]
    (ds / "meta.json").write_text(json.dumps(after))
    assert ensure_stats(profile, root=ds)["mask"]["mean"] == [0.123]
    assert ensure_stats(profile, root=ds, recompute=True)["mask"]["mean"] == stats["mask"]["mean"]
    # other sizes: recomputed
    assert ensure_stats(profile.replace(input_size=16), root=ds)["input_size"] == 16


def test_table_rows_in_the_right_order():
    table = stats_table(SEED_STATS)
    lines = table.splitlines()
    titles = [line.split("|")[1].strip() for line in lines[2:]]
    assert titles == ["FG-BG Images", "BG Images", "Masks", "Depth Maps"]
    # the seed's README had these two rows swapped: masks cover ~9% of pixels
    assert "| Masks | 1024 X 1024 | 1 | NA | NA | NA | 0.0903 |" in table
    assert "| Depth Maps | 512 X 512 | 1 | NA | NA | NA | 0.6289 |" in table
    assert lines[0].startswith("| Image Type | Size | No of channels | Mean_R")


def test_stats_command_prints_table(root, tmp_path, capsys):
    import shutil

    from evacamel.cli import main

    ds = tmp_path / "ds"
    shutil.copytree(root, ds)
    assert main(["stats", "--profile", "quick", "--root", str(ds), "--seed-table"]) == 0
    out = capsys.readouterr().out
    assert out.index("FG-BG Images") < out.index("BG Images") < out.index("Masks") < out.index("Depth Maps")
    assert "stats" in json.loads((ds / "meta.json").read_text())


def test_cached_stats_are_recomputed_when_the_dataset_changes(root, tmp_path):
    import shutil

    ds = tmp_path / "ds"
    shutil.copytree(root, ds)
    profile = get_profile("quick").replace(input_size=S)
    first = ensure_stats(profile, root=ds)
    meta = json.loads((ds / "meta.json").read_text())
    meta["stats"]["mask"]["mean"] = [0.5]  # marker: reused while the dataset is unchanged
    (ds / "meta.json").write_text(json.dumps(meta))
    assert ensure_stats(profile, root=ds)["mask"]["mean"] == [0.5]
    meta["depth"]["source"] = "a monocular estimator"  # e.g. `evacamel depth` rewrote it
    (ds / "meta.json").write_text(json.dumps(meta))
    again = ensure_stats(profile, root=ds)
    assert again["mask"]["mean"] == first["mask"]["mean"] and again["source"] != first["source"]
