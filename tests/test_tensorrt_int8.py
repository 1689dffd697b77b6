"""INT8 calibration data flow: face crops -> the model's preprocessing -> fixed-size batches -> a TensorRT 10
calibrator on the GPU, or ONNX Runtime's quantizer writing TensorRT 11's symmetric Q/DQ graph."""

import cv2
import numpy as np
import onnx
import pytest

from export.trt_int8 import CalibrationSet, calibration_cache_path, entropy_calibrator, quantize_qdq
from fmca_rt.errors import ConfigError
from fmca_rt.metadata import ModelMetadata
from fmca_rt.preprocess import preprocess
from sdk_images import write_face_crops
from tensorrt_fakes import HostMemory, generations, tensorrt_api

METADATA = ModelMetadata(config={"image_size": 56, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
                                 "class_names": ["real", "fake"], "preprocessing": "pil-bilinear"})


@pytest.fixture(scope="module")
def calib_dir(tmp_path_factory):
    folder = write_face_crops(tmp_path_factory.mktemp("calib"))
    (folder / "real" / "broken.jpg").write_bytes(b"not an image")
    return folder


def test_calibration_set_is_the_runtime_preprocessing_of_every_readable_image(calib_dir):
    calibration = CalibrationSet.from_folder(calib_dir, METADATA)
    assert calibration.skipped == 1 and len(calibration.files) == 12
    decoded = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in calibration.files]
    np.testing.assert_array_equal(calibration.pixels, preprocess(decoded, 56, METADATA.mean, METADATA.std))
    assert [len(b) for b in calibration.batches(5)] == [5, 5]  # full batches only: TensorRT calibrates at OPT
    with pytest.raises(ConfigError, match="at least 16 images"):
        next(calibration.batches(16))


@pytest.mark.trt_api
def test_tensorrt10_calibrator_uploads_each_batch_then_stops_and_keeps_its_cache(calib_dir, tmp_path):
    if 10 not in generations():
        pytest.skip("TensorRT 11 has no calibrators (INT8 is the Q/DQ graph below)")
    calibration = CalibrationSet.from_folder(calib_dir, METADATA)
    trt = tensorrt_api(10)  # NVIDIA's IInt8EntropyCalibrator2 where the bindings import
    memory = HostMemory()
    cache = tmp_path / "fmca.engine.calib"
    calibrator = entropy_calibrator(trt, calibration, 4, memory, cache)
    assert calibrator.get_batch_size() == 4 and calibrator.read_calibration_cache() is None
    served = []
    while (pointers := calibrator.get_batch(["pixels"])) is not None:
        (pointer,) = pointers
        served.append(memory.device[pointer].copy())  # what the GPU would read at that address
    np.testing.assert_array_equal(np.concatenate(served), calibration.pixels[:12])
    calibrator.write_calibration_cache(memoryview(b"TRT-cache"))
    assert entropy_calibrator(trt, calibration, 4, memory, cache).read_calibration_cache() == b"TRT-cache"


def test_the_calibration_cache_is_named_by_the_model_the_images_and_the_batch(calib_dir, tmp_path):
    calibration = CalibrationSet.from_folder(calib_dir, METADATA)
    engine = tmp_path / "fmca.engine"
    first = calibration_cache_path(engine, "a" * 64, calibration, 4)
    assert first.parent == tmp_path and first.name.startswith("fmca.engine.") and first.suffix == ".calib"
    assert calibration_cache_path(engine, "a" * 64, calibration, 4) == first
    fewer = CalibrationSet(calibration.pixels[:8], calibration.files[:8], 0)
    others = [calibration_cache_path(engine, "b" * 64, calibration, 4), calibration_cache_path(engine, "a" * 64,
              fewer, 4), calibration_cache_path(engine, "a" * 64, calibration, 2)]
    assert len({first, *others}) == 4


def test_tensorrt11_qdq_graph_is_symmetric_int8_and_close_to_float32(tiny_onnx_56px, calib_dir, tmp_path):
    from export.ort_session import cpu_session

    model = onnx.load(str(tiny_onnx_56px))
    metadata = ModelMetadata.from_onnx_props({p.key: p.value for p in model.metadata_props})
    calibration = CalibrationSet.from_folder(calib_dir, metadata)
    output = quantize_qdq(tiny_onnx_56px, calibration, tmp_path / "tiny.qdq.onnx", batch_size=4)
    quantized = onnx.load(str(output))
    initializers = {i.name: onnx.numpy_helper.to_array(i) for i in quantized.graph.initializer}
    quantize_nodes = [n for n in quantized.graph.node if n.op_type == "QuantizeLinear"]
    assert quantize_nodes
    for node in quantize_nodes:  # TensorRT takes signed INT8 with zero point 0 only
        zero_point = initializers[node.input[2]]
        assert zero_point.dtype == np.int8 and not zero_point.any()
    weight_outputs = {n.output[0] for n in quantized.graph.node
                      if n.op_type == "DequantizeLinear" and initializers.get(n.input[0], np.zeros(0)).dtype == np.int8}
    weight_readers = {n.op_type for n in quantized.graph.node if weight_outputs.intersection(n.input)}
    assert weight_readers == {"Conv", "MatMul", "Gemm"}  # only those ops have INT8 weights
    assert ModelMetadata.from_onnx_props({p.key: p.value for p in quantized.metadata_props}) == metadata

    pixels = calibration.pixels
    reference = cpu_session(tiny_onnx_56px).run(None, {"pixels": pixels})[0]
    int8 = cpu_session(output).run(None, {"pixels": pixels})[0]
    p_ref, p_int8 = (np.exp(x)[:, 1] / np.exp(x).sum(axis=1) for x in (reference, int8))
    assert not np.array_equal(reference, int8)
    assert np.abs(p_ref - p_int8).max() < 0.05


def test_plugin_graphs_are_refused_for_qdq(tmp_path, calib_dir):
    graph = onnx.helper.make_graph([onnx.helper.make_node("HaarDWT", ["x"], ["y"], domain="fmca")], "g",
                                   [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 4, 4])],
                                   [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)])
    path = tmp_path / "plugins.onnx"
    onnx.save(onnx.helper.make_model(graph), path)
    with pytest.raises(ConfigError, match="without --plugins"):
        quantize_qdq(path, CalibrationSet.from_folder(calib_dir, METADATA), tmp_path / "out.onnx")
