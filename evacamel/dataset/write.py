"""Write a dataset: sources, then chunks of samples over processes, then finalize.

:func:`write_dataset` (see :mod:`evacamel.dataset` for the layout and the
guarantees), :func:`finalize_dataset` (merge shards), :func:`ensure_dataset` (the
profile's dataset, built once even when several processes ask at once).
"""

from __future__ import annotations

import contextlib
import csv
import os
import shutil
import zipfile
from pathlib import Path
from typing import Any

from evacamel.dataset.atomic import atomic_write, clean_stale_temps, folder_lock, tmp_name, write_json
from evacamel.dataset.format import (INDEX_NAME, META_NAME, SOURCES_NAME, WORK, is_complete, prepare_root,
                                  rows_to_csv, work_folders)
from evacamel.dataset.plan import Plan, group_size, make_plan
from evacamel.dataset.worker import Worker, default_workers, run_tasks
from evacamel.profiles import Profile, get_profile

__all__ = ["WriteInterrupted", "write_dataset", "finalize_dataset", "ensure_dataset"]

_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


class WriteInterrupted(RuntimeError):
    """Raised by the ``stop_after_chunks`` testing hook of :func:`write_dataset`."""


def _write_zip(path: Path, root: Path, rels: list[str]) -> None:
    """A deterministic stored (uncompressed) zip of ``rels`` (relative to ``root``)."""
    tmp = tmp_name(path)
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
            for rel in rels:
                info = zipfile.ZipInfo(rel, date_time=_ZIP_DATE)
                info.external_attr = 0o644 << 16
                info.compress_type = zipfile.ZIP_STORED
                zf.writestr(info, (root / rel).read_bytes())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def finalize(root: Path, plan: Plan, *, require: bool) -> bool:
    """Merge the chunks' rows, write zips and the complete meta.json. False if chunks are missing."""
    writer = Worker(root, plan)
    missing = [c for c in range(plan.n_chunks) if not writer.chunk_csv(c).is_file()]
    if missing:
        if require:
            raise ValueError(
                f"{root}: cannot finalize: {len(missing)} of {plan.n_chunks} chunks are not written "
                f"(first: chunk {missing[0]}, samples {plan.chunk_range(missing[0]).start}.."
                f"{plan.chunk_range(missing[0]).stop - 1}); run the missing shards into this folder "
                "(or an unsharded run) first")
        return False
    rows: list[dict] = []
    for c in range(plan.n_chunks):
        with open(writer.chunk_csv(c), newline="", encoding="utf-8") as f:
            rows += list(csv.DictReader(f))
    for row in rows:
        for rel in (row["fg_bg_paths"], row["mask_paths"]) + \
                ((row["depth_map_paths"],) if plan.has_depth else ()):
            if not (root / rel).is_file():
                raise FileNotFoundError(f"{root / rel}: listed in chunk rows but missing; "
                                        f"delete {root / WORK / 'chunks'} and rerun to rewrite it")
    n = len(rows)
    parts = max(plan.zip_parts, 1)
    for r, row in enumerate(rows):
        row["part"] = r * parts // n if plan.zip_parts else 0
    atomic_write(root / INDEX_NAME, rows_to_csv(rows).encode("utf-8"))
    if plan.zip_parts:
        for part in range(plan.zip_parts):
            path = root / f"dataset_{part}.zip"
            if path.is_file():
                continue
            rels = []
            for row in rows:
                if row["part"] == part:
                    rels += [row["fg_bg_paths"], row["mask_paths"]]
                    if plan.has_depth:
                        rels.append(row["depth_map_paths"])
            _write_zip(path, root, rels)
        path = root / "dataset_bg.zip"
        if not path.is_file():
            rels = [plan.bg_rel(i) for i in range(plan.n_bg)]
            if plan.has_depth:
                rels += [plan.bg_depth_rel(i) for i in range(plan.n_bg)]
            rels += [plan.fg_rel(j) for j in range(plan.n_fg)] + [SOURCES_NAME]
            _write_zip(path, root, rels)
    meta = dict(plan.meta)
    meta["complete"] = True
    write_json(root / META_NAME, meta)
    shutil.rmtree(root / WORK, ignore_errors=True)
    return True


