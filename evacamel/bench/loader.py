"""``evacamel bench loader``: samples/s of the seed's loading beside the packed cache and
the synthetic stream, in one run, with the ratios; plus a 2-worker DataLoader from the
packed cache.

The seed's way, per sample: open and decode four full-size files with PIL (bg, fg_bg and
mask JPEGs at the source size, the depth JPEG at the depth size), resize to the model's
sizes, convert to tensors. The packed cache: one memory copy per row and array.
The synthetic stream: batches composed in memory from a pool of rendered backgrounds and
camels. "Per worker" rates run in this process on one thread.

The benchmark writes its own small dataset at the profile's sizes in a temporary folder
(``--samples`` composites of simple shapes, stored in our format plus the seed's JPEG
masks/depth: a few dozen are enough to time decoding), packs it, and tiles the packed
rows into a larger cache (``--rows``) so reads come from memory, not from the CPU cache.

The DataLoaders: ``--workers`` worker processes (default 2), and :func:`make_loader`'s
default for a packed cache, in-process. Besides wall-clock rates (which depend on what
else the machine runs) it prints samples per CPU-second, a load-independent cost.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from evacamel.cli_args import non_negative_int, positive_float, positive_int
from evacamel.bench._timing import Measurement, measure, print_comparison
from evacamel.dataset.atomic import write_json
from evacamel.dataset.format import (DATASET_FOLDERS, FORMAT, FORMAT_VERSION, INDEX_NAME, META_NAME,
                                     read_index, resolve_in_dataset, rows_to_csv, write_meta)
from evacamel.depth_units import FAR_M, depth_meta, meters_to_png
from evacamel.loading.files import FolderDataset
from evacamel.loading.loader import LoaderOptions, make_loader
from evacamel.loading.pack import (MANIFEST, PackedDataset, open_arrays, pack_dataset, packed_dir,
                                   read_manifest)
from evacamel.loading.stream import SyntheticStream
from evacamel.profiles import Profile, get_profile

HELP = "loading: the seed's JPEG decoding vs the packed cache vs the synthetic stream"

__all__ = ["write_sample_dataset", "seed_load_sample", "decode_vs_packed", "main",
           "add_arguments"]


# -- a small dataset in our format (tests and this benchmark) ---------------------------------

def _sample_backgrounds(root: Path, rng: np.random.Generator, n_bg: int, size: int,
                        depth_size: int, image_format: str) -> tuple[list[np.ndarray], np.ndarray]:
    """Gradient-and-noise backgrounds (written to ``bg/``) and their one depth (``bg_depth/``)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    dy = np.mgrid[0:depth_size, 0:depth_size][0].astype(np.float32) / depth_size
    horizon = 0.35
    bg_depth = np.where(dy < horizon, FAR_M, 2.0 + 300.0 * (1.0 - (dy - horizon) / (1 - horizon)) ** 3)
    backgrounds = []
    for b in range(n_bg):
        base = np.stack([0.55 + 0.3 * yy, 0.45 + 0.25 * yy, 0.35 + 0.2 * xx], -1)
        img = np.clip(base * rng.uniform(0.7, 1.1, 3) + rng.normal(0, 0.03, base.shape), 0, 1)
        img8 = (img * 255).astype(np.uint8)
        backgrounds.append(img8)
        Image.fromarray(img8).save(root / "bg" / f"bg_{b:04d}.{image_format}", quality=95)
        Image.fromarray(meters_to_png(bg_depth)).save(root / "bg_depth" / f"bg_{b:04d}.png")
    return backgrounds, bg_depth


