# Two commands do all the setup: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | sha256sum | cut -c1-16)
DATA ?= ../shared/data

.PHONY: setup run test lint clean

setup: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

run: setup
	OMP_NUM_THREADS=1 $(BIN)/python app.py

test: setup
	MAMMO_DATA=$${MAMMO_DATA:-$(DATA)} OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check mammo tests scripts app.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
