"""What the kernels' own launchers (`kernels.haar_dwt_triton`, `kernels.sfcm_attention_triton`) hand their Triton
kernels, recorded instead of launched: run on "meta" tensors (shapes, no data) with the kernel object replaced by a
recorder, so the expected grid, warps, constants and arguments come from the launchers' code, not from this test."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import torch


@dataclass
class Launch:
    grid: tuple
    arguments: list  # positional: tensors and ints, in the kernel's parameter order
    options: dict  # keyword: constexprs and num_warps

    def pointer_names(self, named: dict) -> list:
        """The tensor arguments, named by which of `named`'s tensors each one is."""
        names = {id(tensor): name for name, tensor in named.items()}
        return [names.get(id(a), "?") for a in self.arguments if isinstance(a, torch.Tensor)]

    @property
    def integers(self) -> list:
        return [a for a in self.arguments if isinstance(a, int)]

    @property
    def block_x(self) -> int:
        return 32 * self.options["num_warps"]


class _Recorder:
    def __init__(self):
        self.launches = []

    def __getitem__(self, grid):
        def launch(*arguments, **options):
            self.launches.append(Launch(tuple(grid), list(arguments), options))
        return launch


@contextmanager
def recording(monkeypatch, module, kernel_attribute: str):
    recorder = _Recorder()
    monkeypatch.setattr(module, kernel_attribute, recorder)
    monkeypatch.setattr(module, "require_kernel_device", lambda *args: None)  # meta tensors stand in for CUDA ones
    yield recorder.launches


def haar_dwt_launch(monkeypatch, shape, dtype, mean, std):
    from kernels import _haar_dwt

    x = torch.empty(shape, dtype=dtype, device="meta")
    with recording(monkeypatch, _haar_dwt, "_haar_dwt_kernel") as launches:
        out = _haar_dwt.haar_dwt_triton(x, mean, std)
    (launch,) = launches
    return launch, {"x": x, "out": out}


def sfcm_attention_launch(monkeypatch, patch_shape, freq_shape, dtype, scale, arch):
    """The launch for token-major (B x N x heads x D) tensors, which the launcher sees as B x heads x N x D views,
    with the tiles `kernels.aot` compiles for `arch`."""
    from kernels import _sfcm_attention
    from kernels._tiles import attention_tiles

    def token_major(shape):
        return torch.empty(shape, dtype=dtype, device="meta").transpose(1, 2)

    qp, kp, vp = (token_major(patch_shape) for _ in range(3))
    qf, kf, vf = (token_major(freq_shape) for _ in range(3))
    tiles = attention_tiles(dtype, arch, aot=True)
    with recording(monkeypatch, _sfcm_attention, "_sfcm_attention_kernel") as launches:
        ap, af = _sfcm_attention.sfcm_attention_triton(qp, kf, vf, qf, kp, vp, scale, tiles=tiles)
    (launch,) = launches
    return launch, {"qp": qp, "kf": kf, "vf": vf, "qf": qf, "kp": kp, "vp": vp, "ap": ap, "af": af}
