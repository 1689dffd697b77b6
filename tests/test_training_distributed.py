"""Batch norm across processes (gloo, CPU) against PyTorch's BatchNorm2d on the whole batch in one process."""

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from training.distributed import AllReduceBatchNorm2d, synchronize_batch_norm


def batch_and_weights():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(6, 4, 5, 5, generator=generator, dtype=torch.float64) * 3 + 1
    upstream = torch.randn(6, 4, 5, 5, generator=generator, dtype=torch.float64)  # dLoss/dOutput
    weight = torch.rand(4, generator=generator, dtype=torch.float64) + 0.5
    bias = torch.randn(4, generator=generator, dtype=torch.float64)
    return x, upstream, weight, bias


def run_batch_norm(module: nn.BatchNorm2d, x: torch.Tensor, upstream: torch.Tensor):
    x = x.clone().requires_grad_(True)
    out = module(x)
    (out * upstream).sum().backward()
    return out.detach(), x.grad, module.weight.grad, module.bias.grad, module.running_mean, module.running_var


def _worker(rank: int, init_file: str, result_file: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        x, upstream, weight, bias = batch_and_weights()
        module = AllReduceBatchNorm2d(4, dtype=torch.float64)
        with torch.no_grad():
            module.weight.copy_(weight)
            module.bias.copy_(bias)
        rows = slice(0, 2) if rank == 0 else slice(2, 6)  # unequal shares: the statistics must weigh by count
        out, x_grad, weight_grad, bias_grad, mean, var = run_batch_norm(module, x[rows], upstream[rows])
        gathered = [None, None]
        dist.all_gather_object(gathered, (out, x_grad))
        if rank == 0:
            torch.save({"out": torch.cat([g[0] for g in gathered]), "x_grad": torch.cat([g[1] for g in gathered]),
                        "weight_grad": weight_grad, "bias_grad": bias_grad, "running_mean": mean,
                        "running_var": var}, result_file)
    finally:
        dist.destroy_process_group()


def test_two_processes_normalize_and_backpropagate_like_one_batch(tmp_path):
    mp.spawn(_worker, args=(str(tmp_path / "init"), str(tmp_path / "result.pt")), nprocs=2)
    distributed = torch.load(tmp_path / "result.pt", weights_only=True)
    x, upstream, weight, bias = batch_and_weights()
    reference = nn.BatchNorm2d(4, dtype=torch.float64)
    with torch.no_grad():
        reference.weight.copy_(weight)
        reference.bias.copy_(bias)
    out, x_grad, _, _, mean, var = run_batch_norm(reference, x, upstream)
    expected = {"out": out, "x_grad": x_grad, "running_mean": mean, "running_var": var}
    for name, value in expected.items():
        torch.testing.assert_close(distributed[name], value, rtol=1e-10, atol=1e-10, msg=name)
    # rank 0's share of the parameter gradients (DDP then sums the shares over processes), from the definition
    normalized = (x[:2] - mean_of(x)) / torch.sqrt(var_of(x) + reference.eps)
    torch.testing.assert_close(distributed["bias_grad"], upstream[:2].sum(dim=(0, 2, 3)), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(distributed["weight_grad"], (upstream[:2] * normalized).sum(dim=(0, 2, 3)),
                               rtol=1e-10, atol=1e-10)


def mean_of(x):
    return x.mean(dim=(0, 2, 3), keepdim=True)


def var_of(x):
    return x.var(dim=(0, 2, 3), unbiased=False, keepdim=True)


def test_conversion_keeps_state_dict_keys_and_values():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Sequential(nn.BatchNorm2d(4)))
    with torch.no_grad():
        model[1].running_mean.fill_(0.5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    synchronize_batch_norm(model, torch.device("cpu"))
    assert isinstance(model[1], AllReduceBatchNorm2d) and isinstance(model[2][0], AllReduceBatchNorm2d)
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    x = torch.randn(2, 4, 6, 6)
    torch.testing.assert_close(model[1](x), nn.functional.batch_norm(x, None, None, model[1].weight, model[1].bias,
                                                                    training=True))  # no process group: plain
