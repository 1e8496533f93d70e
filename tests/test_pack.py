"""The packed cache: same samples as the files, batch fetches, parallel, resumable, atomic."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import BatchSampler, DataLoader, SequentialSampler

import evacamel.loading.pack as pack
from evacamel.bench.loader import write_sample_dataset
from evacamel.loading.files import FolderDataset
from evacamel.loading.pack import (PackedDataset, find_packed, pack_dataset, packed_dir,
                                read_manifest)

S = 32


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    return write_sample_dataset(tmp_path_factory.mktemp("pk") / "ds", 20, 64)


@pytest.fixture
def root(source, tmp_path) -> Path:
    out = tmp_path / "ds"
    shutil.copytree(source, out)
    return out


def test_caches_for_two_output_sizes_live_side_by_side(root):
    """A stride-2 and a full-resolution model train on one dataset: neither cache may
    replace the other (one folder per input size once did, under a running training)."""
    half = pack_dataset(root, S, workers=0, progress=False)
    full = pack_dataset(root, S, S, workers=0, progress=False)
    assert half == root / f"packed-{S}" and full == root / f"packed-{S}-{S}"
    assert find_packed(root, S) == half and find_packed(root, S, S) == full
    assert PackedDataset(half, "train")[0]["mask"].shape[-1] == S // 2
    assert PackedDataset(full, "train")[0]["mask"].shape[-1] == S


def test_packed_equals_decoded_files(root):
    folder = pack_dataset(root, S, workers=0, chunk_rows=6, progress=False)
    assert folder == packed_dir(root, S) == root / f"packed-{S}"
    m = read_manifest(folder)
    assert m["count"] == 20 and m["input_size"] == S and m["output_size"] == S // 2
    assert sorted(m["splits"]["train"] + m["splits"]["test"]) == list(range(20))
    assert not (folder / "chunks").exists() and not (folder / "build.json").exists()
    for split in ("train", "test"):
        files = FolderDataset(root, split, input_size=S)
        packed = PackedDataset(folder, split)
        assert len(packed) == len(files)
        for i in range(len(files)):
            a, b = files[i], packed[i]
            assert all(a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]) for k in a)


def test_getitems_is_one_batch(root):
    packed = PackedDataset(pack_dataset(root, S, workers=0, progress=False), "all")
    idx = [5, 0, 19, 5]
    batch = packed.__getitems__(idx)
    assert batch["image"].shape == (4, 6, S, S) and batch["depth"].dtype == torch.uint16
    for j, i in enumerate(idx):
        assert all(torch.equal(batch[k][j], packed[i][k]) for k in batch)
    # through a DataLoader with workers: batches arrive whole and in order
    loader = DataLoader(packed, batch_sampler=BatchSampler(SequentialSampler(packed), 6, False),
                        collate_fn=lambda b: b, num_workers=2)
    got = torch.cat([b["image"] for b in loader])
    assert torch.equal(got, packed.__getitems__(list(range(20)))["image"])


def test_parallel_build_equals_serial(root, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(root, other)
    a = pack_dataset(root, S, workers=0, chunk_rows=4, progress=False)
    b = pack_dataset(other, S, workers=2, chunk_rows=4, progress=False)
    for name in ("image.npy", "mask.npy", "depth.npy"):
        assert np.array_equal(np.load(a / name), np.load(b / name))


def test_interrupted_build_resumes_only_missing_chunks(root, monkeypatch):
    calls: list[int] = []
    real = pack._pack_chunk

    def flaky(dataset, folder, chunk, start, stop):
        if chunk == 2:
            raise KeyboardInterrupt("killed")
        calls.append(chunk)
        return real(dataset, folder, chunk, start, stop)

    monkeypatch.setattr(pack, "_pack_chunk", flaky)
    with pytest.raises(KeyboardInterrupt):
        pack_dataset(root, S, workers=0, chunk_rows=4, progress=False)
    folder = packed_dir(root, S)
    assert not (folder / "manifest.json").exists()  # unfinished: never mistaken for done
    assert find_packed(root, S) is None
    assert sorted(p.name for p in (folder / "chunks").iterdir()) == ["000000.done", "000001.done"]

    calls.clear()
    monkeypatch.setattr(pack, "_pack_chunk", lambda *a: (calls.append(a[2]), real(*a))[1])
    pack_dataset(root, S, workers=0, chunk_rows=4, progress=False)
    assert calls == [2, 3, 4]  # the two finished chunks were not redone
    assert find_packed(root, S) == folder
    packed = PackedDataset(folder, "all")
    files = FolderDataset(root, "all", input_size=S)
    assert all(torch.equal(packed[i]["image"], files[i]["image"]) for i in range(20))

    calls.clear()
    pack_dataset(root, S, workers=0, chunk_rows=4, progress=False)
    assert calls == []  # current: nothing to do


def test_stale_cache_is_detected_and_rebuilt(root):
    folder = pack_dataset(root, S, workers=0, progress=False)
    assert find_packed(root, S) == folder
    meta = json.loads((root / "meta.json").read_text())
    meta["stats"] = {"anything": 1}  # statistics do not make the cache stale
    (root / "meta.json").write_text(json.dumps(meta))
    assert find_packed(root, S) == folder
    meta["depth"]["source"] = "an estimator"  # new depth maps do
    (root / "meta.json").write_text(json.dumps(meta))
    assert find_packed(root, S) is None
    pack_dataset(root, S, workers=0, progress=False)
    assert find_packed(root, S) == folder
    assert read_manifest(folder)["source"]["meta_sha256"] == pack.source_fingerprint(root)["meta_sha256"]


def test_bad_manifest_and_split(root, tmp_path):
    with pytest.raises(FileNotFoundError, match="manifest.json"):
        PackedDataset(tmp_path / "nowhere")
    folder = pack_dataset(root, S, workers=0, progress=False)
    with pytest.raises(ValueError, match="no split 'val'"):
        PackedDataset(folder, "val")
    (folder / "manifest.json").write_text('{"format": "something else"}')
    with pytest.raises(ValueError, match="not a evacamel-packed"):
        read_manifest(folder)
    assert find_packed(root, S) is None


def test_pack_from_zip_parts_only(root, tmp_path):
    import zipfile

    parts = tmp_path / "zipped"
    parts.mkdir()
    with zipfile.ZipFile(parts / "dataset_0.zip", "w") as zf:
        for p in sorted(root.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(root).as_posix())
    folder = pack_dataset(parts, S, workers=0, progress=False)
    ref = pack_dataset(root, S, workers=0, progress=False)
    assert np.array_equal(np.load(folder / "image.npy"), np.load(ref / "image.npy"))


def test_pack_command(root, capsys):
    from evacamel.cli import main

    assert main(["pack", "--profile", "quick", "--root", str(root), "--input-size", str(S),
                 "--workers", "0"]) == 0
    out = capsys.readouterr().out
    assert f"packed-{S}" in out and "20 samples" in out
    assert find_packed(root, S) == packed_dir(root, S)
    assert main(["pack", "--root", str(root / "missing")]) == 1
    assert "not found" in capsys.readouterr().err
    with pytest.raises(SystemExit) as refused:  # the U-Net needs 32k: argparse refuses it
        main(["pack", "--root", str(root), "--input-size", "33"])
    assert refused.value.code == 2
    assert "argument --input-size: 33 must be a multiple of 32" in capsys.readouterr().err
    assert not packed_dir(root, 33).exists()


@pytest.mark.slow
def test_loader_benchmark_runs(capsys):
    from evacamel.cli import main

    assert main(["bench", "loader", "--profile", "quick", "--samples", "8", "--rows", "64",
                 "--batch-size", "16", "--workers", "0", "--seconds", "0.2"]) == 0
    out = capsys.readouterr().out
    for name in ("seed (PIL decode", "packed cache", "synthetic stream", "DataLoader, 0 workers",
                 "samples per CPU-second"):
        assert name in out


def test_ensure_packed_waits_for_another_builder(root, monkeypatch):
    """Event order, not timing: the second builder polls the first one's lock and builds
    only after it is released; a dead builder's lock is taken over without waiting."""
    import os
    import threading
    import time
    import types

    import evacamel.dataset.atomic as atomic
    from evacamel.profiles import get_profile

    profile = get_profile("quick").replace(input_size=S)
    lock = packed_dir(root, S).with_name(f"packed-{S}.lock")
    events: list[str] = []
    real_pack = pack.pack_dataset

    def build(*args, **kwargs):
        events.append("build")
        return real_pack(*args, **kwargs)

    def poll(seconds: float) -> None:  # the lock is held: "the first builder" finishes now
        events.append("waiting")
        if lock.exists():
            lock.unlink()
            events.append("released")

    monkeypatch.setattr(pack, "pack_dataset", build)
    monkeypatch.setattr(atomic, "time", types.SimpleNamespace(time=time.time, sleep=poll))
    lock.write_text(str(os.getpid()))  # "another builder" (alive: this process)
    done = []
    t = threading.Thread(target=lambda: done.append(pack.ensure_packed(profile, root=root,
                                                                       workers=0)))
    t.start()
    t.join(600)  # a guard against a hang, not a timing assumption
    lock.unlink(missing_ok=True)
    t.join()
    assert events == ["waiting", "released", "build"]  # waited for the lock, then built
    assert done == [packed_dir(root, S)] and not lock.exists()

    events.clear()
    lock.write_text("999999999")  # a dead builder's lock is taken over
    (packed_dir(root, S) / "manifest.json").unlink()
    assert pack.ensure_packed(profile, root=root, workers=0) == packed_dir(root, S)
    assert events == ["build"] and not lock.exists()


def test_decode_vs_packed_times_the_same_samples_and_catches_a_stale_cache(root):
    from evacamel.bench.loader import decode_vs_packed

    folder = pack_dataset(root, S, workers=0, progress=False)
    files, cache = decode_vs_packed(root, folder, "train", n=4)
    assert files.items == cache.items == 4 and files.rate > 0 and cache.rate > 0
    image = np.load(folder / "image.npy", mmap_mode="r+")
    image[read_manifest(folder)["splits"]["train"][2]] ^= 1  # one sample differs from its files
    image.flush()
    with pytest.raises(ValueError, match="differs from the files"):
        decode_vs_packed(root, folder, "train", n=4)
