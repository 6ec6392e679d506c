//! The bench (`-append bench`, LM3S6965 only): the CPU cost per UART read
//! and the longest time interrupts stay masked, measured in emulated time
//! only, so that two runs give the same numbers whatever the host does.
//!
//! What runs is what the application runs, in two tasks: the driver's
//! runner in one, and in the other the supervisor (default `Config`,
//! default `State`, one client, one subscription `bench/#`, no health
//! check) and, in place of the application, a consumer that reads every
//! event into a [`MESSAGE_MAX`]-byte buffer. (The plans `one-task` and
//! `profile-one-task` run all three in one task, as `bc26_example_app::run`
//! does, for comparison.) The other end of the UART is not QEMU's
//! UART but a scripted modem inside the firmware ([`Loop`]): a periodic
//! timer interrupt (every [`PERIOD_US`] µs of emulated time) stands in for
//! the UART's, takes what the driver wrote (and answers it: `OK`, and the
//! results of `AT+QMTOPEN`, `AT+QMTCONN`, `AT+QMTSUB`, `AT+CEREG?`), and
//! hands the reader exactly `piece` bytes per interrupt: the modem's
//! answers, then `+QMTRECV: 0,<id>,"bench/data","<hex>"` lines, one after
//! the other. The period is long enough for the driver to finish a piece
//! before the next comes, so each read gets one piece: 1, 8 or 64 bytes, as
//! a byte-at-a-time UART, a FIFO or a DMA/idle-line UART would give.
//!
//! Each phase (`piece`, `payload` bytes, `messages`) prints one line: the
//! instructions the core executed between its start and the consumer's
//! last message (`busy_ns`, under `-icount shift=0`), of which the scripted
//! modem's making of the bytes (`source_ns`: not the driver's, taken out by
//! the host) and the stand-in interrupt handler's copy into the RX ring and
//! wake-up (`isr_ns`); the bytes, the reads, the messages received and
//! checked. Phases with the masked-interrupt probe on ([`crate::cs`]) print
//! their longest windows, by site.

#![no_std]
#![no_main]

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use bc26_mqtt::supervisor::{self, LinkState, SupervisorConfig, SupervisorState};
use bc26_mqtt::{ClientId, Config, Event, Events, QoS, State, Subscription, MESSAGE_MAX};
use embassy_futures::select::{select, select3, Either, Either3};
use embassy_time::Duration;

use bc26_example_qemu::{board, calibrate, cs, exec, out, say, stack, uart};
use cortex_m_rt::entry;
use static_cell::ConstStaticCell;

/// The stand-in interrupt's period, µs of emulated time: 200,000
/// instructions, far more than the driver needs for a piece.
const PERIOD_US: u32 = 200;
/// The topic the messages come on.
const TOPIC: &str = "bench/data";
/// Largest piece.
const PIECE_MAX: usize = 64;

/// One measurement.
#[derive(Clone, Copy)]
struct Phase {
    /// Bytes per interrupt (per read).
    piece: u16,
    /// Payload bytes of each message (twice as many hex digits on the wire).
    payload: u16,
    /// Messages.
    messages: u16,
    /// The masked-interrupt probe is on.
    probe: bool,
}

/// What a run does.
#[derive(Clone, Copy)]
struct Plan {
    name: &'static str,
    phases: &'static [Phase],
    /// The runner in a task of its own (the supervisor and the consumer in
    /// the other): a UART read then wakes the runner's task only. Else all
    /// three in one task.
    split: bool,
}

const fn phase(piece: u16, payload: u16, messages: u16, probe: bool) -> Phase {
    Phase {
        piece,
        payload,
        messages,
        probe,
    }
}

/// The default plan: the cost per read for three payload sizes at 1, 8 and
/// 64 bytes per read (probe off), then 1024-byte payloads with the probe on.
const FULL: &[Phase] = &[
    phase(1, 256, 8, false),
    phase(8, 256, 8, false),
    phase(64, 256, 8, false),
    phase(1, 16, 8, false),
    phase(8, 16, 8, false),
    phase(64, 16, 8, false),
    phase(1, 1024, 8, false),
    phase(8, 1024, 8, false),
    phase(64, 1024, 8, false),
    phase(1, 1024, 4, true),
    phase(8, 1024, 4, true),
    phase(64, 1024, 4, true),
];

