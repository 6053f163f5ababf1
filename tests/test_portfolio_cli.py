"""Many monitors through the command line: config, `once`, filters, pause/resume, retirement,
per-monitor config changes, and one chain that verifies across them (issue 18)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from fairlens_monitor.cli.main import cli
from tests.conftest import BASE_CONFIG, merge, query_url

REPO = Path(__file__).resolve().parents[1]
# Two monitors on the simulator: `gender` as the defaults are, `ages` by age band.
AGES = {
    "measurement": {
        "protected_attributes": ["age"],
        "bands": {"age": [25, 40]},
        "reference": "highest",
        "privileged_value": None,
        "unprivileged_value": None,
    }
}
TWO = {"monitors": {"gender": {}, "ages": AGES}}
SHAPE = {"fair_scenario", "drifted_scenario", "audit_tail", "verdict", "cycle_index", "alerts"}


class Service:
    """A config file in tmp_path (BASE_CONFIG plus the given sections) and the CLI on it."""

    def __init__(self, tmp_path: Path, url: str, document: dict[str, Any]) -> None:
        self.tmp_path = tmp_path
        self.url = url
        self.config = tmp_path / "config.yaml"
        self.write(document)

    def write(self, document: dict[str, Any]) -> None:
        full = merge(merge(BASE_CONFIG, {"database": {"url": self.url}}), document)
        if "monitors" in document:
            full["monitors"] = document["monitors"]  # replaced, never merged with the last
        self.config.write_text(yaml.safe_dump(full, sort_keys=False))

    def __call__(self, *args: str) -> Result:
        return CliRunner().invoke(cli, ["--config", str(self.config), *args])

    def json(self, *args: str) -> Any:
        result = self(*args, "--json")
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    def events(self, monitor: str | None = None) -> list[dict[str, Any]]:
        extra = [] if monitor is None else ["--monitor", monitor]
        found: list[dict[str, Any]] = self.json("audit", "--last", "1000", *extra)
        return found


@pytest.fixture
def service(tmp_path: Path, backend_url: str) -> Service:
    return Service(tmp_path, backend_url, TWO)


@pytest.fixture
def sqlite_service(tmp_path: Path) -> Service:
    return Service(tmp_path, f"sqlite:///{tmp_path / 'var' / 'fairlens.db'}", TWO)


def test_once_runs_every_monitor_and_json_has_one_document_per_monitor(
    service: Service,
) -> None:
    doc = service.json("once")
    assert set(doc) == {"monitors"}
    assert list(doc["monitors"]) == ["gender", "ages"]  # the config's order
    for name, cycle in doc["monitors"].items():
        assert set(cycle) >= SHAPE, name
        assert cycle["cycle_index"] == 0  # the cycle index is per monitor
    gender = doc["monitors"]["gender"]["drifted_scenario"]["statistics"]
    ages = doc["monitors"]["ages"]["drifted_scenario"]["statistics"]
    assert gender != ages  # each measured by its own attribute
    assert "Female" in json.dumps(gender)
    assert "Female" not in json.dumps(ages)
    assert "<25" in json.dumps(ages)

    # the second run: each monitor's own next index
    again = service.json("once")
    assert [c["cycle_index"] for c in again["monitors"].values()] == [1, 1]

    # one --monitor keeps today's document
    one = service.json("once", "--monitor", "ages")
    assert set(one) >= SHAPE
    assert "monitors" not in one
    assert one["cycle_index"] == 2
    history = service.json("history", "--monitor", "ages", "--last", "100")
    assert len(history) == 6
    assert {r["monitor"] for r in history} == {"ages"}
    everything = service.json("history", "--last", "100")
    assert {r["monitor"] for r in everything} == {"gender", "ages"}
    assert len(everything) == 10

    assert service("verify").exit_code == 0  # one chain across both monitors


def test_a_single_monitor_config_is_monitor_default_with_todays_json(tmp_path: Path) -> None:
    service = Service(tmp_path, f"sqlite:///{tmp_path / 'var' / 'fairlens.db'}", {})
    doc = service.json("once")
    assert set(doc) >= SHAPE
    assert "monitors" not in doc
    [added] = [e for e in service.events() if e["event_type"] == "monitor_added"]
    assert added["details"]["monitor"] == "default"
    listed = service.json("monitors", "list")
    assert [(m["name"], m["state"]) for m in listed] == [("default", "active")]
    assert service.json("once", "--monitor", "default")["cycle_index"] == 1


def test_defaults_and_overrides_reach_each_monitor_through_the_cli(sqlite_service: Service) -> None:
    sqlite_service.write(
        {
            "thresholds": {"dir": 0.8, "gap": 0.2},
            "monitors": {"gender": {}, "ages": {**AGES, "thresholds": {"dir": 0.9}}},
        }
    )
    assert sqlite_service("once").exit_code == 0
    snapshots = {
        e["details"]["monitor"]: e["details"]["settings"]
        for e in sqlite_service.events()
        if e["event_type"] == "monitor_added"
    }
    assert snapshots["gender"]["thresholds"]["dir"] == 0.8
    assert snapshots["ages"]["thresholds"]["dir"] == 0.9  # the monitor's own key
    assert snapshots["ages"]["thresholds"]["gap"] == 0.2  # merged from the defaults
    assert snapshots["ages"]["measurement"]["protected_attributes"] == ["age"]  # replaced
    assert snapshots["gender"]["measurement"]["protected_attributes"] == ["gender"]


@pytest.mark.parametrize(
    ("monitors", "named"),
    [
        ({"auto_loans": {"thresholds": {"dir": -1}}}, "monitors.auto_loans.thresholds.dir"),
        ({"auto_loans": {"database": {"url": "sqlite:///x.db"}}}, "monitors.auto_loans"),
        ({"Auto-Loans": {}}, "monitors.Auto-Loans"),
        ({"auto_loans": {"measurement": {"protected_attributes": ["age"]}}}, "auto_loans"),
    ],
)
@pytest.mark.parametrize("command", [["once"], ["history"], ["monitors", "list"]])
def test_config_errors_name_the_monitor_and_write_nothing(
    tmp_path: Path, monitors: dict[str, Any], named: str, command: list[str]
) -> None:
    service = Service(tmp_path, "sqlite:///var/fairlens.db", {"monitors": monitors})
    result = service(*command)
    assert result.exit_code == 2, result.output
    assert named in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "var").exists()


def test_an_unknown_monitor_exits_2_naming_it_before_anything_is_written(
    sqlite_service: Service, tmp_path: Path
) -> None:
    result = sqlite_service("once", "--monitor", "gender", "--monitor", "nope")
    assert result.exit_code == 2
    assert "'nope' is not a monitor of this config" in result.output
    assert "gender, ages" in result.output
    assert not (tmp_path / "var").exists()
    assert sqlite_service("once").exit_code == 0
    for command in (
        ["history", "--monitor", "nope"],
        ["audit", "--monitor", "nope"],
        ["alerts", "list", "--monitor", "nope"],
        ["monitors", "pause", "nope", "--by", "ops"],
    ):
        result = sqlite_service(*command)
        assert result.exit_code == 2, command
        assert "'nope' is not a monitor" in result.output
    hostile = sqlite_service("history", "--monitor", "x'; DROP TABLE runs; --")
    assert hostile.exit_code == 2
    assert "DROP" not in hostile.output


def test_pause_and_resume_are_audited_and_respected_by_once(service: Service) -> None:
    assert service("once").exit_code == 0
    paused = service("monitors", "pause", "ages", "--by", "j.doe", "--note", "source migration")
    assert paused.exit_code == 0, paused.output
    assert "source migration" not in paused.output  # the note stays in the audit event
    listed = {m["name"]: m for m in service.json("monitors", "list")}
    assert listed["ages"]["state"] == "paused"
    assert listed["ages"]["paused_by"] == "j.doe"
    assert listed["gender"]["state"] == "active"

    ran = service("once", "--json")
    assert ran.exit_code == 0
    assert list(json.loads(ran.stdout)["monitors"]) == ["gender"]  # ages skipped
    assert "monitor ages is paused" in ran.stderr
    refused = service("once", "--monitor", "ages")
    assert refused.exit_code == 2
    assert "is paused" in refused.stderr
    again = service("monitors", "pause", "ages", "--by", "j.doe")
    assert again.exit_code == 0
    assert "already paused; nothing recorded" in again.output

    assert service("monitors", "resume", "ages", "--by", "k.roe").exit_code == 0
    assert list(service.json("once")["monitors"]) == ["gender", "ages"]
    kinds = [(e["event_type"], e["details"]) for e in service.events("ages")]
    changes = [
        (k, {n: v for n, v in d.items() if n not in ("row_digests", "rows")})
        for k, d in kinds
        if k in ("monitor_paused", "monitor_resumed")
    ]
    assert changes == [
        ("monitor_paused", {"monitor": "ages", "by": "j.doe", "note": "source migration"}),
        ("monitor_resumed", {"monitor": "ages", "by": "k.roe", "note": None}),
    ]
    # each event carries the row it wrote (bound to the chain by its digest)
    states = [
        [(r["name"], r["paused"], r["paused_by"]) for r in d["rows"]]
        for k, d in kinds
        if k in ("monitor_paused", "monitor_resumed")
    ]
    assert states == [[("ages", True, "j.doe")], [("ages", False, None)]]
    # ages ran in the first and the last `once` only: its cycle index says so
    assert [
        e["details"].get("cycle_index")
        for e in service.events("ages")
        if e["event_type"] == "cycle_completed"
    ] == [0, 1]
    assert service("verify").exit_code == 0
    rows = query_url(service.url, "SELECT name, paused, paused_by FROM monitors ORDER BY name")
    assert [(r[0], bool(r[1]), r[2]) for r in rows] == [
        ("ages", False, None),
        ("gender", False, None),
    ]


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--by", "ops", "--note", "line one\nline two"], "control or invisible"),
        (["--by", "ops", "--note", "ok\x1b[31m"], "control or invisible"),
        (["--by", "ops", "--note", "right\u202eto left"], "control or invisible"),
        (["--by", "ops", "--note", "x" * 501], "at most 500 characters"),
        (["--by", "  "], "not blank"),
        (["--by", "o" * 65], "at most 64 characters"),
        (["--by", "ops\t"], "control or invisible"),
        (["--by", "ops", "--note", "call 555-123-4567"], "personal data"),
    ],
)
def test_bad_by_or_note_is_refused_and_nothing_is_recorded(
    sqlite_service: Service, args: list[str], problem: str
) -> None:
    assert sqlite_service("once").exit_code == 0
    before = len(sqlite_service.events())
    result = sqlite_service("monitors", "pause", "ages", *args)
    assert result.exit_code == 2
    assert problem in result.output
    assert "line two" not in result.output
    assert "555-123" not in result.output
    assert len(sqlite_service.events()) == before
    assert {m["state"] for m in sqlite_service.json("monitors", "list")} == {"active"}


def test_a_removed_monitor_is_retired_with_its_history_kept(service: Service) -> None:
    assert service("once").exit_code == 0
    service.write({"monitors": {"gender": {}}})
    doc = service.json("once")
    assert set(doc) >= SHAPE  # one monitor now: today's document
    [retired] = [e for e in service.events() if e["event_type"] == "monitor_retired"]
    assert retired["details"]["monitor"] == "ages"
    listed = {m["name"]: m for m in service.json("monitors", "list")}
    assert listed["ages"]["state"] == "retired"
    assert listed["ages"]["in_config"] is False
    assert listed["ages"]["last_reading_at"] is not None  # its history stays
    assert len(service.json("history", "--monitor", "ages")) == 2
    assert service("once", "--monitor", "ages").exit_code == 2  # not in the config
    assert service("once").exit_code == 0
    assert [e["event_type"] for e in service.events() if e["event_type"] == "monitor_retired"] == [
        "monitor_retired"
    ]  # retired once, not at every start

    service.write(TWO)  # it returns
    again = service.json("once")
    assert again["monitors"]["ages"]["cycle_index"] == 1  # its history continues
    added = [e["details"] for e in service.events("ages") if e["event_type"] == "monitor_added"]
    assert [a.get("returned", False) for a in added] == [False, True]
    assert service("verify").exit_code == 0


def test_a_changed_monitor_is_one_event_naming_it_and_each_changed_key(service: Service) -> None:
    assert service("once").exit_code == 0
    service.write(
        {"monitors": {"gender": {}, "ages": {**AGES, "thresholds": {"dir": 0.9, "alpha": 0.01}}}}
    )
    assert service("once").exit_code == 0
    changed = [e["details"] for e in service.events() if e["event_type"] == "monitor_changed"]
    assert [c["monitor"] for c in changed] == ["ages"]  # gender's rules did not change
    assert changed[0]["changes"] == [
        {"key": "thresholds.alpha", "old": 0.05, "new": 0.01},
        {"key": "thresholds.dir", "old": 0.8, "new": 0.9},
    ]
    assert changed[0]["old_config_hash"] != changed[0]["new_config_hash"]
    hashes = dict(query_url(service.url, "SELECT name, config_hash FROM monitors"))
    assert hashes["ages"] == changed[0]["new_config_hash"]  # the row changed with its event
    assert service("once").exit_code == 0  # same rules again: nothing more
    assert len([e for e in service.events() if e["event_type"] == "monitor_changed"]) == 1
    assert not [e for e in service.events() if e["event_type"] == "config_changed"]
    assert service("verify").exit_code == 0


def test_audit_and_alerts_filter_by_monitor(sqlite_service: Service) -> None:
    sqlite_service.write({"simulation": {"drift": 1.0}, "monitors": {"gender": {}, "ages": AGES}})
    assert sqlite_service("once").exit_code == 0
    gender = sqlite_service.events("gender")
    assert gender
    assert all(e["details"]["monitor"] == "gender" for e in gender)
    assert "alert_raised" in {e["event_type"] for e in gender}
    assert len(sqlite_service.json("audit", "--monitor", "gender", "--last", "1")) == 1
    alerts = sqlite_service.json("alerts", "list", "--monitor", "gender")
    assert alerts
    assert {a["monitor"] for a in alerts} == {"gender"}
    assert sqlite_service.json("alerts", "list", "--monitor", "ages") == []  # ages: no drift
    assert sqlite_service("once", "--fail-on-alert").exit_code == 1  # gender is adverse
    assert sqlite_service("once", "--fail-on-alert", "--monitor", "ages").exit_code == 0


def test_one_monitors_failing_source_does_not_stop_the_others(
    sqlite_service: Service, tmp_path: Path
) -> None:
    missing = {
        "source": {
            "kind": "file",
            "path": str(tmp_path / "nowhere" / "*.csv"),
            "outcome": "approved",
        },
        "measurement": {
            "protected_attributes": ["sex"],
            "privileged_value": "male",
            "unprivileged_value": "female",
            "label": None,
        },
    }
    sqlite_service.write({"monitors": {"gender": {}, "broken": missing, "ages": AGES}})
    result = sqlite_service("once", "--json")
    assert result.exit_code == 2
    doc = json.loads(result.stdout)["monitors"]
    assert list(doc) == ["gender", "ages", "broken"]
    assert "error" in doc["broken"]
    assert "nowhere" in doc["broken"]["error"]
    assert set(doc["gender"]) >= SHAPE
    assert set(doc["ages"]) >= SHAPE
    assert "error: monitor broken:" in result.stderr
    failed = [e for e in sqlite_service.events("broken") if e["event_type"] == "cycle_failed"]
    assert len(failed) == 1
    assert sqlite_service("verify").exit_code == 0


def test_the_german_credit_portfolio_example_runs(tmp_path: Path) -> None:
    """examples/german_credit/portfolio.yaml as its header runs it, in a copy."""
    example = tmp_path / "german_credit"
    shutil.copytree(
        REPO / "examples" / "german_credit",
        example,
        ignore=shutil.ignore_patterns("var", "decisions", "lender.db"),
    )
    script = REPO / "scripts" / "german_credit_log.py"
    for args in (
        ["--folder", str(example / "decisions")],
        ["--sqlite", str(example / "lender.db")],
    ):
        subprocess.run([sys.executable, str(script), *args], check=True, capture_output=True)
    config = str(example / "portfolio.yaml")
    runner = CliRunner()
    result = runner.invoke(cli, ["--config", config, "once", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)["monitors"]
    assert list(doc) == ["exports_sex", "exports_age", "table_sex"]
    assert doc["exports_sex"]["source"]["kind"] == "file"
    assert doc["table_sex"]["source"]["kind"] == "sql"
    for name, cycle in doc.items():
        assert cycle["verdict"] in ("ok", "adverse", "inconclusive"), name
    assert (
        doc["exports_age"]["drifted_scenario"]["statistics"]
        != doc["exports_sex"]["drifted_scenario"]["statistics"]
    )
    listed = json.loads(
        runner.invoke(cli, ["--config", config, "monitors", "list", "--json"]).stdout
    )
    assert [(m["name"], m["state"]) for m in listed] == [
        ("exports_age", "active"),
        ("exports_sex", "active"),
        ("table_sex", "active"),
    ]
    assert all(m["last_reading_at"] for m in listed)
    assert runner.invoke(cli, ["--config", config, "verify"]).exit_code == 0


def _auditors_query(containing: str) -> str:
    """The docs/AUDITORS.md query block that contains ``containing`` (run as written)."""
    import re

    text = (REPO / "docs" / "AUDITORS.md").read_text()
    blocks: list[str] = re.findall(r"```sql\n(.*?)```", text, re.DOTALL)
    [block] = [b for b in blocks if containing in b]
    return block


def test_the_auditors_inventory_queries_show_the_portfolio(sqlite_service: Service) -> None:
    import sqlite3

    assert sqlite_service("once").exit_code == 0
    assert (
        sqlite_service("monitors", "pause", "ages", "--by", "ops", "--note", "T-1").exit_code == 0
    )
    sqlite_service.write({"monitors": {"gender": {}}})
    assert sqlite_service("once").exit_code == 0
    path = sqlite_service.url.removeprefix("sqlite:///")
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        inventory = conn.execute(_auditors_query("last_ok_run_at, stale")).fetchall()
        people = conn.execute(_auditors_query("'monitor_resumed', 'monitor_retired'")).fetchall()
        daily = conn.execute(_auditors_query("sum(verdict = 'adverse')")).fetchall()
    assert [(r[0], r[1], r[3], r[7]) for r in inventory] == [
        ("ages", "retired", "ok", 0),  # paused, then left the config: retired, never stale
        ("gender", "active", "ok", 0),
    ]
    assert [(r[2], r[3], r[5], r[6]) for r in people] == [
        ("monitor_added", "gender", None, None),
        ("monitor_added", "ages", None, None),
        ("monitor_paused", "ages", "ops", "T-1"),
        ("monitor_retired", "ages", None, None),
    ]
    assert {(r[0], r[2]) for r in daily} == {("ages", 1), ("gender", 2)}


def test_simultaneous_starts_record_each_addition_once(sqlite_service: Service) -> None:
    """Three `once` processes at the same time on a fresh database: each monitor is added by
    one of them (the others find its row inside their own write transaction)."""
    assert sqlite_service("db", "upgrade").exit_code == 0
    command = [sys.executable, "-m", "fairlens_monitor", "--config", str(sqlite_service.config)]
    procs = [
        subprocess.Popen([*command, "once"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(3)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    events = sqlite_service.events()
    added = sorted(e["details"]["monitor"] for e in events if e["event_type"] == "monitor_added")
    assert added == ["ages", "gender"]
    completed = [e for e in events if e["event_type"] == "cycle_completed"]
    assert len(completed) == 6
    assert sqlite_service("verify").exit_code == 0


def test_a_change_read_before_another_process_wrote_it_is_not_recorded_twice(
    sqlite_service: Service,
) -> None:
    from datetime import UTC, datetime

    from fairlens_monitor.config.monitors import load_portfolio
    from fairlens_monitor.ops.app import open_repository
    from fairlens_monitor.ops.governance import sync_portfolio
    from fairlens_monitor.store.monitors import row_for

    assert sqlite_service("db", "upgrade").exit_code == 0
    portfolio = load_portfolio(sqlite_service.config, env={})
    repo = open_repository(portfolio["gender"])
    try:
        seen = repo.monitor_rows()  # what a slower process read: no rows yet
        assert len(sync_portfolio(portfolio, repo, actor="cli", ts="2026-01-01T00:00:00Z")) == 2
        late = repo.put_monitors_if(
            [row_for("gender", portfolio["gender"], datetime(2026, 1, 1, tzinfo=UTC))],
            expect=[next((r for r in seen if r.name == "gender"), None)],
            event_type="monitor_added",
            payload={},
            actor="cli",
            ts="2026-01-01T00:00:01Z",
        )
        assert late is None
        assert sync_portfolio(portfolio, repo, actor="cli", ts="2026-01-01T00:00:02Z") == []
    finally:
        repo.engine.dispose()


def test_a_single_monitor_database_grows_into_a_portfolio(tmp_path: Path) -> None:
    """Today's config (monitor `default`), then the same rules named `default` under
    `monitors:` beside a new monitor: default's history continues, nothing is retired."""
    service = Service(tmp_path, f"sqlite:///{tmp_path / 'var' / 'fairlens.db'}", {})
    for _ in range(2):
        assert service("once").exit_code == 0
    service.write({"monitors": {"default": {}, "ages": AGES}})
    doc = service.json("once")["monitors"]
    assert (doc["default"]["cycle_index"], doc["ages"]["cycle_index"]) == (2, 0)
    kinds = [(e["event_type"], e["details"].get("monitor")) for e in service.events()]
    assert [k for k in kinds if k[0].startswith("monitor_")] == [
        ("monitor_added", "default"),
        ("monitor_added", "ages"),
    ]  # the same rules under monitors: are no change
    assert service("verify").exit_code == 0


def test_an_unknown_monitor_error_also_lists_the_retired_ones(sqlite_service: Service) -> None:
    """`history --monitor` takes a retired monitor too, so its error lists those as well
    (it said 'not a monitor of this config (monitors: gender)', hiding that 'ages' works)."""
    assert sqlite_service("once").exit_code == 0
    sqlite_service.write({"monitors": {"gender": {}}})
    assert sqlite_service("once").exit_code == 0
    for command in (["history"], ["alerts", "list"], ["audit"]):
        result = sqlite_service(*command, "--monitor", "nope")
        assert result.exit_code == 2
        assert "retired in the database: ages" in result.output, result.output
        assert sqlite_service(*command, "--monitor", "ages").exit_code == 0
