"""Names of host images and of the sub-images they create."""

from __future__ import annotations

import secrets
import string


def sub_image_name(host_name: str, index: int) -> str:
    """``<name>-root`` for the system disk, ``<name>-data-<n>`` for data disk n (F3)."""
    root, data_prefix = sub_image_name_parts(host_name)
    return root if index == 0 else f"{data_prefix}{index}"


def sub_image_name_parts(host_name: str) -> tuple[str, str]:
    """The rule of :func:`sub_image_name` in two parts, for a database to apply to every disk
    at once: the system disk's name, and what precedes ``n`` in data disk n's name."""
    return f"{host_name}-root", f"{host_name}-data-"


def suffixed(name: str) -> str:
    """``name`` with a short random suffix, for ``generate_name`` on collision."""
    alphabet = string.ascii_lowercase + string.digits
    return f"{name}-{''.join(secrets.choice(alphabet) for _ in range(6))}"
