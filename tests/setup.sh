#!/usr/bin/env bash
# Installs what the tests need and the machine lacks: the Rust toolchain's
# components, Node.js packages for the local OpenID provider, Chromium, and
# nginx with openssl for tests/through_nginx.rs. Safe to run
# again: it only installs what is missing or out of date.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "== installing Node.js (apt)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm
fi

rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt

# npm ci when node_modules is missing or older than the lock file.
if [[ ! -d tests/node_modules || tests/package-lock.json -nt tests/node_modules/.package-lock.json ]]; then
  echo "== installing test node packages"
  npm ci --prefix tests --no-audit --no-fund --loglevel=error
fi

# Debian's Chromium for the browser tests (tests/browser/): playwright-core drives
# it, so no browser is ever downloaded.
if [[ ! -x /usr/bin/chromium ]]; then
  echo "== installing Chromium (apt)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
fi

# Debian's nginx for tests/through_nginx.rs, which runs it as its own
# foreground process (never the system service) with deploy/'s site file, and
# openssl for the test certificates.
if [[ ! -x /usr/sbin/nginx ]] && ! command -v nginx >/dev/null 2>&1 || ! command -v openssl >/dev/null 2>&1; then
  echo "== installing nginx and openssl (apt)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx openssl
fi
