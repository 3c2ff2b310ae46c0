"""A second API process for tests: the same database, served by uvicorn on loopback.

Requests reach it over real sockets, concurrently, and from a chosen loopback source
address (``127.0.0.x``), which the server sees as the client's address.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from hostimage.api.app import create_app


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 (a free port) in a thread; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def second_process(app: Any) -> FastAPI:
    """Another application on ``app``'s settings and database, as a second API process."""
    return create_app(app.state.settings, engine=app.state.engine)


def client_from(base: str, address: str = "127.0.0.1", timeout: float = 60) -> httpx.Client:
    """An HTTP client whose connections come from ``address`` (a loopback address)."""
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=f"{base}/api/v1", transport=transport, timeout=timeout)
