"""Fused un-normalize + single-level Haar DWT: the Triton kernel, its launcher and the `fmca::haar_dwt` op.

One program handles a tile of output rows x columns of one channel plane (grid axis 2 enumerates batch x
channels, so a single 224-px image already makes 168 programs): it reads each input element once and writes
each of the four bands once, so the kernel is purely memory-bound. Images whose width is a multiple of 8 and
whose height is even (every model input: image sizes are multiples of 8) take a path the compiler can prove
aligned: two contiguous input rows per output row in 16-byte loads, split into column pairs in registers, and
8- or 16-byte stores, with no layout conversion. Other sizes take a general path with reflect padding.
The math is `training.frequency.haar_dwt_reference`'s, in float32.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import triton
import triton.language as tl

from fmca_rt.normalization import IMAGENET_MEAN, IMAGENET_STD
from training.frequency import haar_dwt_reference

from ._checks import check_output, on_device, require_kernel_device

BLOCK_H = 8  # output rows per program
BLOCK_W = 32  # output columns per program (64 contiguous input columns)
MAX_GRID_Z = 65535  # CUDA's limit on a grid's z size (batch x channels here)


@triton.jit
def _unnormalized(v, channel, CHANNELS: tl.constexpr, MEAN: tl.constexpr, STD: tl.constexpr):
    """v * STD[channel] + MEAN[channel] in float32 (MEAN None: just float32); the channel is a runtime value."""
    v = v.to(tl.float32)
    if MEAN is not None:
        mean = 0.0
        std = 1.0
        for i in tl.static_range(CHANNELS):
            mean = tl.where(channel == i, MEAN[i], mean)
            std = tl.where(channel == i, STD[i], std)
        v = v * std + mean
    return v


@triton.jit
def _store_bands(out_ptr, plane, rows, cols, out_h, out_w, a, b, c_, d,
                 CHANNELS: tl.constexpr, MEAN: tl.constexpr, STD: tl.constexpr):
    """The four bands of the 2 x 2 blocks [[a, b], [c_, d]] of one channel plane, into its 4 output planes."""
    channel = plane % CHANNELS
    a = _unnormalized(a, channel, CHANNELS, MEAN, STD)
    b = _unnormalized(b, channel, CHANNELS, MEAN, STD)
    c_ = _unnormalized(c_, channel, CHANNELS, MEAN, STD)
    d = _unnormalized(d, channel, CHANNELS, MEAN, STD)
    mask = (rows < out_h)[:, None] & (cols < out_w)[None, :]
    out_plane = out_h * out_w
    out = out_ptr + plane.to(tl.int64) * 4 * out_plane + rows[:, None] * out_w + cols[None, :]
    dtype = out_ptr.dtype.element_ty
    tl.store(out, ((a + b + c_ + d) * 0.5).to(dtype), mask=mask)  # LL
    tl.store(out + out_plane, ((a - b + c_ - d) * 0.5).to(dtype), mask=mask)  # LH
    tl.store(out + 2 * out_plane, ((a + b - c_ - d) * 0.5).to(dtype), mask=mask)  # HL
    tl.store(out + 3 * out_plane, ((a - b - c_ + d) * 0.5).to(dtype), mask=mask)  # HH


@triton.jit
def _aligned_tile(x_ptr, height, width, out_ptr, CHANNELS: tl.constexpr, MEAN: tl.constexpr, STD: tl.constexpr,
                  BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr):
    # Only for width % 8 == 0 and even height. Written so that the compiler sees the row pitch's divisibility:
    # (width // 8) * 4 equals width // 2 here and is visibly a multiple of 4.
    plane = tl.program_id(2)
    out_w = (width // 8) * 4
    width = 2 * out_w
    out_h = height // 2
    rows = tl.program_id(1) * BLOCK_H + tl.arange(0, BLOCK_H)
    cols = tl.program_id(0) * BLOCK_W + tl.arange(0, BLOCK_W)
    in_cols = tl.program_id(0) * (2 * BLOCK_W) + tl.arange(0, 2 * BLOCK_W)
    mask = (rows < out_h)[:, None] & (in_cols < width)[None, :]
    top = x_ptr + plane.to(tl.int64) * height * width + (2 * rows)[:, None] * width + in_cols[None, :]
    a, b = tl.split(tl.reshape(tl.load(top, mask=mask, other=0.0), (BLOCK_H, BLOCK_W, 2)))
    c_, d = tl.split(tl.reshape(tl.load(top + width, mask=mask, other=0.0), (BLOCK_H, BLOCK_W, 2)))
    _store_bands(out_ptr, plane, rows, cols, out_h, out_w, a, b, c_, d, CHANNELS, MEAN, STD)


@triton.jit
def _general_tile(x_ptr, height, width, out_ptr, CHANNELS: tl.constexpr, MEAN: tl.constexpr, STD: tl.constexpr,
                  BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr):
    # Any size >= 2 x 2. Odd sizes are reflect-padded: the missing row H is row H - 2, the missing column W is
    # column W - 2.
    plane = tl.program_id(2)
    out_h = (height + 1) // 2
    out_w = (width + 1) // 2
    rows = tl.program_id(1) * BLOCK_H + tl.arange(0, BLOCK_H)
    cols = tl.program_id(0) * BLOCK_W + tl.arange(0, BLOCK_W)
    mask = (rows < out_h)[:, None] & (cols < out_w)[None, :]
    top = 2 * rows
    bottom = tl.where(top + 1 < height, top + 1, height - 2)
    left = 2 * cols
    right = tl.where(left + 1 < width, left + 1, width - 2)
    src = x_ptr + plane.to(tl.int64) * height * width
    a = tl.load(src + top[:, None] * width + left[None, :], mask=mask, other=0.0)
    b = tl.load(src + top[:, None] * width + right[None, :], mask=mask, other=0.0)
    c_ = tl.load(src + bottom[:, None] * width + left[None, :], mask=mask, other=0.0)
    d = tl.load(src + bottom[:, None] * width + right[None, :], mask=mask, other=0.0)
    _store_bands(out_ptr, plane, rows, cols, out_h, out_w, a, b, c_, d, CHANNELS, MEAN, STD)


@triton.jit
def _haar_dwt_kernel(x_ptr, height, width, out_ptr,
                     CHANNELS: tl.constexpr, MEAN: tl.constexpr, STD: tl.constexpr,
                     BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr):
    # Grid: (column tiles, row tiles, batch * CHANNELS). x is B x C x H x W, out is B x 4C x ceil(H/2) x
    # ceil(W/2), both contiguous. MEAN/STD are per-channel tuples baked into the kernel, or None to skip
    # un-normalizing. The branch is uniform over the grid: one kernel serves every size, JIT and AOT alike.
    if (width % 8 == 0) & (height % 2 == 0):
        _aligned_tile(x_ptr, height, width, out_ptr, CHANNELS, MEAN, STD, BLOCK_H, BLOCK_W)
    else:
        _general_tile(x_ptr, height, width, out_ptr, CHANNELS, MEAN, STD, BLOCK_H, BLOCK_W)


SUPPORTED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def affine_constants(channels: int, mean: Sequence[float] | None,
                     std: Sequence[float] | None) -> tuple[tuple[float, ...] | None, tuple[float, ...] | None]:
    """The kernel's MEAN/STD constexprs: None for both when there is nothing to undo (as in the reference)."""
    if mean is None and std is None:
        return None, None
    mean = tuple(float(v) for v in (mean if mean is not None else (0.0,) * channels))
    std = tuple(float(v) for v in (std if std is not None else (1.0,) * channels))
    if len(mean) != channels or len(std) != channels:
        raise ValueError(f"mean and std need {channels} values (one per channel), got {len(mean)} and {len(std)}.")
    return mean, std


