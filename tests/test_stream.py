"""The synthetic stream: batch format, seeded, fresh placements, pool refresh."""

from __future__ import annotations

import pytest
import torch

from evacamel.dataset.plan import derive_seed
from evacamel.loading.stream import SyntheticStream, stream_seed
from evacamel.profiles import get_profile

PROFILE = get_profile("quick").replace(input_size=32)


def _stream(**kw) -> SyntheticStream:
    args = dict(batch_size=4, seed=0, pool_backgrounds=2, pool_camels=2, max_batches=2)
    args.update(kw)
    return SyntheticStream(PROFILE, **args)


def _equal(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k].to(torch.int32), b[k].to(torch.int32)) for k in a)


def test_batch_format():
    batch = next(iter(_stream()))
    assert batch["image"].dtype == torch.uint8 and batch["image"].shape == (4, 6, 32, 32)
    assert batch["mask"].dtype == torch.uint8 and batch["mask"].shape == (4, 1, 16, 16)
    assert batch["depth"].dtype == torch.uint16 and batch["depth"].shape == (4, 1, 16, 16)
    mask = batch["mask"].float() / 255
    assert 0 < float(mask.mean()) < 0.5  # camels are there, and small
    diff = (batch["image"][:, 3:].int() - batch["image"][:, :3].int()).abs().sum(1)
    assert bool((diff > 0).any())  # fg_bg differs from bg where the camel is


def test_seeded_and_fresh():
    s = _stream()
    one, two = list(s), list(s)
    assert len(one) == len(s) == 2
    assert all(_equal(a, b) for a, b in zip(one, two))  # same seed: same batches
    assert not _equal(one[0], one[1])  # every batch is composed afresh
    other = list(_stream(seed=1))
    assert not _equal(one[0], other[0])


def test_refresh_renders_new_pool_members():
    s = _stream(refresh_every=1, max_batches=3)
    list(s)
    assert s._next_bg == 2 + 2 and s._next_fg == 2 + 2  # two refreshes after the pool
    assert s._backgrounds.seeds[0] == stream_seed(0, "background", 2)


def test_stream_seeds_differ_from_dataset_seeds():
    ours = {stream_seed(0, "background", i) for i in range(200)}
    assert len(ours) == 200
    theirs = {derive_seed(0, k, i) % 2**31 for k in range(8) for i in range(200)}
    assert len(theirs) == 8 * 200
    assert not ours & theirs


def test_unlimited_has_no_len():
    with pytest.raises(TypeError, match="no length"):
        len(SyntheticStream(PROFILE))


def test_a_mixed_profile_is_refused_in_one_line_naming_the_files_path():
    with pytest.raises(ValueError, match="'mixed'.*make-dataset"):
        SyntheticStream(get_profile("cpu"), max_batches=1)
