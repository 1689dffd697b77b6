"""Video pipeline: sources, the frame queue's drop policy, reconnects, the tracker, and end-to-end runs."""

import json
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from fmca_rt import Detector
from fmca_rt.errors import FMCAError, OutputError, SourceError
from fmca_rt.faces import HaarFaceDetector
from fmca_rt.video.capture import Backoff, CaptureThread, Frame, FrameQueue
from fmca_rt.video.readers import FrameReader, ReadResult
from fmca_rt.video.sinks import open_frame_sink
from fmca_rt.video.sources import gstreamer_pipeline, parse_source
from fmca_rt.video.track_scores import ClassifyPolicy
from fmca_rt.video.tracker import IoUTracker, iou_matrix

from sdk_images import grace_hopper_bgr
from sdk_models import tiny_onnx

FRAMES = 12


def write_video(path, frames, fps=10, codec="mp4v"):
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), fps, (width, height))
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def write_video_folder(images, folder=None):
    folder = Path(folder or tempfile.mkdtemp())
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        cv2.imwrite(str(folder / f"{i:04d}.png"), image)
    return folder


def moving_face_frames(count=FRAMES):
    image = grace_hopper_bgr()
    return [cv2.warpAffine(image, np.float32([[1, 0, 3 * i], [0, 1, 0]]), image.shape[1::-1]) for i in range(count)]


@pytest.fixture(scope="module")
def detector():
    with Detector(tiny_onnx()) as detector:
        yield detector


# ---- sources ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("uri, kind, location", [
    ("0", "webcam", "0"), ("/dev/video2", "v4l2", "/dev/video2"), ("v4l2:///dev/video1", "v4l2", "/dev/video1"),
    ("csi://0", "csi", "0"), ("rtsp://cam.local:554/live", "rtsp", "rtsp://cam.local:554/live"),
    ("https://example.com/a.m3u8", "http", "https://example.com/a.m3u8"),
])
def test_device_and_network_uris(uri, kind, location):
    source = parse_source(uri)
    assert (source.kind, source.location) == (kind, location)
    assert source.live


def test_files_folders_and_globs(tmp_path):
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"x")
    assert parse_source(video).kind == "file" and not parse_source(video).live
    assert parse_source(f"file://{video}").location == str(video)
    assert parse_source(tmp_path).kind == "images"
    assert parse_source(str(tmp_path / "*.png")).kind == "images"
    with pytest.raises(SourceError, match="does not exist"):
        parse_source(tmp_path / "missing.mp4")
    with pytest.raises(SourceError, match="csi://N"):
        parse_source("csi://left")


def test_gstreamer_pipelines_for_jetson():
    csi = gstreamer_pipeline(parse_source("csi://1"), 1280, 720, 30, jetson=True)
    assert "nvarguscamerasrc sensor-id=1" in csi and csi.endswith("appsink drop=1 max-buffers=1")
    rtsp = gstreamer_pipeline(parse_source("rtsp://h/s"), jetson=True)
    assert "rtspsrc location=rtsp://h/s" in rtsp and "nvv4l2decoder" in rtsp
    usb = gstreamer_pipeline(parse_source("/dev/video0"), jetson=True)
    assert "v4l2src device=/dev/video0" in usb and "nvv4l2decoder mjpeg=1" in usb
    assert "nvv4l2decoder" not in gstreamer_pipeline(parse_source("rtsp://h/s"), jetson=False)
    assert gstreamer_pipeline(parse_source("/dev/video0"), jetson=False) is None


def test_unopenable_sources(tmp_path, detector):
    fake = tmp_path / "not_a_video.mp4"
    fake.write_text("this is text")
    with pytest.raises(SourceError, match="Cannot open video source"):
        detector.stream(fake)
    with pytest.raises(SourceError, match="No images"):
        detector.stream(tmp_path / "*.png")


# ---- queue, capture, reconnect ----------------------------------------------------------------------------
def frame(i):
    return Frame(i, np.zeros((2, 2, 3), np.uint8))


def test_live_queue_drops_the_oldest_frames():
    queue = FrameQueue(2, drop_oldest=True)
    for i in range(5):
        assert queue.put(frame(i))
    assert queue.dropped == 3
    assert [queue.get_nowait().index, queue.get_nowait().index] == [3, 4]


def test_file_queue_blocks_the_producer_and_drops_nothing():
    queue = FrameQueue(2, drop_oldest=False)
    done = threading.Event()

    def produce():
        for i in range(6):
            queue.put(frame(i))
        done.set()

    threading.Thread(target=produce, daemon=True).start()
    time.sleep(0.2)
    assert not done.is_set() and len(queue) == 2  # waiting for room
    received = [queue.get(timeout=2).index for _ in range(6)]
    assert received == list(range(6)) and queue.dropped == 0


