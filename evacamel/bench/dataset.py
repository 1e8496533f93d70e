"""``evacamel bench dataset``: samples written per second, two ways, in one run.

The two sides do NOT do the same amount of work; the ratio is of rates, not of equal jobs:

* **write_dataset**: :func:`evacamel.dataset.write.write_dataset` over all cores (or
  ``--workers``), per sample: a placement (perspective mode: on the terrain, visibility
  checked), antialiased premultiplied resampling, occlusion by nearer terrain, a contact
  shadow, the exact mask and the composite's exact depth; writes the JPEG composite, the
  mask PNG and a 16-bit depth PNG (atomic renames), and the index rows.
* **PIL loop**: the plain way, one image at a time in one process: open the background,
  resize the camel (bilinear), paste it with its alpha, make the mask from the alpha,
  save JPEG + mask PNG. It writes **no depth** and does **no occlusion** (nor placement,
  shadow or atomic writes): less work than write_dataset. It reuses write_dataset's
  placements, so both write the same number of samples at the profile's sizes.

 The backgrounds and camels are made
first and timed apart (rendering the world is not what is compared); ``--backgrounds``
and ``--camels`` keep that step short. Besides wall-clock rates it prints the CPU time
per sample, which stays meaningful on a shared machine: ``cores / cpu_time`` is the
rate on that many free cores.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

from PIL import Image

from evacamel.cli_args import positive_int
from evacamel.bench._timing import Measurement, print_comparison
from evacamel.profiles import get_profile

HELP = "dataset writing: write_dataset (all cores) vs a one-image-at-a-time PIL paste-and-save loop"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", default=None, help="sizes from this profile (default: auto)")
    p.add_argument("--samples", type=positive_int, default=200, help="samples written each way")
    p.add_argument("--backgrounds", type=positive_int, default=8, help="backgrounds rendered first")
    p.add_argument("--camels", type=positive_int, default=8, help="camels rendered first")
    p.add_argument("--workers", type=positive_int, default=None, help="write_dataset processes (default: all)")
    p.add_argument("--mode", choices=("perspective", "seed", "mixed"), default=None)
    p.add_argument("--keep", default=None, metavar="DIR", help="write here and keep the output")


def _cpu_seconds() -> float:
    """User + system CPU time of this process and its waited-for children."""
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def pil_loop(root: Path, rows: list[dict], out: Path, image_format: str, jpeg_quality: int) -> int:
    """The plain way: one sample at a time with PIL (bg, paste camel, mask, save). Returns rows done."""
    from evacamel.dataset.format import resolve_in_dataset  # imported here: see main

    (out / "fg_bg").mkdir(parents=True, exist_ok=True)
    (out / "mask").mkdir(parents=True, exist_ok=True)
    for r in rows:
        bg = Image.open(resolve_in_dataset(root, r["selected_bg_paths"])).convert("RGB")
        camel = Image.open(resolve_in_dataset(root, r["fg_paths"])).convert("RGBA")
        camel = camel.resize((max(1, round(r["w"])), max(1, round(r["h"]))), Image.Resampling.BILINEAR)
        if r["flip"]:
            camel = camel.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        xy = (round(r["x"]), round(r["y"]))
        bg.paste(camel, xy, camel)
        mask = Image.new("L", bg.size, 0)
        mask.paste(camel.getchannel("A").point(lambda v: 255 if v >= 128 else 0), xy)
        name = f"img_{r['sample_id']:08d}"
        if image_format == "jpg":
            bg.save(out / "fg_bg" / f"{name}.jpg", quality=jpeg_quality)
        else:
            bg.save(out / "fg_bg" / f"{name}.png")
        mask.save(out / "mask" / f"{name}.png")
    return len(rows)


class _SourcesWritten(Exception):
    """Stops write_dataset once the sources are written (to time the two stages apart)."""


def _stop_after_sources(chunks_written: int) -> None:
    if chunks_written == 0:
        raise _SourcesWritten


def main(args: argparse.Namespace) -> int:
    # Imported here, not at the top: `evacamel bench dataset --help` must not wait for
    # torch (measured on a loaded 2-core machine: --help 0.2 s, importing the dataset
    # writer 7-11 s).
    from evacamel.dataset.format import read_index
    from evacamel.dataset.worker import default_workers
    from evacamel.dataset.write import write_dataset

    base = get_profile(args.profile)
    if args.samples < 1 or args.backgrounds < 1 or args.camels < 1:
        raise ValueError("--samples, --backgrounds and --camels must be at least 1")
    profile = base.replace(samples=args.samples, n_backgrounds=args.backgrounds, n_camels=args.camels)
    workers = args.workers or default_workers()
    with tempfile.TemporaryDirectory(prefix="evacamel-bench-") as tmp:
        work = Path(args.keep) if args.keep else Path(tmp)
        ours_dir, naive_dir = work / "write_dataset", work / "pil_loop"
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(f"profile {base.name}: {profile.source_size} px sources, depth {profile.depth_size} px, "
              f"{profile.image_format} q{profile.jpeg_quality}; {args.samples} samples from "
              f"{args.backgrounds} backgrounds x {args.camels} camels; {workers} workers; "
              f"load average {load:.1f} on {os.cpu_count()} CPUs")
        t0 = time.perf_counter()
        try:
            write_dataset(ours_dir, profile, workers=workers, progress=False, mode=args.mode,
                          on_chunk=_stop_after_sources)
        except _SourcesWritten:
            pass
        print(f"  (backgrounds and camels rendered and written first: {time.perf_counter() - t0:.1f} s)")

        cpu0, t0 = _cpu_seconds(), time.perf_counter()
        write_dataset(ours_dir, profile, workers=workers, progress=False, mode=args.mode)
        ours = Measurement(f"write_dataset ({workers} workers; fg_bg+mask+depth)",
                           args.samples, time.perf_counter() - t0)
        ours_cpu = _cpu_seconds() - cpu0

        rows = read_index(ours_dir)
        cpu0, t0 = _cpu_seconds(), time.perf_counter()
        n = pil_loop(ours_dir, rows, naive_dir, profile.image_format, profile.jpeg_quality)
        naive = Measurement("PIL loop (1 process; fg_bg+mask only)", n, time.perf_counter() - t0)
        naive_cpu = _cpu_seconds() - cpu0

        mode = args.mode or profile.compose_mode
        extra = {"perspective": "terrain placement, occlusion by nearer terrain, contact shadow",
                 "seed": "seed placement, no occlusion",
                 "mixed": "each sample terrain or seed placement"}[mode]
        print("What each side does per sample:")
        print(f"  write_dataset: {mode} mode: {extra}, antialiased paste; writes fg_bg "
              f"{profile.image_format} + mask PNG + 16-bit depth PNG")
        print("  PIL loop:      bilinear resize + alpha paste at the same boxes; writes fg_bg + mask PNG "
              "only: NO depth, NO occlusion (less work)")
        print_comparison("dataset writing (wall clock, incl. encoding and writing):", naive, ours)
        print("CPU time per sample (what a free core would take):")
        width = max(len(naive.name), len(ours.name))
        for m, cpu in ((naive, naive_cpu), (ours, ours_cpu)):
            per = cpu / max(m.items, 1)
            print(f"  {m.name:<{width}} {per * 1000:8.1f} ms  -> {1 / per:6.1f} samples/s per free core, "
                  f"{2 / per:6.1f} on 2")
    return 0
