"""What every exported artifact says about itself, so users never repeat it.

An ONNX file stores it as one JSON string under the `fmca_rt` key of its `metadata_props`; a TensorRT
engine in its sidecar JSON (`fmca.engine.json`) under the same key. The model's config is the checkpoint's,
verbatim.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

from ._version import __version__
from .errors import FMCAError

METADATA_KEY = "fmca_rt"
SCHEMA_VERSION = 1
FACE_DETECTOR_KIND = "face-detector"  # the config "kind" of a face detector artifact (fmca_rt.backends.face_network)


class MetadataError(FMCAError):
    """An artifact's metadata is missing or unreadable."""


@dataclass(frozen=True)
class ModelMetadata:
    config: dict
    input_name: str = "pixels"
    output_name: str = "logits"
    source_sha256: str | None = None
    package_version: str = __version__
    schema_version: int = SCHEMA_VERSION
    extra: dict = field(default_factory=dict)
    # Temperature and named operating points (fmca_rt.operating_points.Calibration.to_dict()); None when
    # the model was never calibrated.
    calibration: dict | None = None

    @property
    def image_size(self) -> int:
        return int(self.config["image_size"])

    @property
    def mean(self) -> tuple[float, float, float]:
        return tuple(self.config["mean"])

    @property
    def std(self) -> tuple[float, float, float]:
        return tuple(self.config["std"])

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(self.config["class_names"])

    @property
    def preprocessing(self) -> str:
        return self.config["preprocessing"]

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str, source: str = "artifact") -> "ModelMetadata":
        try:
            values = json.loads(text)
            if values.get("schema_version", 0) > SCHEMA_VERSION:
                raise MetadataError(f"{source} was written by a newer fmca-rt (metadata schema "
                                    f"{values['schema_version']}); upgrade fmca-rt to read it.")
            metadata = cls(**values)
        except MetadataError:
            raise
        except (ValueError, TypeError, AttributeError):
            raise MetadataError(f"{source} has unreadable fmca-rt metadata.") from None
        problems = metadata_problems(metadata)
        if problems:
            raise MetadataError(f"{source} has inconsistent fmca-rt metadata ({'; '.join(problems)}); export it "
                                "again with `python -m export.onnx`.")
        return metadata

    def to_onnx_props(self) -> dict[str, str]:
        return {METADATA_KEY: self.to_json()}

    @classmethod
    def from_onnx_props(cls, props: dict[str, str], source: str = "ONNX file") -> "ModelMetadata":
        if METADATA_KEY not in props:
            raise MetadataError(f"{source} has no fmca-rt metadata; export it with `python -m export.onnx`.")
        return cls.from_json(props[METADATA_KEY], source)


def _numbers(value, count: int) -> bool:
    return isinstance(value, list) and len(value) == count and \
        all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)


def _face_detector_problems(metadata: ModelMetadata) -> list[str]:
    config = metadata.config
    missing = [key for key in ("network", "mean", "class_names") if key not in config]
    if missing:
        return [f"config lacks {', '.join(missing)}"]
    problems = []
    canvas = config.get("image_size")
    if canvas is not None and (not isinstance(canvas, int) or isinstance(canvas, bool) or canvas < 1):
        problems.append(f"the canvas {canvas!r} is not a positive whole number")
    if not _numbers(config["mean"], 3):
        problems.append("mean is not three numbers")
    if not (isinstance(metadata.input_name, str) and isinstance(metadata.output_name, str)):
        problems.append("input_name and output_name are not names")
    return problems


def metadata_problems(metadata: ModelMetadata) -> list[str]:
    """What in the metadata the runtime could not use (empty when it is usable)."""
    from .preprocess import RESIZE_METHODS

    config = metadata.config
    if not isinstance(config, dict):
        return ["its config is not a mapping"]
    if config.get("kind") == FACE_DETECTOR_KIND:
        return _face_detector_problems(metadata)
    missing = [key for key in ("image_size", "mean", "std", "class_names", "preprocessing") if key not in config]
    if missing:
        return [f"config lacks {', '.join(missing)}"]
    problems = []
    for key in ("image_size", "patch_size"):
        value = config.get(key, 1)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            problems.append(f"{key} {value!r} is not a positive whole number")
    if not _numbers(config["mean"], 3) or not _numbers(config["std"], 3) or 0 in config["std"]:
        problems.append("mean and std are not three numbers each (std non-zero)")
    names = config["class_names"]
    if not (isinstance(names, list) and len(names) >= 2 and all(isinstance(n, str) for n in names)):
        problems.append(f"class_names {names!r} are not two or more names")
    if config["preprocessing"] not in RESIZE_METHODS:
        problems.append(f"preprocessing {config['preprocessing']!r} is not one of {', '.join(sorted(RESIZE_METHODS))}")
    if not (isinstance(metadata.input_name, str) and isinstance(metadata.output_name, str)):
        problems.append("input_name and output_name are not names")
    return problems
