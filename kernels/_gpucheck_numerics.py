"""`kernels.gpucheck`'s numerics on silicon: every kernel variant against float64 references, the model's strided
layout, the whole model with `use_kernels()`, and the AOT PTX/cubin launched through the CUDA driver.

Each check returns rows {"check", "case", "max_error", "tolerance", "ok"}; a row fails when some element
differs from the reference by more than tolerance * (1 + |reference|).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from export.trt_plugin_math import haar_dwt_sizes, launch_plan, load_manifest, ptx_target, sfcm_sizes
from fmca_rt.normalization import IMAGENET_MEAN, IMAGENET_STD
from training.frequency import haar_dwt_reference
from training.sfcm import sfcm_attention_reference, sfcm_attention_token_major

from ._driver_launch import kernel_arguments
from ._tiles import attention_tiles

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
# One rounding of the output (DWT); P rounded to the input dtype before P @ V (attention).
DWT_TOLERANCE = {"fp32": 1e-6, "fp16": 1e-3, "bf16": 8e-3}
ATTENTION_TOLERANCE = {"fp32": 1e-5, "fp16": 2e-3, "bf16": 2e-2}
MODEL_TOLERANCE = {"fp32": 1e-4, "fp16": 3e-2, "bf16": 1e-1}
DWT_SHAPES = ((1, 3, 224, 224), (64, 3, 224, 224), (5, 3, 37, 129))  # the last takes the general path
HEAD_DIMS = (32, 64, 96, 128)
ATTENTION_CASES = ((1, 256, 256), (3, 197, 49))  # batch, N_p, N_f (8 heads)
MODEL_PRESETS = ("tiny", "b14")
AOT_ATTENTION_SIZES = (2, 8, 256, 49)  # batch, heads, N_p, N_f of the AOT attention launches


def compare(check: str, case: str, ours: torch.Tensor, exact: torch.Tensor, tolerance: float) -> dict:
    ours, exact = ours.double(), exact.double()
    difference = (ours - exact).abs()
    finite = bool(torch.isfinite(ours).all())
    ok = finite and bool((difference <= tolerance * (1 + exact.abs())).all())
    return {"check": check, "case": case, "max_error": float(difference.max()) if finite else float("nan"),
            "tolerance": tolerance, "ok": ok}


def dwt_rows(device: str = "cuda") -> list[dict]:
    from . import haar_dwt_triton

    rows = []
    for name, dtype in DTYPES.items():
        for shape in DWT_SHAPES:
            x = torch.randn(shape, device=device).to(dtype)
            exact = haar_dwt_reference(x.double(), IMAGENET_MEAN, IMAGENET_STD)
            rows.append(compare("haar_dwt", f"{name} {'x'.join(map(str, shape))}", haar_dwt_triton(x), exact,
                                DWT_TOLERANCE[name]))
    return rows


def attention_rows(arch: int, device: str = "cuda") -> list[dict]:
    from . import sfcm_attention_triton

    rows = []
    for name, dtype in DTYPES.items():
        for head_dim in HEAD_DIMS:
            for path in ("jit", "aot"):
                tiles = attention_tiles(dtype, arch, path == "aot")
                for batch, n_p, n_f in ATTENTION_CASES:
                    tensors = [torch.randn(batch, 8, n, head_dim, device=device, dtype=dtype)
                               for n in (n_p, n_f, n_f, n_f, n_p, n_p)]
                    exact = sfcm_attention_reference(*(t.double() for t in tensors))
                    ours = sfcm_attention_triton(*tensors, tiles=tiles)
                    case = f"{name} D={head_dim} {path} tiles {tuple(tiles)} B={batch} N={n_p}/{n_f}"
                    rows += [compare("sfcm_attention", f"{case} {side}", o, e, ATTENTION_TOLERANCE[name])
                             for side, o, e in zip(("ap", "af"), ours, exact)]
    for name, dtype in DTYPES.items():  # the model's layout: heads split from B x N x (heads * D) projections
        batch, heads, head_dim, n_p, n_f = 2, 8, 96, 256, 49
        patch = [torch.randn(batch, n_p, heads * head_dim, device=device, dtype=dtype) for _ in range(3)]
        freq = [torch.randn(batch, n_f, heads * head_dim, device=device, dtype=dtype) for _ in range(3)]
        views = [t.view(batch, -1, heads, head_dim).transpose(1, 2) for t in patch + freq]
        tensors = [views[0], views[3], views[4], views[5], views[1], views[2]]
        for scale in (None, 0.0, -0.5):
            exact = sfcm_attention_reference(*(t.double() for t in tensors), scale)
            ours = sfcm_attention_triton(*tensors, scale=scale)
            # token-major outputs: merging heads is a view; a wrong layout shows as an infinite error
            ours = [o if o.transpose(1, 2).is_contiguous() else torch.full_like(o, float("inf")) for o in ours]
            rows += [compare("sfcm_attention", f"{name} model layout scale={scale} {side}", o, e,
                             ATTENTION_TOLERANCE[name]) for side, o, e in zip(("ap", "af"), ours, exact)]
    return rows


def model_rows(device: str = "cuda") -> list[dict]:
    from training import FMCANet, ops

    rows = []
    for preset in MODEL_PRESETS:
        torch.manual_seed(0)
        model = FMCANet.from_preset(preset).eval().to(device)
        size = model.config.image_size
        for name, dtype in DTYPES.items():
            model = model.to(dtype)
            pixels = torch.randn(2, 3, size, size, device=device, dtype=dtype)
            with torch.inference_mode():
                with ops.implementation("reference"):
                    expected = model.forward_intermediates(pixels)
                routed = model.use_kernels().forward_intermediates(pixels)
            for key in ("dwt", "sfcm_patch", "sfcm_freq", "logits"):
                rows.append(compare("model use_kernels()", f"{preset} {name} {key}", routed[key], expected[key],
                                    MODEL_TOLERANCE[name]))
    return rows


def _aot_tensors(entry: dict, dtype: torch.dtype, device: str, image: tuple[int, int]) -> tuple[dict, dict, callable]:
    """Inputs, NaN-filled outputs, the named sizes and the reference of one manifest entry."""
    if entry["op"] == "haar_dwt":
        channels, (height, width) = entry["shapes"]["C"], image
        x = torch.randn(2, channels, height, width, device=device).to(dtype)
        out_shape = (2, 4 * channels, (height + 1) // 2, (width + 1) // 2)
        tensors = {"x": x, "out": torch.full(out_shape, float("nan"), device=device, dtype=dtype)}
        constants = entry["constants"]
        reference = lambda: {"out": haar_dwt_reference(x.double(), constants["MEAN"], constants["STD"])}  # noqa: E731
        return tensors, haar_dwt_sizes(x.shape), reference
    (batch, heads, n_p, n_f), head_dim = AOT_ATTENTION_SIZES, entry["head_dim"]
    shapes = {"qp": n_p, "kf": n_f, "vf": n_f, "qf": n_f, "kp": n_p, "vp": n_p}
    tensors = {n: torch.randn(batch, tokens, heads, head_dim, device=device, dtype=dtype) for n, tokens in shapes.items()}
    tensors["ap"] = torch.full((batch, n_p, heads, head_dim), float("nan"), device=device, dtype=dtype)
    tensors["af"] = torch.full((batch, n_f, heads, head_dim), float("nan"), device=device, dtype=dtype)
    inputs = [tensors[n].double() for n in shapes]
    scale = entry["constants"]["SCALE"]
    reference = lambda: dict(zip(("ap", "af"), sfcm_attention_token_major(*inputs, scale)))  # noqa: E731
    return tensors, sfcm_sizes(tensors["qp"].shape, tensors["qf"].shape), reference


def aot_rows(aot_dir: Path, arch: int, launcher, device: str = "cuda") -> list[dict]:
    """Every manifest entry this GPU can load, PTX (and cubin for its own arch), without and with the opt-in.
    The DWT runs on a 38 x 136 image (its aligned path) and a 37 x 130 one (its general path)."""
    entries = json.loads((aot_dir / "manifest.json").read_text())["kernels"]
    rows = []
    for entry, variant in zip(entries, load_manifest(aot_dir)):
        if not (variant.arch == arch or (variant.arch < arch and not ptx_target(variant.read_ptx())[1])):
            continue
        dtype = DTYPES[entry["dtype"]]
        artifacts = [("ptx", entry["ptx_parameters"])] + ([("cubin", entry["cubin_parameters"])]
                                                          if variant.arch == arch else [])
        for artifact, parameters in artifacts:
            function = launcher.load(aot_dir / entry[artifact], entry["kernel"])
            for opt_in, image in ((False, (38, 136)), (True, (37, 130))):
                tensors, sizes, reference = _aot_tensors(entry, dtype, device, image)
                plan = launch_plan(variant, sizes)
                arguments = kernel_arguments(entry, {n: t.data_ptr() for n, t in tensors.items()}, sizes, parameters)
                stream = torch.cuda.current_stream().cuda_stream if device == "cuda" else 0
                launcher.launch(function, plan, arguments, stream, opt_in)
                if device == "cuda":
                    torch.cuda.synchronize()
                case = (f"{entry['name']} {artifact} grid={plan.grid} block={plan.block_x} shared={plan.shared_mem} "
                        f"{'opt-in' if opt_in else 'no opt-in'} ({len(arguments) - len(entry['arguments'])} null) {sizes}")
                tolerance = (DWT_TOLERANCE if entry["op"] == "haar_dwt" else ATTENTION_TOLERANCE)[entry["dtype"]]
                rows += [compare("aot launch", f"{case} {name}", tensors[name], exact, tolerance)
                         for name, exact in reference().items()]
    return rows
