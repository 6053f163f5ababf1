"""Capture the running trend page with headless Chromium, once Streamlit has rendered it.

Chromium's own --screenshot fires at the load event, before Streamlit draws anything over
its websocket; this drives Chromium through the DevTools protocol instead and waits until
the page shows the text it is told to wait for.

    python scripts/screenshot.py URL OUT.png [--wait-for TEXT] [--timeout 60]
"""

from __future__ import annotations

import argparse
import base64
import json
import subprocess
import tempfile
import time
import urllib.request
from typing import Any

from websockets.sync.client import connect

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-allow-origins=*",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("out")
    parser.add_argument("--wait-for", default="Daemon health")
    parser.add_argument("--timeout", type=float, default=60)
    parser.add_argument("--port", type=int, default=9333)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:
        browser = subprocess.Popen(
            [
                "chromium",
                *FLAGS,
                f"--user-data-dir={profile}",
                f"--remote-debugging-port={args.port}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            capture(args)
        finally:
            browser.terminate()
            browser.wait(timeout=10)


def capture(args: argparse.Namespace) -> None:
    deadline = time.monotonic() + args.timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{args.port}/json", timeout=1) as r:
                targets = json.load(r)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    page = next(t for t in targets if t["type"] == "page")
    with connect(page["webSocketDebuggerUrl"], max_size=None) as ws:
        counter = iter(range(1, 10**6))

        def call(method: str, **params: Any) -> Any:
            ident = next(counter)
            ws.send(json.dumps({"id": ident, "method": method, "params": params}))
            while True:
                message = json.loads(ws.recv())
                if message.get("id") == ident:
                    return message.get("result", {})

        call(
            "Emulation.setDeviceMetricsOverride",
            width=1400,
            height=2200,
            deviceScaleFactor=1,
            mobile=False,
        )
        call("Page.navigate", url=args.url)
        check = f"document.body.innerText.includes({json.dumps(args.wait_for)})"
        while not call("Runtime.evaluate", expression=check)["result"].get("value"):
            if time.monotonic() > deadline:
                raise SystemExit(f"the page never showed {args.wait_for!r}")
            time.sleep(0.5)
        time.sleep(2)  # let the charts finish drawing
        shot = call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
    with open(args.out, "wb") as handle:
        handle.write(base64.b64decode(shot["data"]))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
