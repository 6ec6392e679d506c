//! The host test harness shared by the driver's tests and the example
//! application's: the driver on embassy's std executor, talking through two
//! in-memory pipes to a fake modem, either scripted line by line by the test
//! ([`Fake`]) or answering by itself like a BC26 ([`auto::AutoModem`]);
//! UART fakes that fail or whose `flush` completes late; events copied out of
//! their buffers for assertions.

pub mod auto;
pub mod escapes;
pub mod flash;
pub mod rules;

use core::future::Future;
use core::pin::Pin;
use std::boxed::Box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::vec::Vec;

use bc26_mqtt::{ClientId, Config, Event, Events, LinkClosedReason, Modem, Runner, State};
use embassy_executor::Executor;
use embassy_futures::select::{select, Either};
use embassy_sync::blocking_mutex::raw::{CriticalSectionRawMutex, RawMutex};
use embassy_sync::pipe::Pipe;
use embassy_time::{with_timeout, Duration, Timer};

/// Modem to host: roomy.
pub type WirePipe = Pipe<CriticalSectionRawMutex, 8192>;
/// Host to modem: small, so the driver's writes block until the modem reads,
/// as a UART's transmit buffer does.
pub type TxPipe = Pipe<CriticalSectionRawMutex, 256>;
pub type TestRunner = Runner<'static, &'static WirePipe, &'static TxPipe>;

/// A fresh driver and the fake modem on the other end of its UART.
pub fn setup(config: Config) -> (Modem<'static>, TestRunner, Fake) {
    setup_with(config, |_, rx| rx, |tx| tx)
}

/// Like [`setup`], with the UART halves wrapped: `reader` gets the pipe from
/// the modem (and the fake's own handle on it), `writer` the pipe to it.
pub fn setup_with<R, W>(
    config: Config,
    reader: impl FnOnce(&'static TxPipe, &'static WirePipe) -> R,
    writer: impl FnOnce(&'static TxPipe) -> W,
) -> (Modem<'static>, Runner<'static, R, W>, Fake)
where
    R: embedded_io_async::Read,
    W: embedded_io_async::Write,
{
    let state: &'static mut State = Box::leak(Box::new(State::new()));
    setup_in(state, config, reader, writer)
}

/// Like [`setup_with`], in a `state` of the caller's choice (other sizes,
/// another lock: `State<2400, 1024, 2560, 32, 2, 8, NoopRawMutex>`).
pub fn setup_in<
    R,
    W,
    M: RawMutex,
    const INGRESS: usize,
    const LINE: usize,
    const INBOX: usize,
    const EVENTS: usize,
    const SUBSCRIBERS: usize,
    const INFLIGHT: usize,
>(
    state: &'static mut State<INGRESS, LINE, INBOX, EVENTS, SUBSCRIBERS, INFLIGHT, M>,
    config: Config,
    reader: impl FnOnce(&'static TxPipe, &'static WirePipe) -> R,
    writer: impl FnOnce(&'static TxPipe) -> W,
) -> (Modem<'static, M>, Runner<'static, R, W, M>, Fake)
where
    R: embedded_io_async::Read,
    W: embedded_io_async::Write,
{
    let to_modem: &'static TxPipe = Box::leak(Box::new(Pipe::new()));
    let to_host: &'static WirePipe = Box::leak(Box::new(Pipe::new()));
    let (modem, runner) =
        bc26_mqtt::new(state, reader(to_modem, to_host), writer(to_modem), config)
            .expect("a Config whose values agree");
    (
        modem,
        runner,
        Fake {
            rx: to_modem,
            tx: to_host,
            pending: Vec::new(),
        },
    )
}

/// A UART writer whose `flush` completes only when the test opens the gate:
/// the modem may answer a line before the driver sees `flush` return, as
/// when the MCU is busy.
pub struct GatedTx {
    pub pipe: &'static TxPipe,
    pub gate: &'static Gate,
}

/// Opens and closes a [`GatedTx`]'s flush.
pub struct Gate {
    open: AtomicBool,
    changed: embassy_sync::signal::Signal<CriticalSectionRawMutex, ()>,
    /// Flushes that had to wait.
    pub waited: core::sync::atomic::AtomicU32,
}

impl Gate {
    pub fn new(open: bool) -> &'static Gate {
        Box::leak(Box::new(Gate {
            open: AtomicBool::new(open),
            changed: embassy_sync::signal::Signal::new(),
            waited: core::sync::atomic::AtomicU32::new(0),
        }))
    }
    pub fn set(&self, open: bool) {
        self.open.store(open, Ordering::SeqCst);
        self.changed.signal(());
    }
}

impl embedded_io_async::ErrorType for GatedTx {
    type Error = core::convert::Infallible;
}

impl embedded_io_async::Write for GatedTx {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        Ok(self.pipe.write(buf).await)
    }
    async fn flush(&mut self) -> Result<(), Self::Error> {
        if !self.gate.open.load(Ordering::SeqCst) {
            self.gate.waited.fetch_add(1, Ordering::SeqCst);
        }
        while !self.gate.open.load(Ordering::SeqCst) {
            self.gate.changed.wait().await;
        }
        Ok(())
    }
}

