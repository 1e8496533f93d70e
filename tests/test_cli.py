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
