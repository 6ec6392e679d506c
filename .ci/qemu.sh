#!/usr/bin/env bash
# QEMU: builds the example firmware of examples/qemu for thumbv7m-none-eabi
# (the LM3S6965's Cortex-M3) and thumbv6m-none-eabi (a Cortex-M0 core in its
# place) with Debian's toolchain (no warnings allowed), reports the images'
# flash and RAM, then runs the test examples/qemu/host/tests/qemu.rs (the
# firmware in QEMU against the BC26 simulator, checked by an MQTT client)
# against the in-process broker and again against Mosquitto, and prints what
# it measured: stack high-water mark, instructions per +QMTRECV and per QoS 1
# publish (-icount shift=0: one emulated nanosecond per instruction).
#
# Idempotent; installs what it lacks from Debian (apt-get). Cold: about two
# minutes per target on two cores (build-std); warm: seconds. Each test run
# takes about 30 s.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
step() { printf '\n=== %s\n' "$*"; }

need=()
for p in qemu-system-arm rustc-web cargo-web rust-web-src lld-22 llvm; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if ((${#need[@]})); then
  step "installing ${need[*]} from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
qemu-system-arm --version | head -1

# The same linker path as the test's own build (examples/qemu/host), so that
# cargo's fingerprints match and neither rebuilds the other's image.
export CARGO_TARGET_THUMBV7M_NONE_EABI_LINKER=/usr/bin/ld.lld-22
export CARGO_TARGET_THUMBV6M_NONE_EABI_LINKER=/usr/bin/ld.lld-22
# Panic locations embed source paths: map the checkout and cargo's home to
# fixed names (as .ci/firmware.sh and the test's build do), so that the
# image's size does not depend on where the repository was cloned.
RUSTFLAGS="--remap-path-prefix=$(pwd -P)=/bc26-mqtt --remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}=/cargo"

sizes=$(mktemp)
trap 'rm -f "$sizes"' EXIT
for target in thumbv7m-none-eabi thumbv6m-none-eabi; do
  step "examples/qemu: cargo build --release --target $target"
  log=$(mktemp)
  if ! (cd examples/qemu &&
    env PATH="/usr/bin:$PATH" RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1 RUSTFLAGS="$RUSTFLAGS" \
      /usr/bin/cargo build --release -Zbuild-std=core --target "$target") >"$log" 2>&1; then
    cat "$log"
    rm -f "$log"
    echo "qemu: the firmware for $target failed to build"
    exit 1
  fi
  if grep -q '^warning' "$log"; then
    cat "$log"
    rm -f "$log"
    echo "qemu: the firmware for $target built with warnings"
    exit 1
  fi
  rm -f "$log"
  elf="examples/qemu/target/$target/release/bc26-example-qemu"
  var="BC26_QEMU_FIRMWARE_$(echo "$target" | tr 'a-z-' 'A-Z_')"
  export "$var=$PWD/$elf"
  # Berkeley format: text (code, constants, vector table), data, bss.
  read -r text data bss _ < <(llvm-size "$elf" | tail -1)
  printf 'qemu-size: %s: flash %d bytes (text %d + data %d), static RAM %d bytes (data %d + bss %d)\n' \
    "$target" $((text + data)) "$text" "$data" $((data + bss)) "$data" "$bss" | tee -a "$sizes"
done

# Missing tools are failures here, not skips.
export BC26_QEMU_REQUIRED=1
run() {
  local out
  out=$(mktemp)
  if ! "$@" -p bc26-example-qemu-host --test qemu -- --nocapture --test-threads=1 >"$out" 2>&1; then
    cat "$out"
    rm -f "$out"
    echo "qemu: the test failed"
    exit 1
  fi
  grep -E '^(test |test result|qemu-measure)' "$out"
  rm -f "$out"
}
step "the firmware in QEMU, against the in-process broker"
run cargo test
step "the firmware in QEMU, against Mosquitto"
run .ci/with-mosquitto cargo test

# A report, not a check: sizes are never compared with exact numbers
# (.ci/limits.toml; the LM3S6965's 256 KiB of flash and 64 KiB of RAM are
# far away).
step "sizes (report; examples/qemu/README.md has them as measured)"
cat "$sizes"
echo "qemu: both builds ran against both brokers"
