"""Exact mean and standard deviation per channel of fg_bg, bg, mask and depth.

The seed's statistics pass took 55 minutes (and its README table swapped the mask and
depth rows). Here the data are integers (uint8 images and masks, uint16 depth targets),
so the statistics are computed from exact integer histograms: one ``torch.bincount`` per
row and channel, summed in int64, then

    mean = sum(v * h) / n,   var = (n * sum(v^2 * h) - sum(v * h)^2) / n^2

in exact Python integers before the final division: no rounding error accumulates,
whatever the dataset size. From the packed cache this reads memory-mapped rows at memory
speed, in parallel processes (a 40,000-sample 256 px cache in seconds).

Values are in the units the model sees (batch format, ``ARCHITECTURE.md``): images and
masks as ``uint8 / 255`` in [0, 1] at the training sizes, depth as the [0, 1] target
(``meters_to_target``). The statistics of the training split normalise the inputs
(:mod:`evacamel.loading.transforms`); they are cached in ``meta.json`` under ``"stats"``.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import warnings
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from evacamel.colab import progress_bar

from evacamel.dataset.format import META_NAME, read_meta, write_meta
from evacamel.dataset.write import ensure_dataset
from evacamel.loading.batch import collate_samples
from evacamel.loading.loader import open_dataset
from evacamel.loading.pack import MANIFEST, PackedDataset, open_arrays, source_fingerprint
from evacamel.profiles import Profile, get_profile

__all__ = [
    "KINDS",
    "ROW_TITLES",
    "SEED_STATS",
    "DEFAULT_STATS",
    "Histograms",
    "compute_histograms",
    "compute_stats",
    "compute_stats_packed",
    "mask_coverage",
    "split_summary",
    "ensure_stats",
    "read_stats",
    "stats_table",
]

KINDS = ("fg_bg", "bg", "mask", "depth")
"""The four image types, in the order of the seed's table (rows put right)."""

ROW_TITLES = {"fg_bg": "FG-BG Images", "bg": "BG Images", "mask": "Masks", "depth": "Depth Maps"}

SEED_STATS: dict[str, Any] = {
    "source": "the seed's README (1024 px images and masks, 512 px depth); its mask and "
              "depth rows were swapped there and are put right here",
    "sizes": {"fg_bg": 1024, "bg": 1024, "mask": 1024, "depth": 512},
    "fg_bg": {"mean": [0.4561, 0.3984, 0.3620], "std": [0.2866, 0.2640, 0.2774]},
    "bg": {"mean": [0.5869, 0.5174, 0.4732], "std": [0.2560, 0.2398, 0.2781]},
    "mask": {"mean": [0.0903], "std": [0.2781]},
    "depth": {"mean": [0.6289], "std": [0.2238]},
}
"""The seed's published statistics (its depth is DenseDepth min-max output, not ours)."""

DEFAULT_STATS: dict[str, Any] = {
    "source": "fallback: the seed's published image statistics (no stats in meta.json)",
    "fg_bg": SEED_STATS["fg_bg"], "bg": SEED_STATS["bg"],
    "mask": {"mean": [0.09], "std": [0.29]}, "depth": {"mean": [0.5], "std": [0.25]},
}
"""Used by the transforms when a dataset has no statistics yet: the seed's image
statistics (photos of deserts; ours are close enough to normalise sensibly)."""

_CHANNELS = {"fg_bg": 3, "bg": 3, "mask": 1, "depth": 1}
_BINS = {"fg_bg": 256, "bg": 256, "mask": 256, "depth": 65536}
_SCALE = {"fg_bg": 255, "bg": 255, "mask": 255, "depth": 65535}


