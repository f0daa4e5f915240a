"""The load generator times a stream as `vllm bench serve` does (vllm/benchmarks/lib/
endpoint_request_func.py): a token chunk is any chunk with `choices`, even with empty text; TTFT is
the first one; the end-to-end latency ends at the last token chunk, not at the usage chunk,
`[DONE]` or the close. The stream is scripted by an aiohttp server on a local port, with real
delays and a flush after each part, read through the generator's own aiohttp client."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from performance.loadgen import LoadSpec, Prompt, send_request
from performance.summary import RequestRecord

GAP = 0.05  # seconds between scripted chunks


def chunk(data: dict) -> bytes:
    return b"data: " + json.dumps(data).encode() + b"\n\n"


def run(parts: list[tuple[float, bytes]]) -> RequestRecord:
    """(delay before, bytes) pairs, each written and flushed after its delay."""
    import aiohttp

    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for delay, part in parts:
            await asyncio.sleep(delay)
            await response.write(part)
        await response.write_eof()
        return response

    record = RequestRecord(index=0, sent_at=0.0)

    async def go() -> None:
        app = web.Application()
        app.router.add_post("/v1/completions", stream)
        async with TestServer(app, host="127.0.0.1") as server, aiohttp.ClientSession() as session:
            spec = LoadSpec(url=str(server.make_url("")), model="m")
            await send_request(session, spec, Prompt("p"), record)

    asyncio.run(go())
    return record


def test_an_empty_text_chunk_is_the_first_token_and_the_usage_chunk_ends_nothing() -> None:
    text = lambda t: chunk({"choices": [{"index": 0, "text": t}]})  # noqa: E731
    usage = chunk({"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 4}})
    record = run(
        [
            (GAP, text("")),  # a special token or a held-back partial character: still the first token
            (GAP, text("a")),
            (GAP, text("b")),
            (GAP, text("c")),
            (4 * GAP, usage),  # usage-only and [DONE] come late: not part of the latency
            (4 * GAP, b"data: [DONE]\n\n"),
        ]
    )
    assert record.success, record.error
    assert record.ttft_s == pytest.approx(GAP, abs=0.03)
    assert len(record.itl_s) == 3 and all(gap == pytest.approx(GAP, abs=0.03) for gap in record.itl_s)
    assert record.e2el_s == pytest.approx(4 * GAP, abs=0.04)  # the last token chunk, not [DONE] at 12 gaps
    assert record.output_tokens == 4 and record.tpot_s == pytest.approx(GAP, abs=0.02)


def test_a_stream_without_a_token_chunk_fails() -> None:
    usage = chunk({"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 0}})
    record = run([(0.0, usage), (0.0, b"data: [DONE]\n\n")])
    assert not record.success and record.error == "no token chunk in the stream"
