"""Each perturbation of training.perturb changes an image as its name says, checked against direct computations."""

import builtins

import cv2
import numpy as np
import pytest

from fmca_rt.errors import DependencyError
from training.perturb import Perturbation, jpeg_bytes, parse_perturbations

from sdk_images import astronaut_bgr


@pytest.fixture(scope="module")
def face():
    return np.ascontiguousarray(astronaut_bgr()[40:264, 140:364, ::-1])  # RGB, 224 x 224, the astronaut's face


def laplacian_energy(rgb):
    return float(cv2.Laplacian(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float64), cv2.CV_64F).var())


def test_jpeg_files_shrink_and_errors_grow_as_quality_falls(face):
    qualities = [95, 70, 50, 30, 10]
    sizes = [len(jpeg_bytes(face, q)) for q in qualities]
    errors = [np.abs(Perturbation("jpeg", q).apply([face])[0].astype(int) - face).mean() for q in qualities]
    assert sizes == sorted(sizes, reverse=True) and sizes[-1] < sizes[0] / 3
    assert errors == sorted(errors) and errors[0] > 0
    decoded = cv2.imdecode(np.frombuffer(jpeg_bytes(face, 30), np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
    np.testing.assert_array_equal(Perturbation("jpeg", 30).apply([face])[0], decoded)


def test_blur_is_a_gaussian_of_that_sigma_and_lowers_laplacian_energy(face):
    from scipy.ndimage import gaussian_filter

    for sigma in (0.5, 1.0, 2.0):
        blurred = Perturbation("blur", sigma).apply([face])[0]
        expected = gaussian_filter(face.astype(np.float64), sigma=(sigma, sigma, 0), mode="mirror", truncate=3.0)
        difference = np.abs(blurred - expected)  # OpenCV rounds to uint8 and sums in fixed point
        assert difference.max() < 1.05 and difference.mean() < 0.3
    energies = [laplacian_energy(face)] + [laplacian_energy(Perturbation("blur", s).apply([face])[0]) for s in (0.5, 1, 2)]
    assert energies == sorted(energies, reverse=True) and energies[2] < energies[0] / 3


def test_resize_scales_the_image_by_area_averaging(face):
    half = Perturbation("resize", 0.5).apply([face])[0]
    assert half.shape == (112, 112, 3)
    block_means = face.reshape(112, 2, 112, 2, 3).astype(np.float64).mean(axis=(1, 3))
    assert np.abs(half - block_means).max() <= 0.5 + 1e-9  # each pixel is its 2 x 2 block's mean, rounded
    quarter = Perturbation("resize", 0.25).apply([face])[0]
    block_means = face.reshape(56, 4, 56, 4, 3).astype(np.float64).mean(axis=(1, 3))
    assert np.abs(quarter - block_means).max() <= 0.5 + 1e-9  # area averaging, not sampling
    assert Perturbation("resize", 0.3).apply([face[:101, :77]])[0].shape == (30, 23, 3)
    assert laplacian_energy(cv2.resize(half, (224, 224))) < laplacian_energy(face) / 2


def test_h264_frames_differ_from_the_originals_by_a_bounded_amount(face):
    pytest.importorskip("av", reason="PyAV (pip install av) carries the libx264 encoder the h264 condition uses")
    frames = [np.roll(face, 2 * i, axis=1) for i in range(6)]  # a short pan
    errors = {}
    for crf in (18, 23, 28, 35):
        out = Perturbation("h264", crf).apply(frames)
        assert [f.shape for f in out] == [f.shape for f in frames] and out[0].dtype == np.uint8
        errors[crf] = np.mean([np.abs(o.astype(int) - f).mean() for o, f in zip(out, frames)])
        psnr = min(cv2.PSNR(o, f) for o, f in zip(out, frames))
        assert psnr > {18: 33, 23: 30, 28: 27, 35: 23}[crf]  # measured 37.0, 34.7, 31.9, 28.2 dB (min over frames)
    assert 0.5 < errors[18] < errors[23] < errors[28] < errors[35] < 12
    # Frames of other sizes (odd ones too) come back at their own size, after sharing one padded video.
    mixed = Perturbation("h264", 23).apply([face[:101, :77], face, face[:64, :200]])
    assert [m.shape for m in mixed] == [(101, 77, 3), (224, 224, 3), (64, 200, 3)]
    assert min(cv2.PSNR(m, original) for m, original in zip(mixed, [face[:101, :77], face, face[:64, :200]])) > 28


def test_h264_gives_the_same_frames_whatever_ran_before(face):
    """libx264's assembly made the output depend on the process's earlier work; the condition must not."""
    pytest.importorskip("av", reason="PyAV (pip install av) carries the libx264 encoder the h264 condition uses")
    rng = np.random.default_rng(0)
    videos = [[np.ascontiguousarray(np.roll(face, rng.integers(-20, 20, 2), axis=(0, 1))) for _ in range(4)]
              for _ in range(8)]
    first = [Perturbation("h264", 28).apply(video) for video in videos]
    for crf in (35, 18):  # other work in between
        for video in videos[::-1]:
            Perturbation("h264", crf).apply([frame[: 150 + crf] for frame in video])
    again = [Perturbation("h264", 28).apply(video) for video in videos]
    assert all(np.array_equal(a, b) for x, y in zip(first, again) for a, b in zip(x, y))


def test_h264_without_pyav_is_one_sentence(monkeypatch):
    real_import = builtins.__import__

    def no_av(name, *args, **kwargs):
        if name == "av":
            raise ImportError("No module named 'av'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_av)
    assert Perturbation("h264", 23).unavailable() == ("H.264 needs PyAV, whose wheels bundle FFmpeg with libx264: "
                                                      "pip install av (in 'fmca-rt[train]').")
    with pytest.raises(DependencyError):
        Perturbation("h264", 23).apply([np.zeros((8, 8, 3), np.uint8)])
    assert Perturbation("jpeg", 50).unavailable() is None


def test_conditions_are_read_from_the_command_line_form():
    assert [p.name for p in parse_perturbations("jpeg:30,50,70")] == ["jpeg:30", "jpeg:50", "jpeg:70"]
    assert [p.name for p in parse_perturbations("RESIZE:0.5")] == ["resize:0.5"]
    for bad, message in (("jpeg:0", "quality from 1 to 100"), ("h264:23.5", "rate factor from 0 to 51"),
                         ("sharpen:1", "KIND one of jpeg, resize, blur, h264"), ("blur", "KIND:VALUE"),
                         ("resize:big", "scale factor")):
        with pytest.raises(ValueError, match=message):
            parse_perturbations(bad)
