"""`export.trt_builder.build_plan`: what each TensorRT generation is asked to do, the timing cache, the progress
shown while building. TensorRT's builder is stood in for by `tensorrt_fake_builder`; where NVIDIA's bindings import
(the child processes of test_tensorrt_bindings.py) the enums and base classes are the real ones of that version
and every call is checked against the real signatures."""

import logging

import pytest

from export.trt_builder import BuildRequest, build_plan
from export.trt_options import BatchProfile, plan_precision
from export.trt_progress import progress_monitor
from fmca_rt.backends.tensorrt_env import is_strongly_typed_only
from fmca_rt.errors import EngineError
from tensorrt_fake_builder import fake_build_api
from tensorrt_fakes import generations

pytestmark = pytest.mark.trt_api


@pytest.fixture(params=generations())
def generation(request):
    return request.param


def request_for(trt, tmp_path, precision, timing_cache=None):
    return BuildRequest(tmp_path / "m.onnx", "pixels", 224, BatchProfile(1, 4, 8), 1 << 30,
                        plan_precision(precision, is_strongly_typed_only(trt)), timing_cache)


def layers(world, *kinds):
    return [world.layer(getattr(world.trt.LayerType, kind), getattr(world.trt, dtype)) for kind, dtype in kinds]


def test_precision_plans_per_generation():
    assert plan_precision("fp16", strongly_typed_only=False).builder_flags == ("FP16", "PREFER_PRECISION_CONSTRAINTS")
    assert plan_precision("fp16", strongly_typed_only=False).keep_fp32_layers
    assert plan_precision("fp16", strongly_typed_only=True).onnx_conversion == "fp16"
    assert plan_precision("fp16", strongly_typed_only=True).builder_flags == ()
    assert plan_precision("int8", strongly_typed_only=False).calibrator
    assert plan_precision("int8", strongly_typed_only=True).onnx_conversion == "int8-qdq"
    assert plan_precision("fp32", strongly_typed_only=True) == plan_precision("fp32", strongly_typed_only=False)


def test_the_generation_is_told_by_the_api_present(generation):
    trt, _ = fake_build_api(generation)
    assert is_strongly_typed_only(trt) == (generation >= 11)


def test_fp16_build_on_each_generation(generation, tmp_path):
    trt, world = fake_build_api(generation, layers=[])
    world.layers = layers(world, ("CONVOLUTION", "float32"), ("NORMALIZATION", "float32"), ("SOFTMAX", "float32"),
                          ("REDUCE", "float32"), ("REDUCE", "int64"), ("MATRIX_MULTIPLY", "float32"))
    assert build_plan(trt, request_for(trt, tmp_path, "fp16")) == b"serialized plan"
    # No creation flags: 10 builds weakly typed; 11 only strongly typed and ignores its deprecated STRONGLY_TYPED.
    assert ("network flags", 0) in world.calls
    assert ("profile", ("pixels", ((1, 3, 224, 224), (4, 3, 224, 224), (8, 3, 224, 224)))) in world.calls
    assert ("workspace", trt.MemoryPoolType.WORKSPACE, 1 << 30) in world.calls
    pinned = [(layer.type.name, layer.get_input(0).dtype) for layer in world.layers
              if getattr(layer, "precision", None) == trt.float32]
    if generation == 10:  # flags by name; floating normalization, softmax and reductions in float32, not int ones
        assert world.flags() == ["FP16", "PREFER_PRECISION_CONSTRAINTS"]
        assert pinned == [("NORMALIZATION", trt.float32), ("SOFTMAX", trt.float32), ("REDUCE", trt.float32)]
        assert all(layer.outputs == ({0: trt.float32} if layer.precision is not None else {})
                   for layer in world.layers)
    else:  # strongly typed: the ONNX's types decide, nothing is set
        assert world.flags() == [] and pinned == []


def test_parse_failure_is_one_sentence_with_tensorrts_reason(generation, tmp_path):
    trt, _ = fake_build_api(generation, layers=[], parse_error="In node 3 (HaarDWT): plugin not found")
    with pytest.raises(EngineError, match=r"could not parse the ONNX model: In node 3 \(HaarDWT\): plugin not found"):
        build_plan(trt, request_for(trt, tmp_path, "fp32"))


def test_a_timing_cache_is_reused_when_tensorrt_accepts_it(generation, tmp_path, caplog):
    trt, world = fake_build_api(generation, layers=[])
    cache = tmp_path / "timing.cache"
    with caplog.at_level(logging.INFO, "fmca_rt.export"):
        build_plan(trt, request_for(trt, tmp_path, "fp32", cache))
        assert cache.read_bytes() == b"+timings"  # a first build starts empty and writes its cache
        build_plan(trt, request_for(trt, tmp_path, "fp32", cache))
    assert world.calls.count(("timing cache", b"+timings", False, True)) == 1
    assert cache.read_bytes() == b"+timings+timings" and f"Reusing the timing cache {cache}" in caplog.text


def test_a_refused_timing_cache_is_replaced_not_silently_ignored(generation, tmp_path, caplog):
    """TensorRT refuses a cache from another GPU or version (set_timing_cache returns False)."""
    trt, world = fake_build_api(generation, layers=[], accepts_timing_cache=False)
    cache = tmp_path / "timing.cache"
    cache.write_bytes(b"from another GPU")
    with caplog.at_level(logging.WARNING, "fmca_rt.export"):
        assert build_plan(trt, request_for(trt, tmp_path, "fp32", cache)) == b"serialized plan"
    assert [c[3] for c in world.calls if c[0] == "timing cache"] == [False, True]
    assert cache.read_bytes() == b"+timings" and "written for another TensorRT version or GPU" in caplog.text


def test_an_unwritable_timing_cache_does_not_lose_the_engine(generation, tmp_path, caplog):
    trt, _ = fake_build_api(generation, layers=[])
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    with caplog.at_level(logging.WARNING, "fmca_rt.export"):
        assert build_plan(trt, request_for(trt, tmp_path, "fp32", blocked / "timing.cache")) == b"serialized plan"
    assert "Could not save the timing cache" in caplog.text


def test_the_build_reports_its_progress(generation, tmp_path, caplog):
    trt, _ = fake_build_api(generation, layers=[], phases=(("Building engine", 3), ("Serializing", 1)))
    with caplog.at_level(logging.INFO, "fmca_rt.export"):
        build_plan(trt, request_for(trt, tmp_path, "fp32"))
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("TensorRT build:")]
    assert [line.rsplit(" at ", 1)[0] for line in lines] == [
        "TensorRT build: Building engine (3 steps)", "TensorRT build: Building engine done",
        "TensorRT build: Serializing (1 steps)", "TensorRT build: Serializing done"]


def test_long_phases_report_steps_at_most_every_interval(generation, caplog):
    trt, _ = fake_build_api(generation)
    now = [0.0]
    monitor = progress_monitor(trt, interval=10, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, "fmca_rt.export"):
        monitor.phase_start("Tactic search", None, 100)
        monitor.phase_start("Layer 1", "Tactic search", 5)  # nested phases are not announced
        for step in range(100):
            now[0] += 1.0
            assert monitor.step_complete("Tactic search", step) is True
        monitor.phase_finish("Layer 1")
        monitor.phase_finish("Tactic search")
    steps = [r.getMessage() for r in caplog.records if ", step " in r.getMessage()]
    assert steps[0] == "TensorRT build: Tactic search, step 10 of 100, at 10 s" and len(steps) == 10
    assert not any("Layer 1" in r.getMessage() for r in caplog.records)
