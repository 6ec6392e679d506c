//! The example firmware on an emulated Cortex-M board (QEMU), its UART wired
//! to the BC26 simulator's pseudo-terminal, the simulator to a real broker
//! (in-process, or `MQTT_HOST`/`MQTT_PORT`), checked from outside by an
//! independent MQTT client, like `examples/app/tests/with_sim.rs` does for
//! the application on the host. Then it measures, and prints, the CPU cost
//! of receiving and publishing and the stack's high-water mark.
//!
//! Skipped, saying why, without `qemu-system-arm` or a toolchain for the
//! board's target (see the crate's documentation).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bc26_example_qemu_host::{
    device_settings, prepare_or_skip, uart_line, Bin, Board, Image, Options, Qemu, Report,
};
use bc26_sim::broker::{broker, Peer, Publish};
use bc26_sim::{Sim, SimHandle};

fn text(p: &Publish) -> String {
    String::from_utf8_lossy(&p.payload).into_owned()
}

struct Rig {
    board: Board,
    qemu: Qemu,
    peer: Peer,
    sim: SimHandle,
    /// telemetry, cmd, status, ack.
    topics: [String; 4],
    base: String,
    /// When QEMU started.
    started: Instant,
}

impl Rig {
    /// The next PUBLISH on `topic` (others are skipped).
    fn next_on(&self, topic: &str) -> Publish {
        loop {
            let p = self.peer.recv();
            if p.topic == topic {
                return p;
            }
        }
    }

    /// Sends a command, waits for its reply and for the report the firmware
    /// prints while handling it, then lets the publish of the reply finish
    /// (`+QMTPUB`).
    fn command(&self, cmd: &str, reply: &str) -> Report {
        // Reports that came before (the application's start switches the
        // LED off) are not this command's.
        self.qemu.drain();
        self.peer.publish(&self.topics[1], 1, cmd.as_bytes());
        let r = self.qemu.report();
        assert_eq!(text(&self.next_on(&self.topics[3])), reply);
        std::thread::sleep(Duration::from_millis(100));
        r
    }
}

/// Instructions (busy ns under `-icount shift=0`) between two reports.
fn busy(a: &Report, b: &Report) -> f64 {
    (b.busy_ns - a.busy_ns) as f64
}

/// Emulated seconds between two reports.
fn secs(a: &Report, b: &Report) -> f64 {
    (b.up_ns - a.up_ns) as f64 / 1e9
}

/// Bytes per UART read between two reports (1: every byte woke the task).
fn per_read(a: &Report, b: &Report) -> f64 {
    (b.rx_bytes - a.rx_bytes) as f64 / (b.rx_reads - a.rx_reads).max(1) as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// One QEMU at a time: the measurements want the host's cores undisturbed
/// (a busy host hands the firmware several bytes per wake-up).
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Scenarios run so far: each gets topics of its own, so that a scenario
/// never reads the retained status (the will, `offline`) that an earlier
/// one's device left on the broker when its QEMU was stopped.
static RUNS: AtomicUsize = AtomicUsize::new(0);

/// What a run of the scenario found of the image's memory.
struct Memory {
    /// RAM the image was linked for, bytes.
    ram: u64,
    /// Its statics (everything below the stack), bytes.
    statics: u64,
    /// The stack's high-water mark at the end, bytes.
    stack: u64,
}

fn scenario(board: Board, image: &Image) -> Memory {
    let b = broker();
    let run = RUNS.fetch_add(1, Ordering::Relaxed);
    let base = format!("qemu-e2e/{}-{}-{run}", std::process::id(), board.name());
    let topics = ["telemetry", "cmd", "status", "ack"].map(|t| format!("{base}/{t}"));
    let peer = Peer::new(b, &format!("{base}-peer").replace('/', "-"));
    peer.subscribe(&format!("{base}/#"), 1);
    let (sim, pty) = Sim::start_pty(uart_line()).expect("simulator on a pty");
    let cmdline = device_settings(b, &base);
    let started = Instant::now();
    let qemu = Qemu::start(
        board,
        image,
        &Options {
            serial: Some(pty),
            cmdline,
            ..Options::default()
        },
    );
    let (ram, statics, _) = qemu.memory();
    let rig = Rig {
        started,
        board,
        qemu,
        peer,
        sim,
        topics,
        base,
    };

    // The method of the measurements: a loop of a known number of
    // instructions takes that many nanoseconds of emulated time (plus the
    // few instructions that read the clock around it).
    let (insns, ns) = rig.qemu.calibration();
    assert!(
        ns.abs_diff(insns) <= board.calibration_tolerance(),
        "-icount shift=0 should make {insns} instructions {insns} ns, not {ns}"
    );

    // Seen from outside: online (retained), telemetry.
    let t = &rig.topics;
    assert_eq!(text(&rig.next_on(&t[2])), "online");
    let t1 = text(&rig.next_on(&t[0]));
    assert!(
        t1.starts_with("{\"seq\":") && t1.contains("\"reconnects\":0"),
        "{t1}"
    );

    // A command round trip.
    let r = rig.command("ping", "pong");
    assert!(!r.led);

    // The simulator drops the link: the broker publishes the will, the
    // firmware sees +QMTSTAT, backs off, reconnects and says so.
    rig.sim.break_link(0);
    assert_eq!(text(&rig.next_on(&t[2])), "offline");
    assert_eq!(text(&rig.next_on(&t[2])), "online");
    let t2 = loop {
        let t = text(&rig.next_on(&t[0]));
        if t.contains("\"reconnects\":1") {
            break t;
        }
    };
    assert!(t2.contains("\"commands\":1"), "{t2}");
    let r = rig.command("led on", "ok led on");
    assert!(r.led, "the LED follows the command");

    let stack = measure(&rig);

    // Leave no retained status behind on a shared broker.
    rig.peer
        .client
        .publish(&t[2], bc26_sim::broker::qos_of(1), true, Vec::new())
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    println!(
        "qemu-figure: {} app_statics={statics} app_stack={stack} app_ram={}",
        board.name(),
        statics + stack
    );
    Memory {
        ram,
        statics,
        stack,
    }
}

/// The scenario on one of the LM3S6965's cores.
fn on_lm3s6965(board: Board, test: &str) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some(image) = prepare_or_skip(board, Bin::App, None, test) else {
        return;
    };
    scenario(board, &image);
}

