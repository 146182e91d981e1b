#!/usr/bin/env bash
# Starts `settee serve` on a free loopback port with a fresh data directory and
# replays the public golden corpus against it. Extra arguments go to replay.py
# (e.g. --only 'F_*' -v). Usage: scripts/golden.sh [release|debug] [replay args...]
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${1:-release}"; shift || true
target="${CARGO_TARGET_DIR:-target}"
bin="$target/$profile/settee"
data="$(mktemp -d)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
"$bin" serve --dir "$data" --port "$port" --admin admin:password 2>"$data.log" &
pid=$!
cleanup() {
  if ! kill -0 "$pid" 2>/dev/null; then echo "settee serve exited early:"; tail -20 "$data.log"; fi
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -rf "$data" "$data.log"
}
trap cleanup EXIT
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$port/_up" >/dev/null 2>&1 && break
  sleep 0.1
done
status=0
for f in ../shared/golden/public/*.jsonl; do
  python3 ../shared/golden/replay.py "$f" --url "http://127.0.0.1:$port" --user admin --password password "$@" || status=1
done
exit "$status"
