"""A dataset never makes evacamel read or write outside its own folder (issue 10, section 3).

An index row is the dataset's author's to choose: ``../x.png``, ``/abs/x.png``,
``..\\x.png``, or a symlinked folder pointing elsewhere must be refused by every reader
and writer of index paths (load_sample, the loaders, pack, stats, ``evacamel depth``)
with one line naming the row and the column, and a file outside must keep its bytes and
its inode.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from evacamel.bench.loader import write_sample_dataset
from evacamel.cli import main as cli_main
from evacamel.dataset.format import load_sample, read_index
from evacamel.depth_units import meters_to_png
from evacamel.loading.files import FolderDataset, ZipDataset
from evacamel.loading.pack import pack_dataset
from evacamel.loading.stats import compute_stats

S = 32


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Path:
    return write_sample_dataset(tmp_path_factory.mktemp("clean") / "ds", 4, S)


def _snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    """Every file and folder under ``folder``: its inode and bytes (folders: b"<dir>")."""
    return {p.relative_to(folder).as_posix(): (p.lstat().st_ino, b"<dir>" if p.is_dir() else p.read_bytes())
            for p in sorted(folder.rglob("*"))}


class World:
    """A dataset in ``tmp/ds`` and a sentinel 16-bit PNG outside it, in ``tmp/outside``."""

    def __init__(self, clean: Path, tmp: Path):
        self.tmp = tmp
        self.root = tmp / "ds"
        shutil.copytree(clean, self.root)
        self.outside = tmp / "outside"
        self.outside.mkdir()
        self.sentinel = self.outside / "x.png"
        Image.fromarray(meters_to_png(np.full((S, S), 7.0))).save(self.sentinel)
        self._before: dict | None = None

    def set_path(self, column: str, value: str, row: int = 0) -> None:
        path = self.root / "dataset_info.csv"
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            fields, rows = reader.fieldnames, list(reader)
        rows[row][column] = value
        with path.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields)
            w.writeheader()
            w.writerows(rows)

    def freeze(self) -> None:
        """Remember everything outside the dataset (and the dataset itself)."""
        self._before = _snapshot(self.tmp)

    def assert_untouched(self) -> None:
        after = _snapshot(self.tmp)
        assert after == self._before, sorted(set(after) ^ set(self._before)) or \
            [k for k in after if after[k] != self._before[k]]


HOSTILE = {
    "parent": lambda w: "../outside/x.png",
    "absolute": lambda w: str(w.sentinel),
    "backslash": lambda w: "..\\outside\\x.png",
    "drive": lambda w: "C:/outside/x.png",
}
REASON = {"parent": "'..'", "absolute": "absolute", "backslash": "backslash", "drive": "absolute"}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_depth_command_never_writes_outside(clean, tmp_path, capsys, kind):
    w = World(clean, tmp_path)
    w.set_path("depth_map_paths", HOSTILE[kind](w), row=1)
    w.freeze()
    # another size, so that the maps would be rewritten
    assert cli_main(["depth", str(w.root), "--estimator", "exact", "--size", "16",
                     "--no-progress"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "row 1" in err and "depth_map_paths" in err and REASON[kind] in err, err
    w.assert_untouched()  # the sentinel keeps its bytes and inode; no folder was created


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_readers_refuse_paths_leaving_the_dataset(clean, tmp_path, kind):
    w = World(clean, tmp_path)
    w.set_path("mask_paths", HOSTILE[kind](w), row=2)
    w.freeze()
    where = r"row 2.*mask_paths"
    with pytest.raises(ValueError, match=where):
        read_index(w.root)
    with pytest.raises(ValueError, match=where):
        load_sample(w.root, 2)
    with pytest.raises(ValueError, match=where):
        FolderDataset(w.root, "all", input_size=S)
    with pytest.raises(ValueError, match=where):
        pack_dataset(w.root, S, workers=0, progress=False)
    with pytest.raises(ValueError, match=where):
        compute_stats(w.root, "all", input_size=S)
    w.assert_untouched()


def test_zip_parts_with_a_hostile_index_are_refused(clean, tmp_path):
    import zipfile

    w = World(clean, tmp_path)
    w.set_path("fg_bg_paths", "../../etc/passwd", row=0)
    with zipfile.ZipFile(tmp_path / "dataset_0.zip", "w") as zf:
        for p in sorted(w.root.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(w.root).as_posix())
    with pytest.raises(ValueError, match=r"row 0.*fg_bg_paths.*'\.\.'"):
        ZipDataset([tmp_path / "dataset_0.zip"], "all", input_size=S)


def _link_out(w: World, folder: str) -> Path:
    """Move ``root/folder`` outside and leave a symlink to it in its place."""
    real = w.outside / folder
    shutil.move(str(w.root / folder), real)
    (w.root / folder).symlink_to(real, target_is_directory=True)
    return real


def test_symlinked_folder_pointing_outside_is_never_written(clean, tmp_path, capsys):
    w = World(clean, tmp_path)
    _link_out(w, "depth")
    w.freeze()
    assert cli_main(["depth", str(w.root), "--estimator", "exact", "--size", "16",
                     "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "symlink" in err and "depth/img_00000000.png" in err, err
    w.assert_untouched()  # the maps outside keep their bytes and inodes; no exact_depth/


def test_symlinked_folder_or_file_pointing_outside_is_never_read(clean, tmp_path):
    w = World(clean, tmp_path)
    _link_out(w, "mask")
    with pytest.raises(ValueError, match=r"mask_paths.*symlink"):
        load_sample(w.root, 0)
    ds = FolderDataset(w.root, "all", input_size=S)  # the index itself is fine
    with pytest.raises(ValueError, match=r"row 0, column mask_paths.*symlink"):
        ds[0]
    with pytest.raises(ValueError, match="symlink"):
        pack_dataset(w.root, S, workers=0, progress=False)
    target = w.root / read_index(w.root)[1]["fg_bg_paths"]
    target.unlink()
    target.symlink_to(w.sentinel)  # one file, not a folder
    with pytest.raises(ValueError, match=r"row 1, column fg_bg_paths.*symlink"):
        ds[ds.row_ids.index(1)]


def test_symlinks_inside_the_dataset_are_fine(clean, tmp_path):
    w = World(clean, tmp_path)
    (w.root / "masks_real").mkdir()
    for p in (w.root / "mask").iterdir():
        shutil.move(str(p), w.root / "masks_real" / p.name)
    (w.root / "mask").rmdir()
    (w.root / "mask").symlink_to(w.root / "masks_real", target_is_directory=True)
    assert load_sample(w.root, 0)["mask"].shape == (1, S, S)
    assert FolderDataset(w.root, "all", input_size=S)[0]["mask"].shape == (1, S // 2, S // 2)


def test_the_path_check_itself(tmp_path):
    from evacamel.dataset.format import resolve_in_dataset

    root = tmp_path / "ds"
    root.mkdir()
    assert resolve_in_dataset(root, "fg_bg/img_00000001.jpg") == root / "fg_bg/img_00000001.jpg"
    assert resolve_in_dataset(root, "./depth/a.png") == root / "depth/a.png"
    bad = {"": "empty", "../x.png": "'..'", "depth/../../x.png": "'..'", "/etc/passwd": "absolute",
           "C:\\x.png": "backslash", "c:x.png": "absolute", "depth\\x.png": "backslash",
           "depth/\0.png": "NUL", ".": "dataset folder itself"}
    for rel, reason in bad.items():
        with pytest.raises(ValueError, match=reason):
            resolve_in_dataset(root, rel, row=4, column="depth_map_paths")
    with pytest.raises(ValueError, match=r"dataset_info.csv row 4, column depth_map_paths: path '\.\./x"):
        resolve_in_dataset(root, "../x.png", row=4, column="depth_map_paths")
    (root / "out").symlink_to(tmp_path)
    with pytest.raises(ValueError, match="symlink"):
        resolve_in_dataset(root, "out/x.png")
    (root / "dangling.png").symlink_to(tmp_path / "not-yet.png")  # a write would land outside
    with pytest.raises(ValueError, match="symlink"):
        resolve_in_dataset(root, "dangling.png")
