# make test: install everything into .venv (idempotent), then run the test suite.
# make demo: same install, then the end-to-end demo.
# make lint: flake8, isort and yapf with the settings of setup.cfg (OpenMMLab's linters; .pre-commit-config.yaml).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install test demo lint clean-venv

install: $(STAMP)

# Re-run the install only when what it installs changes.
$(STAMP): requirements/install.sh requirements/mmcv_deps.txt requirements/runtime.txt requirements/tests.txt requirements/deploy.txt setup.py
	VENV=$(VENV) bash requirements/install.sh
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest tests -n 2 --dist loadfile $(PYTEST_ARGS)

LINT_PATHS := mtssl_mm tools tests configs setup.py

lint: $(STAMP)
	$(VENV)/bin/flake8 $(LINT_PATHS)
	$(VENV)/bin/isort --check-only --diff $(LINT_PATHS)
	$(VENV)/bin/yapf --diff --recursive $(LINT_PATHS)

demo: $(STAMP)
	$(PY) tools/demo.py $(DEMO_ARGS)

clean-venv:
	rm -rf $(VENV)
