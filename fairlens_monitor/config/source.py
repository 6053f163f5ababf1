"""Validate the ``source`` section of ``config.yaml``: where each cycle's decisions come from.

Part of the config boundary (:mod:`fairlens_monitor.config.settings`). Three kinds:

- ``simulator`` (the default): the built-in loan simulator, as in the demo.
- ``file``: a path or glob of CSV/Parquet decision logs, with the column mapping and a window.
- ``sql``: a SQLAlchemy URL plus a table or a ``SELECT``; counts are computed in that database.

Every key is checked here and an error names it, so :mod:`fairlens_monitor.sources` can trust
what it is given. Pure, apart from making a relative path absolute.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fairlens_monitor.config.checks import (
    boolean,
    number,
    reject_unknown,
    resolve_db_url,
    resolve_path,
    shown,
    string,
)
from fairlens_monitor.errors import ConfigError

ENV_SOURCE_URL = "FAIRLENS_SOURCE_URL"
KINDS = ("simulator", "file", "sql")
COMMON_KEYS = {"kind", "outcome", "timestamp", "stratum", "window", "chunk_rows", "missing_values"}
KIND_KEYS = {
    "simulator": {"kind"},
    "file": COMMON_KEYS | {"path", "follow_symlinks"},
    "sql": COMMON_KEYS | {"url", "table", "query"},
}
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$")
MAX_WINDOW_SECONDS = 36_600 * 86400.0  # a century, as retention


@dataclass(frozen=True)
class SourceSettings:
    """Where decisions come from and how a cycle windows them.

    ``window`` is ``all`` (every decision each cycle), ``new_files`` (file sources: only
    files not measured before, or changed since) or a duration such as ``24h``
    (``window_seconds``; decisions whose ``timestamp`` falls in the last 24 hours).
    ``follow_symlinks`` (file sources) lets a link lead out of the path's folder.
    """

    kind: str = "simulator"
    path: str | None = None
    url: str | None = None
    table: str | None = None
    query: str | None = None
    outcome: str = "approved"
    timestamp: str | None = None
    stratum: str | None = None
    window: str = "all"
    window_seconds: float | None = None
    chunk_rows: int = 500_000
    missing_values: tuple[str, ...] = ()
    follow_symlinks: bool = False

    @property
    def columns(self) -> dict[str, str]:
        """The mapped columns by role (outcome, and timestamp/stratum when set)."""
        roles = {"outcome": self.outcome, "timestamp": self.timestamp, "stratum": self.stratum}
        return {role: name for role, name in roles.items() if name}

    def shaping(self) -> dict[str, Any]:
        """What of the source shapes a reading (hashed into the config hash).

        The file pattern and the database URL are deployment locations and are left out,
        like ``database.url``; the files' digests are recorded with each reading instead.
        """
        shaping: dict[str, Any] = {
            "kind": self.kind,
            "table": self.table,
            "query": self.query,
            "columns": self.columns,
            "window": self.window,
        }
        if self.missing_values:  # absent when unset, so existing configs keep their hash
            shaping["missing_values"] = list(self.missing_values)
        return shaping


def parse_source(
    section: Mapping[str, Any], *, base_dir: Path, env: Mapping[str, str]
) -> SourceSettings:
    """Validate the ``source`` section.

    Args:
        section: the section's keys (empty when the section is absent).
        base_dir: folder a relative ``source.path`` resolves against.
        env: environment; ``FAIRLENS_SOURCE_URL`` overrides ``source.url`` (keeps a password
            out of the file).

    Returns:
        The validated source settings (``simulator`` when the section is empty).

    Raises:
        ConfigError: a key is unknown for the kind, missing, or malformed; the message names
            the key and the fix.
    """
    kind = section.get("kind", "simulator")
    if kind not in KINDS:
        raise ConfigError("source.kind", f"expected one of {', '.join(KINDS)}, got {shown(kind)}")
    if kind == "simulator":
        reject_unknown(section, "source", KIND_KEYS["simulator"])
        return SourceSettings()
    reject_unknown(section, "source", KIND_KEYS[kind])
    columns = {role: _column(section, role) for role in ("outcome", "timestamp", "stratum")}
    if columns["outcome"] is None:
        raise ConfigError(
            "source.outcome",
            "missing; name the decision column (0/1, true/false or yes/no), e.g. outcome: approved",
        )
    named = [c for c in columns.values() if c]
    if len(set(named)) != len(named):
        raise ConfigError(
            "source", f"outcome, timestamp and stratum must be different columns, got {columns}"
        )
    window, seconds = _window(section.get("window", "all"), kind, columns["timestamp"])
    chunk_rows = int(
        number(
            section,
            "source.chunk_rows",
            default=500_000,
            integer=True,
            minimum=1000,
            maximum=10_000_000,
        )
    )
    common: dict[str, Any] = {
        "kind": kind,
        "outcome": columns["outcome"],
        "timestamp": columns["timestamp"],
        "stratum": columns["stratum"],
        "window": window,
        "window_seconds": seconds,
        "chunk_rows": chunk_rows,
        "missing_values": missing_values(section),
    }
    if kind == "file":
        pattern = string(section, "source.path")
        follow = boolean(section, "source.follow_symlinks", default=False)
        return SourceSettings(
            path=str(resolve_path(pattern, base_dir)), follow_symlinks=follow, **common
        )
    url = env.get(ENV_SOURCE_URL) or section.get("url")
    if not isinstance(url, str) or not url.strip():
        raise ConfigError(
            "source.url",
            "missing; give a SQLAlchemy URL, e.g. "
            "postgresql+psycopg://reader@db/lending, or set "
            f"{ENV_SOURCE_URL}",
        )
    url = resolve_db_url(url, Path.cwd() if env.get(ENV_SOURCE_URL) else base_dir, key="source.url")
    table, query = section.get("table"), section.get("query")
    if (table is None) == (query is None):
        raise ConfigError(
            "source.table",
            "give exactly one of source.table (a table or view name) and source.query (a SELECT)",
        )
    if table is not None and (not isinstance(table, str) or not _IDENTIFIER.match(table)):
        raise ConfigError(
            "source.table",
            f"expected a table name such as decisions or lending.decisions, got {shown(table)}",
        )
    if query is not None:
        from fairlens_monitor.config.sql_check import check_query  # deferred: sqlglot costs ~0.3 s

        query = check_query(query, url)
    return SourceSettings(url=url, table=table, query=query, **common)


def missing_values(section: Mapping[str, Any]) -> tuple[str, ...]:
    """Validate ``source.missing_values``: texts that mean "missing" besides empty cells.

    Empty and whitespace-only cells (and NULLs in Parquet and SQL) are always missing;
    ``NA``, ``null`` and the like are labels unless listed here. Matched exactly (case
    included) after surrounding whitespace is removed.

    Raises:
        ConfigError: not a list of non-empty strings (numbers are refused: write ``"-1"``).
    """
    key = "source.missing_values"
    value = section.get("missing_values", [])
    if not isinstance(value, list):
        raise ConfigError(
            key, f'expected a list of strings, e.g. [NA, "N/A"], got {type(value).__name__}'
        )
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            raise ConfigError(
                f"{key}[{i}]",
                "expected a non-empty string (quote numbers and "
                f'words YAML would convert, e.g. "-1", "null"), got '
                f"{type(item).__name__ if not isinstance(item, str) else 'blank'}",
            )
    return tuple(dict.fromkeys(item.strip() for item in value))


def parse_duration(text: str) -> float | None:
    """Return a duration such as ``90s``, ``30m``, ``24h`` or ``7d`` in seconds, else None."""
    match = _DURATION.match(text)
    if not match:
        return None
    return float(match.group(1)) * _UNITS[match.group(2)]


def _column(section: Mapping[str, Any], role: str) -> str | None:
    value = section.get(role)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"source.{role}", f"expected a column name, got {shown(value)}")
    return value


def _window(value: Any, kind: str, timestamp: str | None) -> tuple[str, float | None]:
    if not isinstance(value, str):
        raise ConfigError(
            "source.window",
            f"expected all, new_files or a duration such as 24h, got {shown(value)}",
        )
    if value == "all":
        return value, None
    if value == "new_files":
        if kind != "file":
            raise ConfigError(
                "source.window",
                "new_files applies to file sources; use all "
                "or a duration such as 24h with source.timestamp",
            )
        return value, None
    seconds = parse_duration(value)
    if seconds is None or not 0 < seconds <= MAX_WINDOW_SECONDS:
        raise ConfigError(
            "source.window",
            f"expected all, new_files or a duration such as "
            f"90s, 30m, 24h or 7d (at most 36600d), got {shown(value)}",
        )
    if timestamp is None:
        raise ConfigError(
            "source.timestamp",
            f"a {value} window needs the timestamp column; set source.timestamp or use window: all",
        )
    return value, seconds
