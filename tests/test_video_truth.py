"""The video pipeline against independent answers, with the trained test model (P(fake) spans [0, 1]).

Each frame's P(fake) is the Detector's on that frame alone; earlier outputs stay as they were while a run
is under way; a track survives exactly `max_missed` missed frames; the labels drawn on the annotated video
follow each track's smoothed score; and a camera served over HTTP on loopback that dies is reopened on the
stated backoff schedule, the run ending with exit status 1 when it stays dead.
"""

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np
import pytest

from fmca_rt import Detector
from fmca_rt.cli import main as cli_main
from fmca_rt.video.capture import Backoff
from fmca_rt.video.track_scores import ClassifyPolicy
from fmca_rt.video.tracker import IoUTracker

pytest.importorskip("onnxruntime")


def bgr(rgb):
    return np.ascontiguousarray(rgb[:, :, ::-1])


def write_avi(path, frames, fps=10):
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def decoded_frames(path):
    capture, frames = cv2.VideoCapture(str(path)), []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames


@pytest.fixture(scope="module")
def detector(demo_onnx):
    with Detector(demo_onnx) as detector:
        yield detector


# ---- every frame is the Detector's answer on that frame -------------------------------------------------
def test_each_frames_score_is_the_detectors_on_that_frame(detector, held_out, tmp_path):
    """Frames of two faces side by side, from different held-out photos, analysed 4 frames to a batch, every face
    classified on every frame (the per-track policy would carry a score across these deliberate cuts)."""
    crops = [cv2.resize(bgr(crop), (224, 224)) for crop in held_out.crops]
    frames = [np.hstack([crops[(7 * i) % 80], crops[(7 * i + 40) % 80]]) for i in range(12)]
    video = write_avi(tmp_path / "faces.avi", frames)
    run = detector.stream(str(video), frame_batch=4, classify=ClassifyPolicy(every=1))
    results = list(run)
    expected = [detector.predict(frame) for frame in decoded_frames(video)]
    assert len(results) == len(expected) == 12
    for got, want in zip(results, expected):
        assert [f.box for f in got.faces] == [f.box for f in want.faces]
        np.testing.assert_allclose([f.fake_prob for f in got.faces], [f.fake_prob for f in want.faces], atol=1e-5)
    # a frame's score is its highest face's, the video's the mean over frames with a face
    frame_scores = [max(f.fake_prob for f in want.faces) for want in expected if want.faces]
    np.testing.assert_allclose([r.fake_prob for r in results if r.faces], frame_scores, atol=1e-5)
    assert run.summary["fake_prob"] == pytest.approx(np.mean(frame_scores), abs=1e-5)
    assert len(frame_scores) >= 10 and max(frame_scores) - min(frame_scores) > 0.5  # frames a mix-up tells apart
    assert sum(len(want.faces) >= 2 and np.ptp([f.fake_prob for f in want.faces]) > 0.1 for want in expected) >= 3


# ---- earlier outputs are untouched while a run is under way ----------------------------------------------------
def test_earlier_outputs_stay_as_they_were_until_the_run_ends(demo_onnx, held_out, tmp_path):
    frames = [cv2.resize(bgr(crop), (224, 224)) for crop in held_out.crops[:8]]
    video = write_avi(tmp_path / "clip.avi", frames)
    outputs = {"output": tmp_path / "annotated.avi", "jsonl": tmp_path / "frames.jsonl", "summary": tmp_path / "s.json"}
    before = {name: f"the previous run's {name}\n".encode() for name in outputs}
    for name, path in outputs.items():
        path.write_bytes(before[name])
    with Detector(demo_onnx, faces="none") as detector:
        run = detector.stream(str(video), frame_batch=1, **{name: str(path) for name, path in outputs.items()})
        for index, _ in enumerate(run):
            if index in (0, 4):
                assert {name: path.read_bytes() for name, path in outputs.items()} == before
    assert len(outputs["jsonl"].read_text().splitlines()) == 8
    assert b'"frames_read": 8' in outputs["summary"].read_bytes()
    assert len(decoded_frames(outputs["output"])) == 8


# ---- the tracker -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("max_missed", [0, 1, 3])
def test_a_track_survives_exactly_max_missed_missed_frames(max_missed):
    box = (10, 10, 50, 50)
    kept = IoUTracker(max_missed=max_missed)
    first = kept.update([box], [0.9])[0].track_id
    for _ in range(max_missed):
        kept.update([], [])
    assert kept.update([box], [0.9])[0].track_id == first
    ended = IoUTracker(max_missed=max_missed)
    first = ended.update([box], [0.9])[0].track_id
    for _ in range(max_missed + 1):
        ended.update([], [])
    assert ended.update([box], [0.9])[0].track_id != first


def test_the_pipelines_tracker_follows_a_face_across_frames_without_one(demo_onnx, held_out, tmp_path):
    face, empty = cv2.resize(bgr(held_out.crops[0]), (320, 320)), np.full((320, 320, 3), 128, np.uint8)
    for index, frame in enumerate([face, empty, face, empty, empty, face]):
        cv2.imwrite(str(tmp_path / f"frame_{index}.png"), frame)
    with Detector(demo_onnx) as detector:
        results = list(detector.stream(str(tmp_path / "frame_*.png"), tracker=IoUTracker(max_missed=1)))
    assert [[f.track_id for f in r.faces] for r in results] == [[1], [], [1], [], [], [2]]


