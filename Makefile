# `make test` is the one command that installs everything into .venv and runs the suite (CI calls it).
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
# The reference PyTorch build for development and CI.
TORCH_PINS := torch==2.14.1 torchvision==0.29.1

.PHONY: test install clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml setup.py Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $(TORCH_PINS)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

test: install
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) build *.egg-info
