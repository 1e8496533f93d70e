"""DistributedDataParallel on CPU (gloo, 2 processes) against a single process.

What DDP guarantees, and what is compared:

* One optimiser step: 2 processes x micro-batch 4 against 1 process with 2 accumulated
  micro-batches of 4 (global batch 8 in both). :class:`~evacamel.distributed.EpochSampler`
  gives rank r the micro-batch the single process sees as accumulation step r, so each
  BatchNorm layer normalises the same 4 samples and the averaged gradient is the same up
  to float re-association (see the tolerance below). A plain 1 x 8 batch would not be
  comparable: BatchNorm's batch statistics would differ. Weights after several Adam
  steps are *not* compared with the single process: Adam divides by sqrt(v), so a
  near-zero gradient that differs by rounding can move a weight by up to lr.
* Both ranks hold identical weights after training to the end (DDP's promise), and
  record the same history.
* Evaluation: every rank evaluates its shard of the test split (9 samples: uneven
  shards, nothing padded) and all-reduces; the result must be that of one process over
  the whole split (batch size 1 in both, so each sample is computed the same way).
* Files: only rank 0 writes.

Augmentation is off: each process draws from its own generator. The processes meet
through a file in tmp_path (``file://`` init): no TCP port to find and race for.
"""

from __future__ import annotations

import pytest
import torch
import torch.multiprocessing as mp
from _train_fakes import ddp_worker, fake_data, keep_first_step_gradients, tiny_config

from evacamel.train import Trainer, stop_after

# The single process accumulates g1/2 + g2/2 in one order, DDP all-reduces (g1 + g2)/2,
# and each g_r is itself a float32 sum over the 4 x 16 x 16 output pixels (and more for
# the early layers) computed by kernels whose summation order may depend on the thread
# count. Re-associating a float32 sum of N terms changes it by about sqrt(N) * 2^-24 of
# the sum of the terms' magnitudes (up to N * 2^-24); with N ~ 10^4 that is ~1e-5 of the
# scale. Relative to each tensor's largest gradient we allow 1e-4 (10x the estimate);
# a wrong micro-batch, a missing 1/accum scaling or an unsynchronised rank is off by O(1).
GRAD_TOLERANCE = 1e-4


@pytest.mark.slow
def test_two_gloo_processes_match_one_process(tmp_path):
    single = Trainer(tiny_config(tmp_path / "single", accum_steps=2),
                     fake_data(n_test=9, augment=False), progress=False, verbose=False)
    single_grads = keep_first_step_gradients(single)
    single.fit(on_step=stop_after(1))
    data = single.data

    mp.spawn(ddp_worker, args=(2, str(tmp_path / "store"), str(tmp_path / "ddp"), str(tmp_path)),
             nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]

    assert ranks[0]["micro_batch"] == ranks[1]["micro_batch"] == single.micro_batch == 4
    # one step: the averaged gradients are the single process's, within float re-association
    for name, g in single_grads.items():
        scale = float(g.abs().max()) or 1.0
        for r in range(2):
            gap = float((ranks[r]["grads"][name] - g).abs().max()) / scale
            assert gap <= GRAD_TOLERANCE, (f"rank {r} gradient of {name} differs from the single "
                                           f"process by {gap:.2e} of its scale {scale:.2e}")
    # to the end: identical weights and history on both ranks
    for name, p in ranks[0]["params"].items():
        assert torch.equal(p, ranks[1]["params"][name]), name
    timeless = [[{k: v for k, v in row.items() if "seconds" not in k and "per_s" not in k}
                 for row in ranks[r]["history"]] for r in range(2)]
    assert timeless[0] == timeless[1] and [row["epoch"] for row in timeless[0]] == [1, 2]
    # evaluation: all-reduced shards == the whole split in one process
    for r in range(2):
        assert ranks[r]["sharded"]["samples"] == ranks[r]["alone"]["samples"] == len(data.test_set)
        for key, value in ranks[r]["alone"].items():
            assert ranks[r]["sharded"][key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
    # only rank 0 writes
    assert (ranks[0]["saved"], ranks[1]["saved"]) == (True, False)
    assert sorted(p.name for p in (tmp_path / "ddp").iterdir()) == [
        "best.pt", "config.json", "history.csv", "history.json", "last.pt", "probe.pt"]
