"""Frame readers: one interface over OpenCV captures and image folders, telling good, bad and last frames apart.

`read()` returns a ReadResult: a BGR frame, or an error for a frame that could not be decoded (the caller
counts and skips it), or `end=True`. A corrupt frame in a file does not end it: the reader skips ahead
until frames decode again or the file really ends.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import FMCAError
from ..images import expand_image_paths, read_image
from ..errors import SourceError
from .sources import Source, open_capture

# A file whose next this-many frames all fail to decode is treated as ended.
MAX_CONSECUTIVE_BAD_FRAMES = 25


@dataclass
class ReadResult:
    frame: np.ndarray | None = None
    error: str | None = None
    end: bool = False


class FrameReader:
    fps: float | None = None          # frames per second, when the source says
    frame_count: int | None = None    # total frames, when known (files and folders)

    def read(self) -> ReadResult:
        raise NotImplementedError

    def close(self) -> None:
        """Release the device or file."""


class CaptureReader(FrameReader):
    """cv2.VideoCapture (files, cameras, streams). In files, failed reads before the known end are bad
    frames; frames the decoder skipped on its own show up as jumps of the frame position."""

    def __init__(self, capture: cv2.VideoCapture, source: Source):
        self._capture = capture
        self._source = source
        fps = capture.get(cv2.CAP_PROP_FPS)
        self.fps = fps if 0 < fps < 1000 else None
        # A file's frame count; also an http(s) URL's when it serves a file rather than a live stream
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if source.kind in ("file", "http") else 0
        self.frame_count = count if count > 0 else None
        self._position = 0  # index of the next frame in the file
        self._bad_run = 0
        self._queued: list[ReadResult] = []

    def read(self) -> ReadResult:
        if self._queued:
            return self._queued.pop(0)
        ok, frame = self._capture.read()
        if ok and frame is not None and frame.size:
            self._bad_run = 0
            return self._with_skipped_frames(ReadResult(frame=frame))
        if self._source.kind == "file" and self.frame_count and self._position < self.frame_count:
            self._bad_run += 1
            self._position += 1
            if self._bad_run <= MAX_CONSECUTIVE_BAD_FRAMES:
                return ReadResult(error=f"frame {self._position - 1} could not be decoded")
        return ReadResult(end=True)

    def _with_skipped_frames(self, good: ReadResult) -> ReadResult:
        """Report frames the decoder dropped silently (the position jumped) before the good frame."""
        reported = int(self._capture.get(cv2.CAP_PROP_POS_FRAMES)) if self._source.kind == "file" else 0
        skipped = range(self._position, reported - 1) if reported > self._position + 1 else range(0)
        self._position = max(self._position + 1, reported)
        self._queued = [ReadResult(error=f"frame {i} could not be decoded") for i in skipped] + [good]
        return self._queued.pop(0)

    def close(self) -> None:
        self._capture.release()


class ImageSequenceReader(FrameReader):
    """An image folder or glob, sorted; unreadable images are bad frames."""

    def __init__(self, source: Source, fps: float | None = None):
        self._paths = expand_image_paths([source.location])
        if not self._paths:
            raise SourceError(f"No images in {source.uri!r}.")
        self._next = 0
        self.fps = fps
        self.frame_count = len(self._paths)

    def read(self) -> ReadResult:
        if self._next >= len(self._paths):
            return ReadResult(end=True)
        path = self._paths[self._next]
        self._next += 1
        try:
            return ReadResult(frame=read_image(path))
        except FMCAError as error:
            return ReadResult(error=str(error))


def open_reader(source: Source, gstreamer: str = "auto", width: int = 1280, height: int = 720,
                fps: int = 30) -> FrameReader:
    if source.kind == "images":
        return ImageSequenceReader(source)
    return CaptureReader(open_capture(source, gstreamer, width, height, fps), source)
