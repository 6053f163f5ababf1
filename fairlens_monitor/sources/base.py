"""What a cycle asks of a decision source, and the file and SQL sources that answer.

**read** → counts → measure → detect → alert → log. :func:`open_source` turns the validated
``source`` settings into a :class:`FileSource` or :class:`SqlSource`; each cycle calls
``read(now, seen)`` and gets a :class:`Batch` — the count table of the window, how many
decisions it holds, the files read with their SHA-256, the files whose digest changed since
they were last measured, and the lineage recorded with the reading. The clock is passed in;
nothing here writes to the monitor's database. The built-in simulator is
:mod:`fairlens_monitor.sources.simulator`. SQLAlchemy (the SQL source, :mod:`.sql`) loads
only when a SQL source is opened.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pandas as pd

from fairlens_monitor.errors import DataError
from fairlens_monitor.fairness.cells import missing_report
from fairlens_monitor.fairness.counts import combine, decisions, digest, empty_counts, normalise
from fairlens_monitor.fairness.groups import GroupSpec
from fairlens_monitor.security.masking import looks_personal
from fairlens_monitor.security.passwords import shown_url
from fairlens_monitor.sources.files import Columns, FileRead, match_files, new_or_changed, read_file

if TYPE_CHECKING:  # SQLAlchemy (config checks, the SQL source) loads only for a SQL source
    from fairlens_monitor.config.source import SourceSettings

Seen = Mapping[str, tuple[str, int, int]]  # path -> (sha256, size_bytes, mtime_ns)
WIDE_RESULT = 10_000  # a GROUP BY returning more rows than this is probably not binned
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Batch:
    """What one cycle read: the counts of its window and where they came from."""

    counts: pd.DataFrame
    decisions: int
    window: tuple[datetime, datetime] | None
    lineage: dict[str, Any]
    files: tuple[FileRead, ...] = ()
    changed: tuple[dict[str, str], ...] = field(default=())

    def summary(self) -> dict[str, Any]:
        """The lineage with every file read and its digest, as plain JSON data (what the
        ``cycle_completed`` event and ``once --json`` show)."""
        return {
            **self.lineage,
            "files": [
                {
                    "path": f.path,
                    "sha256": f.sha256,
                    "size_bytes": f.size_bytes,
                    "rows": f.rows,
                    "decisions": f.decisions,
                }
                for f in self.files
            ],
        }


class DecisionSource(Protocol):
    """A source of decisions for the daemon's cycles."""

    def read(self, now: datetime, seen: Seen) -> Batch:
        """Read the window ending at ``now``; ``seen`` = files measured before."""

    def close(self) -> None:
        """Release connections."""


def window_at(settings: SourceSettings, now: datetime) -> tuple[datetime, datetime] | None:
    """Return the ``[start, end)`` window a cycle at ``now`` measures, or None for all rows."""
    if settings.window_seconds is None:
        return None
    return now - timedelta(seconds=settings.window_seconds), now


def _lineage(
    settings: SourceSettings,
    window: tuple[datetime, datetime] | None,
    counts: pd.DataFrame,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "kind": settings.kind,
        "window": settings.window,
        "start": window and window[0].isoformat(),
        "end": window and window[1].isoformat(),
        "columns": settings.columns,
        "missing_values": missing_report(settings.missing_values),
        "decisions": decisions(counts),
        "counts_sha256": digest(counts),
        **extra,
    }


class FileSource:
    """Reads the decision files a path or glob names (see :mod:`.files`)."""

    def __init__(
        self,
        settings: SourceSettings,
        spec: GroupSpec,
        label: str | None,
        score: str | None = None,
        score_bins: int = 100,
    ) -> None:
        """Prepare to read ``settings.path`` with the groups of ``spec``."""
        self.settings = settings
        self._warned: set[str] = set()
        self.columns = Columns(
            spec, settings.outcome, label, settings.stratum, settings.timestamp, score, score_bins
        )

    def read(self, now: datetime, seen: Seen) -> Batch:
        """Count the window's decisions over the matching files.

        Args:
            now: the cycle's time (end of a duration window).
            seen: per path, the newest recorded ``(sha256, size, mtime_ns)``.

        Returns:
            The batch; ``changed`` lists files whose SHA-256 differs from the recorded one.

        Raises:
            DataError: a file is unreadable, corrupt, lacks a column or holds a bad value
                (the message names the file), or changed while it was read.
        """
        s = self.settings
        window = window_at(s, now)
        files = match_files(s.path or "", follow_symlinks=s.follow_symlinks)
        self._warn_personal_names(files)
        skipped: list[Any] = []
        if s.window == "new_files":
            files, skipped = new_or_changed(files, seen)
        tables, reads, changed = [], [], []
        for path in files:
            counts, read = read_file(
                path, self.columns, window, chunk_rows=s.chunk_rows, missing_values=s.missing_values
            )
            if len(counts):
                tables.append(counts)
            reads.append(read)
            before = seen.get(read.path)
            if before is not None and before[0] != read.sha256:
                changed.append(
                    {"path": read.path, "old_sha256": before[0], "new_sha256": read.sha256}
                )
        counts = (
            combine(tables)
            if tables
            else empty_counts(bool(self.columns.label), bool(s.stratum), bool(self.columns.score))
        )
        lineage = _lineage(
            s, window, counts, pattern=s.path, files_read=len(reads), files_skipped=len(skipped)
        )
        return Batch(counts, decisions(counts), window, lineage, tuple(reads), tuple(changed))

    def _warn_personal_names(self, files: list[Path]) -> None:
        """Warn once per file whose name looks like personal data: paths are lineage,
        stored in ``source_files`` and the audit chain, where they can never be edited."""
        for path in files:
            if str(path) not in self._warned and looks_personal(path.name):
                self._warned.add(str(path))
                log.warning(
                    "source file %s: its name looks like it holds personal data (an "
                    "e-mail, SSN, card or phone number); file names are stored in the "
                    "audit trail — rename it (e.g. by date)",
                    path,
                )

    def close(self) -> None:
        """Nothing to release."""


