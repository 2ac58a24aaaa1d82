# Two commands do all the setup: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | sha256sum | cut -c1-16)
DATA ?= ../shared/data

.PHONY: setup run test lint clean browser-deps loadtest

setup: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

run: setup
	MAMMO_HOME=$${MAMMO_HOME:-$(CURDIR)/.mammo} MAMMO_BASE_DATA=$${MAMMO_BASE_DATA:-$(DATA)/mias1024} \
		OMP_NUM_THREADS=1 $(BIN)/python app.py

# Debian's chromium for the browser test (Playwright drives it; no browser download).
browser-deps:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) \
		|| echo "chromium could not be installed: the browser test will be skipped"

test: setup browser-deps
	MAMMO_DATA=$${MAMMO_DATA:-$(DATA)} OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder --durations=25

# Bounded headless load test against a locally started app (127.0.0.1 only).
loadtest: setup
	MAMMO_DATA=$${MAMMO_DATA:-$(DATA)} OMP_NUM_THREADS=1 $(BIN)/python scripts/loadtest.py --users 20 --seconds 60

lint: setup
	$(BIN)/ruff check mammo tests scripts app.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
