"""Serving FMCA-Net through NVIDIA Triton Inference Server (see docs/serving.md).

    fmca-rt serve --model fmca.onnx                      # a Triton server in-process (PyTriton), 127.0.0.1

    from fmca_rt.serve import remote_detector
    detector = remote_detector("grpc://127.0.0.1:8001")  # faces found here, classified by the server
    result = detector.predict("photo.jpg")                # the same ImageResult as Detector(...).predict

Nothing here imports PyTriton or tritonclient until it is used: `pip install 'fmca-rt[serve]'`.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "ClassifierServer": "fmca_rt.serve.server",
    "TritonBackend": "fmca_rt.serve.client",
    "remote_detector": "fmca_rt.serve.client",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'fmca_rt.serve' has no attribute {name!r}")


__all__ = sorted(_LAZY)
