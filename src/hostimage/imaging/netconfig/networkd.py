"""systemd-networkd: ``/etc/systemd/network/*.network``, ``*.link`` and ``*.netdev``.

The first interface is the first ``.network`` file (by name, the order networkd applies
them) that configures an address (``DHCP=`` on, ``Address=``, ``Gateway=`` or an
``[Address]`` section), does not match only ``lo`` and is not a port (``Bond=``, ``Bridge=``,
``VRF=``). It loses ``[Match] MACAddress=``/``PermanentMACAddress=``, ``[Link] MACAddress=``,
``[Network] Address=``/``Gateway=``/``DNS=``, its ``[Address]`` sections and the ``[Route]``
sections with a literal ``Gateway=``, and gets ``DHCP=ipv4`` (``DHCP=yes`` when IPv6 was
configured). A ``[Match]`` left empty matches ``Name=en* eth*``: the name the NIC gets on
the new VM is not known. Other ``.network`` files that pin anything are removed, so are
``.link`` files that match a MAC; a ``.link`` or ``.netdev`` that sets a literal
``MACAddress=`` loses that line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from hostimage.imaging.netconfig.base import Outcome, decode, encode
from hostimage.imaging.netconfig.collect import NETWORKD
from hostimage.imaging.netconfig.model import Edit, NetworkChange, Pins, StaticNetwork, change

FALLBACK_NAME = "en* eth*"
NEW_FILE = "/etc/systemd/network/50-hostimage.network"
_ON = frozenset(("yes", "true", "on", "1", "both", "ipv4", "ipv6"))
_V6_ON = frozenset(("yes", "true", "on", "1", "both", "ipv6"))
_MATCH_MAC = frozenset(("MACAddress", "PermanentMACAddress"))
_PORT_KEYS = frozenset(("Bond", "Bridge", "VRF"))
_MAC = re.compile(r"[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}")


@dataclass
class Section:
    name: str
    lines: list[str] = field(default_factory=list)

    def entries(self) -> list[tuple[int, str, str]]:
        out = []
        for i, line in enumerate(self.lines):
            stripped = line.strip()
            if stripped and stripped[0] not in "#;[" and "=" in stripped:
                key, _, value = stripped.partition("=")
                out.append((i, key.strip(), value.strip()))
        return out

    def values(self, key: str) -> list[str]:
        return [v for _, k, v in self.entries() if k == key]

    def drop(self, keys: frozenset[str] | set[str]) -> None:
        gone = {i for i, k, _ in self.entries() if k in keys}
        self.lines = [ln for i, ln in enumerate(self.lines) if i not in gone]


def parse(text: str) -> list[Section]:
    """The unit file as sections (repeated sections stay apart)."""
    sections = [Section("")]
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            sections.append(Section(stripped[1:-1].strip(), [line]))
        else:
            sections[-1].lines.append(line)
    return sections


def _all(sections: list[Section], name: str, key: str) -> list[str]:
    return [v for s in sections if s.name == name for v in s.values(key)]


def _literal_gateway(value: str) -> bool:
    return bool(value) and not value.startswith("_")


def _network_pins(sections: list[Section]) -> Pins:
    pins = Pins()
    for key in _MATCH_MAC:
        for value in _all(sections, "Match", key):
            pins.add("macs", *value.split())
    pins.add("macs", *_all(sections, "Link", "MACAddress"))
    pins.add("addresses", *_all(sections, "Network", "Address"))
    pins.add("gateways", *_all(sections, "Network", "Gateway"))
    for value in _all(sections, "Network", "DNS"):
        pins.add("dns", *value.split())
    for section in sections:
        if section.name == "Address":
            pins.add("addresses", *section.values("Address"), *section.values("Peer"))
            pins.other = True
        elif section.name == "Route":
            gateways = [g for g in section.values("Gateway") if _literal_gateway(g)]
            pins.add("gateways", *gateways)
            pins.other = pins.other or bool(gateways)
    return pins


def _configures_address(sections: list[Section]) -> bool:
    names = " ".join(_all(sections, "Match", "Name")).split()
    if names == ["lo"]:
        return False
    if any(_all(sections, "Network", k) for k in _PORT_KEYS):
        return False
    dhcp = [v.lower() for v in _all(sections, "Network", "DHCP")]
    return bool(
        any(v in _ON for v in dhcp)
        or _all(sections, "Network", "Address")
        or _all(sections, "Network", "Gateway")
        or any(s.name == "Address" for s in sections)
    )


def _reset_first(sections: list[Section], pins: Pins, static: StaticNetwork | None) -> str:
    """Rewrite the first interface's file in place; return the interface it now matches."""
    kept: list[Section] = []
    for section in sections:
        if section.name == "Address":
            continue
        if section.name == "Route" and any(_literal_gateway(g) for g in section.values("Gateway")):
            continue
        kept.append(section)
    sections[:] = kept
    interface = "*"
    match = next((s for s in sections if s.name == "Match"), None)
    if match is not None:
        had_mac = any(match.values(k) for k in _MATCH_MAC)
        match.drop(set(_MATCH_MAC))
        if had_mac and not match.entries():
            match.lines.insert(1, f"Name={FALLBACK_NAME}\n")
        interface = " ".join(match.values("Name")) or "*"
    for section in sections:
        if section.name == "Link":
            section.drop({"MACAddress"})
    network = next((s for s in sections if s.name == "Network"), None)
    if network is None:
        if sections[-1].lines and not sections[-1].lines[-1].endswith("\n"):
            sections[-1].lines[-1] += "\n"
        network = Section("Network", ["\n[Network]\n"])
        sections.append(network)
    old = [v.lower() for v in network.values("DHCP")]
    network.drop({"Address", "Gateway", "DNS", "DHCP"})
    if static is None:
        v6 = pins.has_ipv6 or any(v in _V6_ON for v in old)
        lines = [f"DHCP={'yes' if v6 else 'ipv4'}\n"]
    else:
        lines = _static_lines(static)
    network.lines[1:1] = lines
    return interface


