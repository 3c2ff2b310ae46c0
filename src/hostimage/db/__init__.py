"""Persistence: tables, engine and sessions, the one SQL visibility filter, migrations."""
