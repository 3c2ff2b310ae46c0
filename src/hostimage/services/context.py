"""What every use case receives besides the session: the caller and the request it made."""

from __future__ import annotations

from dataclasses import dataclass

from hostimage.domain.tenancy import Principal


@dataclass(frozen=True)
class RequestContext:
    principal: Principal
    request_id: str | None = None
    client_ip: str | None = None
