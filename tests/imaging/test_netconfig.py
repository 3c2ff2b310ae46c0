"""The network reset's rules, on config contents (no disk): every family's template configs
reset to DHCP on the first interface, a static address placed without any MAC, configs that
pin nothing left alone, hostile contents refused or survived, a second reset a no-op.

The disk tests (test_ext4fast.py, test_guestfs.py) check that both paths read and write
these files in the guest; here the planner's decisions are checked one by one.
"""

from __future__ import annotations

import posixpath
import time
from collections.abc import Mapping

import pytest
from diskfactory import NETWORK_FAMILIES, NETWORK_RESET, RHEL_GLOBAL, template_pins
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hostimage.imaging.netconfig import (
    GuestConfigs,
    InvalidNetwork,
    NetworkPlan,
    StaticNetwork,
    UnsupportedNetwork,
    plan_network,
)
from hostimage.imaging.netconfig.collect import NETWORKD_ENABLED, SINGLE_FILES, SOURCES

STATIC = StaticNetwork("192.0.2.10/24", gateway="192.0.2.1", dns=("192.0.2.53",))


def family_of(path: str) -> str:
    for family, single in SINGLE_FILES:
        if path == single:
            return family
    for source in SOURCES:
        if posixpath.dirname(path) == source.directory and source.accept(posixpath.basename(path)):
            return source.family
    raise AssertionError(f"{path} is not a network config path")


def configs(files: Mapping[str, bytes], present: Mapping[str, str] | None = None) -> GuestConfigs:
    """What ``collect`` gives for a guest holding ``files`` (path → content)."""
    out = GuestConfigs(present=dict(present or {}))
    for path in sorted(files):
        out.add(family_of(path), path, files[path])
    return out


def template(*families: str, rhel_global: bool = False) -> dict[str, bytes]:
    files = {p: c for f in families for p, (c, _) in NETWORK_FAMILIES[f].items()}
    if rhel_global:
        files.update({p: c for p, (c, _) in RHEL_GLOBAL.items()})
    return files


def apply(files: Mapping[str, bytes], plan: NetworkPlan) -> dict[str, bytes]:
    out = dict(files)
    for edit in plan.edits:
        if edit.data is None:
            del out[edit.path]
        else:
            out[edit.path] = edit.data
    return out


# The template families --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("families", "rhel_global"),
    [
        (("debian12",), False),
        (("ubuntu",), False),
        (("rhel",), True),
        (("networkd",), False),
        (("suse",), False),
        (tuple(NETWORK_FAMILIES), False),
    ],
)
def test_each_family_resets_to_dhcp_on_the_first_interface(
    families: tuple[str, ...], rhel_global: bool
) -> None:
    files = template(*families, rhel_global=rhel_global)
    plan = plan_network(configs(files))
    after = apply(files, plan)
    for path, before in files.items():
        expected = NETWORK_RESET.get(path, before)
        assert after.get(path) == expected, path
        if expected is not None:
            assert template_pins(expected) == [], path
    # Every edit is reported, and only edits are (no "skipped" for clean input).
    assert {c["path"] for c in plan.changes} == {e.path for e in plan.edits}
    assert all(c["action"] in ("dhcp", "edited", "removed") for c in plan.changes)
    # A second reset finds nothing left to do.
    assert plan_network(configs(after)).edits == ()


