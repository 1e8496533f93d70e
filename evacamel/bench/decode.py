"""``evacamel bench decode``: a large photo to a dataset background, PIL vs OpenCV, in one run.

Both sides do the same job on the same files: read a 4000 x 3000 photo (JPEG, then PNG),
turn it upright (EXIF), take the centred square and resize it to ``--size`` with area
filtering. The photos are made first in a temporary folder (textured, with noise: not
trivially compressible) and timed apart.

* **PIL**: ``Image.open``; for JPEG ``Image.draft`` (the decoder's DCT scaling to the
  smallest 1/2, 1/4, 1/8 scale still at least ``--size``); ``ImageOps.exif_transpose``;
  ``convert("RGB")``; crop; ``resize(BOX, reducing_gap=3)`` (area filtering).
* **OpenCV**: ``cv2.imdecode`` (for JPEG ``IMREAD_REDUCED_COLOR_2/4/8``, the same
  scaling; EXIF applied by OpenCV); BGR -> RGB; crop; ``cv2.resize(INTER_AREA)``.

:mod:`evacamel.dataset.photo` decodes RGB photos the way this measures faster.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps

from evacamel.cli_args import positive_int
from evacamel.bench._timing import Measurement, measure, print_comparison
from evacamel.dataset.photo import _reduced_flag, center_square, resize_area

HELP = "decode + area-resize large photos: PIL (draft) vs OpenCV (IMREAD_REDUCED_*), same files"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--photos", type=positive_int, default=3, help="photos of each format (default 3)")
    p.add_argument("--width", type=positive_int, default=4000, help="photo width (default 4000)")
    p.add_argument("--height", type=positive_int, default=3000, help="photo height (default 3000)")
    p.add_argument("--size", type=positive_int, default=1024,
                   help="side of the square they are resized to (default 1024, the full profile's)")
    p.add_argument("--repeat", type=positive_int, default=2, help="passes over the files (default 2)")


def make_photos(folder: Path, n: int, width: int, height: int) -> dict[str, list[Path]]:
    """``n`` JPEG (quality 90, EXIF orientation 1) and ``n`` PNG photos of ``width x height``."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32) / max(width, height)
    exif = Image.Exif()
    exif[0x0112] = 1
    files: dict[str, list[Path]] = {"JPEG": [], "PNG": []}
    for i in range(n):
        base = np.stack([np.sin(9 * x + i), np.cos(7 * y + i), np.sin(5 * (x + y))], -1) * 90 + 128
        noise = rng.normal(0, 12, (height, width, 1)).astype(np.float32)
        img = Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8), "RGB")
        files["JPEG"].append(folder / f"photo_{i}.jpg")
        img.save(files["JPEG"][-1], quality=90, exif=exif.tobytes())
        files["PNG"].append(folder / f"photo_{i}.png")
        img.save(files["PNG"][-1], compress_level=6)
    return files


def pil_way(path: Path, size: int) -> np.ndarray:
    """PIL: draft (JPEG), EXIF, RGB, centred square, BOX resize -> uint8 ``size x size x 3``."""
    with Image.open(path) as img:
        if img.format == "JPEG":
            factor, _ = _reduced_flag(img.size, size)
            img.draft("RGB", (img.size[0] // factor, img.size[1] // factor))
        img = ImageOps.exif_transpose(img).convert("RGB")
    w, h = img.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    img = img.resize((size, size), Image.Resampling.BOX,
                     box=(left, top, left + side, top + side), reducing_gap=3.0)
    return np.asarray(img)


def cv2_way(path: Path, size: int) -> np.ndarray:
    """OpenCV: imdecode (reduced for JPEG), BGR -> RGB, centred square, INTER_AREA."""
    data = np.fromfile(path, dtype=np.uint8)
    flag = cv2.IMREAD_COLOR
    if path.suffix == ".jpg":
        with Image.open(path) as img:  # the header only, for the stored size
            _, flag = _reduced_flag(img.size, size)
    rgb = cv2.cvtColor(cv2.imdecode(data, flag), cv2.COLOR_BGR2RGB)
    return resize_area(center_square(rgb), (size, size))


def _run(way, files: list[Path], size: int, repeat: int) -> int:
    for _ in range(repeat):
        for f in files:
            out = way(f, size)
            assert out.shape == (size, size, 3)
    return repeat * len(files)


def main(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="evacamel-bench-decode-") as tmp:
        print(f"making {args.photos} JPEG and {args.photos} PNG photos of "
              f"{args.width} x {args.height} ...")
        files = make_photos(Path(tmp), args.photos, args.width, args.height)
        for fmt, paths in files.items():
            rows: list[Measurement] = []
            for name, way in (("PIL", pil_way), ("OpenCV", cv2_way)):
                rows.append(measure(name, lambda: _run(way, paths, args.size, args.repeat),
                                    warmup=lambda: way(paths[0], args.size)))
            print_comparison(f"{fmt} {args.width} x {args.height} -> {args.size} x {args.size} "
                             "(decode, EXIF, centred square, area resize):", *rows,
                             unit="photos/s")
    return 0