/// A UART writer that fails once `budget` bytes went through (then works
/// again when the test raises the budget): a write error in mid-line.
pub struct FailingTx {
    pub pipe: &'static TxPipe,
    pub budget: &'static core::sync::atomic::AtomicUsize,
}

#[derive(Debug)]
pub struct UartError;

impl core::fmt::Display for UartError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("UART error")
    }
}

impl std::error::Error for UartError {}

impl embedded_io_async::Error for UartError {
    fn kind(&self) -> embedded_io_async::ErrorKind {
        embedded_io_async::ErrorKind::Other
    }
}

impl embedded_io_async::ErrorType for FailingTx {
    type Error = UartError;
}

impl embedded_io_async::Write for FailingTx {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, UartError> {
        let left = self.budget.load(Ordering::SeqCst);
        if left == 0 {
            return Err(UartError);
        }
        let n = self.pipe.write(&buf[..buf.len().min(left)]).await;
        self.budget.fetch_sub(n, Ordering::SeqCst);
        Ok(n)
    }
    async fn flush(&mut self) -> Result<(), UartError> {
        Ok(())
    }
}

/// A UART reader that fails at once, every time (an unplugged adapter), or
/// returns `Ok(0)` every time (a closed pipe), while `broken` is set; then
/// reads the pipe again.
pub struct BrokenRx {
    pub pipe: &'static WirePipe,
    pub broken: &'static AtomicBool,
    pub eof: bool,
    pub reads: &'static core::sync::atomic::AtomicU32,
}

impl embedded_io_async::ErrorType for BrokenRx {
    type Error = UartError;
}

impl embedded_io_async::Read for BrokenRx {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, UartError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        if self.broken.load(Ordering::SeqCst) {
            return if self.eof { Ok(0) } else { Err(UartError) };
        }
        Ok(self.pipe.read(buf).await)
    }
}

/// Short timeouts so failing tests fail fast. The scripted sessions are
/// text-mode transcripts, so they receive text (the driver's secure default,
/// hex reception set up before `open`, is tested in `security.rs` and
/// end to end).
pub fn fast_config() -> Config {
    Config::new()
        .command_timeout(Duration::from_millis(300))
        .open_timeout(Duration::from_millis(500))
        .close_timeout(Duration::from_millis(500))
        .packet_deadline(Duration::from_millis(500))
        // Long enough that a busy test machine never pauses a scripted
        // modem's line that long (tests of the quiet gap set their own), and
        // at most half of command_timeout, as `Config::validate` wants.
        .quiet_gap(Duration::from_millis(150))
        .read_error_pause(Duration::from_millis(2))
        .receive_text(true)
}

#[embassy_executor::task(pool_size = 64)]
async fn test_task(fut: Pin<Box<dyn Future<Output = ()>>>, done: &'static AtomicBool) {
    fut.await;
    done.store(true, Ordering::SeqCst);
}

