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
from collections.abc import Callable
from pathlib import Path
from typing import Any

from evacamel.colab import progress_bar

from evacamel.dataset.atomic import atomic_write, clean_stale_temps, folder_lock, tmp_name
from evacamel.dataset.format import (INDEX_NAME, SOURCES_NAME, WORK, is_complete, prepare_root,
                                     resolve_in_dataset, rows_to_csv, work_folders, write_meta)
from evacamel.dataset.plan import Plan, group_size, make_plan
from evacamel.dataset.worker import Worker, default_workers, run_tasks
from evacamel.paths import dataset_dir
from evacamel.profiles import Profile, get_profile

__all__ = ["write_dataset", "finalize_dataset", "ensure_dataset"]

_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def _write_zip(path: Path, root: Path, rels: list[str]) -> None:
    """A deterministic stored (uncompressed) zip of ``rels`` (relative to ``root``)."""
    tmp = tmp_name(path)
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
            for rel in rels:
                info = zipfile.ZipInfo(rel, date_time=_ZIP_DATE)
                info.external_attr = 0o644 << 16
                info.compress_type = zipfile.ZIP_STORED
                zf.writestr(info, resolve_in_dataset(root, rel).read_bytes())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _merged_rows(root: Path, plan: Plan, writer: Worker) -> list[dict]:
    """Every chunk's rows in order, their files checked, each given its zip ``part``."""
    rows: list[dict] = []
    for c in range(plan.n_chunks):
        with open(writer.chunk_csv(c), newline="", encoding="utf-8") as f:
            rows += list(csv.DictReader(f))
    for row in rows:
        for rel in (row["fg_bg_paths"], row["mask_paths"]) + \
                ((row["depth_map_paths"],) if plan.has_depth else ()):
            if not resolve_in_dataset(root, rel).is_file():
                raise FileNotFoundError(f"{root / rel}: listed in chunk rows but missing; "
                                        f"delete {root / WORK / 'chunks'} and rerun to rewrite it")
    n, parts = len(rows), max(plan.zip_parts, 1)
    for r, row in enumerate(rows):
        row["part"] = r * parts // n if plan.zip_parts else 0
    return rows


def _write_zip_parts(root: Path, plan: Plan, rows: list[dict]) -> None:
    """``dataset_<k>.zip`` (the rows of part k) and ``dataset_bg.zip``, those not written yet."""
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


def _finish(root: Path, plan: Plan, *, require: bool) -> bool:
    """Merge the chunks' rows, write zips and the complete meta.json. False if chunks are missing."""
    writer = Worker(root, plan)
    missing = [c for c in range(plan.n_chunks) if not writer.chunk_csv(c).is_file()]
    if missing:
        if require:
            first = plan.chunk_range(missing[0])
            raise ValueError(
                f"{root}: cannot finalize: {len(missing)} of {plan.n_chunks} chunks are not written "
                f"(first: chunk {missing[0]}, samples {first.start}..{first.stop - 1}); run the "
                "missing shards into this folder (or an unsharded run) first")
        return False
    rows = _merged_rows(root, plan, writer)
    atomic_write(root / INDEX_NAME, rows_to_csv(rows).encode("utf-8"))
    if plan.zip_parts:
        _write_zip_parts(root, plan, rows)
    write_meta(root, {**plan.meta, "complete": True})
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


def _write_sources(root: Path, plan: Plan, workers: int, disable: bool | None) -> None:
    """Stage 2: the backgrounds and camels (every shard writes them all: identical bytes,
    atomic renames), then ``sources.json``."""
    writer = Worker(root, plan)
    profile = plan.profile
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


def _write_samples(root: Path, plan: Plan, chunks: list[int], workers: int,
                   disable: bool | None, on_chunk: Callable[[int], None] | None) -> None:
    """Stage 3: the samples of ``chunks`` not written yet, in chunks over the workers."""
    if on_chunk is not None:
        on_chunk(0)
    writer = Worker(root, plan)
    todo = [c for c in chunks if not writer.chunk_done(c)]
    if not todo:
        return
    total = sum(len(plan.chunk_range(c)) for c in chunks)
    left = sum(len(plan.chunk_range(c)) for c in todo)
    done = 0

    def chunk_written(kind: str, n: int) -> None:
        nonlocal done
        bar.update(n)
        done += 1
        if on_chunk is not None:
            on_chunk(done)

    with progress_bar(total=total, initial=total - left, desc="samples", unit="sample",
              disable=disable, smoothing=0.1) as bar:
        run_tasks(root, plan, [("chunk", c) for c in todo], workers, chunk_written)


def _open_dataset_folder(out: str | os.PathLike, profile: Profile | str | None,
                         **plan_args: Any) -> tuple[Path, Plan, bool]:
    """Stage 1: plan, check the folder (write the unfinished meta.json), clean up after
    killed runs. Returns ``(root, plan, complete)``."""
    root = Path(out).expanduser()
    plan = make_plan(get_profile(profile), **plan_args)
    if prepare_root(root, plan.meta):
        shutil.rmtree(root / WORK, ignore_errors=True)  # leftovers of a finished run
        return root, plan, True
    clean_stale_temps(work_folders(root))
    return root, plan, False


