"""Async streaming load generator for an OpenAI-compatible server (vLLM): completions or chat.

Two ways to load the server:
- fixed concurrency (`request_rate == 0`): `concurrency` clients, each sending its next request
  as soon as the last one finished;
- Poisson arrivals (`request_rate > 0` req/s, exponential gaps, seeded); `concurrency > 0` caps
  the requests in flight (an arrival waits for a free place, as `vllm bench --max-concurrency`).

Warm-up requests (`warmup_requests`, or those sent in the first `warmup_s`) load the server the
same way and are recorded but left out of the figures. The measured part ends after
`num_requests` requests or `duration_s` seconds, whichever is first. Every failure is a record
with a reason (`connect error`, `timeout`, `http 503: ...`, `connection closed mid-response`,
...), never an exception: a server that dies mid-test gives failed records, and after
`max_consecutive_failures` failures in a row the test stops early and says why.

Timing follows `vllm bench serve` (vllm/benchmarks/lib/endpoint_request_func.py): the clock
starts just before the request is sent; a token chunk is any stream chunk with `choices`, even
with empty text; TTFT is the first token chunk's arrival, ITL the gaps between token chunks, and
the end-to-end latency ends at the last token chunk (not the usage-only chunk, `[DONE]` or the
connection's close); TPOT is `(e2el - ttft) / (output_tokens - 1)` with the server's usage count.

Standalone: `python -m performance.loadgen --url http://127.0.0.1:8000 --model NAME
--prompts-file prompts.jsonl --concurrency 8 --num-requests 200 --output results.json`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from mlops.config import StepConfig, load_config
from mlops.errors import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, BadInput, MlopsError
from performance.summary import RequestRecord, Slos, one_line, summarize

Api = Literal["completions", "chat"]
API_PATHS = {"completions": "/v1/completions", "chat": "/v1/chat/completions"}


@dataclass(frozen=True)
class Prompt:
    """One prompt in both forms: raw text for completions, the user message for chat."""

    text: str
    chat: str = ""

    @property
    def message(self) -> str:
        return self.chat or self.text


@dataclass(frozen=True)
class LoadSpec:
    """What to send, where, and how hard."""

    url: str
    model: str
    api: Api = "completions"
    max_tokens: int = 64
    temperature: float = 0.0
    ignore_eos: bool = False  # vLLM extension: always generate max_tokens
    include_usage: bool = True  # stream_options.include_usage: the server counts tokens
    concurrency: int = 8
    request_rate: float = 0.0
    duration_s: float = 60.0
    num_requests: int = 0
    warmup_s: float = 0.0
    warmup_requests: int = 0
    timeout_s: float = 60.0
    max_consecutive_failures: int = 200
    seed: int = 0
    api_key: str = ""

    def validate(self) -> None:
        if self.api not in API_PATHS:
            raise BadInput(f"api {self.api!r}: use one of {sorted(API_PATHS)}")
        if self.request_rate < 0:
            raise BadInput(f"request_rate={self.request_rate} must be >= 0 (0: fixed concurrency)")
        if self.request_rate == 0 and self.concurrency < 1:
            raise BadInput("fixed-concurrency mode (request_rate 0) needs concurrency >= 1")
        if self.duration_s <= 0 and self.num_requests <= 0:
            raise BadInput("give duration_s > 0 or num_requests > 0: the test must end")
        if self.max_tokens < 1:
            raise BadInput(f"max_tokens={self.max_tokens} must be >= 1")

    @property
    def mode(self) -> str:
        if self.request_rate > 0:
            cap = f", at most {self.concurrency} in flight" if self.concurrency > 0 else ""
            return f"poisson {self.request_rate:g} req/s{cap}"
        return f"concurrency {self.concurrency}"


@dataclass
class LoadResult:
    """Every request's record and the wall-clock window of the measured part."""

    spec: LoadSpec
    records: list[RequestRecord]
    started_at: float  # unix time of the test's start (record offsets count from here)
    window_start: float = 0.0  # unix time: first measured request sent
    window_end: float = 0.0  # unix time: last measured request finished
    aborted: str = ""

    def summary(self, slos: Slos | None = None) -> dict[str, Any]:
        figures = summarize(self.records, slos)
        figures.update(
            {
                "mode": self.spec.mode,
                "api": self.spec.api,
                "model": self.spec.model,
                "max_tokens": self.spec.max_tokens,
                "window_start": self.window_start,
                "window_end": self.window_end,
                "aborted": self.aborted,
            }
        )
        return figures


