"""The face detector on NVIDIA GPUs: `export.face_onnx` -> `export.build_engine` -> sidecar -> the TensorRT face
backend -> `faces="x.engine"`. TensorRT is absent here: the build is recorded by the build tests' TensorRT
stand-in, and the engine's "kernel" is ONNX Runtime running the very ONNX the engine was built from, behind
the name-based engine API over the host-memory stand-in (data moves only on upload/download)."""

import types

import numpy as np
import pytest

from export import build_engine as build_module
from export.face_onnx import export_face_onnx
from fmca_rt.backends import tensorrt as tensorrt_module
from fmca_rt.backends.face_network import PACKED_OUTPUT
from fmca_rt.backends.tensorrt_env import GpuInfo
from fmca_rt.backends.tensorrt_sidecar import read_sidecar
from fmca_rt.cnn_faces import square_canvas_blob
from fmca_rt.errors import BackendError, ExportError, FaceDetectorError
from fmca_rt.face_networks import face_network
from fmca_rt.faces import make_face_detector
from fmca_rt.metadata import ModelMetadata

from sdk_images import astronaut_bgr, grace_hopper_bgr
from tensorrt_fake_builder import fake_build_api
from tensorrt_fakes import HostMemory

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")
CANVAS = 320  # small, to keep the tests quick


@pytest.fixture(scope="module")
def faces_onnx(tmp_path_factory):
    try:
        face_network("retinaface").weights_path()
    except FaceDetectorError as error:
        pytest.skip(str(error))
    return export_face_onnx(tmp_path_factory.mktemp("faces") / "faces.onnx", "retinaface", CANVAS)


class OnnxRuntimeEngine:
    """A TensorRT engine stand-in whose execution runs an ONNX file in ONNX Runtime on the bound buffers;
    `drift` is added to the box outputs, to play an engine that computes something else."""

    def __init__(self, onnx_path, memory, batches=(1, 2, 4), drift=0.0):
        options = ort.SessionOptions()
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        self.input_name, self.output_name = self.session.get_inputs()[0].name, self.session.get_outputs()[0].name
        self.memory, self.drift = memory, drift
        size = self.session.get_inputs()[0].shape[2]
        self.profile = tuple((b, 3, size, size) for b in batches)
        self.per_image = self.session.run(None, {self.input_name: np.zeros((1, 3, size, size), np.float32)})[0].shape[1:]

    num_io_tensors = 2

    def get_tensor_name(self, i):
        return (self.input_name, self.output_name)[i]

    def get_tensor_mode(self, name):
        return "input" if name == self.input_name else "output"

    def get_tensor_dtype(self, name):
        return np.float32

    def get_tensor_profile_shape(self, name, profile):
        return self.profile

    def create_execution_context(self):
        engine = self

        class Context:
            shape, addresses = None, {}

            def set_input_shape(self, name, shape):
                low, _, high = engine.profile
                self.shape = tuple(shape)
                return all(lo <= s <= hi for lo, s, hi in zip(low, shape, high))

            def get_tensor_shape(self, name):
                return self.shape if name == engine.input_name else (self.shape[0], *engine.per_image)

            def set_tensor_address(self, name, pointer):
                self.addresses[name] = pointer
                return True

            def execute_async_v3(self, stream):
                count = int(np.prod(self.shape))
                pixels = engine.memory.device[self.addresses[engine.input_name]].reshape(-1)[:count].reshape(self.shape)
                packed = engine.session.run([engine.output_name], {engine.input_name: pixels})[0]
                packed[..., :4] += engine.drift
                engine.memory.device[self.addresses[engine.output_name]].reshape(-1)[:packed.size] = packed.ravel()
                return True

        return Context()


