"""Launching an AOT kernel the way TensorRT's plugin launcher does: the PTX (or cubin) `kernels.aot` wrote,
loaded through the CUDA driver, launched with the grid, block, shared memory and arguments its manifest gives.

Grid, block and shared memory come from the TensorRT plugin's own arithmetic (`export.trt_plugin_math.
launch_plan`); the arguments are packed here: input pointers, int32 scalars, output pointers, then a null pointer for each parameter the entry takes
beyond them (Triton's cubin keeps its two hidden scratch pointers; the PTX for TensorRT has none). The driver is
reached through what the machine has, CuPy or NVIDIA's cuda-python; `driver_launcher()` says which.
"""

from __future__ import annotations

import ctypes
import importlib
from collections.abc import Mapping
from pathlib import Path

from export.trt_plugin_math import LaunchPlan, evaluate, int_cdiv


def kernel_arguments(entry: dict, pointers: Mapping[str, int], sizes: Mapping, parameters: int) -> list[tuple[str, int]]:
    """(type, value) for every parameter of the entry point, in order: "u64" pointers and "i32" scalars.

    `pointers` maps each tensor the manifest names (x, out; qp, ..., af) to a device address; `parameters` is
    how many parameters the loaded entry declares (trailing ones beyond the manifest's arguments get null)."""
    arguments = []
    for argument in entry["arguments"]:
        if argument["kind"] == "int32":
            value = evaluate(argument["value"], sizes, int_cdiv)
            if not -2 ** 31 <= value < 2 ** 31:
                raise ValueError(f"{argument['name']} = {value} does not fit the kernel's int32 argument.")
            arguments.append(("i32", value))
        else:
            arguments.append(("u64", int(pointers[argument["tensor"]])))
    if parameters < len(arguments):
        raise ValueError(f"{entry['name']} declares {parameters} parameters but its manifest lists "
                         f"{len(arguments)} arguments.")
    return arguments + [("u64", 0)] * (parameters - len(arguments))


class CupyLauncher:
    name = "cupy"

    def __init__(self):
        self.cupy = importlib.import_module("cupy")

    def driver_version(self) -> int:
        return int(self.cupy.cuda.runtime.driverGetVersion())

    def load(self, path: Path, kernel: str):
        return self.cupy.RawModule(path=str(path)).get_function(kernel)

    def launch(self, function, plan: LaunchPlan, arguments, stream: int, opt_in: bool) -> None:
        import numpy as np

        if opt_in:
            function.max_dynamic_shared_size_bytes = plan.shared_mem
        values = tuple(np.uint64(v) if kind == "u64" else np.int32(v) for kind, v in arguments)
        with self.cupy.cuda.ExternalStream(stream):
            function(plan.grid, (plan.block_x, 1, 1), values, shared_mem=plan.shared_mem)


class CudaPythonLauncher:
    name = "cuda-python"

    def __init__(self):
        try:
            self.driver = importlib.import_module("cuda.bindings.driver")
        except ImportError:
            self.driver = importlib.import_module("cuda.cuda")  # cuda-python before 12.6

    def _check(self, result):
        error, *values = result
        if int(error) != 0:
            raise RuntimeError(f"CUDA driver error {error}")
        return values[0] if len(values) == 1 else values

    def driver_version(self) -> int:
        return int(self._check(self.driver.cuDriverGetVersion()))

    def load(self, path: Path, kernel: str):
        data = path.read_bytes() + (b"\0" if path.suffix == ".ptx" else b"")
        module = self._check(self.driver.cuModuleLoadData(data))
        return self._check(self.driver.cuModuleGetFunction(module, kernel.encode()))

    def launch(self, function, plan: LaunchPlan, arguments, stream: int, opt_in: bool) -> None:
        if opt_in:
            attribute = self.driver.CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
            self._check(self.driver.cuFuncSetAttribute(function, attribute, plan.shared_mem))
        types = tuple(ctypes.c_uint64 if kind == "u64" else ctypes.c_int32 for kind, _ in arguments)
        values = tuple(v for _, v in arguments)
        self._check(self.driver.cuLaunchKernel(function, *plan.grid, plan.block_x, 1, 1, plan.shared_mem,
                                               self.driver.CUstream(stream), (values, types), 0))


def driver_launcher():
    """(a launcher, "") with the first of CuPy and cuda-python that imports, else (None, what is missing)."""
    missing = []
    for launcher in (CupyLauncher, CudaPythonLauncher):
        try:
            return launcher(), ""
        except ImportError as error:
            missing.append(f"{launcher.name} ({error})")
    return None, "neither CuPy nor cuda-python is importable here: " + "; ".join(missing)
