"""The on-disk dataset (evacamel.dataset): determinism, resume, split, bad inputs, shards."""

from __future__ import annotations

import json
import os
import shutil
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from evacamel.depth_units import PNG_STEPS_PER_M
from evacamel.dataset.format import INDEX_COLUMNS, load_sample, read_index, read_meta, read_sources
from evacamel.dataset.write import ensure_dataset, finalize_dataset, write_dataset
from evacamel.profiles import get_profile
from evacamel.world.compose import SEED_SIDE_RANGE

TINY = get_profile("quick").replace(n_backgrounds=6, n_camels=6, samples=40, source_size=64,
                                    depth_size=64, camel_size=64)
CHUNK = 8  # 5 chunks of 8 samples


class Killed(Exception):
    """Stands for a kill (Ctrl-C, a crash) in the middle of a run."""


def _stop_after(chunks: int):
    """An ``on_chunk`` callback that stops the run once ``chunks`` chunks are written."""
    def on_chunk(written: int) -> None:
        if written >= chunks:
            raise Killed(f"stopped after {written} chunks")
    return on_chunk


def _write(out: Path, profile=TINY, **kw) -> Path:
    kw.setdefault("workers", 1)
    kw.setdefault("progress", False)
    kw.setdefault("chunk_size", CHUNK)
    return write_dataset(out, profile, **kw)


