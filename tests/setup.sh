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

# Debian packages the tests run, gathered so that a fresh machine pays for one
# `apt-get update` and one install:
# - chromium: the browser tests (tests/browser/) drive it with playwright-core,
#   so no browser is ever downloaded;
# - coturn: tests/browser/turn.test.mjs starts its own turnserver on loopback;
# - nftables, iproute2: the firewall of the network-namespace harness
#   (tests/netns/); without root the tests that need it skip;
# - nginx, openssl: tests/through_nginx.rs runs nginx as its own foreground
#   process with deploy/'s site file, and makes the test certificates.
missing=()
[[ -x /usr/bin/chromium ]] || missing+=(chromium)
[[ -x /usr/bin/turnserver ]] || missing+=(coturn)
[[ -x /usr/sbin/nft ]] || missing+=(nftables)
[[ -x /sbin/ip || -x /usr/sbin/ip ]] || missing+=(iproute2)
[[ -x /usr/sbin/nginx ]] || command -v nginx >/dev/null 2>&1 || missing+=(nginx)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
if ((${#missing[@]})); then
  echo "== installing ${missing[*]} (apt)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  # Where systemd starts a package's service on install, stop it again: the
  # tests run their own coturn and nginx, and the services would hold ports.
  if command -v systemctl >/dev/null 2>&1; then
    for service in coturn nginx; do
      if systemctl is-active --quiet "$service" 2>/dev/null; then
        systemctl disable --now "$service"
      fi
    done
  fi
fi
