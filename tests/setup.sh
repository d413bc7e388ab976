#!/usr/bin/env bash
# Installs what the tests need and the machine lacks: the Rust toolchain's
# components, cargo-audit, Node.js packages for the local OpenID provider,
# Chromium, coturn and nftables for the browser tests, and nginx with openssl
# for tests/through_nginx.rs. Safe to run again: it only installs what is
# missing or out of date.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "== installing Node.js (apt)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm
fi

rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt

# cargo-audit for tests/audit.sh. Built from source: about 4.5 minutes on two
# cores, once per machine.
if ! cargo audit --version >/dev/null 2>&1; then
  echo "== installing cargo-audit"
  cargo install cargo-audit --locked --quiet
fi

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

# coturn for the TURN browser test (tests/browser/turn.test.mjs starts its own
# turnserver on loopback). Where systemd started the package's service on
# install, it is stopped again: nothing needs it, and it would hold port 3478.
if [[ ! -x /usr/bin/turnserver ]]; then
  echo "== installing coturn (apt)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq coturn
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet coturn 2>/dev/null; then
    systemctl disable --now coturn
  fi
fi

# nftables and iproute2 for the network-namespace harness (tests/netns/): the
# firewall inside the namespace. Without root the tests that need it skip.
if [[ ! -x /usr/sbin/nft || ! -x /sbin/ip ]]; then
  echo "== installing nftables and iproute2 (apt)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nftables iproute2
fi

# Debian's nginx for tests/through_nginx.rs, which runs it as its own
# foreground process (never the system service) with deploy/'s site file, and
# openssl for the test certificates.
if [[ ! -x /usr/sbin/nginx ]] && ! command -v nginx >/dev/null 2>&1 || ! command -v openssl >/dev/null 2>&1; then
  echo "== installing nginx and openssl (apt)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx openssl
fi
