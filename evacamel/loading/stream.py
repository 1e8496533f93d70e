"""An unlimited stream of synthetic training batches, made in memory (no disk at all).

Rendering a desert background or a camel is the expensive part (about 0.1 s for a 128 px
background on one core); pasting a camel is cheap. So the stream renders a *pool* of
backgrounds and camels once (on the device) and composes every batch afresh: random
(background, camel) pairs from the pool, fresh placements (distance, position, flip) from
:func:`evacamel.world.compose.sample_placements`, then the batched compositor
(:func:`~evacamel.world.compose_batch.compose_batched`: the whole batch in a few tensor ops,
no Poisson blending) and the same resizing as the files (:func:`evacamel.loading.batch.make_batch`). With
``refresh_every=k``, one background and one camel of the pool are replaced by newly
rendered ones every ``k`` batches, so over a long run the world never repeats.

The stream's world seeds come from their own seed sequence (``(seed, "stream", kind,
i)``), so they do not coincide with the backgrounds and camels of a written dataset, in
particular not with its test split (a collision would need two 31-bit seeds to match).

Batches are in the loader format (``ARCHITECTURE.md``) on the stream's device::

    {"image": uint8 B x 6 x S x S, "mask": uint8 B x 1 x s x s, "depth": uint16 B x 1 x s x s}
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import dataclasses

import numpy as np
import torch

from evacamel.loading.batch import make_batch
from evacamel.profiles import Profile, get_profile
from evacamel.world import Backgrounds, render_backgrounds, render_camels, world_params
from evacamel.world.compose import MODES, Placement, sample_placements
from evacamel.world.compose_batch import compose_batched

__all__ = ["SyntheticStream", "stream_seed"]

_STREAM_KEY = 0x57_4E_A4  # "stream"
_KINDS = {"background": 1, "camel": 2, "placements": 3, "sample": 4}


def stream_seed(seed: int, kind: str, i: int) -> int:
    """The world seed of the stream's ``i``-th background or camel (31-bit)."""
    state = np.random.SeedSequence([int(seed), _STREAM_KEY, _KINDS[kind], int(i)])
    return int(state.generate_state(1, np.uint32)[0]) & (2**31 - 1)


