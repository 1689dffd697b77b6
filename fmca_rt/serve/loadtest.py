"""Load test on loopback: a Triton server in-process, N concurrent clients, answers checked against the model.

    python -m fmca_rt.serve.loadtest --model fmca.onnx [--clients 8] [--requests 400] [--time-limit 60]
        [--crops-per-request 4] [--protocol http grpc] [--images PHOTO...]

Starts `ClassifierServer` on 127.0.0.1 (free ports), sends at most `--requests` requests per protocol from
`--clients` threads (each with its own TritonBackend) and stops by itself at the time limit. Every answer is
compared with the same model run in-process on the same pixels (P(fake) and labels); the in-process backend
also runs the same requests one by one, for a side-by-side throughput ratio. Then the misuse checks run
(misuse.py). Prints two tables; exit status 0 only when every answer matched, no request failed, every
malformed request was rejected and the server survived everything.
"""

from __future__ import annotations

import argparse
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..backends import create_backend
from ..errors import FMCAError
from ..operating_points import Calibration
from ..preprocess import preprocess
from .client import TritonBackend
from .misuse import misuse_table, run_misuse_checks
from .protocol import DEFAULT_MODEL_NAME, parse_endpoint
from .server import ClassifierServer

MATCH_TOLERANCE = 1e-5  # |delta P(fake)|: batch composition may reorder float sums, nothing more