/// For the instruction profile (QEMU's execution log is large): two
/// 256-byte messages at each piece size.
const PROFILE: &[Phase] = &[
    phase(1, 256, 2, false),
    phase(8, 256, 2, false),
    phase(64, 256, 2, false),
];

/// With the runner, the supervisor and the consumer in one task: the cost
/// per read of 256-byte payloads, to compare with the full plan's layout.
const ONE_TASK: &[Phase] = &[
    phase(1, 256, 8, false),
    phase(8, 256, 8, false),
    phase(64, 256, 8, false),
];

/// The plan QEMU's `-append` asks for: nothing (the full plan), `profile`,
/// `one-task` or `profile-one-task`.
fn plan(cmdline: &str) -> Plan {
    match cmdline.split_ascii_whitespace().next() {
        None | Some("full") => Plan {
            name: "full",
            phases: FULL,
            split: true,
        },
        Some("profile") => Plan {
            name: "profile",
            phases: PROFILE,
            split: true,
        },
        Some("one-task") => Plan {
            name: "one-task",
            phases: ONE_TASK,
            split: false,
        },
        Some("profile-one-task") => Plan {
            name: "profile-one-task",
            phases: PROFILE,
            split: false,
        },
        Some(other) => panic!("unknown plan {}", other),
    }
}

#[entry]
fn main() -> ! {
    stack::paint();
    board::init();
    say!(
        "{} bench, built for {}",
        board::DEVICE,
        env!("BC26_QEMU_TARGET")
    );
    bc26_example_qemu::say_memory();
    calibrate();
    let plan = plan(out::cmdline());
    exec::run(|spawner| spawner.spawn(bench_task(spawner, plan).unwrap()))
}

type BenchRunner = bc26_mqtt::Runner<'static, uart::Rx<Loop>, uart::Tx<Loop>>;

/// The runner alone (the plans but `one-task`).
#[embassy_executor::task]
async fn runner_task(runner: BenchRunner) -> ! {
    runner.run().await
}

/// Made at compile time, as the application's (see src/main.rs).
static MEMORY: ConstStaticCell<Memory> = ConstStaticCell::new(Memory::new());

/// The bench: the supervisor and the consumer (and the runner, in the
/// one-task plans).
#[embassy_executor::task]
async fn bench_task(spawner: embassy_executor::Spawner, plan: Plan) -> ! {
    run(spawner, MEMORY.take(), plan).await
}

