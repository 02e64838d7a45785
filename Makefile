# Sillage — two commands: `make run` plays, `make test` tests. Both set everything up first.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.sillage-setup-stamp
# Torch is pinned here (a CPU wheel lies on disk on our machines); pyproject keeps torch>=2.4.
TORCH_PIN := torch==2.13.0
UNAME_S := $(shell uname -s)
UNAME_M := $(shell uname -m)
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: setup system-deps system-deps-test torch-check run test test-fast bench lint format companion clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@$(MAKE) --no-print-directory system-deps torch-check
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_PIN)"
	$(BIN)/python -m pip install -q -e ".[dev]" "$(TORCH_PIN)"
	touch $(STAMP)

# System packages by platform (apt, dnf, nothing on macOS): tools/system-deps.sh says what and why.
system-deps:
	@tools/system-deps.sh run

system-deps-test:
	@tools/system-deps.sh test

# PyTorch publishes no wheel for Intel Macs since 2.3: say so before pip fails obscurely.
torch-check:
	@if [ "$(UNAME_S)" = Darwin ] && [ "$(UNAME_M)" = x86_64 ]; then \
	  echo "PyTorch >= 2.3 has no wheels for Intel Macs (x86_64); Sillage needs torch >= 2.4."; \
	  echo "Use an Apple-silicon Mac, or Linux (a VM works, without low-latency audio)."; exit 1; fi

run: setup
	$(BIN)/python run_instrument.py $(ARGS)

test: setup system-deps-test
	$(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS)

test-all: setup system-deps-test
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

bench: setup
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy instrument mappings models ui
	$(BIN)/python -m instrument.companion --check

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

companion: setup
	$(BIN)/python -m instrument.companion

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