def _static_lines(static: StaticNetwork) -> list[str]:
    lines = [f"DHCP={'no' if static.version == 4 else 'ipv4'}\n", f"Address={static.address}\n"]
    if static.gateway:
        lines.append(f"Gateway={static.gateway}\n")
    if static.dns:
        lines.append(f"DNS={' '.join(static.dns)}\n")
    return lines


def _render(sections: list[Section]) -> bytes:
    return encode("".join(line for s in sections for line in s.lines))


class Networkd:
    """The systemd-networkd family."""

    name = NETWORKD

    def reset(self, files: Mapping[str, bytes], static: StaticNetwork | None) -> Outcome:
        """See the module docstring."""
        outcome = Outcome()
        parsed = {path: parse(decode(files[path])) for path in sorted(files, key=_unit_order)}
        first = next(
            (p for p, s in parsed.items() if p.endswith(".network") and _configures_address(s)),
            None,
        )
        outcome.has_first = first is not None
        for path, sections in parsed.items():
            entry = self._reset_file(path, sections, path == first, static)
            if entry is not None:
                outcome.entries.append(entry)
        return outcome

    def _reset_file(
        self, path: str, sections: list[Section], is_first: bool, static: StaticNetwork | None
    ) -> tuple[Edit, NetworkChange] | None:
        if path.endswith(".network"):
            pins = _network_pins(sections)
            if is_first and (pins or static is not None):
                interface = _reset_first(sections, pins, static)
                action = "static" if static is not None else "dhcp"
                record = change(path, self.name, action, interface=interface, pins=pins)
                return Edit(path, _render(sections)), record
            if pins and not is_first:
                return Edit(path, None), change(path, self.name, "removed", pins=pins)
            return None
        pins = Pins()
        if path.endswith(".link"):
            for key in _MATCH_MAC:
                for value in _all(sections, "Match", key):
                    pins.add("macs", *value.split())
            if pins:
                return Edit(path, None), change(path, self.name, "removed", pins=pins)
        section_name = "Link" if path.endswith(".link") else "NetDev"
        for section in sections:
            if section.name == section_name:
                found = [v for v in section.values("MACAddress") if _MAC.fullmatch(v)]
                if found:
                    pins.add("macs", *found)
                    gone = {i for i, k, v in section.entries() if k == "MACAddress" and v in found}
                    section.lines = [ln for i, ln in enumerate(section.lines) if i not in gone]
        if not pins:
            return None
        return Edit(path, _render(sections)), change(path, self.name, "edited", pins=pins)

    def create(self, static: StaticNetwork, files: Mapping[str, bytes]) -> Outcome | None:
        """A new ``50-hostimage.network`` for the interfaces named ``en*``/``eth*``."""
        text = f"[Match]\nName={FALLBACK_NAME}\n\n[Network]\n" + "".join(_static_lines(static))
        record = change(NEW_FILE, self.name, "created", interface=FALLBACK_NAME)
        return Outcome([(Edit(NEW_FILE, encode(text), 0o644), record)], has_first=True)


def _unit_order(path: str) -> str:
    # networkd orders its files by name, whatever the directory.
    return path.rsplit("/", 1)[-1]
