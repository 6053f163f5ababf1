"""Retention: expired rows go, the chain is pruned only up to a signed checkpoint, verify holds."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import text

from fairlens_monitor.audit.chain import rfc3339
from fairlens_monitor.cli.main import cli
from fairlens_monitor.config.settings import load_settings
from fairlens_monitor.ops.app import open_cipher, open_repository, open_signing_key
from fairlens_monitor.ops.audit_trail import write_checkpoint
from fairlens_monitor.ops.cycle import run_cycle
from fairlens_monitor.ops.retention import apply_retention
from tests.conftest import merge, query_url, tamper

NOW = datetime.now(UTC)
LONG_AGO = NOW - timedelta(days=800)


def ticking(start: datetime) -> Callable[[], datetime]:
    moments = iter(start + timedelta(seconds=i) for i in range(10_000))
    return lambda: next(moments)


@pytest.fixture
def history(write_config: Callable[..., Path], backend_url: str) -> tuple[Path, str]:
    """Four cycles 800 days ago (with a checkpoint), then two today (with a checkpoint)."""
    config = write_config(
        merge(
            {"database": {"url": backend_url}},
            {"simulation": {"drift": 1.0}, "alerts": {"close_after": 1}},
        )
    )
    settings = load_settings(config, env={})
    repo = open_repository(settings)
    cipher, signer = open_cipher(settings, repo), open_signing_key(settings, repo)
    old = ticking(LONG_AGO)
    for _ in range(4):
        run_cycle(settings, repo, cipher, clock=old, actor="cli")
    write_checkpoint(repo, signer, anchor_file=settings.audit.anchor_file, ts=rfc3339(old()))
    with repo.engine.begin() as conn:  # the old episode was resolved long ago
        conn.execute(text("UPDATE alerts SET state = 'resolved'"))
    new = ticking(NOW - timedelta(minutes=5))
    for _ in range(2):
        run_cycle(settings, repo, cipher, clock=new, actor="cli")
    write_checkpoint(repo, signer, anchor_file=settings.audit.anchor_file, ts=rfc3339(new()))
    repo.engine.dispose()
    return config, backend_url


def fl(config: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config), *args])


def test_dry_run_counts_and_deletes_nothing(history: tuple[Path, str]) -> None:
    config, url = history
    before = query_url(url, "SELECT count(*) FROM readings")
    result = fl(config, "retention", "apply", "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    done = json.loads(result.stdout)
    assert (done["readings"], done["group_results"], done["runs"], done["alerts"]) == (8, 16, 4, 1)
    assert done["dry_run"] is True
    assert query_url(url, "SELECT count(*) FROM readings") == before


def test_apply_deletes_expired_rows_and_prunes_up_to_a_signed_checkpoint(
    history: tuple[Path, str],
) -> None:
    config, url = history
    first_events = query_url(url, "SELECT count(*) FROM audit_events")[0][0]
    result = fl(config, "retention", "apply")
    assert result.exit_code == 0, result.output
    assert (
        "deleted: 8 readings, 16 group rows, 0 file records, 1 resolved alerts, 4 runs"
        in result.stdout
    )
    # the monitor's first run listing it, 4 cycles, 1 alert
    assert "pruned up to signed checkpoint seq 6" in result.stdout
    assert query_url(url, "SELECT count(*) FROM readings") == [(4,)]
    assert query_url(url, "SELECT min(seq) FROM audit_events") == [(7,)]
    remaining = query_url(url, "SELECT count(*) FROM audit_events")[0][0]
    assert remaining == first_events - 6 + 2  # plus retention_applied and chain_pruned
    verified = fl(config, "verify")
    assert verified.exit_code == 0, verified.output
    # The rows whose events were pruned stay on the record (chain_pruned carries their
    # digests): an edit to the oldest surviving row is still found, and so is a deletion.
    oldest, dir_before = query_url(url, "SELECT id, dir FROM alerts ORDER BY id LIMIT 1")[0]
    tamper(url, f"UPDATE alerts SET dir = 0.95 WHERE id = {oldest}")
    edited = json.loads(fl(config, "verify", "--json").stdout)["anomalies"]
    assert [(a["kind"], a["table"], a["id"]) for a in edited] == [
        ("row_modified", "alerts", oldest)
    ]
    tamper(url, f"UPDATE alerts SET dir = {dir_before!r} WHERE id = {oldest}")
    assert fl(config, "once").exit_code == 0
    assert fl(config, "verify").exit_code == 0

    # Tampering in what remains is still caught.
    tamper(url, "UPDATE audit_events SET actor = 'mallory' WHERE seq = 7")
    tampered = fl(config, "verify")
    assert tampered.exit_code == 1
    assert "first broken seq 7 (modified" in tampered.stdout


def test_deleting_old_events_without_a_signed_statement_is_a_gap(history: tuple[Path, str]) -> None:
    config, url = history
    tamper(url, "DELETE FROM audit_events WHERE seq <= 5")
    result = fl(config, "verify")
    assert result.exit_code == 1
    assert "first broken seq 1 (gap" in result.stdout


def test_nothing_newer_than_the_policy_is_touched(history: tuple[Path, str]) -> None:
    config, _ = history
    settings = load_settings(config, env={})
    repo = open_repository(settings)
    done = apply_retention(
        settings.retention,
        repo,
        open_signing_key(settings, repo),
        now=LONG_AGO + timedelta(days=30),
    )
    repo.engine.dispose()
    assert (done["readings"], done["runs"], done["audit_events"], done["pruned_to"]) == (
        0,
        0,
        0,
        None,
    )


def test_the_audit_period_cannot_go_under_six_months(write_config: Callable[..., Path]) -> None:
    from fairlens_monitor.errors import ConfigError

    with pytest.raises(ConfigError, match=r"retention.audit_days.*>= 183"):
        load_settings(write_config({"retention": {"audit_days": 30}}), env={})


def test_a_cycle_after_retention_does_not_reuse_a_cycle_index(history: tuple[Path, str]) -> None:
    """The next index follows the newest completed cycle, not the number of runs left: once
    retention deleted old runs, a count handed out an index (and its simulated seed) again."""
    config, url = history
    settings = load_settings(config, env={})
    repo = open_repository(settings)
    done = apply_retention(settings.retention, repo, open_signing_key(settings, repo), now=NOW)
    assert done["runs"] >= 1
    outcome = run_cycle(
        settings,
        repo,
        open_cipher(settings, repo),
        clock=ticking(NOW - timedelta(minutes=1)),
        actor="cli",
    )
    repo.engine.dispose()
    assert outcome.cycle_index == 6
    indexes = [row[0] for row in query_url(url, "SELECT cycle_index FROM runs")]
    assert len(indexes) == len(set(indexes))
