"""The sidecar JSON beside a TensorRT engine (`fmca.engine` -> `fmca.engine.json`).

The engine itself stays a plain TensorRT plan so trtexec and Triton Inference Server can load it; what fmca-rt
needs to know about it lives here: the model metadata (config, input spec, normalization, class names), how it
was built (precision, plugins, batch profile, the ONNX's hash, the command) and what it is tied to (the TensorRT
version and the GPU's compute capability), which `check_compatible` compares with the machine at load time.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..atomic import write_atomically
from ..errors import EngineError
from ..metadata import METADATA_KEY, ModelMetadata
from .tensorrt_env import GpuInfo, version_triple

SIDECAR_FORMAT = "fmca.engine"
SIDECAR_SCHEMA = 1
PRECISIONS = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class EngineSidecar:
    metadata: ModelMetadata
    tensorrt_version: str
    gpu_name: str
    compute_capability: tuple[int, int]
    precision: str
    batch_profile: tuple[int, int, int]
    onnx_sha256: str
    engine_sha256: str
    build_command: str
    plugins: tuple[str, ...] = ()
    strongly_typed: bool = False
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, not {self.precision!r}")

    def to_json(self) -> str:
        values = asdict(self)
        values[METADATA_KEY] = values.pop("metadata")  # asdict turned it into its own JSON fields
        values["format"], values["schema_version"] = SIDECAR_FORMAT, SIDECAR_SCHEMA
        return json.dumps(values, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, source: str = "engine sidecar") -> "EngineSidecar":
        try:
            values = json.loads(text)
            if values.pop("format") != SIDECAR_FORMAT:
                raise ValueError
            if values.pop("schema_version") > SIDECAR_SCHEMA:
                raise EngineError(f"{source} was written by a newer fmca-rt; upgrade fmca-rt to read it.")
            metadata = ModelMetadata.from_json(json.dumps(values.pop(METADATA_KEY)), source)
            return cls(metadata=metadata, compute_capability=tuple(values.pop("compute_capability")),
                       batch_profile=tuple(values.pop("batch_profile")), plugins=tuple(values.pop("plugins")),
                       **values)
        except EngineError:
            raise
        except (ValueError, TypeError, KeyError, AttributeError):
            raise EngineError(f"{source} is not an fmca-rt engine sidecar.") from None


def sidecar_path(engine_path: str | os.PathLike) -> Path:
    engine_path = Path(engine_path)
    return engine_path.with_name(engine_path.name + ".json")


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_engine(engine_path: str | os.PathLike, plan: bytes, sidecar: EngineSidecar) -> Path:
    """Write the plan and its sidecar; the sidecar goes last, so a sidecar always describes the plan beside it."""
    engine_path = Path(engine_path)
    write_atomically(engine_path, plan, EngineError)
    write_atomically(sidecar_path(engine_path), sidecar.to_json(), EngineError)
    return sidecar_path(engine_path)


def read_sidecar(engine_path: str | os.PathLike) -> EngineSidecar:
    engine_path = Path(engine_path)
    if not engine_path.is_file():
        raise EngineError(f"Engine file {engine_path} does not exist.")
    path = sidecar_path(engine_path)
    if not path.is_file():
        raise EngineError(f"{engine_path} has no sidecar {path.name}; build engines with "
                          "`python -m export.build_engine`, which writes both.")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:  # a binary file (a plan, say) where the JSON sidecar belongs
        raise EngineError(f"{path} is not an fmca-rt engine sidecar (not UTF-8 text).") from None
    sidecar = EngineSidecar.from_json(text, str(path))
    if file_sha256(engine_path) != sidecar.engine_sha256:
        raise EngineError(f"{path.name} describes a different engine than {engine_path.name} (hash mismatch); "
                          f"rebuild both: {sidecar.build_command}")
    return sidecar


def check_compatible(sidecar: EngineSidecar, tensorrt_version: str, gpu: GpuInfo, engine_name: str = "The engine") -> None:
    """Engines run only with the TensorRT major.minor.patch and the GPU architecture they were built with."""
    problems = []
    if version_triple(sidecar.tensorrt_version) != version_triple(tensorrt_version):
        problems.append(f"TensorRT {sidecar.tensorrt_version} (this machine has {tensorrt_version})")
    if tuple(sidecar.compute_capability) != tuple(gpu.compute_capability):
        built_for = GpuInfo(sidecar.gpu_name, tuple(sidecar.compute_capability)).describe()
        problems.append(f"a {built_for} (this machine has a {gpu.describe()})")
    if problems:
        raise EngineError(f"{engine_name} was built for " + " and for ".join(problems)
                          + f"; rebuild it on this machine: {sidecar.build_command}")
