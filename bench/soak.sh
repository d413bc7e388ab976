#!/usr/bin/env bash
# The soak test of docs/benchmarks.md: a release server under steady load for
# a long time, with admins kicking and users reconnecting throughout.
#
#   bench/soak.sh            30 minutes, 2,000 connections in 50 rooms, 200 msgs/s
#
# Environment: DURATION (seconds, default 1800), CONNS (2000), ROOMS (50),
# RATE (msgs/s, 200), SENDERS (100), KICKS_PER_S (1), CHURN_PER_S (2),
# WARMUP (seconds excluded from the drift, default 300), SB_BIN (default
# target/release/switchboard), OUT (default bench/results/soak), LOCK
# (default /tmp/switchboard-bench.lock, held for the whole run).
#
# Samples the server's RSS and open descriptors every 10 s into
# OUT/samples.csv; the load generator's totals go to OUT/loadgen.json; the
# summary (RSS drift after warm-up, errors, descriptors after the clients
# left against the baseline before they came) to OUT/summary.json. Exits 1
# when a target is missed: drift >= 5 %, any error, descriptors not back.
# Build first: cargo build --release --workspace
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
DURATION="${DURATION:-1800}"
CONNS="${CONNS:-2000}"
ROOMS="${ROOMS:-50}"
RATE="${RATE:-200}"
SENDERS="${SENDERS:-100}"
KICKS_PER_S="${KICKS_PER_S:-1}"
CHURN_PER_S="${CHURN_PER_S:-2}"
WARMUP="${WARMUP:-300}"
SB_BIN="$(realpath "${SB_BIN:-target/release/switchboard}")"
LOADGEN="$root/target/release/sb-loadgen"
OUT="${OUT:-$root/bench/results/soak}"
LOCK="${LOCK:-/tmp/switchboard-bench.lock}"
PORT="${PORT:-5013}"
for bin in "$SB_BIN" "$LOADGEN"; do
  [[ -x "$bin" ]] || { echo "bench/soak.sh: $bin is missing: cargo build --release --workspace" >&2; exit 2; }
done
mkdir -p "$OUT"

if [[ -z "${SOAK_LOCKED:-}" ]]; then
  exec env SOAK_LOCKED=1 flock "$LOCK" "$0" "$@"
fi

