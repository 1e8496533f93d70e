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

import dataclasses
import json
from dataclasses import dataclass

from evacamel.world.blend import BlendParams
from evacamel.world.camel import CamelParams
from evacamel.world.looks import LookParams
from evacamel.world.scene import SceneParams

__all__ = ["WorldParams", "WORLDS", "BLENDS", "TRAINING_SCENES", "HELD_OUT_SCENES", "world_params",
           "world_record", "world_from_record"]


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


WORLDS = ("classic", "wide", "held-out")
"""The worlds a profile or ``make-dataset --world`` names: ``classic`` (the seed-like dunes,
no looks, classic camels), ``wide`` (:data:`TRAINING_SCENES`, every photographic look,
the wider camels) and ``held-out`` (the wide world's looks and camels in
:data:`HELD_OUT_SCENES`: a family never trained on, for measuring only)."""

BLENDS = ("paste", "realistic")
"""How camels go into the scene: ``paste`` (the seed's hard alpha paste) or ``realistic``
(each sample harmonised and Poisson-blended as :class:`BlendParams` draws)."""

TRAINING_SCENES = SceneParams(scrub=0.0)
"""The wide world's scenes: every kind of :class:`SceneParams` except scrub, held out of
training so that a family the network never saw can be measured (``evacamel proxy``)."""

HELD_OUT_SCENES = SceneParams(scrub=1.0)
"""The held-out family: wide scenes that all have scrub (bushes), never in training."""


def world_params(world: str = "classic", blend: str = "paste") -> WorldParams:
    """The :class:`WorldParams` a world's and a blend's names stand for (:data:`WORLDS`,
    :data:`BLENDS`); ``world_params("classic", "paste")`` is :meth:`WorldParams.classic`.

    Raises:
        ValueError: an unknown name (the message lists the known ones).
    """
    if world not in WORLDS:
        raise ValueError(f"world {world!r}: choose one of {', '.join(WORLDS)}")
    if blend not in BLENDS:
        raise ValueError(f"blend {blend!r}: choose one of {', '.join(BLENDS)}")
    scenes = {"classic": None, "wide": TRAINING_SCENES, "held-out": HELD_OUT_SCENES}[world]
    base = WorldParams.classic() if scenes is None else WorldParams(scene=scenes)
    return dataclasses.replace(base, blend=BlendParams() if blend == "realistic" else None)


def world_record(params: WorldParams) -> dict:
    """``params`` as plain JSON values (what ``meta.json`` records)."""
    return json.loads(json.dumps(dataclasses.asdict(params)))


def world_from_record(record: dict) -> WorldParams:
    """The inverse of :func:`world_record` (lists back to tuples)."""
    kinds = {"scene": SceneParams, "look": LookParams, "camel": CamelParams, "blend": BlendParams}
    parts = {}
    for name, kind in kinds.items():
        value = record.get(name)
        parts[name] = None if value is None else kind(**{
            k: tuple(v) if isinstance(v, list) else v for k, v in value.items()})
    return WorldParams(**parts)
