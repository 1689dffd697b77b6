"""Fused bidirectional SFCM attention: the Triton kernel, its launcher and the `fmca::sfcm_attention` op.

Both directions, `ap = softmax(qp kf^T * scale) vf` and `af = softmax(qf kp^T * scale) vp`, run in one launch:
grid axis 0 enumerates the query blocks of the patch direction, then those of the frequency direction, so
small per-head problems (a few hundred tokens) still fill the GPU. Each program keeps its query tile in
registers and streams key/value tiles through an online softmax (running max and sum, float32
accumulator), the forward pass of FlashAttention. Head sizes that are not a power of two (the paper's 96)
are padded to the next one with masks.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from training.sfcm import sfcm_attention_reference

from ._checks import check_output, require_kernel_device

LOG2E = 1.4426950408889634
SUPPORTED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
MAX_HEAD_DIM = 128
MAX_GRID_Y = 65535  # CUDA's limit on a grid's y size


@triton.jit
def _sfcm_attention_kernel(qp_ptr, kf_ptr, vf_ptr, qf_ptr, kp_ptr, vp_ptr,
                           n_p, n_f, heads, stride_pb, stride_ph, stride_pn, stride_fb, stride_fh, stride_fn,
                           ap_ptr, af_ptr,
                           HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, SCALE: tl.constexpr,
                           BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, DOT_PRECISION: tl.constexpr):
    # Grid: (cdiv(n_p, BLOCK_M) + cdiv(n_f, BLOCK_M), batch * heads). Inputs are B x heads x N x HEAD_DIM
    # with unit stride along the head dimension; the patch tensors (qp, kp, vp) share one set of strides,
    # the frequency tensors (qf, kf, vf) another. Outputs are contiguous.
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
    offs_d = tl.arange(0, BLOCK_D)
    d_ok = offs_d < HEAD_DIM
    q_mask = (offs_m < n_q)[:, None] & d_ok[None, :]
    q = tl.load(q_ptr + q_base + offs_m[:, None] * stride_qn + offs_d[None, :], mask=q_mask, other=0.0)

    qk_scale: tl.constexpr = SCALE * 1.4426950408889634  # exp2 instead of exp
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)
    for start_n in range(0, n_k, BLOCK_N):
        offs_n = start_n + tl.arange(0, BLOCK_N)
        n_ok = offs_n < n_k
        k = tl.load(k_ptr + kv_base + offs_n[None, :] * stride_kvn + offs_d[:, None],
                    mask=n_ok[None, :] & d_ok[:, None], other=0.0)
        qk = tl.dot(q, k, input_precision=DOT_PRECISION)
        qk = tl.where(n_ok[None, :], qk, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(qk, 1) * qk_scale)
        p = tl.math.exp2(qk * qk_scale - m_new[:, None])
        alpha = tl.math.exp2(m_i - m_new)
        l_i = l_i * alpha + tl.sum(p, 1)
        v = tl.load(v_ptr + kv_base + offs_n[:, None] * stride_kvn + offs_d[None, :],
                    mask=n_ok[:, None] & d_ok[None, :], other=0.0)
        acc = tl.dot(p.to(v.dtype), v, acc * alpha[:, None], input_precision=DOT_PRECISION)
        m_i = m_new
    acc = acc / l_i[:, None]
    o_offsets = (batch * heads + head) * n_q * HEAD_DIM + offs_m[:, None] * HEAD_DIM + offs_d[None, :]
    tl.store(o_ptr + o_offsets, acc.to(o_ptr.dtype.element_ty), mask=q_mask)


def block_config(dtype: torch.dtype, head_dim: int) -> dict:
    """Tile sizes and warps: the largest tiles that compile without register spills for sm_87 and sm_90
    (checked by `kernels.aot`); float32 tiles take twice the registers and use exact (IEEE) dot products."""
    block_d = max(16, triton.next_power_of_2(head_dim))
    if dtype == torch.float32:
        return {"BLOCK_M": 32, "BLOCK_N": 32, "BLOCK_D": block_d, "num_warps": 4, "DOT_PRECISION": "ieee"}
    return {"BLOCK_M": 64, "BLOCK_N": 64, "BLOCK_D": block_d, "num_warps": 8 if block_d > 64 else 4,
            "DOT_PRECISION": "tf32"}


def grid(n_p: int, n_f: int, batch_heads: int, block_m: int) -> tuple[int, int]:
    return triton.cdiv(n_p, block_m) + triton.cdiv(n_f, block_m), batch_heads


def default_scale(head_dim: int) -> float:
    return 1.0 / math.sqrt(head_dim)


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
                          out: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Launch the fused kernel; returns contiguous (ap, af) in the inputs' dtype, written into `out` when given."""
    check_inputs(qp, kf, vf, qf, kp, vp)
    require_kernel_device(_sfcm_attention_kernel, qp, kf, vf, qf, kp, vp)
    batch, heads, n_p, head_dim = qp.shape
    n_f = kf.shape[2]
    (qp, kp, vp), patch_strides = _shared_strides(qp, kp, vp)
    (qf, kf, vf), freq_strides = _shared_strides(qf, kf, vf)
    if out is None:
        out = (torch.empty(batch, heads, n_p, head_dim, dtype=qp.dtype, device=qp.device),
               torch.empty(batch, heads, n_f, head_dim, dtype=qp.dtype, device=qp.device))
    ap = check_output(out[0], "ap", (batch, heads, n_p, head_dim), qp)
    af = check_output(out[1], "af", (batch, heads, n_f, head_dim), qp)
    if batch * heads == 0:
        return ap, af
    config = block_config(qp.dtype, head_dim)
    _sfcm_attention_kernel[grid(n_p, n_f, batch * heads, config["BLOCK_M"])](
        qp, kf, vf, qf, kp, vp, n_p, n_f, heads, *patch_strides, *freq_strides, ap, af,
        HEAD_DIM=head_dim, SCALE=default_scale(head_dim) if scale is None else float(scale), **config)
    return ap, af


