"""The examiner's pack (issue 19 item 10): ``report --monitor NAME --from --to --out DIR``.

End to end from a real SQLite database written by real cycles (``ops.sequence.run_once``)
of two monitors on one chain, with a person's acknowledgement and resolution of an alert:
the files are there, their SHA-256 equal MANIFEST.json's, the signature verifies with the
real ``openssl`` (and fails on a changed manifest), the PDF renders to PNG pages, only the
chosen monitor's rows of ``[--from, --to)`` are in it, a refused DIR / bad date / tampered
chain exit 2 / 2 / 1 with nothing written, and a read-only database in a read-only folder
(0444 in 0555, read by another user when the tests run as root) still makes a pack.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result
from markupsafe import escape

from fairlens_monitor.audit.chain import rfc3339
from fairlens_monitor.cli.main import cli
from fairlens_monitor.config.settings import load_settings
from fairlens_monitor.ops.app import open_cipher, open_repository, open_signing_key
from fairlens_monitor.ops.sealing import Sealer
from fairlens_monitor.ops.sequence import run_portfolio
from fairlens_monitor.store import maintenance
from tests.conftest import BASE_CONFIG, merge, query_url, tamper

T0 = datetime(2026, 3, 1, tzinfo=UTC)
MONITORS = ("cards", "loans")
HOURS = 6
NOTE = "model retrained, see CR-12"
PACK = {
    "report.html",
    "report.pdf",
    "readings.csv",
    "group_results.csv",
    "alerts.csv",
    "report_ed25519.pub",
    "MANIFEST.json",
    "MANIFEST.json.sig",
}
NOBODY = 65534
REPO = Path(__file__).resolve().parents[1]


@dataclass
class Store:
    """The CLI on a config whose database two monitors wrote, and that database's URL."""

    config: Path
    url: str
    keys: Path

    def __call__(self, *args: str) -> Result:
        return CliRunner().invoke(cli, ["--config", str(self.config), *args])


def build(config: Path) -> None:
    """Six hourly cycles of each monitor (drift 1.0: every monitored reading adverse), the
    loans monitor 20 minutes after the cards one; cards' alert acknowledged then resolved."""
    settings = load_settings(config, env={})
    repo = open_repository(settings)
    try:
        signer = open_signing_key(settings, repo)
        cipher = open_cipher(settings, repo)
        for hour in range(HOURS):
            for offset, name in enumerate(MONITORS):
                at = T0 + timedelta(hours=hour, minutes=20 * offset)
                run_portfolio(
                    dict.fromkeys(MONITORS, settings),
                    repo,
                    cipher,
                    signer,
                    names=[name],
                    clock=lambda at=at: at,  # type: ignore[misc]
                    actor="cli",
                    sealer=lambda scoped: Sealer.of(settings, signer).attach(scoped),
                )
            if hour in (1, 2):
                cards_alert = query_url(
                    settings.database.url,
                    "SELECT id FROM alerts WHERE monitor = 'cards' AND state != 'resolved'",
                )[0][0]
                step, note = (
                    ("acknowledged", "looking into it") if hour == 1 else ("resolved", NOTE)
                )
                when = T0 + timedelta(hours=hour, minutes=30)
                maintenance.transition_alert(
                    repo, cards_alert, step, by="alice", note=note, at=when, ts=rfc3339(when)
                )
    finally:
        repo.engine.dispose()


@pytest.fixture
def store(write_config: Callable[..., Path], tmp_path: Path) -> Store:
    config = write_config({"simulation": {"drift": 1.0}, "audit": {"checkpoint_every": 5}})
    build(config)
    return Store(config, f"sqlite:///{tmp_path / 'var' / 'fairlens.db'}", tmp_path / "var" / "keys")


