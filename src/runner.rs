//! The one future the user spawns. Its receive side owns the read loop
//! (atat's `Ingress` buffer and the crate's digester), its transmit side
//! writes every command the handles submit and sees it through, waking the
//! module first when it may be asleep (docs/power.md).

use atat::{AtatIngress, Ingress};
use embassy_futures::select::{select, Either};
use embassy_time::{with_timeout, Instant, Timer};
use embedded_io_async::{Read, Write};

use crate::channel::{Answer, DataStep, Job, Outcome};
use crate::client_table::Owner;
use crate::digest::Bc26Digester;
use crate::error::Stage;
use crate::state::{Core, NoUrc, RES_SLOT};
use crate::stats::bump;
use crate::sync::{CriticalSectionRawMutex, RawMutex};

const ESC: u8 = 0x1b;
/// Bytes copied from the line buffer per UART write.
const CHUNK: usize = 64;

type Ing<'a, M> = Ingress<'a, Bc26Digester<'a, M>, NoUrc, RES_SLOT, 1, 1>;

/// A board's line to the module's PSM_EINT pin, which wakes it from deep
/// sleep (`AT+QSCLK=1`, PSM), where its UART is dead. Give it to the runner
/// with [`Runner::wake_pin`]; the driver pulses it before each wake-up `AT`.
/// Any `FnMut()` is one.
pub trait WakePin {
    /// Makes one falling edge on PSM_EINT (e.g. drive it high, then low).
    /// Called from the runner's task: it must not block for long.
    fn pulse(&mut self);
}

/// No wake pin wired (the default): a module in deep sleep cannot be woken,
/// and a command then ends with [`Error::WakeTimeout`](crate::Error::WakeTimeout).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoWakePin;

impl WakePin for NoWakePin {
    fn pulse(&mut self) {}
}

impl<F: FnMut()> WakePin for F {
    fn pulse(&mut self) {
        self()
    }
}

/// Drives the modem: spawn [`Runner::run`] as a task (it never returns).
/// Everything the handles do goes through it.
///
/// The reader's `read` must be cancel-safe (a read dropped before it
/// completes loses no byte), as embassy's buffered UARTs are: the runner
/// stops a read when the modem has been quiet for `Config::quiet_gap` with an
/// incomplete frame held.
pub struct Runner<
    'a,
    R: Read,
    W: Write,
    M: RawMutex = CriticalSectionRawMutex,
    P: WakePin = NoWakePin,
> {
    reader: R,
    writer: W,
    ingress: Ing<'a, M>,
    capacity: usize,
    core: Core<'a, M>,
    pin: P,
}

impl<'a, R: Read, W: Write, M: RawMutex> Runner<'a, R, W, M> {
    pub(crate) fn new(
        reader: R,
        writer: W,
        ingress: Ing<'a, M>,
        capacity: usize,
        core: Core<'a, M>,
    ) -> Self {
        Self {
            reader,
            writer,
            ingress,
            capacity,
            core,
            pin: NoWakePin,
        }
    }
}

impl<'a, R: Read, W: Write, M: RawMutex, P: WakePin> Runner<'a, R, W, M, P> {
    /// The same runner with a wake pin (PSM_EINT), for boards that wire it:
    /// the driver can then wake the module from deep sleep.
    pub fn wake_pin<Q: WakePin>(self, pin: Q) -> Runner<'a, R, W, M, Q> {
        Runner {
            reader: self.reader,
            writer: self.writer,
            ingress: self.ingress,
            capacity: self.capacity,
            core: self.core,
            pin,
        }
    }

    /// Runs the driver forever: receive, route, transmit.
    pub async fn run(self) -> ! {
        let Runner {
            reader,
            writer,
            ingress,
            capacity,
            core,
            pin,
        } = self;
        let mut rx = Rx {
            reader,
            ingress,
            capacity,
            core,
        };
        let mut tx = Tx { writer, core, pin };
        match select(rx.run(), tx.run()).await {
            Either::First(never) | Either::Second(never) => never,
        }
    }
}

