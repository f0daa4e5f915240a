"""A TCP proxy in front of a real server that drops connections, as a flaky network does."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass
class DroppingProxy:
    """Forwards 127.0.0.1:<port> to `upstream`; drops any connection that has sent more than
    `max_request_bytes` (large uploads die mid-body, small requests pass), or every connection
    once `network_down` is set."""

    upstream: tuple[str, int]
    max_request_bytes: int = 1 << 20
    network_down: bool = False
    dropped: int = 0
    port: int = 0
    _listener: socket.socket = field(init=False, repr=False)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        self._listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            if self.network_down:
                self._drop(client)
                continue
            upstream = socket.create_connection(self.upstream)
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _drop(self, *sockets: socket.socket) -> None:
        self.dropped += 1
        for sock in sockets:
            with contextlib.suppress(OSError):
                # shutdown first: it wakes the other pump's recv (a bare close would wait for it)
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()

    def _pump(self, source: socket.socket, target: socket.socket, upstream_bound: bool) -> None:
        sent = 0
        try:
            while block := source.recv(65536):
                sent += len(block)
                if upstream_bound and (sent > self.max_request_bytes or self.network_down):
                    self._drop(source, target)
                    return
                target.sendall(block)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                with contextlib.suppress(OSError):
                    sock.close()


@contextlib.contextmanager
def dropping_proxy(endpoint: str, **options: object) -> Iterator[DroppingProxy]:
    host, port = endpoint.rsplit("//", 1)[-1].rsplit(":", 1)
    proxy = DroppingProxy((host, int(port)), **options)  # type: ignore[arg-type]
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()
