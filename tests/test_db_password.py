"""The database password never shows: every CLI command, the page, the logs, the stored data.

A canary password is put in ``FAIRLENS_DB_URL``, once pointing at a closed port and once at
the real PostgreSQL server (which trusts local connections, so the password is accepted and
every command gets past connecting). Every command of the click group is found by walking
the group, so a command added later is covered without touching this file.
"""

from __future__ import annotations

import io
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import click
import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url
from streamlit.testing.v1 import AppTest

from fairlens_monitor.cli.main import cli
from fairlens_monitor.security.passwords import install_password_filter, scrub, shown_url
from fairlens_monitor.store.errors import StoreError
from tests.helpers.commands import subcommands

CANARY = "Cn4ryPw0rdQ7"
VIEWER = Path(__file__).resolve().parents[1] / "fairlens_monitor" / "viewer" / "page.py"
# Commands that would not end by themselves get the arguments that make them end; `view`
# serves until stopped: it is stopped once it says where it serves (or has ended).
ENDING: dict[tuple[str, ...], list[str]] = {("run",): ["--cycles", "1"]}
SERVES = {("view",)}


def every_command(
    group: click.Group, prefix: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    """Every command path of ``group``; a group that runs on its own counts as one too."""
    for name, command in subcommands(group).items():
        path = (*prefix, name)
        if isinstance(command, click.Group):
            if command.invoke_without_command:
                yield path, command
            yield from every_command(command, path)
        else:
            yield path, command


def arguments(path: tuple[str, ...], command: click.Command, tmp: Path, url: str) -> list[str]:
    """Values for the required parameters of ``command``, chosen from their types."""
    out: list[str] = list(ENDING.get(path, []))
    if isinstance(command, click.Group):
        return out
    for param in command.params:
        if not param.required or param.name is None:
            continue
        if param.name.endswith("url"):  # db copy: the canary database, and another one
            value = (
                url
                if param.name.startswith("src")
                else str(make_url(url).set(database="fairlens_other"))
            )
            value = make_url(value).render_as_string(hide_password=False)
        elif isinstance(param.type, click.Path):
            value = str(tmp / f"{'-'.join(path)}-{param.name}")
        elif isinstance(param.type, click.types.IntParamType):
            value = "1"
        else:
            value = "x"
        if isinstance(param, click.Option):
            out += [param.opts[0], value]
        else:
            out.append(value)
    return out


def run_all(config: Path, url: str, tmp: Path) -> tuple[list[str], list[str]]:
    """Run every command in its own process; return all output and the commands run."""
    env = {**os.environ, "FAIRLENS_DB_URL": url, "FAIRLENS_KEY_DIR": str(tmp / "keys")}
    seen, names = [], []
    # seed first (a cycle, an alert, a checkpoint), so the read commands have rows to show
    commands = [(("once",), subcommands(cli)["once"])] * 2 + list(every_command(cli))
    for path, command in commands:
        argv = [
            sys.executable,
            "-m",
            "fairlens_monitor",
            "--config",
            str(config),
            *path,
            *arguments(path, command, tmp, url),
        ]
        if path in SERVES:
            seen += [serve_until_ready([*argv, "--port", str(free_port())], env, tmp), ""]
            names.append(" ".join(path))
            continue
        try:
            done = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                env=env,
                timeout=300,
                check=False,
                stdin=subprocess.DEVNULL,
                cwd=tmp,
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"{' '.join(path)} did not end: give it ending arguments in ENDING")
        assert done.returncode in (0, 1, 2), (path, done.stderr[-2000:])
        seen += [done.stdout, done.stderr]
        names.append(" ".join(path))
    return seen, names


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_until_ready(argv: list[str], env: dict[str, str], cwd: Path) -> str:
    """Start a serving command; stop it once it prints where it serves; return its output."""
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    lines = []
    try:
        for line in proc.stdout:  # the test's timeout bounds a server that never says so
            lines.append(line)
            if "URL:" in line:
                break
    finally:
        proc.terminate()
        lines.append(proc.communicate(timeout=60)[0])
    return "".join(lines)


def files_holding(folder: Path, needle: bytes) -> list[str]:
    return [str(p) for p in folder.rglob("*") if p.is_file() and needle in p.read_bytes()]


