"""Seeded randomness of the world: one generator per (scene seed, purpose).

Every random choice of a scene or a camel is drawn from a generator seeded by the
scene's own seed and a *salt* naming what it draws (camera, terrain, sky, sand ...),
so a scene never depends on which other scenes are rendered with it, and adding a new
kind of draw (a new salt) never changes the draws that exist.
"""

from __future__ import annotations

import numpy as np

__all__ = ["scene_rng"]


def scene_rng(seed: int, salt: int) -> np.random.Generator:
    """The numpy generator of scene ``seed`` for the draws named by ``salt`` (64-bit seeds)."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(seed) >> 32 & 0xFFFFFFFF, salt])
