"""Service tests run on the API tests' deployments: a real app, database and storage."""

from tests.api.conftest import app_env, client, world  # noqa: F401
