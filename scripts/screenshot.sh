#!/usr/bin/env bash
# Capture the page with headless Chromium, fully rendered, to check the layout by eye:
# the inventory, a drifted monitor (1400 px and 800 px wide) and the tampered state, on a
# demo portfolio (scripts/page_demo.py). Needs Debian's chromium (apt-get install -y chromium).
#   usage: scripts/screenshot.sh [OUT_DIR]        (PORT=8765 by default; OUT_DIR var/shots)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-var/shots}
port=${PORT:-8765}
command -v chromium >/dev/null || { echo "chromium not found: apt-get install -y chromium" >&2; exit 2; }
mkdir -p "$out"
work=$(mktemp -d)
server=
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

serve() {  # serve the page on config $1 (stops the one before)
  [ -n "$server" ] && { kill "$server" 2>/dev/null; wait "$server" 2>/dev/null || true; }
  .venv/bin/fairlens-monitor --config "$1" view --port "$port" >"$work/view.log" 2>&1 &
  server=$!
  for _ in $(seq 120); do
    .venv/bin/python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/_stcore/health', timeout=1)" 2>/dev/null && return
    sleep 0.5
  done
  echo "the page did not start: $(tail -3 "$work/view.log")" >&2; exit 1
}
shot() {  # shot NAME QUERY WAIT_FOR WIDTH
  .venv/bin/python scripts/screenshot.py "http://127.0.0.1:$port/$2" "$out/$1.png" \
    --wait-for "$3" --width "$4"
}

.venv/bin/python scripts/page_demo.py "$work/demo" >/dev/null
serve "$work/demo/config.yaml"
shot inventory "" "intact" 1400
shot drifted "?monitor=credit_cards" "Audit chain:" 1400
shot drifted_800 "?monitor=credit_cards" "Audit chain:" 800
.venv/bin/python scripts/page_demo.py "$work/tampered" --tamper >/dev/null
serve "$work/tampered/config.yaml"
shot tampered "?monitor=credit_cards" "TAMPERED" 1400
ls -1 "$out"/*.png