def _sample_row(root: Path, rng: np.random.Generator, i: int, background: np.ndarray,
                bg_depth: np.ndarray, b: int, image_format: str,
                seed_copies: bool) -> dict[str, Any]:
    """Sample ``i``: an elliptic "camel" on background ``b``; its files and index row
    (without its split)."""
    size, depth_size = background.shape[0], bg_depth.shape[0]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    cx, cy = rng.uniform(0.25, 0.75), rng.uniform(0.5, 0.8)
    rx, ry = rng.uniform(0.08, 0.2), rng.uniform(0.06, 0.15)
    inside = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1.0
    fg_bg = background.copy()
    fg_bg[inside] = (np.array([150, 105, 60]) * rng.uniform(0.8, 1.2)).astype(np.uint8)
    mask = (inside * 255).astype(np.uint8)
    dy, dx = np.mgrid[0:depth_size, 0:depth_size] / depth_size
    distance = float(rng.uniform(5, 60))
    depth = np.where(((dx - cx) / rx) ** 2 + ((dy - cy) / ry) ** 2 <= 1.0, distance, bg_depth)
    name = f"img_{i:08d}"
    paths = {"fg_bg_paths": f"fg_bg/{name}.{image_format}", "mask_paths": f"mask/{name}.png",
             "selected_bg_paths": f"bg/bg_{b:04d}.{image_format}",
             "depth_map_paths": f"depth/{name}.png"}
    Image.fromarray(fg_bg).save(root / paths["fg_bg_paths"], quality=95)
    Image.fromarray(mask, "L").save(root / paths["mask_paths"])
    Image.fromarray(meters_to_png(depth)).save(root / paths["depth_map_paths"])
    if seed_copies:
        Image.fromarray(mask, "L").save(root / "seed_mask" / f"{name}.jpg", quality=95)
        seed_depth = (255 * (1 - np.log(depth) / np.log(FAR_M))).astype(np.uint8)
        Image.fromarray(seed_depth, "L").save(root / "seed_depth" / f"{name}.jpg", quality=40)
    return {**paths, "part": 0, "sample_id": i, "fg_paths": "fg/fg_0000.png", "bg_id": b,
            "fg_id": 0, "x": int((cx - rx) * size), "y": int((cy - ry) * size),
            "w": int(2 * rx * size), "h": int(2 * ry * size), "flip": 0,
            "distance_m": f"{distance:.2f}", "visible_fraction": "1.0"}


