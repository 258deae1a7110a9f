#!/usr/bin/env bash
# Fetch (issue 3): one agent and a fleet of agents against plain HTTP, side by
# side in one run, on loopback, without rate limits, every byte written to the
# work disk (never tmpfs):
#   nginx (sendfile) serving the generated files; curl -s -o of every file in
#     turn + sync (the baseline the target is stated against: fleetcast get
#     within 1.25 x of it)
#   the same curl + sha256sum of the files + sync (download and check)
#   fleetcast get from a fresh origin: start to exit (fetch through the swarm,
#     verify every chunk, finalize = fsync (+ re-verify of what was not
#     hashed in this process), move to --out)
#   one fleetcast agent subscribed to the dataset: start until its /v1/status
#     shows the version active (polled every 50 ms)
#   N fleetcast agents started together: time to the last and the median
#     agent active, origin egress / dataset bytes from the origin's /metrics,
#     every node checked with fleetcast verify
# The version is published once (through the origin, as a publisher would);
# every fleetcast measurement gets a fresh origin on the same store (an empty
# tracker, zeroed counters). The data lives in a temp dir under
# ${TMPDIR:-/var/tmp} (refused if that is tmpfs); page caches are warm (the
# dataset and the store are read before each repeat); a sync precedes every
# timed run. The measurements alternate (one of each per repeat, the order
# rotated); each figure is the median of --repeat. Recorded for every run:
# the busy share of the whole machine's CPUs (from /proc/stat; >= 90% flags
# the run CPU-bound, whoever used the CPU) and the CPU seconds of the run's
# own processes (servers included) with their share of all cores.
# Prints a table and appends one JSON line to --results
# (default bench/results/fetch.jsonl).
# Usage: bench/fetch/run.sh FLEETCAST_BIN [--size 1GiB] [--files 8]
#          [--agents 12] [--repeat 3] [--results FILE]
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
SRC_BIN=$(realpath "$1"); shift
SIZE=1GiB FILES=8 AGENTS=12 REPEAT=3 RESULTS=$REPO/bench/results/fetch.jsonl
TIMEOUT=1200  # seconds for one fetch (a get, or every agent active)
while [ $# -gt 0 ]; do
  case $1 in
    --size) SIZE=$2; shift 2 ;;
    --files) FILES=$2; shift 2 ;;
    --agents) AGENTS=$2; shift 2 ;;
    --repeat) REPEAT=$2; shift 2 ;;
    --results) RESULTS=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
for tool in nginx curl sha256sum python3 bc; do
  command -v "$tool" >/dev/null || PATH=$PATH:/usr/sbin:/sbin
  command -v "$tool" >/dev/null || { echo "fetch bench: $tool not found (./dev setup)" >&2; exit 2; }
done

CORES=$(nproc)
DATASET=bench/data
WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/fleetcast-fetch-XXXXXX")
FSTYPE=$(df --output=fstype "$WORK" | tail -n1)
PIDS=()  # every process this script started in the background
GET_EXIT=()  # nonzero exit statuses of fleetcast get runs that delivered anyway

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
  tmpfs|ramfs) echo "fetch bench: $WORK is on $FSTYPE; set TMPDIR to a directory on disk" >&2; exit 2 ;;
esac
# The binary under test, copied: a rebuild of the tree during the run must
# not change it (and perf finds its symbols here).
mkdir -p "$WORK/bin"
cp "$SRC_BIN" "$WORK/bin/fleetcast"
BIN=$WORK/bin/fleetcast
BIN_SHA256=$(sha256sum "$BIN" | cut -c1-16)
COMMIT=$(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown)

log() { printf '  %s\n' "$*" >&2; }
now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]}'; }
fail() { echo "fetch bench: $*" >&2; exit 3; }

# Forget a finished background pid (so cleanup does not signal a reused pid).
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

