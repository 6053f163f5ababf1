#!/usr/bin/env bash
# Capture the page with headless Chromium, fully rendered, to check the layout by eye, in
# every state a risk officer or an auditor can meet, at 1400 px, 1280x800 (the first screen
# only: what a laptop shows before scrolling) and 800 px:
#   inventory, drifted (an adverse monitor with an open alert), stale (a stopped monitor),
#   tampered (a reading edited behind the chain's back), empty (a database with no schema),
#   missing (no database file), keyless (a key folder the page cannot read) and readonly
#   (the database 0444 in a 0555 folder: opened immutable).
# On a demo portfolio (scripts/page_demo.py). Needs Debian's chromium (apt-get install -y
# chromium). keyless and readonly run the page as `nobody` (setpriv) when run as root, for
# whom chmod stops nothing.
#   usage: scripts/screenshot.sh [OUT_DIR] [STATE ...]
#   env:   PORT (8765), PYTHON (.venv/bin/python), WIDTHS ("1400 1280x800 800")
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-var/shots}
shift || true
states=${*:-inventory drifted stale tampered empty missing keyless readonly}
port=${PORT:-8765}
py=${PYTHON:-.venv/bin/python}
py="$(cd "$(dirname "$py")" && pwd)/$(basename "$py")"  # absolute: the page starts elsewhere
widths=${WIDTHS:-1400 1280x800 800}
command -v chromium >/dev/null || { echo "chromium not found: apt-get install -y chromium" >&2; exit 2; }
mkdir -p "$out"
work=$(mktemp -d)
chmod 755 "$work"
server=
cleanup() {
  [ -n "$server" ] && { kill "$server" 2>/dev/null; wait "$server" 2>/dev/null || true; }
  chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"
}
trap cleanup EXIT

as_reader=()  # the page as a user for whom the permissions below hold
if [ "$(id -u)" = 0 ]; then as_reader=(setpriv --reuid=65534 --regid=65534 --clear-groups); fi

serve() {  # serve CONFIG [reader]: the page on CONFIG (stops the one before)
  [ -n "$server" ] && { kill "$server" 2>/dev/null; wait "$server" 2>/dev/null || true; }
  local page=(-m fairlens_monitor --config "$1" view --port "$port")
  local prefix=()
  if [ "${2:-}" = reader ]; then
    # as the reader, Streamlit is started directly with view's options: view re-executes
    # the interpreter, which a reader may not reach where Python lives under /root
    prefix=("${as_reader[@]}")
    page=(-m streamlit run "$PWD/fairlens_monitor/viewer/page.py" --server.headless true
      --server.port "$port" --server.address 127.0.0.1 --browser.gatherUsageStats false
      --client.toolbarMode minimal --server.fileWatcherType none)
  fi
  (cd "$(dirname "$1")" && FAIRLENS_CONFIG="$1" HOME=/tmp exec ${prefix[@]+"${prefix[@]}"} \
    "$py" "${page[@]}") >"$work/view.log" 2>&1 &
  server=$!
  for _ in $(seq 120); do
    "$py" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/_stcore/health', timeout=1)" 2>/dev/null && return
    sleep 0.5
  done
  echo "the page did not start: $(tail -3 "$work/view.log")" >&2; exit 1
}
shot() {  # shot NAME QUERY WAIT_FOR [EXPANDER]: one capture per width
  local w
  for w in ${SHOT_WIDTHS:-$widths}; do
    local args=(--width "${w%x*}")
    [ -n "${4:-}" ] && args+=(--open "$4")
    [ "$w" != "${w#*x}" ] && args+=(--height "${w#*x}" --fold)
    "$py" scripts/screenshot.py "http://127.0.0.1:$port/$2" "$out/$1_$w.png" \
      --wait-for "$3" "${args[@]}"
  done
}
demo() {  # demo DIR [--tamper]: the demo portfolio
  [ -d "$1" ] || "$py" scripts/page_demo.py "$@" >/dev/null
}

for state in $states; do
  case $state in
    inventory) demo "$work/demo"; serve "$work/demo/config.yaml"
      shot inventory "" "intact — chain verified" ;;
    drifted) demo "$work/demo"; serve "$work/demo/config.yaml"
      shot drifted "?monitor=credit_cards" "intact — chain verified"
      SHOT_WIDTHS="1400 800" shot drilldown "?monitor=credit_cards" "intact — chain verified" \
        "Drill down" ;;
    stale) demo "$work/demo"; serve "$work/demo/config.yaml"
      shot stale "?monitor=mortgages" "intact — chain verified" ;;
    tampered) demo "$work/tampered" --tamper; serve "$work/tampered/config.yaml"
      shot tampered "?monitor=credit_cards" "Audit trail TAMPERED"
      shot tampered_inventory "" "Audit trail TAMPERED" ;;
    empty) mkdir -p "$work/empty/var"; : >"$work/empty/var/fairlens.db"
      cp "$work/demo/config.yaml" "$work/empty/" 2>/dev/null || { demo "$work/demo"; cp "$work/demo/config.yaml" "$work/empty/"; }
      serve "$work/empty/config.yaml"; shot empty "" "is empty" ;;
    missing) mkdir -p "$work/missing"
      cp "$work/demo/config.yaml" "$work/missing/" 2>/dev/null || { demo "$work/demo"; cp "$work/demo/config.yaml" "$work/missing/"; }
      serve "$work/missing/config.yaml"; shot missing "" "no database file" ;;
    keyless) demo "$work/demo"; rm -rf "$work/keyless"; cp -a "$work/demo" "$work/keyless"
      chown -R 65534:65534 "$work/keyless" 2>/dev/null || true
      chown -R 0:0 "$work/keyless/var/keys"; chmod 700 "$work/keyless/var/keys"
      serve "$work/keyless/config.yaml" reader
      shot keyless "?monitor=credit_cards" "cannot verify" ;;
    readonly) demo "$work/demo"; rm -rf "$work/readonly"; cp -a "$work/demo" "$work/readonly"
      chown -R 65534:65534 "$work/readonly/var/keys" 2>/dev/null || true
      chmod 444 "$work/readonly/var/fairlens.db"; chmod 555 "$work/readonly/var"
      serve "$work/readonly/config.yaml" reader
      shot readonly "?monitor=credit_cards" "Audit chain:" ;;
    *) echo "unknown state: $state" >&2; exit 2 ;;
  esac
done
ls -1 "$out"/*.png
