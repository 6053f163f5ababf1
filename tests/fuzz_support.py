"""The machinery of the hostile-input fuzz test (``test_fuzz_hostile.py``): run the CLI, check it.

One case = one command line run in its own sandbox folder (``work/`` is the working folder and
holds ``config.yaml``; ``outside/`` holds a secret file and the targets of symlinks; ``home/`` is
``$HOME``). A run goes through the console script's own ``main()`` — in-process (fast, under a
watchdog and a memory limit) or as a real subprocess — and :func:`check` turns what happened
into violations of the invariants of issue 15:

- ``exit-code``: the exit code is 0, 1 or 2;
- ``traceback``: no "Traceback" in any output;
- ``stderr-lines``: at most one stderr line on exit 2; ``long-line``: no stderr line over
  ``MAX_LINE`` characters (item 7: values in messages are truncated);
- ``created``: nothing is created or changed when the config is invalid;
- ``canary``: no canary (PII in data, a password in a URL, key material) in any output or any
  file the run created or changed (database, -wal, anchor file, exports, backups);
- ``hang``: the run ends within ``HANG_SECONDS``.

Violations the other fixes of issue 15 will remove are listed in ``KNOWN_FAILURES``; the lead
empties that list after merging them.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import resource
import signal
import subprocess
import sys
import time
import traceback
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

from click.testing import CliRunner

from fairlens_monitor.config.settings import load_settings

# PII and secrets planted in data, config values and URLs; none may come out anywhere.
DATA_CANARIES = ("john.doe@example.com", "123-45-6789", "555-123-4567", "4111111111111111")
CONFIG_CANARIES = ("jane.roe@example.org", "987-65-4321")  # PII typed into config values
PASSWORD = "Fz9-S3cretPW-canary"  # noqa: S105 - a canary, planted to be looked for
SECRET_CANARIES = (PASSWORD,)
PW_URL = f"postgresql+psycopg://fairlens:{PASSWORD}@127.0.0.1:1/fairlens"
MAX_LINE = 2000
HANG_SECONDS = 30.0
FIFO_SECONDS = 5.0  # a FIFO must be refused, not waited on: no need to wait 30 s for that
MEMORY_HEADROOM = 1536 * 2**20  # in-process runs may grow this much before MemoryError
SUBPROCESS_MEMORY = 4 * 2**30
EXIT_CODES = (0, 1, 2)
KEY_FILE = re.compile(r"\.(key|retired|staged)$")


@dataclass
class Run:
    """What one command line did."""

    args: list[str]
    code: int | None  # None: killed after HANG_SECONDS
    stdout: str
    stderr: str
    seconds: float
    via: str  # "inprocess" or "subprocess"


@dataclass(frozen=True)
class Violation:
    """One broken invariant of one run."""

    kind: str
    detail: str


@dataclass
class Case:
    """A command line and where it runs; ``config_invalid`` is set by the test's oracle."""

    sandbox: Path
    args: list[str]
    env: dict[str, str] = field(default_factory=dict)
    stdin: bytes = b""
    command: str = ""  # the command path ("once", "db upgrade"), for triage
    config_invalid: bool = False
    label: str = ""  # what was mutated (a config key, "csv", "args"), for triage
    watchdog: float = HANG_SECONDS  # FIFO_SECONDS when a FIFO is among the inputs

    @property
    def work(self) -> Path:
        return self.sandbox / "work"


def make_sandbox(root: Path) -> Path:
    """Create ``work/``, ``home/`` and ``outside/`` (a secret file, a FIFO) under ``root``."""
    for name in ("work", "home", "outside"):
        (root / name).mkdir(parents=True, exist_ok=True)
    secret = root / "outside" / "secret.txt"
    secret.write_text(f"{DATA_CANARIES[0]},{DATA_CANARIES[1]},{DATA_CANARIES[2]}\n")
    fifo = root / "outside" / "fifo"
    if not fifo.exists():
        os.mkfifo(fifo)
    return root


def base_env(case: Case) -> dict[str, str]:
    env = {
        "HOME": str(case.sandbox / "home"),
        "FAIRLENS_DB_URL": "",
        "FAIRLENS_KEY_DIR": "",
        "FAIRLENS_SOURCE_URL": "",
        "COLUMNS": "100",
        "LC_ALL": "C.UTF-8",
    }
    env.update(case.env)
    return env


class Hang(BaseException):
    """Raised in the main thread by the watchdog: the command ran past HANG_SECONDS."""


class Exec(BaseException):
    """``os.execve`` was reached (``view`` hands the process to Streamlit): stop there."""


