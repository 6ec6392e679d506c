# Sourced (not run) by every script that builds for a thumb target
# (.ci/run, .ci/sizes.sh, .ci/qemu.sh, .ci/firmware.sh): Debian's toolchain
# with -Zbuild-std=core, every build in ONE target folder with the same flags
# and linker, so that `core` and each dependency the builds share compile once
# per target triple and profile, not once per build (before: eleven builds in
# seven folders, `core` compiled ten times).
#
#   thumb_need PKG...        install Debian packages that are missing
#   thumb_cargo ARGS...      /usr/bin/cargo ARGS in the shared folder
#   BC26_THUMB_TARGET_DIR    the shared folder (default target/thumb)
#   thumb_images             where finished images are copied (target/images),
#                            so that the shared folder can be deleted and a
#                            later build (another feature set, same binary
#                            name) does not overwrite them
#
# Source paths in the images (panic locations) are mapped to fixed names, so
# that an image and its size do not depend on where the repository was cloned.
# examples/qemu/host builds its images with the same flags (its `build`).

thumb_repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
BC26_THUMB_TARGET_DIR=${BC26_THUMB_TARGET_DIR:-$thumb_repo/target/thumb}
export BC26_THUMB_TARGET_DIR
thumb_images=$thumb_repo/target/images
thumb_rustflags="--remap-path-prefix=$thumb_repo=/bc26-mqtt --remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}=/cargo"

thumb_cargo() {
  # Debian's rustc-web ships no rust-lld: link with ld.lld-22. The committed
  # .cargo/config.toml files name no linker, so rustup users get rust-lld.
  env PATH="/usr/bin:$PATH" RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1 \
    CARGO_INCREMENTAL=0 RUSTFLAGS="$thumb_rustflags" \
    CARGO_TARGET_THUMBV7EM_NONE_EABIHF_LINKER=/usr/bin/ld.lld-22 \
    CARGO_TARGET_THUMBV7M_NONE_EABI_LINKER=/usr/bin/ld.lld-22 \
    CARGO_TARGET_THUMBV6M_NONE_EABI_LINKER=/usr/bin/ld.lld-22 \
    CARGO_TARGET_DIR="$BC26_THUMB_TARGET_DIR" /usr/bin/cargo "$@"
}

thumb_need() {
  local need=() p
  for p in "$@"; do
    dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
  done
  if ((${#need[@]})); then
    printf '\n=== installing %s from Debian'"'"'s packages\n' "${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
}

# thumb_quiet LABEL ARGS...: thumb_cargo ARGS with its output kept back; on
# failure, or when it warned, print it and fail (no warnings allowed).
thumb_quiet() {
  local label=$1 log
  shift
  log=$(mktemp)
  if ! thumb_cargo "$@" >"$log" 2>&1; then
    cat "$log"
    rm -f "$log"
    echo "$label failed to build"
    return 1
  fi
  grep -v '^\s*\(Compiling\|Downloaded\|Downloading\|Updating\|Locking\|Adding\|Blocking\)' "$log" || true
  if grep -q '^warning' "$log"; then
    rm -f "$log"
    echo "$label built with warnings"
    return 1
  fi
  rm -f "$log"
}