class Histograms:
    """Exact per-channel histograms of the four kinds, fed with batch-format tensors."""

    def __init__(self) -> None:
        self.counts = {k: np.zeros((_CHANNELS[k], _BINS[k]), dtype=np.int64) for k in KINDS}
        self.samples = 0
        self.input_size: int | None = None
        self.output_size: int | None = None
        self.source = ""

    def _add(self, kind: str, channel: int, values: torch.Tensor) -> None:
        v = values.reshape(-1)
        if v.dtype == torch.uint16:
            v = v.to(torch.int32)
        self.counts[kind][channel] += torch.bincount(v, minlength=_BINS[kind]).cpu().numpy()

    def add_sample(self, image: torch.Tensor, mask: torch.Tensor, depth: torch.Tensor) -> None:
        """One sample: image uint8 ``6 x S x S``, mask uint8 ``1 x s x s``, depth uint16."""
        for c in range(3):
            self._add("bg", c, image[c])
            self._add("fg_bg", c, image[3 + c])
        self._add("mask", 0, mask[0])
        self._add("depth", 0, depth[0])
        self.samples += 1

    def add_batch(self, batch: dict[str, torch.Tensor]) -> None:
        """A batch dict (``image`` uint8 ``B x 6 x S x S``, ``mask``, ``depth``)."""
        image, mask, depth = batch["image"], batch["mask"], batch["depth"]
        for c in range(3):
            self._add("bg", c, image[:, c].contiguous())
            self._add("fg_bg", c, image[:, 3 + c].contiguous())
        self._add("mask", 0, mask[:, 0].contiguous())
        self._add("depth", 0, depth[:, 0].contiguous())
        self.samples += image.shape[0]

    def merge(self, other: "Histograms") -> "Histograms":
        for k in KINDS:
            self.counts[k] += other.counts[k]
        self.samples += other.samples
        return self

    def moments(self) -> dict[str, dict[str, list[float]]]:
        """Mean and (population) std per channel, in [0, 1] units, from exact integers."""
        out = {}
        for kind in KINDS:
            values = np.arange(_BINS[kind], dtype=object)
            means, stds = [], []
            for h in self.counts[kind]:
                hist = h.astype(object)
                n = int(hist.sum())
                if n == 0:
                    raise ValueError("no values to compute statistics from (empty split?)")
                s1 = int((hist * values).sum())
                s2 = int((hist * values * values).sum())
                scale = _SCALE[kind]
                means.append(s1 / (n * scale))
                stds.append(float(np.sqrt((n * s2 - s1 * s1) / (n * n))) / scale)
            out[kind] = {"mean": means, "std": stds}
        return out


