"""Host-image use cases (SPEC F2–F10, F12)."""
