//! The fuzz harness of the driver's receive path (see `fuzz/README.md`).
//!
//! One call of [`check`] is one execution: a fresh driver on a fake UART,
//! arbitrary modem bytes fed in arbitrary chunks (with read errors, `Ok(0)`
//! reads, a slow transmitter and virtual time passing between chunks) while
//! the driver is idle, runs a command, or waits for a data-mode prompt; then
//! a well-behaved modem, and one more command that must get its own answer.
//!
//! Everything runs on the calling thread: a small executor that polls a task
//! only when it was woken, and a virtual clock (an `embassy-time` driver of
//! this crate) that moves only when the harness moves it. An execution takes
//! microseconds and depends on nothing but its input.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Wake, Waker};

use bc26_mqtt::{ClientId, Config, DataFormat, Event, Modem, QoS, State, Stats};
use embassy_time::{Duration, Instant};
use embedded_io_async::{ErrorKind, ErrorType, Read, Write};

// ------------------------------------------------------------------ clock

/// The virtual clock: `embassy-time`'s driver for this process. Time and
/// timers are per thread, so tests that run executions in parallel threads
/// do not see each other's time.
struct VirtualClock;

embassy_time_driver::time_driver_impl!(static CLOCK: VirtualClock = VirtualClock);

thread_local! {
    static NOW: Cell<u64> = const { Cell::new(0) };
    /// Pending timers: (expiry in ticks, waker). One entry per waker, with
    /// the earliest expiry asked for, as embassy's generic queue keeps them.
    static TIMERS: RefCell<Vec<(u64, Waker)>> = const { RefCell::new(Vec::new()) };
}

impl embassy_time_driver::Driver for VirtualClock {
    fn now(&self) -> u64 {
        NOW.with(Cell::get)
    }

    fn schedule_wake(&self, at: u64, waker: &Waker) {
        if at <= self.now() {
            waker.wake_by_ref();
            return;
        }
        TIMERS.with(|t| {
            let mut t = t.borrow_mut();
            match t.iter_mut().find(|(_, w)| w.will_wake(waker)) {
                Some(e) => e.0 = e.0.min(at),
                None => t.push((at, waker.clone())),
            }
        });
    }
}

fn now() -> Instant {
    Instant::now()
}

/// The earliest pending timer.
fn next_deadline() -> Option<Instant> {
    TIMERS.with(|t| {
        t.borrow()
            .iter()
            .map(|e| e.0)
            .min()
            .map(Instant::from_ticks)
    })
}

/// Moves the clock to `to` (never back) and wakes the timers that expired.
fn advance_to(to: Instant) {
    let to = to.as_ticks().max(NOW.with(Cell::get));
    NOW.with(|n| n.set(to));
    let due: Vec<Waker> = TIMERS.with(|t| {
        let mut t = t.borrow_mut();
        let mut due = Vec::new();
        t.retain(|(at, w)| {
            if *at <= to {
                due.push(w.clone());
                false
            } else {
                true
            }
        });
        due
    });
    for w in due {
        w.wake();
    }
}

fn reset_clock() {
    NOW.with(|n| n.set(0));
    TIMERS.with(|t| t.borrow_mut().clear());
}

// ------------------------------------------------------------------ executor

struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// A task: polled only when its waker was woken, as on a real executor, so
/// a lost wake-up shows up as a wedge.
struct Task<'f> {
    fut: Option<Pin<Box<dyn Future<Output = ()> + 'f>>>,
    flag: Arc<Flag>,
    waker: Waker,
}

impl<'f> Task<'f> {
    fn new(fut: impl Future<Output = ()> + 'f) -> Self {
        let flag = Arc::new(Flag(AtomicBool::new(true)));
        Self {
            fut: Some(Box::pin(fut)),
            waker: Waker::from(flag.clone()),
            flag,
        }
    }

    fn idle() -> Self {
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        Self {
            fut: None,
            waker: Waker::from(flag.clone()),
            flag,
        }
    }

    fn done(&self) -> bool {
        self.fut.is_none()
    }

    /// Polls if woken; true if it was polled.
    fn poll(&mut self) -> bool {
        if self.fut.is_none() || !self.flag.0.swap(false, Ordering::SeqCst) {
            return false;
        }
        let mut cx = Context::from_waker(&self.waker);
        if let Some(f) = self.fut.as_mut() {
            if f.as_mut().poll(&mut cx).is_ready() {
                self.fut = None;
            }
        }
        true
    }
}

