"""The video pipeline: capture thread -> bounded queue -> faces batched across frames -> tracker -> outputs.

    detector = Detector("fmca.onnx")
    run = detector.stream("rtsp://camera/stream", output="display://0", jsonl="frames.jsonl")
    for frame in run:                     # FrameResult per frame, as soon as it is analysed
        print(frame.index, frame.fake_prob)
    print(run.summary)                    # video verdict: mean of frame scores; bad/dropped frames; latency

A frame's score is the highest P(fake) over its faces; the video's is the mean over frames with a face
(the standard video-level protocol). A tracked face is classified again only when the per-track policy asks
(`track_scores.ClassifyPolicy`: every 5 frames, or sooner when its box changes or its score nears the
threshold) and carries its last score otherwise; `classify=ClassifyPolicy(every=1)` classifies every face
on every frame. Labels drawn on faces use each track's smoothed score; the summary's verdict per track is the
label of its mean score (with threshold="abstain" a track or the video is "uncertain" when its mean score falls
in the band).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from ..abstain import ABSTAIN
from ..errors import FMCAError, OutputError
from ..latency import LatencyStats
from ..results import NO_FACE, FaceResult, draw_faces
from .capture import Backoff, CaptureThread, Frame, FrameQueue
from .readers import open_reader
from .sinks import JsonLinesSink, open_frame_sink, write_json_atomically
from .sources import parse_source
from .track_scores import ClassifyPolicy, PerTrackScoring
from .tracker import IoUTracker

MAX_ERROR_EXAMPLES = 20


@dataclass
class FrameResult:
    index: int
    timestamp: float | None             # seconds into the video (files) or since the start (live)
    faces: list[FaceResult] = field(default_factory=list)
    error: str | None = None            # why the frame was skipped
    smoothed: list[float] = field(default_factory=list)  # each face's track-smoothed P(fake)

    @property
    def fake_prob(self) -> float | None:
        return max((f.fake_prob for f in self.faces), default=None)

    def to_dict(self) -> dict:
        faces = [{**face.to_dict(), "smoothed_prob": round(s, 6)} for face, s in zip(self.faces, self.smoothed)]
        return {"frame": self.index, "time": None if self.timestamp is None else round(self.timestamp, 4),
                "fake_prob": None if self.fake_prob is None else round(self.fake_prob, 6),
                "faces": faces, "error": self.error}


class VideoPipeline:
    def __init__(self, detector, source, output=None, jsonl=None, summary=None, queue_size: int = 8,
                 frame_batch: int = 4, gstreamer: str = "auto", max_frames: int | None = None,
                 backoff: Backoff = Backoff(), tracker: IoUTracker | None = None, drop_frames: bool | None = None,
                 classify: ClassifyPolicy | None = None):
        self.detector = detector
        self.source = parse_source(source)
        self.output, self.jsonl_path, self.summary_path = output, jsonl, summary
        self.frame_batch = max(1, frame_batch)
        self.max_frames = max_frames
        self.tracker = tracker or IoUTracker()
        self.scoring = PerTrackScoring(classify)
        self.latency = LatencyStats()
        self.summary: dict | None = None
        self._gstreamer = gstreamer
        self._reader = open_reader(self.source, gstreamer)  # fails here, with SourceError, before any thread
        live = self.source.live if drop_frames is None else drop_frames
        self._queue = FrameQueue(queue_size, drop_oldest=live)
        reopen = (lambda: open_reader(self.source, gstreamer)) if self.source.reconnects else None
        self._capture = CaptureThread(self._reader, self._queue, reopen, backoff, max_frames)
        self.fps = self._reader.fps or 30.0
        self.frame_count = self._reader.frame_count  # None for live sources

    def run(self) -> dict:
        """Process the whole source; returns the summary."""
        for _ in self:
            pass
        return self.summary

    def __iter__(self) -> Iterator[FrameResult]:
        if self._capture.ident is not None:
            raise FMCAError("A video pipeline runs once; call detector.stream(source) again for another run.")
        frame_sink = jsonl = None
        try:
            frame_sink = open_frame_sink(self.output, self.fps)
            jsonl = JsonLinesSink(self.jsonl_path) if self.jsonl_path else None
        except (FMCAError, OSError) as error:
            self._reader.close()
            if frame_sink:
                frame_sink.close()
            if isinstance(error, FMCAError):
                raise
            raise OutputError(f"Cannot write results: {error}.") from None
        self._stats = {"processed": 0, "with_faces": 0, "bad": 0, "frame_scores": [], "errors": []}
        started = self._started_at = time.perf_counter()
        self._capture.start()
        try:
            while True:
                batch = self._next_batch()
                if not batch:
                    break
                for frame, result in zip(batch, self._analyse(batch)):
                    self._account(result)
                    if jsonl:
                        jsonl.write(result.to_dict())
                    if frame_sink and frame.image is not None:
                        with self.latency.measure("output"):
                            frame_sink.write(draw_faces(frame.image, self._display_faces(result)))
                    self.latency.record("end_to_end", time.perf_counter() - frame.captured_at)
                    yield result
                if getattr(frame_sink, "closed_by_user", False):
                    break
        finally:
            self._capture.stop()
            self._capture.join(timeout=5)
            for sink in (frame_sink, jsonl):
                if sink:
                    sink.close()
            self.summary = self._summarize(time.perf_counter() - started)
            if self.summary_path:
                write_json_atomically(self.summary_path, self.summary)

    def _next_batch(self) -> list[Frame]:
        """Block for one frame, then take whatever else is ready, up to frame_batch frames."""
        with self.latency.measure("wait"):
            first = self._queue.get()
        if first is None:
            return []
        batch = [first]
        while len(batch) < self.frame_batch:
            more = self._queue.get_nowait()
            if more is None:
                break
            batch.append(more)
        return batch

    def _analyse(self, batch: list[Frame]) -> list[FrameResult]:
        good = [f for f in batch if f.image is not None]
        faces = self.detector.detect_faces_batch([f.image for f in good])
        scored = self.scoring.score(self.detector, self.tracker,
                                    [(f.index, f.image, found) for f, found in zip(good, faces)], self.latency)
        results = []
        for frame in batch:
            timestamp = self._timestamp(frame)
            if frame.image is None:
                results.append(FrameResult(frame.index, timestamp, error=frame.error))
                continue
            frame_faces, smoothed = scored[frame.index]
            results.append(FrameResult(frame.index, timestamp, frame_faces, smoothed=smoothed))
        return results

    def _timestamp(self, frame: Frame) -> float | None:
        if self.source.live:
            return frame.captured_at - self._started_at
        return frame.index / self._reader.fps if self._reader.fps else None

    def _display_faces(self, result: FrameResult) -> list[FaceResult]:
        return [FaceResult(f.face, s, self.detector.label_for(s), f.track_id) for f, s in zip(result.faces, result.smoothed)]

    def _account(self, result: FrameResult) -> None:
        stats = self._stats
        if result.error is not None:
            stats["bad"] += 1
            if len(stats["errors"]) < MAX_ERROR_EXAMPLES:
                stats["errors"].append(f"frame {result.index}: {result.error}")
            return
        stats["processed"] += 1
        if result.faces:
            stats["with_faces"] += 1
            stats["frame_scores"].append(result.fake_prob)

    def _summarize(self, wall_seconds: float) -> dict:
        stats, capture = self._stats, self._capture
        scores = stats["frame_scores"]
        video_prob = float(np.mean(scores)) if scores else None
        for seconds in capture.read_seconds:
            self.latency.record("capture", seconds)
        latency = {**self.latency.summary(), **self.detector.latency.summary()}
        return {
            "source": self.source.uri, "frames_read": capture.frames_read, "frames_analysed": stats["processed"],
            "frames_with_faces": stats["with_faces"], "bad_frames": stats["bad"], "dropped_frames": self._queue.dropped,
            "fake_prob": None if video_prob is None else round(video_prob, 6),
            "label": NO_FACE if video_prob is None else self.detector.label_for(video_prob),
            "threshold": self.detector.threshold, "operating_point": self.detector.operating_point.name,
            **({"real_threshold": self.detector.operating_point.real_threshold}
               if self.detector.operating_point.name == ABSTAIN else {}),
            "reconnects": capture.reconnects, "capture_failure": capture.failure,
            "errors": stats["errors"], "wall_seconds": round(wall_seconds, 3),
            "fps": round((stats["processed"] + stats["bad"]) / wall_seconds, 2) if wall_seconds > 0 else None,
            "latency_ms": latency, **self.scoring.summary(self.detector.label_for),
        }
