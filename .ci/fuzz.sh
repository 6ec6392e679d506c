#!/usr/bin/env bash
# Fuzzing of the driver's receive path (fuzz/README.md): the harness's own
# tests, then the `receive` target built with cargo-fuzz on the machine's
# stable toolchain (RUSTC_BOOTSTRAP=1 for the -Z flags cargo-fuzz passes) and
# run for FUZZ_SECONDS (default 120) from the committed corpus (FUZZ_ARGS:
# more libFuzzer flags). Fails on a
# panic, a failed check (wedge, busy loop, wrong answer) or a hang; prints
# the executions, exec/s and coverage.
#
# No sanitizer: the driver has no unsafe code (#![deny(unsafe_code)]), and
# without ASan the target runs ~4.6x more executions per second and builds
# ~5x faster; debug assertions and overflow checks are on (fuzz/Cargo.toml).
# FUZZ_SANITIZER=address runs it under ASan (for the unsafe code of the
# dependencies).
#
#   .ci/fuzz.sh           everything below
#   .ci/fuzz.sh prepare   cargo-fuzz, the harness's fmt, tests and clippy, the build
#   .ci/fuzz.sh run       the timed run and its report (after `prepare`); one
#                         process, one core: .ci/run lets it run beside the
#                         board builds and the world
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
phase=${1:-all}
case "$phase" in all | prepare | run) ;; *) echo "usage: .ci/fuzz.sh [prepare|run]" >&2; exit 2 ;; esac
seconds=${FUZZ_SECONDS:-120}
sanitizer=${FUZZ_SANITIZER:-none}
version=0.13.2
export RUSTC_BOOTSTRAP=1

if [ "$phase" != run ]; then
  if ! cargo fuzz --version 2>/dev/null | grep -qx "cargo-fuzz $version"; then
    echo "installing cargo-fuzz $version"
    cargo install cargo-fuzz --locked --version "$version"
  fi

  cargo fmt --check
  cargo test --no-default-features
  cargo clippy --no-default-features --all-targets -- -D warnings

  cargo fuzz build --sanitizer "$sanitizer" receive
fi
[ "$phase" != prepare ] || exit 0

# New inputs go to a scratch directory; the committed corpus is only read.
work=target/corpus-ci
rm -rf "$work" artifacts/receive
mkdir -p "$work"
log=target/fuzz-ci.log
status=0
cargo fuzz run --sanitizer "$sanitizer" receive "$work" corpus/receive -- \
  -max_total_time="$seconds" -max_len=4096 -timeout=10 -dict=receive.dict \
  -print_final_stats=1 ${FUZZ_ARGS:-} >"$log" 2>&1 || status=$?
grep -aE '^(INFO: seed corpus|#[0-9]+[[:space:]]+INITED)' "$log" || true
grep -aE '^#[0-9]+[[:space:]]' "$log" | tail -n 1 || true
grep -aE '^(Done|stat::)' "$log" || true
if [ "$status" -ne 0 ]; then
  echo "fuzzing FAILED (exit $status); the end of its log:"
  tail -n 60 "$log"
  for f in artifacts/receive/*; do
    [ -e "$f" ] || continue
    echo "input $f (replay: cd fuzz && BC26_FUZZ_TRACE=1 cargo run --no-default-features --example replay -- $f):"
    od -A d -c "$f" | head -n 40
  done
  exit 1
fi
echo "fuzzing passed"