hard="$(ulimit -Hn)"
if [[ "$hard" == unlimited ]]; then ulimit -n 65536; else ulimit -n "$hard"; fi
tmp="$(mktemp -d)"
server_pid=""
sampler_pid=""
cleanup() {
  [[ -n "$sampler_pid" ]] && kill "$sampler_pid" 2>/dev/null || true
  [[ -n "$server_pid" ]] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

admin_email=soak-admin@example.org
env DATA_DIR="$tmp" BIND="127.0.0.1:$PORT" PUBLIC_URL="http://127.0.0.1:$PORT" \
  ALLOW_GUESTS=true CAPTCHA=false GUEST_RATE_PER_MIN=1000000 LOGIN_RATE_PER_MIN=1000000 \
  CHAT_RATE_PER_SEC=1000 CHAT_BURST=1000 MAX_USERS=1000000 BCRYPT_COST=4 \
  ADMIN_EMAIL="$admin_email" RUST_LOG=warn \
  "$SB_BIN" serve >"$OUT/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do
  curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null || { echo "soak: the server did not start" >&2; cat "$OUT/server.log" >&2; exit 2; }

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$server_pid/status"; }
fds() { find "/proc/$server_pid/fd" -mindepth 1 -maxdepth 1 | wc -l; }
fd_list() { find "/proc/$server_pid/fd" -mindepth 1 -maxdepth 1 -printf '%l\n' | sed 's/\[[0-9]*\]//' | sort | uniq -c; }
# The baseline is a server that has served a little (its database pool and
# WAL files open), before the soak's clients come.
"$LOADGEN" --url "http://127.0.0.1:$PORT" --mode fanout --conns 100 --rooms 5 --senders 10 \
  --rate 100 --duration 5 --drain 5 >"$OUT/warmup.json" 2>&1 || true
sleep 5
baseline_fds="$(fds)"
fd_list >"$OUT/fds-baseline.txt"
baseline_rss="$(rss_kb)"
started="$(date +%s)"
echo "t_s,rss_kb,fds,load1" >"$OUT/samples.csv"
(
  while kill -0 "$server_pid" 2>/dev/null; do
    echo "$(( $(date +%s) - started )),$(rss_kb),$(fds),$(cut -d' ' -f1 /proc/loadavg)" >>"$OUT/samples.csv"
    sleep 10
  done
) &
sampler_pid=$!

echo "soak: $CONNS connections in $ROOMS rooms, $RATE msgs/s for $DURATION s (baseline: $baseline_fds fds, $baseline_rss kB)"
"$LOADGEN" --url "http://127.0.0.1:$PORT" --mode soak --conns "$CONNS" --rooms "$ROOMS" \
  --senders "$SENDERS" --rate "$RATE" --duration "$DURATION" --kicks-per-s "$KICKS_PER_S" \
  --churn-per-s "$CHURN_PER_S" --admin-email "$admin_email" --connect-concurrency 50 \
  --max-runtime "$((DURATION + 600))" >"$OUT/loadgen.json" 2>"$OUT/loadgen.log" || true
cat "$OUT/loadgen.json"

# The clients have closed: wait (at most 60 s) for the server's descriptors
# to come back to the baseline.
after_fds="$(fds)"
for _ in $(seq 60); do
  after_fds="$(fds)"
  (( after_fds <= baseline_fds )) && break
  sleep 1
done
after_rss="$(rss_kb)"
fd_list >"$OUT/fds-after.txt"
kill "$sampler_pid" 2>/dev/null || true
sampler_pid=""

python3 - "$OUT" "$WARMUP" "$baseline_fds" "$after_fds" "$baseline_rss" "$after_rss" <<'EOF'
import csv, json, sys
out, warmup, base_fds, after_fds, base_rss, after_rss = sys.argv[1], int(sys.argv[2]), *map(int, sys.argv[3:])
rows = [{k: float(v) for k, v in r.items()} for r in csv.DictReader(open(f"{out}/samples.csv"))]
loadgen = json.load(open(f"{out}/loadgen.json"))
duration = loadgen.get("duration_s", 0)
held = [r for r in rows if warmup <= r["t_s"] <= duration]
first, last = held[0]["rss_kb"], held[-1]["rss_kb"]
peak = max(r["rss_kb"] for r in held)
# Drift is the trend, not the noise: the mean of the last tenth of the
# held samples against the mean of the first tenth after warm-up.
tenth = max(1, len(held) // 10)
start_mean = sum(r["rss_kb"] for r in held[:tenth]) / tenth
end_mean = sum(r["rss_kb"] for r in held[-tenth:]) / tenth
drift = (end_mean - start_mean) / start_mean * 100
errors = loadgen.get("errors", {}).get("total", -1)
summary = {
    "warmup_s": warmup,
    "samples_after_warmup": len(held),
    "rss_kb_baseline": base_rss,
    "rss_kb_first_after_warmup": first,
    "rss_kb_last": last,
    "rss_kb_peak_after_warmup": peak,
    "rss_drift_pct": round(drift, 2),
    "rss_kb_after_clients_left": after_rss,
    "fds_baseline": base_fds,
    "fds_peak": max(r["fds"] for r in rows),
    "fds_after_clients_left": after_fds,
    "errors": errors,
    "targets_met": {
        "rss_drift_under_5pct": drift < 5,
        "zero_errors": errors == 0,
        "fds_back_to_baseline": after_fds <= base_fds,
    },
}
json.dump(summary, open(f"{out}/summary.json", "w"), indent=2)
print(json.dumps(summary, indent=2))
sys.exit(0 if all(summary["targets_met"].values()) else 1)
EOF
