"""The cut-out command on a real photograph (scikit-image's cat), and its one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import skimage.data
from PIL import Image

from evacamel.cli import main as cli_main
from evacamel.dataset.cutout import Box, cut_out, default_box, parse_box
from evacamel.dataset.sources import load_cutout

# The cat's head in skimage.data.chelsea() (451 x 300), drawn by hand: ears to chin,
# cheek to cheek. A rough box mask, not a segmentation: GrabCut's mask must overlap it.
CAT_HEAD = Box(50, 40, 300, 250)
CAT_BOX = Box(40, 10, 330, 290)


@pytest.fixture(scope="module")
def cat(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("photos") / "chelsea.jpg"
    Image.fromarray(skimage.data.chelsea()).save(path, quality=95)
    return path


@pytest.fixture(scope="module")
def cut(cat, tmp_path_factory) -> tuple[Path, Path, float]:
    return cut_out(cat, tmp_path_factory.mktemp("cutouts"), CAT_BOX)


def _box_mask(shape: tuple[int, int], box: Box) -> np.ndarray:
    m = np.zeros(shape, bool)
    m[box.y:box.y + box.h, box.x:box.x + box.w] = True
    return m


def test_cut_out_covers_the_cat(cut):
    cut_path, preview_path, share = cut
    rgba = np.asarray(Image.open(cut_path))
    assert rgba.shape == (300, 451, 4)
    mask = rgba[..., 3] > 127
    hand = _box_mask(mask.shape, CAT_HEAD)
    iou = (mask & hand).sum() / (mask | hand).sum()
    assert iou > 0.6, iou
    assert not mask[~_box_mask(mask.shape, CAT_BOX)].any()  # nothing outside the box
    assert 0.3 < share < 0.95
    assert np.asarray(Image.open(preview_path)).shape == (300, 451, 3)


def test_cut_out_feeds_make_dataset(cut):
    """What make-dataset --camels reads: an RGBA cut-out whose alpha is the mask."""
    rgba = load_cutout(cut[0])
    assert rgba.shape[0] == 4 and 0 < float((rgba[3] > 0).float().mean()) < 1
    assert cut[1].parent.name == "preview"  # never read as a camel


def test_deterministic(cat, cut, tmp_path):
    again = cut_out(cat, tmp_path, CAT_BOX)
    assert again[0].read_bytes() == cut[0].read_bytes()


def test_box_parsing_and_default():
    assert parse_box("1, 2,30,40") == Box(1, 2, 30, 40)
    assert default_box(300, 451) == Box(45, 30, 361, 240)
    for bad in ("1,2,3", "a,b,c,d", "0,0,1,10", "-1,0,5,5"):
        with pytest.raises(ValueError, match="--box"):
            parse_box(bad)


@pytest.mark.parametrize("box, message", [
    ("400,10,100,100", "reaches outside the 451 x 300 photo"),
    ("0,0,451,300", "covers the whole photo"),
])
def test_bad_boxes_are_one_line_errors(cat, tmp_path, capsys, box, message):
    assert cli_main(["cutout", str(cat), "--box", box, "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert message in err and str(cat) in err and "\n" not in err
    assert not list(tmp_path.iterdir())


def test_unreadable_photo_is_a_one_line_error(tmp_path, capsys):
    bad = tmp_path / "notes.jpg"
    bad.write_text("not a photo")
    assert cli_main(["cutout", str(bad), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip()
    assert "not a readable image" in err and str(bad) in err and "\n" not in err
    assert cli_main(["cutout", str(tmp_path / "missing.jpg"), "--out", str(tmp_path)]) == 1
    assert "missing.jpg: image file not found" in capsys.readouterr().err


def test_command_writes_cutout_and_preview(cat, tmp_path, capsys):
    assert cli_main(["cutout", str(cat), "--box", "40,10,330,290", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "chelsea.png").is_file() and (tmp_path / "preview" / "chelsea.png").is_file()
    assert "check" in capsys.readouterr().out
