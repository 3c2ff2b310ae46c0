"""The real libvirt daemon and its scratch pools and domains (see tests/libvirt_env.py)."""

from tests.libvirt_env import libvirt_daemon, libvirt_domains, libvirt_pool  # noqa: F401
