"""Occlusion sensitivity against the closed form for a linear scorer; cost bound; the PNG it writes."""

import cv2
import numpy as np
import pytest

from fmca_rt.explain import (ExplainError, Explanation, denormalize, explain_occlusion, occlusion_map,
                             occlusion_passes, window_starts)
from fmca_rt.normalization import IMAGENET_MEAN, IMAGENET_STD
from fmca_rt.preprocess import preprocess

SIZE, PATCH = 56, 14  # a 4 x 4 patch grid keeps the closed-form loops small


class LinearScorer:
    """P(fake) = sum(weights * pixels): the drop from hiding a region is exactly its own contribution."""

    def __init__(self, weights):
        self.weights = weights
        self.images_seen, self.largest_batch = 0, 0

    def __call__(self, batch):
        self.images_seen += len(batch)
        self.largest_batch = max(self.largest_batch, len(batch))
        return (batch * self.weights).sum(axis=(1, 2, 3))


def patch_contributions(weights, pixels, grid):
    products = (weights * pixels).sum(axis=0)
    return products.reshape(grid, PATCH, grid, PATCH).sum(axis=(1, 3))


@pytest.mark.parametrize("window, stride", [(1, 1), (2, 1), (3, 2), (4, 4)])
def test_map_is_the_mean_contribution_of_the_windows_covering_each_patch(window, stride):
    rng = np.random.default_rng(0)
    pixels = rng.normal(size=(3, SIZE, SIZE)).astype(np.float32)
    weights = rng.normal(size=(3, SIZE, SIZE)).astype(np.float32) / 1000
    grid = SIZE // PATCH
    contributions = patch_contributions(weights, pixels, grid)  # hiding with the "mean" fill zeroes pixels
    expected_sum, expected_count = np.zeros((grid, grid)), np.zeros((grid, grid))
    for row in window_starts(grid, window, stride):
        for col in window_starts(grid, window, stride):
            expected_sum[row:row + window, col:col + window] += contributions[row:row + window, col:col + window].sum()
            expected_count[row:row + window, col:col + window] += 1
    scores, base, passes = occlusion_map(LinearScorer(weights), pixels, PATCH, window, stride, fill="mean",
                                         batch_size=5)
    np.testing.assert_allclose(scores, expected_sum / expected_count, rtol=1e-4, atol=1e-6)
    assert base == pytest.approx(float((weights * pixels).sum()), rel=1e-5)
    assert passes == occlusion_passes(SIZE, PATCH, window, stride)


def test_cost_is_stated_before_and_bounded_by_the_batch_size():
    assert occlusion_passes(224) == 1 + 15 * 15  # the default: 2 x 2 window, stride 1, 16 x 16 grid
    assert occlusion_passes(224, window=2, stride=2) == 1 + 8 * 8
    scorer = LinearScorer(np.ones((3, 224, 224), np.float32))
    _, _, passes = occlusion_map(scorer, np.zeros((3, 224, 224), np.float32), batch_size=16)
    assert passes == scorer.images_seen == 226 and scorer.largest_batch == 16


def test_evidence_in_one_region_lands_in_that_region():
    # P(fake) rises with the high-frequency energy of a square: the "blur" fill removes exactly that.
    rng = np.random.default_rng(1)
    pixels = np.zeros((3, SIZE, SIZE), np.float32)
    pixels[:, 14:42, 28:56] = rng.normal(size=(3, 28, 28))
    region = np.zeros((SIZE, SIZE), np.float32)
    region[14:42, 28:56] = 1

    def texture_score(batch):
        detail = np.abs(np.diff(batch, axis=3)).mean(axis=(1, 2, 3))
        return 1 / (1 + np.exp(-10 * detail))

    explanation = explain_occlusion(texture_score, pixels, IMAGENET_MEAN, IMAGENET_STD, PATCH, window=1)
    assert explanation.mass_inside(region) > 0.95
    assert explanation.heatmap.shape == (SIZE, SIZE)


def test_denormalize_returns_the_resized_crop_the_model_saw():
    rgb = np.random.default_rng(2).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    pixels = preprocess([rgb], SIZE, IMAGENET_MEAN, IMAGENET_STD)[0]
    np.testing.assert_array_equal(denormalize(pixels, IMAGENET_MEAN, IMAGENET_STD), rgb)


def test_png_is_face_and_overlay_side_by_side(tmp_path):
    crop = np.full((SIZE, SIZE, 3), 128, np.uint8)
    scores = np.zeros((4, 4), np.float32)
    scores[0, 0] = 0.3
    scores[3, 3] = -0.2  # lowered P(fake): not colored
    explanation = Explanation(crop, scores, "occlusion", 0.9, 17)
    overlay = explanation.overlay()
    assert (overlay[:7, :7] != crop[:7, :7]).any() and (overlay[-3:, -3:] == crop[-3:, -3:]).all()
    written = cv2.imread(str(explanation.save(tmp_path / "face.png")))
    assert written.shape == (SIZE + 28, 2 * SIZE, 3)
    assert list(tmp_path.iterdir()) == [tmp_path / "face.png"]
    with pytest.raises(ExplainError, match="PNG"):
        explanation.save(tmp_path / "face.jpg")
    with pytest.raises(ExplainError, match="Cannot write"):
        explanation.save(tmp_path / "missing" / "face.png")


@pytest.mark.parametrize("kwargs, message", [
    (dict(window=5), "does not fit a 4-patch grid"), (dict(stride=0), "stride 0"),
    (dict(fill="noise"), "Unknown occlusion fill")])
def test_bad_settings_are_one_clear_error(kwargs, message):
    with pytest.raises(ExplainError, match=message):
        occlusion_map(LinearScorer(1.0), np.zeros((3, SIZE, SIZE), np.float32), PATCH, **kwargs)
    with pytest.raises(ExplainError, match="3 x S x S"):
        occlusion_map(LinearScorer(1.0), np.zeros((1, 3, SIZE, SIZE), np.float32), PATCH)