/// CPU cost per operation, from the `busy_ns` of the reports around
/// scripted bursts; prints the results (`qemu-measure:` lines). Returns the
/// stack's high-water mark.
fn measure(rig: &Rig) -> u64 {
    let t = &rig.topics;
    // No telemetry of its own from now on: only what the script causes.
    rig.command("period 3600", "ok period 3600");

    // Command round trips: between two reports lie the reply's QoS 1
    // publish and the next command's reception.
    let mut reports = vec![rig.command("ping", "pong")];
    for _ in 0..10 {
        reports.push(rig.command("ping", "pong"));
    }
    let short: Vec<(f64, f64)> = reports
        .windows(2)
        .map(|w| (busy(&w[0], &w[1]), secs(&w[0], &w[1])))
        .collect();

    // Idle: the same, with 3 s of nothing between them.
    let a = rig.command("ping", "pong");
    std::thread::sleep(Duration::from_secs(3));
    let z = rig.command("ping", "pong");
    let (d_short, u_short) = (
        median(short.iter().map(|s| s.0).collect()),
        median(short.iter().map(|s| s.1).collect()),
    );
    let idle_per_s = ((busy(&a, &z) - d_short) / (secs(&a, &z) - u_short)).max(0.0);
    let round = median(short.iter().map(|(d, u)| d - idle_per_s * u).collect());

    // +QMTRECV: N messages on a topic the application ignores (the
    // simulator's URC, byte for byte what a broker's message gives), one
    // every 20 ms, between two command round trips; for three payload sizes.
    const N: usize = 10;
    let mut recv = Vec::new();
    for size in [16, 64, 256] {
        let c = rig.command("ping", "pong");
        for i in 0..N {
            let payload: String = format!("{i:02};")
                .chars()
                .chain(std::iter::repeat('x'))
                .take(size)
                .collect();
            rig.sim.inject_urc(&format!(
                "+QMTRECV: 0,0,\"{}/other\",\"{payload}\"",
                rig.base
            ));
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(100));
        let d = rig.command("ping", "pong");
        recv.push((
            size,
            (busy(&c, &d) - round - idle_per_s * secs(&c, &d)) / N as f64,
            per_read(&c, &d),
        ));
    }

    // QoS 1 publishes of the telemetry (formatted, published, echoed in
    // data mode, acknowledged): `period 1` makes one a second; between its
    // report and the next command's lie K of them and one round trip.
    const K: usize = 5;
    let e = rig.command("period 1", "ok period 1");
    for _ in 0..K {
        assert!(text(&rig.next_on(&t[0])).starts_with("{\"seq\":"));
    }
    let last = rig.command("period 3600", "ok period 3600");
    let tele = (busy(&e, &last) - round - idle_per_s * secs(&e, &last)) / K as f64;

    let m = format!("{} on {}", rig.board.target(), rig.board.machine());
    let first = reports[0];
    println!(
        "qemu-measure: {m}: stack high-water mark {} of {} bytes",
        last.stack, last.stack_size
    );
    for (size, n, b) in &recv {
        println!("qemu-measure: {m}: +QMTRECV received and dropped ({size}-byte payload, topic ignored): {n:.0} instructions ({b:.2} bytes per read)");
    }
    println!("qemu-measure: {m}: command round trip (+QMTRECV `ping`, QoS 1 publish of `pong`): {round:.0} instructions");
    println!("qemu-measure: {m}: QoS 1 publish of the telemetry (~90-byte JSON, formatting included): {tele:.0} instructions");
    println!("qemu-measure: {m}: idle while connected: {idle_per_s:.0} instructions per second");
    println!(
        "qemu-measure: {m}: the whole run: {} instructions; emulated clock {:.3} s, real time {:.3} s since QEMU started",
        last.busy_ns,
        last.up_ns as f64 / 1e9,
        rig.started.elapsed().as_secs_f64()
    );
    println!(
        "qemu-measure: {m}: the UART line: {} bytes in {} reads during the measurements ({:.2} bytes per read)",
        last.rx_bytes - first.rx_bytes,
        last.rx_reads - first.rx_reads,
        per_read(&first, &last)
    );
    assert!(
        recv.iter().all(|(_, n, _)| *n > 0.0) && round > 0.0 && tele > 0.0,
        "implausible: receive {recv:?}, round trip {round}, telemetry {tele}"
    );
    assert!(last.stack < last.stack_size, "the stack overflowed");
    last.stack
}

