#!/usr/bin/env bash
# End-to-end test of the delta benchmark (bench/delta/run.sh, ./dev bench
# delta), so it cannot rot: 16 MiB, 3 agents, one repeat (a few seconds).
# Checks the JSON line it appends (every figure there and sane: each agent
# received at least the new chunks, rsync sent something, the update took
# time) and that nothing is left in the temp dir.
# Usage: bench/delta/e2e_test.sh FLEETCAST_BIN WORKDIR
set -euo pipefail
BIN=$1 OUT=$2
RUN=$(cd "$(dirname "$0")" && pwd)/run.sh

fail() { echo "FAIL: delta bench: $*" >&2; exit 1; }

rm -rf "$OUT"
mkdir -p "$OUT/tmp"
export TMPDIR=$OUT/tmp
"$RUN" "$BIN" --size 16MiB --files 6 --agents 3 --results "$OUT/delta.jsonl" ||
  fail "run.sh exited with $?"
[ "$(wc -l <"$OUT/delta.jsonl")" -eq 1 ] || fail "expected one JSON line in $OUT/delta.jsonl"
python3 - "$OUT/delta.jsonl" <<'PY' || fail "bad JSON line: $(cat "$OUT/delta.jsonl")"
import json, sys
r = json.loads(open(sys.argv[1]).read())
assert r["bench"] == "delta" and r["agents"] == 3 and r["repeat"] == 1, r
b = r["per_node_bytes"]
assert 0 < b["changed"] < r["bytes"] * 0.03, b
new = b["new_chunks_plus_manifest"]
assert b["fleetcast_received_max"] >= new - r["median"]["fleetcast"]["manifest_bytes"], b
assert b["fleetcast_received_max"] <= 1.25 * new, b  # duplicates included
assert 0 <= b["fleetcast_received_twice_max"] <= b["fleetcast_received_max"], b
assert b["fleetcast_fleet_sent_per_node"] >= b["fleetcast_received_max"] * 0.99, b
assert b["rsync_sent_plus_received"] > 0 and b["rsync_literal"] > 0, b
f = r["median"]["fleetcast"]
assert 0 < f["update_last_s"] and 0 < f["full_last_s"], f
assert r["mutation"]["removed"] and r["mutation"]["renamed"], r["mutation"]
PY
[ -z "$(ls -A "$OUT/tmp")" ] || fail "temp data left behind: $(ls -A "$OUT/tmp")"
echo "delta bench e2e: ok"