/// Polls rounds in a row without input or time passing: more means the
/// driver wakes itself without end (a busy loop).
const MAX_ROUNDS: u32 = 10_000;

/// Timer expiries the harness steps through after the noise (each one a
/// driver deadline): more means the driver keeps scheduling timers.
const MAX_STEPS: u32 = 10_000;

// ------------------------------------------------------------------ UART

/// A fault the fake UART returns from the next read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Error,
    Zero,
}

/// Both directions of the fake UART.
#[derive(Default)]
struct Wire {
    /// Modem to host: bytes not yet read.
    rx: VecDeque<u8>,
    rx_waker: Option<Waker>,
    fault: Option<Fault>,
    /// Reads that returned an error or no bytes.
    bad_reads: u32,
    /// Host to modem: everything written.
    tx: Vec<u8>,
    /// Slow transmitter: every write waits until the harness releases it.
    slow: bool,
    tx_blocked: bool,
    tx_waker: Option<Waker>,
}

impl Wire {
    fn feed(&mut self, bytes: &[u8]) {
        self.rx.extend(bytes);
        if let Some(w) = self.rx_waker.take() {
            w.wake();
        }
    }

    fn inject(&mut self, f: Fault) {
        self.fault = Some(f);
        if let Some(w) = self.rx_waker.take() {
            w.wake();
        }
    }

    fn release_tx(&mut self) {
        self.tx_blocked = false;
        if let Some(w) = self.tx_waker.take() {
            w.wake();
        }
    }
}

struct Reader<'w>(&'w RefCell<Wire>);
struct Writer<'w>(&'w RefCell<Wire>);

impl ErrorType for Reader<'_> {
    type Error = ErrorKind;
}

impl ErrorType for Writer<'_> {
    type Error = ErrorKind;
}

impl Read for Reader<'_> {
    /// Cancel-safe: bytes leave the wire only in the poll that returns them.
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, ErrorKind> {
        poll_fn(|cx| {
            let mut w = self.0.borrow_mut();
            if let Some(f) = w.fault.take() {
                w.bad_reads += 1;
                return Poll::Ready(match f {
                    Fault::Error => Err(ErrorKind::Other),
                    Fault::Zero => Ok(0),
                });
            }
            if buf.is_empty() {
                w.bad_reads += 1;
                return Poll::Ready(Ok(0));
            }
            if w.rx.is_empty() {
                w.rx_waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
            let n = buf.len().min(w.rx.len());
            for (d, s) in buf.iter_mut().zip(w.rx.drain(..n)) {
                *d = s;
            }
            Poll::Ready(Ok(n))
        })
        .await
    }
}

impl Write for Writer<'_> {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, ErrorKind> {
        let mut stalled = false;
        poll_fn(|cx| {
            let mut w = self.0.borrow_mut();
            if w.slow && !stalled {
                stalled = true;
                w.tx_blocked = true;
            }
            if w.tx_blocked {
                w.tx_waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
            w.tx.extend_from_slice(buf);
            Poll::Ready(Ok(buf.len()))
        })
        .await
    }

    async fn flush(&mut self) -> Result<(), ErrorKind> {
        Ok(())
    }
}

// ------------------------------------------------------------------ input

/// xorshift64: the chunking, faults and pauses, from the input's seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// 0..n (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// True with probability `num / 64`.
    fn chance(&mut self, num: u64) -> bool {
        self.below(64) < num
    }
}

/// The operation in flight while the noise arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// None: every line is unsolicited.
    Idle,
    /// `AT+QMTCFG="keepalive",0`: a command waiting for its answer.
    Keepalive,
    /// A data-mode publish: waiting for the `>` prompt, then the payload's
    /// echo and `OK`, then `+QMTPUB`.
    DataMode,
    /// `AT+QMTOPEN`: `OK`, then the deferred `+QMTOPEN` (in hex mode the
    /// `dataformat` command first).
    Open,
    /// An inline QoS 1 publish: `OK`, then `+QMTPUB`.
    Publish,
    /// `AT+QMTSUB`: `OK`, then `+QMTSUB`.
    Subscribe,
    /// `AT+QMTOPEN?`: information lines, then `OK`.
    OpenLinks,
    /// A keepalive query, a data-mode publish and an inline publish, one
    /// after the other.
    Sequence,
}

