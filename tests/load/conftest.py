"""The load test uses the API tests' world (tenants on a real database and storage)."""

from tests.api.conftest import app_env, client, world  # noqa: F401
