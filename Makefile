# The two commands a new user needs (see README.md):
#   make demo   set up the environment and run the demo on the bundled photo -> output/demo/
#   make test   set up the environment and run the test suite
VENV ?= $(CURDIR)/.venv
PY := $(VENV)/bin/python

.PHONY: install test-deps demo test

install:
	VENV=$(VENV) bash scripts/install.sh

test-deps:
	bash scripts/install_test_deps.sh

demo: install
	$(PY) demo/demo.py --output output/demo

test: install test-deps
	$(PY) -m pytest tests -q

# Browser demo: make app serves the tiny random model on http://127.0.0.1:7860 (Ctrl-C stops it);
# real weights: make app APP_ARGS="--weights fcclip-l-ma"
.PHONY: app
app: install
	$(PY) demo/app.py $(APP_ARGS)

# Formatting and lint (ruff, configured in pyproject.toml); .ci/run runs it before the tests.
.PHONY: lint
lint: install
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

# docs/reliability.md is generated from the bad-input battery (tests/bad_inputs_table.py); a test checks it is current.
.PHONY: reliability-doc
reliability-doc: install
	$(PY) -m tests.make_reliability_doc