def database_text(url: str) -> str:
    """Every value of every table of a database, as text."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return "\n".join(
                str(row)
                for table in inspect(conn).get_table_names()
                for row in conn.execute(text(f'SELECT * FROM "{table}"'))
            )
    finally:
        engine.dispose()


@pytest.fixture
def canary_config(write_config: Callable[..., Path]) -> Path:
    return write_config(
        {
            "simulation": {"drift": 1.0},
            "alerts": {"echo_plaintext": True},
            "audit": {"checkpoint_every": 2},
        }
    )


@pytest.mark.timeout(600)
def test_no_command_prints_the_password_of_an_unreachable_database(
    canary_config: Path, tmp_path: Path
) -> None:
    url = f"postgresql+psycopg://fairlens:{CANARY}@127.0.0.1:1/fairlens"
    seen, names = run_all(canary_config, url, tmp_path)
    assert {"verify", "history", "db upgrade", "backup", "db copy", "view"} <= set(names)
    assert not [text for text in seen if CANARY in text]
    assert "fairlens:***@127.0.0.1:1" in "".join(seen)  # the URL itself is still named
    assert not files_holding(tmp_path, CANARY.encode())


@pytest.mark.timeout(600)
def test_no_command_prints_the_password_of_a_working_database(
    canary_config: Path, tmp_path: Path, pg_url: str
) -> None:
    url = make_url(pg_url).set(password=CANARY).render_as_string(hide_password=False)
    seen, names = run_all(canary_config, url, tmp_path)
    assert len(names) >= 25
    everything = "".join(seen)
    assert CANARY not in everything, [
        n for n, a, b in zip(names, seen[::2], seen[1::2], strict=False) if CANARY in a + b
    ]
    assert "alert key rotated" in everything  # the commands did get past connecting
    assert "audit chain intact" in everything
    assert not files_holding(tmp_path, CANARY.encode())
    stored = database_text(pg_url)
    assert "alert_raised" in stored
    assert CANARY not in stored


def page_text(at: AppTest) -> str:
    """Every element of the page (main part and sidebar), as its protobuf text."""

    def walk(node: object) -> Iterator[str]:
        proto = getattr(node, "proto", None)
        if proto is not None:
            yield str(proto)
        for child in getattr(node, "children", {}).values():
            yield from walk(child)

    return "\n".join(walk(at._tree))


@pytest.mark.parametrize("where", ["closed port", "working server"])
def test_the_page_never_shows_the_password(
    where: str,
    canary_config: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    if where == "closed port":
        url = f"postgresql+psycopg://fairlens:{CANARY}@127.0.0.1:1/fairlens"
    else:
        pg_url = request.getfixturevalue("pg_url")
        url = make_url(pg_url).set(password=CANARY).render_as_string(hide_password=False)
        subprocess.run(
            [sys.executable, "-m", "fairlens_monitor", "--config", str(canary_config), "once"],
            check=True,
            capture_output=True,
            env={**os.environ, "FAIRLENS_DB_URL": url},
            cwd=tmp_path,
        )
    monkeypatch.setenv("FAIRLENS_DB_URL", url)
    monkeypatch.setenv("FAIRLENS_CONFIG", str(canary_config))
    at = AppTest.from_file(str(VIEWER), default_timeout=60)
    at.query_params["monitor"] = "default"  # the monitor's view (the landing is the inventory)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    shown = page_text(at)
    assert ":***@127.0.0.1" in shown  # the sidebar still names the database
    if where == "closed port":
        assert "cannot connect" in shown
    else:
        assert "Monitored DIR" in shown
    assert CANARY not in shown


def test_scrub_removes_known_and_url_shaped_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FAIRLENS_DB_URL", raising=False)
    monkeypatch.setenv("FAIRLENS_SOURCE_URL", "postgresql+psycopg://u:env%2Fpw@h/d")
    url = "postgresql+psycopg://u:p%40ss@h/d"
    said = scrub(
        "failed for p@ss and p%40ss; postgresql://x:other@host/db; host=h "
        "password='a b' user=u; password=plain; env/pw",
        url,
    )
    for secret in ("p@ss", "p%40ss", "other", "'a b'", "plain", "env/pw"):
        assert secret not in said
    assert "postgresql://x:***@host/db" in said
    assert shown_url(url) == "postgresql+psycopg://u:***@h/d"
    assert shown_url("/var/lib/x.db") == "/var/lib/x.db"  # a path is left as it is
    assert "p@ss" not in str(StoreError(url, "could not connect with p@ss"))


def test_log_records_are_scrubbed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAIRLENS_DB_URL", f"postgresql+psycopg://u:{CANARY}@h/d")
    stream = io.StringIO()
    logger = logging.getLogger("fairlens-test-passwords")
    logger.propagate = False
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    try:
        install_password_filter(logger)
        logger.error("cannot reach %s (password %s)", "postgresql://x:other@h/d", CANARY)
        try:
            raise RuntimeError(f"dsn password={CANARY}")
        except RuntimeError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    said = stream.getvalue()
    assert "failed" in said
    assert "RuntimeError" in said
    assert CANARY not in said
    assert "other" not in said
