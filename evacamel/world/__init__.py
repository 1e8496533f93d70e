"""The procedural desert world: backgrounds with exact depth, and camel sprites.

* :func:`render_backgrounds` - seeded desert photographs (dunes, sky, sun, haze) with
  metric depth along each pixel's ray, batched, CPU or GPU.
* :func:`render_camels` - seeded camels (dromedary / bactrian, four poses) as RGBA sprites.
* :func:`sprite_from_cutout` - a student's own RGBA cut-out as a sprite.
"""

from evacamel.world.background import Backgrounds, render_backgrounds, sample_camera
from evacamel.world.camera import Camera

__all__ = ["Camera", "Backgrounds", "render_backgrounds", "sample_camera"]

from evacamel.world.camel import CamelSprite, render_camels, sprite_from_cutout  # noqa: E402

__all__ += ["CamelSprite", "render_camels", "sprite_from_cutout"]
