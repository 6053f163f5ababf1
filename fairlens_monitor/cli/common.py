"""Shared pieces of the command line: the error-handling group, settings, output, stores.

Used by ``cli.py`` (the core commands) and the command modules beside it; nothing here
defines a command. Importing it loads click and nothing heavy: SQLAlchemy, the
repository and the keys are imported by the functions that open them, so a command
that needs no database (``measure``, ``--help``) never loads them.
"""

from __future__ import annotations

import importlib
import json
import logging
import math
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, TypeGuard, TypeVar

import click

from fairlens_monitor.errors import FairlensError
from fairlens_monitor.security.masking import mask
from fairlens_monitor.security.passwords import scrub

if TYPE_CHECKING:  # imported by the functions that use them: start-up stays quick
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from sqlalchemy.exc import SQLAlchemyError

    from fairlens_monitor.config.settings import Settings
    from fairlens_monitor.store.repository import Repository

T = TypeVar("T")
JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
MAX_LAST = 1_000_000_000  # a LIMIT both back ends take (beyond 64 bits they fail)
LAST_OPTION = click.option(
    "--last",
    default=20,
    show_default=True,
    type=click.IntRange(1, MAX_LAST),
    help="How many of the newest to show.",
)
ANCHOR_OPTION = click.option(
    "--anchor",
    "anchor_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Anchor file (default: audit.anchor_file).",
)
NEW_CHAIN_OPTION = click.option(
    "--new-chain",
    is_flag=True,
    help="The database was lost and there is no backup: set the anchor file of the old chain "
    "aside (renamed) and start a new chain, recorded as its first event.",
)


PUBKEY_OPTION = click.option(
    "--public-key",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Checkpoint public key (default: in keys.dir).",
)


class FiniteFloatRange(click.FloatRange):
    """A float option in a range that also refuses NaN and ±inf.

    ``click.FloatRange`` compares with ``<`` and ``>``, which NaN never fails, so
    ``--alpha nan`` passed and silently switched the significance test off.
    """

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """Convert as ``click.FloatRange`` does, then refuse a value that is not finite."""
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


ENV_DEBUG = "FAIRLENS_DEBUG"  # set to 1: an unexpected error shows its traceback