def output_shape(shape: Sequence[int]) -> tuple[int, int, int, int]:
    batch, channels, height, width = shape
    return batch, 4 * channels, (height + 1) // 2, (width + 1) // 2


def num_warps(element_size: int) -> int:
    """Threads such that each loads 16 bytes of each input row of the tile (2 warps for 16-bit data, 4 for
    32-bit): wider or narrower per-thread slices add layout conversions or narrow the stores (compiled-code
    facts in tests/test_kernels_compiled.py)."""
    return max(1, BLOCK_H * 2 * BLOCK_W * element_size // 16 // 32)


def grid(batch: int, channels: int, height: int, width: int) -> tuple[int, int, int]:
    return triton.cdiv((width + 1) // 2, BLOCK_W), triton.cdiv((height + 1) // 2, BLOCK_H), batch * channels


def haar_dwt_triton(x: torch.Tensor, mean: Sequence[float] | None = IMAGENET_MEAN,
                    std: Sequence[float] | None = IMAGENET_STD, out: torch.Tensor | None = None) -> torch.Tensor:
    """Launch the kernel on a B x C x H x W tensor; returns B x 4C x ceil(H/2) x ceil(W/2) in x's dtype,
    written into `out` when given."""
    if x.dim() != 4:
        raise ValueError(f"haar_dwt expects a B x C x H x W tensor, got shape {tuple(x.shape)}.")
    if x.dtype not in SUPPORTED_DTYPES:
        raise ValueError(f"haar_dwt supports float32, float16 and bfloat16, not {x.dtype}.")
    batch, channels, height, width = x.shape
    if height < 2 or width < 2:
        raise ValueError(f"haar_dwt needs images of at least 2 x 2 pixels, got {height} x {width}.")
    if batch * channels > MAX_GRID_Z:
        raise ValueError(f"haar_dwt launches one program column per (image, channel): at most {MAX_GRID_Z}, got "
                         f"{batch} x {channels}; split the batch.")
    require_kernel_device(_haar_dwt_kernel, x)
    mean_c, std_c = affine_constants(channels, mean, std)
    x = x.contiguous()
    if out is None:
        out = torch.empty(output_shape(x.shape), dtype=x.dtype, device=x.device)
    check_output(out, "out", torch.empty(output_shape(x.shape), device="meta"), x)
    if out.numel():
        with on_device(x.device):
            _haar_dwt_kernel[grid(batch, channels, height, width)](
                x, height, width, out, CHANNELS=channels, MEAN=mean_c, STD=std_c,
                BLOCK_H=BLOCK_H, BLOCK_W=BLOCK_W, num_warps=num_warps(x.element_size()))
    return out


# The custom op the model routes through: CPU runs the reference, CUDA the kernel. The transform is affine,
# so its gradient does not depend on x: autograd differentiates the reference at zero, keeping nothing alive.
@torch.library.custom_op("fmca::haar_dwt", mutates_args=())
def haar_dwt_op(x: torch.Tensor, mean: list[float] | None, std: list[float] | None) -> torch.Tensor:
    return haar_dwt_reference(x, mean, std)


@haar_dwt_op.register_kernel("cuda")
def _haar_dwt_cuda(x, mean, std):
    return haar_dwt_triton(x, mean, std)


@haar_dwt_op.register_fake
def _haar_dwt_fake(x, mean, std):
    return x.new_empty(output_shape(x.shape))


def _setup_context(ctx, inputs, output):
    x, ctx.mean, ctx.std = inputs
    ctx.input_like = dict(size=x.shape, dtype=x.dtype, device=x.device)


def _backward(ctx, grad):
    with torch.enable_grad():
        x = torch.zeros(**ctx.input_like, requires_grad=True)
        (grad_x,) = torch.autograd.grad(haar_dwt_reference(x, ctx.mean, ctx.std), x, grad)
    return grad_x, None, None


haar_dwt_op.register_autograd(_backward, setup_context=_setup_context)


def haar_dwt(x: torch.Tensor, mean: Sequence[float] | None = IMAGENET_MEAN,
             std: Sequence[float] | None = IMAGENET_STD) -> torch.Tensor:
    """Un-normalize (`x * std + mean`; None for both skips it) and take the Haar DWT, as `torch.ops.fmca.haar_dwt`.

    B x C x H x W -> B x 4C x ceil(H/2) x ceil(W/2), channels (c, LL), (c, LH), (c, HL), (c, HH); CUDA
    tensors run the Triton kernel, CPU tensors the PyTorch reference.
    """
    return haar_dwt_op(x, None if mean is None else list(mean), None if std is None else list(std))


def variants(dtypes: Sequence[str], channels: int = 3, mean: Sequence[float] | None = IMAGENET_MEAN,
             std: Sequence[float] | None = IMAGENET_STD) -> list[dict]:
    """What `kernels.aot` compiles for the TensorRT plugin (the JIT launcher's too): contiguous tensors,
    mean/std baked in.

    Argument order is the TensorRT AOT convention: input pointers, integer scalars, output pointers.
    """
    mean_c, std_c = affine_constants(channels, mean, std)
    return [{
        "op": "haar_dwt", "fn": _haar_dwt_kernel, "dtype": dtype,
        "signature": {"x_ptr": f"*{dtype}", "height": "i32", "width": "i32", "out_ptr": f"*{dtype}"},
        "constexprs": {"CHANNELS": channels, "MEAN": mean_c, "STD": std_c, "BLOCK_H": BLOCK_H, "BLOCK_W": BLOCK_W},
        "num_warps": num_warps({"fp32": 4, "fp16": 2, "bf16": 2}[dtype]),
        "num_stages": 1,
        "divisible_by_16": [],
        "arguments": [{"name": "x_ptr", "kind": "input", "tensor": "x"},
                      {"name": "height", "kind": "int32", "value": "H"},
                      {"name": "width", "kind": "int32", "value": "W"},
                      {"name": "out_ptr", "kind": "output", "tensor": "out"}],
        "grid": [f"cdiv(ceil(W/2), {BLOCK_W})", f"cdiv(ceil(H/2), {BLOCK_H})", "B*C"],
        "shapes": {"x": "B x C x H x W", "out": "B x 4C x ceil(H/2) x ceil(W/2)", "C": channels},
    } for dtype in dtypes]
