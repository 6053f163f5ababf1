"""Capture the running trend page with headless Chromium, once Streamlit has rendered it.

Chromium's own --screenshot fires at the load event, before Streamlit draws anything over
its websocket; this drives Chromium through the DevTools protocol instead and waits until
the page has *settled*: it shows the text it is told to wait for, no script run is pending
(no "Running" status widget, no element marked stale), every chart has drawn, and the page's
text and height are unchanged between two successive looks. No fixed sleep.

    python scripts/screenshot.py URL OUT.png [--wait-for TEXT] [--width 1400] [--height 1000]
        [--fold] [--open TEXT] [--timeout 90]

Without ``--fold`` the capture is the whole page (the viewport grown to its height); with it,
only the first screen of ``--width`` x ``--height`` (what a laptop shows before scrolling).
``--open TEXT`` opens the expander whose title contains TEXT once the page has settled, and
waits for it to settle again (the drill-down is folded by default).
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


# What "settled" means, as one string compared between two looks: "ready|<text length>|
# <height>" once the wanted text shows, nothing is pending and every chart has drawn.
SETTLED_JS = """
(() => {
  const body = document.body.innerText;
  if (!body.includes(WANT)) return "waiting: text";
  if (document.querySelector('[data-testid="stStatusWidget"]')) return "waiting: running";
  if (document.querySelector('[data-stale="true"]')) return "waiting: stale";
  if (document.querySelector('[data-testid="stSkeleton"]')) return "waiting: skeleton";
  const charts = [...document.querySelectorAll('.vega-embed')];
  if (charts.some(c => !c.querySelector('canvas, svg'))) return "waiting: charts";
  const main = document.querySelector('[data-testid="stMain"]') || document.body;
  const side = document.querySelector('[data-testid="stSidebar"]');
  const x = side ? Math.round(side.getBoundingClientRect().x) : 0;  // no slide in progress
  return "ready|" + body.length + "|" + main.scrollHeight + "|" + charts.length + "|" + x;
})()
"""
OPEN_JS = """
(() => { const s = [...document.querySelectorAll('details summary')]
  .find(e => e.innerText.includes(TITLE));
  if (!s) return false; if (!s.parentElement.open) s.click(); return true; })()
"""
HEIGHT = """
(() => { const m = document.querySelector('[data-testid="stMain"]');
  return Math.max(document.body.scrollHeight, m ? m.scrollHeight : 0) + 40; })()
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("out")
    parser.add_argument("--wait-for", default="Audit chain")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=1000)
    parser.add_argument("--fold", action="store_true", help="only the first screen")
    parser.add_argument("--open", default=None, help="open the expander titled so")
    parser.add_argument("--timeout", type=float, default=90)
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
            width=args.width,
            height=args.height,
            deviceScaleFactor=1,
            mobile=False,
        )
        call("Page.navigate", url=args.url)
        settled = SETTLED_JS.replace("WANT", json.dumps(args.wait_for))

        def settle() -> None:
            previous = None
            while True:
                state = call("Runtime.evaluate", expression=settled, returnByValue=True)
                value = state.get("result", {}).get("value")
                if value is not None and value == previous and value.startswith("ready"):
                    return  # the same settled state twice in a row
                previous = value
                if time.monotonic() > deadline:
                    raise SystemExit(f"the page never settled on {args.wait_for!r}: {value}")
                time.sleep(0.5)  # the polling interval, not a wait for the page

        settle()
        if args.open:
            opened = call(
                "Runtime.evaluate",
                expression=OPEN_JS.replace("TITLE", json.dumps(args.open)),
                returnByValue=True,
            )
            if not opened.get("result", {}).get("value"):
                raise SystemExit(f"no expander titled {args.open!r}")
            settle()
        if not args.fold:  # the whole page: grow the viewport to its height
            height = call("Runtime.evaluate", expression=HEIGHT, returnByValue=True)
            full = int(height.get("result", {}).get("value") or args.height)
            call(
                "Emulation.setDeviceMetricsOverride",
                width=args.width,
                height=full,
                deviceScaleFactor=1,
                mobile=False,
            )
            settle()  # the charts redraw at the new size
        shot = call("Page.captureScreenshot", format="png")  # the viewport
    with open(args.out, "wb") as handle:
        handle.write(base64.b64decode(shot["data"]))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
