#!/usr/bin/env bash
# Delta updates (issue 5), side by side in one run, on loopback, without rate
# limits, every byte written to the work disk (never tmpfs):
#   v1 = `fleetcast generate` (--size, --files), v2 = a copy of v1 changed by
#     `fleetcast generate --mutate EDIT` (in-place edits and inserts in the
#     three largest files, one file added, one removed, one renamed)
#   fleetcast: an origin (embedded tracker), v1 published and released, N
#     agents started together: the time until every agent runs v1 (the first
#     full distribution). Then v2 is published and released: the time from
#     the release until every agent runs v2 (the update), and per agent the
#     bytes it received (fleetcast_bytes_received_total: verified chunk
#     bytes, each chunk once, plus fleetcast_bytes_duplicate_total: chunks
#     that arrived again) and the bytes the whole fleet sent during the
#     update (the origin's fleetcast_origin_bytes_sent_total plus every
#     agent's fleetcast_bytes_sent_total: duplicates included) divided by N.
#     Every agent's tree is checked with `fleetcast verify` (outside the
#     timings).
#   rsync: a copy of the v1 tree updated to v2 with
#     `rsync -a --delete --stats --no-whole-file v2/ copy/`, a local rsync
#     (sender and receiver are two processes joined by a pipe) forced to use
#     its delta algorithm (a local copy otherwise sends whole files). The
#     bytes are rsync's own "Total bytes sent" (sender to receiver: literal
#     data, block matches, file list) and "Total bytes received" (receiver to
#     sender: block checksums), i.e. what one node's update costs on the
#     wire; a fleet of N served by one rsync server costs N times that.
#   the edit itself: bytes edited + inserted + added (what changed), and the
#     bytes of the chunks new in v2 (what the v2 publish uploaded: publish
#     --json new_bytes) plus the signed manifest.
# Each repeat uses a fresh store, origin and agents. Recorded for every run:
# the busy share of the whole machine's CPUs (/proc/stat; >= 90% flags a
# run CPU-bound, whoever used the CPU).
# Prints a table and appends one JSON line to --results
# (default bench/results/delta.jsonl).
# Usage: bench/delta/run.sh FLEETCAST_BIN [--size 1GiB] [--files 8]
#          [--edit 0.007] [--agents 12] [--repeat 1] [--results FILE]
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
SRC_BIN=$(realpath "$1"); shift
SIZE=1GiB FILES=8 EDIT=0.007 AGENTS=12 REPEAT=1 RESULTS=$REPO/bench/results/delta.jsonl
TIMEOUT=1200  # seconds for every agent to run a version
while [ $# -gt 0 ]; do
  case $1 in
    --size) SIZE=$2; shift 2 ;;
    --files) FILES=$2; shift 2 ;;
    --edit) EDIT=$2; shift 2 ;;
    --agents) AGENTS=$2; shift 2 ;;
    --repeat) REPEAT=$2; shift 2 ;;
    --results) RESULTS=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
for tool in rsync curl python3 bc; do
  command -v "$tool" >/dev/null || { echo "delta bench: $tool not found (./dev setup)" >&2; exit 2; }
done

CORES=$(nproc)
DATASET=bench/delta
WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/fleetcast-delta-XXXXXX")
FSTYPE=$(df --output=fstype "$WORK" | tail -n1)
PIDS=()  # every process this script started in the background

cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
case $FSTYPE in
  tmpfs|ramfs) echo "delta bench: $WORK is on $FSTYPE; set TMPDIR to a directory on disk" >&2; exit 2 ;;
esac
# The binary under test, copied: a rebuild during the run must not change it.
mkdir -p "$WORK/bin"
cp "$SRC_BIN" "$WORK/bin/fleetcast"
BIN=$WORK/bin/fleetcast
BIN_SHA256=$(sha256sum "$BIN" | cut -c1-16)
COMMIT=$(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown)

log() { printf '  %s\n' "$*" >&2; }
now() { date +%s.%N; }
fail() { echo "delta bench: $*" >&2; exit 3; }
json_field() {  # FILE FIELD
  python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"
}

forget() {
  local p keep=()
  for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}
stop() {  # PID...: SIGTERM, wait, forget
  local p
  for p in "$@"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "$@"; do wait "$p" 2>/dev/null || true; forget "$p"; done
}