# CPU jiffies of the whole machine: "busy total iowait".
cpu_snap() {
  awk '/^cpu /{t=0; for (i=2; i<=NF; i++) t+=$i; print t-$5-$6-$9, t, $6}' /proc/stat
}
cpu_busy() {  # "SNAP0" "SNAP1" -> busy share 0..1
  echo "$1 $2" | awk '{dt=$5-$2; print (dt > 0 ? ($4-$1)/dt : 0)}'
}
# Sets OWN to the CPU seconds used so far by this script's own processes:
# every child it has waited for (bash's times, which must run in this shell,
# not in a $(subshell); a run stops its servers before the second snapshot)
# plus the nginx worker, which runs throughout.
CLK_TCK=$(getconf CLK_TCK)
own_cpu() {
  local w ticks=0 workers=()
  times >"$WORK/times"
  if [ -n "${NGINX_PID:-}" ]; then
    read -ra workers 2>/dev/null <"/proc/$NGINX_PID/task/$NGINX_PID/children" || workers=()
    for w in "${workers[@]}"; do
      ticks=$((ticks + $(awk '{print $14 + $15}' "/proc/$w/stat" 2>/dev/null || echo 0)))
    done
  fi
  OWN=$(tail -n1 "$WORK/times" | awk -v t="$ticks" -v hz="$CLK_TCK" '
    function s(x) { split(x, a, "m"); sub("s", "", a[2]); return a[1] * 60 + a[2] }
    { printf "%.3f\n", s($1) + s($2) + t / hz }')
}

start_origin() {  # sets ORIGIN_PID, ORIGIN (host:port)
  # Emptied here: the child truncates it only once it runs, and the line of
  # the previous origin must not be read as this one's.
  : >"$WORK/origin.out"
  # --announce-interval: the interval the tracker gives agents (it wins over
  # theirs), so agents that start together learn of each other within 1 s.
  "$BIN" origin --store "$WORK/store" --listen 127.0.0.1:0 --trust "$WORK/key.pub" \
    --announce-interval 1 >"$WORK/origin.out" 2>>"$WORK/origin.err" &
  ORIGIN_PID=$!
  PIDS+=("$ORIGIN_PID")
  ORIGIN=$(wait_listening "$WORK/origin.out" "$ORIGIN_PID")
}
origin_egress() {  # bytes sent by the origin, both protocols
  curl -sf "http://$ORIGIN/metrics" |
    awk '/^fleetcast_origin_bytes_sent_total/ {s += $NF} END {printf "%.0f\n", s}'
}

# nginx as an unprivileged foreground process on a free loopback port (a free
# port is picked by binding port 0; retried if another process takes it first).
start_nginx() {  # sets NGINX_PID, NGINX (host:port)
  local try port user=""
  mkdir -p "$WORK/nginx"
  # Run by root, nginx switches its workers to nobody: they must read the data.
  if [ "$(id -u)" -eq 0 ]; then
    user="user nobody $(id -gn nobody 2>/dev/null || echo nogroup);"
    chmod 755 "$WORK"
    chmod -R a+rX "$WORK/data"
  fi
  for try in 1 2 3 4 5; do
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    cat >"$WORK/nginx/nginx.conf" <<EOF
$user
daemon off;
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log;
events { worker_connections 64; }
http {
  access_log off;
  sendfile on;
  default_type application/octet-stream;
  client_body_temp_path $WORK/nginx/client_body;
  proxy_temp_path $WORK/nginx/proxy;
  fastcgi_temp_path $WORK/nginx/fastcgi;
  uwsgi_temp_path $WORK/nginx/uwsgi;
  scgi_temp_path $WORK/nginx/scgi;
  server { listen 127.0.0.1:$port; root $WORK/data; }
}
EOF
    nginx -p "$WORK/nginx" -e "$WORK/nginx/error.log" -c "$WORK/nginx/nginx.conf" \
      >"$WORK/nginx/stdout" 2>&1 &
    NGINX_PID=$!
    PIDS+=("$NGINX_PID")
    NGINX=127.0.0.1:$port
    local i
    for i in $(seq 100); do
      if curl -sf -o /dev/null "http://$NGINX/${NAMES[0]}" -r 0-0; then return; fi
      kill -0 "$NGINX_PID" 2>/dev/null || break
      sleep 0.05
    done
    stop "$NGINX_PID"
    log "nginx did not start on port $port (try $try): $(tail -n1 "$WORK/nginx/error.log" 2>/dev/null)"
  done
  fail "nginx did not start"
}

# Each timed run sets RES="SECONDS CPU_BUSY ORIGIN_EGRESS_BYTES OWN_CPU_SECONDS"
# (in this shell,
# not a subshell: the processes it starts stay known to cleanup).
run_curl() {  # WITH_SHA256SUM(0|1)
  local out=$WORK/curl t0 t1 c0 c1 o0 o1 n
  rm -rf "$out"; mkdir -p "$out"; sync
  own_cpu; o0=$OWN; c0=$(cpu_snap); t0=$(now)
  for n in "${NAMES[@]}"; do
    mkdir -p "$out/$(dirname "$n")"
    curl -sf -o "$out/$n" "http://$NGINX/$n"
  done
  if [ "$1" = 1 ]; then (cd "$out" && sha256sum "${NAMES[@]}") >"$WORK/curl.sha256"; fi
  sync -f "$out"
  t1=$(now); c1=$(cpu_snap); own_cpu; o1=$OWN
  if [ "$1" = 1 ]; then
    # The bytes are right (checked outside the timing).
    diff -q <(cut -d' ' -f1 "$WORK/curl.sha256") <(cut -d' ' -f1 "$WORK/data.sha256") >/dev/null ||
      fail "curl fetched different bytes"
  fi
  rm -rf "$out"
  RES="$(echo "$t1 - $t0" | bc -l) $(cpu_busy "$c0" "$c1") 0 $(echo "$o1 - $o0" | bc -l)"
}

verify_tree() {  # DIR
  "$BIN" verify "$1" --store "$WORK/store" --root "$ROOT" >"$WORK/verify.out" 2>&1 ||
    fail "verify $1 failed: $(tail -n3 "$WORK/verify.out")"
}

run_get() {
  local out=$WORK/get t0 t1 c0 c1 o0 o1 egress
  rm -rf "$out" "$WORK/.get.fleetcast"
  own_cpu; o0=$OWN
  start_origin; sync
  c0=$(cpu_snap); t0=$(now)
  local rc=0
  timeout --foreground "$TIMEOUT" "$BIN" get --tracker "http://$ORIGIN" --dataset "$DATASET" --out "$out" \
    --trust "$WORK/key.pub" >"$WORK/get.out" 2>"$WORK/get.err" || rc=$?
  t1=$(now); c1=$(cpu_snap)
  if [ "$rc" -ne 0 ]; then
    # A get that dies after it moved the verified tree into place still
    # delivered it (the verify below decides); the exit status is reported.
    [ -d "$out" ] || fail "fleetcast get failed ($rc): $(tail -n3 "$WORK/get.err")"
    log "fleetcast get exited with status $rc after delivering $out: $(tail -n1 "$WORK/get.err")"
    GET_EXIT+=("$rc")
  fi
  egress=$(origin_egress)
  stop "$ORIGIN_PID"
  own_cpu; o1=$OWN
  verify_tree "$out"
  rm -rf "$out" "$WORK/.get.fleetcast"
  RES="$(echo "$t1 - $t0" | bc -l) $(cpu_busy "$c0" "$c1") $egress $(echo "$o1 - $o0" | bc -l)"
}

# Starts N agents (its own data and state dirs each), waits for every one to
# have the version active; sets RES="LAST MEDIAN CPU_BUSY EGRESS OWN_CPU".
run_agents() {  # N
  local n=$1 i t0 c0 c1 o0 o1 pids=() addrs=() times egress
  rm -rf "$WORK/agents"
  own_cpu; o0=$OWN
  start_origin; sync
  c0=$(cpu_snap); t0=$(now)
  for i in $(seq "$n"); do
    mkdir -p "$WORK/agents/$i"
    "$BIN" agent --tracker "http://$ORIGIN" --data "$WORK/agents/$i/data" \
      --state "$WORK/agents/$i/state" --listen 127.0.0.1:0 --subscribe "$DATASET" \
      --trust "$WORK/key.pub" --announce-interval 1 \
      >"$WORK/agents/$i.out" 2>"$WORK/agents/$i.err" &
    pids+=($!); PIDS+=($!)
  done
  for i in $(seq "$n"); do
    addrs+=("${pids[$((i - 1))]}=$(wait_listening "$WORK/agents/$i.out" "${pids[$((i - 1))]}")")
  done
  times=$(python3 - "$t0" "$DATASET" "$ROOT" "$TIMEOUT" "${addrs[@]}" <<'EOF'
# Polls every agent's /v1/status every 50 ms; prints, per agent, the seconds
# from T0 to the first poll that shows ROOT active for DATASET.
import json, sys, time, urllib.request
t0, dataset, root = float(sys.argv[1]), sys.argv[2], sys.argv[3]
agents = dict(a.split("=", 1) for a in sys.argv[5:])  # pid -> host:port
done, deadline = {}, time.time() + float(sys.argv[4])
def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
while len(done) < len(agents):
    tick = time.time()
    for pid, addr in agents.items():
        if pid in done:
            continue
        try:
            with urllib.request.urlopen(f"http://{addr}/v1/status", timeout=5) as r:
                status = json.load(r)
        except OSError:
            status = {}
        for d in status.get("datasets", []):
            if d.get("name") == dataset and (d.get("active") or {}).get("root") == root:
                done[pid] = time.time() - t0
        if pid not in done and not alive(pid):
            sys.exit(f"agent {pid} ({addr}) exited before activating the version")
    if time.time() > deadline:
        sys.exit(f"{len(agents) - len(done)} agents not active after {sys.argv[4]} s")
    time.sleep(max(0.0, 0.05 - (time.time() - tick)))
for pid in agents:
    print(f"{done[pid]:.3f}")
EOF
  ) || fail "agents: see $WORK/agents/*.err"
  c1=$(cpu_snap)
  egress=$(origin_egress)
  stop "${pids[@]}" "$ORIGIN_PID"
  own_cpu; o1=$OWN
  for i in $(seq "$n"); do verify_tree "$WORK/agents/$i/data/$DATASET/current"; done
  rm -rf "$WORK/agents"
  RES="$(echo "$times" | sort -g | tail -n1) $(echo "$times" | median) $(cpu_busy "$c0" "$c1") $egress $(echo "$o1 - $o0" | bc -l)"
}

# ---------------------------------------------------------------------------
log "data in $WORK ($FSTYPE); generating $SIZE in $FILES files"
"$BIN" generate "$WORK/data" --size "$SIZE" --files "$FILES" --seed 1 >/dev/null
mapfile -t NAMES < <(cd "$WORK/data" && find . -type f -printf '%P\n' | sort)
BYTES=$(cd "$WORK/data" && cat "${NAMES[@]}" | wc -c)
(cd "$WORK/data" && sha256sum "${NAMES[@]}") >"$WORK/data.sha256"
"$BIN" keygen --out "$WORK/key" >/dev/null
start_origin
"$BIN" publish "$WORK/data" --origin "http://$ORIGIN" --dataset "$DATASET" \
  --key "$WORK/key" --release --json >"$WORK/publish.json" 2>"$WORK/publish.err" ||
  fail "publish failed: $(tail -n3 "$WORK/publish.err")"
stop "$ORIGIN_PID"
ROOT=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["root"])' "$WORK/publish.json")
start_nginx
log "published $DATASET root ${ROOT:0:16}; nginx on $NGINX (pid $NGINX_PID)"
sync

