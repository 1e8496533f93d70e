import sys
import types

import pytest

from evacamel import colab, paths


def test_runtime_report_gives_the_gpu_hint_without_cuda(monkeypatch):
    monkeypatch.setattr(colab.torch.cuda, "is_available", lambda: False)
    report = colab.runtime_report()
    assert "Change runtime type" in report and "CPU only" in report


def test_drive_refuses_outside_colab(monkeypatch):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    with pytest.raises(RuntimeError, match="Colab only"):
        colab.use_google_drive()


def test_drive_points_data_and_runs_at_the_drive(monkeypatch, tmp_path):
    mounted = []
    fake = types.ModuleType("google.colab")
    fake.drive = types.SimpleNamespace(mount=mounted.append)
    monkeypatch.setitem(sys.modules, "google.colab", fake)
    monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
    monkeypatch.delenv("EVACAMEL_DATA", raising=False)
    monkeypatch.delenv("EVACAMEL_RUNS", raising=False)
    root = colab.use_google_drive(mountpoint=str(tmp_path))
    assert mounted == [str(tmp_path)]
    assert paths.data_dir() == root / "data" and paths.runs_dir() == root / "runs"
    assert paths.dataset_dir("quick") == root / "data" / "quick"


def test_project_dir_is_found_from_a_subfolder(tmp_path, monkeypatch):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "evacamel"\n')
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    monkeypatch.delenv("EVACAMEL_DATA", raising=False)
    assert paths.project_dir() == tmp_path
    assert paths.data_dir() == tmp_path / "data"


def test_outside_a_checkout_the_current_folder_is_used(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EVACAMEL_RUNS", raising=False)
    assert paths.run_dir("full") == tmp_path / "runs" / "full"
