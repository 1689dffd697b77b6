"""Where video results go: an annotated video file, a window, JSON Lines, a summary JSON.

Files are written beside their destination under a temporary name and moved into place when the run
ends, so an interrupted run never leaves a half-written file in place of a good one.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from ..atomic import commit, temporary_beside, write_atomically
from ..errors import OutputError

VIDEO_CODECS = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}


def _temporary_beside(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return temporary_beside(path)


def write_json_atomically(path: str | Path, value) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomically(path, json.dumps(value, indent=2) + "\n")


class JsonLinesSink:
    """One JSON object per line, flushed as it goes; moved to `path` on close."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._temporary = _temporary_beside(self.path)
        self._file = open(self._temporary, "w")

    def write(self, record: dict) -> None:
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()
            commit(self._temporary, self.path)


class VideoFileSink:
    """An annotated video file; the writer opens on the first frame (its size is only known then)."""

    def __init__(self, path: str | Path, fps: float):
        self.path = Path(path)
        codec = VIDEO_CODECS.get(self.path.suffix.lower())
        if codec is None:
            raise OutputError(f"Cannot write video {self.path.name}: use one of {', '.join(sorted(VIDEO_CODECS))}.")
        self._fourcc = cv2.VideoWriter_fourcc(*codec)
        self.fps = fps
        self._temporary = _temporary_beside(self.path)
        self._writer: cv2.VideoWriter | None = None

    def write(self, frame: np.ndarray) -> None:
        if self._writer is None:
            self._writer = cv2.VideoWriter(str(self._temporary), self._fourcc, self.fps,
                                           (frame.shape[1], frame.shape[0]))
            if not self._writer.isOpened():
                raise OutputError(f"OpenCV cannot write the video {self.path}.")
            self._size = (frame.shape[1], frame.shape[0])
        if (frame.shape[1], frame.shape[0]) != self._size:  # a stream that changed resolution mid-way
            frame = cv2.resize(frame, self._size)
        self._writer.write(frame)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
            commit(self._temporary, self.path)
        else:
            self._temporary.unlink(missing_ok=True)


class DisplaySink:
    """A window (`display://0`). Needs an OpenCV built with a GUI (opencv-python, not -headless)."""

    def __init__(self, title: str = "fmca-rt"):
        self.title = title
        try:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL)
        except cv2.error:
            raise OutputError("display:// needs OpenCV with GUI support: pip install opencv-python "
                            "(the -headless wheel has no windows).") from None
        self.closed_by_user = False

    def write(self, frame: np.ndarray) -> None:
        cv2.imshow(self.title, frame)
        if cv2.waitKey(1) & 0xFF in (27, ord("q")):  # Esc or q ends the run
            self.closed_by_user = True

    def close(self) -> None:
        cv2.destroyWindow(self.title)


def open_frame_sink(output: str | Path | None, fps: float):
    """None, `display://N`, or a video file path -> a sink with write(frame) and close()."""
    if output is None:
        return None
    text = str(output)
    if text.startswith("display://"):
        return DisplaySink()
    if text.startswith("rtsp://"):
        raise OutputError("Streaming results out over RTSP is not supported; write a video file or use display://0.")
    return VideoFileSink(text, fps)
