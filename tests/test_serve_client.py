"""The serving client without a server: addresses, request building, model-config checks, clear failures."""

import socket
import subprocess
import sys

import numpy as np
import pytest

from fmca_rt.errors import BackendError, DependencyError, ServeError
from fmca_rt.metadata import ModelMetadata
from fmca_rt.serve import protocol
from fmca_rt.serve.protocol import Endpoint, parse_endpoint

METADATA = ModelMetadata(config={"image_size": 112, "mean": [0.5] * 3, "std": [0.5] * 3,
                                 "class_names": ["real", "fake"], "preprocessing": "pil-bilinear"})


@pytest.mark.parametrize("url, expected", [
    ("grpc://10.0.0.5:9001", Endpoint("grpc", "10.0.0.5", 9001)),
    ("http://server", Endpoint("http", "server", 8000)),
    ("grpc://server", Endpoint("grpc", "server", 8001)),
    ("127.0.0.1:8000", Endpoint("http", "127.0.0.1", 8000)),
    ("localhost", Endpoint("http", "localhost", 8000)),
])
def test_endpoints(url, expected):
    assert parse_endpoint(url) == expected


@pytest.mark.parametrize("url", ["ftp://server", "http://server/v2/models", "http://:8000", "grpc://host:99999"])
def test_bad_endpoints_are_one_sentence(url):
    with pytest.raises(ServeError, match=r"^(A Triton server address looks like|The port in)"):
        parse_endpoint(url)


def served_config(**changes) -> dict:
    config = {"max_batch_size": 8,
              "input": [{"name": "pixels", "data_type": "TYPE_FP32", "dims": [3, 112, 112]}],
              "output": [{"name": "logits", "data_type": "TYPE_FP32", "dims": ["2"]}],  # gRPC's JSON: int64 as text
              "parameters": {"fmca_rt": {"string_value": METADATA.to_json()}}}
    config.update(changes)
    return config


def test_metadata_and_batch_from_a_served_config():
    config = served_config()
    assert protocol.metadata_from_config(config, "server") == METADATA
    assert protocol.metadata_from_config(served_config(parameters={}), "server") is None
    assert protocol.check_served_model(config, METADATA, "server") == 8


@pytest.mark.parametrize("changes, words", [
    ({"input": [{"name": "images", "data_type": "TYPE_FP32", "dims": [3, 112, 112]}]}, "has no tensor 'pixels'"),
    ({"input": [{"name": "pixels", "data_type": "TYPE_FP32", "dims": [3, 224, 224]}]}, r"\[3, 224, 224\]"),
    ({"output": [{"name": "logits", "data_type": "TYPE_FP16", "dims": [2]}]}, "TYPE_FP16"),
])
def test_served_model_that_does_not_fit_its_metadata(changes, words):
    with pytest.raises(ServeError, match=words):
        protocol.check_served_model(served_config(**changes), METADATA, "server")


def test_server_error_messages_lose_request_ids():
    class FakeServerError(Exception):
        def message(self):
            return "[request id: <id_unknown>] inference input 'pixels' data-type is 'FP64'\nmore"

    assert protocol.server_error_message(FakeServerError()) == "inference input 'pixels' data-type is 'FP64'"
    assert protocol.server_error_message(OSError("connection refused")) == "connection refused"


def test_metadata_answers_decode():
    assert protocol.decode_metadata(protocol.encode_metadata(METADATA), "server") == METADATA
    with pytest.raises(ServeError, match="did not answer with fmca-rt metadata"):
        protocol.decode_metadata(b"\xff\xfe", "server")


@pytest.mark.parametrize("kind", ["http", "grpc"])
def test_requests_carry_the_pixels_unchanged(kind):
    module = pytest.importorskip(f"tritonclient.{kind}")
    from fmca_rt.serve.client import build_request

    pixels = np.random.default_rng(0).standard_normal((3, 3, 112, 112)).astype(np.float32)
    (tensor,), (output,) = build_request(module, pixels, "pixels", "logits")
    assert (tensor.name(), tensor.datatype(), tensor.shape()) == ("pixels", "FP32", [3, 3, 112, 112])
    raw = tensor._get_binary_data() if kind == "http" else tensor._get_content()  # what goes on the wire
    assert np.array_equal(np.frombuffer(raw, np.float32).reshape(pixels.shape), pixels)
    assert output.name() == "logits"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("kind", ["http", "grpc"])
def test_no_server_is_one_sentence(kind):
    pytest.importorskip(f"tritonclient.{kind}")
    from fmca_rt.serve.client import TritonBackend

    backend = TritonBackend(f"{kind}://127.0.0.1:{free_port()}", timeout_s=5)
    with pytest.raises(ServeError, match=r"^No Triton server answers at .*start one with `fmca-rt serve"):
        backend.activate()
    assert not backend.is_active


def test_inactive_backend_refuses_to_infer():
    from fmca_rt.serve.client import TritonBackend

    with pytest.raises(BackendError, match="not active"):
        TritonBackend("grpc://127.0.0.1:1").infer(np.zeros((1, 3, 112, 112), np.float32))


def test_importing_the_package_pulls_in_no_serving_library():
    code = ("import sys, fmca_rt, fmca_rt.cli, fmca_rt.serve, fmca_rt.serve.client, fmca_rt.serve.server, "
            "fmca_rt.serve.loadtest; print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('tritonclient', 'pytriton', 'grpc', 'gevent')))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"


def test_serve_without_pytriton_names_the_fix(capsys):
    try:
        import pytriton  # noqa: F401
        pytest.skip("nvidia-pytriton is installed here; tests/test_serve_server.py covers the server")
    except ImportError:
        pass
    from fmca_rt.cli import main
    from fmca_rt.serve.server import import_pytriton

    with pytest.raises(DependencyError, match=r"pip install 'fmca-rt\[serve\]'"):
        import_pytriton()
    assert main(["serve", "--model", "missing.onnx"]) == 2
    error = capsys.readouterr().err.strip()
    assert "nvidia-pytriton" in error and len(error.splitlines()) == 1


def test_pytriton_stub_gets_this_interpreters_libpython(monkeypatch, tmp_path):
    import sysconfig

    from fmca_rt.serve import server

    (tmp_path / "libpython3.11.so.1.0").write_bytes(b"")
    config = {"LIBDIR": str(tmp_path), "INSTSONAME": "libpython3.11.so.1.0"}
    monkeypatch.setattr(sysconfig, "get_config_var", config.get)
    monkeypatch.setenv("LD_LIBRARY_PATH", "/opt/a:/opt/b")
    server.use_this_interpreters_libpython()
    server.use_this_interpreters_libpython()  # idempotent
    assert server.os.environ["LD_LIBRARY_PATH"] == f"{tmp_path}:/opt/a:/opt/b"
    config["INSTSONAME"] = "libpython3.11.a"  # a static build: nothing to put first
    monkeypatch.setenv("LD_LIBRARY_PATH", "")
    server.use_this_interpreters_libpython()
    assert server.os.environ["LD_LIBRARY_PATH"] == ""
