"""Names of host images and of the sub-images they create."""

from __future__ import annotations

import secrets
import string


def sub_image_name(host_name: str, index: int) -> str:
    """``<name>-root`` for the system disk, ``<name>-data-<n>`` for data disk n (F3)."""
    return f"{host_name}-root" if index == 0 else f"{host_name}-data-{index}"


def suffixed(name: str) -> str:
    """``name`` with a short random suffix, for ``generate_name`` on collision."""
    alphabet = string.ascii_lowercase + string.digits
    return f"{name}-{''.join(secrets.choice(alphabet) for _ in range(6))}"
