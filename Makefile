# Two commands on a fresh machine with Python 3.11+:  make run  |  make test
# uv is used from PATH, or installed once into .tools/ from PyPI.
UV ?= $(or $(shell command -v uv 2>/dev/null),$(CURDIR)/.tools/bin/uv)
UV_VERSION := 0.13.8
PYTHON ?= python3
# As in the image: installed packages are compiled once, so a process started without writing bytecode
# (PYTHONDONTWRITEBYTECODE=1, common in CI and containers) does not compile them again at each start.
export UV_COMPILE_BYTECODE := 1

.PHONY: install run test test-fast test-system lint format bench bench-inbox bench-events bench-knowledge load clean

$(CURDIR)/.tools/bin/uv:
	$(PYTHON) -m venv $(CURDIR)/.tools
	$(CURDIR)/.tools/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

install: $(UV)
	$(UV) sync --frozen

run: install
	$(UV) run --frozen aisupport serve

# The whole suite (what CI runs), or one of its two subsets (docs/decisions/0029-test-split.md):
# fast tests run in process; system tests start real processes (the service, workers, servers, tools).
test: lint
	$(UV) run --frozen pytest

test-fast: lint
	$(UV) run --frozen pytest -m "not system"

test-system: install
	$(UV) run --frozen pytest -m system

lint: install
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen mypy
	$(UV) run --frozen lint-imports

format: install
	$(UV) run --frozen ruff check --fix .
	$(UV) run --frozen ruff format .

# bench/run.py installs wrk (Debian's package) when it is missing, then rewrites docs/benchmarks.md.
bench: install
	$(UV) run --frozen python bench/run.py

load: install
	$(UV) run --frozen python bench/load.py

# One organization of 200,000 conversations and 2,000,000 messages seeded in SQL, then its requests
# (bench/README.md); writes its own section of docs/benchmarks.md.
bench-inbox: install
	$(UV) run --frozen python bench/inbox.py

bench-events: install
	$(UV) run --frozen python bench/events.py

bench-knowledge: install
	$(UV) run --frozen python bench/knowledge.py

clean:
	rm -rf .venv .tools .pytest_cache .mypy_cache .ruff_cache
