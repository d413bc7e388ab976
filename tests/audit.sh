#!/usr/bin/env bash
# Audits Cargo.lock against the RustSec advisory database, offline: the
# snapshot kept in .ci/advisory-db.tar.gz (source and date in
# .ci/advisory-db.md) is unpacked into a throw-away git repository, which is
# how cargo-audit reads a database. Fails on any known vulnerability in a
# dependency; advisories that cannot apply are ignored, each with its reason,
# in .cargo/audit.toml. `--stale` accepts a snapshot older than 90 days and
# `--no-yanked` skips the yanked-crate check, which needs the network.
set -euo pipefail
cd "$(dirname "$0")/.."

db="$(mktemp -d)"
trap 'rm -rf "$db"' EXIT
tar -xzf .ci/advisory-db.tar.gz -C "$db"
git -C "$db" init -q
git -C "$db" add -A
git -C "$db" -c user.name=switchboard-ci -c user.email=ci@localhost commit -q -m "RustSec snapshot"
cargo audit --db "$db" --no-fetch --stale --no-yanked
