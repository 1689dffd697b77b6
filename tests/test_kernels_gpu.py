"""The compiled kernels on a real GPU against the references (skipped without CUDA, as in CI)."""

import pytest
import torch

import kernels
from kernels._tiles import attention_tiles
from training import FMCANet, ops
from training.sfcm import token_major_empty

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU with CUDA")]

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
# GPU float16/bfloat16 outputs round once from float32 (DWT); attention rounds P to the input dtype for P @ V.
DWT_TOLERANCE = {torch.float32: 1e-6, torch.float16: 1e-3, torch.bfloat16: 8e-3}
ATTENTION_TOLERANCE = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 2e-2}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("shape", [(1, 3, 224, 224), (5, 3, 37, 129)])
def test_haar_dwt_kernel(dtype, shape):
    x = torch.randn(shape, device="cuda").to(dtype)
    out = torch.full(kernels._haar_dwt.output_shape(shape), float("nan"), device="cuda", dtype=dtype)
    kernels.haar_dwt_triton(x, MEAN, STD, out=out)
    tolerance = DWT_TOLERANCE[dtype]
    torch.testing.assert_close(out.float(), kernels.haar_dwt_reference(x.float(), MEAN, STD), rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("head_dim", [32, 64, 96, 128])
@pytest.mark.parametrize("batch, n_p, n_f", [(1, 256, 256), (3, 197, 49)])
@pytest.mark.parametrize("aot", [False, True], ids=["jit-tiles", "aot-tiles"])
def test_sfcm_attention_kernel(dtype, head_dim, batch, n_p, n_f, aot):
    tensors = [torch.randn(batch, 8, n, head_dim, device="cuda", dtype=dtype) for n in (n_p, n_f, n_f, n_f, n_p, n_p)]
    out = tuple(token_major_empty(q, q.shape[2]).fill_(float("nan")) for q in (tensors[0], tensors[3]))
    major, minor = torch.cuda.get_device_capability()
    kernels.sfcm_attention_triton(*tensors, out=out, tiles=attention_tiles(dtype, 10 * major + minor, aot))
    expected = kernels.sfcm_attention_reference(*(t.double() for t in tensors))
    tolerance = ATTENTION_TOLERANCE[dtype]
    for ours, exact in zip(out, expected):
        torch.testing.assert_close(ours.double(), exact, rtol=tolerance, atol=tolerance)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")
def test_tensors_on_a_second_device_run_there():
    x = torch.randn(2, 3, 32, 32, device="cuda:1")
    tensors = [torch.randn(1, 2, 40, 32, device="cuda:1", dtype=torch.float16) for _ in range(6)]
    with torch.cuda.device(0):
        dwt = kernels.haar_dwt_triton(x, MEAN, STD)
        ap, _ = kernels.sfcm_attention_triton(*tensors)
    torch.testing.assert_close(dwt, kernels.haar_dwt_reference(x, MEAN, STD), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(ap.float(), kernels.sfcm_attention_reference(*tensors)[0].float(), rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_use_kernels_routes_a_cuda_model_through_the_kernels(dtype):
    model = FMCANet.from_preset("tiny").eval().to("cuda", dtype)
    pixels = torch.randn(2, 3, model.config.image_size, model.config.image_size, device="cuda", dtype=dtype)
    with torch.inference_mode():
        expected = model.forward_intermediates(pixels)
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as profile:
            routed = model.use_kernels().forward_intermediates(pixels)
        with ops.implementation("reference"):  # an explicit scope wins over use_kernels
            unrouted = model.forward_intermediates(pixels)
    launched = " ".join(event.name for event in profile.events())
    assert "_haar_dwt_kernel" in launched
    # float32 attention stays with PyTorch's fused attention (the kernel's exact products are slower there).
    assert ("_sfcm_attention_kernel" in launched) == (dtype != torch.float32)
    torch.testing.assert_close(unrouted["logits"], expected["logits"])
    tolerance = 1e-4 if dtype == torch.float32 else 2e-2
    for name in ("dwt", "sfcm_patch", "sfcm_freq", "logits"):
        torch.testing.assert_close(routed[name], expected[name], rtol=tolerance, atol=tolerance, msg=name)
