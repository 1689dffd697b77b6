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
in the band). A frame whose face the model could not score (non-finite logits) has no score; it is counted
(`unscored_frames`), left out of the mean, and a video with such frames only is labelled "error". How a run
that fails or is interrupted writes its outputs, and the summary's `status`: outputs.py.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from ..abstain import ABSTAIN
from ..errors import FMCAError, OutputError, RunError, describe_failure
from ..interrupts import interrupts_deferred
from ..latency import LatencyStats
from ..results import ERROR, NO_FACE, FaceResult, draw_faces
from .capture import Backoff, CaptureThread, Frame, FrameQueue
from .outputs import COMPLETE, FAILED, INTERRUPTED, STOPPED, RunOutputs
from .readers import open_reader
from .sources import parse_source
from .track_scores import ClassifyPolicy, PerTrackScoring
from .tracker import IoUTracker

MAX_ERROR_EXAMPLES = 20


@dataclass
class FrameResult:
    index: int
    timestamp: float | None             # seconds into the video (files) or since the start (live)
    faces: list[FaceResult] = field(default_factory=list)
    error: str | None = None            # why the frame was skipped, or why a face of it has no score
    smoothed: list[float | None] = field(default_factory=list)  # each face's track-smoothed P(fake)

    @property
    def scored(self) -> bool:
        """Decoded, its faces found, and every face scored (a frame without a face is scored)."""
        return self.error is None

    @property
    def fake_prob(self) -> float | None:
        if not self.scored:
            return None
        return max((f.fake_prob for f in self.faces), default=None)

    def to_dict(self) -> dict:
        faces = [{**face.to_dict(), "smoothed_prob": None if s is None else round(s, 6)}
                 for face, s in zip(self.faces, self.smoothed)]
        return {"frame": self.index, "time": None if self.timestamp is None else round(self.timestamp, 4),
                "fake_prob": None if self.fake_prob is None else round(self.fake_prob, 6),
                "faces": faces, "error": self.error}