def request_body(spec: LoadSpec, prompt: Prompt) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": spec.model,
        "max_tokens": spec.max_tokens,
        "temperature": spec.temperature,
        "stream": True,
    }
    if spec.api == "chat":
        body["messages"] = [{"role": "user", "content": prompt.message}]
    else:
        body["prompt"] = prompt.text
    if spec.include_usage:
        body["stream_options"] = {"include_usage": True}
    if spec.ignore_eos:
        body["ignore_eos"] = True
    return body


def _error_reason(status: int, body: bytes) -> str:
    try:
        data = json.loads(body)
        error = data.get("error", data) if isinstance(data, dict) else data
        message = error.get("message", "") if isinstance(error, dict) else str(error)
    except (ValueError, AttributeError):
        message = body.decode("utf-8", "replace")
    message = " ".join(str(message or "").split())[:100]
    return f"http {status}: {message}" if message else f"http {status}"


def base_url(spec: LoadSpec) -> str:
    """The server's URL without a trailing slash; `host:port` means http."""
    return spec.url.rstrip("/") if "://" in spec.url else f"http://{spec.url}"


async def send_request(session: Any, spec: LoadSpec, prompt: Prompt, record: RequestRecord) -> None:
    """Stream one request through an `aiohttp.ClientSession`, filling `record`; every failure ends
    up as `record.error`, never raised."""
    import aiohttp

    started = time.perf_counter()
    first = last = 0.0
    chunks = 0
    done = False
    try:
        url = base_url(spec) + API_PATHS[spec.api]
        async with session.post(url, json=request_body(spec, prompt)) as response:
            if response.status != 200:
                record.error = _error_reason(response.status, await response.read())
                return
            buffer = b""
            async for raw in response.content.iter_any():
                buffer += raw
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if not line.startswith(b"data:"):
                        continue
                    payload = line[5:].strip()
                    if payload == b"[DONE]":
                        done = True
                        break
                    now = time.perf_counter()
                    try:
                        data = json.loads(payload)
                    except ValueError:
                        record.error = "malformed stream chunk"
                        return
                    if data.get("error"):
                        record.error = _error_reason(200, payload)
                        return
                    if data.get("choices"):
                        # vllm bench's definitions: any chunk with choices is a token chunk, even
                        # with empty text (special tokens, a held-back partial character); the first
                        # one is the first token; only token chunks advance the request's end
                        if first:
                            record.itl_s.append(now - last)
                        else:
                            first = now
                        last = now
                        chunks += 1
                    usage = data.get("usage")
                    if usage:
                        record.input_tokens = int(usage.get("prompt_tokens") or 0)
                        record.output_tokens = int(usage.get("completion_tokens") or 0)
                if done:
                    break
    except TimeoutError:  # aiohttp's connect and read timeouts are TimeoutErrors
        record.error = "timeout"
    except aiohttp.ClientConnectorError:
        record.error = "connect error"
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, aiohttp.ClientOSError):
        record.error = "connection closed mid-response"
    except aiohttp.ClientError as exc:
        record.error = f"{type(exc).__name__}"
    finally:
        record.e2el_s = time.perf_counter() - started
    if record.error:
        return
    if not done:
        record.error = "stream ended without [DONE]"
        return
    if not first:
        record.error = "no token chunk in the stream"  # as vllm bench: nothing to time TTFT on
        return
    record.success = True
    record.ttft_s = first - started
    record.e2el_s = last - started  # the last token chunk, not the usage chunk, [DONE] or the close
    if not record.output_tokens:
        record.output_tokens = chunks
        record.tokens_counted = "chunks"