/// How client 0 receives payloads while the noise arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reception {
    /// `Config::receive_text`, format never set (the driver assumes text).
    TextConfig,
    /// Set to hex receive (text send) before the noise.
    Hex,
    /// Set to text receive, hex send, before the noise.
    TextHexSend,
    /// The driver's default (it sets hex before `AT+QMTOPEN`); not set yet.
    HexConfig,
}

/// How the modem's bytes are cut into chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunks {
    /// Random sizes from 1 to this many bytes.
    Random(usize),
    /// As a modem sends them: each chunk ends after a LF or a `> ` prompt,
    /// so an answer arrives after what the driver wrote before it.
    Lines,
}

impl Chunks {
    fn next(self, rest: &[u8], rng: &mut Rng) -> usize {
        let n = match self {
            Chunks::Random(max) => 1 + rng.below(max as u64) as usize,
            Chunks::Lines => {
                let lf = rest.iter().position(|&b| b == b'\n').map(|i| i + 1);
                let prompt = rest.windows(2).position(|w| w == b"> ").map(|i| i + 2);
                match (lf, prompt) {
                    (Some(a), Some(b)) => a.min(b),
                    (a, b) => a.or(b).unwrap_or(rest.len()),
                }
            }
        };
        n.min(rest.len())
    }
}

/// An input, decoded. Layout: byte 0 mode, byte 1 schedule, bytes 2-3 seed,
/// byte 4 the second operation, then the modem's bytes (missing header
/// bytes read as 0).
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// The operation in flight (client 0).
    pub op: Op,
    /// A second operation at the same time, on client 1 (they share the AT
    /// channel: one waits for the other's line).
    pub op2: Op,
    /// Client 0's payload format.
    pub reception: Reception,
    /// An operation's future is dropped part-way (cancelled).
    pub cancel: bool,
    /// Every write waits until the harness lets it through (modem bytes can
    /// arrive while a line is being written; a long pause times it out).
    pub slow_tx: bool,
    /// The well-behaved modem of the last command echoes the lines (ATE1).
    pub echo: bool,
    /// How the modem's bytes are cut into the chunks fed between two steps
    /// of the driver.
    pub chunks: Chunks,
    /// Chance (of 64) that virtual time passes between two chunks.
    pub pause_rate: u64,
    /// Chance (of 64) of a read error or an `Ok(0)` read before a chunk.
    pub fault_rate: u64,
    /// Events are read while the noise arrives (else only at the end, so the
    /// receive store fills up).
    pub drain_often: bool,
    /// Seeds the chunking, faults and pauses.
    pub seed: u16,
}

/// The header of an input.
pub const HEADER: usize = 5;

const OPS: [Op; 8] = [
    Op::Idle,
    Op::Keepalive,
    Op::DataMode,
    Op::Open,
    Op::Publish,
    Op::Subscribe,
    Op::OpenLinks,
    Op::Sequence,
];

impl Plan {
    /// Decodes an input's header; the rest of the input is the modem's bytes.
    pub fn decode(data: &[u8]) -> (Plan, &[u8]) {
        let h = |i: usize| data.get(i).copied().unwrap_or(0);
        let (mode, sched) = (h(0), h(1));
        let plan = Plan {
            op: OPS[usize::from(mode & 7)],
            op2: OPS[usize::from(h(4) & 7)],
            reception: [
                Reception::TextConfig,
                Reception::Hex,
                Reception::TextHexSend,
                Reception::HexConfig,
            ][usize::from((mode >> 3) & 3)],
            cancel: mode & 0x20 != 0,
            slow_tx: mode & 0x40 != 0,
            echo: mode & 0x80 != 0,
            chunks: match sched & 7 {
                7 => Chunks::Lines,
                i => Chunks::Random([1, 2, 4, 16, 64, 512, 4096][usize::from(i)]),
            },
            pause_rate: [0, 4, 16, 64][usize::from((sched >> 3) & 3)],
            fault_rate: [0, 1, 4, 16][usize::from((sched >> 5) & 3)],
            drain_often: sched & 0x80 != 0,
            seed: u16::from_le_bytes([h(2), h(3)]),
        };
        (plan, data.get(HEADER..).unwrap_or(&[]))
    }

