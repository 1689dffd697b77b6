"""Outputs: never over an input, the model or another output; unwritable ones found before any work; a
write that fails midway (a full disk) is one sentence with the results printed; two runs never silently
replace each other's file.

Full and read-only disks are tested three ways: a writer that fails on cue (always), a process whose file
size limit (RLIMIT_FSIZE) makes every write past it fail (POSIX), and a small tmpfs mounted read-only or
nearly full (only where this process may mount: skipped otherwise).
"""

import errno
import json
import os
import subprocess
import sys
import tempfile

import cv2
import numpy as np
import pytest

from fmca_rt.cli import main

from conftest import REPO_ROOT
from sdk_images import grace_hopper_bgr
from sdk_models import tiny_checkpoint, tiny_onnx
from test_sdk_video import write_video, write_video_folder


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "photo.jpg"
    cv2.imwrite(str(path), grace_hopper_bgr())
    return path


def model_copy(tmp_path):
    path = tmp_path / "victim.onnx"
    path.write_bytes(tiny_onnx().read_bytes())
    return path


def refused(argv, capsys, message):
    """The command refuses before any work: exit 2, one line naming the problem, nothing analysed."""
    assert main([str(a) for a in argv]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and captured.err.count("\n") == 1 and "Traceback" not in captured.err
    assert "latency" not in captured.out and "P(fake)" not in captured.out  # no work was done


# ---- an output that names an input, the model or another output ----------------------------------------------
def test_predict_refuses_to_write_over_its_input_or_its_model(photo, tmp_path, capsys):
    model = model_copy(tmp_path)
    photo_bytes, model_bytes = photo.read_bytes(), model.read_bytes()
    refused(["predict", photo, "--model", model, "--json", photo], capsys, "would write over an input")
    refused(["predict", photo, "--model", model, "--json", model], capsys, "would write over the model")
    (tmp_path / "link.json").symlink_to(model)
    refused(["predict", photo, "--model", model, "--json", tmp_path / "link.json"], capsys, "the model")
    os.link(photo, tmp_path / "hard.json")
    refused(["predict", photo, "--model", model, "--json", tmp_path / "hard.json"], capsys, "an input")
    assert photo.read_bytes() == photo_bytes and model.read_bytes() == model_bytes


def test_predict_refuses_a_json_where_an_explanation_will_go(photo, tmp_path, capsys):
    why = tmp_path / "why"
    refused(["predict", photo, "--model", tiny_onnx(), "--explain", why, "--json", why / "photo_face0.png"], capsys,
            "may write a file named photo_face0.png")
    assert main(["predict", str(photo), "--model", str(tiny_onnx()), "--explain", str(why), "--explain-stride", "2",
                 "--json", str(why / "results.json"), "-q"]) == 0  # a name explanations never take is fine
    assert sorted(p.name for p in why.iterdir()) == ["photo_face0.png", "results.json"]


def test_video_refuses_outputs_over_the_source_and_each_other(tmp_path, capsys):
    clip = write_video(tmp_path / "clip.mp4", [grace_hopper_bgr()] * 3)
    clip_bytes = clip.read_bytes()
    for option in ("--output", "--jsonl", "--summary"):
        refused(["video", clip, "--model", tiny_onnx(), option, clip], capsys, "would write over an input")
    refused(["video", clip, "--model", tiny_onnx(), "--jsonl", tmp_path / "same.json", "--summary",
             tmp_path / "same.json"], capsys, "--jsonl and --summary both name")
    (tmp_path / "alias").symlink_to(tmp_path)  # a new file named through a linked folder
    refused(["video", clip, "--model", tiny_onnx(), "--jsonl", tmp_path / "alias" / "same.json", "--summary",
             tmp_path / "same.json"], capsys, "--jsonl and --summary both name")
    folder = write_video_folder([grace_hopper_bgr()] * 2, tmp_path / "frames")
    refused(["video", folder, "--model", tiny_onnx(), "--summary", folder / "0001.png"], capsys, "an input")
    assert clip.read_bytes() == clip_bytes and not (tmp_path / "same.json").exists()


def test_export_refuses_to_replace_its_checkpoint(tmp_path, capsys):
    from export.onnx import main as export_main

    checkpoint = tmp_path / "best.pth"
    checkpoint.write_bytes(tiny_checkpoint().read_bytes())
    before = checkpoint.read_bytes()
    assert export_main(["--checkpoint", str(checkpoint), "--output", str(checkpoint)]) == 1
    assert "--output" in capsys.readouterr().err and checkpoint.read_bytes() == before
    from export.build_engine import main as build_main

    assert build_main(["--checkpoint", str(checkpoint), "--output", str(checkpoint)]) == 1
    assert "would write over an input" in capsys.readouterr().err and checkpoint.read_bytes() == before


# ---- unwritable outputs are found before the work -----------------------------------------------------------
@pytest.fixture
def failing_folder(tmp_path, monkeypatch):
    """A folder where creating any file fails as on a read-only file system (a writer failing on cue)."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    real_mkstemp = tempfile.mkstemp

    def mkstemp(*args, dir=None, **kwargs):
        if dir is not None and os.path.realpath(dir).startswith(str(folder)):
            raise OSError(errno.EROFS, "Read-only file system")
        return real_mkstemp(*args, dir=dir, **kwargs)
    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    return folder


def mounted_tmpfs(tmp_path, options: str):
    target = tmp_path / "mnt"
    target.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)], capture_output=True)
    if done.returncode != 0:
        pytest.skip("this process may not mount a tmpfs (not root, or in a container without CAP_SYS_ADMIN)")
    return target


@pytest.fixture
def read_only_tmpfs(tmp_path):
    target = mounted_tmpfs(tmp_path, "size=64k,ro")
    yield target
    subprocess.run(["umount", str(target)], check=True)


@pytest.mark.parametrize("where", ["failing_folder", "read_only_tmpfs"])
def test_every_command_finds_an_unwritable_output_before_working(where, photo, tmp_path, capsys, request):
    folder = request.getfixturevalue(where)
    refused(["predict", photo, "--model", tiny_onnx(), "--json", folder / "r.json"], capsys, "Read-only file system")
    refused(["predict", photo, "--model", tiny_onnx(), "--explain", folder / "why"], capsys, "Read-only file system")
    frames = write_video_folder([grace_hopper_bgr()] * 2, tmp_path / "frames")
    refused(["video", frames, "--model", tiny_onnx(), "--summary", folder / "s.json"], capsys, "Read-only")
    refused(["benchmark", "--model", "tiny", "--quick", "--json", folder / "b.json"], capsys, "Read-only")
    from training.evaluate import main as evaluate_main

    assert evaluate_main(["--checkpoint", str(tiny_checkpoint()), "--data", str(tmp_path / "no-data"),
                          "--out", str(folder / "ev")]) == 2  # refused before the data is even looked at
    assert "Cannot write --out" in capsys.readouterr().err


def test_a_file_in_the_way_and_a_pseudo_file_system_are_found_before_working(photo, tmp_path, capsys):
    model = model_copy(tmp_path)
    refused(["predict", photo, "--model", model, "--json", model / "r.json"], capsys, "is a file, not a folder")
    refused(["predict", photo, "--model", model, "--json", tmp_path], capsys, "it is a folder")
    if os.path.isdir("/proc/self"):
        refused(["predict", photo, "--model", model, "--json", "/proc/r.json"], capsys, "Cannot write --json")


# ---- a write that fails midway -------------------------------------------------------------------------------
def run_with_file_size_limit(args, cwd, limit_bytes):
    """The CLI in a process whose writes past `limit_bytes` fail with EFBIG, as on a full disk."""
    resource = pytest.importorskip("resource")

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))
    # No bytecode caching in there: importlib does not check its writes, and would leave truncated .pyc files
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run([sys.executable, "-m", "fmca_rt", *map(str, args)], cwd=cwd, preexec_fn=limit, env=env,
                          capture_output=True, text=True, timeout=300)


def test_predict_on_a_full_disk_says_so_in_one_sentence_and_keeps_the_results_printed(photo, tmp_path):
    done = run_with_file_size_limit(["predict", photo, "--model", tiny_onnx(), "--json", "r.json", "--explain",
                                     "why", "--explain-stride", "2"], tmp_path, 2000)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "Cannot write why/photo_face0.png: File too large. No further explanations were written." in done.stderr
    assert "photo.jpg: " in done.stdout and "1 images: 1 with faces" in done.stdout  # results printed
    assert json.loads((tmp_path / "r.json").read_text())[0]["faces"]  # the JSON fitted: it was kept
    done = run_with_file_size_limit(["predict", photo, "--model", tiny_onnx(), "--json", "r.json"], tmp_path, 100)
    assert done.returncode == 1 and "Cannot write r.json: File too large." in done.stderr
    assert "Traceback" not in done.stderr and "1 images: 1 with faces" in done.stdout
    assert not [p for p in tmp_path.rglob(".*") if "partial" in p.name]


def test_video_on_a_full_disk_prints_its_verdict_and_says_what_was_lost(tmp_path):
    clip = write_video(tmp_path / "clip.avi", [cv2.resize(grace_hopper_bgr(), (160, 200))] * 6, codec="MJPG")
    done = run_with_file_size_limit(["video", clip, "--model", tiny_onnx(), "--summary", "s.json", "--output",
                                     "o.avi", "-q"], tmp_path, 20_000)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "clip.avi: " in done.stdout and "mean P(fake) over 6 frames" in done.stdout  # the verdict
    assert "Cannot write the video o.avi: OpenCV could not write all 6 frames" in done.stderr
    assert json.loads((tmp_path / "s.json").read_text())["output_errors"]  # the summary says what was lost
    assert not (tmp_path / "o.avi").exists()
    done = run_with_file_size_limit(["video", clip, "--model", tiny_onnx(), "--jsonl", "f.jsonl", "-q"], tmp_path, 700)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "the run failed: Cannot write f.jsonl: File too large" in done.stderr and "[failed run" in done.stdout
    assert not [p for p in tmp_path.iterdir() if "partial" in p.name]


@pytest.fixture
def nearly_full_tmpfs(tmp_path):
    target = mounted_tmpfs(tmp_path, "size=64k")
    (target / "filler").write_bytes(b"\0" * (60 * 1024))  # one 4 KiB page left
    yield target
    subprocess.run(["umount", str(target)], check=True)


def test_a_nearly_full_file_system_fails_the_write_not_the_run(nearly_full_tmpfs, tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(24):
        cv2.imwrite(str(folder / f"{i:02d}-with-a-long-name-to-fill-the-json.png"), np.full((20, 20, 3), 9 * i, np.uint8))
    assert main(["predict", str(folder), "--model", str(tiny_onnx()), "--faces", "none", "--json",
                 str(nearly_full_tmpfs / "r.json"), "-q"]) == 1
    captured = capsys.readouterr()
    assert "No space left on device" in captured.err and "24 images: 24 with faces" in captured.out
    (nearly_full_tmpfs / "more").write_bytes(b"\0" * 4096)  # now completely full: refused before the work
    refused(["predict", str(folder), "--model", str(tiny_onnx()), "--json", nearly_full_tmpfs / "r2.json"], capsys,
            "no space left on the device")
    assert sorted(p.name for p in nearly_full_tmpfs.iterdir()) == ["filler", "more"]


def test_evaluate_prints_its_metrics_when_the_report_cannot_be_written(tmp_path, monkeypatch, capsys):
    from training import evaluate

    for label, level in (("real", 60), ("fake", 190)):
        (tmp_path / "data" / label).mkdir(parents=True)
        for i in range(3):
            cv2.imwrite(str(tmp_path / "data" / label / f"{label}_v{i}_f0.png"), np.full((40, 40, 3), level + i, np.uint8))

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(evaluate, "plot_roc", full_disk)
    assert evaluate.main(["--checkpoint", str(tiny_checkpoint()), "--data", str(tmp_path / "data"), "--out",
                          str(tmp_path / "ev")]) == 1
    captured = capsys.readouterr()
    assert "frame AUC" in captured.out and "Traceback" not in captured.err
    assert "Cannot write" in captured.err and "No space left on device" in captured.err


# ---- two runs, one file ------------------------------------------------------------------------------------
def test_a_json_written_by_another_run_meanwhile_is_kept(photo, tmp_path, monkeypatch, capsys):
    from fmca_rt import Detector
    from fmca_rt.faces import HaarFaceDetector

    out = tmp_path / "r.json"
    out.write_text("[]\n")

    class OtherRunFinishes(HaarFaceDetector):
        def detect(self, bgr):
            out.write_text('["the other run"]\n')  # another run replaces the file while this one works
            return super().detect(bgr)
    monkeypatch.setattr("fmca_rt.cli.make_detector", lambda args: Detector(tiny_onnx(), faces=OtherRunFinishes()))
    assert main(["predict", str(photo), "--model", str(tiny_onnx()), "--json", str(out)]) == 0
    assert json.loads(out.read_text()) == ["the other run"]
    assert json.loads((tmp_path / "r-2.json").read_text())[0]["source"] == str(photo)
    assert f"{out} was written by another run while this one ran" in capsys.readouterr().err
