"""One training epoch: forward, focal loss, backward, clipping, optimizer and schedule steps, EMA update."""

from __future__ import annotations

import contextlib

import torch
from tqdm import tqdm

from .distributed import DistributedContext, all_gather_objects
from .ema import ModelEMA
from .losses import focal_loss
from .recipe import Recipe
from .run_state import TrainState

MAX_LISTED_UNREADABLE = 5


def train_one_epoch(network: torch.nn.Module, model: torch.nn.Module, ema: ModelEMA, loader, optimizer, scheduler,
                    scaler: torch.amp.GradScaler, recipe: Recipe, state: TrainState, context: DistributedContext,
                    amp_dtype: torch.dtype | None, logger, desc: str) -> dict:
    """`network` is what runs forward (the DDP wrapper in distributed runs), `model` the plain FMCANet.

    Returns the epoch's mean training loss and accuracy over all processes and the unreadable-image count.
    """
    network.train()
    totals = torch.zeros(3, dtype=torch.float64)  # loss sum, correct, samples
    unreadable = []
    autocast = (torch.autocast(context.device.type, dtype=amp_dtype) if amp_dtype is not None
                else contextlib.nullcontext())
    progress = tqdm(loader, desc=desc, disable=not context.is_main, leave=False, dynamic_ncols=True)
    for batch in progress:
        unreadable.extend(batch["unreadable"])
        pixels = batch["pixels"].to(context.device, non_blocking=True)
        labels = batch["labels"].to(context.device, non_blocking=True)
        with autocast:
            logits = network(pixels)
        loss = focal_loss(logits, labels, recipe.focal_alpha, recipe.focal_gamma)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.clip_grad_norm)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        ema.update(model)
        state.step += 1
        with torch.no_grad():
            batch_loss = float(loss)
            totals += torch.tensor([batch_loss * len(labels), float((logits.argmax(1) == labels).sum()), len(labels)],
                                   dtype=torch.float64)
        progress.set_postfix(loss=f"{batch_loss:.4f}", lr=f"{scheduler.get_last_lr()[-1]:.2e}")
        if context.is_main:
            logger.log_step(state.step, {"loss": batch_loss, "lr_head": scheduler.get_last_lr()[-1]})
    progress.close()
    gathered = all_gather_objects(context, (totals, unreadable))
    totals = sum(part[0] for part in gathered)
    unreadable = sorted({path for part in gathered for path in part[1]})
    if unreadable and context.is_main:
        listed = ", ".join(unreadable[:MAX_LISTED_UNREADABLE]) + (" ..." if len(unreadable) > MAX_LISTED_UNREADABLE else "")
        print(f"{desc}: skipped {len(unreadable)} unreadable images (replaced by the next readable one): {listed}")
    return {"train_loss": float(totals[0] / totals[2]), "train_accuracy": float(totals[1] / totals[2]),
            "train_unreadable_images": len(unreadable), "lr_backbone": scheduler.get_last_lr()[0],
            "lr_head": scheduler.get_last_lr()[-1]}
