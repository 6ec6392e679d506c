//! Where the instructions of a UART read go, on the emulated Cortex-M3 and
//! Cortex-M0: the bench image under QEMU's execution log, every executed
//! instruction named by its (inlined) function and file (see the crate's
//! `profile` module). Prints a table per core (`qemu-profile:` lines); the
//! test asserts that the log's count matches the firmware's own (the
//! method's check) and that the parts cover the driver's side.
//!
//! QEMU's log of a run is a few hundred megabytes, written under the
//! target folder and removed afterwards. Skipped, saying why, without
//! `qemu-system-arm`, `llvm-symbolizer` or a toolchain.

use std::process::Command;
use std::sync::Mutex;

use bc26_example_qemu_host::profile::{print, profile};
use bc26_example_qemu_host::{firmware_dir, prepare_or_skip, Bin, Board};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn breakdown(board: Board, test: &str) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    if Command::new("llvm-symbolizer")
        .arg("--version")
        .output()
        .is_err()
    {
        if std::env::var_os("BC26_QEMU_REQUIRED").is_some() {
            panic!("{test}: llvm-symbolizer is missing (Debian: llvm)");
        }
        eprintln!("{test}: SKIPPED: llvm-symbolizer is missing (Debian: llvm)");
        return;
    }
    let Some(image) = prepare_or_skip(board, Bin::Bench, None, test) else {
        return;
    };
    let log = firmware_dir().join(format!("target/exec-{}.log", board.name()));
    let b = profile(board, &image, &log);
    print(board, &b);
    for x in &b {
        let fw = x.phase.busy as f64;
        let counted = x.counted as f64;
        assert!(
            (counted - fw).abs() / fw < 0.02,
            "the execution log counts {counted} instructions, the firmware {fw}: {:?}",
            x.phase
        );
        let total: f64 = x.per_part.iter().sum();
        assert!(
            (total - x.phase.per_read()).abs() / x.phase.per_read() < 0.02,
            "the parts ({total:.0} per read) cover the driver's side ({:.0})",
            x.phase.per_read()
        );
    }
}

#[test]
fn a_uart_read_on_the_cortex_m3_is_accounted_for_part_by_part() {
    breakdown(
        Board::CortexM3,
        "a_uart_read_on_the_cortex_m3_is_accounted_for_part_by_part",
    );
}

#[test]
fn a_uart_read_on_the_cortex_m0_is_accounted_for_part_by_part() {
    breakdown(
        Board::CortexM0,
        "a_uart_read_on_the_cortex_m0_is_accounted_for_part_by_part",
    );
}
