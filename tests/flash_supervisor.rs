//! The supervisor's scenarios (`tests/supervisor.rs`: link drops, modem
//! reboots and `RDY`, failed publishes, broker restarts, a full outbox
//! waiting for room, timeouts), its soak (`tests/supervisor_soak.rs`) and
//! the refusals on the fake (`tests/supervisor_fake.rs`: `ERROR` and
//! `+QMTPUB: 0,id,2` until `max_refusals`, failed publishes), the same
//! code, through a flash outbox
//! (feature `flash-outbox`): in this target every `Dev` of the rig
//! publishes through a `FlashOutbox` on a RAM `NorFlash` double
//! (`common::rig::FLASH`). Each scenario asserts what it asserts with the
//! RAM outbox (every QoS 1 message reaches the watcher at least once, none
//! that was never handed), and then that flash holds nothing once every
//! message was acknowledged, with no flash failure and no corrupted entry
//! counted.
//!
//! `cargo test -p bc26-mqtt --features flash-outbox --test flash_supervisor`
//! (`BC26_SOAK_N`, `BC26_SOAK_SEED` as for the soak).
#![cfg(feature = "flash-outbox")]
// Each test file included below brings its own `mod common;`, as in its own
// target: the rig is compiled once per file (separate, equal copies).
#![allow(clippy::duplicate_mod)]

mod common;

#[path = "supervisor.rs"]
mod supervisor;

#[path = "supervisor_soak.rs"]
mod supervisor_soak;

#[path = "supervisor_fake.rs"]
mod supervisor_fake;

/// The rig of this target publishes through a flash outbox (in
/// `tests/supervisor.rs`'s own target it does not).
#[test]
fn this_target_runs_the_scenarios_through_the_flash_outbox() {
    let d = common::rig::Dev::start(common::rig::Opts::new("flash-rig"));
    assert!(d.flash.is_some());
}