/// The bench's memory (in the place of the application's).
struct Memory {
    driver: State,
    supervisor: SupervisorState<512>,
    subscriptions: [Subscription<'static>; 1],
    buf: [u8; MESSAGE_MAX],
}

impl Memory {
    const fn new() -> Self {
        Self {
            driver: State::new(),
            supervisor: SupervisorState::new(),
            subscriptions: [Subscription::new("bench/#", QoS::AtLeastOnce)],
            buf: [0; MESSAGE_MAX],
        }
    }
}

/// Runs the plan, prints the results, and ends QEMU.
async fn run(spawner: embassy_executor::Spawner, memory: &'static mut Memory, plan: Plan) -> ! {
    say!(
        "bench: plan {} ({} phases), a piece every {} us",
        plan.name,
        plan.phases.len(),
        PERIOD_US
    );
    let Memory {
        driver,
        supervisor: sup_state,
        subscriptions,
        buf,
    } = memory;
    let (rx, tx) = uart::split::<Loop>();
    // The default Config is consistent (Config::validate).
    let Ok((modem, runner)) = bc26_mqtt::new(driver, rx, tx, Config::new()) else {
        unreachable!()
    };
    let Ok(client) = ClientId::new(0) else {
        unreachable!()
    };
    let mut sup = SupervisorConfig::new(client, "bench.invalid", 1883, "bench");
    sup.subscriptions = &subscriptions[..];
    sup.health_check = Duration::from_ticks(0);
    let (link, supervisor) = supervisor::new(modem, sup_state, sup);
    let Ok(events) = modem.events() else {
        panic!("no event subscription")
    };
    cs::set_probe(true);
    if plan.split {
        spawner.spawn(runner_task(runner).unwrap());
        match select(supervisor.run(), drive(link, events, buf, plan)).await {
            Either::First(never) | Either::Second(never) => never,
        }
    }
    match select3(
        runner.run(),
        supervisor.run(),
        drive(link, events, buf, plan),
    )
    .await
    {
        Either3::First(never) | Either3::Second(never) | Either3::Third(never) => never,
    }
}

/// Counters at a moment.
#[derive(Clone, Copy)]
struct Snapshot {
    busy: u64,
    bytes: u32,
    reads: u32,
    source: u64,
    isr: u64,
    ticks: u32,
}

impl Snapshot {
    fn take() -> Self {
        let (bytes, reads) = uart::rx_stats();
        let (source, isr, ticks) = critical_section::with(|_| {
            // SAFETY: the interrupt handler, the only writer, cannot run.
            let f = unsafe { &*FEEDER.0.get() };
            (f.source_ticks, f.isr_ticks, f.ticks)
        });
        Snapshot {
            busy: exec::busy_ticks(),
            bytes,
            reads,
            source,
            isr,
            ticks,
        }
    }
}

fn stamp_ns(ticks: u64) -> u64 {
    exec::ticks_to_ns(ticks)
}

fn print_masked(label: &str) {
    let (sites, count) = cs::snapshot();
    say!("bench: masked {} windows={}", label, count);
    for s in sites.iter().filter(|s| s.count > 0) {
        say!(
            "bench: masked {} site={:#010x} max_ns={} count={}",
            label,
            s.at,
            stamp_ns(s.max.into()),
            s.count
        );
    }
}

/// The consumer, and the phases.
async fn drive(
    link: supervisor::Link<'static>,
    mut events: Events<'static>,
    buf: &'static mut [u8; MESSAGE_MAX],
    plan: Plan,
) -> ! {
    let mut seen = 0;
    while link.changed(&mut seen).await != LinkState::Online {}
    cs::set_probe(false);
    print_masked("bring-up");
    for (i, p) in plan.phases.iter().enumerate() {
        cs::reset();
        cs::set_probe(p.probe);
        let before = Snapshot::take();
        bench_window_open();
        start(*p);
        let (mut got, mut bad, mut missed) = (0u32, 0u32, 0u32);
        while got + missed < p.messages.into() {
            match events.next(&mut buf[..]).await {
                Event::Message(m) => {
                    got += 1;
                    if !check(m.topic, m.payload, p.payload.into()) {
                        bad += 1;
                    }
                }
                Event::Missed(n) => missed += n,
                _ => {}
            }
        }
        bench_window_close();
        let after = Snapshot::take();
        cs::set_probe(false);
        say!(
            "bench: phase={} piece={} payload={} messages={} probe={} got={} bad={} missed={} bytes={} reads={} ticks={} busy_ns={} source_ns={} isr_ns={}",
            i,
            p.piece,
            p.payload,
            p.messages,
            u8::from(p.probe),
            got,
            bad,
            missed,
            after.bytes.wrapping_sub(before.bytes),
            after.reads.wrapping_sub(before.reads),
            after.ticks.wrapping_sub(before.ticks),
            stamp_ns(after.busy - before.busy),
            stamp_ns(after.source - before.source),
            stamp_ns(after.isr - before.isr),
        );
        if p.probe {
            print_masked(&PHASE_LABELS[i.min(PHASE_LABELS.len() - 1)]);
        }
        // Let the stream end (its last bytes) before the next phase.
        while RUNNING.load(Ordering::Acquire) {
            embassy_time::Timer::after_micros(PERIOD_US.into()).await;
        }
    }
    say!("bench: done");
    loop {
        cortex_m_semihosting::debug::exit(cortex_m_semihosting::debug::EXIT_SUCCESS);
    }
}

/// Where a phase's window opens and closes: the host's instruction profile
/// (QEMU's execution log) counts what runs between the two.
#[unsafe(no_mangle)]
#[inline(never)]
extern "C" fn bench_window_open() {
    cortex_m::asm::nop();
}

/// See [`bench_window_open`].
#[unsafe(no_mangle)]
#[inline(never)]
extern "C" fn bench_window_close() {
    cortex_m::asm::nop();
}

const PHASE_LABELS: [&str; 16] = [
    "phase=0", "phase=1", "phase=2", "phase=3", "phase=4", "phase=5", "phase=6", "phase=7",
    "phase=8", "phase=9", "phase=10", "phase=11", "phase=12", "phase=13", "phase=14", "phase=15",
];

/// The payload byte `j` of message `i`.
fn payload_byte(i: u32, j: usize) -> u8 {
    (i as u8).wrapping_mul(31).wrapping_add(j as u8)
}

/// The consumer's check: the topic, the length, the first and last bytes.
fn check(topic: &str, payload: &[u8], len: usize) -> bool {
    // The msgID (1, 2, ...) is the message's number plus one; the bytes
    // depend on it: the consumer does not know it, so it checks that the
    // last byte follows from the first.
    topic == TOPIC
        && payload.len() == len
        && payload[len - 1] == payload[0].wrapping_add((len - 1) as u8)
}

// ------------------------------------------------------------------ the
// scripted modem and the stand-in interrupt handler

/// The UART's other end, for [`uart::Rx`] and [`uart::Tx`]: bytes the
/// driver writes go to the scripted modem; its answers come back through
/// the RX ring.
struct Loop;

impl uart::Hw for Loop {
    fn start_tx() -> bool {
        KICK.store(true, Ordering::Release);
        wake_feeder();
        true
    }