def _files(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (relative posix path -> bytes)."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _mtimes(root: Path) -> dict[str, int]:
    return {p.relative_to(root).as_posix(): p.stat().st_mtime_ns
            for p in sorted(root.rglob("*")) if p.is_file()}


def _assert_same_files(a: Path, b: Path) -> None:
    fa, fb = _files(a), _files(b)
    assert sorted(fa) == sorted(fb)
    differ = [k for k in fa if fa[k] != fb[k]]
    assert not differ, f"files differ: {differ[:5]}"


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The tiny dataset written once, in this process, uninterrupted."""
    return _write(tmp_path_factory.mktemp("ref") / "ds")


# -- layout, index, meta ---------------------------------------------------------------------

def test_layout_index_and_meta(reference: Path):
    meta = read_meta(reference)
    assert meta["complete"] is True and meta["format"] == "evacamel-dataset"
    assert meta["counts"]["samples"] == 40
    assert meta["counts"]["train"] + meta["counts"]["test"] == 40 and meta["counts"]["test"] == 10
    assert meta["depth"]["png_steps_per_m"] == PNG_STEPS_PER_M and meta["depth"]["source"] == "exact"
    header = (reference / "dataset_info.csv").read_text().splitlines()[0].split(",")
    assert tuple(header) == INDEX_COLUMNS
    rows = read_index(reference)
    assert [r["sample_id"] for r in rows] == list(range(40))
    assert all(isinstance(r["bg_id"], int) and r["flip"] in (0, 1) for r in rows)
    for r in rows:
        for col in ("fg_bg_paths", "mask_paths", "selected_bg_paths", "depth_map_paths", "fg_paths"):
            assert (reference / r[col]).is_file(), r[col]
    assert not (reference / ".work").exists()
    assert len(list((reference / "bg").iterdir())) == 6 and len(list((reference / "fg").iterdir())) == 6
    with Image.open(reference / "fg" / "fg_0000.png") as im:
        assert im.mode == "RGBA" and im.size == (64, 64)


def test_split_holds_out_backgrounds_and_camels(reference: Path):
    src = read_sources(reference)
    bg_split = {b["id"]: b["split"] for b in src["backgrounds"]}
    fg_split = {c["id"]: c["split"] for c in src["camels"]}
    assert sorted(bg_split.values()).count("test") == 2 and sorted(fg_split.values()).count("test") == 2
    rows = read_index(reference)
    for r in rows:
        assert bg_split[r["bg_id"]] == r["split"] and fg_split[r["fg_id"]] == r["split"], r
    train_bgs = {r["selected_bg_paths"] for r in rows if r["split"] == "train"}
    test_bgs = {r["selected_bg_paths"] for r in rows if r["split"] == "test"}
    train_fgs = {r["fg_paths"] for r in rows if r["split"] == "train"}
    test_fgs = {r["fg_paths"] for r in rows if r["split"] == "test"}
    assert test_bgs and test_fgs and not (train_bgs & test_bgs) and not (train_fgs & test_fgs)


def test_masks_binary_and_depth_16bit_meters(reference: Path):
    rows = read_index(reference)
    seen_camel = 0
    for r in rows:
        with Image.open(reference / r["mask_paths"]) as im:
            assert im.mode == "L" and im.size == (64, 64)
            m = np.asarray(im)
        assert set(np.unique(m)) <= {0, 255}
        with Image.open(reference / r["depth_map_paths"]) as im:
            assert im.mode.startswith("I;16") and im.size == (64, 64)
        s = load_sample(reference, r)
        bg_depth = torch.from_numpy(np.asarray(Image.open(
            reference / f"bg_depth/bg_{r['bg_id']:04d}.png")).astype(np.float32)) / PNG_STEPS_PER_M
        on = s["mask"][0] > 0.5
        d = s["depth"][0]
        assert float(d.min()) > 0.5 and float(d.max()) <= 1024.0
        # off the camel the depth is the background's; on it the camel is in front of the terrain
        assert torch.equal(d[~on], bg_depth[~on])
        assert bool((d[on] <= bg_depth[on] + 1.0 / PNG_STEPS_PER_M).all())
        if r["visible_fraction"] > 0:
            assert bool(on.any())
            seen_camel += 1
        assert s["fg_bg"].dtype == torch.uint8 and s["fg_bg"].shape == (3, 64, 64)
    assert seen_camel >= 30


# -- determinism, resume, rerun ----------------------------------------------------------

def test_byte_identical_across_workers(reference: Path, tmp_path: Path):
    _assert_same_files(reference, _write(tmp_path / "ds", workers=2))


def test_another_seed_gives_another_dataset(reference: Path, tmp_path: Path):
    other = _write(tmp_path / "ds", seed=1)
    a, b = _files(reference), _files(other)
    assert a["fg_bg/img_00000000.jpg"] != b["fg_bg/img_00000000.jpg"]


def test_resume_after_interruption(reference: Path, tmp_path: Path):
    out = tmp_path / "ds"
    with pytest.raises(Killed):
        _write(out, on_chunk=_stop_after(2))
    assert read_meta(out)["complete"] is False and not (out / "dataset_info.csv").exists()
    done = _mtimes(out)
    assert "fg_bg/img_00000015.jpg" in done and "fg_bg/img_00000016.jpg" not in done
    # a half-written file of a killed process (temp name, dead pid) and a deleted file
    (out / "fg_bg" / ".img_00000017.jpg.999999999.tmp").write_bytes(b"\xff\xd8half")
    (out / "mask" / "img_00000003.png").unlink()
    _write(out, workers=2)
    _assert_same_files(reference, out)
    after = _mtimes(out)
    unchanged = [k for k, t in done.items() if k.startswith(("fg_bg/", "depth/", "bg/", "fg/"))]
    assert unchanged and all(after[k] == done[k] for k in unchanged), "finished files were rewritten"


def test_rerun_on_complete_dataset_changes_nothing(reference: Path, tmp_path: Path):
    out = tmp_path / "ds"
    shutil.copytree(reference, out)
    before = _mtimes(out)
    _write(out, workers=2)
    ensure_dataset(TINY, out, progress=False, chunk_size=CHUNK)
    assert _mtimes(out) == before


def test_two_shards_then_finalize_equal_unsharded(reference: Path, tmp_path: Path):
    a, b = tmp_path / "machine_a", tmp_path / "machine_b"
    _write(a, shard=(0, 2))
    _write(b, shard="1/2")
    assert read_meta(a)["complete"] is False and not (a / "dataset_info.csv").exists()
    with pytest.raises(ValueError, match="cannot finalize"):
        finalize_dataset(a, TINY, chunk_size=CHUNK)
    shutil.copytree(b, a, dirs_exist_ok=True)  # gather the shards in one folder
    finalize_dataset(a, TINY, chunk_size=CHUNK)
    _assert_same_files(reference, a)


def test_last_shard_in_a_shared_folder_finalizes(reference: Path, tmp_path: Path):
    out = tmp_path / "ds"
    _write(out, shard=(1, 2))
    _write(out, shard=(0, 2))
    _assert_same_files(reference, out)


def test_zip_parts(tmp_path: Path):
    out = _write(tmp_path / "ds", zip_parts=3, profile=TINY.replace(samples=12))
    rows = read_index(out)
    assert [r["part"] for r in rows] == [0] * 4 + [1] * 4 + [2] * 4
    for part in range(3):
        with zipfile.ZipFile(out / f"dataset_{part}.zip") as zf:
            names = zf.namelist()
            want = [p for r in rows if r["part"] == part
                    for p in (r["fg_bg_paths"], r["mask_paths"], r["depth_map_paths"])]
            assert names == want
            assert zf.read(want[0]) == (out / want[0]).read_bytes()
    with zipfile.ZipFile(out / "dataset_bg.zip") as zf:
        assert "bg/bg_0000.jpg" in zf.namelist() and "sources.json" in zf.namelist()


def test_ensure_dataset_two_callers_at_once(reference: Path, tmp_path: Path):
    root = tmp_path / "data" / "quick"
    results, errors = [], []

    def call():
        try:
            results.append(ensure_dataset(TINY, root, progress=False, workers=1,
                                          chunk_size=CHUNK, poll_s=0.05))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and results == [root, root]
    assert not root.with_name("quick.lock").exists()
    _assert_same_files(reference, root)


# -- refusing bad output folders ---------------------------------------------------------

def test_folder_with_another_dataset_is_refused_untouched(reference: Path, tmp_path: Path):
    out = tmp_path / "ds"
    shutil.copytree(reference, out)
    before = _files(out)
    with pytest.raises(FileExistsError, match=r"ds.*another dataset.*seed"):
        _write(out, seed=5)
    with pytest.raises(FileExistsError, match="source_size"):
        _write(out, profile=TINY.replace(source_size=32, depth_size=32))
    assert _files(out) == before


def test_folder_with_unrelated_files_is_refused(tmp_path: Path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "holiday.jpg").write_bytes(b"not ours")
    with pytest.raises(FileExistsError, match=r"mine.*holiday\.jpg"):
        _write(out)
    assert sorted(p.name for p in out.iterdir()) == ["holiday.jpg"]


# -- your own folders ---------------------------------------------------------------------

def _rgb(path: Path, w: int, h: int, seed: int) -> Path:
    arr = np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)
    Image.fromarray(arr).save(path)
    return path


def _cutout(path: Path, seed: int, *, alpha: bool = True) -> Path:
    yy, xx = np.mgrid[0:40, 0:50]
    inside = ((xx - 25) / 20.0) ** 2 + ((yy - 22) / 14.0) ** 2 < 1
    rgb = np.random.default_rng(seed).integers(80, 200, (40, 50, 3), dtype=np.uint8)
    if alpha:
        Image.fromarray(np.dstack([rgb, inside.astype(np.uint8) * 255]), "RGBA").save(path)
    else:
        Image.fromarray(rgb).save(path)
    return path


@pytest.fixture
def folders(tmp_path: Path) -> dict[str, Path]:
    bgs, camels, masks = tmp_path / "bgs", tmp_path / "camels", tmp_path / "masks"
    for d in (bgs, camels, masks):
        d.mkdir()
    for i in range(4):
        _rgb(bgs / f"desert_{i}.jpg", 100, 80, i)
        _cutout(camels / f"camel_{i}.png", i)
    _cutout(camels / "rgb_camel.jpg", 9, alpha=False)
    yy, xx = np.mgrid[0:40, 0:50]
    Image.fromarray(((xx > 10) & (yy > 5)).astype(np.uint8) * 255).save(masks / "rgb_camel.png")
    return {"backgrounds": bgs, "camels": camels, "camel_masks": masks}


def test_own_folders(folders: dict[str, Path], tmp_path: Path):
    out = _write(tmp_path / "ds", source=folders, profile=TINY.replace(samples=16))
    meta = read_meta(out)
    assert meta["generator"]["source"] == "folders" and meta["compose_mode"] == "seed"
    assert meta["depth"]["source"] == "none" and meta["counts"]["backgrounds"] == 4
    assert meta["counts"]["camels"] == 5
    assert not (out / "depth").exists() and not (out / "bg_depth").exists()
    with Image.open(out / "bg" / "bg_0000.jpg") as im:
        assert im.size == (64, 64)
    s = load_sample(out, 0)
    assert s["depth"] is None and s["mask"].shape == (1, 64, 64)
    assert read_sources(out)["camels"][4]["origin"] == "rgb_camel.jpg"
    with pytest.raises(ValueError, match="no camera"):
        _write(tmp_path / "ds2", source=folders, mode="perspective")


def test_unreadable_background_is_named(folders, tmp_path: Path):
    (folders["backgrounds"] / "broken.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(ValueError, match=r"broken\.png.*not a readable image"):
        _write(tmp_path / "ds", source=folders)
    assert not (tmp_path / "ds").exists()


def test_small_background_is_named(folders, tmp_path: Path):
    _rgb(folders["backgrounds"] / "tiny.jpg", 50, 200, 1)
    with pytest.raises(ValueError, match=r"tiny\.jpg.*smaller than the output size"):
        _write(tmp_path / "ds", source=folders)


def test_camel_without_alpha_or_mask_is_named(folders, tmp_path: Path):
    _cutout(folders["camels"] / "plain.jpg", 3, alpha=False)
    with pytest.raises(ValueError, match=r"plain\.jpg.*no alpha channel and no mask"):
        _write(tmp_path / "ds", source=folders)


def test_empty_mask_is_named(folders, tmp_path: Path):
    Image.fromarray(np.zeros((40, 50), np.uint8)).save(folders["camel_masks"] / "rgb_camel.png")
    with pytest.raises(ValueError, match=r"masks/rgb_camel\.png.*empty"):
        _write(tmp_path / "ds", source=folders)


def test_empty_alpha_is_named(folders, tmp_path: Path):
    Image.fromarray(np.zeros((40, 50, 4), np.uint8), "RGBA").save(folders["camels"] / "ghost.png")
    with pytest.raises(ValueError, match=r"ghost\.png.*empty"):
        _write(tmp_path / "ds", source=folders)


def test_procedural_backgrounds_with_own_camels_keep_depth(folders, tmp_path: Path):
    out = _write(tmp_path / "ds", source={"camels": folders["camels"],
                                         "camel_masks": folders["camel_masks"]},
                 profile=TINY.replace(samples=8))
    meta = read_meta(out)
    assert meta["compose_mode"] == "perspective" and meta["depth"]["source"] == "exact"
    assert load_sample(out, 0)["depth"] is not None
    assert json.loads((out / "sources.json").read_text())["camels"][0]["seed"] is None
    assert os.path.isfile(out / "fg" / "fg_0004.png")


def test_depth_and_size_follow_the_distance(reference: Path):
    """Stored rows agree with the camera: size ~ focal * camel size / distance, and the
    camel's stored depth is its distance along the pixels' rays (>= the forward distance)."""
    src = read_sources(reference)
    checked = 0
    for r in read_index(reference):
        s = load_sample(reference, r)
        on = s["mask"][0] > 0.5
        if int(on.sum()) < 5:
            continue
        cam = src["backgrounds"][r["bg_id"]]["camera"]
        meters = src["camels"][r["fg_id"]]["meters_per_side"]
        assert 0.8 < r["h"] * r["distance_m"] / (meters * cam["focal_px"]) < 1.05, r
        assert 0.99 < float(s["depth"][0][on].median()) / r["distance_m"] < 1.5, r
        checked += 1
    assert checked >= 20


@pytest.mark.parametrize("src,size", [(64, 32), (96, 32), (64, 16), (64, 48), (64, 64)])
def test_resize_depth_is_nearest_exact(src: int, size: int):
    from evacamel.dataset.codec import resize_depth

    depth = torch.rand(1, src, src, generator=torch.Generator().manual_seed(src + size)) * 100
    want = torch.nn.functional.interpolate(depth[None], size=(size, size), mode="nearest-exact")[0]
    got = resize_depth(depth, size)
    assert got.shape == (1, size, size)
    assert torch.equal(got, want)


def test_worker_reuses_sprites_and_its_composite(reference: Path):
    from evacamel.dataset.plan import make_plan
    from evacamel.dataset.worker import Worker

    plan = make_plan(TINY, seed=None, source="procedural", mode=None, clahe=False, zip_parts=0,
                     chunk_size=CHUNK)
    worker = Worker(reference, plan)
    a, b = worker.sprite(0), worker.sprite(1)
    assert worker.sprite(0) is a and worker.sprite(1) is b and a is not b
    assert a.rgba.dtype == torch.float32 and float(a.rgba.max()) <= 1.0
    assert worker.composite(64) is worker.composite(64)
    assert worker.composite(32).fg_bg.shape == (1, 3, 32, 32)


def test_folder_lock_takes_over_dead_and_empty_locks(tmp_path):
    import os
    import time

    from evacamel.dataset.atomic import folder_lock

    folder = tmp_path / "ds"
    lock = tmp_path / "ds.lock"
    lock.write_text("999999999")  # a pid that is not running
    with folder_lock(folder, poll_s=0.01):
        assert lock.read_text() == str(os.getpid())
    assert not lock.exists()
    lock.write_text("")  # left empty by a process killed right after creating it
    old = time.time() - 120
    os.utime(lock, (old, old))
    with folder_lock(folder, poll_s=0.01):
        assert lock.read_text() == str(os.getpid())


# -- meta.json and the index are checked when read ---------------------------------------------

def test_meta_json_shape_is_checked(reference: Path, tmp_path: Path):
    out = tmp_path / "ds"
    shutil.copytree(reference, out)
    meta = read_meta(out)
    bad = {"format_version": 99, "depth_size": "large", "image_format": "gif", "complete": "yes",
           "depth": {**meta["depth"], "png_steps_per_m": 100}}
    for key, value in bad.items():
        (out / "meta.json").write_text(json.dumps({**meta, key: value}))
        with pytest.raises(ValueError, match=rf"meta\.json: unusable meta\.json: {key}"):
            read_meta(out)
        with pytest.raises(FileExistsError, match="unusable meta.json"):
            _write(out)  # the writer refuses it too, and leaves it as it is
    (out / "meta.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        read_meta(out)


def test_index_numbers_are_checked_with_row_and_column(reference: Path, tmp_path: Path):
    out = tmp_path / "ds"
    shutil.copytree(reference, out)
    lines = (out / "dataset_info.csv").read_text().splitlines()
    header = lines[0].split(",")
    cells = lines[3].split(",")
    cells[header.index("bg_id")] = "two"
    lines[3] = ",".join(cells)
    (out / "dataset_info.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"row 2 \(line 4\), column bg_id: 'two' is not a number"):
        read_index(out)


def test_more_zip_parts_than_samples_is_refused(tmp_path: Path):
    with pytest.raises(ValueError, match="zip_parts=10: more parts than the 3 samples"):
        _write(tmp_path / "ds", zip_parts=10, profile=TINY.replace(samples=3))
    assert not (tmp_path / "ds").exists()


def test_mixed_mode_pastes_some_camels_the_seeds_way_and_stands_the_others(tmp_path: Path):
    """``mixed``: each sample drawn; seed-mode ones have no distance and the seed's size."""
    out = _write(tmp_path / "ds", profile=TINY.replace(compose_mode="mixed"))
    rows = read_index(out)
    seed_like = [r for r in rows if r["distance_m"] is None]
    standing = [r for r in rows if r["distance_m"] is not None]
    assert read_meta(out)["compose_mode"] == "mixed"
    assert 5 <= len(seed_like) <= len(rows) - 5, len(seed_like)  # 50% of 40: both kinds present
    lo, hi = SEED_SIDE_RANGE
    S = TINY.source_size
    assert all(lo * S - 1e-3 <= float(r["w"]) <= hi * S + 1e-3 for r in seed_like)
    assert all(float(r["distance_m"]) > 0 for r in standing)
    with pytest.raises(ValueError, match="mode='sideways'"):
        _write(tmp_path / "bad", mode="sideways")
