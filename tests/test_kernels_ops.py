"""The torch custom ops around the kernels and the model's route through them, on the CPU.

On the CPU the ops run the PyTorch references (the kernels themselves are tested under the interpreter in
test_kernels_haar_dwt.py / test_kernels_sfcm_attention.py, and on a GPU in test_kernels_gpu.py); these tests
check what the ops add: schemas, fake (meta) implementations, autograd, torch.compile, and the routing.
"""

import sys

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import kernels
from fmca_rt.errors import DependencyError
from kernels._checks import is_interpreted
from training import FMCANet, ops
from training.frequency import haar_dwt_reference
from training.sfcm import sfcm_attention_reference

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def attention_inputs(batch=2, heads=3, n_p=10, n_f=6, head_dim=32, dtype=torch.float32, requires_grad=False):
    generator = torch.Generator().manual_seed(batch * 100 + n_p)
    return [torch.randn(batch, heads, n, head_dim, generator=generator, dtype=dtype, requires_grad=requires_grad)
            for n in (n_p, n_f, n_f, n_f, n_p, n_p)]


class OpLog(TorchDispatchMode):
    """Records the name of every aten/fmca op dispatched inside the `with` block."""

    def __init__(self):
        super().__init__()
        self.names = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.append(str(func.overloadpacket))
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("args", [
    (torch.randn(2, 3, 8, 8), MEAN, STD),
    (torch.randn(1, 2, 7, 9, dtype=torch.float64, requires_grad=True), None, None),
    (torch.randn(1, 3, 6, 6, dtype=torch.float16), MEAN, STD),
])
def test_haar_dwt_op_passes_opcheck(args):
    torch.library.opcheck(torch.ops.fmca.haar_dwt.default, args)


@pytest.mark.parametrize("kwargs", [{}, {"dtype": torch.float64, "requires_grad": True, "n_p": 5, "n_f": 9}])
@pytest.mark.parametrize("scale", [None, 0.2])
def test_sfcm_attention_op_passes_opcheck(kwargs, scale):
    torch.library.opcheck(torch.ops.fmca.sfcm_attention.default, (*attention_inputs(**kwargs), scale))


def test_cpu_ops_compute_the_references():
    x = torch.randn(2, 3, 9, 12)
    torch.testing.assert_close(kernels.haar_dwt(x), haar_dwt_reference(x, MEAN, STD), rtol=0, atol=0)
    torch.testing.assert_close(kernels.haar_dwt(x, None, None), haar_dwt_reference(x), rtol=0, atol=0)
    tensors = attention_inputs()
    for ours, expected in zip(kernels.sfcm_attention(*tensors), sfcm_attention_reference(*tensors)):
        torch.testing.assert_close(ours, expected, rtol=0, atol=0)


def test_gradients_match_the_references():
    x = torch.randn(1, 3, 7, 6, dtype=torch.float64, requires_grad=True)
    # The DWT computes in float32 but is linear: a large step gives exact finite differences.
    assert torch.autograd.gradcheck(lambda t: kernels.haar_dwt(t, MEAN, STD), (x,), eps=0.5, atol=1e-5)
    tensors = attention_inputs(batch=1, heads=2, n_p=4, n_f=3, head_dim=8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda *t: kernels.sfcm_attention(*t, scale=0.5), tensors)


def test_torch_compile_traces_through_the_fake_implementations():
    def frequency_and_attention(x, *tensors):
        ap, af = kernels.sfcm_attention(*tensors)
        return kernels.haar_dwt(x), ap.sum(-1), af * 2

    x, tensors = torch.randn(2, 3, 10, 14), attention_inputs(n_p=12, n_f=5)
    compiled = torch.compile(frequency_and_attention, backend="aot_eager", fullgraph=True)
    for ours, expected in zip(compiled(x, *tensors), frequency_and_attention(x, *tensors)):
        torch.testing.assert_close(ours, expected)


def test_fake_tensors_get_the_output_shapes():
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        dwt = kernels.haar_dwt(torch.empty(4, 3, 225, 224, dtype=torch.float16))
        ap, af = kernels.sfcm_attention(*attention_inputs(batch=4, heads=8, n_p=256, n_f=49, head_dim=96))
    assert dwt.shape == (4, 12, 113, 112) and dwt.dtype == torch.float16
    assert ap.shape == (4, 8, 256, 96) and af.shape == (4, 8, 49, 96)


def test_the_triton_implementation_routes_the_model_through_the_custom_ops():
    model = FMCANet.from_preset("tiny").eval()
    pixels = torch.randn(2, 3, model.config.image_size, model.config.image_size)
    with torch.inference_mode():
        expected = model.forward_intermediates(pixels)
        with ops.implementation("triton"), OpLog() as log:
            routed = model.forward_intermediates(pixels)
    assert "fmca.haar_dwt" in log.names and "fmca.sfcm_attention" in log.names
    for name, value in expected.items():
        torch.testing.assert_close(routed[name], value, rtol=0, atol=0, msg=name)