class VideoPipeline:
    def __init__(self, detector, source, output=None, jsonl=None, summary=None, queue_size: int = 8,
                 frame_batch: int = 4, gstreamer: str = "auto", max_frames: int | None = None,
                 backoff: Backoff = Backoff(), tracker: IoUTracker | None = None, drop_frames: bool | None = None,
                 classify: ClassifyPolicy | None = None):
        if max_frames is not None and (isinstance(max_frames, bool) or not isinstance(max_frames, int) or max_frames < 1):
            raise FMCAError(f"max_frames must be a positive number of frames, not {max_frames!r}.")
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
        # A stream URL that serves a finite file (its frame count is known) is read once, like a file.
        self.live = self.source.live and self._reader.frame_count is None
        self._queue = FrameQueue(queue_size, drop_oldest=self.live if drop_frames is None else drop_frames)
        reopen = (lambda: open_reader(self.source, gstreamer)) if self.source.reconnects and self.live else None
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
        try:
            self.outputs = RunOutputs(self.output, self.jsonl_path, self.summary_path, self.fps)
        except FMCAError:
            self._reader.close()
            raise
        self._stats = {"processed": 0, "with_faces": 0, "bad": 0, "unscored": 0, "frame_scores": [], "errors": []}
        started = self._started_at = time.perf_counter()
        self._capture.start()
        status, error = COMPLETE, None
        try:
            yield from self._results()
            if self._capture.failure:
                status, error = FAILED, self._capture.failure
            elif self.outputs.closed_by_user:
                status = STOPPED if self.live else INTERRUPTED
        except (GeneratorExit, KeyboardInterrupt):
            status = STOPPED if self.live else INTERRUPTED
            raise
        except Exception as failure:
            status, error = FAILED, describe_failure(failure)
            raise RunError(f"The video run failed after {self._stats['processed']} analysed frames: {error}") \
                from failure
        finally:
            with interrupts_deferred():  # a signal now would cut the moving of files into place short
                self._capture.stop()
                self._capture.join(timeout=5)
                self.summary = self._summarize(time.perf_counter() - started, status, error)
                self.outputs.finish(self.summary, status)
        if self.outputs.errors:  # reached only when the run ended without an exception
            raise OutputError(self.outputs.errors[0])

    def _results(self) -> Iterator[FrameResult]:
        outputs = self.outputs
        while not outputs.closed_by_user:
            batch = self._next_batch()
            if not batch:
                return
            for frame, result in zip(batch, self._analyse(batch)):
                self._account(result)
                if outputs.jsonl:
                    outputs.jsonl.write(result.to_dict())
                if outputs.frames and frame.image is not None:
                    with self.latency.measure("output"):
                        outputs.frames.write(draw_faces(frame.image, self._display_faces(result)))
                self.latency.record("end_to_end", time.perf_counter() - frame.captured_at)
                yield result

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
        frames, errors = [], {}
        images = [f for f in batch if f.image is not None]
        for frame, found in zip(images, self.detector.detect_faces_batch([f.image for f in images])):
            if isinstance(found, FMCAError):
                errors[frame.index] = str(found)
            else:
                frames.append((frame.index, frame.image, found))
        errors.update({f.index: f.error for f in batch if f.image is None})
        scored = self.scoring.score(self.detector, self.tracker, frames, self.latency)
        results = []
        for frame in batch:
            timestamp = self._timestamp(frame)
            if frame.index in errors:
                results.append(FrameResult(frame.index, timestamp, error=errors[frame.index]))
                continue
            frame_faces, smoothed = scored[frame.index]
            unscored = sum(not face.scored for face in frame_faces)
            error = None if not unscored else (f"the model's output for {unscored} of {len(frame_faces)} faces was "
                                              "not finite (NaN or infinite logits), so the frame has no score")
            results.append(FrameResult(frame.index, timestamp, frame_faces, error, smoothed))
        return results

    def _timestamp(self, frame: Frame) -> float | None:
        if self.live:
            return frame.captured_at - self._started_at
        return frame.index / self._reader.fps if self._reader.fps else None

    def _display_faces(self, result: FrameResult) -> list[FaceResult]:
        return [f if s is None else FaceResult(f.face, s, self.detector.label_for(s), f.track_id)
                for f, s in zip(result.faces, result.smoothed)]

    def _account(self, result: FrameResult) -> None:
        stats = self._stats
        if result.error is not None:
            stats["unscored" if result.faces else "bad"] += 1
            stats["processed"] += bool(result.faces)
            if len(stats["errors"]) < MAX_ERROR_EXAMPLES:
                stats["errors"].append(f"frame {result.index}: {result.error}")
            return
        stats["processed"] += 1
        if result.faces:
            stats["with_faces"] += 1
            stats["frame_scores"].append(result.fake_prob)

    def _summarize(self, wall_seconds: float, status: str, error: str | None) -> dict:
        stats, capture = self._stats, self._capture
        scores = stats["frame_scores"]
        video_prob = float(np.mean(scores)) if scores else None
        label = self.detector.label_for(video_prob) if video_prob is not None else ERROR if stats["unscored"] else NO_FACE
        for seconds in capture.read_seconds:
            self.latency.record("capture", seconds)
        latency = {**self.latency.summary(), **self.detector.latency.summary()}
        return {
            "source": self.source.uri, "status": status, "error": error,
            "frames_read": capture.frames_read, "frames_analysed": stats["processed"],
            "frames_with_faces": stats["with_faces"], "bad_frames": stats["bad"],
            "unscored_frames": stats["unscored"], "dropped_frames": self._queue.dropped,
            "fake_prob": None if video_prob is None else round(video_prob, 6), "label": label,
            "threshold": self.detector.threshold, "operating_point": self.detector.operating_point.name,
            **({"real_threshold": self.detector.operating_point.real_threshold}
               if self.detector.operating_point.name == ABSTAIN else {}),
            "reconnects": capture.reconnects, "capture_failure": capture.failure,
            "errors": stats["errors"], "wall_seconds": round(wall_seconds, 3),
            "fps": round((stats["processed"] + stats["bad"]) / wall_seconds, 2) if wall_seconds > 0 else None,
            "latency_ms": latency, **self.scoring.summary(self.detector.label_for),
        }
