"""How fast each engine multiplies float32 matrices on this machine: part of the benchmark's machine line.

Ratios between engines move from machine to machine (one engine's matrix kernels may reach twice the
throughput of another's on one CPU and not on the next), so a results table needs this next to it. The
product timed is the shape of one ViT-B MLP layer at batch 1: (257 x 768) @ (768 x 3072), 1.21 GFLOP, run
with the benchmark's thread count; the best of a few runs, in GFLOP/s.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from ..idle import wait_until_idle

M, K, N = 257, 768, 3072
FLOPS = 2 * M * K * N


def _best_seconds(run: Callable[[], object], repeats: int) -> float:
    run()
    wait_until_idle()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def _operands() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.standard_normal((M, K), dtype=np.float32), rng.standard_normal((K, N), dtype=np.float32)


def _torch(threads: int):
    import torch

    a, b = (torch.from_numpy(x) for x in _operands())
    torch.set_num_threads(threads)
    return lambda: torch.matmul(a, b).numpy()


def _onnxruntime(threads: int):
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    a, b = _operands()
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "gemm",
                              [helper.make_tensor_value_info("a", TensorProto.FLOAT, [M, K])],
                              [helper.make_tensor_value_info("c", TensorProto.FLOAT, [M, N])],
                              [numpy_helper.from_array(b, "b")])
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(helper.make_model(graph).SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    return lambda: session.run(None, {"a": a})[0]


def _openvino(threads: int):
    import openvino as ov
    import openvino.opset13 as ops

    a, b = _operands()
    parameter = ops.parameter([M, K], np.float32)
    model = ov.Model([ops.matmul(parameter, ops.constant(b), False, False)], [parameter])
    request = ov.Core().compile_model(model, "CPU", {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY",
                                                     "INFERENCE_PRECISION_HINT": "f32"}).create_infer_request()
    return lambda: request.infer({0: a})[0]


# engine -> a factory (threads) of a function that computes the product and returns it as a NumPy array
ENGINES = {"torch": _torch, "onnxruntime": _onnxruntime, "openvino": _openvino}


def gemm_gflops(threads: int, engines: tuple[str, ...] = tuple(ENGINES), repeats: int = 10) -> dict[str, float]:
    """float32 GFLOP/s of each installed engine (an engine that is not installed is left out)."""
    rates = {}
    for name in engines:
        try:
            run = ENGINES[name](threads)
        except ImportError:
            continue
        rates[name] = round(FLOPS / _best_seconds(run, repeats) / 1e9, 1)
    return rates
