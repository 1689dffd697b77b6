"""Videos to face-crop frames: FaceForensics++ folders and official splits, grouping, split by video, bad videos."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from fmca_rt.errors import DataError
from training.data import load_split, parse_method, parse_video_id
from training.prepare import main, prepare, sample_frame_indices
from training.video_sources import discover, split_officially, split_randomly


@pytest.fixture(scope="module")
def face_photo() -> np.ndarray:
    from matplotlib import cbook

    bgr = cv2.imread(str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    return cv2.resize(bgr, (256, 300), interpolation=cv2.INTER_AREA)


def write_video(path: Path, photo: np.ndarray | None, frames: int = 10) -> Path:
    """A short MJPG video of a slowly moving face photo (or of grey frames when photo is None)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = (300, 256)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (width, height))
    assert writer.isOpened()
    for index in range(frames):
        frame = np.full((height, width, 3), 128, np.uint8) if photo is None else np.roll(photo, index, axis=1)
        writer.write(frame)
    writer.release()
    return path


def make_faceforensics(root: Path, photo) -> Path:
    for video_id in ("000", "001", "002", "003"):
        write_video(root / "original_sequences/youtube/c23/videos" / f"{video_id}.avi", photo)
    for video_id in ("000_001", "001_000", "002_003", "003_002"):
        write_video(root / "manipulated_sequences/Deepfakes/c23/videos" / f"{video_id}.avi", photo)
    return root


@pytest.mark.parametrize("frame_count,count,expected", [
    (10, 4, [0, 3, 6, 9]), (10, 1, [0]), (3, 32, [0, 1, 2]), (0, 4, []), (100, 2, [0, 99])])
def test_frames_are_spread_evenly_over_the_video(frame_count, count, expected):
    assert sample_frame_indices(frame_count, count) == expected


def test_faceforensics_videos_are_grouped_by_the_persons_they_show(tmp_path):
    root = tmp_path / "ffpp"
    for name in ("000", "001", "002", "003", "004"):
        (root / "original_sequences/youtube/c23/videos").mkdir(parents=True, exist_ok=True)
        (root / "original_sequences/youtube/c23/videos" / f"{name}.mp4").write_bytes(b"")
    for method, names in (("Deepfakes", ("000_001", "002_003")), ("FaceSwap", ("001_000", "003_004"))):
        (root / "manipulated_sequences" / method / "c23/videos").mkdir(parents=True)
        for name in names:
            (root / "manipulated_sequences" / method / "c23/videos" / f"{name}.mp4").write_bytes(b"")
    videos = discover(root)
    groups = {v.video_id: v.group for v in videos}
    assert groups["000"] == groups["001"] == groups["000_001"] == groups["001_000"]
    assert groups["002"] == groups["003"] == groups["004"] == groups["002_003"] == groups["003_004"]
    assert groups["000"] != groups["002"]
    assert {v.method for v in videos if v.label == 1} == {"Deepfakes", "FaceSwap"}
    with pytest.raises(DataError, match="has no 'NeuralTextures' folder"):
        discover(root, methods=["NeuralTextures"])


def test_random_split_never_puts_a_group_in_two_splits(tmp_path):
    for index in range(20):
        for label in ("real", "fake/Deepfakes"):
            (tmp_path / label).mkdir(parents=True, exist_ok=True)
            (tmp_path / label / f"{index:03d}.mp4").write_bytes(b"")
    splits = split_randomly(discover(tmp_path), valid_fraction=0.2, test_fraction=0.1, seed=3)
    groups = {split: {v.group for v in videos} for split, videos in splits.items()}
    assert (len(groups["train"]), len(groups["valid"]), len(groups["test"])) == (14, 4, 2)
    assert not (groups["train"] & groups["valid"]) and not (groups["train"] & groups["test"])
    assert not (groups["valid"] & groups["test"])
    for videos in splits.values():  # a real video and the fake made from it stay together
        assert sorted(v.video_id for v in videos if v.label == 0) == sorted(v.video_id for v in videos if v.label == 1)
    with pytest.raises(DataError, match="too few to split"):
        split_randomly(discover(tmp_path)[:1], valid_fraction=0.5)  # one group cannot be split


