"""The Haar-DWT Triton kernel, run by Triton's interpreter on the CPU, against the reference and PyWavelets.

TRITON_INTERPRET=1 must be set before triton decorates any kernel, and it changes every kernel in the process,
so these tests run in a child pytest that test_kernels_interpreter.py starts with the variable set (the rest
of the suite keeps compiled kernels). Without the variable this module skips. To run it alone:
`TRITON_INTERPRET=1 .venv/bin/python -m pytest -q tests/test_kernels_haar_dwt.py`.

Tolerances: float32 and float16 outputs are bit-identical to the reference (same float32 arithmetic, one
rounding at the end). bfloat16 runs here too (the kernel has no dot product, the interpreter's weak spot), but
the interpreter converts float32 to bfloat16 by truncation where GPUs round to nearest: bfloat16 outputs are
compared with the truncated float32 reference, exactly, and with the reference to one bfloat16 step.
"""

import numpy as np
import pytest
import torch
import triton

if not triton.knobs.runtime.interpret:
    pytest.skip("runs under TRITON_INTERPRET=1, in the child pytest test_kernels_interpreter.py starts",
                allow_module_level=True)

from kernels import _haar_dwt  # noqa: E402  (after the interpreter check, on purpose)
from training.frequency import haar_dwt_reference  # noqa: E402

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@pytest.fixture
def interpreted():
    return _haar_dwt.haar_dwt_triton


def poisoned_output(x: torch.Tensor) -> torch.Tensor:
    return torch.full(_haar_dwt.output_shape(x.shape), float("nan"), dtype=x.dtype)


def run(launch, x, mean=MEAN, std=STD):
    out = poisoned_output(x)
    result = launch(x, mean, std, out=out)
    assert result is out
    assert not torch.isnan(out).any(), "the kernel left output elements unwritten"
    return out


def truncate_to_bfloat16(x: torch.Tensor) -> torch.Tensor:
    return (x.float().view(torch.int32) & ~0xFFFF).view(torch.float32).to(torch.bfloat16)


# Widths that are multiples of 8 with even heights take the kernel's aligned path (partial row and column tiles
# included: 9 x 36 outputs against 8 x 32 tiles); the others its general path.
SHAPES = [(1, 3, 8, 8), (2, 3, 18, 72), (1, 2, 2, 8), (1, 3, 56, 56), (2, 3, 7, 10), (1, 3, 9, 5), (2, 1, 2, 2),
          (1, 2, 3, 131), (3, 3, 34, 130), (1, 4, 17, 257), (1, 3, 8, 12)]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("normalized", [True, False], ids=["unnormalize", "raw"])
def test_kernel_equals_the_reference(interpreted, shape, dtype, normalized):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(sum(shape))).to(dtype)
    mean, std = (MEAN * 2)[:shape[1]], (STD * 2)[:shape[1]]
    if not normalized:
        mean = std = None
    torch.testing.assert_close(run(interpreted, x, mean, std), haar_dwt_reference(x, mean, std), rtol=0, atol=0)


@pytest.mark.parametrize("height,width", [(8, 8), (7, 10), (9, 5), (2, 3), (33, 64)])
def test_kernel_matches_pywavelets(interpreted, height, width):
    pywt = pytest.importorskip("pywt")
    x = torch.rand(2, 3, height, width, dtype=torch.float64)
    ours = run(interpreted, x.float(), None, None).double().numpy().reshape(2, 3, 4, (height + 1) // 2, (width + 1) // 2)
    padded = np.pad(x.numpy(), ((0, 0), (0, 0), (0, height % 2), (0, width % 2)), mode="reflect")
    c_a, (c_h, c_v, c_d) = pywt.dwt2(padded, "haar", axes=(-2, -1))
    # pywt's (cA, cH, cV, cD) are this project's (LL, HL, LH, HH); float32 inputs against a float64 oracle.
    for band, expected in enumerate([c_a, c_v, c_h, c_d]):
        np.testing.assert_allclose(ours[:, :, band], expected, rtol=0, atol=2e-6)


def test_unnormalizing_uses_each_channels_mean_and_std(interpreted):
    pywt = pytest.importorskip("pywt")
    rgb = torch.rand(1, 3, 6, 8, dtype=torch.float64)
    normalized = ((rgb - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)).float()
    ours = run(interpreted, normalized).double().numpy().reshape(1, 3, 4, 3, 4)
    c_a, (c_h, c_v, c_d) = pywt.dwt2(rgb.numpy(), "haar", axes=(-2, -1))
    for band, expected in enumerate([c_a, c_v, c_h, c_d]):
        np.testing.assert_allclose(ours[:, :, band], expected, rtol=0, atol=5e-6)


@pytest.mark.parametrize("shape", [(1, 3, 8, 8), (2, 3, 9, 13)], ids=lambda s: "x".join(map(str, s)))
def test_bfloat16_in_and_out(interpreted, shape):
    x = torch.randn(shape).to(torch.bfloat16)
    out = run(interpreted, x)
    exact = haar_dwt_reference(x.float(), MEAN, STD)
    torch.testing.assert_close(out, truncate_to_bfloat16(exact), rtol=0, atol=0)
    torch.testing.assert_close(out.float(), exact, rtol=2**-7, atol=1e-6)


def test_batch_images_are_independent(interpreted):
    x = torch.randn(3, 3, 11, 12)
    together = run(interpreted, x)
    for i in range(3):
        torch.testing.assert_close(together[i:i + 1], run(interpreted, x[i:i + 1]), rtol=0, atol=0)


def test_non_contiguous_input(interpreted):
    x = torch.randn(2, 12, 10, 3).permute(0, 3, 1, 2)  # channels-last memory
    torch.testing.assert_close(run(interpreted, x), haar_dwt_reference(x, MEAN, STD), rtol=0, atol=0)


@pytest.mark.parametrize("bad, message", [
    (torch.randn(3, 8, 8), "B x C x H x W"),
    (torch.randn(1, 3, 1, 8), "at least 2 x 2"),
    (torch.randn(1, 3, 8, 8).double(), "float32, float16 and bfloat16"),
])
def test_bad_inputs_get_one_sentence(interpreted, bad, message):
    with pytest.raises(ValueError, match=message):
        interpreted(bad)


def test_mean_and_std_need_one_value_per_channel(interpreted):
    with pytest.raises(ValueError, match="one per channel"):
        interpreted(torch.randn(1, 2, 4, 4), MEAN, STD)


def test_a_wrong_output_buffer_is_refused(interpreted):
    x = torch.randn(1, 3, 8, 8)
    with pytest.raises(ValueError, match=r"out must be a torch.float32 tensor of shape \(1, 12, 4, 4\) with contiguous"):
        interpreted(x, out=torch.empty(1, 12, 4, 5))
