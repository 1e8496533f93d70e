"""The work of one process: write a group of sources, or one chunk of samples.

A :class:`Worker` renders (or reads) backgrounds and camels and writes them, or composes
a chunk of samples and writes its files, then its index rows (``.work/chunks/``).
:func:`run_tasks` runs such tasks in this process or over a process pool. A chunk's
random numbers come from ``(seed, chunk index)`` alone, and workers read the sources back
*from the written files*, so the bytes depend neither on the number of workers, nor on
sharding, nor on interruptions.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import multiprocessing as mp
import os
import signal
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from evacamel.dataset.atomic import atomic_write, write_json
from evacamel.depth_units import FAR_M, png_to_meters
from evacamel.dataset.codec import (encode_depth, encode_mask, encode_rgb, encode_rgba, resize_depth,
                                    resize_rgba, to_uint8)
from evacamel.dataset.format import SOURCES_NAME, WORK, format_number, rows_to_csv
from evacamel.dataset.plan import P_BG_SEED, P_CHUNK, P_FG_SEED, Plan, derive_seed
from evacamel.dataset.sources import load_background, load_cutout

__all__ = ["Worker", "run_tasks", "default_workers", "torch_threads"]

_BG_CACHE = 4
"""Decoded backgrounds kept per process (samples come in runs of one background)."""
_SPRITE_CACHE_BYTES = 256 << 20
"""Float camel sprites kept per process (64 at 512 px; their uint8 files are all kept).
Reusing the same sprite object lets :func:`~evacamel.world.compose.compose` reuse its
resampling cache."""


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch threads (restored afterwards)."""
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def default_workers() -> int:
    """The CPUs this process may use (the default number of worker processes)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


def _camera_to_dict(camera: Any) -> Any:
    if camera is None:
        return None
    if dataclasses.is_dataclass(camera):
        return {k: (float(v) if isinstance(v, float) else v)
                for k, v in dataclasses.asdict(camera).items()}
    raise TypeError(f"cannot record camera {camera!r}")


def _camera_from_dict(d: Any) -> Any:
    if d is None:
        return None
    from evacamel.world import Camera

    return Camera(**d)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


class Worker:
    """Writes one group of sources or one chunk of samples; one per process."""

    def __init__(self, root: Path, plan: Plan):
        self.root = root
        self.plan = plan
        self._bg: dict[int, tuple] = {}  # LRU (insertion order) of decoded backgrounds
        self._fg: dict[int, torch.Tensor] = {}  # uint8 RGBA sprites
        self._sprites: dict[int, Any] = {}  # LRU (insertion order) of float CamelSprites
        self._composite: Any = None  # one reused output of compose (no ~20 MB per sample)
        self._canvas: tuple[int, np.ndarray, np.ndarray] | None = None  # (bg id, image, mask)
        self._sources: dict | None = None

    # -- sources --------------------------------------------------------------------
    def _side(self, kind: str, i: int) -> Path:
        return self.root / WORK / "sources" / f"{kind}_{i:04d}.json"

    def source_done(self, kind: str, i: int) -> bool:
        """Whether source ``i`` of ``kind`` (``"bg"`` or ``"fg"``) is written (its side file exists)."""
        return self._side(kind, i).is_file()

    def write_bg_group(self, ids: list[int]) -> int:
        """Render (or read) backgrounds ``ids`` and write those not yet written."""
        plan, p = self.plan, self.plan.profile
        todo = [i for i in ids if not self.source_done("bg", i)]
        if not todo:
            return 0
        if plan.bg_files is None:
            from evacamel.world import render_backgrounds

            seeds = [derive_seed(plan.seed, P_BG_SEED, i) % 2**31 for i in ids]
            bgs = render_backgrounds(seeds, p.source_size, device="cpu")
            rgb, depth, cameras = bgs.rgb, bgs.depth, list(bgs.cameras)
        else:
            rgb = torch.stack([load_background(plan.bg_files[i], p.source_size) for i in ids])
            rgb = rgb.float() / 255.0
            depth, cameras, seeds = None, [None] * len(ids), [None] * len(ids)
        if plan.clahe:
            from evacamel.world.enhance import clahe

            rgb = clahe(rgb)
        for n, i in enumerate(ids):
            if i not in todo:
                continue
            atomic_write(self.root / plan.bg_rel(i),
                          encode_rgb(to_uint8(rgb[n]), p.image_format, p.jpeg_quality))
            if depth is not None:
                atomic_write(self.root / plan.bg_depth_rel(i),
                              encode_depth(resize_depth(depth[n], p.depth_size)))
                if plan.bg_depth_full_rel(i) != plan.bg_depth_rel(i):
                    atomic_write(self.root / plan.bg_depth_full_rel(i), encode_depth(depth[n]))
            side = {"id": i, "file": plan.bg_rel(i), "split": "test" if plan.bg_test[i] else "train",
                    "seed": seeds[n],
                    "origin": None if plan.bg_files is None else plan.bg_files[i].name,
                    "depth_file": plan.bg_depth_rel(i) if depth is not None else None,
                    "camera": _camera_to_dict(cameras[n])}
            write_json(self._side("bg", i), side)
        return len(todo)

    def write_fg_group(self, ids: list[int]) -> int:
        """Render (or read) camels ``ids`` and write those not yet written."""
        plan, p = self.plan, self.plan.profile
        todo = [j for j in ids if not self.source_done("fg", j)]
        if not todo:
            return 0
        if plan.fg_files is None:
            from evacamel.world import render_camels

            seeds = [derive_seed(plan.seed, P_FG_SEED, j) % 2**31 for j in ids]
            sprites = render_camels(seeds, p.camel_size, device="cpu")
        else:
            from evacamel.world import sprite_from_cutout

            sprites = []
            for j in ids:
                try:
                    sprite = sprite_from_cutout(load_cutout(plan.fg_files[j], plan.folders.camel_masks))
                except ValueError as exc:
                    msg = str(exc)
                    raise ValueError(msg if str(plan.fg_files[j]) in msg
                                     else f"{plan.fg_files[j]}: {msg}") from None
                sprite.rgba = resize_rgba(sprite.rgba, p.camel_size)
                sprites.append(sprite)
            seeds = [None] * len(ids)
        for n, j in enumerate(ids):
            if j not in todo:
                continue
            s = sprites[n]
            atomic_write(self.root / plan.fg_rel(j), encode_rgba(s.rgba))
            side = {"id": j, "file": plan.fg_rel(j), "split": "test" if plan.fg_test[j] else "train",
                    "seed": seeds[n],
                    "origin": None if plan.fg_files is None else plan.fg_files[j].name,
                    "meters_per_side": float(s.meters_per_side), "foot_v": float(s.foot_v),
                    "attributes": _jsonable(dict(getattr(s, "attributes", {}) or {}))}
            write_json(self._side("fg", j), side)
        return len(todo)

    def write_sources_json(self) -> None:
        """Gather the sources' side files into ``sources.json``."""
        plan = self.plan
        bgs = [json.loads(self._side("bg", i).read_text()) for i in range(plan.n_bg)]
        fgs = [json.loads(self._side("fg", j).read_text()) for j in range(plan.n_fg)]
        write_json(self.root / SOURCES_NAME, {"backgrounds": bgs, "camels": fgs})

    # -- reading sources back ------------------------------------------------------------
    def sources(self) -> dict:
        """``sources.json``, read once per process."""
        if self._sources is None:
            self._sources = json.loads((self.root / SOURCES_NAME).read_text(encoding="utf-8"))
        return self._sources

    def background(self, i: int) -> tuple[torch.Tensor, np.ndarray, torch.Tensor, Any]:
        """Background ``i`` read back from its files (a small LRU cache per process).

        Returns float rgb ``3 x S x S`` in [0, 1], the same as uint8 ``S x S x 3`` numpy,
        float depth ``1 x S x S`` meters (``FAR_M`` without depth), and its camera.
        """
        from evacamel.dataset.codec import read_image

        hit = self._bg.pop(i, None)
        if hit is None:
            plan, S = self.plan, self.plan.profile.source_size
            u8 = read_image(self.root / plan.bg_rel(i), channels=3)
            if plan.has_depth:
                depth = png_to_meters(read_image(self.root / plan.bg_depth_full_rel(i)).to(torch.int32))
            else:
                depth = torch.full((1, S, S), FAR_M)
            camera = _camera_from_dict(self.sources()["backgrounds"][i].get("camera"))
            hit = (u8.float().div_(255.0), u8.permute(1, 2, 0).contiguous().numpy(), depth, camera)
            while len(self._bg) >= _BG_CACHE:
                self._bg.pop(next(iter(self._bg)))
        self._bg[i] = hit  # most recently used last
        return hit

    def sprite(self, j: int) -> Any:
        """Camel ``j`` read back from its file and ``sources.json`` (float RGBA sprite).

        The same object while it stays in a small LRU cache (``_SPRITE_CACHE_BYTES``):
        do not modify it.
        """
        from evacamel.dataset.codec import read_image
        from evacamel.world import CamelSprite

        hit = self._sprites.pop(j, None)
        if hit is not None:
            self._sprites[j] = hit  # most recently used last
            return hit
        if j not in self._fg:
            path = self.root / self.plan.fg_rel(j)
            rgba = read_image(path)
            if rgba.shape[0] != 4:
                raise ValueError(f"{path}: camel sprite must be RGBA, has {rgba.shape[0]} channels")
            self._fg[j] = rgba  # uint8: a quarter of the memory
        info = self.sources()["camels"][j]
        sprite = CamelSprite(rgba=self._fg[j].float().div_(255.0), meters_per_side=info["meters_per_side"],
                             foot_v=info["foot_v"], attributes=info["attributes"], seed=info["seed"])
        size = sprite.rgba.numel() * sprite.rgba.element_size()
        while self._sprites and size * (len(self._sprites) + 1) > _SPRITE_CACHE_BYTES:
            self._sprites.pop(next(iter(self._sprites)))
        self._sprites[j] = sprite
        return sprite

    def canvas(self, i: int, rgb_u8: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Reused uint8 buffers holding background ``i`` (``S x S x 3``) and an empty
        mask (``S x S``); whoever paints a box into them restores it afterwards."""
        if self._canvas is None or self._canvas[0] != i:
            old = self._canvas
            if old is not None and old[1].shape == rgb_u8.shape:
                np.copyto(old[1], rgb_u8)
                self._canvas = (i, old[1], old[2])
            else:
                self._canvas = (i, rgb_u8.copy(), np.zeros(rgb_u8.shape[:2], dtype=np.uint8))
        return self._canvas[1], self._canvas[2]

    def composite(self, size: int) -> Any:
        """The reused output of :func:`~evacamel.world.compose.compose`: one ``size`` px sample."""
        from evacamel.world.compose import Composite

        c = self._composite
        if c is None or c.fg_bg.shape[-1] != size:
            c = self._composite = Composite(
                fg_bg=torch.empty(1, 3, size, size), mask=torch.empty(1, 1, size, size),
                depth=torch.empty(1, 1, size, size), visible_fraction=torch.zeros(1))
        return c

    # -- samples ----------------------------------------------------------------------
    def chunk_csv(self, c: int) -> Path:
        """Where chunk ``c``'s index rows go (``.work/chunks/``)."""
        return self.root / WORK / "chunks" / f"chunk_{c:06d}.csv"

    def chunk_done(self, c: int) -> bool:
        """Whether chunk ``c``'s rows and all its samples' files are written."""
        if not self.chunk_csv(c).is_file():
            return False
        return all((self.root / rel).is_file() for k in self.plan.chunk_range(c)
                   for rel in self._needed(k))

    def _needed(self, k: int) -> tuple[str, ...]:
        rels = self.plan.sample_rels(k)
        return rels if self.plan.has_depth else rels[:2]

    def write_chunk(self, c: int) -> int:
        """Compose chunk ``c`` and write its missing files, then its rows; returns its size.

        Samples are composed one at a time in order, their placements drawn from one
        generator seeded by ``(seed, c)``, so a chunk's bytes depend on nothing else.
        Only the sprite's box can differ from the background, so the composite's uint8
        image and the mask are built from that box (the rest is the background's bytes).
        """
        from evacamel.world.compose import compose, sample_placements
        from evacamel.world import Backgrounds

        plan, p = self.plan, self.plan.profile
        S = p.source_size
        ks = list(plan.chunk_range(c))
        if self.chunk_done(c):
            return len(ks)
        gen = torch.Generator().manual_seed(derive_seed(plan.seed, P_CHUNK, c))
        rows = []
        for k in ks:
            i, j = int(plan.sample_bg[k]), int(plan.sample_fg[k])
            rgb, rgb_u8, depth, camera = self.background(i)
            bg = Backgrounds(rgb=rgb[None], depth=depth[None], cameras=[camera],
                             seeds=[self.sources()["backgrounds"][i]["seed"]])
            sprite = self.sprite(j)
            pl = sample_placements(bg, [sprite], mode=plan.mode, generator=gen)[0]
            comp = compose(bg, [sprite], [pl], mode=plan.mode, out=self.composite(S))
            # the box the sprite may touch (2 px margin over any rounding), clipped
            x0, y0 = max(0, int(np.floor(pl.x)) - 2), max(0, int(np.floor(pl.y)) - 2)
            x1, y1 = min(S, int(np.ceil(pl.x + pl.w)) + 2), min(S, int(np.ceil(pl.y + pl.h)) + 2)
            fg_bg_rel, mask_rel, depth_rel = plan.sample_rels(k)
            img, m = self.canvas(i, rgb_u8)  # the background and an empty mask
            box = (slice(y0, y1), slice(x0, x1))
            if not (self.root / fg_bg_rel).is_file():
                if x1 > x0 and y1 > y0:
                    img[box] = to_uint8(comp.fg_bg[0, :, y0:y1, x0:x1])
                try:
                    atomic_write(self.root / fg_bg_rel, encode_rgb(img, p.image_format, p.jpeg_quality))
                finally:
                    img[box] = rgb_u8[box]
            if not (self.root / mask_rel).is_file():
                if x1 > x0 and y1 > y0:
                    m[box] = (comp.mask[0, 0, y0:y1, x0:x1] > 0.5).numpy().astype(np.uint8) * 255
                try:
                    atomic_write(self.root / mask_rel, encode_mask(m))
                finally:
                    m[box] = 0
            if plan.has_depth and not (self.root / depth_rel).is_file():
                atomic_write(self.root / depth_rel, encode_depth(resize_depth(comp.depth[0], p.depth_size)))
            rows.append({
                "fg_bg_paths": fg_bg_rel, "mask_paths": mask_rel,
                "selected_bg_paths": plan.bg_rel(i), "depth_map_paths": depth_rel,
                "part": "", "sample_id": k, "fg_paths": plan.fg_rel(j),
                "bg_id": i, "fg_id": j, "split": "test" if plan.sample_test[k] else "train",
                "x": format_number(pl.x), "y": format_number(pl.y),
                "w": format_number(pl.w), "h": format_number(pl.h),
                "flip": int(bool(pl.flip)),
                "distance_m": "" if pl.distance_m is None else f"{float(pl.distance_m):.3f}",
                "visible_fraction": f"{float(comp.visible_fraction[0]):.4f}",
            })
        atomic_write(self.chunk_csv(c), rows_to_csv(rows).encode("utf-8"))
        return len(ks)


_WORKER: Worker | None = None


def _init_worker(root: Path, plan: Plan) -> None:
    global _WORKER
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
    torch.set_num_threads(1)
    _WORKER = Worker(root, plan)


def _run_task(task: tuple[str, Any]) -> tuple[str, int]:
    assert _WORKER is not None
    kind, arg = task
    if kind == "bg":
        return kind, _WORKER.write_bg_group(arg)
    if kind == "fg":
        return kind, _WORKER.write_fg_group(arg)
    return kind, _WORKER.write_chunk(arg)


def run_tasks(root: Path, plan: Plan, tasks: list[tuple[str, Any]], workers: int,
              on_done) -> None:
    """Run tasks in-process (workers = 1) or over a process pool; ``on_done(kind, n)``.

    The image decoders (torchvision, ~1.5 s to import) are imported here first, so that
    forked workers inherit them instead of each importing them again.
    """
    importlib.import_module("evacamel.loading.batch")  # before forking (see above)

    global _WORKER
    if not tasks:
        return
    if workers <= 1 or len(tasks) == 1:
        saved = _WORKER
        _WORKER = Worker(root, plan)
        try:
            with torch_threads(1):
                for task in tasks:
                    on_done(*_run_task(task))
        finally:
            _WORKER = saved
        return
    method = "fork" if sys.platform.startswith("linux") else "spawn"
    ctx = mp.get_context(method)
    pool = ctx.Pool(min(workers, len(tasks)), initializer=_init_worker, initargs=(root, plan))
    try:
        for kind, n in pool.imap_unordered(_run_task, tasks):
            on_done(kind, n)
        pool.close()
    except BaseException:
        pool.terminate()
        raise
    finally:
        pool.join()
