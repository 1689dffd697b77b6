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
    from training.explanation_check import summarize

    def row(name, heat):
        values = {"name": name, "fake_probability": 0.5, "passes": 50}
        for region in REGIONS:
            values.update({f"heat_in_{region}": heat, f"area_of_{region}": 0.4,
                           f"in_to_out_{region}": heat / (1 - heat) if heat == heat else heat})
        return values

    text = summarize([row("a", 0.8), row("b", float("nan"))])
    assert "1 faces have no positive heat" in text
    assert "changed region: heat inside 80.0% (median 80.0%)" in text and "on 1/1 faces" in text
