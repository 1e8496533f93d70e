"""Where a notebook runs: the runtime report, Google Drive, and whether anyone is watching.

Every notebook starts with::

    KEEP_RUNS_ON_DRIVE = False  # @param {type:"boolean"}
    profile = setup_notebook(keep_runs_on_drive=KEEP_RUNS_ON_DRIVE)

which prints the device (and on Colab how to get a GPU when there is none) and the profile,
and on Colab, when asked, keeps the *runs* folder (checkpoints and histories: megabytes) on
Google Drive so that training resumes after a disconnect. Datasets never go to Drive: they
are many small files, gigabytes at the full profile, and are remade (or rendered) per session.

:func:`widget_frontend` says whether the running cell has a frontend that shows
ipywidgets (Jupyter, JupyterLab, VS Code, Colab) or is executed headless (``jupyter-book
build``, nbval, nbconvert, papermill, a plain script). Widgets are made only for a
frontend: executed headless, widget traffic is a known intermittent hang of nbclient
(jupyter/nbclient#312, jupyter/nbconvert#2029) and nobody could move a slider anyway.
:func:`progress_bar` is the one way the library shows progress, following the same rule.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from tqdm.std import tqdm as text_bar

from evacamel.profiles import Profile, get_profile

__all__ = ["in_colab", "runtime_report", "use_google_drive", "setup_notebook", "widget_frontend",
           "progress_bar", "HEADLESS_ENV"]

HEADLESS_ENV = "EVACAMEL_HEADLESS"  # "1": never make widgets (CI, book build); "0": always
_YES, _NO = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}

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
    """Mount Google Drive (on Colab) and keep training runs in ``MyDrive/<folder>/runs``.

    Sets ``EVACAMEL_RUNS`` (see :mod:`evacamel.paths`): checkpoints and histories (a few
    megabytes per run) outlive the Colab session, and ``train(..., resume=True)`` continues
    after a disconnect. Datasets stay on the machine's own disk (``data/``): at the full
    profile they are gigabytes of small files, more than Drive's free quota holds.

    Returns:
        The runs folder on Drive.

    Raises:
        RuntimeError: not running on Colab.
    """
    if not in_colab():
        raise RuntimeError("use_google_drive() works on Colab only; elsewhere set "
                           "EVACAMEL_RUNS to any folder")
    from google.colab import drive  # type: ignore[import-not-found]  # Colab only

    drive.mount(mountpoint)
    runs = Path(mountpoint) / "MyDrive" / folder / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    os.environ["EVACAMEL_RUNS"] = str(runs)
    return runs


def setup_notebook(keep_runs_on_drive: bool = False) -> Profile:
    """A chapter's first step: print the runtime and the profile; on Colab, if asked,
    keep runs on Google Drive (:func:`use_google_drive`).

    Args:
        keep_runs_on_drive: on Colab, mount Drive and keep checkpoints there; ignored
            (with a note) elsewhere, where ``runs/`` already survives the session.

    Returns:
        The profile the chapter runs (:func:`evacamel.profiles.get_profile`).
    """
    print(runtime_report())
    if keep_runs_on_drive and in_colab():
        print(f"runs kept on Google Drive: {use_google_drive()}")
    elif keep_runs_on_drive:
        print("KEEP_RUNS_ON_DRIVE applies on Colab only: here runs/ is already kept on disk")
    profile = get_profile()
    print(f"profile: {profile.name} - {profile.description}")
    return profile


def widget_frontend() -> bool:
    """True when the running cell was sent by a frontend that shows ipywidgets.

    Decided in this order:

    1. ``EVACAMEL_HEADLESS`` (``HEADLESS_ENV``): ``1`` -> False, ``0`` -> True. ``make`` and
       CI set ``1``; ``0`` is for a frontend this function cannot recognise (e.g. Voila).
    2. Colab -> True.
    3. Not inside a Jupyter kernel (a script, pytest, terminal IPython) -> False.
    4. The cell's ``execute_request``: frontends that a person uses send it with
       ``allow_stdin=True`` (``input()`` works there); executors (nbclient, hence
       jupyter-book, nbconvert and papermill; nbval) send ``allow_stdin=False`` because
       no person can answer. No person, no slider to move: False.
    """
    forced = os.environ.get(HEADLESS_ENV, "").strip().lower()
    if forced in _YES or forced in _NO:
        return forced in _NO
    if in_colab():
        return True
    kernel = _jupyter_kernel()
    return kernel is not None and _cell_allows_stdin(kernel)


def progress_bar(iterable: Iterable | None = None, *, disable: bool | None = None,
                 **kwargs: Any) -> text_bar:
    """A tqdm progress bar that suits where the code runs.

    With a widget frontend (:func:`widget_frontend`): tqdm's notebook bar (an ipywidget).
    In a Jupyter kernel without one (a notebook executed by the book build or nbval):
    no bar, since nobody watches and widgets can hang the executor. Elsewhere: tqdm's
    text bar on stderr, which ``disable=None`` shows only on a terminal.

    Args:
        iterable: what to iterate over, as for ``tqdm(iterable)``; ``None`` for a bar
            advanced with ``update(n)``.
        disable: ``True`` hides the bar, ``False`` shows it, ``None`` decides as above.
        kwargs: any other ``tqdm`` argument (``total``, ``desc``, ``unit``, ...).
    """
    if _jupyter_kernel() is not None or in_colab():
        if not widget_frontend():
            return text_bar(iterable, disable=True, **kwargs)
        # Here, not at the top: it imports ipywidgets (~0.2 s), for frontends only.
        from tqdm.notebook import tqdm as widget_bar

        return widget_bar(iterable, disable=bool(disable), **kwargs)
    return text_bar(iterable, disable=disable, **kwargs)


def _jupyter_kernel() -> Any:
    """The ipykernel kernel object this code runs in, or None (no IPython, or no kernel)."""
    ipython = sys.modules.get("IPython")  # never imported here: no IPython, no kernel
    shell = ipython.get_ipython() if ipython is not None else None
    return getattr(shell, "kernel", None)


def _cell_allows_stdin(kernel: Any) -> bool:
    """``allow_stdin`` of the request being executed (ipykernel 5, 6 and 7)."""
    get_parent = getattr(kernel, "get_parent", None)  # ipykernel >= 6
    parent = get_parent() if get_parent is not None else getattr(kernel, "_parent_header", None)
    content = parent.get("content", {}) if isinstance(parent, dict) else {}
    if "allow_stdin" in content:
        return bool(content["allow_stdin"])
    return bool(getattr(kernel, "_allow_stdin", True))  # e.g. inside a comm message handler
