"""Named steps at which a process can be made to die as if killed (``kill -9``).

The fault-injection tests arm one step in a worker or API process
(``HOSTIMAGE_CRASH_AT=<step>``) and check that whatever the crash left ends by itself: every
object reaches a terminal state, no stored data is corrupt or lost. Unarmed — always, outside
those tests — :func:`reached` does nothing.
"""

from __future__ import annotations

import os
import signal

_armed: str | None = None


def arm(step: str | None) -> None:
    """Die at ``step`` from now on (None: never)."""
    global _armed
    _armed = step or None


def reached(step: str) -> None:
    """Mark that the process reached ``step``; SIGKILL itself if that step is armed."""
    if _armed is not None and _armed == step:
        os.kill(os.getpid(), signal.SIGKILL)