@pytest.fixture()
def gpu(monkeypatch):
    """TensorRT 10 on an Orin, both for the build (recorded) and for loading engines (ONNX Runtime inside)."""
    build_trt, _ = fake_build_api(10)
    state = {"drift": 0.0, "onnx": None}

    class Runtime:
        def __init__(self, logger):
            pass

        def deserialize_cuda_engine(self, plan):
            assert plan == b"serialized plan"
            return OnnxRuntimeEngine(state["onnx"], memory, drift=state["drift"])

    class Logger:
        WARNING = 2

        def __init__(self, severity):
            pass

    memory = HostMemory()
    runtime_trt = types.SimpleNamespace(TensorIOMode=types.SimpleNamespace(INPUT="input", OUTPUT="output"),
                                        nptype=lambda dtype: dtype, __version__=build_trt.__version__, Runtime=Runtime,
                                        Logger=Logger)
    orin = GpuInfo("Jetson AGX Orin", (8, 7))
    monkeypatch.setattr(build_module, "import_tensorrt", lambda: build_trt)
    monkeypatch.setattr(build_module, "current_gpu", lambda: orin)
    monkeypatch.setattr(tensorrt_module, "import_tensorrt", lambda: runtime_trt)
    monkeypatch.setattr(tensorrt_module, "current_gpu", lambda index: orin)
    monkeypatch.setattr(tensorrt_module.DeviceMemory, "create", staticmethod(lambda kind, index=0: memory))
    return state


def test_face_onnx_has_one_packed_output_and_its_metadata(faces_onnx):
    import onnx

    model = onnx.load(str(faces_onnx))
    assert [o.name for o in model.graph.output] == [PACKED_OUTPUT]
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim][1:] == [3, CANVAS, CANVAS]
    metadata = ModelMetadata.from_onnx_props({p.key: p.value for p in model.metadata_props})
    assert metadata.config["kind"] == "face-detector" and metadata.config["network"] == "retinaface"
    assert metadata.image_size == CANVAS and metadata.output_name == PACKED_OUTPUT


def test_face_onnx_refuses_a_canvas_off_the_stride(tmp_path, faces_onnx):
    with pytest.raises(ExportError, match="--canvas must be a multiple of 32 pixels, not 300"):
        export_face_onnx(tmp_path / "f.onnx", "retinaface", 300)
    assert not (tmp_path / "f.onnx").exists()


def test_build_validate_and_detect_on_the_engine(faces_onnx, gpu, tmp_path):
    gpu["onnx"] = faces_onnx
    engine = tmp_path / "faces.engine"
    assert build_module.main(["--onnx", str(faces_onnx), "--fp16", "--batch", "1:2:4", "--output", str(engine)]) == 0
    sidecar = read_sidecar(engine)
    assert sidecar.metadata.config["kind"] == "face-detector" and sidecar.precision == "fp16"
    validation = sidecar.extra["validation"]
    assert validation["faces"] == validation["matched"] >= 4 and validation["extra"] == 0

    detector = make_face_detector(str(engine))
    assert detector.backend.name == "tensorrt" and detector.backend.fixed_canvas == CANVAS
    images = [grace_hopper_bgr(), astronaut_bgr(), np.zeros((720, 1280, 3), np.uint8)]
    got = detector.detect_batch(images)
    # the same faces ONNX Runtime finds on the same square canvases
    network = face_network("retinaface")
    session = ort.InferenceSession(str(faces_onnx), providers=["CPUExecutionProvider"])
    packed = session.run([PACKED_OUTPUT], {"input": square_canvas_blob(network, images, CANVAS)})[0]
    for image, faces, output in zip(images, got, packed):
        box = detector.letterbox(image.shape)
        assert faces == box.to_faces(network.decode(output, CANVAS, CANVAS, network.score_threshold), image.shape)
    assert [len(faces) for faces in got] == [1, 1, 0]


def test_an_engine_that_moves_the_boxes_is_not_written(faces_onnx, gpu, tmp_path, capsys):
    gpu["onnx"], gpu["drift"] = faces_onnx, 0.5  # box deltas off by half an anchor step
    engine = tmp_path / "faces.engine"
    assert build_module.main(["--onnx", str(faces_onnx), "--fp16", "--output", str(engine)]) == 1
    assert "does not find the faces ONNX Runtime float32 finds" in capsys.readouterr().err
    assert not engine.exists() and list(tmp_path.iterdir()) == []


def test_a_classifier_engine_is_not_a_face_detector(tiny_onnx_56px, gpu, tmp_path):
    gpu["onnx"] = tiny_onnx_56px
    engine = tmp_path / "fmca.engine"
    assert build_module.main(["--onnx", str(tiny_onnx_56px), "--no-validate", "--output", str(engine)]) == 0
    with pytest.raises(BackendError, match="is not a face detector engine"):
        make_face_detector(str(engine))
