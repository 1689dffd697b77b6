"""The TensorRT code against NVIDIA's real Python bindings, one version per child process: 10.3 (JetPack 6's
API), 10.13 and 11.4 (JetPack 7's).

Each child imports the bindings wheel downloaded from the registry (`tensorrt_wheels`, cached, never installed
into the environment) over stub native libraries, and runs every `trt_api` test: tests/tensorrt_real (API surface,
the plugins through the real `tensorrt.plugin`) and the build, backend and calibration tests of the other TensorRT
test files, whose stand-ins are then checked call by call against the real classes. Skipped, with the reason,
where pip cannot download a wheel or no C compiler exists.
"""

import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from tensorrt_wheels import VERSIONS, Unavailable, child_environment, prepare

REPO = Path(__file__).resolve().parents[1]
CHILD_TESTS = ["tests/tensorrt_real", "tests/test_tensorrt_backend.py", "tests/test_tensorrt_builder.py",
               "tests/test_tensorrt_build_flow.py", "tests/test_tensorrt_int8.py"]


@pytest.fixture(scope="module")
def tiny_plugin_onnx(tmp_path_factory):
    from tensorrt_models import export_tiny_plugin_onnx

    return export_tiny_plugin_onnx(tmp_path_factory.mktemp("plugins") / "tiny.plugins.onnx")


def junit_results(report: Path) -> dict[str, str]:
    """test id -> "passed", "skipped: reason", "failed" or "error"."""
    results = {}
    for case in ElementTree.parse(report).iter("testcase"):
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error"):
                outcome = child.tag
            elif child.tag == "skipped":
                outcome = f"skipped: {child.get('message', '')}"
        results[f"{case.get('classname')}.{case.get('name')}"] = outcome
    return results


@pytest.mark.slow
@pytest.mark.parametrize("version", sorted(VERSIONS, key=lambda v: tuple(map(int, v.split(".")))))
def test_the_tensorrt_code_against_nvidias_bindings(version, tiny_onnx_56px, tiny_plugin_onnx, tmp_path):
    try:
        bindings = prepare(version)
    except Unavailable as reason:
        pytest.skip(f"NVIDIA's TensorRT {version} bindings are not available here: {reason}")
    env = child_environment(bindings, REPO)
    env.update(FMCA_TEST_TINY_ONNX=str(tiny_onnx_56px), FMCA_TEST_TINY_PLUGIN_ONNX=str(tiny_plugin_onnx))
    report = tmp_path / "report.xml"
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "trt_api",
                             "-W", "ignore::DeprecationWarning", f"--junitxml={report}", *CHILD_TESTS],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=1200)
    output = (result.stdout + result.stderr)[-6000:]
    assert result.returncode == 0, f"TensorRT {bindings.version}:\n{output}"
    results = junit_results(report)
    # The child really ran on these bindings (not on the stand-ins), and ran the plugin tests where they apply.
    assert results["tests.tensorrt_real.test_api_surface.test_this_process_runs_the_expected_bindings"] == "passed"
    plugin_outcomes = {k: v for k, v in results.items() if ".test_plugins.test_attention_callbacks" in k}
    has_plugins = tuple(int(part) for part in bindings.version.split(".")[:2]) >= (10, 9)
    assert plugin_outcomes and all((v == "passed") == has_plugins for v in plugin_outcomes.values()), plugin_outcomes
    assert sum(v == "passed" for v in results.values()) >= 30, output


def test_a_wheel_pip_cannot_get_is_a_reason_to_skip(tmp_path, monkeypatch):
    import tensorrt_wheels

    monkeypatch.setenv("FMCA_TEST_CACHE", str(tmp_path))
    monkeypatch.setitem(tensorrt_wheels.VERSIONS, "0.0", ("tensorrt-cu12-bindings", "0.0.0.0"))
    with pytest.raises(Unavailable, match=r"pip could not fetch tensorrt-cu12-bindings==0\.0\.0\.0"):
        prepare("0.0")
    assert not any(tmp_path.rglob("tensorrt_bindings"))  # nothing half-made is taken for the wheel


def test_no_compiler_is_a_reason_to_skip(tmp_path, monkeypatch):
    import tensorrt_wheels

    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setattr(tensorrt_wheels.shutil, "which", lambda name: None)
    with pytest.raises(Unavailable, match="no C compiler"):
        tensorrt_wheels._compile_stubs(10, tmp_path)
