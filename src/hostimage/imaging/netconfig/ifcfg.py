"""ifcfg files: RHEL-likes' ``/etc/sysconfig/network-scripts`` (initscripts, NetworkManager's
ifcfg-rh) and SUSE's ``/etc/sysconfig/network`` (wicked) — two families with one syntax.

The first interface is the first ``ifcfg-*`` file (by name; never ``ifcfg-lo``) that is not a
port (``MASTER``, ``SLAVE=yes``, ``BRIDGE``, ``TEAM_MASTER``) and configures an address
(a DHCP-like ``BOOTPROTO`` or an ``IPADDR``/``IPV6ADDR``); its name is ``DEVICE`` or the file
name's suffix. It gets ``BOOTPROTO=dhcp`` and loses ``IPADDR*``, ``PREFIX*``, ``PREFIXLEN*``,
``NETMASK*``, ``BROADCAST*``, ``NETWORK*``, ``REMOTE_IPADDR*``, ``GATEWAY*``, ``DNS<n>``,
``HWADDR``, ``MACADDR``, ``LLADDR``, ``IPV6ADDR``, ``IPV6ADDR_SECONDARIES``,
``IPV6_DEFAULTGW`` and ``UUID`` (on RHEL, ``IPV6_AUTOCONF=yes`` when it had IPv6 addresses).
Other ``ifcfg-*`` files that pin anything are removed, and so are static route files
(``route-*``, ``route6-*``; SUSE ``ifroute-*`` and ``routes``). RHEL's global
``/etc/sysconfig/network`` loses ``GATEWAY``, ``GATEWAYDEV``, ``IPV6_DEFAULTGW`` and
``IPV6_DEFAULTDEV``; SUSE's ``config`` its ``NETCONFIG_DNS_STATIC_SERVERS``.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping

from hostimage.imaging.netconfig.base import Outcome, decode, encode
from hostimage.imaging.netconfig.collect import IFCFG, IFCFG_SUSE
from hostimage.imaging.netconfig.model import Edit, NetworkChange, Pins, StaticNetwork, change

_ASSIGNMENT = re.compile(r"\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)")
_SUFFIX = r"(?:\d+|_\w+)?"
_PINS = (
    (re.compile(rf"(?:IPADDR|REMOTE_IPADDR){_SUFFIX}"), "addresses"),
    (re.compile(rf"(?:PREFIX|PREFIXLEN|NETMASK|BROADCAST|NETWORK){_SUFFIX}"), None),
    (re.compile(r"GATEWAY\d*"), "gateways"),
    (re.compile(r"HWADDR|MACADDR|LLADDR"), "macs"),
    (re.compile(r"DNS\d+"), "dns"),
    (re.compile(r"IPV6ADDR|IPV6ADDR_SECONDARIES"), "addresses"),
    (re.compile(r"IPV6_DEFAULTGW"), "gateways"),
)
_ALSO_DROPPED = frozenset(("UUID",))
_PORT_KEYS = ("MASTER", "BRIDGE", "TEAM_MASTER")
_DHCP_LIKE = frozenset(("dhcp", "dhcp4", "dhcp6", "bootp", "autoip", "auto6", "dhcp+autoip"))
_GLOBAL_PINS = {
    "GATEWAY": "gateways",
    "GATEWAYDEV": None,
    "IPV6_DEFAULTGW": "gateways",
    "IPV6_DEFAULTDEV": None,
}
_DNS_KEY = "NETCONFIG_DNS_STATIC_SERVERS"


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _quote_like(raw: str, value: str) -> str:
    raw = raw.strip()
    quote = raw[0] if raw[:1] in ("'", '"') else ""
    return f"{quote}{value}{quote}"


def _assignments(text: str) -> list[tuple[str, str | None, str]]:
    """(line, key or None, raw value) for every line."""
    out: list[tuple[str, str | None, str]] = []
    for line in text.splitlines(keepends=True):
        m = _ASSIGNMENT.fullmatch(line.rstrip("\r\n"))
        out.append((line, m.group(1), m.group(2)) if m else (line, None, ""))
    return out


def _values(text: str) -> dict[str, str]:
    return {k: _unquote(v) for _, k, v in _assignments(text) if k is not None}


def _pin_kind(key: str) -> tuple[bool, str | None]:
    for pattern, kind in _PINS:
        if pattern.fullmatch(key):
            return True, kind
    return False, None


def _pins(text: str) -> Pins:
    pins = Pins()
    values = _values(text)
    if values.get("BOOTPROTO", "").lower() in ("static", "none") and any(
        _pin_kind(k)[1] == "addresses" for k in values
    ):
        pins.other = True
    for key, value in values.items():
        pinned, kind = _pin_kind(key)
        if kind == "gateways":
            pins.add(kind, value.split("%")[0])
        elif kind is not None:
            pins.add(kind, *value.split())
        elif pinned:
            pins.other = True
    return pins


def _configures_address(name: str, text: str) -> bool:
    values = _values(text)
    if name == "ifcfg-lo" or values.get("DEVICE") == "lo":
        return False
    if any(values.get(k) for k in _PORT_KEYS) or values.get("SLAVE", "").lower() == "yes":
        return False
    if values.get("BOOTPROTO", "").lower() in _DHCP_LIKE:
        return True
    return any(_pin_kind(k)[1] == "addresses" and v for k, v in values.items())


def _route_pins(text: str, suse: bool) -> Pins:
    pins = Pins()
    for line in text.splitlines():
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        pins.other = True
        m = _ASSIGNMENT.fullmatch(line)
        if m and m.group(1).startswith("GATEWAY"):
            pins.add("gateways", _unquote(m.group(2)))
        elif suse and len(words) > 1 and words[1] != "-":
            pins.add("gateways", words[1])
        elif "via" in words[:-1]:
            pins.add("gateways", words[words.index("via") + 1])
    return pins


class Ifcfg:
    """One ifcfg family: RHEL (``suse=False``) or SUSE."""

    def __init__(self, suse: bool) -> None:
        self.suse = suse
        self.name = IFCFG_SUSE if suse else IFCFG
        self.directory = "/etc/sysconfig/network" if suse else "/etc/sysconfig/network-scripts"

    def _kind(self, path: str) -> str:
        if posixpath.dirname(path) != self.directory:
            return "global"
        name = posixpath.basename(path)
        if name.startswith("ifcfg-"):
            return "ifcfg"
        if name == "config":
            return "global"
        return "route"

    def reset(self, files: Mapping[str, bytes], static: StaticNetwork | None) -> Outcome:
        """See the module docstring."""
        outcome = Outcome()
        texts = {path: decode(files[path]) for path in sorted(files)}
        first = next(
            (
                p
                for p, t in texts.items()
                if self._kind(p) == "ifcfg" and _configures_address(posixpath.basename(p), t)
            ),
            None,
        )
        outcome.has_first = first is not None
        interface = None
        if first is not None:
            interface = _values(texts[first]).get("DEVICE") or posixpath.basename(first)[6:]
        route_file = f"{self.directory}/ifroute-{interface}"
        writes: dict[str, tuple[Edit, NetworkChange]] = {}
        for path, text in texts.items():
            kind = self._kind(path)
            if kind == "ifcfg" and path == first:
                pins = _pins(text)
                if pins or static is not None:
                    data = encode(self._reset_first(text, pins, static))
                    action = "static" if static is not None else "dhcp"
                    record = change(path, self.name, action, interface=interface, pins=pins)
                    writes[path] = (Edit(path, data), record)
            elif kind == "ifcfg" and posixpath.basename(path) != "ifcfg-lo":
                pins = _pins(text)
                if pins:
                    writes[path] = (Edit(path, None), change(path, self.name, "removed", pins=pins))
            elif kind == "route":
                pins = _route_pins(text, self.suse)
                if pins:
                    writes[path] = (Edit(path, None), change(path, self.name, "removed", pins=pins))
            elif kind == "global":
                entry = self._reset_global(path, text, static if first else None)
                if entry is not None:
                    writes[path] = entry
        if static is not None and first is not None and self.suse and static.gateway:
            old = writes.get(route_file)
            pins = Pins() if old is None else _route_pins(texts.get(route_file, ""), True)
            line = f"default {static.gateway} - {interface}\n"
            mode = None if route_file in texts else 0o644
            record = change(
                route_file,
                self.name,
                "static" if mode is None else "created",
                interface=interface,
                pins=pins,
            )
            writes[route_file] = (Edit(route_file, encode(line), mode), record)
        outcome.entries += [writes[p] for p in sorted(writes)]
        return outcome

    def _reset_first(self, text: str, pins: Pins, static: StaticNetwork | None) -> str:
        lines: list[str] = []
        bootproto = "dhcp"
        extra: dict[str, str] = {}
        if static is not None:
            extra = self._static_values(static)
            bootproto = extra.pop("BOOTPROTO")
        if pins.has_ipv6 and not self.suse and (static is None or static.version == 4):
            # The template's IPv6 addresses go; router advertisements configure it instead.
            extra["IPV6_AUTOCONF"] = "yes"
        seen_bootproto = False
        for line, key, raw in _assignments(text):
            if key is None:
                lines.append(line)
            elif key == "BOOTPROTO":
                lines.append(f"BOOTPROTO={_quote_like(raw, bootproto)}\n")
                seen_bootproto = True
            elif key in extra:
                lines.append(f"{key}={_quote_like(raw, extra.pop(key))}\n")
            elif not (_pin_kind(key)[0] or key in _ALSO_DROPPED):
                lines.append(line)
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        quote = "'" if self.suse else ""
        if not seen_bootproto:
            lines.append(f"BOOTPROTO={quote}{bootproto}{quote}\n")
        lines += [f"{k}={quote}{v}{quote}\n" for k, v in extra.items()]
        return "".join(lines)

    def _static_values(self, static: StaticNetwork) -> dict[str, str]:
        iface = static.interface
        if self.suse:
            return {"BOOTPROTO": "static", "IPADDR": static.address}
        values: dict[str, str] = {}
        if static.version == 4:
            values["BOOTPROTO"] = "none"
            values["IPADDR"] = str(iface.ip)
            values["PREFIX"] = str(iface.network.prefixlen)
            if static.gateway:
                values["GATEWAY"] = static.gateway
        else:
            values["BOOTPROTO"] = "dhcp"
            values["IPV6INIT"] = "yes"
            values["IPV6_AUTOCONF"] = "no"
            values["IPV6ADDR"] = static.address
            if static.gateway:
                values["IPV6_DEFAULTGW"] = static.gateway
        for n, server in enumerate(static.dns, 1):
            values[f"DNS{n}"] = server
        return values

    def _reset_global(
        self, path: str, text: str, static: StaticNetwork | None
    ) -> tuple[Edit, NetworkChange] | None:
        pins = Pins()
        lines: list[str] = []
        dns = " ".join(static.dns) if static is not None and self.suse else ""
        for line, key, raw in _assignments(text):
            if key is not None and not self.suse and key in _GLOBAL_PINS:
                kind = _GLOBAL_PINS[key]
                if kind is not None:
                    pins.add(kind, _unquote(raw).split("%")[0])
                else:
                    pins.other = True
                continue
            if key == _DNS_KEY and self.suse and (_unquote(raw) or dns):
                pins.add("dns", *_unquote(raw).split())
                quoted = _quote_like(raw, dns) if raw.strip()[:1] in ("'", '"') else f'"{dns}"'
                new = f"{_DNS_KEY}={quoted}\n"
                if new != line:
                    pins.other = True
                    line = new
            lines.append(line)
        if not pins:
            return None
        action = "static" if dns else "edited"
        return Edit(path, encode("".join(lines))), change(path, self.name, action, pins=pins)

    def create(self, static: StaticNetwork, files: Mapping[str, bytes]) -> Outcome | None:
        """An ifcfg file needs the interface's name: None."""
        return None