    /// The header byte 0 for these choices (corpus seeds).
    pub fn mode_byte(op: Op, reception: Reception, cancel: bool, slow_tx: bool, echo: bool) -> u8 {
        let op = op as u8;
        let rec = match reception {
            Reception::TextConfig => 0,
            Reception::Hex => 1,
            Reception::TextHexSend => 2,
            Reception::HexConfig => 3,
        };
        op | rec << 3 | u8::from(cancel) << 5 | u8::from(slow_tx) << 6 | u8::from(echo) << 7
    }
}

// ------------------------------------------------------------------ run

/// The keepalive seconds the well-behaved modem reports to the last
/// command, and what the harness expects it to return.
pub const ANSWER: u16 = 42;

/// The well-behaved modem of the last command (tests make it misbehave to
/// show that the checks can fail).
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// The keepalive seconds it reports to the last command; `None`: it does
    /// not answer that command.
    pub answer: Option<u16>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            answer: Some(ANSWER),
        }
    }
}

/// What one execution did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Modem bytes fed.
    pub fed: usize,
    /// Chunks they were fed in.
    pub chunks: u32,
    /// Read errors and `Ok(0)` reads injected.
    pub faults: u32,
    /// Times virtual time moved during the noise.
    pub pauses: u32,
    /// Outcome of the operation in flight (Debug text; any outcome is
    /// allowed), `None` if it was cancelled or there was none.
    pub op_outcome: Option<String>,
    /// Outcome of the second operation.
    pub op2_outcome: Option<String>,
    /// Events read: messages, and all events.
    pub messages: u32,
    /// All events read.
    pub events: u32,
    /// Whether the driver fenced before the last command (sent a bare `AT`).
    pub fenced_last: bool,
    /// The driver's counters at the end.
    pub stats: Stats,
    /// Virtual time at the end.
    pub elapsed: Duration,
}

/// Why an execution failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure(pub String);

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Shows bytes with escapes.
pub fn show(b: &[u8]) -> String {
    let mut s = String::new();
    for &c in b {
        match c {
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n"),
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(c as char),
            _ => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    s
}

fn tracing() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("BC26_FUZZ_TRACE").is_some())
}

macro_rules! trace {
    ($($t:tt)*) => {
        if tracing() {
            eprintln!("[{:>12} us] {}", now().as_micros(), format!($($t)*));
        }
    };
}

/// The longest the operations in flight and the driver may take to go
/// quiet after the noise (the longest deadline is `open_timeout`, 75 s).
const SETTLE: Duration = Duration::from_secs(300);

/// The driver's configuration: the reference's real limits (time is
/// virtual, so they cost nothing), text or hex reception.
pub fn config(reception: Reception) -> Config {
    Config::new().receive_text(matches!(
        reception,
        Reception::TextConfig | Reception::Hex | Reception::TextHexSend
    ))
}

/// The keepalive line of client 0.
const KEEPALIVE: &[u8] = b"AT+QMTCFG=\"keepalive\",0\r";
/// A data-mode payload that looks like modem lines.
const DATA_PAYLOAD: &[u8] = b"x\"\r\nOK\r\n+QMTPUB: 0,1,0\r\n> ";

struct Harness<'f> {
    runner: Task<'f>,
    tasks: Vec<Task<'f>>,
}

impl Harness<'_> {
    /// Polls woken tasks until none is woken.
    fn run_until_stalled(&mut self) -> Result<(), Failure> {
        for _ in 0..MAX_ROUNDS {
            let mut any = self.runner.poll();
            for t in &mut self.tasks {
                any |= t.poll();
            }
            if !any {
                return Ok(());
            }
        }
        Err(Failure(format!(
            "busy loop: the driver kept waking itself for {MAX_ROUNDS} rounds with no input and no time passing"
        )))
    }

    /// Advances the clock to `to`, then runs what it woke.
    fn advance(&mut self, to: Instant) -> Result<(), Failure> {
        advance_to(to);
        self.run_until_stalled()
    }

    fn tasks_done(&self) -> bool {
        self.tasks.iter().all(Task::done)
    }
}

