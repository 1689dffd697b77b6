"""`fmca-rt serve --model M`: the model's classifier behind a Triton Inference Server until Ctrl-C.

Loopback (127.0.0.1) by default; `--host 0.0.0.0` exposes it to the network (Triton has no authentication:
put it behind your own network controls). Clients: `fmca_rt.serve.remote_detector(url)` or any Triton client.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .protocol import DEFAULT_MODEL_NAME, DEFAULT_PORTS


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", "-m", required=True, type=Path, help="a .engine, .onnx or .pth model")
    parser.add_argument("--backend", default="auto", help="auto (by file type), onnxruntime, torch or tensorrt")
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: the GPU when the backend has one)")
    parser.add_argument("--name", default=DEFAULT_MODEL_NAME, help="the model's name on the server")
    group = parser.add_argument_group("server")
    group.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    group.add_argument("--http-port", type=int, default=DEFAULT_PORTS["http"])
    group.add_argument("--grpc-port", type=int, default=DEFAULT_PORTS["grpc"])
    group.add_argument("--metrics-port", type=int, default=8002, help="Prometheus metrics")
    group.add_argument("--max-batch", type=int, help="largest batch Triton's dynamic batcher forms (default: the "
                       "backend's largest, e.g. the engine profile's, else 16)")
    group.add_argument("--queue-delay-us", type=int, default=1000,
                       help="how long a request may wait for others to fill a batch, in microseconds")
    group.add_argument("--instances", type=int, default=1, help="model instances, each with its own backend session")
    group.add_argument("--server-log", type=Path, help="write tritonserver's log to this file instead of the terminal")


def run_serve(args: argparse.Namespace) -> int:
    from .server import ClassifierServer

    server = ClassifierServer(args.model, backend=args.backend, device=args.device, model_name=args.name,
                              host=args.host, http_port=args.http_port, grpc_port=args.grpc_port,
                              metrics_port=args.metrics_port, max_batch=args.max_batch,
                              queue_delay_us=args.queue_delay_us, instances=args.instances, log_file=args.server_log)
    server.start()
    backend = server.backends[0]
    print(f"Serving {args.model.name} as {args.name!r} ({backend.describe()}, max batch {server.max_batch}, "
          f"{args.instances} instance(s)) at {server.urls['http']} and {server.urls['grpc']}; Ctrl-C stops.")
    print(f"Client: python -c \"from fmca_rt.serve import remote_detector; "
          f"print(remote_detector('{server.urls['grpc']}').predict('photo.jpg').to_json())\"")
    server.serve_forever()
    return 0
