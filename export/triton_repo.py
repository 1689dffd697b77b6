"""A Triton Inference Server model repository for an exported FMCA-Net (TensorRT engine or ONNX file).

    python -m export.triton_repo --model fmca.engine --out REPO [--name fmca] [--max-batch N]
        [--instances N] [--kind auto|gpu|cpu] [--queue-delay-us US]
    tritonserver --model-repository REPO

writes `REPO/<name>/config.pbtxt` and `REPO/<name>/1/model.plan` (Triton's TensorRT backend) or
`model.onnx` (its ONNX Runtime backend). Everything in the config comes from the artifact: input and output
names and shapes from its metadata (the ONNX file's metadata_props or the engine's `fmca.engine.json`), the
largest batch from the engine's optimization profile (the dynamic batcher never forms a batch the engine
cannot take), its optimal batch as the preferred one. The metadata itself is stored as the config parameter
"fmca_rt", so clients (`fmca_rt.serve.TritonBackend`) preprocess and calibrate exactly as the Detector does.
Each config is checked by parsing it back with the model-config protobuf that `tritonclient` ships.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from fmca_rt.atomic import atomic_path, write_atomically
from fmca_rt.backends.tensorrt_sidecar import read_sidecar
from fmca_rt.errors import DependencyError, FMCAError, ServeError
from fmca_rt.metadata import ModelMetadata
from fmca_rt.serve.protocol import DEFAULT_MODEL_NAME, INSTALL_HINT, METADATA_PARAMETER

log = logging.getLogger("export.triton_repo")

# model file suffix -> (Triton backend, file name Triton looks for in the version folder)
TRITON_BACKENDS = {".engine": ("tensorrt", "model.plan"), ".plan": ("tensorrt", "model.plan"),
                   ".onnx": ("onnxruntime", "model.onnx")}
INSTANCE_KINDS = {"auto": "KIND_AUTO", "gpu": "KIND_GPU", "cpu": "KIND_CPU"}
DEFAULT_ONNX_MAX_BATCH = 16
DEFAULT_QUEUE_DELAY_US = 1000
READABLE = 0o644  # a server in a container often runs as another user


@dataclass(frozen=True)
class Artifact:
    """What a model file says about itself that a Triton config needs."""
    path: Path
    backend: str
    file_name: str
    metadata: ModelMetadata
    batch_max: int | None  # None: any batch (a dynamic ONNX batch axis)
    batch_opt: int | None = None
    note: str = ""


def model_config_pb2():
    try:
        from tritonclient.grpc import model_config_pb2
    except ImportError:
        raise DependencyError("Writing Triton configs needs the model-config protobuf that tritonclient ships, but "
                              f"'tritonclient[grpc]' is not installed: {INSTALL_HINT}.") from None
    return model_config_pb2


def read_artifact(path: str | os.PathLike) -> Artifact:
    path = Path(path)
    if path.suffix.lower() not in TRITON_BACKENDS:
        raise ServeError(f"Triton serves a .engine (TensorRT) or .onnx model, not {path.name}.")
    if not path.is_file():
        raise ServeError(f"Model file {path} does not exist.")
    backend, file_name = TRITON_BACKENDS[path.suffix.lower()]
    return _read_engine(path, file_name) if backend == "tensorrt" else _read_onnx(path, file_name)


def _read_engine(path: Path, file_name: str) -> Artifact:
    sidecar = read_sidecar(path)
    smallest, optimal, largest = sidecar.batch_profile
    if smallest != 1:
        raise ServeError(f"{path.name} takes only batches of {smallest} to {largest}; Triton's dynamic batcher sends any "
                         f"batch from 1, so rebuild it with --batch 1:{optimal}:{largest}: {sidecar.build_command}")
    note = (f"the engine runs only under TensorRT {sidecar.tensorrt_version} on compute capability "
            f"{'.'.join(map(str, sidecar.compute_capability))}: use a Triton release with that TensorRT")
    return Artifact(path, "tensorrt", file_name, sidecar.metadata, largest, optimal, note)


def _read_onnx(path: Path, file_name: str) -> Artifact:
    try:
        import onnx
    except ImportError:
        raise DependencyError("Reading an ONNX model needs 'onnx': pip install 'fmca-rt[export]'.") from None
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as error:  # onnx raises DecodeError, ValueError or its own types for a corrupt file
        raise ServeError(f"{path} is not a readable ONNX model ({type(error).__name__}).") from None
    if any(onnx.external_data_helper.uses_external_data(tensor) for tensor in model.graph.initializer):
        raise ServeError(f"{path.name} keeps its weights in external files; Triton's repository needs one file: "
                         "re-export it with `python -m export.onnx` (models under 2 GB are written whole).")
    props = {prop.key: prop.value for prop in model.metadata_props}
    metadata = ModelMetadata.from_onnx_props(props, source=str(path))
    inputs = [i for i in model.graph.input if i.name == metadata.input_name]
    if not inputs:
        raise ServeError(f"{path.name} has no input {metadata.input_name!r}; re-export it with `python -m export.onnx`.")
    batch_axis = inputs[0].type.tensor_type.shape.dim[0]
    if batch_axis.HasField("dim_value"):
        raise ServeError(f"{path.name} has a fixed batch of {batch_axis.dim_value}; Triton's dynamic batcher needs a "
                         "dynamic one: re-export it with `python -m export.onnx ... --batch dynamic`.")
    return Artifact(path, "onnxruntime", file_name, metadata, None)


def build_config(artifact: Artifact, name: str = DEFAULT_MODEL_NAME, max_batch: int | None = None,
                 instances: int = 1, kind: str = "auto", queue_delay_us: int = DEFAULT_QUEUE_DELAY_US):
    """The model's `inference.ModelConfig` (tritonclient's protobuf)."""
    if instances < 1:
        raise ServeError(f"--instances must be at least 1, got {instances}.")
    if queue_delay_us < 0:
        raise ServeError(f"--queue-delay-us cannot be negative, got {queue_delay_us}.")
    if kind not in INSTANCE_KINDS:
        raise ServeError(f"--kind must be one of {', '.join(INSTANCE_KINDS)}, not {kind!r}.")
    if artifact.backend == "tensorrt" and kind == "cpu":
        raise ServeError("A TensorRT engine runs on a GPU; use --kind gpu (or auto) or serve the .onnx on CPUs.")
    largest = artifact.batch_max
    batch = max_batch or largest or DEFAULT_ONNX_MAX_BATCH
    if batch < 1 or (largest is not None and batch > largest):
        raise ServeError(f"--max-batch must be between 1 and {largest or 'any'}" +
                         (f" (the engine's profile), got {batch}." if largest else f", got {batch}."))
    pb = model_config_pb2()
    meta = artifact.metadata
    config = pb.ModelConfig(name=name, backend=artifact.backend, max_batch_size=batch,
                            default_model_filename=artifact.file_name)
    size = meta.image_size
    config.input.add(name=meta.input_name, data_type=pb.TYPE_FP32, dims=[3, size, size])
    config.output.add(name=meta.output_name, data_type=pb.TYPE_FP32, dims=[meta.output_width])
    config.dynamic_batching.max_queue_delay_microseconds = queue_delay_us
    preferred = sorted({b for b in (artifact.batch_opt, largest) if b is not None and b <= batch})
    config.dynamic_batching.preferred_batch_size.extend(preferred)
    kind_name = "KIND_GPU" if artifact.backend == "tensorrt" else INSTANCE_KINDS[kind]
    config.instance_group.add(count=instances, kind=getattr(pb.ModelInstanceGroup, kind_name))
    config.parameters[METADATA_PARAMETER].string_value = meta.to_json()
    return config


def render_config(config) -> str:
    from google.protobuf import text_format

    return text_format.MessageToString(config)


def parse_config(text: str, source: str = "config.pbtxt"):
    """Parse config.pbtxt text with Triton's model-config protobuf; a syntax or field error is one sentence."""
    from google.protobuf import text_format

    pb = model_config_pb2()
    try:
        return text_format.Parse(text, pb.ModelConfig())
    except text_format.ParseError as error:
        raise ServeError(f"{source} is not a valid Triton model config: {error}.") from None


