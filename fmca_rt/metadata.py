"""What every exported artifact says about itself, so users never repeat it.

An ONNX file stores it as one JSON string under the `fmca_rt` key of its `metadata_props`; a TensorRT
engine in its sidecar JSON (`fmca.engine.json`) under the same key. The model's config is the checkpoint's,
verbatim.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from ._version import __version__
from .errors import FMCAError

METADATA_KEY = "fmca_rt"
SCHEMA_VERSION = 1


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
            return cls(**values)
        except MetadataError:
            raise
        except (ValueError, TypeError, AttributeError):
            raise MetadataError(f"{source} has unreadable fmca-rt metadata.") from None

    def to_onnx_props(self) -> dict[str, str]:
        return {METADATA_KEY: self.to_json()}

    @classmethod
    def from_onnx_props(cls, props: dict[str, str], source: str = "ONNX file") -> "ModelMetadata":
        if METADATA_KEY not in props:
            raise MetadataError(f"{source} has no fmca-rt metadata; export it with `python -m export.onnx`.")
        return cls.from_json(props[METADATA_KEY], source)
