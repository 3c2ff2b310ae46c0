"""Compute hosts: the hypervisors whose VMs the service saves as host images and on which it
creates VMs. The built-in inventory is handled by the services themselves; this package
speaks to real hypervisors (libvirt)."""
