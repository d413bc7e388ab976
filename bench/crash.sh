#!/usr/bin/env bash
# The crash test of docs/benchmarks.md: kill -9 the server during heavy chat
# and start it again, KILLS times over one database.
#
#   bench/crash.sh           20 kills under 1,000 msgs/s
#
# Each round (sb-loadgen --mode crash, see bench/src/crash.rs) first checks
# that every message a sender saw come back to itself in the earlier rounds
# is in the room's history (paged over HTTP as the contract says), that the
# pages hold no id twice, and that each reconnecting client's `joined`
# history plus paging gives exactly the messages after its last seen one;
# then it chats at RATE until the server is killed, 2 to 5 s in. After each
# kill, `PRAGMA integrity_check` runs on the database before the restart.
# A last round with no chat checks what the 20th kill left.
#
# Environment: KILLS (default 20), RATE (1000), CONNS (50), ROOMS (5),
# SB_BIN (default target/release/switchboard), OUT (default
# bench/results/crash), LOCK (/tmp/switchboard-bench.lock, held for the whole run).
# Results: OUT/rounds.jsonl (one line per round), OUT/integrity.log,
# OUT/summary.json. Exits 1 when anything acknowledged was lost, a catch-up
# was wrong or the database failed its check.
# Build first: cargo build --release --workspace
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
KILLS="${KILLS:-20}"
RATE="${RATE:-1000}"
CONNS="${CONNS:-50}"
ROOMS="${ROOMS:-5}"
SB_BIN="$(realpath "${SB_BIN:-target/release/switchboard}")"
LOADGEN="$root/target/release/sb-loadgen"
OUT="${OUT:-$root/bench/results/crash}"
LOCK="${LOCK:-/tmp/switchboard-bench.lock}"
PORT="${PORT:-5014}"
for bin in "$SB_BIN" "$LOADGEN"; do
  [[ -x "$bin" ]] || { echo "bench/crash.sh: $bin is missing: cargo build --release --workspace" >&2; exit 2; }
done
mkdir -p "$OUT"

if [[ -z "${CRASH_LOCKED:-}" ]]; then
  exec env CRASH_LOCKED=1 flock "$LOCK" "$0" "$@"
fi

tmp="$(mktemp -d)"
server_pid=""
loadgen_pid=""
cleanup() {
  [[ -n "$loadgen_pid" ]] && kill "$loadgen_pid" 2>/dev/null || true
  [[ -n "$server_pid" ]] && kill -9 "$server_pid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
: >"$OUT/rounds.jsonl"
: >"$OUT/integrity.log"
: >"$OUT/server.log"

start_server() {
  env DATA_DIR="$tmp/data" BIND="127.0.0.1:$PORT" PUBLIC_URL="http://127.0.0.1:$PORT" \
    ALLOW_GUESTS=true CAPTCHA=false GUEST_RATE_PER_MIN=1000000 \
    CHAT_RATE_PER_SEC=1000 CHAT_BURST=1000 MAX_USERS=1000000 RUST_LOG=warn \
    "$SB_BIN" serve >>"$OUT/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 150); do
    curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "crash: the server did not start" >&2
  tail -20 "$OUT/server.log" >&2
  exit 2
}

loadgen() {
  "$LOADGEN" --url "http://127.0.0.1:$PORT" --mode crash --state "$tmp/state.json" \
    --conns "$CONNS" --rooms "$ROOMS" --rate "$RATE" --max-runtime 120 "$@"
}

mkdir -p "$tmp/data"
for round in $(seq "$KILLS"); do
  start_server
  loadgen --duration 60 >"$tmp/round.json" 2>"$tmp/round.log" &
  loadgen_pid=$!
  for _ in $(seq 600); do
    grep -q "crash: sending" "$tmp/round.log" && break
    kill -0 "$loadgen_pid" 2>/dev/null || break
    sleep 0.1
  done
  sleep "$((2 + RANDOM % 4)).$((RANDOM % 10))"
  kill -9 "$server_pid"
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
  wait "$loadgen_pid" || true
  loadgen_pid=""
  cat "$tmp/round.log" >&2
  cat "$tmp/round.json" | tee -a "$OUT/rounds.jsonl"
  check="$(sqlite3 "$tmp/data/switchboard.db" 'PRAGMA integrity_check;')"
  echo "after kill $round: $check" | tee -a "$OUT/integrity.log"
done
start_server
loadgen --duration 0 >"$tmp/round.json" 2>"$tmp/round.log"
cat "$tmp/round.log" >&2
tee -a "$OUT/rounds.jsonl" <"$tmp/round.json"
kill "$server_pid"
wait "$server_pid" 2>/dev/null || true
server_pid=""
check="$(sqlite3 "$tmp/data/switchboard.db" 'PRAGMA integrity_check;')"
echo "after the last round: $check" | tee -a "$OUT/integrity.log"

python3 - "$OUT" "$KILLS" "$RATE" "$CONNS" "$ROOMS" <<'EOF'
import json, sys
out, kills, rate, conns, rooms = sys.argv[1], *map(int, sys.argv[2:])
rounds = [json.loads(line) for line in open(f"{out}/rounds.jsonl") if line.strip()]
checks = [line.rsplit(": ", 1)[1].strip() for line in open(f"{out}/integrity.log") if line.strip()]
fatal = [r for r in rounds if "fatal" in r]
last = rounds[-1]
summary = {
    "kills": kills,
    "rate_target": rate,
    "conns": conns,
    "rooms": rooms,
    "rounds": len(rounds),
    "fatal_rounds": len(fatal),
    "msgs_sent": sum(r.get("sent", 0) for r in rounds),
    "msgs_acked": sum(r.get("acked", 0) for r in rounds),
    "acked_checked_at_end": last.get("acked_before"),
    "acked_lost_max": max(r.get("acked_lost", 0) for r in rounds),
    "history_duplicates": sum(r.get("history_duplicates", 0) for r in rounds),
    "catchup_messages": sum(r.get("catchup_messages", 0) for r in rounds),
    "catchup_mismatches": sum(r.get("catchup_mismatches", 0) for r in rounds),
    "catchup_duplicates": sum(r.get("catchup_duplicates", 0) for r in rounds),
    "error_frames": sum(r.get("error_frames", 0) for r in rounds),
    "integrity_checks": len(checks),
    "integrity_ok": sum(c == "ok" for c in checks),
}
ok = (not fatal and summary["acked_lost_max"] == 0 and summary["history_duplicates"] == 0
      and summary["catchup_mismatches"] == 0 and summary["catchup_duplicates"] == 0
      and summary["integrity_ok"] == len(checks) and len(rounds) == kills + 1)
summary["targets_met"] = ok
json.dump(summary, open(f"{out}/summary.json", "w"), indent=2)
print(json.dumps(summary, indent=2))
sys.exit(0 if ok else 1)
EOF
