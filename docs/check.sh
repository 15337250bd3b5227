#!/usr/bin/env bash
# Builds the site, serves it on localhost and screenshots two pages with headless Chromium.
#
#   bash docs/check.sh [OUT_DIR]     (default: /tmp/rewardjax-docs-check)
#
# Writes OUT_DIR/site (the built site) and OUT_DIR/home.png, OUT_DIR/counts.png (the
# home page and the count-bonus page). Look at the PNGs: the text, tables and code
# must be there. Installs Debian's chromium package if it is missing (needs root and
# apt). Not part of the test suite (tests/test_docs.py builds the site there).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp/rewardjax-docs-check}
port=${PORT:-8765}
python=${PYTHON:-python3}
mkdir -p "$out"

if ! command -v chromium >/dev/null; then
  apt-get update -qq && apt-get install -y -qq chromium >/dev/null
fi

NO_MKDOCS_2_WARNING=1 "$python" -m mkdocs build --strict -q -d "$out/site"

"$python" -m http.server "$port" --bind 127.0.0.1 --directory "$out/site" >"$out/server.log" 2>&1 &
server=$!
trap 'kill "$server"' EXIT
for _ in $(seq 50); do
  "$python" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/')" \
    2>/dev/null && break
  sleep 0.2
done

shoot() {   # shoot NAME PATH
  chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1280,1600 \
    --screenshot="$out/$1.png" "http://127.0.0.1:$port/$2" >/dev/null 2>&1
  echo "$out/$1.png  <- http://127.0.0.1:$port/$2"
}
shoot home ""
shoot counts "rewards/counts/"
