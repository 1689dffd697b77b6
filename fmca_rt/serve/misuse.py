"""What a served model must survive: malformed requests and clients that vanish mid-request.

Each check sends one bad request straight through tritonclient (or a raw socket), bypassing TritonBackend's
own input checks, records the server's answer, then proves the server is alive by sending a good request
and comparing its logits with the ones it gave before. Used by the load test and its tests.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .client import build_request, import_client_module
from .protocol import Endpoint, server_error_message


@dataclass
class MisuseOutcome:
    check: str
    protocol: str
    rejected: bool  # the bad request got an error (always True for a disconnect: nobody is left to answer)
    answer: str  # the server's error message, or what happened
    alive_after: bool  # the server still answered a good request correctly afterwards

    @property
    def ok(self) -> bool:
        return self.rejected and self.alive_after


def _client(module, endpoint: Endpoint):
    return module.InferenceServerClient(endpoint.address)


def _send_bad(module, endpoint: Endpoint, model_name: str, array: np.ndarray, datatype: str,
              input_name: str) -> tuple[bool, str]:
    client = _client(module, endpoint)
    try:
        tensor = module.InferInput(input_name, list(array.shape), datatype)
        tensor.set_data_from_numpy(array)
        client.infer(model_name, [tensor])
        return False, "accepted"
    except module.InferenceServerException as error:
        return True, server_error_message(error)
    finally:
        client.close()


def _http_disconnect(endpoint: Endpoint, model_name: str, good: np.ndarray, input_name: str, output_name: str,
                     fraction: float) -> tuple[bool, str]:
    """Send an HTTP infer request's headers and `fraction` of its body, then close the socket."""
    http = import_client_module("http")
    inputs, outputs = build_request(http, good, input_name, output_name)
    body, json_size = http.InferenceServerClient.generate_request_body(inputs, outputs=outputs)
    head = (f"POST /v2/models/{model_name}/infer HTTP/1.1\r\nHost: {endpoint.address}\r\n"
            f"Content-Type: application/octet-stream\r\nInference-Header-Content-Length: {json_size}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    with socket.create_connection((endpoint.host, endpoint.port), timeout=10) as connection:
        connection.sendall(head + body[:int(len(body) * fraction)])
    sent = "the whole request" if fraction >= 1 else f"{int(fraction * 100)}% of the body"
    return True, f"client sent {sent} and closed the connection"


def _grpc_cancel(endpoint: Endpoint, model_name: str, good: np.ndarray, input_name: str,
                 output_name: str) -> tuple[bool, str]:
    grpc = import_client_module("grpc")
    client = _client(grpc, endpoint)
    try:
        inputs, outputs = build_request(grpc, good, input_name, output_name)
        call = client.async_infer(model_name, inputs, callback=lambda result, error: None, outputs=outputs)
        call.cancel()
        return True, "client cancelled the call in flight"
    finally:
        client.close()


def run_misuse_checks(endpoints: dict[str, Endpoint], model_name: str, image_size: int, max_batch: int,
                      input_name: str, output_name: str,
                      good_request: Callable[[str], bool]) -> list[MisuseOutcome]:
    """Every check on every protocol; `good_request(protocol)` sends a good request and says if it was right."""
    rng = np.random.default_rng(0)
    good = rng.standard_normal((2, 3, image_size, image_size)).astype(np.float32)
    bad = {
        "wrong shape": (good[:, :, :-1, :-1].copy(), "FP32"),
        "wrong rank": (good[0].copy(), "FP32"),
        "wrong dtype": (good.astype(np.float64), "FP64"),
        "empty batch": (good[:0].copy(), "FP32"),
        f"batch over {max_batch}": (np.repeat(good[:1], max_batch + 1, axis=0), "FP32"),
    }
    outcomes = []
    for protocol, endpoint in endpoints.items():
        module = import_client_module(protocol)
        checks = {name: (lambda a=array, d=dtype: _send_bad(module, endpoint, model_name, a, d, input_name))
                  for name, (array, dtype) in bad.items()}
        if protocol == "http":
            checks["disconnect mid-body"] = lambda: _http_disconnect(endpoint, model_name, good, input_name,
                                                                     output_name, 0.5)
            checks["disconnect before reply"] = lambda: _http_disconnect(endpoint, model_name, good, input_name,
                                                                         output_name, 1.0)
        else:
            checks["cancel in flight"] = lambda: _grpc_cancel(endpoint, model_name, good, input_name, output_name)
        for name, check in checks.items():
            rejected, answer = check()
            time.sleep(0.05)  # let the server notice a vanished client before the liveness probe
            outcomes.append(MisuseOutcome(name, protocol, rejected, answer, good_request(protocol)))
    return outcomes


def misuse_table(outcomes: list[MisuseOutcome]) -> str:
    lines = ["| check | protocol | server's answer | rejected | alive after |", "|---|---|---|---|---|"]
    lines += [f"| {o.check} | {o.protocol} | {o.answer[:110]} | {'yes' if o.rejected else 'NO'} | "
              f"{'yes' if o.alive_after else 'NO'} |" for o in outcomes]
    return "\n".join(lines)
