# Two commands on a fresh clone:
#   make run    create .venv, install, run the main job (the views sweep on the embedded defaults)
#   make test   create .venv, install with test extras, run the tests
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-fast venv clean bench

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/cmr-ray sweep experiments/views.yaml

test: $(STAMP)
	scripts/test-deps.sh
	$(BIN)/python -m pytest -q tests

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not integration" tests

bench: $(STAMP)
	$(BIN)/python bench/bench_prepare.py
	$(BIN)/python bench/bench_train.py

clean:
	rm -rf $(VENV) cmr_store ray_results mlflow.db mlartifacts