    fn resume_rx() {}

    fn tx_idle() -> bool {
        true
    }
}

/// The driver wrote: the handler takes the bytes at its next tick.
static KICK: AtomicBool = AtomicBool::new(false);
/// The timer runs.
static RUNNING: AtomicBool = AtomicBool::new(false);
/// A new phase: its parameters, and a sequence number the handler compares.
static REQ_PIECE: AtomicU32 = AtomicU32::new(0);
static REQ_PAYLOAD: AtomicU32 = AtomicU32::new(0);
static REQ_MESSAGES: AtomicU32 = AtomicU32::new(0);
static REQ_SEQ: AtomicU32 = AtomicU32::new(0);

fn wake_feeder() {
    if !RUNNING.swap_relaxed(true) {
        board::bench_timer_start(PERIOD_US * 50);
    }
}

/// `swap` with loads and stores only (ARMv6-M): callers are in a critical
/// section or the handler.
trait SwapRelaxed {
    fn swap_relaxed(&self, v: bool) -> bool;
}

impl SwapRelaxed for AtomicBool {
    fn swap_relaxed(&self, v: bool) -> bool {
        let old = self.load(Ordering::Acquire);
        self.store(v, Ordering::Release);
        old
    }
}

/// Starts a phase.
fn start(p: Phase) {
    critical_section::with(|_| {
        REQ_PIECE.store(p.piece.into(), Ordering::Relaxed);
        REQ_PAYLOAD.store(p.payload.into(), Ordering::Relaxed);
        REQ_MESSAGES.store(p.messages.into(), Ordering::Relaxed);
        REQ_SEQ.store(
            REQ_SEQ.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Release,
        );
        wake_feeder();
    });
}

/// Where a `+QMTRECV` line is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    Head,
    Payload,
    Tail,
}

/// The message source: `+QMTRECV` lines, one after the other.
struct Source {
    /// Messages still to make (the current one included).
    left: u32,
    /// msgID of the current one.
    id: u32,
    payload: usize,
    stage: Stage,
    /// Position in the stage (hex digits in the payload).
    pos: usize,
    head: [u8; 40],
    head_len: usize,
}

impl Source {
    const fn new() -> Self {
        Self {
            left: 0,
            id: 0,
            payload: 0,
            stage: Stage::Head,
            pos: 0,
            head: [0; 40],
            head_len: 0,
        }
    }

    fn begin(&mut self, messages: u32, payload: usize) {
        self.left = messages;
        self.payload = payload;
        if messages > 0 {
            self.next_message();
        }
    }

