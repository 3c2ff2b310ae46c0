"""``python -m hostimage.cli``: the client commands on their own."""

from __future__ import annotations

import typer

from hostimage.cli import register


def build_app() -> typer.Typer:
    """A top-level app with only the client commands."""
    app = typer.Typer(help="hostimage — host images for private clouds.", no_args_is_help=True)
    register(app)
    return app


def main() -> None:
    """Run the client app."""
    build_app()(prog_name="hostimage")


if __name__ == "__main__":
    main()
