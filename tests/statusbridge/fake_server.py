"""Plumbing shared by every statusbridge fake: an HTTP server in a thread.

Each fake (Pingdom, Cachet, an ECS node's /metrics, SignalFx ingest) subclasses
:class:`FakeServer` and implements ``handle``; the server binds to 127.0.0.1 on a free
port and answers until ``close()`` (or the ``with`` block ends). A :class:`Response`
body is sent as JSON, or as the raw bytes it is with its ``content_type``; a
:class:`Request` carries both its raw body and, when it is JSON, the parsed one.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    """One request as the fake saw it (header names lower-cased)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    raw: bytes = b""


@dataclass
class Response:
    """What a fake answers: ``bytes`` go out as they are, anything else as JSON."""

    status: int
    body: Any = None
    headers: dict[str, str] | None = None
    content_type: str | None = None


def _payload(response: Response) -> tuple[bytes, str | None]:
    if response.body is None:
        return b"", response.content_type
    if isinstance(response.body, bytes):
        return response.body, response.content_type or "application/octet-stream"
    return json.dumps(response.body).encode(), response.content_type or "application/json"


class FakeServer:
    """A threaded HTTP server on 127.0.0.1 that routes every request to ``handle``.

    ``lock`` (a condition) is held while ``handle`` runs; ``requests`` lists every request.
    """

    def __init__(self) -> None:
        self.lock = threading.Condition(threading.RLock())
        self.requests: list[Request] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes; Nagle would delay the second.
            disable_nagle_algorithm = True

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode("utf-8", "replace")
                request = Request(
                    self.command,
                    parts.path,
                    {k: v[-1] for k, v in parse_qs(parts.query).items()},
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                    raw,
                )
                with fake.lock:
                    fake.requests.append(request)
                    response = fake.handle(request)
                payload, content_type = _payload(response)
                self.send_response(response.status)
                for name, value in (response.headers or {}).items():
                    self.send_header(name, value)
                if content_type is not None:
                    self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = _serve  # noqa: N815

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            # A short poll interval keeps shutdown() (and test teardown) quick.
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=type(self).__name__,
            daemon=True,
        )
        self._thread.start()

    @property
    def url(self) -> str:
        """Base URL of the server, without a trailing slash."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def handle(self, request: Request) -> Response:
        """Answer one request (called with ``self.lock`` held)."""
        raise NotImplementedError

    def close(self) -> None:
        """Stop serving and free the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
