"""The micro-batch chooser, the automatic gradient accumulation, and the footprint print."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from evacamel.footprint import (MemoryFit, activation_bytes_per_sample, choose_micro_batch,
                                expected_train_seconds, folder_bytes, footprint, gpu_peak_tflops,
                                packed_bytes, random_batch, train_flops)
from evacamel.profiles import available_cores, get_profile, loader_workers
from evacamel.train import TrainConfig, Trainer

from _train_fakes import fake_data, tiny_config

MB = 2**20


def linear_probe(fixed: float, per_sample: float, calls: list[int] | None = None):
    """A fake memory probe: ``fixed + b * per_sample`` bytes, recording what it was asked."""
    def probe(b: int) -> float:
        if calls is not None:
            calls.append(b)
        return fixed + b * per_sample
    return probe


def test_chooser_picks_the_largest_divisor_under_the_budget():
    calls: list[int] = []
    fit = choose_micro_batch(128, linear_probe(100 * MB, 173 * MB, calls), 11 * 2**30)
    # (11 GiB - 100 MiB) / 173 MiB = 64.5: 64 fits, 128 does not
    assert (fit.micro_batch, fit.accum_steps) == (64, 2)
    assert fit.fits and fit.predicted_peak_bytes <= 11 * 2**30
    assert calls == [2, 4]  # two small probes, never the whole batch
    assert fit.per_sample_bytes == pytest.approx(173 * MB)
    assert fit.fixed_bytes == pytest.approx(100 * MB)


def test_chooser_keeps_the_global_batch():
    for budget in (1e8, 1e9, 5e9, 2e10, 1e12):
        fit = choose_micro_batch(96, linear_probe(50 * MB, 100 * MB), budget)
        assert fit.micro_batch * fit.accum_steps == 96
        assert 96 % fit.micro_batch == 0
        bigger = [d for d in range(fit.micro_batch + 1, 97) if 96 % d == 0]
        assert all(50 * MB + d * 100 * MB > budget for d in bigger)  # the largest that fits


def test_chooser_whole_batch_when_it_fits_and_one_when_nothing_does():
    assert choose_micro_batch(16, linear_probe(0, MB), 10**12).micro_batch == 16
    tight = choose_micro_batch(16, linear_probe(2 * 2**30, MB), 2**30)
    assert tight.micro_batch == 1 and tight.accum_steps == 16 and not tight.fits


def test_chooser_with_a_batch_smaller_than_the_probes():
    fit = choose_micro_batch(1, linear_probe(0, 10 * MB), 5 * MB)
    assert (fit.micro_batch, fit.accum_steps) == (1, 1)
    with pytest.raises(ValueError):
        choose_micro_batch(0, linear_probe(0, MB), 1e9)


def test_accum_steps_automatic_is_one_on_cpu_and_explicit_is_kept(tmp_path):
    auto = Trainer(tiny_config(tmp_path / "a"), fake_data(), progress=False, verbose=False)
    assert auto.cfg.accum_steps is None
    assert (auto.accum_steps, auto.micro_batch, auto.memory_fit) == (1, 8, None)
    two = Trainer(tiny_config(tmp_path / "b", accum_steps=2), fake_data(), progress=False,
                  verbose=False)
    assert (two.accum_steps, two.micro_batch) == (2, 4)
    with pytest.raises(ValueError, match="not divisible"):
        Trainer(tiny_config(tmp_path / "c", accum_steps=3), fake_data(), progress=False,
                verbose=False)
    with pytest.raises(ValueError):
        TrainConfig(accum_steps=0)


def test_automatic_accumulation_trains_like_explicit_accumulation(tmp_path, monkeypatch):
    """On CUDA the chooser decides; here a fake fit stands in: the run must equal the same
    accumulation asked for explicitly (same micro-batches, same order)."""
    fake = MemoryFit(micro_batch=4, accum_steps=2, per_sample_bytes=1.0, fixed_bytes=0.0,
                     budget_bytes=10.0)

    def fake_accum(self):
        self.memory_fit = fake
        return fake.accum_steps

    explicit = Trainer(tiny_config(tmp_path / "e", epochs=1, accum_steps=2), fake_data(),
                       progress=False, verbose=False)
    explicit.fit()
    monkeypatch.setattr(Trainer, "_accum_steps", fake_accum)
    auto = Trainer(tiny_config(tmp_path / "f", epochs=1), fake_data(), progress=False,
                   verbose=False)
    auto.fit()
    assert auto.micro_batch == 4
    for a, b in zip(explicit.raw_model.parameters(), auto.raw_model.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_workers_follow_the_cores():
    assert loader_workers(2) == 1      # Colab's 2 vCPUs: one loads, one trains
    assert loader_workers(1) == 0
    assert loader_workers(64) == 8
    assert 1 <= available_cores() <= (__import__("os").cpu_count() or 1)
    assert get_profile("full").num_workers == loader_workers()
    assert get_profile("quick").num_workers == 0  # unchanged: the packed cache needs none


def test_random_batch_has_the_batch_format():
    b = random_batch(3, 64, torch.Generator().manual_seed(0))
    assert b["image"].shape == (3, 6, 64, 64) and b["image"].dtype == torch.uint8
    assert b["mask"].shape == (3, 1, 32, 32) and b["mask"].dtype == torch.uint8
    assert b["depth"].shape == (3, 1, 32, 32) and b["depth"].dtype == torch.uint16


def test_activation_estimate_scales_with_size_and_precision():
    fp32 = activation_bytes_per_sample(16, 64)
    assert activation_bytes_per_sample(16, 128) == pytest.approx(4 * fp32, rel=0.05)
    # half precision halves the saved activations, not max-pooling's int64 indices
    assert 0.45 * fp32 < activation_bytes_per_sample(16, 64, torch.bfloat16) < 0.6 * fp32
    # the seed model at 256 px in fp32: the issue measured ~173 MiB per sample on CPU
    assert 80 * MB < activation_bytes_per_sample(64, 256) < 260 * MB


def test_expected_time_is_flops_over_assumed_throughput():
    flops = train_flops(64, 256)
    assert flops > 1e10
    seconds = expected_train_seconds(flops, 1000, 100.0, utilisation=0.5)
    assert seconds == pytest.approx(1000 * flops / 50e12)
    assert gpu_peak_tflops("Tesla T4") == ("T4", 65.0)
    assert gpu_peak_tflops("NVIDIA H100 PCIe")[0] == "H100 PCIe"
    assert gpu_peak_tflops("NVIDIA H100 80GB HBM3")[0] == "H100"
    assert gpu_peak_tflops("Some CPU") is None


def test_footprint_matches_the_files_of_a_tiny_dataset(tmp_path):
    from evacamel.dataset.write import ensure_dataset
    from evacamel.loading.pack import ensure_packed, packed_dir

    p = get_profile("quick").replace(n_backgrounds=4, n_camels=4, samples=24, source_size=64,
                                     depth_size=64, camel_size=64, input_size=32)
    root = ensure_dataset(p, tmp_path / "ds", progress=False, workers=1)
    ensure_packed(p, root=root, progress=False)
    fp = footprint(p, root=root, device="cpu")
    on_disk = sum(f.stat().st_size for f in root.rglob("*") if f.is_file()
                  and not f.relative_to(root).parts[0].startswith("packed-"))
    assert fp.dataset_bytes == on_disk and "dataset" in fp.measured
    arrays = sum((packed_dir(root, 32) / n).stat().st_size
                 for n in ("image.npy", "mask.npy", "depth.npy"))
    assert 0 <= arrays - packed_bytes(24, 32) <= 3 * 128  # the .npy headers only
    assert fp.packed_bytes == folder_bytes(packed_dir(root, 32)) and fp.packed_bytes >= arrays
    assert folder_bytes(tmp_path / "missing") == 0
    table = fp.table()
    assert f"{on_disk / 1e9:.2f} GB" in table and "~" not in table.split("disk: dataset")[1].split("\n")[0]


def test_footprint_estimates_a_t4_without_one():
    fp = footprint("full", device="cpu", gpu_name="T4", gpu_memory_bytes=15 * 10**9)
    assert fp.micro_batch * fp.accum_steps == get_profile("full").batch_size
    assert fp.accum_steps > 1                      # batch 128 at 256 px does not fit at once
    assert fp.gpu_step_bytes < 0.8 * 15e9          # under the budget, with margin
    assert fp.packed_bytes == packed_bytes(40_000, 256)  # 17.7 GB: the number
    assert fp.train_seconds is not None and fp.train_seconds > 60
    table = fp.table()
    assert "~" in table and "T4" in table and "30%" in table and "estimate" in table
    assert np.isfinite(fp.gpu_step_bytes)


def test_train_prints_the_footprint_of_the_run_before_training(tmp_path, capsys):
    from evacamel.train import EPOCH_HEADER, train

    train("quick", train_data=fake_data(), progress=False, epochs=1, batch_size=8, width=4,
          input_size=32, out=str(tmp_path / "run"), device="cpu", data=str(tmp_path / "none"))
    out = capsys.readouterr().out
    # the trainer's per-epoch table starts with its header (evacamel.train.EPOCH_HEADER)
    assert out.index("footprint of the quick profile") < out.index(EPOCH_HEADER)
    assert "micro-batch 8 x 1" in out and "no GPU here" in out


def test_a_full_resolution_model_is_sized_as_one():
    """``output_stride=1`` (the cpu profile): targets at the input's side, one more block."""
    g = torch.Generator().manual_seed(0)
    batch = random_batch(2, 32, g, output_stride=1)
    assert batch["mask"].shape == batch["depth"].shape == (2, 1, 32, 32)
    assert random_batch(2, 32, g)["mask"].shape == (2, 1, 16, 16)
    assert train_flops(8, 64, output_stride=1) > 1.3 * train_flops(8, 64)
    assert packed_bytes(10, 32, output_stride=1) == 10 * (6 + 1 + 2) * 32 * 32
