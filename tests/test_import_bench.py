"""`fmca-rt benchmark --model imported.onnx`: the imported classifier timed beside FMCA-Net on the same backends."""

import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from imported_models import imported_fake_real  # noqa: E402

from fmca_rt.cli import main  # noqa: E402


def test_imported_onnx_beside_fmca_net(tmp_path, capsys):
    imported = imported_fake_real(tmp_path)
    capsys.readouterr()
    out = tmp_path / "side.json"
    assert main(["benchmark", "--model", str(imported.onnx_path), "--compare", "tiny", "--quick", "--batch", "1,2",
                 "--work-dir", str(tmp_path / "work"), "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    rows = {(r["model"], r["backend"], r["batch"]): r for r in result["rows"]}
    assert set(rows) == {(m, b, n) for m in (imported.onnx_path.name, "FMCA-Net tiny")
                         for b in ("onnxruntime-fp32", "cpu") for n in (1, 2)}
    for (model, backend, batch), row in rows.items():
        fmca = rows[("FMCA-Net tiny", backend, batch)]
        assert row["vs_fmca"] == pytest.approx(row["median_ms"] / fmca["median_ms"], rel=1e-9)
        assert row["input_px"] == (96 if model != "FMCA-Net tiny" else 224) and row["iterations"] == 2
    text = capsys.readouterr().out
    assert "load average" in result["machine"] and "| fake-real-imported.onnx | 96 | cpu | 2 |" in text