def test_official_split_files_assign_pairs_and_their_fakes(tmp_path, face_photo):
    root = make_faceforensics(tmp_path / "ffpp", None)
    (tmp_path / "splits").mkdir()
    (tmp_path / "splits/train.json").write_text(json.dumps([["000", "001"]]))
    (tmp_path / "splits/val.json").write_text(json.dumps([["003", "002"]]))
    splits, left_out = split_officially(discover(root), tmp_path / "splits")
    assert sorted(v.video_id for v in splits["train"]) == ["000", "000_001", "001", "001_000"]
    assert sorted(v.video_id for v in splits["valid"]) == ["002", "002_003", "003", "003_002"]
    assert left_out == 0 and "test" not in splits
    (tmp_path / "splits/test.json").write_text("{not json")
    with pytest.raises(DataError, match="test.json is not a FaceForensics\\+\\+ split file"):
        split_officially(discover(root), tmp_path / "splits")


def test_prepare_writes_face_crops_in_the_training_layout(tmp_path, face_photo):
    root = make_faceforensics(tmp_path / "ffpp", face_photo)
    (tmp_path / "splits").mkdir()
    (tmp_path / "splits/train.json").write_text(json.dumps([["000", "001"]]))
    (tmp_path / "splits/val.json").write_text(json.dumps([["002", "003"]]))
    report = prepare(root, tmp_path / "out", frames=4, size=64, splits_dir=tmp_path / "splits", progress=lambda _: None)
    assert report["videos"] == {"train": 4, "valid": 4}
    assert report["frames"] == {"train": {"Deepfakes": 8, "real": 8}, "valid": {"Deepfakes": 8, "real": 8}}
    assert report["frames_without_face"] == 0 and report["unreadable_videos"] == []
    train = load_split(tmp_path / "out", "train")
    assert len(train) == 16
    names = sorted(s.path.name for s in train)
    assert "fake_Deepfakes_000_001_f0000.png" in names and "real_001_f0009.png" in names
    assert {s.method for s in train if s.label == 1} == {"Deepfakes"}
    assert {parse_video_id(n) for n in names} == {"fake_Deepfakes_000_001", "fake_Deepfakes_001_000", "real_000", "real_001"}
    crop = cv2.imread(str(train[0].path))
    assert crop.shape == (64, 64, 3)
    valid_videos = {s.video for s in load_split(tmp_path / "out", "valid")}
    assert not valid_videos & {s.video for s in train}
    assert parse_method("fake_Deepfakes_000_001_f0000.png", 1) == "Deepfakes"


def test_videos_without_faces_or_frames_are_skipped_and_counted(tmp_path, face_photo, capsys):
    write_video(tmp_path / "videos/real/a.avi", face_photo)
    write_video(tmp_path / "videos/real/b.avi", face_photo)
    write_video(tmp_path / "videos/real/grey.avi", None)
    (tmp_path / "videos/fake/FaceSwap").mkdir(parents=True)
    write_video(tmp_path / "videos/fake/FaceSwap/a.avi", face_photo)
    write_video(tmp_path / "videos/fake/FaceSwap/b.avi", face_photo)
    (tmp_path / "videos/fake/FaceSwap/broken.mp4").write_bytes(b"not a video")
    code = main(["--videos", str(tmp_path / "videos"), "--out", str(tmp_path / "out"), "--frames", "3",
                 "--size", "56", "--valid-fraction", "0.25"])
    assert code == 0
    report = json.loads((tmp_path / "out/prepare_report.json").read_text())
    assert report["frames_without_face"] == 3
    assert [Path(p).name for p in report["unreadable_videos"]] == ["broken.mp4"]
    assert "3 frames without a face, 1 unreadable videos" in capsys.readouterr().out


def test_prepare_reports_a_missing_or_empty_video_folder(tmp_path, capsys):
    assert main(["--videos", str(tmp_path / "missing"), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.startswith("error: Video folder")
    (tmp_path / "empty").mkdir()
    assert main(["--videos", str(tmp_path / "empty"), "--out", str(tmp_path / "out")]) == 2
    assert "No videos" in capsys.readouterr().err