def test_the_report_says_what_each_file_pinned() -> None:
    plan = plan_network(configs(template("debian12", "ubuntu", "rhel", "networkd", "suse")))
    by_path = {c["path"]: c for c in plan.changes}
    assert by_path["/etc/network/interfaces"] == {
        "path": "/etc/network/interfaces",
        "family": "ifupdown",
        "action": "dhcp",
        "interface": "ens3",
        "addresses": ["10.20.30.40/24", "fd00:20:30::40/64"],
        "gateways": ["10.20.30.1", "fd00:20:30::1"],
        "macs": ["52:54:00:12:34:56"],
        "dns": ["10.20.30.2"],
        "reason": None,
    }
    backend = by_path["/etc/network/interfaces.d/60-backend"]
    assert (backend["action"], backend["addresses"]) == ("removed", ["192.168.50.40"])
    netplan = by_path["/etc/netplan/50-cloud-init.yaml"]
    assert netplan["interface"] == "e*"  # matched by MAC before: the new name is unknown
    assert netplan["macs"] == ["52:54:00:12:34:57", "fa:16:3e:00:00:04"]
    keyfile = by_path["/etc/NetworkManager/system-connections/eth0.nmconnection"]
    assert (keyfile["family"], keyfile["interface"]) == ("networkmanager", "eth0")
    assert keyfile["macs"] == ["52:54:00:12:34:5A", "52:54:00:12:34:5B"]
    assert by_path["/etc/sysconfig/network-scripts/route-eth0"]["gateways"] == ["10.20.32.254"]
    assert by_path["/etc/systemd/network/10-ens6.network"]["interface"] == "en* eth*"
    assert by_path["/etc/systemd/network/10-ens6.link"]["action"] == "removed"
    assert by_path["/etc/sysconfig/network/routes"]["gateways"] == ["10.20.34.1"]
    assert by_path["/etc/sysconfig/network/config"]["dns"] == ["10.20.34.2"]
    untouched = {
        "/etc/network/interfaces.d/70-spare",
        "/etc/netplan/90-spare.yaml",
        "/etc/NetworkManager/system-connections/spare.nmconnection",
        "/etc/sysconfig/network-scripts/ifcfg-eth2",
        "/etc/sysconfig/network-scripts/ifcfg-lo",
        "/etc/sysconfig/network/ifcfg-lo",
        "/etc/systemd/network/30-dhcp.network",
    }
    assert untouched.isdisjoint(by_path)


def test_configs_that_pin_nothing_are_left_alone() -> None:
    files = {
        "/etc/network/interfaces": b"auto lo\niface lo inet loopback\nauto eth0\n"
        b"iface eth0 inet dhcp\n",
        "/etc/netplan/01-netcfg.yaml": b"network:\n  ethernets:\n    eth0:\n      dhcp4: yes\n",
        "/etc/sysconfig/network-scripts/ifcfg-eth0": b'DEVICE=eth0\nBOOTPROTO=dhcp\nUUID="x"\n',
        "/etc/NetworkManager/system-connections/Wired.nmconnection": b"[connection]\n"
        b"type=ethernet\n[ipv4]\nmethod=auto\n",
        "/etc/systemd/network/80-dhcp.network": b"[Match]\nName=en*\n[Network]\nDHCP=yes\n",
    }
    plan = plan_network(configs(files))
    assert (plan.edits, plan.changes) == ((), ())


# Static addresses on VM creation ---------------------------------------------------------


def test_a_static_address_goes_to_the_first_interface_of_every_family() -> None:
    files = template("debian12", "ubuntu", "rhel", "networkd", "suse")
    plan = plan_network(configs(files), STATIC)
    after = apply(files, plan)
    assert after["/etc/network/interfaces"].endswith(
        b"allow-hotplug ens3\niface ens3 inet static\n\taddress 192.0.2.10/24\n"
        b"\tgateway 192.0.2.1\n\tdns-nameservers 192.0.2.53\n"
        b"\t# dns-* options are implemented by the resolvconf package, if installed\n"
        b"\tdns-search example.internal\n\niface ens3 inet6 auto\n"
    )
    assert b"addresses:\n      - 192.0.2.10/24" in after["/etc/netplan/50-cloud-init.yaml"]
    assert b"via: 192.0.2.1" in after["/etc/netplan/50-cloud-init.yaml"]
    keyfile = after["/etc/NetworkManager/system-connections/eth0.nmconnection"]
    assert b"[ipv4]\nmethod=manual\naddress1=192.0.2.10/24,192.0.2.1\ndns=192.0.2.53;\n" in keyfile
    assert b"[ipv6]\naddr-gen-mode=eui64\nmethod=auto\n" in keyfile
    ifcfg = after["/etc/sysconfig/network-scripts/ifcfg-eth0"]
    for line in (b"BOOTPROTO=none", b"IPADDR=192.0.2.10", b"PREFIX=24", b"GATEWAY=192.0.2.1"):
        assert line + b"\n" in ifcfg
    assert b"DNS1=192.0.2.53\n" in ifcfg and b"IPV6_AUTOCONF=yes\n" in ifcfg
    networkd = after["/etc/systemd/network/10-ens6.network"]
    assert b"[Network]\nDHCP=no\nAddress=192.0.2.10/24\nGateway=192.0.2.1\nDNS=192.0.2.53\n" in (
        networkd
    )
    assert after["/etc/sysconfig/network/ifcfg-eth0"] == (
        b"BOOTPROTO='static'\nSTARTMODE='auto'\nIPADDR='192.0.2.10/24'\nNAME='Ethernet Card 0'\n"
    )
    assert after["/etc/sysconfig/network/ifroute-eth0"] == b"default 192.0.2.1 - eth0\n"
    assert b'NETCONFIG_DNS_STATIC_SERVERS="192.0.2.53"' in after["/etc/sysconfig/network/config"]
    created = [e for e in plan.edits if e.mode is not None]
    assert [(e.path, e.mode) for e in created] == [("/etc/sysconfig/network/ifroute-eth0", 0o644)]
    for path, content in after.items():
        assert template_pins(content) == [], path
        assert b"52:54:00" not in content.lower()  # no MAC is ever written
    assert {c["action"] for c in plan.changes} == {"static", "removed", "edited", "created"}