#[test]
fn the_cortex_m3_firmware_in_qemu_goes_online_answers_and_reconnects_after_a_dropped_link() {
    on_lm3s6965(
        Board::CortexM3,
        "the_cortex_m3_firmware_in_qemu_goes_online_answers_and_reconnects_after_a_dropped_link",
    );
}

#[test]
fn the_cortex_m0_firmware_in_qemu_goes_online_answers_and_reconnects_after_a_dropped_link() {
    on_lm3s6965(
        Board::CortexM0,
        "the_cortex_m0_firmware_in_qemu_goes_online_answers_and_reconnects_after_a_dropped_link",
    );
}

/// RAM the micro:bit image is linked for when the 16 KiB one failed: QEMU's
/// micro:bit with its RAM raised, so that an image that outgrew 16 KiB still
/// runs and says by how much.
const MICROBIT_ROOMY: u32 = 64 * 1024;

/// The application's small configuration on QEMU's micro:bit (nRF51822,
/// 16 KiB of RAM): the image linked for the board's 16 KiB runs the whole
/// scenario, and its statics and its stack's high-water mark are measured
/// there. Only if that run fails is the image linked again for a micro:bit
/// whose RAM QEMU raised to 64 KiB (the same board), and run, so that the
/// failure says how much RAM the configuration needs.
#[test]
fn the_microbit_firmware_fits_16_kib_goes_online_answers_and_reconnects_after_a_dropped_link() {
    let test =
        "the_microbit_firmware_fits_16_kib_goes_online_answers_and_reconnects_after_a_dropped_link";
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let board = Board::Microbit;
    let have = u64::from(board.ram());
    let Some(real) = prepare_or_skip(board, Bin::App, None, test) else {
        return;
    };
    let failed = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        scenario(board, &real)
    })) {
        Ok(m) => {
            assert_eq!(m.ram, have);
            let need = m.statics + m.stack;
            assert!(need <= have, "{need} bytes measured in {have}");
            println!(
                "qemu-measure: microbit: fits 16 KiB: statics {} + stack high-water mark {} = {need} bytes",
                m.statics, m.stack
            );
            return;
        }
        Err(e) => e,
    };
    // Why: the same scenario with room to spare.
    eprintln!(
        "{test}: the 16 KiB image failed; measuring it with {} KiB",
        MICROBIT_ROOMY / 1024
    );
    if let Some(roomy) = prepare_or_skip(board, Bin::App, Some(MICROBIT_ROOMY), test) {
        if let Ok(m) =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| scenario(board, &roomy)))
        {
            let need = m.statics + m.stack;
            eprintln!(
                "qemu-measure: microbit: RAM needed {need} bytes (statics {} + stack high-water mark {}) of {have}: {} bytes short",
                m.statics,
                m.stack,
                need.saturating_sub(have)
            );
        }
    }
    std::panic::resume_unwind(failed);
}
