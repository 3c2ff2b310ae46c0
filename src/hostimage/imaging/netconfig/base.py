"""What every family module gives the planner, and small text helpers they share."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from hostimage.imaging.netconfig.model import Edit, NetworkChange, StaticNetwork

# Config files are text, but nothing guarantees UTF-8: undecodable bytes survive a
# round trip unchanged.
_CODEC = ("utf-8", "surrogateescape")


def decode(data: bytes) -> str:
    """Text of a config file, keeping undecodable bytes."""
    return data.decode(*_CODEC)


def encode(text: str) -> bytes:
    """Bytes of a config file written by ``decode``'s counterpart."""
    return text.encode(*_CODEC)


def is_glob(name: str) -> bool:
    """True when an interface name is a pattern rather than one name."""
    return any(c in name for c in "*?[") or " " in name.strip()


@dataclass
class Outcome:
    """A family's share of the plan: the edits with their records (an entry without an edit
    is a file deliberately left alone), and whether the family configures a first interface."""

    entries: list[tuple[Edit | None, NetworkChange]] = field(default_factory=list)
    has_first: bool = False


class Family(Protocol):
    """One network configuration family (ifupdown, netplan, …)."""

    name: str

    def reset(self, files: Mapping[str, bytes], static: StaticNetwork | None) -> Outcome:
        """Plan the reset of this family's ``files`` (path → content): the first interface's
        config becomes DHCP (or ``static``), every other config that pins the template's
        addresses or MACs goes; configs that pin nothing stay as they are."""
        ...

    def create(self, static: StaticNetwork, files: Mapping[str, bytes]) -> Outcome | None:
        """A new config giving the first interface ``static`` when the image configures no
        interface at all; None when this family cannot without an interface name."""
        ...
