"""A vLLM server (one replica) behind a small Protocol: OpenAI completions and the LoRA admin API.

`connect("http://127.0.0.1:8010")` talks HTTP through httpx. What the steps rely on:

- `/v1/models` lists the base and every loaded LoRA adapter; an adapter's `root` is the path it was
  loaded from, so the folder (`<adapter-dir>/<model>/<version>`) says which registry version a
  slot holds, with no state kept anywhere else;
- `/v1/load_lora_adapter` with `load_inplace: true` replaces the weights behind a name that stays
  served the whole time (needs `VLLM_ALLOW_RUNTIME_LORA_UPDATING=True` on the server);
- a server that cannot be reached, times out or answers 5xx raises `Transient` (exit 3,
  retried); a request the server refuses (4xx: unknown model, an adapter it cannot load) raises
  `BadInput` with the server's own message.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from mlops.errors import BadInput, Transient

# vLLM's message when the engine's worker rejects an adapter (answered with HTTP 500)
WORKER_REFUSED = "add_lora method failed"


@dataclass(frozen=True)
class ServedModel:
    """One entry of `/v1/models`: the base (parent '') or a LoRA adapter loaded from `root`."""

    id: str
    root: str
    parent: str = ""

    @property
    def is_adapter(self) -> bool:
        return bool(self.parent)


@dataclass(frozen=True)
class Completion:
    """One non-streamed completion and what it cost."""

    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float


class VllmServer(Protocol):
    """What deployment, evaluation and smoke tests need from one vLLM replica."""

    endpoint: str

    def healthy(self) -> bool: ...
    def models(self) -> list[ServedModel]: ...
    def load_adapter(self, name: str, path: str, inplace: bool = False) -> None: ...
    def unload_adapter(self, name: str) -> None: ...
    def complete(
        self, model: str, prompt: str, max_tokens: int = 64, temperature: float = 0.0
    ) -> Completion: ...


def _message(response: httpx.Response) -> str:
    """The server's reason: OpenAI-style `{"error": {"message"}}`, FastAPI `{"detail"}`, or text."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:500] or response.reason_phrase
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:500]
        for key in ("message", "detail", "error"):
            if body.get(key):
                return str(body[key])[:500]
    return str(body)[:500]


@contextmanager
def http_errors(endpoint: str, action: str) -> Iterator[None]:
    """httpx failures as the step's error kinds: unreachable / timeout = Transient."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise Transient(f"vLLM {endpoint}: {action} timed out ({type(exc).__name__})") from exc
    except httpx.TransportError as exc:
        raise Transient(f"vLLM {endpoint} unreachable while {action}: {exc}") from exc


def check(response: httpx.Response, endpoint: str, action: str) -> httpx.Response:
    """5xx = Transient, 4xx = BadInput, both with the server's message."""
    if response.status_code >= 500:
        raise Transient(f"vLLM {endpoint}: {action} failed ({response.status_code}): {_message(response)}")
    if response.status_code >= 400:
        raise BadInput(f"vLLM {endpoint}: {action} refused ({response.status_code}): {_message(response)}")
    return response


class HttpVllmServer:
    """One replica over HTTP. `endpoint` is `host:port` or a full `http(s)://` URL."""

    def __init__(self, endpoint: str, timeout_s: float = 60.0, api_key: str = "") -> None:
        self.endpoint = endpoint
        base = endpoint if "://" in endpoint else f"http://{endpoint}"
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=base.rstrip("/"), timeout=timeout_s, headers=headers)

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, path: str, action: str, **kwargs: Any) -> httpx.Response:
        with http_errors(self.endpoint, action):
            response = self._http.request(method, path, **kwargs)
        return check(response, self.endpoint, action)

    def healthy(self) -> bool:
        try:
            return self._http.get("/health", timeout=5.0).status_code == 200
        except httpx.HTTPError:
            return False

    def models(self) -> list[ServedModel]:
        data = self._request("GET", "/v1/models", "listing models").json().get("data", [])
        return [
            ServedModel(id=str(m["id"]), root=str(m.get("root") or ""), parent=str(m.get("parent") or ""))
            for m in data
        ]

    def load_adapter(self, name: str, path: str, inplace: bool = False) -> None:
        """Serve the adapter folder `path` as `name`; BadInput if the server cannot load it.

        vLLM answers 500 when its worker refuses an adapter (unreadable weights, a rank above
        `--max-lora-rank`); that is the adapter's fault, not the server's, so it is bad input.
        """
        body: dict[str, Any] = {"lora_name": name, "lora_path": path}
        if inplace:
            body["load_inplace"] = True
        action = f"loading adapter {name} from {path}"
        with http_errors(self.endpoint, action):
            response = self._http.post("/v1/load_lora_adapter", json=body)
        if response.status_code >= 500 and WORKER_REFUSED in _message(response):
            raise BadInput(f"vLLM {self.endpoint}: {action} refused: {_message(response)}")
        check(response, self.endpoint, action)

    def unload_adapter(self, name: str) -> None:
        """Unload `name`; a name that is not loaded is not an error (the slot is already empty)."""
        if name not in {m.id for m in self.models()}:
            return
        self._request(
            "POST", "/v1/unload_lora_adapter", f"unloading adapter {name}", json={"lora_name": name}
        )

    def complete(self, model: str, prompt: str, max_tokens: int = 64, temperature: float = 0.0) -> Completion:
        body = {"model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": temperature}
        started = time.perf_counter()
        answer = self._request("POST", "/v1/completions", f"completing with {model}", json=body).json()
        latency = time.perf_counter() - started
        try:
            choice = answer["choices"][0]
            usage = answer.get("usage") or {}
            return Completion(
                text=str(choice.get("text") or ""),
                finish_reason=str(choice.get("finish_reason") or ""),
                prompt_tokens=int(usage.get("prompt_tokens") or 0),
                completion_tokens=int(usage.get("completion_tokens") or 0),
                latency_s=latency,
            )
        except (KeyError, IndexError, TypeError) as exc:
            raise Transient(
                f"vLLM {self.endpoint}: malformed completion answer: {str(answer)[:300]}"
            ) from exc


def connect(endpoint: str, timeout_s: float = 60.0, api_key: str = "") -> HttpVllmServer:
    return HttpVllmServer(endpoint, timeout_s=timeout_s, api_key=api_key)


def adapters(server: VllmServer) -> dict[str, str]:
    """Loaded adapters: served name -> the path it was loaded from."""
    return {m.id: m.root for m in server.models() if m.is_adapter}


def adapter_version(root: str, model: str) -> str | None:
    """The registry version a slot holds, from the folder it was loaded from.

    Adapter folders are `<adapter-dir>/<model>/<version>/` (deployment.vllm.adapters writes them
    that way, once per version), so the path vLLM reports as an adapter's `root` names it.
    None: not a folder of `model`'s.
    """
    path = root.rstrip("/").split("/")
    return path[-1] if len(path) >= 2 and path[-2] == model and path[-1].isdigit() else None
