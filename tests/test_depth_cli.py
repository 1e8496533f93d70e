"""``evacamel depth`` and evacamel.depth.rewrite on tiny datasets written in the on-disk format."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from evacamel.cli import main as cli_main
from evacamel.depth_units import FAR_M, depth_meta, meters_to_png, meters_to_target, png_to_meters
from evacamel.depth import (RELATIVE_DISPARITY, ExactDepth, build_tiny_depth_model, read_depth_png,
                            rewrite_depth, seed_normalise)
from evacamel.depth.estimators import HFDepthEstimator
from evacamel.depth.rewrite import (CALIBRATION_IMAGES, DONE_FILE, EXACT_BACKUP, JOB_FILE, RewriteOptions,
                                    depth_items)

N_SAMPLES, N_BG, SOURCE, DEPTH = 6, 2, 48, 32


def _exact(i: int, size: int) -> np.ndarray:
    rows = np.linspace(0, 1, size)[:, None]
    d = 2.0 * np.exp((1 - rows) * math.log(50.0)) * (1 + 0.1 * i) * np.ones((1, size))
    d[: size // 4] = FAR_M
    d[size // 2:, size // 3: size // 2] = 3.0 + i  # a "camel"
    return d


def make_dataset(root: Path, *, source: str = "exact") -> Path:
    """A complete 6-sample dataset in the ARCHITECTURE.md format (exact depth unless source='none')."""
    rng = np.random.default_rng(0)
    for d in ("bg", "fg_bg", "mask", "depth", "bg_depth"):
        (root / d).mkdir(parents=True, exist_ok=True)
    rows = []
    for b in range(N_BG):
        Image.fromarray(rng.integers(0, 255, (SOURCE, SOURCE, 3), dtype=np.uint8)).save(root / f"bg/bg_{b:04d}.jpg")
        if source == "exact":
            Image.fromarray(meters_to_png(_exact(10 + b, DEPTH))).save(root / f"bg_depth/bg_{b:04d}.png")
    for i in range(N_SAMPLES):
        name = f"img_{i:08d}"
        Image.fromarray(rng.integers(0, 255, (SOURCE, SOURCE, 3), dtype=np.uint8)).save(root / f"fg_bg/{name}.jpg")
        Image.fromarray(np.zeros((SOURCE, SOURCE), np.uint8)).save(root / f"mask/{name}.png")
        if source == "exact":
            Image.fromarray(meters_to_png(_exact(i, DEPTH))).save(root / f"depth/{name}.png")
        rows.append({"fg_bg_paths": f"fg_bg/{name}.jpg", "mask_paths": f"mask/{name}.png",
                     "selected_bg_paths": f"bg/bg_{i % N_BG:04d}.jpg", "depth_map_paths": f"depth/{name}.png",
                     "part": 0, "sample_id": i, "split": "train" if i < 4 else "test"})
    if source != "exact":
        for d in ("depth", "bg_depth"):
            (root / d).rmdir()
    with open(root / "dataset_info.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    meta = {"format": "evacamel-dataset", "format_version": 1, "generator": {"name": "test"}, "seed": 0,
            "profile": "test", "source_size": SOURCE, "depth_size": DEPTH, "image_format": "jpg",
            "counts": {"samples": N_SAMPLES}, "depth": {**depth_meta(), "source": source}, "complete": True}
    (root / "meta.json").write_text(json.dumps(meta))
    return root


def _maps(root: Path) -> list[Path]:
    """Every depth map of the dataset; never empty (a loop over none would check nothing)."""
    maps = sorted((root / "depth").glob("*.png")) + sorted((root / "bg_depth").glob("*.png"))
    assert maps, f"no depth maps under {root}/depth or {root}/bg_depth"
    return maps


def _stat(paths):
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in paths}


def _interrupt_after(est, calls: int) -> None:
    """Make ``est.estimate`` raise KeyboardInterrupt (as Ctrl-C would) on call ``calls + 1``."""
    real, left = est.estimate, [calls]

    def estimate(*args, **kwargs):
        if left[0] == 0:
            raise KeyboardInterrupt
        left[0] -= 1
        return real(*args, **kwargs)

    est.estimate = estimate


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    pytest.importorskip("transformers")
    return build_tiny_depth_model(tmp_path_factory.mktemp("tiny-depth"))


def test_items_cover_composites_and_backgrounds(tmp_path):
    root = make_dataset(tmp_path / "ds")
    items = depth_items(root)
    assert [it.depth for it in items] == [f"depth/img_{i:08d}.png" for i in range(N_SAMPLES)] + \
        [f"bg_depth/bg_{b:04d}.png" for b in range(N_BG)]
    assert items[-1].image == "bg/bg_0001.jpg"


def test_cli_rewrites_with_tiny_model_end_to_end(tmp_path, tiny_model, capsys):
    root = make_dataset(tmp_path / "ds")
    exact_before = {p.name: read_depth_png(p) for p in _maps(root)}
    rc = cli_main(["depth", str(root), "--estimator", str(tiny_model), "--batch-size", "4", "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    assert "wrote 8 depth maps" in capsys.readouterr().out
    meta = json.loads((root / "meta.json").read_text())
    src = meta["depth"]["source"]
    assert src["kind"] == "transformers" and src["model"] == str(tiny_model)
    assert src["output"] == RELATIVE_DISPARITY and src["normalisation"] == "auto"
    assert "pseudo-meters" in src["stored"] and src["calibration"]["lo"] < src["calibration"]["hi"]
    assert meta["depth"]["unit"] == "m" and "rewriting" not in meta["depth"] and meta["complete"] is True
    assert not (root / JOB_FILE).exists() and not (root / DONE_FILE).exists()
    for p in _maps(root):
        with Image.open(p) as im:
            assert im.size == (DEPTH, DEPTH) and im.mode.startswith("I")
        d = read_depth_png(p)
        assert not torch.equal(d, exact_before[p.name])  # rewritten by the model
        assert d.min() >= 1.0 - 1 / 64 and d.max() <= FAR_M
    # the exact maps are kept, byte for byte, and ExactDepth reads them
    for p in _maps(root):
        kept = root / EXACT_BACKUP / p.relative_to(root)
        assert torch.equal(read_depth_png(kept), exact_before[p.name])
    exact = ExactDepth(root).estimate(None, size=(DEPTH, DEPTH), keys=["depth/img_00000002.png"])
    assert torch.equal(exact[0], exact_before["img_00000002.png"])
    # the same command again: nothing to do, nothing touched
    before = _stat(_maps(root))
    assert cli_main(["depth", str(root), "--estimator", str(tiny_model), "--no-progress"]) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert _stat(_maps(root)) == before


@pytest.mark.slow
def test_interrupted_rerun_skips_finished_maps(tmp_path, tiny_model):
    root = make_dataset(tmp_path / "ds")
    est = HFDepthEstimator(tiny_model, device="cpu")
    calibration_calls = math.ceil(min(CALIBRATION_IMAGES, N_SAMPLES + N_BG) / 3)
    _interrupt_after(est, calibration_calls + 1)  # calibration, one batch of 3, then "Ctrl-C"
    with pytest.raises(KeyboardInterrupt):
        rewrite_depth(root, est, RewriteOptions(batch_size=3, progress=False))
    done = (root / DONE_FILE).read_text().split()
    assert done == [f"depth/img_{i:08d}.png" for i in range(3)]
    meta = json.loads((root / "meta.json").read_text())
    assert meta["depth"]["source"] == "exact" and meta["depth"]["rewriting"]["source"]["kind"] == "transformers"
    finished = _stat([root / d for d in done])
    rest = _stat([p for p in _maps(root) if p.relative_to(root).as_posix() not in done])
    job = json.loads((root / JOB_FILE).read_text())

    est2 = HFDepthEstimator(tiny_model, device="cpu")
    result = rewrite_depth(root, est2, RewriteOptions(batch_size=3, progress=False))
    assert (result.total, result.written, result.skipped) == (8, 5, 3)
    assert _stat([root / d for d in done]) == finished  # not rewritten: same inode, same mtime
    now = _stat(_maps(root))
    assert all(now[name] != rest[name] for name in rest)  # the others were written
    meta = json.loads((root / "meta.json").read_text())
    assert meta["depth"]["source"]["calibration"] == job["calibration"]  # the first run's mapping
    assert "rewriting" not in meta["depth"] and not (root / DONE_FILE).exists()
    # the resumed maps equal an uninterrupted run's
    ref = make_dataset(tmp_path / "ref")
    rewrite_depth(ref, HFDepthEstimator(tiny_model, device="cpu"), RewriteOptions(batch_size=3, progress=False))
    for p in _maps(root):
        assert torch.allclose(read_depth_png(p), read_depth_png(ref / p.relative_to(root)), atol=2 / 64)


@pytest.mark.slow
def test_other_settings_start_over_and_exact_restores(tmp_path, tiny_model):
    root = make_dataset(tmp_path / "ds")
    exact_before = {p.name: read_depth_png(p) for p in _maps(root)}
    est = HFDepthEstimator(tiny_model, device="cpu")
    _interrupt_after(est, 3)  # 2 calibration calls (8 maps, batches of 4), then one batch
    with pytest.raises(KeyboardInterrupt):
        rewrite_depth(root, est, RewriteOptions(batch_size=4, progress=False))
    assert (root / DONE_FILE).read_text().split()  # some maps done
    # a different job (seed normalisation, another size) does not reuse them
    result = rewrite_depth(root, HFDepthEstimator(tiny_model, device="cpu"),
                           RewriteOptions(normalisation="seed", size=16, batch_size=4, progress=False))
    assert result.written == 8
    meta = json.loads((root / "meta.json").read_text())
    assert meta["depth_size"] == 16 and meta["depth"]["source"]["normalisation"] == "seed"
    for p in _maps(root):
        t = meters_to_target(read_depth_png(p))
        assert t.shape == (1, 16, 16)
        assert t.max() == pytest.approx(1.0, abs=0.01) and t.min() == pytest.approx(0.0, abs=0.01)  # per-image min-max
    # back to exact, at the original size: the very same maps
    assert cli_main(["depth", str(root), "--estimator", "exact", "--no-progress"]) == 0
    meta = json.loads((root / "meta.json").read_text())
    assert meta["depth"]["source"] == "exact" and meta["depth_size"] == 16  # default size: meta's
    assert cli_main(["depth", str(root), "--estimator", "exact", "--size", str(DEPTH), "--no-progress"]) == 0
    meta = json.loads((root / "meta.json").read_text())
    assert meta["depth_size"] == DEPTH
    for p in _maps(root):
        assert torch.equal(read_depth_png(p), exact_before[p.name])


def test_exact_seed_normalisation_stores_the_seed_map(tmp_path):
    root = make_dataset(tmp_path / "ds")
    exact = {p.name: read_depth_png(p) for p in _maps(root)}
    assert cli_main(["depth", str(root), "--estimator", "exact", "--seed-normalisation", "--no-progress"]) == 0
    meta = json.loads((root / "meta.json").read_text())
    assert meta["depth"]["source"]["kind"] == "exact" and meta["depth"]["source"]["normalisation"] == "seed"
    for p in _maps(root):
        expected = seed_normalise(exact[p.name][None])[0]
        assert torch.allclose(meters_to_target(read_depth_png(p)), expected, atol=4e-3)


def test_own_pictures_dataset_gets_depth_folders(tmp_path, tiny_model):
    root = make_dataset(tmp_path / "ds", source="none")
    with pytest.raises(ValueError, match="no exact depth"):
        rewrite_depth(root, ExactDepth(root), RewriteOptions(progress=False))
    result = rewrite_depth(root, HFDepthEstimator(tiny_model, device="cpu"), RewriteOptions(progress=False))
    assert result.written == N_SAMPLES + N_BG
    assert len(list((root / "depth").glob("*.png"))) == N_SAMPLES
    assert sorted(p.name for p in (root / "bg_depth").glob("*.png")) == ["bg_0000.png", "bg_0001.png"]
    assert not (root / EXACT_BACKUP).exists()


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert cli_main(["depth", str(tmp_path / "nowhere")]) == 1
    assert "no meta.json" in capsys.readouterr().err
    root = make_dataset(tmp_path / "ds")
    with pytest.raises(SystemExit) as refused:  # argparse's usage error
        cli_main(["depth", str(root), "--size", "0"])
    assert refused.value.code == 2 and "argument --size" in capsys.readouterr().err
    meta = json.loads((root / "meta.json").read_text())
    meta["complete"] = False
    (root / "meta.json").write_text(json.dumps(meta))
    assert cli_main(["depth", str(root)]) == 1
    assert "unfinished" in capsys.readouterr().err
    (root / "dataset_info.csv").unlink()
    with pytest.raises(FileNotFoundError, match="dataset_info.csv"):
        depth_items(root)
    # nothing was written
    assert png_to_meters(np.array(Image.open(root / "depth/img_00000000.png"))).max() == FAR_M


def test_cli_names_a_missing_model_in_one_line(tmp_path, capsys):
    pytest.importorskip("transformers")  # without it the error asks for transformers first
    root = make_dataset(tmp_path / "ds")
    assert cli_main(["depth", str(root), "--estimator", str(tmp_path / "no-model")]) == 1
    assert "not found" in capsys.readouterr().err


@pytest.mark.slow
def test_on_a_dataset_from_the_writer(tmp_path, tiny_model):
    """The real writer's output: rewritten by the tiny model, still loadable, then restored exactly."""
    from evacamel.dataset.write import ensure_dataset, write_dataset
    from evacamel.dataset.format import load_sample
    from evacamel.profiles import get_profile

    profile = get_profile("quick").replace(n_backgrounds=4, n_camels=4, samples=6, source_size=32,
                                           depth_size=32, camel_size=32)
    root = write_dataset(tmp_path / "ds", profile, workers=1, progress=False)
    before = {p.relative_to(root).as_posix(): read_depth_png(p) for p in _maps(root)}
    assert cli_main(["depth", str(root), "--estimator", str(tiny_model), "--no-progress"]) == 0
    meta = json.loads((root / "meta.json").read_text())
    assert meta["depth"]["source"]["model"] == str(tiny_model) and meta["complete"] is True
    sample = load_sample(root, 0)
    assert sample["depth"].shape == (1, 32, 32)
    assert not torch.equal(sample["depth"], before[sample["row"]["depth_map_paths"]])
    assert ensure_dataset(profile, root, progress=False) == root  # still this profile's dataset
    assert cli_main(["depth", str(root), "--estimator", "exact", "--no-progress"]) == 0
    for rel, d in before.items():
        assert torch.equal(read_depth_png(root / rel), d)
    assert json.loads((root / "meta.json").read_text())["depth"]["source"] == "exact"
