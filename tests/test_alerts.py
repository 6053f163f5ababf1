"""The alert workflow on both back ends: list, acknowledge, resolve with a note, audited."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from fairlens_monitor.cli.main import cli
from fairlens_monitor.monitoring.episodes import manual_transition
from tests.conftest import merge, query_url


@dataclass
class Monitor:
    """The CLI on one config (drift 1.0: every reading adverse) and its database URL."""

    config: Path
    url: str

    def __call__(self, *args: str) -> Result:
        return CliRunner().invoke(cli, ["--config", str(self.config), *args])


@pytest.fixture
def fl(write_config: Callable[..., Path], backend_url: str) -> Monitor:
    return Monitor(
        write_config(merge({"database": {"url": backend_url}}, {"simulation": {"drift": 1.0}})),
        backend_url,
    )


def test_acknowledge_then_resolve_with_a_note(fl: Monitor) -> None:
    assert fl("once").exit_code == 0
    listed = json.loads(fl("alerts", "list", "--json").stdout)
    assert [(a["id"], a["kind"], a["state"]) for a in listed] == [(1, "dir", "open")]
    assert "token" not in listed[0]

    acked = fl("alerts", "ack", "1", "--by", "alice")
    assert acked.exit_code == 0, acked.output
    assert "alert #1 (dir) acknowledged by alice" in acked.stdout
    assert fl("once").exit_code == 0  # still adverse: the same episode, still acknowledged
    assert query_url(fl.url, "SELECT id, state FROM alerts") == [(1, "acknowledged")]

    no_note = fl("alerts", "resolve", "1", "--by", "alice")
    assert no_note.exit_code == 2
    assert "--note" in no_note.output
    blank = fl("alerts", "resolve", "1", "--by", "alice", "--note", "  ")
    assert blank.exit_code == 2
    assert "needs a note" in blank.output
    done = fl("alerts", "resolve", "1", "--by", "alice", "--note", "model retrained, see CR-12")
    assert done.exit_code == 0, done.output
    again = fl("alerts", "resolve", "1", "--by", "bob", "--note", "again")
    assert again.exit_code == 2
    assert "an alert that is resolved cannot be resolved" in again.output
    missing = fl("alerts", "ack", "99", "--by", "bob")
    assert missing.exit_code == 2
    assert "no alert with id 99" in missing.output

    events = json.loads(fl("audit", "--last", "10", "--json").stdout)
    people = [
        (e["event_type"], e["details"].get("by"), e["details"].get("note"))
        for e in events
        if e["event_type"] in ("alert_acknowledged", "alert_resolved")
    ]
    assert people == [
        ("alert_acknowledged", "alice", ""),
        ("alert_resolved", "alice", "model retrained, see CR-12"),
    ]
    assert fl("once").exit_code == 0  # adverse again after a manual resolve: a new episode
    states = json.loads(fl("alerts", "list", "--state", "all", "--json").stdout)
    assert [(a["id"], a["state"]) for a in states] == [(2, "open"), (1, "resolved")]
    assert fl("verify").exit_code == 0


def test_only_allowed_transitions() -> None:
    manual_transition("open", "acknowledged", None)
    manual_transition("acknowledged", "resolved", "fixed")
    with pytest.raises(ValueError, match="cannot be acknowledged"):
        manual_transition("resolved", "acknowledged", None)
    with pytest.raises(ValueError, match="cannot be acknowledged"):
        manual_transition("acknowledged", "acknowledged", None)


def test_a_persons_transition_is_signed_in_its_own_transaction(fl: Monitor) -> None:
    # issue 14, item 3: an alert transition never commits without the checkpoint that
    # protects it — deleting it afterwards is a truncated signed head, not silence
    assert fl("once").exit_code == 0
    for args in (
        ("ack", "1", "--by", "alice"),
        ("resolve", "1", "--by", "alice", "--note", "retrained"),
    ):
        done = fl("alerts", *args)
        assert done.exit_code == 0, done.output
        head = query_url(fl.url, "SELECT max(seq) FROM audit_events")[0][0]
        kind = query_url(fl.url, f"SELECT event_type FROM audit_events WHERE seq = {head}")
        assert kind[0][0] in ("alert_acknowledged", "alert_resolved")
        assert query_url(fl.url, f"SELECT count(*) FROM checkpoints WHERE seq = {head}") == [(1,)]
    anchor = fl.config.parent / "var" / "anchor.jsonl"
    assert f'"seq":{head},' in anchor.read_text().replace(" ", "")
    assert fl("verify").exit_code == 0
