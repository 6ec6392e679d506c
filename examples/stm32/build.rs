//! Puts `memory.x` on the linker's search path (the board's own, with the
//! flash outbox's region, instead of the one embassy-stm32's `memory-x`
//! feature generates) and adds the link scripts: cortex-m-rt's `link.x`
//! (which includes `memory.x`) and defmt's `defmt.x`.
use std::env;
use std::fs;
use std::path::PathBuf;

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap());
    fs::write(out.join("memory.x"), include_bytes!("memory.x")).unwrap();
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rustc-link-arg-bins=--nmagic");
    println!("cargo:rustc-link-arg-bins=-Tlink.x");
    println!("cargo:rustc-link-arg-bins=-Tdefmt.x");
}
