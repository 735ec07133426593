# Two entry points for a fresh machine with only Python 3.11:
#   make train   - FEN on Job Scheduling, 25 iterations (about 2 minutes on 2 cores)
#   make test    - the test suite (what CI runs)
# Each creates .venv and installs the pinned dependencies on first use.

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# Ray stays on loopback; one torch thread per process on small CPUs.
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER := 0
export OMP_NUM_THREADS := 1
export RAY_USAGE_STATS_ENABLED := 0

.PHONY: install train test lint benchmark clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) on PATH (or run: make PYTHON=/path/to/python3.11 ...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

train: $(STAMP)
	$(PY) scripts/train_fen.py --env job_scheduling --variant fen --iterations 25 \
		--logdir runs/fen_job_scheduling

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest -q

lint: $(STAMP)
	$(PY) -m ruff check .

benchmark: $(STAMP)
	$(PY) scripts/benchmark_envs.py --json results/env_throughput/README.json

clean:
	rm -rf $(VENV) runs .pytest_cache
