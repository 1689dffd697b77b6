"""Fused bidirectional SFCM attention: the Triton kernel, its launcher and the `fmca::sfcm_attention` op.

Both directions, `ap = softmax(qp kf^T * scale) vf` and `af = softmax(qf kp^T * scale) vp`, run in one launch:
grid axis 0 enumerates the query blocks of the patch direction, then those of the frequency direction, so
small per-head problems (a few hundred tokens) still fill the GPU. Each program keeps its query tile in
registers and streams key/value tiles through an online softmax (running max and sum, float32
accumulator), the forward pass of FlashAttention. The head dimension is covered by at most two power-of-two
column blocks (96 = 64 + 32), so the paper's head size is not padded to 128. Outputs are written token-major,
B x N x heads x D in memory, the layout in which the model merges heads without a copy. Tiles per GPU
architecture: `_tiles.py`.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from training.sfcm import sfcm_attention_reference, token_major_empty

from ._checks import check_output, kernel_arch, on_device, require_kernel_device
from ._tiles import Tiles, attention_tiles, dot_precision

SUPPORTED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
MAX_HEAD_DIM = 128
MAX_GRID_Y = 65535  # CUDA's limit on a grid's y size


@triton.jit
def _load_rows(ptr, rows, row_ok, row_stride, COL0: tl.constexpr, COLS: tl.constexpr, HEAD_DIM: tl.constexpr):
    """Columns [COL0, COL0 + COLS) of the given token rows (one row every `row_stride` elements), zeros outside
    the tokens and the head."""
    cols = COL0 + tl.arange(0, COLS)
    return tl.load(ptr + rows[:, None] * row_stride + cols[None, :],
                   mask=row_ok[:, None] & (cols < HEAD_DIM)[None, :], other=0.0)


@triton.jit
def _store_rows(ptr, rows, row_ok, row_stride, COL0: tl.constexpr, COLS: tl.constexpr, HEAD_DIM: tl.constexpr, values):
    cols = COL0 + tl.arange(0, COLS)
    tl.store(ptr + rows[:, None] * row_stride + cols[None, :], values.to(ptr.dtype.element_ty),
             mask=row_ok[:, None] & (cols < HEAD_DIM)[None, :])


@triton.jit
def _sfcm_attention_kernel(qp_ptr, kf_ptr, vf_ptr, qf_ptr, kp_ptr, vp_ptr,
                           n_p, n_f, heads, stride_pb, stride_ph, stride_pn, stride_fb, stride_fh, stride_fn,
                           ap_ptr, af_ptr,
                           HEAD_DIM: tl.constexpr, SCALE: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                           BLOCK_D0: tl.constexpr, BLOCK_D1: tl.constexpr, DOT_PRECISION: tl.constexpr):
    # Grid: (cdiv(n_p, BLOCK_M) + cdiv(n_f, BLOCK_M), batch * heads). Inputs are B x heads x N x HEAD_DIM
    # with unit stride along the head dimension; the patch tensors (qp, kp, vp) share one set of strides,
    # the frequency tensors (qf, kf, vf) another. Outputs are B x N x heads x HEAD_DIM, contiguous. Columns
    # [0, BLOCK_D0) and [BLOCK_D0, BLOCK_D0 + BLOCK_D1) cover the head; BLOCK_D1 = 0 when one block does.
    pid = tl.program_id(0)
    batch_head = tl.program_id(1)
    batch = (batch_head // heads).to(tl.int64)
    head = (batch_head % heads).to(tl.int64)
    blocks_p = tl.cdiv(n_p, BLOCK_M)
    if pid < blocks_p:  # patch queries attend to frequency keys/values
        q_ptr, k_ptr, v_ptr, o_ptr = qp_ptr, kf_ptr, vf_ptr, ap_ptr
        n_q, n_k, start_m = n_p, n_f, pid
        q_base = batch * stride_pb + head * stride_ph
        kv_base = batch * stride_fb + head * stride_fh
        stride_qn, stride_kvn = stride_pn, stride_fn
    else:  # frequency queries attend to patch keys/values
        q_ptr, k_ptr, v_ptr, o_ptr = qf_ptr, kp_ptr, vp_ptr, af_ptr
        n_q, n_k, start_m = n_f, n_p, pid - blocks_p
        q_base = batch * stride_fb + head * stride_fh
        kv_base = batch * stride_pb + head * stride_ph
        stride_qn, stride_kvn = stride_fn, stride_pn

    offs_m = start_m * BLOCK_M + tl.arange(0, BLOCK_M)
    m_ok = offs_m < n_q
    q0 = _load_rows(q_ptr + q_base, offs_m, m_ok, stride_qn, 0, BLOCK_D0, HEAD_DIM)
    acc0 = tl.zeros([BLOCK_M, BLOCK_D0], dtype=tl.float32)
    if BLOCK_D1 > 0:
        q1 = _load_rows(q_ptr + q_base, offs_m, m_ok, stride_qn, BLOCK_D0, BLOCK_D1, HEAD_DIM)
        acc1 = tl.zeros([BLOCK_M, BLOCK_D1], dtype=tl.float32)

    qk_scale: tl.constexpr = SCALE * 1.4426950408889634  # exp2 instead of exp
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    for start_n in range(0, n_k, BLOCK_N):
        offs_n = start_n + tl.arange(0, BLOCK_N)
        n_ok = offs_n < n_k
        k_base = k_ptr + kv_base
        k0 = _load_rows(k_base, offs_n, n_ok, stride_kvn, 0, BLOCK_D0, HEAD_DIM)
        qk = tl.dot(q0, tl.trans(k0), input_precision=DOT_PRECISION)
        if BLOCK_D1 > 0:
            k1 = _load_rows(k_base, offs_n, n_ok, stride_kvn, BLOCK_D0, BLOCK_D1, HEAD_DIM)
            qk = tl.dot(q1, tl.trans(k1), qk, input_precision=DOT_PRECISION)
        # Masked after scaling, so that any finite scale (also 0 or negative) gives softmax(scores * scale).
        qk = tl.where(n_ok[None, :], qk * qk_scale, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(qk, 1))
        p = tl.math.exp2(qk - m_new[:, None])
        alpha = tl.math.exp2(m_i - m_new)
        l_i = l_i * alpha + tl.sum(p, 1)
        v_base = v_ptr + kv_base
        v0 = _load_rows(v_base, offs_n, n_ok, stride_kvn, 0, BLOCK_D0, HEAD_DIM)
        p = p.to(v0.dtype)
        acc0 = tl.dot(p, v0, acc0 * alpha[:, None], input_precision=DOT_PRECISION)
        if BLOCK_D1 > 0:
            v1 = _load_rows(v_base, offs_n, n_ok, stride_kvn, BLOCK_D0, BLOCK_D1, HEAD_DIM)
            acc1 = tl.dot(p, v1, acc1 * alpha[:, None], input_precision=DOT_PRECISION)
        m_i = m_new
    # B x N x heads x HEAD_DIM: token m of this head starts at ((batch * n_q + m) * heads + head) * HEAD_DIM.
    o_rows = o_ptr + (batch * n_q * heads + head) * HEAD_DIM
    out_stride = heads * HEAD_DIM
    _store_rows(o_rows, offs_m, m_ok, out_stride, 0, BLOCK_D0, HEAD_DIM, acc0 / l_i[:, None])
    if BLOCK_D1 > 0:
        _store_rows(o_rows, offs_m, m_ok, out_stride, BLOCK_D0, BLOCK_D1, HEAD_DIM, acc1 / l_i[:, None])


def head_blocks(head_dim: int) -> tuple[int, int]:
    """Two power-of-two column blocks covering the head size (tl.arange needs powers of two, tl.dot at least
    16): 96 -> (64, 32), 32 -> (32, 0), 100 -> (64, 64)."""
    first = max(16, 1 << (head_dim.bit_length() - 1))
    rest = head_dim - first
    return first, (max(16, triton.next_power_of_2(rest)) if rest > 0 else 0)


def block_config(dtype: torch.dtype, head_dim: int, tiles: Tiles) -> dict:
    """The kernel's tile constexprs and launch options."""
    first, second = head_blocks(head_dim)
    return {"BLOCK_M": tiles.block_m, "BLOCK_N": tiles.block_n, "BLOCK_D0": first, "BLOCK_D1": second,
            "DOT_PRECISION": dot_precision(dtype), "num_warps": tiles.num_warps, "num_stages": tiles.num_stages}


