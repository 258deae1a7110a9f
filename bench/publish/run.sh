#!/usr/bin/env bash
# Publish throughput against its baselines, side by side in one run:
#   sha256sum over the same files, one process per core (the hashing floor)
#   fleetcast publish into a store on tmpfs (/dev/shm: CPU work, no disk)
#   fleetcast publish into a store on the work disk (durable: fdatasync)
#   cp -r of the tree to the work disk + sync (writing the bytes once: the
#   disk's limit for any store on it)
# Each figure is the median of --repeat runs with a warm page cache.
# Usage: bench/publish/run.sh FLEETCAST_BIN [--size 2GiB] [--files 64] [--repeat 3]
set -euo pipefail
BIN=$(realpath "$1"); shift
SIZE=2GiB FILES=64 REPEAT=3
while [ $# -gt 0 ]; do
  case $1 in
    --size) SIZE=$2; shift 2 ;;
    --files) FILES=$2; shift 2 ;;
    --repeat) REPEAT=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
CORES=$(nproc)
WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/fleetcast-bench-XXXXXX")
SHM=$(mktemp -d /dev/shm/fleetcast-bench-XXXXXX)
trap 'rm -rf "$WORK" "$SHM"' EXIT

"$BIN" generate "$WORK/data" --size "$SIZE" --files "$FILES" --seed 1
BYTES=$(du -sb --apparent-size "$WORK/data" | cut -f1)
"$BIN" keygen --out "$WORK/key" >/dev/null
sync  # the generated tree must not be written back during the measurements
cat $(find "$WORK/data" -type f) >/dev/null  # warm the page cache

now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
time_sha256sum() {
  local t0 t1
  t0=$(now)
  find "$WORK/data" -type f -print0 | xargs -0 -P "$CORES" -n 4 sha256sum >/dev/null
  t1=$(now)
  echo "$t1 - $t0" | bc -l
}
time_publish() {  # STORE_DIR
  rm -rf "$1"
  "$BIN" publish "$WORK/data" --store "$1" --dataset bench/publish --key "$WORK/key" --json |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["seconds"])'
}
time_copy() {
  local t0 t1
  rm -rf "$WORK/copy"
  t0=$(now)
  cp -r "$WORK/data" "$WORK/copy"
  sync -f "$WORK/copy"
  t1=$(now)
  rm -rf "$WORK/copy"
  echo "$t1 - $t0" | bc -l
}

declare -A T
for what in sha256sum publish_tmpfs publish_disk copy_disk; do
  for _ in $(seq "$REPEAT"); do
    case $what in
      sha256sum) time_sha256sum ;;
      publish_tmpfs) time_publish "$SHM/store" ;;
      publish_disk) time_publish "$WORK/store" ;;
      copy_disk) time_copy ;;
    esac
  done | median > "$WORK/$what.t"
  T[$what]=$(cat "$WORK/$what.t")
done

rate() { echo "$BYTES / ${T[$1]} / 1048576" | bc -l; }
printf '\npublish benchmark: %s in %s files, %s cores, median of %s\n' \
  "$(numfmt --to=iec-i --suffix=B "$BYTES")" "$FILES" "$CORES" "$REPEAT"
printf '%-28s %8.2f s %9.0f MiB/s\n' "sha256sum x$CORES (baseline)" "${T[sha256sum]}" "$(rate sha256sum)"
printf '%-28s %8.2f s %9.0f MiB/s  ratio %.2f of sha256sum\n' "publish, store on tmpfs" \
  "${T[publish_tmpfs]}" "$(rate publish_tmpfs)" "$(echo "${T[sha256sum]} / ${T[publish_tmpfs]}" | bc -l)"
printf '%-28s %8.2f s %9.0f MiB/s  ratio %.2f of sha256sum\n' "publish, store on disk" \
  "${T[publish_disk]}" "$(rate publish_disk)" "$(echo "${T[sha256sum]} / ${T[publish_disk]}" | bc -l)"
printf '%-28s %8.2f s %9.0f MiB/s  publish on disk at %.2f of this\n' "cp -r + sync (disk limit)" \
  "${T[copy_disk]}" "$(rate copy_disk)" "$(echo "${T[copy_disk]} / ${T[publish_disk]}" | bc -l)"