# The HOST:PORT of a "listening on HOST:PORT" line a process prints on stdout.
wait_listening() {  # OUTFILE PID
  local i line
  for i in $(seq 300); do
    line=$(grep -m1 -o 'listening on [^ ]*' "$1" 2>/dev/null || true)
    if [ -n "$line" ]; then echo "${line#listening on }"; return; fi
    kill -0 "$2" 2>/dev/null || fail "process $2 exited before listening (see ${1%.out}.err)"
    sleep 0.05
  done
  fail "process $2 did not print 'listening on' within 15 s"
}

cpu_snap() {  # "busy total" jiffies of the whole machine
  awk '/^cpu /{t=0; for (i=2; i<=NF; i++) t+=$i; print t-$5-$6-$9, t}' /proc/stat
}
cpu_busy() {  # "SNAP0" "SNAP1" -> busy share 0..1
  echo "$1 $2" | awk '{dt=$4-$2; print (dt > 0 ? ($3-$1)/dt : 0)}'
}

# The sum of a metric's samples (every label set) at URL/metrics.
metric() {  # HOST:PORT NAME
  curl -sf "http://$1/metrics" |
    awk -v n="$2" '$1 == n || index($1, n "{") == 1 {s += $NF} END {printf "%.0f\n", s}'
}

start_origin() {  # sets ORIGIN_PID, ORIGIN (host:port)
  : >"$WORK/origin.out"
  # --announce-interval 1: agents started together find each other at once.
  "$BIN" origin --store "$WORK/store" --listen 127.0.0.1:0 --trust "$WORK/key.pub" \
    --announce-interval 1 >"$WORK/origin.out" 2>>"$WORK/origin.err" &
  ORIGIN_PID=$!
  PIDS+=("$ORIGIN_PID")
  ORIGIN=$(wait_listening "$WORK/origin.out" "$ORIGIN_PID")
}

# Polls every agent's /v1/status every 50 ms until each runs ROOT; prints,
# per agent, the seconds from T0 to the first poll that showed it.
wait_active() {  # T0 ROOT ADDR...
  python3 - "$1" "$DATASET" "$2" "$TIMEOUT" "${@:3}" <<'EOF'
import json, sys, time, urllib.request
t0, dataset, root, timeout = float(sys.argv[1]), sys.argv[2], sys.argv[3], float(sys.argv[4])
addrs, done = sys.argv[5:], {}
deadline = time.time() + timeout
while len(done) < len(addrs):
    tick = time.time()
    for addr in addrs:
        if addr in done:
            continue
        try:
            with urllib.request.urlopen(f"http://{addr}/v1/status", timeout=5) as r:
                status = json.load(r)
        except OSError:
            status = {}
        for d in status.get("datasets", []):
            if d.get("name") == dataset and (d.get("active") or {}).get("root") == root:
                done[addr] = time.time() - t0
    if time.time() > deadline:
        sys.exit(f"{len(addrs) - len(done)} agents not on {root[:12]} after {timeout} s")
    time.sleep(max(0.0, 0.05 - (time.time() - tick)))
for addr in addrs:
    print(f"{done[addr]:.3f}")
EOF
}

verify_tree() {  # DIR ROOT
  "$BIN" verify "$1" --store "$WORK/store" --root "$2" >"$WORK/verify.out" 2>&1 ||
    fail "verify $1 failed: $(tail -n3 "$WORK/verify.out")"
}