declare -A S  # run name -> space-separated samples "seconds:busy:egress:own_cpu"
ORDER=(curl get curl_sha agent)
for r in $(seq "$REPEAT"); do
  # Warm page caches: the served files and the origin's chunk store.
  find "$WORK/data" "$WORK/store" -type f -print0 | xargs -0 cat >/dev/null
  for k in $(seq 0 3); do
    what=${ORDER[$(((k + r - 1) % 4))]}
    case $what in
      curl) run_curl 0; read -r t b e o <<<"$RES" ;;
      curl_sha) run_curl 1; read -r t b e o <<<"$RES" ;;
      get) run_get; read -r t b e o <<<"$RES" ;;
      agent) run_agents 1; read -r t _ b e o <<<"$RES" ;;
    esac
    log "repeat $r/$REPEAT: $what $(printf '%.2f s, machine cpu busy %.0f%%, own cpu %.2f s' "$t" "$(echo "$b * 100" | bc -l)" "$o")"
    S[$what]+="$t:$b:$e:$o "
  done
  if [ "$AGENTS" -gt 0 ]; then
    run_agents "$AGENTS"; read -r last med b e o <<<"$RES"
    log "repeat $r/$REPEAT: $AGENTS agents: last $(printf '%.2f' "$last") s, median $(printf '%.2f' "$med") s, machine cpu busy $(printf '%.0f%%' "$(echo "$b * 100" | bc -l)"), own cpu $(printf '%.2f' "$o") s, egress $(printf '%.2f' "$(echo "$e / $BYTES" | bc -l)") x"
    S[fleet_last]+="$last:$b:$e:$o "
    S[fleet_median]+="$med:$b:$e:$o "
  fi
