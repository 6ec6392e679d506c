//! The bench image on the emulated Cortex-M3 and Cortex-M0 (QEMU's
//! `lm3s6965evb`): the driver (its runner in a task of its own), the
//! supervisor and a consumer against a scripted modem inside the firmware, whose bytes reach the driver in
//! reads of exactly 1, 8 or 64 bytes, in emulated time only. The tests
//! assert that every message arrives whole, that every read has the size it
//! was forced to, and (on the Cortex-M3) that two runs count the same
//! instructions; they print what they measured (`qemu-measure:` lines, and
//! one `qemu-figure:` line per core that `.ci/qemu.sh` compares with
//! `.ci/limits.toml`):
//!
//! - the cost of a UART read: for 256-, 16- and 1024-byte payloads in hex,
//!   the instructions per read at 1, 8 and 64 bytes per read, and the line
//!   fitted through them: a fixed cost per read and a marginal cost per
//!   byte (the per-message work, spread over the message's bytes, is in the
//!   marginal cost);
//! - the longest time interrupts stayed masked while the link came up and
//!   while 1024-byte messages arrived and were read, and where (the figure
//!   `masked` is the longest of the whole bench, bring-up included);
//! - the cost of a read with the runner, the supervisor and the consumer
//!   in one task (the `one-task` plan), for comparison.
//!
//! Skipped, saying why, without `qemu-system-arm` or a toolchain (see the
//! crate's documentation).

use std::sync::Mutex;

use bc26_example_qemu_host::bench::{self, fit, site_name, Phase, Run};
use bc26_example_qemu_host::{prepare_or_skip, Bin, Board, Image};

/// One QEMU at a time (the other tests of the crate use the host's cores).
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Every message arrived whole, and every read had its size.
fn check(run: &Run) {
    assert!(
        !run.phases.is_empty(),
        "no phase\n--- QEMU:\n{}",
        run.log.join("\n")
    );
    for p in &run.phases {
        assert_eq!(
            (p.got, p.bad, p.missed),
            (p.messages, 0, 0),
            "every message arrives whole: {p:?}"
        );
        assert_eq!(
            p.reads,
            p.bytes.div_ceil(p.piece),
            "every read gets the piece it was forced to: {p:?}"
        );
        assert!(p.busy > p.source, "implausible: {p:?}");
    }
}

fn report(board: Board, image: &Image, run: &Run) {
    let m = format!("{} on {}", board.target(), board.machine());
    let per_read: Vec<&Phase> = run.phases.iter().filter(|p| !p.probe).collect();
    for p in &per_read {
        println!(
            "qemu-measure: {m}: bench: {}-byte payloads, {}-byte reads: {:.0} instructions per read \
             ({} messages, {} bytes, {} reads; of which the stand-in UART interrupt {:.0})",
            p.payload,
            p.piece,
            p.per_read(),
            p.messages,
            p.bytes,
            p.reads,
            p.isr as f64 / p.reads as f64
        );
    }
    let mut figure = format!("qemu-figure: {}", board.name());
    for payload in [256, 16, 1024] {
        let ps: Vec<&Phase> = per_read
            .iter()
            .copied()
            .filter(|p| p.payload == payload)
            .collect();
        if ps.len() < 2 {
            continue;
        }
        let f = fit(&ps);
        println!(
            "qemu-measure: {m}: bench: cost of a UART read, {payload}-byte payloads in hex: \
             {:.0} instructions fixed + {:.1} per byte (line through {} bytes per read)",
            f.fixed,
            f.per_byte,
            ps.iter()
                .map(|p| format!("{:.0}", p.bytes_per_read()))
                .collect::<Vec<_>>()
                .join(", ")
        );
        if payload == 256 {
            figure += &format!(" read_fixed={:.0} read_per_byte={:.1}", f.fixed, f.per_byte);
        }
    }
    let mut longest: Option<(u64, u32, &Phase)> = None;
    for p in run.phases.iter().filter(|p| p.probe) {
        for s in &p.masked {
            if longest.is_none_or(|(max, _, _)| s.max > max) {
                longest = Some((s.max, s.site, p));
            }
        }
    }
    if let Some((max, site, p)) = longest {
        println!(
            "qemu-measure: {m}: bench: longest time with interrupts masked while {}-byte messages \
             arrive and are read: {max} instructions, in {}",
            p.payload,
            site_name(&image.elf, site)
        );
        let bring_up = run.bring_up.iter().map(|s| s.max).max().unwrap_or(0);
        figure += &format!(
            " masked={} masked_messages={max} masked_bring_up={bring_up}",
            max.max(bring_up)
        );
        let mut sites: Vec<(u64, u32)> = Vec::new();
        for p in run.phases.iter().filter(|p| p.probe) {
            for s in &p.masked {
                match sites.iter_mut().find(|(_, at)| *at == s.site) {
                    Some(e) => e.0 = e.0.max(s.max),
                    None => sites.push((s.max, s.site)),
                }
            }
        }
        sites.sort_unstable_by(|a, b| b.cmp(a));
        for (max, site) in sites.iter().take(6) {
            println!(
                "qemu-measure: {m}: bench: masked up to {max} instructions in {}",
                site_name(&image.elf, *site)
            );
        }
    }
    if let Some(s) = run.bring_up.iter().max_by_key(|s| s.max) {
        println!(
            "qemu-measure: {m}: bench: longest time with interrupts masked while the link came up: \
             {} instructions, in {}",
            s.max,
            site_name(&image.elf, s.site)
        );
    }
    println!("{figure}");
}

/// The `one-task` plan: the runner, the supervisor and the consumer in one
/// task (as `bc26_example_app::run` runs them), so that every UART read
/// polls all three (the full plan runs the runner in a task of its own, so
/// that a read wakes it alone).
fn report_one_task(board: Board, image: &Image) {
    let run = bench::run(board, image, "one-task", None);
    check(&run);
    let m = format!("{} on {}", board.target(), board.machine());
    let ps: Vec<&Phase> = run.phases.iter().collect();
    let f = fit(&ps);
    println!(
        "qemu-measure: {m}: bench: with the runner, the supervisor and the consumer in one task, 256-byte payloads: {} \
         instructions per read at 1 / 8 / 64 bytes per read: {:.0} fixed + {:.1} per byte",
        ps.iter()
            .map(|p| format!("{:.0}", p.per_read()))
            .collect::<Vec<_>>()
            .join(" / "),
        f.fixed,
        f.per_byte
    );
}

#[test]
fn the_bench_on_the_cortex_m3_receives_every_message_whole_and_counts_the_same_twice() {
    let test = "the_bench_on_the_cortex_m3_receives_every_message_whole_and_counts_the_same_twice";
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let board = Board::CortexM3;
    let Some(image) = prepare_or_skip(board, Bin::Bench, None, test) else {
        return;
    };
    let a = bench::run(board, &image, "", None);
    check(&a);
    let b = bench::run(board, &image, "", None);
    assert_eq!(
        a.phases, b.phases,
        "the bench runs in emulated time only: two runs count the same"
    );
    report(board, &image, &a);
    report_one_task(board, &image);
}

#[test]
fn the_bench_on_the_cortex_m0_receives_every_message_whole() {
    let test = "the_bench_on_the_cortex_m0_receives_every_message_whole";
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let board = Board::CortexM0;
    let Some(image) = prepare_or_skip(board, Bin::Bench, None, test) else {
        return;
    };
    let run = bench::run(board, &image, "", None);
    check(&run);
    report(board, &image, &run);
    report_one_task(board, &image);
}
