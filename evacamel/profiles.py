"""How big a run is, said in one place.

A *profile* fixes every size in the course: how many backgrounds and camels the
synthetic world makes, the image sizes on disk and at the model, the model's width,
and the training schedule. Notebooks and the CLI never hard-code a size; they ask
:func:`get_profile`.

Profiles:

``quick``
    CPU, CI and a book built on a laptop: 1,600 small samples of the classic world (128 px
    on disk, 64 px into a width-16 U-Net), 12 epochs: a few minutes of training on two
    cores (held-out mask IoU about 0.75). The book's numbers are this profile's.
``cpu``
    A real model on a laptop CPU: the wide world (rock, roads, props, photographic looks,
    harmonised and Poisson-blended camels), 4,000 samples composed both ways (``mixed``:
    standing on the terrain, or pasted anywhere as the seed and real composites are),
    masks predicted at the input's side (``output_stride=1``) with a Dice term in the
    loss; 16 epochs, about 40 minutes on two cores shared with other jobs. Mask IoU 0.87
    on procedural camels pasted on real photographs (the difference baseline: 0.83), 0.81
    on held-out scenes, 0.83 on the wide world's test, 0.91 on the classic world's
    (``python -m evacamel bench real --configs cpu``).
``full``
    A CUDA GPU (Colab or better) at the seed's sizes: 100 backgrounds x 100 camels,
    1024 px sources, 256 px model input, the exact seed U-Net (width 64). The batch of 128
    is split into micro-batches that fit the GPU (on a T4 about 64 x 2, gradients
    accumulated: :class:`evacamel.train.TrainConfig` ``accum_steps``); DataLoader workers
    come from the cores that exist (:func:`loader_workers`: 1 on Colab's 2 vCPUs). Its
    training data is rendered on the GPU as it is read (``data="render"``), not written
    to files first.

Selection: ``EVACAMEL_PROFILE`` if set, else ``full`` when CUDA is available, else
``quick``.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

__all__ = ["Profile", "PROFILES", "get_profile", "default_profile_name", "PROFILE_ENV",
           "available_cores", "loader_workers"]

PROFILE_ENV = "EVACAMEL_PROFILE"


@dataclass(frozen=True)
class Profile:
    """Every size of a run. Frozen: derive a variant with :meth:`replace`."""

    name: str
    description: str

    # -- the dataset -------------------------------------------------------------------
    n_backgrounds: int
    """Procedural desert backgrounds generated."""
    n_camels: int
    """Procedural camel sprites generated."""
    samples: int
    """Composites written in total (train + test)."""
    test_fraction: float
    """Fraction of backgrounds *and* of camels held out for the test split."""
    source_size: int
    """Side in pixels of ``bg``, ``fg_bg`` and ``mask`` files on disk (square)."""
    depth_size: int
    """Side in pixels of the stored depth maps (the seed stored 512 for 1024 sources)."""
    camel_size: int
    """Side in pixels of the square RGBA camel sprites on disk."""
    image_format: str
    """``"jpg"`` or ``"png"`` for ``bg`` and ``fg_bg`` images (targets are always PNG)."""
    jpeg_quality: int
    compose_mode: str
    """``"perspective"`` (camels stand on the terrain), ``"seed"`` (the seed's recipe: a
    large square anywhere) or ``"mixed"`` (each sample one or the other:
    :data:`evacamel.dataset.plan.COMPOSE_MODES`)."""

    # -- the model -------------------------------------------------------------------
    input_size: int
    """Model input side (6 channels: bg + fg_bg). The output side is ``input_size / output_stride``."""
    width: int
    """Base channel count of the U-Net; 64 is the seed model (5,649,664 parameters)."""

    # -- training --------------------------------------------------------------------
    epochs: int
    batch_size: int
    lr: float
    num_workers: int
    seed: int = 0
    dice_weight: float = 0.0
    """Weight of the mask's Dice loss beside BCE (:func:`evacamel.losses.dice_loss`; the
    seed had none)."""

    # -- the world (the dataset's) -----------------------------------------------------
    world: str = "classic"
    """Which procedural world: ``"classic"`` (the seed-like dunes) or ``"wide"`` (rock,
    gravel, roads, mesas, structures, photographic looks, wider camels):
    :data:`evacamel.world.WORLDS`."""
    blend: str = "paste"
    """How camels go into the scene: ``"paste"`` (the seed's hard paste) or
    ``"realistic"`` (harmonised and Poisson-blended): :data:`evacamel.world.BLENDS`."""

    output_stride: int = 2
    """Model input side over output side: 2 as in the seed (the mask comes out at half the
    input's side), or 1 (one more up-sampling block: the mask at the input's side)."""

    data: str = "files"
    """Where training data comes from: ``"files"`` (the dataset written to disk, packed
    and read back) or ``"render"`` (rendered on the training device as it is read, the
    dataset plan's splits, no files: :func:`evacamel.loading.prepare.training_data`)."""

    @property
    def output_size(self) -> int:
        """Side of the predicted mask and depth maps (input / ``output_stride``)."""
        return self.input_size // self.output_stride

    def replace(self, **changes: object) -> "Profile":
        """A copy with some fields changed, e.g. ``p.replace(epochs=1)``."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["output_size"] = self.output_size
        return d


def available_cores() -> int:
    """CPU cores this process may run on (``os.sched_getaffinity``; ``os.cpu_count`` where
    that is missing, e.g. macOS and Windows). A Colab VM has 2; a container may allow fewer
    cores than the machine has."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def loader_workers(cores: int | None = None, most: int = 8) -> int:
    """DataLoader worker processes for a GPU run: one core stays with the training process,
    the others load (at most ``most``): 1 on Colab's 2 vCPUs, 0 on one core."""
    cores = available_cores() if cores is None else cores
    return max(0, min(most, cores - 1))


_QUICK = Profile(
    name="quick",
    description="CPU / CI: 1,600 small samples, 64 px input, width-16 U-Net",
    n_backgrounds=40,
    n_camels=40,
    samples=1600,
    test_fraction=0.25,
    source_size=128,
    depth_size=128,
    camel_size=128,
    image_format="jpg",
    jpeg_quality=95,
    compose_mode="perspective",
    input_size=64,
    width=16,
    epochs=12,  # the book trains it in chapter 05: CI's whole book fits in 12 minutes
    batch_size=16,  # more steps per sample: CPU runs are step-limited
    lr=3e-3,
    num_workers=0,  # the packed cache needs no workers; all cores train
    # The classic world: the book's chapters read this profile's numbers. The wide world
    # (`python -m evacamel bench real`, same CPU minutes) would trade the classic held-out
    # IoU 0.82 -> 0.75 for real photographs 0.29 -> 0.57: the cpu and full profiles take it.
    world="classic",
    blend="paste",
)

PROFILES: dict[str, Profile] = {
    "quick": _QUICK,
    # the quick sizes with more data and a schedule for a model worth keeping
    "cpu": _QUICK.replace(
        name="cpu",
        description="laptop CPU: 4,000 samples of the wide world, masks at 64 px; about 40 min on 2 busy cores",
        n_backgrounds=60,
        n_camels=60,
        samples=4000,
        test_fraction=0.2,
        epochs=16,
        # For real photographs (`python -m evacamel bench real`, mask IoU, the difference
        # baseline in brackets; on photographs / held-out scenes / wide test / classic test):
        #   cpu-wide (perspective only, masks at 32 px)   0.70 (0.76) 0.73 0.76 0.82
        #   cpu-mixed (+ half the samples pasted anywhere) 0.84 (0.77) 0.77 0.80 0.86
        #   cpu (+ masks at 64 px, Dice weight 10)         0.87 (0.83) 0.81 0.83 0.91
        world="wide",
        blend="realistic",
        compose_mode="mixed",
        output_stride=1,
        dice_weight=10.0,
    ),
    "full": Profile(
        name="full",
        description="CUDA GPU at the seed's sizes: 100 x 100, 1024 px sources, 256 px input, seed U-Net",
        n_backgrounds=100,
        n_camels=100,
        samples=40_000,
        test_fraction=0.2,
        source_size=1024,
        depth_size=512,
        camel_size=512,
        image_format="jpg",
        jpeg_quality=90,
        compose_mode="perspective",
        input_size=256,
        width=64,
        epochs=20,
        batch_size=128,
        lr=2e-3,
        world="wide",  # models meant for real photographs train on the wide world
        blend="realistic",
        num_workers=loader_workers(),  # from the cores that exist (Colab: 2 vCPUs -> 1)
        # rendered on the GPU as training reads it: 40,000 files at 1024 px would take
        # ~8 minutes per Colab session to write and ~18 GB of RAM to cache
        data="render",
    ),
}


def default_profile_name() -> str:
    """``$EVACAMEL_PROFILE`` if set, else ``"full"`` with CUDA, else ``"quick"``."""
    name = os.environ.get(PROFILE_ENV, "").strip()
    if name:
        return name
    try:
        # Imported here: this leaf module stays cheap to import (commands read their
        # options before torch is loaded), and a named profile never needs torch.
        import torch

        if torch.cuda.is_available():
            return "full"
    except ImportError:  # pragma: no cover - torch is a hard dependency
        pass
    return "quick"


def get_profile(name: str | Profile | None = None) -> Profile:
    """The profile called ``name`` (default: :func:`default_profile_name`).

    Raises:
        KeyError: the name is not one of :data:`PROFILES`; the message lists them.
    """
    if isinstance(name, Profile):
        return name
    name = name or default_profile_name()
    try:
        return PROFILES[name]
    except KeyError:
        raise KeyError(
            f"unknown profile {name!r} (from {PROFILE_ENV} or the caller); "
            f"choose one of: {', '.join(PROFILES)}"
        ) from None
