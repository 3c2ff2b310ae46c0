"""The API's world for the database tests that need tenants and images."""

from tests.api.conftest import app_env, client, world  # noqa: F401