def _make_folders(root: Path, plan: Plan) -> None:
    folders = ["bg", "fg", "fg_bg", "mask", WORK + "/chunks", WORK + "/sources"]
    if plan.has_depth:
        folders += ["bg_depth", "depth"]
        if plan.profile.depth_size != plan.profile.source_size:
            folders.append(WORK + "/bg_depth_full")
    for d in folders:
        (root / d).mkdir(parents=True, exist_ok=True)


def write_dataset(out: str | os.PathLike, profile: Profile | str | None = None, *,
                  seed: int | None = None, source: Any = "procedural",
                  shard: tuple[int, int] | str | None = None, workers: int | None = None,
                  progress: bool | None = True, zip_parts: int = 0, clahe: bool = False,
                  mode: str | None = None, chunk_size: int | None = None,
                  on_chunk: Callable[[int], None] | None = None, world: str | None = None,
                  blend: str | None = None) -> Path:
    """Write (or finish) the dataset of ``profile`` in ``out``; see the module doc.

    Args:
        out: the dataset folder (created; must be empty or hold this same dataset).
        profile: a :class:`~evacamel.profiles.Profile` or its name: the counts, sizes,
            image format, JPEG quality, test fraction and compose mode.
        seed: the dataset's seed (default ``profile.seed``); everything follows from it.
        source: ``"procedural"`` (default), or your folders as a
            :class:`~evacamel.dataset.sources.FolderSources` or a dict with keys
            ``backgrounds``, ``camels``, ``camel_masks`` (either folder may be left out
            to use the procedural world for that part).
        shard: ``(i, n)`` or ``"i/n"``: write only chunks ``c % n == i`` (plus sources);
            merge the shards with :func:`finalize_dataset`.
        workers: processes (default: every usable CPU); 1 runs in this process.
        progress: show progress bars (``None``: only in a terminal or notebook).
        zip_parts: also write ``dataset_0.zip`` ... ``dataset_<N-1>.zip`` and
            ``dataset_bg.zip`` (the seed shipped 10 parts).
        clahe: equalise the backgrounds' brightness with CLAHE (the seed's step).
        mode: one of :data:`~evacamel.dataset.plan.COMPOSE_MODES`, ``"perspective"``,
            ``"seed"`` or ``"mixed"`` (default: the profile's; ``"seed"`` with your own
            backgrounds).
        chunk_size: samples per chunk (default :func:`default_chunk_size`); part of the
            dataset's identity (other chunks, other random draws).
        world: ``"classic"`` or ``"wide"`` (default: the profile's), the procedural
            world's scenes, looks and camels (:data:`evacamel.world.WORLDS`).
        blend: ``"paste"`` (the seed's hard paste) or ``"realistic"`` (harmonised and
            Poisson-blended camels; masks and depth stay exact); default: the profile's.
        on_chunk: called here with the number of chunks this call wrote: 0 once the
            sources are written, then after each chunk. An exception it raises stops the
            run as a kill would (tests and the benchmark use it); a rerun finishes it.

    Returns:
        ``out`` as a Path.

    Raises:
        FileExistsError: ``out`` holds another dataset or unrelated files (untouched).
        FileNotFoundError, ValueError: bad source folders or files (the file is named).
    """
    shard_i, shard_n = _parse_shard(shard)
    root, plan, complete = _open_dataset_folder(
        out, profile, seed=seed, source=source, mode=mode, clahe=clahe,
        zip_parts=int(zip_parts), chunk_size=chunk_size, world=world, blend=blend)
    if complete:
        return root
    _make_folders(root, plan)
    workers = default_workers() if workers is None else max(1, int(workers))
    disable = None if progress is None else not progress
    try:
        _write_sources(root, plan, workers, disable)
        mine = [c for c in range(plan.n_chunks) if c % shard_n == shard_i]
        _write_samples(root, plan, mine, workers, disable, on_chunk)
        _finish(root, plan, require=shard_n == 1)  # unsharded, or the last shard
    except FileNotFoundError:
        # Another process on the same folder finished the dataset (and removed .work/)
        # while this one was still writing: fine, the bytes are the same.
        if not is_complete(root):
            raise
    return root


def finalize_dataset(out: str | os.PathLike, profile: Profile | str | None = None, *,
                     seed: int | None = None, source: Any = "procedural",
                     zip_parts: int = 0, clahe: bool = False, mode: str | None = None,
                     chunk_size: int | None = None, world: str | None = None,
                     blend: str | None = None) -> Path:
    """Merge the shards written into ``out`` and finish it (the shards' dataset arguments).

    Raises:
        ValueError: a chunk is missing (names the first); FileExistsError as
            :func:`write_dataset`.
    """
    root, plan, complete = _open_dataset_folder(
        out, profile, seed=seed, source=source, mode=mode, clahe=clahe,
        zip_parts=int(zip_parts), chunk_size=chunk_size, world=world, blend=blend)
    if not complete:
        _finish(root, plan, require=True)
    return root


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
    profile = get_profile(profile)
    root = Path(root) if root is not None else dataset_dir(profile.name)
    if not is_complete(root):
        with folder_lock(root, poll_s):  # one builder; the others wait here, then check
            if not is_complete(root):
                return write_dataset(root, profile, progress=progress, workers=workers, **kwargs)
    # Still checks the folder is this profile's dataset (never returns a stale one).
    return write_dataset(root, profile, progress=False, workers=1, **kwargs)
