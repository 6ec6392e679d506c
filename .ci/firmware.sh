#!/usr/bin/env bash
# Board firmware: builds every board of .ci/boards (the STM32L476RG Nucleo and
# nRF52840 DK examples) in release mode with Debian's Rust toolchain (no
# warnings allowed), each also as its `no-mqtt` baseline and, for a board
# that has the feature (the nRF52840 DK), with `flash-outbox`, then prints the
# footprint report (.ci/footprint.sh) and fails only when a limit of
# .ci/limits.toml [firmware] is exceeded: the driver's own code, each image's
# flash and RAM. Exact numbers are never compared.
#
#   .ci/firmware.sh            build, report, check
#   .ci/firmware.sh --record   also write the figures to .ci/recorded/footprint.json,
#                              which later reports compare with (never required)
#
# Idempotent; installs what it lacks from Debian (apt-get). The builds share
# one target folder with the other thumb builds (.ci/thumb.sh): `core` and
# the HAL compile once for both boards' images and baselines. Each image is
# copied to target/images/<board>/ (the baseline to .../no-mqtt/, the flash
# outbox's image to .../flash-outbox/), which the
# footprint report reads; .ci/run deletes the shared folder afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
step() { printf '\n=== %s\n' "$*"; }
# shellcheck source=.ci/thumb.sh
. .ci/thumb.sh
thumb_need rustc-web cargo-web rust-web-src lld-22 llvm python3

build() { # build <board> <target> <bin> <image folder> [cargo args...]
  local board=$1 target=$2 bin=$3 out=$4
  shift 4
  step "examples/$board: cargo build --release --target $target $*"
  (cd "examples/$board" && thumb_quiet "firmware: examples/$board" build --release -Zbuild-std=core --target "$target" "$@")
  mkdir -p "$out"
  cp "$BC26_THUMB_TARGET_DIR/$target/release/$bin" "$out/$bin"
}

while IFS='|' read -r board _name bin target; do
  case "$board" in '' | '#'*) continue ;; esac
  build "$board" "$target" "$bin" "$thumb_images/$board"
  if grep -q '^no-mqtt *=' "examples/$board/Cargo.toml"; then
    build "$board" "$target" "$bin" "$thumb_images/$board/no-mqtt" --features no-mqtt
  fi
  if grep -q '^flash-outbox *=' "examples/$board/Cargo.toml"; then
    build "$board" "$target" "$bin" "$thumb_images/$board/flash-outbox" --features flash-outbox
  fi
done <.ci/boards

step "footprint (a report; only the limits of .ci/limits.toml fail)"
mkdir -p target
.ci/footprint.sh "$@" | tee target/firmware-footprint.md
