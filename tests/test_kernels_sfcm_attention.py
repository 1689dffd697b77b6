"""The fused bidirectional attention kernel, run by Triton's interpreter on the CPU, against
`torch.nn.functional.scaled_dot_product_attention` and a float64 softmax.

Like test_kernels_haar_dwt.py, this module runs under TRITON_INTERPRET=1 in the child pytest that
test_kernels_interpreter.py starts, and skips otherwise.

Tolerances, against float64 math on the same (rounded) inputs: float32 uses exact IEEE dot products, so
1e-5; float16 multiplies the softmax probabilities, rounded to float16, with V (as on the GPU), so 2e-3.
bfloat16 is not run here: the interpreter's `tl.dot` multiplies bfloat16 bit patterns as integers, so a
result would say nothing about the kernel. bfloat16 is compiled for sm_87/sm_90 in test_kernels_aot.py and
run against PyTorch on a GPU in test_kernels_gpu.py.
"""

import math

import pytest
import torch
import torch.nn.functional as F
import triton

if not triton.knobs.runtime.interpret:
    pytest.skip("runs under TRITON_INTERPRET=1, in the child pytest test_kernels_interpreter.py starts",
                allow_module_level=True)

from kernels import _sfcm_attention, _tiles  # noqa: E402  (after the interpreter check, on purpose)
from training.sfcm import SFCM, token_major_empty  # noqa: E402

TOLERANCE = {torch.float32: 1e-5, torch.float16: 2e-3}
# Every tile set a GPU gets: JIT and AOT, Hopper (sm_90) and Ampere-class (sm_87), and float32's.
SHIPPED_TILES = sorted({_tiles.attention_tiles(dtype, arch, aot) for dtype in (torch.float16, torch.float32)
                        for arch in (87, 90) for aot in (False, True)})


@pytest.fixture
def interpreted():
    return _sfcm_attention.sfcm_attention_triton


def make_inputs(batch, heads, n_p, n_f, head_dim, dtype, seed=0):
    generator = torch.Generator().manual_seed(seed)
    counts = {"qp": n_p, "kf": n_f, "vf": n_f, "qf": n_f, "kp": n_p, "vp": n_p}
    return [torch.randn(batch, heads, n, head_dim, generator=generator).to(dtype) for n in counts.values()]


def run(launch, tensors, scale=None, tiles=None):
    out = tuple(token_major_empty(q, q.shape[2]).fill_(float("nan")) for q in (tensors[0], tensors[3]))
    ap, af = launch(*tensors, scale=scale, out=out, tiles=tiles)
    assert ap is out[0] and af is out[1]
    assert not (torch.isnan(ap).any() or torch.isnan(af).any()), "the kernel left output elements unwritten"
    return ap, af


def softmax_attention_float64(q, k, v, scale):
    q, k, v = q.double(), k.double(), v.double()
    return torch.softmax(q @ k.transpose(-1, -2) * scale, dim=-1) @ v


