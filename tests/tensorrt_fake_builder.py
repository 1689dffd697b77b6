"""A stand-in for TensorRT's builder, network, ONNX parser and builder config: the objects only libnvinfer makes.

`fake_build_api(generation, ...)` returns the `tensorrt` module the build code gets (NVIDIA's real bindings with
these factories where they import, `tensorrt_fakes.fake_tensorrt` elsewhere) and the `BuildWorld` that records
what the build asked for. The fake parser turns each ONNX node into a layer of the matching `LayerType` whose input
has the node's inferred element type, so pinning decisions see what a real network would show. The builder follows
TensorRT's calibration protocol when given a calibrator, walks the progress monitor through the `phases` and
returns `plan` (or None when the monitor cancels).
"""

from tensorrt_fakes import FakeEngine, FakeRuntime, tensorrt_api

LAYER_OF_OP = {"Conv": "CONVOLUTION", "MatMul": "MATRIX_MULTIPLY", "Gemm": "MATRIX_MULTIPLY",
               "LayerNormalization": "NORMALIZATION", "Softmax": "SOFTMAX", "Cast": "CAST", "Relu": "ACTIVATION",
               "Gelu": "ACTIVATION", "Reshape": "SHUFFLE", "Transpose": "SHUFFLE", "Flatten": "SHUFFLE",
               "MaxPool": "POOLING", "AveragePool": "POOLING", "GlobalAveragePool": "POOLING"}
ONNX_TO_TRT_TYPE = {1: "float32", 10: "float16", 6: "int32", 7: "int64", 3: "int8"}


class FakeTensor:
    imitates = "ITensor"

    def __init__(self, dtype):
        self.dtype = dtype


class FakeLayer:
    """A layer as TensorRT 11 offers it: no precision controls (a strongly typed network decides the types)."""

    imitates = "ILayer"

    def __init__(self, layer_type, input_dtype, name=""):
        self.type, self.name, self.num_inputs, self.num_outputs = layer_type, name, 1, 1
        self._input = FakeTensor(input_dtype)

    def get_input(self, index):
        return self._input


class FakeLayer10(FakeLayer):
    """TensorRT 10's layer: precision and output types can be pinned."""

    def __init__(self, layer_type, input_dtype, name=""):
        super().__init__(layer_type, input_dtype, name)
        self.precision, self.outputs = None, {}

    def set_output_type(self, index, dtype):
        self.outputs[index] = dtype


class FakeNetwork:
    imitates = "INetworkDefinition"

    def __init__(self):
        self._layers = []

    @property
    def num_layers(self):
        return len(self._layers)

    def get_layer(self, index):
        return self._layers[index]


class FakeParser:
    imitates = "OnnxParser"

    def __init__(self, world, network):
        self._world, self._network = world, network

    @property
    def num_errors(self):
        return int(self._world.parse_error is not None)

    def get_error(self, index):
        return self._world.parse_error

    def parse_from_file(self, model):
        self._world.calls.append(("parse", model))
        self._world.parsed.append(model)
        if self._world.parse_error is not None:
            return False
        self._network._layers = list(self._world.layers if self._world.layers is not None
                                     else self._world.layers_of(model))
        return True


class FakeProfile:
    imitates = "IOptimizationProfile"

    def set_shape(self, input, min, opt, max):
        self.shapes = (input, (tuple(min), tuple(opt), tuple(max)))


class FakeTimingCache:
    imitates = "ITimingCache"

    def __init__(self, data):
        self.data = bytes(data)

    def serialize(self):
        return self.data + b"+timings"


class FakeConfig:
    """TensorRT 11's builder config (no calibrator); `FakeConfig10` adds TensorRT 10's."""

    imitates = "IBuilderConfig"

    def __init__(self, world):
        self._world, self._timing_cache = world, None
        self.progress_monitor = None

    def set_memory_pool_limit(self, pool, pool_size):
        self._world.calls.append(("workspace", pool, pool_size))

    def add_optimization_profile(self, profile):
        self._world.calls.append(("profile", profile.shapes))
        self._world.profile = profile.shapes[1]

    def set_flag(self, flag):
        self._world.calls.append(("flag", flag.name))

    def create_timing_cache(self, serialized_timing_cache):
        return FakeTimingCache(serialized_timing_cache)

    def set_timing_cache(self, cache, ignore_mismatch):
        accepted = not cache.data or self._world.accepts_timing_cache
        self._world.calls.append(("timing cache", cache.data, ignore_mismatch, accepted))
        if accepted:
            self._timing_cache = cache
        return accepted

    def get_timing_cache(self):
        return self._timing_cache


class FakeConfig10(FakeConfig):
    def __init__(self, world):
        super().__init__(world)
        self.int8_calibrator = None

    def set_calibration_profile(self, profile):
        self._world.calls.append(("calibration profile", profile.shapes))


