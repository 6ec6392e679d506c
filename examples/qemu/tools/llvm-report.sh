#!/usr/bin/env bash
# What the compiler knows about the firmware's memory, for one image:
#
#   examples/qemu/tools/llvm-report.sh type-sizes    [IMAGE-OPTIONS] [--root TYPE-SUBSTRING]
#   examples/qemu/tools/llvm-report.sh frame-objects FUNCTION-SUBSTRING [IMAGE-OPTIONS]
#
# IMAGE-OPTIONS: --target thumbv7m-none-eabi (default) | thumbv6m-none-eabi,
# --bin bc26-example-qemu (default) | bc26-qemu-bench, --microbit (the
# micro:bit's features and target folder).
#
# type-sizes: rebuilds the image's last crate with -Zprint-type-sizes and
# prints, with tools/futures.py, the tree of the largest future (the task's)
# or of the type named: which futures, fields and locals take its bytes.
# frame-objects: rebuilds it with LLVM's machine code printed after stack
# colouring for the function named (its mangled or demangled name contains
# FUNCTION-SUBSTRING; the largest frame first, see tools/frames.py), and
# prints the frame objects that survived, by size.
#
# Each rebuild takes seconds once the image is built (its dependencies are
# reused); Debian's toolchain as in .ci/qemu.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
fw=$(cd "$here/.." && pwd)
repo=$(cd "$fw/../.." && pwd -P)
mode=${1:?"type-sizes or frame-objects"}
shift
func=
if [ "$mode" = frame-objects ]; then
  func=${1:?"a function name (substring)"}
  shift
fi
target=thumbv7m-none-eabi bin=bc26-example-qemu features=() tdir=target root=
while [ $# -gt 0 ]; do
  case $1 in
  --target) target=$2; shift 2 ;;
  --bin) bin=$2; shift 2 ;;
  --microbit) target=thumbv6m-none-eabi features=(--no-default-features --features microbit) tdir=target/microbit; shift ;;
  --root) root=$2; shift 2 ;;
  *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
cargo_() {
  local sub=$1
  shift
  (cd "$fw" && env CARGO_INCREMENTAL=0 PATH="/usr/bin:$PATH" RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1 \
    "CARGO_TARGET_$(echo "$target" | tr 'a-z-' 'A-Z_')_LINKER=/usr/bin/ld.lld-22" \
    RUSTFLAGS="--remap-path-prefix=$repo=/bc26-mqtt --remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}=/cargo" \
    /usr/bin/cargo "$sub" --release -Zbuild-std=core --target "$target" --target-dir "$tdir" "${features[@]}" "$@")
}
out="$fw/$tdir/llvm-report-$mode.txt"
case $mode in
type-sizes)
  cargo_ rustc -q --bin "$bin" -- -Zprint-type-sizes >"$out"
  exec python3 "$here/futures.py" "$out" ${root:+--root "$root"}
  ;;
frame-objects)
  cargo_ build -q --bin "$bin"
  elf="$fw/$tdir/$target/release/$bin"
  sym=$(llvm-nm "$elf" | awk '$2 ~ /^[tT]$/ {print $3}' | while read -r s; do
    d=$(echo "$s" | llvm-cxxfilt)
    case "$s $d" in *"$func"*) echo "$s" ;; esac
  done | head -1)
  [ -n "$sym" ] || { echo "no function matches $func" >&2; exit 1; }
  echo "function: $(echo "$sym" | llvm-cxxfilt)"
  cargo_ rustc -q --bin "$bin" -- -C llvm-args=-print-after=stack-coloring -C "llvm-args=-filter-print-funcs=$sym" 2>"$out"
  exec python3 "$here/frames.py" "$elf" --top 5 --objects "$out"
  ;;
*) echo "type-sizes or frame-objects" >&2; exit 2 ;;
esac
