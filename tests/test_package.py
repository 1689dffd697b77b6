"""The runtime package stays light: importing it pulls in none of the heavy engines."""

import subprocess
import sys

HEAVY = ["torch", "onnxruntime", "tensorrt", "triton", "pycuda", "onnx", "openvino", "nncf"]


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


BLOCK_HEAVY = """
import importlib.abc, sys
class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in %r:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, NotInstalled())
""" % HEAVY


def test_every_fmca_rt_module_imports_without_the_heavy_dependencies():
    code = BLOCK_HEAVY + (
        "import importlib, pkgutil, fmca_rt\n"
        "names = [m.name for m in pkgutil.walk_packages(fmca_rt.__path__, 'fmca_rt.') if not m.name.endswith('__main__')]\n"
        "failed = []\n"
        "for name in names:\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception as error:\n"
        "        failed.append(f'{name}: {type(error).__name__}: {error}')\n"
        "print(len(names)); print('\\n'.join(failed))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    count, *failed = done.stdout.strip().split("\n")
    assert int(count) > 10
    assert failed == [], "\n".join(failed)
