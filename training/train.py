"""Train FMCA-Net with the paper's recipe on a folder in the dataset layout.

    python -m training.train --data DATA --preset tiny --epochs 20 --out runs/tiny
    torchrun --nproc_per_node 2 -m training.train --data DATA --preset b14 \\
        --backbone-weights dinov2_vitb14_pretrain.pth --epochs 10 --out runs/b14

Writes RUN_DIR/last.pth after every epoch (weights, EMA weights, optimizer, schedule and random state for
--resume) and RUN_DIR/best.pth when the EMA model's validation score improves (never a test set); both
atomically. Also history.csv / history.json, curves.png, TensorBoard logs and, for the best epoch, the
validation report, ROC and confusion matrix. --batch-size is the global batch: N processes each take 1/N,
so a distributed run trains the same model as one process.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

from fmca_rt.errors import ConfigError, FMCAError

from .augment import AUGMENTATIONS
from .config import get_preset
from .data import describe, load_split
from .dataset import FaceCropDataset, Item, collate, self_blend_items
from .distributed import DistributedContext, all_gather_objects, cleanup, setup, synchronize_batch_norm
from .ema import ModelEMA
from .evaluate import evaluation_report, predict, write_outputs
from .losses import focal_loss
from .model import FMCANet
from .recipe import Recipe, build_optimizer, build_scheduler, get_recipe
from .run_logging import RunLogger
from .run_state import TrainState, checkpoint_extras, restore, rng_state
from .train_loop import train_one_epoch


@dataclass(frozen=True)
class TrainOptions:
    data: str
    out: str
    preset: str = "tiny"
    epochs: int = 20
    recipe: str | None = None  # None: "paper" with backbone weights, else "scratch"
    batch_size: int | None = None
    backbone_lr: float | None = None
    head_lr: float | None = None
    image_size: int | None = None
    backbone_weights: str | None = None
    self_blend: bool = False
    select_by: str = "auc"
    ema_warmup: bool = True
    dropout: bool = True
    augment: str | None = None  # None: the recipe's
    amp: bool = True
    seed: int = 0
    workers: int = 0
    device: str = "auto"
    resume: str | None = None
    overwrite: bool = False

    def resolved_recipe(self) -> Recipe:
        name = self.recipe or ("paper" if self.backbone_weights else "scratch")
        return get_recipe(name).replace(batch_size=self.batch_size, backbone_lr=self.backbone_lr, head_lr=self.head_lr,
                                        augment=self.augment)


def build_datasets(options: TrainOptions, config, recipe: Recipe) -> tuple[FaceCropDataset, FaceCropDataset, str]:
    """Training and validation datasets, and a description of both for the log."""
    if options.self_blend:
        train_real = load_split(options.data, "train", required_classes=("real",))
        train_items = self_blend_items([s for s in train_real if s.label == 0])
        valid_samples = load_split(options.data, "valid", required_classes=("real",))
        has_fakes = any(s.label == 1 for s in valid_samples)
        valid_items = [Item(s) for s in valid_samples] if has_fakes else self_blend_items(valid_samples)
        text = (f"train: {len(train_items) // 2} real + as many self-blended fakes (train/fake is not used); "
                f"valid: {describe(valid_samples)}" + ("" if has_fakes else " + self-blended fakes"))
    else:
        train_samples = load_split(options.data, "train")
        valid_samples = load_split(options.data, "valid")
        train_items, valid_items = [Item(s) for s in train_samples], [Item(s) for s in valid_samples]
        text = f"train: {describe(train_samples)}; valid: {describe(valid_samples)}"
    augment = AUGMENTATIONS[recipe.augment]
    train = FaceCropDataset(train_items, config, augment, seed=options.seed, on_unreadable="substitute")
    valid = FaceCropDataset(valid_items, config, None, seed=options.seed + 1, on_unreadable="skip")
    return train, valid, text


def disable_dropout(model: torch.nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    model.cross_attention.attention_dropout = 0.0


def validate(ema: ModelEMA, valid: FaceCropDataset, batch_size: int, context: DistributedContext, workers: int,
             recipe: Recipe) -> tuple[dict, dict]:
    predictions = predict(ema.module, valid, batch_size, context, workers)
    report = evaluation_report(valid, predictions)
    probabilities = torch.as_tensor(predictions["probabilities"]).clamp(1e-12, 1 - 1e-12)
    log_probs = torch.log(torch.stack([1 - probabilities, probabilities], dim=1))
    labels = torch.as_tensor(predictions["labels"])
    report["loss"] = float(focal_loss(log_probs, labels, recipe.focal_alpha, recipe.focal_gamma)) if labels.numel() else None
    return report, predictions


def train(options: TrainOptions, on_epoch_end=None) -> dict:
    """Run training; `on_epoch_end(epoch, row)` is called on every process after each epoch is saved."""
    if options.select_by not in ("auc", "accuracy"):
        raise ConfigError(f"--select-by must be 'auc' or 'accuracy', not {options.select_by!r}.")
    context = setup(options.device)
    try:
        return _train(options, context, on_epoch_end)
    finally:
        cleanup(context)


def _train(options: TrainOptions, context: DistributedContext, on_epoch_end) -> dict:
    recipe = options.resolved_recipe()
    config = get_preset(options.preset)
    if options.image_size:
        config = config.replace(image_size=options.image_size)
    out = Path(options.out)
    resume_path = (out / "last.pth") if options.resume == "last" else (Path(options.resume) if options.resume else None)
    if context.is_main and resume_path is None and (out / "last.pth").exists() and not options.overwrite:
        raise FMCAError(f"{out} already holds a training run; pass --resume to continue it, --overwrite to "
                        "replace it, or choose another --out.")
    if recipe.batch_size % context.world_size:
        raise ConfigError(f"The batch size {recipe.batch_size} is not divisible by the {context.world_size} processes.")
    train_set, valid_set, data_text = build_datasets(options, config, recipe)
    per_process_batch = recipe.batch_size // context.world_size
    if len(train_set) < recipe.batch_size:
        raise FMCAError(f"The training set has {len(train_set)} images, fewer than one batch ({recipe.batch_size}).")

    torch.manual_seed(options.seed)  # the same initial weights in every process
    model = FMCANet(config)
    if options.backbone_weights:
        model.load_backbone(options.backbone_weights)
    if not options.dropout:
        disable_dropout(model)
    model.vit.mask_token.requires_grad_(False)  # kept for checkpoint compatibility, never used in forward
    model.to(context.device)
    if context.enabled:  # before the optimizer and the EMA copy see the batch-norm parameters
        synchronize_batch_norm(model, context.device)
    ema = ModelEMA(model, recipe.ema_decay, warmup=options.ema_warmup)
    optimizer = build_optimizer(model, recipe)
    network = model
    if context.enabled:
        network = DistributedDataParallel(model, device_ids=[context.device.index] if context.device.type == "cuda" else None)
    sampler = DistributedSampler(train_set, context.world_size, context.rank, shuffle=True, seed=options.seed)
    loader = DataLoader(train_set, batch_size=per_process_batch, sampler=sampler, drop_last=True,
                        num_workers=options.workers, collate_fn=collate, pin_memory=context.device.type == "cuda")
    state = TrainState(total_steps=len(loader) * options.epochs)
    scheduler = build_scheduler(optimizer, state.total_steps, recipe.warmup_fraction)
    use_amp = options.amp and context.device.type == "cuda"
    amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)
    torch.manual_seed(options.seed + 1 + context.rank)  # dropout differs between processes, as their data does

    if resume_path is not None:
        restore(resume_path, state, model, ema, optimizer, scheduler, scaler, context)
    if context.is_main:
        out.mkdir(parents=True, exist_ok=True)
        print(f"{data_text}\nmodel: {options.preset} ({sum(p.numel() for p in model.parameters()):,} parameters, "
              f"{config.image_size} px); recipe: {json.dumps(recipe.to_dict())}; {context.world_size} process(es) "
              f"on {context.device}; {len(loader)} steps per epoch" + (f"; resuming after epoch {state.epoch}" if state.epoch else ""))
    logger = RunLogger(out, enabled=context.is_main, history=state.history)
    try:
        for epoch in range(state.epoch, options.epochs):
            started = time.perf_counter()
            sampler.set_epoch(epoch)
            train_set.set_epoch(epoch)
            train_stats = train_one_epoch(network, model, ema, loader, optimizer, scheduler, scaler, recipe, state,
                                          context, amp_dtype if use_amp else None, logger,
                                          desc=f"epoch {epoch + 1}/{options.epochs}")
            report, predictions = validate(ema, valid_set, per_process_batch, context, options.workers, recipe)
            row = _epoch_row(epoch, train_stats, report)
            row["epoch_seconds"] = round(time.perf_counter() - started, 1)
            state.epoch = epoch + 1
            state.history = logger.history + [row]
            score = row["val_auc"] if options.select_by == "auc" else row["val_accuracy"]
            improved = score is not None and score > state.best_score
            if improved:
                state.best_score, state.best_epoch = score, epoch + 1
            rng_states = all_gather_objects(context, rng_state(context))
            if context.is_main:
                extras = checkpoint_extras(state, ema, rng_states, report)
                model.save_checkpoint(out / "last.pth", optimizer_state_dict=optimizer.state_dict(),
                                      scheduler_state_dict=scheduler.state_dict(), scaler_state_dict=scaler.state_dict(),
                                      train_options=dataclasses.asdict(options), recipe=recipe.to_dict(), **extras)
                if improved:
                    model.save_checkpoint(out / "best.pth", **extras)
                    write_outputs(out / "best_validation", valid_set, predictions, report)
                logger.log_epoch(row)
                _print_epoch(row, options.epochs, improved, options.select_by)
            if on_epoch_end is not None:
                on_epoch_end(epoch, row)
    finally:
        logger.close()
    summary = {"best_epoch": state.best_epoch, "best_score": state.best_score, "select_by": options.select_by,
               "epochs": state.epoch, "history": state.history}
    if context.is_main:
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        print(f"best validation {options.select_by} {state.best_score:.4f} at epoch {state.best_epoch}; "
              f"checkpoints: {out / 'best.pth'}, {out / 'last.pth'}")
    return summary


def _epoch_row(epoch: int, train_stats: dict, report: dict) -> dict:
    frame, video = report["frame"], report.get("video", {})
    row = {"epoch": epoch + 1, **train_stats, "val_loss": report["loss"], "val_accuracy": frame["accuracy"],
           "val_auc": frame["auc"], "val_eer": frame["eer"], "val_average_precision": frame["average_precision"],
           "val_video_auc": video.get("auc"), "val_unreadable_images": report["unreadable_images"]}
    if not all(v is None or math.isfinite(v) for v in row.values()):
        raise FMCAError(f"Training diverged at epoch {epoch + 1} (a non-finite loss); lower the learning rates.")
    return row


def _print_epoch(row: dict, epochs: int, improved: bool, select_by: str) -> None:
    def fmt(value):
        return "n/a" if value is None else f"{value:.4f}"
    skipped = row["train_unreadable_images"] + row["val_unreadable_images"]
    print(f"epoch {row['epoch']}/{epochs}: train loss {fmt(row['train_loss'])} acc {fmt(row['train_accuracy'])} | "
          f"val (EMA) loss {fmt(row['val_loss'])} acc {fmt(row['val_accuracy'])} AUC {fmt(row['val_auc'])} "
          f"video AUC {fmt(row['val_video_auc'])}" + (f" | best {select_by}, saved best.pth" if improved else "")
          + (f" | skipped {skipped} unreadable images" if skipped else ""), flush=True)


def parse_args(argv=None) -> TrainOptions:
    parser = argparse.ArgumentParser(prog="python -m training.train", description=__doc__.split("\n\n")[0],
                                     epilog="Recipes: 'paper' (the published hyper-parameters, for a pretrained "
                                            "backbone) and 'scratch' (random initial weights).")
    parser.add_argument("--data", required=True, help="dataset root: DATA/{train,valid}/{real,fake}/*.png|jpg")
    parser.add_argument("--out", required=True, help="run folder for checkpoints, logs and plots")
    parser.add_argument("--preset", default="tiny", help="model preset: b14, s14 or tiny (default: tiny)")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--recipe", choices=("paper", "scratch"),
                        help="default: paper with --backbone-weights, scratch without")
    parser.add_argument("--batch-size", type=int, help="global batch size (default: the recipe's, 16)")
    parser.add_argument("--backbone-lr", type=float, help="override the recipe's backbone learning rate")
    parser.add_argument("--head-lr", type=float, help="override the recipe's learning rate of everything else")
    parser.add_argument("--image-size", type=int, help="override the preset's input size (a multiple of 56)")
    parser.add_argument("--backbone-weights", help="official DINOv2 checkpoint for the backbone, e.g. dinov2_vitb14_pretrain.pth")
    parser.add_argument("--self-blend", action="store_true",
                        help="train from real faces only, making fakes by self-blending (train/fake is not used)")
    parser.add_argument("--select-by", choices=("auc", "accuracy"), default="auc",
                        help="validation metric that picks best.pth (the paper used accuracy)")
    parser.add_argument("--no-ema-warmup", dest="ema_warmup", action="store_false",
                        help="constant EMA decay from the first step, exactly as in the paper")
    parser.add_argument("--no-dropout", dest="dropout", action="store_false",
                        help="disable dropout (makes runs with different process counts comparable)")
    parser.add_argument("--augment", choices=sorted(AUGMENTATIONS),
                        help="training augmentation (default: the recipe's; paper: all of the paper's, "
                             "light: horizontal flips)")
    parser.add_argument("--no-amp", dest="amp", action="store_false", help="disable mixed precision on CUDA")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=0, help="data-loading processes per training process")
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu or cuda")
    parser.add_argument("--resume", nargs="?", const="last", metavar="CHECKPOINT",
                        help="continue a run: from RUN_DIR/last.pth, or from the given last.pth")
    parser.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error("--epochs must be at least 1")
    return TrainOptions(**vars(args))


def main(argv=None) -> int:
    options = parse_args(argv)
    try:
        train(options)
    except FMCAError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ninterrupted; continue with: python -m training.train ... --out {options.out} --resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
