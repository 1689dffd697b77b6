"""The serving client and the load test's answer checks against a fake Triton server (tests/triton_fakes.py).

The served model is the session's trained test model, so a wrong answer moves P(fake) and labels visibly.
A server that swaps the logits, answers a batch's rows in the wrong order or answers with another request's
result must be caught, and so must a client that ignores the server's max batch size.
"""

import sys

import numpy as np
import pytest

from fmca_rt import Detector
from fmca_rt.backends import create_backend
from fmca_rt.errors import BackendError, ServeError
from fmca_rt.operating_points import Calibration
from fmca_rt.preprocess import preprocess
from fmca_rt.serve.client import TritonBackend, remote_detector
from fmca_rt.serve.loadtest import compare, make_requests, run_load
from triton_fakes import FakeTritonServer, fake_client_module

PROTOCOLS = ["http", "grpc"]


@pytest.fixture
def serve(monkeypatch, demo_onnx):
    """start(protocol, **server options) -> (the fake server, its URL), tritonclient.<protocol> faked."""
    for protocol in PROTOCOLS:
        pytest.importorskip(f"tritonclient.{protocol}")

    def start(protocol: str, **options):
        server = FakeTritonServer(demo_onnx, **options)
        monkeypatch.setitem(sys.modules, f"tritonclient.{protocol}", fake_client_module(server, protocol))
        return server, f"{protocol}://127.0.0.1:{8000 if protocol == 'http' else 8001}"

    return start


@pytest.fixture(scope="module")
def pixels(demo_onnx, held_out):
    with create_backend(demo_onnx) as local:
        meta = local.metadata
        return preprocess(held_out.crops[::5], meta.image_size, meta.mean, meta.std, meta.preprocessing)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_the_fake_offers_nothing_the_real_tritonclient_lacks(protocol, demo_onnx):
    real = pytest.importorskip(f"tritonclient.{protocol}")
    fake = fake_client_module(FakeTritonServer(demo_onnx), protocol)
    assert {n for n in vars(fake) if not n.startswith("_")} <= set(dir(real))
    methods = {n for n, v in vars(fake.InferenceServerClient).items() if callable(v) and not n.startswith("_")}
    assert methods <= set(dir(real.InferenceServerClient))
    client = fake.InferenceServerClient("127.0.0.1:1")
    with pytest.raises(TypeError):  # an option this protocol's real client does not take
        client.is_model_ready("fmca", **({"client_timeout": 1} if protocol == "http" else {"query_params": {}}))
    assert fake.InferInput is real.InferInput and fake.InferRequestedOutput is real.InferRequestedOutput


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_remote_detector_gives_the_in_process_results(protocol, serve, demo_onnx, held_out):
    server, url = serve(protocol, max_batch=4)
    images = [np.ascontiguousarray(crop[:, :, ::-1]) for crop in held_out.crops[::4]]  # 20 crops, both classes
    with Detector(demo_onnx, faces="none") as local, remote_detector(url, faces="none", batch_size=16) as remote:
        expected, served = local.predict_batch(images), remote.predict_batch(images)
        assert remote.metadata == local.metadata
    assert [r.label for r in served] == [r.label for r in expected] and {r.label for r in served} == {"real", "fake"}
    np.testing.assert_allclose([r.fake_prob for r in served], [r.fake_prob for r in expected], rtol=0, atol=1e-6)
    assert server.batches == [4, 4, 4, 4, 4]  # the detector's batches of 16 split to the server's max batch


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_client_that_ignores_the_max_batch_is_refused(protocol, serve, pixels):
    server, url = serve(protocol, max_batch=3)
    with TritonBackend(url) as backend:
        assert backend.batch_limits == (1, 3)
        backend.infer(pixels[:7])
        assert server.batches == [3, 3, 1]
        backend.batch_limits = (1, None)  # what a client that ignores the server's max batch would send
        with pytest.raises(BackendError, match="batch-size must be <= 3"):
            backend.infer(pixels[:7])


def test_a_served_model_unlike_its_metadata_or_absent_is_one_sentence(serve):
    server, url = serve("grpc")
    server.config["input"][0]["dims"] = ["3", "56", "56"]
    with pytest.raises(ServeError, match=r"declares 'pixels' as TYPE_FP32 \[3, 56, 56\]"):
        TritonBackend(url).activate()
    with pytest.raises(ServeError, match="has no ready model 'other'"):
        TritonBackend(url, model_name="other").activate()


def load_test(url, protocol, pixels, demo_onnx):
    """The load test's own steps: in-process answers, the served answers from 2 clients, then its comparison."""
    requests = make_requests(pixels, total=12, per_request=3)
    with create_backend(demo_onnx) as local:
        expected = [local.infer(batch) for batch in requests]
        calibration = Calibration.from_dict(local.metadata.calibration)
    result, answers = run_load(url, protocol, requests, clients=2, time_limit_s=60)
    compare(result, answers, expected, calibration, fake_index=1, threshold=0.5)
    return result


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_the_load_test_passes_a_faithful_server(protocol, serve, pixels, demo_onnx):
    _, url = serve(protocol)
    result = load_test(url, protocol, pixels, demo_onnx)
    assert result.ok and len(result.latencies_s) == 12 and result.max_prob_delta <= 1e-6


@pytest.mark.parametrize("fault", FakeTritonServer.FAULTS)
def test_the_load_test_catches_a_server_that_answers_wrongly(fault, serve, pixels, demo_onnx):
    _, url = serve("grpc", fault=fault)
    result = load_test(url, "grpc", pixels, demo_onnx)
    assert not result.ok
    assert result.label_mismatches > 0 and result.max_prob_delta > 0.1