class ErrorGroup(click.Group):
    """Turns library errors into one stderr line and their documented exit code.

    A database error is shown by its driver's first line (no SQL, no parameters, no
    "Background on this error" link). Anything else unexpected is the last resort: one line
    naming only the exception's type (its text may hold data), exit 2, and how to see the
    traceback (``FAIRLENS_DEBUG=1``). Each known failure is still caught at its own boundary
    with a message that says what to fix; this only keeps a traceback off the screen.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except FairlensError as exc:
            click.echo(_line(f"error: {scrub(str(exc), *_urls(ctx))}"), err=True)
            ctx.exit(exc.exit_code)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            if _is_database_error(exc):
                from fairlens_monitor.store.schema import one_line

                click.echo(_line(f"error: database: {scrub(one_line(exc), *_urls(ctx))}"), err=True)
                ctx.exit(2)
            if os.environ.get(ENV_DEBUG) == "1":
                raise
            click.echo(
                f"error: unexpected {type(exc).__name__} (a bug, or input nothing "
                f"checks yet); rerun with {ENV_DEBUG}=1 for the traceback",
                err=True,
            )
            ctx.exit(2)


def failure_line(exc: Exception) -> str:
    """One masked line for a failure that does not end the command (one monitor's cycle of
    several): the error's own message, a database driver's first line, or only the type of
    anything unexpected — as :class:`ErrorGroup` shows them, without the ``error:`` prefix.

    Args:
        exc: the failure.

    Returns:
        The line; the config's database passwords are scrubbed from it.
    """
    urls = _urls(click.get_current_context())
    if isinstance(exc, FairlensError):
        return _line(scrub(str(exc), *urls))
    if _is_database_error(exc):
        from fairlens_monitor.store.schema import one_line

        return _line(f"database: {scrub(one_line(exc), *urls)}")
    return (
        f"unexpected {type(exc).__name__} (a bug, or input nothing checks yet); "
        f"rerun with {ENV_DEBUG}=1 and --monitor for the traceback"
    )


def _is_database_error(exc: Exception) -> TypeGuard[SQLAlchemyError]:
    """Whether ``exc`` is SQLAlchemy's. A command that never imported SQLAlchemy cannot
    have raised one, so the check does not import it (``measure`` stays free of it)."""
    sa_exc = sys.modules.get("sqlalchemy.exc")
    return sa_exc is not None and isinstance(exc, sa_exc.SQLAlchemyError)


class LazyGroup(ErrorGroup):
    """An :class:`ErrorGroup` whose listed subcommands are imported on first use.

    ``lazy_subcommands`` maps a command's name to ``"module:attribute"``; the module is
    imported only when the command runs or is listed (``--help``), so running one command
    never imports the others' modules (click's documented lazy-loading pattern).
    """

    def __init__(
        self, *args: Any, lazy_subcommands: Mapping[str, str] | None = None, **kwargs: Any
    ) -> None:
        """As :class:`click.Group`, plus the lazily imported subcommands."""
        super().__init__(*args, **kwargs)
        self.lazy_subcommands = dict(lazy_subcommands or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every command's name, the lazy ones included, sorted."""
        return sorted({*super().list_commands(ctx), *self.lazy_subcommands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command ``cmd_name``, importing its module if it is a lazy one."""
        if cmd_name not in self.lazy_subcommands:
            return super().get_command(ctx, cmd_name)
        module, _, attribute = self.lazy_subcommands[cmd_name].partition(":")
        command = getattr(importlib.import_module(module), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{module}:{attribute} is not a click command")
        return command


def _line(message: str) -> str:
    """One masked line: a driver's message may span lines ("Is the server running…"), and a
    config value or a library's text may hold an e-mail or an SSN."""
    return mask(" ".join(message.split()))


def _urls(ctx: click.Context) -> list[str | None]:
    """The database URLs of the loaded config (the service's database and every monitor's
    source): their passwords are scrubbed from errors."""
    portfolio: dict[str, Settings] | None = (ctx.obj or {}).get("portfolio")
    if not portfolio:
        return []
    first = next(iter(portfolio.values()))
    return [first.database.url, *(s.source.url for s in portfolio.values())]


def portfolio_of(ctx: click.Context) -> dict[str, Settings]:
    """Every monitor of the config file, validated once per command and kept on the context.

    Args:
        ctx: the command's context (``ctx.obj["config_path"]`` set by the main group).

    Returns:
        ``{monitor name: its settings}`` in the file's order; ``{"default": settings}`` for a
        config without ``monitors:`` (``config.monitors.load_portfolio``).

    Raises:
        ConfigError: the file is missing or a key is invalid; the message names the key,
            under ``monitors.NAME.`` when a monitor set it.
    """
    from fairlens_monitor.config.monitors import load_portfolio

    portfolio: dict[str, Settings] | None = ctx.obj.get("portfolio")
    if portfolio is None:
        portfolio = load_portfolio(ctx.obj["config_path"])
        first = next(iter(portfolio.values()))
        logging.getLogger().setLevel(ctx.obj.get("log_level") or first.logging.level)
        ctx.obj["portfolio"] = portfolio
    return portfolio


def settings_of(ctx: click.Context) -> Settings:
    """The service's settings: database, keys, audit, logging, backup, retention, leadership.

    Those sections are the same in every monitor's settings (``config.monitors``), so this is
    the first monitor's; for a config without ``monitors:`` it is the one monitor's, exactly
    as before. A command that measures takes its monitors from :func:`portfolio_of`.

    Raises:
        ConfigError: as :func:`portfolio_of`.
    """
    return next(iter(portfolio_of(ctx).values()))


def chosen_monitors(
    portfolio: Mapping[str, Settings], names: Sequence[str], *, option: str = "--monitor"
) -> list[str]:
    """The monitors a command was asked about, checked against the config.

    Args:
        portfolio: the loaded config (:func:`portfolio_of`).
        names: the names given on the command line, in order (repeats are dropped).
        option: the option named in an error.

    Returns:
        The names, each once, in the order given.

    Raises:
        click.BadParameter: a name is not a monitor of the config (exit 2); the message
            names it (a monitor name is ``[a-z0-9_]``, never data) and lists the configured
            ones, or says it is too long to show.
    """
    chosen: list[str] = []
    for name in names:
        if name not in portfolio:
            raise click.BadParameter(unknown_monitor(name, portfolio), param_hint=f"'{option}'")
        if name not in chosen:
            chosen.append(name)
    return chosen


def unknown_monitor(name: str, portfolio: Mapping[str, Any], retired: Sequence[str] = ()) -> str:
    """The message for a monitor name the config does not have (the name shown only when it
    could be a monitor's name, so nothing else typed there is echoed); ``retired``: the
    database's monitors the config no longer names, listed when the command takes them."""
    from fairlens_monitor.config.monitors import MONITOR_NAME

    def listed(names: Sequence[str]) -> str:
        return ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")

    shown = f"'{name}'" if MONITOR_NAME.fullmatch(name) else "the name given"
    also = f"; retired in the database: {listed(retired)}" if retired else ""
    return f"{shown} is not a monitor of this config (monitors: {listed(list(portfolio))}{also})"


def dump(doc: Any) -> None:
    click.echo(json.dumps(doc, indent=2, ensure_ascii=False, default=str))


def show(
    items: Sequence[T],
    as_json: bool,
    to_json: Callable[[T], Any],
    to_line: Callable[[T], str],
    *,
    empty: str,
) -> None:
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
    from fairlens_monitor.ops.app import open_repository

    return closing(open_repository(settings, readonly=True))


def scoped_reader(ctx: click.Context, monitor: str | None) -> Repository:
    """A read-only repository (:func:`reader`), scoped to ``monitor`` when one is given.

    Args:
        ctx: the command's context.
        monitor: a monitor of the config, or one the database still holds (retired); None
            for the whole service.

    Returns:
        The repository.

    Raises:
        click.BadParameter: ``monitor`` is neither in the config nor in the database (exit
            2, naming it).
    """
    portfolio = portfolio_of(ctx)
    repo = reader(settings_of(ctx))
    if monitor is None:
        return repo
    stored = [row.name for row in repo.monitor_rows()]
    if monitor not in portfolio and monitor not in stored:
        retired = sorted(n for n in stored if n not in portfolio)
        raise click.BadParameter(
            unknown_monitor(monitor, portfolio, retired), param_hint="'--monitor'"
        )
    return repo.for_monitor(monitor)


def writer(settings: Settings) -> Repository:
    """A writable repository on a migrated database, closed when the command ends.

    An existing key folder open to other users is refused first, before the database is
    created or migrated (the key files would be refused a moment later anyway).

    Raises:
        KeyFileError: the key folder exists and group or others may enter it.
    """
    from fairlens_monitor.ops.app import open_repository
    from fairlens_monitor.security.crypto import check_key_dir

    if settings.keys.dir.is_dir():
        check_key_dir(settings.keys.dir)
    return closing(open_repository(settings))


def sealed_writer(settings: Settings) -> tuple[Repository, Ed25519PrivateKey]:
    """A writable repository whose transactions that append audit events are sealed by a
    signed checkpoint as ``sealing`` decides, and the signing key (created only while no
    checkpoint exists)."""
    from fairlens_monitor.ops.app import open_signing_key
    from fairlens_monitor.ops.sealing import Sealer  # deferred: it loads the trail's edge

    repo = writer(settings)
    key = open_signing_key(settings, repo)
    Sealer.of(settings, key).attach(repo)
    return repo, key


def closing(repo: Repository) -> Repository:
    click.get_current_context().call_on_close(repo.engine.dispose)
    return repo


class TrailPaths(TypedDict):
    anchor_file: Path
    public_key: Path


def trail_paths(
    settings: Settings, anchor_file: Path | None, public_key: Path | None
) -> TrailPaths:
    return {
        "anchor_file": anchor_file or settings.audit.anchor_file,
        "public_key": public_key or settings.keys.public_key,
    }


def record_hash(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    """Click callback: a record hash as given on the command line, 64 hex digits (case
    ignored), returned lower-case.

    Raises:
        click.BadParameter: anything else; the argument is not echoed (it could be anything,
            a password included).
    """
    text_ = value.strip().lower()
    if len(text_) != 64 or any(c not in "0123456789abcdef" for c in text_):
        raise click.BadParameter(
            "expected the 64 hex digits of an audit record's hash (as `audit` prints it)"
        )
    return text_


def run_console(group: click.Group) -> int:
    """Console-script entry point: every error is one stderr line and a documented exit code.

    click's own usage errors (an unknown option, a value out of range, a group run without
    its command) are made one line too, naming the command's ``--help``; a group's help goes
    to stdout.

    Args:
        group: the command group to run on ``sys.argv``.

    Returns:
        The exit code.
    """
    try:
        code = group.main(prog_name="fairlens-monitor", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(exc.ctx.get_help())
        click.echo(f"error: {exc.ctx.command_path} needs a command (listed above)", err=True)
        code = 2
    except click.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx is not None else "fairlens-monitor"
        message = " ".join(exc.format_message().split())
        click.echo(f"error: {message} (see '{where} --help')", err=True)
        code = exc.exit_code
    except click.ClickException as exc:
        click.echo(f"error: {' '.join(exc.format_message().split())}", err=True)
        code = exc.exit_code
    except click.Abort:
        click.echo("error: aborted", err=True)
        code = 1
    return code if isinstance(code, int) else 0
