"""Test scenes for face detectors, made from photos that installed packages ship (nothing downloaded).

Faces: matplotlib's `grace_hopper.jpg` and scikit-image's `astronaut.png`, whose face boxes were marked by
hand (`FACE_PHOTOS`). Each face is scaled so its box is `size` pixels tall, rotated about its centre and
pasted (with its hair and some background) onto a 1280 x 720 frame made from a no-face photo; a frame holds
several faces and may then be blurred, JPEG-compressed, darkened or have the faces partly covered.
No-face photos: scikit-image's and matplotlib's pictures without a person (`NO_FACE_PHOTOS`).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import DependencyError

FRAME_SIZE = (1280, 720)
# photo -> (package, file inside it, face box x1 y1 x2 y2, marked by hand)
FACE_PHOTOS = {
    "grace_hopper": ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg", (180, 110, 352, 328)),
    "astronaut": ("skimage", "data/astronaut.png", (178, 58, 273, 177)),
}
NO_FACE_PHOTOS = {
    name: ("skimage", f"data/{name}") for name in (
        "coffee.png", "chelsea.png", "rocket.jpg", "horse.png", "brick.png", "grass.png", "gravel.png",
        "hubble_deep_field.jpg", "ihc.png", "moon.png", "page.png", "text.png", "motorcycle_left.png",
        "coins.png", "logo.png", "clock_motion.png", "color.png", "cell.png", "retina.jpg")
} | {"Minduka_Present_Blue_Pack.png": ("matplotlib", "mpl-data/sample_data/Minduka_Present_Blue_Pack.png"),
     "logo2.png": ("matplotlib", "mpl-data/sample_data/logo2.png")}
BACKGROUNDS = ("coffee.png", "rocket.jpg", "brick.png", "grass.png", "motorcycle_left.png", "chelsea.png")
CONTEXT = 1.8  # the pasted patch is this many face boxes wide and tall (hair, neck, some background)


def shipped_photo(package: str, relative: str) -> np.ndarray:
    spec = importlib.util.find_spec(package)
    path = None if spec is None or spec.origin is None else Path(spec.origin).parent / relative
    image = None if path is None else cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DependencyError(f"The face scenes need {relative} from '{package}': pip install {package}")
    return image


@dataclass(frozen=True)
class PlacedFace:
    """Ground truth: a face's centre and height in the frame, and how it was made."""

    centre: tuple[float, float]
    size: int
    angle: float
    condition: str
    photo: str

    @property
    def frontal(self) -> bool:
        return self.condition != "occluded"


@dataclass
class Scene:
    name: str
    condition: str
    image: np.ndarray
    faces: list[PlacedFace]


def paste_face(frame: np.ndarray, photo: np.ndarray, face_box, size: int, angle: float, centre) -> None:
    x1, y1, x2, y2 = face_box
    scale = size / (y2 - y1)
    face_centre = ((x1 + x2) / 2, (y1 + y2) / 2)
    matrix = cv2.getRotationMatrix2D(face_centre, angle, scale)
    matrix[:, 2] += np.asarray(centre) - np.asarray(face_centre)
    warped = cv2.warpAffine(photo, matrix, (frame.shape[1], frame.shape[0]), flags=cv2.INTER_AREA
                            if scale < 1 else cv2.INTER_LINEAR)
    mask = np.zeros(photo.shape[:2], np.uint8)
    half_w, half_h = (x2 - x1) * CONTEXT / 2, (y2 - y1) * CONTEXT / 2
    cv2.rectangle(mask, (int(face_centre[0] - half_w), int(face_centre[1] - half_h)),
                  (int(face_centre[0] + half_w), int(face_centre[1] + half_h)), 255, -1)
    inside = cv2.warpAffine(mask, matrix, (frame.shape[1], frame.shape[0]), flags=cv2.INTER_NEAREST) > 0
    frame[inside] = warped[inside]


