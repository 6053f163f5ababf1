"""The page on an auditor's read-only copy and with a key folder it cannot read (issue 19).

The database is 0444 in a 0555 folder, and the key folder is 0700 and owned by another user:
as root (for whom ``chmod`` stops nothing) the page and ``verify`` run as ``nobody`` through
``setpriv`` (``tests.test_readonly_auditor.as_reader``'s rule). The page runs in Streamlit's
AppTest inside that process and reports what it showed as JSON.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.test_readonly_auditor import NOBODY, REPO, make_auditor_copy, world_dir

__all__ = ["world_dir"]  # the fixture, used by name below

SHOW_PAGE = """
import json, os, sys
from streamlit import config as st_config
from streamlit.testing.v1 import AppTest
st_config.set_option("server.address", "127.0.0.1")
os.environ["FAIRLENS_CONFIG"] = sys.argv[1]
at = AppTest.from_file(sys.argv[2], default_timeout=60)
at.query_params["monitor"] = "default"
at.run()
texts = [str(e.value) for kind in ("markdown", "caption", "info", "warning", "error")
         for e in getattr(at, kind)] + [str(e.value) for e in at.sidebar.warning]
print(json.dumps({"exception": [str(e.value) for e in at.exception],
                  "metric": [m.value for m in at.metric], "text": texts}))
"""


def as_nobody(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` as a user for whom ``cwd`` is read-only and the key folder unreadable."""
    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: nothing is read-only for root")
        prefix = [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "HOME": "/tmp"}  # noqa: S108
    return subprocess.run(
        [*prefix, *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )


@pytest.fixture
def locked_copy(write_config: Callable[..., Path], tmp_path: Path, world_dir: Path) -> Path:
    """The auditor's copy (0444 files in a 0555 folder) with the key folder beside it,
    0700 and owned by root (or this user): unreadable to the reader."""
    config = make_auditor_copy(write_config, tmp_path, world_dir)
    world_dir.chmod(0o755)
    keys = world_dir / "keys"
    shutil.copytree(tmp_path / "var" / "keys", keys)
    keys.chmod(0o700 if os.geteuid() == 0 else 0o000)
    world_dir.chmod(0o555)
    return config


@pytest.mark.timeout(600)
def test_verify_cannot_read_the_key_folder_is_exit_2_not_tampered(locked_copy: Path) -> None:
    done = as_nobody(
        [sys.executable, "-m", "fairlens_monitor", "--config", str(locked_copy), "verify"],
        locked_copy.parent,
    )
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("error: cannot verify: ")
    assert "permission" in line.lower()


@pytest.mark.timeout(600)  # a Streamlit start-up as another user, on a busy machine
def test_the_page_reads_a_read_only_copy_without_the_key(locked_copy: Path) -> None:
    viewer = REPO / "fairlens_monitor" / "viewer" / "page.py"
    done = as_nobody(
        [sys.executable, "-c", SHOW_PAGE, str(locked_copy), str(viewer)], locked_copy.parent
    )
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout.strip().splitlines()[-1])
    assert shown["exception"] == []
    text = "\n".join(shown["text"])
    assert "Traceback" not in text
    assert "PermissionError" not in text
    assert "Read-only copy" in text
    assert "opened immutable" in text
    assert "encrypted — key not available here" in text
    assert shown["metric"][0] not in ("", "n/a")
    assert sorted(p.name for p in locked_copy.parent.iterdir()) == [
        "anchor.jsonl",
        "checkpoint_ed25519.pub",
        "config.yaml",
        "fairlens.db",
        "keys",
    ]  # nothing written beside the database (no -wal, -shm, journal)


@pytest.mark.timeout(600)
def test_view_starts_on_a_copy_whose_key_folder_it_cannot_read(locked_copy: Path) -> None:
    """Seen in headless Chromium: ``view`` itself died with "unexpected PermissionError" on
    such a copy (reading the page token) before the page could say anything."""
    import socket
    import time
    import urllib.request

    with socket.socket() as probe:  # a free port on this machine
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: nothing is read-only for root")
        prefix = [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    argv = [sys.executable, "-m", "fairlens_monitor", "--config", str(locked_copy), "view"]
    server = subprocess.Popen(
        [*prefix, *argv, "--port", str(port)],
        cwd=locked_copy.parent,
        env={**os.environ, "PYTHONPATH": str(REPO), "HOME": "/tmp"},  # noqa: S108
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 240
        healthy = False
        while not healthy and server.poll() is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/_stcore/health", timeout=1
                ) as answer:
                    healthy = answer.status == 200
            except OSError:
                time.sleep(0.2)  # the polling interval while Streamlit starts
    finally:
        server.terminate()
        _, stderr = server.communicate(timeout=60)
    assert "the key folder cannot be read by this user" in stderr
    refused = as_nobody([*argv, "--address", "0.0.0.0"], locked_copy.parent)  # noqa: S104
    assert refused.returncode == 2, refused.stderr
    assert "the key folder (where the page token is) cannot be read" in refused.stderr
    if not healthy and not _can_exec_again(locked_copy.parent):
        pytest.skip(  # view execs Streamlit with this interpreter, which must be reachable
            "this machine's Python lives where the reading user may not exec it again "
            f"(e.g. under /root): {stderr.strip().splitlines()[-1]}"
        )
    assert healthy, stderr
    assert "PermissionError" not in stderr


def _can_exec_again(cwd: Path) -> bool:
    """Whether the reading user can exec this interpreter from inside it (``view`` does)."""
    probe = "import os, sys; os.execv(sys.executable, [sys.executable, '-c', 'pass'])"
    return as_nobody([sys.executable, "-c", probe], cwd).returncode == 0
