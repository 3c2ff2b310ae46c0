"""Operation-log vocabulary: actions, object types, export columns and their labels."""

from __future__ import annotations

import base64
from enum import StrEnum

from hostimage.errors import Invalid


class LogAction(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    SHARE = "share"
    UNSHARE = "unshare"
    CHANGE_PROJECT = "change_project"
    SET_PROTECTION = "set_protection"
    DELETE = "delete"
    SAVE = "save"
    CONVERT = "convert"


class ObjType(StrEnum):
    HOST_IMAGE = "host_image"
    IMAGE = "image"
    SERVER = "server"


# Export columns in their default order, with zh-CN and English labels.
LOG_COLUMNS: dict[str, tuple[str, str]] = {
    "id": ("ID", "ID"),
    "time": ("操作时间", "Time"),
    "obj_type": ("资源类型", "Object type"),
    "obj_id": ("资源ID", "Object ID"),
    "obj_name": ("资源名称", "Object name"),
    "action": ("操作类型", "Action"),
    "success": ("结果", "Result"),
    "notes": ("备注", "Notes"),
    "actor_user_id": ("发起人ID", "User ID"),
    "actor_user_name": ("发起人", "User"),
    "actor_project_id": ("发起人项目ID", "User project ID"),
    "actor_project_name": ("发起人项目", "User project"),
    "owner_domain_id": ("所属域ID", "Owner domain ID"),
    "owner_domain_name": ("所属域", "Owner domain"),
    "owner_project_id": ("所属项目ID", "Owner project ID"),
    "owner_project_name": ("所属项目", "Owner project"),
    "request_id": ("请求ID", "Request ID"),
    "client_ip": ("客户端IP", "Client IP"),
}

MAX_LOG_LIMIT = 1000


def column_label(key: str, lang: str) -> str:
    """The header label of export column ``key`` in ``lang`` (zh-CN or en)."""
    zh, en = LOG_COLUMNS[key]
    return en if lang.lower().startswith("en") else zh


def parse_columns(raw: str | None) -> list[str]:
    """Validate a ``columns=a,b,c`` list; all columns when empty. Unknown keys are refused."""
    if not raw:
        return list(LOG_COLUMNS)
    keys = [k.strip() for k in raw.split(",") if k.strip()]
    unknown = [k for k in keys if k not in LOG_COLUMNS]
    if unknown:
        raise Invalid(f"Unknown log columns: {', '.join(unknown)}.", code="bad_columns")
    return keys


def encode_marker(entry_id: int) -> str:
    """An opaque paging marker for "entries older than ``entry_id``"."""
    return base64.urlsafe_b64encode(f"v1:{entry_id}".encode()).decode().rstrip("=")


def decode_marker(marker: str) -> int:
    """The entry id inside a marker made by ``encode_marker``; 400 for anything else."""
    try:
        padded = marker + "=" * (-len(marker) % 4)
        version, _, value = base64.urlsafe_b64decode(padded.encode()).decode().partition(":")
        if version != "v1":
            raise ValueError(version)
        entry_id = int(value)
        # Entry ids are a signed 64-bit column: anything else names no entry.
        if not 0 < entry_id < 2**63:
            raise ValueError(entry_id)
        return entry_id
    except (ValueError, UnicodeDecodeError) as exc:
        raise Invalid("The paging marker is not valid.", code="bad_marker") from exc
