"""Dispatch for the model's two fusable computations: the Haar DWT and the SFCM attention core.

The model always calls `haar_dwt` and `sfcm_attention` from here. Which implementation runs is chosen by
name in a scope (`with implementation("triton"): ...`): the PyTorch reference by default; other modules
register theirs (the Triton-kernel custom ops, the ONNX plugin nodes used while exporting).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import NamedTuple

import torch

from fmca_rt.errors import ConfigError, DependencyError

from .frequency import haar_dwt_reference
from .sfcm import sfcm_attention_reference


class Implementation(NamedTuple):
    haar_dwt: Callable[..., torch.Tensor]  # (x, mean, std) -> B x 4C x H/2 x W/2
    sfcm_attention: Callable[..., tuple[torch.Tensor, torch.Tensor]]  # (qp, kf, vf, qf, kp, vp, scale, dropout_p)


_IMPLEMENTATIONS: dict[str, Implementation] = {
    "reference": Implementation(haar_dwt_reference, sfcm_attention_reference),
}
# Implementations living in optional packages, registered when that package is first imported.
_PROVIDERS = {"triton": "kernels"}
_active: ContextVar[str] = ContextVar("fmca_ops_implementation", default="reference")


def register_implementation(name: str, implementation: Implementation) -> None:
    _IMPLEMENTATIONS[name] = implementation


def active_implementation() -> str:
    return _active.get()


@contextmanager
def implementation(name: str) -> Iterator[None]:
    if name not in _IMPLEMENTATIONS and name in _PROVIDERS:
        try:
            importlib.import_module(_PROVIDERS[name])
        except ImportError as error:
            raise DependencyError(f"The {name!r} op implementation needs {error.name or 'triton'!r}, which is not "
                                  "installed: pip install 'fmca-rt[kernels]'.") from None
    if name not in _IMPLEMENTATIONS:
        raise ConfigError(f"Unknown op implementation {name!r}; registered: {', '.join(sorted(_IMPLEMENTATIONS))}.")
    token = _active.set(name)
    try:
        yield
    finally:
        _active.reset(token)


def haar_dwt(x: torch.Tensor, mean: Sequence[float] | None, std: Sequence[float] | None) -> torch.Tensor:
    return _IMPLEMENTATIONS[_active.get()].haar_dwt(x, mean, std)


def sfcm_attention(qp, kf, vf, qf, kp, vp, scale: float | None = None,
                   dropout_p: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    return _IMPLEMENTATIONS[_active.get()].sfcm_attention(qp, kf, vf, qf, kp, vp, scale, dropout_p)
