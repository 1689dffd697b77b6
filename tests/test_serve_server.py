"""A real Triton server (PyTriton) on 127.0.0.1 serving the tiny model: answers equal the in-process Detector's,
concurrent load, malformed requests and vanishing clients. Skipped where PyTriton is not installed or cannot
start (it needs numpy < 2, so it lives in its own environment: see docs/serving.md)."""

import numpy as np
import pytest

pytest.importorskip("pytriton", reason="nvidia-pytriton is not installed (it pins numpy<2: install "
                    "'fmca-rt[serve]' in its own environment, see docs/serving.md)")
pytest.importorskip("tritonclient.http", reason="tritonclient[http,grpc] is not installed")
torch = pytest.importorskip("torch")

from fmca_rt import Detector  # noqa: E402
from fmca_rt.errors import BackendError, FMCAError  # noqa: E402
from fmca_rt.serve import loadtest  # noqa: E402
from fmca_rt.serve.client import TritonBackend, remote_detector  # noqa: E402
from fmca_rt.serve.misuse import run_misuse_checks  # noqa: E402
from fmca_rt.serve.protocol import parse_endpoint  # noqa: E402
from fmca_rt.serve.server import ClassifierServer  # noqa: E402
from sdk_images import astronaut_bgr, grace_hopper_path  # noqa: E402

IMAGE_SIZE = 112
MAX_BATCH = 8


@pytest.fixture(scope="module")
def served_model(tmp_path_factory):
    """The tiny model exported straight from FMCANet (not through a checkpoint file, whose numpy-scalar pickle
    allowance needs numpy 2's layout; PyTriton's environment has numpy 1.x)."""
    from export.onnx import export_onnx
    from training import FMCANet

    torch.manual_seed(0)
    return export_onnx(FMCANet.from_preset("tiny", image_size=IMAGE_SIZE), tmp_path_factory.mktemp("serve") / "tiny.onnx")


@pytest.fixture(scope="module")
def server(served_model, tmp_path_factory):
    ports = [loadtest.free_port() for _ in range(3)]
    instance = ClassifierServer(served_model, http_port=ports[0], grpc_port=ports[1], metrics_port=ports[2],
                                max_batch=MAX_BATCH, queue_delay_us=2000,
                                log_file=tmp_path_factory.mktemp("log") / "tritonserver.log")
    try:
        instance.start()
    except FMCAError as error:
        pytest.skip(f"the Triton server cannot start here: {error}")
    yield instance
    instance.stop()


@pytest.fixture(scope="module")
def local(served_model):
    with Detector(served_model, threshold=0.5) as detector:
        yield detector


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_remote_detector_gives_the_in_process_results(server, local, protocol):
    images = [grace_hopper_path(), astronaut_bgr()]
    with remote_detector(server.urls[protocol], threshold=0.5) as remote:
        assert remote.metadata == local.metadata and remote.backend.batch_limits == (1, MAX_BATCH)
        got = [r.to_dict() for r in remote.predict_batch(images)]
    want = [r.to_dict() for r in local.predict_batch(images)]
    assert sum(len(r["faces"]) for r in want) >= 2  # real faces were classified, not just "no face"
    assert got == want


def test_logits_match_for_batches_larger_than_the_servers(server, local):
    pixels = np.random.default_rng(3).standard_normal((MAX_BATCH * 2 + 3, 3, IMAGE_SIZE, IMAGE_SIZE)).astype(np.float32)
    with TritonBackend(server.urls["grpc"]) as backend:
        np.testing.assert_allclose(backend.infer(pixels), local.backend.infer(pixels), rtol=0, atol=1e-6)


@pytest.mark.parametrize("pixels, words", [
    (np.zeros((1, 3, IMAGE_SIZE, IMAGE_SIZE), np.float64), "float32"),
    (np.zeros((1, 3, 64, 64), np.float32), "B x 3 x 112 x 112"),
])
def test_client_refuses_bad_pixels_before_sending(server, pixels, words):
    with TritonBackend(server.urls["http"]) as backend:
        with pytest.raises(BackendError, match=words):
            backend.infer(pixels)


def test_client_answers_an_empty_batch_like_every_backend(server):
    with TritonBackend(server.urls["grpc"]) as backend:
        assert backend.infer(np.zeros((0, 3, IMAGE_SIZE, IMAGE_SIZE), np.float32)).shape == (0, 2)


def test_concurrent_clients_get_the_in_process_answers(server, local):
    rng = np.random.default_rng(5)
    pixels = rng.standard_normal((12, 3, IMAGE_SIZE, IMAGE_SIZE)).astype(np.float32)
    requests = loadtest.make_requests(pixels, total=24, per_request=3)
    expected = [local.backend.infer(batch) for batch in requests]
    server.merged_requests.clear()
    for protocol in ("http", "grpc"):
        result, answers = loadtest.run_load(server.urls[protocol], protocol, requests, clients=4, time_limit_s=60)
        loadtest.compare(result, answers, expected, local.calibration, 1, 0.5)
        assert result.errors == [] and len(result.latencies_s) == len(requests)
        assert result.ok, (result.max_prob_delta, result.label_mismatches)
    assert max(server.merged_requests) > 1  # the dynamic batcher merged concurrent requests into one batch
    assert sum(n * count for n, count in server.merged_requests.items()) == 2 * len(requests)


