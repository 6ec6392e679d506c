#!/usr/bin/env bash
# Memory report: the size on thumbv7em-none-eabihf of the default State and of
# every public future of the driver, as measured by the compiler
# (-Zprint-type-sizes, unlocked on Debian's stable rustc with
# RUSTC_BOOTSTRAP=1). Prints a table (a report, not a check against fixed
# numbers) and fails only when a size exceeds its limit in .ci/limits.toml
# ([memory]: State <= 8 KiB, each public future <= 1 KiB).
#
#   .ci/sizes.sh            report and check
#   .ci/sizes.sh --record   also write the sizes to .ci/recorded/memory.json,
#                           which later reports compare with (never required)
#
# Needs Debian's rustc-web, cargo-web, rust-web-src and python3 (.ci/run
# installs them). Builds in release, in the folder the other thumb builds
# share (.ci/thumb.sh): the layouts firmware gets, and `core` compiled once
# for them all. Cold alone: about a minute on two cores.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=.ci/thumb.sh
. .ci/thumb.sh
# The driver is generic over its lock, so the library alone lays out none of
# its public futures: `--cfg bc26_type_sizes` adds src/size_probe.rs, which
# creates each of them with the default lock.
# The sizes are printed only when rustc compiles the crate: make cargo
# recompile the driver (only the driver) even when nothing changed, and not
# incrementally (an incremental rebuild prints nothing).
rm -rf "$BC26_THUMB_TARGET_DIR"/thumbv7em-none-eabihf/release/.fingerprint/bc26-mqtt-*
mkdir -p target
out=target/print-type-sizes.txt
if ! thumb_cargo rustc -q -p bc26-mqtt --lib --release -Zbuild-std=core --target thumbv7em-none-eabihf \
  -- -Zprint-type-sizes --cfg bc26_type_sizes >"$out" 2>target/print-type-sizes.err; then
  cat target/print-type-sizes.err
  echo "sizes: the driver did not build for thumbv7em-none-eabihf"
  exit 1
fi
exec python3 .ci/sizes.py "$out" "$@"
