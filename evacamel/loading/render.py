"""Training data rendered where the model trains: no files, the dataset plan's held-out split.

On a GPU the procedural world renders faster than files can be read (``evacamel bench
render`` prints both rates). :func:`rendered_training_data` gives a profile's training and
test splits as :class:`RenderedSplit` datasets: the split's backgrounds and camels are
rendered once on the device (the *pool*), and every sample is composed when it is read,
a whole batch at a time. It returns the :class:`~evacamel.loading.traindata.TrainData` the
Trainer takes; :func:`evacamel.loading.prepare.training_data` calls it for a profile whose
``data`` is ``"render"`` (the full profile)::

    data = training_data("full")                 # on a GPU: renders, writes nothing
    Trainer(TrainConfig.from_profile("full"), data).fit()

Sample ``i`` of a split is a function of ``(seed, i)`` alone: its background, camel and
placement are drawn from a generator seeded by them. So a :class:`RenderedSplit` behaves
like a dataset of files (a fixed length, any order, any batch split, several processes,
an exact resume) while holding only its pool in memory. For the full profile (32,000
training samples at 256 px, 0.44 MB each, ~14 GB: more than a Colab session's 12 GB of
RAM) the pool is 80 backgrounds and 80 camels: about 0.1 GB on the GPU (1.25 MB a
background with its camel), and composing a batch needs about 9 MB a sample while it lasts
(measured on the CPU at 256 px with the wide world's looks: 0.6 GB at a micro-batch of 64).

The split is the on-disk dataset's: :func:`plan_seeds` asks the dataset plan
(:func:`evacamel.dataset.plan.make_plan`, no pixels) which backgrounds and camels are held
out, their world seeds (the ones the dataset writer renders) and how many samples each
split has. Training samples pair training backgrounds with training camels only, test
samples test with test, so no test background or camel is ever seen in training.

What differs from the files: samples are composed at the training size (the files at the
source size, then area-resized), without the writer's CLAHE, without Poisson blending
(OpenCV, one sample at a time on the CPU: a files-only option; rendered samples get the
harmonised paste), and the test placements are not the files' (same backgrounds and
camels, other positions). The on-disk dataset stays the seed-compatible format, the way to
use one's own photos, and the CPU profiles' data.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

from evacamel.dataset.plan import P_BG_SEED, P_FG_SEED, derive_seed, make_plan
from evacamel.loading.stats import compute_stats
from evacamel.loading.stream import SyntheticStream, stream_seed
from evacamel.loading.traindata import TrainData, make_transforms
from evacamel.profiles import Profile, get_profile

__all__ = ["SplitSeeds", "plan_seeds", "TensorBatches", "RenderedSplit", "render_split",
           "rendered_split_of", "rendered_training_data", "loader_options"]

_SPLIT_KEYS = {"train": 1, "test": 2}

STATS_SAMPLES = 2048
"""Rendered training samples the input normalisation is measured on."""


@dataclass(frozen=True)
class SplitSeeds:
    """World seeds of one split's backgrounds and camels, and its sample count (the
    dataset plan's)."""

    backgrounds: list[int]
    camels: list[int]
    samples: int = 0


def plan_seeds(profile: Profile | str | None = None, seed: int | None = None) -> dict[str, SplitSeeds]:
    """``{"train": ..., "test": ...}``: which backgrounds and camels each split of the
    profile's procedural dataset uses, as world seeds (what the dataset writer renders)."""
    p = get_profile(profile)
    plan = make_plan(p, seed=seed, source=None, mode=None, clahe=False, zip_parts=0,
                     chunk_size=None)

    def world_seeds(purpose: int, ids) -> list[int]:
        return [derive_seed(plan.seed, purpose, int(i)) % 2**31 for i in ids]

    bg_ids = {s: [i for i, t in enumerate(plan.bg_test) if bool(t) == (s == "test")] for s in ("train", "test")}
    fg_ids = {s: [j for j, t in enumerate(plan.fg_test) if bool(t) == (s == "test")] for s in ("train", "test")}
    n_test = int(plan.sample_test.sum())
    counts = {"train": len(plan.sample_test) - n_test, "test": n_test}
    return {s: SplitSeeds(world_seeds(P_BG_SEED, bg_ids[s]), world_seeds(P_FG_SEED, fg_ids[s]), counts[s])
            for s in ("train", "test")}


