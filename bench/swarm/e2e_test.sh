#!/usr/bin/env bash
# End-to-end test of the swarm testbed (bench/swarm/run.py), so the testbed
# itself cannot rot: 4 nodes, 16 MiB, 400 Mbit/s links, fleetcast only (a few
# seconds). Checks the JSON line, the CSV and the plot, then interrupts a
# second run with SIGINT once its namespaces exist; after both, no namespace
# with the test's prefix and nothing in the temp dir may be left.
# Exits 77 (ctest SKIP_RETURN_CODE) where network namespaces or tc tbf are
# not available (not root, no ip netns).
# Usage: bench/swarm/e2e_test.sh FLEETCAST_BIN WORKDIR
set -euo pipefail
BIN=$1 OUT=$2
RUN=$(cd "$(dirname "$0")" && pwd)/run.py
PREFIX=fcswt-
PATH=$PATH:/usr/sbin:/sbin

skip() { echo "SKIP: swarm testbed: $*"; exit 77; }
fail() { echo "FAIL: swarm testbed: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || skip "needs root to create network namespaces (running as uid $(id -u))"
command -v ip >/dev/null && command -v tc >/dev/null || skip "ip or tc (iproute2) not installed"
probe=${PREFIX}probe-$$
ip netns add "$probe" 2>/dev/null || skip "cannot create a network namespace (ip netns add failed)"
ok=1
ip -n "$probe" link add d0 type veth peer name d1 2>/dev/null &&
  tc -n "$probe" qdisc add dev d0 root tbf rate 100mbit burst 128k latency 50ms 2>/dev/null || ok=0
ip netns del "$probe"
[ "$ok" = 1 ] || skip "tc tbf is not available in a network namespace"

leftovers() {
  local ns
  ns=$(ip netns list | awk '{print $1}' | grep "^$PREFIX" || true)
  [ -z "$ns" ] || fail "namespaces left behind: $ns"
  [ -z "$(ls -A "$OUT/tmp")" ] || fail "temp data left behind: $(ls -A "$OUT/tmp")"
}

rm -rf "$OUT"
mkdir -p "$OUT/tmp"
export TMPDIR=$OUT/tmp
ARGS=(--nodes 4 --size 16MiB --files 4 --rate 400 --systems fleetcast
      --netns-prefix "$PREFIX" --results "$OUT/swarm.jsonl")

echo "== a complete run"
python3 "$RUN" "$BIN" "${ARGS[@]}" --repeat 1 || fail "run.py exited with $?"
leftovers
python3 - "$OUT" <<'PY' || fail "results"
import csv, glob, json, os, sys
out = sys.argv[1]
lines = open(os.path.join(out, "swarm.jsonl")).read().splitlines()
assert len(lines) == 1, f"{len(lines)} JSON lines"
r = json.loads(lines[0])
assert "error" not in r, r.get("error")
assert r["system"] == "fleetcast" and r["nodes"] == 4 and r["verified"], r
assert r["rate_mbit"] == 400 and abs(r["ideal_s"] - r["bytes"] * 8 / 400e6) < 1e-9, r
c = r["completion_s"]
assert 0 < c["min"] <= c["median"] <= c["max"], c
assert r["origin_egress_bytes"] > 0.9 * r["bytes"], r["origin_egress_bytes"]
assert (r["ratio"] is None) == r["cpu_bound"], r
assert r["origin_egress_wire_bytes"] >= r["bytes"] * 0.9, r["origin_egress_wire_bytes"]
run = os.path.join(out, f"swarm-{r['run_id']}")
rows = list(csv.DictReader(open(run + ".csv")))
assert sorted(int(x["node"]) for x in rows) == [1, 2, 3, 4], rows
links = list(csv.DictReader(open(run + "-links.csv")))
assert links and int(links[-1]["origin_up_bytes"]) > 0, links[-1:]
for png in (run + ".png", run + "-links.png"):
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n", png
print(f"ok: max {c['max']:.2f} s, F/B {r['ideal_s']:.2f} s, egress {r['origin_egress_over_size']:.2f} x F, "
      f"cpu busy {r['cpu_busy'] * 100:.0f}%")
PY

echo "== a run interrupted with SIGINT"
python3 "$RUN" "$BIN" "${ARGS[@]}" --repeat 20 2>"$OUT/interrupted.err" &
pid=$!
for _ in $(seq 600); do
  grep -q "testbed: " "$OUT/interrupted.err" && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.05
done
grep -q "testbed: " "$OUT/interrupted.err" || fail "the second run did not build its testbed: $(tail -n3 "$OUT/interrupted.err")"
sleep 1
kill -INT "$pid"
rc=0
wait "$pid" || rc=$?
[ "$rc" = 130 ] || fail "interrupted run exited with $rc, not 130: $(tail -n3 "$OUT/interrupted.err")"
leftovers
echo "ok: interrupted run cleaned up"
rm -rf "$OUT"
