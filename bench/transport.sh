#!/usr/bin/env bash
# The transport measurements of docs/benchmarks.md, one command each:
#
#   bench/transport.sh setup      copy ../shared/bench (read-only) to PEER_BENCH and set it up
#   bench/transport.sh fanout     1 room x 100 at 500, 1,000, 2,000 msg/s: floor, switchboard, node (, before)
#   bench/transport.sh idle       5,000 idle connections: switchboard, node (, before)
#   bench/transport.sh idle-max   as many idle connections as the descriptor limit allows, held 60 s
#   bench/transport.sh close      200 connections closed one after another (, before)
#   bench/transport.sh threads    each server thread's CPU at 500, 1,000 and 2,000 msg/s into a room of 100
#   bench/transport.sh all        all of the above, then the tables
#   bench/transport.sh summary    the tables again (python3 bench/transport_summary.py)
#
# SB_BIN (default target/release/switchboard) is the build measured; set SB_BEFORE to a build of
# an earlier commit to measure it beside, in the same run. REPS (default 1) repeats the fan-out.
# The peer harness is copied to PEER_BENCH (default ~/.cache/switchboard-peer-bench: outside the
# workspace, which would claim its load generator). Results go to OUT (default
# bench/results/transport). Every run holds LOCK (default
# /tmp/switchboard-bench.lock) so that benchmark runs on a shared machine never overlap, and records the
# load average before it starts. Build first: cargo build --release --workspace
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
SB_BIN="$(realpath "${SB_BIN:-target/release/switchboard}")"
LOADGEN="$root/target/release/sb-loadgen"
OUT="${OUT:-$root/bench/results/transport}"
LOCK="${LOCK:-/tmp/switchboard-bench.lock}"
REPS="${REPS:-1}"
peer_bench="${PEER_BENCH:-${XDG_CACHE_HOME:-$HOME/.cache}/switchboard-peer-bench}"
mkdir -p "$OUT"

need() { [[ -x "$1" ]] || { echo "bench/transport.sh: $1 is missing: $2" >&2; exit 2; }; }

# Runs "$@" holding the lock, with the load average noted in OUT/load.log.
locked() {
  flock "$LOCK" bash -c 'echo "$(date -Is) $(cut -d" " -f1-3 /proc/loadavg) :: ${*}" >>"$0/load.log"; "$@"' "$OUT" "$@"
}

setup() {
  if [[ ! -x "$peer_bench/run_peer.sh" ]]; then
    rm -rf "$peer_bench"
    mkdir -p "$(dirname "$peer_bench")"
    cp -r /work/shared/bench "$peer_bench"
    chmod -R u+w "$peer_bench"
  fi
  "$peer_bench/setup.sh"
}

# peer_run NAME PEER OUTFILE [loadgen args]: the shared harness, Switchboard
# started from the binary NAME says (after: SB_BIN, before: SB_BEFORE).
peer_run() {
  local name=$1 peer=$2 outfile=$3
  shift 3
  local bin="$SB_BIN"
  [[ "$name" == before ]] && bin="$SB_BEFORE"
  local proto=()
  [[ "$peer" == switchboard ]] && proto=(--proto switchboard)
  # One room is Switchboard's lobby (the shared harness's --sb-lobby).
  [[ "$peer" == switchboard && " $* " == *" --rooms 1 "* ]] && proto+=(--sb-lobby)
  locked env SB_BIN="$bin" RUN_TIMEOUT=60 "$peer_bench/run_peer.sh" "$peer" "$outfile" \
    --max-runtime 58 --connect-phase-timeout 25 "${proto[@]}" "$@"
  sleep 2
}

builds() {
  echo after
  [[ -n "${SB_BEFORE:-}" ]] && echo before
  return 0
}

fanout() {
  need "$peer_bench/loadgen/target/release/loadgen" "run: bench/transport.sh setup"
  need "$LOADGEN" "run: cargo build --release --workspace"
  for rep in $(seq 1 "$REPS"); do
    for rate in 500 1000 2000; do
      locked "$LOADGEN" --mode floor --conns 100 --rate "$rate" --duration 20 --drain 15 \
        >"$OUT/floor-fanout-$rate-r$rep.json"
      for build in $(builds); do
        local name=switchboard
        [[ "$build" == before ]] && name=before
        peer_run "$build" switchboard "$OUT/$name-fanout-$rate-r$rep.json" \
          --conns 100 --rooms 1 --senders 1 --rate "$rate" --duration 20 --drain 15 --drain-quiet 3
      done
      peer_run after node "$OUT/node-fanout-$rate-r$rep.json" \
        --conns 100 --rooms 1 --senders 1 --rate "$rate" --duration 20 --drain 15 --drain-quiet 3
    done
  done
}

idle() {
  need "$peer_bench/loadgen/target/release/loadgen" "run: bench/transport.sh setup"
  for build in $(builds); do
    local name=switchboard
    [[ "$build" == before ]] && name=before
    peer_run "$build" switchboard "$OUT/$name-idle-r1.json" \
      --idle --conns 5000 --rooms 100 --duration 30 --connect-concurrency 200
    sleep 5
  done
  peer_run after node "$OUT/node-idle-r1.json" --idle --conns 5000 --rooms 100 --duration 30 --connect-concurrency 200
}

# sb_run NAME OUTFILE [sb-loadgen args]: bench/run.sh against one build.
sb_run() {
  local name=$1 outfile=$2
  shift 2
  local bin="$SB_BIN"
  [[ "$name" == before ]] && bin="$SB_BEFORE"
  need "$LOADGEN" "run: cargo build --release --workspace"
  locked env SB_BIN="$bin" bench/run.sh "$@" | tail -n 1 >"$outfile"
  sleep 5
}

idle_max() {
  # Descriptors: the server holds one per connection, the load generator
  # one per connection plus its HTTP pool; both run under the hard limit.
  local hard conns
  hard="$(ulimit -Hn)"
  [[ "$hard" == unlimited ]] && hard=1048576
  conns=$(( (hard - 400) / 100 * 100 ))
  for build in $(builds); do
    sb_run "$build" "$OUT/$build-idle-max.json" --mode idle --conns "$conns" --rooms 100 --duration 60 \
      --sources 127.0.0.1,127.0.0.2,127.0.0.3 --connect-concurrency 200 --max-runtime 280
  done
}

close() {
  for build in $(builds); do
    sb_run "$build" "$OUT/$build-close.json" --mode close --conns 200 --rooms 1 --max-runtime 280
  done
}

threads() {
  for rate in 500 1000 2000; do
    sb_run after "$OUT/after-threads-$rate.json" --conns 100 --rooms 1 --senders 1 --rate "$rate" --duration 20
  done
}

summary() {
  python3 bench/transport_summary.py "$OUT"
}

case "${1:-}" in
  setup) setup ;;
  fanout) fanout ;;
  idle) idle ;;
  idle-max) idle_max ;;
  close) close ;;
  threads) threads ;;
  all) fanout; idle; idle_max; close; threads; summary ;;
  summary) summary ;;
  *) sed -n '2,19p' "$0" >&2; exit 2 ;;
esac
