//! Where the instructions of a UART read go, on the emulated Cortex-M3 and
//! Cortex-M0: the bench image under QEMU's execution log, every executed
//! instruction named by its (inlined) function and file (see the crate's
//! `profile` module). Prints a table per core (`qemu-profile:` lines); the
//! test asserts that the log's count matches the firmware's own (the
//! method's check: the log counts up to 60 (M0: 90) instructions a read more, those
//! the firmware's clock reads around `WFI` leave out) and that the parts
//! cover what the log counted.
//!
//! QEMU's log of a run is a few hundred megabytes, written under the
//! target folder and removed afterwards. Skipped, saying why, without
//! `qemu-system-arm`, `llvm-symbolizer` or a toolchain.

use std::process::Command;
use std::sync::Mutex;

use bc26_example_qemu_host::profile::{print, profile};
use bc26_example_qemu_host::{firmware_dir, prepare_or_skip, Bin, Board};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn breakdown(board: Board, plans: &[(&str, &str)], test: &str) {
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
    for (plan, title) in plans {
        let log = firmware_dir().join(format!("target/exec-{}.log", board.name()));
        // The firmware builds in the shared thumb folder (.ci/thumb.sh): this
        // package's own target folder may not exist.
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir).expect("the log's folder");
        }
        let b = profile(board, &image, plan, &log);
        print(board, title, &b);
        check(board, &b);
    }
}

/// The log's count matches the firmware's: the firmware does not count the
/// instructions between its two clock reads around `WFI` (part of each
/// read: the end of one `board::now` and the start of the next, about 40
/// per wake-up on the Cortex-M3, about 65 on the Cortex-M0, whose 64-bit
/// shifts and adds and whose critical section take more Thumb-1
/// instructions), the log does; so the log may count up to `slack` more per
/// read, never fewer.
fn check(board: Board, b: &[bc26_example_qemu_host::profile::Breakdown]) {
    let slack = match board {
        Board::CortexM0 => 90.0,
        _ => 60.0,
    };
    for x in b {
        let reads = x.phase.reads as f64;
        let more = (x.counted as f64 - x.phase.busy as f64) / reads;
        assert!(
            (-5.0..slack).contains(&more),
            "the execution log counts {} instructions, the firmware {} ({more:.0} more per read): {:?}",
            x.counted,
            x.phase.busy,
            x.phase
        );
        let total: f64 = x.per_part.iter().sum();
        let source = x.phase.source as f64 / reads;
        assert!(
            (total + source - x.counted as f64 / reads).abs() < 1.0,
            "the parts ({total:.0} per read) cover what the log counted"
        );
    }
}

/// The runner in a task of its own (the application's layout), and the
/// runner, the supervisor and the consumer in one task.
const PLANS: &[(&str, &str)] = &[
    ("profile", "the runner in a task of its own"),
    (
        "profile-one-task",
        "the runner, the supervisor and the consumer in one task",
    ),
];

#[test]
fn a_uart_read_on_the_cortex_m3_is_accounted_for_part_by_part() {
    breakdown(
        Board::CortexM3,
        PLANS,
        "a_uart_read_on_the_cortex_m3_is_accounted_for_part_by_part",
    );
}

#[test]
fn a_uart_read_on_the_cortex_m0_is_accounted_for_part_by_part() {
    breakdown(
        Board::CortexM0,
        &PLANS[..1],
        "a_uart_read_on_the_cortex_m0_is_accounted_for_part_by_part",
    );
}
