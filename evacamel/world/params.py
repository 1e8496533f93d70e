"""All of the world's knobs in one value: what a profile picks.

``WorldParams()`` is the wider world (scene kinds, photographic looks, wider camels,
harmonised and Poisson compositing); ``WorldParams.classic()`` switches everything off
and renders exactly what the world rendered before these existed (the seed-compatible
look). Each part is passed to the function that uses it::

    w = WorldParams()
    bgs = render_backgrounds(seeds, size, scene=w.scene, look=w.look)
    camels = render_camels(seeds, size, coat=w.camel)
    placements = sample_placements(bgs, camels, generator=g, blend=w.blend)
    comp = compose(bgs, camels, placements)
"""

from __future__ import annotations

from dataclasses import dataclass

from evacamel.world.blend import BlendParams
from evacamel.world.camel import CamelParams
from evacamel.world.looks import LookParams
from evacamel.world.scene import SceneParams

__all__ = ["WorldParams"]


@dataclass(frozen=True)
class WorldParams:
    """The world's distributions; ``None`` turns a part off (the classic behaviour)."""

    scene: SceneParams | None = SceneParams()
    look: LookParams | None = LookParams()
    camel: CamelParams | None = CamelParams()
    blend: BlendParams | None = BlendParams()

    @classmethod
    def classic(cls) -> "WorldParams":
        """Everything off: the classic dunes, no looks, classic camels, the seed's hard paste."""
        return cls(scene=None, look=None, camel=None, blend=None)
