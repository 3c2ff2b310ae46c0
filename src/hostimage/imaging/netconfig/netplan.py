"""netplan: ``/etc/netplan/*.yaml`` (Ubuntu).

Devices are those under ``ethernets``, ``bonds``, ``bridges`` and ``vlans``. The first
interface is the first device (files by name, then document order) that configures an
address (``addresses``, ``dhcp4``/``dhcp6``, a gateway or routes); ``lo`` never counts. It
loses what pins the old network — ``addresses``, ``gateway4``/``gateway6``, ``routes``,
``routing-policy``, ``nameservers.addresses`` (the search list stays), ``macaddress``,
``match.macaddress`` with its ``set-name`` — and gets ``dhcp4: true`` (and ``dhcp6: true``
when it had IPv6 addresses). An ethernet matched only by MAC then matches by name ``e*``
(``en*`` and ``eth*`` names): the name it gets on the new VM is not known. Other devices
that pin anything are removed, unless another device names them (a bond's or bridge's
``interfaces``, a VLAN's ``link``): those only lose their pins. A file left without devices
is removed. Files are rewritten with PyYAML (comments are not kept).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import yaml  # type: ignore[import-untyped]

from hostimage.imaging.netconfig.base import Outcome, encode, is_glob
from hostimage.imaging.netconfig.collect import NETPLAN
from hostimage.imaging.netconfig.model import Edit, NetworkChange, Pins, StaticNetwork, change

KINDS = ("ethernets", "bonds", "bridges", "vlans")
FALLBACK_MATCH = "e*"
NEW_FILE = "/etc/netplan/60-hostimage.yaml"


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """PyYAML's safe loader (libyaml's parser when built with it) without YAML 1.1's
    implicit sexagesimal numbers, floats and dates: netplan reads ``52:54:00:12:34:56`` as
    a MAC, not as base-60 integer, and the rewrite must keep such values as they were."""


_Loader.yaml_implicit_resolvers = {
    first: [
        (tag, regexp)
        for tag, regexp in resolvers
        if tag.rsplit(":", 1)[-1] not in ("int", "float", "timestamp")
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$"), list("-+0123456789")
)
_PINNING = ("addresses", "gateway4", "gateway6", "routes", "routing-policy", "macaddress")


class Unusable(Exception):
    """A file that is not a netplan document we can edit safely."""


def _truthy(value: object) -> bool:
    return value is True or (isinstance(value, str) and value.lower() in ("true", "yes", "on"))


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        out = []
        for item in value:
            if isinstance(item, str):
                out.append(item)
            elif isinstance(item, dict):  # netplan ≥ 0.104: {"10.0.0.5/24": {lifetime: …}}
                out += [k for k in item if isinstance(k, str)]
        return out
    return []


def _pins(device: dict[str, Any]) -> Pins:
    pins = Pins()
    pins.add("addresses", *_strings(device.get("addresses")))
    pins.add("gateways", *_strings(device.get("gateway4")), *_strings(device.get("gateway6")))
    routes = device.get("routes")
    if isinstance(routes, list):
        pins.other = pins.other or bool(routes)
        for route in routes:
            if isinstance(route, dict):
                pins.add("gateways", *_strings(route.get("via")))
    if device.get("routing-policy"):
        pins.other = True
    nameservers = device.get("nameservers")
    if isinstance(nameservers, dict):
        pins.add("dns", *_strings(nameservers.get("addresses")))
    pins.add("macs", *_strings(device.get("macaddress")))
    match = device.get("match")
    if isinstance(match, dict):
        pins.add("macs", *_strings(match.get("macaddress")))
    return pins


def _configures_address(device_id: str, device: dict[str, Any]) -> bool:
    match = device.get("match")
    if device_id == "lo" or (isinstance(match, dict) and match.get("name") == "lo"):
        return False
    return bool(
        device.get("addresses")
        or _truthy(device.get("dhcp4"))
        or _truthy(device.get("dhcp6"))
        or device.get("gateway4")
        or device.get("gateway6")
        or device.get("routes")
    )


def _unpinned(device: dict[str, Any], fallback: dict[str, str] | None = None) -> dict[str, Any]:
    """A new mapping without the pinning keys (the document's objects are never changed:
    YAML anchors may share them between devices); a ``match`` left empty becomes
    ``fallback`` when one is given."""
    out = {k: v for k, v in device.items() if k not in _PINNING}
    nameservers = device.get("nameservers")
    if isinstance(nameservers, dict):
        rest = {k: v for k, v in nameservers.items() if k != "addresses"}
        if rest:
            out["nameservers"] = rest
        else:
            out.pop("nameservers", None)
    match = device.get("match")
    if isinstance(match, dict) and "macaddress" in match:
        rest = {k: v for k, v in match.items() if k != "macaddress"}
        out.pop("set-name", None)
        if rest or fallback:
            out["match"] = rest or fallback
        else:
            out.pop("match", None)
    return out


def _name(device_id: str, device: dict[str, Any], kind: str) -> str | None:
    """The literal interface name the device config names (never through a MAC)."""
    if kind != "ethernets":
        return device_id
    match = device.get("match")
    if not isinstance(match, dict):
        return device_id
    name = match.get("name")
    if isinstance(name, str) and not is_glob(name) and "macaddress" not in match:
        return name
    return None


def _load(data: bytes) -> dict[str, Any] | None:
    try:
        doc = yaml.load(data, Loader=_Loader)
    except (yaml.YAMLError, RecursionError, ValueError) as exc:
        raise Unusable(f"not valid YAML: {str(exc).splitlines()[0][:120]}") from exc
    if doc is None:
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("network", {}), dict):
        raise Unusable("not a netplan document")
    for kind in KINDS:
        devices = doc.get("network", {}).get(kind, {})
        if not isinstance(devices, dict) or not all(
            isinstance(k, str) and isinstance(v, dict) for k, v in devices.items()
        ):
            raise Unusable(f"unexpected content under network.{kind}")
    return doc


def _dump(doc: dict[str, Any]) -> bytes:
    return encode(yaml.safe_dump(doc, sort_keys=False, default_flow_style=False))


def _static_keys(static: StaticNetwork, device: dict[str, Any]) -> dict[str, Any]:
    out = dict(device)
    out["dhcp4" if static.version == 4 else "dhcp6"] = False
    out["addresses"] = [static.address]
    if static.gateway:
        default = "0.0.0.0/0" if static.version == 4 else "::/0"
        out["routes"] = [{"to": default, "via": static.gateway}]
    if static.dns:
        nameservers = dict(out.get("nameservers") or {})
        nameservers["addresses"] = list(static.dns)
        out["nameservers"] = nameservers
    return out


class Netplan:
    """The netplan family."""

    name = NETPLAN

    def reset(self, files: Mapping[str, bytes], static: StaticNetwork | None) -> Outcome:
        """See the module docstring."""
        outcome = Outcome()
        docs: dict[str, dict[str, Any]] = {}
        for path in sorted(files):
            try:
                doc = _load(files[path])
            except Unusable as exc:
                outcome.entries.append((None, change(path, self.name, "skipped", reason=str(exc))))
                continue
            if doc is not None:
                docs[path] = doc
        # netplan merges a device's definitions from every file: the first interface is a
        # (kind, id), configured where it first appears; its other definitions lose pins.
        first: tuple[str, str] | None = None
        first_path = ""
        referenced: set[str] = set()
        for path, doc in docs.items():
            network = doc.get("network", {})
            for kind in KINDS:
                for device_id, device in network.get(kind, {}).items():
                    if first is None and _configures_address(device_id, device):
                        first, first_path = (kind, device_id), path
                    referenced.update(_strings(device.get("interfaces")))
                    referenced.update(_strings(device.get("link")))
        outcome.has_first = first is not None
        for path, doc in docs.items():
            entry = self._reset_doc(path, doc, first, path == first_path, referenced, static)
            if entry is not None:
                outcome.entries.append(entry)
        return outcome

    def _reset_doc(
        self,
        path: str,
        doc: dict[str, Any],
        first: tuple[str, str] | None,
        configures_first: bool,
        referenced: set[str],
        static: StaticNetwork | None,
    ) -> tuple[Edit, NetworkChange] | None:
        network = dict(doc.get("network", {}))
        pins = Pins()
        interface = None
        holds_first = False
        for kind in KINDS:
            if kind not in network:
                continue
            devices: dict[str, Any] = {}
            for device_id, device in network[kind].items():
                found = _pins(device)
                if first == (kind, device_id) and not configures_first:
                    pins.merge(found)
                    devices[device_id] = _unpinned(device) if found else device
                elif first == (kind, device_id):
                    holds_first = True
                    if not found and static is None:
                        devices[device_id] = device
                        interface = _name(device_id, device, kind) or FALLBACK_MATCH
                        continue
                    pins.merge(found)
                    fallback = {"name": FALLBACK_MATCH} if kind == "ethernets" else None
                    new = _unpinned(device, fallback)
                    interface = _name(device_id, new, kind) or FALLBACK_MATCH
                    if static is not None:
                        new = _static_keys(static, new)
                    else:
                        new["dhcp4"] = True
                        if found.has_ipv6:
                            new["dhcp6"] = True
                    devices[device_id] = new
                elif found:
                    pins.merge(found)
                    if device_id in referenced:
                        devices[device_id] = _unpinned(device)
                else:
                    devices[device_id] = device
            if devices:
                network[kind] = devices
            else:
                del network[kind]
        if not pins and not (holds_first and static is not None):
            return None
        has_devices = any(k in network for k in KINDS)
        if not has_devices and not holds_first:
            return Edit(path, None), change(path, self.name, "removed", pins=pins)
        action = ("static" if static is not None else "dhcp") if holds_first else "edited"
        new_doc = {**doc, "network": network}
        return (
            Edit(path, _dump(new_doc)),
            change(
                path, self.name, action, interface=interface if holds_first else None, pins=pins
            ),
        )

    def create(self, static: StaticNetwork, files: Mapping[str, bytes]) -> Outcome | None:
        """A new ``60-hostimage.yaml`` (mode 0600) for ethernets named ``e*``."""
        device = _static_keys(static, {"match": {"name": FALLBACK_MATCH}})
        doc = {"network": {"version": 2, "ethernets": {"primary": device}}}
        record = change(NEW_FILE, self.name, "created", interface=FALLBACK_MATCH)
        return Outcome([(Edit(NEW_FILE, _dump(doc), 0o600), record)], has_first=True)
