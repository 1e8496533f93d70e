"""Tiny in-memory training data for the trainer tests (no dataset on disk, no workers).

Samples follow ARCHITECTURE.md "Batches": ``image`` uint8 6 x S x S, ``mask`` uint8
1 x s x s, ``depth`` uint16 1 x s x s. A bright square on the composite is the camel;
depth is a vertical ramp, nearer where the camel is. The train transform flips the batch
at random with torch's global generator, so resume tests check that RNG states are kept.
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from evacamel.loading.batch import collate_samples
from evacamel.loading.prepare import TrainData
from evacamel.train import TrainConfig

SIZE = 32


class FakeCamels(Dataset):
    """``n`` deterministic samples (``seed`` fixes them) at input size ``size``, targets at
    ``size / output_stride``."""

    def __init__(self, n: int, seed: int = 0, size: int = SIZE, output_stride: int = 2) -> None:
        g = torch.Generator().manual_seed(seed)
        s, r = size // output_stride, output_stride
        bg = (torch.rand(n, 3, size, size, generator=g) * 120 + 60)
        fg_bg = bg.clone()
        mask = torch.zeros(n, 1, s, s)
        ramp = torch.linspace(0.2, 0.6, s).view(1, 1, s, 1).expand(n, 1, s, s).clone()
        for i in range(n):
            y, x = (int(v) for v in torch.randint(0, s - 6, (2,), generator=g))
            k = 4 + int(torch.randint(0, 3, (1,), generator=g))
            fg_bg[i, :, r * y:r * (y + k), r * x:r * (x + k)] = 230.0
            mask[i, :, y:y + k, x:x + k] = 255.0
            ramp[i, :, y:y + k, x:x + k] = 0.8
        self.image = torch.cat([bg, fg_bg], 1).round().to(torch.uint8)
        self.mask = mask.to(torch.uint8)
        self.depth = (ramp * 65535).round().to(torch.int32).to(torch.uint16)

    def __len__(self) -> int:
        return self.image.shape[0]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"image": self.image[i], "mask": self.mask[i], "depth": self.depth[i]}


MEAN = [0.5] * 6
STD = [0.25] * 6


def eval_transform(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
    mean = torch.tensor(MEAN, device=batch["image"].device).view(1, 6, 1, 1)
    std = torch.tensor(STD, device=batch["image"].device).view(1, 6, 1, 1)
    x = (batch["image"].float() / 255 - mean) / std
    return x, batch["mask"].float() / 255, batch["depth"].to(torch.int32).float() / 65535


def train_transform(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
    x, mask, depth = eval_transform(batch)
    flip = torch.rand(x.shape[0], device=x.device) < 0.5  # global RNG: resume must restore it
    f = flip.view(-1, 1, 1, 1)
    return (torch.where(f, x.flip(-1), x), torch.where(f, mask.flip(-1), mask),
            torch.where(f, depth.flip(-1), depth))


def fake_data(n_train: int = 24, n_test: int = 8, augment: bool = True, output_stride: int = 2) -> TrainData:
    """Random flips (``augment``) draw from each process's own RNG: off for DDP comparisons."""
    return TrainData(train_set=FakeCamels(n_train, seed=1, output_stride=output_stride),
                     test_set=FakeCamels(n_test, seed=2, output_stride=output_stride),
                     train_transform=train_transform if augment else eval_transform, eval_transform=eval_transform,
                     mean=MEAN, std=STD, collate_fn=collate_samples)


def tiny_config(out, **overrides) -> TrainConfig:
    values = dict(profile="quick", epochs=2, batch_size=8, lr=5e-3, width=4, input_size=SIZE,
                  num_workers=0, seed=0, device="cpu", out=str(out))
    values.update(overrides)
    return TrainConfig(**values)


def ddp_worker(rank: int, world_size: int, store: str, out: str, results: str) -> None:
    """One process of a 2-process gloo run (started by ``torch.multiprocessing.spawn``).

    Joins the group through a file (``store``, no port to race for), takes one optimiser
    step and keeps the averaged gradients it stepped with, trains on to the end, then
    evaluates the final weights twice with batch size 1: sharded and all-reduced, and
    alone over the whole split. Saves what it saw to ``results/rank<r>.pt``.
    """
    import os

    import torch.distributed as dist

    from evacamel.distributed import destroy_distributed, init_distributed
    from evacamel.evaluate import evaluate
    from evacamel.train import Trainer, stop_after

    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world_size)
    info = init_distributed("gloo")
    try:
        trainer = Trainer(tiny_config(out), fake_data(n_test=9, augment=False), dist_info=info,
                          progress=False, verbose=False)
        grads = keep_first_step_gradients(trainer)
        trainer.fit(on_step=stop_after(1))
        trainer.fit()
        data = trainer.data
        args = (trainer.raw_model, data.test_set, data.eval_transform)
        torch.save({"grads": grads, "micro_batch": trainer.micro_batch,
                    "params": {k: v.detach().clone() for k, v in trainer.raw_model.named_parameters()},
                    "history": trainer.history,
                    "sharded": evaluate(*args, batch_size=1, rank=rank, world_size=world_size),
                    "alone": evaluate(*args, batch_size=1),
                    "saved": trainer.save("probe.pt") is not None},
                   os.path.join(results, f"rank{rank}.pt"))
    finally:
        destroy_distributed()


def keep_first_step_gradients(trainer) -> dict[str, torch.Tensor]:
    """The gradients the optimiser's first step uses (filled in when it runs)."""
    grads: dict[str, torch.Tensor] = {}
    names = {id(p): k for k, p in trainer.raw_model.named_parameters()}

    def keep(optimizer, args, kwargs) -> None:
        if not grads:
            for group in optimizer.param_groups:
                for p in group["params"]:
                    grads[names[id(p)]] = p.grad.detach().clone()

    trainer.optimizer.register_step_pre_hook(keep)
    return grads
