"""Login throttling rules (SPEC §9.1): who is throttled, and for how long.

A *key* is one user (name + domain) or one client address. Each failed login leaves one
failure per key it involves; a login still being checked leaves a *pending* mark that
counts once the key has failed before (so a burst of concurrent guesses cannot slip past
the limit, while a user's parallel good logins are never held up).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from datetime import datetime, timedelta

MAX_FAILURES = 5
WINDOW = timedelta(seconds=60)
# Throttled only by logins still being checked: they end within moments.
PENDING_RETRY_SECONDS = 1


def user_key(username: str, domain: str) -> str:
    """The throttle key of one user: a digest, so the table holds no names."""
    return _digest("user", domain, username)


def address_key(client_ip: str) -> str:
    """The throttle key of one client address."""
    return _digest("addr", client_ip)


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


def retry_after(failures: Sequence[datetime], pending: int, now: datetime) -> int | None:
    """Seconds until a key may try again, or ``None`` when it may try now.

    ``failures`` are the times of the key's failures within the window (any order),
    ``pending`` how many of its logins are being checked. Throttled when the window holds
    :data:`MAX_FAILURES` failures, or at least one failure and enough pending logins to
    reach the limit. The answer is the time until enough failures leave the window: the
    window slides, so a key is never locked for longer than that.
    """
    recent = sorted(t for t in failures if t > now - WINDOW)
    if len(recent) >= MAX_FAILURES:
        # Trying is allowed again once the count in the window drops below the limit.
        leaving = recent[len(recent) - MAX_FAILURES]
        return max(1, math.ceil((leaving + WINDOW - now).total_seconds()))
    if recent and len(recent) + pending >= MAX_FAILURES:
        return PENDING_RETRY_SECONDS
    return None
