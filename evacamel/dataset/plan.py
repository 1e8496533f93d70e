"""What a dataset holds, before any pixel: the split, each sample's background and camel.

:func:`make_plan` checks the arguments and returns a picklable :class:`Plan` (sent to the
worker processes): which backgrounds and camels are held out for test
(``profile.test_fraction`` of each, drawn from the seed), and for every sample its
background, camel and split. Train samples pair train backgrounds with train camels
only, test samples test with test; the (background, camel) pairs of a split are visited
in a seeded order, so every pair is used before any repeats, in runs that share a
background (see :func:`pair_sequence`). Also the dataset's ``meta.json`` and the
relative paths of its files.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from evacamel import __version__
from evacamel.dataset.format import FORMAT, FORMAT_VERSION, IMAGE_FORMATS, WORK
from evacamel.depth_units import depth_meta
from evacamel.dataset.sources import FolderSources, folder_fingerprint
from evacamel.profiles import Profile
from evacamel.world.params import WorldParams, world_params, world_record

__all__ = ["Plan", "SampleFiles", "make_plan", "derive_seed", "default_chunk_size", "group_size",
           "P_BG_SEED", "P_FG_SEED", "P_CHUNK", "COMPOSE_MODES", "MIXED_SEED_SHARE", "sample_mode"]

COMPOSE_MODES = ("perspective", "seed", "mixed")
"""How a dataset's camels are placed (:mod:`evacamel.world.compose`): ``perspective``
(standing on the terrain), ``seed`` (the seed's recipe: a large square anywhere), or
``mixed``: each sample drawn, ``seed`` with probability :data:`MIXED_SEED_SHARE`. Real
composites (a student's own pairs, the original project's) are pasted the seed's way;
``mixed`` trains on both."""

MIXED_SEED_SHARE = 0.5

# Purposes of derived random streams (never reorder: they fix the dataset's bytes).
P_BG_SEED, P_FG_SEED, _P_SPLIT_BG, _P_SPLIT_FG, _P_PAIRS, P_CHUNK = 1, 2, 3, 4, 5, 6


def derive_seed(*keys: int) -> int:
    """A 63-bit seed from integer keys (``numpy.random.SeedSequence``): independent streams."""
    state = np.random.SeedSequence([int(k) for k in keys]).generate_state(2, np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1])) & (2**63 - 1)


def sample_mode(mode: str, generator: torch.Generator) -> str:
    """The compose mode of one sample of a ``mode`` dataset: ``mode`` itself, or for
    ``"mixed"`` one draw from ``generator`` (before the sample's placement)."""
    if mode != "mixed":
        return mode
    return "seed" if float(torch.rand(1, generator=generator)) < MIXED_SEED_SHARE else "perspective"


def default_chunk_size(source_size: int) -> int:
    """Samples per chunk: 32 at <= 512 px, 8 at 1024 px (a chunk's batch stays ~100 MB)."""
    return int(max(1, min(32, 2**23 // (source_size * source_size))))


def group_size(size: int) -> int:
    """Backgrounds or camels rendered per call (fixed by the size: determinism)."""
    return int(max(1, min(64, 2**22 // (size * size))))


class SampleFiles(NamedTuple):
    """The dataset-relative paths of one sample's files."""

    fg_bg: str
    mask: str
    depth: str


@dataclass
class Plan:
    """Everything about a dataset except pixels; picklable (sent to workers)."""

    profile: Profile
    seed: int
    mode: str
    clahe: bool
    chunk_size: int
    zip_parts: int
    folders: FolderSources
    bg_files: list[Path] | None
    fg_files: list[Path] | None
    bg_test: np.ndarray
    fg_test: np.ndarray
    sample_bg: np.ndarray
    sample_fg: np.ndarray
    sample_test: np.ndarray
    meta: dict = field(default_factory=dict)
    world_name: str = "classic"
    blend_name: str = "paste"
    world: WorldParams = WorldParams.classic()

    @property
    def n_samples(self) -> int:
        return len(self.sample_bg)

    @property
    def n_chunks(self) -> int:
        return (self.n_samples + self.chunk_size - 1) // self.chunk_size

    @property
    def n_bg(self) -> int:
        return len(self.bg_test)

    @property
    def n_fg(self) -> int:
        return len(self.fg_test)

    @property
    def has_depth(self) -> bool:
        return self.bg_files is None

    @property
    def ext(self) -> str:
        return self.profile.image_format

    def chunk_range(self, c: int) -> range:
        return range(c * self.chunk_size, min((c + 1) * self.chunk_size, self.n_samples))

    # relative paths (posix, as written in dataset_info.csv)
    def bg_rel(self, i: int) -> str:
        return f"bg/bg_{i:04d}.{self.ext}"

    def fg_rel(self, j: int) -> str:
        return f"fg/fg_{j:04d}.png"

    def bg_depth_rel(self, i: int) -> str:
        return f"bg_depth/bg_{i:04d}.png"

    def bg_depth_full_rel(self, i: int) -> str:
        """The depth the compositing reads: source_size (a work file when depth_size differs)."""
        if self.profile.depth_size == self.profile.source_size:
            return self.bg_depth_rel(i)
        return f"{WORK}/bg_depth_full/bg_{i:04d}.png"

    def sample_rels(self, k: int) -> SampleFiles:
        return SampleFiles(f"fg_bg/img_{k:08d}.{self.ext}", f"mask/img_{k:08d}.png",
                           f"depth/img_{k:08d}.png")


def _split_ids(n: int, fraction: float, seed: int, purpose: int) -> np.ndarray:
    """Boolean ``n``: which ids are held out for test (``round(n * fraction)``, >= 1 and
    <= n - 1 when ``fraction > 0`` and ``n >= 2``), drawn from the seed."""
    n_test = int(round(n * fraction))
    if fraction > 0 and n >= 2:
        n_test = min(max(n_test, 1), n - 1)
    else:
        n_test = 0
    gen = torch.Generator().manual_seed(derive_seed(seed, purpose))
    perm = torch.randperm(n, generator=gen).numpy()
    test = np.zeros(n, dtype=bool)
    test[perm[:n_test]] = True
    return test


def pair_sequence(bgs: np.ndarray, fgs: np.ndarray, n: int, seed: int,
                  stream: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` (background, camel) pairs, in runs of one background.

    Rounds visit every background once (in a seeded order), each for a run of
    ``L = min(#camels, ceil(n / #backgrounds))`` camels taken from that background's own
    seeded camel order, continuing where its previous run stopped. So every background is
    used, every pair is used once before any repeats, and consecutive samples share a
    background (a worker decodes it once per run).
    """
    nb, nf = len(bgs), len(fgs)
    run = int(min(nf, max(1, -(-n // nb))))
    gen = torch.Generator().manual_seed(derive_seed(seed, _P_PAIRS, stream))
    fg_order = torch.argsort(torch.rand(nb, nf, generator=gen), dim=1).numpy()
    out_b, out_f, have, r = [], [], 0, 0
    while have < n:
        b = torch.randperm(nb, generator=gen).numpy().repeat(run)
        f = fg_order[b, (r * run + np.tile(np.arange(run), nb)) % nf]
        out_b.append(bgs[b])
        out_f.append(fgs[f])
        have += len(b)
        r += 1
    return np.concatenate(out_b)[:n], np.concatenate(out_f)[:n]


def _assign_samples(n: int, bg_test: np.ndarray, fg_test: np.ndarray, fraction: float,
                    seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per sample: background id, camel id, is-test. Test samples are spread evenly
    (every 1/fraction-th sample), and use test backgrounds and test camels only."""
    has_test = bool(bg_test.any() and fg_test.any())
    n_test = int(round(n * fraction)) if has_test else 0
    if has_test and n >= 2:
        n_test = min(max(n_test, 1), n - 1)
    k = np.arange(n)
    sample_test = ((k + 1) * n_test // max(n, 1) - k * n_test // max(n, 1)) == 1
    sample_bg = np.zeros(n, dtype=np.int64)
    sample_fg = np.zeros(n, dtype=np.int64)
    for is_test in (False, True):
        where = np.flatnonzero(sample_test == is_test)
        if len(where):
            sample_bg[where], sample_fg[where] = pair_sequence(
                np.flatnonzero(bg_test == is_test), np.flatnonzero(fg_test == is_test),
                len(where), seed, int(is_test))
    return sample_bg, sample_fg, sample_test


def _as_folders(source: Any) -> FolderSources:
    if source is None or (isinstance(source, str) and source == "procedural"):
        return FolderSources()
    if isinstance(source, FolderSources):
        return source
    if isinstance(source, Mapping):
        unknown = set(source) - {"backgrounds", "camels", "camel_masks"}
        if unknown:
            raise ValueError(f"source: unknown key(s) {sorted(unknown)}; use backgrounds, "
                             "camels, camel_masks")
        return FolderSources.of(source.get("backgrounds"), source.get("camels"),
                                source.get("camel_masks"))
    raise ValueError(f"source={source!r}: use 'procedural', a FolderSources or a dict "
                     "{'backgrounds': DIR, 'camels': DIR, 'camel_masks': DIR}")


def _check_arguments(profile: Profile, seed: int, zip_parts: int) -> None:
    if seed < 0:
        raise ValueError(f"seed={seed}: must be >= 0")
    if profile.samples < 1:
        raise ValueError(f"samples={profile.samples}: must be >= 1")
    if profile.image_format not in IMAGE_FORMATS:
        raise ValueError(f"image_format={profile.image_format!r}: choose 'jpg' or 'png'")
    if zip_parts < 0:
        raise ValueError(f"zip_parts={zip_parts}: must be >= 0")
    if zip_parts > profile.samples:
        raise ValueError(f"zip_parts={zip_parts}: more parts than the {profile.samples} samples "
                         "(a part would be empty)")


def _choose_mode(mode: str | None, profile: Profile, folders: FolderSources,
                 own_backgrounds: bool) -> str:
    """The compose mode: the seed's recipe with your own backgrounds (no camera, no depth)."""
    if mode is None:
        mode = "seed" if own_backgrounds else profile.compose_mode
    if mode not in COMPOSE_MODES:
        raise ValueError(f"mode={mode!r}: choose one of {', '.join(COMPOSE_MODES)}")
    if own_backgrounds and mode != "seed":
        raise ValueError(f"{folders.backgrounds}: your own backgrounds have no camera and no "
                         "depth, so camels cannot stand on their ground; use mode='seed' "
                         "(--mode seed)")
    return mode


def _describe(files: list[Path] | None, folder: Path | None) -> Any:
    if files is None:
        return "procedural"
    return {"folder": str(folder), "files": len(files), "fingerprint": folder_fingerprint(files)}


def _counts(plan: Plan) -> dict[str, int]:
    bg_test, fg_test, sample_test = plan.bg_test, plan.fg_test, plan.sample_test
    return {"backgrounds": plan.n_bg, "camels": plan.n_fg, "samples": int(plan.profile.samples),
            "train": int((~sample_test).sum()), "test": int(sample_test.sum()),
            "train_backgrounds": int((~bg_test).sum()), "test_backgrounds": int(bg_test.sum()),
            "train_camels": int((~fg_test).sum()), "test_camels": int(fg_test.sum())}


def _plan_meta(plan: Plan) -> dict:
    """The dataset's meta.json, unfinished (``"complete": false``)."""
    profile, folders = plan.profile, plan.folders
    own = plan.bg_files is not None or plan.fg_files is not None
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "generator": {
            "name": "evacamel", "version": __version__,
            "source": "folders" if own else "procedural",
            "backgrounds": _describe(plan.bg_files, folders.backgrounds),
            "camels": _describe(plan.fg_files, folders.camels),
            "chunk_size": plan.chunk_size,
        },
        "seed": plan.seed,
        "profile": profile.name,
        "compose_mode": plan.mode,
        "clahe": plan.clahe,
        "source_size": profile.source_size,
        "depth_size": profile.depth_size,
        "camel_size": profile.camel_size,
        "image_format": profile.image_format,
        "jpeg_quality": profile.jpeg_quality,
        "test_fraction": profile.test_fraction,
        "zip_parts": plan.zip_parts,
        "counts": _counts(plan),
        "depth": {**depth_meta(), "source": "exact" if plan.has_depth else "none"},
        "world": {"name": plan.world_name, "blend": plan.blend_name,
                  "params": world_record(plan.world)},
        "complete": False,
    }


def make_plan(profile: Profile, *, seed: int | None, source: Any, mode: str | None,
              clahe: bool, zip_parts: int, chunk_size: int | None, world: str | None = None,
              blend: str | None = None) -> Plan:
    """Check the arguments of :func:`~evacamel.dataset.write.write_dataset` and plan the dataset.

    ``world`` and ``blend`` (default: the profile's) name the world's parameters
    (:func:`evacamel.world.world_params`); ``meta.json["world"]`` records them.

    Raises:
        ValueError / FileNotFoundError: bad arguments or source folders (named).
    """
    folders = _as_folders(source)
    seed = int(profile.seed if seed is None else seed)
    _check_arguments(profile, seed, zip_parts)
    bg_files, fg_files = folders.check(profile.source_size)
    mode = _choose_mode(mode, profile, folders, bg_files is not None)
    n_bg = len(bg_files) if bg_files is not None else profile.n_backgrounds
    n_fg = len(fg_files) if fg_files is not None else profile.n_camels
    if n_bg < 1 or n_fg < 1:
        raise ValueError(f"need at least one background and one camel (got {n_bg}, {n_fg})")
    bg_test = _split_ids(n_bg, profile.test_fraction, seed, _P_SPLIT_BG)
    fg_test = _split_ids(n_fg, profile.test_fraction, seed, _P_SPLIT_FG)
    sample_bg, sample_fg, sample_test = _assign_samples(
        profile.samples, bg_test, fg_test, profile.test_fraction, seed)
    chunk_size = int(chunk_size or default_chunk_size(profile.source_size))
    world, blend = world or profile.world, blend or profile.blend
    plan = Plan(profile, seed, mode, bool(clahe), chunk_size, int(zip_parts), folders,
                bg_files, fg_files, bg_test, fg_test, sample_bg, sample_fg, sample_test,
                world_name=world, blend_name=blend, world=world_params(world, blend))
    plan.meta = _plan_meta(plan)
    return plan