def test_an_ipv6_static_address() -> None:
    static = StaticNetwork("2001:db8:1::10/64", gateway="2001:db8:1::1")
    files = template("debian12", "rhel")
    after = apply(files, plan_network(configs(files), static))
    interfaces = after["/etc/network/interfaces"]
    assert b"iface ens3 inet dhcp\n" in interfaces
    assert b"iface ens3 inet6 static\n\taddress 2001:db8:1::10/64\n" in interfaces or (
        b"iface ens3 inet6 static\n    address 2001:db8:1::10/64\n" in interfaces
    )
    ifcfg = after["/etc/sysconfig/network-scripts/ifcfg-eth0"]
    assert b"BOOTPROTO=dhcp\n" in ifcfg and b"IPV6ADDR=2001:db8:1::10/64\n" in ifcfg
    assert b"IPV6_DEFAULTGW=2001:db8:1::1\n" in ifcfg and b"IPV6_AUTOCONF=no\n" in ifcfg


@pytest.mark.parametrize(
    ("present", "path", "mode", "must_contain"),
    [
        ({"/etc/netplan": "dir"}, "/etc/netplan/60-hostimage.yaml", 0o600, b"name: e*"),
        (
            {"/etc/NetworkManager/system-connections": "dir", "/etc/netplan": "file"},
            "/etc/NetworkManager/system-connections/hostimage-static.nmconnection",
            0o600,
            b"[ipv4]\nmethod=manual\naddress1=192.0.2.10/24,192.0.2.1\n",
        ),
        (
            {NETWORKD_ENABLED: "link", "/etc/systemd/network": "dir"},
            "/etc/systemd/network/50-hostimage.network",
            0o644,
            b"[Match]\nName=en* eth*\n",
        ),
    ],
)
def test_a_static_address_without_any_config_gets_a_new_file(
    present: dict[str, str], path: str, mode: int, must_contain: bytes
) -> None:
    plan = plan_network(configs({}, present), STATIC)
    assert [(e.path, e.mode) for e in plan.edits] == [(path, mode)]
    data = plan.edits[0].data
    assert data is not None and must_contain in data and b"192.0.2.10/24" in data
    assert [c["action"] for c in plan.changes] == ["created"]
    # The new file is a config of the first interface: a second plan keeps it.
    again = plan_network(configs({path: data}, present), STATIC)
    assert [c["action"] for c in again.changes] == ["static"]


@pytest.mark.parametrize(
    "present",
    [
        {},
        {"/etc/systemd/network": "dir"},  # networkd present but not enabled
        {"/etc/sysconfig/network-scripts": "dir"},  # ifcfg needs a name nobody gives
        {"/etc/network/interfaces": "file"},
    ],
)
def test_a_static_address_with_nowhere_to_go_is_refused(present: dict[str, str]) -> None:
    files = {"/etc/network/interfaces": b"auto lo\niface lo inet loopback\n"}
    with pytest.raises(UnsupportedNetwork):
        plan_network(configs(files if present else {}, present), STATIC)
    # Without a static address there is simply nothing to do.
    assert plan_network(configs(files, present)).edits == ()


def test_static_network_values_are_normalised() -> None:
    net = StaticNetwork(" 192.0.2.10/24", "192.0.2.1", ["2001:0db8::0053"])  # type: ignore[arg-type]
    assert (net.address, net.gateway, net.dns, net.version) == (
        "192.0.2.10/24",
        "192.0.2.1",
        ("2001:db8::53",),
        4,
    )
    assert StaticNetwork("192.0.2.0/31").address == "192.0.2.0/31"  # point-to-point