def test_attention_dropout_while_training_stays_with_pytorch():
    model = FMCANet.from_preset("tiny").train()
    pixels = torch.randn(2, 3, model.config.image_size, model.config.image_size)
    with ops.implementation("triton"), OpLog() as log:
        model(pixels).sum().backward()
    assert "fmca.haar_dwt" in log.names and "fmca.sfcm_attention" not in log.names
    assert model.dwt.ll_filter.grad is None and model.cross_attention.patch_q_proj.weight.grad is not None


def test_use_kernels_leaves_cpu_inputs_on_the_reference():
    model = FMCANet.from_preset("tiny").eval()
    assert model.use_kernels() is model and model.kernels_enabled
    pixels = torch.randn(1, 3, model.config.image_size, model.config.image_size)
    with torch.inference_mode(), OpLog() as log:
        model(pixels)
    assert not any(name.startswith("fmca.") for name in log.names)


def test_missing_triton_is_a_dependency_error(monkeypatch):
    monkeypatch.setitem(ops._IMPLEMENTATIONS, "triton", None)
    monkeypatch.delitem(ops._IMPLEMENTATIONS, "triton")
    monkeypatch.setitem(sys.modules, "kernels", None)  # makes `import kernels` raise ImportError
    with pytest.raises(DependencyError, match=r"pip install 'fmca-rt\[kernels\]'"):
        with ops.implementation("triton"):
            pass


@pytest.mark.parametrize("launcher, args", [
    (kernels.haar_dwt_triton, (torch.randn(1, 3, 8, 8),)),
    (kernels.sfcm_attention_triton, attention_inputs()),
])
def test_the_compiled_kernels_refuse_cpu_tensors_with_one_sentence(launcher, args):
    from kernels import _haar_dwt, _sfcm_attention

    if is_interpreted(_haar_dwt._haar_dwt_kernel) or is_interpreted(_sfcm_attention._sfcm_attention_kernel):
        pytest.skip("TRITON_INTERPRET=1 is set: the kernels are interpreted in this process")
    with pytest.raises(ValueError, match="run on CUDA tensors"):
        launcher(*args)


def test_more_batch_heads_than_a_grid_holds_is_refused_before_launch():
    tensors = [torch.zeros(65536, 1, 1, 16) for _ in range(6)]
    with pytest.raises(ValueError, match="split the batch"):
        kernels.sfcm_attention_triton(*tensors)


def test_public_names_are_sorted_and_exist():
    assert kernels.__all__ == sorted(kernels.__all__)
    assert all(hasattr(kernels, name) for name in kernels.__all__)


def test_attention_outputs_are_token_major_so_the_model_merges_heads_without_a_copy():
    from torch._subclasses.fake_tensor import FakeTensorMode

    from training.sfcm import SFCM

    tensors = attention_inputs(batch=2, heads=3, n_p=10, n_f=6, head_dim=32)
    with FakeTensorMode():
        fake = kernels.sfcm_attention(*attention_inputs(batch=2, heads=3, n_p=10, n_f=6, head_dim=32))
    for output, fake_output, tokens in zip(kernels.sfcm_attention(*tensors), fake, (10, 6)):
        assert output.stride() == fake_output.stride() == (tokens * 96, 32, 96, 1)
        assert SFCM._merge_heads(output).data_ptr() == output.data_ptr()


def test_float32_cuda_tensors_take_pytorchs_attention():
    from kernels import _sfcm_attention

    tensors = attention_inputs()  # float32: the CUDA implementation must not reach the kernel's launcher
    for ours, expected in zip(_sfcm_attention._sfcm_attention_cuda(*tensors, None), sfcm_attention_reference(*tensors)):
        torch.testing.assert_close(ours, expected, rtol=0, atol=0)


@pytest.mark.parametrize("op", ["haar_dwt", "sfcm_attention"])
def test_launches_happen_under_the_tensors_device(monkeypatch, op):
    """Triton launches on the current CUDA device: both launchers make the inputs' device current first."""
    import contextlib

    from kernels import _haar_dwt, _sfcm_attention

    module = {"haar_dwt": _haar_dwt, "sfcm_attention": _sfcm_attention}[op]
    kernel_name = {"haar_dwt": "_haar_dwt_kernel", "sfcm_attention": "_sfcm_attention_kernel"}[op]
    current = []

    @contextlib.contextmanager
    def on_device(device):
        current.append(device)
        yield
        current.pop()

    launched_on = []

    class Kernel:
        def __getitem__(self, grid):
            return lambda *args, **kwargs: launched_on.append(list(current))

    monkeypatch.setattr(module, "on_device", on_device)
    monkeypatch.setattr(module, "require_kernel_device", lambda *args: None)
    monkeypatch.setattr(module, kernel_name, Kernel())
    if op == "haar_dwt":
        module.haar_dwt_triton(torch.randn(1, 3, 8, 8))
    else:
        module.sfcm_attention_triton(*attention_inputs(), tiles=kernels._tiles.attention_tiles(torch.float32, 90))
    assert launched_on == [[torch.device("cpu")]]