impl<R: Read, W: Write, M: RawMutex, P: WakePin> core::fmt::Debug for Runner<'_, R, W, M, P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Runner")
    }
}

#[cfg(feature = "defmt")]
impl<R: Read, W: Write, M: RawMutex, P: WakePin> defmt::Format for Runner<'_, R, W, M, P> {
    fn format(&self, f: defmt::Formatter) {
        defmt::write!(f, "Runner")
    }
}

/// The receive side: reads, digests, and gives up an incomplete frame when
/// the modem has been quiet too long. Never spins: a read that fails or
/// returns nothing is counted and followed by a pause.
struct Rx<'a, R: Read, M: RawMutex> {
    reader: R,
    ingress: Ing<'a, M>,
    capacity: usize,
    core: Core<'a, M>,
}

impl<R: Read, M: RawMutex> Rx<'_, R, M> {
    async fn run(&mut self) -> ! {
        let gap = self.core.config.quiet_gap;
        // When the last byte came (the receive clock's, which only this
        // loop writes).
        let mut last = self.core.rx.last();
        loop {
            let buf = self.ingress.write_buf();
            let held = self.capacity - buf.len();
            let read = if held > 0 {
                // Bytes are held: read until the modem has been quiet a gap.
                let quiet = Timer::at(last + gap);
                match select(self.reader.read(buf), quiet).await {
                    Either::First(r) => Some(r),
                    Either::Second(()) => None,
                }
            } else {
                Some(self.reader.read(buf).await)
            };
            match read {
                Some(Ok(n)) if n > 0 => {
                    last = self.core.rx.received(n);
                    // Never fails: the digester publishes no atat URC.
                    let _ = self.ingress.try_advance(n);
                }
                Some(_) => {
                    warn!("UART read failed or returned nothing");
                    bump!(self.core.stats, read_errors);
                    Timer::after(self.core.config.read_error_pause).await;
                }
                None => {
                    self.core.rx.request_resync();
                    let _ = self.ingress.try_advance(0);
                }
            }
        }
    }
}

/// Why a payload chunk stopped.
enum Stop {
    Failed,
    Rebooted,
}

/// How the fence before a command line ended.
enum Fenced {
    /// Nothing is owed any more: the line may go.
    Clear,
    /// The modem did not answer the probe in time.
    Silent,
    /// The UART could not be written (it failed, or did not take the bytes
    /// within `Config::tx_timeout`).
    WriteFailed,
}

/// The transmit side.
struct Tx<'a, W: Write, M: RawMutex, P: WakePin> {
    writer: W,
    core: Core<'a, M>,
    pin: P,
}