@dataclass
class LoadResult:
    protocol: str
    clients: int
    latencies_s: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    max_prob_delta: float = 0.0
    label_mismatches: int = 0
    wall_s: float = 0.0
    crops: int = 0
    merged: float = float("nan")  # mean requests per batch the server executed (dynamic batching at work)

    @property
    def ok(self) -> bool:
        return not self.errors and self.label_mismatches == 0 and self.max_prob_delta <= MATCH_TOLERANCE


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def crop_pool(images: list[Path], image_size: int, count: int = 16, seed: int = 0) -> list[np.ndarray]:
    """RGB face crops from the images (Haar faces, 1.3x squares; mirrored too), else seeded random crops."""
    from ..faces import HaarFaceDetector, crop_faces
    from ..images import load_image

    crops = []
    for image in images:
        bgr, _ = load_image(image)
        found = crop_faces(bgr, HaarFaceDetector().detect(bgr)) or [np.ascontiguousarray(bgr[:, :, ::-1])]
        crops += found + [np.ascontiguousarray(crop[:, ::-1]) for crop in found]
    rng = np.random.default_rng(seed)
    while len(crops) < count:
        side = int(rng.integers(image_size // 2, image_size * 2))
        crops.append(rng.integers(0, 256, (side, side, 3), dtype=np.uint8))
    return crops


def make_requests(pixels: np.ndarray, total: int, per_request: int, seed: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [pixels[rng.choice(len(pixels), per_request, replace=len(pixels) < per_request)] for _ in range(total)]


def run_load(url: str, protocol: str, requests: list[np.ndarray], clients: int, time_limit_s: float,
             model_name: str = DEFAULT_MODEL_NAME) -> tuple[LoadResult, list[np.ndarray | None]]:
    """Send the requests from `clients` threads; stop when all are sent or time is up."""
    result = LoadResult(protocol, clients)
    answers: list[np.ndarray | None] = [None] * len(requests)
    next_index, lock = iter(range(len(requests))), threading.Lock()
    deadline = time.perf_counter() + time_limit_s

    def client_loop() -> None:
        try:
            backend = TritonBackend(url, model_name=model_name, timeout_s=max(time_limit_s, 1.0)).activate()
        except FMCAError as error:
            with lock:
                result.errors.append(str(error))
            return
        with backend:
            while time.perf_counter() < deadline:
                with lock:
                    index = next(next_index, None)
                if index is None:
                    return
                start = time.perf_counter()
                try:
                    answers[index] = backend.infer(requests[index])
                except FMCAError as error:
                    with lock:
                        result.errors.append(str(error))
                    continue
                with lock:
                    result.latencies_s.append(time.perf_counter() - start)
                    result.crops += len(requests[index])

    threads = [threading.Thread(target=client_loop, name=f"load-client-{i}", daemon=True) for i in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=time_limit_s + 30)
    result.wall_s = time.perf_counter() - start
    return result, answers


def compare(result: LoadResult, answers: list, expected: list[np.ndarray], calibration: Calibration,
            fake_index: int, threshold: float) -> None:
    for got, want in zip(answers, expected):
        if got is None:
            continue
        p_got, p_want = (calibration.fake_probability(logits, fake_index) for logits in (got, want))
        result.max_prob_delta = max(result.max_prob_delta, float(np.max(np.abs(p_got - p_want))))
        result.label_mismatches += int(np.sum((p_got >= threshold) != (p_want >= threshold)))


def load_table(rows: list[LoadResult], baseline_crops_per_s: float) -> str:
    lines = ["| protocol | clients | requests | crops | errors | wall s | req/s | crops/s | vs in-process | p50 ms | "
             "p99 ms | requests per server batch | max abs dP(fake) | label mismatches |", "|" + "---|" * 14]
    for r in rows:
        done = len(r.latencies_s)
        p50, p99 = (np.percentile(r.latencies_s, q) * 1e3 if done else float("nan") for q in (50, 99))
        rate = r.crops / r.wall_s if r.wall_s else 0.0
        lines.append(f"| {r.protocol} | {r.clients} | {done} | {r.crops} | {len(r.errors)} | {r.wall_s:.2f} | "
                     f"{done / r.wall_s:.1f} | {rate:.1f} | {rate / baseline_crops_per_s:.2f}x | {p50:.1f} | "
                     f"{p99:.1f} | {r.merged:.2f} | {r.max_prob_delta:.1e} | {r.label_mismatches} |")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m fmca_rt.serve.loadtest", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", "-m", required=True, type=Path, help="a .onnx, .engine or .pth model")
    parser.add_argument("--backend", default="auto", help="the server's backend (default: by file type)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent client threads")
    parser.add_argument("--requests", type=int, default=200, help="requests per protocol (the load stops there)")
    parser.add_argument("--time-limit", type=float, default=60.0, help="seconds per protocol (the load stops there)")
    parser.add_argument("--crops-per-request", type=int, default=4, help="face crops in each request")
    parser.add_argument("--protocol", nargs="+", choices=["http", "grpc"], default=["http", "grpc"])
    parser.add_argument("--max-batch", type=int, help="the server's largest dynamic batch")
    parser.add_argument("--queue-delay-us", type=int, default=1000, help="the dynamic batcher's queue delay")
    parser.add_argument("--images", nargs="*", type=Path, default=[], help="photos whose faces are the crops sent")
    parser.add_argument("--server-log", type=Path, help="write tritonserver's log here (default: discarded)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.clients < 1 or args.requests < 1 or args.crops_per_request < 1 or args.time_limit <= 0:
        print("loadtest: error: --clients, --requests, --crops-per-request and --time-limit must be positive.",
              file=sys.stderr)
        return 2
    try:
        return run(args)
    except FMCAError as error:
        print(f"loadtest: error: {error}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace) -> int:
    local = create_backend(args.model, args.backend).activate()
    meta = local.metadata
    calibration = Calibration.from_dict(meta.calibration, str(args.model))
    form, threshold = meta.output_form, calibration.operating_point(None).threshold
    pixels = preprocess(crop_pool(args.images, meta.image_size), meta.image_size, meta.mean, meta.std,
                        meta.preprocessing)
    requests = make_requests(pixels, args.requests, args.crops_per_request)
    start = time.perf_counter()
    expected = [local.infer(batch) for batch in requests]  # the in-process oracle, and the throughput baseline
    baseline = sum(len(b) for b in requests) / (time.perf_counter() - start)
    log_file = args.server_log or Path("/dev/null")
    server = ClassifierServer(args.model, args.backend, http_port=free_port(), grpc_port=free_port(),
                              metrics_port=free_port(), max_batch=args.max_batch, queue_delay_us=args.queue_delay_us,
                              log_file=log_file)
    rows = []
    with server:
        for protocol in args.protocol:
            server.merged_requests.clear()
            result, answers = run_load(server.urls[protocol], protocol, requests, args.clients, args.time_limit)
            batches = sum(server.merged_requests.values())
            result.merged = sum(n * c for n, c in server.merged_requests.items()) / batches if batches else float("nan")
            compare(result, [None if a is None else form.softmax_logits(a) for a in answers],
                    [form.softmax_logits(e) for e in expected], calibration, form.fake_index, threshold)
            rows.append(result)
        probes = {protocol: TritonBackend(server.urls[protocol]).activate() for protocol in args.protocol}
        reference = requests[0]

        def good_request(protocol: str) -> bool:
            try:
                return bool(np.allclose(probes[protocol].infer(reference), expected[0], atol=1e-5))
            except FMCAError:
                return False

        outcomes = run_misuse_checks({p: parse_endpoint(server.urls[p]) for p in args.protocol}, server.model_name,
                                     meta.image_size, server.max_batch, meta.input_name, meta.output_name, good_request)
        for probe in probes.values():
            probe.deactivate()
    local.deactivate()
    print(f"Load test: {args.model.name} served by Triton (PyTriton) on 127.0.0.1, backend {local.name}, max batch "
          f"{server.max_batch}, queue delay {args.queue_delay_us} us; {args.requests} requests x "
          f"{args.crops_per_request} crops per protocol; in-process baseline {baseline:.1f} crops/s (sequential).")
    print(load_table(rows, baseline))
    print()
    print(misuse_table(outcomes))
    for row in rows:
        for error in row.errors[:3]:
            print(f"{row.protocol} error: {error}", file=sys.stderr)
    return 0 if all(r.ok for r in rows) and all(o.ok for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
