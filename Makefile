# `make test` is the one command that installs everything into .venv and runs the suite (CI calls it).
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
# The reference PyTorch build for development and CI.
TORCH_PINS := torch==2.14.1 torchvision==0.29.1

.PHONY: test install demo clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml setup.py Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $(TORCH_PINS)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

test: install
	$(PY) -m pytest -q

# Generates the demo data, trains the tiny model on the CPU for a few minutes, exports it to ONNX and runs
# the Detector on real photos and a generated video (outputs in build/demo). Not a deepfake detector.
demo: install
	$(PY) -m fmca_rt.demo --out build/demo

clean:
	rm -rf $(VENV) build *.egg-info
