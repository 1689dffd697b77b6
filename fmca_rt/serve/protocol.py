"""What the fmca-rt Triton server and its clients agree on, with no server or client library imported.

A served FMCA-Net classifier is one Triton model (default name "fmca") taking normalized pixels
(float32 B x 3 x S x S, named by the model's metadata, "pixels") and returning logits (B x classes, "logits").
Preprocessing and calibration stay on the client, so a request carries exactly what a Backend's `infer`
takes and the answers are the in-process Detector's. The model's `ModelMetadata` travels with it:

- in a model repository written by `python -m export.triton_repo`, as the config parameter "fmca_rt"
  (Triton's TensorRT and ONNX Runtime backends ignore parameters they do not know);
- from `fmca-rt serve` (PyTriton, whose model configs take no custom parameters), as the answer of a
  companion model "<name>_metadata" that returns the JSON as one BYTES element.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from ..errors import ServeError
from ..metadata import METADATA_KEY, ModelMetadata

DEFAULT_MODEL_NAME = "fmca"
METADATA_PARAMETER = METADATA_KEY
METADATA_OUTPUT = "metadata"
METADATA_INPUT = "request"  # PyTriton models need an input; its value is ignored
DEFAULT_PORTS = {"http": 8000, "grpc": 8001}
INSTALL_HINT = "pip install 'fmca-rt[serve]'"


def metadata_model_name(model_name: str) -> str:
    return f"{model_name}_metadata"


@dataclass(frozen=True)
class Endpoint:
    protocol: str  # "http" or "grpc"
    host: str
    port: int

    @property
    def address(self) -> str:
        """host:port, the form tritonclient takes."""
        return f"{self.host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.protocol}://{self.address}"


def parse_endpoint(url: str) -> Endpoint:
    """'grpc://host:8001', 'http://host:8000', 'host:8000' (HTTP) or 'host' (HTTP, port 8000)."""
    text = url if "://" in url else f"http://{url}"
    parts = urlsplit(text)
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname or parts.path not in ("", "/"):
        raise ServeError(f"A Triton server address looks like http://HOST:8000 or grpc://HOST:8001, not {url!r}.")
    try:
        port = parts.port or DEFAULT_PORTS[parts.scheme]
    except ValueError:
        raise ServeError(f"The port in {url!r} is not a number between 0 and 65535.") from None
    return Endpoint(parts.scheme, parts.hostname, port)


def metadata_from_config(config: dict, source: str) -> ModelMetadata | None:
    """The ModelMetadata stored in a model config's parameters (Triton's JSON form), or None."""
    parameter = config.get("parameters", {}).get(METADATA_PARAMETER)
    if parameter is None:
        return None
    return ModelMetadata.from_json(parameter.get("string_value", ""), source)


def check_served_model(config: dict, metadata: ModelMetadata, source: str) -> int:
    """The served model's max batch size, after checking its input and output are the metadata's."""
    inputs = {t["name"]: t for t in config.get("input", [])}
    outputs = {t["name"]: t for t in config.get("output", [])}
    size = metadata.image_size
    expected = {metadata.input_name: [3, size, size], metadata.output_name: [metadata.output_width]}
    for name, tensors in ((metadata.input_name, inputs), (metadata.output_name, outputs)):
        if name not in tensors:
            raise ServeError(f"{source} has no tensor {name!r} (it has {sorted(tensors)}); is it an fmca-rt model?")
        dims = [int(d) for d in tensors[name].get("dims", [])]
        if dims != expected[name] or tensors[name].get("data_type") != "TYPE_FP32":
            raise ServeError(f"{source} declares {name!r} as {tensors[name].get('data_type')} {dims}; its metadata "
                             f"says TYPE_FP32 {expected[name]}.")
    return int(config.get("max_batch_size", 0))


def server_error_message(error: Exception) -> str:
    """tritonclient's InferenceServerException (or a transport error) as one line without request ids."""
    message = error.message() if callable(getattr(error, "message", None)) else str(error)
    message = (message or type(error).__name__).strip().splitlines()[0]
    return message.split("] ", 1)[1] if message.startswith("[request id") and "] " in message else message


def encode_metadata(metadata: ModelMetadata) -> bytes:
    return metadata.to_json().encode()


def decode_metadata(raw: bytes, source: str) -> ModelMetadata:
    try:
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
    except UnicodeDecodeError:
        raise ServeError(f"{source} did not answer with fmca-rt metadata.") from None
    return ModelMetadata.from_json(text, source)
