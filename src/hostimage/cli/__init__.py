"""The ``hostimage`` API client commands: a client of the REST API only (httpx), never of the
server's internals.

:func:`register` adds them to the top-level Typer app next to ``serve``, ``worker`` and
``db``. Command groups are nouns (``host-image``, ``image``, ``server``, ``host``, ``task``,
``log``, ``domain``, ``project``, ``user``, ``role``, ``settings``, ``profile``) with verbs
below them.
"""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add every client command and command group to the top-level ``app``."""
    from hostimage.cli import auth, host_image_actions, identity, logs
    from hostimage.cli.host_images import host_image_app
    from hostimage.cli.hosts import host_app
    from hostimage.cli.images import image_app
    from hostimage.cli.servers import server_app
    from hostimage.cli.tasks import task_app

    del host_image_actions  # imported for the verbs it adds to host_image_app
    auth.register(app)
    app.add_typer(host_image_app, name="host-image")
    app.add_typer(image_app, name="image")
    app.add_typer(server_app, name="server")
    app.add_typer(host_app, name="host")
    app.add_typer(task_app, name="task")
    app.add_typer(logs.log_app, name="log")
    identity.register(app)