/// Runs `fut` to completion on a fresh embassy std executor (10 s limit).
pub fn run<F: Future<Output = ()> + 'static>(fut: F) {
    let done: &'static AtomicBool = Box::leak(Box::new(AtomicBool::new(false)));
    let executor: &'static mut Executor = Box::leak(Box::new(Executor::new()));
    let fut: Pin<Box<dyn Future<Output = ()>>> = Box::pin(async move {
        if with_timeout(Duration::from_secs(20), fut).await.is_err() {
            panic!("test did not finish within 20 s");
        }
    });
    executor.run_until(
        |spawner| spawner.spawn(test_task(fut, done).expect("task pool")),
        || done.load(Ordering::SeqCst),
    );
}

/// Runs `body` beside the driver's runner; returns when `body` does.
pub async fn with_runner<R, W, M, F>(runner: Runner<'static, R, W, M>, body: F) -> F::Output
where
    R: embedded_io_async::Read,
    W: embedded_io_async::Write,
    M: RawMutex,
    F: Future,
{
    match select(runner.run(), body).await {
        Either::First(never) => never,
        Either::Second(out) => out,
    }
}

/// Shows bytes with escapes, for assertion messages.
pub fn show(b: &[u8]) -> String {
    let mut s = String::new();
    for &c in b {
        match c {
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n"),
            0x20..=0x7e => s.push(c as char),
            _ => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    s
}

/// The modem end of the UART.
pub struct Fake {
    rx: &'static TxPipe,
    tx: &'static WirePipe,
    pending: Vec<u8>,
}

impl Fake {
    async fn fill(&mut self) {
        let mut buf = [0u8; 1024];
        match with_timeout(Duration::from_secs(5), self.rx.read(&mut buf)).await {
            Ok(n) => self.pending.extend_from_slice(&buf[..n]),
            Err(_) => panic!(
                "fake modem: nothing from the host for 5 s (have {:?})",
                show(&self.pending)
            ),
        }
    }

    /// Reads exactly `want` from the host, or fails the test.
    pub async fn expect(&mut self, want: &[u8]) {
        while self.pending.len() < want.len() {
            if !self.pending.is_empty() && !want.starts_with(&self.pending) {
                break;
            }
            self.fill().await;
        }
        let n = want.len().min(self.pending.len());
        let got: Vec<u8> = self.pending.drain(..n).collect();
        assert_eq!(
            show(&got),
            show(want),
            "fake modem: host sent something else"
        );
    }

    /// Reads one command line from the host (through its `\r`).
    pub async fn line(&mut self) -> Vec<u8> {
        loop {
            if let Some(i) = self.pending.iter().position(|&b| b == b'\r') {
                return self.pending.drain(..=i).collect();
            }
            self.fill().await;
        }
    }

    /// Reads one unit from the host: through the first CR, Ctrl+Z or ESC.
    pub async fn unit(&mut self) -> Vec<u8> {
        loop {
            if let Some(i) = self
                .pending
                .iter()
                .position(|&b| matches!(b, b'\r' | 0x1a | 0x1b))
            {
                return self.pending.drain(..=i).collect();
            }
            self.fill_quietly().await;
        }
    }

    /// Like `fill`, without a deadline of its own (the caller bounds it).
    async fn fill_quietly(&mut self) {
        let mut buf = [0u8; 1024];
        let n = self.rx.read(&mut buf).await;
        self.pending.extend_from_slice(&buf[..n]);
    }

    /// Reads `n` bytes from the host.
    pub async fn bytes(&mut self, n: usize) -> Vec<u8> {
        while self.pending.len() < n {
            self.fill().await;
        }
        self.pending.drain(..n).collect()
    }

    /// Sends `bytes` to the host as one chunk, and waits until the driver has
    /// read them all (so the next chunk is a separate read).
    pub async fn send(&mut self, bytes: &[u8]) {
        self.tx.write_all(bytes).await;
        while !self.tx.is_empty() {
            Timer::after_micros(20).await;
        }
    }

    /// Sends `bytes` one byte per read.
    pub async fn send_bytewise(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.send(core::slice::from_ref(b)).await;
        }
    }

    /// True if the host has sent nothing that was not read yet.
    pub fn nothing_from_host(&mut self) -> bool {
        let mut buf = [0u8; 64];
        while let Ok(n) = self.rx.try_read(&mut buf) {
            self.pending.extend_from_slice(&buf[..n]);
        }
        self.pending.is_empty()
    }

    /// Takes what the host sent and the fake has not read yet.
    pub fn bytes_available(&mut self) -> Vec<u8> {
        let _ = self.nothing_from_host();
        std::mem::take(&mut self.pending)
    }

    /// Forgets what the host sent so far.
    pub fn discard(&mut self) {
        let _ = self.nothing_from_host();
        self.pending.clear();
    }

    /// Answers a command line: reads it (asserting it), then sends `reply`.
    pub async fn answer(&mut self, want: &[u8], reply: &[u8]) {
        self.expect(want).await;
        self.send(reply).await;
    }

    /// Answers the driver's re-synchronisation after a failed command, if it
    /// sends one: optional ESC and CR, then a bare `AT`, answered `OK`.
    /// Returns whether there was one.
    pub async fn answer_fence(&mut self) -> bool {
        while self.pending.len() < 3 {
            self.fill().await;
        }
        let mut skip = 0;
        while matches!(self.pending.get(skip), Some(0x1b | b'\r')) {
            skip += 1;
        }
        while self.pending.len() < skip + 3 {
            self.fill().await;
        }
        if &self.pending[skip..skip + 3] != b"AT\r" {
            return false;
        }
        self.pending.drain(..skip + 3);
        self.send(b"\r\nOK\r\n").await;
        true
    }
}

/// Lets the driver run for a moment.
pub async fn settle() {
    Timer::after_millis(5).await;
}

/// The driver is still usable: a keepalive query on `client` goes out and gets
/// its own answer (`seconds`), not a stale one.
pub async fn next_command_works(
    client: bc26_mqtt::MqttClient<'static>,
    fake: &mut Fake,
    seconds: u16,
) {
    let reply = format!("\r\n+QMTCFG: \"keepalive\",{seconds}\r\n\r\nOK\r\n");
    let want = format!("AT+QMTCFG=\"keepalive\",{}\r", client.id().get());
    let (r, _) = embassy_futures::join::join(client.keepalive(), async {
        fake.answer_fence().await;
        fake.answer(want.as_bytes(), reply.as_bytes()).await;
    })
    .await;
    assert_eq!(r, Ok(seconds));
}

/// A received message with its bytes copied, for assertions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Msg {
    pub client: ClientId,
    pub msg_id: u32,
    pub topic: String,
    pub payload: Vec<u8>,
}

/// An [`Event`] with its bytes copied, for assertions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ev {
    Message(Msg),
    LinkClosed {
        client: ClientId,
        reason: LinkClosedReason,
    },
    Rebooted,
    Missed(u32),
}

/// Copies an event out of the buffer it borrows.
pub fn own(e: Event<'_>) -> Ev {
    match e {
        Event::Message(m) => Ev::Message(Msg {
            client: m.client,
            msg_id: m.msg_id,
            topic: m.topic.to_owned(),
            payload: m.payload.to_vec(),
        }),
        Event::LinkClosed { client, reason } => Ev::LinkClosed { client, reason },
        Event::ModemRebooted => Ev::Rebooted,
        Event::Missed(n) => Ev::Missed(n),
        other => panic!("unknown event {other:?}"),
    }
}

/// The next event, waiting for one.
pub async fn next_ev<M: RawMutex>(events: &mut Events<'_, M>) -> Ev {
    let mut buf = [0u8; bc26_mqtt::MESSAGE_MAX];
    own(events.next(&mut buf).await)
}

/// The next event if one is there.
pub fn try_next_ev<M: RawMutex>(events: &mut Events<'_, M>) -> Option<Ev> {
    let mut buf = [0u8; bc26_mqtt::MESSAGE_MAX];
    events.try_next(&mut buf).map(own)
}
