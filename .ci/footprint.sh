#!/usr/bin/env bash
# Footprint report of the board firmware that .ci/firmware.sh built (run that
# first; it also calls this script), for every board of .ci/boards: flash and
# RAM of each image, of its `no-mqtt` baseline and the difference; code by
# source crate (DWARF line tables); the driver's RAM; what the board's
# `flash-outbox` image (if built) adds to its full image. Then the difference from
# .ci/recorded/footprint.json (information) and the limits of .ci/limits.toml
# [firmware], the only thing that fails. `--record` rewrites the recorded file.
# Needs llvm-size, llvm-nm and llvm-dwarfdump (Debian package `llvm`) and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
args=()
while IFS='|' read -r board name bin _target; do
  case "$board" in '' | '#'*) continue ;; esac
  full="target/images/$board/$bin"
  base="target/images/$board/no-mqtt/$bin"
  [ -f "$full" ] || { echo "footprint: $full is missing: run .ci/firmware.sh" >&2; exit 1; }
  [ -f "$base" ] || base=-
  args+=(--board "$board" "$name" "$full" "$base")
  fo="target/images/$board/flash-outbox/$bin"
  if [ -f "$fo" ]; then args+=(--variant "$board" flash-outbox "$fo"); fi
done <.ci/boards
exec python3 .ci/footprint.py --tools llvm-size llvm-nm llvm-dwarfdump "${args[@]}" "$@"
