"""The repo's own files keep their promises: environment.yml == pyproject, notebooks clean."""

import json
import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement

tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from 3.11")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_lists_the_same_packages_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_name(r): r.replace(" ", "") for r in project["dependencies"]}
    for extra in project["optional-dependencies"].values():
        wanted.update({_name(r): r.replace(" ", "") for r in extra})
    env_text = (ROOT / "environment.yml").read_text()
    pip_section = env_text.split("- pip:", 1)[1].splitlines()
    pip_reqs = [ln.strip()[2:].strip() for ln in pip_section if ln.strip().startswith("- ")]
    listed = {_name(r): r.replace(" ", "") for r in pip_reqs if not r.startswith("-e")}
    assert listed == wanted


def test_torch_is_not_pinned_exactly():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    torch = [r for r in project["dependencies"] if _name(r) in {"torch", "torchvision"}]
    assert torch and not any("==" in r for r in torch)


def test_colabs_ipywidgets_is_accepted():
    """Colab ships ipywidgets 7.7.1; installing evacamel there must not upgrade it."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    spec = next(Requirement(r).specifier for r in project["dependencies"]
                if _name(r) == "ipywidgets")
    assert "7.7.1" in spec and "8.1.5" in spec


def test_jupyter_book_is_1x():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    jb = [r for r in project["optional-dependencies"]["book"] if _name(r) == "jupyter-book"]
    assert jb and "<2" in jb[0]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_committed_clean_and_starts_with_the_install_cell(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    for cell in code:
        assert cell["outputs"] == [] and cell["execution_count"] is None, path.name
    first = "".join(nb["cells"][0]["source"])
    assert nb["cells"][0]["cell_type"] == "code" and '"google.colab" in sys.modules' in first
    assert nb["metadata"].get("accelerator") == "GPU"
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    title = next("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    assert f"colab.research.google.com/github/evacamel/evacamel/blob/main/notebooks/{path.name}" in title
    assert nb["cells"][0]["metadata"].get("tags") == ["remove-cell"]  # not shown in the book
    # sizes come from the profile, never from the notebook (setup_notebook returns get_profile())
    assert any(call in "".join(c["source"]) for c in code
               for call in ("get_profile()", "setup_notebook(keep_runs_on_drive="))


def test_every_notebook_is_in_the_book_and_numbered():
    toc = (ROOT / "book" / "_toc.yml").read_text()
    assert len(NOTEBOOKS) >= 6, NOTEBOOKS  # the six chapters (a loop over none checks nothing)
    for path in NOTEBOOKS:
        assert re.match(r"\d\d_", path.name), path.name
        assert f"notebooks/{path.stem}" in toc, path.name


def _make_prerequisites(target: str) -> list[str]:
    found = re.search(rf"^{target}:(.*)$", (ROOT / "Makefile").read_text(), re.M)
    assert found, f"no target {target} in the Makefile"
    return found.group(1).split()


def test_readme_gives_the_two_commands_and_ci_runs_both():
    readme = (ROOT / "README.md").read_text()
    assert "make book" in readme and "make test" in readme
    ci = [line.split() for line in (ROOT / ".ci" / "run").read_text().splitlines()
          if line.startswith("stage ")]
    ran = [words[-1] for words in ci if words[-2] == "make"]
    parts = [t for t in _make_prerequisites("test") if not t.startswith("$")]
    assert parts == ["unit", "notebooks"]  # `make test` is these two, and CI runs them
    assert ran[:1] == ["install"] and set(parts + ["book", "browser-check"]) <= set(ran)


def test_a_hanging_cell_fails_in_minutes_not_hours():
    """nbval and jupyter-book stop a cell after the same few minutes."""
    make = (ROOT / "Makefile").read_text()
    cell = int(re.search(r"^CELL_TIMEOUT \?= (\d+)$", make, re.M).group(1))
    assert "--nbval-cell-timeout $(CELL_TIMEOUT)" in make
    config = (ROOT / "_config.yml").read_text()
    book = int(re.search(r"^execute:\n(?:  .*\n)*?  timeout: (\d+)$", config, re.M).group(1))
    assert 120 <= cell == book <= 900


BLOCKING = re.compile(r"\b(input|getpass)\(|drive\.mount\(|files\.upload\(|ipywidgets|"
                      r"tqdm\.(auto|notebook)|\binteract\(")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_code_cannot_wait_for_a_person(path):
    """Nothing a headless run would wait on: prompts, Drive, uploads, widgets made directly
    (evacamel.viz and evacamel.colab make widgets only when a frontend is there)."""
    nb = json.loads(path.read_text())
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code" or "google.colab" in "".join(cell["source"]):
            continue  # the install cell runs on Colab only
        code = [line.split("#", 1)[0] for line in "".join(cell["source"]).splitlines()]
        hits = [line for line in code if BLOCKING.search(line)]
        assert not hits, f"{path.name} cell {i}: {hits}"
