"""FAKE OpenAI streaming server, for the load generator's own tests and overhead benchmark only.

Not vLLM and not a stand-in for it: it answers `/v1/completions` and `/v1/chat/completions`
with `stream: true` in vLLM's chunk format (one token a chunk, an optional usage chunk,
`data: [DONE]`), `/v1/models`, `/health`, and `/metrics` with a few vLLM-named series
(request counter, latency histograms, running gauge) that follow the requests it served. It
exists so that the generator can be measured against a server that costs next to nothing, and
killed mid-test. Raw asyncio HTTP/1.1 with keep-alive: fast enough not to be the bottleneck.

`python -m performance.fake_server --port 8999 --tokens 16 --token-delay-ms 0`
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field

BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass
class _Histogram:
    counts: list[int] = field(default_factory=lambda: [0] * len(BUCKETS))
    total: int = 0
    sum: float = 0.0

    def observe(self, value: float) -> None:
        for i, bound in enumerate(BUCKETS):
            if value <= bound:
                self.counts[i] += 1
        self.total += 1
        self.sum += value

    def lines(self, name: str, labels: str) -> list[str]:
        out = [f"# TYPE {name} histogram"]
        for bound, count in zip(BUCKETS, self.counts, strict=True):
            out.append(f'{name}_bucket{{{labels},le="{bound}"}} {float(count)}')
        out.append(f'{name}_bucket{{{labels},le="+Inf"}} {float(self.total)}')
        out.append(f"{name}_count{{{labels}}} {float(self.total)}")
        out.append(f"{name}_sum{{{labels}}} {self.sum}")
        return out


@dataclass
class FakeState:
    tokens: int = 16
    token_delay_s: float = 0.0
    first_token_delay_s: float = 0.0
    model: str = "fake-model"
    running: int = 0
    succeeded: int = 0
    e2e: _Histogram = field(default_factory=_Histogram)
    ttft: _Histogram = field(default_factory=_Histogram)

    def metrics(self) -> str:
        labels = f'engine="0",model_name="{self.model}"'
        lines = [
            "# TYPE vllm:num_requests_running gauge",
            f"vllm:num_requests_running{{{labels}}} {float(self.running)}",
            "# TYPE vllm:num_requests_waiting gauge",
            f"vllm:num_requests_waiting{{{labels}}} 0.0",
            "# TYPE vllm:request_success_total counter",
            f'vllm:request_success_total{{{labels},finished_reason="length"}} {float(self.succeeded)}',
            *self.e2e.lines("vllm:e2e_request_latency_seconds", labels),
            *self.ttft.lines("vllm:time_to_first_token_seconds", labels),
        ]
        return "\n".join(lines) + "\n"


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _response(status: str, body: bytes, content_type: str = "application/json") -> bytes:
    return (
        f"HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {len(body)}\r\n\r\n".encode()
        + body
    )


async def _stream(writer: asyncio.StreamWriter, state: FakeState, request: dict[str, object]) -> None:
    started = time.perf_counter()
    chat = "messages" in request
    kind = "chat.completion.chunk" if chat else "text_completion"
    max_tokens = int(request.get("max_tokens") or state.tokens)  # type: ignore[call-overload]
    count = min(state.tokens, max_tokens)
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
    state.running += 1
    try:
        if state.first_token_delay_s:
            await asyncio.sleep(state.first_token_delay_s)
        for i in range(count):
            choice = (
                {"index": 0, "delta": {"content": f" t{i}"}, "finish_reason": None}
                if chat
                else {"index": 0, "text": f" t{i}", "finish_reason": None}
            )
            payload = {"id": "fake", "object": kind, "model": request.get("model"), "choices": [choice]}
            writer.write(_chunk(b"data: " + json.dumps(payload).encode() + b"\n\n"))
            if i == 0:
                state.ttft.observe(time.perf_counter() - started)
            if state.token_delay_s:
                await writer.drain()
                await asyncio.sleep(state.token_delay_s)
        options = request.get("stream_options") or {}
        if isinstance(options, dict) and options.get("include_usage"):
            usage = {"prompt_tokens": 10, "completion_tokens": count, "total_tokens": 10 + count}
            payload = {"id": "fake", "object": kind, "choices": [], "usage": usage}
            writer.write(_chunk(b"data: " + json.dumps(payload).encode() + b"\n\n"))
        writer.write(_chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")
        await writer.drain()
    finally:
        state.running -= 1
    state.succeeded += 1
    state.e2e.observe(time.perf_counter() - started)


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: FakeState) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            request_line, *header_lines = head.decode("latin-1").split("\r\n")
            method, path, _ = request_line.split(" ", 2)
            length = 0
            for header in header_lines:
                name, _, value = header.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            body = await reader.readexactly(length) if length else b""
            if method == "POST" and path in ("/v1/completions", "/v1/chat/completions"):
                await _stream(writer, state, json.loads(body or b"{}"))
                continue
            if path == "/metrics":
                writer.write(_response("200 OK", state.metrics().encode(), "text/plain; version=0.0.4"))
            elif path == "/health":
                writer.write(_response("200 OK", b""))
            elif path == "/v1/models":
                models = {"data": [{"id": state.model, "root": state.model, "parent": None}]}
                writer.write(_response("200 OK", json.dumps(models).encode()))
            else:
                writer.write(_response("404 Not Found", b'{"error": {"message": "not found"}}'))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def serve(state: FakeState, host: str, port: int) -> None:
    server = await asyncio.start_server(lambda r, w: _handle(r, w, state), host, port, backlog=1024)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m performance.fake_server", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8999)
    parser.add_argument("--model", default="fake-model", help="served model name (the metrics' model_name)")
    parser.add_argument("--tokens", type=int, default=16, help="tokens per answer (max_tokens caps it)")
    parser.add_argument("--token-delay-ms", type=float, default=0.0)
    parser.add_argument("--first-token-delay-ms", type=float, default=0.0)
    args = parser.parse_args(argv)
    state = FakeState(
        tokens=args.tokens,
        token_delay_s=args.token_delay_ms / 1000,
        first_token_delay_s=args.first_token_delay_ms / 1000,
        model=args.model,
    )
    print(f"fake OpenAI streaming server on {args.host}:{args.port}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(state, args.host, args.port))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
