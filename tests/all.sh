#!/usr/bin/env bash
# Runs every test Switchboard has: formatting and lints, a dependency audit
# against known vulnerabilities, Rust unit tests, integration tests against
# the real server (HTTP, WebSocket, a real local OIDC provider) and, when
# present, browser tests. Installs what the tests need when it is missing, so
# it works the same on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."

tests/setup.sh

echo "== format and lints"
cargo fmt --check
cargo clippy --workspace --all-targets --quiet -- -D warnings

echo "== dependency audit"
tests/audit.sh

echo "== tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast
fi

echo "== fuzz (a few seconds per target)"
tests/fuzz.sh

echo "== browser tests"
# Real headless Chromium against target/debug/switchboard (tests/browser/server.mjs
# starts it): build it for the current sources first.
cargo build --quiet
node --test tests/browser/