@pytest.mark.parametrize(
    "kwargs",
    [
        {"address": "192.0.2.10"},  # no prefix
        {"address": "192.0.2.300/24"},
        {"address": "192.0.2.0/24"},  # network address
        {"address": "192.0.2.255/24"},  # broadcast
        {"address": "127.0.0.5/8"},
        {"address": "224.0.0.5/24"},
        {"address": "0.0.0.0/0"},
        {"address": "fe80::5/64"},
        {"address": "192.0.2.10/24\nGATEWAY=1.2.3.4"},
        {"address": "192.0.2.10/24", "gateway": "198.51.100.1"},  # not on the network
        {"address": "192.0.2.10/24", "gateway": "192.0.2.10"},  # itself
        {"address": "192.0.2.10/24", "gateway": "2001:db8::1"},
        {"address": "192.0.2.10/24", "gateway": "192.0.2.1/24"},
        {"address": "192.0.2.10/24", "dns": "192.0.2.53"},  # a string, not a list
        {"address": "192.0.2.10/24", "dns": ("1.1.1.1", "1.0.0.1", "8.8.8.8", "8.8.4.4")},
        {"address": "192.0.2.10/24", "dns": ("dns.example",)},
        {"address": "192.0.2.10/24", "dns": ("0.0.0.0",)},
        {"address": 17},
    ],
)
def test_invalid_static_networks_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidNetwork) as caught:
        StaticNetwork(**kwargs)  # type: ignore[arg-type]
    assert caught.value.status == 422


# Odd and hostile contents ----------------------------------------------------------------


def test_a_broken_netplan_file_is_reported_and_the_rest_still_resets() -> None:
    files = template("ubuntu", "debian12")
    files["/etc/netplan/10-broken.yaml"] = b"network: [unclosed\n"
    files["/etc/netplan/20-odd.yaml"] = b"network:\n  ethernets: [eth0]\n"
    plan = plan_network(configs(files))
    skipped = {c["path"]: c["reason"] for c in plan.changes if c["action"] == "skipped"}
    assert set(skipped) == {"/etc/netplan/10-broken.yaml", "/etc/netplan/20-odd.yaml"}
    assert all(skipped.values())
    after = apply(files, plan)
    assert (
        after["/etc/netplan/50-cloud-init.yaml"] == NETWORK_RESET["/etc/netplan/50-cloud-init.yaml"]
    )
    assert after["/etc/network/interfaces"] == NETWORK_RESET["/etc/network/interfaces"]


def test_yaml_alias_bombs_cost_nothing() -> None:
    bomb = b'network:\n  version: 2\n  ethernets:\n    a: &a {addresses: ["10.20.31.9/24"]}\n'
    layers = "".join(f"    l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n" for i in range(1, 9))
    bomb += b"  x:\n    l0: &l0 [lol]\n" + layers.encode()
    started = time.monotonic()
    plan = plan_network(configs({"/etc/netplan/50-bomb.yaml": bomb}))
    assert time.monotonic() - started < 5
    (edit,) = plan.edits
    assert edit.data is not None and len(edit.data) < 10_000  # aliases stay aliases
    assert b"10.20.31.9" not in edit.data


def test_sexagesimal_looking_macs_stay_text() -> None:
    files = {
        "/etc/netplan/50.yaml": b"network:\n  ethernets:\n    ens3:\n      match:\n"
        b"        macaddress: 52:54:00:12:34:57\n      dhcp4: true\n"
        b"    ens4:\n      match: {name: ens4}\n      macaddress: 52:54:00:12:34:58\n"
        b"      dhcp4: true\n",
    }
    plan = plan_network(configs(files))
    (change,) = plan.changes
    assert change["macs"] == ["52:54:00:12:34:57", "52:54:00:12:34:58"]
    data = plan.edits[0].data
    assert data is not None and b"ens4" not in data and b"52:54" not in data


def test_a_bond_member_is_stripped_not_removed() -> None:
    files = {
        "/etc/netplan/50.yaml": b"network:\n  ethernets:\n"
        b"    eno1: {match: {macaddress: 'aa:bb:cc:dd:ee:01'}, set-name: eno1}\n"
        b"    eno2: {macaddress: 'aa:bb:cc:dd:ee:02'}\n"
        b"  bonds:\n    bond0:\n      interfaces: [eno1, eno2]\n"
        b"      addresses: [10.20.31.50/24]\n",
    }
    after = apply(files, plan_network(configs(files)))["/etc/netplan/50.yaml"]
    assert b"eno1: {}" in after or b"eno1:" in after
    assert b"eno2:" in after and b"aa:bb" not in after
    assert b"bond0:\n      interfaces:\n      - eno1\n      - eno2\n      dhcp4: true\n" in after