done
stop "$NGINX_PID"

# ---------------------------------------------------------------------------
# Medians, table and JSON line.
GET_EXITS="${GET_EXIT[*]}"
export BYTES FILES CORES REPEAT AGENTS FSTYPE WORK SIZE ROOT GET_EXITS
CPU_MODEL=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
KERNEL=$(uname -r)
DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)
TMPBASE=${TMPDIR:-/var/tmp}
NGINX_VERSION=$(nginx -v 2>&1 | sed 's/.*nginx\///')
export CPU_MODEL KERNEL DATE COMMIT TMPBASE NGINX_VERSION BIN_SHA256
SAMPLES=$(for k in "${!S[@]}"; do echo "$k ${S[$k]}"; done)
export SAMPLES
mkdir -p "$(dirname "$RESULTS")"
python3 - "$RESULTS" <<'EOF'
import json, os, statistics, sys
e = os.environ
size, cores = int(e["BYTES"]), int(e["CORES"])
runs = {}
for line in e["SAMPLES"].splitlines():
    name, *samples = line.split()
    s = [tuple(float(x) for x in v.split(":")) for v in samples]
    runs[name] = {"seconds": [x[0] for x in s], "machine_cpu_busy": [x[1] for x in s],
                  "origin_egress_bytes": [x[2] for x in s], "own_cpu_seconds": [x[3] for x in s]}
