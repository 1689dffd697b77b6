"""`Detector`: images (paths, arrays, PIL images) in, per-face and per-image P(fake) out.

    from fmca_rt import Detector

    detector = Detector("fmca.onnx")             # .engine -> TensorRT, .onnx -> ONNX Runtime, .pth -> PyTorch
    result = detector.predict("photo.jpg")
    print(result.label, result.fake_prob)         # highest P(fake) over the faces; None without a face
    cv2.imwrite("out.jpg", result.plot())

Input size, normalization, class names and the resize method come from the model's metadata, and so do
its temperature and named operating points when it was calibrated (`python -m training.calibrate`):

    detector = Detector("fmca.onnx", threshold="fpr@1%")   # or "eer", "best-accuracy", a number, None (argmax)
    result = detector.predict("photo.jpg")
    print(result.operating_point)                          # fpr@1% (P(fake) >= 0.83; validation TPR ... )
    detector = Detector("fmca.onnx", threshold="abstain")  # "fake", "real" or "uncertain" (send to a person)
    for explanation in result.explain():                   # why: a heat map per face
        explanation.save("why.png")
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from .backends import Backend, create_backend
from .errors import ExplainError, FaceDetectorError, FMCAError, ImageError
from .explain import EXPLAIN_METHODS, Explanation, explain_occlusion
from .face_guard import ThreadSafeFaces
from .faces import Face, FaceDetector, crop_faces
from .gradcam import BRANCHES as GRADCAM_METHODS
from .gradcam import explain_gradcam
from .images import load_image
from .latency import LatencyStats
from .operating_points import Calibration
from .preprocess import preprocess
from .results import ERROR, FaceResult, ImageResult


class Detector:
    """Face-forgery detection with any backend. `threshold` turns calibrated P(fake) into the "fake" label:
    a named operating point stored with the model ("eer", "fpr@1%", "best-accuracy"), a P(fake) in [0, 1],
    None for argmax (0.5), or "abstain" for the model's abstain band ("uncertain" between its two thresholds;
    fmca_rt.abstain); `batch_size` bounds how many face crops go to the backend at once.

    One Detector may be used from several threads at once and gives each call the result a serial call
    would: every thread gets its own face detector, a plug-in detector and a backend that is not
    thread-safe (TensorRT) are called one thread at a time, and the latency statistics are locked."""

    def __init__(self, model: str | Path | Backend, backend: str = "auto", faces: str | FaceDetector = "auto",
                 threshold: float | str | None = None, batch_size: int = 8, device: str | None = None,
                 crop_scale: float = 1.3, align_faces: bool | None = None):
        if batch_size < 1:
            raise FMCAError(f"batch_size must be at least 1, got {batch_size}.")
        self.backend = model if isinstance(model, Backend) else create_backend(model, backend, device)
        self.backend.activate()
        self.metadata = self.backend.metadata
        try:
            self.calibration = Calibration.from_dict(self.metadata.calibration, str(self.backend.model_path))
            self.operating_point = self.calibration.operating_point(threshold)
        except FMCAError:
            self.backend.deactivate()
            raise
        try:
            self._faces = ThreadSafeFaces(faces, device)
        except FMCAError:
            self.backend.deactivate()
            raise
        self.threshold = self.operating_point.threshold
        self.batch_size = batch_size
        self.crop_scale = crop_scale
        # Eye-level crops for models trained on them (training.prepare --align-faces); the model's config may say.
        self.align_faces = bool(self.metadata.config.get("align_faces", False)) if align_faces is None else align_faces
        self.latency = LatencyStats()
        self._fake_index = self._class_index("fake")

    def _class_index(self, name: str) -> int:
        names = list(self.metadata.class_names)
        if name not in names:
            raise FMCAError(f"The model's classes are {names}; fmca-rt needs one named {name!r}.")
        return names.index(name)

    @property
    def face_detector(self) -> FaceDetector:
        """The face detector the calling thread uses."""
        return self._faces.for_this_thread()

    # ---- the stages, usable on their own ----------------------------------------------------------------
    def detect_faces(self, bgr: np.ndarray) -> list[Face]:
        """Faces in a BGR image, boxes clipped to it; FaceDetectorError when the detector fails or returns
        a box outside the image."""
        with self.latency.measure("detect"):
            return self._faces.detect(bgr)

    def detect_faces_batch(self, images: Sequence[np.ndarray]) -> list[list[Face] | FaceDetectorError]:
        """Faces in each BGR image (boxes clipped to it), or the FaceDetectorError that image gave; batched
        for detectors that can (the CNN detectors)."""
        if not images:
            return []
        with self.latency.measure("detect", len(images)):
            return self._faces.detect_batch(list(images))

    def crop_faces(self, bgr: np.ndarray, faces: Sequence[Face]) -> list[np.ndarray]:
        """The RGB crops the model sees for these faces (square, `crop_scale` x the box, eyes level when aligning)."""
        return crop_faces(bgr, list(faces), self.crop_scale, self.align_faces)

    def classify_crops(self, crops_rgb: Sequence[np.ndarray]) -> np.ndarray:
        """Calibrated P(fake) for RGB uint8 face crops, in batches of batch_size; NaN for a crop whose
        logits were not finite (an engine that overflowed, a broken model): it has no verdict."""
        probs = []
        for start in range(0, len(crops_rgb), self.batch_size):
            chunk = crops_rgb[start:start + self.batch_size]
            with self.latency.measure("preprocess", len(chunk)):
                pixels = preprocess(chunk, self.metadata.image_size, self.metadata.mean, self.metadata.std,
                                    self.metadata.preprocessing)
            with self.latency.measure("infer", len(chunk)):
                logits = self.backend.infer(pixels)
            finite = np.isfinite(logits).all(axis=1)
            with np.errstate(invalid="ignore", over="ignore"):
                probs.append(np.where(finite, self.calibration.fake_probability(logits, self._fake_index), np.nan))
        return np.concatenate(probs) if probs else np.zeros(0, np.float32)

    def label_for(self, fake_prob: float) -> str:
        """ "fake" or "real" by the operating point ("uncertain" too with threshold="abstain"); "error" for a
        P(fake) that is not finite."""
        if not math.isfinite(fake_prob):
            return ERROR
        return self.operating_point.label(fake_prob)

    def face_results(self, faces: Sequence[Face], probs: Iterable[float]) -> list[FaceResult]:
        """FaceResults of faces and their P(fake); a NaN P(fake) gives an unscored face labelled "error"."""
        return [FaceResult(face, p, self.label_for(p)) if math.isfinite(p) else FaceResult(face, None, ERROR)
                for face, p in zip(faces, probs)]

    # ---- images -------------------------------------------------------------------------------------------
    def predict(self, image) -> ImageResult:
        """One image (path, BGR array, PIL image) -> ImageResult. Bad input raises ImageError."""
        with self.latency.measure("decode"):
            bgr, name = load_image(image)
        return self._predict_loaded([(bgr, name)])[0]

    def predict_batch(self, images: Iterable) -> list[ImageResult]:
        """Many images (a list: of paths, arrays, PIL images), their faces batched together for the backend.
        An image that cannot be read, whose faces cannot be found, or whose face the model could not score
        gives a result with `error` set (label "error") instead of stopping the batch."""
        if isinstance(images, (str, Path, np.ndarray)) or type(images).__module__.startswith("PIL."):
            raise ImageError(f"predict_batch takes a list of images, not one {type(images).__name__}; use "
                             "predict(image) or predict_batch([image]).")
        loaded, results = [], []
        for image in images:
            try:
                with self.latency.measure("decode"):
                    loaded.append(load_image(image))
                results.append(None)
            except FMCAError as error:
                results.append(ImageResult(source=_name_of(image), error=str(error)))
        predicted = iter(self._predict_loaded(loaded))
        return [next(predicted) if result is None else result for result in results]

    def _predict_loaded(self, loaded: list[tuple[np.ndarray, str]]) -> list[ImageResult]:
        detected = self.detect_faces_batch([bgr for bgr, _ in loaded])
        faces_per_image = [[] if isinstance(found, FMCAError) else found for found in detected]
        errors = [str(found) if isinstance(found, FMCAError) else None for found in detected]
        crops = [crop for (bgr, _), faces in zip(loaded, faces_per_image)
                 for crop in self.crop_faces(bgr, faces)]
        probs = iter(self.classify_crops(crops).tolist())
        results = []
        for (bgr, name), faces, error in zip(loaded, faces_per_image, errors):
            face_results = self.face_results(faces, probs)
            unscored = sum(not f.scored for f in face_results)
            if unscored:
                error = (f"the model's output for {unscored} of {len(face_results)} faces was not finite (NaN or "
                         "infinite logits: an overflowing engine or a broken model), so there is no verdict")
            results.append(ImageResult(name, bgr.shape[1], bgr.shape[0], face_results, error=error, image=bgr,
                                       operating_point=self.operating_point, detector=self))
        return results

    # ---- explanations -------------------------------------------------------------------------------------
    def explain(self, image, method: str = "occlusion", window: int = 2, stride: int = 1,
                fill: str = "blur") -> list[Explanation]:
        """Why each face got its P(fake): one Explanation per face (a heat map over the crop; `.save(png)`).

        `image`: anything predict() takes, or an ImageResult that kept its image (its faces are reused).
        "occlusion" works with every backend and costs `fmca_rt.explain.occlusion_passes(...)` forward
        passes per face (226 for a 224-px model with the defaults); "gradcam" (the ViT's patch tokens) and
        "gradcam-frequency" (the frequency branch's tokens) need the torch backend and cost one forward and
        one backward pass.
        """
        if isinstance(image, ImageResult):
            if image.image is None:
                raise ExplainError(f"The result for {image.source} keeps no image; pass the image to explain().")
            bgr, faces = image.image, [face.face for face in image.faces]
        else:
            bgr, _ = load_image(image)
            faces = self.detect_faces(bgr)
        meta = self.metadata
        pixels = preprocess(self.crop_faces(bgr, faces), meta.image_size, meta.mean, meta.std,
                            meta.preprocessing)
        if method == "occlusion":
            if "patch_size" not in meta.config:
                raise ExplainError(f"{self.backend.model_path.name}'s metadata has no patch_size, which occlusion "
                                   "needs; export it again with `python -m export.onnx`.")
            return [explain_occlusion(self._fake_probability_of_pixels, face, meta.mean, meta.std,
                                      meta.config["patch_size"], window, stride, fill, self.batch_size)
                    for face in pixels]
        if method in GRADCAM_METHODS:
            model = getattr(self.backend, "model", None)
            if model is None:
                raise ExplainError(f"Grad-CAM needs the torch backend (a .pth model); the {self.backend.name} "
                                   "backend explains by occlusion.")
            return [explain_gradcam(model, face, self.calibration, method) for face in pixels]
        raise ExplainError(f"Unknown explanation method {method!r}; choose one of: {', '.join(EXPLAIN_METHODS)}.")

    def _fake_probability_of_pixels(self, pixels: np.ndarray) -> np.ndarray:
        with self.latency.measure("explain", len(pixels)):
            return self.calibration.fake_probability(self.backend.infer(pixels), self._fake_index)

    # ---- video --------------------------------------------------------------------------------------------
    def stream(self, source, **options):
        """Frames of a video file, camera or stream -> an iterator of FrameResult; see fmca_rt.video."""
        from .video.pipeline import VideoPipeline

        return VideoPipeline(self, source, **options)

    # ---- lifetime -----------------------------------------------------------------------------------------
    def close(self) -> None:
        self.backend.deactivate()

    def __enter__(self) -> "Detector":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"Detector({self.backend.model_path.name!r}, backend={self.backend.describe()!r}, "
                f"image_size={self.metadata.image_size}, threshold={self.operating_point.name!r})")


def _name_of(image) -> str:
    return str(image) if isinstance(image, (str, Path)) else type(image).__name__
