"""A small HTTP load generator: keep-alive connections, N client threads, latency samples.

Uses ``http.client`` (stdlib, little client-side CPU, the same client the Glance peer
benchmark uses) so that the 2 cores are left to the server as much as possible.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# A request factory gets (client number, sequence number) and answers
# (method, path, JSON body or None, expected status).
Request = tuple[str, str, Any, int]
Factory = Callable[[int, int], Request]


class Client:
    """One keep-alive HTTP connection with an optional bearer token."""

    def __init__(self, base_url: str, token: str | None = None, timeout: float = 600) -> None:
        u = urllib.parse.urlsplit(base_url)
        self.host, self.port = u.hostname or "127.0.0.1", u.port or 80
        self.prefix = u.path.rstrip("/")
        self.timeout = timeout
        self.headers = {"Accept": "application/json"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        data = None if body is None else json.dumps(body).encode()
        headers = dict(self.headers)
        if data is not None:
            headers["Content-Type"] = "application/json"
        for attempt in (0, 1):
            fresh = self.conn is None
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self.conn.request(method, self.prefix + path, body=data, headers=headers)
                r = self.conn.getresponse()
                payload = r.read()
                if r.will_close:
                    self.close()
                return r.status, payload
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()
                if fresh or attempt:
                    raise
        raise AssertionError("unreachable")

    def json(self, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        status, payload = self.request(method, path, body)
        if status != expect:
            raise RuntimeError(f"{method} {path}: HTTP {status} {payload[:300]!r}")
        return json.loads(payload) if payload else None

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def pct(samples: list[float], p: float) -> float:
    """Nearest-rank percentile (as the Glance peer benchmark computes it)."""
    if not samples:
        return float("nan")
    s = sorted(samples)
    return s[max(0, min(len(s) - 1, round(p / 100.0 * len(s)) - 1))]


@dataclass
class Result:
    latencies_ms: list[float] = field(default_factory=list)
    elapsed_s: float = 0.0
    errors: int = 0
    first_error: str = ""

    @property
    def count(self) -> int:
        return len(self.latencies_ms)

    @property
    def p50(self) -> float:
        return pct(self.latencies_ms, 50)

    @property
    def p99(self) -> float:
        return pct(self.latencies_ms, 99)

    @property
    def rps(self) -> float:
        return self.count / self.elapsed_s if self.elapsed_s else float("nan")


def run(
    base_url: str,
    token: str | None,
    factory: Factory,
    *,
    clients: int = 8,
    duration: float | None = None,
    requests: int | None = None,
    warmup: float = 1.0,
) -> Result:
    """``clients`` threads send requests from ``factory`` for ``duration`` seconds (after
    ``warmup`` seconds that are not counted), or ``requests`` requests in all."""
    res = Result()
    lock = threading.Lock()
    start_gate = threading.Barrier(clients + 1)
    state = {"measuring": warmup <= 0, "stop": False, "left": requests}

    def worker(k: int) -> None:
        client = Client(base_url, token)
        seq = 0
        mine: list[float] = []
        errors, first = 0, ""
        start_gate.wait()
        while not state["stop"]:
            if requests is not None and state["measuring"]:
                with lock:
                    if state["left"] <= 0:  # type: ignore[operator]
                        break
                    state["left"] -= 1  # type: ignore[operator]
            method, path, body, expect = factory(k, seq)
            seq += 1
            measuring = state["measuring"]
            t = time.perf_counter()
            try:
                status, payload = client.request(method, path, body)
                ok = status == expect
                if not ok and not first:
                    first = f"{method} {path}: HTTP {status} {payload[:200]!r}"
            except Exception as exc:  # count and keep going
                ok = False
                first = first or f"{method} {path}: {exc!r}"
                client.close()
            dt = (time.perf_counter() - t) * 1000
            if measuring:
                if ok:
                    mine.append(dt)
                else:
                    errors += 1
        client.close()
        with lock:
            res.latencies_ms.extend(mine)
            res.errors += errors
            res.first_error = res.first_error or first

    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(clients)]
    for t in threads:
        t.start()
    start_gate.wait()
    if warmup > 0:
        time.sleep(warmup)
        state["measuring"] = True
    t0 = time.perf_counter()
    if duration is not None:
        time.sleep(duration)
        state["stop"] = True
    for t in threads:
        t.join()
    res.elapsed_s = time.perf_counter() - t0
    return res
