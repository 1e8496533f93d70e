"""``evacamel make-dataset`` end to end on a tiny profile."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from evacamel import profiles
from evacamel.cli import main
from evacamel.dataset.format import read_index, read_meta

TINY = profiles.get_profile("quick").replace(
    name="tiny", n_backgrounds=4, n_camels=4, samples=24, source_size=64, depth_size=32,
    camel_size=64)


@pytest.fixture(autouse=True)
def tiny_profile(monkeypatch):
    monkeypatch.setitem(profiles.PROFILES, "tiny", TINY)


def _run(*argv: str) -> int:
    return main(["make-dataset", "--profile", "tiny", "--no-progress", "--workers", "1", *argv])


def test_make_dataset_end_to_end(tmp_path: Path, capsys):
    out = tmp_path / "ds"
    assert _run("--out", str(out), "--samples", "16", "--seed", "3") == 0
    printed = capsys.readouterr().out
    assert "complete: 16 samples" in printed and str(out) in printed
    meta = read_meta(out)
    assert meta["complete"] and meta["seed"] == 3 and meta["counts"]["samples"] == 16
    assert meta["profile"] == "tiny" and meta["depth_size"] == 32
    rows = read_index(out)
    assert len(rows) == 16
    with Image.open(out / rows[0]["depth_map_paths"]) as im:
        assert im.size == (32, 32) and im.mode.startswith("I;16")
    with Image.open(out / rows[0]["fg_bg_paths"]) as im:
        assert im.size == (64, 64)
    # rerun: nothing to do, nothing rewritten
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    assert _run("--out", str(out), "--samples", "16", "--seed", "3") == 0
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before


def test_shards_then_finalize(tmp_path: Path, capsys):
    out = tmp_path / "ds"
    # 72 samples = 3 chunks of 32 at 64 px: shard 0 writes chunks 0 and 2, shard 1 chunk 1
    assert _run("--out", str(out), "--samples", "72", "--shard", "0/2", "--zip-parts", "2") == 0
    assert "--finalize" in capsys.readouterr().out
    assert not read_meta(out)["complete"]
    assert _run("--out", str(out), "--samples", "72", "--finalize", "--zip-parts", "2") == 1
    assert "cannot finalize" in capsys.readouterr().err
    assert _run("--out", str(out), "--samples", "72", "--shard", "1/2", "--zip-parts", "2") == 0
    assert read_meta(out)["complete"]  # the last shard finalized
    assert (out / "dataset_1.zip").is_file() and (out / "dataset_bg.zip").is_file()
    assert {r["part"] for r in read_index(out)} == {0, 1}


def test_own_folders_seed_mode_and_no_depth(tmp_path: Path):
    bgs, camels = tmp_path / "bgs", tmp_path / "camels"
    bgs.mkdir()
    camels.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (70, 90, 3), dtype=np.uint8)).save(bgs / f"b{i}.png")
        rgba = np.zeros((30, 40, 4), np.uint8)
        rgba[5:25, 5:35] = (150, 110, 70, 255)
        Image.fromarray(rgba, "RGBA").save(camels / f"c{i}.png")
    out = tmp_path / "ds"
    assert _run("--out", str(out), "--backgrounds", str(bgs), "--camels", str(camels)) == 0
    meta = read_meta(out)
    assert meta["compose_mode"] == "seed" and meta["depth"]["source"] == "none"
    assert meta["generator"]["source"] == "folders"
    assert not (out / "depth").exists()


def test_errors_are_one_line_naming_the_file(tmp_path: Path, capsys):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert _run("--out", str(out)) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("evacamel make-dataset: error:") and "notes.txt" in err
    assert len(err.splitlines()) == 1
    camels = tmp_path / "camels"
    camels.mkdir()
    Image.fromarray(np.full((20, 20, 3), 90, np.uint8)).save(camels / "flat.jpg")
    assert _run("--out", str(tmp_path / "ds"), "--camels", str(camels)) == 1
    err = capsys.readouterr().err
    assert "flat.jpg" in err and "no alpha channel" in err


def test_help_lists_the_options():
    result = subprocess.run([sys.executable, "-m", "evacamel", "make-dataset", "--help"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    for option in ("--shard", "--finalize", "--zip-parts", "--clahe", "--mode", "--backgrounds",
                   "--camels", "--camel-masks", "--samples", "--workers", "--seed"):
        assert option in result.stdout


def test_bad_values_are_refused_in_one_line(tmp_path: Path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as refused:  # not data/<profile> by accident
        _run("--out", "")
    assert refused.value.code == 2  # argparse's usage error
    assert "argument --out: is empty" in capsys.readouterr().err
    assert not (tmp_path / "data").exists()
    assert _run("--out", str(tmp_path / "ds"), "--samples", "3", "--zip-parts", "10") == 1
    assert "more parts than the 3 samples" in capsys.readouterr().err
    assert not (tmp_path / "ds").exists()


def test_mode_choices_are_the_plans_compose_modes():
    """The command lists its --mode choices without importing torch; they must stay the plan's."""
    import argparse

    from evacamel.commands import make_dataset
    from evacamel.dataset.plan import COMPOSE_MODES

    parser = argparse.ArgumentParser()
    make_dataset.add_arguments(parser)
    mode = next(a for a in parser._actions if a.dest == "mode")
    assert tuple(mode.choices) == COMPOSE_MODES