# One fleetcast run: fresh store, origin and agents. Sets FC="FULL_LAST
# FULL_MEDIAN FULL_BUSY UPDATE_LAST UPDATE_MEDIAN UPDATE_BUSY RECV_MAX
# RECV_MEDIAN FLEET_SENT NEW_BYTES MANIFEST_BYTES V1_DISTINCT_BYTES", the
# update's phases (update_phases) and DUPLICATE_MAX (received twice).
run_fleetcast() {
  local i t0 c0 c1 pids=() addrs=() times1 times2 busy1 busy2
  rm -rf "$WORK/store" "$WORK/agents"
  start_origin
  "$BIN" publish "$WORK/v1" --origin "http://$ORIGIN" --dataset "$DATASET" \
    --key "$WORK/key" --release --json >"$WORK/publish1.json" 2>"$WORK/publish.err" ||
    fail "publish v1 failed: $(tail -n3 "$WORK/publish.err")"
  "$BIN" publish "$WORK/v2" --origin "http://$ORIGIN" --dataset "$DATASET" \
    --key "$WORK/key" --json >"$WORK/publish2.json" 2>"$WORK/publish.err" ||
    fail "publish v2 failed: $(tail -n3 "$WORK/publish.err")"
  ROOT1=$(json_field "$WORK/publish1.json" root)
  ROOT2=$(json_field "$WORK/publish2.json" root)
  local v1_bytes new_bytes manifest_bytes
  v1_bytes=$(json_field "$WORK/publish1.json" new_bytes)
  new_bytes=$(json_field "$WORK/publish2.json" new_bytes)
  manifest_bytes=$(curl -sf "http://$ORIGIN/v1/manifests/$ROOT2" | wc -c)
  find "$WORK/store" -type f -print0 | xargs -0 cat >/dev/null  # warm cache
  sync

  # The first full distribution: every agent from nothing to v1.
  c0=$(cpu_snap); t0=$(now)
  for i in $(seq "$AGENTS"); do
    mkdir -p "$WORK/agents/$i"
    "$BIN" agent --tracker "http://$ORIGIN" --data "$WORK/agents/$i/data" \
      --state "$WORK/agents/$i/state" --listen 127.0.0.1:0 --subscribe "$DATASET" \
      --trust "$WORK/key.pub" --announce-interval 1 \
      >"$WORK/agents/$i.out" 2>"$WORK/agents/$i.err" &
    pids+=($!); PIDS+=($!)
  done
  for i in $(seq "$AGENTS"); do
    addrs+=("$(wait_listening "$WORK/agents/$i.out" "${pids[$((i - 1))]}")")
  done
  times1=$(wait_active "$t0" "$ROOT1" "${addrs[@]}") || fail "v1: see $WORK/agents/*.err"
  c1=$(cpu_snap); busy1=$(cpu_busy "$c0" "$c1")

  # Counters before the update.
  local recv0=() dup0=() sent0=0 egress0 a
  for a in "${addrs[@]}"; do
    recv0+=("$(metric "$a" fleetcast_bytes_received_total)")
    dup0+=("$(metric "$a" fleetcast_bytes_duplicate_total)")
    sent0=$((sent0 + $(metric "$a" fleetcast_bytes_sent_total)))
  done
  egress0=$(metric "$ORIGIN" fleetcast_origin_bytes_sent_total)
  sync

  # The update: release v2, every agent from v1 to v2.
  c0=$(cpu_snap); t0=$(now)
  "$BIN" release "$DATASET" "$ROOT2" --tracker "http://$ORIGIN" >/dev/null ||
    fail "release of v2 failed"
  times2=$(wait_active "$t0" "$ROOT2" "${addrs[@]}") || fail "v2: see $WORK/agents/*.err"
  c1=$(cpu_snap); busy2=$(cpu_busy "$c0" "$c1")

  # Received: verified chunk bytes plus the chunks that arrived twice.
  local recv=() dup=() d sent1=0 egress1
  for i in "${!addrs[@]}"; do
    d=$(($(metric "${addrs[$i]}" fleetcast_bytes_duplicate_total) - dup0[i]))
    dup+=("$d")
    recv+=("$(($(metric "${addrs[$i]}" fleetcast_bytes_received_total) - recv0[i] + d))")
    sent1=$((sent1 + $(metric "${addrs[$i]}" fleetcast_bytes_sent_total)))
  done
  egress1=$(metric "$ORIGIN" fleetcast_origin_bytes_sent_total)
  stop "${pids[@]}" "$ORIGIN_PID"
  local phases
  phases=$(update_phases "$t0" "$ROOT2" "$WORK"/agents/*.err) ||
    fail "no update phases in the agents' logs"
  for i in $(seq "$AGENTS"); do
    verify_tree "$WORK/agents/$i/data/$DATASET/current" "$ROOT2"
  done
  local v1dir
  v1dir=$(find "$WORK/agents/1/data/$DATASET/versions" -maxdepth 1 -name "v1-*" -print -quit)
  [ -n "$v1dir" ] || fail "agent 1 did not keep v1"
  rm -rf "$WORK/agents"

  local fleet_sent=$(((sent1 - sent0) + (egress1 - egress0)))
  FC="$(printf '%s\n' "$times1" | sort -g | tail -n1) $(printf '%s\n' "$times1" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}') $busy1"
  FC+=" $(printf '%s\n' "$times2" | sort -g | tail -n1) $(printf '%s\n' "$times2" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}') $busy2"
  FC+=" $(printf '%s\n' "${recv[@]}" | sort -g | tail -n1) $(printf '%s\n' "${recv[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')"
  FC+=" $fleet_sent $new_bytes $manifest_bytes $v1_bytes $phases"
  FC+=" $(printf '%s\n' "${dup[@]}" | sort -g | tail -n1)"
}

# From the agents' logs (spdlog, local time), the update's two phases per
# agent: from the release T0 until the staging of ROOT joined the swarm (the
# manifest fetched, files hard-linked and kept chunks copied: "N files
# linked, M chunks (B bytes) copied from kept versions", then "staging LABEL
# ROOT12"), and from there to "activated" (the new chunks fetched, finalize:
# fsync, re-hash of what was not hashed in memory, activation). Prints
# "LOCAL_MEDIAN_S LOCAL_MAX_S REST_MEDIAN_S REST_MAX_S COPIED_BYTES
# LINKED_FILES" (copied bytes and linked files of the median agent).
update_phases() {  # T0 ROOT LOG...
  python3 - "$@" <<'EOF'
import datetime, re, statistics, sys
t0, root12 = float(sys.argv[1]), sys.argv[2][:12]
stamp = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)\]")
copied = re.compile(r"(\d+) files linked, \d+ chunks \((\d+) bytes\) copied from kept")
local, rest, copies, links = [], [], [], []
for path in sys.argv[3:]:
    staged = active = None
    c = l = 0
    for line in open(path, errors="replace"):
        m = stamp.match(line)
        if not m:
            continue
        t = datetime.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp()
        if t < t0 - 1:
            continue
        if (k := copied.search(line)):
            l, c = int(k.group(1)), int(k.group(2))
        elif f" {root12} (" in line and ": staging " in line:
            staged = t
        elif line.rstrip().endswith(f" {root12}") and ": activated " in line:
            active = t
    if staged is None or active is None:
        sys.exit(f"{path}: no staging or activation of {root12}")
    local.append(max(0.0, staged - t0))
    rest.append(active - staged)
    copies.append(c)
    links.append(l)
print(f"{statistics.median(local):.3f} {max(local):.3f} {statistics.median(rest):.3f} "
      f"{max(rest):.3f} {statistics.median(copies):.0f} {statistics.median(links):.0f}")
EOF
}

# One rsync run: a copy of v1 updated to v2. Sets RS="SECONDS SENT RECEIVED
# LITERAL MATCHED BUSY".
run_rsync() {
  local dst=$WORK/rsync-dst t0 t1 c0 c1
  rm -rf "$dst"
  cp -a "$WORK/v1" "$dst"
  find "$WORK/v2" "$dst" -type f -print0 | xargs -0 cat >/dev/null  # warm cache
  sync
  c0=$(cpu_snap); t0=$(now)
  rsync -a --delete --stats --no-whole-file "$WORK/v2/" "$dst/" >"$WORK/rsync.out" 2>&1 ||
    fail "rsync failed: $(tail -n3 "$WORK/rsync.out")"
  sync -f "$dst"
  t1=$(now); c1=$(cpu_snap)
  diff -r -q --no-dereference "$WORK/v2" "$dst" >/dev/null || fail "rsync: $dst differs from v2"
  rm -rf "$dst"
  # rsync prints numbers with thousands separators ("1,234"): drop them.
  stat_num() { grep -m1 "^$1:" "$WORK/rsync.out" | sed 's/^[^:]*: *//; s/,//g; s/ .*//'; }
  RS="$(echo "$t1 - $t0" | bc -l) $(stat_num 'Total bytes sent') $(stat_num 'Total bytes received')"
  RS+=" $(stat_num 'Literal data') $(stat_num 'Matched data') $(cpu_busy "$c0" "$c1")"
}

# ---------------------------------------------------------------------------
log "data in $WORK ($FSTYPE); generating $SIZE in $FILES files, v2 = --mutate $EDIT"
"$BIN" generate "$WORK/v1" --size "$SIZE" --files "$FILES" --seed 1 >/dev/null
cp -a "$WORK/v1" "$WORK/v2"
"$BIN" generate "$WORK/v2" --mutate "$EDIT" --seed 2 >"$WORK/mutation.json"
BYTES=$(find "$WORK/v1" -type f -printf '%s\n' | awk '{s += $1} END {print s}')
NFILES=$(find "$WORK/v1" -type f | wc -l)
EDITED=$(json_field "$WORK/mutation.json" bytes_edited)
INSERTED=$(json_field "$WORK/mutation.json" bytes_inserted)
ADDED=$(json_field "$WORK/mutation.json" bytes_added)
CHANGED=$((EDITED + INSERTED + ADDED))
log "v1 $BYTES bytes in $NFILES files; edit: $(cat "$WORK/mutation.json")"
"$BIN" keygen --out "$WORK/key" >/dev/null

SAMPLES_FC=() SAMPLES_RS=()
for r in $(seq "$REPEAT"); do
  run_rsync
  read -r rs_t rs_sent rs_recv rs_lit rs_match rs_busy <<<"$RS"
  log "repeat $r/$REPEAT: rsync $(printf '%.2f' "$rs_t") s, sent $rs_sent, received $rs_recv (literal $rs_lit)"
  SAMPLES_RS+=("$RS")
  run_fleetcast
  read -r full_last full_med full_busy up_last up_med up_busy recv_max recv_med fleet_sent new_b man_b v1_b <<<"$FC"
  log "repeat $r/$REPEAT: update phases: local $(echo "$FC" | awk '{print $13 " s median, " $14 " s max"}'), fetch + finalize $(echo "$FC" | awk '{print $15 " s median, " $16 " s max; copied " $17 " bytes, linked " $18 " files"}')"
  log "repeat $r/$REPEAT: $AGENTS agents: v1 in $(printf '%.2f' "$full_last") s (cpu $(printf '%.0f%%' "$(echo "$full_busy * 100" | bc -l)")), v2 update in $(printf '%.2f' "$up_last") s (cpu $(printf '%.0f%%' "$(echo "$up_busy * 100" | bc -l)")); received per agent max $recv_max, fleet sent $fleet_sent; new chunks $new_b + manifest $man_b"
  SAMPLES_FC+=("$FC")
done

# ---------------------------------------------------------------------------
# Medians, table and JSON line.
CPU_MODEL=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
KERNEL=$(uname -r)
DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)
TMPBASE=${TMPDIR:-/var/tmp}
RSYNC_VERSION=$(rsync --version | awk 'NR == 1 {print $3}')
SAMPLES_FC_TEXT=$(printf '%s\n' "${SAMPLES_FC[@]}")
SAMPLES_RS_TEXT=$(printf '%s\n' "${SAMPLES_RS[@]}")
MUTATION=$(cat "$WORK/mutation.json")
export BYTES NFILES FILES CORES REPEAT AGENTS FSTYPE SIZE EDIT EDITED INSERTED ADDED CHANGED \
  CPU_MODEL KERNEL DATE COMMIT TMPBASE RSYNC_VERSION BIN_SHA256 SAMPLES_FC_TEXT \
  SAMPLES_RS_TEXT MUTATION
