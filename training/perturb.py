"""What sharing platforms do to images and videos, for robustness evaluation: JPEG, resizing, blur, H.264.

    python -m training.evaluate ... --perturb jpeg:30,50,70 resize:0.5 blur:1 h264:23,28,35

Each condition maps the frames of one video (RGB uint8, in frame order) to the degraded frames:
- `jpeg:Q`     each frame JPEG-encoded at quality Q (OpenCV's libjpeg, 4:2:0) and decoded
- `resize:F`   each frame scaled by F (area averaging when shrinking, bilinear when enlarging); the model's
               preprocessing then resizes it to its input like any image, so detail finer than F is gone
- `blur:S`     Gaussian blur with a standard deviation of S pixels (kernel 2 * ceil(3S) + 1, reflected edges)
- `h264:CRF`   the video's frames encoded by libx264 at constant rate factor CRF (preset medium, yuv420p,
               25 frames/s, later frames predicted from earlier ones; one thread and x264's C code, not its
               assembly, so that results reproduce) and decoded, through PyAV; OpenCV converts RGB to YUV
               and back (BT.601).
               OpenCV's PyPI wheels have no software H.264 encoder (only FFmpeg's V4L2 hardware one) and
               their writer cannot set a rate factor; PyAV's wheels bundle FFmpeg with libx264. Frames of
               other sizes are padded (edges replicated) to the video's largest size, rounded up to even
               as 4:2:0 needs, and cropped back after decoding. A single image is a one-frame video.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import cv2
import numpy as np

from fmca_rt.errors import DataError, DependencyError

H264_FRAME_RATE = 25
# kind -> (value parser, valid range as text, check)
_KINDS = {
    "jpeg": (int, "a quality from 1 to 100", lambda q: 1 <= q <= 100),
    "resize": (float, "a scale factor above 0 and at most 4", lambda f: 0 < f <= 4),
    "blur": (float, "a standard deviation in pixels above 0 and at most 20", lambda s: 0 < s <= 20),
    "h264": (int, "a constant rate factor from 0 to 51", lambda c: 0 <= c <= 51),
}


@dataclass(frozen=True)
class Perturbation:
    kind: str
    value: float

    @property
    def name(self) -> str:
        return f"{self.kind}:{self.value:g}"

    @property
    def per_video(self) -> bool:
        """Whether frames of one video must be degraded together (a video codec), not one by one."""
        return self.kind == "h264"

    def unavailable(self) -> str | None:
        """Why this condition cannot run here, in one sentence; None when it can."""
        if self.kind == "h264":
            try:
                _h264_codec()
            except DependencyError as error:
                return str(error)
        return None

    def apply(self, frames: list[np.ndarray]) -> list[np.ndarray]:
        """The degraded frames (RGB uint8) of one video, in order."""
        if self.kind == "h264":
            return h264_round_trip(frames, int(self.value))
        return [_APPLY[self.kind](np.ascontiguousarray(frame), self.value) for frame in frames]


def parse_perturbations(text: str) -> list[Perturbation]:
    """"jpeg:30,50" -> [jpeg:30, jpeg:50]; a mistake raises ValueError with one sentence."""
    kind, _, values = text.strip().lower().partition(":")
    if kind not in _KINDS or not values:
        raise ValueError(f"Cannot read perturbation {text!r}; write KIND:VALUE[,VALUE...] with KIND one of "
                         f"{', '.join(_KINDS)}, e.g. jpeg:30,50 blur:1.")
    parse, expected, valid = _KINDS[kind]
    parsed = []
    for value in values.split(","):
        try:
            number = parse(value)
        except ValueError:
            number = None
        if number is None or not valid(number):
            raise ValueError(f"{kind} takes {expected}, not {value!r}.")
        parsed.append(Perturbation(kind, number))
    return parsed


def jpeg_bytes(rgb: np.ndarray, quality: int) -> bytes:
    """The JPEG file OpenCV writes for an RGB image at `quality`."""
    ok, encoded = cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise DataError(f"OpenCV could not JPEG-encode a {rgb.shape[1]}x{rgb.shape[0]} image.")
    return encoded.tobytes()


def _jpeg(rgb: np.ndarray, quality: float) -> np.ndarray:
    encoded = np.frombuffer(jpeg_bytes(rgb, int(quality)), np.uint8)
    return np.ascontiguousarray(cv2.imdecode(encoded, cv2.IMREAD_COLOR)[..., ::-1])


def _resize(rgb: np.ndarray, factor: float) -> np.ndarray:
    height, width = rgb.shape[:2]
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR)


def _blur(rgb: np.ndarray, sigma: float) -> np.ndarray:
    side = 2 * math.ceil(3 * sigma) + 1
    return cv2.GaussianBlur(rgb, (side, side), sigma, borderType=cv2.BORDER_REFLECT_101)


_APPLY = {"jpeg": _jpeg, "resize": _resize, "blur": _blur}


def _h264_codec():
    try:
        import av
    except ImportError:
        raise DependencyError("H.264 needs PyAV, whose wheels bundle FFmpeg with libx264: pip install av "
                              "(in 'fmca-rt[train]').") from None
    try:
        av.codec.Codec("libx264", "w")
    except (av.FFmpegError, ValueError):
        raise DependencyError("This PyAV's FFmpeg has no libx264 encoder; install PyAV's own wheel: "
                              "pip install --force-reinstall av.") from None
    return av


def h264_round_trip(frames: list[np.ndarray], crf: int) -> list[np.ndarray]:
    """Encode RGB frames as one H.264 stream at rate factor `crf` with libx264, decode them, crop each back."""
    av = _h264_codec()
    height = max(f.shape[0] for f in frames) + max(f.shape[0] for f in frames) % 2
    width = max(f.shape[1] for f in frames) + max(f.shape[1] for f in frames) % 2
    # Reproducible output: libx264's assembly, and its threads, made the bitstream change from run to run
    # here (it depended on what the process had done before), so it runs its C code on one thread; bare
    # codec contexts, explicit timestamps, and OpenCV converting RGB <-> YUV 4:2:0 (BT.601) both ways (PyAV's
    # rgb24 arrays can be views of frames already released).
    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
    encoder.time_base, encoder.framerate = Fraction(1, H264_FRAME_RATE), Fraction(H264_FRAME_RATE)
    encoder.options = {"crf": str(crf), "preset": "medium", "threads": "1",
                       "x264-params": "asm=0:sync-lookahead=0:lookahead-threads=1"}
    decoder = av.CodecContext.create("h264", "r")
    try:
        packets = []
        for index, rgb in enumerate(frames):
            padded = cv2.copyMakeBorder(np.ascontiguousarray(rgb), 0, height - rgb.shape[0], 0, width - rgb.shape[1],
                                        cv2.BORDER_REPLICATE)
            frame = av.VideoFrame.from_ndarray(cv2.cvtColor(padded, cv2.COLOR_RGB2YUV_I420), format="yuv420p")
            frame.pts = index
            packets.extend(encoder.encode(frame))
        packets.extend(encoder.encode(None))  # the frames the encoder held back
        decoded = [cv2.cvtColor(frame.to_ndarray(format="yuv420p"), cv2.COLOR_YUV2RGB_I420)
                   for packet in [*packets, None] for frame in decoder.decode(packet)]
    except av.FFmpegError as error:
        raise DataError(f"FFmpeg could not H.264-encode {len(frames)} frames of {width}x{height}: {error}.") from None
    if len(decoded) != len(frames):
        raise DataError(f"H.264 gave back {len(decoded)} frames for {len(frames)}.")
    return [np.ascontiguousarray(out[:rgb.shape[0], :rgb.shape[1]]) for out, rgb in zip(decoded, frames)]
