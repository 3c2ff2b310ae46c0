"""Garbage collection of stored objects that no row references.

An object can outlive every row that points at it: an upload or save killed after its object
was published and before its row committed, a conversion that finished after its host image
was purged, a purge that deleted the rows but crashed before its storage call went through.
:func:`collect` finds such objects and removes them, together with the incomplete writes
(temporary files, S3 multipart uploads) that dead writers left behind.

What it promises:

- Only objects that no ``images.object_key`` and no ``format_copies.object_key`` names are
  removed, and only once they are older than the grace period: a save or an upload publishes
  its object moments before its row commits, and in that moment nothing references it.
- The objects are listed first and the references read afterwards, in batches, so an object
  that gained a reference while the listing ran is seen as referenced. Just before removing
  an object it is looked up again, and left alone if it was rewritten meanwhile.
- An object whose age the backend cannot tell is never removed.
- A storage error on one object is reported and the sweep goes on; an error while listing
  ends that listing (what was listed before it is still swept). A database error raises:
  nothing is removed on a guess.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from hostimage.db.engine import begin_read, session_scope
from hostimage.db.models import FormatCopy, Image
from hostimage.storage import IncompleteWrite, ObjectInfo, Storage, StorageError

log = logging.getLogger(__name__)

QUERY_CHUNK = 500  # bound parameters in one IN (...)
MAX_LISTED = 1000  # removals and errors kept in the report; the counts cover them all


@dataclass(frozen=True)
class Removal:
    """One object (or incomplete write) removed, or that a dry run would remove."""

    kind: Literal["object", "incomplete"]
    key: str
    size: int
    age: timedelta

    def describe(self, dry_run: bool) -> str:
        """One line for an operator: what, how big, how old."""
        verb = "would remove" if dry_run else "removed"
        what = "incomplete write" if self.kind == "incomplete" else "object"
        return f"{verb} {what} {self.key}  {human_size(self.size)}  {human_age(self.age)} old"


@dataclass
class GcReport:
    """What one collection did. ``removals`` and ``errors`` keep the first ``MAX_LISTED``
    entries; the counters cover everything."""

    dry_run: bool
    cutoff: datetime
    scanned: int = 0
    kept_referenced: int = 0
    kept_young: int = 0
    removed_objects: int = 0
    removed_bytes: int = 0
    removed_incomplete: int = 0
    removed_incomplete_bytes: int = 0
    error_count: int = 0
    removals: list[Removal] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line: counts and bytes removed (or that would be), kept, and errors."""
        verb = "Would remove" if self.dry_run else "Removed"
        return (
            f"{verb} {self.removed_objects} unreferenced object(s) "
            f"({human_size(self.removed_bytes)}) and {self.removed_incomplete} incomplete "
            f"write(s) ({human_size(self.removed_incomplete_bytes)}); scanned {self.scanned}, "
            f"kept {self.kept_referenced} referenced and {self.kept_young} newer than "
            f"{self.cutoff.isoformat(timespec='seconds')}; {self.error_count} error(s)."
        )

    def _removed(self, removal: Removal) -> None:
        if removal.kind == "object":
            self.removed_objects += 1
            self.removed_bytes += removal.size
        else:
            self.removed_incomplete += 1
            self.removed_incomplete_bytes += removal.size
        if len(self.removals) < MAX_LISTED:
            self.removals.append(removal)

    def _failed(self, message: str) -> None:
        log.warning("garbage collection: %s", message)
        self.error_count += 1
        if len(self.errors) < MAX_LISTED:
            self.errors.append(message)


