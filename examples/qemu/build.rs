//! Link scripts: cortex-m-rt's `link.x`, which includes `memory.x` (the
//! board's flash and RAM) and `device.x` (interrupt handler names; empty:
//! the board's module fills the vector table itself). Also tells the program
//! which target it was built for.
//!
//! `BC26_QEMU_RAM_KIB` links for more RAM than the board has (the micro:bit
//! image, when it does not fit its 16 KiB, runs on a QEMU micro:bit whose
//! RAM was raised to match, `-global nrf51-soc.sram-size=...`, so that what
//! it needs can be measured).
use std::env;
use std::fs;
use std::path::PathBuf;

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap());
    let microbit = env::var_os("CARGO_FEATURE_MICROBIT").is_some();
    let (board, ram_kib) = if microbit {
        ("nRF51822 (micro:bit): 256 KiB flash, 16 KiB RAM", 16)
    } else {
        ("LM3S6965: 256 KiB flash, 64 KiB RAM", 64)
    };
    println!("cargo:rerun-if-env-changed=BC26_QEMU_RAM_KIB");
    let ram_kib: u32 = match env::var("BC26_QEMU_RAM_KIB") {
        Ok(v) => v.parse().expect("BC26_QEMU_RAM_KIB: a number of KiB"),
        Err(_) => ram_kib,
    };
    // The micro:bit's last 8 KiB of flash (8 pages of 1 KiB) are OUTBOX:
    // the flash outbox's region (feature `flash-outbox`, src/nvmc.rs),
    // reserved with or without the feature. FLASH ends where it begins, so
    // the program can never grow into it.
    let (flash, outbox) = if microbit {
        (
            "FLASH : ORIGIN = 0x00000000, LENGTH = 256K - 8K\n  \
             OUTBOX : ORIGIN = 0x00000000 + 256K - 8K, LENGTH = 8K",
            "__outbox_start = ORIGIN(OUTBOX);\n\
             __outbox_end = ORIGIN(OUTBOX) + LENGTH(OUTBOX);\n",
        )
    } else {
        ("FLASH : ORIGIN = 0x00000000, LENGTH = 256K", "")
    };
    fs::write(
        out.join("memory.x"),
        format!(
            "/* {board}. */\n\
             MEMORY\n{{\n  {flash}\n  \
             RAM : ORIGIN = 0x20000000, LENGTH = {ram_kib}K\n}}\n{outbox}"
        ),
    )
    .unwrap();
    fs::write(
        out.join("device.x"),
        "/* The vector table's interrupt part is the board module's __INTERRUPTS;\n   \
         the bench image defines the handler of its timer. */\n\
         PROVIDE(BenchTick = DefaultHandler);\n",
    )
    .unwrap();
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rustc-link-arg-bins=--nmagic");
    println!("cargo:rustc-link-arg-bins=-Tlink.x");
    println!(
        "cargo:rustc-env=BC26_QEMU_TARGET={}",
        env::var("TARGET").unwrap()
    );
    println!("cargo:rustc-env=BC26_QEMU_RAM_KIB={ram_kib}");
}
