//! The driver's tests use the shared harness (`testkit/`), plus the
//! transcript player.
#![allow(dead_code, unused_imports)]

pub mod rig;
pub mod transcript;

pub use bc26_testkit::*;
