"""Training data rendered where the model trains: no files, the dataset plan's held-out split.

On a GPU the procedural world renders faster than files can be read (``evacamel bench
render`` prints both rates). :func:`rendered_training_data` renders a profile's training
and test samples on a device, at the training size, into memory and returns the
:class:`~evacamel.loading.prepare.TrainData` the Trainer takes::

    data = rendered_training_data("full", train_samples=8000, test_samples=1000, device="cuda")
    Trainer(TrainConfig.from_profile("full"), data).fit()

The split is the on-disk dataset's: :func:`plan_seeds` asks the dataset plan
(:func:`evacamel.dataset.plan.make_plan`, no pixels) which backgrounds and camels are held
out, and their world seeds (the ones the dataset writer renders). Training samples pair
training backgrounds with training camels only, test samples test with test, so no test
background or camel is ever seen in training. Placements are drawn from the given seed
(a different sequence for each split), so the same seed gives the same samples.

What differs from the files: samples are composed at the training size (the files at the
source size, then area-resized), without the writer's CLAHE, and the test placements are
not the files' (same backgrounds and camels, other positions). The on-disk dataset stays
the seed-compatible format, the way to use one's own photos, and the CPU profiles' data.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

from evacamel.dataset.plan import P_BG_SEED, P_FG_SEED, derive_seed, make_plan
from evacamel.loading.prepare import TrainData, make_transforms
from evacamel.loading.stats import compute_stats
from evacamel.loading.stream import SyntheticStream, stream_seed
from evacamel.profiles import Profile, get_profile

__all__ = ["SplitSeeds", "plan_seeds", "TensorBatches", "render_split", "rendered_training_data"]


@dataclass(frozen=True)
class SplitSeeds:
    """World seeds of one split's backgrounds and camels (the dataset plan's)."""

    backgrounds: list[int]
    camels: list[int]


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
    return {s: SplitSeeds(world_seeds(P_BG_SEED, bg_ids[s]), world_seeds(P_FG_SEED, fg_ids[s]))
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


def rendered_training_data(profile: Profile | str | None = None, *, train_samples: int,
                           test_samples: int, seed: int | None = None, augment: str = "auto",
                           device: torch.device | str | None = None, pool: int = 128) -> TrainData:
    """The profile's training and test splits rendered on ``device`` (see the module doc),
    normalised by the rendered training split's statistics.

    Args:
        train_samples, test_samples: how many of each (kept in RAM: 6 S^2 + 3 (S/2)^2 bytes
            each, 0.44 MB at 256 px).
        seed: the dataset plan's seed (default the profile's); the placements of the two
            splits come from it too.
        augment: as :func:`~evacamel.loading.prepare.training_data`.
        pool: at most this many backgrounds and camels of each split are rendered (the
            full profile's 80 + 20 of each fit in the default).
    """
    p = get_profile(profile)
    device = torch.device(device if device is not None else
                          "cuda" if torch.cuda.is_available() else "cpu")
    base = p.seed if seed is None else int(seed)
    seeds = plan_seeds(p, base)
    train = render_split(p, seeds["train"], train_samples, seed=stream_seed(base, "placements", 1),
                         device=device, pool=pool)
    test = render_split(p, seeds["test"], test_samples, seed=stream_seed(base, "placements", 2),
                        device=device, pool=pool)
    stats = compute_stats((train[list(range(i, min(i + 256, len(train))))]
                           for i in range(0, len(train), 256)), input_size=p.input_size,
                          progress=False)
    train_tf, eval_tf, mean, std = make_transforms(stats, augment, device)
    return TrainData(train_set=train, test_set=test, train_transform=train_tf,
                     eval_transform=eval_tf, mean=mean, std=std, collate_fn=_as_batch)


def _as_batch(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The DataLoader's collate for :class:`TensorBatches` (it already gives a batch)."""
    return batch
