"""Focal loss, EMA, optimizer groups and learning-rate schedule against direct computations."""

import math

import pytest
import torch
import torch.nn.functional as F

from fmca_rt.errors import ConfigError
from training import FMCANet
from training.ema import ModelEMA
from training.losses import focal_loss
from training.recipe import RECIPES, build_optimizer, build_scheduler, get_recipe, warmup_cosine_factor


def direct_focal_loss(logits, targets, alpha, gamma):
    """Element by element from the definition: -alpha_t (1 - p_t)^gamma log(p_t)."""
    total = 0.0
    for row, target in zip(logits.tolist(), targets.tolist()):
        exps = [math.exp(v) for v in row]
        p_t = exps[target] / sum(exps)
        alpha_t = alpha if target == 0 else 1 - alpha
        total += -alpha_t * (1 - p_t) ** gamma * math.log(p_t)
    return total / len(targets)


@pytest.mark.parametrize("alpha,gamma", [(0.6, 2.0), (0.25, 0.0), (0.5, 1.5)])
def test_focal_loss_matches_the_definition(alpha, gamma):
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(12, 2, generator=generator, dtype=torch.float64) * 3
    targets = torch.randint(0, 2, (12,), generator=generator)
    expected = direct_focal_loss(logits, targets, alpha, gamma)
    assert focal_loss(logits, targets, alpha, gamma).item() == pytest.approx(expected, rel=1e-6)


def test_focal_loss_without_focusing_is_weighted_cross_entropy():
    logits = torch.randn(8, 2)
    targets = torch.tensor([0, 1, 0, 1, 1, 1, 0, 0])
    weights = torch.where(targets == 0, 0.3, 0.7)
    expected = (F.cross_entropy(logits, targets, reduction="none") * weights).mean()
    torch.testing.assert_close(focal_loss(logits, targets, alpha=0.3, gamma=0.0), expected)


def test_focal_loss_alpha_weights_the_real_class_and_gradients_flow():
    logits = torch.zeros(2, 2, requires_grad=True)  # p_t = 0.5 for both
    per_sample = focal_loss(logits, torch.tensor([0, 1]), alpha=0.6, gamma=2.0, reduction="none")
    base = 0.25 * math.log(2)
    torch.testing.assert_close(per_sample, torch.tensor([0.6 * base, 0.4 * base]))
    per_sample.sum().backward()
    assert logits.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="Unknown reduction"):
        focal_loss(logits, torch.tensor([0, 1]), reduction="max")


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(2, 1)
        self.norm = torch.nn.BatchNorm1d(1)


def test_ema_update_arithmetic_without_warmup():
    model = Tiny()
    with torch.no_grad():
        model.linear.weight.fill_(1.0)
    ema = ModelEMA(model, decay=0.9, warmup=False)
    with torch.no_grad():
        model.linear.weight.fill_(3.0)
        model.norm.running_mean.fill_(10.0)
        model.norm.num_batches_tracked.fill_(7)
    ema.update(model)
    torch.testing.assert_close(ema.module.linear.weight, torch.full((1, 2), 0.9 * 1.0 + 0.1 * 3.0))
    torch.testing.assert_close(ema.module.norm.running_mean, torch.tensor([0.1 * 10.0]))  # buffers averaged too
    assert ema.module.norm.num_batches_tracked.item() == 7  # integer buffers copied
    ema.update(model)
    torch.testing.assert_close(ema.module.linear.weight, torch.full((1, 2), 0.9 * 1.2 + 0.1 * 3.0))
    assert not any(p.requires_grad for p in ema.module.parameters())
    assert model.linear.weight.requires_grad


def test_ema_warmup_decay_sequence():
    ema = ModelEMA(Tiny(), decay=0.999, warmup=True)
    decays = []
    for _ in range(3):
        decays.append(ema.current_decay())
        ema.updates += 1
    assert decays == pytest.approx([1 / 10, 2 / 11, 3 / 12])
    ema.updates = 100_000
    assert ema.current_decay() == 0.999


def test_schedule_warms_up_linearly_then_decays_by_cosine_to_zero():
    total = 100  # 10 warm-up steps
    factors = [warmup_cosine_factor(step, total, 0.1) for step in range(total + 1)]
    assert factors[:10] == pytest.approx([(s + 1) / 10 for s in range(10)])
    assert factors[10] == pytest.approx(1.0)
    assert factors[55] == pytest.approx(0.5)  # half-way through the 90 decay steps
    assert factors[100] == pytest.approx(0.0, abs=1e-12)
    assert all(a >= b for a, b in zip(factors[10:], factors[11:]))
    assert warmup_cosine_factor(0, 5, 0.1) == 1.0  # at least one warm-up step


def test_scheduler_drives_both_groups_and_the_optimizer_splits_backbone_from_head():
    model = FMCANet.from_preset("tiny")
    recipe = get_recipe("paper")
    optimizer = build_optimizer(model, recipe)
    backbone, head = optimizer.param_groups
    assert (backbone["lr"], backbone["weight_decay"], head["lr"], head["weight_decay"]) == (6e-6, 0.05, 6e-5, 0.0)
    names = {id(p): n for n, p in model.named_parameters()}
    assert all(names[id(p)].startswith("vit.") for p in backbone["params"])
    assert not any(names[id(p)].startswith("vit.") for p in head["params"])
    assert len(backbone["params"]) + len(head["params"]) == len(names)
    scheduler = build_scheduler(optimizer, total_steps=20, warmup_fraction=0.1)
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([6e-6 / 2, 6e-5 / 2])
    for _ in range(2):
        optimizer.step()
        scheduler.step()
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([6e-6, 6e-5])


def test_recipes_registry():
    assert RECIPES["paper"].clip_grad_norm == 1.0 and RECIPES["paper"].batch_size == 16
    assert get_recipe("paper").replace(head_lr=None, batch_size=8).batch_size == 8
    with pytest.raises(ConfigError, match="Unknown recipe 'fast'"):
        get_recipe("fast")
