"""The procedural desert world: backgrounds with exact depth, camels, compositing.

* :func:`render_backgrounds` - seeded desert photographs (dunes, sky, sun, haze) with
  metric depth along each pixel's ray, batched, CPU or GPU.
* :func:`render_camels` - seeded camels (dromedary / bactrian, four poses) as RGBA sprites.
* :func:`sprite_from_cutout` - a student's own RGBA cut-out as a sprite.
* :func:`sample_placements` and :func:`compose` - camels pasted on backgrounds with exact
  masks and depth.
* :func:`clahe` - the seed's brightness equalisation.
* :class:`WorldParams` - the wider world's distributions, each part switchable off:
  :class:`SceneParams` (grounds, landforms, roads, props, skies), :class:`LookParams`
  (photographic looks), :class:`CamelParams` (coats, light), :class:`BlendParams`
  (harmonisation, Poisson blending).

Pixels only: nothing here reads or writes files. The world imports only itself and the
leaves (:mod:`evacamel.depth_units`).
"""

from evacamel.world.background import Backgrounds, render_backgrounds, sample_camera
from evacamel.world.blend import BlendParams
from evacamel.world.camel import CamelParams, CamelSprite, render_camels, sprite_from_cutout
from evacamel.world.camera import Camera
from evacamel.world.compose import Composite, Placement, compose, sample_placements
from evacamel.world.enhance import clahe
from evacamel.world.looks import Look, LookParams, apply_looks
from evacamel.world.params import BLENDS, WORLDS, WorldParams, world_params
from evacamel.world.scene import SceneParams

__all__ = [
    "Backgrounds", "render_backgrounds", "sample_camera", "Camera",
    "CamelSprite", "render_camels", "sprite_from_cutout",
    "Placement", "Composite", "sample_placements", "compose", "clahe",
    "WorldParams", "WORLDS", "BLENDS", "world_params", "SceneParams", "LookParams", "Look", "apply_looks", "CamelParams", "BlendParams",
]