mkdir -p "$(dirname "$RESULTS")"
python3 - "$RESULTS" <<'EOF'
import json, os, statistics, sys
e = os.environ
fc_fields = ["full_last_s", "full_median_s", "full_cpu_busy", "update_last_s",
             "update_median_s", "update_cpu_busy", "received_max_bytes",
             "received_median_bytes", "fleet_sent_bytes", "new_chunk_bytes",
             "manifest_bytes", "v1_distinct_bytes", "local_phase_median_s",
             "local_phase_max_s", "fetch_finalize_median_s",
             "fetch_finalize_max_s", "copied_bytes", "linked_files",
             "duplicate_max_bytes"]
rs_fields = ["seconds", "sent_bytes", "received_bytes", "literal_bytes",
             "matched_bytes", "cpu_busy"]
def samples(text, fields):
    out = {f: [] for f in fields}
    for line in text.splitlines():
        for f, v in zip(fields, line.split()):
            out[f].append(float(v))
    return out
fc = samples(e["SAMPLES_FC_TEXT"], fc_fields)
rs = samples(e["SAMPLES_RS_TEXT"], rs_fields)
med = lambda xs: statistics.median(xs)
F = {k: med(v) for k, v in fc.items()}
R = {k: med(v) for k, v in rs.items()}
agents, size, changed = int(e["AGENTS"]), int(e["BYTES"]), int(e["CHANGED"])
new = F["new_chunk_bytes"] + F["manifest_bytes"]
per_node_sent = F["fleet_sent_bytes"] / agents
rsync_moved = R["sent_bytes"] + R["received_bytes"]
rows = [
    ("the edit (edited + inserted + added)", changed),
    ("chunks new in v2 + manifest", new),
    ("fleetcast: received by one agent (max, incl. twice)", F["received_max_bytes"]),
    ("  of which received twice (max)", F["duplicate_max_bytes"]),
    ("fleetcast: sent by the fleet / N (incl. duplicates)", per_node_sent),
    ("rsync --no-whole-file: sent + received", rsync_moved),
    ("rsync: literal data", R["literal_bytes"]),
]
print(f"\ndelta benchmark: {size / 2**20:.0f} MiB in {e['NFILES']} files, "
      f"v2 = --mutate {e['EDIT']} ({changed} bytes changed, {100 * changed / size:.2f}%), "
      f"{agents} agents, {e['CORES']} cores ({e['CPU_MODEL']}), data on {e['FSTYPE']}, "
      f"median of {e['REPEAT']}")
