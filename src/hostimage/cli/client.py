"""A small HTTP client for the hostimage REST API (``/api/v1``), built on httpx.

Errors come back as :class:`ApiError` carrying the problem document's status, code and
detail. With ``debug`` every request is printed to stderr (method, URL, request id, answer
status and time) — never the token.
"""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import httpx

from hostimage.cli.errors import ApiError, CliError

USER_AGENT = "hostimage-cli/0.1"
TIMEOUT = httpx.Timeout(30.0, read=600.0, write=600.0)


def _query(params: Mapping[str, Any] | None) -> dict[str, str]:
    """Drop unset parameters; booleans as ``true``/``false``."""
    out: dict[str, str] = {}
    for key, value in (params or {}).items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        else:
            out[key] = str(value)
    return out


class Api:
    """A session with one hostimage server, optionally authenticated with a bearer token."""

    def __init__(self, base_url: str, token: str | None = None, *, debug: bool = False) -> None:
        if not base_url:
            raise CliError(
                "no server URL: log in with 'hostimage login --url URL' or set HOSTIMAGE_URL"
            )
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.debug = debug
        self._http = httpx.Client(
            base_url=f"{self.base_url}/api/v1",
            timeout=TIMEOUT,
            headers={"User-Agent": USER_AGENT},
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def _headers(self, extra: Mapping[str, str] | None, request_id: str) -> dict[str, str]:
        headers = {"X-Request-Id": request_id, **(extra or {})}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def _debug(self, text: str) -> None:
        if self.debug:
            print(f"DEBUG {text}", file=sys.stderr, flush=True)

    def _build(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        json: Any,
        content: bytes | Iterable[bytes] | None,
        headers: Mapping[str, str] | None,
    ) -> tuple[httpx.Request, str]:
        request_id = uuid.uuid4().hex
        request = self._http.build_request(
            method,
            path,
            params=_query(params),
            json=json,
            content=content,
            headers=self._headers(headers, request_id),
        )
        self._debug(f"> {method} {request.url} request-id={request_id}")
        return request, request_id

    def _send(self, request: httpx.Request, *, stream: bool) -> httpx.Response:
        started = time.monotonic()
        try:
            response = self._http.send(request, stream=stream)
        except httpx.TransportError as exc:
            raise CliError(f"cannot reach {self.base_url}: {exc}") from exc
        elapsed = (time.monotonic() - started) * 1000
        self._debug(f"< {response.status_code} {response.reason_phrase} ({elapsed:.0f} ms)")
        return response

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        content: bytes | Iterable[bytes] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send one request; raise :class:`ApiError` for an error answer."""
        request, _ = self._build(method, path, params, json, content, headers)
        response = self._send(request, stream=False)
        if response.is_error:
            raise ApiError.from_response(response)
        return response

    def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
    ) -> Any:
        """Send one request and return the decoded JSON answer (``None`` for 204)."""
        response = self.request(method, path, params=params, json=json)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def get(self, path: str, **params: Any) -> Any:
        """``GET`` with query parameters (``None`` values left out)."""
        return self.call("GET", path, params=params)

    def post(self, path: str, body: Any = None) -> Any:
        """``POST`` a JSON body."""
        return self.call("POST", path, json=body if body is not None else {})

    def patch(self, path: str, body: Any) -> Any:
        """``PATCH`` a JSON body."""
        return self.call("PATCH", path, json=body)

    def delete(self, path: str) -> Any:
        """``DELETE`` (202 answers carry a task)."""
        return self.call("DELETE", path)

    @contextmanager
    def stream(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Iterator[httpx.Response]:
        """A streamed answer (downloads, exports); raises :class:`ApiError` on errors."""
        request, _ = self._build(method, path, params, None, None, headers)
        response = self._send(request, stream=True)
        try:
            if response.is_error:
                response.read()
                raise ApiError.from_response(response)
            yield response
        finally:
            response.close()

    def pages(self, path: str, page_size: int, **params: Any) -> Iterator[dict[str, Any]]:
        """Every item of an offset-paged list (``{items, total, limit, offset}``)."""
        offset = 0
        while True:
            page = self.get(path, limit=page_size, offset=offset, **params)
            items: list[dict[str, Any]] = page.get("items", [])
            yield from items
            offset += len(items)
            if not items or offset >= int(page.get("total", 0)):
                return
