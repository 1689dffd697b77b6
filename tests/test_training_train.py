"""Training runs end to end on a tiny generated dataset: checkpoints, resume, distributed runs, CLI errors.

Runs use the `tiny` preset at 56 px on 16 training images (two steps per epoch), so each takes seconds.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from training import FMCANet
from training.checkpoint import read_checkpoint
from training.demo_data import generate
from training.train import TrainOptions, train

REPO_ROOT = Path(__file__).resolve().parents[1]
FAST = ["--preset", "tiny", "--image-size", "56", "--batch-size", "8"]


@pytest.fixture(scope="module")
def demo_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    generate(root, count=8, size=56, seed=1)  # 8 train and 8 valid images per class
    return root


def options(data, out, **changes) -> TrainOptions:
    values = dict(data=str(data), out=str(out), preset="tiny", image_size=56, batch_size=8, epochs=2)
    return TrainOptions(**{**values, **changes})


def run_module(*args, env_extra=None, timeout=300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env_extra or {})}
    return subprocess.run([sys.executable, *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def assert_same_tensors(first: dict, second: dict, atol: float = 0.0) -> None:
    assert first.keys() == second.keys()
    for key in first:
        if atol == 0.0:
            assert torch.equal(first[key], second[key]), key
        else:
            torch.testing.assert_close(first[key], second[key], rtol=0, atol=atol, msg=key)


def test_a_run_writes_loadable_checkpoints_logs_and_plots(demo_dataset, tmp_path):
    summary = train(options(demo_dataset, tmp_path / "run"))
    run = tmp_path / "run"
    for name in ("best.pth", "last.pth", "history.csv", "history.json", "curves.png", "summary.json",
                 "best_validation/report.json", "best_validation/roc.png", "best_validation/confusion_matrix.png"):
        assert (run / name).is_file(), name
    assert list((run / "tensorboard").iterdir())
    history = json.loads((run / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2] and summary["epochs"] == 2
    assert 1 <= summary["best_epoch"] <= 2
    best = read_checkpoint(run / "best.pth")
    assert best["epoch"] == summary["best_epoch"] and best["val_auc"] == history[best["epoch"] - 1]["val_auc"]
    model = FMCANet.from_checkpoint(run / "best.pth")  # the EMA weights, as the published loader prefers
    assert_same_tensors(model.state_dict(), best["ema_state_dict"])
    assert model.config.image_size == 56
    last = read_checkpoint(run / "last.pth")
    assert last["epoch"] == 2 and "optimizer_state_dict" in last and "optimizer_state_dict" not in best


def test_resume_continues_exactly_like_an_uninterrupted_run(demo_dataset, tmp_path):
    train(options(demo_dataset, tmp_path / "straight"))

    def interrupt_after_first_epoch(epoch, row):
        if epoch == 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(options(demo_dataset, tmp_path / "resumed"), on_epoch_end=interrupt_after_first_epoch)
    assert read_checkpoint(tmp_path / "resumed" / "last.pth")["epoch"] == 1
    train(options(demo_dataset, tmp_path / "resumed", resume="last"))

    straight = read_checkpoint(tmp_path / "straight" / "last.pth")
    resumed = read_checkpoint(tmp_path / "resumed" / "last.pth")
    assert_same_tensors(straight["model_state_dict"], resumed["model_state_dict"])
    assert_same_tensors(straight["ema_state_dict"], resumed["ema_state_dict"])
    assert straight["optimizer_state_dict"]["state"].keys() == resumed["optimizer_state_dict"]["state"].keys()
    for key, value in straight["optimizer_state_dict"]["state"].items():
        assert_same_tensors(value, resumed["optimizer_state_dict"]["state"][key])
    def without_times(history):
        return [{k: v for k, v in row.items() if k != "epoch_seconds"} for row in history]

    assert without_times(straight["history"]) == without_times(resumed["history"])
    assert straight["ema_updates"] == resumed["ema_updates"] == 4


def test_resume_refuses_a_different_schedule(demo_dataset, tmp_path):
    from fmca_rt.errors import FMCAError

    train(options(demo_dataset, tmp_path / "run", epochs=1))
    with pytest.raises(FMCAError, match="resume with the same data, --epochs and --batch-size"):
        train(options(demo_dataset, tmp_path / "run", epochs=3, resume="last"))


def test_an_existing_run_is_not_overwritten_by_accident(demo_dataset, tmp_path):
    from fmca_rt.errors import FMCAError

    train(options(demo_dataset, tmp_path / "run", epochs=1))
    with pytest.raises(FMCAError, match="already holds a training run; pass --resume"):
        train(options(demo_dataset, tmp_path / "run", epochs=1))
    train(options(demo_dataset, tmp_path / "run", epochs=1, overwrite=True))


def test_self_blended_training_needs_only_real_faces(demo_dataset, tmp_path):
    import shutil

    real_only = tmp_path / "real_only"
    for split in ("train", "valid"):
        shutil.copytree(demo_dataset / split / "real", real_only / split / "real")
    summary = train(options(real_only, tmp_path / "run", epochs=1, self_blend=True))
    report = json.loads((tmp_path / "run" / "best_validation" / "report.json").read_text())
    assert report["frame"]["real"] == report["frame"]["fake"] == 8  # validation fakes self-blended
    assert set(report["per_method"]) == {"SelfBlended"} and summary["epochs"] == 1


@pytest.mark.slow
def test_two_processes_train_the_same_model_as_one_with_the_same_global_batch(demo_dataset, tmp_path):
    common = ["--data", str(demo_dataset), *FAST, "--epochs", "2", "--no-dropout"]
    single = run_module("-m", "training.train", *common, "--out", str(tmp_path / "single"))
    assert single.returncode == 0, single.stderr[-3000:]
    distributed = run_module("-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                             "-m", "training.train", *common, "--out", str(tmp_path / "ddp"))
    assert distributed.returncode == 0, distributed.stderr[-3000:]
    assert "2 process(es) on cpu" in distributed.stdout
    one = read_checkpoint(tmp_path / "single" / "last.pth")
    two = read_checkpoint(tmp_path / "ddp" / "last.pth")
    assert one["history"][-1]["train_loss"] == pytest.approx(two["history"][-1]["train_loss"], rel=1e-5)
    # validation runs in eval mode on BatchNorm running means, which follow the noise-driven biases below
    assert one["history"][-1]["val_loss"] == pytest.approx(two["history"][-1]["val_loss"], rel=1e-3)
    assert one["history"][-1]["val_auc"] == pytest.approx(two["history"][-1]["val_auc"], abs=0.02)
    batch_norm_weight = "freq_branch.conv_layers.1.weight"  # trained, so not left behind by a re-wrapped module
    assert not torch.equal(two["model_state_dict"][batch_norm_weight], torch.ones(16))
    for state in ("model_state_dict", "ema_state_dict"):
        compared = {name: (one[state][name], two[state][name]) for name in one[state]
                    if not is_noise_driven(name)}
        mean_differences = {name: (a.float() - b.float()).abs().mean().item() for name, (a, b) in compared.items()}
        max_difference = max((a.float() - b.float()).abs().max().item() for a, b in compared.values())
        # Gradients agree to ~1e-6 relative (float32 sums in another order); AdamW's normalized steps turn
        # that into a small fraction of the learning rate (1e-3) on a few elements over the 8 steps.
        # Different batches, unsynchronized batch norm or unaveraged gradients move whole tensors by ~1e-3.
        assert max(mean_differences.values()) < 1e-5, max(mean_differences.items(), key=lambda kv: kv[1])
        assert max_difference < 5e-4


def is_noise_driven(name: str) -> bool:
    """The biases of the convolutions feeding a BatchNorm have a gradient of exactly zero in exact arithmetic
    (the BatchNorm subtracts the batch mean), so AdamW's normalized step follows float rounding noise and
    moves them by +-lr in either run; the BatchNorm running means track those biases."""
    parts = name.split(".")
    if parts[:2] != ["freq_branch", "conv_layers"]:
        return False
    return parts[3] == "running_mean" or (parts[3] == "bias" and int(parts[2]) % 3 == 0)


def test_command_line_errors_are_one_sentence(tmp_path):
    result = run_module("-m", "training.train", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "run"))
    assert result.returncode == 2
    assert result.stderr.startswith("error: Dataset folder") and "Traceback" not in result.stderr
    (tmp_path / "data" / "train" / "real").mkdir(parents=True)
    result = run_module("-m", "training.train", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "run"))
    assert result.returncode == 2 and "train/real has no images" in result.stderr and "Traceback" not in result.stderr
    result = run_module("-m", "training.evaluate", "--checkpoint", str(tmp_path / "none.pth"), "--data",
                        str(tmp_path / "data"), "--out", str(tmp_path / "eval"))
    assert result.returncode == 2 and "does not exist" in result.stderr and "Traceback" not in result.stderr


def test_evaluate_reports_frame_video_and_method_metrics(demo_dataset, tmp_path):
    train(options(demo_dataset, tmp_path / "run", epochs=1))
    result = run_module("-m", "training.evaluate", "--checkpoint", str(tmp_path / "run" / "best.pth"),
                        "--data", str(demo_dataset), "--split", "valid", "--out", str(tmp_path / "eval"))
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert report["frame"]["count"] == 16 and report["video"]["count"] == 4
    assert set(report["per_method"]) <= {"SelfBlendColor", "SelfBlendFrequency"}
    assert "frame AUC" in result.stdout
    for name in ("predictions.csv", "roc.png", "confusion_matrix.png"):
        assert (tmp_path / "eval" / name).is_file()
    # the report of best.pth's epoch written during training agrees with a fresh evaluation
    during = json.loads((tmp_path / "run" / "best_validation" / "report.json").read_text())
    assert during["frame"]["auc"] == pytest.approx(report["frame"]["auc"], abs=1e-6)


def test_unreadable_images_are_counted_in_the_run_not_fatal(demo_dataset, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(demo_dataset, data)
    sorted((data / "train" / "fake").iterdir())[0].write_bytes(b"truncated")
    sorted((data / "valid" / "real").iterdir())[0].write_bytes(b"")
    train(options(data, tmp_path / "run", epochs=1))
    row = json.loads((tmp_path / "run" / "history.json").read_text())[0]
    assert row["train_unreadable_images"] == 1 and row["val_unreadable_images"] == 1
    report = json.loads((tmp_path / "run" / "best_validation" / "report.json").read_text())
    assert report["frame"]["count"] == 15 and report["unreadable_images"] == 1


def test_backbone_weights_are_loaded_and_select_the_paper_recipe(demo_dataset, tmp_path):
    donor = FMCANet.from_preset("tiny", image_size=56)
    backbone = {name: tensor for name, tensor in donor.vit.state_dict().items()}  # official files: no "vit." prefix
    torch.save(backbone, tmp_path / "dinov2_tiny.pth")
    train(options(demo_dataset, tmp_path / "run", epochs=1, backbone_weights=str(tmp_path / "dinov2_tiny.pth")))
    last = read_checkpoint(tmp_path / "run" / "last.pth")
    assert last["recipe"]["backbone_lr"] == 6e-6 and last["recipe"]["augment"] == "paper"
    groups = last["optimizer_state_dict"]["param_groups"]
    assert [g["weight_decay"] for g in groups] == [0.05, 0.0]
    trained = last["model_state_dict"]["vit.blocks.0.attn.qkv.weight"]
    # two AdamW steps at lr <= 6e-6 move a weight by at most ~1.2e-5; a random initialization differs by ~0.1
    assert (trained - backbone["blocks.0.attn.qkv.weight"]).abs().max() < 1e-4
