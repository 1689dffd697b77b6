"""What an imported classifier needs the runtime to know, and the user's weights loaded into its architecture.

    python -m export.onnx --import model.onnx --output out.onnx --classes fake,real
    python -m export.onnx --import weights.pth --arch timm:efficientnet_b4 --image-size 380 \\
        --output-form sigmoid --sigmoid-means fake --output out.onnx

`ImportSpec` becomes the ONNX file's metadata config (fmca_rt.metadata, schema 2): input size, mean/std,
resize method, crop scale, class names and output form. Published detectors differ in all of them: SBI
(mapooon/SelfBlendedImages) feeds 380 px crops, 1.25 x the face box (a quarter of its width and height as
margin, half of it at test time), resized with cv2.resize's default bilinear, scaled to [0, 1] without
mean/std, two classes (real, fake) through a softmax; DeepfakeBench's EfficientNet-B4 config says 256 px,
mean and std 0.5, two classes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fmca_rt.errors import ExportError
from fmca_rt.metadata import DEFAULT_CROP_SCALE, ModelMetadata, metadata_problems
from fmca_rt.normalization import IMAGENET_MEAN, IMAGENET_STD
from fmca_rt.output_form import SIGMOID, SOFTMAX, OutputForm

IMPORTED_KIND = "imported"
ARCHITECTURE_SOURCES = ("timm", "torchvision")
# Wrappers that training scripts put around a network: DataParallel, Lightning modules, detector classes.
STATE_DICT_PREFIXES = ("module.", "model.", "backbone.", "net.")
STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model", "net")


@dataclass(frozen=True)
class ImportSpec:
    image_size: int | None = None  # None: the ONNX graph's, when it fixes one
    mean: tuple[float, float, float] = tuple(IMAGENET_MEAN)
    std: tuple[float, float, float] = tuple(IMAGENET_STD)
    preprocessing: str = "pil-bilinear"
    crop_scale: float = DEFAULT_CROP_SCALE
    class_names: tuple[str, ...] = ("real", "fake")
    output_form: str = SOFTMAX
    sigmoid_means: str = "fake"
    architecture: str | None = None  # "timm:NAME" or "torchvision:NAME" for a PyTorch weights file

    @property
    def form(self) -> OutputForm:
        return OutputForm(self.output_form, self.class_names, self.sigmoid_means if self.output_form == SIGMOID
                          else None)

    def config(self, image_size: int, source: str) -> dict:
        return {"kind": IMPORTED_KIND, "architecture": self.architecture or "onnx", "source": source,
                "image_size": int(image_size), "mean": list(self.mean), "std": list(self.std),
                "class_names": list(self.class_names), "preprocessing": self.preprocessing,
                "crop_scale": float(self.crop_scale), "output": self.form.to_config()}

    def metadata(self, image_size: int, source: str, input_name: str, output_name: str, source_sha256: str,
                 extra: dict) -> ModelMetadata:
        """The artifact's metadata; ExportError naming what is unusable."""
        metadata = ModelMetadata(config=self.config(image_size, source), input_name=input_name,
                                 output_name=output_name, source_sha256=source_sha256, extra=extra)
        problems = metadata_problems(metadata)
        if "fake" not in self.class_names:
            problems.append(f"the classes {list(self.class_names)} name no 'fake' (--classes, in output order)")
        if problems:
            raise ExportError(f"Cannot import {source}: {'; '.join(problems)}.")
        return metadata


def split_architecture(architecture: str) -> tuple[str, str]:
    library, _, name = architecture.partition(":")
    if library not in ARCHITECTURE_SOURCES or not name:
        raise ExportError(f"--arch must be LIBRARY:NAME with LIBRARY one of {', '.join(ARCHITECTURE_SOURCES)} "
                          f"(e.g. timm:efficientnet_b4), not {architecture!r}.")
    return library, name


def build_architecture(architecture: str, outputs: int):
    """A randomly initialised network of the named architecture with `outputs` logits."""
    library, name = split_architecture(architecture)
    if library == "timm":
        try:
            import timm
        except ImportError:
            raise ExportError("--arch timm:... needs timm, which is not installed: pip install 'fmca-rt[import]'.") \
                from None
        if not timm.is_model(name):
            raise ExportError(f"timm has no architecture {name!r}; `timm.list_models('{name[:6]}*')` lists near ones.")
        return timm.create_model(name, pretrained=False, num_classes=outputs)
    import torchvision

    try:
        return torchvision.models.get_model(name, weights=None, num_classes=outputs)
    except ValueError:
        raise ExportError(f"torchvision has no architecture {name!r}; torchvision.models.list_models() lists "
                          "them.") from None


def _tensor_dict(loaded, path: Path) -> dict:
    import torch

    for key in STATE_DICT_KEYS:  # checkpoints that wrap the state dict: {"model": {...}, "epoch": ...}
        if isinstance(loaded, dict) and isinstance(loaded.get(key), dict):
            loaded = loaded[key]
            break
    if not (isinstance(loaded, dict) and loaded and all(isinstance(v, torch.Tensor) for v in loaded.values())):
        raise ExportError(f"{path} holds no state dict (a mapping of names to tensors, possibly under one of "
                          f"{', '.join(STATE_DICT_KEYS)}); save the weights with torch.save(model.state_dict(), ...).")
    return loaded


def _strip_prefixes(weights: dict, expected: set[str]) -> dict:
    """Drop wrapper prefixes (module., model., ...) while every name carries the same one and names do not
    already match the architecture's."""
    while not set(weights) & expected:
        prefix = next((p for p in STATE_DICT_PREFIXES if all(k.startswith(p) for k in weights)), None)
        if prefix is None:
            break
        weights = {k[len(prefix):]: v for k, v in weights.items()}
    return weights


def load_weights(network, path: Path, architecture: str) -> None:
    """Load a state dict saved by the user into `network` (weights_only: no code runs from the file);
    ExportError with one sentence naming what did not match."""
    import torch

    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle errors, zip errors, refused globals: the file is not plain weights
        reason = str(error).strip().splitlines()[0][:160] if str(error).strip() else type(error).__name__
        raise ExportError(f"Cannot read {path} as PyTorch weights (torch.load with weights_only=True): {reason}") \
            from None
    target = network.state_dict()
    weights = _strip_prefixes(_tensor_dict(loaded, path), set(target))
    unexpected = sorted(set(weights) - set(target))
    missing = sorted(set(target) - set(weights))
    wrong_shape = sorted(k for k in set(weights) & set(target) if weights[k].shape != target[k].shape)
    if unexpected or missing or wrong_shape:
        parts = []
        if unexpected:
            parts.append(f"{len(unexpected)} of its tensors are not in {architecture} (first: {unexpected[0]!r})")
        if missing:
            parts.append(f"{len(missing)} of {architecture}'s are missing (first: {missing[0]!r})")
        if wrong_shape:
            key = wrong_shape[0]
            parts.append(f"{len(wrong_shape)} have another shape (first: {key!r}, {tuple(weights[key].shape)} in the "
                         f"file, {tuple(target[key].shape)} in the architecture)")
        raise ExportError(f"{path} does not fit {architecture}: {'; '.join(parts)}. Check --arch and the output "
                          "form (one sigmoid logit or a logit per class).")
    network.load_state_dict(weights, strict=True)
