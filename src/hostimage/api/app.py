"""``create_app``: the API, OpenAPI document, health checks and the console's static files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import Engine, text
from starlette.staticfiles import StaticFiles

from hostimage.api import errors
from hostimage.api.middleware import RequestBoundary
from hostimage.api.routes import (
    auth,
    host_images,
    hosts,
    identity,
    images,
    logs,
    servers,
    tasks,
)
from hostimage.api.routes import settings as settings_routes
from hostimage.db.engine import make_engine, make_session_factory
from hostimage.services.auth import configure_password_hashing
from hostimage.settings import Settings
from hostimage.storage import storage_from_settings

WEB_DIST = Path(__file__).resolve().parent.parent / "web" / "dist"


def create_app(settings: Settings, engine: Engine | None = None) -> FastAPI:
    """Build the application for ``settings``; no work happens at import time."""
    app = FastAPI(
        title="hostimage",
        version="0.1.0",
        description="Host images for private clouds: every disk of a VM as one image.",
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
    )
    if engine is None:
        engine = make_engine(settings.effective_database_url, echo=settings.sql_echo)
    configure_password_hashing(settings.argon2_time_cost, settings.argon2_memory_kib)
    app.state.settings = settings
    app.state.engine = engine
    app.state.session_factory = make_session_factory(engine)
    app.state.storage = storage_from_settings(settings)
    errors.install(app)
    app.add_middleware(RequestBoundary)

    api = APIRouter(prefix="/api/v1")
    for module in (
        auth,
        identity,
        settings_routes,
        host_images,
        logs,
        images,
        servers,
        hosts,
        tasks,
    ):
        api.include_router(module.router)
    app.include_router(api)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    def readyz() -> Any:
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:  # readiness reports any failure instead of raising
            return JSONResponse({"status": "unavailable", "detail": str(exc)}, status_code=503)
        return {"status": "ready"}

    if WEB_DIST.is_dir():
        app.mount("/", StaticFiles(directory=WEB_DIST, html=True), name="console")
    return app
