"""The capture thread and its bounded frame queue.

Decoding runs in its own thread so a slow model never stalls the camera. The queue between them is
bounded: for live sources a full queue drops its OLDEST frame (the newest is what the user wants to see),
for files and folders the capture thread waits (every frame is analysed). Network streams that stop are
reopened with exponential backoff.
"""

from __future__ import annotations

import argparse
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..errors import FMCAError
from .readers import FrameReader


@dataclass
class Frame:
    index: int                     # position in the source, counting bad frames
    image: np.ndarray | None       # BGR; None for a frame that could not be decoded
    error: str | None = None
    captured_at: float = field(default_factory=time.perf_counter)


class FrameQueue:
    """A bounded FIFO. `drop_oldest=True`: put never blocks and evicts the oldest frame when full."""

    def __init__(self, maxsize: int, drop_oldest: bool):
        if maxsize < 1:
            raise FMCAError(f"The frame queue needs room for at least one frame, got {maxsize}.")
        self.maxsize = maxsize
        self.drop_oldest = drop_oldest
        self.dropped = 0
        self._items: deque[Frame] = deque()
        self._closed = False
        self._condition = threading.Condition()

    def put(self, frame: Frame) -> bool:
        """Add a frame; False when the queue was closed by the consumer (stop capturing)."""
        with self._condition:
            while len(self._items) >= self.maxsize and not self.drop_oldest and not self._closed:
                self._condition.wait()
            if self._closed:
                return False
            if len(self._items) >= self.maxsize:
                self._items.popleft()
                self.dropped += 1
            self._items.append(frame)
            self._condition.notify_all()
            return True

    def get(self, timeout: float | None = None) -> Frame | None:
        """The oldest frame; None once the queue is closed and empty (or after `timeout` seconds)."""
        with self._condition:
            if not self._condition.wait_for(lambda: self._items or self._closed, timeout):
                return None
            if not self._items:
                return None
            frame = self._items.popleft()
            self._condition.notify_all()
            return frame

    def get_nowait(self) -> Frame | None:
        with self._condition:
            if not self._items:
                return None
            frame = self._items.popleft()
            self._condition.notify_all()
            return frame

    def close(self) -> None:
        with self._condition:
            self._closed = True
            self._condition.notify_all()

    def __len__(self) -> int:
        return len(self._items)


@dataclass(frozen=True)
class Backoff:
    """Delays between reconnection attempts: first, first*factor, ... capped at longest; give up after
    `attempts` failures in a row (None: never)."""

    first: float = 0.5
    factor: float = 2.0
    longest: float = 30.0
    attempts: int | None = 10

    def delays(self):
        delay, attempt = self.first, 0
        while self.attempts is None or attempt < self.attempts:
            yield delay
            delay, attempt = min(delay * self.factor, self.longest), attempt + 1


def add_reconnect_arguments(parser: argparse.ArgumentParser) -> None:
    """The command-line options that set the backoff for lost network streams."""
    group = parser.add_argument_group("lost network streams (rtsp://, http://)")
    group.add_argument("--reconnect-attempts", type=int, default=Backoff.attempts, metavar="N",
                       help="reconnection attempts in a row before the run ends with status 1 (default %(default)s)")
    group.add_argument("--reconnect-delay", type=float, default=Backoff.first, metavar="SECONDS",
                       help=f"wait before the first attempt, doubling up to {Backoff.longest:g} s "
                            "(default %(default)s)")


def backoff_from_arguments(args: argparse.Namespace) -> Backoff:
    if args.reconnect_attempts < 0 or not args.reconnect_delay > 0:
        raise FMCAError("--reconnect-attempts must be 0 or more and --reconnect-delay a positive number of seconds.")
    return Backoff(first=args.reconnect_delay, attempts=args.reconnect_attempts)


class CaptureThread(threading.Thread):
    """Reads frames from `reader` into `queue` until the source ends, `stop()` is called, or the
    consumer closes the queue. With `reopen`, a source that ends is reopened with backoff."""

    def __init__(self, reader: FrameReader, queue: FrameQueue, reopen: Callable[[], FrameReader] | None = None,
                 backoff: Backoff = Backoff(), max_frames: int | None = None, sleep=time.sleep):
        super().__init__(name="fmca-capture", daemon=True)
        self.reader = reader
        self.queue = queue
        self.reopen = reopen
        self.backoff = backoff
        self.max_frames = max_frames
        self.sleep = sleep
        self.frames_read = 0
        self.bad_frames = 0
        self.reconnects = 0
        self.read_seconds: list[float] = []
        self.failure: str | None = None  # why capture ended early, if it did
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()
        self.queue.close()

    def run(self) -> None:
        try:
            while not self._stop_event.is_set():
                if self.max_frames is not None and self.frames_read >= self.max_frames:
                    break
                started = time.perf_counter()
                result = self.reader.read()
                if result.end:
                    if self.reopen is None or not self._reconnect():
                        break
                    continue
                self.read_seconds.append(time.perf_counter() - started)
                frame = Frame(self.frames_read, result.frame, result.error)
                self.frames_read += 1
                self.bad_frames += result.error is not None
                if not self.queue.put(frame):
                    break
        except Exception as error:  # a capture failure must end the run with a message, not hang the consumer
            self.failure = f"capture failed: {type(error).__name__}: {error}"
        finally:
            self.reader.close()
            self.queue.close()

    def _reconnect(self) -> bool:
        self.reader.close()
        for delay in self.backoff.delays():
            self.sleep(delay)
            if self._stop_event.is_set():
                return False
            try:
                self.reader = self.reopen()
            except FMCAError:
                continue
            self.reconnects += 1
            return True
        self.failure = f"the source was lost and {self.backoff.attempts} reconnection attempts failed"
        return False
