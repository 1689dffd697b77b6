"""Models for the TensorRT plugin tests: the tiny model's plugin-node ONNX, and the shapes the plugins see in a
preset (recorded from the model's own forward pass on "meta" tensors: no weights, no arithmetic)."""

from pathlib import Path


def export_tiny_plugin_onnx(path: Path) -> Path:
    import torch

    from export.onnx import export_onnx
    from training.model import FMCANet

    torch.manual_seed(0)
    return export_onnx(FMCANet.from_preset("tiny", image_size=56, pos_embed_grid=4).eval(), path, plugins=True,
                       verify=False)


def plugin_input_shapes(preset: str, batch: int = 2, **overrides) -> dict:
    """The plugin nodes' input shapes in `preset` at `batch`: {"HaarDWT": [x], "SFCMAttention": [qp, kf, vf, qf,
    kp, vp]}, the attention's token-major (B x N x heads x D) as `export.onnx --plugins` writes them."""
    import torch

    from training import ops
    from training.frequency import haar_dwt_reference
    from training.model import FMCANet
    from training.sfcm import sfcm_attention_reference

    seen = {}

    def haar_dwt(x, mean, std):
        seen["HaarDWT"] = [tuple(x.shape)]
        return haar_dwt_reference(x, mean, std)

    def sfcm_attention(qp, kf, vf, qf, kp, vp, scale=None, dropout_p=0.0):
        seen["SFCMAttention"] = [tuple(t.transpose(1, 2).shape) for t in (qp, kf, vf, qf, kp, vp)]
        return sfcm_attention_reference(qp, kf, vf, qf, kp, vp, scale)

    ops.register_implementation("shape-recorder", ops.Implementation(haar_dwt, sfcm_attention))
    with torch.device("meta"):
        model = FMCANet.from_preset(preset, **overrides).eval()
        size = model.config.image_size
        with ops.implementation("shape-recorder"), torch.no_grad():
            model(torch.empty(batch, 3, size, size))
    return seen