def _histograms_of_rows(folder: str, rows: np.ndarray) -> Histograms:
    """Histograms of some rows of a packed cache (runs in a worker process)."""
    torch.set_num_threads(1)
    arrays = open_arrays(folder, "c")
    hist = Histograms()
    rows = np.asarray(rows, dtype=np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # read-only memory maps as tensors: never written
        for r in rows:  # images: one bincount per contiguous row-channel (64 K values)
            image = torch.from_numpy(arrays["image"][r])
            for c in range(3):
                hist._add("bg", c, image[c])
                hist._add("fg_bg", c, image[3 + c])
        for a in range(0, len(rows), 256):  # targets are small: whole blocks at once
            block = np.sort(rows[a:a + 256])
            hist._add("mask", 0, torch.from_numpy(arrays["mask"][block]))
            hist._add("depth", 0, torch.from_numpy(arrays["depth"][block]))
    hist.samples = len(rows)
    return hist


def compute_stats_packed(folder: str | os.PathLike, split: str = "train", *,
                         workers: int | None = None) -> dict[str, Any]:
    """Exact statistics of one split of a packed cache, in ``workers`` processes."""
    hist = _packed_histograms(PackedDataset(folder, split), workers)
    return _result(hist, split, hist.input_size, hist.output_size, source=hist.source)


def _result(hist: Histograms, split: str, input_size: int, output_size: int, *,
            source: str) -> dict[str, Any]:
    return {"split": split, "count": hist.samples, "input_size": input_size,
            "output_size": output_size, "computed_from": source,
            "units": {"fg_bg": "uint8 / 255", "bg": "uint8 / 255", "mask": "uint8 / 255",
                      "depth": "target (meters_to_target) in [0, 1]"},
            **hist.moments()}


def compute_histograms(data: str | os.PathLike | Iterable[dict[str, torch.Tensor]] | Any,
                       split: str = "train", *, input_size: int | None = None,
                       workers: int | None = None, batch_size: int = 64,
                       progress: bool | None = None) -> Histograms:
    """Exact value histograms of one split (what :func:`compute_stats` summarises).

    ``data`` as for :func:`compute_stats`. The result also carries ``input_size``,
    ``output_size`` and ``source`` (where the values came from).
    """
    if isinstance(data, (str, os.PathLike)):
        path = Path(data)
        if (path / MANIFEST).is_file():
            data = PackedDataset(path, split)
        elif input_size is None:
            raise ValueError(f"{path}: a dataset folder needs input_size= for its statistics")
        else:
            data = open_dataset(path, split, input_size=input_size)
    if isinstance(data, PackedDataset):
        return _packed_histograms(data, workers)
    hist = Histograms()
    if isinstance(data, Dataset):
        loader = DataLoader(data, batch_size=batch_size, num_workers=workers or 0,
                            collate_fn=collate_samples)
        for batch in progress_bar(loader, desc="stats", unit="batch",
                          disable=None if progress is None else not progress):
            hist.add_batch(batch)
        hist.input_size = getattr(data, "input_size", None)
        hist.output_size = getattr(data, "output_size", None)
        hist.source = type(data).__name__
        return hist
    for batch in data:
        hist.add_batch(batch)
        hist.input_size, hist.output_size = batch["image"].shape[-1], batch["mask"].shape[-1]
    hist.source = "batches"
    return hist


def _packed_histograms(ds: Any, workers: int | None) -> Histograms:
    rows = ds.row_ids
    workers = (os.cpu_count() or 1) if workers is None else max(1, int(workers))
    workers = min(workers, max(1, len(rows) // 64))
    if workers == 1:
        hist = _histograms_of_rows(str(ds.folder), rows)
    else:
        shares = np.array_split(rows, workers)
        with ProcessPoolExecutor(workers, mp_context=mp.get_context()) as pool:
            parts = list(pool.map(_histograms_of_rows, [str(ds.folder)] * workers, shares))
        hist = parts[0]
        for p in parts[1:]:
            hist.merge(p)
    hist.input_size, hist.output_size = ds.input_size, ds.output_size
    hist.source = f"packed cache {ds.folder.name}"
    return hist


def compute_stats(data: str | os.PathLike | Iterable[dict[str, torch.Tensor]] | Any,
                  split: str = "train", *, input_size: int | None = None,
                  workers: int | None = None, batch_size: int = 64,
                  progress: bool | None = None) -> dict[str, Any]:
    """Exact per-channel mean and std of fg_bg, bg, mask and depth.

    Args:
        data: a packed cache folder (fast path), a dataset folder (packed cache used if
            current, else the files are decoded; needs ``input_size``), a map-style
            dataset of batch-format samples, or an iterable of batch dicts.
        split: which split (``"train"`` by default: the statistics that normalise
            training inputs must not look at the test split).
        workers: processes (packed) or DataLoader workers (files).

    Returns:
        ``{"split", "count", "input_size", "output_size", "computed_from", "units",
        "fg_bg": {"mean": [r, g, b], "std": [r, g, b]}, "bg": {...},
        "mask": {"mean": [m], "std": [s]}, "depth": {...}}`` with values in [0, 1] units.
    """
    hist = compute_histograms(data, split, input_size=input_size, workers=workers,
                              batch_size=batch_size, progress=progress)
    return _result(hist, split, hist.input_size, hist.output_size, source=hist.source)


def mask_coverage(data: str | os.PathLike | Any, split: str = "train", *,
                  input_size: int | None = None) -> np.ndarray:
    """Per sample, the share of target pixels that are camel (mean of mask / 255).

    ``data``: a packed cache folder, a dataset folder (with ``input_size``) or a dataset.
    Returns float64 ``N``. One minus its mean is the pixel accuracy of a model that
    always answers "background".
    """
    if isinstance(data, (str, os.PathLike)):
        path = Path(data)
        data = PackedDataset(path, split) if (path / MANIFEST).is_file() else \
            open_dataset(path, split, input_size=int(input_size or 0) or _need_size(path))
    if isinstance(data, PackedDataset):
        masks = data.arrays["mask"]
        result = np.empty(len(data))
        for a in range(0, len(data), 512):
            block = data.row_ids[a:a + 512]
            order = np.argsort(block, kind="stable")  # read rows in file order
            values = masks[block[order]].reshape(len(block), -1).mean(1, dtype=np.float64)
            result[a + order] = values / 255
        return result
    return np.array([float(data[i]["mask"].double().mean()) / 255 for i in range(len(data))])


def _need_size(path: Path) -> int:
    raise ValueError(f"{path}: a dataset folder needs input_size= to read masks at")


def read_stats(root: str | os.PathLike) -> dict[str, Any] | None:
    """``meta.json["stats"]`` of a dataset folder, or ``None`` if absent."""
    if not (Path(root) / META_NAME).is_file():
        return None
    return read_meta(root).get("stats")


def ensure_stats(profile: Profile | str | None = None, *, root: str | os.PathLike | None = None,
                 split: str = "train", recompute: bool = False, workers: int | None = None,
                 progress: bool | None = None) -> dict[str, Any]:
    """The dataset's statistics from ``meta.json``, computed and cached there if missing.

    Computed at the profile's training sizes, from the packed cache when it is current
    (else from the files). Cached values are reused when split and sizes match and the
    dataset is the one they were computed from (``"source"``: hashes of the index and of
    meta.json without its stats, so e.g. rewritten depth maps trigger a recomputation).
    With ``root`` omitted the profile's dataset is made first if missing.
    """
    profile = get_profile(profile)
    root = Path(root) if root is not None else ensure_dataset(profile)
    source = source_fingerprint(root)
    cached = read_stats(root)
    if cached and not recompute and cached.get("split") == split and \
            cached.get("input_size") == profile.input_size and \
            cached.get("output_size") == profile.output_size and \
            cached.get("source", source) == source:
        return cached
    stats = compute_stats(root, split, input_size=profile.input_size, workers=workers,
                          progress=progress)
    stats["source"] = source
    write_meta(root, {**read_meta(root), "stats": stats})
    return stats


def stats_table(stats: dict[str, Any], *, decimals: int = 4) -> str:
    """The seed's table (markdown), rows in the right order: FG-BG, BG, Masks, Depth.

    ``stats`` is a result of :func:`compute_stats` (or :data:`SEED_STATS`).
    """
    sizes = stats.get("sizes") or {"fg_bg": stats["input_size"], "bg": stats["input_size"],
                                   "mask": stats["output_size"], "depth": stats["output_size"]}
    head = ("| Image Type | Size | No of channels | Mean_R | Mean_G | Mean_B | Mean | "
            "Std_R | Std_G | Std_B | Std |")
    lines = [head, "|" + " --- |" * 11]
    f = f"{{:.{decimals}f}}"
    for kind in KINDS:
        mean, std = stats[kind]["mean"], stats[kind]["std"]
        size = f"{sizes[kind]} X {sizes[kind]}"
        if len(mean) == 3:
            cells = [*(f.format(m) for m in mean), "NA", *(f.format(v) for v in std), "NA"]
        else:
            cells = ["NA"] * 3 + [f.format(mean[0])] + ["NA"] * 3 + [f.format(std[0])]
        lines.append(f"| {ROW_TITLES[kind]} | {size} | {len(mean)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def split_summary(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per split of ``dataset_info.csv`` rows: samples, distinct backgrounds and camels,
    and how many backgrounds/camels it shares with the other splits (0 = a real held-out
    test)."""
    out: dict[str, dict[str, Any]] = {}
    splits = sorted({str(r.get("split", "all")) for r in rows})
    for sp in splits:
        mine = [r for r in rows if str(r.get("split", "all")) == sp]
        others = [r for r in rows if str(r.get("split", "all")) != sp]
        bgs, fgs = {str(r["bg_id"]) for r in mine}, {str(r["fg_id"]) for r in mine}
        out[sp] = {"samples": len(mine), "backgrounds": len(bgs), "camels": len(fgs),
                   "shared_backgrounds": len(bgs & {str(r["bg_id"]) for r in others}),
                   "shared_camels": len(fgs & {str(r["fg_id"]) for r in others})}
    return out