def write_sample_dataset(root: str | os.PathLike, n: int = 8, size: int = 64, *,
                         depth_size: int | None = None, n_backgrounds: int | None = None,
                         seed: int = 0, image_format: str = "jpg",
                         seed_copies: bool = False) -> Path:
    """Write a small dataset in the on-disk format of ``ARCHITECTURE.md`` (for tests and
    benchmarks; not a pretty one: gradient-and-noise backgrounds, an elliptic "camel").

    The last quarter of the backgrounds (at least one) are the test split's, so the
    split is disjoint by background. With ``seed_copies`` it also writes the seed's
    formats: ``seed_mask/*.jpg`` and ``seed_depth/*.jpg`` (8-bit, quality 40).

    Returns:
        ``root``.
    """
    root = Path(root)
    depth_size = depth_size or size
    n_bg = n_backgrounds or max(2, n // 4)
    n_test_bg = max(1, n_bg // 4)
    rng = np.random.default_rng(seed)
    for sub in DATASET_FOLDERS + (("seed_mask", "seed_depth") if seed_copies else ()):
        (root / sub).mkdir(parents=True, exist_ok=True)
    backgrounds, bg_depth = _sample_backgrounds(root, rng, n_bg, size, depth_size, image_format)
    rows = []
    for i in range(n):
        b = i % n_bg
        split = "test" if b >= n_bg - n_test_bg else "train"
        row = _sample_row(root, rng, i, backgrounds[b], bg_depth, b, image_format, seed_copies)
        rows.append({**row, "part": i * 10 // n, "split": split})
    Image.new("RGBA", (16, 16), (150, 105, 60, 255)).save(root / "fg" / "fg_0000.png")
    (root / INDEX_NAME).write_text(rows_to_csv(rows), encoding="utf-8")
    n_test = sum(r["split"] == "test" for r in rows)
    write_meta(root, {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "generator": {"name": "evacamel", "version": "test", "source": "folders"},
        "seed": seed, "profile": "test", "compose_mode": "seed", "source_size": size,
        "depth_size": depth_size, "image_format": image_format, "jpeg_quality": 95,
        "counts": {"backgrounds": n_bg, "camels": 1, "samples": n, "train": n - n_test,
                   "test": n_test},
        "depth": {**depth_meta(), "source": "exact"}, "complete": True})
    return root


def seed_load_sample(root: Path, row: dict[str, Any], input_size: int,
                     output_size: int) -> dict[str, torch.Tensor]:
    """The seed's per-sample loading: PIL-decode four full-size files, resize, tensors."""
    name = Path(row["fg_bg_paths"]).stem

    def image(rel: str, mode: str, side: int) -> np.ndarray:
        path = resolve_in_dataset(root, rel)
        return np.array(Image.open(path).convert(mode).resize((side, side), Image.BILINEAR))

    bg = image(row["selected_bg_paths"], "RGB", input_size)
    fg_bg = image(row["fg_bg_paths"], "RGB", input_size)
    mask = image(f"seed_mask/{name}.jpg", "L", output_size)
    depth = image(f"seed_depth/{name}.jpg", "L", output_size)
    image_ = torch.cat([torch.from_numpy(bg).permute(2, 0, 1),
                        torch.from_numpy(fg_bg).permute(2, 0, 1)])
    return {"image": image_, "mask": torch.from_numpy(mask)[None],
            "depth": torch.from_numpy(depth)[None]}


def decode_vs_packed(root: str | os.PathLike, packed: str | os.PathLike, split: str = "train",
                     n: int = 64) -> list[Measurement]:
    """Samples/s of decoding the first ``n`` samples of ``split`` from the dataset's files,
    then of fetching the same samples from its packed cache as one batch.

    Checks the two give the same tensors (``ValueError`` if not: a stale cache).

    Returns:
        ``[files, packed]`` :class:`~evacamel.bench._timing.Measurement`\\ s (``.rate``:
        samples per second).
    """
    manifest = read_manifest(packed)
    files = FolderDataset(root, split, input_size=manifest["input_size"],
                          output_size=manifest["output_size"])
    cache = PackedDataset(packed, split)
    n = min(n, len(files))
    decoded: list[dict[str, torch.Tensor]] = []
    fetched: dict[str, torch.Tensor] = {}

    def decode() -> int:
        decoded.extend(files[i] for i in range(n))
        return n

    def fetch() -> int:
        fetched.update(cache.__getitems__(list(range(n))))
        return n

    m_files, m_packed = measure("decoding the files", decode), measure("packed cache", fetch)
    if not all(torch.equal(torch.stack([d[k] for d in decoded]), fetched[k]) for k in fetched):
        raise ValueError(f"{packed}: the packed cache differs from the files of {root} (stale? "
                         "rebuild it with `evacamel pack --force`)")
    return [m_files, m_packed]


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", default="full",
                   help="sizes to load at (default full: 1024 px files, 256 px input)")
    p.add_argument("--samples", type=positive_int, default=48,
                   help="composites in the temporary dataset (default 48)")
    p.add_argument("--rows", type=positive_int, default=2048,
                   help="rows of the tiled packed cache for the DataLoader (default 2048)")
    p.add_argument("--batch-size", type=positive_int, default=128)
    p.add_argument("--workers", type=non_negative_int, default=2, help="DataLoader workers (default 2)")
    p.add_argument("--seconds", type=positive_float, default=4.0,
                   help="rough time per measurement (default 4)")
    p.add_argument("--keep", default=None, help="keep the temporary data in this folder")


def _measure_loader(loader, workers: int, seconds: float) -> tuple[Measurement, float]:
    """Wall-clock rate of iterating ``loader`` and the CPU seconds it cost (this process
    plus its worker processes), after a warm-up epoch."""
    for _ in loader:  # warm-up: workers started, pages mapped
        pass
    pids = [w.pid for w in getattr(loader._iterator, "_workers", None) or []]
    cpu0 = sum(_proc_cpu_seconds(pid) for pid in pids) + time.process_time()

    def run() -> int:
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            for batch in loader:
                n += batch["image"].shape[0]
        return n

    m = measure(f"DataLoader, {workers} workers" + (" (in-process)" if not workers else ""), run)
    cpu = sum(_proc_cpu_seconds(pid) for pid in pids) + time.process_time() - cpu0
    return m, cpu


def _proc_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc), 0 where unavailable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def _timed(name: str, fn, *, warmup=None) -> tuple[Measurement, float]:
    """:func:`measure` plus the CPU seconds this process spent (a load-independent cost)."""
    if warmup is not None:
        warmup()
    c0 = time.process_time()
    m = measure(name, fn)
    return m, time.process_time() - c0


def _stream_measure(profile: Profile, batch_size: int, seconds: float) -> tuple[Measurement, float]:
    stream = iter(SyntheticStream(profile, batch_size=batch_size, seed=0, device="cpu"))

    def run() -> int:
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            n += next(stream)["image"].shape[0]
        return n

    return _timed("synthetic stream (pool + compose)", run, warmup=lambda: next(stream))


def _tile_cache(folder: Path, tiled_root: Path, input_size: int, rows: int) -> PackedDataset:
    """The packed rows of ``folder`` repeated into a ``rows``-row cache, so reads come
    from memory, not from the CPU cache."""
    tiled = packed_dir(tiled_root, input_size)
    tiled.mkdir(parents=True, exist_ok=True)
    manifest = read_manifest(folder)
    reps = np.arange(rows) % manifest["count"]
    for key, src in open_arrays(folder).items():
        dst = np.lib.format.open_memmap(tiled / manifest["arrays"][key]["file"], mode="w+",
                                        dtype=src.dtype, shape=(rows, *src.shape[1:]))
        for a in range(0, rows, 256):
            dst[a:a + 256] = src[reps[a:a + 256]]
        dst.flush()
        del dst
    manifest.update(count=rows, splits={"all": list(range(rows))})
    write_json(tiled / MANIFEST, manifest)
    return PackedDataset(tiled, "all")


def _per_worker(args: argparse.Namespace, profile: Profile, root: Path,
                packed: PackedDataset) -> tuple[Measurement, float, Measurement, float]:
    """The seed's way, the packed cache and the stream, one thread each; prints the table."""
    S, s = profile.input_size, profile.output_size
    rows = read_index(root)
    gen = np.random.default_rng(0)

    def seed_way() -> int:
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < args.seconds:
            seed_load_sample(root, rows[n % len(rows)], S, s)
            n += 1
        return n

    def packed_way() -> int:
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < args.seconds:
            n += packed.__getitems__(gen.integers(0, len(packed), args.batch_size))["image"].shape[0]
        return n

    seed_m, seed_cpu = _timed("seed (PIL decode 4 files + resize)", seed_way,
                              warmup=lambda: seed_load_sample(root, rows[0], S, s))
    packed_m, packed_cpu = _timed("packed cache (batch fetch)", packed_way,
                                  warmup=lambda: packed.__getitems__(list(range(min(8, len(packed))))))
    runs = [(seed_m, seed_cpu), (packed_m, packed_cpu),
            _stream_measure(profile, min(args.batch_size, 32), args.seconds)]
    print_comparison("samples/s per worker (one thread, wall clock):", *[m for m, _ in runs])
    print("samples per CPU-second (load-independent cost):")
    for m, cpu in runs:
        print(f"  {m.name:<36} {m.items / max(cpu, 1e-9):10.1f}  "
              f"x{(m.items / max(cpu, 1e-9)) / (seed_m.items / max(seed_cpu, 1e-9)):.0f} vs seed")
    return seed_m, seed_cpu, packed_m, packed_cpu


def _data_loaders(args: argparse.Namespace, profile: Profile, tiled_root: Path,
                  seed_m: Measurement) -> None:
    """DataLoaders over the tiled cache (``--workers`` workers, and in-process); prints."""
    S = profile.input_size
    loaders = []
    for workers in dict.fromkeys([args.workers, 0]):
        options = LoaderOptions(batch_size=args.batch_size, num_workers=workers, shuffle=True,
                                drop_last=True, pin_memory=False,
                                generator=torch.Generator().manual_seed(0))
        loader = make_loader(profile, "all", root=tiled_root, options=options)
        loaders.append((workers, *_measure_loader(loader, workers, 2 * args.seconds)))
    print_comparison(f"DataLoader over a {args.rows}-row packed cache, batch "
                     f"{args.batch_size}, 6 x {S} x {S} uint8 input (wall clock):", seed_m,
                     *[m for _, m, _ in loaders])
    for workers, m, cpu in loaders:
        per_cpu = m.items / max(cpu, 1e-9)
        cores = min(os.cpu_count() or 1, max(workers, 1))
        print(f"  {workers} workers: {m.rate * 6 * S * S / 1e9:.2f} GB/s of input; used "
              f"{cpu:.1f} CPU-s (workers + main): {per_cpu:.0f} samples per CPU-second, "
              f"i.e. about {cores * per_cpu:.0f} samples/s on {cores} idle core(s)")


def main(args: argparse.Namespace) -> int:
    profile = get_profile(args.profile)
    if min(args.samples, args.rows, args.batch_size) < 1 or args.workers < 0 or args.seconds <= 0:
        raise ValueError("--samples, --rows and --batch-size must be at least 1, --workers at "
                         "least 0, --seconds positive")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    tmp = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="evacamel-bench-loader-"))
    try:
        root = tmp / "dataset"
        if not (root / META_NAME).is_file():
            print(f"writing a {args.samples}-sample {profile.source_size} px dataset to {root} ...")
            write_sample_dataset(root, args.samples, profile.source_size,
                                 depth_size=profile.depth_size, seed_copies=True)
        folder = pack_dataset(root, profile.input_size, profile.output_size, workers=2,
                              progress=False)
        packed = _tile_cache(folder, tmp / "tiled", profile.input_size, args.rows)
        print(f"loader benchmark, profile {profile.name}: files {profile.source_size} px "
              f"(depth {profile.depth_size}), batches {profile.input_size} px input / "
              f"{profile.output_size} px targets, one thread per way; load before: {_load()}")
        seed_m, seed_cpu, packed_m, packed_cpu = _per_worker(args, profile, root, packed)
        _data_loaders(args, profile, tmp / "tiled", seed_m)
        print(f"  packed / seed per core: x{packed_m.rate / seed_m.rate:.0f} (wall), "
              f"x{(packed_m.items / packed_cpu) / (seed_m.items / seed_cpu):.0f} (CPU time); "
              f"CPUs: {os.cpu_count()}; load after: {_load()}")
        try:
            print("  uptime:", subprocess.run(["uptime"], capture_output=True, text=True,
                                              check=False).stdout.strip())
        except OSError:
            pass
    finally:
        torch.set_num_threads(threads)
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0
