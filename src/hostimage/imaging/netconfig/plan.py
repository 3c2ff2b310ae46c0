"""The network reset over every family: each resets its own files; a static address with no
family configuring an interface goes into a new file of the family the image uses."""

from __future__ import annotations

from hostimage.imaging.netconfig.base import Family
from hostimage.imaging.netconfig.collect import (
    DIR,
    FILE,
    IFCFG,
    IFCFG_SUSE,
    IFUPDOWN,
    KEYFILE,
    LINK,
    NETPLAN,
    NETWORKD,
    NETWORKD_ENABLED,
    GuestConfigs,
)
from hostimage.imaging.netconfig.ifcfg import Ifcfg
from hostimage.imaging.netconfig.ifupdown import Ifupdown
from hostimage.imaging.netconfig.keyfile import Keyfile
from hostimage.imaging.netconfig.model import (
    Edit,
    NetworkChange,
    NetworkPlan,
    StaticNetwork,
    UnsupportedNetwork,
)
from hostimage.imaging.netconfig.netplan import Netplan
from hostimage.imaging.netconfig.networkd import Networkd

FAMILIES: tuple[Family, ...] = (
    Ifupdown(),
    Netplan(),
    Keyfile(),
    Ifcfg(suse=False),
    Ifcfg(suse=True),
    Networkd(),
)

# Where a static address goes when no config of the image configures an interface: the
# first family whose marker is there. netplan generates the other daemons' configs, so it
# comes first; NetworkManager next (RHEL 8+, desktops); networkd only when it is enabled.
CREATE_ORDER: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    (NETPLAN, ("/etc/netplan",), (DIR,)),
    (KEYFILE, ("/etc/NetworkManager/system-connections",), (DIR,)),
    (NETWORKD, (NETWORKD_ENABLED, "/etc/systemd/network"), (LINK, FILE, DIR)),
    (IFCFG, ("/etc/sysconfig/network-scripts",), (DIR,)),
    (IFCFG_SUSE, ("/etc/sysconfig/network",), (DIR,)),
    (IFUPDOWN, ("/etc/network/interfaces",), (FILE,)),
)


def plan_network(configs: GuestConfigs, static: StaticNetwork | None = None) -> NetworkPlan:
    """Plan the reset of the guest's network configs read by ``collect``.

    Without ``static``: in every family, the first interface's config becomes DHCP and every
    other config that pins the template's addresses or MACs goes (see each family module);
    configs that pin nothing are not touched. With ``static``: the same, but the first
    interface's config gets ``static`` instead; when no family configures an interface, a
    new config is written in the family chosen by ``CREATE_ORDER``. Raises
    ``UnsupportedNetwork`` when a static address cannot be placed (no family found, or one
    that needs an interface name the image never gives).
    """
    entries: list[tuple[Edit | None, NetworkChange]] = [(None, s) for s in configs.skipped]
    configured = False
    by_name = {family.name: family for family in FAMILIES}
    for family in FAMILIES:
        outcome = family.reset(configs.files.get(family.name, {}), static)
        entries += outcome.entries
        configured = configured or outcome.has_first
    if static is not None and not configured:
        entries += _create(configs, static, by_name)
    seen: dict[str, Edit] = {}
    for edit, _ in entries:
        if edit is not None:
            # Two families never share a path; this guards the invariant the appliers rely on.
            assert edit.path not in seen, f"two edits of {edit.path}"
            seen[edit.path] = edit
    return NetworkPlan(tuple(seen.values()), tuple(record for _, record in entries))


def _create(
    configs: GuestConfigs, static: StaticNetwork, by_name: dict[str, Family]
) -> list[tuple[Edit | None, NetworkChange]]:
    for name, markers, kinds in CREATE_ORDER:
        if not all(configs.present.get(m) in kinds for m in markers):
            continue
        created = by_name[name].create(static, configs.files.get(name, {}))
        if created is None:
            raise UnsupportedNetwork(
                f"The image uses {name} but no config of it names the network interface, so "
                "a static address cannot be written; create the server with DHCP."
            )
        return list(created.entries)
    raise UnsupportedNetwork(
        "The image has no network configuration this service can write a static address "
        "into (netplan, NetworkManager, systemd-networkd, ifcfg or ifupdown)."
    )