print(f"{'bytes per node':<52} {'bytes':>12} {'MiB':>8} {'x edit':>7} {'x new':>7}")
for label, b in rows:
    print(f"{label:<52} {b:>12.0f} {b / 2**20:>8.2f} {b / changed:>7.2f} {b / new:>7.2f}")
flag = lambda busy: "  CPU-bound" if busy >= 0.9 else ""
print(f"\n{'time':<52} {'seconds':>8} {'x full':>7} {'cpu busy':>9}")
for label, t, busy in [
        (f"first distribution of v1 to {agents} agents (last)", F["full_last_s"], F["full_cpu_busy"]),
        (f"first distribution of v1 (median agent)", F["full_median_s"], F["full_cpu_busy"]),
        (f"update v1 -> v2 of {agents} agents (last)", F["update_last_s"], F["update_cpu_busy"]),
        (f"update v1 -> v2 (median agent)", F["update_median_s"], F["update_cpu_busy"]),
        ("rsync of one copy v1 -> v2", R["seconds"], R["cpu_busy"])]:
    print(f"{label:<52} {t:>8.2f} {t / F['full_last_s']:>7.3f} {busy * 100:>8.0f}%{flag(busy)}")
print(f"\nupdate phases per agent (median / max): release -> staging joins the swarm "
      f"(manifest, {F['linked_files']:.0f} files hard-linked, "
      f"{F['copied_bytes'] / 2**20:.0f} MiB of kept chunks copied) "
      f"{F['local_phase_median_s']:.2f} / {F['local_phase_max_s']:.2f} s; "
      f"-> active (new chunks fetched, finalize) "
      f"{F['fetch_finalize_median_s']:.2f} / {F['fetch_finalize_max_s']:.2f} s")