class SqlSource:
    """Counts decisions in a database table or query (see :mod:`.sql`)."""

    def __init__(
        self,
        settings: SourceSettings,
        spec: GroupSpec,
        label: str | None,
        score: str | None = None,
        score_bins: int = 100,
    ) -> None:
        """Create the engine (connections are opened per cycle)."""
        from fairlens_monitor.sources.sql import source_engine

        self.settings, self.spec, self.label = settings, spec, label
        self.score, self.score_bins = score, score_bins
        self.engine = source_engine(settings.url or "")
        self.plan_checked = False
        self.group_by = list(
            dict.fromkeys(
                [*spec.attributes, settings.outcome, *filter(None, [label, settings.stratum])]
            )
        )

    def read(self, now: datetime, seen: Seen) -> Batch:
        """Run the ``GROUP BY`` for the window ending at ``now`` and normalise its rows.

        Raises:
            DataError: a SQLite source file is missing, a column is missing, the database
                refused the query, or a returned value is bad (named with its column and
                how many decisions carry it).
        """
        from fairlens_monitor.sources.sql import (
            COUNT,
            fetch_counts,
            require_source_file,
            where_text,
        )

        s = self.settings
        require_source_file(s.url or "")
        window = window_at(s, now)
        rows, sql = fetch_counts(
            self.engine,
            s.table,
            s.query,
            self.group_by,
            s.timestamp,
            window,
            score=self.score,
            score_bins=self.score_bins,
        )
        if window is not None and not self.plan_checked:
            self.plan_checked = True
            self.warn_without_index(window)
        if rows.empty:
            counts = empty_counts(bool(self.label), bool(s.stratum), bool(self.score))
        else:
            counts = normalise(
                rows,
                self.spec,
                s.outcome,
                label=self.label,
                stratum=s.stratum,
                weights=COUNT,
                where=where_text(s.table),
                score=self.score,
                score_bins=self.score_bins,
                missing_values=s.missing_values,
            )
        if len(rows) > WIDE_RESULT and len(rows) * 10 > decisions(counts):
            log.warning(
                "the count query returned %d rows for %d decisions: a column it groups "
                "by has many distinct values; bin the stratum in source.query (e.g. "
                "CAST(amount / 1000 AS INTEGER)) so only counts cross the wire",
                len(rows),
                decisions(counts),
            )
        url = shown_url(s.url or "")
        lineage = _lineage(
            s,
            window,
            counts,
            url=url,
            table=s.table,
            query=s.query,
            sql=sql,
            rows_returned=len(rows),
        )
        return Batch(counts, decisions(counts), window, lineage)

    def warn_without_index(self, window: tuple[datetime, datetime]) -> None:
        """Log, once per source, the ``CREATE INDEX`` a windowed table source lacks.

        Asks the planner (:func:`~fairlens_monitor.sources.sql_window.missing_index_hint`);
        a source query, or a database that cannot explain, is left alone.
        """
        from sqlalchemy.exc import SQLAlchemyError

        from fairlens_monitor.sources.sql import count_statement
        from fairlens_monitor.sources.sql_window import missing_index_hint

        s = self.settings
        if s.table is None or s.timestamp is None:
            return
        stmt = count_statement(
            s.table,
            None,
            self.group_by,
            s.timestamp,
            window,
            self.engine.dialect.name,
            self.score,
            self.score_bins,
        )
        try:
            with self.engine.connect() as conn:
                hint = missing_index_hint(conn, stmt, s.table, s.timestamp)
        except SQLAlchemyError:
            return
        if hint:
            log.warning("%s", hint)

    def close(self) -> None:
        """Close the pooled connections."""
        self.engine.dispose()


def open_source(
    settings: SourceSettings,
    spec: GroupSpec,
    label: str | None,
    score: str | None = None,
    score_bins: int = 100,
) -> DecisionSource | None:
    """Return the configured source, or None for the simulator.

    Args:
        settings: the validated ``source`` section.
        spec: the groups to form (the protected attribute columns).
        label: the ground-truth column, if any.
        score: the model score column (in [0, 1]), if any; counted in bins.
        score_bins: how many equal-width score bins.

    Raises:
        DataError: the source cannot be opened (e.g. the SQL driver is not installed).
    """
    if settings.kind == "simulator":
        return None
    if settings.kind == "file":
        return FileSource(settings, spec, label, score, score_bins)
    try:
        return SqlSource(settings, spec, label, score, score_bins)
    except ImportError as exc:
        raise DataError(
            f"source.url: the database driver is not installed ({exc}); install "
            f"it into the monitor's environment (pip install {exc.name or '…'}) "
            "or use a URL whose driver is there (postgresql+psycopg, sqlite)"
        ) from None
