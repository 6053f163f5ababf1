#!/usr/bin/env bash
# Serve the trend page on a config and capture it with headless Chromium, to check the
# layout by eye. Needs Debian's chromium package (apt-get install -y chromium).
#   usage: scripts/screenshot.sh [CONFIG] [OUT.png]     (PORT=8765 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
config=${1:-config.yaml}
out=${2:-var/viewer.png}
port=${PORT:-8765}
command -v chromium >/dev/null || { echo "chromium not found: apt-get install -y chromium" >&2; exit 2; }
mkdir -p "$(dirname "$out")"
.venv/bin/fairlens-monitor --config "$config" view --port "$port" >/dev/null 2>&1 &
server=$!
trap 'kill $server 2>/dev/null' EXIT
for _ in $(seq 60); do
  .venv/bin/python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$port/_stcore/health', timeout=1)" 2>/dev/null && break
  sleep 0.5
done
.venv/bin/python scripts/screenshot.py "http://127.0.0.1:$port/" "$out"
