"""Where video results go: an annotated video file, a window, JSON Lines, a summary JSON.

Files are written beside their destination under a temporary name and moved into place when the run
ends (`close()`), so an interrupted run never leaves a half-written file in place of a good one. `close`
takes the name to commit to (a failed run's `.incomplete` name, see outputs.py); without one a file goes to
its destination unless another run wrote that meanwhile (fmca_rt.atomic.commit_unless_changed). A failure of
the operating system while writing (a full disk) is one OutputError naming the file.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from ..atomic import commit, commit_unless_changed, describe_os_error, file_state, temporary_beside
from ..errors import OutputError
from ..output_paths import writing_problem

VIDEO_CODECS = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}


def _temporary_beside(path: Path) -> Path:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"Cannot write {path}: {writing_problem(path) or describe_os_error(error)}.") from None
    return temporary_beside(path)


_UNCHECKED = object()


def write_json_atomically(path: str | Path, value, baseline=_UNCHECKED) -> Path:
    """Write `value` as JSON; returns where it went. With a `baseline` (fmca_rt.atomic.file_state taken when
    the run began) a destination another run wrote meanwhile is kept and this file goes beside it."""
    path = Path(path)
    temporary = _temporary_beside(path)
    try:
        temporary.write_text(json.dumps(value, indent=2) + "\n")
        return commit(temporary, path) if baseline is _UNCHECKED else commit_unless_changed(temporary, path, baseline)
    except OSError as error:
        raise OutputError(f"Cannot write {path}: {describe_os_error(error)}.") from None
    finally:
        temporary.unlink(missing_ok=True)


class _FileSink:
    """A file written under a temporary name; `close(destination)` moves it into place."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._baseline = file_state(self.path)
        self._temporary = _temporary_beside(self.path)

    def _commit(self, destination: Path | None) -> Path:
        try:
            if destination is not None:
                return commit(self._temporary, destination)
            return commit_unless_changed(self._temporary, self.path, self._baseline)
        except OSError as error:
            raise OutputError(f"Cannot write {destination or self.path}: {describe_os_error(error)}.") from None
        finally:
            self._temporary.unlink(missing_ok=True)


class JsonLinesSink(_FileSink):
    """One JSON object per line, flushed as it goes; moved into place on close."""

    def __init__(self, path: str | Path):
        super().__init__(path)
        self._file = open(self._temporary, "w")

    def write(self, record: dict) -> None:
        try:
            self._file.write(json.dumps(record) + "\n")
            self._file.flush()
        except OSError as error:
            raise OutputError(f"Cannot write {self.path}: {describe_os_error(error)}.") from None

    def close(self, destination: Path | None = None) -> Path | None:
        """Move the lines written so far to `destination` (default: the path given); returns where they went."""
        if self._file.closed:
            return None
        try:
            self._file.close()
        except OSError:
            pass  # what did not fit stays out; the lines written before are whole
        return self._commit(destination)


class VideoFileSink(_FileSink):
    """An annotated video file; the writer opens on the first frame (its size is only known then)."""

    def __init__(self, path: str | Path, fps: float):
        codec = VIDEO_CODECS.get(Path(path).suffix.lower())
        if codec is None:
            raise OutputError(f"Cannot write video {Path(path).name}: use one of {', '.join(sorted(VIDEO_CODECS))}.")
        super().__init__(path)
        self._fourcc = cv2.VideoWriter_fourcc(*codec)
        self.fps = fps
        self._writer: cv2.VideoWriter | None = None
        self.frames_written = 0

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
        self.frames_written += 1

    def close(self, destination: Path | None = None) -> Path | None:
        """Finish the video and move it to `destination` (default: the path given); None when no frame came."""
        if self._writer is None:
            self._temporary.unlink(missing_ok=True)
            return None
        self._writer.release()
        self._writer = None
        if not self._complete_on_disk():
            self._temporary.unlink(missing_ok=True)
            raise OutputError(f"Cannot write the video {destination or self.path}: OpenCV could not write all "
                              f"{self.frames_written} frames (is the disk full?).")
        return self._commit(destination)

    def _complete_on_disk(self) -> bool:
        """OpenCV's writer reports no error (a full disk truncates the file silently): read the file back,
        its frame count and its last frame (a truncated MP4 has no index; a truncated AVI no last frame)."""
        if file_state(self._temporary) is None:
            return False
        capture = cv2.VideoCapture(str(self._temporary))
        try:
            if not capture.isOpened() or int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) != self.frames_written:
                return False
            capture.set(cv2.CAP_PROP_POS_FRAMES, self.frames_written - 1)
            return capture.read()[0]
        finally:
            capture.release()


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

    def close(self, destination: Path | None = None) -> None:
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
