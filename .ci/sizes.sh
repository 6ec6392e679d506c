#!/usr/bin/env bash
# Prints the size on thumbv7em-none-eabihf of the default State and of every
# public future of the driver, as measured by the compiler (-Zprint-type-sizes,
# unlocked on Debian's stable rustc with RUSTC_BOOTSTRAP=1). The README's
# "Memory" table is this script's output.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(env PATH="/usr/bin:$PATH" RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR=target/thumb-sizes \
  /usr/bin/cargo rustc -q -p bc26-mqtt --lib -Zbuild-std=core --target thumbv7em-none-eabihf -- -Zprint-type-sizes 2>/dev/null)
echo "| type (thumbv7em-none-eabihf) | bytes |"
echo "|---|---|"
printf '%s\n' "$out" | sed -n 's/^print-type-size type: `state::State`: \([0-9]*\) bytes.*/| `State` (default: 6 clients, 1024-byte payloads) | \1 |/p' | head -1
printf '%s\n' "$out" \
  | sed -n 's/^print-type-size type: `{async fn body of client::\([A-Za-z]*\)<.*>::\([a-z_]*\)()}`: \([0-9]*\) bytes.*/\1::\2 \3/p' \
  | grep -v -E '::(op|cfg|publish_as) ' | sort -u \
  | awk '{ printf "| `%s()` future | %s |\n", $1, $2 }'