record = {
    "bench": "delta", "date": e["DATE"], "commit": e["COMMIT"],
    "binary_sha256": e["BIN_SHA256"],
    "machine": {"nproc": int(e["CORES"]), "cpu": e["CPU_MODEL"], "kernel": e["KERNEL"],
                "fs": e["FSTYPE"], "tmpdir": e["TMPBASE"], "rsync": e["RSYNC_VERSION"]},
    "bytes": size, "files": int(e["NFILES"]), "agents": agents, "repeat": int(e["REPEAT"]),
    "edit_fraction": float(e["EDIT"]), "mutation": json.loads(e["MUTATION"]),
    "changed_bytes": changed,
    "rsync_command": "rsync -a --delete --stats --no-whole-file v2/ copy-of-v1/ (local)",
    "median": {"fleetcast": F, "rsync": R},
    "per_node_bytes": {
        "changed": changed, "new_chunks_plus_manifest": new,
        "fleetcast_received_max": F["received_max_bytes"],
        "fleetcast_received_twice_max": F["duplicate_max_bytes"],
        "fleetcast_fleet_sent_per_node": per_node_sent,
        "rsync_sent_plus_received": rsync_moved,
        "rsync_literal": R["literal_bytes"]},
    "update_over_full_distribution": F["update_last_s"] / F["full_last_s"],
    "cpu_bound": [k for k, v in (("full", F["full_cpu_busy"]), ("update", F["update_cpu_busy"]),
                                 ("rsync", R["cpu_busy"])) if v >= 0.9],
    "samples": {"fleetcast": fc, "rsync": rs},
}
with open(sys.argv[1], "a") as f:
    f.write(json.dumps(record, sort_keys=True) + "\n")
print(f"appended to {sys.argv[1]}")
EOF
