"""Multi-process training helpers: ``torchrun`` environment, samplers, all-reduce.

One process per GPU, started by ``torchrun --nproc_per_node=N -m evacamel train ...``.
torchrun sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``; :func:`init_distributed`
reads them, joins the process group (NCCL on CUDA, gloo on CPU) and says which process
this is. Without those variables everything here is a no-op for one process, so the
training loop is the same code with and without DDP.

Data order: :class:`EpochSampler` draws one permutation of the training set per epoch
from a ``torch.Generator`` seeded with ``seed + epoch`` (the same on every rank and on
a resumed run), cuts it into *global* batches, and gives each rank its slice of each
global batch. A run with 2 processes of batch ``B/2`` therefore sees exactly the samples
a 1-process run of batch ``B`` sees, step by step; and a run resumed after ``k`` steps
starts at global batch ``k`` of the same permutation.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

__all__ = ["DistInfo", "init_distributed", "destroy_distributed", "resolve_device",
           "all_reduce_sum", "barrier", "EpochSampler", "ShardSampler"]


@dataclass(frozen=True)
class DistInfo:
    """Which process this is: ``rank`` of ``world_size``, ``local_rank`` on its machine."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        """True when more than one process trains together."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that logs, shows progress bars and writes files."""
        return self.rank == 0


def init_distributed(backend: str | None = None) -> DistInfo:
    """Join the process group that ``torchrun`` describes in the environment.

    Returns ``DistInfo()`` (one process) when ``WORLD_SIZE`` is unset or 1. With CUDA,
    also selects the GPU ``LOCAL_RANK``. The backend defaults to NCCL with CUDA, else gloo.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    if not dist.is_initialized():
        if backend is None:
            backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank)


def resolve_device(name: str | torch.device | None = "auto",
                   dist_info: DistInfo | None = None) -> torch.device:
    """The device this process computes on.

    ``auto`` (or ``None``) is ``cuda`` when available, else ``cpu``; other names as given
    (``cpu``, ``cuda``, ``cuda:1``). In a multi-process run a bare ``cuda`` becomes this
    process's GPU, ``cuda:<local_rank>``.
    """
    if name is None or name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and dist_info is not None and dist_info.enabled:
        device = torch.device("cuda", dist_info.local_rank)
    return device


def destroy_distributed() -> None:
    """Leave the process group (if any)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum ``t`` over all processes, in place (no-op for one process); returns ``t``."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def barrier() -> None:
    """Wait for all processes (no-op for one process)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


class EpochSampler(Sampler[int]):
    """This rank's sample indices for one epoch, in a reproducible, resumable order.

    The epoch's permutation of ``range(n)`` comes from ``torch.Generator().manual_seed(
    seed + epoch)``. It is cut into ``n // global_batch`` global batches (the remainder is
    dropped, so every step has the same size); global batch ``i`` is split into
    ``world_size * accum_steps`` micro-batches of ``micro = global_batch / (world_size *
    accum_steps)``, and this rank takes micro-batch ``j * world_size + rank`` for each
    accumulation step ``j``. Use it with a loader of ``batch_size=micro``.

    Args:
        n: dataset length.
        global_batch: samples per optimiser step, over all processes.
        seed, epoch: fix the permutation.
        start_step: global batches of this epoch already done (resume): skipped.
        rank, world_size: this process.
        accum_steps: gradient-accumulation micro-batches per step and process.
    """

    def __init__(self, n: int, global_batch: int, *, seed: int, epoch: int, start_step: int = 0,
                 rank: int = 0, world_size: int = 1, accum_steps: int = 1) -> None:
        parts = world_size * accum_steps
        if global_batch % parts:
            raise ValueError(f"batch size {global_batch} is not divisible by world size x "
                             f"accumulation steps = {world_size} x {accum_steps}")
        if n < global_batch:
            raise ValueError(f"the training set has {n} samples, fewer than one batch of "
                             f"{global_batch}")
        self.n, self.global_batch, self.seed, self.epoch = n, global_batch, seed, epoch
        self.start_step, self.rank, self.world_size, self.accum_steps = (
            start_step, rank, world_size, accum_steps)
        self.micro = global_batch // parts

    @property
    def steps(self) -> int:
        """Optimiser steps in a whole epoch."""
        return self.n // self.global_batch

    def permutation(self) -> torch.Tensor:
        """The epoch's permutation of all ``n`` indices (int64)."""
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        return torch.randperm(self.n, generator=g)

    def __iter__(self) -> Iterator[int]:
        perm = self.permutation()[: self.steps * self.global_batch]
        # (steps, world*accum, micro) -> order (step, accum j, micro) for this rank
        blocks = perm.view(self.steps, self.accum_steps, self.world_size, self.micro)
        mine = blocks[self.start_step:, :, self.rank].reshape(-1)
        return iter(mine.tolist())

    def __len__(self) -> int:
        return (self.steps - self.start_step) * self.accum_steps * self.micro


class ShardSampler(Sampler[int]):
    """Evaluation: rank ``r`` of ``w`` takes indices ``r, r + w, r + 2w, ...`` in order.

    Unlike ``DistributedSampler`` nothing is padded or repeated, so the all-reduced sums
    of a metric are exactly those of a single-process pass over the split.
    """

    def __init__(self, n: int, rank: int = 0, world_size: int = 1) -> None:
        self.n, self.rank, self.world_size = n, rank, world_size

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.n, self.world_size))

    def __len__(self) -> int:
        return len(range(self.rank, self.n, self.world_size))
