#!/usr/bin/env bash
# Runs one load-generator workload against a fresh release server:
#   bench/run.sh [sb-loadgen args...]       e.g. bench/run.sh --rate 1000 --conns 100
# Starts target/release/switchboard on 127.0.0.1:$PORT (default 5103) with a
# temporary database and the limits a load test needs raised, runs
# target/release/sb-loadgen with --url and --server-pid filled in, prints its
# JSON line, and stops the server. Build first: cargo build --release --workspace
set -euo pipefail
cd "$(dirname "$0")/.."
port="${PORT:-5103}"
bin="${SB_BIN:-target/release/switchboard}"
loadgen="${LOADGEN:-target/release/sb-loadgen}"
[[ -x "$bin" && -x "$loadgen" ]] || { echo "bench/run.sh: build first: cargo build --release --workspace" >&2; exit 2; }

# Tens of thousands of sockets on each side: raise the descriptor limit (the
# hard limit too, where this shell may).
ulimit -Hn 1048576 2>/dev/null || true
hard="$(ulimit -Hn)"; if [[ "$hard" == unlimited ]]; then ulimit -n 1048576; else ulimit -n "$hard"; fi
data="$(mktemp -d)"
trap 'kill -TERM "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -rf "$data"' EXIT

env DATABASE_PATH="$data/sb.db" BIND="127.0.0.1:$port" PUBLIC_URL="http://127.0.0.1:$port" \
    SECRET_KEY="bench-$RANDOM$RANDOM" ALLOW_GUESTS=true CAPTCHA=false BCRYPT_COST=4 \
    GUEST_RATE_PER_MIN=0 CHAT_RATE_PER_SEC=1000000 CHAT_BURST=1000000 MAX_USERS=1000000 \
    WS_MAX_PER_USER=0 WS_MAX_PER_IP=0 REGISTER_RATE_PER_MIN=0 RUST_LOG=warn \
    SFU_UDP_PORT="${SFU_UDP_PORT:-0}" SFU_PUBLIC_IP=127.0.0.1 \
    "$bin" serve >"$data/server.log" 2>&1 &
server=$!
for _ in $(seq 1 100); do
  curl -fsS -m 1 "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  kill -0 "$server" 2>/dev/null || { cat "$data/server.log" >&2; exit 1; }
  sleep 0.1
done
# The admin for kick probes (sb-loadgen's default --admin-email and
# --admin-password), made the supported way while the server runs.
printf '%s\n' bench-admin-password | env DATABASE_PATH="$data/sb.db" BCRYPT_COST=4 \
    "$bin" user create --username bench-admin --email bench-admin@example.org --admin >/dev/null
sleep 1  # let start-up allocations settle before the baseline sample
timeout -k 5 300 "$loadgen" --url "http://127.0.0.1:$port" --server-pid "$server" "$@"
