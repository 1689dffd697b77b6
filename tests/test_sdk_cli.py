"""The fmca-rt command line: results, files written, exit codes and one-line errors."""

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from fmca_rt.cli import COMMANDS, main

from sdk_images import grace_hopper_bgr, grace_hopper_path
from sdk_models import tiny_onnx


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.jpg"), grace_hopper_bgr())
    cv2.imwrite(str(folder / "b.png"), np.full((50, 60, 3), 100, np.uint8))
    return folder


def test_predict_folder_writes_json_and_exits_0(photos, tmp_path, capsys):
    out = tmp_path / "results.json"
    assert main(["predict", str(photos), "--model", str(tiny_onnx()), "--json", str(out)]) == 0
    records = json.loads(out.read_text())
    assert [r["source"] for r in records] == [str(photos / "a.jpg"), str(photos / "b.png")]
    assert len(records[0]["faces"]) == 1 and records[1]["label"] == "no face"
    stdout = capsys.readouterr().out
    assert "2 images: 1 with faces" in stdout and "infer" in stdout  # summary and latency table


def test_bad_files_are_reported_skipped_and_exit_1(photos, tmp_path, capsys):
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    out = tmp_path / "results.json"
    assert main(["predict", str(photos), str(tmp_path / "missing.png"), "--model", str(tiny_onnx()),
                 "--json", str(out)]) == 1
    records = {r["source"].rsplit("/", 1)[-1]: r for r in json.loads(out.read_text())}
    assert set(records) == {"a.jpg", "b.png", "broken.jpg", "missing.png"}
    assert records["broken.jpg"]["label"] == "error" and "truncated JPEG" in records["broken.jpg"]["error"]
    assert "2 unreadable" in capsys.readouterr().out


def test_video_command_writes_jsonl_summary_and_video(tmp_path, capsys):
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(4):
        cv2.imwrite(str(frames / f"{i}.png"), grace_hopper_bgr())
    jsonl, summary, video = tmp_path / "f.jsonl", tmp_path / "s.json", tmp_path / "out.avi"
    assert main(["video", str(frames), "--model", str(tiny_onnx()), "--jsonl", str(jsonl), "--summary", str(summary),
                 "--output", str(video)]) == 0
    assert len(jsonl.read_text().splitlines()) == 4
    assert json.loads(summary.read_text())["frames_with_faces"] == 4
    assert video.stat().st_size > 0
    assert "mean P(fake) over 4 frames" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["predict", "x.jpg", "--model", "missing.onnx"], "does not exist"),
    (["video", "missing.mp4", "--model", "MODEL"], "does not exist"),
    (["predict", "nothing/*.jpg", "--model", "MODEL"], "No images found"),
])
def test_user_mistakes_exit_2_with_one_line(argv, message, capsys):
    argv = [str(tiny_onnx()) if a == "MODEL" else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_python_dash_m_is_the_same_cli():
    done = subprocess.run([sys.executable, "-m", "fmca_rt", "--help"], capture_output=True, text=True, check=True)
    for command in COMMANDS:
        assert command in done.stdout


def test_predict_output_names_each_image(capsys):
    assert main(["predict", str(grace_hopper_path()), "--model", str(tiny_onnx()), "--threshold", "0"]) == 0
    assert "grace_hopper.jpg: fake P(fake)=" in capsys.readouterr().out