    fn next_message(&mut self) {
        self.id = self.id.wrapping_add(1);
        let mut w = Writer {
            buf: &mut self.head,
            len: 0,
        };
        let _ = core::fmt::write(
            &mut w,
            format_args!("\r\n+QMTRECV: 0,{},\"{}\",\"", self.id, TOPIC),
        );
        self.head_len = w.len;
        self.stage = Stage::Head;
        self.pos = 0;
    }

    /// Fills `out` with the next bytes; how many.
    fn fill(&mut self, out: &mut [u8]) -> usize {
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        const TAIL: &[u8] = b"\"\r\n";
        let mut n = 0;
        while n < out.len() && self.left > 0 {
            match self.stage {
                Stage::Head => {
                    out[n] = self.head[self.pos];
                    self.pos += 1;
                    if self.pos == self.head_len {
                        self.stage = Stage::Payload;
                        self.pos = 0;
                    }
                }
                Stage::Payload => {
                    let b = payload_byte(self.id, self.pos / 2);
                    let nibble = if self.pos % 2 == 0 { b >> 4 } else { b & 15 };
                    out[n] = HEX[usize::from(nibble)];
                    self.pos += 1;
                    if self.pos == 2 * self.payload {
                        self.stage = Stage::Tail;
                        self.pos = 0;
                    }
                }
                Stage::Tail => {
                    out[n] = TAIL[self.pos];
                    self.pos += 1;
                    if self.pos == TAIL.len() {
                        self.left -= 1;
                        if self.left > 0 {
                            self.next_message();
                        }
                    }
                }
            }
            n += 1;
        }
        n
    }
}

