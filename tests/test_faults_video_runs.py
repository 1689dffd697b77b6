"""Video runs that do not end normally: a failing backend or source, signals, bad counts, finite streams.

A run that fails or is interrupted keeps what it analysed under `.incomplete` names, says so in its summary
(`status`), leaves an earlier run's files untouched, and the CLI exits non-zero after printing the verdict.
"""

import functools
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time

import cv2
import numpy as np
import pytest

from fmca_rt import Detector
from fmca_rt.backends.onnxruntime import OnnxRuntimeBackend
from fmca_rt.cli import main
from fmca_rt.errors import BackendError, FMCAError, RunError
from fmca_rt.video.capture import Backoff

from conftest import REPO_ROOT
from sdk_models import tiny_onnx
from test_sdk_video import write_video, write_video_folder

PREVIOUS = "an earlier complete run\n"


class FailsOnSecondCall(OnnxRuntimeBackend):
    """The real model, until its second batch: then the engine raises (a lost device, a crashed server)."""

    def infer_impl(self, pixels):
        self.calls = getattr(self, "calls", 0) + 1
        if self.calls == 2:
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return super().infer_impl(pixels)


def frames(count=6, size=56):
    return [np.full((size, size, 3), (40 + 30 * i) % 250, np.uint8) for i in range(count)]


def previous_outputs(folder):
    paths = {name: folder / name for name in ("frames.jsonl", "summary.json", "annotated.avi")}
    for path in paths.values():
        path.write_text(PREVIOUS)
    return paths


def test_a_backend_failing_midway_keeps_the_analysed_frames_as_incomplete_and_says_failed(tmp_path):
    folder = write_video_folder(frames(), tmp_path / "frames")
    old = previous_outputs(tmp_path)
    with Detector(FailsOnSecondCall(tiny_onnx()), faces="none") as detector:
        run = detector.stream(folder, output=old["annotated.avi"], jsonl=old["frames.jsonl"],
                              summary=old["summary.json"], frame_batch=1, queue_size=1)
        seen = []
        with pytest.raises(RunError, match="failed after 1 analysed frames: RuntimeError: CUDA error"):
            for result in run:
                seen.append(result)
    assert [path.read_text() for path in old.values()] == [PREVIOUS] * 3
    summary = json.loads((tmp_path / "summary.incomplete.json").read_text())
    assert summary == run.summary and summary["status"] == "failed" and "illegal memory access" in summary["error"]
    assert summary["frames_analysed"] == 1 == len(seen) and summary["frames_read"] >= 1
    lines = (tmp_path / "frames.incomplete.jsonl").read_text().splitlines()
    assert [json.loads(line)["frame"] for line in lines] == [0]
    video = cv2.VideoCapture(str(tmp_path / "annotated.incomplete.avi"))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 1
    assert not list(tmp_path.glob(".*"))  # no temporary file left


def test_cli_prints_the_verdict_of_a_failed_run_and_exits_1(tmp_path, monkeypatch, capsys):
    folder = write_video_folder(frames(), tmp_path / "frames")
    monkeypatch.setattr("fmca_rt.cli.make_detector",
                        lambda args: Detector(FailsOnSecondCall(tiny_onnx()), faces="none", batch_size=1))
    summary = tmp_path / "s.json"
    assert main(["video", str(folder), "--model", str(tiny_onnx()), "--summary", str(summary), "--queue-size", "1",
                 "-q"]) == 1
    captured = capsys.readouterr()
    assert "[failed run: what was analysed so far]" in captured.out and "Traceback" not in captured.err
    assert "the run failed: RuntimeError: CUDA error" in captured.err and ".incomplete" in captured.err
    assert json.loads((tmp_path / "s.incomplete.json").read_text())["status"] == "failed" and not summary.exists()


def test_a_source_that_dies_midway_is_a_failed_run(tmp_path, monkeypatch):
    from fmca_rt.video import pipeline

    real_open = pipeline.open_reader

    def dying_reader(source, gstreamer="auto"):
        reader = real_open(source, gstreamer)
        read = reader.read
        count = iter(range(100))

        def read_then_die():
            if next(count) == 3:
                raise OSError("Input/output error")
            return read()
        reader.read = read_then_die
        return reader

    monkeypatch.setattr(pipeline, "open_reader", dying_reader)
    clip = write_video(tmp_path / "clip.avi", frames(8), codec="MJPG")
    summary_path = tmp_path / "s.json"
    with Detector(tiny_onnx(), faces="none") as detector:
        summary = detector.stream(clip, summary=summary_path).run()
    assert summary["status"] == "failed" and "Input/output error" in summary["error"]
    assert summary["frames_read"] == 3 and not summary_path.exists()
    assert json.loads((tmp_path / "s.incomplete.json").read_text())["frames_analysed"] == 3


