"""Triton's HTTP/REST API (KServe V2 plus Triton's repository, configuration, statistics and
binary-tensor extensions) on the standard library's threading HTTP server.

The binary tensor extension is what `tritonclient.http` uses by default: a JSON header of
`Inference-Header-Content-Length` bytes, then each binary tensor's bytes in order. Compressed
request bodies (gzip, deflate) are accepted; answers are never compressed.
"""

from __future__ import annotations

import json
import logging
import re
import zlib
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

import numpy as np

from mlops.stack.triton import tensors
from mlops.stack.triton.core import ModelManager
from mlops.stack.triton.errors import Code, ServingError
from mlops.stack.triton.metrics import render
from mlops.stack.triton.model_config import to_json_dict
from mlops.stack.triton.settings import SHARED_MEMORY_UNSUPPORTED

log = logging.getLogger("triton-standin")
HEADER_LENGTH = "Inference-Header-Content-Length"
_MODEL = r"/v2/models/(?P<model>[^/]+)(?:/versions/(?P<version>[^/]+))?"
_MODEL_NAME = r"/v2/models/(?P<model>[^/]+)"
_SHM = r"/v2/(?P<kind>system|cuda)sharedmemory"


class Answer:
    """An HTTP answer: status, body bytes, extra headers."""

    def __init__(self, status: int = 200, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.body = body
        self.headers = headers or {}

    @classmethod
    def json(cls, data: Any, status: int = 200) -> Answer:
        return cls(status, json.dumps(data).encode(), {"Content-Type": "application/json"})


class TritonHttpApi:
    """Routes of the inference API, independent of the HTTP server that carries them."""

    def __init__(self, manager: ModelManager, server_info: dict[str, Any]) -> None:
        self.manager = manager
        self.server_info = server_info
        Route = tuple[str, re.Pattern[str], Callable[..., Answer]]
        self.routes: list[Route] = [
            ("GET", re.compile(r"/v2/health/live"), lambda body: Answer()),
            ("GET", re.compile(r"/v2/health/ready"), lambda body: Answer()),
            ("GET", re.compile(r"/v2"), lambda body: Answer.json(self.server_info)),
            ("GET", re.compile(r"/v2/models/stats"), self.statistics),
            ("GET", re.compile(_MODEL + r"/stats"), self.statistics),
            ("GET", re.compile(_MODEL + r"/ready"), self.model_ready),
            ("GET", re.compile(_MODEL + r"/config"), self.model_config),
            ("GET", re.compile(_MODEL), self.model_metadata),
            ("POST", re.compile(_MODEL + r"/infer"), self.infer),
            ("POST", re.compile(r"/v2/repository/index"), self.index),
            ("POST", re.compile(r"/v2/repository/models/(?P<model>[^/]+)/load"), self.load),
            ("POST", re.compile(r"/v2/repository/models/(?P<model>[^/]+)/unload"), self.unload),
            ("GET", re.compile(r"/v2/trace/setting"), self.trace),
            ("POST", re.compile(r"/v2/trace/setting"), self.trace),
            ("GET", re.compile(_MODEL_NAME + r"/trace/setting"), self.trace),
            ("POST", re.compile(_MODEL_NAME + r"/trace/setting"), self.trace),
            ("GET", re.compile(r"/v2/logging"), self.logging),
            ("POST", re.compile(r"/v2/logging"), self.logging),
            ("GET", re.compile(_SHM + r"/status"), lambda body, kind: Answer.json([])),
            ("GET", re.compile(_SHM + r"/region/[^/]+/status"), lambda body, kind: Answer.json([])),
            ("POST", re.compile(_SHM + r"/region/[^/]+/register"), self.shared_memory_register),
            ("POST", re.compile(_SHM + r"(?:/region/[^/]+)?/unregister"), lambda body, kind: Answer()),
        ]

    def handle(self, method: str, path: str, headers: Any, body: bytes) -> Answer:
        path = path.split("?", 1)[0].rstrip("/") or "/"
        allowed = False
        for verb, pattern, handler in self.routes:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            if verb != method:
                allowed = True
                continue
            params = {k: unquote(v) for k, v in match.groupdict().items() if v is not None}
            try:
                if handler == self.infer:
                    return self.infer(headers, body, **params)
                return handler(body, **params)
            except ServingError as exc:
                return Answer.json({"error": exc.message}, exc.code.http_status)
            except Exception as exc:
                log.exception("HTTP %s %s failed", method, path)
                return Answer.json({"error": f"{type(exc).__name__}: {exc}"}, 500)
        if allowed:
            return Answer.json({"error": f"{method} is not allowed on {path}"}, 405)
        return Answer.json({"error": "Not Found"}, 404)

    @staticmethod
    def _json_body(body: bytes) -> dict[str, Any]:
        if not body.strip():
            return {}
        try:
            data = json.loads(body)
        except json.JSONDecodeError as exc:
            raise ServingError(Code.INVALID_ARG, f"failed to parse the request JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise ServingError(Code.INVALID_ARG, "the request JSON must be an object")
        return data

    def model_ready(self, body: bytes, model: str, version: str = "") -> Answer:
        return Answer(200 if self.manager.is_ready(model, version) else 400)

    def model_metadata(self, body: bytes, model: str, version: str = "") -> Answer:
        return Answer.json(self.manager.metadata(model, version))

    def model_config(self, body: bytes, model: str, version: str = "") -> Answer:
        return Answer.json(to_json_dict(self.manager.config(model, version)))

    def statistics(self, body: bytes, model: str = "", version: str = "") -> Answer:
        from mlops.stack.triton.grpc_service import statistics_message

        rows = self.manager.statistics(model, version)
        return Answer.json({"model_stats": [to_json_dict(statistics_message(*row)) for row in rows]})

    def trace(self, body: bytes, model: str = "") -> Answer:
        """GET: the settings; POST: update them (a JSON object; `null` resets a key), then the settings."""
        settings = self.manager.settings.trace(model, self._json_body(body) or None)
        # Triton's HTTP API writes single values as strings and trace_level as a list
        return Answer.json({k: v if k == "trace_level" else v[0] for k, v in settings.items()})

    def logging(self, body: bytes) -> Answer:
        return Answer.json(self.manager.settings.log(self._json_body(body) or None))

    def shared_memory_register(self, body: bytes, kind: str) -> Answer:
        raise ServingError(Code.UNSUPPORTED, SHARED_MEMORY_UNSUPPORTED)

    def index(self, body: bytes) -> Answer:
        ready = bool(self._json_body(body).get("ready", False))
        return Answer.json(self.manager.index(ready))

    def load(self, body: bytes, model: str) -> Answer:
        parameters = self._json_body(body).get("parameters") or {}
        if any(str(key).startswith("file:") for key in parameters):
            raise ServingError(
                Code.UNSUPPORTED, "loading a model from files sent with the request is not supported"
            )
        config = parameters.get("config")
        self.manager.load(model, config if isinstance(config, str) else None)
        return Answer()

    def unload(self, body: bytes, model: str) -> Answer:
        self._json_body(body)
        self.manager.unload(model)
        return Answer()

    def infer(self, headers: Any, body: bytes, model: str, version: str = "") -> Answer:
        header_length = headers.get(HEADER_LENGTH)
        split = int(header_length) if header_length else len(body)
        request = self._json_body(body[:split])
        binary = memoryview(body)[split:]
        offset = 0
        inputs: dict[str, np.ndarray] = {}
        for tensor in request.get("inputs") or []:
            name, datatype, shape = tensor.get("name"), tensor.get("datatype"), tensor.get("shape")
            if not isinstance(name, str) or not isinstance(datatype, str) or not isinstance(shape, list):
                raise ServingError(Code.INVALID_ARG, "every input needs name, datatype and shape")
            size = (tensor.get("parameters") or {}).get("binary_data_size")
            if size is not None:
                if offset + int(size) > len(binary):
                    raise ServingError(
                        Code.INVALID_ARG, f"input '{name}' runs past the end of the request body"
                    )
                inputs[name] = tensors.from_raw(
                    name, datatype, shape, bytes(binary[offset : offset + int(size)])
                )
                offset += int(size)
            elif "data" in tensor:
                inputs[name] = tensors.from_json(name, datatype, shape, tensor["data"])
            else:
                raise ServingError(Code.INVALID_ARG, f"input '{name}' has neither data nor binary_data_size")
        if offset != len(binary):
            raise ServingError(
                Code.INVALID_ARG, f"{len(binary) - offset} bytes of binary data are not claimed by any input"
            )
        wanted = request.get("outputs")
        default_binary = bool((request.get("parameters") or {}).get("binary_data_output", False))
        binary_outputs: dict[str, bool] = {}
        for output in wanted or []:
            parameters = output.get("parameters") or {}
            if "classification" in parameters:
                raise ServingError(Code.UNSUPPORTED, "the classification extension is not supported")
            binary_outputs[str(output.get("name"))] = bool(parameters.get("binary_data", default_binary))
        served, outputs = self.manager.infer(model, version, inputs, list(binary_outputs) or None)
        answer: dict[str, Any] = {"model_name": served.name, "model_version": str(served.version)}
        if "id" in request:
            answer["id"] = request["id"]
        blobs: list[bytes] = []
        answer["outputs"] = []
        for name, array in outputs.items():
            entry: dict[str, Any] = {
                "name": name,
                "datatype": tensors.wire_datatype(array),
                "shape": list(array.shape),
            }
            if binary_outputs.get(name, default_binary):
                blob = tensors.to_raw(array)
                entry["parameters"] = {"binary_data_size": len(blob)}
                blobs.append(blob)
            else:
                entry["data"] = tensors.to_json(array)
            answer["outputs"].append(entry)
        if not blobs:
            return Answer.json(answer)
        head = json.dumps(answer).encode()
        return Answer(
            200,
            head + b"".join(blobs),
            {"Content-Type": "application/octet-stream", HEADER_LENGTH: str(len(head))},
        )


def _decompress(body: bytes, encoding: str | None) -> bytes:
    if encoding == "gzip":
        return zlib.decompress(body, 16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompress(body)
    return body


def build_http_server(
    address: tuple[str, int], api: Callable[[str, str, Any, bytes], Answer]
) -> ThreadingHTTPServer:
    """A threading HTTP/1.1 server (keep-alive) passing every request to `api`."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "triton-standin"
        # Headers and body written separately on a kept-alive connection meet the client's delayed
        # ACK (Nagle holds the body back): ~40 ms per answer. TCP_NODELAY, and a buffered writer
        # that sends headers and a small body in one write (flushed once per request).
        disable_nagle_algorithm = True
        wbufsize = 64 * 1024

        def _serve(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            try:
                body = _decompress(body, self.headers.get("Content-Encoding"))
            except zlib.error as exc:
                answer = Answer.json({"error": f"cannot decompress the request body: {exc}"}, 400)
            else:
                answer = api(method, self.path, self.headers, body)
            self.send_response(answer.status)
            for key, value in answer.headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            if method != "HEAD":
                self.wfile.write(answer.body)

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s %s", self.address_string(), format % args)

    server = ThreadingHTTPServer(address, Handler)
    server.daemon_threads = True
    return server


def metrics_api(manager: ModelManager) -> Callable[[str, str, Any, bytes], Answer]:
    """The metrics port: GET /metrics in Prometheus text format."""

    def api(method: str, path: str, headers: Any, body: bytes) -> Answer:
        if path.split("?", 1)[0] != "/metrics":
            return Answer.json({"error": "Not Found"}, 404)
        return Answer(
            200, render(manager).encode(), {"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}
        )

    return api