def check(ap, af, tensors, scale=None, tolerance=None):
    qp, kf, vf, qf, kp, vp = tensors
    scale = 1 / math.sqrt(qp.shape[-1]) if scale is None else scale
    tolerance = TOLERANCE[qp.dtype] if tolerance is None else tolerance
    for ours, (q, k, v) in ((ap, (qp, kf, vf)), (af, (qf, kp, vp))):
        exact = softmax_attention_float64(q, k, v, scale)
        torch.testing.assert_close(ours.double(), exact, rtol=tolerance, atol=tolerance)
        sdpa = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), scale=scale)
        torch.testing.assert_close(ours.float(), sdpa, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("head_dim", [32, 64, 96, 128])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("batch, heads, n_p, n_f", [(1, 1, 16, 16), (2, 3, 70, 33), (1, 2, 9, 130)],
                         ids=["equal", "more-patches", "more-freqs"])
def test_both_directions_match_sdpa(interpreted, head_dim, dtype, batch, heads, n_p, n_f):
    tensors = make_inputs(batch, heads, n_p, n_f, head_dim, dtype, seed=head_dim + n_p)
    check(*run(interpreted, tensors), tensors)


@pytest.mark.parametrize("tiles", SHIPPED_TILES, ids=lambda t: "x".join(map(str, t)))
def test_every_shipped_tile_set(interpreted, tiles):
    # Token counts that leave partial query and key blocks for 32-, 64- and 128-row tiles; head size 96 uses
    # both column blocks (64 + 32).
    tensors = make_inputs(1, 2, 150, 37, 96, torch.float16, seed=11)
    check(*run(interpreted, tensors, tiles=tiles), tensors)


def test_the_models_shapes(interpreted):
    # b14/s14 at 224 px: 16 x 16 = 256 patch and frequency tokens, heads of 96 channels.
    tensors = make_inputs(1, 2, 256, 256, 96, torch.float16, seed=7)
    check(*run(interpreted, tensors), tensors)


@pytest.mark.parametrize("head_dim", [1, 8, 40, 100])
def test_head_sizes_that_are_not_powers_of_two_or_are_tiny(interpreted, head_dim):
    tensors = make_inputs(2, 2, 13, 21, head_dim, torch.float32, seed=head_dim)
    check(*run(interpreted, tensors), tensors)


def test_single_tokens_and_an_explicit_scale(interpreted):
    tensors = make_inputs(1, 1, 1, 5, 32, torch.float32)
    check(*run(interpreted, tensors, scale=0.3), tensors, scale=0.3)


@pytest.mark.parametrize("scale", [0.0, -0.7])
def test_zero_and_negative_scales_are_softmax_of_the_scaled_scores(interpreted, scale):
    # Key counts that are not a multiple of the key tile: masked keys must stay out also when scale <= 0.
    tensors = make_inputs(1, 2, 20, 45, 32, torch.float32, seed=5)
    ap, af = run(interpreted, tensors, scale=scale)
    check(ap, af, tensors, scale=scale)
    if scale == 0.0:  # uniform weights: every query gets the mean of the values
        torch.testing.assert_close(ap, tensors[2].mean(2, keepdim=True).expand_as(ap), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("scale", [float("nan"), float("inf")])
def test_a_scale_that_is_not_finite_is_refused(interpreted, scale):
    with pytest.raises(ValueError, match="finite softmax scale"):
        interpreted(*make_inputs(1, 1, 4, 4, 32, torch.float32), scale=scale)


def test_outputs_are_token_major_so_merging_heads_is_a_view(interpreted):
    tensors = make_inputs(2, 3, 10, 7, 32, torch.float32)
    for output, tokens in zip(interpreted(*tensors), (10, 7)):
        assert output.shape == (2, 3, tokens, 32) and output.transpose(1, 2).is_contiguous()
        merged = SFCM._merge_heads(output)
        assert merged.shape == (2, tokens, 96) and merged.data_ptr() == output.data_ptr()


def test_large_logits_stay_finite(interpreted):
    # Scores around +-100: a softmax without the running maximum would overflow exp. Float32 scores of that
    # size carry absolute errors near 1e-4, which the probabilities inherit: hence the looser tolerance.
    tensors = [t * 10 for t in make_inputs(1, 2, 40, 70, 64, torch.float32, seed=3)]
    check(*run(interpreted, tensors), tensors, tolerance=2e-3)


def test_a_contiguous_output_buffer_is_refused(interpreted):
    tensors = make_inputs(1, 2, 8, 8, 32, torch.float32)
    with pytest.raises(ValueError, match=r"ap must be a torch.float32 tensor of shape \(1, 2, 8, 32\) with strides"):
        interpreted(*tensors, out=(torch.empty(1, 2, 8, 32), torch.empty(1, 2, 8, 32)))


def test_the_models_strided_head_views_are_read_in_place(interpreted):
    # SFCM splits heads with reshape + transpose: B x N x heads x D memory seen as B x heads x N x D.
    batch, heads, n_p, n_f, head_dim = 2, 3, 19, 11, 32
    patches = [torch.randn(batch, n_p, heads * head_dim).view(batch, n_p, heads, head_dim).transpose(1, 2)
               for _ in range(3)]
    freqs = [torch.randn(batch, n_f, heads * head_dim).view(batch, n_f, heads, head_dim).transpose(1, 2)
             for _ in range(3)]
    tensors = [patches[0], freqs[0], freqs[1], freqs[2], patches[1], patches[2]]
    assert not tensors[0].is_contiguous()
    check(*run(interpreted, tensors), tensors)


def test_mixed_layouts_within_a_group_are_handled(interpreted):
    tensors = make_inputs(1, 2, 12, 7, 32, torch.float32)
    tensors[4] = tensors[4].transpose(2, 3).contiguous().transpose(2, 3)  # kp with its own strides
    check(*run(interpreted, tensors), tensors)


@pytest.mark.parametrize("change, message", [
    (lambda t: t.__setitem__(0, t[0][0]), "B x heads x N x D"),
    (lambda t: t.__setitem__(4, t[4][:, :, :5]), "kp has shape"),
    (lambda t: t.__setitem__(2, t[2].double()), "one dtype"),
    (lambda t: [t.__setitem__(i, x.repeat(1, 1, 1, 2)) for i, x in enumerate(t)], "head sizes 1..128"),
])
def test_bad_inputs_get_one_sentence(interpreted, change, message):
    tensors = make_inputs(1, 1, 8, 8, 96, torch.float32)
    change(tensors)
    with pytest.raises(ValueError, match=message):
        interpreted(*tensors)
