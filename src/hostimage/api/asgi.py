"""The application for process managers: ``uvicorn --factory hostimage.api.asgi:create``.

``hostimage serve --api-processes N`` starts N uvicorn worker processes on this factory and
hands each one its own settings through the environment; started by hand, it reads the
``HOSTIMAGE_*`` environment like every other command.
"""

from __future__ import annotations

import os

from fastapi import FastAPI

from hostimage.api.app import create_app
from hostimage.settings import Settings, load_settings

SETTINGS_ENV = "HOSTIMAGE_SERVE_SETTINGS_JSON"


def create() -> FastAPI:
    """The application for this process's settings."""
    given = os.environ.get(SETTINGS_ENV)
    return create_app(Settings.model_validate_json(given) if given else load_settings())
