"""threshold="abstain": "uncertain" labels in results, JSON, plots, the CLI and video verdicts; the band travels
checkpoint -> ONNX metadata -> engine sidecar, and models calibrated without one keep working."""

import json

import numpy as np
import pytest

from fmca_rt import Detector
from fmca_rt.abstain import AbstainBand
from fmca_rt.backends.tensorrt_sidecar import EngineSidecar
from fmca_rt.cli import main as cli_main
from fmca_rt.errors import CalibrationError
from fmca_rt.metadata import ModelMetadata
from fmca_rt.operating_points import Calibration, OperatingPoint

from sdk_images import grace_hopper_path
from sdk_models import tiny_checkpoint
from test_sdk_video import moving_face_frames, write_video_folder

torch = pytest.importorskip("torch")
AMBER = (0, 165, 255)  # BGR, the colour of an uncertain face


@pytest.fixture(scope="module")
def face_prob():
    with Detector(tiny_checkpoint()) as detector:
        return detector.predict(grace_hopper_path()).fake_prob


def calibrated(folder, name, band: AbstainBand | None):
    from training import FMCANet

    model = FMCANet.from_checkpoint(tiny_checkpoint())
    model.calibration = Calibration(1.0, (OperatingPoint("eer", 0.5, 0.9, 0.1),), {}, band).to_dict()
    model.save_checkpoint(folder / f"{name}.pth")
    return folder / f"{name}.pth"


def band_around(p: float, low: float, high: float) -> AbstainBand:
    return AbstainBand(p + high, p + low, 0.05, 0.05, 0.95, {"uncertain": 0.25})


@pytest.fixture(scope="module")
def models(tmp_path_factory, face_prob):
    folder = tmp_path_factory.mktemp("abstain")
    return {"uncertain": calibrated(folder, "uncertain", band_around(face_prob, -0.2, 0.2)),
            "fake": calibrated(folder, "fake", band_around(face_prob, -0.3, -0.2)),
            "real": calibrated(folder, "real", band_around(face_prob, 0.2, 0.3)),
            "no band": calibrated(folder, "plain", None)}


@pytest.mark.parametrize("expected", ["uncertain", "fake", "real"])
def test_labels_follow_the_band(models, face_prob, expected):
    with Detector(models[expected], threshold="abstain") as detector:
        result = detector.predict(grace_hopper_path())
    assert result.fake_prob == pytest.approx(face_prob, abs=1e-6)
    assert result.faces[0].label == result.label == expected
    band = Calibration.from_dict(detector.metadata.calibration).abstain
    assert result.to_dict()["operating_point"] == {"name": "abstain", "threshold": band.threshold,
                                                   "real_threshold": band.real_threshold}
    amber = np.all(result.plot() == AMBER, axis=2).sum()
    assert (amber > 0) == (expected == "uncertain")


def test_the_band_travels_to_onnx_and_the_engine_sidecar(models, face_prob, tmp_path):
    from export.onnx import export_onnx

    onnx_path = export_onnx(models["uncertain"], tmp_path / "model.onnx", verify=False)
    with Detector(onnx_path, threshold="abstain") as detector:
        assert detector.predict(grace_hopper_path()).label == "uncertain"
        metadata = detector.metadata
    assert Calibration.from_dict(metadata.calibration).abstain == band_around(face_prob, -0.2, 0.2)
    sidecar = EngineSidecar(metadata=ModelMetadata(config=metadata.config, calibration=metadata.calibration),
                            tensorrt_version="10.13.0", gpu_name="Orin", compute_capability=(8, 7), precision="fp16",
                            batch_profile=(1, 4, 8), onnx_sha256="00", engine_sha256="11", build_command="x")
    restored = EngineSidecar.from_json(sidecar.to_json()).metadata.calibration
    assert Calibration.from_dict(restored).abstain == band_around(face_prob, -0.2, 0.2)


def test_models_without_a_band_work_as_before_and_say_how_to_get_one(models, capsys):
    with Detector(models["no band"], threshold="eer") as detector:
        assert detector.predict(grace_hopper_path()).label in ("fake", "real")
    with pytest.raises(CalibrationError, match="no abstain band; calibrate it with .*--abstain"):
        Detector(models["no band"], threshold="abstain")
    assert cli_main(["predict", str(grace_hopper_path()), "--model", str(models["no band"]), "--threshold",
                     "abstain", "-q"]) == 2
    assert "no abstain band" in capsys.readouterr().err


def test_cli_counts_uncertain_images_and_still_exits_0(models, tmp_path, capsys):
    out = tmp_path / "results.json"
    code = cli_main(["predict", str(grace_hopper_path()), str(grace_hopper_path()), "--model",
                     str(models["uncertain"]), "--threshold", "abstain", "--json", str(out), "-q"])
    assert code == 0
    assert [r["label"] for r in json.loads(out.read_text())] == ["uncertain", "uncertain"]
    assert "2 images: 2 with faces, 0 fake, 2 uncertain, 0 unreadable (operating point abstain" in capsys.readouterr().out
    cli_main(["predict", str(grace_hopper_path()), "--model", str(models["no band"]), "--threshold", "eer", "-q"])
    assert "uncertain" not in capsys.readouterr().out


def test_a_video_and_its_tracks_are_uncertain_when_their_mean_score_is(models, tmp_path, capsys):
    folder = write_video_folder(moving_face_frames(6), tmp_path / "clip")
    with Detector(models["uncertain"], threshold="abstain") as detector:
        run = detector.stream(str(folder))
        frames = list(run)
    summary = run.summary
    scores = [f.fake_prob for f in frames if f.faces]
    assert summary["label"] == "uncertain" and summary["fake_prob"] == pytest.approx(np.mean(scores), abs=1e-6)
    assert summary["real_threshold"] < summary["threshold"]
    track_scores = {}
    for frame in frames:
        for face in frame.faces:
            track_scores.setdefault(face.track_id, []).append(face.fake_prob)
    assert [(t["track_id"], t["frames"]) for t in summary["tracks"]] == [(k, len(v)) for k, v in
                                                                         sorted(track_scores.items())]
    assert [t["fake_prob"] for t in summary["tracks"]] == pytest.approx(
        [np.mean(v) for _, v in sorted(track_scores.items())], abs=1e-6)
    assert all(t["label"] == "uncertain" for t in summary["tracks"])
    assert cli_main(["video", str(folder), "--model", str(models["fake"]), "--threshold", "abstain", "-q"]) == 0
    printed = capsys.readouterr().out
    assert ": fake (mean P(fake)" in printed and "1 face track: 1 fake" in printed