def test_ifupdown_drops_removed_interfaces_from_auto_lines() -> None:
    files = {
        "/etc/network/interfaces": b"auto lo ens3 ens4\niface lo inet loopback\n"
        b"iface ens3 inet dhcp\n  hwaddress ether 52:54:00:12:34:56\n"
        b"iface ens4 inet static\n  address 10.20.30.41/24\n"
        b"allow-hotplug ens4\n",
    }
    after = apply(files, plan_network(configs(files)))["/etc/network/interfaces"]
    assert after == b"auto lo ens3\niface lo inet loopback\niface ens3 inet dhcp\n"


def test_undecodable_bytes_survive_a_rewrite() -> None:
    files = {
        "/etc/sysconfig/network-scripts/ifcfg-eth0": b"DEVICE=eth0\nNAME=\xff\xfe\x00odd\n"
        b"BOOTPROTO=static\nIPADDR=10.20.32.40\n",
    }
    after = apply(files, plan_network(configs(files)))
    assert after["/etc/sysconfig/network-scripts/ifcfg-eth0"] == (
        b"DEVICE=eth0\nNAME=\xff\xfe\x00odd\nBOOTPROTO=dhcp\n"
    )


_PATHS = [
    "/etc/network/interfaces",
    "/etc/netplan/50-cloud-init.yaml",
    "/etc/NetworkManager/system-connections/a.nmconnection",
    "/etc/sysconfig/network-scripts/ifcfg-eth0",
    "/etc/sysconfig/network/ifcfg-eth0",
    "/etc/systemd/network/10-a.network",
]
_WORDS = [
    "iface", "eth0", "inet", "static", "dhcp", "address", "hwaddress", "auto", "\n", " ",
    "[Match]", "[Network]", "[ipv4]", "[connection]", "type=ethernet", "method=manual",
    "MACAddress=52:54:00:12:34:56", "Address=10.20.30.9/24", "DHCP=yes", "address1=",
    "BOOTPROTO=static", "IPADDR=10.20.32.9", "HWADDR=", "network:", "  ethernets:",
    "    eth0:", "      addresses: [10.20.31.9/24]", "      dhcp4: true", "=", "'", '"',
    "#", "\\\n", "\t", "\xff", "lo",
]  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(
        st.sampled_from(_PATHS),
        st.lists(st.sampled_from(_WORDS), max_size=40).map(
            lambda ws: "".join(ws).encode("utf-8", "surrogateescape")
        ),
        max_size=4,
    )
)
def test_any_content_plans_without_crashing_and_a_second_reset_is_a_no_op(
    files: dict[str, bytes],
) -> None:
    plan = plan_network(configs(files))
    after = apply(files, plan)
    again = plan_network(configs(after))
    assert [e for e in again.edits if e.path in after or e.data is not None] == [], again


def test_netplan_definitions_of_the_first_interface_in_several_files() -> None:
    files = {
        "/etc/netplan/50-cloud-init.yaml": b"network:\n  ethernets:\n    ens3:\n"
        b"      match: {macaddress: '52:54:00:12:34:57'}\n      dhcp4: true\n",
        "/etc/netplan/60-extra.yaml": b"network:\n  ethernets:\n    ens3:\n"
        b"      addresses: [10.20.31.40/24]\n      mtu: 9000\n",
    }
    plan = plan_network(configs(files))
    after = apply(files, plan)
    assert after["/etc/netplan/60-extra.yaml"] == (
        b"network:\n  ethernets:\n    ens3:\n      mtu: 9000\n"
    )
    assert b"dhcp4: true" in after["/etc/netplan/50-cloud-init.yaml"]
    actions = {c["path"]: c["action"] for c in plan.changes}
    assert actions == {
        "/etc/netplan/50-cloud-init.yaml": "dhcp",
        "/etc/netplan/60-extra.yaml": "edited",
    }


def test_a_file_without_a_final_line_break_gets_a_new_stanza() -> None:
    files = {"/etc/network/interfaces": b"auto eth0\niface eth0 inet6 auto"}
    after = apply(files, plan_network(configs(files), STATIC))
    assert after["/etc/network/interfaces"] == (
        b"auto eth0\niface eth0 inet6 auto\niface eth0 inet static\n    address 192.0.2.10/24\n"
        b"    gateway 192.0.2.1\n    dns-nameservers 192.0.2.53\n"
    )
