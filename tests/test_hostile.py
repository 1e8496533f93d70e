"""Hostile inputs: what a careless student or a malicious archive author can hand evacamel.

The contract (the maintainers' issue): no input, however bad, loses data, writes outside
where it should, or ends in a traceback. Every command catches what the user can cause
(OSError, HTTP errors, image errors) and prints ONE line on stderr naming the file and
the fix, with exit code 1; temporary files are removed on failure.

These tests drive evacamel only through its command line (``evacamel.cli.main``). Each
one failed on the code it was written against (branch ``hostile-tests``); the fixes
landed with them. A bad option value may be refused by argparse (usage, exit status 2:
:func:`assert_refused_argument`); every other error is ONE line and exit status 1
(:func:`assert_clean_error`).

Regression guards: some cases were already refused with a clear one-line message when
the tests were written (unsafe archive members, pickled checkpoints with code,
unreadable checkpoints, an index without its columns, ``--samples -5``, ``--shard
3/2``...). They stay, so that later changes cannot loosen them.

Run: ``pytest tests/test_hostile.py`` (about 25 s of CPU; a minute or two of wall time
on two busy cores). Only ``@pytest.mark.network`` tests talk to a server, on 127.0.0.1.
"""

from __future__ import annotations

import builtins
import functools
import os
import re
import shutil
import socket
import stat
import tarfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from _hostile_fixtures import (Route, Server, address_space_limit, assert_clean_error,
                               assert_refused_argument, copy_dataset, edit_rows, first_of_split,
                               jpeg_with_orientation, leftovers, own_sources, png_bytes_by_hand,
                               read_rows, run_cli, save_rgba_cutout, small_dataset_tar, snapshot,
                               tar_bytes, tar_file, textured_rgb, write_rows, zeros_tar, zip_bytes)

BOMB_BYTES = 64 << 20
"""Uncompressed size of the archive bombs: modest, the point is their ratio (> 1000). Above
``ExtractLimits.ratio_floor`` (16 MiB), under which no size is refused for its ratio."""


