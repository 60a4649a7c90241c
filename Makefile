# make test: install everything into .venv (idempotent), then run the test suite.
# make demo: same install, then the end-to-end demo.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install test demo clean-venv

install: $(STAMP)

# Re-run the install only when what it installs changes.
$(STAMP): requirements/install.sh requirements/mmcv_deps.txt requirements/runtime.txt requirements/tests.txt requirements/deploy.txt setup.py
	VENV=$(VENV) bash requirements/install.sh
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest tests -n 2 --dist loadfile $(PYTEST_ARGS)

demo: $(STAMP)
	$(PY) tools/demo.py $(DEMO_ARGS)

clean-venv:
	rm -rf $(VENV)
