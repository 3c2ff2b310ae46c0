"""NetworkManager keyfiles: ``/etc/NetworkManager/system-connections/*.nmconnection``.

The first interface is the first profile (by file name) of type ethernet, bond, bridge or
VLAN that is not a port of another one and has IPv4 or IPv6 enabled. In its ``[ipv4]`` and
``[ipv6]`` sections ``method=manual`` becomes ``method=auto`` and the ``address*``,
``addresses*``, ``gateway``, ``dns`` and ``route*`` keys go; ``mac-address`` and a literal
``cloned-mac-address`` go from the ``[ethernet]``/``[bridge]`` sections. ``interface-name``
stays: without it NetworkManager gives the profile to any one ethernet device. Every other
profile that pins an address or a MAC is removed. New files are mode 0600 (NetworkManager
ignores keyfiles others can read).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

from hostimage.imaging.netconfig.base import Outcome, decode, encode
from hostimage.imaging.netconfig.collect import KEYFILE
from hostimage.imaging.netconfig.model import Edit, Pins, StaticNetwork, change

NEW_FILE = "/etc/NetworkManager/system-connections/hostimage-static.nmconnection"
_DEVICE_TYPES = frozenset(("ethernet", "802-3-ethernet", "bond", "bridge", "vlan"))
_PORT_KEYS = frozenset(("master", "controller", "slave-type", "port-type"))
_MAC_SECTIONS = frozenset(("ethernet", "802-3-ethernet", "bridge", "wifi", "802-11-wireless"))
_MAC_KEYS = frozenset(("mac-address", "cloned-mac-address"))
_IP_SECTIONS = ("ipv4", "ipv6")
_ADDRESS_KEY = re.compile(r"addresse?s?\d*")
_ROUTE_KEY = re.compile(r"routes?\d*(?:_options)?")
_MAC = re.compile(r"[0-9A-Fa-f]{2}(?:[:-][0-9A-Fa-f]{2}){5}")


@dataclass
class Section:
    name: str
    lines: list[str] = field(default_factory=list)  # the header first, when there is one

    def entries(self) -> list[tuple[int, str, str]]:
        out = []
        for i, line in enumerate(self.lines):
            stripped = line.strip()
            if stripped and not stripped.startswith(("#", "[")) and "=" in stripped:
                key, _, value = stripped.partition("=")
                out.append((i, key.strip(), value.strip()))
        return out

    def get(self, key: str) -> str | None:
        for _, k, v in self.entries():
            if k == key:
                return v
        return None


def parse(text: str) -> list[Section]:
    """The keyfile as sections; lines before the first header form a nameless section."""
    sections = [Section("")]
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            sections.append(Section(stripped[1:-1].strip(), [line]))
        else:
            sections[-1].lines.append(line)
    return sections


def _section(sections: list[Section], name: str) -> Section | None:
    return next((s for s in sections if s.name == name), None)


def _address(value: str) -> tuple[str, str | None]:
    if "," in value:
        address, gateway = value.split(",", 1)
        return address, gateway.split(",")[0] or None
    if ";" in value:  # the oldest form: address;prefix;gateway;
        parts = [p for p in value.split(";") if p]
        address = parts[0] + (f"/{parts[1]}" if len(parts) > 1 else "")
        return address, parts[2] if len(parts) > 2 else None
    return value, None


def _ip_pin(key: str) -> str | None:
    if _ADDRESS_KEY.fullmatch(key):
        return "address"
    if _ROUTE_KEY.fullmatch(key):
        return "route"
    if key in ("gateway", "dns"):
        return key
    return None


def _pins(sections: list[Section]) -> Pins:
    pins = Pins()
    for section in sections:
        if section.name in _IP_SECTIONS:
            for _, key, value in section.entries():
                kind = _ip_pin(key)
                if key == "method" and value == "manual":
                    pins.other = True
                elif kind == "address":
                    address, gateway = _address(value)
                    pins.add("addresses", address)
                    pins.add("gateways", gateway or "")
                elif kind == "gateway":
                    pins.add("gateways", value)
                elif kind == "dns":
                    pins.add("dns", *value.split(";"))
                elif kind == "route":
                    pins.other = True
                    fields = value.split(",")
                    if not key.endswith("_options") and len(fields) > 1:
                        pins.add("gateways", fields[1])
        elif section.name in _MAC_SECTIONS:
            for _, key, value in section.entries():
                if key in _MAC_KEYS and _MAC.fullmatch(value):
                    pins.add("macs", value)
    return pins


def _configures_address(sections: list[Section]) -> bool:
    connection = _section(sections, "connection")
    if connection is None or (connection.get("type") or "") not in _DEVICE_TYPES:
        return False
    if any(connection.get(k) for k in _PORT_KEYS):
        return False
    ipv4, ipv6 = _section(sections, "ipv4"), _section(sections, "ipv6")
    v4 = (ipv4.get("method") if ipv4 else None) or "auto"
    v6 = (ipv6.get("method") if ipv6 else None) or "auto"
    return v4 != "disabled" or v6 not in ("disabled", "ignore")


def _strip(sections: list[Section], static: StaticNetwork | None) -> None:
    """Drop every pin in place; with ``static`` its section becomes manual with it."""
    wanted = None if static is None else f"ipv{static.version}"
    for section in sections:
        drop: set[int] = set()
        if section.name in _IP_SECTIONS:
            method_at = None
            for i, key, value in section.entries():
                if _ip_pin(key) is not None:
                    drop.add(i)
                elif key == "method":
                    method_at = i
                    new = "manual" if section.name == wanted else value
                    new = "auto" if new == "manual" and section.name != wanted else new
                    if new != value:
                        section.lines[i] = f"method={new}\n"
            if section.name == wanted and static is not None:
                extra = _static_lines(static)
                if method_at is None:
                    extra.insert(0, "method=manual\n")
                    method_at = 0
                section.lines[method_at + 1 : method_at + 1] = extra
                drop = {i if i <= method_at else i + len(extra) for i in drop}
        elif section.name in _MAC_SECTIONS:
            drop = {i for i, k, v in section.entries() if k in _MAC_KEYS and _MAC.fullmatch(v)}
        section.lines = [ln for i, ln in enumerate(section.lines) if i not in drop]
    if wanted is not None and static is not None and _section(sections, wanted) is None:
        if sections[-1].lines and not sections[-1].lines[-1].endswith("\n"):
            sections[-1].lines[-1] += "\n"
        sections.append(
            Section(wanted, [f"\n[{wanted}]\n", "method=manual\n", *_static_lines(static)])
        )


def _static_lines(static: StaticNetwork) -> list[str]:
    gateway = f",{static.gateway}" if static.gateway else ""
    lines = [f"address1={static.address}{gateway}\n"]
    if static.dns:
        lines.append("dns=" + "".join(f"{d};" for d in static.dns) + "\n")
    return lines


def _render(sections: list[Section]) -> bytes:
    return encode("".join(line for s in sections for line in s.lines))


class Keyfile:
    """The NetworkManager keyfile family."""

    name = KEYFILE

    def reset(self, files: Mapping[str, bytes], static: StaticNetwork | None) -> Outcome:
        """See the module docstring."""
        outcome = Outcome()
        parsed = {path: parse(decode(files[path])) for path in sorted(files)}
        first = next((p for p, s in parsed.items() if _configures_address(s)), None)
        outcome.has_first = first is not None
        for path, sections in parsed.items():
            pins = _pins(sections)
            if path == first and (pins or static is not None):
                _strip(sections, static)
                connection = _section(sections, "connection")
                interface = connection.get("interface-name") if connection else None
                action = "static" if static is not None else "dhcp"
                record = change(path, self.name, action, interface=interface, pins=pins)
                outcome.entries.append((Edit(path, _render(sections)), record))
            elif pins and path != first:
                record = change(path, self.name, "removed", pins=pins)
                outcome.entries.append((Edit(path, None), record))
        return outcome

    def create(self, static: StaticNetwork, files: Mapping[str, bytes]) -> Outcome | None:
        """A new profile for any one ethernet device (no interface name, no MAC)."""
        other = "ipv6" if static.version == 4 else "ipv4"
        text = (
            "[connection]\nid=hostimage-static\n"
            f"uuid={uuid.uuid4()}\ntype=ethernet\nautoconnect=true\n\n[ethernet]\n\n"
            f"[ipv{static.version}]\nmethod=manual\n"
            + "".join(_static_lines(static))
            + f"\n[{other}]\nmethod=auto\n"
        )
        record = change(NEW_FILE, self.name, "created")
        return Outcome([(Edit(NEW_FILE, encode(text), 0o600), record)], has_first=True)
