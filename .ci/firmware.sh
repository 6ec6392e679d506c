#!/usr/bin/env bash
# Board firmware: builds every board of .ci/boards (the STM32L476RG Nucleo and
# nRF52840 DK examples) in release mode with Debian's Rust toolchain (no
# warnings allowed), each also as its `no-mqtt` baseline, then prints the
# footprint report (.ci/footprint.sh) and fails only when a limit of
# .ci/limits.toml [firmware] is exceeded: the driver's own code, each image's
# flash and RAM. Exact numbers are never compared.
#
#   .ci/firmware.sh            build, report, check
#   .ci/firmware.sh --record   also write the figures to .ci/recorded/footprint.json,
#                              which later reports compare with (never required)
#   .ci/firmware.sh --prune    after each build, delete all of its target folder
#                              but the image (CI: ~0.9 GB a build, and little disk)
#
# Idempotent; installs what it lacks from Debian (apt-get). Cold: about two
# minutes per build on two cores (four builds, ~0.9 GB of target folder each);
# warm: a few seconds. Output folders: examples/<board>/target (the firmware)
# and examples/<board>/target/no-mqtt (the baseline).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
step() { printf '\n=== %s\n' "$*"; }
prune=
if [ "${1:-}" = --prune ]; then
  prune=1
  shift
fi

need=()
for p in rustc-web cargo-web rust-web-src lld-22 llvm python3; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if ((${#need[@]})); then
  step "installing ${need[*]} from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# Panic locations embed source paths: map the checkout and cargo's home to
# fixed names, so that the image (and the footprint report) does not depend on
# where the repository was cloned.
RUSTFLAGS="--remap-path-prefix=$PWD=/bc26-mqtt --remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}=/cargo"
export RUSTFLAGS

build() { # build <board> <target> <target-dir> [cargo args...]
  local board=$1 target=$2 dir=$3
  shift 3
  # Debian's rustc-web ships no rust-lld: link with ld.lld-22. The committed
  # .cargo/config.toml files name no linker, so rustup users get rust-lld.
  local linker_var
  linker_var="CARGO_TARGET_$(echo "$target" | tr 'a-z-' 'A-Z_')_LINKER"
  step "examples/$board: cargo build --release --target $target $*"
  local log
  log=$(mktemp)
  if ! (cd "examples/$board" &&
    env PATH="/usr/bin:$PATH" RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1 \
      "$linker_var=/usr/bin/ld.lld-22" CARGO_TARGET_DIR="$dir" \
      /usr/bin/cargo build --release -Zbuild-std=core --target "$target" "$@") >"$log" 2>&1; then
    cat "$log"
    rm -f "$log"
    echo "firmware: examples/$board failed to build"
    exit 1
  fi
  grep -v '^\s*\(Compiling\|Downloaded\|Downloading\|Updating\|Locking\|Adding\|Blocking\)' "$log" || true
  if grep -q '^warning' "$log"; then
    rm -f "$log"
    echo "firmware: examples/$board built with warnings"
    exit 1
  fi
  rm -f "$log"
}

prune() { # prune <board> <target-dir> <target> <bin>: keep only the image
  local root="examples/$1/$2" image="$3/release/$4" keep
  keep=$(mktemp -d)
  mv "$root/$image" "$keep/"
  # The baseline's folder (target/no-mqtt) lives inside the full build's.
  find "$root" -mindepth 1 -maxdepth 1 ! -name no-mqtt -exec rm -rf {} +
  mkdir -p "$root/$3/release"
  mv "$keep/$4" "$root/$image"
  rmdir "$keep"
}

while IFS='|' read -r board _name bin target; do
  case "$board" in '' | '#'*) continue ;; esac
  build "$board" "$target" target
  [ -z "$prune" ] || prune "$board" target "$target" "$bin"
  if grep -q '^no-mqtt *=' "examples/$board/Cargo.toml"; then
    build "$board" "$target" target/no-mqtt --features no-mqtt
    [ -z "$prune" ] || prune "$board" target/no-mqtt "$target" "$bin"
  fi
done <.ci/boards

step "footprint (a report; only the limits of .ci/limits.toml fail)"
mkdir -p target
.ci/footprint.sh "$@" | tee target/firmware-footprint.md
