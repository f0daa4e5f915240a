"""The router process: `python -m mlops.stack.router --served-name aws-rag-qa --upstreams host:port,...`.

- `POST /v1/completions`, `/v1/chat/completions`: a request for a public name that has a split is
  rewritten to `<name>-live` or `<name>-candidate` (smooth weighted round-robin, `split.py`) and
  sent to the next replica in turn, so the split holds on every replica; any other model name
  passes as is. `--served-name` names have a split from the start (0%: every request to live).
  Streams pass through chunk by chunk. A replica that cannot be reached answers 502.
- `GET /v1/models` and other GETs under `/v1/`: passed to a replica.
- `GET /admin/split` (all), `GET /admin/split/<name>`, `PUT /admin/split/<name>
  {"candidate_weight": 10}`: a public name's split, in percent of its requests (one split per
  name, as the cluster has one InferenceModelRewrite per name). Written to `--state-file` before
  it is answered, so a restarted router keeps it. A bad weight is answered 400 and changes nothing.
- `GET /metrics`: per-slot requests, errors, E2E and TTFT (`metrics.py`); `GET /health`.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from mlops.errors import BadInput
from mlops.stack.router.metrics import RouterMetrics
from mlops.stack.router.split import (
    CANDIDATE,
    LIVE,
    MODEL_ROUTES,
    canary_split,
    check_weight,
    read_request,
    rewrite,
    slot_name,
)

# headers that describe one hop's connection or body framing, never forwarded
HOP_HEADERS = {"host", "content-length", "connection", "transfer-encoding", "keep-alive", "accept-encoding"}
# set by the router's own server on every answer: an upstream's copy would be a duplicate
OWN_HEADERS = HOP_HEADERS | {"date", "server"}


class RouterState:
    """Everything the running router knows: a split per public name, the replicas, the metrics."""

    def __init__(self, served_names: list[str], upstreams: list[str], state_file: Path | None) -> None:
        self.upstreams, self.state_file = upstreams, state_file
        self.weights: dict[str, int] = dict.fromkeys(served_names, 0)
        if state_file and state_file.is_file():
            kept = json.loads(state_file.read_text()).get("splits", {})
            self.weights.update({name: check_weight(weight) for name, weight in kept.items()})
        self.pickers = {name: canary_split(weight) for name, weight in self.weights.items()}
        self.replicas: Iterator[str] = itertools.cycle(upstreams)
        self.metrics = RouterMetrics()
        for name in self.weights:
            self._ensure_series(name)

    def _ensure_series(self, name: str) -> None:
        # series from the start: Prometheus' increase() never counts a counter's first value
        for slot in (LIVE, CANDIDATE):
            self.metrics.ensure((name, slot_name(name, slot)))

    def set_weight(self, name: str, weight: int) -> None:
        """Split `name` (a new public name gets a split too), written to the state file first."""
        weight = check_weight(weight)
        if not name or "/" in name:
            raise BadInput(f"not a model name: {name!r}")
        weights = {**self.weights, name: weight}
        if self.state_file:
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.state_file.with_suffix(".tmp")
            tmp.write_text(json.dumps({"splits": weights}))
            tmp.replace(self.state_file)
        self._ensure_series(name)
        self.weights, self.pickers[name] = weights, canary_split(weight)

    def describe(self, name: str) -> dict[str, Any]:
        weight = self.weights.get(name, 0)
        return {
            "model": name,
            "candidate_weight": weight,
            "live_weight": 100 - weight,
            "split": name in self.weights,
        }


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "code": status}}, status_code=status)


def _forward_headers(request: Request) -> dict[str, str]:
    return {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}


def build_app(state: RouterState, timeout_s: float = 300.0) -> Starlette:
    """The router's ASGI app over `state` (one per process; tests build their own)."""
    client_holder: dict[str, httpx.AsyncClient] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        limits = httpx.Limits(max_connections=512, max_keepalive_connections=64)
        async with httpx.AsyncClient(timeout=timeout_s, limits=limits) as client:
            client_holder["client"] = client
            yield

    async def proxy_model_request(request: Request) -> Response:
        body = await request.body()
        try:
            requested = str(read_request(body)["model"])
            picker = state.pickers.get(requested)
            routed = rewrite(body, requested, picker.pick() if picker else "")
        except BadInput as exc:
            return _error(400, str(exc))
        labels = (routed.requested, routed.target)
        replica = next(state.replicas)
        url = (
            f"http://{replica}{request.url.path}" if "://" not in replica else f"{replica}{request.url.path}"
        )
        client = client_holder["client"]
        started = time.perf_counter()
        try:
            upstream = await client.send(
                client.build_request("POST", url, content=routed.body, headers=_forward_headers(request)),
                stream=True,
            )
        except httpx.HTTPError as exc:
            state.metrics.record(labels, time.perf_counter() - started, None, error=True)
            return _error(502, f"replica {replica} unreachable: {type(exc).__name__}: {exc}")
        failed = upstream.status_code >= 400

        async def relay() -> AsyncIterator[bytes]:
            first: float | None = None
            broken = failed
            try:
                async for chunk in upstream.aiter_raw():
                    if first is None and chunk:
                        first = time.perf_counter() - started
                    if routed.stream and b'data: {"error"' in chunk:
                        broken = True  # vLLM reports an error inside a started stream this way
                    yield chunk
            except httpx.HTTPError:
                broken = True
                raise
            finally:
                await upstream.aclose()
                ttft = first if routed.stream and not failed else None
                state.metrics.record(labels, time.perf_counter() - started, ttft, error=broken)

        headers = {k: v for k, v in upstream.headers.items() if k.lower() not in OWN_HEADERS}
        headers["x-routed-model"] = routed.target
        return StreamingResponse(relay(), status_code=upstream.status_code, headers=headers)

    async def pass_get(request: Request) -> Response:
        replica = next(state.replicas)
        url = (
            f"http://{replica}{request.url.path}" if "://" not in replica else f"{replica}{request.url.path}"
        )
        try:
            answer = await client_holder["client"].get(url, params=request.query_params)
        except httpx.HTTPError as exc:
            return _error(502, f"replica {replica} unreachable: {type(exc).__name__}: {exc}")
        headers = {k: v for k, v in answer.headers.items() if k.lower() not in OWN_HEADERS}
        return Response(answer.content, status_code=answer.status_code, headers=headers)

    async def splits(request: Request) -> Response:
        return JSONResponse({"splits": state.weights, "upstreams": state.upstreams})

    async def split(request: Request) -> Response:
        name = request.path_params["model"]
        if request.method == "PUT":
            try:
                body = json.loads(await request.body() or b"null")
                if not isinstance(body, dict) or "candidate_weight" not in body:
                    raise BadInput('expected {"candidate_weight": <percent 0..100>}')
                state.set_weight(name, body["candidate_weight"])
            except (BadInput, json.JSONDecodeError) as exc:
                return _error(400, str(exc))
        return JSONResponse(state.describe(name))

    async def metrics(request: Request) -> Response:
        return PlainTextResponse(state.metrics.render(), media_type="text/plain; version=0.0.4")

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "splits": state.weights})

    routes = [Route(path, proxy_model_request, methods=["POST"]) for path in MODEL_ROUTES]
    routes += [
        Route("/admin/split", splits, methods=["GET"]),
        Route("/admin/split/{model}", split, methods=["GET", "PUT"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/v1/{rest:path}", pass_get, methods=["GET"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    parser = argparse.ArgumentParser(prog="mlops.stack.router", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--served-name",
        required=True,
        help="public model name(s) clients ask for, comma-separated (split 0%% at first)",
    )
    parser.add_argument("--upstreams", required=True, help="vLLM replicas: host:port[,host:port...]")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--state-file", default="", help="where the split is kept across restarts")
    parser.add_argument("--timeout-s", type=float, default=300.0, help="timeout of one upstream request")
    args = parser.parse_args(argv)
    upstreams = [u.strip() for u in args.upstreams.split(",") if u.strip()]
    names = [n.strip() for n in args.served_name.split(",") if n.strip()]
    state = RouterState(names, upstreams, Path(args.state_file) if args.state_file else None)
    uvicorn.run(build_app(state, args.timeout_s), host=args.host, port=args.port, log_level="warning")
    return 0
