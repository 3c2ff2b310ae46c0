"""Errors the client reports on one line, with the exit code to use."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx


class CliError(Exception):
    """A failure to report on one line, with the process exit code to use."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


class ApiError(CliError):
    """An error answer of the API (``application/problem+json``)."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(f"{detail} ({status} {code})", exit_code=1)
        self.status = status
        self.code = code
        self.detail = detail

    @classmethod
    def from_response(cls, response: httpx.Response) -> ApiError:
        """Read the problem document (or make one up for a non-JSON answer)."""
        code, detail = "http_error", response.reason_phrase or "error"
        try:
            body = response.json()
        except ValueError:
            text = response.text.strip()
            if text:
                detail = text.splitlines()[0][:300]
        else:
            if isinstance(body, dict):
                code = str(body.get("code") or code)
                detail = str(body.get("detail") or body.get("title") or detail)
        if code in ("bad_token", "not_authenticated"):
            detail = f"{detail.rstrip('.')}. Log in again with 'hostimage login'."
        return cls(response.status_code, code, detail)
