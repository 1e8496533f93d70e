"""Where a notebook runs: the runtime report, and Google Drive for data and checkpoints.

Every notebook starts with::

    print(runtime_report())   # the device, and on Colab how to get a GPU when there is none
    # use_google_drive()      # on Colab: keep data/ and runs/ on your Drive (survives disconnects)
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

__all__ = ["in_colab", "runtime_report", "use_google_drive"]

GPU_HINT = ("No GPU. On Colab: Runtime > Change runtime type > GPU (T4 or better),\n"
            "then Runtime > Run all. On a CPU the notebooks use the 'quick' profile.")


def in_colab() -> bool:
    """True inside a Google Colab kernel."""
    return "google.colab" in sys.modules


def runtime_report() -> str:
    """One or two lines: torch version, the device, and the GPU hint when there is none."""
    lines = [f"torch {torch.__version__}, Python {sys.version.split()[0]}"]
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        lines.append(f"GPU: {props.name}, {props.total_memory / 2**30:.0f} GiB, "
                     f"native bf16 {'yes' if props.major >= 8 else 'no (fp16 with a grad scaler)'}")
    else:
        lines.append(f"CPU only ({os.cpu_count()} cores).")
        lines.append(GPU_HINT)
    return "\n".join(lines)


def use_google_drive(folder: str = "evacamel", mountpoint: str = "/content/drive") -> Path:
    """Mount Google Drive (on Colab) and keep datasets and runs in ``MyDrive/<folder>``.

    Sets ``EVACAMEL_DATA`` and ``EVACAMEL_RUNS`` (see :mod:`evacamel.paths`), so datasets
    and checkpoints outlive the Colab session and training resumes after a disconnect.

    Raises:
        RuntimeError: not running on Colab.
    """
    if not in_colab():
        raise RuntimeError("use_google_drive() works on Colab only; elsewhere set "
                           "EVACAMEL_DATA and EVACAMEL_RUNS to any folder")
    from google.colab import drive  # type: ignore[import-not-found]

    drive.mount(mountpoint)
    root = Path(mountpoint) / "MyDrive" / folder
    for name, env in (("data", "EVACAMEL_DATA"), ("runs", "EVACAMEL_RUNS")):
        (root / name).mkdir(parents=True, exist_ok=True)
        os.environ[env] = str(root / name)
    return root