def m(k, field):
    return statistics.median(runs[k][field])
med = {k: m(k, "seconds") for k in runs}
busy = {k: m(k, "machine_cpu_busy") for k in runs}
own = {k: m(k, "own_cpu_seconds") for k in runs}
# Own CPU share of the machine during the run: CPU seconds / (wall x cores);
# for the fleet, over the time to the last agent.
wall = dict(med, fleet_median=med.get("fleet_last", 0))
own_share = {k: own[k] / (wall[k] * cores) for k in runs}
egress = {k: m(k, "origin_egress_bytes") / size for k in ("get", "agent", "fleet_last") if k in runs}
labels = [
    ("curl", "curl -o + sync (nginx)"),
    ("curl_sha", "curl -o + sha256sum + sync"),
    ("get", "fleetcast get"),
    ("agent", "fleetcast agent: to active"),
    ("fleet_last", f"{e['AGENTS']} agents: last active"),
    ("fleet_median", f"{e['AGENTS']} agents: median agent"),
]
gib = size / 2**30
print(f"\nfetch benchmark: {size / 2**20:.0f} MiB in {e['FILES']} files over loopback, "
      f"{cores} cores ({e['CPU_MODEL']}), data on {e['FSTYPE']} under {e['TMPBASE']}, "
      f"median of {e['REPEAT']}")
