"""Video sources named the way jetson-utils names them, opened with GStreamer when OpenCV has it.

    video.mp4  file://video.mp4          a video file (FFmpeg; GStreamer hardware decode on Jetson)
    frames/  'frames/*.png'              an image folder or glob, in sorted order
    0  /dev/video0  v4l2:///dev/video0   a USB/V4L2 camera (MJPEG, hardware-decoded on Jetson)
    csi://0                              a Jetson CSI camera (nvarguscamerasrc)
    rtsp://host:554/stream               an RTSP stream (reconnects with backoff when lost)
"""

from __future__ import annotations

import glob
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2

from ..errors import SourceError

LIVE_KINDS = ("webcam", "v4l2", "csi", "rtsp", "http")
NETWORK_KINDS = ("rtsp", "http")


@dataclass(frozen=True)
class Source:
    uri: str       # as the user wrote it
    kind: str      # file, images, webcam, v4l2, csi, rtsp, http
    location: str  # path, glob, device index, device path or URL

    @property
    def live(self) -> bool:
        """Live sources drop stale frames to bound latency; files and image folders drop nothing."""
        return self.kind in LIVE_KINDS

    @property
    def reconnects(self) -> bool:
        return self.kind in NETWORK_KINDS


def parse_source(uri: str | int | Path) -> Source:
    text = str(uri).strip()
    if re.fullmatch(r"\d+", text):
        return Source(text, "webcam", text)
    if text.startswith("csi://"):
        sensor = text[len("csi://"):]
        if not sensor.isdigit():
            raise SourceError(f"{text!r}: a CSI camera is csi://N with N the sensor id, e.g. csi://0.")
        return Source(text, "csi", sensor)
    if text.startswith("v4l2://"):
        return Source(text, "v4l2", text[len("v4l2://"):])
    if re.fullmatch(r"/dev/video\d+", text):
        return Source(text, "v4l2", text)
    if re.match(r"rtsps?://", text):
        return Source(text, "rtsp", text)
    if re.match(r"https?://", text):
        return Source(text, "http", text)
    path_text = text[len("file://"):] if text.startswith("file://") else text
    path = Path(path_text)
    if path.is_dir() or (not path.exists() and glob.has_magic(path_text)):
        return Source(text, "images", path_text)
    if not path.is_file():
        raise SourceError(f"Video source {text!r} does not exist (expected a file, an image folder or glob, "
                          "a camera index, /dev/videoN, csi://N or rtsp://...).")
    return Source(text, "file", path_text)


@lru_cache(maxsize=1)
def opencv_has_gstreamer() -> bool:
    return re.search(r"GStreamer:\s*YES", cv2.getBuildInformation()) is not None


@lru_cache(maxsize=1)
def on_jetson() -> bool:
    return Path("/etc/nv_tegra_release").exists()


_TO_BGR_APPSINK = "video/x-raw,format=BGR ! appsink drop=1 max-buffers=1"
# On Jetson the decoders write NVMM (device) buffers; nvvidconv copies them to system memory as BGRx.
_JETSON_TO_BGR = f"nvvidconv ! video/x-raw,format=BGRx ! videoconvert ! {_TO_BGR_APPSINK}"


def gstreamer_pipeline(source: Source, width: int = 1280, height: int = 720, fps: int = 30,
                       jetson: bool | None = None) -> str | None:
    """The GStreamer pipeline for a source, or None where OpenCV's own capture is the better choice."""
    jetson = on_jetson() if jetson is None else jetson
    if source.kind == "csi":
        return (f"nvarguscamerasrc sensor-id={source.location} ! video/x-raw(memory:NVMM),width={width},"
                f"height={height},framerate={fps}/1 ! nvvidconv flip-method=0 ! video/x-raw,format=BGRx ! "
                f"videoconvert ! {_TO_BGR_APPSINK}")
    if source.kind == "v4l2" and jetson:
        return (f"v4l2src device={source.location} io-mode=2 ! image/jpeg,width={width},height={height},"
                f"framerate={fps}/1 ! nvv4l2decoder mjpeg=1 ! {_JETSON_TO_BGR}")
    if source.kind == "rtsp":
        decode = f"rtph264depay ! h264parse ! nvv4l2decoder ! {_JETSON_TO_BGR}" if jetson else \
            f"decodebin ! videoconvert ! {_TO_BGR_APPSINK}"
        return f"rtspsrc location={source.location} latency=200 ! {decode}"
    if source.kind == "file" and jetson:
        # Files keep every frame: no drop on the appsink, and no clock sync so decoding runs flat out.
        return (f"filesrc location={source.location} ! decodebin ! nvvidconv ! video/x-raw,format=BGRx ! "
                "videoconvert ! video/x-raw,format=BGR ! appsink sync=false")
    return None


def open_capture(source: Source, gstreamer: str = "auto", width: int = 1280, height: int = 720,
                 fps: int = 30) -> cv2.VideoCapture:
    """An opened cv2.VideoCapture for a file, camera or stream; SourceError when it cannot be opened.

    gstreamer: "auto" (when OpenCV has GStreamer and a pipeline suits the source), "always" or "never"."""
    if gstreamer not in ("auto", "always", "never"):
        raise SourceError(f"gstreamer must be 'auto', 'always' or 'never', not {gstreamer!r}.")
    if gstreamer == "always" and not opencv_has_gstreamer():
        raise SourceError("This OpenCV was built without GStreamer (PyPI wheels never have it); use JetPack's "
                          "OpenCV on Jetson, or gstreamer='never'.")
    pipeline = gstreamer_pipeline(source, width, height, fps) if gstreamer != "never" else None
    if pipeline and opencv_has_gstreamer():
        capture = cv2.VideoCapture(pipeline, cv2.CAP_GSTREAMER)
    elif source.kind == "csi":
        raise SourceError(f"{source.uri}: CSI cameras need OpenCV with GStreamer (JetPack's OpenCV on Jetson).")
    elif source.kind == "webcam":
        capture = cv2.VideoCapture(int(source.location))
    else:
        capture = cv2.VideoCapture(source.location)
    if not capture.isOpened():
        capture.release()
        raise SourceError(f"Cannot open video source {source.uri!r} (not a video OpenCV can decode, or the "
                          "device/stream is unavailable).")
    if source.kind in ("webcam", "v4l2") and not pipeline:
        capture.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        capture.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
    return capture
