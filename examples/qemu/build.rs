//! Link scripts: cortex-m-rt's `link.x`, which includes `memory.x` (the
//! LM3S6965's flash and RAM) and `device.x` (interrupt handler names; empty:
//! `src/lm3s6965.rs` fills the vector table itself). Also tells the program
//! which target it was built for.
use std::env;
use std::fs;
use std::path::PathBuf;

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap());
    fs::write(
        out.join("memory.x"),
        "/* LM3S6965: 256 KiB flash, 64 KiB RAM. */\n\
         MEMORY\n{\n  FLASH : ORIGIN = 0x00000000, LENGTH = 256K\n  \
         RAM : ORIGIN = 0x20000000, LENGTH = 64K\n}\n",
    )
    .unwrap();
    fs::write(
        out.join("device.x"),
        "/* The vector table's interrupt part is src/lm3s6965.rs's __INTERRUPTS. */\n",
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
}
