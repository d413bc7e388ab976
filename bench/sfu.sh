#!/usr/bin/env bash
# One SFU measurement as one command: takes the bench lock (other work on the
# machine waits, and this waits for it), notes the load average before and
# after, runs bench/run.sh with the given sb-loadgen arguments, and saves
#   bench/results/sfu-NAME.json  {"name", "date", "load_before", "load_after", "result"}
# Usage: bench/sfu.sh NAME [sb-loadgen args...]
#   bench/sfu.sh fanout-10x90 --mode sfu --speakers 10 --listeners 90 --duration 20
#   bench/sfu.sh churn-1000 --mode sfu-churn --cycles 1000 --churners 10
# BENCH_LOCK names the lock file (default /tmp/switchboard-bench.lock).
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $# -ge 1 ]] || { sed -n '2,10p' "$0" >&2; exit 2; }
name="$1"; shift
lock="${BENCH_LOCK:-/tmp/switchboard-bench.lock}"
out="bench/results/sfu-$name.json"
exec 9>"$lock"
flock 9
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
result="$(bench/run.sh "$@")"
load_after="$(cut -d' ' -f1-3 /proc/loadavg)"
printf '{"name":"%s","date":"%s","load_before":"%s","load_after":"%s","result":%s}\n' \
  "$name" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$load_before" "$load_after" "$result" | tee "$out"
