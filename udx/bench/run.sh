#!/usr/bin/env bash
# Single-stream loopback throughput and CPU seconds per GiB: Rust->Rust (udxcat), JS->JS
# (udx-native 1.21.3 via interop-tests/js/udx-bench.js) and both mixed, measured in one run.
#
#   udx/bench/run.sh [BYTES] [ROUNDS]      (defaults: 1 GiB, 3 rounds; prints a Markdown table)
#
# CPU = user + system seconds of sender and receiver together (GNU time), per GiB moved.
# Throughput = bytes / the receiver's seconds from first byte to END. No hashing on either side.
set -euo pipefail
BYTES=${1:-1073741824}
ROUNDS=${2:-3}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
cargo build --release -q -p udx --bin udxcat
UDXCAT=$CARGO_TARGET_DIR/release/udxcat
JS=$ROOT/interop-tests/js/udx-bench.js
[ -d "$ROOT/interop-tests/js/node_modules/udx-native" ] || (cd "$ROOT/interop-tests/js" && npm ci --no-audit --no-fund --loglevel=error)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

tool() { # kind role -> command prefix
  if [ "$1" = rust ]; then
    if [ "$2" = recv ]; then echo "$UDXCAT recv --sink --no-hash"; else echo "$UDXCAT send --no-hash"; fi
  else
    echo "node $JS $2"
  fi
}

run_pair() { # sender_kind receiver_kind port_base -> "mibps cpu_per_gib"
  local s=$1 r=$2 p=$3
  /usr/bin/time -f "%U %S" -o "$TMP/rt" $(tool "$r" recv) --bind 127.0.0.1:$((p+1)) --id 2 --peer 127.0.0.1:$p --peer-id 1 2> "$TMP/rerr" &
  local rpid=$!
  sleep 0.3
  /usr/bin/time -f "%U %S" -o "$TMP/st" $(tool "$s" send) --bind 127.0.0.1:$p --id 1 --peer 127.0.0.1:$((p+1)) --peer-id 2 --bytes "$BYTES" 2> "$TMP/serr"
  wait $rpid
  python3 - "$TMP" "$BYTES" <<'PY'
import json, sys
tmp, n = sys.argv[1], int(sys.argv[2])
def last_json(path):
    for line in reversed(open(path).read().splitlines()):
        line = line.strip()
        if line.startswith('{'):
            return json.loads(line)
    raise SystemExit('no JSON in ' + path)
r = last_json(tmp + '/rerr')
assert r['bytes'] == n, r
cpu = sum(float(x) for f in ('rt', 'st') for x in open(tmp + '/' + f).read().split()[-2:])
print(f"{n / r['secs'] / 2**20:.0f} {cpu / (n / 2**30):.2f}")
PY
}

echo "| sender -> receiver | MiB/s (median of $ROUNDS) | CPU s/GiB (median) | all rounds (MiB/s @ CPU s/GiB) |"
echo "|---|---|---|---|"
port=41000
for pair in "rust rust" "js js" "rust js" "js rust"; do
  set -- $pair
  rows=()
  for _ in $(seq "$ROUNDS"); do
    port=$((port + 2))
    rows+=("$(run_pair "$1" "$2" $port)")
  done
  printf '%s\n' "${rows[@]}" | python3 -c "
import sys, statistics
rows = [tuple(map(float, l.split())) for l in sys.stdin if l.strip()]
t = statistics.median(r[0] for r in rows); c = statistics.median(r[1] for r in rows)
print(f'| $1 -> $2 | {t:.0f} | {c:.2f} | ' + ', '.join(f'{a:.0f} @ {b:.2f}' for a, b in rows) + ' |')
"
done