class _Run:
    """The shared state of one test: counters, clock, stop flag."""

    def __init__(self, spec: LoadSpec, prompts: Sequence[Prompt], on_done: Callable[[RequestRecord], None]):
        self.spec = spec
        order = list(prompts)
        random.Random(spec.seed).shuffle(order)
        self.prompts = order
        self.on_done = on_done
        self.records: list[RequestRecord] = []
        self.t0 = time.perf_counter()
        self.measure_from = 0.0  # perf_counter of the first measured send
        self.measured = 0
        self.consecutive_failures = 0
        self.stopped = asyncio.Event()
        self.aborted = ""

    def next_record(self) -> RequestRecord | None:
        """The record of the next request to send, or None when the test is over."""
        if self.stopped.is_set():
            return None
        spec, now = self.spec, time.perf_counter()
        index = len(self.records)
        warmup = index < spec.warmup_requests or (now - self.t0) < spec.warmup_s
        if not warmup:
            if not self.measure_from:
                self.measure_from = now
            over_count = spec.num_requests > 0 and self.measured >= spec.num_requests
            over_time = spec.duration_s > 0 and now - self.measure_from >= spec.duration_s
            if over_count or over_time:
                self.stopped.set()
                return None
            self.measured += 1
        record = RequestRecord(index=index, sent_at=now - self.t0, model=spec.model, warmup=warmup)
        self.records.append(record)
        return record

    def prompt(self, record: RequestRecord) -> Prompt:
        return self.prompts[record.index % len(self.prompts)]

    def finished(self, record: RequestRecord) -> None:
        if record.success:
            self.consecutive_failures = 0
        else:
            self.consecutive_failures += 1
            limit = self.spec.max_consecutive_failures
            if limit > 0 and self.consecutive_failures >= limit and not self.stopped.is_set():
                self.aborted = (
                    f"stopped after {self.consecutive_failures} failed requests in a row "
                    f"(last: {record.error})"
                )
                self.stopped.set()
        self.on_done(record)


async def _fixed_concurrency(run: _Run, session: Any) -> None:
    async def worker() -> None:
        while (record := run.next_record()) is not None:
            await send_request(session, run.spec, run.prompt(record), record)
            run.finished(record)

    await asyncio.gather(*(worker() for _ in range(run.spec.concurrency)))


async def _poisson(run: _Run, session: Any) -> None:
    gaps = random.Random(run.spec.seed + 1)
    limit = asyncio.Semaphore(run.spec.concurrency) if run.spec.concurrency > 0 else None
    tasks: set[asyncio.Task[None]] = set()

    async def one(record: RequestRecord) -> None:
        try:
            await send_request(session, run.spec, run.prompt(record), record)
            run.finished(record)
        finally:
            if limit is not None:
                limit.release()

    next_at = time.perf_counter()
    while True:
        next_at += gaps.expovariate(run.spec.request_rate)
        delay = next_at - time.perf_counter()
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(run.stopped.wait(), timeout=delay)
        if limit is not None:
            await limit.acquire()
        record = run.next_record()
        if record is None:
            if limit is not None:
                limit.release()
            break
        task = asyncio.create_task(one(record))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.gather(*tasks)


