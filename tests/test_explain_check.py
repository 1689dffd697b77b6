"""`python -m training.explanation_check`: the heat shares it reports are those of the explanation and the mask."""

import cv2
import numpy as np
import pytest
import torch

from training import FMCANet
from training.explanation_check import REGIONS, check_face, explain_face, main
from training.self_blend import self_blend


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return FMCANet.from_preset("tiny", image_size=56).eval()


def test_shares_match_a_direct_computation(model):
    rgb = np.random.default_rng(0).integers(0, 256, (56, 56, 3), dtype=np.uint8)
    row = check_face(model, rgb, seed=3, stride=2)
    fake, mask = self_blend(rgb, np.random.default_rng(3))
    heat = np.clip(explain_face(model, fake, "occlusion", 2).heatmap, 0, None)
    for name, level in REGIONS.items():
        region = mask > level * mask.max()
        assert row[f"area_of_{name}"] == pytest.approx(region.mean())
        assert row[f"heat_in_{name}"] == pytest.approx(heat[region].sum() / heat.sum(), rel=1e-5)
    assert row["passes"] == 1 + 2 * 2  # a 4 x 4 grid, 2 x 2 windows at stride 2


def test_command_writes_outlined_explanations(model, tmp_path, capsys):
    (tmp_path / "data" / "valid" / "real").mkdir(parents=True)
    rng = np.random.default_rng(1)
    for i in range(3):
        cv2.imwrite(str(tmp_path / "data" / "valid" / "real" / f"real_{i}.png"),
                    rng.integers(0, 256, (80, 80, 3), dtype=np.uint8))
    model.save_checkpoint(tmp_path / "model.pth")
    assert main(["--checkpoint", str(tmp_path / "model.pth"), "--data", str(tmp_path / "data"), "--count", "2",
                 "--stride", "2", "--out", str(tmp_path / "out")]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["real_0.png", "real_2.png"]
    printed = capsys.readouterr().out
    assert "changed region: heat inside" in printed and "5 forward passes per face" in printed
    assert main(["--checkpoint", str(tmp_path / "model.pth"), "--data", str(tmp_path / "none")]) == 2


def test_faces_without_positive_heat_are_counted_not_averaged():
    from training.explanation_check import density_ratio, summarize

    def row(name, heat):
        values = {"name": name, "fake_probability": 0.5, "passes": 50}
        for region in REGIONS:
            values.update({f"heat_in_{region}": heat, f"area_of_{region}": 0.4,
                           f"in_to_out_{region}": heat / (1 - heat) if heat == heat else heat,
                           f"density_{region}": density_ratio(heat, 0.4)})
        return values

    text = summarize([row("a", 0.8), row("b", float("nan"))])
    assert "1 faces have no positive heat" in text
    assert "changed region: heat inside 80.0% (median 80.0%)" in text and "on 1/1 faces" in text


def high_frequency_energy(rgb, where):
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return float(np.abs(cv2.Laplacian(gray, cv2.CV_32F))[where].mean())


@pytest.mark.parametrize("fakes", ["self-blend", "demo"])
def test_each_kind_of_fake_changes_its_source_the_named_way(fakes):
    from skimage import data

    from training.explanation_check import make_fake

    real = np.ascontiguousarray(cv2.resize(data.astronaut()[30:200, 140:310], (112, 112), interpolation=cv2.INTER_AREA))
    for seed in range(3):
        effects = {}
        for change in ("color", "resample", "sharpen", "blur"):
            fake, mask = make_fake(real, seed, fakes, change)
            changed = np.abs(fake.astype(int) - real.astype(int)).max(axis=2) > 1
            assert changed.any() and not changed[mask < 1e-3].any()  # only where blended
            core = mask > 0.9 * mask.max()
            effects[change] = (high_frequency_energy(fake, core) / high_frequency_energy(real, core),
                               np.abs(fake[core].mean(0) - real[core].mean(0)).max())
        if fakes == "demo":  # full-strength blends (self-blend's partial ones average two misaligned copies)
            assert effects["sharpen"][0] > 1.4 and effects["blur"][0] < 0.5 and effects["resample"][0] < 0.5
            assert effects["color"][1] > 5  # grey levels of mean color shift in the blended core


def test_an_unknown_kind_of_fake_is_one_sentence():
    from fmca_rt.errors import DataError
    from training.explanation_check import make_fake

    with pytest.raises(DataError, match="choose fakes from"):
        make_fake(np.zeros((56, 56, 3), np.uint8), 0, "self-blend", "swap")


def test_density_ratio_is_heat_per_area_inside_over_outside():
    from training.explanation_check import density_ratio

    assert density_ratio(0.5, 0.5) == pytest.approx(1.0)
    assert density_ratio(0.8, 0.2) == pytest.approx((0.8 / 0.2) / (0.2 / 0.8))
    assert density_ratio(1.0, 0.3) == float("inf") and np.isnan(density_ratio(0.4, 0.0))
