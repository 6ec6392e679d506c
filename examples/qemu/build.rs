//! Link scripts: cortex-m-rt's `link.x`, which includes `memory.x` (the
//! emulated board's flash and RAM, chosen by the board feature) and
//! `device.x` (interrupt handler names; empty: `src/<board>.rs` fills the
//! vector table itself).
use std::env;
use std::fs;
use std::path::PathBuf;

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap());
    let memory = if env::var_os("CARGO_FEATURE_MICROBIT").is_some() {
        // nRF51822 (QEMU `microbit`): 256 KiB flash, 16 KiB RAM.
        "MEMORY\n{\n  FLASH : ORIGIN = 0x00000000, LENGTH = 256K\n  RAM : ORIGIN = 0x20000000, LENGTH = 16K\n}\n"
    } else {
        // LM3S6965 (QEMU `lm3s6965evb`): 256 KiB flash, 64 KiB RAM.
        "MEMORY\n{\n  FLASH : ORIGIN = 0x00000000, LENGTH = 256K\n  RAM : ORIGIN = 0x20000000, LENGTH = 64K\n}\n"
    };
    fs::write(out.join("memory.x"), memory).unwrap();
    fs::write(
        out.join("device.x"),
        "/* The vector table's interrupt part is src/<board>.rs's __INTERRUPTS. */\n",
    )
    .unwrap();
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rustc-link-arg-bins=--nmagic");
    println!("cargo:rustc-link-arg-bins=-Tlink.x");
}
