"""The face detector's network as an ONNX artifact for TensorRT: one packed output, a fixed square canvas.

    python -m export.face_onnx [--network centerface] [--canvas 480] --output fmca-faces.onnx
    python -m export.build_engine --onnx fmca-faces.onnx --fp16 --batch 1:4:8 --output fmca-faces.engine
    Detector("fmca.engine", faces="fmca-faces.engine")          # detection and classification on the GPU

The network comes from its installed package (`fmca_rt.face_networks`). Its outputs are concatenated in the
graph into one output `detections` (exactly what `FaceNetwork.pack` does in ONNX Runtime), so the engine
has one input and one output like the classifier's; the input becomes B x 3 x canvas x canvas (dynamic
batch). The metadata (`kind: face-detector`, the network, its canvas) travels in `metadata_props` and from
there into the engine's sidecar. Before the file is written, ONNX Runtime checks that it computes what
the packaged network computes on the shipped photos.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from fmca_rt.atomic import atomic_path
from fmca_rt.backends.face_network import PACKED_OUTPUT, face_metadata
from fmca_rt.errors import ExportError, FMCAError
from fmca_rt.face_networks import DEFAULT_NETWORK, NETWORKS, FaceNetwork, face_network

PARITY_TOLERANCE = 1e-4


def packed_graph(network: FaceNetwork, canvas: int):
    """The network with its outputs concatenated into one, its input fixed to canvas x canvas."""
    import onnx

    if canvas < network.multiple or canvas % network.multiple:
        raise ExportError(f"--canvas must be a multiple of {network.multiple} pixels, not {canvas}.")
    model = onnx.load_from_string(network.onnx_bytes())
    graph = model.graph
    (value,) = [v for v in graph.input if v.name == network.input_name]
    dims = value.type.tensor_type.shape.dim
    dims[0].dim_param = "batch"
    for dim in dims[2:]:
        dim.dim_value = canvas
    graph.node.append(onnx.helper.make_node("Concat", list(network.output_names), [PACKED_OUTPUT],
                                            axis=network.pack_axis, name="fmca_pack_outputs"))
    rank = len(graph.output[0].type.tensor_type.shape.dim)
    del graph.output[:]
    shape = ["batch", *(f"{PACKED_OUTPUT}_{axis}" for axis in range(1, rank))]
    graph.output.append(onnx.helper.make_tensor_value_info(PACKED_OUTPUT, onnx.TensorProto.FLOAT, shape))
    onnx.helper.set_model_props(model, face_metadata(network, canvas).to_onnx_props())
    model.producer_name = "fmca-rt"
    onnx.checker.check_model(model)
    return model


def parity_error(network: FaceNetwork, packed_path: Path, canvas: int) -> float:
    """Max |difference| between the packed file and the packaged network on the shipped photos' canvases."""
    import onnxruntime as ort

    from fmca_rt.cnn_faces import square_canvas_blob

    from .face_samples import shipped_photos

    options = ort.SessionOptions()
    options.log_severity_level = 3
    reference = ort.InferenceSession(network.onnx_bytes(), options, providers=["CPUExecutionProvider"])
    candidate = ort.InferenceSession(str(packed_path), options, providers=["CPUExecutionProvider"])
    blob = square_canvas_blob(network, shipped_photos(), canvas)
    expected = network.pack(reference.run(list(network.output_names), {network.input_name: blob}))
    got = candidate.run([PACKED_OUTPUT], {network.input_name: blob})[0]
    return float(np.abs(expected - got).max())


def export_face_onnx(output: str | Path, network: str = DEFAULT_NETWORK, canvas: int | None = None) -> Path:
    spec = face_network(network)
    canvas = canvas or spec.input_size
    model = packed_graph(spec, canvas)
    output = Path(output)
    with atomic_path(output, ExportError) as temporary:
        temporary.write_bytes(model.SerializeToString())
        error = parity_error(spec, temporary, canvas)
        if not error <= PARITY_TOLERANCE:
            raise ExportError(f"The packed {network} graph differs from the packaged network by {error:.2e} "
                              f"(tolerance {PARITY_TOLERANCE:g}); {output} was not written.")
    return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m export.face_onnx", description=__doc__.split("\n\n")[0])
    parser.add_argument("--network", choices=sorted(NETWORKS), default=DEFAULT_NETWORK)
    parser.add_argument("--canvas", type=int, help="square input side in pixels (the network's default size)")
    parser.add_argument("--output", type=Path, default=Path("fmca-faces.onnx"))
    args = parser.parse_args(argv)
    try:
        output = export_face_onnx(args.output, args.network, args.canvas)
    except FMCAError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"Wrote {output} ({args.network}, checked against the packaged network in ONNX Runtime).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