def _cover(frame: np.ndarray, face: PlacedFace, part: str) -> None:
    """A grey band over the eyes or over nose and mouth (rotated with the face)."""
    top, bottom = (-0.25, 0.05) if part == "eyes" else (0.1, 0.45)
    corners = np.array([[-0.5, top], [0.5, top], [0.5, bottom], [-0.5, bottom]]) * face.size
    theta = np.deg2rad(-face.angle)
    rotation = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    points = corners @ rotation.T + np.asarray(face.centre)
    cv2.fillConvexPoly(frame, np.round(points).astype(np.int32), (110, 110, 110))


def _pack(sizes: list[int]) -> list[list[tuple[float, float]]]:
    """Centres for faces of these sizes, left to right in rows, as many frames as needed."""
    width, height = FRAME_SIZE
    frames, centres, x, y, row_height = [], [], 0, 0, 0
    for size in sizes:
        slot = min(int(size * CONTEXT * 1.3) + 8, height)  # room for the face box at any rotation
        if x + slot > width:
            x, y, row_height = 0, y + row_height, 0
        if y + slot > height:
            frames.append(centres)
            centres, x, y, row_height = [], 0, 0, 0
        centres.append((x + slot / 2, y + slot / 2))
        x, row_height = x + slot, max(row_height, slot)
    return frames + [centres]


def _frame(background: np.ndarray, condition: str, specs: list[tuple[int, float]],
           centres: list[tuple[float, float]], photos: dict, name: str) -> Scene:
    width, height = FRAME_SIZE
    frame = cv2.resize(background, (width, height), interpolation=cv2.INTER_AREA)
    faces = []
    for index, ((size, angle), centre) in enumerate(zip(specs, centres)):
        photo_name = list(photos)[index % len(photos)]
        photo, box = photos[photo_name]
        paste_face(frame, photo, box, size, angle, centre)
        faces.append(PlacedFace(centre, size, angle, condition, photo_name))
        if condition == "occluded":
            _cover(frame, faces[-1], "eyes" if index % 2 else "mouth")
    if condition == "blur":
        frame = cv2.GaussianBlur(frame, (0, 0), 2.5)
    elif condition == "jpeg30":
        frame = cv2.imdecode(cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 30])[1], cv2.IMREAD_COLOR)
    elif condition == "dark":
        frame = np.clip(frame.astype(np.float32) * 0.25, 0, 255).astype(np.uint8)
    return Scene(name, condition, frame, faces)


ANGLES = (-45, -30, -15, 15, 30, 45)
# condition -> faces (height in pixels, rotation in degrees), packed into as many frames as they need
SCENES = {
    "upright": [(size, 0) for size in (40, 48, 64, 96, 128, 160, 240, 400) for _ in range(2)],
    "rotated": [(size, angle) for size in (48, 64, 128) for angle in ANGLES],
    "blur": [(size, angle) for size in (48, 64, 96, 160) for angle in (0, 30)],
    "jpeg30": [(size, angle) for size in (48, 64, 96, 160) for angle in (0, -30)],
    "dark": [(size, angle) for size in (48, 64, 96, 160) for angle in (0, 15)],
    "occluded": [(size, angle) for size in (96, 160) for angle in (0, 15)],
}


def face_scenes() -> list[Scene]:
    """Every composite frame of SCENES, backgrounds taken in turn from BACKGROUNDS."""
    photos = face_photos()
    backgrounds = [shipped_photo(*NO_FACE_PHOTOS[name]) for name in BACKGROUNDS]
    scenes = []
    for condition, faces in SCENES.items():
        start = 0
        for number, centres in enumerate(_pack([size for size, _ in faces])):
            specs = faces[start:start + len(centres)]
            start += len(centres)
            background = backgrounds[len(scenes) % len(backgrounds)]
            scenes.append(_frame(background, condition, specs, centres, photos, f"{condition}-{number}"))
    return scenes


def face_photos() -> dict[str, tuple[np.ndarray, tuple[int, int, int, int]]]:
    """name -> (BGR photo, its face box)."""
    return {name: (shipped_photo(package, path), box) for name, (package, path, box) in FACE_PHOTOS.items()}


def no_face_photos() -> dict[str, np.ndarray]:
    return {name: shipped_photo(package, path) for name, (package, path) in NO_FACE_PHOTOS.items()}
