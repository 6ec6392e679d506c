#!/usr/bin/env bash
# Board firmware: builds the STM32L476RG Nucleo and nRF52840 DK examples in
# release mode for thumbv7em-none-eabihf with Debian's Rust toolchain (no
# warnings allowed), each also as its `no-mqtt` baseline, then prints the
# footprint table and checks that the README holds it.
#
# Idempotent; installs what it lacks from Debian (apt-get). Cold: about two
# minutes per build on two cores (four builds, ~0.9 GB of target folder each);
# warm: a few seconds. Output folders: examples/<board>/target (the firmware)
# and examples/<board>/target/no-mqtt (the baseline).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
step() { printf '\n=== %s\n' "$*"; }

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

# Debian's rustc-web ships no rust-lld: link with ld.lld-22. The committed
# .cargo/config.toml files name no linker, so rustup users get rust-lld.
export CARGO_TARGET_THUMBV7EM_NONE_EABIHF_LINKER=/usr/bin/ld.lld-22
# Panic locations embed source paths: map the checkout and cargo's home to
# fixed names, so that the image (and the footprint table) does not depend on
# where the repository was cloned.
RUSTFLAGS="--remap-path-prefix=$PWD=/bc26-mqtt --remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}=/cargo"
export RUSTFLAGS

build() { # build <board> <target-dir> [cargo args...]
  local board=$1 dir=$2
  shift 2
  step "examples/$board: cargo build --release $*"
  local log
  log=$(mktemp)
  if ! (cd "examples/$board" &&
    env PATH="/usr/bin:$PATH" RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1 \
      CARGO_TARGET_DIR="$dir" /usr/bin/cargo build --release -Zbuild-std=core \
      --target thumbv7em-none-eabihf "$@") >"$log" 2>&1; then
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

for board in stm32 nrf; do
  build "$board" target
  build "$board" target/no-mqtt --features no-mqtt
done

step "footprint (README.md, Board examples)"
mkdir -p target
.ci/footprint.sh | tee target/firmware-footprint.md
while IFS= read -r line; do
  [ -z "$line" ] && continue
  grep -qxF -- "$line" README.md ||
    { echo "the README's footprint table is out of date: missing '$line' (run .ci/update-footprint)"; exit 1; }
done <target/firmware-footprint.md
echo "firmware: both boards built; footprint table up to date"
