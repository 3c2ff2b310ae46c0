"""Disk image handling: format inspection and conversion helpers."""
