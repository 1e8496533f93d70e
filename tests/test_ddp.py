"""DistributedDataParallel on CPU (gloo, 2 processes) against a single process.

What is compared, and why it is exact in principle:

* Training: 2 processes x micro-batch 4 against 1 process with 2 accumulated micro-batches
  of 4 (global batch 8 in both). :class:`~evacamel.distributed.EpochSampler` gives rank r
  the same micro-batch the single process sees as accumulation step r, so each
  BatchNorm layer normalises the same 4 samples and the averaged gradient is the same
  (up to float rounding). A plain 1 x 8 batch would not be comparable: BatchNorm's batch
  statistics would differ. Parameters are compared; BatchNorm running buffers are not
  (DDP keeps rank 0's, which saw half the micro-batches).
* Evaluation: every rank evaluates the single run's final weights on its shard of the
  test split (9 samples: uneven shards, nothing padded); the all-reduced metrics must be
  those of the single process.
* Files: only rank 0 writes.

Augmentation is off: each process draws from its own generator.
"""

from __future__ import annotations

import socket

import pytest
import torch
import torch.multiprocessing as mp
from _train_fakes import ddp_worker, fake_data, tiny_config

from evacamel.checkpoint import save_checkpoint
from evacamel.train import Trainer


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_gloo_processes_match_one_process(tmp_path):
    single = Trainer(tiny_config(tmp_path / "single", accum_steps=2),
                     fake_data(n_test=9, augment=False),
                     progress=False, verbose=False)
    single.fit()
    save_checkpoint({"model": single.raw_model.state_dict()}, tmp_path / "single.pt")
    single_metrics = single.evaluate()

    mp.spawn(ddp_worker, args=(2, _free_port(), str(tmp_path / "ddp"), str(tmp_path)),
             nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]

    assert ranks[0]["micro_batch"] == ranks[1]["micro_batch"] == single.micro_batch == 4
    # training: same parameters on both ranks (DDP), and the single run's within rounding
    for name, p in single.raw_model.named_parameters():
        assert torch.equal(ranks[0]["params"][name], ranks[1]["params"][name])
        torch.testing.assert_close(ranks[0]["params"][name], p.detach(), rtol=1e-4, atol=1e-5,
                                   msg=f"parameter {name}")
    for row_ddp, row_single in zip(ranks[0]["history"], single.history):
        assert row_ddp["train_loss"] == pytest.approx(row_single["train_loss"], rel=1e-4)
    # evaluation: all-reduced shards == the whole split in one process
    for r in range(2):
        for key, value in single_metrics.items():
            assert ranks[r]["metrics"][key] == pytest.approx(value, rel=1e-6, abs=1e-9), key
    # only rank 0 writes
    assert (ranks[0]["saved"], ranks[1]["saved"]) == (True, False)
    assert sorted(p.name for p in (tmp_path / "ddp").iterdir()) == [
        "best.pt", "config.json", "history.csv", "history.json", "last.pt", "probe.pt"]
