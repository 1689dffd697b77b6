"""Distributed data parallel plumbing: process group set-up from torchrun's environment, batch-norm
synchronization, and gathering results across processes.

`torchrun --nproc_per_node N -m training.train ...` starts N processes and sets RANK, WORLD_SIZE, LOCAL_RANK;
NCCL is used on GPUs, gloo on CPUs. Batch statistics are synchronized across processes so that N processes
with per-process batch B/N train the same model as one process with batch B: on GPUs with PyTorch's
SyncBatchNorm, on CPUs (where SyncBatchNorm does not run) with `AllReduceBatchNorm2d` below.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistributedContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device_name: str) -> DistributedContext:
    """Join the process group torchrun describes (a no-op for a single process) and pick this rank's device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device_name == "auto":
        device_name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(f"cuda:{local_rank}") if device_name == "cuda" else torch.device(device_name)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistributedContext(rank, world_size, local_rank, device)


def cleanup(context: DistributedContext) -> None:
    if context.enabled and dist.is_initialized():
        dist.destroy_process_group()


def barrier(context: DistributedContext) -> None:
    if context.enabled:
        dist.barrier()


def all_gather_objects(context: DistributedContext, value) -> list:
    """Every process's `value`, in rank order (a one-element list for a single process)."""
    if not context.enabled:
        return [value]
    gathered = [None] * context.world_size
    dist.all_gather_object(gathered, value)
    return gathered


def mean_across_processes(context: DistributedContext, values: torch.Tensor) -> torch.Tensor:
    if not context.enabled:
        return values
    values = values.clone()
    dist.all_reduce(values)
    return values / context.world_size


class _AllReduceSum(torch.autograd.Function):
    """Sum over processes whose gradient is again the sum over processes: each process's input affects
    every process's output, so its gradient collects every process's incoming gradient."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        tensor = tensor.clone()
        dist.all_reduce(tensor)
        return tensor

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class AllReduceBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training-mode statistics cover the batches of all processes (any backend, CPU too).

    Mean and variance are computed in two passes over the global batch with differentiable all-reduces, so
    gradients flow through the statistics exactly as in one process holding the whole batch. In eval mode,
    or outside a process group, it is an ordinary BatchNorm2d; its state dict keys are BatchNorm2d's.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        dims = (0, 2, 3)
        count = torch.tensor([x.numel() / x.shape[1]], dtype=x.dtype, device=x.device)
        total = _AllReduceSum.apply(count)
        mean = _AllReduceSum.apply(x.sum(dim=dims)) / total
        centered = x - mean[None, :, None, None]
        variance = _AllReduceSum.apply(centered.pow(2).sum(dim=dims)) / total
        if self.track_running_stats:
            with torch.no_grad():
                momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked + 1)
                unbiased = variance * total / (total - 1).clamp(min=1)
                self.running_mean.lerp_(mean.detach(), momentum)
                self.running_var.lerp_(unbiased.detach(), momentum)
                self.num_batches_tracked.add_(1)
        normalized = centered * torch.rsqrt(variance + self.eps)[None, :, None, None]
        if not self.affine:
            return normalized
        return normalized * self.weight[None, :, None, None] + self.bias[None, :, None, None]


def synchronize_batch_norm(model: nn.Module, device: torch.device) -> nn.Module:
    """Replace BatchNorm2d layers by their cross-process form (SyncBatchNorm on GPUs), in place."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    for name, child in model.named_children():
        if type(child) is nn.BatchNorm2d:
            replacement = AllReduceBatchNorm2d(child.num_features, child.eps, child.momentum, child.affine,
                                               child.track_running_stats, device=device)
            replacement.load_state_dict(child.state_dict())
            setattr(model, name, replacement)
        else:
            synchronize_batch_norm(child, device)
    return model