def day(moment: datetime) -> str:
    return rfc3339(moment)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def openssl_verify(folder: Path, public_key: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "openssl",
            "pkeyutl",
            "-verify",
            "-pubin",
            "-inkey",
            str(public_key),
            "-rawin",
            "-in",
            "MANIFEST.json",
            "-sigfile",
            "MANIFEST.json.sig",
        ],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def shell(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", command],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_pack_is_whole_signed_and_readable(store: Store, tmp_path: Path) -> None:
    out = tmp_path / "pack"
    result = store(
        "report",
        "--monitor",
        "cards",
        "--from",
        "2026-03-01",
        "--to",
        "2026-03-02",
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    assert {p.name for p in out.iterdir()} == PACK
    manifest = json.loads((out / "MANIFEST.json").read_bytes())
    assert manifest["monitor"] == "cards"
    assert manifest["period"]["from"] == "2026-03-01T00:00:00.000000Z"
    assert manifest["period"]["to"] == "2026-03-02T00:00:00.000000Z"
    listed = manifest["files"]
    assert set(listed) == PACK - {"MANIFEST.json", "MANIFEST.json.sig"}
    for name, entry in listed.items():
        assert entry["sha256"] == digest(out / name), name
        assert entry["bytes"] == (out / name).stat().st_size
    head = query_url(store.url, "SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1")
    assert (manifest["chain"]["head_seq"], manifest["chain"]["head_hash"]) == head[0]
    newest_cp = query_url(store.url, "SELECT max(seq) FROM checkpoints")[0][0]
    assert manifest["checkpoint"]["seq"] == newest_cp

    # the signature: raw 64 bytes, verified by openssl with the key folder's public key
    assert len((out / "MANIFEST.json.sig").read_bytes()) == 64
    public = store.keys / "report_ed25519.pub"
    assert (out / "report_ed25519.pub").read_bytes() == public.read_bytes()
    checked = openssl_verify(out, public)
    assert checked.returncode == 0, checked.stderr
    assert "Signature Verified Successfully" in checked.stdout
    assert stat.S_IMODE((store.keys / "report_ed25519.key").stat().st_mode) == 0o600
    changed = tmp_path / "changed"
    shutil.copytree(out, changed)
    text = (changed / "MANIFEST.json").read_text().replace('"cards"', '"loans"')
    (changed / "MANIFEST.json").write_text(text)
    assert openssl_verify(changed, public).returncode != 0  # the check can fail
    # the README's one line and docs/CLI.md's fingerprint command, as written
    readme = (REPO / "README.md").read_text()
    line = readme.split("<!-- report-verify:start -->")[1].split("<!-- report-verify:end -->")[0]
    command = line.split("```sh\n")[1].split("```")[0]
    assert shell(command, out).returncode == 0
    assert shell(command, changed).returncode != 0
    fingerprint = (
        "openssl pkey -pubin -in report_ed25519.pub -outform DER | tail -c 32 | sha256sum "
        "| cut -c1-16"
    )
    assert fingerprint in (REPO / "docs" / "CLI.md").read_text().replace("\n", " ")
    printed = shell(fingerprint, out).stdout.strip()
    assert printed == manifest["report_key"]["fingerprint"]
    assert printed in result.output

    # the HTML stands alone: the chart inlined, nothing fetched
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html
    assert "http://" not in html
    assert "https://" not in html
    assert "<script" not in html
    for words in (
        "Period summary",
        "Methodology",
        "Holm",
        NOTE,
        "alice",
        "acknowledged",
        "verified from genesis to seq",
        manifest["report_key"]["fingerprint"],
    ):
        assert words in html, words
    # no secret, no token, no plaintext explanation by default
    tokens = [t for (t,) in query_url(store.url, "SELECT token FROM alerts")]
    for path in out.iterdir():
        data = path.read_bytes()
        assert b"PRIVATE KEY" not in data, path.name
        assert not any(t.encode() in data for t in tokens), path.name
    assert all("encrypted with alert key" in a["explanation"] for a in rows(out / "alerts.csv"))

    # the PDF: every page renders, and a page is not blank
    pdfium = pytest.importorskip("pypdfium2")
    document = pdfium.PdfDocument(out / "report.pdf")
    try:
        assert len(document) >= 2
        for index in range(len(document)):
            image = document[index].render(scale=1.5).to_pil()
            image.save(tmp_path / f"page{index}.png")
            assert image.convert("L").getextrema()[0] < 100  # dark text on the page
    finally:
        document.close()


def test_only_the_chosen_monitor_and_period(store: Store, tmp_path: Path) -> None:
    start, end = T0 + timedelta(hours=1), T0 + timedelta(hours=4)  # readings at exactly both
    out = tmp_path / "edges"
    result = store(
        "report", "--monitor", "cards", "--from", day(start), "--to", day(end), "--out", str(out)
    )
    assert result.exit_code == 0, result.output
    wanted = query_url(
        store.url,
        "SELECT id FROM readings WHERE monitor = 'cards' ORDER BY id",
    )
    times = dict(query_url(store.url, "SELECT id, measured_at FROM readings"))
    got = [int(r["id"]) for r in rows(out / "readings.csv")]
    assert len(got) == 6  # hours 1, 2, 3 (both scenarios): 1 h inclusive, 4 h exclusive
    assert set(got) <= {i for (i,) in wanted}
    assert {times[i][:19] for i in got} == {f"2026-03-01 0{h}:00:00" for h in (1, 2, 3)}
    groups = rows(out / "group_results.csv")
    assert groups
    assert {int(g["reading_id"]) for g in groups} == set(got)
    assert {g["measured_at"][:13] for g in groups} == {
        "2026-03-01T01",
        "2026-03-01T02",
        "2026-03-01T03",
    }
    alerts = rows(out / "alerts.csv")
    cards = {i for (i,) in query_url(store.url, "SELECT id FROM alerts WHERE monitor='cards'")}
    assert alerts
    assert {int(a["id"]) for a in alerts} <= cards
    resolved = [a for a in alerts if a["state"] == "resolved"]
    assert resolved
    assert NOTE in resolved[0]["steps"]
    assert "alice" in resolved[0]["steps"]
    # the other monitor's pack holds only its own rows
    other = tmp_path / "loans"
    assert (
        store(
            "report",
            "--monitor",
            "loans",
            "--from",
            day(start),
            "--to",
            day(end),
            "--out",
            str(other),
        ).exit_code
        == 0
    )
    loans = {i for (i,) in query_url(store.url, "SELECT id FROM readings WHERE monitor='loans'")}
    assert {int(r["id"]) for r in rows(other / "readings.csv")} <= loans
    assert NOTE not in (other / "report.html").read_text()


def test_a_refused_out_folder_exits_2_and_is_left_alone(store: Store, tmp_path: Path) -> None:
    args = ("report", "--monitor", "cards", "--from", "2026-03-01", "--to", "2026-03-02", "--out")
    full = tmp_path / "full"
    full.mkdir()
    (full / "mine.txt").write_text("keep")
    result = store(*args, str(full))
    assert result.exit_code == 2
    assert "--out" in result.output
    assert "not empty" in result.output
    assert [p.name for p in full.iterdir()] == ["mine.txt"]

    target = tmp_path / "elsewhere"
    target.mkdir()
    link = tmp_path / "link"
    link.symlink_to(target)
    result = store(*args, str(link))
    assert result.exit_code == 2
    assert "symbolic link" in result.output
    assert not any(target.iterdir())

    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    assert store(*args, str(a_file)).exit_code == 2
    assert a_file.read_text() == "x"

    empty = tmp_path / "empty"
    empty.mkdir()
    assert store(*args, str(empty)).exit_code == 0  # an empty folder is fine
    assert {p.name for p in empty.iterdir()} == PACK


@pytest.mark.parametrize(
    ("start", "end", "named"),
    [
        ("2026-13-01", "2026-03-02", "--from"),
        ("2026-02-30", "2026-03-02", "--from"),
        ("yesterday", "2026-03-02", "--from"),
        ("", "2026-03-02", "--from"),
        ("2026-03-01T00:00+02:00", "2026-03-02", "--from"),
        ("2026-03-01", "2026-03-01T25:00", "--to"),
        ("2026-03-02", "2026-03-01", "--to"),
        ("2026-03-01", "2026-03-01", "--to"),
        # the chart's axis ends past year 9999 ("unexpected ValueError" from matplotlib)
        ("2026-03-01", "9999-12-31T23:59:59.999999", "--to"),
        ("9999-01-01", "9999-12-31", "--from"),
    ],
)
def test_bad_dates_exit_2_naming_the_argument(
    store: Store, tmp_path: Path, start: str, end: str, named: str
) -> None:
    out = tmp_path / "out"
    result = store("report", "--monitor", "cards", "--from", start, "--to", end, "--out", str(out))
    assert result.exit_code == 2, result.output
    assert named in result.output
    assert "unexpected" not in result.output
    assert not out.exists()


def test_unknown_or_malformed_monitor_exits_2(store: Store, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ("--from", "2026-03-01", "--to", "2026-03-02", "--out", str(out))
    unknown = store("report", "--monitor", "nope", *args)
    assert unknown.exit_code == 2
    assert "--monitor nope" in unknown.output
    assert "cards, loans" in unknown.output
    malformed = store("report", "--monitor", "Cards; DROP", *args)
    assert malformed.exit_code == 2
    assert "--monitor" in malformed.output
    assert "DROP" not in malformed.output  # the value is not echoed
    assert not out.exists()


def test_a_tampered_chain_exits_1_and_nothing_is_written_or_signed(
    store: Store, tmp_path: Path
) -> None:
    tamper(store.url, "UPDATE readings SET dir = 0.99 WHERE id = 3")
    out = tmp_path / "out"
    result = store(
        "report",
        "--monitor",
        "cards",
        "--from",
        "2026-03-01",
        "--to",
        "2026-03-02",
        "--out",
        str(out),
    )
    assert result.exit_code == 1, result.output
    assert "not intact" in result.output
    assert "readings" in result.output
    assert not out.exists()
    assert not (store.keys / "report_ed25519.key").exists()  # no key made, nothing signed


@pytest.fixture
def world_dirs() -> Iterator[tuple[Path, Path]]:
    """Two folders under /tmp another user can reach: the read-only copy's, and one that
    user owns (its report key folder and the pack)."""
    made = [Path(tempfile.mkdtemp(prefix="fairlens-report-", dir="/tmp")) for _ in range(2)]
    for folder in made:
        folder.chmod(0o755)
    if os.geteuid() == 0:
        os.chown(made[1], NOBODY, NOBODY)
    yield made[0], made[1]
    for folder in made:
        for path in [folder, *folder.rglob("*")]:
            if path.is_dir() and not path.is_symlink():
                path.chmod(0o755)
        shutil.rmtree(folder)


def test_a_read_only_database_in_a_read_only_folder_makes_a_pack(
    store: Store, tmp_path: Path, world_dirs: tuple[Path, Path]
) -> None:
    copy, own = world_dirs
    var = tmp_path / "var"
    for name in ("fairlens.db", "anchor.jsonl", "keys/checkpoint_ed25519.pub"):
        shutil.copy(var / name, copy / Path(name).name)
    assert not (copy / "fairlens.db-wal").exists()
    settings = {
        "database": {"url": f"sqlite:///{copy / 'fairlens.db'}"},
        "keys": {"dir": str(own / "keys")},
        "audit": {"checkpoint_every": 5, "anchor_file": str(copy / "anchor.jsonl")},
    }
    config = own / "config.yaml"
    config.write_text(yaml.safe_dump(merge(BASE_CONFIG, settings)))
    for path in copy.iterdir():
        path.chmod(0o444)
    copy.chmod(0o555)
    argv = [
        sys.executable,
        "-m",
        "fairlens_monitor",
        "--config",
        str(config),
        "report",
        "--monitor",
        "loans",
        "--from",
        "2026-03-01",
        "--to",
        "2026-03-02",
        "--out",
        str(own / "pack"),
        "--public-key",
        str(copy / "checkpoint_ed25519.pub"),
    ]
    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: a read-only folder cannot be made")
        prefix = [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
        os.chown(config, NOBODY, NOBODY)
    env = {**os.environ, "PYTHONPATH": str(REPO), "MPLCONFIGDIR": str(own / "mpl")}
    done = subprocess.run(
        [*prefix, *argv], cwd=own, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    assert {p.name for p in (own / "pack").iterdir()} == PACK
    assert sorted(p.name for p in copy.iterdir()) == [
        "anchor.jsonl",
        "checkpoint_ed25519.pub",
        "fairlens.db",
    ]  # nothing written beside the database: no -wal, no -shm
    checked = openssl_verify(own / "pack", own / "keys" / "report_ed25519.pub")
    assert checked.returncode == 0, checked.stderr


def test_an_exposed_report_key_is_refused_and_keys_status_names_it(
    store: Store, tmp_path: Path
) -> None:
    args = ("report", "--monitor", "cards", "--from", "2026-03-01", "--to", "2026-03-02")
    assert store(*args, "--out", str(tmp_path / "first")).exit_code == 0
    key = store.keys / "report_ed25519.key"
    status = json.loads(store("keys", "status", "--json").stdout)
    roles = {k["name"]: k for k in status}
    assert roles["report_ed25519.key"]["role"] == "report signing key"
    assert roles["report_ed25519.pub"]["private_ok"] is True  # a public key may be 0644
    key.chmod(0o644)
    refused = store(*args, "--out", str(tmp_path / "second"))
    assert refused.exit_code == 2
    assert "report_ed25519.key" in refused.output
    assert "chmod 600" in refused.output
    assert not (tmp_path / "second").exists()
    assert store("keys", "status").exit_code == 1


def test_explanations_stay_encrypted_unless_asked_and_the_key_is_readable(
    store: Store, tmp_path: Path
) -> None:
    args = ("report", "--monitor", "cards", "--from", "2026-03-01", "--to", "2026-03-02")
    clear = tmp_path / "clear"
    result = store(*args, "--out", str(clear), "--decrypt-explanations")
    assert result.exit_code == 0, result.output
    manifest = json.loads((clear / "MANIFEST.json").read_text())
    assert manifest["explanations"] == "decrypted"
    texts = [a["explanation"] for a in rows(clear / "alerts.csv")]
    assert texts
    assert all("encrypted" not in t and len(t) > 40 for t in texts)
    assert str(escape(texts[0])) in (clear / "report.html").read_text()  # as autoescaped
    # without the key, the flag is refused before anything is written
    shutil.move(store.keys / "fernet.key", tmp_path / "fernet.key")
    refused = store(*args, "--out", str(tmp_path / "no-key"), "--decrypt-explanations")
    assert refused.exit_code == 2
    assert "fernet.key" in refused.output
    assert not (tmp_path / "no-key").exists()
    kept = tmp_path / "kept"
    assert store(*args, "--out", str(kept)).exit_code == 0  # without the flag: fine
    assert all("encrypted with alert key" in a["explanation"] for a in rows(kept / "alerts.csv"))


def test_a_pack_made_while_cycles_commit_is_one_verified_state(
    store: Store, tmp_path: Path
) -> None:
    """A writer appends cycles and signed checkpoints while packs are made: each pack's chain
    is verified in its own read snapshot, never half a cycle (no false 'truncated')."""
    writer = subprocess.Popen(
        [sys.executable, "-m", "tests.helpers.once_loop", str(store.config), "12"],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    heads: list[int] = []
    try:
        deadline = time.monotonic() + 240  # the writer's first cycle: observed, not slept on
        while not query_url(store.url, "SELECT 1 FROM runs WHERE monitor = 'default'"):
            assert writer.poll() is None, "the writer ended before its first cycle"
            assert time.monotonic() < deadline, "no cycle of the writer within 240 s"
            with contextlib.suppress(subprocess.TimeoutExpired):
                writer.wait(timeout=0.1)  # a poll interval, not a guess at the writer's speed
        while writer.poll() is None or len(heads) < 2:
            out = tmp_path / f"pack{len(heads)}"
            result = store(
                "report",
                "--monitor",
                "default",
                "--from",
                "2000-01-01",
                "--to",
                "2100-01-01",
                "--out",
                str(out),
            )
            assert result.exit_code == 0, result.output
            manifest = json.loads((out / "MANIFEST.json").read_text())
            assert openssl_verify(out, store.keys / "report_ed25519.pub").returncode == 0
            heads.append(manifest["chain"]["head_seq"])
            readings = len(rows(out / "readings.csv"))
            assert readings % 2 == 0  # both scenarios of every run: no half cycle
    finally:
        _, err = writer.communicate(timeout=300)
    assert writer.returncode == 0, err
    assert heads == sorted(heads)
    assert store("verify").exit_code == 0


@pytest.mark.integration
def test_a_pack_from_postgresql(
    write_config: Callable[..., Path], pg_url: str, tmp_path: Path
) -> None:
    """The same pack from PostgreSQL: a REPEATABLE READ snapshot of a read-only session."""
    config = write_config(
        {
            "database": {"url": pg_url},
            "simulation": {"drift": 1.0},
            "audit": {"checkpoint_every": 5},
        }
    )
    build(config)
    pg = Store(config, pg_url, tmp_path / "var" / "keys")
    start, end = T0 + timedelta(hours=1), T0 + timedelta(hours=4)
    out = tmp_path / "pg-pack"
    result = pg(
        "report", "--monitor", "loans", "--from", day(start), "--to", day(end), "--out", str(out)
    )
    assert result.exit_code == 0, result.output
    assert {p.name for p in out.iterdir()} == PACK
    assert openssl_verify(out, pg.keys / "report_ed25519.pub").returncode == 0
    loans = query_url(
        pg_url,
        "SELECT id FROM readings WHERE monitor = 'loans' AND measured_at >= "
        f"'{start.isoformat()}' AND measured_at < '{end.isoformat()}' ORDER BY id",
    )
    assert [int(r["id"]) for r in rows(out / "readings.csv")] == [i for (i,) in loans]
    assert len(loans) == 6  # 01:20, 02:20, 03:20, both scenarios
    tamper(pg_url, "UPDATE group_results SET approved = approved + 1 WHERE id = 2")
    refused = pg(
        "report",
        "--monitor",
        "loans",
        "--from",
        day(start),
        "--to",
        day(end),
        "--out",
        str(tmp_path / "after"),
    )
    assert refused.exit_code == 1, refused.output
    assert not (tmp_path / "after").exists()


def test_a_failure_while_writing_leaves_no_half_pack(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fairlens_monitor.store import reportreads

    def broken(*_args: object) -> object:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(reportreads, "group_rows", broken)
    out = tmp_path / "half"
    result = store(
        "report",
        "--monitor",
        "cards",
        "--from",
        "2026-03-01",
        "--to",
        "2026-03-02",
        "--out",
        str(out),
    )
    assert result.exit_code == 2
    assert not out.exists()  # readings.csv, written first, was removed with the folder
    empty = tmp_path / "empty"
    empty.mkdir()
    assert (
        store(
            "report",
            "--monitor",
            "cards",
            "--from",
            "2026-03-01",
            "--to",
            "2026-03-02",
            "--out",
            str(empty),
        ).exit_code
        == 2
    )
    assert empty.is_dir()
    assert not any(empty.iterdir())  # a folder it did not make is kept, empty again


def test_a_pause_in_the_period_names_who_and_why(store: Store, tmp_path: Path) -> None:
    """`monitors pause --by --note` is on the chain; the pack's config changes say who paused
    the monitor and why, not only the process that wrote it (``cli``)."""
    from fairlens_monitor.ops.inventory import set_paused

    settings = load_settings(store.config, env={})
    repo = open_repository(settings)
    try:
        at = T0 + timedelta(hours=HOURS + 1)
        assert set_paused(
            repo, "cards", paused=True, by="bob", note="vendor outage", at=at, actor="cli"
        )
    finally:
        repo.engine.dispose()
    out = tmp_path / "paused"
    end = T0 + timedelta(days=1)
    result = store(
        "report", "--monitor", "cards", "--from", day(T0), "--to", day(end), "--out", str(out)
    )
    assert result.exit_code == 0, result.output
    html = (out / "report.html").read_text()
    changes = html.split("5. Configuration changes", 1)[1].split("6. Methodology", 1)[0]
    assert "monitor_paused" in changes
    assert "bob" in changes
    assert "vendor outage" in changes


def test_an_empty_period_states_no_method_it_did_not_record(store: Store, tmp_path: Path) -> None:
    """No reading in the period: the methodology names no reference mode or confidence the
    readings did not record (a monitor judged against its best group is not 'privileged')."""
    out = tmp_path / "empty"
    start, end = T0 - timedelta(days=30), T0 - timedelta(days=29)
    result = store(
        "report", "--monitor", "cards", "--from", day(start), "--to", day(end), "--out", str(out)
    )
    assert result.exit_code == 0, result.output
    html = (out / "report.html").read_text()
    method = html.split("6. Methodology", 1)[1].split("7. Integrity", 1)[0]
    assert "reference mode: not recorded" in method
    assert "0.95" not in method
    assert "privileged" not in method


def test_the_checkpoint_key_is_refused_as_the_report_key(store: Store, tmp_path: Path) -> None:
    """The report key is a separate key: a copy of the checkpoint key in its place would let
    whoever receives packs' signing key forge checkpoints. Refused, exit 2, nothing written."""
    report_key = store.keys / "report_ed25519.key"
    shutil.copyfile(store.keys / "checkpoint_ed25519.key", report_key)
    report_key.chmod(0o600)
    out = tmp_path / "same-key"
    args = ("report", "--monitor", "cards", "--from", "2026-03-01", "--to", "2026-03-02")
    refused = store(*args, "--out", str(out))
    assert refused.exit_code == 2, refused.output
    assert "report_ed25519.key" in refused.output
    assert "checkpoint" in refused.output
    assert not out.exists()


def test_the_printed_check_works_for_a_folder_with_spaces(store: Store, tmp_path: Path) -> None:
    """`report` prints the one-line check; pasted into a shell it must verify the pack even
    when the folder's name has a space or a shell character ("Q1 2026 pack")."""
    out = tmp_path / "Q1 2026 pack;x"
    args = ("report", "--monitor", "cards", "--from", "2026-03-01", "--to", "2026-03-02")
    result = store(*args, "--out", str(out))
    assert result.exit_code == 0, result.output
    check = next(line for line in result.output.splitlines() if line.startswith("check: "))
    done = shell(check.removeprefix("check: "), tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Signature Verified Successfully" in done.stdout


def test_a_checkpoint_missing_from_the_anchor_file_is_not_claimed_to_be_there(
    store: Store, tmp_path: Path
) -> None:
    """The covering checkpoint was signed into the database but its line never reached the
    anchor file (a crash between the two, or a trimmed file): the pack must not say it is
    "in the anchor file and the database" — the outside witness is what an examiner trusts."""
    assert store("checkpoint").exit_code == 0  # the head, signed into both
    anchor = load_settings(store.config, env={}).audit.anchor_file
    lines = anchor.read_bytes().splitlines(keepends=True)
    anchor.write_bytes(b"".join(lines[:-1]))  # the anchor file ends one checkpoint earlier
    out = tmp_path / "db-only"
    args = ("report", "--monitor", "cards", "--from", "2026-03-01", "--to", "2026-03-02")
    result = store(*args, "--out", str(out))
    assert result.exit_code == 0, result.output
    html = (out / "report.html").read_text()
    assert "in the anchor file anchor.jsonl and the database" not in html
    assert "in the database only" in html
    manifest = json.loads((out / "MANIFEST.json").read_text())
    assert manifest["checkpoint"]["in_anchor_file"] is False
    assert manifest["checkpoint"]["in_database"] is True


def test_a_pack_with_explanations_in_clear_is_readable_by_its_owner_only(
    store: Store, tmp_path: Path
) -> None:
    """Explanations are kept encrypted so that only the key's holders read them; a pack with
    them in clear was written 0644 in a 0755 folder, readable by every local user. It is
    0600 files in a 0700 folder; a pack without them stays shareable (0644/0755)."""
    args = ("report", "--monitor", "cards", "--from", "2026-03-01", "--to", "2026-03-02")
    clear, kept = tmp_path / "clear", tmp_path / "kept"
    assert store(*args, "--out", str(clear), "--decrypt-explanations").exit_code == 0
    assert store(*args, "--out", str(kept)).exit_code == 0
    assert stat.S_IMODE(clear.stat().st_mode) == 0o700
    assert {stat.S_IMODE(p.stat().st_mode) for p in clear.iterdir()} == {0o600}
    old = os.umask(0o022)
    os.umask(old)
    assert stat.S_IMODE(kept.stat().st_mode) == 0o755 & ~old
    assert {stat.S_IMODE(p.stat().st_mode) for p in kept.iterdir()} == {0o644 & ~old}
    # an existing empty folder open to others: the files in it are still the owner's only
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    assert store(*args, "--out", str(shared), "--decrypt-explanations").exit_code == 0
    assert {stat.S_IMODE(p.stat().st_mode) for p in shared.iterdir()} == {0o600}


def test_a_copied_signing_key_is_refused_even_before_its_public_file_exists(
    tmp_path: Path,
) -> None:
    """A fresh chain has no checkpoint public key file yet: the report key is compared with
    the signing key in the same folder too."""
    from fairlens_monitor.errors import KeyFileError
    from fairlens_monitor.security.crypto import SIGNING_KEY_FILE, load_signing_key
    from fairlens_monitor.security.report_key import REPORT_KEY_FILE, load_report_key

    keys = tmp_path / "keys"
    keys.mkdir(mode=0o700)
    load_signing_key(keys, create=True)
    for public in keys.glob("*.pub"):
        public.unlink()
    (keys / REPORT_KEY_FILE).write_bytes((keys / SIGNING_KEY_FILE).read_bytes())
    (keys / REPORT_KEY_FILE).chmod(0o600)
    with pytest.raises(KeyFileError, match="is the checkpoint signing key"):
        load_report_key(keys)
    (keys / REPORT_KEY_FILE).unlink()
    assert load_report_key(keys) is not None  # a pair of its own is made and accepted