print(f"{'run':<30} {'time':>8} {'s/GiB':>6} {'MiB/s':>6} {'/curl':>6} {'/curl+sha':>9} "
      f"{'machine cpu':>11} {'own cpu':>9} {'egress':>7}")
for k, label in labels:
    if k not in med:
        continue
    t = med[k]
    flag = "  CPU-bound" if busy[k] >= 0.9 else ""
    eg = f"{egress[k]:.2f}x" if k in egress else ""
    ocpu = f"{own[k]:.1f}s {own_share[k] * 100:.0f}%" if k != "fleet_median" else ""
    print(f"{label:<30} {t:>6.2f} s {t / gib:>6.2f} {size / t / 2**20:>6.0f} "
          f"{t / med['curl']:>6.2f} {t / med['curl_sha']:>9.2f} {busy[k] * 100:>10.0f}% "
          f"{ocpu:>9} {eg:>7}{flag}")
print("machine cpu: busy share of all cores during the run (/proc/stat), other users included; "
      "own cpu: CPU seconds of this run's processes, servers included, and their share "
      "of all cores; egress: origin bytes sent / dataset bytes")
print(f"target fleetcast get <= 1.25 x curl: "
      f"{'met' if med['get'] <= 1.25 * med['curl'] else 'NOT met'} "
      f"({med['get'] / med['curl']:.2f} x; curl {med['curl'] / gib:.2f} s/GiB, "
      f"curl + sha256sum {med['curl_sha'] / gib:.2f} s/GiB)")
get_exits = [int(x) for x in e["GET_EXITS"].split()]
if get_exits:
    print(f"BROKEN: fleetcast get exited nonzero in {len(get_exits)} of "
          f"{len(runs['get']['seconds'])} runs (statuses {get_exits}) after delivering "
          f"a tree that verified")
record = {
    "bench": "fetch", "date": e["DATE"], "commit": e["COMMIT"],
    "binary_sha256": e["BIN_SHA256"],
    "machine": {"nproc": cores, "cpu": e["CPU_MODEL"], "kernel": e["KERNEL"],
                "fs": e["FSTYPE"], "tmpdir": e["TMPBASE"], "nginx": e["NGINX_VERSION"]},
    "bytes": size, "files": int(e["FILES"]), "agents": int(e["AGENTS"]),
    "repeat": int(e["REPEAT"]),
    "median_seconds": med,
    "ratio_to_curl": {k: v / med["curl"] for k, v in med.items()},
    "ratio_to_curl_sha256sum": {k: v / med["curl_sha"] for k, v in med.items()},
    "target_get_over_curl": 1.25,
    "target_met": med["get"] <= 1.25 * med["curl"],
    "origin_egress_over_size": egress,
    "median_machine_cpu_busy": busy,
    "median_own_cpu_seconds": own,
    "own_cpu_share": own_share,
    "cpu_bound": sorted(k for k, v in busy.items() if v >= 0.9),
    "get_nonzero_exits": get_exits,
    "samples": runs,
}
with open(sys.argv[1], "a") as f:
    f.write(json.dumps(record, sort_keys=True) + "\n")
print(f"appended to {sys.argv[1]}")
EOF