def _parse_shard(shard: Any) -> tuple[int, int]:
    if shard is None:
        return 0, 1
    if isinstance(shard, str):
        try:
            i, n = (int(v) for v in shard.split("/"))
        except ValueError:
            raise ValueError(f"shard {shard!r}: write it as i/n, e.g. 0/4") from None
    else:
        i, n = (int(v) for v in shard)
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"shard {i}/{n}: need 0 <= i < n")
    return i, n


def _write_all(root: Path, plan: Plan, *, shard_i: int, shard_n: int, workers: int,
               disable: bool | None, stop_after_chunks: int | None) -> None:
    """Stages 1-3 of :func:`write_dataset` (sources, samples, finalize)."""
    from evacamel.colab import progress_bar

    profile = plan.profile
    # 1. sources (every shard writes them all: identical bytes, atomic renames)
    writer = Worker(root, plan)
    g_bg, g_fg = group_size(profile.source_size), group_size(profile.camel_size)
    tasks: list[tuple[str, Any]] = []
    for kind, n, g in (("bg", plan.n_bg, g_bg), ("fg", plan.n_fg, g_fg)):
        for start in range(0, n, g):
            ids = list(range(start, min(start + g, n)))
            if not all(writer.source_done(kind, i) for i in ids):
                tasks.append((kind, ids))
    if tasks or not (root / SOURCES_NAME).is_file():
        todo = sum(len(ids) for _, ids in tasks)
        with progress_bar(total=plan.n_bg + plan.n_fg, initial=plan.n_bg + plan.n_fg - todo,
                          desc="backgrounds and camels", unit="img", disable=disable) as bar:
            run_tasks(root, plan, tasks, workers, lambda kind, n: bar.update(n))
        writer.write_sources_json()

    # 2. samples
    if stop_after_chunks is not None and stop_after_chunks <= 0:
        raise WriteInterrupted("stopped before the first chunk (testing hook)")
    mine = [c for c in range(plan.n_chunks) if c % shard_n == shard_i]
    todo_chunks = [c for c in mine if not writer.chunk_done(c)]
    total = sum(len(plan.chunk_range(c)) for c in mine)
    left = sum(len(plan.chunk_range(c)) for c in todo_chunks)
    if todo_chunks:
        done_chunks = 0

        def on_chunk(kind: str, n: int) -> None:
            nonlocal done_chunks
            bar.update(n)
            done_chunks += 1
            if stop_after_chunks is not None and done_chunks >= stop_after_chunks:
                raise WriteInterrupted(f"stopped after {done_chunks} chunks (testing hook)")

        with progress_bar(total=total, initial=total - left, desc="samples", unit="sample",
                          disable=disable, smoothing=0.1) as bar:
            run_tasks(root, plan, [("chunk", c) for c in todo_chunks], workers, on_chunk)

    # 3. finalize when every chunk is there (an unsharded run, or the last shard)
    finalize(root, plan, require=shard_n == 1)


