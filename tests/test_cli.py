import subprocess
import sys

from evacamel.cli import command_names, main


def test_help_lists_every_command(capsys):
    try:
        main(["--help"])
    except SystemExit as e:
        assert e.code == 0
    out = capsys.readouterr().out
    for name in command_names():
        assert name in out


def test_bench_rejects_an_unknown_benchmark(capsys):
    assert main(["bench", "nope"]) == 2
    assert "unknown benchmark 'nope'" in capsys.readouterr().err


def test_python_dash_m_entry_point_runs():
    result = subprocess.run([sys.executable, "-m", "evacamel", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "COMMAND" in result.stdout