def validate_model_dir(model_dir: str | os.PathLike):
    """Parse `<model_dir>/config.pbtxt` and check what Triton would otherwise reject at load time."""
    model_dir = Path(model_dir)
    config_path = model_dir / "config.pbtxt"
    if not config_path.is_file():
        raise ServeError(f"{model_dir} has no config.pbtxt.")
    config = parse_config(config_path.read_text(encoding="utf-8"), str(config_path))
    problems = []
    if config.name != model_dir.name:
        problems.append(f"its name {config.name!r} is not its folder's {model_dir.name!r}")
    if config.backend not in {backend for backend, _ in TRITON_BACKENDS.values()}:
        problems.append(f"backend {config.backend!r} is neither tensorrt nor onnxruntime")
    if config.max_batch_size < 1 or not config.HasField("dynamic_batching"):
        problems.append("it has no dynamic batching (max_batch_size >= 1 and a dynamic_batching block)")
    if any(size > config.max_batch_size for size in config.dynamic_batching.preferred_batch_size):
        problems.append("a preferred batch size exceeds max_batch_size")
    if not (model_dir / "1" / config.default_model_filename).is_file():
        problems.append(f"1/{config.default_model_filename} is missing")
    if METADATA_PARAMETER not in config.parameters:
        problems.append(f"it has no {METADATA_PARAMETER!r} parameter (the model's metadata)")
    if problems:
        raise ServeError(f"{config_path} cannot be served: " + "; ".join(problems) + ".")
    return config