class FakeBuilder:
    imitates = "Builder"

    def __init__(self, world):
        self._world = world

    def create_network(self, flags=0):
        self._world.calls.append(("network flags", flags))
        return FakeNetwork()

    def create_builder_config(self):
        return (FakeConfig10 if self._world.generation == 10 else FakeConfig)(self._world)

    def create_optimization_profile(self):
        return FakeProfile()

    def build_serialized_network(self, network, config):
        calibrator = getattr(config, "int8_calibrator", None)  # TensorRT 10 only
        if calibrator is not None:  # TensorRT's protocol: a cached table, or batches until None, then cache it
            cached = calibrator.read_calibration_cache()
            self._world.calibration = ("cache", bytes(cached)) if cached else ("batches", 0)
            while not cached and calibrator.get_batch(["pixels"]) is not None:
                self._world.calibration = ("batches", self._world.calibration[1] + 1)
            if not cached:
                calibrator.write_calibration_cache(b"scales:" + self._world.parsed[-1].encode())
        monitor = config.progress_monitor
        if monitor is not None:
            for phase, steps in self._world.phases:
                monitor.phase_start(phase, None, steps)
                for step in range(steps):
                    if not monitor.step_complete(phase, step):
                        return None
                monitor.phase_finish(phase)
        self._world.built_from = self._world.parsed[-1]
        return self._world.plan


class BuildWorld:
    """What the fake TensorRT does (parse errors, timing-cache acceptance, the plan) and what it was asked."""

    def __init__(self, generation=10, layers=None, parse_error=None, accepts_timing_cache=True,
                 plan=b"serialized plan", phases=(("Building engine", 3),), plugin_node=None):
        self.generation, self.plugin_node = generation, plugin_node  # plugin_node(node): the parser meets a plugin
        self.layers, self.parse_error, self.accepts_timing_cache = layers, parse_error, accepts_timing_cache
        self.plan, self.phases = plan, phases
        self.calls, self.parsed, self.profile, self.built_from, self.trt = [], [], None, None, None
        self.calibration = None  # ("cache", bytes read) or ("batches", count served) after an INT8 build
        self.models = []  # the ONNX models parsed (when the layers come from them)

    def layers_of(self, onnx_path):
        import onnx

        model = onnx.shape_inference.infer_shapes(onnx.load(onnx_path))
        self.models.append(model)
        types_ = {v.name: v.type.tensor_type.elem_type for v in
                  [*model.graph.input, *model.graph.value_info, *model.graph.output]}
        types_.update({i.name: i.data_type for i in model.graph.initializer})
        trt = self.trt
        for node in model.graph.node:
            if node.domain == "fmca" and self.plugin_node is not None:
                self.plugin_node(node)
        return [self.layer(getattr(trt.LayerType, LAYER_OF_OP.get(node.op_type, "REDUCE" if node.op_type.startswith(
                    "Reduce") else "ELEMENTWISE")),
                          getattr(trt, ONNX_TO_TRT_TYPE.get(types_.get(node.input[0]) if node.input else 1, "float32")),
                          node.name)
                for node in model.graph.node]

    def layer(self, layer_type, input_dtype, name=""):
        return (FakeLayer10 if self.generation == 10 else FakeLayer)(layer_type, input_dtype, name)

    def flags(self):
        return [call[1] for call in self.calls if call[0] == "flag"]


def fake_build_api(generation, engine_compute=None, memory=None, **world_options):
    """(`tensorrt` module for the build, BuildWorld). With `engine_compute`, the plan deserializes (through
    `trt.Runtime`) to a `FakeEngine` computing `engine_compute(pixels)` in `memory` with the built profile."""
    world = BuildWorld(generation, **world_options)

    class EnginePlans(dict):
        def get(self, plan, default=None):
            if engine_compute is None or plan != world.plan or world.profile is None:
                return default
            low, opt, high = world.profile
            return FakeEngine(world.trt, memory, engine_compute, batches=(low[0], opt[0], high[0]), size=low[-1])

    plans = EnginePlans()
    world.trt = tensorrt_api(generation, Builder=lambda logger: FakeBuilder(world),
                             OnnxParser=lambda network, logger: FakeParser(world, network),
                             Runtime=lambda logger: FakeRuntime(logger, plans))
    return world.trt, world


FAKE_CLASSES = {10: (FakeTensor, FakeLayer10, FakeNetwork, FakeParser, FakeProfile, FakeTimingCache, FakeConfig10,
                     FakeBuilder),
                11: (FakeTensor, FakeLayer, FakeNetwork, FakeParser, FakeProfile, FakeTimingCache, FakeConfig,
                     FakeBuilder)}
