"""The password pool: argon2 work on threads of its own, with a bounded queue.

Verifying a password costs tens of milliseconds of CPU and tens of MiB of memory. Run with
the use cases, a burst of logins would hold every use-case thread and starve the API; here
at most ``password_hash_threads`` run at once, and beyond a queue of
:data:`QUEUE_PER_THREAD` per thread a login is answered 503 ``busy`` at once instead of
waiting without bound.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec, TypeVar

import anyio
import anyio.to_thread
from fastapi import Request

from hostimage.errors import Busy

P = ParamSpec("P")
T = TypeVar("T")

QUEUE_PER_THREAD = 8
RETRY_AFTER_SECONDS = 2


class PasswordPool:
    """Runs password work on at most ``threads`` threads of its own."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self.limiter = anyio.CapacityLimiter(threads)
        # The thread hop's own limiter, never waited on (the one above already bounds the
        # calls): not anyio's default one, which the rest of the API shares.
        self._threads = anyio.CapacityLimiter(threads)
        self.max_waiting = QUEUE_PER_THREAD * threads
        self.waiting = 0  # calls queued, not yet running
        self.running = 0

    def has_room(self) -> bool:
        """Whether a call now would be queued rather than refused."""
        return self.waiting < self.max_waiting

    def refuse(self) -> Busy:
        return Busy(
            "Too many logins are being checked; retry in a moment.",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(*args, **kwargs)`` on a pool thread; 503 ``busy`` when the queue is full."""
        if not self.has_room():
            raise self.refuse()
        self.waiting += 1
        started = False

        def call() -> T:
            return fn(*args, **kwargs)

        try:
            async with self.limiter:
                self.waiting -= 1
                started = True
                self.running += 1
                try:
                    return await anyio.to_thread.run_sync(call, limiter=self._threads)
                finally:
                    self.running -= 1
        finally:
            if not started:
                self.waiting -= 1


def password_pool(request: Request) -> PasswordPool:
    """The application's pool, made on first use inside its event loop."""
    state = request.app.state
    if getattr(state, "password_pool", None) is None:
        state.password_pool = PasswordPool(state.settings.password_hash_threads)
    pool: PasswordPool = state.password_pool
    return pool
