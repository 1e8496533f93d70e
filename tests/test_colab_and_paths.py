"""Where a notebook runs: runtime report, Google Drive, paths, and widgets only for a frontend."""

import os
import sys
import types
from pathlib import Path

import pytest
import torch

from evacamel import colab, paths


def test_runtime_report_gives_the_gpu_hint_without_cuda(monkeypatch):
    monkeypatch.setattr(colab.torch.cuda, "is_available", lambda: False)
    report = colab.runtime_report()
    assert "Change runtime type" in report and "CPU only" in report


def test_drive_refuses_outside_colab(monkeypatch):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    with pytest.raises(RuntimeError, match="Colab only"):
        colab.use_google_drive()


def _fake_colab(monkeypatch) -> list:
    mounted: list = []
    fake = types.ModuleType("google.colab")
    fake.drive = types.SimpleNamespace(mount=mounted.append)
    monkeypatch.setitem(sys.modules, "google.colab", fake)
    monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
    monkeypatch.delenv("EVACAMEL_DATA", raising=False)
    monkeypatch.delenv("EVACAMEL_RUNS", raising=False)
    return mounted


def test_drive_keeps_runs_only(monkeypatch, tmp_path):
    mounted = _fake_colab(monkeypatch)
    monkeypatch.chdir(tmp_path)
    runs = colab.use_google_drive(mountpoint=str(tmp_path / "drive"))
    assert mounted == [str(tmp_path / "drive")]
    assert paths.runs_dir() == runs == tmp_path / "drive" / "MyDrive" / "evacamel" / "runs"
    assert paths.run_dir("full") == runs / "full"
    # datasets (gigabytes of small files at the full profile) stay on the machine's disk
    assert paths.data_dir() == tmp_path / "data"


def test_setup_notebook_mounts_drive_only_when_asked(monkeypatch, tmp_path, capsys):
    mounted = _fake_colab(monkeypatch)
    monkeypatch.setenv("EVACAMEL_PROFILE", "quick")
    monkeypatch.setattr(colab, "use_google_drive", lambda: mounted.append("drive") or tmp_path)
    assert colab.setup_notebook(keep_runs_on_drive=False).name == "quick"
    assert mounted == []
    colab.setup_notebook(keep_runs_on_drive=True)
    assert mounted == ["drive"] and "runs kept on Google Drive" in capsys.readouterr().out


def test_setup_notebook_outside_colab_says_the_box_does_nothing(monkeypatch, capsys):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.setenv("EVACAMEL_PROFILE", "quick")
    colab.setup_notebook(keep_runs_on_drive=True)
    out = capsys.readouterr().out
    assert "Colab only" in out and "profile: quick" in out


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


# -- frontends: widgets only where someone watches ---------------------------------------

def _fake_kernel(monkeypatch, allow_stdin: bool | None) -> None:
    """Pretend this process is an ipykernel executing a cell sent with ``allow_stdin``."""
    content = {} if allow_stdin is None else {"allow_stdin": allow_stdin}
    kernel = types.SimpleNamespace(get_parent=lambda: {"header": {}, "content": content})
    shell = types.SimpleNamespace(kernel=kernel)
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: shell))


@pytest.fixture
def no_override(monkeypatch):
    monkeypatch.delenv(colab.HEADLESS_ENV, raising=False)
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)


def test_frontends_send_allow_stdin_and_executors_do_not(monkeypatch, no_override):
    _fake_kernel(monkeypatch, allow_stdin=True)  # Jupyter, JupyterLab, VS Code
    assert colab.widget_frontend()
    _fake_kernel(monkeypatch, allow_stdin=False)  # nbclient (jupyter-book), nbval, papermill
    assert not colab.widget_frontend()
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: None))
    assert not colab.widget_frontend()  # IPython imported, but no kernel (a script, pytest)


def test_headless_variable_overrides_and_colab_is_a_frontend(monkeypatch, no_override):
    _fake_kernel(monkeypatch, allow_stdin=True)
    monkeypatch.setenv(colab.HEADLESS_ENV, "1")
    assert not colab.widget_frontend()
    _fake_kernel(monkeypatch, allow_stdin=False)
    monkeypatch.setenv(colab.HEADLESS_ENV, "0")
    assert colab.widget_frontend()
    monkeypatch.delenv(colab.HEADLESS_ENV)
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    assert colab.widget_frontend()


def test_progress_bar_is_silent_in_an_executed_notebook(monkeypatch, no_override):
    from tqdm.notebook import tqdm as widget_bar

    _fake_kernel(monkeypatch, allow_stdin=False)
    bar = colab.progress_bar(range(3), disable=False)
    assert bar.disable and not isinstance(bar, widget_bar)
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: None))
    assert not colab.progress_bar(range(3), disable=False).disable  # a terminal: text bar
    assert colab.progress_bar(range(3), disable=True).disable


