"""ASGI factory for running the API in several uvicorn worker processes.

``uvicorn --factory --app-dir bench _app:create --workers N`` calls ``create()`` once in each
worker process; settings come from the ``HOSTIMAGE_*`` environment, as for ``hostimage
serve``. Migrations and bootstrap are the seeder's job here, and task workers run as a
separate ``hostimage worker`` process.
"""

from __future__ import annotations

from fastapi import FastAPI

from hostimage.api.app import create_app
from hostimage.settings import load_settings


def create() -> FastAPI:
    return create_app(load_settings())