/// Answers a well-behaved modem would give to the host's lines in
/// `tx[*cursor..]`: `AT` gets `OK`, the keepalive query its answer. ESC and
/// CR between lines are skipped. `Err` for anything else.
fn respond(
    tx: &[u8],
    cursor: &mut usize,
    echo: bool,
    opts: &Options,
    fenced: &mut bool,
    asked: &mut bool,
) -> Result<Vec<u8>, Failure> {
    let mut out = Vec::new();
    loop {
        let rest = &tx[*cursor..];
        let skip = rest
            .iter()
            .position(|&b| b != 0x1b && b != b'\r')
            .unwrap_or(rest.len());
        let rest = &rest[skip..];
        let (line, reply): (&[u8], Vec<u8>) = if rest.starts_with(b"AT\r") {
            *fenced = true;
            (b"AT\r", b"\r\nOK\r\n".to_vec())
        } else if rest.starts_with(KEEPALIVE) {
            *asked = true;
            let reply = match opts.answer {
                Some(s) => format!("\r\n+QMTCFG: \"keepalive\",{s}\r\n\r\nOK\r\n").into_bytes(),
                None => Vec::new(),
            };
            (KEEPALIVE, reply)
        } else if b"AT\r".starts_with(rest) || KEEPALIVE.starts_with(rest) {
            // Nothing, or part of a line: wait for the rest.
            *cursor += skip;
            return Ok(out);
        } else {
            return Err(Failure(format!(
                "after the noise the host sent {:?}, expected only ESC/CR, `AT` and the keepalive query",
                show(rest)
            )));
        };
        *cursor += skip + line.len();
        if echo {
            out.extend_from_slice(line);
        }
        out.extend_from_slice(&reply);
    }
}

/// Runs one execution; `Err` when a check failed. A panic in the driver
/// propagates (libFuzzer reports it).
pub fn check(data: &[u8], opts: &Options) -> Result<Report, Failure> {
    let (plan, noise) = Plan::decode(data);
    reset_clock();
    let result = execute(&plan, noise, opts);
    reset_clock();
    result
}

/// The fuzz target's body: panics when a check fails.
pub fn fuzz(data: &[u8]) {
    if let Err(f) = check(data, &Options::default()) {
        panic!("{f}");
    }
}

async fn run_op(op: Op, client: u8, modem: Modem<'_>, outcome: &RefCell<Option<String>>) {
    let c0 = modem.client(ClientId::new(client).unwrap_or_else(|_| unreachable!()));
    let text = match op {
        Op::Idle => return,
        Op::Keepalive => format!("{:?}", c0.keepalive().await),
        Op::DataMode => format!(
            "{:?}",
            c0.publish_data_mode("t", DATA_PAYLOAD, QoS::AtLeastOnce, false)
                .await
        ),
        Op::Open => format!("{:?}", c0.open("h", 1).await),
        Op::Publish => format!("{:?}", c0.publish("t", b"v", QoS::AtLeastOnce, false).await),
        Op::Subscribe => format!("{:?}", c0.subscribe(&[("t/#", QoS::AtLeastOnce)]).await),
        Op::OpenLinks => format!("{:?}", modem.open_links().await),
        Op::Sequence => {
            let a = c0.keepalive().await;
            *outcome.borrow_mut() = Some(format!("{a:?}"));
            let b = c0
                .publish_data_mode("t", DATA_PAYLOAD, QoS::AtMostOnce, false)
                .await;
            *outcome.borrow_mut() = Some(format!("{a:?}, {b:?}"));
            let c = c0.publish("t", b"w", QoS::AtMostOnce, false).await;
            format!("{a:?}, {b:?}, {c:?}")
        }
    };
    *outcome.borrow_mut() = Some(text);
}

fn drain(events: &mut bc26_mqtt::Events<'_>, report: &mut Report) {
    let mut buf = [0u8; bc26_mqtt::MESSAGE_MAX];
    while let Some(e) = events.try_next(&mut buf) {
        report.events += 1;
        if let Event::Message(m) = e {
            report.messages += 1;
            trace!(
                "message client {} msg_id {} topic {:?} payload {:?}",
                m.client.get(),
                m.msg_id,
                m.topic,
                show(m.payload)
            );
        }
    }
}