def _fake_predictions(i: int) -> dict:
    g = torch.Generator().manual_seed(i)
    return {"fg_bg": torch.rand(1, 3, 32, 32, generator=g), "mask": torch.zeros(1, 1, 16, 16),
            "mask_prob": torch.rand(1, 1, 16, 16, generator=g),
            "depth": torch.rand(1, 1, 16, 16, generator=g),
            "depth_pred": torch.rand(1, 1, 16, 16, generator=g)}


def test_prediction_browser_headless_draws_a_figure_and_makes_no_widget(monkeypatch):
    import matplotlib.pyplot as plt

    from evacamel.viz import prediction_browser

    monkeypatch.setenv(colab.HEADLESS_ENV, "1")
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # any widget would fail to import
    asked = []
    fig = prediction_browser(lambda i: asked.append(i) or _fake_predictions(i), 40,
                             description="test sample")
    assert isinstance(fig, plt.Figure) and asked == [0]
    assert fig._suptitle.get_text() == "test sample 0"
    assert not plt.fignum_exists(fig.number)  # closed: shown once, as the cell's result


def test_prediction_browser_with_a_frontend_is_a_slider(monkeypatch):
    import ipywidgets

    from evacamel.viz import prediction_browser

    monkeypatch.setenv(colab.HEADLESS_ENV, "0")
    asked = []
    box = prediction_browser(lambda i: asked.append(i) or _fake_predictions(i), 40)
    slider, out = box.children
    assert isinstance(slider, ipywidgets.IntSlider) and isinstance(out, ipywidgets.Output)
    assert (slider.min, slider.max, slider.value) == (0, 39, 0) and asked == [0]
    slider.value = 7
    assert asked == [0, 7]


def test_no_module_makes_widgets_or_bars_on_its_own():
    """Progress bars come from colab.progress_bar and widgets from viz: nowhere else."""
    import re

    root = Path(colab.__file__).parent
    allowed = {"colab.py": {"tqdm.notebook", "tqdm.std"}, "viz.py": {"ipywidgets"}}
    pattern = re.compile(r"^\s*(?:from|import)\s+(tqdm[\w.]*|ipywidgets)", re.M)
    found = {p.relative_to(root).as_posix(): set(pattern.findall(p.read_text(encoding="utf-8")))
             for p in root.rglob("*.py")}
    offenders = {k: v - allowed.get(k, set()) for k, v in found.items()}
    assert not {k: v for k, v in offenders.items() if v}
    assert found["colab.py"] and found["viz.py"]  # the check sees imports


NOTEBOOK_CELLS = ["""\
import torch
samples = {k: torch.rand(1, c, s, s) for k, c, s in [
    ("fg_bg", 3, 32), ("mask", 1, 16), ("mask_prob", 1, 16), ("depth", 1, 16), ("depth_pred", 1, 16)]}
""", """\
from evacamel.colab import progress_bar, widget_frontend
for _ in progress_bar(range(3)):
    pass
print(widget_frontend())
""", """\
from evacamel.viz import prediction_browser
prediction_browser(lambda i: samples, 5)
"""]


def _kernel_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k != colab.HEADLESS_ENV}
    env["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    return env


@pytest.mark.slow
def test_a_notebook_executed_by_nbclient_gets_no_widgets(monkeypatch):
    """What jupyter-book does: no widget is made, and the browser is one static figure."""
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.delenv(colab.HEADLESS_ENV, raising=False)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(code) for code in NOTEBOOK_CELLS]
    NotebookClient(nb, timeout=300, kernel_name="python3").execute(env=_kernel_env())
    assert "widgets" not in nb.metadata  # nbclient records the state of every widget made
    printed = [o["text"] for o in nb.cells[1].outputs if o["output_type"] == "stream"]
    assert "".join(printed).split() == ["False"]  # and the bar printed nothing
    shown = [o for o in nb.cells[2].outputs if "image/png" in o.get("data", {})]
    assert len(shown) == 1 and len(nb.cells[2].outputs) == 1, nb.cells[2].outputs


@pytest.mark.slow
def test_a_frontend_that_allows_stdin_is_recognised():
    """What Jupyter does: the cell's request allows stdin."""
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3", env=_kernel_env(), startup_timeout=300)
    try:
        seen = []

        def collect(msg):
            if msg["msg_type"] == "stream":
                seen.append(msg["content"]["text"])

        code = "from evacamel.colab import widget_frontend\nprint(widget_frontend())"
        for allow_stdin in (True, False):
            kc.execute_interactive(code, allow_stdin=allow_stdin, output_hook=collect,
                                   stdin_hook=lambda msg: None, timeout=300)
        assert "".join(seen).split() == ["True", "False"]
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