def write_repository(model: str | os.PathLike, out: str | os.PathLike, name: str = DEFAULT_MODEL_NAME,
                     **options) -> Path:
    """Write (or replace) one model in a Triton model repository; returns its folder. Options: build_config's."""
    if not name or "/" in name or name.startswith("."):
        raise ServeError(f"A Triton model name is a plain folder name, not {name!r}.")
    artifact = read_artifact(model)
    config = build_config(artifact, name, **options)
    text = render_config(config)
    parse_config(text)  # what Triton will read back must parse before anything is written
    model_dir = Path(out) / name
    try:
        (model_dir / "1").mkdir(parents=True, exist_ok=True)
        with atomic_path(model_dir / "1" / artifact.file_name, ServeError) as temporary:
            shutil.copyfile(artifact.path, temporary)
        write_atomically(model_dir / "config.pbtxt", text, ServeError)
        for written in (model_dir / "1" / artifact.file_name, model_dir / "config.pbtxt"):
            os.chmod(written, READABLE)
    except OSError as error:
        raise ServeError(f"Cannot write the model repository {out}: {error.strerror or error}.") from None
    validate_model_dir(model_dir)
    if artifact.note:
        log.warning("%s: %s.", artifact.path.name, artifact.note)
    return model_dir


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m export.triton_repo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, type=Path, help="a .engine (with its .json sidecar) or .onnx model")
    parser.add_argument("--out", required=True, type=Path, help="the model repository folder (created if missing)")
    parser.add_argument("--name", default=DEFAULT_MODEL_NAME, help="the model's name on the server (default: fmca)")
    parser.add_argument("--max-batch", type=int, help="largest batch the dynamic batcher forms (default: the "
                        f"engine profile's largest; {DEFAULT_ONNX_MAX_BATCH} for ONNX)")
    parser.add_argument("--instances", type=int, default=1, help="model instances (execution contexts) per device")
    parser.add_argument("--kind", choices=sorted(INSTANCE_KINDS), default="auto",
                        help="where ONNX Runtime instances run (engines always run on the GPU)")
    parser.add_argument("--queue-delay-us", type=int, default=DEFAULT_QUEUE_DELAY_US,
                        help="how long the batcher may hold a request to fill a batch, in microseconds")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        model_dir = write_repository(args.model, args.out, args.name, max_batch=args.max_batch,
                                     instances=args.instances, kind=args.kind, queue_delay_us=args.queue_delay_us)
    except FMCAError as error:
        print(f"triton_repo: error: {error}", file=sys.stderr)
        return 2
    print(f"Wrote {model_dir}; serve it with: tritonserver --model-repository {args.out.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
