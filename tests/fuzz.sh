#!/usr/bin/env bash
# A short run of every fuzz target (FUZZ_SECONDS each, default 5), from the
# committed corpus, so that a parser change that crashes on it, or on
# something a few seconds of mutation finds, fails CI. Needs the nightly
# toolchain (skipped with a message where it is missing: the corpus is
# still replayed on stable by tests/fuzz_corpus.rs); installs cargo-fuzz
# when it is missing. FUZZ_SECONDS=0 skips the run. New inputs found here
# are not kept: fuzz/corpus/ changes only by a deliberate `cargo fuzz cmin`.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds="${FUZZ_SECONDS:-5}"
if [[ "$seconds" == 0 ]]; then
  echo "fuzz: FUZZ_SECONDS=0, skipped"
  exit 0
fi
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "fuzz: no nightly toolchain (rustup toolchain install nightly): skipped; the corpus replays in cargo test"
  exit 0
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for target in $(cargo +nightly fuzz list); do
  mkdir -p "$scratch/$target"
  echo "fuzz: $target for ${seconds}s"
  # New inputs go to the scratch folder (the first corpus folder); the
  # committed corpus is only read. A debug build without a sanitizer: it
  # compiles in about 2.5 minutes on a fresh 2-core machine against 10+ for
  # an optimised AddressSanitizer build, its overflow checks catch what an
  # optimised build wraps, and the code under test forbids `unsafe`.
  if ! cargo +nightly fuzz run --dev --sanitizer none "$target" "$scratch/$target" "corpus/$target" -- \
    -max_total_time="$seconds" -print_final_stats=1 >"$scratch/$target.log" 2>&1; then
    tail -60 "$scratch/$target.log" >&2
    echo "fuzz: $target failed (the input is in fuzz/artifacts/$target/)" >&2
    exit 1
  fi
  grep -E "^stat::number_of_executed_units" "$scratch/$target.log" || true
done