@contextlib.contextmanager
def guard(seconds: float) -> Iterator[None]:
    """A watchdog (SIGALRM) and an address-space limit for one in-process run."""

    def fire(_signum: int, _frame: object) -> None:
        raise Hang

    old_handler = signal.signal(signal.SIGALRM, fire)
    old_timer = signal.setitimer(signal.ITIMER_REAL, seconds)
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as statm:
        vm = int(statm.read().split()[0]) * resource.getpagesize()
    limit = vm + MEMORY_HEADROOM
    if hard == resource.RLIM_INFINITY or limit < hard:
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    started = time.monotonic()
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old_handler)
        if old_timer[0]:  # give pytest-timeout's alarm back, minus the time used
            signal.setitimer(
                signal.ITIMER_REAL, max(0.1, old_timer[0] - (time.monotonic() - started))
            )


def config_invalid(config: Path, env: dict[str, str]) -> bool:
    """The oracle: the validator refuses this config (or it is no regular file to read)."""
    if not config.is_file():  # missing, a folder, a FIFO, a device: nothing to validate
        return True
    try:
        with guard(10):
            load_settings(config, env={k: v for k, v in env.items() if v})
    except (Exception, Hang):
        return True
    return False


def run_inprocess(case: Case) -> Run:
    """Run ``fairlens_monitor.cli.main.main`` (the console script) in this process.

    What the interpreter would do is reproduced: a ``SystemExit`` code becomes the exit code
    (a text is printed to stderr, exit 1); any other exception prints a traceback, exit 1.
    The root logger's handlers are swapped out, so ``logging.basicConfig`` binds to this
    run's stderr as it does in a fresh process.
    """
    from fairlens_monitor.cli.main import main

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    root.handlers.clear()
    out, err = io.BytesIO(), io.BytesIO()
    code: int | None
    cwd = Path.cwd()
    started = time.monotonic()
    runner = CliRunner()
    with runner.isolation(input=case.stdin, env=base_env(case)) as (stdout, stderr, _):
        os.chdir(case.work)
        try:
            with (
                guard(case.watchdog),
                mock.patch.object(sys, "argv", ["fairlens-monitor", *case.args]),
                mock.patch("os.execve", side_effect=Exec),
            ):
                main()
            code = 0
        except SystemExit as exc:
            code = _exit_code(exc.code)
        except Exec:
            code = 0
        except Hang:
            code = None
        except BaseException:
            sys.stderr.write(traceback.format_exc())
            code = 1
        finally:
            os.chdir(cwd)
            for handler in root.handlers:
                handler.close()
            root.handlers[:] = saved[0]
            root.setLevel(saved[1])
            sys.stdout.flush()
            sys.stderr.flush()
            out.write(stdout.getvalue())
            err.write(stderr.getvalue())
    return Run(
        case.args,
        code,
        out.getvalue().decode("utf-8", "replace"),
        err.getvalue().decode("utf-8", "replace"),
        time.monotonic() - started,
        "inprocess",
    )


