"""`python -m fmca_rt.bench.int8_parts`: static INT8 part by part on the trained tiny model, the measurement the
CPU mode's OpenVINO form rests on."""

import json

import pytest

pytest.importorskip("openvino")
pytest.importorskip("nncf")
pytest.importorskip("matplotlib")
pytest.importorskip("skimage")

from fmca_rt.backends.cpu_profile import Timing  # noqa: E402
from fmca_rt.bench import int8_parts  # noqa: E402

BASE = "vit-blocks"
FIRST_CONVOLUTION = "vit-blocks + first-frequency-convolution"


def test_every_part_has_a_row_the_base_first_and_the_cpu_mode_s_form_last():
    rows = list(int8_parts.forms_to_compare())
    assert rows[:2] == ["NNCF static INT8 everywhere", BASE]
    assert rows[-1].startswith("the CPU mode's form") and FIRST_CONVOLUTION in rows


def test_on_a_trained_model_the_first_frequency_convolution_is_what_static_int8_breaks(demo_onnx, tmp_path):
    result = int8_parts.run(demo_onnx, "f32", Timing(warmup=1, rounds=1, block=1), rows=[BASE, FIRST_CONVOLUTION])
    delta = {row["form"]: row["max_abs_fake_prob_diff"] for row in result["rows"]}
    assert delta[BASE] < 0.05 and delta[FIRST_CONVOLUTION] > 0.1  # measured: about 0.011 and 0.28
    assert all(row["latency_min_ms"] > 0 for row in result["rows"])
    table = int8_parts.markdown(result)
    assert f"| {FIRST_CONVOLUTION} | {delta[FIRST_CONVOLUTION]:.4f} | no |" in table
    assert json.loads(json.dumps(result)) == result
