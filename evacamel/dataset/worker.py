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
import json
import multiprocessing as mp
import os
import signal
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from evacamel.dataset.atomic import atomic_write, write_json
from evacamel.dataset.codec import (encode_depth, encode_mask, encode_rgb, encode_rgba,
                                    float01_to_hwc_uint8, read_image, resize_depth, resize_rgba)
from evacamel.dataset.format import (SOURCES_NAME, WORK, format_number, read_sources,
                                     resolve_in_dataset, rows_to_csv)
from evacamel.dataset.plan import P_BG_SEED, P_CHUNK, P_FG_SEED, Plan, SampleFiles, derive_seed, sample_mode
from evacamel.dataset.sources import load_background, load_cutout
from evacamel.depth_units import FAR_M, png_to_meters
from evacamel.world import (Backgrounds, Camera, CamelSprite, Look, render_backgrounds,
                            render_camels, sprite_from_cutout)
from evacamel.world.compose import Composite, compose, sample_placements

__all__ = ["Worker", "DecodedBackground", "run_tasks", "default_workers",
           "torch_threads"]

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


def _camera_from_dict(d: Any) -> Camera | None:
    return None if d is None else Camera(**d)


def _look_from_dict(d: Mapping) -> Look:
    """A :class:`~evacamel.world.Look` from its ``sources.json`` record (``cast`` a tuple)."""
    return Look(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


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


def _clahe(rgb: torch.Tensor) -> torch.Tensor:
    # Imported here: kornia costs about a fifth of torch's import time (measured with
    # ``python -X importtime``: 3.7 s vs 19 s on a loaded 2-core machine) and only
    # --clahe needs it.
    from evacamel.world.enhance import clahe

    return clahe(rgb)


class DecodedBackground(NamedTuple):
    """A background read back from its files: what compositing needs."""

    rgb: torch.Tensor
    """float ``3 x S x S`` in [0, 1]."""
    rgb_u8: np.ndarray
    """The same pixels, uint8 ``S x S x 3``."""
    depth: torch.Tensor
    """float ``1 x S x S`` meters (``FAR_M`` everywhere without depth)."""
    camera: Camera | None
    look: Look | None = None
    """The background's photographic look (a pasted camel gets it too); ``None``: none."""


class Worker:
    """Writes one group of sources or one chunk of samples; one per process."""

    def __init__(self, root: Path, plan: Plan):
        self.root = root
        self.plan = plan
        self._bg: dict[int, DecodedBackground] = {}  # LRU (insertion order)
        self._fg: dict[int, torch.Tensor] = {}  # uint8 RGBA sprites
        self._sprites: dict[int, CamelSprite] = {}  # LRU (insertion order) of float sprites
        self._composite: Composite | None = None  # one reused output of compose (no ~20 MB per sample)
        self._canvas: tuple[int, np.ndarray, np.ndarray] | None = None  # (bg id, image, mask)
        self._sources: dict | None = None

    def _write(self, rel: str, data: bytes) -> None:
        atomic_write(resolve_in_dataset(self.root, rel), data)

    # -- sources --------------------------------------------------------------------
    def _record_path(self, kind: str, i: int) -> Path:
        """Where source ``i``'s record goes (gathered into sources.json at the end)."""
        return self.root / WORK / "sources" / f"{kind}_{i:04d}.json"

    def source_done(self, kind: str, i: int) -> bool:
        """Whether source ``i`` of ``kind`` (``"bg"`` or ``"fg"``) is written (its record exists)."""
        return self._record_path(kind, i).is_file()

    def write_sources(self, kind: str, ids: list[int]) -> int:
        """Render (or read) backgrounds (``kind="bg"``) or camels (``"fg"``) ``ids`` and
        write those not yet written: their files, then their record. Returns how many."""
        todo = [i for i in ids if not self.source_done(kind, i)]
        if not todo:
            return 0
        render, files_of = ((self._render_backgrounds, self._background_files) if kind == "bg"
                            else (self._render_camels, self._camel_files))
        rendered = render(ids)  # the whole group: its bytes do not depend on what is done
        for n, i in enumerate(ids):
            if i in todo:
                files, record = files_of(rendered, n, i)
                for rel, data in files:
                    self._write(rel, data)
                write_json(self._record_path(kind, i), record)
        return len(todo)

    def _render_backgrounds(self, ids: list[int]) -> tuple[torch.Tensor, torch.Tensor | None,
                                                           list, list, list, list]:
        """``(rgb B x 3 x S x S in [0, 1], depth B x 1 x S x S or None, cameras, seeds,
        looks, scenes)``; a look (the :class:`~evacamel.world.Look` a pasted camel gets
        too) or a scene (what it drew) is ``None`` where the world has none."""
        plan, p = self.plan, self.plan.profile
        none = [None] * len(ids)
        if plan.bg_files is None:
            seeds = [derive_seed(plan.seed, P_BG_SEED, i) % 2**31 for i in ids]
            bgs = render_backgrounds(seeds, p.source_size, device="cpu",
                                     scene=plan.world.scene, look=plan.world.look)
            rgb, depth, cameras = bgs.rgb, bgs.depth, list(bgs.cameras)
            looks, scenes = bgs.looks or none, bgs.scenes or none
        else:
            rgb = torch.stack([load_background(plan.bg_files[i], p.source_size) for i in ids])
            rgb = rgb.float() / 255.0
            depth, cameras, seeds, looks, scenes = None, none, none, none, none
        return (_clahe(rgb) if plan.clahe else rgb), depth, cameras, seeds, looks, scenes

    def _background_files(self, rendered: tuple, n: int, i: int) -> tuple[list, dict]:
        plan, p = self.plan, self.plan.profile
        rgb, depth, cameras, seeds, looks, scenes = rendered
        files = [(plan.bg_rel(i), encode_rgb(float01_to_hwc_uint8(rgb[n]), p.image_format,
                                             p.jpeg_quality))]
        if depth is not None:
            files.append((plan.bg_depth_rel(i), encode_depth(resize_depth(depth[n], p.depth_size))))
            if plan.bg_depth_full_rel(i) != plan.bg_depth_rel(i):
                files.append((plan.bg_depth_full_rel(i), encode_depth(depth[n])))
        record = {"id": i, "file": plan.bg_rel(i), "split": "test" if plan.bg_test[i] else "train",
                  "seed": seeds[n],
                  "origin": None if plan.bg_files is None else plan.bg_files[i].name,
                  "depth_file": plan.bg_depth_rel(i) if depth is not None else None,
                  "camera": _camera_to_dict(cameras[n])}
        if looks[n] is not None:  # the classic world's records stay as they were
            record["look"] = _jsonable(dataclasses.asdict(looks[n]))
        if scenes[n] is not None:
            d = scenes[n]
            record["scene"] = {"ground": d.ground, "features": list(d.features), "sky": d.sky}
        return files, record

    def _render_camels(self, ids: list[int]) -> tuple[list[CamelSprite], list]:
        """``(sprites, seeds)``: rendered, or your cut-outs resized to ``camel_size``."""
        plan, p = self.plan, self.plan.profile
        if plan.fg_files is None:
            seeds = [derive_seed(plan.seed, P_FG_SEED, j) % 2**31 for j in ids]
            return render_camels(seeds, p.camel_size, device="cpu", coat=plan.world.camel), seeds
        sprites = []
        for j in ids:
            path = plan.fg_files[j]
            try:
                sprite = sprite_from_cutout(load_cutout(path, plan.folders.camel_masks))
            except ValueError as exc:
                msg = str(exc)
                raise ValueError(msg if str(path) in msg else f"{path}: {msg}") from None
            sprite.rgba = resize_rgba(sprite.rgba, p.camel_size)
            sprites.append(sprite)
        return sprites, [None] * len(ids)

    def _camel_files(self, rendered: tuple, n: int, j: int) -> tuple[list, dict]:
        plan = self.plan
        sprites, seeds = rendered
        s = sprites[n]
        record = {"id": j, "file": plan.fg_rel(j), "split": "test" if plan.fg_test[j] else "train",
                  "seed": seeds[n],
                  "origin": None if plan.fg_files is None else plan.fg_files[j].name,
                  "meters_per_side": float(s.meters_per_side), "foot_v": float(s.foot_v),
                  "attributes": _jsonable(dict(getattr(s, "attributes", {}) or {}))}
        return [(plan.fg_rel(j), encode_rgba(s.rgba))], record

    def write_sources_json(self) -> None:
        """Gather the sources' records into ``sources.json``."""
        plan = self.plan
        bgs = [json.loads(self._record_path("bg", i).read_text()) for i in range(plan.n_bg)]
        fgs = [json.loads(self._record_path("fg", j).read_text()) for j in range(plan.n_fg)]
        write_json(self.root / SOURCES_NAME, {"backgrounds": bgs, "camels": fgs})

    # -- reading sources back ------------------------------------------------------------
    def sources(self) -> dict:
        """``sources.json``, read once per process."""
        if self._sources is None:
            self._sources = read_sources(self.root)
        return self._sources

    def background(self, i: int) -> DecodedBackground:
        """Background ``i`` read back from its files (a small LRU cache per process)."""
        cached = self._bg.pop(i, None)
        if cached is None:
            plan, S = self.plan, self.plan.profile.source_size
            u8 = read_image(resolve_in_dataset(self.root, plan.bg_rel(i)), channels=3)
            if plan.has_depth:
                png = read_image(resolve_in_dataset(self.root, plan.bg_depth_full_rel(i)))
                depth = png_to_meters(png.to(torch.int32))
            else:
                depth = torch.full((1, S, S), FAR_M)
            record = self.sources()["backgrounds"][i]
            look = record.get("look")
            cached = DecodedBackground(u8.float().div_(255.0),
                                       u8.permute(1, 2, 0).contiguous().numpy(), depth,
                                       _camera_from_dict(record.get("camera")),
                                       None if look is None else _look_from_dict(look))
            while len(self._bg) >= _BG_CACHE:
                self._bg.pop(next(iter(self._bg)))
        self._bg[i] = cached  # most recently used last
        return cached

    def sprite(self, j: int) -> CamelSprite:
        """Camel ``j`` read back from its file and ``sources.json`` (float RGBA sprite).

        The same object while it stays in a small LRU cache (``_SPRITE_CACHE_BYTES``):
        do not modify it.
        """
        cached = self._sprites.pop(j, None)
        if cached is not None:
            self._sprites[j] = cached  # most recently used last
            return cached
        if j not in self._fg:
            path = resolve_in_dataset(self.root, self.plan.fg_rel(j))
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

    def composite(self, size: int) -> Composite:
        """The reused output of :func:`~evacamel.world.compose.compose`: one ``size`` px sample."""
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
                   for rel in self._files_needed(k))

    def _files_needed(self, k: int) -> tuple[str, ...]:
        files = self.plan.sample_rels(k)
        return tuple(files) if self.plan.has_depth else (files.fg_bg, files.mask)

    def write_chunk(self, c: int) -> int:
        """Compose chunk ``c`` and write its missing files, then its rows; returns its size.

        Samples are composed one at a time in order, their placements drawn from one
        generator seeded by ``(seed, c)``, so a chunk's bytes depend on nothing else.
        """
        ks = list(self.plan.chunk_range(c))
        if self.chunk_done(c):
            return len(ks)
        gen = torch.Generator().manual_seed(derive_seed(self.plan.seed, P_CHUNK, c))
        rows = [self._write_sample(k, gen) for k in ks]
        atomic_write(self.chunk_csv(c), rows_to_csv(rows).encode("utf-8"))
        return len(ks)

    def _write_sample(self, k: int, gen: torch.Generator) -> dict:
        """Compose sample ``k`` (placement drawn from ``gen``), write its missing files,
        return its index row."""
        plan = self.plan
        i, j = int(plan.sample_bg[k]), int(plan.sample_fg[k])
        bg = self.background(i)
        scene = Backgrounds(rgb=bg.rgb[None], depth=bg.depth[None], cameras=[bg.camera],
                            seeds=[self.sources()["backgrounds"][i]["seed"]],
                            looks=None if bg.look is None else [bg.look])
        sprite = self.sprite(j)
        mode = sample_mode(plan.mode, gen)
        pl = sample_placements(scene, [sprite], mode=mode, generator=gen,
                               blend=plan.world.blend)[0]
        comp = compose(scene, [sprite], [pl], mode=mode,
                       out=self.composite(plan.profile.source_size))
        files = plan.sample_rels(k)
        self._write_sample_files(files, i, bg.rgb_u8, comp, self._sprite_box(pl))
        return {
            "fg_bg_paths": files.fg_bg, "mask_paths": files.mask,
            "selected_bg_paths": plan.bg_rel(i), "depth_map_paths": files.depth,
            "part": "", "sample_id": k, "fg_paths": plan.fg_rel(j),
            "bg_id": i, "fg_id": j, "split": "test" if plan.sample_test[k] else "train",
            "x": format_number(pl.x), "y": format_number(pl.y),
            "w": format_number(pl.w), "h": format_number(pl.h),
            "flip": int(bool(pl.flip)),
            "distance_m": "" if pl.distance_m is None else f"{float(pl.distance_m):.3f}",
            "visible_fraction": f"{float(comp.visible_fraction[0]):.4f}",
        }

    def _sprite_box(self, pl: Any) -> tuple[slice, slice]:
        """The rows and columns the sprite may touch (2 px margin over any rounding),
        clipped to the image (empty when it lies outside)."""
        S = self.plan.profile.source_size
        x0, y0 = max(0, int(np.floor(pl.x)) - 2), max(0, int(np.floor(pl.y)) - 2)
        x1, y1 = min(S, int(np.ceil(pl.x + pl.w)) + 2), min(S, int(np.ceil(pl.y + pl.h)) + 2)
        return slice(y0, y1), slice(x0, x1)

    def _write_sample_files(self, files: SampleFiles, i: int, rgb_u8: np.ndarray,
                            comp: Composite, box: tuple[slice, slice]) -> None:
        """The composite, mask and depth files not written yet. Only the sprite's ``box``
        can differ from the background, so the uint8 image and the mask are built from it
        (the rest is the background's bytes)."""
        p = self.plan.profile
        img, m = self.canvas(i, rgb_u8)  # the background and an empty mask
        ys, xs = box
        if not (self.root / files.fg_bg).is_file():
            img[ys, xs] = float01_to_hwc_uint8(comp.fg_bg[0, :, ys, xs])
            try:
                self._write(files.fg_bg, encode_rgb(img, p.image_format, p.jpeg_quality))
            finally:
                img[ys, xs] = rgb_u8[ys, xs]
        if not (self.root / files.mask).is_file():
            m[ys, xs] = (comp.mask[0, 0, ys, xs] > 0.5).numpy().astype(np.uint8) * 255
            try:
                self._write(files.mask, encode_mask(m))
            finally:
                m[ys, xs] = 0
        if self.plan.has_depth and not (self.root / files.depth).is_file():
            self._write(files.depth, encode_depth(resize_depth(comp.depth[0], p.depth_size)))


_WORKER: Worker | None = None


def _init_worker(root: Path, plan: Plan) -> None:
    global _WORKER
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
    torch.set_num_threads(1)
    _WORKER = Worker(root, plan)


def _run_task(task: tuple[str, Any]) -> tuple[str, int]:
    assert _WORKER is not None
    kind, arg = task
    if kind == "chunk":
        return kind, _WORKER.write_chunk(arg)
    return kind, _WORKER.write_sources(kind, arg)


def run_tasks(root: Path, plan: Plan, tasks: list[tuple[str, Any]], workers: int,
              on_done) -> None:
    """Run tasks in-process (workers = 1) or over a process pool; ``on_done(kind, n)``.

    Tasks are ``("bg", ids)``, ``("fg", ids)`` (:meth:`Worker.write_sources`) or
    ``("chunk", c)`` (:meth:`Worker.write_chunk`). Forked workers inherit the modules
    this one imported (torchvision's decoders through :mod:`~evacamel.dataset.codec`).
    """
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