def _exit_code(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    sys.stderr.write(f"{code}\n")  # sys.exit("text"): printed, exit 1
    return 1


def _limit_memory() -> None:
    """In the child: an address-space limit, so /dev/zero read as a file cannot eat the RAM."""
    resource.setrlimit(resource.RLIMIT_AS, (SUBPROCESS_MEMORY, SUBPROCESS_MEMORY))


def console_script() -> list[str]:
    script = Path(sys.executable).with_name("fairlens-monitor")
    return [str(script)] if script.exists() else [sys.executable, "-m", "fairlens_monitor"]


def run_subprocess(case: Case, timeout: float | None = None) -> Run:
    """Run the installed console script as a real process (killed after ``timeout``)."""
    env = {**os.environ, **base_env(case)}
    started = time.monotonic()
    proc = subprocess.Popen(
        [*console_script(), *case.args],
        cwd=case.work,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=_limit_memory,
    )
    try:
        out, err = proc.communicate(case.stdin, timeout=timeout or case.watchdog)
        code: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        code = None
    return Run(
        case.args,
        code,
        out.decode("utf-8", "replace"),
        err.decode("utf-8", "replace"),
        time.monotonic() - started,
        "subprocess",
    )


Snapshot = dict[str, tuple[int, int]]


def snapshot(root: Path) -> Snapshot:
    """Every path under ``root`` (symlinks not followed) with its size and mtime."""
    found: Snapshot = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            is_dir = os.path.isdir(path) and not os.path.islink(path)
            found[os.path.relpath(path, root)] = (
                -1 if is_dir else st.st_size,
                0 if is_dir else st.st_mtime_ns,
            )
    return found


def changed(before: Snapshot, after: Snapshot) -> list[str]:
    """Paths created or modified between two snapshots (directories only when created)."""
    return sorted(p for p, meta in after.items() if before.get(p) != meta)


def key_material(key_dir: Path) -> list[str]:
    """The secret halves of the key files in ``key_dir`` (texts that must never be output)."""
    found = []
    for path in key_dir.glob("*") if key_dir.is_dir() else []:
        if path.is_file() and not path.name.endswith((".pub", ".lock")):
            text = path.read_bytes().decode("ascii", "replace").strip()
            found += [line for line in text.splitlines() if len(line) >= 32]
    return found


def check(
    case: Case,
    run: Run,
    before: Snapshot,
    *,
    extra_secrets: tuple[str, ...] = (),
    config_canaries: tuple[str, ...] = (),
) -> list[Violation]:
    """Every invariant ``run`` of ``case`` broke (see the module docstring)."""
    bad: list[Violation] = []
    lines = run.stderr.splitlines()
    if run.code is None:
        bad.append(Violation("hang", f"no exit after {case.watchdog:g} s"))
    elif run.code not in EXIT_CODES:
        bad.append(Violation("exit-code", f"exit {run.code}"))
    if "Traceback" in run.stdout or "Traceback" in run.stderr:
        exc = next(
            (
                ln
                for ln in reversed(lines)
                if re.match(
                    r"^[\w.]+(Error|Exception|"
                    r"Interrupt|Exit)\b",
                    ln,
                )
            ),
            "?",
        )
        bad.append(Violation("traceback", exc.split(":")[0]))
    elif run.code == 2 and len(lines) > 1:
        bad.append(Violation("stderr-lines", f"{len(lines)} lines: {_short(lines[0])}"))
    if any(len(ln) > MAX_LINE for ln in lines):
        bad.append(Violation("long-line", f"a stderr line of {max(map(len, lines))} chars"))
    after = snapshot(case.sandbox)
    new = changed(before, after)
    if case.config_invalid and new:
        bad.append(Violation("created", f"config invalid, yet created {new[:3]}"))
    secrets = DATA_CANARIES + SECRET_CANARIES + extra_secrets
    for where, text in {"stdout": run.stdout, "stderr": run.stderr}.items():
        # a config value holding PII may be shown when all is well, never in an error
        for canary in secrets + (config_canaries if run.code else ()):
            if canary in text:
                bad.append(Violation("canary", f"{_name(canary)} in {where}"))
    for rel in new:
        path = case.sandbox / rel
        if rel.startswith("outside") or not path.is_file() or path.is_symlink():
            continue
        data = _read_some(path)
        # a key file holds (or, retired, keeps) its key by design
        skip = set(extra_secrets) if KEY_FILE.search(path.name) else set()
        for canary in (c for c in secrets if c not in skip):
            if canary.encode() in data:
                bad.append(Violation("canary", f"{_name(canary)} in {_kind_of(rel)}"))
    return sorted(set(bad), key=lambda v: (v.kind, v.detail))


def _read_some(path: Path, limit: int = 64 * 2**20) -> bytes:
    try:
        with path.open("rb") as f:
            return f.read(limit)
    except OSError:
        return b""


def _kind_of(rel: str) -> str:
    name = Path(rel).name
    for suffix in ("-wal", "-shm", "-journal"):
        if name.endswith(suffix):
            return f"database {suffix[1:]}"
    if name.endswith(".db"):
        return "database"
    return "anchor file" if "anchor" in name else f"output file {name}"


def _name(canary: str) -> str:
    return {
        PASSWORD: "password",
        DATA_CANARIES[0]: "e-mail",
        DATA_CANARIES[1]: "SSN",
        DATA_CANARIES[2]: "phone",
        DATA_CANARIES[3]: "card number",
        CONFIG_CANARIES[0]: "config e-mail",
        CONFIG_CANARIES[1]: "config SSN",
    }.get(canary, "key material")


def _short(text: str, n: int = 120) -> str:
    return text if len(text) <= n else text[:n] + "…"


@dataclass(frozen=True)
class KnownFailure:
    """A failure class that another fix of issue 15 removes (see the issue's item)."""

    item: str  # the issue item that fixes it
    kind: str  # the Violation kind
    detail: str  # regex on the Violation detail
    command: str = ".*"  # regex on the command path ("once", "db upgrade", ...)
    label: str = ".*"  # regex on what was mutated (a config key, "csv", "args", "yaml:...")


SEEN: Counter[KnownFailure] = Counter()


def triage(
    case: Case, violations: list[Violation], known: tuple[KnownFailure, ...]
) -> list[Violation]:
    """The violations no ``known`` failure explains (each explained one is counted in SEEN)."""
    unknown = []
    for v in violations:
        match = next(
            (
                k
                for k in known
                if k.kind == v.kind
                and re.search(k.detail, v.detail)
                and re.fullmatch(k.command, case.command)
                and re.fullmatch(k.label, case.label)
            ),
            None,
        )
        if match is None:
            unknown.append(v)
        else:
            SEEN[match] += 1
    return unknown


def report(case: Case, run: Run, unknown: list[Violation]) -> str:
    """A failure message: the violations, then how to reproduce the case."""
    return (
        "\n".join(f"{v.kind}: {v.detail}" for v in unknown)
        + f"\ncommand ({run.via}, exit {run.code}, {run.seconds:.1f} s): "
        + " ".join(repr(a) for a in case.args)
        + f"\nmutated: {case.label}"
        + f"\nenv: {case.env}\nstderr: {_short(run.stderr, 1500)}"
    )