class SyntheticStream:
    """Unlimited, seeded batches composed from a pool of rendered backgrounds and camels.

    Args:
        profile: sizes and defaults (``input_size``, ``batch_size``, ``compose_mode``).
        batch_size: default ``profile.batch_size``.
        seed: the same seed gives the same batches (on the same device).
        device: where rendering, compositing and the batches live (``"cuda"`` for GPU).
        pool_backgrounds, pool_camels: pool sizes (default ``min(32, profile.n_*)``).
        render_size: side at which backgrounds are rendered and composed (default
            ``profile.input_size``; larger gives area-filtered inputs like the files',
            at a higher cost for placement).
        mode: ``"perspective"`` or ``"seed"`` (default ``profile.compose_mode``; a
            ``"mixed"`` profile is refused: its datasets are files).
        refresh_every: replace one background and one camel every this many batches
            (0: never).
        max_batches: stop after this many batches (default: never).
        background_seeds, camel_seeds: the world seeds to render, in order (default: the
            stream's own, :func:`stream_seed`); e.g. a dataset plan's training split
            (:mod:`evacamel.loading.render`). The pool takes the first ones; refreshing
            cycles through the rest.

    Iterating yields batch dicts; ``len()`` is ``max_batches`` when given.
    """

    def __init__(self, profile: Profile | str | None = None, *, batch_size: int | None = None,
                 seed: int = 0, device: torch.device | str | None = None,
                 pool_backgrounds: int | None = None, pool_camels: int | None = None,
                 render_size: int | None = None, mode: str | None = None,
                 refresh_every: int = 0, max_batches: int | None = None,
                 background_seeds: Sequence[int] | None = None,
                 camel_seeds: Sequence[int] | None = None):
        self.profile = get_profile(profile)
        p = self.profile
        self.batch_size = int(batch_size or p.batch_size)
        self.seed = int(seed)
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.background_seeds = None if background_seeds is None else [int(s) for s in background_seeds]
        self.camel_seeds = None if camel_seeds is None else [int(s) for s in camel_seeds]
        n_bg = len(self.background_seeds) if self.background_seeds is not None else p.n_backgrounds
        n_fg = len(self.camel_seeds) if self.camel_seeds is not None else p.n_camels
        self.n_bg = int(pool_backgrounds or min(32, n_bg))
        self.n_fg = int(pool_camels or min(32, n_fg))
        self.render_size = int(render_size or p.input_size)
        self.camel_size = max(32, p.camel_size * self.render_size // p.source_size)
        self.mode = mode or p.compose_mode
        if self.mode not in MODES:
            raise ValueError(f"compose mode {self.mode!r}: the rendered path composes "
                             f"{' or '.join(MODES)}; a {self.mode!r} dataset is written as files "
                             "(evacamel make-dataset)")
        world = world_params(p.world, p.blend)
        self.scene, self.look, self.coat = world.scene, world.look, world.camel
        # Poisson blending (OpenCV, one sample at a time on the CPU) is the files' option:
        # rendered batches take the batched harmonised paste
        self.blend = None if world.blend is None else dataclasses.replace(world.blend, poisson=0.0)
        self.refresh_every = int(refresh_every)
        self.max_batches = max_batches
        if self.n_bg < 1 or self.n_fg < 1:
            raise ValueError("the stream needs at least one background and one camel in its pool")
        self._backgrounds = None
        self._camels: list = []
        self._next_bg = self._next_fg = 0

    def __len__(self) -> int:
        if self.max_batches is None:
            raise TypeError("an unlimited SyntheticStream has no length (pass max_batches=)")
        return int(self.max_batches)

    def _seed(self, kind: str, i: int) -> int:
        """The world seed of the ``i``-th background or camel this stream renders."""
        given = self.background_seeds if kind == "background" else self.camel_seeds
        return given[i % len(given)] if given else stream_seed(self.seed, kind, i)

    def _render_pool(self) -> None:
        bg_seeds = [self._seed("background", i) for i in range(self.n_bg)]
        fg_seeds = [self._seed("camel", j) for j in range(self.n_fg)]
        self._backgrounds = self._render_backgrounds(bg_seeds)
        self._camels = render_camels(fg_seeds, self.camel_size, device=self.device, coat=self.coat)
        self._depth_cpu = self._backgrounds.depth.cpu()  # placements are drawn on the CPU
        self._next_bg, self._next_fg = self.n_bg, self.n_fg

    def _render_backgrounds(self, seeds: list[int]):
        return render_backgrounds(seeds, self.render_size, device=self.device, scene=self.scene,
                                  look=self.look)

    def pool(self) -> tuple[int, int]:
        """``(backgrounds, camels)`` in the pool, rendering it first if needed."""
        if self._backgrounds is None:
            self._render_pool()
        return self.n_bg, self.n_fg

    def _refresh(self, batch_index: int) -> None:
        """Replace the oldest background and camel of the pool by fresh ones."""
        slot_bg, slot_fg = self._next_bg % self.n_bg, self._next_fg % self.n_fg
        new_bg = self._render_backgrounds([self._seed("background", self._next_bg)])
        bgs = self._backgrounds
        bgs.rgb[slot_bg] = new_bg.rgb[0]
        bgs.depth[slot_bg] = new_bg.depth[0]
        self._depth_cpu[slot_bg] = new_bg.depth[0].cpu()
        bgs.cameras[slot_bg] = new_bg.cameras[0]
        bgs.seeds[slot_bg] = new_bg.seeds[0]
        if bgs.looks is not None:
            bgs.looks[slot_bg] = new_bg.looks[0]
        self._camels[slot_fg] = render_camels([self._seed("camel", self._next_fg)], self.camel_size,
                                              device=self.device, coat=self.coat)[0]
        self._next_bg += 1
        self._next_fg += 1

    def compose_batch(self, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """One batch composed from the pool, drawing pairs and placements from
        ``generator`` (CPU); in the batch format (see the module doc)."""
        self.pool()
        bi = torch.randint(0, self.n_bg, (self.batch_size,), generator=generator).tolist()
        fi = torch.randint(0, self.n_fg, (self.batch_size,), generator=generator).tolist()
        placements = sample_placements(self._backgrounds[bi], [self._camels[j] for j in fi],
                                       mode=self.mode, generator=generator, blend=self.blend)
        return self.compose_pairs(bi, fi, placements)

    def draw_sample(self, generator: torch.Generator) -> tuple[int, int, Placement]:
        """``(background, camel, placement)``: one pair of the pool and its placement, drawn
        from ``generator`` (CPU) alone."""
        self.pool()
        b = int(torch.randint(0, self.n_bg, (1,), generator=generator))
        f = int(torch.randint(0, self.n_fg, (1,), generator=generator))
        bgs = self._backgrounds
        # views, no copy; the depth's CPU copy: no device-to-host copy (a GPU sync) per sample
        one = Backgrounds(bgs.rgb[b:b + 1], self._depth_cpu[b:b + 1], [bgs.cameras[b]],
                          [bgs.seeds[b]], looks=None if bgs.looks is None else [bgs.looks[b]])
        pl = sample_placements(one, [self._camels[f]], mode=self.mode, generator=generator,
                               blend=self.blend)[0]
        return b, f, pl

    def pairs(self, backgrounds: Sequence[int], camels: Sequence[int]) -> tuple[Backgrounds, list]:
        """The pool's ``backgrounds`` (a :class:`~evacamel.world.Backgrounds` batch) and
        ``camels`` (a list of sprites), by index."""
        self.pool()
        return self._backgrounds[list(backgrounds)], [self._camels[j] for j in camels]

    def compose_pairs(self, backgrounds: Sequence[int], camels: Sequence[int],
                      placements: Sequence[Placement]) -> dict[str, torch.Tensor]:
        """The pool's ``backgrounds[i]`` with its ``camels[i]`` at ``placements[i]``, composed
        and resized: a batch in the batch format (see the module doc), on the device."""
        bgs, sprites = self.pairs(backgrounds, camels)
        comp = compose_batched(bgs, sprites, placements, mode=self.mode)
        p = self.profile
        return make_batch(bgs.rgb, comp.fg_bg, comp.mask, comp.depth, p.input_size, p.output_size)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        generator = torch.Generator().manual_seed(stream_seed(self.seed, "placements", 0))
        if self._backgrounds is None or self._next_bg != self.n_bg:
            self._render_pool()  # every iteration starts from the same pool: reproducible
        k = 0
        while self.max_batches is None or k < self.max_batches:
            if self.refresh_every and k and k % self.refresh_every == 0:
                self._refresh(k)
            yield self.compose_batch(generator)
            k += 1
