"""The shared preprocessing against torchvision (the published training script's transforms)."""

import numpy as np
import pytest

from fmca_rt import preprocess as pp
from fmca_rt.errors import ImageError
from fmca_rt.preprocess import preprocess, resize_rgb

torch = pytest.importorskip("torch")
transforms = pytest.importorskip("torchvision.transforms")
Image = pytest.importorskip("PIL.Image")

# (height, width) of crops: square, wide, tall, tiny, upscaled, already the target size, huge ratios
SHAPES = [(300, 300), (100, 150), (224, 224), (1000, 37), (5, 7), (480, 640), (223, 225), (37, 1000)]


def torchvision_pipeline(size, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)):
    return transforms.Compose([transforms.Resize((size, size)), transforms.ToTensor(),
                               transforms.Normalize(mean, std)])


@pytest.mark.parametrize("shape", SHAPES)
def test_pil_bilinear_equals_torchvision_resize_on_pil(shape):
    rgb = np.random.default_rng(sum(shape)).integers(0, 256, (*shape, 3), dtype=np.uint8)
    expected = np.asarray(transforms.Resize((224, 224))(Image.fromarray(rgb)))
    np.testing.assert_array_equal(resize_rgb(rgb, 224, "pil-bilinear"), expected)


def test_preprocess_equals_torchvision_resize_totensor_normalize():
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in [(300, 260), (90, 120)]]
    expected = np.stack([torchvision_pipeline(112)(Image.fromarray(c)).numpy() for c in crops])
    got = preprocess(crops, 112)
    assert got.dtype == np.float32 and got.shape == (2, 3, 112, 112)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("axis", [0, 1])
def test_numpy_port_is_bit_exact_with_pillow_along_one_axis(shape, axis):
    rgb = np.random.default_rng(7).integers(0, 256, (*shape, 3), dtype=np.uint8)
    target = (224, shape[1]) if axis == 0 else (shape[0], 224)
    expected = np.asarray(Image.fromarray(rgb).resize(target[::-1], Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(pp._pil_resample_axis(rgb, 224, axis), expected)


def test_numpy_port_without_pillow_is_within_one_grey_level_of_torchvision():
    rng = np.random.default_rng(1)
    worst, differing = 0, 0
    for shape in SHAPES:
        rgb = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
        expected = np.asarray(transforms.Resize((224, 224))(Image.fromarray(rgb))).astype(int)
        diff = np.abs(pp._resize_pil_bilinear_numpy(rgb, 224).astype(int) - expected)
        worst, differing = max(worst, diff.max()), differing + np.count_nonzero(diff)
    assert worst <= 1
    assert differing / (len(SHAPES) * 224 * 224 * 3) < 0.05


@pytest.mark.parametrize("method", sorted(pp.RESIZE_METHODS))
def test_every_method_gives_the_requested_size(method):
    rgb = np.full((50, 80, 3), 128, np.uint8)
    out = resize_rgb(rgb, 32, method)
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8
    assert np.all(out == 128)


@pytest.mark.parametrize("bad, message", [
    (np.zeros((10, 10), np.uint8), "H x W x 3 uint8"),
    (np.zeros((10, 10, 4), np.uint8), "H x W x 3 uint8"),
    (np.zeros((10, 10, 3), np.uint16), "H x W x 3 uint8"),
    (np.zeros((0, 10, 3), np.uint8), "empty"),
    ("not an array", "H x W x 3 uint8"),
])
def test_bad_crops_are_rejected_with_one_sentence(bad, message):
    with pytest.raises(ImageError, match=message):
        resize_rgb(bad, 224)


def test_unknown_method_names_the_choices():
    with pytest.raises(ImageError, match="pil-bilinear"):
        resize_rgb(np.zeros((4, 4, 3), np.uint8), 8, "lanczos")


def test_the_model_config_default_method_exists():
    training_config = pytest.importorskip("training.config")
    assert training_config.FMCAConfig().preprocessing in pp.RESIZE_METHODS
