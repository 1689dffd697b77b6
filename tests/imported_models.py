"""Classifiers other than FMCA-Net, as users bring them, and their source framework's own P(fake) as the oracle.

- an EfficientNet-B4 (timm, random weights) at 380 px with one sigmoid logit meaning fake, prepared the way
  SBI prepares faces (cv2.resize's bilinear, pixels / 255, crops 1.25 x the face box), its weights saved as a
  DataParallel state dict under "state_dict" (the `module.` prefix);
- a small CNN with two classes ordered (fake, real), exported by its author to ONNX, prepared like
  torchvision's Resize on PIL images with mean and std 0.5 (DeepfakeBench's).

The oracle crops, resizes and normalizes with its own code (NumPy, OpenCV, Pillow), not fmca_rt's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np


@dataclass
class Imported:
    network: object  # the torch module: the source framework
    onnx_path: Path  # written by `python -m export.onnx --import`
    image_size: int
    crop_scale: float
    mean: tuple
    std: tuple
    resize: str  # "cv2" or "pil"
    fake_probability: object  # torch outputs -> P(fake), as the source framework computes it

    def oracle(self, bgr: np.ndarray, box) -> float:
        """P(fake) of the face in `box` the way its source framework would compute it."""
        import torch

        crop = square_crop(bgr, box, self.crop_scale)[:, :, ::-1]  # RGB
        if self.resize == "cv2":
            resized = cv2.resize(np.ascontiguousarray(crop), (self.image_size, self.image_size))
        else:
            from PIL import Image

            resized = np.asarray(Image.fromarray(np.ascontiguousarray(crop)).resize(
                (self.image_size, self.image_size), Image.BILINEAR))
        pixels = (resized.astype(np.float32) / 255 - np.float32(self.mean)) / np.float32(self.std)
        with torch.no_grad():
            outputs = self.network(torch.from_numpy(pixels.transpose(2, 0, 1)[None].copy()))
        return float(self.fake_probability(outputs)[0])


def square_crop(bgr: np.ndarray, box, scale: float) -> np.ndarray:
    """A square `scale` x the box's longer side, centred on it, cut at the image's borders."""
    x1, y1, x2, y2 = box
    half = max(x2 - x1, y2 - y1) * scale / 2
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    height, width = bgr.shape[:2]
    left, top = max(int(round(cx - half)), 0), max(int(round(cy - half)), 0)
    right, bottom = min(int(round(cx + half)), width), min(int(round(cy + half)), height)
    return bgr[top:bottom, left:right]


def efficientnet_b4_sigmoid(folder: Path) -> Imported:
    import timm
    import torch

    from export.onnx import main

    from export.face_samples import shipped_face_crops

    torch.manual_seed(0)
    network = timm.create_model("efficientnet_b4", pretrained=False, num_classes=1).eval()
    # Random weights give nearly the same features for every face; aim the head at how the shipped face
    # crops differ, so that P(fake) spreads over (0, 1) and a wrong crop, resize or sign shows.
    crops = [cv2.resize(c, (380, 380)) for c in shipped_face_crops()]
    with torch.no_grad():
        x = torch.from_numpy(np.stack(crops).transpose(0, 3, 1, 2).astype(np.float32) / 255)
        features = network.forward_head(network.forward_features(x), pre_logits=True)
        direction = torch.randn(features.shape[1])
        projection = features @ direction
        scale = 2.0 / projection.std()
        network.classifier.weight.copy_((direction * scale)[None])
        network.classifier.bias.fill_(float(-projection.mean() * scale))
    weights = folder / "sbi-like.pth"
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in network.state_dict().items()}}, weights)
    output = folder / "effnet-b4.onnx"
    status = main(["--import", str(weights), "--arch", "timm:efficientnet_b4", "--image-size", "380",
                   "--output-form", "sigmoid", "--sigmoid-means", "fake", "--resize", "cv2-bilinear",
                   "--mean", "0,0,0", "--std", "1,1,1", "--crop-scale", "1.25", "--output", str(output)])
    assert status == 0, "the EfficientNet-B4 import failed"
    return Imported(network, output, 380, 1.25, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), "cv2",
                    lambda outputs: torch.sigmoid(outputs[:, 0]).numpy())


def fake_real_cnn(folder: Path, outputs: int = 2):
    """A small CNN with outputs (fake, real) (or one logit), its own ONNX export (the user's file), before import."""
    import torch
    from torch import nn

    torch.manual_seed(1)
    network = nn.Sequential(
        nn.Conv2d(3, 8, 5, stride=2), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, outputs)).eval()
    with torch.no_grad():
        network[-1].weight.mul_(30.0)
    users_file = folder / f"small-cnn-{outputs}.onnx"
    torch.onnx.export(network, (torch.zeros(1, 3, 96, 96),), str(users_file), input_names=["input"],
                      output_names=["scores"], dynamo=True, dynamic_shapes=({0: torch.export.Dim("b", max=64)},),
                      verbose=False)
    return network, users_file


def imported_fake_real(folder: Path) -> Imported:
    import torch

    from export.onnx import main

    network, users_file = fake_real_cnn(folder)
    output = folder / "fake-real-imported.onnx"
    status = main(["--import", str(users_file), "--classes", "fake,real", "--mean", "0.5,0.5,0.5",
                   "--std", "0.5,0.5,0.5", "--crop-scale", "1.3", "--output", str(output)])
    assert status == 0, "the (fake, real) ONNX import failed"
    return Imported(network, output, 96, 1.3, (0.5,) * 3, (0.5,) * 3, "pil",
                    lambda outputs: torch.softmax(outputs, dim=1)[:, 0].numpy())