class TensorBatches(Dataset):
    """Samples held in memory as batch-format tensors (``image`` uint8 N x 6 x S x S,
    ``mask`` uint8 and ``depth`` uint16 N x 1 x s x s); a list of indices gives a batch
    dict at once (``__getitems__``: one gather, no per-sample collate)."""

    def __init__(self, image: torch.Tensor, mask: torch.Tensor, depth: torch.Tensor) -> None:
        if not image.shape[0] == mask.shape[0] == depth.shape[0]:
            raise ValueError("image, mask and depth need the same number of samples")
        self.image, self.mask, self.depth = image, mask, depth

    def __len__(self) -> int:
        return int(self.image.shape[0])

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"image": self.image[i], "mask": self.mask[i], "depth": self.depth[i]}

    def __getitems__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        idx = torch.as_tensor(indices, dtype=torch.long, device=self.image.device)
        return {"image": self.image[idx], "mask": self.mask[idx], "depth": self.depth[idx]}


def render_split(profile: Profile | str | None, seeds: SplitSeeds, samples: int, *, seed: int,
                 device: torch.device | str | None = None, batch_size: int = 64,
                 pool: int = 128) -> TensorBatches:
    """``samples`` samples composed from the split's backgrounds and camels (at most
    ``pool`` of each rendered; the profile's compose mode), rendered on ``device`` and
    kept on the CPU. Deterministic per ``seed`` (on one device)."""
    p = get_profile(profile)
    stream = SyntheticStream(p, batch_size=batch_size, seed=seed, device=device,
                             pool_backgrounds=min(pool, len(seeds.backgrounds)),
                             pool_camels=min(pool, len(seeds.camels)),
                             background_seeds=seeds.backgrounds, camel_seeds=seeds.camels,
                             max_batches=-(-samples // batch_size))
    parts: dict[str, list[torch.Tensor]] = {"image": [], "mask": [], "depth": []}
    for batch in stream:
        for key in parts:
            parts[key].append(batch[key].cpu())
    return TensorBatches(*(torch.cat(parts[key])[:samples] for key in ("image", "mask", "depth")))


class RenderedSplit(Dataset):
    """``samples`` samples composed from ``stream``'s pool when they are read (see the
    module doc): sample ``i`` is a function of ``(seed, i)`` and the pool alone.

    A list of indices gives a batch dict at once (``__getitems__``), in the batch format on
    the stream's device; the DataLoader that reads it takes no worker processes and pins
    no memory (the samples are made where they are used).
    """

    def __init__(self, stream: SyntheticStream, samples: int, seed: int) -> None:
        self.stream, self.samples, self.seed = stream, int(samples), int(seed)
        # (background, camel, placement) of each sample read so far: drawing a placement is
        # Python work on the CPU (~5 ms), composing is batched on the device; from the
        # second epoch on only the composing is left (~0.3 kB a sample)
        self._drawn: dict[int, tuple] = {}

    @property
    def device(self) -> torch.device:
        return self.stream.device

    def __len__(self) -> int:
        return self.samples

    def __getitems__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        drawn = [self._draw(int(i)) for i in indices]
        return self.stream.compose_pairs(*(list(column) for column in zip(*drawn)))

    def _draw(self, i: int) -> tuple:
        """Sample ``i``'s background, camel and placement (drawn once, then remembered)."""
        if i not in self._drawn:
            g = torch.Generator().manual_seed(stream_seed(self.seed, "sample", self._checked(i)))
            self._drawn[i] = self.stream.draw_sample(g)
        return self._drawn[i]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {k: v[0] for k, v in self.__getitems__([i]).items()}

    def _checked(self, i: int) -> int:
        if not 0 <= int(i) < self.samples:
            raise IndexError(f"sample {i} of a rendered split of {self.samples}")
        return int(i)


def rendered_split(profile: Profile, seeds: SplitSeeds, samples: int, *, seed: int,
                   device: torch.device, pool: int) -> RenderedSplit:
    """A :class:`RenderedSplit` of ``samples`` from the split's backgrounds and camels (at
    most ``pool`` of each, rendered on ``device`` now)."""
    stream = SyntheticStream(profile, seed=seed, device=device,
                             pool_backgrounds=min(pool, len(seeds.backgrounds)),
                             pool_camels=min(pool, len(seeds.camels)),
                             background_seeds=seeds.backgrounds, camel_seeds=seeds.camels)
    stream.pool()
    return RenderedSplit(stream, samples, seed)


def rendered_split_of(profile: Profile | str | None, split: str, *, seed: int | None = None,
                      device: torch.device | str | None = None, pool: int = 128) -> RenderedSplit:
    """The profile's ``split`` (``"train"`` or ``"test"``) as :func:`rendered_training_data`
    gives it: the plan's sources and sample count, the same samples (default device: CUDA
    if available, else the CPU)."""
    p = get_profile(profile)
    device = torch.device(device if device is not None else
                          "cuda" if torch.cuda.is_available() else "cpu")
    base = p.seed if seed is None else int(seed)
    seeds = plan_seeds(p, base)[split]
    return rendered_split(p, seeds, seeds.samples, seed=stream_seed(base, "placements", _SPLIT_KEYS[split]),
                          device=device, pool=pool)


def rendered_training_data(profile: Profile | str | None = None, *, train_samples: int | None = None,
                           test_samples: int | None = None, seed: int | None = None,
                           augment: str = "auto", device: torch.device | str | None = None,
                           pool: int = 128) -> TrainData:
    """The profile's training and test splits rendered on ``device`` as they are read (see
    the module doc), normalised by the statistics of the first rendered training samples.

    Args:
        train_samples, test_samples: how many of each (default: the dataset plan's split
            sizes, e.g. 32,000 and 8,000 for the full profile). Nothing is kept in RAM but
            the pools.
        seed: the dataset plan's seed (default the profile's); the samples of the two
            splits are drawn from it too.
        augment: as :func:`~evacamel.loading.prepare.training_data`.
        pool: at most this many backgrounds and camels of each split are rendered (the
            full profile's 80 + 20 of each fit in the default).
    """
    p = get_profile(profile)
    device = torch.device(device if device is not None else
                          "cuda" if torch.cuda.is_available() else "cpu")
    base = p.seed if seed is None else int(seed)
    seeds = plan_seeds(p, base)
    counts = {"train": train_samples, "test": test_samples}
    train, test = (rendered_split(p, seeds[s], seeds[s].samples if counts[s] is None else counts[s],
                                  seed=stream_seed(base, "placements", _SPLIT_KEYS[s]), device=device,
                                  pool=pool)
                   for s in ("train", "test"))
    n = min(len(train), STATS_SAMPLES)
    stats = compute_stats((_cpu(train.__getitems__(list(range(i, min(i + 64, n)))))
                           for i in range(0, n, 64)), input_size=p.input_size, progress=False)
    train_tf, eval_tf, mean, std = make_transforms(stats, augment, device)
    return TrainData(train_set=train, test_set=test, train_transform=train_tf,
                     eval_transform=eval_tf, mean=mean, std=std, collate_fn=_as_batch)


def loader_options(dataset: Dataset, workers: int, device: torch.device) -> tuple[int, bool]:
    """``(num_workers, pin_memory)`` for a DataLoader over ``dataset`` feeding a run on
    ``device``: a :class:`RenderedSplit` composes in the calling process (CUDA does not
    fork) and pins nothing when it composes on a GPU; other datasets take ``workers`` and
    pinned memory on CUDA."""
    if isinstance(dataset, RenderedSplit):
        return 0, device.type == "cuda" and dataset.device.type == "cpu"
    return workers, device.type == "cuda"


def _cpu(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.cpu() for k, v in batch.items()}


def _as_batch(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The DataLoader's collate for :class:`TensorBatches` and :class:`RenderedSplit`
    (they already give a batch)."""
    return batch