# The custom op the model routes through: CPU runs the reference, CUDA the kernel; autograd differentiates
# the reference by recomputing it (the kernel is forward-only).
@torch.library.custom_op("fmca::sfcm_attention", mutates_args=())
def sfcm_attention_op(qp: torch.Tensor, kf: torch.Tensor, vf: torch.Tensor, qf: torch.Tensor, kp: torch.Tensor,
                      vp: torch.Tensor, scale: float | None) -> tuple[torch.Tensor, torch.Tensor]:
    ap, af = sfcm_attention_reference(qp, kf, vf, qf, kp, vp, scale)
    return ap.contiguous(), af.contiguous()


@sfcm_attention_op.register_kernel("cuda")
def _sfcm_attention_cuda(qp, kf, vf, qf, kp, vp, scale):
    return sfcm_attention_triton(qp, kf, vf, qf, kp, vp, scale)


@sfcm_attention_op.register_fake
def _sfcm_attention_fake(qp, kf, vf, qf, kp, vp, scale):
    return qp.new_empty(qp.shape), qf.new_empty(qf.shape)


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


def aot_variants(dtypes, head_dims) -> list[dict]:
    """What `kernels.aot` compiles for the TensorRT plugin: contiguous B x heads x N x D tensors, the
    softmax scale 1/sqrt(D) baked in (AOT plugins receive integer arguments only).

    Argument order is the TensorRT AOT convention: input pointers, integer scalars, output pointers.
    """
    variants = []
    for dtype in dtypes:
        for head_dim in head_dims:
            config = block_config(getattr(torch, {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}[dtype]),
                                  head_dim)
            pointer = f"*{dtype}"
            ints = ["n_p", "n_f", "heads", "stride_pb", "stride_ph", "stride_pn", "stride_fb", "stride_fh", "stride_fn"]
            values = ["N_p", "N_f", "heads", f"heads*N_p*{head_dim}", f"N_p*{head_dim}", f"{head_dim}",
                      f"heads*N_f*{head_dim}", f"N_f*{head_dim}", f"{head_dim}"]
            inputs = ["qp", "kf", "vf", "qf", "kp", "vp"]
            variants.append({
                "op": "sfcm_attention", "fn": _sfcm_attention_kernel, "dtype": dtype, "head_dim": head_dim,
                "signature": {**{f"{n}_ptr": pointer for n in inputs}, **{n: "i32" for n in ints},
                              "ap_ptr": pointer, "af_ptr": pointer},
                "constexprs": {"HEAD_DIM": head_dim, "SCALE": default_scale(head_dim),
                               **{k: v for k, v in config.items() if k != "num_warps"}},
                "num_warps": config["num_warps"],
                # Contiguous strides are multiples of D; telling the compiler lets it vectorize the loads.
                "multiples_of_16": ints[3:] if head_dim % 16 == 0 else [],
                "arguments": ([{"name": f"{n}_ptr", "kind": "input", "tensor": n} for n in inputs]
                              + [{"name": n, "kind": "int32", "value": v} for n, v in zip(ints, values)]
                              + [{"name": f"{n}_ptr", "kind": "output", "tensor": n} for n in ("ap", "af")]),
                "grid": [f"cdiv(N_p, {config['BLOCK_M']}) + cdiv(N_f, {config['BLOCK_M']})", "B*heads", "1"],
                "shapes": {"qp/kp/vp/ap": f"B x heads x N_p x {head_dim}", "qf/kf/vf/af": f"B x heads x N_f x {head_dim}"},
            })
    return variants
