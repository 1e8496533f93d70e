"""evacamel.dataset.photo: the one reader of a user's photos (orientation, bit depth, modes,
refusals), both decoders, and the area resize."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from evacamel.dataset.photo import (center_square, decode_with_cv2, decode_with_pil, read_photo,
                                    resize_area)


def _textured(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([np.sin(6 * x + 1), np.cos(5 * y), np.sin(3 * (x + y))], -1) * 0.4 + 0.5
    return (np.clip(base + rng.normal(0, 0.02, base.shape), 0, 1) * 255).astype(np.uint8)


def _with_orientation(path, rgb: np.ndarray, orientation: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(rgb).save(path, quality=95, exif=exif.tobytes())


@pytest.mark.parametrize("decode", [decode_with_pil, decode_with_cv2, read_photo],
                         ids=["pil", "cv2", "read_photo"])
@pytest.mark.parametrize("orientation, undo", [(1, lambda a: a), (3, lambda a: np.rot90(a, 2)),
                                               (6, lambda a: np.rot90(a, 1)),
                                               (8, lambda a: np.rot90(a, -1))])
def test_exif_orientation_is_applied(tmp_path, decode, orientation, undo):
    # stored so that applying `orientation` turns it back into `upright`
    upright = _textured(40, 72)
    stored = np.ascontiguousarray(undo(upright))
    _with_orientation(tmp_path / "p.jpg", stored, orientation)
    got = decode(tmp_path / "p.jpg")
    assert got.shape == upright.shape, f"{got.shape}: not turned upright"
    assert np.abs(got.astype(int) - upright).mean() < 4  # JPEG noise only


@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_16_bit_grey_keeps_its_picture(tmp_path, mode):
    grey8 = np.asarray(Image.fromarray(_textured(48, 64)).convert("L"))
    Image.fromarray(grey8.astype(np.uint16) * 257).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode == "I;16"
    got = read_photo(tmp_path / "g16.png", mode=mode)
    assert got.shape == (48, 64, len(mode)) and got.dtype == np.uint8
    assert np.array_equal(got[..., 0], grey8) and np.array_equal(got[..., 2], grey8)


def test_palette_with_transparency_gives_alpha(tmp_path):
    rgba = np.zeros((32, 32, 4), np.uint8)
    rgba[8:24, 8:24] = (200, 100, 50, 255)
    Image.fromarray(rgba, "RGBA").convert("P").save(tmp_path / "p.png", transparency=0)
    got = read_photo(tmp_path / "p.png", mode="RGBA")
    assert got[..., 3].min() == 0 and got[16, 16, 3] == 255


@pytest.mark.parametrize("pil_mode", ["LA", "CMYK", "1", "P"])
def test_other_modes_read_as_rgb(tmp_path, pil_mode):
    img = Image.fromarray(_textured(32, 40)).convert(pil_mode)
    path = tmp_path / ("x.jpg" if pil_mode == "CMYK" else "x.png")
    img.save(path)
    got = read_photo(path)
    assert got.shape == (32, 40, 3) and got.dtype == np.uint8
    expect = np.asarray(img.convert("RGB"), dtype=float)
    assert np.abs(got - expect).mean() < 4


def test_refusals_name_the_file_and_the_limit(tmp_path):
    Image.fromarray(_textured(10, 300)).save(tmp_path / "thin.png")
    with pytest.raises(ValueError, match=r"thin\.png.*300 x 10.*at least 16"):
        read_photo(tmp_path / "thin.png")
    Image.fromarray(_textured(100, 100)).save(tmp_path / "big.png")
    with pytest.raises(ValueError, match=r"big\.png.*100 x 100.*limit of 9,999"):
        read_photo(tmp_path / "big.png", max_pixels=9_999)
    frames = [Image.fromarray(_textured(32, 32, seed=i)) for i in range(3)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    with pytest.raises(ValueError, match=r"anim\.gif.*3 frames"):
        read_photo(tmp_path / "anim.gif")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty\.png.*empty file"):
        read_photo(tmp_path / "empty.png")
    (tmp_path / "notes.jpg").write_text("not a picture")
    with pytest.raises(ValueError, match=r"notes\.jpg.*not a readable image"):
        read_photo(tmp_path / "notes.jpg")
    with pytest.raises(IsADirectoryError, match="is a folder"):
        read_photo(tmp_path)
    with pytest.raises(FileNotFoundError, match="missing.png"):
        read_photo(tmp_path / "missing.png")


def test_a_reduced_jpeg_decode_keeps_at_least_the_size_asked(tmp_path):
    Image.fromarray(_textured(600, 800)).save(tmp_path / "p.jpg", quality=95)
    full = read_photo(tmp_path / "p.jpg")
    reduced = read_photo(tmp_path / "p.jpg", at_least=140)  # 600 / 4 = 150 >= 140
    assert full.shape == (600, 800, 3) and reduced.shape == (150, 200, 3)
    small = resize_area(full, (150, 200)).astype(int)
    assert np.abs(small - reduced).mean() < 4
    assert decode_with_pil(tmp_path / "p.jpg", at_least=140).shape == (150, 200, 3)


def test_center_square_and_area_resize():
    a = np.arange(6 * 10 * 3, dtype=np.uint8).reshape(6, 10, 3)
    sq = center_square(a)
    assert sq.shape == (6, 6, 3) and np.array_equal(sq, a[:, 2:8])
    block = np.zeros((4, 4, 3), np.uint8)
    block[:2, :2] = 200  # area filtering averages each 2 x 2 block
    assert resize_area(block, (2, 2))[..., 0].tolist() == [[200, 0], [0, 0]]
    assert resize_area(block, (4, 4)) is block


def test_bench_decode_prints_both_ways_and_the_ratio(capsys):
    from evacamel.cli import main

    assert main(["bench", "decode", "--photos", "1", "--width", "96", "--height", "64",
                 "--size", "16", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    for fmt in ("JPEG", "PNG"):
        assert f"{fmt} 96 x 64 -> 16 x 16" in out
    assert out.count("vs PIL") == 4 and "OpenCV" in out


def test_the_pixel_limit_is_set_by_the_environment(tmp_path, monkeypatch):
    from _hostile_fixtures import png_bytes_by_hand

    from evacamel.dataset.photo import MAX_PIXELS_ENV, photo_size

    claims = tmp_path / "claims.png"  # a header claiming 20000 x 10000 (PIL's own limit: ~179 Mpx)
    claims.write_bytes(png_bytes_by_hand(20000, 10000, full=False))
    with pytest.raises(ValueError, match=r"claims\.png: 200,000,000 pixels is more than the "
                                         r"limit of 100,000,000.*EVACAMEL_MAX_PIXELS"):
        photo_size(claims)
    monkeypatch.setenv(MAX_PIXELS_ENV, "300000000")
    assert photo_size(claims) == (20000, 10000)  # PIL's own check lifted to the raised limit
    Image.fromarray(_textured(40, 50)).save(tmp_path / "small.png")
    monkeypatch.setenv(MAX_PIXELS_ENV, "1000")
    with pytest.raises(ValueError, match=r"small\.png: 50 x 40 pixels is more than the limit of 1,000"):
        read_photo(tmp_path / "small.png")
    monkeypatch.setenv(MAX_PIXELS_ENV, "lots")
    with pytest.raises(ValueError, match="EVACAMEL_MAX_PIXELS='lots': give a whole number"):
        read_photo(tmp_path / "small.png")
