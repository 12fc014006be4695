# Two commands for a fresh clone: `make demo` (main job) and `make test` (the test suite).
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
OUT ?= report

.PHONY: demo test bench lint clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "make: $(PYTHON) not found; set PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch==2.13.0 is the CPU build; installing it first keeps the `deep` extra from pulling a CUDA build.
	# The mpi (mpi4py + the mpich wheel, which brings mpiexec) and dask extras are installed so the tests exercise them.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[deep,mpi,dask,dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/sparsentk reproduce report --quick --out $(OUT)

test: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(PY) -m pytest -q -n 2 --dist loadgroup

bench: $(STAMP)
	$(PY) benchmarks/run.py

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
