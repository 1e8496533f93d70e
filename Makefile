# evacamel: two commands after cloning (see README.md)
#   make book   execute every notebook and build the static book into _build/html
#   make test   unit tests + every notebook executed by nbval
# Both create .venv and install evacamel into it on first use (Python 3.10-3.13).

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.evacamel-installed
# Unit tests run on this many pytest-xdist workers; notebooks run one after another.
JOBS   ?= 2
# The longest a notebook cell may run (s) before nbval fails it: a hang fails fast. The
# slowest cell (notebook 05's training, quick profile) takes a few minutes on 2 busy cores.
# jupyter-book's limit is execute.timeout in _config.yml (the same number).
CELL_TIMEOUT ?= 600
NBVAL := $(PY) -m pytest --nbval-lax --nbval-sanitize-with tests/nbval_sanitize.cfg \
	--nbval-cell-timeout $(CELL_TIMEOUT) --durations=0 --durations-min=5

export PYTHONHASHSEED := 0
# Torch's OpenMP threads busy-wait by default; on 2 shared cores the spinning starves the
# working threads (a training step: 7-12x slower under load). Idle threads sleep instead.
# (tests/conftest.py also gives each pytest-xdist worker its share of the cores.)
export OMP_WAIT_POLICY ?= PASSIVE
# Every target here runs notebooks without a frontend: no ipywidgets, no notebook progress
# bars (evacamel.colab.widget_frontend; executors are also recognised without this).
export EVACAMEL_HEADLESS := 1

.PHONY: all install test unit notebooks book browser-check bench gpu-check overview-figure clean help

help:
	@echo "make book    execute the notebooks and build the book into _build/html"
	@echo "make test    unit tests and every notebook (nbval)"
	@echo "make unit | notebooks | browser-check | bench | gpu-check | clean"

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev,book,depth]"
	@touch $@

install: $(STAMP)

test: unit notebooks

unit: $(STAMP)
	$(PY) -m pytest -n $(JOBS) --durations=10 tests

notebooks: $(STAMP)
	$(NBVAL) notebooks

book: $(STAMP)
	$(VENV)/bin/jupyter-book build . --toc book/_toc.yml --config _config.yml -W -n --keep-going

browser-check: $(STAMP)
	$(PY) -m pytest -m browser -p no:xdist tests/test_book_in_browser.py

bench: $(STAMP)
	$(PY) -m evacamel bench dataset
	$(PY) -m evacamel bench loader
	$(PY) -m evacamel bench train

# The README's picture: the cpu profile's model (trained first if missing) on new scenes.
overview-figure: $(STAMP)
	test -f runs/cpu/best.pt || $(VENV)/bin/evacamel train --profile cpu --no-progress
	$(VENV)/bin/evacamel overview runs/cpu/best.pt --data data/cpu --out book/figures/overview.jpg

clean:
	rm -rf _build .jupyter_cache .pytest_cache

# The GPU path in one table (evacamel/bench/gpu_check.py): on one CUDA GPU, the full profile
# in under 8 minutes, offline; without CUDA, toy sizes on the CPU (CI runs that mode).
gpu-check: $(STAMP)
	$(PY) -m evacamel bench gpu-check
