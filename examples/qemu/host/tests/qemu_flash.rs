//! The micro:bit's flash outbox (the firmware's feature `flash-outbox`:
//! `run_with_flash` over the nRF51's NVMC as QEMU models it): telemetry
//! stored in flash while the modem is not registered goes out after a
//! reset of the micro:bit, seen by an independent MQTT client.
//!
//! The reset is QEMU's `system_reset` (its monitor): the core starts again
//! from the vector table, RAM is lost to the program (it starts afresh),
//! and the NVMC's flash keeps what was written (QEMU keeps it in memory;
//! a new QEMU would start from the ELF again). The image needs more than
//! the micro:bit's 16 KiB of RAM: it is linked for 64 KiB and runs on a
//! QEMU micro:bit whose RAM is raised to match.
//!
//! Skipped, saying why, without `qemu-system-arm` or a toolchain (see the
//! crate's documentation).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use bc26_example_qemu_host::{
    device_settings, elf_symbol, prepare_or_skip, uart_line, Bin, Board, Options, Qemu,
};
use bc26_sim::broker::{broker, Peer, Publish};
use bc26_sim::Sim;

fn text(p: &Publish) -> String {
    String::from_utf8_lossy(&p.payload).into_owned()
}

/// Every telemetry payload (`{"seq":...}`) written in `flash` on `topic`,
/// in the order they lie there, with the data CRC of its item (0: removed).
/// An item is sequential-storage's 8-byte header (the data's CRC, its
/// length, the length's CRC), then the data: the journal's 10 bytes, the
/// topic, the payload, as they are. The header is written first, the
/// payload last: a payload whose `}` is there was stored completely.
fn payloads_in(flash: &[u8], topic: &str) -> Vec<(String, u32)> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(i) = find(&flash[at..], b"{\"seq\":") {
        let start = at + i;
        let Some(len) = flash[start..].iter().position(|&b| b == b'}') else {
            break;
        };
        let item = start.checked_sub(topic.len() + 10 + 8);
        let crc = match item {
            Some(h) if &flash[h + 18..start] == topic.as_bytes() => {
                u32::from_le_bytes(flash[h..h + 4].try_into().unwrap())
            }
            _ => panic!("a payload at {start:#x} not after its topic"),
        };
        out.push((
            String::from_utf8_lossy(&flash[start..start + len + 1]).into_owned(),
            crc,
        ));
        at = start + len + 1;
    }
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The PUBLISHes the peer received within `d` on `topic`.
fn received(peer: &Peer, topic: &str, d: Duration, into: &mut Vec<String>) {
    let end = Instant::now() + d;
    while let Ok(p) = peer
        .rx
        .recv_timeout(end.saturating_duration_since(Instant::now()))
    {
        if p.topic == topic {
            into.push(text(&p));
        }
    }
}

#[test]
fn microbit_telemetry_stored_in_flash_while_unregistered_is_published_after_a_reset() {
    let board = Board::Microbit;
    let test = "microbit_telemetry_stored_in_flash_while_unregistered_is_published_after_a_reset";
    let Some(image) = prepare_or_skip(board, Bin::FlashOutbox, Some(64 * 1024), test) else {
        return;
    };
    let elf = std::fs::read(&image.elf).expect("the image");
    let start = elf_symbol(&elf, "__outbox_start").expect("__outbox_start (memory.x)");
    let end = elf_symbol(&elf, "__outbox_end").expect("__outbox_end (memory.x)");

    let b = broker();
    let base = format!("qemu-flash/{}", std::process::id());
    let [telemetry, cmd, status, ack] =
        ["telemetry", "cmd", "status", "ack"].map(|t| format!("{base}/{t}"));
    let peer = Peer::new(b, &format!("{base}-peer").replace('/', "-"));
    peer.subscribe(&format!("{base}/#"), 1);
    let (sim, pty) = Sim::start_pty(uart_line()).expect("simulator on a pty");
    let cmdline = device_settings(b, &base);
    let mut qemu = Qemu::start(
        board,
        &image,
        &Options {
            serial: Some(pty),
            cmdline,
            monitor: true,
            ..Options::default()
        },
    );
    // The last line of a boot (the image without the flash outbox prints
    // it too: then the test fails on what flash holds, as it should).
    let boot = |l: &str| l.starts_with("bc26-qemu: the application's future: ");
    qemu.line("the application's start", Duration::from_secs(10), boot);
    let next_on = |topic: &str| loop {
        let p = peer.recv();
        if p.topic == topic {
            return text(&p);
        }
    };

    // Online; one command, so that every later telemetry of this boot says
    // `"commands":1` (a boot after the reset, which gets no command, says
    // 0: its own telemetry is never taken for the stored one).
    assert_eq!(next_on(&status), "online");
    peer.publish(&cmd, 1, b"ping");
    assert_eq!(next_on(&ack), "pong");

    // The network lost: the link drops, telemetry (every 300 ms) is stored
    // in flash and goes nowhere.
    sim.set_registration(2);
    let mut before = Vec::new();
    received(&peer, &telemetry, Duration::from_secs(4), &mut before);

    // What the flash holds at the reset, and has not been published.
    let flash = qemu.read_memory(start, end - start);
    let seen: HashSet<&String> = before.iter().collect();
    let items = payloads_in(&flash, &telemetry);
    let stored: Vec<String> = items
        .iter()
        .filter(|(p, crc)| *crc != 0 && p.contains("\"commands\":1") && !seen.contains(p))
        .map(|(p, _)| p.clone())
        .collect();
    assert!(
        stored.len() >= 5,
        "at least 5 telemetry messages stored in flash while unregistered (one every 300 ms for 4 s), \
         found {stored:?} (the flash's items, data CRC 0 when removed: {items:?})\n--- QEMU:\n{}",
        qemu.log()
    );

    // The reset, with the network back: every stored message goes out.
    qemu.monitor("system_reset");
    qemu.line("the boot after the reset", Duration::from_secs(10), boot);
    sim.set_registration(1);
    let mut after = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !stored.iter().all(|p| after.contains(p)) {
        if Instant::now() >= deadline {
            let now = payloads_in(&qemu.read_memory(start, end - start), &telemetry);
            println!("in flash at the reset: {items:?}\nin flash now: {now:?}");
        }
        assert!(
            Instant::now() < deadline,
            "after the reset, not published within 60 s: {:?}\n(published: {after:?})\n--- QEMU:\n{}",
            stored.iter().filter(|p| !after.contains(p)).collect::<Vec<_>>(),
            qemu.log()
        );
        received(&peer, &telemetry, Duration::from_millis(500), &mut after);
    }
    println!(
        "qemu-flash: {} telemetry messages stored in flash before the reset, all published after it ({} telemetry messages then)",
        stored.len(),
        after.len()
    );

    // Leave no retained status behind on a shared broker.
    peer.client
        .publish(&status, bc26_sim::broker::qos_of(1), true, Vec::new())
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
}