async def run_load(
    spec: LoadSpec,
    prompts: Sequence[Prompt],
    *,
    progress: bool = False,
    session: Any = None,
) -> LoadResult:
    """Run one load test; never raises for what the server does (failures are records).

    `session`: an `aiohttp.ClientSession` to send through (default: one made here, with at most
    `concurrency` connections). aiohttp, as `vllm bench serve` uses: its C HTTP parser keeps the
    generator's own CPU per streamed chunk low, so on a busy machine a chunk is timed when it
    arrives, not when a pure-Python parser gets to it (docs/performance.md, the agreement table).
    """
    import aiohttp

    spec.validate()
    if not prompts:
        raise BadInput("no prompts to send")
    bar = _progress_bar(spec, progress)
    run = _Run(spec, prompts, on_done=lambda _record: bar.update(1) if bar is not None else None)
    started_at = time.time() - (time.perf_counter() - run.t0)
    owned = session is None
    if session is None:
        headers = {"Authorization": f"Bearer {spec.api_key}"} if spec.api_key else {}
        session = aiohttp.ClientSession(
            headers=headers,
            # per read, as a stream may run long: connect within 10 s, then no gap over timeout_s
            timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=min(10.0, spec.timeout_s), sock_read=spec.timeout_s
            ),
            connector=aiohttp.TCPConnector(limit=max(spec.concurrency, 0)),  # 0: no limit
        )
    try:
        if spec.request_rate > 0:
            await _poisson(run, session)
        else:
            await _fixed_concurrency(run, session)
    finally:
        if owned:
            await session.close()
        if bar is not None:
            bar.close()
    measured = [r for r in run.records if not r.warmup]
    result = LoadResult(spec, run.records, started_at, aborted=run.aborted)
    if measured:
        result.window_start = started_at + min(r.sent_at for r in measured)
        result.window_end = started_at + max(r.finished_at for r in measured)
    return result