fn execute(plan: &Plan, noise: &[u8], opts: &Options) -> Result<Report, Failure> {
    trace!("plan {plan:?}, {} modem bytes", noise.len());
    let mut report = Report::default();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (u64::from(plan.seed) << 16 | 1));
    let cfg = config(plan.reception);
    let mut state: Box<State> = Box::new(State::new());
    let wire = RefCell::new(Wire::default());
    let (modem, runner) = bc26_mqtt::new(&mut *state, Reader(&wire), Writer(&wire), cfg)
        .map_err(|e| Failure(format!("driver config refused: {e:?}")))?;
    let mut events = modem
        .events()
        .map_err(|e| Failure(format!("no subscription: {e:?}")))?;
    // What the tasks report; declared before the tasks that borrow them.
    let outcome: RefCell<Option<String>> = RefCell::new(None);
    let outcome2: RefCell<Option<String>> = RefCell::new(None);
    let prelude: Cell<Option<bool>> = Cell::new(None);
    let last: Cell<Option<Result<u16, bc26_mqtt::Error>>> = Cell::new(None);
    let c0 = modem.client(ClientId::new(0).unwrap_or_else(|_| unreachable!()));
    let mut h = Harness {
        runner: Task::new(async move {
            runner.run().await;
        }),
        tasks: Vec::new(),
    };

    // Prelude: client 0's payload format, set against a modem that answers.
    let format = match plan.reception {
        Reception::Hex => Some((DataFormat::Text, DataFormat::Hex, &b"0,1"[..])),
        Reception::TextHexSend => Some((DataFormat::Hex, DataFormat::Text, &b"1,0"[..])),
        Reception::TextConfig | Reception::HexConfig => None,
    };
    if let Some((send, recv, digits)) = format {
        let done = &prelude;
        h.tasks.push(Task::new(async move {
            done.set(Some(c0.set_data_format(send, recv).await.is_ok()));
        }));
        h.run_until_stalled()?;
        let mut want = b"AT+QMTCFG=\"dataformat\",0,".to_vec();
        want.extend_from_slice(digits);
        want.push(b'\r');
        let sent = std::mem::take(&mut wire.borrow_mut().tx);
        if sent != want {
            return Err(Failure(format!(
                "prelude: host sent {:?}, expected {:?}",
                show(&sent),
                show(&want)
            )));
        }
        wire.borrow_mut().feed(b"\r\nOK\r\n");
        h.run_until_stalled()?;
        if done.get() != Some(true) {
            return Err(Failure(format!(
                "prelude: set_data_format did not succeed: {:?}",
                done.get()
            )));
        }
        h.tasks.clear();
    }

    // The noise, while the operation is in flight.
    wire.borrow_mut().slow = plan.slow_tx;
    for (client, op, outcome) in [(0, plan.op, &outcome), (1, plan.op2, &outcome2)] {
        h.tasks.push(if op == Op::Idle {
            Task::idle()
        } else {
            Task::new(run_op(op, client, modem, outcome))
        });
    }
    h.run_until_stalled()?;
    let mut rest = noise;
    while !rest.is_empty() {
        if plan.fault_rate > 0 && rng.chance(plan.fault_rate) {
            let f = if rng.below(2) == 0 {
                Fault::Error
            } else {
                Fault::Zero
            };
            trace!("inject {f:?}");
            wire.borrow_mut().inject(f);
            report.faults += 1;
            h.run_until_stalled()?;
            if wire.borrow().fault.is_some() {
                // The driver pauses after a failed read: let the pause pass.
                let pause = now() + cfg.read_error_pause;
                h.advance(pause)?;
                report.pauses += 1;
            }
        }
        let n = plan.chunks.next(rest, &mut rng);
        trace!("modem sends {:?}", show(&rest[..n]));
        wire.borrow_mut().feed(&rest[..n]);
        rest = &rest[n..];
        report.fed += n;
        report.chunks += 1;
        h.run_until_stalled()?;
        if plan.slow_tx && rng.below(2) == 0 {
            wire.borrow_mut().release_tx();
            h.run_until_stalled()?;
        }
        if plan.pause_rate > 0 && rng.chance(plan.pause_rate) {
            let gap = cfg.quiet_gap;
            let to = match rng.below(4) {
                0 => now() + Duration::from_ticks(1 + rng.below(gap.as_ticks().max(2) - 1)),
                1 => now() + gap,
                2 => next_deadline().unwrap_or(now() + gap),
                _ => now() + cfg.command_timeout,
            };
            trace!("time passes to {} us", to.as_micros());
            h.advance(to)?;
            report.pauses += 1;
        }
        if plan.cancel && rng.chance(8) {
            let i = rng.below(2) as usize;
            if !h.tasks[i].done() {
                trace!("operation {} cancelled", i + 1);
                h.tasks[i].fut = None;
                h.run_until_stalled()?;
            }
        }
        if plan.drain_often && rng.chance(16) {
            drain(&mut events, &mut report);
        }
    }

    // The modem goes quiet: the operation ends, the driver settles. The
    // transmitter is fast from now on.
    wire.borrow_mut().slow = false;
    let settle_by = now() + SETTLE;
    for step in 0.. {
        if step == MAX_STEPS {
            return Err(Failure(format!(
                "the driver keeps scheduling timers: {MAX_STEPS} expiries after the noise, at {} us",
                now().as_micros()
            )));
        }
        wire.borrow_mut().release_tx();
        h.run_until_stalled()?;
        match next_deadline() {
            None if h.tasks_done() => break,
            None => {
                return Err(Failure(format!(
                    "wedged: an operation in flight ({:?}, {:?}) waits with no deadline after the modem went quiet (outcomes so far {:?}, {:?}; stats {:?})",
                    plan.op,
                    plan.op2,
                    outcome.borrow(),
                    outcome2.borrow(),
                    modem.stats()
                )))
            }
            Some(t) if t > settle_by => {
                return Err(Failure(format!(
                    "the operations in flight ({:?}, {:?}) or the driver are still busy {} s after the noise (next timer at {} s)",
                    plan.op,
                    plan.op2,
                    SETTLE.as_secs(),
                    t.as_secs()
                )))
            }
            Some(t) => h.advance(t)?,
        }
    }
    report.op_outcome = outcome.borrow().clone();
    report.op2_outcome = outcome2.borrow().clone();
    trace!(
        "settled; operations: {:?}, {:?}",
        report.op_outcome,
        report.op2_outcome
    );
    if wire.borrow().fault.is_some() {
        return Err(Failure("an injected read fault was never read".into()));
    }
    drain(&mut events, &mut report);
    if plan.op == Op::Idle && plan.op2 == Op::Idle && !wire.borrow().tx.is_empty() {
        return Err(Failure(format!(
            "with no command the host wrote {:?}",
            show(&wire.borrow().tx)
        )));
    }

    // The command after the noise, against a well-behaved modem.
    let mut cursor = wire.borrow().tx.len();
    {
        let last = &last;
        h.tasks.clear();
        h.tasks.push(Task::new(
            async move { last.set(Some(c0.keepalive().await)) },
        ));
    }
    let start = now();
    let bound = start + cfg.command_timeout * 2;
    let (mut fenced, mut asked) = (false, false);
    for step in 0.. {
        if step == MAX_STEPS {
            return Err(Failure(format!(
                "the keepalive query after the noise did not end after {MAX_STEPS} steps (at {} us)",
                now().as_micros()
            )));
        }
        wire.borrow_mut().release_tx();
        h.run_until_stalled()?;
        let reply = {
            let w = wire.borrow();
            respond(&w.tx, &mut cursor, plan.echo, opts, &mut fenced, &mut asked)?
        };
        if !reply.is_empty() {
            trace!("modem answers {:?}", show(&reply));
            wire.borrow_mut().feed(&reply);
            continue;
        }
        if h.tasks_done() {
            break;
        }
        match next_deadline() {
            Some(t) if t <= bound => h.advance(t)?,
            _ => {
                let w = wire.borrow();
                return Err(Failure(format!(
                    "wedged: the keepalive query after the noise did not complete within {} ms (host sent {:?} after the noise; stats {:?})",
                    (cfg.command_timeout * 2).as_millis(),
                    show(&w.tx[w.tx.len().min(cursor)..]),
                    modem.stats()
                )));
            }
        }
    }
    let result = last.take();
    trace!("last command: {result:?}");
    if result != Some(Ok(ANSWER)) {
        return Err(Failure(format!(
            "the keepalive query after the noise gave {result:?}, expected Ok({ANSWER}) (query sent: {asked}, fenced: {fenced}; stats {:?})",
            modem.stats()
        )));
    }
    report.fenced_last = fenced;
    drain(&mut events, &mut report);

    let stats = modem.stats();
    let bad_reads = wire.borrow().bad_reads;
    if stats.read_errors != bad_reads {
        return Err(Failure(format!(
            "stats.read_errors is {}, but {bad_reads} reads failed or returned no bytes",
            stats.read_errors
        )));
    }
    report.stats = stats;
    report.elapsed = Duration::from_ticks(now().as_ticks());
    drop(h);
    Ok(report)
}
