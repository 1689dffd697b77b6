"""Dataset layout parsing, file-name conventions, and bad input (missing folders, empty classes, unreadable files)."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from fmca_rt.errors import DataError
from training import get_preset
from training.data import describe, load_split, parse_method, parse_video_id, scan_split, split_folder
from training.dataset import FaceCropDataset, Item, collate, self_blend_items

TINY_56 = get_preset("tiny").replace(image_size=56)


def write_image(path: Path, seed: int = 0, size: int = 40) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    assert cv2.imwrite(str(path), pixels)
    return path


def make_layout(root: Path, names: dict[str, list[str]]) -> Path:
    """names: 'train/real' -> file names; each becomes a small random image."""
    for seed, (folder, files) in enumerate(names.items()):
        for index, name in enumerate(files):
            write_image(root / folder / name, seed * 100 + index)
    return root


@pytest.mark.parametrize("name,label,method", [
    ("fake_Deepfakes_000_003_f0012.png", 1, "Deepfakes"),
    ("fake_NeuralTextures_123_456.jpg", 1, "NeuralTextures"),
    ("fake_Face2Face_x.jpeg", 1, "Face2Face"),
    ("swap_000.png", 1, "unknown"),
    ("fake_.png", 1, "unknown"),
    ("fake_Deepfakes.png", 1, "unknown"),  # no separator after the method: not the convention
    ("fake_Deepfakes_000.png", 0, "real"),  # a file in real/ is real whatever its name
])
def test_method_is_parsed_from_fake_file_names(name, label, method):
    assert parse_method(name, label) == method


@pytest.mark.parametrize("name,video", [
    ("fake_Deepfakes_000_003_f0012.png", "fake_Deepfakes_000_003"),
    ("real_000_frame7.jpg", "real_000"),
    ("clip_f3.png", "clip"),
    ("000_003.png", "000_003"),  # no frame suffix: the file is its own video
    ("face_f12x.png", "face_f12x"),
    ("f0001.png", "f0001"),  # nothing before the suffix
])
def test_video_id_is_the_name_before_the_frame_suffix(name, video):
    assert parse_video_id(name) == video


def test_layout_is_scanned_with_labels_methods_and_videos(tmp_path):
    root = make_layout(tmp_path, {
        "train/real": ["real_000_f0.png", "real_000_f1.png", "real_001_f0.JPG"],
        "train/fake": ["fake_Deepfakes_000_003_f0.png", "fake_FaceSwap_001_002_f0.jpeg", "other.jpg"],
    })
    (root / "train/real/notes.txt").write_text("not an image")
    (root / "train/fake/.hidden.png").write_bytes(b"")
    (root / "train/real/subfolder.png").mkdir()
    samples = load_split(root, "train")
    assert [(s.path.name, s.label, s.method, s.video) for s in samples] == [
        ("real_000_f0.png", 0, "real", "real/real_000"),
        ("real_000_f1.png", 0, "real", "real/real_000"),
        ("real_001_f0.JPG", 0, "real", "real/real_001"),
        ("fake_Deepfakes_000_003_f0.png", 1, "Deepfakes", "fake/fake_Deepfakes_000_003"),
        ("fake_FaceSwap_001_002_f0.jpeg", 1, "FaceSwap", "fake/fake_FaceSwap_001_002"),
        ("other.jpg", 1, "unknown", "fake/other"),
    ]
    assert describe(samples) == "3 real, 3 fake (Deepfakes 1, FaceSwap 1, unknown 1), 5 videos"


def test_a_folder_with_class_folders_is_accepted_as_a_split(tmp_path):
    root = make_layout(tmp_path / "other_dataset", {"real": ["a.png"], "fake": ["b.png"]})
    assert split_folder(root, "valid") == root
    assert len(load_split(root, "valid")) == 2


def test_missing_dataset_folder_is_one_clear_error(tmp_path):
    with pytest.raises(DataError, match=r"does not exist \(expected ROOT/\{train,valid\}/\{real,fake\}"):
        load_split(tmp_path / "nowhere", "train")


def test_missing_split_folder_is_named(tmp_path):
    make_layout(tmp_path, {"train/real": ["a.png"], "train/fake": ["b.png"]})
    with pytest.raises(DataError, match="has no 'valid' folder"):
        load_split(tmp_path, "valid")


def test_empty_split_folder_names_the_missing_class(tmp_path):
    (tmp_path / "train").mkdir()
    with pytest.raises(DataError, match=r"train/real does not exist: the real class needs samples"):
        load_split(tmp_path, "train")


def test_a_class_with_no_images_is_an_error(tmp_path):
    make_layout(tmp_path, {"train/real": ["a.png", "b.png"]})
    (tmp_path / "train/fake").mkdir()
    (tmp_path / "train/fake/readme.txt").write_text("no images here")
    with pytest.raises(DataError, match=r"train/fake has no images \(.png, .jpg, .jpeg\): the fake class needs samples"):
        load_split(tmp_path, "train")
    assert len(scan_split(tmp_path / "train", required_classes=("real",))) == 2  # self-blending needs reals only


def test_unreadable_training_images_are_replaced_and_reported(tmp_path):
    make_layout(tmp_path, {"train/real": ["a.png", "c.png"], "train/fake": ["d.png"]})
    (tmp_path / "train/real/b.png").write_bytes(b"\x89PNG truncated")
    (tmp_path / "train/fake/e.jpg").write_bytes(b"")
    samples = load_split(tmp_path, "train")
    dataset = FaceCropDataset([Item(s) for s in samples], TINY_56, on_unreadable="substitute")
    batch = collate([dataset[i] for i in range(len(dataset))])
    assert batch["pixels"].shape == (5, 3, 56, 56) and torch.isfinite(batch["pixels"]).all()
    assert sorted(Path(p).name for p in batch["unreadable"]) == ["b.png", "e.jpg"]
    # b.png (index 1) is replaced by the next readable file, c.png; e.jpg (last) wraps around to a.png
    torch.testing.assert_close(batch["pixels"][1], batch["pixels"][2])
    torch.testing.assert_close(batch["pixels"][4], batch["pixels"][0])
    assert batch["labels"].tolist() == [0, 0, 0, 1, 0]


def test_unreadable_evaluation_images_are_left_out_and_reported(tmp_path):
    make_layout(tmp_path, {"valid/real": ["a.png"], "valid/fake": ["c.png"]})
    (tmp_path / "valid/real/b.png").write_bytes(b"garbage")
    dataset = FaceCropDataset([Item(s) for s in load_split(tmp_path, "valid")], TINY_56, on_unreadable="skip")
    batch = collate([dataset[i] for i in range(len(dataset))])
    assert batch["indices"].tolist() == [0, 2] and batch["labels"].tolist() == [0, 1]
    assert [Path(p).name for p in batch["unreadable"]] == ["b.png"]
    nothing = collate([dataset[1]])
    assert nothing["pixels"] is None and len(nothing["unreadable"]) == 1


def test_a_dataset_of_only_unreadable_files_stops_with_a_clear_error(tmp_path):
    for name in ("a.png", "b.png"):
        (tmp_path / "real").mkdir(exist_ok=True)
        (tmp_path / "real" / name).write_bytes(b"")
    samples = scan_split(tmp_path, required_classes=("real",))
    dataset = FaceCropDataset([Item(s) for s in samples], TINY_56)
    with pytest.raises(DataError, match="2 images in a row cannot be read"):
        dataset[0]


def test_samples_are_the_shared_preprocessing_of_the_file(tmp_path):
    from fmca_rt.preprocess import preprocess

    path = write_image(tmp_path / "real" / "a.png", size=90)
    dataset = FaceCropDataset([Item(s) for s in scan_split(tmp_path, ("real",))], TINY_56)
    expected = preprocess([cv2.imread(str(path))[..., ::-1].copy()], 56, TINY_56.mean, TINY_56.std)[0]
    np.testing.assert_array_equal(dataset[0]["pixels"].numpy(), expected)


def test_self_blend_items_pair_each_real_image_with_a_fake(tmp_path):
    make_layout(tmp_path, {"real": ["a.png", "b.png"]})
    items = self_blend_items(scan_split(tmp_path, ("real",)))
    assert [(i.sample.path.name, i.label, i.method) for i in items] == [
        ("a.png", 0, "real"), ("b.png", 0, "real"), ("a.png", 1, "SelfBlended"), ("b.png", 1, "SelfBlended")]
    assert items[2].video != items[0].video
    dataset = FaceCropDataset(items, TINY_56, seed=3)
    first, again = dataset[2]["pixels"], dataset[2]["pixels"]
    torch.testing.assert_close(first, again)  # the same (seed, epoch, index) gives the same fake
    assert not torch.equal(first, dataset[0]["pixels"])
    dataset.set_epoch(1)
    assert not torch.equal(first, dataset[2]["pixels"])  # a new epoch draws a new blend
