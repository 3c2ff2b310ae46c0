"""Helpers shared by host-image use cases: loading, locking, naming, refusal logging."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, String, and_, case, cast, exists, func, literal, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from hostimage.db.base import utcnow
from hostimage.db.engine import begin_write
from hostimage.db.models import Domain, HostImage, Image, Project
from hostimage.db.scoping import visible
from hostimage.domain.formats import mib_ceil
from hostimage.domain.naming import sub_image_name_parts, suffixed
from hostimage.domain.sharing import Owner
from hostimage.domain.status import ImageStatus, derive_host_status
from hostimage.errors import HostImageError, NotFound
from hostimage.services.context import RequestContext
from hostimage.services.host_images.describe import HI, IMG, json_columns, shown_parts
from hostimage.services.oplog import NameCache
from hostimage.services.settings import three_level, three_level_column


@dataclass
class Lookups:
    """What the items of one use case (or of one batch) look up at most once, and, in a
    batch, the sub-image updates gathered into one statement per kind of change."""

    session: Session
    batched: bool = False
    names: NameCache = field(init=False)
    # What :func:`lock_visible` read of the image's sub-images and share targets (for
    # ``read.detail``), by host-image id.
    shown: dict[str, dict[str, Any]] = field(default_factory=dict)
    _three_level: bool | None = None
    _sub_updates: dict[tuple[tuple[str, object], ...], list[str]] = field(default_factory=dict)
    # (host-image id, wanted name) → is the name used by another image (anywhere, in the
    # image's domain), as read with the lock.
    _holders: dict[tuple[str, str], tuple[bool, bool]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.names = NameCache(self.session)

    def know_three_level(self, value: object) -> None:
        """The setting as a use case's first query read it (:func:`three_level_column`)."""
        self._three_level = bool(value)

    def three_level(self) -> bool:
        if self._three_level is None:
            self._three_level = three_level(self.session)
        return self._three_level

    def know_holders(
        self, host_image_id: str, name: str, *, anywhere: bool, in_domain: bool
    ) -> None:
        """Whether another image holds ``name``, as read with the lock of ``host_image_id``."""
        self._holders[(host_image_id, name)] = (anywhere, in_domain)

    def name_taken(self, hi: HostImage, name: str) -> bool:
        """:func:`name_taken` for renaming ``hi`` to ``name``: from what the lock read when
        it was asked for that name, else by a query."""
        known = self._holders.get((hi.id, name))
        if known is None:
            return name_taken(self.session, name, hi.domain_id, self.three_level(), hi.id)
        anywhere, in_domain = known
        return in_domain if self.three_level() else anywhere

    def change(self, hi: HostImage, values: dict[str, Any]) -> None:
        """Give ``hi`` the column ``values``: alone, with one ``UPDATE`` now (no ORM flush);
        in a batch, on the object, so the batch's rows are flushed together."""
        if self.batched:
            for key, value in values.items():
                setattr(hi, key, value)
            return
        self.session.execute(update(HI).where(HI.c.id == hi.id).values(values))
        for key, value in values.items():
            # The row already holds it: the object must not send it again.
            set_committed_value(hi, key, value)

    def touch_subs(self, host_image_id: str, **values: object) -> None:
        """Apply ``values`` to the host image's sub-images: now, or with the batch's others."""
        if not self.batched:
            touch_subs(self.session, [host_image_id], **values)
            return
        self._sub_updates.setdefault(tuple(sorted(values.items())), []).append(host_image_id)

    def write_gathered(self) -> None:
        """Send the gathered sub-image updates (a batch calls this before committing)."""
        for items, ids in self._sub_updates.items():
            touch_subs(self.session, ids, **dict(items))
        self._sub_updates.clear()


def owner_of(hi: HostImage | Image) -> Owner:
    return Owner(domain_id=hi.domain_id, project_id=hi.project_id)


def get_visible(session: Session, ctx: RequestContext, host_image_id: str) -> HostImage:
    """The host image if the caller can see it, else NotFound (never Forbidden)."""
    hi = session.scalar(
        select(HostImage).where(HostImage.id == host_image_id, visible(HostImage, ctx.principal))
    )
    if hi is None:
        raise NotFound(f"Host image {host_image_id} not found.")
    return hi


def _locking(ctx: RequestContext, *also: Any) -> Select[Any]:
    # Names come along for the log entries, and the three-level setting for the rules; only
    # the host image's row is locked.
    return (
        select(HostImage, Domain.name, Project.name, three_level_column(), *also)
        .join(Domain, Domain.id == HostImage.domain_id)
        .join(Project, Project.id == HostImage.project_id)
        .where(visible(HostImage, ctx.principal))
        .with_for_update(of=HostImage)
    )


# Another host image with the name a rename asks for, anywhere or in the same domain.
_OTHER = HI.alias("other_host_image")


def _name_holders(name: str) -> tuple[Any, Any]:
    same_name = and_(_OTHER.c.name == name, _OTHER.c.id != HI.c.id)
    in_domain = and_(same_name, _OTHER.c.domain_id == HI.c.domain_id)
    return exists().where(same_name), exists().where(in_domain)