class ListReader(FrameReader):
    def __init__(self, results):
        self.results = list(results)
        self.closed = False

    def read(self):
        return self.results.pop(0) if self.results else ReadResult(end=True)

    def close(self):
        self.closed = True


def test_lost_stream_reconnects_with_exponential_backoff():
    attempts, delays = [], []

    def reopen():
        attempts.append(1)
        if len(attempts) < 3:
            raise SourceError("still down")
        return ListReader([ReadResult(frame=np.zeros((2, 2, 3), np.uint8))] * 2)

    first = ListReader([ReadResult(frame=np.zeros((2, 2, 3), np.uint8))])
    queue = FrameQueue(10, drop_oldest=True)
    capture = CaptureThread(first, queue, reopen, Backoff(first=0.5, factor=2, longest=1.5, attempts=3),
                            max_frames=3, sleep=delays.append)
    capture.run()
    assert delays == [0.5, 1.0, 1.5] and capture.reconnects == 1 and capture.frames_read == 3
    assert first.closed and capture.failure is None


def test_reconnect_gives_up_after_the_attempts():
    def reopen():
        raise SourceError("down")

    capture = CaptureThread(ListReader([]), FrameQueue(2, True), reopen, Backoff(attempts=4), sleep=lambda s: None)
    capture.run()
    assert "4 reconnection attempts failed" in capture.failure


def test_bad_frames_are_counted_and_passed_on():
    reader = ListReader([ReadResult(frame=np.zeros((2, 2, 3), np.uint8)), ReadResult(error="frame 1 broken"),
                         ReadResult(frame=np.zeros((2, 2, 3), np.uint8))])
    queue = FrameQueue(10, drop_oldest=False)
    capture = CaptureThread(reader, queue)
    capture.run()
    frames = [queue.get_nowait() for _ in range(3)]
    assert capture.bad_frames == 1 and [f.error for f in frames] == [None, "frame 1 broken", None]
    assert queue.get(timeout=0.1) is None  # closed at the end


# ---- tracker ------------------------------------------------------------------------------------------------
def test_iou_matrix():
    a = np.array([[0, 0, 10, 10]], float)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], float)
    np.testing.assert_allclose(iou_matrix(a, b), [[1.0, 50 / 150, 0.0]])


def test_tracker_keeps_ids_and_smooths_scores():
    tracker = IoUTracker(iou_threshold=0.3, max_missed=1, smoothing=0.5)
    first = tracker.update([(0, 0, 10, 10), (50, 50, 60, 60)], [0.2, 0.9])
    second = tracker.update([(52, 50, 62, 60), (1, 0, 11, 10)], [0.5, 0.6])
    assert [t.track_id for t in first] == [1, 2] and [t.track_id for t in second] == [2, 1]
    assert second[0].smoothed == pytest.approx(0.5 * 0.9 + 0.5 * 0.5)
    assert second[1].smoothed == pytest.approx(0.5 * 0.2 + 0.5 * 0.6)
    tracker.update([], [])
    tracker.update([], [])  # missed twice > max_missed: both tracks end
    assert tracker.update([(0, 0, 10, 10)], [0.1])[0].track_id == 3


# ---- end to end ------------------------------------------------------------------------------------------
def test_video_file_gives_one_result_per_frame_and_a_summary(detector, tmp_path):
    video = write_video(tmp_path / "clip.mp4", moving_face_frames())
    out, jsonl, summary_path = tmp_path / "out.mp4", tmp_path / "frames.jsonl", tmp_path / "summary.json"
    run = detector.stream(video, output=out, jsonl=jsonl, summary=summary_path)
    results = list(run)
    assert [r.index for r in results] == list(range(FRAMES))
    assert all(len(r.faces) == 1 and r.faces[0].track_id == 1 for r in results)
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [line["frame"] for line in lines] == list(range(FRAMES))
    assert lines[3]["time"] == pytest.approx(0.3)
    summary = json.loads(summary_path.read_text())
    assert summary == run.summary
    assert summary["frames_read"] == summary["frames_analysed"] == summary["frames_with_faces"] == FRAMES
    assert summary["bad_frames"] == summary["dropped_frames"] == 0
    assert summary["fake_prob"] == pytest.approx(np.mean([line["fake_prob"] for line in lines]), abs=1e-5)
    assert {"capture", "detect", "preprocess", "infer", "end_to_end"} <= set(summary["latency_ms"])
    annotated = cv2.VideoCapture(str(out))
    assert int(annotated.get(cv2.CAP_PROP_FRAME_COUNT)) == FRAMES
    annotated.release()
    assert not list(tmp_path.glob(".*part*"))  # temporary files were moved into place


