"""The page commands: ``view`` serves the trend page, ``page-token`` makes who may sign in.

Registered on the main group in ``cli.py``. ``view`` refuses to listen beyond this machine
unless a page token exists (the page then shows nothing before sign-in) and warns that
Streamlit speaks plain HTTP, so such a page belongs behind a TLS proxy.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import NoReturn

import click

from fairlens_monitor.cli.common import settings_of
from fairlens_monitor.security.page_auth import create_page_token, is_loopback, load_page_token


@click.command()
@click.option(
    "--port",
    default=8501,
    show_default=True,
    type=click.IntRange(1, 65535),
    help="Port to serve the page on.",
)
@click.option(
    "--address",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on (127.0.0.1: this machine only). Any other address "
    "needs a page token (fairlens-monitor page-token) and a TLS proxy.",
)
@click.pass_context
def view(ctx: click.Context, port: int, address: str) -> NoReturn:
    """Serve the read-only trend page (Streamlit) on the configured database.

    Explanations are decrypted only for a browser that signed in with the page token; a
    page listening beyond this machine shows nothing before sign-in, and is refused (exit 2)
    while no page token exists.
    """
    config = Path(ctx.obj["config_path"]).resolve()
    settings = settings_of(ctx)  # a bad config stops here with its one-line error, exit 2
    try:
        token = load_page_token(settings.keys.dir)  # an exposed token file stops here too
        unreadable = False
    except PermissionError:  # an auditor's copy: the key folder is not this user's to read
        token, unreadable = None, True
    if unreadable and is_loopback(address):
        click.echo(
            "warning: the key folder cannot be read by this user: explanations stay "
            "encrypted (key not available here) and no one can sign in; the page shows "
            "everything else",
            err=True,
        )
    if not is_loopback(address):
        if unreadable:
            raise click.UsageError(
                f"--address {address} serves the page beyond this machine, and the key "
                "folder (where the page token is) cannot be read by this user: run the "
                "page as a user who may read it, or keep the default --address 127.0.0.1"
            )
        if token is None:
            raise click.UsageError(
                f"--address {address} serves the page beyond this machine, and no page token "
                "exists to sign in with: create one with 'fairlens-monitor page-token' (and "
                "put a TLS proxy in front), or keep the default --address 127.0.0.1"
            )
        click.echo(
            f"warning: serving on {address} over plain HTTP: the page token and the "
            "explanations cross the network unencrypted unless a TLS proxy (nginx, "
            "Caddy) is in front; see docs/SECURITY.md",
            err=True,
        )
    viewer = Path(__file__).parents[1] / "viewer" / "page.py"
    argv = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(viewer),
        "--server.headless",
        "true",
        "--server.port",
        str(port),
        "--server.address",
        address,
        "--browser.gatherUsageStats",
        "false",
        "--client.toolbarMode",
        "minimal",  # no "Deploy" button or developer menu on a risk officer's page
        "--server.fileWatcherType",
        "none",
    ]
    try:
        os.execve(sys.executable, argv, {**os.environ, "FAIRLENS_CONFIG": str(config)})  # noqa: S606
    except OSError as exc:  # e.g. an interpreter this user may not exec (a venv under /root)
        raise click.ClickException(
            f"cannot start Streamlit with {sys.executable}: {exc.strerror}; run the page "
            "with a Python this user may execute"
        ) from None


@click.command("page-token")
@click.option(
    "--rotate",
    is_flag=True,
    help="Replace the existing token (every signed-in page session is signed out).",
)
@click.pass_context
def page_token(ctx: click.Context, rotate: bool) -> None:
    """Create the page token (0600 file in the key folder) that signs a browser in.

    The token is not printed: give the content of the file to those who may read the
    decrypted explanations on the page.
    """
    path = create_page_token(settings_of(ctx).keys.dir, rotate=rotate)
    click.echo(
        f"page token {'replaced' if rotate else 'created'}: {path} (0600); sign in on "
        "the page with its content"
    )
