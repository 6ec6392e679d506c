//! The one future the user spawns. Its receive side owns the read loop
//! (atat's `Ingress` buffer and the crate's digester), its transmit side
//! writes every command the handles submit and sees it through, waking the
//! module first when it may be asleep (docs/power.md).

use core::future::{poll_fn, Future};
use core::pin::Pin;
use core::task::Poll;

use atat::{AtatIngress, Ingress};
use embassy_futures::select::{select, Either};
use embassy_time::{with_deadline, Instant, Timer};
use embedded_io_async::{Read, Write};

use crate::channel::{Answer, DataStep, Outcome, Step};
use crate::client_table::Owner;
use crate::digest::Bc26Digester;
use crate::error::Stage;
use crate::state::{Core, NoUrc, RES_SLOT};
use crate::stats::bump;
use crate::sync::{CriticalSectionRawMutex, RawMutex};

const ESC: u8 = 0x1b;
/// Bytes copied from the line buffer per UART write.
const CHUNK: usize = 64;
/// A fence's first probe: `AT`, after CR when the modem may hold a half
/// line, after ESC when it may be in data mode (index: 2 for data mode, 1
/// for a half line). Later probes are the bare `AT` at its end.
const PROBES: [&[u8]; 4] = [b"AT\r", b"\rAT\r", b"\x1bAT\r", b"\x1b\rAT\r"];

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

    /// Runs the driver forever: receive, route, transmit. Both sides work
    /// on the runner in place (through references: nothing of the runner
    /// moved or copied into their futures); each side's references go into
    /// its own future (none kept beside them).
    pub async fn run(mut self) -> ! {
        let core = &self.core;
        let rx = Rx {
            reader: &mut self.reader,
            ingress: &mut self.ingress,
            capacity: self.capacity,
            core,
        };
        let tx = Tx {
            writer: &mut self.writer,
            core,
            pin: &mut self.pin,
        };
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
struct Rx<'r, 'a, R: Read, M: RawMutex> {
    reader: &'r mut R,
    ingress: &'r mut Ing<'a, M>,
    capacity: usize,
    core: &'r Core<'a, M>,
}

impl<R: Read, M: RawMutex> Rx<'_, '_, R, M> {
    async fn run(self) -> ! {
        let gap = self.core.config.quiet_gap;
        // When the last byte came (the receive clock's, which only this
        // loop writes).
        let mut last = self.core.rx.last();
        loop {
            let buf = self.ingress.write_buf();
            let held = self.capacity - buf.len();
            // Bytes are held: read until the modem has been quiet a gap.
            // Else no timer: the read alone (one await of the read for both).
            let mut quiet = (held > 0).then(|| Timer::at(last + gap));
            let quiet = poll_fn(|cx| match &mut quiet {
                Some(t) => Pin::new(t).poll(cx),
                None => Poll::Pending,
            });
            let read = match select(self.reader.read(buf), quiet).await {
                Either::First(r) => Some(r),
                Either::Second(()) => None,
            };
            // The bytes read, or none after a quiet gap (the digester then
            // gives up the incomplete frame it holds).
            let n = match read {
                Some(Ok(n)) if n > 0 => {
                    last = self.core.rx.received(n);
                    n
                }
                Some(_) => {
                    warn!("UART read failed or returned nothing");
                    bump!(self.core.stats, read_errors);
                    Timer::after(self.core.config.read_error_pause).await;
                    continue;
                }
                None => {
                    self.core.rx.request_resync();
                    0
                }
            };
            // Never fails: the digester publishes no atat URC. (One call
            // for both.)
            let _ = self.ingress.try_advance(n);
        }
    }
}

/// Why a write stopped.
enum Stop {
    /// The UART failed, did not take the bytes within `Config::tx_timeout`,
    /// or the line buffer did not hold them.
    Failed,
    /// The modem restarted while a payload went out.
    Rebooted,
}

/// What one write sends.
#[derive(Clone, Copy)]
enum Src<'s> {
    /// Bytes of the runner's own (ESC, a fence's probe).
    Bytes(&'s [u8]),
    /// ESC answering a late prompt: a failure is counted (the modem then
    /// still waits in data mode, and the next fence starts with ESC), a
    /// success tells the channel.
    LateEsc,
    /// The command line (the line buffer's first `len` bytes): arms the
    /// command just before the chunk that ends the line, and tells the owner
    /// where its line went out.
    Line(usize, Owner),
    /// A payload chunk from the line buffer; the last one (`true`) arms the
    /// final answer just before it goes. Stops at once if the modem restarts
    /// (it would take the payload for a command line).
    Payload(usize, bool),
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

/// How the payload of a data-mode publish ended.
#[derive(Clone, Copy, PartialEq, Eq)]
enum PayloadEnd {
    /// Every chunk went, Ctrl+Z last.
    Sent,
    /// The handle went away (or stopped giving chunks): ESC.
    Abandoned,
    /// A chunk could not be written: ESC, whatever reached the modem.
    Failed,
}

/// The transmit side.
struct Tx<'r, 'a, W: Write, M: RawMutex, P: WakePin> {
    writer: &'r mut W,
    core: &'r Core<'a, M>,
    pin: &'r mut P,
}

impl<W: Write, M: RawMutex, P: WakePin> Tx<'_, '_, W, M, P> {
    async fn run(mut self) -> ! {
        loop {
            let next = loop {
                if let Some(next) = self.core.channel.take_job() {
                    break next;
                }
                self.core.channel.wait().await;
            };
            match next {
                Ok(job) => {
                    // The job (written here, not as an async fn of its
                    // own: one state machine less).
                    let outcome = 'job: {
                        let ch = self.core.channel;
                        let cfg = self.core.config;
                        let power = self.core.power;
                        // The module may be asleep: never send it a real line before it
                        // answered a wake-up `AT`.
                        let wake = power.may_sleep(Instant::now(), cfg.sleep_after);
                        if ch.fenced() || wake {
                            // The fence (written here, not as an async fn of its own: one
                            // state machine less): re-synchronises after a failure, or wakes
                            // a module that may be asleep (`wake`): ends a half line, leaves
                            // data mode if the modem gave its prompt and may still be in it
                            // (ESC only then: a prompt that never came gets its ESC if it
                            // comes late), sends a bare `AT` and waits for its answer, then
                            // until the modem has been quiet for `Config::quiet_gap`. The
                            // modem answers in order, so every late answer of the failed
                            // command comes before the probe's (and is discarded by the
                            // channel). `Silent`: the modem did not answer within the job's
                            // timeout (within `Config::wake_timeout` when waking).
                            //
                            // When waking, the bytes that wake a sleeping UART are lost: the
                            // `AT` goes again every `Config::wake_probe` (after a pulse of
                            // the wake pin) until one is answered. A late prompt meanwhile
                            // gets its ESC.
                            //
                            // The line never went out if the fence failed; the outcome says
                            // why.
                            let timeout = job.timeout;
                            let fenced = 'fence: {
                                if ch.fenced() {
                                    bump!(self.core.stats, fences);
                                } else {
                                    // Waking: the wake-up `AT`s' answers are the fence's.
                                    ch.fail(self.core.rx.position());
                                }
                                let (half_line, in_data_mode) =
                                    ch.begin_fence(self.core.rx.position());
                                // ESC if in data mode, CR if a half line, then `AT`
                                // (a constant, not built here).
                                let probe =
                                    PROBES[usize::from(in_data_mode) * 2 + usize::from(half_line)];
                                let start = Instant::now();
                                let deadline =
                                    start + if wake { cfg.wake_timeout } else { timeout };
                                // ESC and CR go only once; later probes are a bare `AT`.
                                let mut from = 0;
                                // Probing: until the modem answered (anything, counted from the
                                // probe on; `None`: a restart cleared the fence). Then quiet: until
                                // the modem has been quiet for `Config::quiet_gap`: what the probe
                                // line itself owes (`ERROR` to a half line, then `OK`) comes
                                // meanwhile. A modem that is never quiet (a stream of messages)
                                // holds it until `quiet_until` at most, by which it has answered
                                // every line it was sent.
                                let mut quiet_until = None;
                                // Whether the next pass sends a probe, and until when the modem may
                                // answer it.
                                let mut probe_due = true;
                                let mut until = deadline;
                                loop {
                                    if let Some(end) = quiet_until {
                                        let quiet_at =
                                            (self.core.rx.last() + cfg.quiet_gap).min(end);
                                        if Instant::now() >= quiet_at {
                                            break;
                                        }
                                        Timer::at(quiet_at).await;
                                    } else {
                                        if probe_due {
                                            if wake {
                                                debug!("waking the module");
                                                self.pin.pulse();
                                            } else {
                                                debug!("fence: re-synchronising with the modem");
                                            }
                                            if self.send(Src::Bytes(&probe[from..])).await.is_err()
                                            {
                                                bump!(self.core.stats, write_errors);
                                                break 'fence Fenced::WriteFailed;
                                            }
                                            from = probe.len() - 3;
                                            until = if wake {
                                                deadline.min(Instant::now() + cfg.wake_probe)
                                            } else {
                                                deadline
                                            };
                                            probe_due = false;
                                        }
                                        match ch.fence_answers() {
                                            // A restart cleared the fence: nothing is owed any
                                            // more.
                                            None => break 'fence Fenced::Clear,
                                            Some(0) => {}
                                            Some(_) => {
                                                quiet_until = Some(Instant::now() + timeout);
                                                continue;
                                            }
                                        }
                                    }
                                    // A late prompt meanwhile gets its ESC (after the quiet phase's
                                    // timer, before the probe phase's wait).
                                    if ch.take_esc() && self.send(Src::LateEsc).await.is_err() {
                                        break 'fence Fenced::WriteFailed;
                                    }
                                    if quiet_until.is_none() && ch.wait_wake(until).await.is_err() {
                                        if Instant::now() >= deadline {
                                            break 'fence Fenced::Silent;
                                        }
                                        bump!(self.core.stats, wake_probes_lost);
                                        probe_due = true;
                                    }
                                }
                                ch.end_fence();
                                if wake {
                                    bump!(self.core.stats, wakes);
                                    // The module took one of the probes: its sleep lock runs from
                                    // the first (the earliest it can have started).
                                    self.core.power.took_line(start);
                                }
                                Fenced::Clear
                            };
                            match fenced {
                                Fenced::Clear => {}
                                // A forced line (`AT+QRST=1`) goes out even so: the modem
                                // may read commands while it answers none.
                                Fenced::Silent if job.force => {}
                                Fenced::Silent if wake => break 'job Outcome::Asleep,
                                Fenced::Silent => break 'job Outcome::Timeout(Stage::Response),
                                Fenced::WriteFailed => break 'job Outcome::Write,
                            }
                        }
                        if ch.abandoned() {
                            // The handle went away while the channel was fenced: not sent.
                            break 'job Outcome::Timeout(Stage::Response);
                        }
                        ch.begin_line(job.data_mode, self.core.rx.position());
                        let sent_at = Instant::now();
                        // One write for the line, every payload chunk and the ESC that
                        // cancels a payload (one await of `send` for all).
                        let mut src = Some(Src::Line(job.len, job.owner));
                        // Between the line's prompt and the payload's end: chunks from
                        // the handle, then Ctrl+Z; or ESC if the handle went away (or
                        // stopped giving chunks).
                        let mut paying = false;
                        // While paying: `None` while chunks go; then how the payload
                        // ended, and one more pass writes ESC if it did not end with
                        // Ctrl+Z.
                        let mut end = None;
                        let mut first = true;
                        // After a prompt, how the payload ended (then the answer is to
                        // its Ctrl+Z or ESC).
                        let mut sent = None;
                        loop {
                            if let Some(src) = src.take() {
                                let result = self.send(src).await;
                                if !paying {
                                    if result.is_err() {
                                        bump!(self.core.stats, write_errors);
                                        ch.fail_mid_line(self.core.rx.position());
                                        break 'job Outcome::Write;
                                    }
                                } else {
                                    match (end, result) {
                                        (None, Ok(())) => {
                                            if let Src::Payload(_, true) = src {
                                                sent = Some(PayloadEnd::Sent);
                                                paying = false;
                                            }
                                        }
                                        (None, Err(Stop::Rebooted)) => {
                                            // The restarted modem may hold payload bytes as
                                            // half a command line: end it before the next
                                            // command.
                                            ch.fail_mid_line(self.core.rx.position());
                                            break 'job Outcome::Rebooted;
                                        }
                                        (None, Err(Stop::Failed)) => {
                                            bump!(self.core.stats, write_errors);
                                            end = Some(PayloadEnd::Failed);
                                        }
                                        (Some(e), written) => {
                                            if e == PayloadEnd::Abandoned && written.is_ok() {
                                                sent = Some(e);
                                                paying = false;
                                            } else {
                                                // Counted when the chunk failed, or now.
                                                if e == PayloadEnd::Abandoned {
                                                    bump!(self.core.stats, write_errors);
                                                }
                                                ch.fail(self.core.rx.position());
                                                break 'job Outcome::Write;
                                            }
                                        }
                                    }
                                }
                            }
                            if paying {
                                // Cancel data mode with ESC; after a failed chunk whatever
                                // reached the modem, and without waiting for an answer.
                                if let Some(e) = end {
                                    if e == PayloadEnd::Abandoned {
                                        debug!("data-mode publish abandoned: ESC");
                                        ch.arm_escape(self.core.rx.position());
                                    }
                                    src = Some(Src::Bytes(&[ESC]));
                                    continue;
                                }
                                if !ch.want_data() {
                                    end = Some(PayloadEnd::Abandoned);
                                    continue;
                                }
                            }
                            // While paying, the handle's next chunk; else the line's answer
                            // (after the payload, the answer to its Ctrl+Z or ESC). One
                            // wait for both.
                            let step = ch.wait_step(Instant::now() + job.timeout, paying).await;
                            if paying {
                                let Ok(Step::Data(DataStep::Chunk { len, last })) = step else {
                                    end = Some(PayloadEnd::Abandoned);
                                    continue;
                                };
                                if ch.answer() == Some(Answer::Rebooted) {
                                    // The modem left data mode by restarting: send
                                    // nothing more.
                                    break 'job Outcome::Rebooted;
                                }
                                // The modem may echo the payload: tell the digester
                                // what to skip before a byte of it goes out (Ctrl+Z
                                // is not echoed).
                                let echoed = if last { len - 1 } else { len };
                                let mut probe = [0u8; 8];
                                let n = if first {
                                    ch.copy_out(0, echoed, &mut probe).unwrap_or(0)
                                } else {
                                    0
                                };
                                ch.echo_announce(&probe[..n], echoed);
                                first = false;
                                src = Some(Src::Payload(len, last));
                                continue;
                            }
                            let answer = match step {
                                Ok(Step::Answer(a)) => Some(a),
                                _ => None,
                            };
                            if sent.is_none() {
                                match answer {
                                    Some(Answer::Rebooted) => {}
                                    Some(_) => power.took_line(sent_at),
                                    None => power.lost_line(),
                                }
                            }
                            if sent.is_none() && answer == Some(Answer::Prompt) {
                                paying = true;
                                continue;
                            }
                            break 'job match answer {
                                Some(Answer::Rebooted) => Outcome::Rebooted,
                                // The ESC's answer: the publish did not go.
                                Some(_)
                                    if matches!(
                                        sent,
                                        Some(PayloadEnd::Abandoned | PayloadEnd::Failed)
                                    ) =>
                                {
                                    Outcome::Timeout(Stage::Response)
                                }
                                Some(Answer::Final(Ok(()))) => Outcome::Ok,
                                Some(Answer::Final(Err(e))) => Outcome::Modem(e),
                                // No answer; or after the payload, Ctrl+Z (or ESC) may not
                                // have arrived: the modem may still be in data mode. (A
                                // prompt to the line itself was taken above.)
                                Some(Answer::Prompt) | None => {
                                    ch.fail(self.core.rx.position());
                                    Outcome::Timeout(if sent.is_none() && job.data_mode {
                                        Stage::Prompt
                                    } else {
                                        Stage::Response
                                    })
                                }
                            };
                        }
                    };
                    self.core.channel.finish(outcome);
                }
                // A late prompt after a failure: the modem waits in data
                // mode. Cancel at once (its OK is a late answer); if the
                // UART fails, the fence sends ESC before its probe.
                Err(()) => {
                    let _ = self.send(Src::LateEsc).await;
                }
            }
        }
    }

    /// Writes `src` and flushes, within `Config::tx_timeout`, at most
    /// [`CHUNK`] bytes from the line buffer per UART write.
    async fn send(&mut self, src: Src<'_>) -> Result<(), Stop> {
        let core = self.core;
        let writer = &mut *self.writer;
        // One deadline for every write and the flush (as a timeout around
        // them all, without an async block of its own).
        let deadline = Instant::now() + core.config.tx_timeout;
        let len = match src {
            Src::Bytes(b) => b.len(),
            Src::LateEsc => 1,
            Src::Line(len, _) | Src::Payload(len, _) => len,
        };
        let result = 'work: {
            let mut off = 0;
            while off < len {
                let mut chunk = [0u8; CHUNK];
                let piece = match src {
                    Src::Bytes(b) => b,
                    Src::LateEsc => &[ESC],
                    Src::Line(..) | Src::Payload(..) => {
                        if matches!(src, Src::Payload(..))
                            && core.channel.answer() == Some(Answer::Rebooted)
                        {
                            break 'work Err(Stop::Rebooted);
                        }
                        let Some(n) = core.channel.copy_out(off, len, &mut chunk) else {
                            break 'work Err(Stop::Failed);
                        };
                        &chunk[..n]
                    }
                };
                if off + piece.len() == len {
                    match src {
                        Src::Line(_, owner) => {
                            let pos = core.rx.position();
                            core.channel.arm(pos);
                            core.clients.line_sent(owner, pos);
                        }
                        Src::Payload(_, true) => core.channel.arm(core.rx.position()),
                        Src::Payload(_, false) | Src::Bytes(_) | Src::LateEsc => {}
                    }
                }
                if !matches!(
                    with_deadline(deadline, writer.write_all(piece)).await,
                    Ok(Ok(()))
                ) {
                    break 'work Err(Stop::Failed);
                }
                off += piece.len();
            }
            match with_deadline(deadline, writer.flush()).await {
                Ok(Ok(())) => Ok(()),
                _ => Err(Stop::Failed),
            }
        };
        if let Src::LateEsc = src {
            match result {
                Ok(()) => core.channel.escaped(),
                Err(_) => bump!(core.stats, write_errors),
            }
        }
        result
    }
}
