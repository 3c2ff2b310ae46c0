"""The values the network reset works with: a validated static address, what one config file
pinned, the edits to make and the JSON-friendly record of each change."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import TypedDict

from hostimage.errors import Invalid, ValidationFailed

# A guest's network config is a few hundred bytes; anything near this is not one we edit.
MAX_CONFIG_BYTES = 256 * 1024
# A config directory with more entries than this is left alone (and reported).
MAX_DIR_ENTRIES = 4096
MAX_DNS_SERVERS = 3  # what the resolver uses; more would be silently ignored by the guest

IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class InvalidNetwork(ValidationFailed):
    """A static network request that is not a usable address, gateway or DNS list."""

    code = "invalid_network"
    title = "Invalid network configuration"


class UnsupportedNetwork(Invalid):
    """A static address was asked for, but the image gives no way to configure it."""

    code = "unsupported_network"
    title = "Network configuration not possible"


class NetworkChange(TypedDict):
    """One guest network config file touched (or deliberately left alone).

    ``action``: ``dhcp`` (rewritten: it now configures the first interface by DHCP),
    ``static`` (rewritten: the first interface gets the requested static address),
    ``created`` (a new file holding the static address), ``edited`` (rewritten to drop what
    pinned the template's network; it configures no interface itself), ``removed`` (deleted)
    or ``skipped`` (not touched, ``reason`` says why). ``addresses``, ``gateways``, ``macs`` and
    ``dns`` are the template's values that were removed from the file.
    """

    path: str
    family: str
    action: str
    interface: str | None
    addresses: list[str]
    gateways: list[str]
    macs: list[str]
    dns: list[str]
    reason: str | None


@dataclass
class Pins:
    """What one config file pinned of the template's network, in the order found."""

    addresses: list[str] = field(default_factory=list)
    gateways: list[str] = field(default_factory=list)
    macs: list[str] = field(default_factory=list)
    dns: list[str] = field(default_factory=list)
    other: bool = False  # a pin without a value to report (e.g. a static method)

    def __bool__(self) -> bool:
        return bool(self.addresses or self.gateways or self.macs or self.dns or self.other)

    def add(self, kind: str, *values: str) -> None:
        """Record ``values`` (stripped, empty ones dropped) under ``kind``."""
        target: list[str] = getattr(self, kind)
        for value in values:
            value = value.strip().strip("'\"")
            if value and value not in target:
                target.append(value)

    def merge(self, other: Pins) -> None:
        """Add everything ``other`` recorded."""
        for kind in ("addresses", "gateways", "macs", "dns"):
            self.add(kind, *getattr(other, kind))
        self.other = self.other or other.other

    @property
    def has_ipv6(self) -> bool:
        """True when an address or gateway removed was an IPv6 one."""
        return any(":" in v for v in (*self.addresses, *self.gateways))


@dataclass(frozen=True)
class Edit:
    """Replace ``path`` with ``data`` (None: remove it). An existing file keeps its owner and
    mode; a new one (``mode`` set) is created owned by root with those permission bits."""

    path: str
    data: bytes | None
    mode: int | None = None


@dataclass(frozen=True)
class NetworkPlan:
    """Every file edit to make, and the record of each change for the log."""

    edits: tuple[Edit, ...] = ()
    changes: tuple[NetworkChange, ...] = ()


def change(
    path: str,
    family: str,
    action: str,
    *,
    interface: str | None = None,
    pins: Pins | None = None,
    reason: str | None = None,
) -> NetworkChange:
    """A ``NetworkChange`` record."""
    pins = pins or Pins()
    return NetworkChange(
        path=path,
        family=family,
        action=action,
        interface=interface,
        addresses=list(pins.addresses),
        gateways=list(pins.gateways),
        macs=list(pins.macs),
        dns=list(pins.dns),
        reason=reason,
    )


@dataclass(frozen=True)
class StaticNetwork:
    """A static address for a new VM's first interface: ``address`` in CIDR form (IPv4 or
    IPv6), an optional ``gateway`` inside that network, and up to three ``dns`` servers.

    Construction validates and normalises every value (``InvalidNetwork``, a 422, otherwise),
    so a request can be refused before any task runs.
    """

    address: str
    gateway: str | None = None
    dns: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        iface = _interface(self.address)
        gateway = None
        if self.gateway is not None:
            gw = _address(self.gateway, "gateway")
            if gw.version != iface.version:
                raise InvalidNetwork("The gateway must be of the same IP version as the address.")
            if gw not in iface.network or gw == iface.ip:
                raise InvalidNetwork(
                    f"The gateway {gw} must be another address inside {iface.network}."
                )
            gateway = str(gw)
        if isinstance(self.dns, str) or len(self.dns) > MAX_DNS_SERVERS:
            raise InvalidNetwork(f"Give at most {MAX_DNS_SERVERS} DNS servers, as a list.")
        dns = tuple(str(_address(d, "DNS server")) for d in self.dns)
        object.__setattr__(self, "address", iface.with_prefixlen)
        object.__setattr__(self, "gateway", gateway)
        object.__setattr__(self, "dns", dns)

    @property
    def interface(self) -> IPInterface:
        """The address with its network."""
        return ipaddress.ip_interface(self.address)

    @property
    def version(self) -> int:
        """4 or 6."""
        return self.interface.version


def _interface(value: object) -> IPInterface:
    if not isinstance(value, str) or "/" not in value:
        raise InvalidNetwork("The address must be in CIDR form, e.g. 192.0.2.10/24.")
    try:
        iface = ipaddress.ip_interface(value.strip())
    except ValueError as exc:
        raise InvalidNetwork(f"{value!r} is not an IP address in CIDR form.") from exc
    ip = iface.ip
    if ip.is_loopback or ip.is_multicast or ip.is_unspecified or ip.is_link_local:
        raise InvalidNetwork(f"{ip} cannot be a VM's address.")
    net = iface.network
    if (
        iface.version == 4
        and net.prefixlen < 31
        and ip in (net.network_address, net.broadcast_address)
    ):
        raise InvalidNetwork(f"{ip} is the network or broadcast address of {net}.")
    return iface


def _address(value: object, what: str) -> IPAddress:
    if not isinstance(value, str):
        raise InvalidNetwork(f"The {what} must be an IP address.")
    try:
        ip = ipaddress.ip_address(value.strip())
    except ValueError as exc:
        raise InvalidNetwork(f"{value!r} is not a valid {what} address.") from exc
    if ip.is_multicast or ip.is_unspecified:
        raise InvalidNetwork(f"{ip} cannot be a {what}.")
    return ip