# -- shared fixtures -----------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _sandbox(tmp_path, monkeypatch):
    """Default data/runs folders inside tmp_path, so a command that ignores --out (a bug
    these tests look for) cannot write into the checkout."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EVACAMEL_DATA", str(tmp_path / "default-data"))
    monkeypatch.setenv("EVACAMEL_RUNS", str(tmp_path / "default-runs"))
    monkeypatch.setenv("EVACAMEL_PROFILE", "quick")


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    """A complete 16-sample quick dataset (12 train, 4 test). Never modify it: copy it."""
    root = tmp_path_factory.mktemp("pristine") / "data"
    r = run_cli(["make-dataset", "--profile", "quick", "--samples", "16", "--out", root,
                 "--workers", "1", "--no-progress"])
    assert r.code == 0, r
    return root


@pytest.fixture(scope="module")
def checkpoint(pristine, tmp_path_factory) -> Path:
    """``best.pt`` of one epoch on a copy of the pristine dataset (run folder beside it)."""
    base = tmp_path_factory.mktemp("ckpt")
    data = copy_dataset(pristine, base / "data")
    r = run_cli(["train", "--profile", "quick", "--data", data, "--out", base / "run",
                 "--epochs", "1", "--batch-size", "4", "--no-progress"])
    assert r.code == 0, r
    return base / "run" / "best.pt"


@pytest.fixture
def data(pristine, tmp_path) -> Path:
    """A fresh copy of the pristine dataset at ``tmp_path/data`` (free to spoil)."""
    return copy_dataset(pristine, tmp_path / "data")


@pytest.fixture(scope="module")
def server():
    s = Server()
    yield s
    s.close()


@pytest.fixture
def sleeps(monkeypatch) -> list[float]:
    """Record the downloader's back-off sleeps instead of sleeping (its retry policy
    would otherwise make each failing download take 1+2+4+8+16 = 31 s)."""
    calls: list[float] = []
    monkeypatch.setattr(time, "sleep", calls.append)
    return calls


@functools.lru_cache(maxsize=None)
def _bomb(kind: str) -> bytes:
    if kind in ("gz", "bz2"):
        return zeros_tar(BOMB_BYTES, kind)
    if kind == "zip-one-entry":
        return zip_bytes([("dataset/zeros.bin", bytes(BOMB_BYTES))])
    # many entries of exactly 1 MiB each, bzip2-compressed: every entry passes a
    # per-entry ratio check that only looks at entries larger than 1 MiB
    return zip_bytes([(f"dataset/fg_bg/z{i:03d}.bin", bytes(1 << 20)) for i in range(BOMB_BYTES >> 20)],
                     zipfile.ZIP_BZIP2)


def _download(url: str, dest: Path, *extra: str):
    return run_cli(["download", url, "--dest", dest, "--allow-unverified", *extra])


def _empty(folder: Path) -> bool:
    return not folder.exists() or not any(folder.rglob("*"))


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im)


# =========================================================================================
# 1. paths outside the dataset, for read and write
# =========================================================================================


@pytest.mark.parametrize("extra", [[], ["--force"]], ids=["plain", "force"])
@pytest.mark.parametrize("where", ["dotdot", "absolute"])
def test_depth_refuses_index_rows_outside_the_dataset(data, tmp_path, where, extra):
    outside = tmp_path / "outside.png"
    shutil.copy(data / "depth" / "img_00000000.png", outside)  # a real map: reading it works
    rel = "../outside.png" if where == "dotdot" else str(outside)
    edit_rows(data, lambda row: row["sample_id"] == "0", depth_map_paths=rel)
    before = snapshot(tmp_path, skip=data)

    r = run_cli(["depth", data, "--estimator", "exact", "--no-progress", *extra])

    assert snapshot(tmp_path, skip=data) == before, \
        f"created, replaced or hard-linked a file outside the dataset:\n{r}"
    assert_clean_error(r, mentions=["dataset_info.csv", rel])


def _reader_argv(command: str, data: Path, checkpoint: Path, tmp_path: Path) -> list:
    return {
        "train": ["train", "--profile", "quick", "--data", data, "--out", tmp_path / "run",
                  "--epochs", "1", "--batch-size", "4", "--no-progress"],
        "evaluate": ["evaluate", checkpoint, "--data", data, "--json"],
        "pack": ["pack", "--profile", "quick", "--root", data, "--workers", "1"],
        "stats": ["stats", "--profile", "quick", "--root", data, "--workers", "1"],
    }[command]


@pytest.mark.parametrize("command", ["train", "evaluate", "pack", "stats"])
def test_readers_refuse_index_rows_outside_the_dataset(command, data, checkpoint, tmp_path):
    # A readable image outside the dataset: a reader that follows the row succeeds.
    (tmp_path / "outside").mkdir()
    fields, rows = read_rows(data)
    shutil.copy(data / rows[0]["fg_bg_paths"], tmp_path / "outside" / "img.jpg")
    rel = "../outside/img.jpg"
    edit_rows(data, first_of_split("train"), fg_bg_paths=rel)
    edit_rows(data, first_of_split("test"), fg_bg_paths=rel)

    r = run_cli(_reader_argv(command, data, checkpoint, tmp_path))

    assert_clean_error(r, mentions=["dataset_info.csv", rel])


@pytest.mark.parametrize("rel", ["../../../../../../../../etc/passwd", "/etc/hostname",
                                 "..\\outside\\img.jpg"], ids=["etc-passwd", "absolute", "windows"])
def test_pack_refuses_foreign_paths_in_the_index(rel, data, tmp_path):
    edit_rows(data, lambda row: True, fg_bg_paths=rel)
    r = run_cli(["pack", "--profile", "quick", "--root", data, "--workers", "1"])
    assert_clean_error(r, mentions=["dataset_info.csv", (rel, repr(rel)[1:-1])])  # as written, or quoted
    assert not (data / "packed-64" / "manifest.json").exists()


# =========================================================================================
# 2. archive bombs
# =========================================================================================


def _assert_bomb_refused(r, dest: Path, tmp_path: Path) -> None:
    assert _empty(dest), f"the bomb was extracted into {dest}:\n{r}"
    assert leftovers(tmp_path) == [], f"temporary files left behind:\n{r}"
    assert_clean_error(r, mentions=["re:--max-[a-z-]+"])
    option = re.search(r"--max-[a-z-]+", r.err).group(0)
    assert option in run_cli(["download", "--help"]).out, f"{option}: not an option of download"


@pytest.mark.network
@pytest.mark.parametrize("compression", ["gz", "bz2"])
def test_download_refuses_a_tar_bomb_by_its_ratio(compression, server, tmp_path, sleeps):
    body = _bomb(compression)
    assert len(body) * 1000 < BOMB_BYTES  # expands more than 1000-fold
    url = server.add(f"/bomb.tar.{compression}", Route(body))
    dest = tmp_path / "dest"
    r = _download(url, dest)
    _assert_bomb_refused(r, dest, tmp_path)


@pytest.mark.network
@pytest.mark.parametrize("kind", ["zip-one-entry", "zip-many-1MiB-entries"])
def test_download_refuses_a_zip_bomb_by_its_ratio(kind, server, tmp_path, sleeps):
    body = _bomb(kind)
    assert len(body) * 1000 < BOMB_BYTES
    url = server.add(f"/{kind}.zip", Route(body))
    dest = tmp_path / "dest"
    r = _download(url, dest)
    _assert_bomb_refused(r, dest, tmp_path)


# =========================================================================================
# 3. truncated downloads
# =========================================================================================


def _assert_nothing_kept(r, url: str, dest: Path, tmp_path: Path) -> None:
    name = url.rsplit("/", 1)[-1]
    assert _empty(dest), f"a broken download was extracted into {dest}:\n{r}"
    kept = [str(p.relative_to(tmp_path)) for p in tmp_path.rglob(name + "*")]
    assert kept == [], f"kept {kept} after a failed download:\n{r}"
    assert leftovers(tmp_path) == [], f"temporary files left behind:\n{r}"
    assert_clean_error(r, mentions=[name])


@pytest.mark.network
def test_download_cut_short_without_length_is_not_kept_or_extracted(server, tmp_path, sleeps):
    body = small_dataset_tar()
    url = server.add("/nolength.tar.gz", Route(body, length=None, send=len(body) // 2))
    dest = tmp_path / "dest"
    r = _download(url, dest)
    _assert_nothing_kept(r, url, dest, tmp_path)


@pytest.mark.network
def test_download_shorter_than_its_content_length_fails_cleanly(server, tmp_path, sleeps):
    body = small_dataset_tar()
    route = Route(body, send=len(body) // 2)  # Content-Length says the whole size, every time
    url = server.add("/short.tar.gz", route)
    dest = tmp_path / "dest"
    r = _download(url, dest)
    assert len(route.hits) >= 2, "a cut-off body should be retried"
    _assert_nothing_kept(r, url, dest, tmp_path)


@pytest.mark.network
def test_download_of_an_archive_that_does_not_open_whole_fails_cleanly(server, tmp_path, sleeps):
    body = small_dataset_tar()
    url = server.add("/halfarchive.tar.gz", Route(body[: len(body) // 2]))  # served whole, broken at source
    dest = tmp_path / "dest"
    r = _download(url, dest)
    _assert_nothing_kept(r, url, dest, tmp_path)


# =========================================================================================
# 4. overwrites
# =========================================================================================


@pytest.mark.network
def test_download_of_a_plain_file_does_not_replace_a_file_in_dest(server, tmp_path, sleeps):
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "meta.json").write_text('{"format": "evacamel-dataset", "mine": true}\n')
    before = snapshot(dest)
    url = server.add("/meta.json", Route(b'{"format": "evil"}\n'))
    r = _download(url, dest)
    assert snapshot(dest) == before, f"replaced a file in --dest:\n{r}"
    if r.code != 0:
        assert_clean_error(r, mentions=["meta.json"])


def _pair(data: Path, folder: Path, bg_name: str = "bg.png", fg_name: str = "scene.png") -> tuple[Path, Path]:
    """A (background, composite) pair copied from the dataset into ``folder`` as PNGs."""
    folder.mkdir(parents=True, exist_ok=True)
    _, rows = read_rows(data)
    Image.open(data / rows[0]["selected_bg_paths"]).save(folder / bg_name)
    Image.open(data / rows[0]["fg_bg_paths"]).save(folder / fg_name)
    return folder / bg_name, folder / fg_name


def test_predict_refuses_to_overwrite_existing_outputs(checkpoint, pristine, tmp_path):
    bg, fg = _pair(pristine, tmp_path / "in")
    out = tmp_path / "out"
    assert run_cli(["predict", checkpoint, "--bg", bg, "--fg-bg", fg, "--out", out]).code == 0
    before = snapshot(out)
    r = run_cli(["predict", checkpoint, "--bg", bg, "--fg-bg", fg, "--out", out])
    assert snapshot(out) == before, f"silently replaced the earlier outputs:\n{r}"
    assert_clean_error(r, mentions=["scene_mask.png"])


def test_predict_never_overwrites_its_own_input(checkpoint, pristine, tmp_path):
    # A student's composite that happens to be called photo_mask.png, and --name photo:
    # the mask output would be written over the input.
    bg, fg = _pair(pristine, tmp_path / "in", fg_name="photo_mask.png")
    before = fg.read_bytes()
    r = run_cli(["predict", checkpoint, "--bg", bg, "--fg-bg", fg, "--name", "photo"])
    assert fg.read_bytes() == before, f"overwrote its own input {fg}:\n{r}"
    assert_clean_error(r, mentions=["photo_mask.png"])


def test_predict_name_cannot_write_outside_out(checkpoint, pristine, tmp_path):
    bg, fg = _pair(pristine, tmp_path / "in")
    out = tmp_path / "deep" / "out"
    r = run_cli(["predict", checkpoint, "--bg", bg, "--fg-bg", fg, "--out", out,
                 "--name", "../../escaped"])
    escaped = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("escaped*")
                     if out not in p.parents)
    assert escaped == [], f"--name wrote outside --out: {escaped}\n{r}"
    assert_refused_argument(r, "--name")


def test_train_resume_writes_next_to_the_checkpoint(checkpoint, pristine, tmp_path):
    # A checkpoint moved (or shared) after its run: the folder stored inside it is not
    # where the user works now.
    state = torch.load(checkpoint.with_name("last.pt"), map_location="cpu", weights_only=False)
    elsewhere = tmp_path / "elsewhere"
    state["config"]["out"] = str(elsewhere)
    state["config"]["data"] = str(copy_dataset(pristine, tmp_path / "data"))
    moved = tmp_path / "moved"
    moved.mkdir()
    torch.save(state, moved / "last.pt")

    r = run_cli(["train", "--resume", moved / "last.pt", "--no-progress"])

    assert not elsewhere.exists(), \
        f"wrote into the folder named inside the checkpoint ({sorted(os.listdir(elsewhere))}):\n{r}"
    assert r.code == 0, r
    assert (moved / "config.json").is_file(), f"nothing written next to the checkpoint:\n{r}"


# =========================================================================================
# 5. clear errors, never tracebacks
# =========================================================================================


def test_make_dataset_names_a_decompression_bomb_background(tmp_path):
    bgs, camels = own_sources(tmp_path / "mine")
    (bgs / "huge.png").write_bytes(png_bytes_by_hand(20000, 20000))  # 400 Mpx in ~50 KB
    r = run_cli(["make-dataset", "--profile", "quick", "--samples", "4", "--out", tmp_path / "ds",
                 "--backgrounds", bgs, "--camels", camels, "--workers", "1", "--no-progress"])
    assert_clean_error(r, mentions=["huge.png"])
    assert _empty(tmp_path / "ds")


@pytest.mark.parametrize("size", [(1, 1), (50, 1), (1, 50)], ids=["1x1", "50x1", "1x50"])
def test_predict_refuses_tiny_images_clearly(size, checkpoint, tmp_path):
    img = tmp_path / "tiny.png"
    Image.new("RGB", size, (200, 150, 90)).save(img)
    r = run_cli(["predict", checkpoint, "--bg", img, "--fg-bg", img, "--out", tmp_path / "out"])
    assert_clean_error(r, mentions=["tiny.png"])
    assert _empty(tmp_path / "out")


@pytest.mark.parametrize("kind", ["folder-as-bg", "sizes-differ", "animated-gif"])
def test_predict_names_the_input_it_cannot_use(kind, checkpoint, tmp_path):
    folder = tmp_path / "in"
    (folder / "photos").mkdir(parents=True)
    Image.fromarray(textured_rgb(128, 128)).save(folder / "scene.png")
    if kind == "folder-as-bg":  # `--bg photos/`: a folder, not a file
        bg, fg, culprit = folder / "photos", folder / "scene.png", "photos"
    elif kind == "sizes-differ":
        Image.fromarray(textured_rgb(96, 96)).save(folder / "small_bg.png")
        bg, fg, culprit = folder / "small_bg.png", folder / "scene.png", "small_bg.png"
    else:
        frames = [Image.fromarray(textured_rgb(64, 64, seed=i)) for i in range(3)]
        frames[0].save(folder / "anim.gif", save_all=True, append_images=frames[1:])
        bg, fg, culprit = folder / "anim.gif", folder / "anim.gif", "anim.gif"
    r = run_cli(["predict", checkpoint, "--bg", bg, "--fg-bg", fg, "--out", tmp_path / "out"])
    assert_clean_error(r, mentions=[culprit])
    assert _empty(tmp_path / "out")


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_predict_names_a_truncated_photo_in_one_line(suffix, checkpoint, tmp_path, capfd):
    whole = tmp_path / f"whole{suffix}"
    Image.fromarray(textured_rgb(96, 128)).save(whole)
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    r = run_cli(["predict", checkpoint, "--bg", whole, "--fg-bg", cut, "--out", tmp_path / "out"])
    assert_clean_error(r, mentions=[cut.name])
    written = capfd.readouterr().err  # what C libraries wrote to the terminal themselves
    assert written.strip() == "", f"a second line on stderr, from a C library: {written!r}"
    assert _empty(tmp_path / "out")


@pytest.mark.network
def test_download_after_http_500_fails_cleanly(server, tmp_path, sleeps):
    route = Route(status=500)
    url = server.add("/broken.zip", route)
    dest = tmp_path / "dest"
    r = _download(url, dest)
    assert _empty(dest)
    assert leftovers(tmp_path) == [], f"temporary files left behind:\n{r}"
    assert_clean_error(r, mentions=[("500", "broken.zip")])


@pytest.mark.network
def test_download_from_a_closed_port_fails_cleanly(tmp_path, sleeps):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dest = tmp_path / "dest"
    r = _download(f"http://127.0.0.1:{port}/data.zip", dest)
    assert _empty(dest)
    assert leftovers(tmp_path) == [], f"temporary files left behind:\n{r}"
    assert_clean_error(r, mentions=[f"127.0.0.1:{port}"])


def test_make_dataset_out_under_a_file_fails_cleanly(tmp_path):
    (tmp_path / "notes.txt").write_text("my notes\n")
    r = run_cli(["make-dataset", "--profile", "quick", "--samples", "4",
                 "--out", tmp_path / "notes.txt" / "ds", "--workers", "1", "--no-progress"])
    assert (tmp_path / "notes.txt").read_text() == "my notes\n"
    assert_clean_error(r, mentions=["notes.txt"])


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through chmod 0o555")
def test_make_dataset_read_only_out_fails_cleanly(tmp_path):
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o555)
    try:
        r = run_cli(["make-dataset", "--profile", "quick", "--samples", "4", "--out", out,
                     "--workers", "1", "--no-progress"])
    finally:
        out.chmod(0o755)
    assert_clean_error(r, mentions=["ro"])


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through chmod 0o555")
def test_train_on_a_read_only_dataset_fails_cleanly(data, tmp_path):
    modes = {p: p.stat().st_mode for p in [data, *data.rglob("*")]}
    for p in [*data.rglob("*"), data]:
        p.chmod(stat.S_IMODE(modes[p]) & ~0o222)
    try:
        r = run_cli(["train", "--profile", "quick", "--data", data, "--out", tmp_path / "run",
                     "--epochs", "1", "--batch-size", "4", "--no-progress"])
    finally:
        for p, m in modes.items():
            p.chmod(stat.S_IMODE(m))
    assert_clean_error(r, mentions=["data"])


def test_train_when_the_packed_cache_cannot_be_created_fails_cleanly(data, tmp_path):
    # What root sees of a read-only dataset: the cache folder cannot be made (a file is
    # where it goes).
    (data / "packed-64").write_text("not a folder\n")
    r = run_cli(["train", "--profile", "quick", "--data", data, "--out", tmp_path / "run",
                 "--epochs", "1", "--batch-size", "4", "--no-progress"])
    assert (data / "packed-64").read_text() == "not a folder\n"
    assert_clean_error(r, mentions=["packed-64"])


def _corrupt(kind: str, checkpoint: Path, path: Path) -> Path:
    if kind == "random-bytes":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif kind == "zero-bytes":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("this is my best model, trust me\n")
    elif kind == "other-width":
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        state["model_config"]["width"] = 2 * int(state["model_config"]["width"])
        torch.save(state, path)
    elif kind == "truncated":
        path.write_bytes(checkpoint.read_bytes()[: checkpoint.stat().st_size // 2])
    elif kind == "mono-depth":  # the shipped depth model's weights: another model's file
        shutil.copyfile(Path(__file__).parents[1] / "evacamel" / "weights" / "mono_depth.pt", path)
    elif kind in _FOREIGN_RECORDS:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        _FOREIGN_RECORDS[kind](state)
        torch.save(state, path)
    return path


_FOREIGN_RECORDS = {
    "config-not-a-dict": lambda s: s.update(config="best run ever"),
    "config-profile-a-list": lambda s: s["config"].update(profile=["quick"]),
    "config-data-a-number": lambda s: s["config"].update(data=5),
    "input-size-negative": lambda s: s["model_config"].update(input_size=-5, output_size=0),
}
"""A checkpoint whose record is not what ``evacamel train`` writes (edited, or another tool's)."""


@pytest.mark.parametrize("kind", ["random-bytes", "zero-bytes", "text", "truncated", "other-width",
                                  "mono-depth"])
@pytest.mark.parametrize("command", ["evaluate", "predict"])
def test_a_broken_checkpoint_is_one_line_naming_it(kind, command, checkpoint, pristine, tmp_path):
    bad = _corrupt(kind, checkpoint, tmp_path / "best.pt")
    if command == "evaluate":
        argv = ["evaluate", bad, "--data", pristine, "--json"]
    else:
        bg, fg = _pair(pristine, tmp_path / "in")
        argv = ["predict", bad, "--bg", bg, "--fg-bg", fg, "--out", tmp_path / "out"]
    r = run_cli(argv)
    assert_clean_error(r, mentions=[str(bad)])


# =========================================================================================
# 6. right, not silently wrong
# =========================================================================================


def _sixteen_bit(rgb8: np.ndarray) -> np.ndarray:
    """The grey 16-bit version of an 8-bit colour image (same picture, 257x the values)."""
    grey = np.asarray(Image.fromarray(rgb8).convert("L"), dtype=np.uint16)
    return grey * 257


def test_make_dataset_does_not_whiten_16_bit_backgrounds(tmp_path):
    bgs, camels = own_sources(tmp_path / "mine", n_bg=0)
    for i in range(4):
        Image.fromarray(_sixteen_bit(textured_rgb(160, 200, seed=i))).save(bgs / f"desert16_{i}.png")
    assert Image.open(bgs / "desert16_0.png").mode == "I;16"
    out = tmp_path / "ds"
    r = run_cli(["make-dataset", "--profile", "quick", "--samples", "4", "--out", out,
                 "--backgrounds", bgs, "--camels", camels, "--workers", "1", "--no-progress"])
    if r.code != 0:
        assert_clean_error(r, mentions=["desert16_"])
        return
    first = sorted((out / "bg").iterdir())[0]
    px = _pixels(first).astype(float)
    assert px.mean() < 240 and px.std() > 10, \
        f"{first.name}: the 16-bit background became a blank image (mean {px.mean():.0f}, std {px.std():.1f})"


def test_predict_reads_16_bit_inputs_as_their_8_bit_picture(checkpoint, pristine, tmp_path):
    # The same grey picture as 8-bit PNGs and as 16-bit PNGs (values x 257), and a white
    # pair: the 16-bit prediction must be the 8-bit one, not the white one.
    _, rows = read_rows(pristine)
    folder = tmp_path / "in"
    folder.mkdir()
    for kind, col in (("bg", "selected_bg_paths"), ("fg", "fg_bg_paths")):
        grey16 = _sixteen_bit(_pixels(pristine / rows[0][col]))
        Image.fromarray(grey16).save(folder / f"{kind}16.png")
        Image.fromarray((grey16 // 257).astype(np.uint8)).save(folder / f"{kind}8.png")
    Image.new("L", (128, 128), 255).save(folder / "white.png")
    depth = {}
    for name, bg, fg in (("8", "bg8", "fg8"), ("16", "bg16", "fg16"), ("white", "white", "white")):
        r = run_cli(["predict", checkpoint, "--bg", folder / f"{bg}.png", "--fg-bg", folder / f"{fg}.png",
                     "--out", tmp_path / f"out-{name}", "--name", "x"])
        if name == "16" and r.code != 0:
            assert_clean_error(r, mentions=["bg16.png"])  # refusing 16-bit clearly is fine too
            return
        assert r.code == 0, r
        depth[name] = _pixels(tmp_path / f"out-{name}" / "x_depth.png").astype(float)
    to_white = np.abs(depth["8"] - depth["white"]).mean()
    # not a skip: a test that could pass without comparing anything would prove nothing
    assert to_white > 0, "the fixture's checkpoint predicts the same depth for any input"
    diff = np.abs(depth["8"] - depth["16"]).mean()
    same_as_white = np.abs(depth["16"] - depth["white"]).mean() == 0
    assert diff < to_white / 4, \
        f"the 16-bit pair was predicted {'exactly as a white image' if same_as_white else 'unlike its 8-bit picture'}" \
        f" (mean |depth diff| {diff:.0f} from the 8-bit picture's, {to_white:.0f} between it and white)"


def test_predict_turns_exif_rotated_photos_upright(checkpoint, pristine, tmp_path):
    # Stored 96 wide x 48 tall, EXIF orientation 6: upright it is 48 wide x 96 tall.
    stored = textured_rgb(48, 96)
    bg, fg = tmp_path / "bg.jpg", tmp_path / "phone.jpg"
    jpeg_with_orientation(bg, stored, 6)
    jpeg_with_orientation(fg, stored, 6)
    r = run_cli(["predict", checkpoint, "--bg", bg, "--fg-bg", fg, "--out", tmp_path / "out"])
    assert r.code == 0, r
    mask = _pixels(tmp_path / "out" / "phone_mask.png")
    assert mask.shape[:2] == (96, 48), f"mask is {mask.shape[1]}x{mask.shape[0]} (w x h): the photo was used on its side"


def _camel_case(kind: str, camels: Path, masks: Path) -> str:
    if kind == "all-opaque-mask":  # an RGB photo with a mask that is white everywhere
        Image.fromarray(textured_rgb(64, 48)).save(camels / "blob.jpg")
        Image.new("L", (48, 64), 255).save(masks / "blob.png")
        return "blob"
    if kind == "sliver-2000x8":  # a 2000 x 8 picture whose camel is a 4-pixel-high line
        alpha = np.zeros((8, 2000), np.uint8)
        alpha[2:6, 10:1990] = 255
        save_rgba_cutout(camels / "blob.png", alpha)
        return "blob"
    alpha = np.zeros((64, 64), np.uint8)
    alpha[31, 40] = 255
    save_rgba_cutout(camels / "blob.png", alpha)  # one visible pixel
    return "blob"


@pytest.mark.parametrize("kind", ["all-opaque-mask", "sliver-2000x8", "single-pixel"])
def test_make_dataset_refuses_cutouts_without_a_visible_camel(kind, tmp_path):
    bgs, camels = own_sources(tmp_path / "mine", n_camels=3)
    masks = tmp_path / "mine" / "camel_masks"
    masks.mkdir()
    name = _camel_case(kind, camels, masks)
    r = run_cli(["make-dataset", "--profile", "quick", "--samples", "4", "--out", tmp_path / "ds",
                 "--backgrounds", bgs, "--camels", camels, "--camel-masks", masks,
                 "--workers", "1", "--no-progress"])
    assert_clean_error(r, mentions=[name])


def test_evaluate_refuses_an_empty_test_split(checkpoint, data):
    edit_rows(data, lambda row: True, split="train")
    r = run_cli(["evaluate", checkpoint, "--data", data])
    assert "1.0000" not in r.out or r.code != 0, f"printed perfect scores for no sample:\n{r}"
    assert_clean_error(r, mentions=["test"])


def test_make_dataset_does_not_make_an_empty_split_silently(tmp_path):
    bgs, camels = own_sources(tmp_path / "mine")
    r = run_cli(["make-dataset", "--profile", "quick", "--samples", "1", "--out", tmp_path / "ds",
                 "--backgrounds", bgs, "--camels", camels, "--workers", "1", "--no-progress"])
    if r.code == 0:
        assert re.search(r"(?i)warn.*(test|split)|(test|split).*(empty|no sample)", r.out + r.err), \
            f"wrote a dataset with an empty split without a word:\n{r}"
    else:
        assert_clean_error(r, mentions=["--samples"])


# =========================================================================================
# 7. bad arguments
# =========================================================================================


def test_pack_refuses_an_input_size_the_model_cannot_take(data):
    r = run_cli(["pack", "--profile", "quick", "--root", data, "--input-size", "33", "--workers", "1"])
    assert not (data / "packed-33").exists(), f"packed a cache no model can use:\n{r}"
    assert_refused_argument(r, "--input-size")


@pytest.mark.network
@pytest.mark.parametrize("value", ["0", "-1"])
def test_download_refuses_a_nonpositive_max_files(value, server, tmp_path):
    route = Route(small_dataset_tar())
    url = server.add(f"/maxfiles{value}.tar.gz", route)
    r = _download(url, tmp_path / "dest", "--max-files", value)
    assert route.hits == [], f"downloaded before checking --max-files {value}:\n{r}"
    assert_refused_argument(r, "--max-files")


def test_make_dataset_refuses_an_empty_out(tmp_path):
    bgs, camels = own_sources(tmp_path / "mine")
    r = run_cli(["make-dataset", "--profile", "quick", "--samples", "2", "--out", "",
                 "--backgrounds", bgs, "--camels", camels, "--workers", "1", "--no-progress"])
    assert _empty(tmp_path / "default-data"), f'--out "" wrote into the default data folder:\n{r}'
    assert_refused_argument(r, "--out")


def test_make_dataset_refuses_more_zip_parts_than_samples(tmp_path):
    bgs, camels = own_sources(tmp_path / "mine")
    out = tmp_path / "ds"
    r = run_cli(["make-dataset", "--profile", "quick", "--samples", "3", "--zip-parts", "10",
                 "--out", out, "--backgrounds", bgs, "--camels", camels, "--workers", "1",
                 "--no-progress"])
    empty = sorted(p.name for p in out.glob("dataset_*.zip")
                   if p.name != "dataset_bg.zip" and not zipfile.ZipFile(p).namelist())
    assert empty == [], f"wrote empty zip parts {empty}:\n{r}"
    assert_refused_argument(r, "--zip-parts")


def test_overview_refuses_an_out_that_is_not_an_image(checkpoint, tmp_path):
    r = run_cli(["overview", checkpoint, "--out", tmp_path / "x.txt", "--scenes", "1", "--size", "64"])
    assert not (tmp_path / "x.txt").exists(), f"wrote an image into x.txt:\n{r}"
    assert_refused_argument(r, "--out")


@pytest.mark.parametrize("argv, option", [
    (["--width", "0"], "--width"),
    (["--warmup", "2"], "--warmup"),
    (["--warmup", "2", "--schedule", "cosine"], "--warmup"),
    (["--batch-size", "0"], "--batch-size"),
    (["--epochs", "0"], "--epochs"),
    (["--seed", "-1"], "--seed"),
    (["--input-size", "33"], "--input-size"),
], ids=["width-0", "warmup-2", "warmup-2-cosine", "batch-size-0", "epochs-0", "seed-neg",
        "input-size-33"])
def test_train_refuses_bad_schedule_and_model_options(argv, option, data, tmp_path):
    run = tmp_path / "run"
    r = run_cli(["train", "--profile", "quick", "--data", data, "--out", run, "--epochs", "1",
                 "--batch-size", "4", "--no-progress", *argv])
    assert not (run / "best.pt").exists(), f"trained with {' '.join(argv)}:\n{r}"
    assert_refused_argument(r, option)


@pytest.mark.parametrize("width, height", [(20000, 20000), (12000, 10000)],
                         ids=["400Mpx-over-PIL-limit", "120Mpx-over-ours"])
def test_predict_refuses_a_huge_image_quickly(width, height, checkpoint, tmp_path):
    big = tmp_path / "big.png"
    big.write_bytes(png_bytes_by_hand(width, height))  # 400 Mpx: 1.2 GB as RGB, 50 KB on disk
    # Refused from the header: under this cap, decoding the pixels (1.2 GB) would fail with
    # a MemoryError instead of the limit's message (no timing assertion: the machine is shared).
    with address_space_limit(1 << 30):
        r = run_cli(["predict", checkpoint, "--bg", big, "--fg-bg", big, "--out", tmp_path / "out"])
    assert_clean_error(r, mentions=["big.png", rf"re:(?i)\b{width}\b|pixel|Mpx"])
    assert _empty(tmp_path / "out")


@pytest.mark.parametrize("argv, option", [
    (["make-dataset", "--samples", "-5"], "--samples"),
    (["make-dataset", "--seed", "-1", "--samples", "2"], "--seed"),
    (["make-dataset", "--profile", "nope"], "--profile"),
    (["make-dataset", "--shard", "3/2"], "--shard"),
    (["make-dataset", "--shard", "0/0"], "--shard"),
    (["make-dataset", "--shard", "x"], "--shard"),
    (["make-dataset", "--zip-parts", "-1", "--samples", "2"], "--zip-parts"),
    (["make-dataset", "--workers", "0", "--samples", "2"], "--workers"),
    (["evaluate", "{ckpt}", "--batch-size", "0", "--data", "{data}"], "--batch-size"),
    (["depth", "{data}", "--batch-size", "0"], "--batch-size"),
], ids=["samples-neg", "seed-neg", "profile-unknown", "shard-3of2", "shard-0of0", "shard-x",
        "zip-parts-neg", "workers-0",
        "evaluate-batch-0", "depth-batch-0"])
def test_bad_option_values_are_refused(argv, option, checkpoint, data, tmp_path):
    bgs, camels = own_sources(tmp_path / "mine")
    argv = [a.format(ckpt=checkpoint, data=data) for a in argv]
    if argv[0] == "make-dataset":
        argv += ["--out", tmp_path / "ds", "--backgrounds", bgs, "--camels", camels, "--no-progress"]
    r = run_cli(argv)
    assert_refused_argument(r, option)


# =========================================================================================
# 8. beyond: malicious archives, foreign files, careless students
# =========================================================================================


def _link(name: str, target: str, kind: bytes) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, None


def _device(name: str) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = tarfile.CHRTYPE
    info.devmajor, info.devminor = 1, 3
    return info, None


def _zip_symlink(name: str, target: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


MALICIOUS = {
    "tar-symlink-out": lambda: tar_bytes([_link("dataset/meta.json", "../../../../etc/passwd", tarfile.SYMTYPE)]),
    "tar-hardlink-out": lambda: tar_bytes([_link("dataset/x", "/etc/passwd", tarfile.LNKTYPE)]),
    "tar-dotdot": lambda: tar_bytes([tar_file("dataset/../../escaped.txt", b"x")]),
    "tar-absolute": lambda: tar_bytes([tar_file("/tmp/escaped.txt", b"x")]),
    "tar-device": lambda: tar_bytes([_device("dataset/null")]),
    "zip-symlink-out": lambda: zip_bytes([(_zip_symlink("dataset/link", "/etc"), b"/etc")]),
    "zip-dotdot": lambda: zip_bytes([("../escaped.txt", b"x")]),
    "zip-backslash-dotdot": lambda: zip_bytes([("..\\..\\escaped.txt", b"x")]),
    "zip-drive": lambda: zip_bytes([("C:/escaped.txt", b"x")]),
    "zip-dot-entry": lambda: zip_bytes([("dataset/meta.json", b"{}"), (".", b"x")]),
    "zip-name-too-long": lambda: zip_bytes([("dataset/" + "a" * 300 + ".jpg", b"x")]),
    "tar-file-then-dir": lambda: tar_bytes([tar_file("dataset/fg_bg/a.jpg", b"x"),
                                            tar_file("dataset/fg_bg", b"a file where a folder is")]),
}


@pytest.mark.network
@pytest.mark.parametrize("kind", sorted(MALICIOUS))
def test_download_refuses_malicious_archives_cleanly(kind, server, tmp_path, sleeps):
    ext = ".zip" if kind.startswith("zip") else ".tar.gz"
    url = server.add(f"/{kind}{ext}", Route(MALICIOUS[kind]()))
    work = tmp_path / "work"
    dest = work / "dest"
    tmp_escape = Path("/tmp/escaped.txt")
    existed = tmp_escape.exists()
    r = _download(url, dest)
    assert existed or not tmp_escape.exists(), f"wrote {tmp_escape}:\n{r}"
    outside = [str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*escaped*")]
    assert outside == [], f"wrote {outside}:\n{r}"
    assert _empty(dest), f"extracted part of a refused archive:\n{r}"
    assert leftovers(tmp_path) == [], f"temporary files left behind:\n{r}"
    assert_clean_error(r, mentions=[kind])


@pytest.mark.network
def test_download_filename_cannot_escape_the_downloads_folder(server, tmp_path, sleeps):
    url = server.add("/plain.bin", Route(b"hello"))
    work = tmp_path / "a" / "b"
    r = run_cli(["download", url, "--dest", work / "dest", "--allow-unverified", "--no-extract",
                 "--filename", "../../../escaped.bin"])
    outside = [str(p.relative_to(tmp_path)) for p in tmp_path.rglob("escaped*")
               if work not in p.parents]
    assert outside == [], f"--filename wrote outside the download folders: {outside}\n{r}"
    assert_refused_argument(r, "--filename")


@pytest.mark.parametrize("content", ["[]", '"a string"'], ids=["list", "string"])
@pytest.mark.parametrize("command", ["make-dataset", "pack", "train"])
def test_a_meta_json_of_the_wrong_type_is_one_line(content, command, data, checkpoint, tmp_path):
    (data / "meta.json").write_text(content)
    argv = {
        "make-dataset": ["make-dataset", "--profile", "quick", "--samples", "16", "--out", data,
                         "--workers", "1", "--no-progress"],
        "pack": ["pack", "--profile", "quick", "--root", data, "--workers", "1"],
        "train": ["train", "--profile", "quick", "--data", data, "--out", tmp_path / "run",
                  "--epochs", "1", "--batch-size", "4", "--no-progress"],
    }[command]
    r = run_cli(argv)
    assert (data / "meta.json").read_text() == content, "rewrote a meta.json it could not read"
    assert_clean_error(r, mentions=["meta.json"])


def _spoil_index(kind: str, data: Path) -> None:
    index = data / "dataset_info.csv"
    fields, rows = read_rows(data)
    if kind == "missing-columns":
        fields = [f for f in fields if f not in ("depth_map_paths", "mask_paths")]
        write_rows(data, fields, [{k: r[k] for k in fields} for r in rows])
    elif kind == "nul-byte":
        rows[0]["fg_bg_paths"] = "fg_bg/img\x0000000000.jpg"
        write_rows(data, fields, rows)
    elif kind == "not-utf8":
        index.write_bytes(index.read_bytes().replace(b"fg_bg/img_00000000.jpg", b"fg_bg/img_\xff\xfe.jpg"))
    elif kind == "huge-line":
        rows[0]["fg_bg_paths"] = "fg_bg/" + "x" * 200_000 + ".jpg"
        write_rows(data, fields, rows)
    elif kind == "empty-file":
        index.write_bytes(b"")
    elif kind == "directory":
        index.unlink()
        index.mkdir()


@pytest.mark.parametrize("kind", ["missing-columns", "nul-byte", "not-utf8", "huge-line", "empty-file",
                                  "directory"])
@pytest.mark.parametrize("command", ["pack", "stats"])
def test_a_broken_index_is_one_line_naming_it(kind, command, data):
    _spoil_index(kind, data)
    r = run_cli(["pack" if command == "pack" else "stats", "--profile", "quick", "--root", data,
                 "--workers", "1"])
    assert_clean_error(r, mentions=["dataset_info.csv"])


@pytest.mark.parametrize("command", ["evaluate", "predict", "train-resume"])
def test_a_pickled_checkpoint_with_code_is_refused_unrun(command, checkpoint, pristine, tmp_path):
    marker = tmp_path / "PWNED"

    class Payload:
        def __reduce__(self):
            return builtins.open, (str(marker), "w")

    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    state["normalization"]["hook"] = Payload()
    evil = tmp_path / "best.pt"
    torch.save(state, evil)
    assert not marker.exists()
    if command == "evaluate":
        argv = ["evaluate", evil, "--data", pristine, "--json"]
    elif command == "predict":
        bg, fg = _pair(pristine, tmp_path / "in")
        argv = ["predict", evil, "--bg", bg, "--fg-bg", fg, "--out", tmp_path / "out"]
    else:
        argv = ["train", "--resume", evil, "--no-progress"]
    r = run_cli(argv)
    assert not marker.exists(), "loading the checkpoint ran code from it"
    assert_clean_error(r, mentions=[str(evil)])


# -- evacamel cutout -----------------------------------------------------------------------


def _photo(path: Path) -> Path:
    """A 160 x 120 photo with a camel-coloured block in the middle (what GrabCut can find)."""
    rgb = textured_rgb(120, 160)
    rgb[30:90, 50:110] = (200, 150, 60)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path)
    return path


def test_cutout_never_overwrites_its_own_input(tmp_path):
    # The photo is a PNG and --out is its own folder: the cut-out <stem>.png is the photo.
    photo = _photo(tmp_path / "photos" / "camel.png")
    before = photo.read_bytes()
    for extra in ([], ["--overwrite"]):
        r = run_cli(["cutout", photo, "--out", photo.parent, *extra])
        assert photo.read_bytes() == before, f"overwrote its own input {photo}:\n{r}"
        assert_clean_error(r, mentions=["camel.png", "--out"])


def test_cutout_refuses_to_overwrite_existing_cutouts(tmp_path):
    photo, out = _photo(tmp_path / "camel.jpg"), tmp_path / "cutouts"
    assert run_cli(["cutout", photo, "--out", out]).code == 0
    (out / "camel.png").write_bytes(b"a cut-out fixed by hand")
    before = snapshot(out)
    r = run_cli(["cutout", photo, "--out", out])
    assert snapshot(out) == before, f"silently replaced the earlier cut-out:\n{r}"
    assert_clean_error(r, mentions=["camel.png", "--overwrite"])
    assert run_cli(["cutout", photo, "--out", out, "--overwrite"]).code == 0


def test_cutout_refuses_two_photos_with_one_cutout_name(tmp_path):
    # camel.jpg and camel.png (or a/camel.jpg and b/camel.jpg) both become camel.png.
    jpg, png = _photo(tmp_path / "camel.jpg"), _photo(tmp_path / "b" / "camel.png")
    out = tmp_path / "cutouts"
    r = run_cli(["cutout", jpg, png, "--out", out])
    assert_clean_error(r, mentions=["camel.jpg", "camel.png"])
    assert not out.exists() or not any(out.rglob("*.png")), "wrote before refusing"


def test_cutout_out_that_is_a_file_names_it(tmp_path):
    photo, out = _photo(tmp_path / "camel.jpg"), tmp_path / "notes.txt"
    out.write_text("keep me")
    assert_clean_error(run_cli(["cutout", photo, "--out", out]), mentions=["--out", "notes.txt"])
    assert out.read_text() == "keep me"


@pytest.mark.parametrize("box", ["1,2,3", "a,b,c,d", "0,0,1,10", "=-1,0,5,5", "1,2,3,4,5"])
def test_cutout_refuses_a_bad_box_as_an_argument(box, tmp_path):
    photo = _photo(tmp_path / "camel.jpg")
    argv = ["cutout", photo, "--out", tmp_path / "out"]
    argv += [f"--box{box}"] if box.startswith("=") else ["--box", box]
    r = run_cli(argv)
    assert r.code == 2, f"a bad --box must be argparse's usage error (exit 2):\n{r}"
    assert_refused_argument(r, "--box")
    assert not (tmp_path / "out").exists()


# -- evacamel proxy ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(_FOREIGN_RECORDS))
@pytest.mark.parametrize("command", ["proxy", "evaluate"])
def test_a_checkpoint_with_a_foreign_record_is_one_line_naming_it(kind, command, checkpoint,
                                                                   tmp_path):
    # proxy and evaluate (without --data) take the profile and the dataset from the record.
    bad, proxy = _corrupt(kind, checkpoint, tmp_path / "best.pt"), tmp_path / "proxy"
    argv = (["proxy", "--checkpoint", bad, "--samples", "1", "--out", proxy]
            if command == "proxy" else ["evaluate", bad, "--json"])
    assert_clean_error(run_cli(argv), mentions=[str(bad)])
    assert not proxy.exists(), "wrote the proxy before refusing the checkpoint"


@pytest.mark.parametrize("kind", ["missing", "a-file", "empty-folder"])
def test_proxy_refuses_a_bad_data_before_writing_the_proxy(kind, checkpoint, tmp_path):
    data, proxy = tmp_path / "mydata", tmp_path / "proxy"
    if kind == "a-file":
        data.write_text("not a dataset")
    elif kind == "empty-folder":
        data.mkdir()
    r = run_cli(["proxy", "--checkpoint", checkpoint, "--data", data, "--samples", "1",
                 "--out", proxy])
    assert_clean_error(r, mentions=["mydata"])
    assert not proxy.exists(), f"wrote the proxy (minutes) before refusing --data:\n{r}"


# -- evacamel bench ------------------------------------------------------------------------


@pytest.mark.parametrize("argv, option", [
    (["decode", "--photos", "0"], "--photos"),        # IndexError traceback
    (["decode", "--size", "0"], "--size"),            # ZeroDivisionError traceback
    (["decode", "--width", "-5"], "--width"),         # numpy's "negative dimensions"
    (["decode", "--repeat", "0"], "--repeat"),        # "0.0 photos/s ... xnan", exit 0
    (["render", "--batches", "0"], "--batches"),      # "xnan", exit 0
    (["render", "--batch-size", "-2"], "--batch-size"),
    (["gpu-check", "--train-seconds", "-1"], "--train-seconds"),
    (["gpu-check", "--train-seconds", "nan"], "--train-seconds"),  # trained forever
    (["real", "--threads", "0"], "--threads"),
    (["train", "--steps", "0"], "--steps"),
    (["loader", "--workers", "-1"], "--workers"),
    (["dataset", "--samples", "0"], "--samples"),
], ids=lambda v: "-".join(v) if isinstance(v, list) else None)
def test_bench_refuses_bad_option_values(argv, option):
    r = run_cli(["bench", *argv])
    assert r.code == 2, f"a bad {option} must be argparse's usage error (exit 2):\n{r}"
    assert_refused_argument(r, option)


def test_bench_real_refuses_an_empty_configs(tmp_path):
    r = run_cli(["bench", "real", "--configs", ",,", "--work", tmp_path / "work"])
    assert_clean_error(r, mentions=["--configs"])


# -- evacamel depth-model ------------------------------------------------------------------


def test_depth_model_refuses_to_overwrite_weights_before_training(tmp_path):
    out = tmp_path / "weights"
    out.mkdir()
    (out / "mono_depth.pt").write_bytes(b"my own depth model")
    r = run_cli(["depth-model", "--out", out, "--data", tmp_path / "no-data", "--epochs", "1",
                 "--no-progress"])
    assert (out / "mono_depth.pt").read_bytes() == b"my own depth model"
    assert_clean_error(r, mentions=["mono_depth.pt", "--overwrite"])


def test_depth_model_refuses_an_unknown_profile_before_making_out(tmp_path):
    r = run_cli(["depth-model", "--out", tmp_path / "weights", "--profile", "bogus"])
    assert_clean_error(r, mentions=["bogus"])
    assert not (tmp_path / "weights").exists(), "made --out before refusing --profile"