def lock_visible(
    session: Session,
    ctx: RequestContext,
    host_image_id: str,
    lk: Lookups | None = None,
    *,
    new_name: str | None = None,
) -> HostImage:
    """Begin a write transaction and lock the visible host image's row against racing writers
    (NotFound when the caller cannot see it); its owner's names go to ``lk``, and with
    ``new_name`` whether another image holds that name (``lk.name_taken``)."""
    begin_write(session)
    # The sub-images and share targets come along too: the use case's answer needs them.
    also = list(json_columns(session.get_bind().dialect.name))
    if new_name is not None and lk is not None:
        also.extend(_name_holders(new_name))
    row = session.execute(_locking(ctx, *also).where(HostImage.id == host_image_id)).first()
    if row is None:
        raise NotFound(f"Host image {host_image_id} not found.")
    hi: HostImage = row[0]
    domain_name, project_name, three, subs_json, shares_json = row[1:6]
    if lk is not None:
        lk.names.know(hi.domain_id, domain_name, hi.project_id, project_name)
        lk.know_three_level(three)
        lk.shown[hi.id] = shown_parts(subs_json, shares_json)
        if new_name is not None:
            lk.know_holders(hi.id, new_name, anywhere=bool(row[6]), in_domain=bool(row[7]))
    return hi


# Rows locked per statement: far below every database's limit on bound parameters.
LOCK_CHUNK = 500


def lock_many(
    session: Session, ctx: RequestContext, ids: list[str], lk: Lookups
) -> dict[str, HostImage]:
    """Begin a write transaction and lock every visible host image among ``ids``, by id.

    Rows are locked in id order, so two batches over overlapping images cannot deadlock;
    ids the caller cannot see are simply absent from the answer.
    """
    begin_write(session)
    found: dict[str, HostImage] = {}
    ordered = sorted(set(ids))
    for start in range(0, len(ordered), LOCK_CHUNK):
        chunk = ordered[start : start + LOCK_CHUNK]
        rows = session.execute(_locking(ctx).where(HostImage.id.in_(chunk)).order_by(HostImage.id))
        for hi, domain_name, project_name, three in rows:
            lk.names.know(hi.domain_id, domain_name, hi.project_id, project_name)
            lk.know_three_level(three)
            found[hi.id] = hi
    return found


@contextmanager
def committed(session: Session) -> Iterator[None]:
    """End a one-item use case: commit what it did; on a refusal whose failed log entry was
    recorded, commit that entry alone (the checks come before any write); roll back on
    anything else."""
    try:
        yield
    except HostImageError as exc:
        if exc.logged:
            session.commit()
        else:
            session.rollback()
        raise
    except BaseException:
        session.rollback()
        raise
    session.commit()


def sub_images(session: Session, host_image_id: str) -> list[Image]:
    return list(
        session.scalars(
            select(Image).where(Image.host_image_id == host_image_id).order_by(Image.idx)
        )
    )


def rename_subs(session: Session, hi: HostImage, lk: Lookups | None = None) -> list[str]:
    """Name the host image's sub-images after it (:func:`sub_image_name`) in one statement;
    their ids in disk order. What ``lk`` holds of them is renamed too."""
    root, data_prefix = sub_image_name_parts(hi.name)
    index = func.coalesce(IMG.c.idx, 0)
    rows = session.execute(
        update(IMG)
        .where(IMG.c.host_image_id == hi.id)
        .values(
            name=case((index == 0, root), else_=literal(data_prefix) + cast(index, String)),
            updated_at=hi.updated_at,
        )
        .returning(IMG.c.id, index, IMG.c.name)
    ).all()
    if lk is not None and hi.id in lk.shown:
        names = {sub_id: name for sub_id, _, name in rows}
        for sub in lk.shown[hi.id]["sub_images"]:
            sub["name"] = names.get(sub["id"], sub["name"])
    return [sub_id for sub_id, _, _ in sorted(rows, key=lambda row: row[1])]


def touch_subs(session: Session, host_image_ids: list[str], **values: object) -> None:
    """Apply ``values`` to every sub-image of the host images, one statement per 500."""
    now = utcnow()
    for start in range(0, len(host_image_ids), LOCK_CHUNK):
        session.execute(
            update(Image)
            .where(Image.host_image_id.in_(host_image_ids[start : start + LOCK_CHUNK]))
            .values(updated_at=now, **values)
        )


def name_taken(
    session: Session, name: str, domain_id: str, three_level: bool, exclude_id: str | None = None
) -> bool:
    """Names are unique per domain with three-level permissions on, else globally.

    Flushes first, so that names given earlier in the same transaction (a batch) count.
    """
    session.flush()
    q = select(HI.c.id).where(HI.c.name == name)
    if three_level:
        q = q.where(HI.c.domain_id == domain_id)
    if exclude_id:
        q = q.where(HI.c.id != exclude_id)
    return session.scalar(q.limit(1)) is not None


def unique_name(
    session: Session, name: str, domain_id: str, three_level: bool, exclude_id: str | None = None
) -> str:
    """``name`` itself when free, else ``name`` with a random suffix that is free."""
    candidate = name
    while name_taken(session, candidate, domain_id, three_level, exclude_id):
        candidate = suffixed(name)
    return candidate


def refresh_derived(hi: HostImage, subs: list[Image]) -> None:
    """Recompute the fields a host image derives from its sub-images (status included).

    Called by every write that changes sub-images, never by a read.
    """
    ordered = sorted(subs, key=lambda s: s.idx or 0)
    system = ordered[0] if ordered else None
    hi.sub_image_count = len(ordered)
    hi.size = sum(s.size for s in ordered)
    hi.virtual_size = system.virtual_size if system else 0
    hi.disk_format = system.disk_format if system else None
    hi.min_disk_mb = mib_ceil(system.virtual_size) if system else None
    hi.status = derive_host_status(ImageStatus(s.status) for s in ordered).value
    killed = [s.status_reason for s in ordered if s.status == "killed" and s.status_reason]
    hi.status_reason = (
        killed[0] if killed else (hi.status_reason if hi.status == "killed" else None)
    )