def grid(n_p: int, n_f: int, batch_heads: int, block_m: int) -> tuple[int, int]:
    return triton.cdiv(n_p, block_m) + triton.cdiv(n_f, block_m), batch_heads


def default_scale(head_dim: int) -> float:
    return 1.0 / math.sqrt(head_dim)


def checked_scale(scale: float | None, head_dim: int) -> float:
    """The softmax scale to bake in: 1/sqrt(D) by default; any finite number (0 gives uniform weights)."""
    if scale is None:
        return default_scale(head_dim)
    if not math.isfinite(scale):
        raise ValueError(f"sfcm_attention needs a finite softmax scale, got {scale}.")
    return float(scale)


def _shared_strides(*tensors: torch.Tensor) -> tuple[tuple[torch.Tensor, ...], tuple[int, int, int]]:
    """Strides (batch, head, token) the kernel can use for every tensor of one group; copies if needed."""
    strides = {t.stride() for t in tensors}
    if len(strides) != 1 or tensors[0].stride(-1) != 1:
        tensors = tuple(t.contiguous() for t in tensors)
    return tensors, tensors[0].stride()[:3]


def check_inputs(qp, kf, vf, qf, kp, vp) -> None:
    named = {"qp": qp, "kf": kf, "vf": vf, "qf": qf, "kp": kp, "vp": vp}
    for name, t in named.items():
        if t.dim() != 4:
            raise ValueError(f"sfcm_attention expects B x heads x N x D tensors; {name} has shape {tuple(t.shape)}.")
    if len({t.dtype for t in named.values()}) != 1 or qp.dtype not in SUPPORTED_DTYPES:
        raise ValueError("sfcm_attention needs six tensors of one dtype, float32, float16 or bfloat16; got "
                         + ", ".join(f"{n}={t.dtype}" for n, t in named.items()) + ".")
    batch, heads, n_p, head_dim = qp.shape
    n_f = kf.shape[2]
    expected = {"qp": n_p, "kp": n_p, "vp": n_p, "qf": n_f, "kf": n_f, "vf": n_f}
    for name, t in named.items():
        if tuple(t.shape) != (batch, heads, expected[name], head_dim):
            raise ValueError(f"{name} has shape {tuple(t.shape)}, expected {(batch, heads, expected[name], head_dim)} "
                             f"(patch tensors qp/kp/vp share N={n_p}, frequency tensors qf/kf/vf share N={n_f}).")
    if batch * heads > MAX_GRID_Y:
        raise ValueError(f"sfcm_attention launches one program row per (batch, head): at most {MAX_GRID_Y}, "
                         f"got {batch} x {heads}; split the batch.")
    if not 1 <= head_dim <= MAX_HEAD_DIM or n_p < 1 or n_f < 1:
        raise ValueError(f"sfcm_attention supports head sizes 1..{MAX_HEAD_DIM} and at least one token per side, "
                         f"got D={head_dim}, N_p={n_p}, N_f={n_f}.")