@pytest.mark.parametrize("count", ["-5", "0", "x"])
def test_max_frames_must_be_positive(count, tmp_path, capsys):
    folder = write_video_folder(frames(2), tmp_path / "frames")
    with pytest.raises(SystemExit) as stopped:
        main(["video", str(folder), "--model", str(tiny_onnx()), "--max-frames", count])
    assert stopped.value.code == 2 and "expected a positive whole number" in capsys.readouterr().err
    with Detector(tiny_onnx()) as detector, pytest.raises(FMCAError, match="max_frames must be a positive"):
        detector.stream(folder, max_frames=int(count) if count != "x" else 0.5)


def test_skipped_frames_make_the_exit_status_1(tmp_path, capsys):
    folder = write_video_folder(frames(3), tmp_path / "frames")
    (folder / "0001.png").write_bytes(b"not a png")
    assert main(["video", str(folder), "--model", str(tiny_onnx()), "--faces", "none", "-q"]) == 1
    assert "1 bad (skipped)" in capsys.readouterr().out


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_an_http_url_serving_a_file_is_read_once(tmp_path):
    write_video(tmp_path / "clip.mp4", frames(12, 64))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=tmp_path))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with Detector(tiny_onnx(), faces="none") as detector:
            run = detector.stream(f"http://127.0.0.1:{server.server_address[1]}/clip.mp4", max_frames=36,
                                  backoff=Backoff(first=0.01, attempts=3))
            summary = run.run()
    finally:
        server.shutdown()
    assert summary["frames_read"] == 12 and summary["reconnects"] == 0 and summary["status"] == "complete"
    assert summary["dropped_frames"] == 0 and run.frame_count == 12


# ---- signals, in a real process -------------------------------------------------------------------------------
def start_cli(args, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.Popen([sys.executable, "-m", "fmca_rt", *args], cwd=tmp_path, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for(condition, process, seconds=60):
    deadline = time.monotonic() + seconds
    while not condition():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the run never got going"
        time.sleep(0.05)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_ends_a_video_run_like_ctrl_c(signum, tmp_path):
    folder = write_video_folder(frames(400, 32), tmp_path / "frames")
    old = previous_outputs(tmp_path)
    process = start_cli(["video", str(folder), "--model", str(tiny_onnx()), "--faces", "none", "--batch-size", "1",
                         "--jsonl", "frames.jsonl", "--summary", "summary.json", "-q"], tmp_path)
    partial = lambda: [p for p in tmp_path.glob(".frames.*.partial.jsonl") if p.stat().st_size > 0]  # noqa: E731
    wait_for(partial, process)
    process.send_signal(signum)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signum, err
    assert f"interrupted by {signal.Signals(signum).name}" in err and "Traceback" not in err
    assert "[interrupted run: what was analysed so far]" in out  # the verdict so far is printed
    assert old["frames.jsonl"].read_text() == PREVIOUS and old["summary.json"].read_text() == PREVIOUS
    summary = json.loads((tmp_path / "summary.incomplete.json").read_text())
    assert summary["status"] == "interrupted" and 0 < summary["frames_analysed"] < 400
    assert len((tmp_path / "frames.incomplete.jsonl").read_text().splitlines()) == summary["frames_analysed"]
    assert not list(tmp_path.glob(".*partial*"))


def test_a_signal_ends_predict_with_the_results_so_far(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(300):
        cv2.imwrite(str(folder / f"{i:03d}.png"), np.full((24, 24, 3), i % 250, np.uint8))
    process = start_cli(["predict", str(folder), "--model", str(tiny_onnx()), "--faces", "none", "--batch-size", "1",
                         "--json", "r.json"], tmp_path)
    process.stdout.readline()  # the first result line: the run is under way
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 143, err
    records = json.loads((tmp_path / "r.incomplete.json").read_text())
    assert 0 < len(records) < 300 and not (tmp_path / "r.json").exists()
    assert f"{len(records)} of 300 images:" in out
    assert f"interrupted by SIGTERM after {len(records)} of 300 images; the results so far are in" in err
    assert not list(tmp_path.glob(".*partial*"))
