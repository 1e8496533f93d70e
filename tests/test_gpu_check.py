"""Pieces of ``make gpu-check`` (the whole CPU mode runs in CI as its own stage)."""

from __future__ import annotations

import torch

from evacamel.bench.gpu_check import (Row, check_channels_last, check_resume, check_t4,
                                      format_table, setup_for)
from evacamel.bench.train import fitting_batch, speed_table
from evacamel.profiles import get_profile


def test_cpu_mode_uses_toy_sizes():
    s = setup_for(torch.device("cpu"))
    assert not s.cuda and s.profile.name == "quick" and s.toy.width <= 16
    assert s.train_seconds <= 10


def test_table_has_one_row_per_check_and_aligned_columns():
    rows = [Row("CUDA paths", "bf16 autocast", "ok", "loss 1 -> 0.5"),
            Row("T4 rehearsal", "step", "FAIL", "peak 14 GB", "micro-batch 64 x 2")]
    text = format_table(rows, "title")
    lines = text.splitlines()
    assert lines[0] == "title" and len(lines) == 2 + 2 + len(rows)
    assert len({len(line) for line in lines[2:]}) == 1  # every table line equally wide
    assert "| FAIL " in lines[-1] and "micro-batch 64 x 2" in lines[-1]


def test_resume_and_channels_last_checks_pass_on_cpu(tmp_path):
    s = setup_for(torch.device("cpu"))
    [row] = check_resume(s, tmp_path)
    assert (row.result, row.value) == ("ok", "bitwise")
    [row] = check_channels_last(s)
    assert row.result == "ok"


def test_t4_rehearsal_on_cpu_is_a_labelled_estimate(tmp_path):
    [row] = check_t4(setup_for(torch.device("cpu")), tmp_path)
    assert row.result == "est." and "estimate" in row.check and "meta device" in row.note


def test_speed_table_on_cpu_has_no_autocast_row():
    p = get_profile("quick").replace(input_size=32, width=4, batch_size=4)
    rows = speed_table(p, steps=1, warmup=0)
    names = [m.name for m in rows]
    assert len(rows) == 3 and not any("autocast" in n for n in names)
    assert all(m.items == 4 for m in rows)  # one batch, the same for every row
    assert fitting_batch(p, device="cpu") == 4


def test_chapter_06_model_is_never_trained_silently(tmp_path, monkeypatch):
    import pytest

    from evacamel.predict import load_trained

    monkeypatch.setenv("EVACAMEL_RUNS", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="evacamel train --profile quick"):
        load_trained("quick")
    assert not (tmp_path / "quick").exists()  # nothing trained, nothing written
