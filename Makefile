# Sillage — two commands: `make run` plays, `make test` tests. Both set everything up first.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.sillage-setup-stamp
APT_PACKAGES := libportaudio2 portaudio19-dev jackd2 puredata-core
# Torch is pinned here (a CPU wheel lies on disk on our machines); pyproject keeps torch>=2.4.
TORCH_PIN := torch==2.13.0
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: setup system-deps run test test-fast bench lint format companion clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@$(MAKE) --no-print-directory system-deps
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_PIN)"
	$(BIN)/python -m pip install -q -e ".[dev]" "$(TORCH_PIN)"
	touch $(STAMP)

# System packages: installed when missing if we are root, otherwise named with the command.
system-deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "Installing system packages:$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -q --no-install-recommends $$missing >/dev/null 2>&1 || \
	  { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends $$missing >/dev/null; }; \
	else \
	  echo "Missing system packages:$$missing"; \
	  echo "Install them with: sudo apt-get install$$missing   (then run make again)"; \
	  exit 1; \
	fi

run: setup
	$(BIN)/python run_instrument.py $(ARGS)

test: setup
	$(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS)

test-all: setup
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