def _progress_bar(spec: LoadSpec, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    total = spec.warmup_requests + spec.num_requests if spec.num_requests > 0 else None
    return tqdm(total=total, unit="req", desc=spec.mode, file=sys.stderr, mininterval=1.0, smoothing=0.1)


# --- prompts ------------------------------------------------------------------------------------


def prompts_from_records(records: Sequence[Any]) -> list[Prompt]:
    """Prompts of prepared RAG-QA records: `prompt_inference` for completions, the user turn for chat."""
    return [Prompt(text=r.prompt_inference, chat=f"{r.context}\n\nQuestion: {r.question}") for r in records]


def read_prompts_file(path: Path) -> list[Prompt]:
    """A JSONL file of objects with `prompt_inference` (prepared split) or `prompt`, or plain text lines."""
    if not path.is_file():
        raise BadInput(f"prompts file not found: {path}")
    prompts = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        if path.suffix == ".jsonl":
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                raise BadInput(f"{path} line {number} is not JSON: {exc}") from exc
            if "prompt_inference" in data:
                chat = f"{data.get('context', '')}\n\nQuestion: {data.get('question', '')}"
                prompts.append(Prompt(text=data["prompt_inference"], chat=chat if "context" in data else ""))
            elif "prompt" in data:
                prompts.append(Prompt(text=str(data["prompt"])))
            else:
                raise BadInput(f"{path} line {number} has neither 'prompt_inference' nor 'prompt'")
        else:
            prompts.append(Prompt(text=line))
    if not prompts:
        raise BadInput(f"{path} holds no prompts")
    return prompts


# --- load settings, as the options of a command ---------------------------------------------------


class LoadSettings(StepConfig):
    """How to load the server, as options: the LoadSpec fields this command and the load-test step share."""

    api: Api = Field("completions", description="OpenAI API to load: completions or chat")
    max_tokens: int = Field(64, ge=1, description="output tokens per request at most")
    ignore_eos: bool = Field(False, description="always generate max_tokens (vLLM extension)")
    concurrency: int = Field(
        8, ge=0, description="clients (fixed mode) or cap on requests in flight (0: none)"
    )
    request_rate: float = Field(0.0, ge=0.0, description="Poisson arrivals per second; 0: fixed concurrency")
    duration_s: float = Field(60.0, ge=0.0, description="measured seconds (0: only num-requests ends it)")
    num_requests: int = Field(0, ge=0, description="measured requests (0: only duration-s ends it)")
    warmup_s: float = Field(0.0, ge=0.0, description="seconds of load at the start left out of the figures")
    warmup_requests: int = Field(0, ge=0, description="first requests left out of the figures")
    timeout_s: float = Field(60.0, gt=0.0, description="per request")
    max_consecutive_failures: int = Field(
        200, ge=0, description="stop after this many failures in a row (0: never)"
    )
    slo_ttft_s: float = Field(0.0, ge=0.0, description="goodput: TTFT bound per request, seconds (0: none)")
    slo_tpot_s: float = Field(0.0, ge=0.0, description="goodput: TPOT bound per request, seconds (0: none)")
    slo_e2el_s: float = Field(
        0.0, ge=0.0, description="goodput: end-to-end latency bound per request, seconds (0: none)"
    )
    seed: int = Field(0, description="prompt order and Poisson gaps")
    progress: bool = Field(True, description="progress bar on stderr")

    def load_spec(self, url: str, model: str, **more: Any) -> LoadSpec:
        """These settings as the LoadSpec of a test of `model` at `url` (`more`: other LoadSpec fields)."""
        return LoadSpec(
            url=url,
            model=model,
            api=self.api,
            max_tokens=self.max_tokens,
            ignore_eos=self.ignore_eos,
            concurrency=self.concurrency,
            request_rate=self.request_rate,
            duration_s=self.duration_s,
            num_requests=self.num_requests,
            warmup_s=self.warmup_s,
            warmup_requests=self.warmup_requests,
            timeout_s=self.timeout_s,
            max_consecutive_failures=self.max_consecutive_failures,
            seed=self.seed,
            **more,
        )

    def slos(self) -> Slos:
        return Slos(ttft_s=self.slo_ttft_s, tpot_s=self.slo_tpot_s, e2el_s=self.slo_e2el_s)


# --- standalone command ---------------------------------------------------------------------------


class Config(LoadSettings):
    url: str = Field("http://127.0.0.1:8000", description="base URL of the OpenAI-compatible server")
    model: str = Field("aws-rag-qa-candidate", description="served model name to request")
    prompts_file: str = Field(
        "", description="JSONL (prompt_inference or prompt per line) or a text file, one prompt a line"
    )
    prompt: str = Field("", description="one prompt, sent over and over (when no prompts file)")
    include_usage: bool = Field(True, description="ask for a usage chunk (else output chunks are counted)")
    duration_s: float = Field(30.0, ge=0.0, description="measured seconds (0: only num-requests ends it)")
    output: str = Field("", description="write the results JSON (figures and every request) here")

    def spec(self) -> LoadSpec:
        return self.load_spec(self.url, self.model, include_usage=self.include_usage)


def run(cfg: Config) -> dict[str, Any]:
    if cfg.prompts_file:
        prompts = read_prompts_file(Path(cfg.prompts_file))
    elif cfg.prompt:
        prompts = [Prompt(text=cfg.prompt)]
    else:
        raise BadInput("give --prompts-file or --prompt")
    result = asyncio.run(run_load(cfg.spec(), prompts, progress=cfg.progress))
    figures = result.summary(cfg.slos())
    if cfg.output:
        from performance.report import results_document

        Path(cfg.output).write_text(json.dumps(results_document(result, figures), indent=2) + "\n")
    return figures


def main(argv: list[str] | None = None) -> int:
    try:
        cfg = load_config(Config, argv, prog="python -m performance.loadgen", description=__doc__)
        figures = run(cfg)
    except BadInput as exc:
        print(f"[loadgen] bad input: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except MlopsError as exc:
        print(f"[loadgen] failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"[loadgen] {one_line(figures)}")
    if figures["failure_reasons"]:
        print(f"[loadgen] failures: {figures['failure_reasons']}")
    if figures["aborted"]:
        print(f"[loadgen] {figures['aborted']}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
