"""Operation-log bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel


class LogEntryOut(BaseModel):
    id: int
    time: datetime
    obj_type: str
    obj_id: str
    obj_name: str
    action: str
    success: bool
    notes: Any
    actor_user_id: str | None
    actor_user_name: str | None
    actor_project_id: str | None
    actor_project_name: str | None
    owner_domain_id: str | None
    owner_domain_name: str | None
    owner_project_id: str | None
    owner_project_name: str | None
    request_id: str | None
    client_ip: str | None


class LogPage(BaseModel):
    items: list[LogEntryOut]
    next_marker: str | None
