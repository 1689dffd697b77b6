"""What a training run carries between epochs and across --resume: progress, checkpoint extras, random state."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch

from fmca_rt.errors import FMCAError

from .checkpoint import read_checkpoint
from .distributed import DistributedContext
from .ema import ModelEMA


@dataclass
class TrainState:
    """What a run has done so far; saved in last.pth for --resume."""
    total_steps: int
    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps taken
    best_score: float = -math.inf
    best_epoch: int = 0
    history: list[dict] = field(default_factory=list)


def checkpoint_extras(state: TrainState, ema: ModelEMA, rng_states: list, report: dict) -> dict:
    return {"epoch": state.epoch, "ema_state_dict": ema.state_dict(), "ema_updates": ema.updates,
            "val_acc": report["frame"]["accuracy"], "val_auc": report["frame"]["auc"], "history": state.history,
            "best_score": state.best_score, "best_epoch": state.best_epoch, "total_steps": state.total_steps,
            "rng_states": rng_states}


def rng_state(context: DistributedContext) -> dict:
    state = {"torch": torch.get_rng_state()}
    if context.device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(context.device)
    return state


def restore(path: Path, state: TrainState, model, ema: ModelEMA, optimizer, scheduler, scaler,
            context: DistributedContext) -> None:
    """Load last.pth into a freshly built run; refuse one made for another schedule or model."""
    contents = read_checkpoint(path, map_location=context.device)
    if "optimizer_state_dict" not in contents or "rng_states" not in contents:
        raise FMCAError(f"{path} is not a last.pth of a training run (no optimizer or random state) and cannot be resumed.")
    if contents["total_steps"] != state.total_steps:
        raise FMCAError(f"{path} was trained for {contents['total_steps']} steps in all, this run would take "
                        f"{state.total_steps}: resume with the same data, --epochs and --batch-size.")
    if contents["config"] != model.config.to_dict():
        raise FMCAError(f"{path} holds a different model configuration; resume with the same --preset and --image-size.")
    model.load_state_dict(contents["model_state_dict"])
    ema.load_state_dict(contents["ema_state_dict"], contents["ema_updates"])
    optimizer.load_state_dict(contents["optimizer_state_dict"])
    scheduler.load_state_dict(contents["scheduler_state_dict"])
    scaler.load_state_dict(contents["scaler_state_dict"])
    state.epoch, state.history = contents["epoch"], list(contents["history"])
    state.best_score, state.best_epoch = contents["best_score"], contents["best_epoch"]
    rng_states = contents["rng_states"]
    if len(rng_states) == context.world_size:  # the exact random streams only with the same process count
        torch.set_rng_state(rng_states[context.rank]["torch"].cpu())
        if "cuda" in rng_states[context.rank] and context.device.type == "cuda":
            torch.cuda.set_rng_state(rng_states[context.rank]["cuda"].cpu(), context.device)
