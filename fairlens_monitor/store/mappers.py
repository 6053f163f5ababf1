"""Domain → row mapping: what a measured cycle becomes in the database (pure).

simulate/read → measure → detect → alert → **log**. ``ops.cycle`` measures (a
``ScenarioResult`` per scenario, a ``Batch`` of decisions read) and hands the results to
these functions, which build the ORM rows (``Reading``, ``GroupResult``, ``SourceFile``,
``Alert``) and the per-reading summary the ``cycle_completed`` audit event carries. No
clock, no database, no key: the caller passes the time, the config hash and the alert
token, and commits the rows (``store.repository``).

The reading's headline columns are named as the measurement is: the headline *group*
(``group_label``, ``group_applicants``, ``group_approved``, ``group_rate``) against the
*reference* group (``reference_*``), as ``group_results`` names a group's ``applicants``,
``approved`` and ``rate``. Revision 0012 renamed them from the original two-group API's
``unprivileged_*``/``privileged_*``; the auditor views still show the old names too.

Imports: ``store.models``, ``monitoring.measure`` (the result types), ``fairness.stats``
(the risk level), ``config.settings`` and ``sources`` (types only).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from fairlens_monitor import __version__
from fairlens_monitor.fairness.stats import risk_level
from fairlens_monitor.monitoring.measure import ScenarioResult, headline_comparison
from fairlens_monitor.store.models import Alert, GroupResult, Reading, SourceFile

if TYPE_CHECKING:
    from fairlens_monitor.config.settings import Settings
    from fairlens_monitor.sources.base import Batch

NO_DATA = "no_data"
MAX_REASON_CHARS = 2000  # a verdict reason is cut here, as a failed run's error is


def reading_row(r: ScenarioResult, settings: Settings, at: datetime, config_hash: str) -> Reading:
    """The ``readings`` row of one measured scenario.

    Args:
        r: the measured scenario (its assessment, metrics, outcome metrics and drift).
        settings: the thresholds and measurement settings it was judged under.
        at: when it was measured (the cycle's finish time).
        config_hash: the hash of the rules in force.

    Returns:
        An unsaved ``Reading`` (no ``id``/``run_id`` yet).

    Raises:
        DataError: the assessment has no compared headline group.
    """
    m, (h, c), ref = r.metrics, headline_comparison(r.assessment), r.assessment.reference
    t, o = settings.thresholds, r.outcome
    return Reading(
        scenario=r.scenario,
        measured_at=at,
        source=settings.source.kind,
        drift_level=r.drift_level,
        n_samples=r.n_samples,
        seed=r.seed,
        protected_attribute=settings.group_spec().attribute_name,
        group_label=str(h.label),
        reference_label=str(ref.label),
        group_applicants=h.applicants,
        group_approved=h.approved,
        reference_applicants=ref.applicants,
        reference_approved=ref.approved,
        group_rate=h.rate,
        reference_rate=ref.rate,
        dir=m["dir"],
        dir_reason=m["reason"],
        gap=m["gap"],
        dir_threshold=t.dir,
        gap_threshold=t.gap,
        dir_alert=m["dir_alert"],
        gap_alert=m["gap_alert"],
        config_hash=config_hash,
        code_version=__version__,
        verdict=r.verdict,
        verdict_reason=r.assessment.reason[:MAX_REASON_CHARS],
        p_value=c.p_value,
        p_adjusted=h.p_adjusted,
        test=c.test,
        dir_ci_low=c.ci_low,
        dir_ci_high=c.ci_high,
        shortfall=c.shortfall,
        alpha=t.alpha,
        confidence=settings.measurement.confidence,
        min_group_size=t.min_group_size,
        min_group_share=t.min_group_share,
        reference_mode=settings.measurement.reference,
        groups_compared=sum(g.role == "compared" for g in r.assessment.groups),
        groups_excluded=len(r.assessment.excluded),
        label_column=settings.measurement.label,
        dp_difference=o and o.demographic_parity_difference,
        dp_ratio=o and o.demographic_parity_ratio,
        eop_difference=o and o.equal_opportunity_difference,
        eodds_difference=o and o.equalized_odds_difference,
        eodds_ratio=o and o.equalized_odds_ratio,
        drift_statistic=r.drift_statistic,
        drift_alert=r.drift_alert if r.scenario == "monitored" else None,
        risk_level=risk_level(r.verdict, c.ci_low, r.drift_alert, threshold=t.dir),
    )


def no_data_reading(settings: Settings, at: datetime, config_hash: str) -> Reading:
    """The ``readings`` row of an empty window: counts 0, no rates, no verdict to alert on.

    Args:
        settings: the configured groups, thresholds and source.
        at: when the window was read.
        config_hash: the hash of the rules in force.

    Returns:
        An unsaved ``Reading`` with verdict ``no_data``.
    """
    spec, t = settings.group_spec(), settings.thresholds
    return Reading(
        scenario="monitored",
        measured_at=at,
        source=settings.source.kind,
        n_samples=0,
        protected_attribute=spec.attribute_name,
        group_label=spec.unprivileged_value or "",
        reference_label=spec.privileged_value or "",
        group_applicants=0,
        group_approved=0,
        reference_applicants=0,
        reference_approved=0,
        dir_reason=NO_DATA,
        dir_threshold=t.dir,
        gap_threshold=t.gap,
        dir_alert=False,
        gap_alert=False,
        config_hash=config_hash,
        code_version=__version__,
        verdict=NO_DATA,
        verdict_reason="no decisions in the window",
        alpha=t.alpha,
        confidence=settings.measurement.confidence,
        min_group_size=t.min_group_size,
        min_group_share=t.min_group_share,
        reference_mode=settings.measurement.reference,
        groups_compared=0,
        groups_excluded=0,
        label_column=settings.measurement.label,
        risk_level=None,
    )


def group_rows(r: ScenarioResult) -> list[GroupResult]:
    """The ``group_results`` rows of one measured scenario, one per group, in its order.

    Args:
        r: the measured scenario.

    Returns:
        Unsaved ``GroupResult`` rows (no ``reading_id`` yet); the comparison columns are
        NULL for the reference and excluded groups.
    """
    rows = []
    for g in r.assessment.groups:
        c = g.comparison
        rows.append(
            GroupResult(
                label=g.label,
                role=g.role,
                applicants=g.applicants,
                approved=g.approved,
                rate=g.rate,
                share=g.share,
                impact_ratio=c and c.ratio,
                ci_low=c and c.ci_low,
                ci_high=c and c.ci_high,
                p_value=c and c.p_value,
                p_adjusted=g.p_adjusted,
                test=c and c.test,
                shortfall=c and c.shortfall,
                verdict=g.verdict,
            )
        )
    return rows


def set_lineage(reading: Reading, batch: Batch, extra: Mapping[str, Any] | None = None) -> None:
    """Record on an unsaved reading where its decisions came from (file or SQL source).

    Args:
        reading: the reading to fill in (changed in place before it is added).
        batch: what the source read: its kind, window and lineage.
        extra: per-group score metrics (AUC, calibration gap) kept in the lineage JSON
            under ``score_metrics``; None or empty adds nothing.
    """
    reading.source = batch.lineage["kind"]
    reading.window_start, reading.window_end = batch.window or (None, None)
    reading.lineage = batch.lineage
    if extra:
        reading.lineage = {**batch.lineage, "score_metrics": dict(extra)}


def source_file_rows(batch: Batch | None, at: datetime) -> list[SourceFile]:
    """The ``source_files`` rows of the decision files a cycle read (none for SQL or the
    simulator).

    Args:
        batch: what the source read, or None for the simulator.
        at: when they were read.

    Returns:
        Unsaved ``SourceFile`` rows (``reading_id`` is set by the repository).
    """
    if batch is None:
        return []
    return [
        SourceFile(
            measured_at=at,
            path=f.path,
            sha256=f.sha256,
            size_bytes=f.size_bytes,
            mtime_ns=f.mtime_ns,
            rows=f.rows,
            decisions=f.decisions,
        )
        for f in batch.files
    ]


def alert_row(kind: str, monitored: ScenarioResult, at: datetime, token: str, key_id: str) -> Alert:
    """A candidate ``alerts`` row (an episode the reading would open).

    Args:
        kind: ``dir`` or ``drift``.
        monitored: the monitored reading that qualifies.
        at: when it was raised.
        token: the encrypted explanation (never the plaintext).
        key_id: the public fingerprint of the key that encrypted it.

    Returns:
        An unsaved, open ``Alert``.
    """
    return Alert(
        created_at=at,
        kind=kind,
        dir=monitored.metrics["dir"],
        verdict=monitored.verdict,
        token=token,
        key_id=key_id,
        state="open",
        clean_streak=0,
    )


def reading_summary(row: Reading, groups: Sequence[GroupResult]) -> dict[str, Any]:
    """A stored reading's key figures as the ``cycle_completed`` audit event carries them.

    The keys are part of the chain's event format and stay as first written
    (``unprivileged``/``privileged`` hold the headline and reference group's
    ``[approved, applicants]``), so every ``cycle_completed`` event reads the same way.

    Args:
        row: the reading, flushed (its ``id`` is set).
        groups: its group rows.

    Returns:
        Plain JSON data.
    """
    return {
        "reading_id": row.id,
        "scenario": row.scenario,
        "seed": row.seed,
        "n_samples": row.n_samples,
        "drift_level": row.drift_level,
        "dir": row.dir,
        "gap": row.gap,
        "dir_alert": row.dir_alert,
        "gap_alert": row.gap_alert,
        "unprivileged": [row.group_approved, row.group_applicants],
        "privileged": [row.reference_approved, row.reference_applicants],
        "verdict": row.verdict,
        "p_value": row.p_value,
        "p_adjusted": row.p_adjusted,
        "ci": [row.dir_ci_low, row.dir_ci_high],
        "drift_statistic": row.drift_statistic,
        "drift_alert": row.drift_alert,
        "risk_level": row.risk_level,
        "groups": [[g.label, g.role, g.approved, g.applicants] for g in groups],
    }


class OnDemand(Mapping[str, Alert]):
    """Alert rows built on first lookup: a cycle prepares one per kind whose condition its
    reading meets, but only the kind whose episode opens is ever looked up (and its
    explanation written and encrypted, which cost more than the rest of the rows)."""

    def __init__(self, build: Mapping[str, Callable[[], Alert]]) -> None:
        """Prepare the rows; ``build`` gives, per kind, what builds its alert row."""
        self._build: dict[str, Callable[[], Alert]] = dict(build)
        self._built: dict[str, Alert] = {}

    def __getitem__(self, kind: str) -> Alert:
        if kind not in self._built:
            self._built[kind] = self._build[kind]()
        return self._built[kind]

    def __iter__(self) -> Iterator[str]:
        return iter(self._build)

    def __len__(self) -> int:
        return len(self._build)