def sfcm_attention_triton(qp, kf, vf, qf, kp, vp, scale: float | None = None,
                          out: tuple[torch.Tensor, torch.Tensor] | None = None,
                          tiles: Tiles | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Launch the fused kernel; returns (ap, af), B x heads x N x D in the inputs' dtype and laid out
    B x N x heads x D in memory (`token_major_empty`), written into `out` when given. `tiles` overrides the
    device's choice (CPU tensors in Triton's interpreter take Hopper's)."""
    check_inputs(qp, kf, vf, qf, kp, vp)
    require_kernel_device(_sfcm_attention_kernel, qp, kf, vf, qf, kp, vp)
    batch, heads, n_p, head_dim = qp.shape
    n_f = kf.shape[2]
    scale = checked_scale(scale, head_dim)
    (qp, kp, vp), patch_strides = _shared_strides(qp, kp, vp)
    (qf, kf, vf), freq_strides = _shared_strides(qf, kf, vf)
    if out is None:
        out = (token_major_empty(qp, n_p), token_major_empty(qp, n_f))
    ap = check_output(out[0], "ap", token_major_empty(qp, n_p, device="meta"), qp)
    af = check_output(out[1], "af", token_major_empty(qp, n_f, device="meta"), qp)
    if batch * heads == 0:
        return ap, af
    config = block_config(qp.dtype, head_dim, tiles or attention_tiles(qp.dtype, kernel_arch(qp.device)))
    with on_device(qp.device):
        _sfcm_attention_kernel[grid(n_p, n_f, batch * heads, config["BLOCK_M"])](
            qp, kf, vf, qf, kp, vp, n_p, n_f, heads, *patch_strides, *freq_strides, ap, af,
            HEAD_DIM=head_dim, SCALE=scale, **config)
    return ap, af


def _reference_token_major(qp, kf, vf, qf, kp, vp, scale):
    """The reference, returned in the kernel's output layout (so both implementations give the same strides)."""
    outputs = sfcm_attention_reference(qp, kf, vf, qf, kp, vp, scale)
    return tuple(token_major_empty(q, q.shape[2]).copy_(o) for q, o in zip((qp, qf), outputs))


# The custom op the model routes through: CPU runs the reference, CUDA the kernel for float16/bfloat16. On
# float32 the kernel's exact IEEE products run on the CUDA cores, slower than PyTorch's own fused attention,
# so float32 CUDA tensors take PyTorch's (`kernels.gpucheck` times both). Autograd differentiates the
# reference by recomputing it (the kernel is forward-only). Outputs are token-major whichever runs.
@torch.library.custom_op("fmca::sfcm_attention", mutates_args=())
def sfcm_attention_op(qp: torch.Tensor, kf: torch.Tensor, vf: torch.Tensor, qf: torch.Tensor, kp: torch.Tensor,
                      vp: torch.Tensor, scale: float | None) -> tuple[torch.Tensor, torch.Tensor]:
    return _reference_token_major(qp, kf, vf, qf, kp, vp, scale)


@sfcm_attention_op.register_kernel("cuda")
def _sfcm_attention_cuda(qp, kf, vf, qf, kp, vp, scale):
    if qp.dtype == torch.float32:
        return _reference_token_major(qp, kf, vf, qf, kp, vp, scale)
    return sfcm_attention_triton(qp, kf, vf, qf, kp, vp, scale)


@sfcm_attention_op.register_fake
def _sfcm_attention_fake(qp, kf, vf, qf, kp, vp, scale):
    return token_major_empty(qp, qp.shape[2]), token_major_empty(qf, qf.shape[2])


def _setup_context(ctx, inputs, output):
    *tensors, ctx.scale = inputs
    ctx.save_for_backward(*tensors)


def _backward(ctx, grad_ap, grad_af):
    with torch.enable_grad():
        tensors = [t.detach().requires_grad_(True) for t in ctx.saved_tensors]
        outputs = sfcm_attention_reference(*tensors, ctx.scale)
        grads = torch.autograd.grad(outputs, tensors, (grad_ap, grad_af))
    return (*grads, None)


sfcm_attention_op.register_autograd(_backward, setup_context=_setup_context)


def sfcm_attention(qp, kf, vf, qf, kp, vp, scale: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Both SFCM directions, `torch.ops.fmca.sfcm_attention`: (softmax(qp kf^T s) vf, softmax(qf kp^T s) vp).

    Tensors are B x heads x N x D (the patch side's N may differ from the frequency side's); `scale`
    defaults to 1/sqrt(D). CUDA tensors run the fused Triton kernel, CPU tensors the PyTorch reference.
    """
    return sfcm_attention_op(qp, kf, vf, qf, kp, vp, scale)


def variants(arch: int, dtypes, head_dims, aot: bool = True) -> list[dict]:
    """The kernel as compiled for `arch`: with `aot`, what `kernels.aot` compiles for the TensorRT plugin
    (token-major B x N x heads x D tensors, the model's projections reshaped with no transposes; the softmax
    scale 1/sqrt(D) baked in, since AOT plugins receive integer arguments only; tiles within the AOT
    shared-memory limit); without, the JIT launcher's tiles (for checking its compiled code).

    Argument order is the TensorRT AOT convention: input pointers, integer scalars, output pointers.
    """
    variants = []
    for dtype in dtypes:
        for head_dim in head_dims:
            torch_dtype = getattr(torch, {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}[dtype])
            config = block_config(torch_dtype, head_dim, attention_tiles(torch_dtype, arch, aot))
            pointer = f"*{dtype}"
            ints = ["n_p", "n_f", "heads", "stride_pb", "stride_ph", "stride_pn", "stride_fb", "stride_fh", "stride_fn"]
            values = ["N_p", "N_f", "heads", f"N_p*heads*{head_dim}", f"{head_dim}", f"heads*{head_dim}",
                      f"N_f*heads*{head_dim}", f"{head_dim}", f"heads*{head_dim}"]
            inputs = ["qp", "kf", "vf", "qf", "kp", "vp"]
            launch = {k: config.pop(k) for k in ("num_warps", "num_stages")}
            variants.append({
                "op": "sfcm_attention", "fn": _sfcm_attention_kernel, "dtype": dtype, "head_dim": head_dim,
                "signature": {**{f"{n}_ptr": pointer for n in inputs}, **{n: "i32" for n in ints},
                              "ap_ptr": pointer, "af_ptr": pointer},
                "constexprs": {"HEAD_DIM": head_dim, "SCALE": default_scale(head_dim), **config},
                **launch,
                # Token-major strides are multiples of D; telling the compiler lets it vectorize the loads.
                "divisible_by_16": ints[3:] if head_dim % 16 == 0 else [],
                "arguments": ([{"name": f"{n}_ptr", "kind": "input", "tensor": n} for n in inputs]
                              + [{"name": n, "kind": "int32", "value": v} for n, v in zip(ints, values)]
                              + [{"name": f"{n}_ptr", "kind": "output", "tensor": n} for n in ("ap", "af")]),
                "grid": [f"cdiv(N_p, {config['BLOCK_M']}) + cdiv(N_f, {config['BLOCK_M']})", "B*heads", "1"],
                "shapes": {"qp/kp/vp/ap": f"B x N_p x heads x {head_dim}", "qf/kf/vf/af": f"B x N_f x heads x {head_dim}"},
            })
    return variants
