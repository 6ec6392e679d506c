//! Link scripts: cortex-m-rt's `link.x` (which includes the `memory.x` that
//! embassy-stm32's `memory-x` feature generates) and defmt's `defmt.x`.
fn main() {
    println!("cargo:rustc-link-arg-bins=--nmagic");
    println!("cargo:rustc-link-arg-bins=-Tlink.x");
    println!("cargo:rustc-link-arg-bins=-Tdefmt.x");
}
