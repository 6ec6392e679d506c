#!/usr/bin/env bash
# Prints the footprint tables of the README ("Board examples") from the firmware that
# .ci/firmware.sh built (run that first; it also calls this script):
# flash and RAM of each board example, of its `no-mqtt` baseline and the
# difference; code by source crate (DWARF line tables); the driver's RAM.
# Needs llvm-size, llvm-nm and llvm-dwarfdump (Debian package `llvm`) and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
elf() { # elf <board> <target-dir> <bin>
  local f="examples/$1/$2/thumbv7em-none-eabihf/release/$3"
  [ -f "$f" ] || { echo "footprint: $f is missing: run .ci/firmware.sh" >&2; exit 1; }
  echo "$f"
}
stm32=$(elf stm32 target bc26-example-stm32)
stm32_base=$(elf stm32 target/no-mqtt bc26-example-stm32)
nrf=$(elf nrf target bc26-example-nrf)
nrf_base=$(elf nrf target/no-mqtt bc26-example-nrf)
exec python3 .ci/footprint.py llvm-size llvm-nm llvm-dwarfdump \
  "STM32L476RG Nucleo=$stm32:$stm32_base" \
  "nRF52840 DK=$nrf:$nrf_base"