def test_frames_are_batched_across_frames(detector):
    calls_before = detector.latency.summary().get("infer", {}).get("calls", 0)
    images = moving_face_frames(8)
    folder_run = detector.stream(write_video_folder(images), frame_batch=4, queue_size=8,
                                 classify=ClassifyPolicy(every=1))  # every face on every frame
    time.sleep(0.5)  # let the capture thread fill the queue
    results = list(folder_run)
    infer = detector.latency.summary()["infer"]
    assert len(results) == 8 and infer["calls"] - calls_before < 8


def test_corrupt_frames_are_skipped_and_counted(detector, tmp_path):
    frames = moving_face_frames(30)
    clip = write_video(tmp_path / "clip.avi", [cv2.resize(f, (256, 300)) for f in frames], codec="MJPG")
    data = bytearray(clip.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 4000] = np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes()
    clip.write_bytes(bytes(data))
    summary = detector.stream(clip).run()
    assert summary["bad_frames"] >= 1
    assert summary["frames_read"] == 30 and summary["frames_analysed"] + summary["bad_frames"] == 30
    assert summary["errors"] and "could not be decoded" in summary["errors"][0]


def test_unreadable_images_in_a_folder_are_skipped(detector, tmp_path):
    write_video_folder(moving_face_frames(3), tmp_path)
    (tmp_path / "0001.png").write_bytes(b"garbage")
    results = list(detector.stream(tmp_path))
    assert [r.error is None for r in results] == [True, False, True]
    assert "0001.png" in results[1].error


class SlowFaces:
    def __init__(self):
        self.haar = HaarFaceDetector()

    def detect(self, bgr):
        time.sleep(0.05)
        return self.haar.detect(bgr)


def test_live_sources_drop_stale_frames_to_keep_up(tmp_path):
    folder = write_video_folder([cv2.resize(f, (128, 150)) for f in moving_face_frames(40)], tmp_path)
    with Detector(tiny_onnx(), faces=SlowFaces()) as slow:
        summary = slow.stream(folder, drop_frames=True, queue_size=2, frame_batch=1).run()
    assert summary["dropped_frames"] > 0
    assert summary["frames_read"] == 40 == summary["frames_analysed"] + summary["dropped_frames"]


def test_a_pipeline_runs_once(detector, tmp_path):
    run = detector.stream(write_video_folder(moving_face_frames(2), tmp_path))
    run.run()
    with pytest.raises(FMCAError, match="runs once"):
        run.run()


def test_outputs_that_cannot_be_written(tmp_path):
    with pytest.raises(OutputError, match="Streaming results out over RTSP"):
        open_frame_sink("rtsp://@:8554/out", 30)
    with pytest.raises(OutputError, match="use one of"):
        open_frame_sink(tmp_path / "out.gif", 30)


def test_display_without_gui_support_says_what_to_install():
    try:
        sink = open_frame_sink("display://0", 30)
    except OutputError as error:
        assert "pip install opencv-python" in str(error)
    else:
        sink.close()
        pytest.skip("this OpenCV can open windows")


def test_stopping_early_keeps_what_was_analysed_under_incomplete_names(detector, tmp_path):
    folder = write_video_folder(moving_face_frames(6), tmp_path / "frames")
    jsonl, summary_path = tmp_path / "frames.jsonl", tmp_path / "summary.json"
    jsonl.write_text("previous complete run\n")
    run = detector.stream(folder, jsonl=jsonl, summary=summary_path)
    iterator = iter(run)
    first_three = [next(iterator) for _ in range(3)]
    iterator.close()  # the consumer stops (as on Ctrl-C)
    assert jsonl.read_text() == "previous complete run\n" and not summary_path.exists()
    partial = tmp_path / "frames.incomplete.jsonl"
    assert [json.loads(line)["frame"] for line in partial.read_text().splitlines()] == [r.index for r in first_three]
    summary = json.loads((tmp_path / "summary.incomplete.json").read_text())
    assert summary["frames_analysed"] == 3 and summary["status"] == "interrupted"
    assert summary["outputs"] == {"jsonl": str(partial)}
    assert not list(tmp_path.glob(".*partial*"))


def test_an_unwritable_output_fails_before_capture_and_leaves_nothing(detector, tmp_path):
    folder = write_video_folder(moving_face_frames(2), tmp_path / "frames")
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    run = detector.stream(folder, output=tmp_path / "out.mp4", jsonl=blocker / "frames.jsonl")
    with pytest.raises(OutputError, match="Cannot write .*frames.jsonl: .*a_file is a file, not a folder"):
        list(run)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "frames"]
