"""Login throttling kept in the database, so every API process counts the same attempts."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from hostimage.db.base import table_of, utcnow
from hostimage.db.engine import begin_write
from hostimage.db.models import LoginAttempt
from hostimage.domain.throttle import WINDOW, address_key, retry_after, user_key
from hostimage.errors import TooManyAttempts

_ATTEMPTS = table_of(LoginAttempt)


@dataclass(frozen=True)
class Attempt:
    """A login being checked: its id and the throttle keys it counts against."""

    id: str
    keys: tuple[str, ...]


def keys_of(username: str, domain: str, client_ip: str | None) -> tuple[str, ...]:
    """The throttle keys of a login: its user's, and its client address's when known."""
    keys = [user_key(username, domain)]
    if client_ip:
        keys.append(address_key(client_ip))
    return tuple(keys)


def _check(session: Session, keys: tuple[str, ...], now: datetime) -> None:
    rows = session.execute(
        select(_ATTEMPTS.c.key, _ATTEMPTS.c.at, _ATTEMPTS.c.pending).where(
            _ATTEMPTS.c.key.in_(keys), _ATTEMPTS.c.at > now - WINDOW
        )
    ).all()
    waits = []
    for key in keys:
        failures = [at for k, at, pending in rows if k == key and not pending]
        pending = sum(1 for k, _, p in rows if k == key and p)
        wait = retry_after(failures, pending, now)
        if wait is not None:
            waits.append(wait)
    if waits:
        seconds = max(waits)
        raise TooManyAttempts(
            f"Too many failed logins; try again in {seconds} s.",
            headers={"Retry-After": str(seconds)},
        )


def _lock_keys(session: Session, keys: tuple[str, ...]) -> None:
    # SQLite's write transaction is already exclusive; PostgreSQL serialises the check and
    # the pending mark per key, so concurrent guesses all see each other.
    if session.get_bind().dialect.name == "postgresql":
        for key in sorted(keys):
            session.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(key, 0))))


def begin_attempt(session: Session, keys: tuple[str, ...]) -> Attempt:
    """Refuse a throttled login (429 ``too_many_attempts`` with ``Retry-After``), else mark
    it pending under every key and commit. Old rows are pruned on the way."""
    now = utcnow()
    _check(session, keys, now)  # a throttled login costs no write
    begin_write(session)
    _lock_keys(session, keys)
    _check(session, keys, now)
    attempt = Attempt(uuid.uuid4().hex, keys)
    session.execute(delete(_ATTEMPTS).where(_ATTEMPTS.c.at <= now - WINDOW))
    session.execute(
        insert(_ATTEMPTS),
        [{"key": k, "attempt": attempt.id, "at": now, "pending": True} for k in keys],
    )
    session.commit()
    return attempt


def record_failure(session: Session, attempt: Attempt) -> None:
    """The login failed: one failure under each of its keys, counted from now."""
    begin_write(session)
    session.execute(delete(_ATTEMPTS).where(_ATTEMPTS.c.attempt == attempt.id))
    session.execute(
        insert(_ATTEMPTS),
        [{"key": k, "attempt": attempt.id, "at": utcnow(), "pending": False} for k in attempt.keys],
    )
    session.commit()


def abandon(session: Session, attempt: Attempt) -> None:
    """The login was not checked after all (the service was busy): forget it."""
    begin_write(session)
    session.execute(delete(_ATTEMPTS).where(_ATTEMPTS.c.attempt == attempt.id))
    session.commit()


def clear(session: Session, attempt: Attempt) -> None:
    """The login succeeded: forget every failure of its user and its address (in the
    caller's write transaction)."""
    session.execute(delete(_ATTEMPTS).where(_ATTEMPTS.c.key.in_(attempt.keys)))
