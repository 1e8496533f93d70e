import subprocess
import sys

import pytest

from evacamel.cli import command_names, main


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    names = command_names()
    assert {"make-dataset", "train", "evaluate", "predict", "depth", "download"} <= set(names)
    for name in names:
        assert name in out


def test_bench_rejects_an_unknown_benchmark(capsys):
    assert main(["bench", "nope"]) == 2
    assert "unknown benchmark 'nope'" in capsys.readouterr().err


def test_python_dash_m_entry_point_runs():
    result = subprocess.run([sys.executable, "-m", "evacamel", "--help"], capture_output=True,
                            text=True, timeout=300)  # a hang fails here instead of stalling CI
    assert result.returncode == 0 and "COMMAND" in result.stdout


def _fake_commands(tmp_path, monkeypatch, body: str) -> str:
    name = f"fakecmds_{tmp_path.name.replace('-', '_')}"  # a fresh package per test
    pkg = tmp_path / name
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "boom.py").write_text(
        'HELP = "raise something"\n\ndef add_arguments(p):\n    pass\n\n'
        f"def main(args):\n    {body}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def test_a_user_error_is_one_line_and_exit_status_1(tmp_path, monkeypatch, capsys):
    pkg = _fake_commands(tmp_path, monkeypatch,
                         "raise IsADirectoryError(21, 'Is a directory', '/data/photos')")
    assert main(["boom"], package=pkg) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "/data/photos" in err and "Is a directory" in err


def test_evacamel_debug_shows_the_traceback(tmp_path, monkeypatch):
    pkg = _fake_commands(tmp_path, monkeypatch, "raise ValueError('bad value')")
    monkeypatch.setenv("EVACAMEL_DEBUG", "1")
    with pytest.raises(ValueError, match="bad value"):
        main(["boom"], package=pkg)


def test_a_bug_is_not_disguised_as_a_user_error(tmp_path, monkeypatch):
    pkg = _fake_commands(tmp_path, monkeypatch, "raise TypeError('a bug')")
    with pytest.raises(TypeError):
        main(["boom"], package=pkg)
