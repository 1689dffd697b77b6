"""One Detector used from several threads gives every call the result a serial call gives."""

import time
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np

from fmca_rt import Detector
from fmca_rt.backends.onnxruntime import OnnxRuntimeBackend

from sdk_images import astronaut_bgr, grace_hopper_bgr
from sdk_models import tiny_onnx

THREADS, IMAGES = 4, 16


def sixteen_photos() -> list[np.ndarray]:
    """Two photos at 8 scales each: different sizes, faces and P(fake) for every image."""
    photos = [grace_hopper_bgr(), astronaut_bgr()]
    return [cv2.resize(photos[i % 2], None, fx=0.55 + 0.06 * i, fy=0.55 + 0.06 * i) for i in range(IMAGES)]


def comparable(result) -> dict:
    return {key: value for key, value in result.to_dict().items() if key != "operating_point"}


def test_predict_and_predict_batch_from_four_threads_match_serial():
    images = sixteen_photos()
    with Detector(tiny_onnx()) as detector:
        serial = [comparable(detector.predict(image)) for image in images]
        assert all(record["faces"] for record in serial)
        assert len({record["fake_prob"] for record in serial}) == IMAGES  # every image tells itself apart
        with ThreadPoolExecutor(THREADS) as pool:
            threaded = [comparable(r) for r in pool.map(detector.predict, images)]
            batches = [images[i::THREADS] for i in range(THREADS)]
            batched = list(pool.map(detector.predict_batch, batches))
        assert threaded == serial
        for offset, results in enumerate(batched):
            assert [comparable(r) for r in results] == serial[offset::THREADS]
        assert detector.latency.summary()["detect"]["items"] == 3 * IMAGES  # no sample lost to a race


class SharedBufferBackend(OnnxRuntimeBackend):
    """Like a TensorRT engine: one input buffer per execution context, filled, then run. Not thread-safe."""

    thread_safe = False

    def infer_impl(self, pixels):
        self._input_buffer = pixels.copy()
        time.sleep(0.002)  # the copy to the device and the launch take time; another thread may come in
        return super().infer_impl(self._input_buffer)


def test_a_backend_that_is_not_thread_safe_is_called_one_thread_at_a_time():
    images = sixteen_photos()
    with Detector(SharedBufferBackend(tiny_onnx())) as detector:
        serial = [comparable(detector.predict(image)) for image in images]
        with ThreadPoolExecutor(THREADS) as pool:
            threaded = [comparable(r) for r in pool.map(detector.predict, images)]
    assert threaded == serial
