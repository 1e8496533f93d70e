"""Where generated things live: datasets, runs (checkpoints) and benchmark output.

Everything generated goes under ignored folders of the working directory's project:
``data/`` for datasets and ``runs/`` for checkpoints and histories. The project
folder is the nearest parent of the current directory that holds ``pyproject.toml``
with ``evacamel`` in it (so a notebook run from ``notebooks/`` writes to the repo's
``data/``), else the current directory (Colab: ``/content``).

``EVACAMEL_DATA`` and ``EVACAMEL_RUNS`` override the two folders, e.g. to put them on
a mounted Google Drive.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["project_dir", "data_dir", "runs_dir", "dataset_dir", "run_dir"]


def project_dir(start: str | os.PathLike | None = None) -> Path:
    """The evacamel checkout containing ``start`` (default: cwd), else ``start`` itself."""
    here = Path(start or os.getcwd()).resolve()
    for folder in (here, *here.parents):
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file() and 'name = "evacamel"' in pyproject.read_text(errors="ignore"):
            return folder
    return here


def data_dir() -> Path:
    """Root of all datasets: ``$EVACAMEL_DATA`` or ``<project>/data``."""
    return Path(os.environ.get("EVACAMEL_DATA") or project_dir() / "data")


def runs_dir() -> Path:
    """Root of all training runs: ``$EVACAMEL_RUNS`` or ``<project>/runs``."""
    return Path(os.environ.get("EVACAMEL_RUNS") or project_dir() / "runs")


def dataset_dir(profile_name: str) -> Path:
    """The default folder of a profile's dataset, e.g. ``data/quick``."""
    return data_dir() / profile_name


def run_dir(profile_name: str) -> Path:
    """The default folder of a profile's training run, e.g. ``runs/quick``."""
    return runs_dir() / profile_name