impl<W: Write, M: RawMutex, P: WakePin> Tx<'_, W, M, P> {
    async fn run(&mut self) -> ! {
        loop {
            match self.core.channel.next_job().await {
                Ok(job) => {
                    let outcome = self.transact(job).await;
                    self.core.channel.finish(outcome);
                }
                // A late prompt after a failure: the modem waits in data
                // mode. Cancel at once (its OK is a late answer); if the
                // UART fails, the fence sends ESC before its probe.
                Err(()) => {
                    let _ = self.escape_late_prompt().await;
                }
            }
        }
    }

    async fn transact(&mut self, job: Job) -> Outcome {
        let ch = self.core.channel;
        let cfg = self.core.config;
        let power = self.core.power;
        // The module may be asleep: never send it a real line before it
        // answered a wake-up `AT`.
        let wake = power.may_sleep(Instant::now(), cfg.sleep_after);
        if ch.fenced() || wake {
            // The line never went out if the fence failed; the outcome
            // says why.
            match self.fence(job.timeout, wake).await {
                Fenced::Clear => {}
                // A forced line (`AT+QRST=1`) goes out even so: the modem
                // may read commands while it answers none.
                Fenced::Silent if job.force => {}
                Fenced::Silent if wake => return Outcome::Asleep,
                Fenced::Silent => return Outcome::Timeout(Stage::Response),
                Fenced::WriteFailed => return Outcome::Write,
            }
        }
        if ch.abandoned() {
            // The handle went away while the channel was fenced: not sent.
            return Outcome::Timeout(Stage::Response);
        }
        ch.begin_line(job.data_mode, self.core.rx.position());
        let sent_at = Instant::now();
        if self.write_line(job.len, job.owner).await.is_err() {
            bump!(self.core.stats, write_errors);
            ch.fail_mid_line(self.core.rx.position());
            return Outcome::Write;
        }
        let deadline = Instant::now() + job.timeout;
        let answer = ch.wait_answer(deadline).await;
        match answer {
            Some(Answer::Rebooted) => {}
            Some(_) => power.took_line(sent_at),
            None => power.lost_line(),
        }
        match answer {
            None => {
                ch.fail(self.core.rx.position());
                Outcome::Timeout(if job.data_mode {
                    Stage::Prompt
                } else {
                    Stage::Response
                })
            }
            Some(Answer::Rebooted) => Outcome::Rebooted,
            Some(Answer::Final(Ok(()))) => Outcome::Ok,
            Some(Answer::Final(Err(e))) => Outcome::Modem(e),
            Some(Answer::Prompt) => self.data_mode(job.timeout).await,
        }
    }

    /// After the prompt: payload chunks from the handle, then Ctrl+Z; or ESC
    /// if the handle went away (or stopped giving chunks).
    async fn data_mode(&mut self, timeout: embassy_time::Duration) -> Outcome {
        let ch = self.core.channel;
        let mut first = true;
        loop {
            if !ch.want_data() {
                return self.escape(timeout).await;
            }
            let step = with_timeout(timeout, ch.wait_data()).await;
            let (len, last) = match step {
                Ok(DataStep::Chunk { len, last }) => (len, last),
                Ok(DataStep::Abort) | Err(_) => return self.escape(timeout).await,
            };
            if ch.answer() == Some(Answer::Rebooted) {
                // The modem left data mode by restarting: send nothing more.
                return Outcome::Rebooted;
            }
            // The modem may echo the payload: tell the digester what to skip
            // before a byte of it goes out (Ctrl+Z is not echoed).
            let echoed = if last { len - 1 } else { len };
            let mut probe = [0u8; 8];
            let n = if first {
                ch.copy_out(0, echoed, &mut probe).unwrap_or(0)
            } else {
                0
            };
            ch.echo_announce(&probe[..n], echoed);
            first = false;
            match self.write_chunk(len, last).await {
                Ok(()) => {}
                Err(Stop::Rebooted) => {
                    // The restarted modem may hold payload bytes as half a
                    // command line: end it before the next command.
                    ch.fail_mid_line(self.core.rx.position());
                    return Outcome::Rebooted;
                }
                Err(Stop::Failed) => {
                    bump!(self.core.stats, write_errors);
                    // Whatever reached the modem, leave data mode.
                    let _ = self.write(&[ESC]).await;
                    ch.fail(self.core.rx.position());
                    return Outcome::Write;
                }
            }
            if last {
                break;
            }
        }
        match ch.wait_answer(Instant::now() + timeout).await {
            Some(Answer::Final(Ok(()))) => Outcome::Ok,
            Some(Answer::Final(Err(e))) => Outcome::Modem(e),
            Some(Answer::Rebooted) => Outcome::Rebooted,
            Some(Answer::Prompt) | None => {
                // Ctrl+Z may not have arrived: the modem may still be in data mode.
                ch.fail(self.core.rx.position());
                Outcome::Timeout(Stage::Response)
            }
        }
    }

    /// Cancels data mode with ESC and waits for the modem's answer to it.
    async fn escape(&mut self, timeout: embassy_time::Duration) -> Outcome {
        debug!("data-mode publish abandoned: ESC");
        let ch = self.core.channel;
        ch.arm_escape(self.core.rx.position());
        if self.write(&[ESC]).await.is_err() {
            bump!(self.core.stats, write_errors);
            ch.fail(self.core.rx.position());
            return Outcome::Write;
        }
        match ch.wait_answer(Instant::now() + timeout).await {
            Some(Answer::Rebooted) => Outcome::Rebooted,
            Some(_) => Outcome::Timeout(Stage::Response),
            None => {
                ch.fail(self.core.rx.position());
                Outcome::Timeout(Stage::Response)
            }
        }
    }

    /// Re-synchronises after a failure, or wakes a module that may be
    /// asleep (`wake`): ends a half line, leaves data mode if the modem gave
    /// its prompt and may still be in it (ESC only then: a prompt that never
    /// came gets its ESC if it comes late), sends a bare `AT` and waits for
    /// its answer, then until the modem has been quiet for
    /// `Config::quiet_gap`. The modem answers in order, so every late answer
    /// of the failed command comes before the probe's (and is discarded by
    /// the channel). `Silent`: the modem did not answer within `timeout`
    /// (within `Config::wake_timeout` when waking).
    async fn fence(&mut self, timeout: embassy_time::Duration, wake: bool) -> Fenced {
        let ch = self.core.channel;
        let cfg = self.core.config;
        if ch.fenced() {
            bump!(self.core.stats, fences);
        } else {
            // Waking: the wake-up `AT`s' answers are the fence's.
            ch.fail(self.core.rx.position());
        }
        let (half_line, in_data_mode) = ch.begin_fence(self.core.rx.position());
        let mut probe = [0u8; 5];
        let mut n = 0;
        if in_data_mode {
            probe[n] = ESC;
            n += 1;
        }
        if half_line {
            probe[n] = b'\r';
            n += 1;
        }
        probe[n..n + 3].copy_from_slice(b"AT\r");
        n += 3;
        let start = Instant::now();
        let deadline = start + if wake { cfg.wake_timeout } else { timeout };
        match self.probe(&probe[..n], wake, deadline).await {
            // A restart cleared the fence: nothing is owed any more.
            Fenced::Clear if !ch.fenced() => return Fenced::Clear,
            Fenced::Clear => {}
            other => return other,
        }
        if self.quiet(Instant::now() + timeout).await.is_err() {
            return Fenced::WriteFailed;
        }
        ch.end_fence();
        if wake {
            bump!(self.core.stats, wakes);
            // The module took one of the probes: its sleep lock runs from
            // the first (the earliest it can have started).
            self.core.power.took_line(start);
        }
        Fenced::Clear
    }

    /// Sends the fence's probe and waits until the modem answered or
    /// `deadline`. When waking, the bytes that wake a sleeping UART are
    /// lost: the `AT` goes again every `Config::wake_probe` (after a pulse
    /// of the wake pin) until one is answered.
    async fn probe(&mut self, probe: &[u8], wake: bool, deadline: Instant) -> Fenced {
        let cfg = self.core.config;
        let mut bytes = probe;
        loop {
            if wake {
                debug!("waking the module");
                self.pin.pulse();
            } else {
                debug!("fence: re-synchronising with the modem");
            }
            if self.write(bytes).await.is_err() {
                bump!(self.core.stats, write_errors);
                return Fenced::WriteFailed;
            }
            // ESC and CR go only once; later probes are a bare `AT`.
            bytes = &probe[probe.len() - 3..];
            let until = if wake {
                deadline.min(Instant::now() + cfg.wake_probe)
            } else {
                deadline
            };
            match self.probe_answered(until).await {
                Some(fenced) => return fenced,
                None if Instant::now() >= deadline => return Fenced::Silent,
                None => bump!(self.core.stats, wake_probes_lost),
            }
        }
    }

    /// Waits until the modem answered (anything, counted from the probe on;
    /// `Clear`) or `until` (`None`); a late prompt meanwhile gets its ESC.
    async fn probe_answered(&mut self, until: Instant) -> Option<Fenced> {
        let ch = self.core.channel;
        loop {
            // `None`: a restart cleared the fence.
            if ch.fence_answers().is_none_or(|n| n > 0) {
                return Some(Fenced::Clear);
            }
            if ch.take_esc() && self.escape_late_prompt().await.is_err() {
                return Some(Fenced::WriteFailed);
            }
            if !ch.wait_wake(until).await {
                return None;
            }
        }
    }

    /// The fence waits until the modem has been quiet for
    /// `Config::quiet_gap`: what the probe line itself owes (`ERROR` to a
    /// half line, then `OK`) comes meanwhile. A modem that is never quiet (a
    /// stream of messages) holds it until `deadline` at most, by which it
    /// has answered every line it was sent. `Err`: the UART failed.
    async fn quiet(&mut self, deadline: Instant) -> Result<(), ()> {
        loop {
            let quiet_at = self.core.rx.last() + self.core.config.quiet_gap;
            let until = quiet_at.min(deadline);
            if Instant::now() >= until {
                return Ok(());
            }
            Timer::at(until).await;
            if self.core.channel.take_esc() {
                self.escape_late_prompt().await?;
            }
        }
    }

    /// Answers a late prompt with ESC. If the UART fails, the modem still
    /// waits in data mode (the next fence starts with ESC).
    async fn escape_late_prompt(&mut self) -> Result<(), ()> {
        if self.write(&[ESC]).await.is_err() {
            bump!(self.core.stats, write_errors);
            return Err(());
        }
        self.core.channel.escaped();
        Ok(())
    }

    /// Writes the command line in the line buffer, arming the command just
    /// before the chunk that ends the line (and telling `owner` where its
    /// line went out).
    async fn write_line(&mut self, len: usize, owner: Owner) -> Result<(), ()> {
        let core = self.core;
        let writer = &mut self.writer;
        let work = async {
            let mut off = 0;
            while off < len {
                let mut chunk = [0u8; CHUNK];
                let n = core.channel.copy_out(off, len, &mut chunk).ok_or(())?;
                if off + n == len {
                    let pos = core.rx.position();
                    core.channel.arm(pos);
                    core.clients.line_sent(owner, pos);
                }
                writer.write_all(&chunk[..n]).await.map_err(drop)?;
                off += n;
            }
            writer.flush().await.map_err(drop)
        };
        with_timeout(core.config.tx_timeout, work)
            .await
            .map_err(drop)?
    }

    /// Writes a payload chunk from the line buffer; the last one arms the
    /// final answer just before it goes. Stops at once if the modem restarts
    /// (it would take the payload for a command line).
    async fn write_chunk(&mut self, len: usize, last: bool) -> Result<(), Stop> {
        let core = self.core;
        let writer = &mut self.writer;
        let work = async {
            let mut off = 0;
            while off < len {
                if core.channel.answer() == Some(Answer::Rebooted) {
                    return Err(Stop::Rebooted);
                }
                let mut chunk = [0u8; CHUNK];
                let n = core
                    .channel
                    .copy_out(off, len, &mut chunk)
                    .ok_or(Stop::Failed)?;
                if last && off + n == len {
                    core.channel.arm(core.rx.position());
                }
                writer
                    .write_all(&chunk[..n])
                    .await
                    .map_err(|_| Stop::Failed)?;
                off += n;
            }
            writer.flush().await.map_err(|_| Stop::Failed)
        };
        with_timeout(core.config.tx_timeout, work)
            .await
            .map_err(|_| Stop::Failed)?
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), ()> {
        let writer = &mut self.writer;
        let work = async {
            writer.write_all(bytes).await.map_err(drop)?;
            writer.flush().await.map_err(drop)
        };
        with_timeout(self.core.config.tx_timeout, work)
            .await
            .map_err(drop)?
    }
}
