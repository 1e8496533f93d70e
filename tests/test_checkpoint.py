"""Checkpoints: atomic writes, weights_only loading, RNG states."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from evacamel.checkpoint import (copy_checkpoint, load_checkpoint, load_weights, rng_state,
                                 save_checkpoint, set_rng_state)


def test_save_and_load_round_trip_with_weights_only(tmp_path):
    state = {"model": {"w": torch.arange(6.0).view(2, 3)}, "epoch": 3, "name": "x",
             "history": [{"mask_iou": 0.5}], "rng": rng_state(), "t": (1, 2.0, None)}
    path = save_checkpoint(state, tmp_path / "sub" / "last.pt")
    # weights_only=True itself (not just our wrapper) accepts the file
    raw = torch.load(path, weights_only=True)
    assert torch.equal(raw["model"]["w"], state["model"]["w"])
    loaded = load_checkpoint(path)
    assert loaded["epoch"] == 3 and loaded["history"] == [{"mask_iou": 0.5}]
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind


def test_unloadable_state_is_refused_and_old_file_kept(tmp_path):
    path = save_checkpoint({"epoch": 1}, tmp_path / "last.pt")
    with pytest.raises(TypeError, match="weights_only"):
        save_checkpoint({"epoch": 2, "bad": np.zeros(3)}, path)
    assert load_checkpoint(path)["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_truncated_or_missing_checkpoint_errors_name_the_file(tmp_path):
    path = save_checkpoint({"w": torch.ones(1000)}, tmp_path / "last.pt")
    data = path.read_bytes()
    bad = tmp_path / "bad.pt"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="bad.pt"):
        load_checkpoint(bad)
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        load_checkpoint(tmp_path / "nope.pt")


def test_rng_state_restores_torch_numpy_and_python(tmp_path):
    torch.manual_seed(1)
    np.random.seed(2)
    random.seed(3)
    path = save_checkpoint({"rng": rng_state()}, tmp_path / "rng.pt")
    first = (torch.rand(3), np.random.rand(3), random.random())
    set_rng_state(load_checkpoint(path)["rng"])
    again = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(first[0], again[0])
    assert np.array_equal(first[1], again[1])
    assert first[2] == again[2]


class _Code:
    def __reduce__(self):
        return (print, ("code ran while loading",))


@pytest.mark.parametrize("content", [b"", b"hello\n", bytes(range(256)) * 8, "code"],
                         ids=["empty", "text", "random", "pickled-code"])
def test_corrupt_or_hostile_files_are_refused_in_one_line_naming_them(tmp_path, capsys, content):
    path = tmp_path / "bad.pt"
    if content == "code":
        torch.save({"model": _Code()}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(ValueError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    assert "code ran" not in capsys.readouterr().out  # nothing executed
    if content == "code":
        assert "pickled Python code" in message


def test_copy_checkpoint_is_atomic_and_cleans_up_after_a_full_disk(tmp_path, monkeypatch):
    from evacamel import checkpoint

    src = save_checkpoint({"w": torch.ones(1000)}, tmp_path / "last.pt")
    copy_checkpoint(src, tmp_path / "best.pt")
    assert (tmp_path / "best.pt").read_bytes() == src.read_bytes()
    save_checkpoint({"w": torch.zeros(1000)}, src)

    def full_disk(fsrc, fdst, length=0):
        fdst.write(fsrc.read(10))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint.shutil, "copyfileobj", full_disk)
    with pytest.raises(OSError):
        copy_checkpoint(src, tmp_path / "best.pt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "last.pt"]
    assert torch.equal(load_checkpoint(tmp_path / "best.pt")["w"], torch.ones(1000))  # the old one


def test_weights_of_another_model_are_refused_in_one_line():
    small, wide = torch.nn.Linear(3, 4), torch.nn.Linear(3, 8)
    with pytest.raises(ValueError, match=r"weight is \[8, 3\] there, \[4, 3\]") as info:
        load_weights(small, wide.state_dict())
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="no 'bias'"):
        load_weights(small, {"weight": torch.zeros(4, 3)})
    with pytest.raises(ValueError, match="not a dict"):
        load_weights(small, [1, 2])
    load_weights(small, torch.nn.Linear(3, 4).state_dict())
