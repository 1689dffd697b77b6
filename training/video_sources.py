"""Finding the videos of a dataset and splitting them by video (never by frame) for training.prepare.

Two source layouts:
- FaceForensics++: `ROOT/original_sequences/youtube/<c23|c40|raw>/videos/000.mp4` (real) and
  `ROOT/manipulated_sequences/<Method>/<compression>/videos/000_003.mp4` (fake: target video 000 with the
  face of 003). Its official split files (`train.json`, `val.json`, `test.json`: lists of id pairs
  [a, b], meaning reals a and b and fakes a_b and b_a) are used when given.
- Plain folders: `ROOT/real/*.mp4` and `ROOT/fake/*.mp4` or `ROOT/fake/<Method>/*.mp4`.

Without split files, videos are split at random by group: the videos that share a person go to the same
split. In FaceForensics++ a fake a_b shows persons a and b, so a, b, a_b and b_a form one group; in plain
folders a real and a fake video with the same file name form one group.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fmca_rt.errors import DataError

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm")
FFPP_METHODS = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures")
OFFICIAL_SPLIT_FILES = {"train": "train.json", "valid": "val.json", "test": "test.json"}


@dataclass(frozen=True)
class SourceVideo:
    path: Path
    label: int  # 0 real, 1 fake
    method: str  # "real" for real videos
    video_id: str
    group: str = ""


def _videos_in(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)


def is_faceforensics(root: Path) -> bool:
    return (root / "original_sequences").is_dir() or (root / "manipulated_sequences").is_dir()


def discover_faceforensics(root: Path, compression: str = "c23", methods=None) -> list[SourceVideo]:
    videos = [SourceVideo(p, 0, "real", p.stem)
              for p in _videos_in(root / "original_sequences" / "youtube" / compression / "videos")]
    manipulated = root / "manipulated_sequences"
    available = sorted(p.name for p in manipulated.iterdir() if p.is_dir()) if manipulated.is_dir() else []
    for method in (methods or available):
        if method not in available:
            raise DataError(f"{manipulated} has no '{method}' folder; found: {', '.join(available) or 'none'}.")
        videos += [SourceVideo(p, 1, method, p.stem) for p in _videos_in(manipulated / method / compression / "videos")]
    return _grouped(videos, lambda v: v.video_id.split("_"))


def discover_folders(root: Path) -> list[SourceVideo]:
    videos = [SourceVideo(p, 0, "real", p.stem) for p in _videos_in(root / "real")]
    videos += [SourceVideo(p, 1, "unknown", p.stem) for p in _videos_in(root / "fake")]
    fake = root / "fake"
    for method_folder in sorted(p for p in fake.iterdir() if p.is_dir()) if fake.is_dir() else []:
        videos += [SourceVideo(p, 1, method_folder.name, p.stem) for p in _videos_in(method_folder)]
    return _grouped(videos, lambda v: [v.video_id])


def discover(root: str | Path, compression: str = "c23", methods=None) -> list[SourceVideo]:
    """Every source video with its label, method, id and group; a clear error when there are none."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"Video folder {root} does not exist.")
    videos = discover_faceforensics(root, compression, methods) if is_faceforensics(root) else discover_folders(root)
    if not videos:
        expected = ("original_sequences/youtube/<compression>/videos and manipulated_sequences/<Method>/..."
                    if is_faceforensics(root) else "real/*.mp4 and fake/*.mp4 or fake/<Method>/*.mp4")
        raise DataError(f"No videos ({', '.join(VIDEO_EXTENSIONS)}) found in {root}; expected {expected}.")
    return videos


def _grouped(videos: list[SourceVideo], persons) -> list[SourceVideo]:
    """Each video's group: the connected component of the persons it shows (union-find)."""
    parent: dict[str, str] = {}

    def find(person: str) -> str:
        while parent.setdefault(person, person) != person:
            parent[person] = parent[parent[person]]
            person = parent[person]
        return person

    for video in videos:
        first, *others = persons(video)
        for other in others:
            a, b = find(first), find(other)
            parent[max(a, b)] = min(a, b)
    return [SourceVideo(v.path, v.label, v.method, v.video_id, find(persons(v)[0])) for v in videos]


def split_randomly(videos: list[SourceVideo], valid_fraction: float, test_fraction: float = 0.0,
                   seed: int = 0) -> dict[str, list[SourceVideo]]:
    """Whole groups to `valid` and `test` (rounded fractions of the groups, at least one each when asked
    for and possible), the rest to `train`."""
    groups = sorted({v.group for v in videos})
    order = [groups[i] for i in np.random.default_rng(seed).permutation(len(groups))]
    counts = {}
    for split, fraction in (("valid", valid_fraction), ("test", test_fraction)):
        counts[split] = max(1, round(len(groups) * fraction)) if fraction > 0 else 0
    if counts["valid"] + counts["test"] >= len(groups):
        raise DataError(f"{len(groups)} independent video groups are too few to split into train, valid"
                        + (" and test" if test_fraction else "") + "; add videos or lower the fractions.")
    assignment = {g: "valid" for g in order[:counts["valid"]]}
    assignment.update({g: "test" for g in order[counts["valid"]:counts["valid"] + counts["test"]]})
    splits: dict[str, list[SourceVideo]] = defaultdict(list)
    for video in videos:
        splits[assignment.get(video.group, "train")].append(video)
    return dict(splits)


def split_officially(videos: list[SourceVideo], splits_dir: str | Path) -> tuple[dict[str, list[SourceVideo]], int]:
    """FaceForensics++ official splits from train.json / val.json / test.json; also the number of videos
    that none of them lists (left out)."""
    splits_dir = Path(splits_dir)
    membership: dict[str, str] = {}
    for split, file_name in OFFICIAL_SPLIT_FILES.items():
        path = splits_dir / file_name
        if not path.is_file():
            continue
        try:
            pairs = json.loads(path.read_text())
            for a, b in pairs:
                for video_id in (str(a), str(b), f"{a}_{b}", f"{b}_{a}"):
                    membership[video_id] = split
        except (ValueError, TypeError) as error:
            raise DataError(f"{path} is not a FaceForensics++ split file (a JSON list of id pairs): {error}.") from None
    if not membership:
        raise DataError(f"{splits_dir} holds none of {', '.join(OFFICIAL_SPLIT_FILES.values())}.")
    splits: dict[str, list[SourceVideo]] = defaultdict(list)
    left_out = 0
    for video in videos:
        if video.video_id in membership:
            splits[membership[video.video_id]].append(video)
        else:
            left_out += 1
    return dict(splits), left_out
