"""Decoding dataset files and turning them into the batch format, once, at training size.

The loaders (folder, zip parts, packed cache, synthetic stream) all produce the batch
format of ``ARCHITECTURE.md``::

    {"image": uint8  B x 6 x S x S   (bg RGB, fg_bg RGB),
     "mask":  uint8  B x 1 x s x s   (0..255, area-resized so edges are fractional),
     "depth": uint16 B x 1 x s x s   (meters_to_target(depth) * 65535)}

This module holds the pieces they share: decoding image bytes (JPEG / PNG, 8 or 16 bit)
with ``torchvision.io``, area resizing (box filtering: no aliasing when shrinking), and
:func:`make_batch`, which resizes full-size tensors to the batch format in one step.

Depth is turned into the [0, 1] target *before* it is resized, so the area average is
taken in the target's log-depth space (a camel's edge against the sky averages to a
depth between the two in log terms, not to hundreds of meters).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F

from evacamel.depth_units import meters_to_target, png_to_meters

__all__ = [
    "resize_area",
    "float255_to_uint8",
    "make_image",
    "target_to_uint16",
    "make_batch",
    "make_sample",
    "collate_samples",
    "single_thread",
]


def resize_area(x: torch.Tensor, size: int) -> torch.Tensor:
    """Resize float ``B x C x H x W`` to ``B x C x size x size`` with area filtering.

    Shrinking averages each output pixel's footprint (exact box filter for integer
    factors: no aliasing); enlarging (rare: a source smaller than the target) is bilinear.
    Same size returns ``x`` unchanged.
    """
    h, w = x.shape[-2:]
    if (h, w) == (size, size):
        return x
    if h >= size and w >= size:
        return F.interpolate(x, size=(size, size), mode="area")
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                         antialias=True)


def float255_to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Float tensor in [0, 255] -> uint8 tensor of the same shape, rounded to nearest
    (half to even, ``torch.round``), clamped. Modifies ``x`` in place."""
    return x.round_().clamp_(0, 255).to(torch.uint8)


def target_to_uint16(target: torch.Tensor) -> torch.Tensor:
    """Depth target in [0, 1] (float) -> uint16 ``round(target * 65535)``."""
    return (target * 65535.0).round_().clamp_(0, 65535).to(torch.int32).to(torch.uint16)


def _as_float255(x: torch.Tensor) -> torch.Tensor:
    """uint8 -> float in [0, 255]; float in [0, 1] -> float in [0, 255]."""
    if x.dtype == torch.uint8:
        return x.float()
    return x.float() * 255.0


def make_image(bg: torch.Tensor, fg_bg: torch.Tensor, input_size: int) -> torch.Tensor:
    """The model's input: ``B x 3 x H x W`` bg and fg_bg (uint8 or float in [0, 1]) ->
    uint8 ``B x 6 x S x S``, each area-resized once (training data and prediction alike)."""
    return float255_to_uint8(torch.cat([resize_area(_as_float255(bg), input_size),
                               resize_area(_as_float255(fg_bg), input_size)], dim=1))


def make_batch(bg: torch.Tensor, fg_bg: torch.Tensor, mask: torch.Tensor,
               depth: torch.Tensor, input_size: int, output_size: int, *,
               depth_is_png: bool = False) -> dict[str, torch.Tensor]:
    """Full-size tensors -> the batch format, each resized once with area filtering.

    Args:
        bg, fg_bg: ``B x 3 x H x W``, uint8 (0..255) or float in [0, 1].
        mask: ``B x 1 x H x W``, uint8 (0..255) or float in [0, 1].
        depth: ``B x 1 x h x w``: float meters, or uint16 PNG values with
            ``depth_is_png=True``. Any ``h x w`` (the stored depth may be smaller).
        input_size: ``S``, side of ``image``.
        output_size: ``s``, side of ``mask`` and ``depth``.

    Returns:
        ``{"image": uint8 B x 6 x S x S, "mask": uint8 B x 1 x s x s,
        "depth": uint16 B x 1 x s x s}`` on the inputs' device.
    """
    mask_out = resize_area(_as_float255(mask), output_size)
    meters = png_to_meters(depth) if depth_is_png else depth.float()
    target = resize_area(meters_to_target(meters), output_size)
    return {"image": make_image(bg, fg_bg, input_size), "mask": float255_to_uint8(mask_out),
            "depth": target_to_uint16(target)}


def make_sample(bg: torch.Tensor, fg_bg: torch.Tensor, mask: torch.Tensor,
                depth_png: torch.Tensor, input_size: int,
                output_size: int) -> dict[str, torch.Tensor]:
    """One sample (no batch dimension) from decoded files; see :func:`make_batch`.

    Args:
        bg, fg_bg: uint8 ``3 x H x W``; mask: uint8 ``1 x H x W``;
        depth_png: uint16 ``1 x h x w`` (meters * 64).

    Returns:
        ``{"image": uint8 6 x S x S, "mask": uint8 1 x s x s, "depth": uint16 1 x s x s}``.
    """
    with single_thread():
        batch = make_batch(bg[None], fg_bg[None], mask[None], depth_png[None].to(torch.int32),
                           input_size, output_size, depth_is_png=True)
    return {k: v[0] for k, v in batch.items()}


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run torch ops on one thread, then restore the thread count.

    One sample's tensors are too small to gain from intra-op threads, and on a busy
    machine the threads' synchronisation costs far more than the work (measured: 1.4 ms
    per sample on one thread vs 74 ms on two under a load of 6 on 2 cores).
    DataLoader workers already run single-threaded; this covers ``num_workers=0``.
    """
    n = torch.get_num_threads()
    if n == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def collate_samples(samples: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Stack per-sample dicts into a batch dict (what a DataLoader's collate does)."""
    if not samples:
        raise ValueError("collate_samples: empty list of samples")
    return {key: torch.stack([s[key] for s in samples]) for key in samples[0]}