struct Writer<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl core::fmt::Write for Writer<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let end = self.len + s.len();
        if end > self.buf.len() {
            return Err(core::fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// The scripted modem and the stand-in handler's state: only the handler
/// touches it (the task reads the counters in a critical section).
struct Feeder {
    seq: u32,
    /// Bytes per tick (0: [`PIECE_MAX`], before the first phase).
    piece: usize,
    /// The piece handed over at each tick (not zeroed each time: a UART's
    /// interrupt handler zeroes no buffer).
    piece_buf: [u8; PIECE_MAX],
    /// The command line being received.
    line: [u8; 128],
    line_len: usize,
    /// Answers not yet handed over.
    out: [u8; 192],
    out_start: usize,
    out_end: usize,
    source: Source,
    /// Stamp ticks spent making the messages' bytes, and in the rest of
    /// the handler; handler runs.
    source_ticks: u64,
    isr_ticks: u64,
    ticks: u32,
}

struct FeederCell(UnsafeCell<Feeder>);
// SAFETY: see `Feeder`.
unsafe impl Sync for FeederCell {}

static FEEDER: FeederCell = FeederCell(UnsafeCell::new(Feeder {
    seq: 0,
    piece: 0,
    piece_buf: [0; PIECE_MAX],
    line: [0; 128],
    line_len: 0,
    out: [0; 192],
    out_start: 0,
    out_end: 0,
    source: Source::new(),
    source_ticks: 0,
    isr_ticks: 0,
    ticks: 0,
}));

impl Feeder {
    fn answer(&mut self, text: &[u8]) {
        if self.out_start == self.out_end {
            self.out_start = 0;
            self.out_end = 0;
        }
        let end = (self.out_end + text.len()).min(self.out.len());
        let n = end - self.out_end;
        self.out[self.out_end..end].copy_from_slice(&text[..n]);
        self.out_end = end;
    }

    fn answer_fmt(&mut self, args: core::fmt::Arguments<'_>) {
        let mut buf = [0u8; 48];
        let mut w = Writer {
            buf: &mut buf,
            len: 0,
        };
        let _ = core::fmt::write(&mut w, args);
        let n = w.len;
        self.answer(&buf[..n]);
    }

    /// One byte from the driver.
    fn from_driver(&mut self, b: u8) {
        match b {
            b'\r' => {
                let n = self.line_len;
                self.line_len = 0;
                let line = self.line;
                self.command(&line[..n]);
            }
            b'\n' | 0x1a | 0x1b => {}
            _ if self.line_len < self.line.len() => {
                self.line[self.line_len] = b;
                self.line_len += 1;
            }
            _ => {}
        }
    }

    /// A command line: what a registered BC26 with a broker that accepts
    /// everything answers.
    fn command(&mut self, line: &[u8]) {
        let field = |n: usize| -> u32 {
            let args = line.splitn(2, |&c| c == b'=').nth(1).unwrap_or(&[]);
            let f = args.split(|&c| c == b',').nth(n).unwrap_or(&[]);
            f.iter().filter(|c| c.is_ascii_digit()).fold(0u32, |v, &c| {
                v.wrapping_mul(10).wrapping_add(u32::from(c - b'0'))
            })
        };
        if line == b"AT+CEREG?" {
            self.answer(b"\r\n+CEREG: 0,1\r\n\r\nOK\r\n");
        } else if line == b"AT+QMTCONN?" {
            self.answer(b"\r\n+QMTCONN: 0,3\r\n\r\nOK\r\n");
        } else {
            self.answer(b"\r\nOK\r\n");
            let id = field(0);
            if line.starts_with(b"AT+QMTOPEN=") {
                self.answer_fmt(format_args!("\r\n+QMTOPEN: {id},0\r\n"));
            } else if line.starts_with(b"AT+QMTCONN=") {
                self.answer_fmt(format_args!("\r\n+QMTCONN: {id},0,0\r\n"));
            } else if line.starts_with(b"AT+QMTSUB=") {
                let msg_id = field(1);
                self.answer_fmt(format_args!("\r\n+QMTSUB: {id},{msg_id},0,1\r\n"));
            } else if line.starts_with(b"AT+QMTCLOSE=") {
                self.answer_fmt(format_args!("\r\n+QMTCLOSE: {id},0\r\n"));
            } else if line.starts_with(b"AT+QMTDISC=") {
                self.answer_fmt(format_args!("\r\n+QMTDISC: {id},0\r\n"));
            }
        }
    }

    /// One tick of the stand-in UART interrupt.
    fn tick(&mut self) {
        let t0 = board::stamp();
        self.ticks = self.ticks.wrapping_add(1);
        let seq = REQ_SEQ.load(Ordering::Acquire);
        if seq != self.seq {
            self.seq = seq;
            self.piece = (REQ_PIECE.load(Ordering::Relaxed) as usize).clamp(1, PIECE_MAX);
            self.source.begin(
                REQ_MESSAGES.load(Ordering::Relaxed),
                REQ_PAYLOAD.load(Ordering::Relaxed) as usize,
            );
        }
        if KICK.load(Ordering::Acquire) {
            KICK.store(false, Ordering::Relaxed);
            while let Some(b) = uart::isr_tx() {
                self.from_driver(b);
            }
            uart::isr_tx_stopped();
        }
        let piece = &mut self.piece_buf;
        // Before the first phase (the bring-up): whole pieces.
        let size = if self.piece == 0 {
            PIECE_MAX
        } else {
            self.piece
        };
        let want = size.min(uart::isr_rx_free());
        let answers = (self.out_end - self.out_start).min(want);
        piece[..answers].copy_from_slice(&self.out[self.out_start..self.out_start + answers]);
        self.out_start += answers;
        let t1 = board::stamp();
        let made = self.source.fill(&mut piece[answers..want]);
        let t2 = board::stamp();
        let n = answers + made;
        if n > 0 {
            uart::isr_rx_push(&piece[..n]);
            uart::isr_rx_wake();
        }
        let idle = self.out_start == self.out_end
            && self.source.left == 0
            && !KICK.load(Ordering::Acquire);
        if idle {
            board::bench_timer_stop();
            RUNNING.store(false, Ordering::Release);
        }
        let t3 = board::stamp();
        let m = board::STAMP_MASK;
        self.source_ticks += u64::from(t2.wrapping_sub(t1) & m);
        self.isr_ticks += u64::from((t1.wrapping_sub(t0) & m) + (t3.wrapping_sub(t2) & m));
    }
}

/// Timer 1A's interrupt: the stand-in UART interrupt.
#[unsafe(no_mangle)]
extern "C" fn BenchTick() {
    board::bench_timer_ack();
    // SAFETY: only this handler touches the feeder (see `Feeder`); it does
    // not nest.
    let f = unsafe { &mut *FEEDER.0.get() };
    f.tick();
}