def write_dataset(out: str | os.PathLike, profile: Profile | str | None = None, *,
                  seed: int | None = None, source: Any = "procedural",
                  shard: tuple[int, int] | str | None = None, workers: int | None = None,
                  progress: bool | None = True, zip_parts: int = 0, clahe: bool = False,
                  mode: str | None = None, chunk_size: int | None = None,
                  finalize_only: bool = False, stop_after_chunks: int | None = None) -> Path:
    """Write (or finish) the dataset of ``profile`` in ``out``; see the module doc.

    Args:
        out: the dataset folder (created; must be empty or hold this same dataset).
        profile: a :class:`~evacamel.profiles.Profile` or its name (sizes and counts:
            ``n_backgrounds``, ``n_camels``, ``samples``, ``test_fraction``,
            ``source_size``, ``depth_size``, ``camel_size``, ``image_format``,
            ``jpeg_quality``, ``compose_mode``).
        seed: the dataset's seed (default ``profile.seed``); everything follows from it.
        source: ``"procedural"`` (default), or your folders as a
            :class:`~evacamel.dataset.sources.FolderSources` or a dict with keys
            ``backgrounds``, ``camels``, ``camel_masks`` (either folder may be left out
            to use the procedural world for that part).
        shard: ``(i, n)`` or ``"i/n"``: write only chunks ``c % n == i`` (plus sources).
        workers: processes (default: every usable CPU); 1 runs in this process.
        progress: show tqdm progress bars (``None``: only in a terminal or notebook).
        zip_parts: also write ``dataset_0.zip`` ... ``dataset_<N-1>.zip`` and
            ``dataset_bg.zip`` (the seed shipped 10 parts).
        clahe: equalise the backgrounds' brightness with CLAHE (the seed's step).
        mode: ``"perspective"`` or ``"seed"`` (default: the profile's; ``"seed"`` with
            your own backgrounds).
        chunk_size: samples per chunk (default :func:`default_chunk_size`); part of the
            dataset's identity (other chunks, other random draws).
        finalize_only: only merge the shards' chunks and finish (error if any is missing).
        stop_after_chunks: testing hook: raise :class:`WriteInterrupted` after this many
            chunks were written by this call (simulates a killed run); 0 stops after the
            sources (the benchmark times the two stages apart this way).

    Returns:
        ``out`` as a Path.

    Raises:
        FileExistsError: ``out`` holds another dataset or unrelated files (untouched).
        FileNotFoundError / ValueError: bad source folders or files (the file is named).
    """
    root = Path(out).expanduser()
    profile = get_profile(profile)
    shard_i, shard_n = _parse_shard(shard)
    plan = make_plan(profile, seed=seed, source=source, mode=mode, clahe=clahe,
                      zip_parts=int(zip_parts), chunk_size=chunk_size)
    if prepare_root(root, plan):
        shutil.rmtree(root / WORK, ignore_errors=True)  # leftovers of a finished run
        return root
    clean_stale_temps(work_folders(root))
    if finalize_only:
        finalize(root, plan, require=True)
        return root
    for d in ("bg", "fg", "fg_bg", "mask", WORK + "/chunks", WORK + "/sources") + \
            (("bg_depth", "depth") if plan.has_depth else ()) + \
            ((WORK + "/bg_depth_full",) if plan.has_depth and
             profile.depth_size != profile.source_size else ()):
        (root / d).mkdir(parents=True, exist_ok=True)
    workers = default_workers() if workers is None else max(1, int(workers))
    disable = None if progress is None else not progress

    try:
        _write_all(root, plan, shard_i=shard_i, shard_n=shard_n, workers=workers,
                   disable=disable, stop_after_chunks=stop_after_chunks)
    except FileNotFoundError:
        # Another process on the same folder finished the dataset (and removed .work/)
        # while this one was still writing: fine, the bytes are the same.
        if not is_complete(root):
            raise
    return root


def finalize_dataset(out: str | os.PathLike, profile: Profile | str | None = None,
                     **kwargs: Any) -> Path:
    """Merge the shards written into ``out`` and finish it (same arguments as the shards)."""
    return write_dataset(out, profile, finalize_only=True, **kwargs)


def ensure_dataset(profile: Profile | str | None = None, root: str | os.PathLike | None = None,
                   *, progress: bool | None = True, workers: int | None = None,
                   poll_s: float = 1.0, **kwargs: Any) -> Path:
    """The profile's dataset folder, built first if it is not complete.

    Default folder: ``paths.dataset_dir(profile.name)`` (``data/<profile>``). Safe when
    several processes call it at once: one builds (it holds ``<root>.lock``, created with
    ``O_CREAT | O_EXCL``), the others wait for it and return the same folder. A lock left
    by a dead process is taken over.

    Raises:
        FileExistsError: the folder holds another dataset (e.g. the profile changed):
            delete it to rebuild.
    """
    from evacamel.paths import dataset_dir

    profile = get_profile(profile)
    root = Path(root) if root is not None else dataset_dir(profile.name)
    if not is_complete(root):
        with folder_lock(root, poll_s):  # one builder; the others wait here, then check
            if not is_complete(root):
                return write_dataset(root, profile, progress=progress, workers=workers, **kwargs)
    # Still checks the folder is this profile's dataset (never returns a stale one).
    return write_dataset(root, profile, progress=False, workers=1, **kwargs)
