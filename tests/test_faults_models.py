"""Model files that lie or do not fit, and messages that named the wrong cause: ONNX metadata that contradicts
its graph, a binary engine sidecar, an ONNX file that is not YuNet given as the face detector, a CUDA device
without a GPU, a user's training.py shadowing the package, the benchmark in a core install."""

import os
import re
import subprocess
import sys

import pytest

from fmca_rt import Detector
from fmca_rt.cli import main
from fmca_rt.errors import EngineError, FaceDetectorError, FMCAError

from conftest import REPO_ROOT
from crafted_models import mean_log_model
from sdk_images import grace_hopper_path
from sdk_models import tiny_checkpoint, tiny_onnx

PYTHON_ENV = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}


@pytest.mark.parametrize("crafted, message", [
    (dict(graph_input="input"), "metadata names the input 'pixels', but the graph's is input"),
    (dict(graph_size=56), "says B x 3 x 28 x 28 pixels, but the graph takes"),
    (dict(drop_config=("class_names",)), "config lacks class_names"),
    (dict(drop_config=("image_size", "mean")), "config lacks image_size, mean"),
])
def test_metadata_that_contradicts_the_graph_is_refused_at_load(crafted, message, tmp_path, capsys):
    model = mean_log_model(tmp_path / "crafted.onnx", **crafted)
    with pytest.raises(FMCAError, match=re.escape(message)):
        Detector(model)
    assert main(["predict", str(grace_hopper_path()), "--model", str(model)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_a_binary_sidecar_is_one_engine_error(tmp_path):
    from fmca_rt.backends.tensorrt_sidecar import read_sidecar

    engine = tmp_path / "model.engine"
    engine.write_bytes(b"\x00plan")
    (tmp_path / "model.engine.json").write_bytes(b"\xff\xfe\x00binary\x80")
    with pytest.raises(EngineError, match="is not an fmca-rt engine sidecar"):
        read_sidecar(engine)


def test_the_onnx_reader_agrees_with_the_onnx_package(tmp_path):
    onnx = pytest.importorskip("onnx")
    from fmca_rt.onnx_graph import read_graph_io

    for path in (tiny_onnx(), mean_log_model(tmp_path / "m.onnx")):
        model = onnx.load(str(path))
        initializers = {t.name for t in model.graph.initializer}
        expected = {i.name: len(i.type.tensor_type.shape.dim) for i in model.graph.input if i.name not in initializers}
        graph = read_graph_io(path)
        assert graph.inputs == expected
        assert graph.outputs == {o.name: len(o.type.tensor_type.shape.dim) for o in model.graph.output}


def yunet_shaped(path):
    """An ONNX graph with YuNet's inputs and outputs (not its weights): what the check looks for."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    from fmca_rt.face_guard import YUNET_OUTPUTS

    nodes = [helper.make_node("Identity", ["input"], [name]) for name in YUNET_OUTPUTS]
    graph = helper.make_graph(nodes, "yunet_like", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 3, 8, 8]) for n in YUNET_OUTPUTS])
    onnx.save(helper.make_model(graph), str(path))
    return path


def test_an_onnx_that_is_not_yunet_is_refused_before_opencv_sees_it(tmp_path):
    from fmca_rt.face_guard import check_yunet_model

    check_yunet_model(yunet_shaped(tmp_path / "yunet_like.onnx"))  # accepted: the shape YuNet has
    (tmp_path / "text.onnx").write_text("not a model")
    other = mean_log_model(tmp_path / "other.onnx")  # OpenCV loads it, then fails on every image
    for path, message in ((other, "is not OpenCV's YuNet face detector (inputs pixels; outputs logits"),
                          (tmp_path / "text.onnx", "is not an ONNX model")):
        with pytest.raises(FaceDetectorError, match=re.escape(message)):
            Detector(tiny_onnx(), faces=str(path))
    # OpenCV crashes the process (a segmentation fault) on the classifier's own graph: only in a child process
    done = subprocess.run([sys.executable, "-m", "fmca_rt", "predict", str(grace_hopper_path()), "--model",
                           str(tiny_onnx()), "--faces", str(tiny_onnx())], env=PYTHON_ENV, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2 and "is not OpenCV's YuNet face detector" in done.stderr
    assert "Traceback" not in done.stderr


def test_cuda_without_a_gpu_is_named_as_such():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    from fmca_rt.errors import DeviceError

    with pytest.raises(DeviceError, match="PyTorch sees no CUDA GPU on this machine"):
        Detector(tiny_checkpoint(), device="cuda")


def test_a_training_py_in_the_working_folder_is_named(tmp_path):
    (tmp_path / "training.py").write_text("print('my own training script')\n")
    done = subprocess.run([sys.executable, "-m", "fmca_rt", "predict", str(grace_hopper_path()), "--model",
                           str(tiny_checkpoint())], cwd=tmp_path, env=PYTHON_ENV, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"{tmp_path / 'training.py'} hides fmca-rt's 'training' package" in done.stderr
    assert "not installed" not in done.stderr


BLOCK_TORCH = """
import importlib.abc, sys
class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "onnx", "onnxruntime"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, NotInstalled())
from fmca_rt.cli import main
sys.exit(main(["benchmark", "--model", "tiny", "--quick"]))
"""


def test_the_benchmark_in_a_core_install_names_the_extra():
    done = subprocess.run([sys.executable, "-c", BLOCK_TORCH], env=PYTHON_ENV, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "needs 'torch', which is not installed: pip install 'fmca-rt[train,export]'" in done.stderr
