"""Datasets over a folder and over zip parts, and make_loader."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from evacamel.bench.loader import write_sample_dataset
from evacamel.loading.files import FolderDataset, ZipDataset, find_zip_parts
from evacamel.loading.loader import LoaderOptions, make_loader, open_dataset
from evacamel.depth_units import meters_to_target, png_to_meters
from evacamel.loading.batch import collate_samples
from evacamel.loading.pack import PackedDataset, pack_dataset
from evacamel.profiles import get_profile

S = 32  # input size for 64 px files: a factor-2 area resize, output 16 (factor 4)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return write_sample_dataset(tmp_path_factory.mktemp("tiny") / "ds", 12, 64)


def _zip_folder(root: Path, out: Path, prefix: str = "") -> Path:
    """Zip the dataset's files (the index too) under an optional top folder."""
    with zipfile.ZipFile(out, "w") as zf:
        for p in sorted(root.rglob("*")):
            if p.is_file() and not p.name.endswith(".zip"):
                zf.write(p, prefix + p.relative_to(root).as_posix())
    return out


def test_sample_format_and_values(tiny):
    ds = FolderDataset(tiny, "train", input_size=S)
    s = ds[0]
    assert s["image"].dtype == torch.uint8 and s["image"].shape == (6, S, S)
    assert s["mask"].dtype == torch.uint8 and s["mask"].shape == (1, S // 2, S // 2)
    assert s["depth"].dtype == torch.uint16 and s["depth"].shape == (1, S // 2, S // 2)
    row = ds.rows[ds.row_ids[0]]
    # images: bg first, then fg_bg, each an exact 2x2 box average of the decoded file
    for k, col in enumerate(("selected_bg_paths", "fg_bg_paths")):
        full = torch.from_numpy(np.array(Image.open(tiny / row[col]).convert("RGB")))
        full = full.permute(2, 0, 1).float()[None]
        expect = F.avg_pool2d(full, 2).round().to(torch.uint8)[0]
        assert torch.equal(s["image"][3 * k:3 * k + 3], expect)
    # mask: 4x4 box average of 0/255, so edges are fractional
    mask = torch.from_numpy(np.array(Image.open(tiny / row["mask_paths"]))).float()[None, None]
    assert torch.equal(s["mask"], F.avg_pool2d(mask, 4).round().to(torch.uint8)[0])
    assert set(s["mask"].unique().tolist()) - {0, 255}, "area resizing leaves fractional edges"
    # depth: png -> meters -> target, averaged, * 65535
    png = np.asarray(Image.open(tiny / row["depth_map_paths"])).astype(np.int32)
    target = F.avg_pool2d(meters_to_target(png_to_meters(png))[None, None], 4)
    assert torch.equal(s["depth"].to(torch.int32), (target * 65535).round().to(torch.int32)[0])


def test_splits_are_disjoint_and_complete(tiny):
    train = FolderDataset(tiny, "train", input_size=S)
    test = FolderDataset(tiny, "test", input_size=S)
    everything = FolderDataset(tiny, "all", input_size=S)
    assert len(train) > 0 and len(test) > 0
    assert sorted(train.row_ids + test.row_ids) == everything.row_ids
    bg_train = {train.rows[i]["bg_id"] for i in train.row_ids}
    bg_test = {test.rows[i]["bg_id"] for i in test.row_ids}
    assert not bg_train & bg_test
    with pytest.raises(ValueError, match="unknown split"):
        FolderDataset(tiny, "val", input_size=S)


def test_zip_dataset_equals_folder_and_extracts_nothing(tiny, tmp_path):
    parts = tmp_path / "parts"
    parts.mkdir()
    _zip_folder(tiny, parts / "dataset_0.zip", prefix="dataset_0/")
    before = sorted(p.name for p in parts.iterdir())
    folder = FolderDataset(tiny, "test", input_size=S)
    zipped = ZipDataset(parts, "test", input_size=S)
    assert len(zipped) == len(folder)
    for i in range(len(folder)):
        a, b = folder[i], zipped[i]
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert sorted(p.name for p in parts.iterdir()) == before  # nothing extracted
    assert find_zip_parts(parts) == [parts / "dataset_0.zip"]


def test_zip_dataset_in_worker_processes(tiny, tmp_path):
    """Each worker opens its own ZipFile handles (lazily, after the fork)."""
    archive = _zip_folder(tiny, tmp_path / "all.zip")
    ds = ZipDataset([archive], "all", input_size=S)
    ds[0]  # open a handle in the parent first: workers must not reuse it
    loader = torch.utils.data.DataLoader(ds, batch_size=3, num_workers=2,
                                         collate_fn=collate_samples)
    got = torch.cat([b["image"] for b in loader])
    expect = torch.stack([ds[i]["image"] for i in range(len(ds))])
    assert torch.equal(got, expect)


def test_missing_file_is_named(tiny, tmp_path):
    root = tmp_path / "broken"
    shutil.copytree(tiny, root)
    ds = FolderDataset(root, "all", input_size=S)
    victim = root / ds.rows[0]["mask_paths"]
    victim.unlink()
    with pytest.raises(FileNotFoundError, match=victim.name):
        ds[0]
    (root / ds.rows[1]["fg_bg_paths"]).write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match=Path(ds.rows[1]["fg_bg_paths"]).name):
        ds[1]


def test_open_dataset_prefers_current_packed_cache(tiny, tmp_path):
    root = tmp_path / "ds"
    shutil.copytree(tiny, root)
    assert isinstance(open_dataset(root, "train", input_size=S), FolderDataset)
    pack_dataset(root, S, workers=0, progress=False)
    assert isinstance(open_dataset(root, "train", input_size=S), PackedDataset)
    assert isinstance(open_dataset(root, "train", input_size=S, prefer="folder"), FolderDataset)
    # another input size has no cache: back to the files
    assert isinstance(open_dataset(root, "train", input_size=16), FolderDataset)
    with pytest.raises(FileNotFoundError, match="no dataset here"):
        open_dataset(tmp_path / "nothing", "train", input_size=S)


def test_make_loader_batches_and_defaults(tiny, tmp_path):
    root = tmp_path / "ds"
    shutil.copytree(tiny, root)
    profile = get_profile("quick").replace(input_size=S, batch_size=4, num_workers=0)
    in_order = LoaderOptions(shuffle=False, drop_last=False)
    folder_batches = list(make_loader(profile, "train", root=root, options=in_order))
    pack_dataset(root, S, workers=0, progress=False)
    loader = make_loader(profile, "train", root=root, options=in_order)
    assert isinstance(loader.dataset, PackedDataset)
    packed_batches = list(loader)
    assert len(packed_batches) == len(folder_batches) == 2  # 8 train rows / 4
    for a, b in zip(folder_batches, packed_batches):
        assert set(a) == set(b) == {"image", "mask", "depth"}
        assert all(torch.equal(a[k], b[k]) for k in a)
    # shuffled with a seeded generator: reproducible, and a permutation of the split
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    one = [b["image"] for b in make_loader(profile, "train", root=root,
                                           options=LoaderOptions(generator=g()))]
    two = [b["image"] for b in make_loader(profile, "train", root=root,
                                           options=LoaderOptions(generator=g(), num_workers=2))]
    assert all(torch.equal(a, b) for a, b in zip(one, two))
    # a sampler of sample indices (e.g. DistributedSampler) is batched for us
    sampler = list(range(7, -1, -1))
    firsts = next(iter(make_loader(profile, "train", root=root,
                                   options=LoaderOptions(sampler=sampler))))
    assert torch.equal(firsts["image"][0], loader.dataset[7]["image"])


@pytest.mark.slow
def test_against_write_dataset_and_its_zip_parts(tmp_path):
    from evacamel.dataset.write import write_dataset

    p = get_profile("quick").replace(n_backgrounds=4, n_camels=4, samples=12, source_size=64,
                                     depth_size=64, camel_size=64, input_size=S)
    root = write_dataset(tmp_path / "ds", p, workers=1, progress=False, zip_parts=2)
    folder = FolderDataset(root, "all", input_size=S)
    zips = tmp_path / "zips"
    zips.mkdir()
    for z in find_zip_parts(root):
        shutil.copy(z, zips / z.name)
    shutil.copy(root / "dataset_info.csv", zips / "dataset_info.csv")
    zipped = ZipDataset(zips, "all", input_size=S)
    assert len(folder) == len(zipped) == 12
    for i in (0, 5, 11):
        assert all(torch.equal(folder[i][k], zipped[i][k]) for k in ("image", "mask", "depth"))
    mask = torch.stack([folder[i]["mask"] for i in range(len(folder))]).float()
    assert 0 < mask.mean() / 255 < 0.5
    cache = pack_dataset(root, S, workers=2, progress=False)
    packed = PackedDataset(cache, "test")
    assert len(packed) == len(FolderDataset(root, "test", input_size=S))
    assert torch.equal(packed[0]["image"], FolderDataset(root, "test", input_size=S)[0]["image"])