def collect(
    factory: sessionmaker[Session],
    storage: Storage,
    *,
    grace: timedelta,
    dry_run: bool,
    batch: int = 1000,
    now: datetime | None = None,
    on_removal: Callable[[Removal], None] | None = None,
) -> GcReport:
    """Remove the stored objects that no row references and that are older than ``grace``,
    then the incomplete writes that received no bytes for ``grace``; return what was done.

    Objects are swept ``batch`` at a time: listed, the old ones' references read in one
    read-only query per table (chunks of ``QUERY_CHUNK`` keys), the unreferenced ones removed.
    ``dry_run`` removes nothing and reports what would go. ``now`` (aware, default the current
    time) sets the age reference. ``on_removal`` is called for every removal as it happens
    (the report lists only the first ``MAX_LISTED``). Storage errors are reported in the
    result; a database error raises. See the module docstring for the guarantees.
    """
    if grace < timedelta(0):
        raise ValueError("The grace period cannot be negative.")
    if batch < 1:
        raise ValueError("The batch size must be at least 1.")
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime.")
    cutoff = now - grace
    report = GcReport(dry_run=dry_run, cutoff=cutoff)

    def removed(removal: Removal) -> None:
        log.info("garbage collection: %s", removal.describe(dry_run))
        report._removed(removal)
        if on_removal is not None:
            on_removal(removal)

    for chunk in _batches(storage.list_objects(), batch, report):
        report.scanned += len(chunk)
        old = [o for o in chunk if o.modified is not None and o.modified < cutoff]
        report.kept_young += len(chunk) - len(old)
        referenced = referenced_keys(factory, [o.key for o in old])
        for obj in old:
            if obj.key in referenced:
                report.kept_referenced += 1
                continue
            gone = _remove_object(storage, obj, cutoff, dry_run, report)
            if gone is not None:
                assert obj.modified is not None
                removed(Removal("object", obj.key, gone, now - obj.modified))

    try:
        for write in storage.incomplete_writes(cutoff):
            if not dry_run:
                try:
                    storage.discard_incomplete(write)
                except StorageError as exc:
                    report._failed(f"discarding {write.name}: {exc}")
                    continue
            removed(_incomplete_removal(write, now))
    except StorageError as exc:
        report._failed(f"listing incomplete writes: {exc}")
    return report


def referenced_keys(factory: sessionmaker[Session], keys: Sequence[str]) -> set[str]:
    """The subset of ``keys`` that some image or format copy row names as its stored data,
    read outside any transaction (each query sees the rows committed when it starts)."""
    found: set[str] = set()
    if not keys:
        return found
    with session_scope(factory) as session:
        begin_read(session)
        for start in range(0, len(keys), QUERY_CHUNK):
            part = list(keys[start : start + QUERY_CHUNK])
            for column in (Image.object_key, FormatCopy.object_key):
                rows = session.scalars(select(column).where(column.in_(part)).distinct())
                found.update(key for key in rows if key is not None)
    return found


def _batches(
    objects: Iterator[ObjectInfo], size: int, report: GcReport
) -> Iterator[list[ObjectInfo]]:
    """The listing ``size`` objects at a time; a listing error is reported and ends it."""
    while True:
        try:
            chunk = list(islice(objects, size))
        except StorageError as exc:
            report._failed(f"listing objects: {exc}")
            return
        if not chunk:
            return
        yield chunk


def _remove_object(
    storage: Storage, obj: ObjectInfo, cutoff: datetime, dry_run: bool, report: GcReport
) -> int | None:
    """Delete one unreferenced object (not in a dry run) unless it vanished or was rewritten
    since it was listed; its size if it went (or would go), else None."""
    if dry_run:
        return obj.size
    try:
        current = storage.stat(obj.key)
        if current is None:
            return None
        if current.modified is None or current.modified >= cutoff:
            report.kept_young += 1
            return None
        storage.delete(obj.key)
    except StorageError as exc:
        report._failed(f"removing {obj.key}: {exc}")
        return None
    return current.size


def _incomplete_removal(write: IncompleteWrite, now: datetime) -> Removal:
    return Removal("incomplete", write.name, write.size, now - write.modified)


def human_size(size: int) -> str:
    """``size`` bytes as a short human reading (binary units)."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def human_age(age: timedelta) -> str:
    """An age as days and hours, hours and minutes, or minutes and seconds."""
    seconds = max(0, int(age.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s"
