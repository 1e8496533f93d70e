"""An offline stand-in for real photographs: what a network trained on the world never saw.

The course's real test set (real camels pasted on real desert photographs) is not
shipped. :func:`write_proxy` writes, offline and deterministically, two datasets that
measure the same kind of gap::

    out/photos/        real photographs scikit-image ships in its wheel (no download)
    out/photo_pairs/   procedural camels pasted on those photographs (the seed's recipe:
                       random place and size; half of them colour-harmonised, some
                       Poisson-blended), exact masks
    out/held_out/      the wide world's scenes that all have scrub (``world="held-out"``),
                       a family of scenes the training world never draws

Both use camels of their own seed (never a training camel). The photographs have no
depth: ``photo_pairs``' depth files hold the sky's ``FAR_M`` everywhere (so the folder
loads like any dataset), and only its mask scores mean something. Limits: the photos
are not deserts (a cat, coffee, a rocket, gravel, grass, brick ...), the camels are
still procedural, and the pasting is the seed's recipe, so a good proxy score is
necessary, not sufficient, for real photographs.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from evacamel.dataset.atomic import atomic_write
from evacamel.dataset.codec import encode_depth
from evacamel.dataset.format import read_index, read_meta, resolve_in_dataset
from evacamel.dataset.write import write_dataset
from evacamel.depth_units import FAR_M
from evacamel.profiles import Profile, get_profile

__all__ = ["PROXY_PHOTOS", "PROXY_PARTS", "PROXY_SEED", "proxy_profile", "write_proxy_photos",
           "write_proxy"]

PROXY_PHOTOS = ("astronaut", "brick", "camera", "chelsea", "coffee", "grass", "gravel", "moon",
                "rocket")
"""The photographs of ``skimage.data`` used as backgrounds: files inside scikit-image's
wheel (its loaders read them without a download); greyscale ones are made RGB."""

PROXY_PARTS = {"real photographs": "photo_pairs", "held-out scenes": "held_out"}
"""Each part's name (as tables print it) -> its dataset folder under the proxy folder."""

PROXY_SEED = 7_000_003
"""The proxy's dataset seed: its camels and scenes are never a training profile's (seed 0)."""


def proxy_profile(profile: Profile | str | None = "quick", samples: int = 360) -> Profile:
    """The proxy's sizes: the profile's image sizes, 40 camels, ``samples`` per part, and
    no test fraction (nothing here is for training: evaluate the split ``"all"``)."""
    p = get_profile(profile)
    return p.replace(name="proxy", samples=int(samples), n_camels=40, n_backgrounds=40,
                     test_fraction=0.0)  # one name: profiles with the same image sizes share it


def write_proxy_photos(folder: str | os.PathLike) -> list[Path]:
    """Write :data:`PROXY_PHOTOS` as RGB PNGs into ``folder`` (those missing); their paths."""
    # Imported here: scikit-image's data module is only needed to build the proxy.
    import skimage.data

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in PROXY_PHOTOS:
        path = folder / f"{name}.png"
        if not path.is_file():
            pixels = np.asarray(getattr(skimage.data, name)())
            if pixels.ndim == 2:
                pixels = np.repeat(pixels[..., None], 3, axis=2)
            atomic_write(path, _png(pixels[..., :3].astype(np.uint8)))
        paths.append(path)
    return paths


def _png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def _far_depth_files(root: Path) -> None:
    """Depth files of the sky's ``FAR_M`` for a dataset made on photographs (which have no
    depth), so the folder loads like any dataset; its depth scores mean nothing."""
    size = int(read_meta(root)["depth_size"])
    data = encode_depth(torch.full((1, size, size), FAR_M))
    for k, row in enumerate(read_index(root)):
        path = resolve_in_dataset(root, row["depth_map_paths"], row=k, column="depth_map_paths")
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, data)


def write_proxy(out: str | os.PathLike, profile: Profile | str | None = "quick", *,
                samples: int = 360, workers: int | None = None,
                progress: bool = False) -> dict[str, Path]:
    """Write (or finish) the proxy under ``out``; see the module doc. Deterministic.

    Args:
        profile: whose image sizes (``source_size``, ``camel_size``): the model's data's.
        samples: samples in each part.

    Returns:
        :data:`PROXY_PARTS`' names -> their dataset folders (evaluate the split ``"all"``).
    """
    out = Path(out)
    p = proxy_profile(profile, samples)
    write_proxy_photos(out / "photos")
    common = dict(seed=PROXY_SEED, workers=workers, progress=progress, blend="realistic")
    photos = write_dataset(out / PROXY_PARTS["real photographs"], p,
                           source={"backgrounds": out / "photos"}, mode="seed", world="wide",
                           **common)
    _far_depth_files(photos)
    held_out = write_dataset(out / PROXY_PARTS["held-out scenes"], p, world="held-out",
                             mode="perspective", **common)
    return {"real photographs": photos, "held-out scenes": held_out}
