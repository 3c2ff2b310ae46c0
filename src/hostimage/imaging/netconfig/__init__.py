"""Reset a guest's network configs that pin the template's addresses or MACs (SPEC F1), and
give a new VM's first interface DHCP or a static address (F11).

``collect`` reads the configs through a ``GuestReader`` (the libguestfs appliance or debugfs
in the sandbox); ``plan_network`` turns them into edits (pure Python, on bounded bytes);
each path applies the edits in its own confinement. Both paths read the same files and get
the same plan, so they leave the same result.
"""

from hostimage.imaging.netconfig.collect import DIRECTORIES, GuestConfigs, GuestReader, collect
from hostimage.imaging.netconfig.model import (
    Edit,
    InvalidNetwork,
    NetworkChange,
    NetworkPlan,
    StaticNetwork,
    UnsupportedNetwork,
)
from hostimage.imaging.netconfig.plan import plan_network

__all__ = [
    "DIRECTORIES",
    "Edit",
    "GuestConfigs",
    "GuestReader",
    "InvalidNetwork",
    "NetworkChange",
    "NetworkPlan",
    "StaticNetwork",
    "UnsupportedNetwork",
    "collect",
    "plan_network",
]