def test_malformed_requests_and_vanishing_clients_leave_the_server_alive(server, local):
    reference = np.random.default_rng(7).standard_normal((2, 3, IMAGE_SIZE, IMAGE_SIZE)).astype(np.float32)
    expected = local.backend.infer(reference)
    probes = {p: TritonBackend(server.urls[p]).activate() for p in ("http", "grpc")}

    def good_request(protocol):
        return bool(np.allclose(probes[protocol].infer(reference), expected, atol=1e-6))

    meta = local.metadata
    outcomes = run_misuse_checks({p: parse_endpoint(server.urls[p]) for p in probes}, server.model_name,
                                 IMAGE_SIZE, MAX_BATCH, meta.input_name, meta.output_name, good_request)
    for probe in probes.values():
        probe.deactivate()
    answers = {(o.protocol, o.check): o.answer for o in outcomes}
    assert all(o.ok for o in outcomes), [o for o in outcomes if not o.ok]
    assert len(outcomes) == 13
    for protocol in probes:
        assert "unexpected shape for input 'pixels'" in answers[protocol, "wrong shape"]
        assert "data-type is 'FP64', but model 'fmca' expects 'FP32'" in answers[protocol, "wrong dtype"]
        assert "byte size mismatch" in answers[protocol, "empty batch"]
        assert f"batch-size must be <= {MAX_BATCH}" in answers[protocol, f"batch over {MAX_BATCH}"]


def test_load_test_command(served_model, capsys):
    """The command starts its own server on free loopback ports and stops by itself."""
    assert loadtest.main(["--model", str(served_model), "--clients", "3", "--requests", "12", "--time-limit", "60",
                          "--crops-per-request", "2", "--max-batch", "4"]) == 0
    out = capsys.readouterr().out
    assert "| http | 3 | 12 | 24 | 0 |" in out and "| grpc | 3 | 12 | 24 | 0 |" in out
    assert "| NO |" not in out


def test_serve_command_serves_until_interrupted(served_model, local, tmp_path):
    """`fmca-rt serve` as a user runs it: ready on loopback, answers like the Detector, Ctrl-C ends it cleanly."""
    import signal
    import subprocess
    import sys
    import time

    http, grpc, metrics = (loadtest.free_port() for _ in range(3))
    command = [sys.executable, "-m", "fmca_rt", "serve", "--model", str(served_model), "--http-port", str(http),
               "--grpc-port", str(grpc), "--metrics-port", str(metrics), "--server-log", str(tmp_path / "log")]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                backend = TritonBackend(f"grpc://127.0.0.1:{grpc}", timeout_s=5).activate()
                break
            except FMCAError:
                assert process.poll() is None, process.communicate()[1]
                assert time.monotonic() < deadline, "the server did not become ready within 90 s"
                time.sleep(0.5)
        pixels = np.random.default_rng(9).standard_normal((3, 3, IMAGE_SIZE, IMAGE_SIZE)).astype(np.float32)
        with backend:
            np.testing.assert_allclose(backend.infer(pixels), local.backend.infer(pixels), rtol=0, atol=1e-6)
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert f"http://127.0.0.1:{http} and grpc://127.0.0.1:{grpc}; Ctrl-C stops." in out


def test_tritonserver_accepts_the_generated_configs(served_model, local, tmp_path):
    """PyTriton's tritonserver binary reads each generated config.pbtxt and gets as far as loading the backend
    (it ships only the python backend, so onnxruntime and tensorrt stop there); a broken config stops earlier."""
    import hashlib
    import subprocess
    from pathlib import Path

    import pytriton

    from export import triton_repo
    from fmca_rt.backends.tensorrt_sidecar import EngineSidecar, write_engine

    plan = b"placeholder plan: tritonserver stops before reading it"
    engine = tmp_path / "fmca.engine"
    write_engine(engine, plan, EngineSidecar(
        metadata=local.metadata, tensorrt_version="10.3.0", gpu_name="Orin", compute_capability=(8, 7),
        precision="fp16", batch_profile=(1, 4, 8), onnx_sha256="0" * 64,
        engine_sha256=hashlib.sha256(plan).hexdigest(), build_command="python -m export.build_engine"))
    binary = Path(pytriton.__file__).parent / "tritonserver"

    def load(repository: Path) -> str:
        ports = [str(loadtest.free_port()) for _ in range(3)]
        command = [str(binary / "bin" / "tritonserver"), "--model-repository", str(repository), "--backend-directory",
                   str(binary / "backends"), "--http-port", ports[0], "--grpc-port", ports[1], "--metrics-port",
                   ports[2], "--exit-on-error=true"]
        return subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120).stdout

    for model, backend in ((served_model, "onnxruntime"), (engine, "tensorrt")):
        model_dir = triton_repo.write_repository(model, tmp_path / backend)
        log = load(tmp_path / backend)
        assert f"unable to find backend library for backend '{backend}'" in log, log[-2000:]
        config = model_dir / "config.pbtxt"
        config.write_text(config.read_text().replace("max_batch_size", "max_batchsize"))
        assert "failed to read text proto" in load(tmp_path / backend)


def test_a_server_that_goes_away_is_one_sentence(served_model):
    ports = [loadtest.free_port() for _ in range(3)]
    server = ClassifierServer(served_model, http_port=ports[0], grpc_port=ports[1], metrics_port=ports[2],
                              log_file="/dev/null").start()
    backends = [TritonBackend(server.urls[p], timeout_s=10).activate() for p in ("http", "grpc")]
    server.stop()
    pixels = np.zeros((1, 3, IMAGE_SIZE, IMAGE_SIZE), np.float32)
    for backend in backends:
        with pytest.raises(BackendError, match=r"^The Triton server at .* (refused the request|did not answer)"):
            backend.infer(pixels)
        backend.deactivate()
