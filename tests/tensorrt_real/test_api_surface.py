"""The TensorRT API the code uses exists, with the same names and arguments, in NVIDIA's bindings of this version;
the stand-ins used by the other TensorRT tests offer nothing the real classes of their generation lack.

The build and backend tests marked `trt_api` run in this same process against the real module too: there every
call on a stand-in is checked against the real class (tensorrt_api_check). What those runs cannot see is listed
here: names the code only probes (`hasattr`), the classes the code subclasses, and the stand-ins themselves."""

import inspect
import os

import numpy as np
import pytest

import tensorrt_fakes
from export.trt_builder import FP32_LAYER_TYPES, make_logger
from export.trt_options import plan_precision
from export.trt_progress import progress_monitor
from fmca_rt.backends.tensorrt_env import is_strongly_typed_only
from tensorrt_api_check import overloads, public_members
from tensorrt_fake_builder import FAKE_CLASSES, BuildWorld, FakeParser
from tensorrt_fakes import FakeContext, FakeEngine, FakeRuntime, HostMemory, fake_tensorrt

pytestmark = pytest.mark.trt_api


def test_this_process_runs_the_expected_bindings(trt):
    expected = os.environ.get("FMCA_EXPECTED_TENSORRT")
    assert expected is None or trt.__version__ == expected
    assert "tensorrt_bindings" in trt.__file__ and tensorrt_fakes._real_tensorrt is trt
    assert tensorrt_fakes.generations() == [int(trt.__version__.split(".")[0])]


def test_the_generation_is_recognised(trt, generation):
    assert is_strongly_typed_only(trt) == (generation >= 11)
    assert hasattr(trt.BuilderFlag, "FP16") == (generation == 10)


def test_the_fake_module_offers_nothing_this_generation_lacks(trt, generation):
    fake = fake_tensorrt(generation)
    for name, value in vars(fake).items():
        if name.startswith("__"):
            continue
        assert hasattr(trt, name), f"tensorrt {trt.__version__} has no {name}"
        real = getattr(trt, name)
        if hasattr(value, "__members__"):  # an enum: its members, and the values the code may rely on
            missing = set(value.__members__) - set(real.__members__)
            assert not missing, f"tensorrt {trt.__version__}: {name} lacks {sorted(missing)}"
            if name == "NetworkDefinitionCreationFlag":
                assert {k: int(v) for k, v in value.__members__.items()} == {
                    k: int(real.__members__[k]) for k in value.__members__}
        elif isinstance(value, type):
            assert public_members(value) <= public_members(real) | {"Severity", "WARNING"}
    assert set(fake.ILogger.Severity.__members__) <= set(trt.ILogger.Severity.__members__)
    for alias in ("float32", "float16", "int32", "int64", "int8"):
        assert getattr(fake, alias).name == getattr(trt, alias).name


def _instances(trt, generation):
    world = BuildWorld(generation, layers=[])
    world.trt = trt
    tensor, layer, network, _, profile, cache, config, builder = FAKE_CLASSES[generation]
    engine = FakeEngine(trt, HostMemory(), lambda pixels: pixels)
    return [tensor(trt.float32), layer(trt.LayerType.SOFTMAX, trt.float32), network(), FakeParser(world, None),
            profile(), cache(b""), config(world), builder(world), engine, FakeContext(engine), FakeRuntime(None, {})]


# Attributes the stand-ins keep only for the tests to read: what they were asked and what they computed.
INSPECTION = {"addresses", "runs", "shape_calls", "streams", "state", "replays", "shape", "memory", "compute",
              "names", "classes", "profile", "contexts", "input_dtype", "deserialized", "shapes", "data", "outputs"}


def test_the_stand_ins_offer_nothing_their_real_classes_lack(trt, generation):
    settable = {"precision", "int8_calibrator", "progress_monitor", "dtype"}  # what the code may assign
    for fake in _instances(trt, generation):
        real = getattr(trt, type(fake).imitates)
        members = public_members(type(fake)) | {k for k in vars(fake) if not k.startswith("_")}
        missing = sorted(members - public_members(real) - INSPECTION)
        assert not missing, f"TensorRT {trt.__version__}'s {real.__name__} lacks {missing}"
        for name in members & settable & public_members(real):
            member = getattr(real, name)
            assert isinstance(member, property), f"{real.__name__}.{name}"
        for name, method in inspect.getmembers(type(fake), inspect.isfunction):
            if name.startswith("_") or not hasattr(real, name):
                continue
            ours = [p for p in inspect.signature(method).parameters if p != "self"]
            theirs = [[p.name for p in overload] for overload in overloads(getattr(real, name))]
            assert any(ours == names[:len(ours)] and all(p.has_default for p in overload[len(ours):])
                       for names, overload in zip(theirs, overloads(getattr(real, name)))), (
                f"{real.__name__}.{name}{tuple(ours)} is not one of TensorRT {trt.__version__}'s {theirs}")


def test_names_the_code_only_probes_exist(trt, generation):
    """`pin_layers_to_fp32` skips LayerType names it does not find: they must all exist where it runs (10)."""
    assert all(hasattr(trt.LayerType, name) for name in FP32_LAYER_TYPES)
    for precision in ("fp32", "fp16", "int8"):
        for flag in plan_precision(precision, is_strongly_typed_only(trt)).builder_flags:
            assert hasattr(trt.BuilderFlag, flag), f"{trt.__version__} has no BuilderFlag.{flag}"


def _overridden(subclass, base):
    """(name, our parameter count, the real method's parameter counts) for each method the subclass defines."""
    for name, method in vars(subclass).items():
        if callable(method) and not name.startswith("_"):
            real = getattr(base, name, None)
            assert real is not None, f"{base.__name__} has no {name}: TensorRT would never call ours"
            yield name, len(inspect.signature(method).parameters) - 1, {len(o) for o in overloads(real)}


def test_the_classes_the_code_derives_from_tensorrt_match_their_bases(trt, generation):
    from export.trt_int8 import CalibrationSet, entropy_calibrator

    made = [(make_logger(trt), trt.ILogger), (progress_monitor(trt), trt.IProgressMonitor)]
    if generation == 10:
        calibration = CalibrationSet(np.zeros((2, 3, 4, 4), np.float32), (), 0)
        made.append((entropy_calibrator(trt, calibration, 2, HostMemory(), None), trt.IInt8EntropyCalibrator2))
    for instance, base in made:
        assert isinstance(instance, base)
        for name, ours, theirs in _overridden(type(instance), base):
            assert ours in theirs, f"{type(instance).__name__}.{name} takes {ours} arguments, {base.__name__} {theirs}"