# ---- drawn labels follow the smoothed score ----------------------------------------------------------------------
def drawn_label(frame: np.ndarray) -> str:
    """The label whose colour fills the caption box drawn at the top left (fake red, real green)."""
    blue, green, red = frame[2:12, 2:60].reshape(-1, 3).astype(float).mean(axis=0)
    return "fake" if red - green > 40 else "real" if green - red > 40 else "unclear"


def test_the_annotated_video_labels_faces_by_their_smoothed_score(demo_onnx, held_out, tmp_path):
    with Detector(demo_onnx, faces="none") as detector:
        images = [cv2.resize(bgr(crop), (448, 448)) for crop in held_out.crops]
        order = np.argsort([result.fake_prob for result in detector.predict_batch(images)])
        for index, image in enumerate([images[i] for i in (*order[-3:], *order[:3])]):  # 3 most fake, 3 most real
            cv2.imwrite(str(tmp_path / f"frame_{index}.png"), image)  # one face position: one track
        results = list(detector.stream(str(tmp_path / "frame_*.png"), output=str(tmp_path / "drawn.avi")))
    raw = [r.fake_prob for r in results]
    smoothed = [raw[0]]
    for p in raw[1:]:
        smoothed.append(0.6 * smoothed[-1] + 0.4 * p)  # the tracker's default exponential moving average
    np.testing.assert_allclose([r.smoothed[0] for r in results], smoothed, rtol=0, atol=1e-9)
    expected = ["fake" if s >= 0.5 else "real" for s in smoothed]
    assert [drawn_label(frame) for frame in decoded_frames(tmp_path / "drawn.avi")] == expected
    assert expected != ["fake" if p >= 0.5 else "real" for p in raw], "the raw and smoothed labels must differ here"


# ---- a camera on loopback that dies ----------------------------------------------------------------------------
class DyingCamera:
    """An MJPEG-over-HTTP camera on 127.0.0.1: each connection in `serving` (1-based) gets the frames and then
    the connection ends; every other connection gets 503. Records when each connection came and ended."""

    def __init__(self, frames: list[np.ndarray], serving=(1,)):
        jpegs = [cv2.imencode(".jpg", frame)[1].tobytes() for frame in frames]
        self.connections: list[float] = []
        self.stream_ends: list[float] = []
        camera = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                camera.connections.append(time.perf_counter())
                if len(camera.connections) not in serving:
                    self.send_error(503)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                for jpeg in jpegs:
                    self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n%s\r\n"
                                     % (len(jpeg), jpeg))
                    self.wfile.flush()
                    time.sleep(0.01)
                camera.stream_ends.append(time.perf_counter())

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/camera.mjpg"

    def __enter__(self):
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc_info):
        self._server.shutdown()
        self._server.server_close()


def test_the_default_backoff_is_the_stated_schedule():
    assert list(Backoff().delays()) == [0.5, 1, 2, 4, 8, 16, 30, 30, 30, 30]  # README: 0.5 s doubling to 30 s, 10 tries


@pytest.fixture(scope="module")
def camera_frames(held_out):
    return [cv2.resize(bgr(crop), (224, 224)) for crop in held_out.crops[:6]]


def test_a_camera_that_comes_back_is_reopened_and_one_that_stays_dead_ends_the_run(demo_onnx, camera_frames):
    backoff = Backoff(first=0.05, factor=2, longest=0.2, attempts=4)
    with DyingCamera(camera_frames, serving=(1, 3)) as camera, Detector(demo_onnx, faces="none") as detector:
        run = detector.stream(camera.url, backoff=backoff)
        results = list(run)
    summary = run.summary
    assert summary["frames_read"] == 12 and summary["reconnects"] == 1 and len(results) >= 2
    assert "4 reconnection attempts failed" in summary["capture_failure"]
    # connections: 1 served, 2 refused, 3 served (the reconnect), 4-7 refused (then it gives up)
    assert len(camera.connections) == 7
    waits = [camera.connections[1] - camera.stream_ends[0], camera.connections[2] - camera.connections[1]]
    waits += [camera.connections[3] - camera.stream_ends[1]]
    waits += list(np.diff(camera.connections[3:]))
    assert all(wait >= delay for wait, delay in zip(waits, [0.05, 0.1, 0.05, 0.1, 0.2, 0.2])), waits


def test_the_command_line_exits_1_when_the_camera_stays_dead(demo_onnx, camera_frames, capsys):
    with DyingCamera(camera_frames) as camera:
        status = cli_main(["video", camera.url, "--model", str(demo_onnx), "--faces", "none", "--quiet",
                           "--reconnect-attempts", "2", "--reconnect-delay", "0.05"])
    out, err = capsys.readouterr()
    assert status == 1 and "2 reconnection attempts failed" in err and f"{camera.url}: " in out
    assert len(camera.connections) == 3


@pytest.mark.parametrize("option, value", [("--reconnect-attempts", "-1"), ("--reconnect-delay", "0")])
def test_reconnect_options_out_of_range_are_one_sentence(option, value, tmp_path, capsys):
    arguments = ["video", "http://127.0.0.1:1/camera.mjpg", "--model", str(tmp_path / "m.onnx"), option, value]
    assert cli_main(arguments) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "fmca-rt: error: --reconnect-attempts must be 0 or more and --reconnect-delay a positive number of seconds."]
