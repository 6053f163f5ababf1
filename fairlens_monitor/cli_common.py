"""Shared pieces of the command line: the error-handling group, settings, output, stores.

Used by ``cli.py`` (the core commands) and the command modules beside it; nothing here
defines a command.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypedDict, TypeVar

import click
from sqlalchemy.exc import SQLAlchemyError

from fairlens_monitor.app import open_repository
from fairlens_monitor.config import Settings, load_settings
from fairlens_monitor.crypto import PUBLIC_KEY_FILE
from fairlens_monitor.errors import FairlensError
from fairlens_monitor.masking import mask
from fairlens_monitor.store.repository import Repository

T = TypeVar("T")
JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
LAST_OPTION = click.option("--last", default=20, show_default=True,
                           type=click.IntRange(min=1), help="How many of the newest to show.")


class FiniteFloatRange(click.FloatRange):
    """A float option in a range that also refuses NaN and ±inf.

    ``click.FloatRange`` compares with ``<`` and ``>``, which NaN never fails, so
    ``--alpha nan`` passed and silently switched the significance test off.
    """

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Any:
        """Convert as ``click.FloatRange`` does, then refuse a value that is not finite."""
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


class ErrorGroup(click.Group):
    """Turns library errors into one stderr line and their documented exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except FairlensError as exc:
            click.echo(mask(f"error: {exc}"), err=True)  # a config value may be an e-mail
            ctx.exit(exc.exit_code)
        except SQLAlchemyError as exc:
            click.echo(mask(f"error: database: {type(exc).__name__}: {exc}"), err=True)
            ctx.exit(2)


def settings_of(ctx: click.Context) -> Settings:
    settings: Settings | None = ctx.obj.get("settings")
    if settings is None:
        settings = load_settings(ctx.obj["config_path"])
        logging.getLogger().setLevel(ctx.obj.get("log_level") or settings.logging.level)
        ctx.obj["settings"] = settings
    return settings


def dump(doc: Any) -> None:
    click.echo(json.dumps(doc, indent=2, ensure_ascii=False, default=str))


def show(items: Sequence[T], as_json: bool, to_json: Callable[[T], Any],
          to_line: Callable[[T], str], *, empty: str) -> None:
    if as_json:
        dump([to_json(item) for item in items])
        return
    for item in items:
        click.echo(to_line(item))
    if not items:
        click.echo(empty)


def reader(settings: Settings) -> Repository:
    """A read-only repository on a database whose schema this version understands.

    Its connections are closed when the command ends (``Context.call_on_close``).
    """
    return closing(open_repository(settings, readonly=True))


def writer(settings: Settings) -> Repository:
    """A writable repository on a migrated database, closed when the command ends."""
    return closing(open_repository(settings))


def closing(repo: Repository) -> Repository:
    click.get_current_context().call_on_close(repo.engine.dispose)
    return repo


class TrailPaths(TypedDict):
    anchor_file: Path
    public_key: Path


def trail_paths(settings: Settings, anchor_file: Path | None,
                 public_key: Path | None) -> TrailPaths:
    return {"anchor_file": anchor_file or settings.audit.anchor_file,
            "public_key": public_key or settings.keys.dir / PUBLIC_KEY_FILE}
