"""Rewrite a dataset's depth maps with an estimator: resumable, atomic, recorded in meta.json.

:func:`rewrite_depth` (the ``evacamel depth`` command) runs an estimator over every
composite (``fg_bg/`` -> ``depth/``) and every background (``bg/`` -> ``bg_depth/``, if
the dataset has that folder), and writes 16-bit PNGs at the chosen size with the meaning
given by :mod:`evacamel.depth.storage`.

Files it keeps in the dataset folder:

* ``exact_depth/``: before the first map is overwritten, the exact maps are kept here
  (hard links where the file system allows, so no extra space), mirroring
  ``depth/`` and ``bg_depth/``. :class:`~evacamel.depth.estimators.ExactDepth` reads them,
  so ``--estimator exact`` restores the exact maps and evaluation can still score an
  estimator against the truth.
* ``depth_job.json`` and ``depth_job.done`` while a job runs: what is being made (the
  estimator, size, normalisation, calibration) and, one line per map, which maps are
  finished. An interrupted job rerun with the same settings skips the finished maps
  (they are not rewritten); a job with other settings starts over. Both files are
  removed when the job completes.

Each map is written to a temporary name and moved into place (``os.replace``); a batch
is appended to the done-list only after all its maps are in place. ``meta.json`` (also
written atomically) says ``"depth": {"rewriting": ...}`` while a job runs and, when it
completes, ``"depth": {..., "source": ...}`` and the new ``depth_size``; cached
``"stats"`` (which include the depth maps') are dropped, for ``evacamel stats`` to redo.
Zip parts (``dataset_*.zip``) are not rewritten: :class:`RewriteResult` names them as stale.
A packed cache notices the new ``meta.json`` and is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch
from evacamel.colab import progress_bar

from evacamel.dataset.atomic import atomic_write
from evacamel.dataset.format import (EXACT_DEPTH_DIR, INDEX_NAME, read_index, read_meta,
                                     resolve_in_dataset, write_meta)
from evacamel.depth.estimators import DepthEstimator
from evacamel.depth.files import read_rgb, write_depth_png
from evacamel.depth.storage import (NORMALISATIONS, calibrate, needs_calibration, stored_meaning,
                                    to_stored_meters)
from evacamel.depth_units import depth_meta

__all__ = ["DepthItem", "depth_items", "depth_source", "RewriteOptions", "rewrite_depth",
           "RewriteResult", "EXACT_BACKUP", "JOB_FILE", "DONE_FILE", "CALIBRATION_IMAGES"]

EXACT_BACKUP = EXACT_DEPTH_DIR
"""Where the exact maps are kept (``<root>/exact_depth/``, the format's name)."""
JOB_FILE = "depth_job.json"
DONE_FILE = "depth_job.done"
CALIBRATION_IMAGES = 16
"""How many images (the first ones of the index) calibrate a relative estimator's mapping."""


@dataclass(frozen=True)
class DepthItem:
    """One map to make: the image it is estimated from and the map's path (both dataset-relative)."""

    image: str
    depth: str


@dataclass(frozen=True)
class RewriteOptions:
    """How :func:`rewrite_depth` makes the maps.

    Attributes:
        size: side of the written maps; default ``meta.json``'s ``depth_size``.
        normalisation: ``"auto"`` or ``"seed"`` (see :mod:`evacamel.depth.storage`).
        batch_size: images per estimator call.
        force: redo every map even if this estimator already made them.
        progress: a progress bar (``None``: only on a terminal / notebook).
        workers: threads reading images and writing PNGs.
    """

    size: int | None = None
    normalisation: str = "auto"
    batch_size: int = 8
    force: bool = False
    progress: bool | None = None
    workers: int = 4


@dataclass
class RewriteResult:
    """What :func:`rewrite_depth` did: maps in total, written now, skipped (already done).

    ``stale_zips``: the dataset's zip parts (``dataset_*.zip``), which still hold the old
    depth maps: rebuild or delete them before training from zip parts.
    """

    total: int
    written: int
    skipped: int
    source: str | dict
    stale_zips: list[str] = field(default_factory=list)


def depth_items(root: str | os.PathLike) -> list[DepthItem]:
    """Every depth map of a dataset: the composites' (from ``dataset_info.csv``), then the backgrounds'.

    Backgrounds: every ``bg/<name>.<ext>`` gets ``bg_depth/<name>.png`` (a dataset made
    from your own pictures has no ``bg_depth/`` yet; it is created). Every path is
    checked (:func:`~evacamel.dataset.format.resolve_in_dataset`).
    """
    root = Path(root)
    items: list[DepthItem] = []
    seen: set[str] = set()
    for row in read_index(root):
        image, depth = row["fg_bg_paths"], row["depth_map_paths"]
        if depth not in seen:
            seen.add(depth)
            items.append(DepthItem(image, depth))
    bg = resolve_in_dataset(root, "bg")
    if bg.is_dir():
        for image in sorted(p for p in bg.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")):
            item = DepthItem(f"bg/{image.name}", f"bg_depth/{image.stem}.png")
            resolve_in_dataset(root, item.image)
            resolve_in_dataset(root, item.depth)
            items.append(item)
    if not items:
        raise ValueError(f"{root / INDEX_NAME} lists no samples")
    return items


def depth_source(estimator: DepthEstimator, normalisation: str = "auto") -> str | dict:
    """What ``meta.json["depth"]["source"]`` says for maps made by ``estimator`` (before calibration)."""
    desc = estimator.describe()
    if desc.get("kind") == "exact" and normalisation == "auto":
        return "exact"
    return {**desc, "normalisation": normalisation, "stored": stored_meaning(estimator.output_kind, normalisation)}


def _without_calibration(source: object) -> object:
    return {k: v for k, v in source.items() if k != "calibration"} if isinstance(source, dict) else source


def _job_key(source: object, size: int) -> str:
    blob = json.dumps({"source": _without_calibration(source), "size": size}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _keep_exact_copy(root: Path, items: list[DepthItem]) -> None:
    """Hard-link (else copy) the exact maps into ``exact_depth/``, atomically as a whole."""
    final = root / EXACT_BACKUP
    if final.is_dir():
        return
    for stale in root.glob(f".{EXACT_BACKUP}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = root / f".{EXACT_BACKUP}.tmp-{os.getpid()}"
    for item in items:
        src, dst = resolve_in_dataset(root, item.depth), resolve_in_dataset(tmp, item.depth)
        if not src.is_file():
            raise FileNotFoundError(f"exact depth map missing: {src}")
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)
    os.replace(tmp, final)


def _read_done(path: Path, known: set[str]) -> set[str]:
    if not path.is_file():
        return set()
    # A line cut short by a crash is not a known path, so it is ignored.
    return {line.strip() for line in path.read_text().splitlines() if line.strip() in known}


def _append_done(path: Path, names: list[str]) -> None:
    with path.open("a") as f:
        f.write("".join(n + "\n" for n in names))
        f.flush()
        os.fsync(f.fileno())


def _load_images(pool: ThreadPoolExecutor, root: Path, batch: list[DepthItem]) -> list[Future]:
    return [pool.submit(read_rgb, resolve_in_dataset(root, it.image)) for it in batch]


def _stack(root: Path, batch: list[DepthItem], futures: list[Future]) -> torch.Tensor:
    imgs = [f.result() for f in futures]
    shapes = {tuple(i.shape) for i in imgs}
    if len(shapes) > 1:
        raise ValueError(f"images of one batch differ in size ({sorted(shapes)}): "
                         + ", ".join(str(root / it.image) for it in batch))
    return torch.stack(imgs)


def _to_float(images: torch.Tensor, estimator: DepthEstimator) -> torch.Tensor:
    device = getattr(estimator, "device", None) or torch.device("cpu")
    return images.to(device, non_blocking=True).float().div_(255.0)


def _map_size(root: Path, meta: dict, o: RewriteOptions) -> int:
    """The maps' side; refuses an unfinished dataset and bad options (one line each)."""
    if not meta.get("complete"):
        raise ValueError(f"dataset {root} is unfinished (meta.json lacks \"complete\": true); "
                         "finish or rebuild it first")
    size = int(o.size or meta.get("depth_size") or 0)
    if size <= 0:
        raise ValueError(f"no depth size: give size (meta.json of {root} has no depth_size)")
    if o.batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {o.batch_size}")
    if o.workers <= 0:
        raise ValueError(f"workers must be positive, got {o.workers}")
    if o.normalisation not in NORMALISATIONS:
        raise ValueError(f"normalisation {o.normalisation!r}: choose one of {', '.join(NORMALISATIONS)}")
    return size


def _calibration(root: Path, estimator: DepthEstimator, items: list[DepthItem], size: int,
                 o: RewriteOptions) -> dict | None:
    """A relative estimator's dataset-wide mapping, from the first images; else ``None``."""
    if not needs_calibration(estimator.output_kind, o.normalisation):
        return None
    calib_items = items[:max(CALIBRATION_IMAGES, 1)]
    outs = []
    with ThreadPoolExecutor(o.workers) as pool:
        for i in range(0, len(calib_items), o.batch_size):
            batch = calib_items[i:i + o.batch_size]
            imgs = _stack(root, batch, _load_images(pool, root, batch))
            outs.append(estimator.estimate(_to_float(imgs, estimator), size=(size, size),
                                           keys=[it.depth for it in batch]).cpu())
    return calibrate(torch.cat(outs))


def _start_job(root: Path, meta: dict, estimator: DepthEstimator, items: list[DepthItem],
               source: str | dict, size: int, o: RewriteOptions) -> dict:
    """A new job: calibrated, recorded in ``depth_job.json`` and in meta.json (``rewriting``)."""
    (root / DONE_FILE).unlink(missing_ok=True)
    job = {"key": _job_key(source, size), "source": source, "size": size,
           "calibration": _calibration(root, estimator, items, size, o),
           "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    atomic_write(root / JOB_FILE, (json.dumps(job, indent=2) + "\n").encode())
    meta.setdefault("depth", {})["rewriting"] = {"source": source, "size": size}
    write_meta(root, meta)
    return job


def _write_maps(root: Path, estimator: DepthEstimator, todo: list[DepthItem], job: dict,
                o: RewriteOptions, on_map: Callable[[int], None]) -> int:
    """Estimate and write the maps of ``todo`` batch by batch (images read ahead), each
    batch noted in the done-list once all its maps are in place. Returns how many."""
    size, calibration = job["size"], job.get("calibration")
    batches = [todo[i:i + o.batch_size] for i in range(0, len(todo), o.batch_size)]
    written = 0
    with ThreadPoolExecutor(o.workers) as pool:
        read = estimator.needs_images
        pending = _load_images(pool, root, batches[0]) if batches and read else None
        for b, batch in enumerate(batches):
            imgs = _to_float(_stack(root, batch, pending), estimator) if read else None
            if read and b + 1 < len(batches):
                pending = _load_images(pool, root, batches[b + 1])  # read ahead while estimating
            out = estimator.estimate(imgs, size=(size, size), keys=[it.depth for it in batch])
            if out.shape != (len(batch), 1, size, size):
                raise ValueError(f"estimator returned {tuple(out.shape)}, expected {(len(batch), 1, size, size)}")
            meters = to_stored_meters(out, estimator.output_kind, o.normalisation, calibration).cpu()
            for f in [pool.submit(write_depth_png, resolve_in_dataset(root, it.depth), m)
                      for it, m in zip(batch, meters)]:
                f.result()
            _append_done(root / DONE_FILE, [it.depth for it in batch])
            written += len(batch)
            on_map(len(batch))
    return written


def _finish_job(root: Path, source: str | dict, size: int, written: int) -> None:
    """Record the new maps in meta.json (dropping stale stats) and remove the job files."""
    meta = read_meta(root)
    depth = dict(meta.get("depth", {}))
    depth.pop("rewriting", None)
    depth.update(depth_meta())
    depth["source"] = source
    meta["depth"] = depth
    meta["depth_size"] = size
    if written:
        meta.pop("stats", None)  # its depth statistics described the old maps (`evacamel stats` redoes them)
    write_meta(root, meta)
    (root / JOB_FILE).unlink(missing_ok=True)
    (root / DONE_FILE).unlink(missing_ok=True)


def rewrite_depth(root: str | os.PathLike, estimator: DepthEstimator,
                  options: RewriteOptions | None = None, *,
                  on_batch: Callable[[int], None] | None = None) -> RewriteResult:
    """(Re)generate every depth map of the dataset at ``root`` with ``estimator``.

    Args:
        root: dataset folder (``meta.json``, ``dataset_info.csv``, ...).
        estimator: e.g. :class:`~evacamel.depth.estimators.HFDepthEstimator` or
            :class:`~evacamel.depth.estimators.ExactDepth` of the same dataset.
        options: size, normalisation, batch size, ... (:class:`RewriteOptions`).
        on_batch: called with the number of maps finished so far after each batch.

    Returns:
        :class:`RewriteResult`. Resumable: rerun after an interruption, it skips the
        maps the interrupted job finished and leaves those files untouched. Every map
        is read and written inside ``root`` only (the index's paths are checked).
    """
    root, o = Path(root), options or RewriteOptions()
    meta = read_meta(root)
    size = _map_size(root, meta, o)
    items = depth_items(root)
    source = depth_source(estimator, o.normalisation)
    job = json.loads((root / JOB_FILE).read_text()) if (root / JOB_FILE).is_file() else None
    current = meta.get("depth", {}).get("source", "exact")
    if (not o.force and job is None and meta.get("depth_size") == size
            and _without_calibration(current) == _without_calibration(source)):
        return RewriteResult(len(items), 0, len(items), current)  # already made by this estimator
    if current == "exact":
        _keep_exact_copy(root, items)  # before the first exact map is overwritten
    if job is None or job.get("key") != _job_key(source, size) or o.force:
        job = _start_job(root, meta, estimator, items, source, size, o)
    for parent in sorted({resolve_in_dataset(root, it.depth).parent for it in items}):
        parent.mkdir(parents=True, exist_ok=True)  # own-picture datasets have no depth/ yet
    done = _read_done(root / DONE_FILE, {it.depth for it in items})
    finished = [len(done)]
    bar = progress_bar(total=len(items), initial=len(done), unit="map", desc="depth maps",
               disable=None if o.progress is None else not o.progress)

    def on_map(n: int) -> None:
        bar.update(n)
        finished[0] += n
        if on_batch is not None:
            on_batch(finished[0])

    with bar:
        written = _write_maps(root, estimator, [it for it in items if it.depth not in done],
                              job, o, on_map)
    calibration = job.get("calibration")
    final_source = source if calibration is None else {**source, "calibration": calibration}
    _finish_job(root, final_source, size, written)
    stale = sorted(p.name for p in root.glob("dataset_*.zip")) if written else []
    return RewriteResult(len(items), written, len(items) - written, final_source, stale)
