"""The runtime package stays light: importing it pulls in none of the heavy engines."""

import subprocess
import sys

HEAVY = ["torch", "onnxruntime", "tensorrt", "triton", "pycuda", "onnx"]


def test_import_fmca_rt_pulls_in_no_heavy_dependency():
    code = ("import sys, fmca_rt; heavy = %r; "
            "print(','.join(m for m in heavy if m in sys.modules))" % HEAVY)
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == ""


def test_public_names_are_sorted_and_exist():
    import fmca_rt

    assert fmca_rt.__all__ == sorted(fmca_rt.__all__)
    for name in fmca_rt.__all__:
        assert hasattr(fmca_rt, name)
