"""Global settings: three-level permissions, target formats and image size limits (SPEC §5
and §9.1 ``/settings``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from hostimage.db.engine import begin_write
from hostimage.db.models import Domain, HostImage, Project, SettingRow
from hostimage.domain.formats import CONVERTIBLE_FORMATS
from hostimage.errors import Conflict, Forbidden, ValidationFailed
from hostimage.services.context import RequestContext

DEFAULTS: dict[str, Any] = {
    "three_level_permissions": False,
    "target_formats": ["qcow2"],
    # GiB (2^30 bytes); SPEC §9.1.
    "max_virtual_size_gb": 16384,
    "max_upload_size_gb": 2048,
}
SIZE_LIMITS = ("max_virtual_size_gb", "max_upload_size_gb")
DEFAULT_DOMAIN = "Default"


def get_settings(session: Session) -> dict[str, Any]:
    """Every setting with its default filled in."""
    stored = {row.key: row.value for row in session.scalars(select(SettingRow))}
    return {key: stored.get(key, default) for key, default in DEFAULTS.items()}


def three_level(session: Session) -> bool:
    """Whether three-level permissions (三级权限) are on."""
    row = session.get(SettingRow, "three_level_permissions")
    return bool(row.value) if row else False


def three_level_column() -> Any:
    """:func:`three_level` as a column (NULL when never set), to be read by a use case's
    first query instead of in a round trip of its own."""
    return (
        select(SettingRow.value)
        .where(SettingRow.key == "three_level_permissions")
        .scalar_subquery()
    )


def update_settings(
    session: Session, ctx: RequestContext, changes: dict[str, Any]
) -> dict[str, Any]:
    """Change settings (sysadmin only). Three-level can be turned off only while no
    domain-scope share exists and no project lives outside ``Default`` (409)."""
    begin_write(session)
    if not ctx.principal.is_sysadmin:
        raise Forbidden("Only a system administrator may change settings.")
    unknown = set(changes) - set(DEFAULTS)
    if unknown:
        raise ValidationFailed(f"Unknown settings: {', '.join(sorted(unknown))}.")
    if "target_formats" in changes:
        formats = changes["target_formats"]
        if not isinstance(formats, list) or any(f not in CONVERTIBLE_FORMATS for f in formats):
            allowed = ", ".join(sorted(CONVERTIBLE_FORMATS))
            raise ValidationFailed(f"target_formats must be a list drawn from: {allowed}.")
        changes["target_formats"] = sorted(set(formats), key=formats.index)
    for key in SIZE_LIMITS:
        if key in changes:
            value = changes[key]
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ValidationFailed(f"{key} must be a positive number of GiB.")
    if "three_level_permissions" in changes:
        if not isinstance(changes["three_level_permissions"], bool):
            raise ValidationFailed("three_level_permissions must be true or false.")
        if not changes["three_level_permissions"] and three_level(session):
            _check_can_disable_three_level(session)
    for key, value in changes.items():
        row = session.get(SettingRow, key)
        if row is None:
            session.add(SettingRow(key=key, value=value))
        else:
            row.value = value
    session.commit()
    return get_settings(session)


def _check_can_disable_three_level(session: Session) -> None:
    if session.scalar(select(exists().where(HostImage.share_scope == "domain"))):
        raise Conflict(
            "Three-level permissions cannot be turned off while images are shared to domains.",
            code="domain_shares_exist",
        )
    outside = exists().where(Project.domain_id == Domain.id, Domain.name != DEFAULT_DOMAIN)
    if session.scalar(select(outside)):
        raise Conflict(
            "Three-level permissions cannot be turned off while projects live outside "
            "the Default domain.",
            code="projects_outside_default",
        )
