# Two commands a newcomer needs: `make repro` (the pipeline) and `make test` (the suite).
# Both create .venv from the lock file on first use; nothing has to be installed by hand.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(abspath $(VENV))/bin
UV_VERSION := 0.13.8

export PATH := $(BIN):$(PATH)
export PREFECT_HOME ?= $(abspath .prefect)
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export GX_ANALYTICS_ENABLED := false

.PHONY: install repro test coverage test-fast lint format lock serve relocate clean

install: $(VENV)/.installed

# Bytecode is compiled once, at install: where PYTHONDONTWRITEBYTECODE is set (as on CI), every
# stage and test subprocess would otherwise recompile TensorFlow from source (7 s of 12 s).
$(VENV)/.installed: requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "ferops needs Python 3.11, found " + sys.version' 
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip install --quiet --python $(BIN)/python --compile-bytecode -r requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	@# Offline copies of the scripts DVC's plots page and the Data Docs load from CDNs (npm
	@# registry, pinned, sha512-checked); without network the pages keep their CDN links.
	$(BIN)/python -m ferops.install.web_assets
	$(BIN)/dvc config --local plots.html_template $(BIN)/../share/ferops/web/dvc-plots.html
	touch $@

## After copying or moving the project folder: point mlflow.db, .venv and DVC's local config
## here. This folder's src/ goes first: until then the copy's .venv imports the old folder's.
relocate:
	PYTHONPATH=$(abspath src) $(BIN)/python -m ferops relocate

## Run the whole pipeline (dvc repro) on params.yaml; the default is synthetic data.
repro: install
	dvc repro

## Serve the registry's champion on http://127.0.0.1:$(PORT) (POST /invocations), after one line
## saying which version it is and what it learned from (or which aliases exist, if MODEL does not).
## Every answer is recorded in logs/predictions/ (FEROPS_PREDICTION_LOG= turns it off).
PORT ?= 5001
MODEL ?= models:/fer-attention-cnn@champion
serve: install
	@export MLFLOW_TRACKING_URI=$${MLFLOW_TRACKING_URI:-sqlite:///$(abspath mlflow.db)} \
	  FEROPS_PREDICTION_LOG=$${FEROPS_PREDICTION_LOG-$(abspath logs/predictions)} \
	  FEROPS_SERVED_MODEL="$(MODEL)"; \
	  ferops registry check "$(MODEL)" && \
	  exec mlflow models serve -m "$(MODEL)" --env-manager local -h 127.0.0.1 -p $(PORT)

## CI's command: lint and import contracts, then every tier, and the 15 slowest tests at the
## end. One pytest worker per CPU; each takes whole test files, so the tests of a module run in
## order in one process, in the order conftest.py gives (slow tiers first; xdist would otherwise
## start the files with fewest tests last).
PYTEST_ALL := pytest -n logical --dist loadfile --no-loadscope-reorder --durations=15
test: install lint
	$(PYTEST_ALL)

## The same suite with line coverage of src/ (Python 3.11's tracer: in-process training and
## model building run about a quarter slower, so `make test` does not trace).
coverage: install
	$(PYTEST_ALL) --cov=ferops --cov-report=term:skip-covered

## The unit tier alone (pure functions, tiny shapes, no servers, no training): about 30 s on 2 cores.
test-fast: install
	pytest -n logical tests/unit

## Style, formatting, and the architecture: layers and no import cycles (pyproject.toml).
lint: install
	ruff check src tests flows benchmarks scripts
	ruff format --check src tests flows benchmarks scripts
	lint-imports

format: install
	ruff check --fix src tests flows benchmarks scripts
	ruff format src tests flows benchmarks scripts

## Regenerate requirements.lock from pyproject.toml (pins every transitive dependency).
lock: install
	uv pip compile pyproject.toml --extra dev --python-version 3.11 \
	  --python-platform x86_64-unknown-linux-gnu -o requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .coverage gx reports/validation-failed
