"""The ``hostimage`` command: server operations (serve, worker, db) and the API client."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import time
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer

from hostimage import crashpoints
from hostimage.settings import Settings, load_settings

app = typer.Typer(help="hostimage — host images for private clouds.", no_args_is_help=True)
db_app = typer.Typer(help="Database administration.", no_args_is_help=True)
app.add_typer(db_app, name="db")


def _settings(data_dir: Path | None) -> Settings:
    return load_settings(data_dir=data_dir) if data_dir else load_settings()


def prepare(settings: Settings, demo: bool) -> None:
    """Migrate, bootstrap the first admin, and seed demo data when asked."""
    from hostimage.db.engine import make_engine, make_session_factory, session_scope
    from hostimage.db.migrate import upgrade
    from hostimage.services.auth import configure_password_hashing
    from hostimage.services.bootstrap import bootstrap
    from hostimage.services.demo import DEMO_PASSWORD, seed_demo
    from hostimage.storage import storage_from_settings

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    configure_password_hashing(settings.argon2_time_cost, settings.argon2_memory_kib)
    upgrade(settings.effective_database_url)
    engine = make_engine(settings.effective_database_url)
    factory = make_session_factory(engine)
    with session_scope(factory) as session:
        generated = bootstrap(session, settings.admin_password)
        if generated:
            typer.echo(f"Created user 'admin' in domain 'Default' with password: {generated}")
            typer.echo("(shown once; set HOSTIMAGE_ADMIN_PASSWORD to choose it yourself)")
        if demo and seed_demo(session, storage_from_settings(settings)):
            typer.echo(
                "Demo data seeded: users domadmin, alice, victor, olga (domain Default), "
                f"eastadmin, bob (domain east); password {DEMO_PASSWORD}"
            )
    engine.dispose()


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    """Turn SIGTERM into ``SystemExit`` once, so ``finally`` blocks and context managers run:
    a worker stops its libguestfs appliance, ``serve`` stops its workers. Later SIGTERMs are
    ignored so that clean-up is not cut short."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise SystemExit(128 + signum)


def _worker_main(settings_json: str) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    from hostimage.db.engine import make_engine, make_session_factory
    from hostimage.services.runtime import runtime_from_settings
    from hostimage.storage import storage_from_settings
    from hostimage.tasks.worker import Worker
    from hostimage.tasks.worker.retry import RetryPolicy

    settings = Settings.model_validate_json(settings_json)
    crashpoints.arm(settings.crash_at)
    engine = make_engine(settings.effective_database_url, pool_size=4)
    factory = make_session_factory(engine)
    storage = storage_from_settings(settings)
    Worker(
        runtime_from_settings(settings, factory, storage),
        policy=RetryPolicy(
            max_attempts=settings.task_max_attempts,
            base=timedelta(seconds=settings.task_retry_base_seconds),
        ),
        gc_interval=timedelta(seconds=settings.gc_interval_seconds),
        sync_interval=timedelta(seconds=settings.host_sync_seconds),
    ).run_forever()


def default_api_processes(settings: Settings) -> int:
    """One API process per CPU on PostgreSQL. One on SQLite: its writers queue on a lock
    inside a process, while writers of different processes poll SQLite's file lock."""
    if settings.effective_database_url.startswith("sqlite"):
        return 1
    return max(1, min(os.cpu_count() or 1, 8))


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    data_dir: Annotated[Path | None, typer.Option(help="Database, objects and state.")] = None,
    demo: Annotated[bool, typer.Option(help="Seed demo tenants, users and images.")] = False,
    workers: Annotated[int, typer.Option(help="Embedded task worker processes.")] = 2,
    api_processes: Annotated[
        int,
        typer.Option(
            help="API processes sharing the port (0: one per CPU on PostgreSQL, one on SQLite)."
        ),
    ] = 0,
) -> None:
    """API + console + embedded task workers on one port."""
    import uvicorn

    from hostimage.api.app import create_app
    from hostimage.api.asgi import SETTINGS_ENV

    logging.basicConfig(level=logging.INFO)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    settings = _settings(data_dir)
    prepare(settings, demo)
    crashpoints.arm(settings.crash_at)
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=_worker_main, args=(settings.model_dump_json(),), daemon=True)
        for _ in range(max(workers, 0))
    ]
    for proc in procs:
        proc.start()
    typer.echo(f"hostimage listening on http://{host}:{port}/ (console) and /api/v1")
    # uvicorn shuts down on SIGTERM and then raises it again; with the default handler that
    # would kill this process before its workers are stopped, leaving them orphaned.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    processes = api_processes if api_processes > 0 else default_api_processes(settings)
    try:
        if processes == 1:
            uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")
        else:
            # uvicorn's supervisor starts the processes (spawned: they import the factory) and
            # stops them on SIGTERM / SIGINT before returning here.
            os.environ[SETTINGS_ENV] = settings.model_dump_json()
            uvicorn.run(
                "hostimage.api.asgi:create",
                factory=True,
                workers=processes,
                host=host,
                port=port,
                log_level="warning",
            )
    finally:
        for proc in procs:
            proc.terminate()
        # A worker stops its running task's appliance before it exits (bounded by the
        # guestfish stop timeouts); kill what is still there after that.
        deadline = time.monotonic() + 120
        for proc in procs:
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()


@app.command()
def worker(
    data_dir: Annotated[Path | None, typer.Option(help="Data directory.")] = None,
) -> None:
    """Task workers only, for scale-out (any number, on any host)."""
    logging.basicConfig(level=logging.INFO)
    _worker_main(_settings(data_dir).model_dump_json())


@db_app.command("upgrade")
def db_upgrade(
    data_dir: Annotated[Path | None, typer.Option(help="Data directory.")] = None,
) -> None:
    """Apply database migrations (idempotent)."""
    from hostimage.db.migrate import upgrade

    settings = _settings(data_dir)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.effective_database_url)
    typer.echo("Database is up to date.")


@app.command("gc")
def gc_command(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only print what would be removed.")
    ] = False,
    grace_hours: Annotated[
        float | None,
        typer.Option(
            min=0, help="Leave objects younger than this alone (default: gc_grace_hours)."
        ),
    ] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Data directory.")] = None,
) -> None:
    """Remove stored objects that no image or format copy references, and stale incomplete
    writes, older than the grace period. Exit code 1 if any could not be removed."""
    from datetime import timedelta

    from sqlalchemy.exc import SQLAlchemyError

    from hostimage.db.engine import make_engine, make_session_factory
    from hostimage.services.gc import Removal, collect
    from hostimage.storage import StorageError, storage_from_settings

    settings = _settings(data_dir)
    hours = settings.gc_grace_hours if grace_hours is None else grace_hours
    engine = make_engine(settings.effective_database_url, pool_size=1)
    try:
        storage = storage_from_settings(settings)

        def show(removal: Removal) -> None:
            typer.echo(removal.describe(dry_run))

        report = collect(
            make_session_factory(engine),
            storage,
            grace=timedelta(hours=hours),
            dry_run=dry_run,
            on_removal=show,
        )
    except (SQLAlchemyError, StorageError) as exc:
        typer.echo(f"Garbage collection failed: {exc}", err=True)
        raise typer.Exit(1) from exc
    finally:
        engine.dispose()
    for error in report.errors:
        typer.echo(f"error: {error}", err=True)
    typer.echo(report.summary())
    if report.error_count:
        raise typer.Exit(1)


def run() -> None:
    from hostimage.cli import register

    register(app)
    app()


if __name__ == "__main__":
    run()
