"""Real HTTP servers on loopback: the app under test and fake upstreams, each in a thread."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

import uvicorn

from app.config import Settings
from app.main import create_app
from app.server import BoundedHttpProtocol


@dataclass
class LiveServer:
    url: str
    server: uvicorn.Server
    thread: threading.Thread
    app: Any

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bound_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def serve(
    app: Any,
    *,
    timeout_graceful_shutdown: float = 5,
    http: type[asyncio.Protocol] | str = "auto",
    sock: socket.socket | None = None,
) -> LiveServer:
    sock = sock or bound_socket()
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_level="warning",
        lifespan="on",
        access_log=False,
        timeout_graceful_shutdown=int(timeout_graceful_shutdown),
        http=http,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    return LiveServer(url=f"http://127.0.0.1:{port}", server=server, thread=thread, app=app)


def start_app_server(
    settings: Settings, *, http: type[BoundedHttpProtocol] = BoundedHttpProtocol
) -> LiveServer:
    """The app as production serves it: with the server's limits (app/server.py)."""
    return serve(create_app(settings), http=http)


def start_storefront_server(settings: Settings) -> LiveServer:
    """The app with its local storefront at its own URL, as `make dev` runs it: the demo
    catalog's links and pictures (imported at start from the fake admin on the app's URL)
    are this server's."""
    sock = bound_socket()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    app = create_app(settings.with_overrides(shopify_app_url=url))
    return serve(app, http=BoundedHttpProtocol, sock=sock)
