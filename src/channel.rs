//! The AT channel: one command line at a time between the handles, the
//! runner and the digester. This file is the one owner of that handshake:
//! its state is private, and each side has named methods.
//!
//! - Handle side: [`Channel::command`] and [`Channel::send_line`] (submit a
//!   line, hand payload chunks after the prompt, read the outcome and the
//!   information lines). The AT lock is held until the final answer, never
//!   longer; a dropped future withdraws a line not yet taken, or leaves the
//!   runner to finish (ESC in data mode).
//! - Runner side: [`Channel::take_job`], [`Channel::arm`],
//!   [`Channel::wait_step`], the data-mode steps, the fence after a
//!   failure, [`Channel::finish`].
//! - Digester side: [`Channel::expect`] (what may come now), and
//!   [`Channel::on_final`], [`Channel::on_prompt`], [`Channel::on_info`],
//!   the payload echo, [`Channel::on_reboot`].
//!
//! Three rules keep every answer with its command, whatever the order in
//! which the runner, the UART writer's `flush` and the bytes are polled:
//!
//! 1. **Armed before the last byte goes.** The runner arms the command just
//!    before it hands the chunk holding the line's final CR to the writer,
//!    recording the stream position of the bytes received so far. Only lines
//!    that start at or after that position can be its answer (the modem
//!    cannot answer a line it has not received): a partial line already in
//!    the buffer never becomes the answer, and an answer that arrives while
//!    `flush` is still pending is kept, not dropped.
//! 2. **Level, not edge.** Answers and prompts are stored in the state; the
//!    runner looks at the state before it waits, so a wake-up it missed
//!    loses nothing.
//! 3. **Fence after a failure.** A command that timed out (or whose write
//!    failed) leaves the channel fenced: every final answer that arrives
//!    until the next command is discarded and counted, a late `>` prompt is
//!    answered with ESC at once, and before the next line goes out the runner
//!    ends any half line (CR), sends ESC if the modem gave its prompt and may
//!    still be in data mode (only then: a prompt that never came gets its ESC
//!    if it comes late), sends a bare `AT` and waits until its answer has
//!    come and the line has been quiet for `Config::quiet_gap` (one more
//!    command timeout at most). The modem answers in order, so the late
//!    answers of the failed command come before that.
//!
//! A start-up line ends the command in flight and the fence only if it came
//! after the line (or the probe) went out: what the modem sent before never
//! concerns a line it had not received.

use core::cell::RefCell;
use core::future::{poll_fn, Future};
use core::pin::{pin, Pin};
use core::sync::atomic::{AtomicBool, Ordering};
use core::task::{ready, Poll};

use atat::AtatCmd;
use embassy_sync::blocking_mutex::Mutex as BlockingMutex;
use embassy_sync::mutex::{MappedMutexGuard, Mutex as HeldMutex, MutexGuard};
use embassy_sync::signal::Signal;
use embassy_time::{with_deadline, Duration, Instant, TimeoutError};

use crate::client_table::Owner;
use crate::error::{Error, Field, ModemError, Problem, Stage};
use crate::rx_clock::at_or_after;
use crate::sync::{LockedBy, Part, RawMutex};
use crate::wait::{Lock, LockGuard, Nudge};

/// The longest information-line prefix the digester compares (`+QMTCONN`).
const PREFIX: usize = 16;
/// Payload bytes kept to recognise the modem's data-mode echo.
const ECHO_PROBE: usize = 8;

/// How a command line ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Ok,
    Modem(ModemError),
    Timeout(Stage),
    Write,
    /// Information lines did not fit the line buffer.
    Overflow,
    /// The modem restarted while the command was out.
    Rebooted,
    /// The module may be asleep and did not answer the wake-up probes.
    Asleep,
}

impl Outcome {
    pub(crate) fn into_error(self) -> Error {
        match self {
            Outcome::Ok | Outcome::Overflow => Error::UnexpectedResponse,
            Outcome::Modem(e) => Error::Modem(e),
            Outcome::Timeout(s) => Error::Timeout(s),
            Outcome::Write => Error::Write,
            Outcome::Rebooted => Error::ModemRebooted,
            Outcome::Asleep => Error::WakeTimeout,
        }
    }
}

/// What the handle and the runner are doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Free for the next command.
    Idle,
    /// A handle wrote a command line into the line buffer; the runner has not
    /// taken it yet (the handle can still withdraw it).
    Queued {
        timeout: Duration,
        data_mode: bool,
        owner: Owner,
    },
    /// The runner owns the command: writing, or waiting for the modem.
    Busy,
    /// The modem gave the `>` prompt: the handle puts a payload chunk in the buffer.
    WantData,
    /// The handle put a payload chunk in the buffer (`last`: ends with Ctrl+Z).
    DataQueued { last: bool },
    /// The handle went away in data mode: the runner sends ESC.
    Abort,
    /// The command finished; the handle reads the outcome (and info lines).
    Done(Outcome),
}

/// What the digester may see now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// No command: every line is unsolicited.
    Idle,
    /// A command line is out: information lines, then OK/ERROR.
    Command,
    /// A data-mode publish line is out: the `>` prompt, or OK/ERROR.
    Prompt,
    /// The payload is going out: the modem's echo of it, then OK/ERROR.
    Payload,
    /// After a failure: every final answer and prompt is a late one.
    Fence,
}

/// The modem's echo of a data-mode payload (`AT+QMTCFG="echomode"`, on by
/// default). The driver does not need to know the setting: it compares the
/// first bytes after the prompt with the first bytes of the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Echo {
    /// Not decided yet.
    Unknown,
    /// The echo is on: this many payload bytes are still to be skipped raw.
    On,
    /// No echo (or it was given up after a quiet gap): lines as usual.
    Off,
}

/// A snapshot of what the digester may see, taken under the lock.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Expect {
    pub mode: Mode,
    prefix: [u8; PREFIX],
    prefix_len: u8,
    pub read_form: bool,
    pub echo: Echo,
    /// Payload bytes written but not yet seen echoed.
    pub echo_left: u32,
}

impl Expect {
    /// The prefix of the command's information lines (`+QMTCONN`), if any.
    pub fn prefix(&self) -> &[u8] {
        &self.prefix[..usize::from(self.prefix_len)]
    }

    /// True while a command is out (its echo may come back).
    pub fn busy(&self) -> bool {
        !matches!(self.mode, Mode::Idle)
    }
}

/// True if a line that starts at stream position `pos` may answer a command
/// armed at `armed_at`. Positions wrap; within 2 GiB of each other they
/// compare right.
fn eligible(armed_at: Option<u32>, pos: u32) -> bool {
    armed_at.is_some_and(|at| at_or_after(pos, at))
}

/// How the digester's `>` was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PromptVerdict {
    /// The prompt a data-mode publish waits for.
    Accepted,
    /// A late prompt after a failure: the runner sends ESC.
    Late,
    /// Nobody waits for a prompt.
    Stray,
}

/// What the fence must clear before the next command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Fence {
    active: bool,
    /// A write failed: the modem may hold half a line.
    half_line: bool,
    /// The modem gave its `>` prompt and may still wait in data mode: the
    /// probe starts with ESC.
    in_data_mode: bool,
    /// A data-mode publish failed before its prompt: a late `>` is answered
    /// with ESC (and only then is the modem in data mode).
    late_prompt: bool,
    /// Stream position from which a start-up line means that nothing is owed
    /// any more: where the failure was noticed, then where the probe went out.
    since: u32,
}

struct Chan {
    phase: Phase,
    /// Bytes in the line buffer: the command, a chunk, or the information lines.
    len: usize,
    overflow: bool,
    /// The handle went away while the runner owned the command.
    abandoned: bool,
    mode: Mode,
    prefix: [u8; PREFIX],
    prefix_len: u8,
    read_form: bool,
    armed_at: Option<u32>,
    /// Where the line in flight began to go out (kept until it is over): a
    /// start-up line from there on ends it (the modem that restarted had
    /// part of it at least), one from before does not.
    sent_at: Option<u32>,
    /// Whose deferred result the command in flight asks for; a publish slot
    /// is armed when the modem accepts the publish (its final `OK`), never
    /// after ESC.
    owner: Owner,
    answer: Option<Answer>,
    echo: Echo,
    echo_expected: u32,
    echo_seen: u32,
    echo_probe: [u8; ECHO_PROBE],
    echo_probe_len: u8,
    fence: Fence,
    fence_answers: u16,
    esc_wanted: bool,
    /// The line queued goes out even if the fence before it is not answered
    /// (`AT+QRST=1` to a modem that may read commands and answer none).
    force: bool,
}

/// What the modem said to the command in flight (kept until the runner looks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    Final(Result<(), ModemError>),
    Prompt,
    Rebooted,
}

/// The channel's memory, inside the [`State`](crate::State).
pub(crate) struct ChannelState<M: RawMutex> {
    chan: BlockingMutex<M, RefCell<Chan>>,
    /// `chan`'s mode is `Payload` (the modem's echo of a payload may come),
    /// stored under its lock at the end of every `Channel::with_mode`, read
    /// without it by the digester at every read (a load).
    payload: AtomicBool,
    /// Held by a handle for one command (until OK/ERROR), never longer.
    lock: Lock<M>,
    to_runner: Nudge<M>,
    to_client: Signal<M, ()>,
}

impl<M: RawMutex> ChannelState<M> {
    pub(crate) const fn new() -> Self {
        Self {
            chan: BlockingMutex::new(RefCell::new(Chan {
                phase: Phase::Idle,
                len: 0,
                overflow: false,
                abandoned: false,
                mode: Mode::Idle,
                prefix: [0; PREFIX],
                prefix_len: 0,
                read_form: false,
                armed_at: None,
                sent_at: None,
                owner: Owner::Nobody,
                answer: None,
                echo: Echo::Unknown,
                echo_expected: 0,
                echo_seen: 0,
                echo_probe: [0; ECHO_PROBE],
                echo_probe_len: 0,
                fence: Fence {
                    active: false,
                    half_line: false,
                    in_data_mode: false,
                    late_prompt: false,
                    since: 0,
                },
                fence_answers: 0,
                esc_wanted: false,
                force: false,
            })),
            payload: AtomicBool::new(false),
            lock: Lock::new(),
            to_runner: Nudge::new(),
            to_client: Signal::new(),
        }
    }
}

/// The line buffer, seen without its size. It is not under a blocking
/// mutex: whoever works on it (the handle writing its command line or a
/// payload chunk, the runner copying a chunk out, the digester appending an
/// information line, the handle parsing them) holds it as an embassy-sync
/// async mutex's guard, so no critical section is held while bytes are
/// written, encoded, copied or parsed, however long the line (the lock `M`
/// is taken only to take and give back the guard). The channel's phases
/// hand it from one to the next, so it is never contended: a `try_hold`
/// that finds it held is a broken handshake, and fails that one command.
pub(crate) trait LineBuffer<M: RawMutex>: LockedBy<M> {
    /// The buffer, if nobody holds it.
    fn try_hold(&self) -> Option<MappedMutexGuard<'_, M, [u8]>>;
}

impl<M: RawMutex, const N: usize> LineBuffer<M> for HeldMutex<M, [u8; N]> {
    fn try_hold(&self) -> Option<MappedMutexGuard<'_, M, [u8]>> {
        let held = self.try_lock().ok()?;
        Some(MutexGuard::map(held, |b| &mut b[..]))
    }
}

/// The channel, seen without the line buffer's size. `Copy`.
pub(crate) struct Channel<'a, M: RawMutex> {
    st: &'a ChannelState<M>,
    line: Part<'a, M, dyn LineBuffer<M> + 'a>,
}

impl<M: RawMutex> Clone for Channel<'_, M> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<M: RawMutex> Copy for Channel<'_, M> {}

/// A command line the runner took.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Job {
    pub timeout: Duration,
    pub data_mode: bool,
    pub len: usize,
    /// Written even when the fence before it gets no answer.
    pub force: bool,
    /// Told where the line went out (see [`Owner`]).
    pub owner: Owner,
}

/// What the runner waited for: the modem's answer, or (after the prompt)
/// the handle's next payload step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    Answer(Answer),
    Data(DataStep),
}

/// What the handle gave the runner in data mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DataStep {
    Chunk { len: usize, last: bool },
    Abort,
}

/// A command line's writer: puts the line into the line buffer and returns
/// its length (0: it does not fit, or it is refused; nothing is sent). A
/// command is one (its `AtatCmd::write`), a closure one through
/// [`WriteWith`]: a trait object of one method, not a closure's three.
pub(crate) trait WriteLine {
    fn write_line(&self, buf: &mut [u8]) -> usize;
}

impl<C: AtatCmd> WriteLine for C {
    fn write_line(&self, buf: &mut [u8]) -> usize {
        self.write(buf)
    }
}

/// A closure as a [`WriteLine`].
pub(crate) struct WriteWith<F>(pub F);

impl<F: Fn(&mut [u8]) -> usize> WriteLine for WriteWith<F> {
    fn write_line(&self, buf: &mut [u8]) -> usize {
        (self.0)(buf)
    }
}

/// Bytes a [`Source`] copies out at most per read: a message waiting in a
/// supervisor's outbox is read under the outbox's lock, this many bytes a
/// lock (with `CriticalSectionRawMutex`, this many bytes with interrupts
/// masked, whatever the message's size).
pub(crate) const CHUNK: usize = 32;

/// Where a publish's topic and payload are read from, each time they are
/// checked or a line or a data-mode chunk is written: one run of bytes, the
/// topic then the payload, copied out [`CHUNK`] bytes at a time (a message
/// waiting in a supervisor's outbox stays there; no copy of it is kept).
pub(crate) trait Source {
    /// The topic's length and the payload's, in bytes.
    fn lens(&self) -> (usize, usize);
    /// Copies the run's bytes from `off` into `out`, never past the end of
    /// the topic nor of the payload, at most [`CHUNK`] of them; returns how
    /// many (0 at the end).
    fn read(&self, off: usize, out: &mut [u8]) -> usize;
}

impl Source for (&str, &[u8]) {
    fn lens(&self) -> (usize, usize) {
        (self.0.len(), self.1.len())
    }

    fn read(&self, off: usize, out: &mut [u8]) -> usize {
        copy_part(self.0.as_bytes(), self.1, off, out)
    }
}

/// [`Source::read`] over a topic and a payload in place.
pub(crate) fn copy_part(topic: &[u8], payload: &[u8], off: usize, out: &mut [u8]) -> usize {
    let from = match off.checked_sub(topic.len()) {
        None => &topic[off..],
        Some(p) => payload.get(p..).unwrap_or_default(),
    };
    let n = from.len().min(out.len()).min(CHUNK);
    out[..n].copy_from_slice(&from[..n]);
    n
}

/// Runs `f` on the run's bytes `from..to` of `src`, [`CHUNK`] bytes at a
/// time; stops when `f` returns `false` or the source ends. Returns how many
/// bytes `f` was given.
pub(crate) fn each_chunk(
    src: &dyn Source,
    from: usize,
    to: usize,
    f: &mut dyn FnMut(&[u8]) -> bool,
) -> usize {
    let mut tmp = [0u8; CHUNK];
    let mut off = from;
    while off < to {
        let want = (to - off).min(CHUNK);
        let n = src.read(off, &mut tmp[..want]);
        if n == 0 {
            break;
        }
        off += n;
        if !f(&tmp[..n]) {
            break;
        }
    }
    off - from
}

/// Copies `src`'s topic into `buf` (the longest topic a check lets
/// through): `None` if it is longer, or not UTF-8 (never: a topic is stored
/// from a `&str`).
pub(crate) fn topic_of<'b>(src: &dyn Source, buf: &'b mut [u8]) -> Option<&'b str> {
    let (len, _) = src.lens();
    let dst = buf.get_mut(..len)?;
    // Read straight into the buffer (the source never gives more than
    // asked, nor past the topic's end).
    let mut at = 0;
    while let Some(out) = dst.get_mut(at..).filter(|o| !o.is_empty()) {
        let n = src.read(at, out);
        if n == 0 {
            break;
        }
        at += n;
    }
    core::str::from_utf8(dst.get(..at)?).ok()
}

/// A source's topic and payload, whole (tests).
#[cfg(test)]
pub(crate) fn read_all(src: &dyn Source) -> (std::string::String, std::vec::Vec<u8>) {
    let (t, p) = src.lens();
    let mut run = std::vec::Vec::new();
    each_chunk(src, 0, t + p, &mut |c| {
        run.extend_from_slice(c);
        true
    });
    let payload = run.split_off(t.min(run.len()));
    (std::string::String::from_utf8(run).unwrap(), payload)
}

/// A payload to send in data mode, in chunks through the line buffer
/// (hex-encoded if asked), then Ctrl+Z.
pub(crate) struct Payload<'p> {
    pub source: &'p dyn Source,
    pub hex: bool,
}

/// A command the modem answered `OK`: the channel stays held, with the
/// information lines in the line buffer, until this is dropped.
pub(crate) struct Answered<'c, 'a, M: RawMutex> {
    ch: &'c Channel<'a, M>,
    // Dropped in this order: the phase goes back to `Idle`, then the lock.
    _guard: Guard<'c, 'a, M>,
    _at: LockGuard<'c, M>,
}

impl<M: RawMutex> Answered<'_, '_, M> {
    /// Parses the information lines.
    pub(crate) fn parse<R>(self, f: impl FnOnce(&[u8]) -> Result<R, Error>) -> Result<R, Error> {
        let len = self.ch.with(|c| c.len);
        self.ch
            .with_line(|b| f(&b[..len]))
            .unwrap_or(Err(Error::UnexpectedResponse))
    }
}

/// Returns the channel to `Idle` (or leaves the rest to the runner) when the
/// handle's future ends in any way.
struct Guard<'c, 'a, M: RawMutex> {
    ch: &'c Channel<'a, M>,
}

impl<M: RawMutex> Drop for Guard<'_, '_, M> {
    fn drop(&mut self) {
        self.ch.release();
    }
}

impl<M: RawMutex> Channel<'_, M> {
    /// The handle's side of the command is over ([`Guard`]'s drop: one copy
    /// for every way an exchange or a data-mode publish ends).
    #[inline(never)]
    fn release(&self) {
        let wake = self.with(|c| match c.phase {
            Phase::Idle => false,
            // Never taken: withdrawn, nothing was sent.
            Phase::Queued { .. } | Phase::Done(_) => {
                c.phase = Phase::Idle;
                false
            }
            // The modem waits for payload: the runner cancels with ESC.
            Phase::WantData | Phase::DataQueued { .. } => {
                c.phase = Phase::Abort;
                c.abandoned = true;
                true
            }
            Phase::Busy | Phase::Abort => {
                c.abandoned = true;
                true
            }
        });
        if wake {
            self.st.to_runner.signal();
        }
    }
}

impl<'a, M: RawMutex> Channel<'a, M> {
    pub(crate) fn new(st: &'a ChannelState<M>, line: &'a (dyn LineBuffer<M> + 'a)) -> Self {
        Self {
            st,
            line: Part::new(line),
        }
    }

    /// Runs `f` on the channel's state, under its lock. `f` must not change
    /// the mode: that goes through [`with_mode`](Self::with_mode).
    fn with<R>(&self, f: impl FnOnce(&mut Chan) -> R) -> R {
        self.st.chan.lock(|c| f(&mut c.borrow_mut()))
    }

    /// [`with`](Self::with) for an `f` that may change the mode: the mode is
    /// mirrored in `payload` before the lock is given back.
    fn with_mode<R>(&self, f: impl FnOnce(&mut Chan) -> R) -> R {
        self.with(|c| {
            let r = f(c);
            self.st
                .payload
                .store(c.mode == Mode::Payload, Ordering::Relaxed);
            r
        })
    }

    /// Runs `f` on the line buffer, held (no critical section meanwhile);
    /// `None` if it is held elsewhere (never, while the phases are kept).
    fn with_line<R>(&self, f: impl FnOnce(&mut [u8]) -> R) -> Option<R> {
        let mut held = self.line.try_hold()?;
        Some(f(&mut held))
    }

    // ------------------------------------------------------------ handle side

    /// Puts a command line in the buffer and hands it to the runner.
    fn submit(
        &self,
        write: &dyn WriteLine,
        timeout: Duration,
        data_mode: bool,
        owner: Owner,
        force: bool,
    ) -> Result<(), Error> {
        let Some(n) = self.with_line(|b| write.write_line(b)) else {
            return Err(Error::UnexpectedResponse);
        };
        if n == 0 {
            return Err(Error::InvalidArgument {
                field: Field::Payload,
                problem: Problem::LineTooLong,
            });
        }
        self.with(|c| {
            c.len = n;
            c.overflow = false;
            c.abandoned = false;
            c.force = force;
            c.phase = Phase::Queued {
                timeout,
                data_mode,
                owner,
            };
        });
        self.st.to_runner.signal();
        Ok(())
    }

    /// Sends one command and parses its answer. `timeout` bounds the wait for
    /// `OK`/`ERROR` after the line was written; `slot` is the publish slot
    /// armed when the modem accepts the line. Only the parsing is generic:
    /// the exchange itself is one function for every command, so that each
    /// command type costs little flash.
    pub(crate) async fn command<C: AtatCmd>(
        &self,
        cmd: &C,
        timeout: Duration,
        slot: Option<u8>,
    ) -> Result<C::Response, Error> {
        // Parsed after the await, from the held line buffer: the response
        // (up to a kilobyte for some) is never kept across an await.
        self.exchange(cmd, timeout, slot)
            .await?
            .parse(|info| cmd.parse(Ok(info)).map_err(Error::from_own_parse))
    }

    /// Sends the line `write` puts in the buffer and waits for its final
    /// answer; on `OK`, the channel stays held (with the information lines)
    /// until the [`Answered`] is dropped. `slot`: the publish slot armed
    /// when the modem accepts the line.
    /// (A plain function: no state machine of its own around
    /// [`exchange_as`](Self::exchange_as)'s.)
    pub(crate) fn exchange<'s>(
        &'s self,
        write: &'s dyn WriteLine,
        timeout: Duration,
        slot: Option<u8>,
    ) -> impl Future<Output = Result<Answered<'s, 'a, M>, Error>> + 's {
        self.exchange_as(write, timeout, Owner::publish(slot), false)
    }

    /// [`exchange`](Self::exchange) for the line of `owner`, which is told
    /// where the line went out.
    pub(crate) fn exchange_for<'s>(
        &'s self,
        write: &'s dyn WriteLine,
        timeout: Duration,
        owner: Owner,
    ) -> impl Future<Output = Result<Answered<'s, 'a, M>, Error>> + 's {
        self.exchange_as(write, timeout, owner, false)
    }

    /// Like [`exchange_for`](Self::exchange_for); with `force`, the line goes
    /// out even if the modem does not answer the fence before it (its answer
    /// is then discarded as late: the outcome is a timeout). For `AT+QRST=1`
    /// to a modem that may still read commands while it answers none.
    pub(crate) fn exchange_as<'s>(
        &'s self,
        write: &'s dyn WriteLine,
        timeout: Duration,
        owner: Owner,
        force: bool,
    ) -> impl Future<Output = Result<Answered<'s, 'a, M>, Error>> + 's {
        self.send_line(write, timeout, owner, force, None)
    }

    /// The one state machine of every command line: sends the line `write`
    /// puts in the buffer and, with `payload` (a data-mode publish), the
    /// payload after the `>` prompt; waits for the final answer. On `OK`,
    /// the channel stays held (with the information lines) until the
    /// [`Answered`] is dropped. (A `poll_fn`, not an async fn: the AT lock's
    /// wait, then one wait for every phase, with no state machine of its
    /// own.)
    pub(crate) fn send_line<'s>(
        &'s self,
        write: &'s dyn WriteLine,
        timeout: Duration,
        owner: Owner,
        force: bool,
        payload: Option<Payload<'s>>,
    ) -> impl Future<Output = Result<Answered<'s, 'a, M>, Error>> + 's {
        // The AT lock's wait, made at the first poll (here, once, not
        // where each caller makes this future).
        let mut lock = None;
        // Once the AT lock is held: the guard that gives the channel back
        // (dropped first) and the lock.
        let mut held: Option<(Guard<'s, 'a, M>, LockGuard<'s, M>)> = None;
        let mut submitted = false;
        let mut off = 0;
        poll_fn(move |cx| {
            if held.is_none() {
                let lock = lock.get_or_insert_with(|| self.st.lock.lock());
                let at = ready!(Pin::new(lock).poll(cx));
                held = Some((Guard { ch: self }, at));
            }
            // One wait for every phase: the channel idle (then the line
            // goes in), the prompt (only for a data-mode line: a payload
            // chunk goes in), the final answer. Over: the guard and the
            // lock go with the answer, or are given back at once.
            loop {
                let phase = self.with(|c| c.phase);
                let r = match phase {
                    Phase::Idle if !submitted => {
                        let data_mode = payload.is_some();
                        match self.submit(write, timeout, data_mode, owner, force) {
                            Ok(()) => {
                                submitted = true;
                                continue;
                            }
                            Err(e) => Err(e),
                        }
                    }
                    Phase::Done(Outcome::Ok) if submitted => {
                        let Some((guard, at)) = held.take() else {
                            return Poll::Ready(Err(Error::UnexpectedResponse));
                        };
                        return Poll::Ready(Ok(Answered {
                            ch: self,
                            _guard: guard,
                            _at: at,
                        }));
                    }
                    Phase::Done(other) if submitted => Err(other.into_error()),
                    Phase::WantData if submitted && payload.is_some() => {
                        // The buffer held elsewhere: give up (the guard
                        // sends ESC).
                        match payload.as_ref().and_then(|p| self.fill(p, off)) {
                            Some((len, taken, last)) => {
                                off += taken;
                                self.with(|c| {
                                    c.len = len;
                                    c.phase = Phase::DataQueued { last };
                                });
                                self.st.to_runner.signal();
                                continue;
                            }
                            None => Err(Error::UnexpectedResponse),
                        }
                    }
                    _ => Ok(()),
                };
                if let Err(e) = r {
                    held = None;
                    return Poll::Ready(Err(e));
                }
                ready!(pin!(self.st.to_client.wait()).poll(cx));
            }
        })
    }

    /// Fills the line buffer with the payload's next chunk from `off`, read
    /// from the source a few bytes at a time: its length, the payload bytes
    /// it holds, and whether it is the last (ends with Ctrl+Z). `None`: the
    /// buffer is held elsewhere.
    fn fill(&self, payload: &Payload<'_>, off: usize) -> Option<(usize, usize, bool)> {
        let (start, plen) = payload.source.lens();
        self.with_line(|b| {
            let room = b.len() - 1; // a byte for Ctrl+Z
            let (mut len, mut taken) = (0, 0);
            let src = payload.source;
            let from = start + off;
            let to = start + plen.min(off + if payload.hex { room / 2 } else { room });
            each_chunk(src, from, to, &mut |c| {
                len += if payload.hex {
                    crate::hex::encode_into(c, &mut b[len..])
                } else {
                    b[len..len + c.len()].copy_from_slice(c);
                    c.len()
                };
                taken += c.len();
                true
            });
            let last = off + taken >= plen;
            if last {
                b[len] = 0x1a;
                len += 1;
            }
            (len, taken, last)
        })
    }

    // ------------------------------------------------------------ runner side

    /// Wakes the runner (the digester stored something it must act on).
    pub(crate) fn wake_runner(&self) {
        self.st.to_runner.signal();
    }

    /// Takes the runner's next job if there is one: a command line, or (with
    /// `Err`) an ESC a late prompt asked for. A taken line is `Busy`: the
    /// handle can no longer withdraw it. The runner waits with
    /// [`wait`](Self::wait) until there is one.
    pub(crate) fn take_job(&self) -> Option<Result<Job, ()>> {
        self.with(|c| {
            if c.esc_wanted {
                c.esc_wanted = false;
                return Some(Err(()));
            }
            if let Phase::Queued {
                timeout,
                data_mode,
                owner,
            } = c.phase
            {
                c.phase = Phase::Busy;
                c.owner = owner;
                return Some(Ok(Job {
                    timeout,
                    data_mode,
                    len: c.len,
                    force: c.force,
                    owner,
                }));
            }
            None
        })
    }

    /// Waits until the handles or the digester wake the runner.
    pub(crate) fn wait(&self) -> impl Future<Output = ()> + '_ {
        self.st.to_runner.wait()
    }

    /// An ESC a late prompt asked for, if any (taken).
    pub(crate) fn take_esc(&self) -> bool {
        self.with(|c| core::mem::replace(&mut c.esc_wanted, false))
    }

    /// The ESC a late prompt asked for went out: the modem left data mode.
    pub(crate) fn escaped(&self) {
        self.with(|c| c.fence.in_data_mode = false)
    }

    /// True when the channel must be fenced before the next line.
    pub(crate) fn fenced(&self) -> bool {
        self.with(|c| c.fence.active)
    }

    /// Starts the fence, whose probe goes out at stream position `rx_pos`:
    /// returns what the modem may hold (half line, data mode), and counts
    /// the final answers from now on.
    pub(crate) fn begin_fence(&self, rx_pos: u32) -> (bool, bool) {
        self.with_mode(|c| {
            c.mode = Mode::Fence;
            c.fence_answers = 0;
            c.fence.since = rx_pos;
            (c.fence.half_line, c.fence.in_data_mode)
        })
    }

    /// Final answers seen since [`begin_fence`](Self::begin_fence), or `None`
    /// when a reboot cleared the fence (nothing is owed any more).
    pub(crate) fn fence_answers(&self) -> Option<u16> {
        self.with(|c| c.fence.active.then_some(c.fence_answers))
    }

    /// The fence is done: the next line may go.
    pub(crate) fn end_fence(&self) {
        self.with_mode(|c| {
            c.fence = Fence::default();
            if c.mode == Mode::Fence {
                c.mode = Mode::Idle;
            }
        })
    }

    /// Tells the digester what the line just taken expects; its first byte
    /// goes out at stream position `rx_pos`.
    pub(crate) fn begin_line(&self, data_mode: bool, rx_pos: u32) {
        // Read from the line outside the channel's lock.
        let line_len = self.with(|c| c.len);
        let (prefix, len, read_form) = self
            .with_line(|b| command_prefix(&b[..line_len]))
            .unwrap_or(([0; PREFIX], 0, false));
        self.with_mode(|c| {
            c.prefix = prefix;
            c.prefix_len = len;
            c.read_form = read_form;
            c.mode = if data_mode {
                Mode::Prompt
            } else {
                Mode::Command
            };
            c.armed_at = None;
            c.sent_at = Some(rx_pos);
            c.answer = None;
            c.echo = Echo::Unknown;
            c.echo_expected = 0;
            c.echo_seen = 0;
            c.echo_probe_len = 0;
        })
    }

    /// Copies bytes `off..len` of the line buffer into `out` (as many as
    /// fit); returns the count, `None` if the buffer is held elsewhere.
    pub(crate) fn copy_out(&self, off: usize, len: usize, out: &mut [u8]) -> Option<usize> {
        let n = (len - off).min(out.len());
        self.with_line(|b| out[..n].copy_from_slice(&b[off..off + n]))?;
        Some(n)
    }

    /// The line (or the payload's last chunk) is about to leave: answers may
    /// count from stream position `rx_pos` on. The buffer may now take
    /// information lines.
    pub(crate) fn arm(&self, rx_pos: u32) {
        self.with(|c| {
            c.armed_at = Some(rx_pos);
            c.len = 0;
        })
    }

    /// The payload chunk about to be written (its bytes are `first` at the
    /// start of the payload): the echo to skip grows by `n`.
    pub(crate) fn echo_announce(&self, first: &[u8], n: usize) {
        self.with(|c| {
            if c.echo_expected == 0 {
                let k = first.len().min(ECHO_PROBE);
                c.echo_probe[..k].copy_from_slice(&first[..k]);
                c.echo_probe_len = k as u8;
            }
            c.echo_expected = c.echo_expected.saturating_add(n as u32);
        })
    }

    /// The modem's answer so far (level: it stays until the next line).
    pub(crate) fn answer(&self) -> Option<Answer> {
        self.with(|c| c.answer)
    }

    /// Waits until the digester wakes the runner, or `deadline`; `Err` on
    /// timeout. A plain fn returning the waiting future (no async fn's state
    /// machine around it).
    pub(crate) fn wait_wake(
        &self,
        deadline: Instant,
    ) -> impl Future<Output = Result<(), TimeoutError>> + '_ {
        with_deadline(deadline, self.st.to_runner.wait())
    }

    /// True if the handle of the command the runner holds went away before
    /// its line was written (the runner then drops it unsent).
    pub(crate) fn abandoned(&self) -> bool {
        self.with(|c| c.abandoned)
    }

    /// Waits until `f` gives a value: `f` is asked at once, then each time
    /// the runner is woken. The wait itself (a `poll_fn` over the runner's
    /// nudge), not an async fn looping around it: no state machine of its own.
    fn runner_until<'s, T>(
        &'s self,
        mut f: impl FnMut() -> Option<T> + 's,
    ) -> impl Future<Output = T> + 's {
        let mut nudge = self.st.to_runner.wait();
        poll_fn(move |cx| loop {
            if let Some(v) = f() {
                return Poll::Ready(v);
            }
            if Pin::new(&mut nudge).poll(cx).is_pending() {
                return Poll::Pending;
            }
            // Woken (the signal taken): look again, with a new wait.
            nudge = self.st.to_runner.wait();
        })
    }

    /// Waits until `deadline` for what the runner needs next: after the
    /// prompt (`data`), the handle's next payload step (taken); else the
    /// modem's answer. `Err` on timeout. One wait for both, awaited at one
    /// place.
    pub(crate) fn wait_step(
        &self,
        deadline: Instant,
        data: bool,
    ) -> impl Future<Output = Result<Step, TimeoutError>> + '_ {
        with_deadline(
            deadline,
            self.runner_until(move || {
                if data {
                    self.data_step().map(Step::Data)
                } else {
                    self.answer().map(Step::Answer)
                }
            }),
        )
    }

    /// After the prompt: the handle may fill the buffer (unless it is gone).
    /// Returns `false` if it is gone.
    pub(crate) fn want_data(&self) -> bool {
        let gone = self.with(|c| {
            if c.abandoned || c.phase == Phase::Abort {
                c.phase = Phase::Abort;
                true
            } else {
                c.phase = Phase::WantData;
                c.answer = None;
                false
            }
        });
        if !gone {
            self.st.to_client.signal(());
        }
        !gone
    }

    /// The handle's next payload step, if it gave one (taken).
    fn data_step(&self) -> Option<DataStep> {
        self.with(|c| match c.phase {
            Phase::DataQueued { last } => {
                c.phase = Phase::Busy;
                Some(DataStep::Chunk { len: c.len, last })
            }
            Phase::Abort => Some(DataStep::Abort),
            _ => None,
        })
    }

    /// Marks the payload ended with ESC: the modem's OK to it may count.
    pub(crate) fn arm_escape(&self, rx_pos: u32) {
        self.with_mode(|c| {
            c.mode = Mode::Payload;
            c.answer = None;
            c.armed_at = Some(rx_pos);
            c.owner = Owner::Nobody;
        })
    }

    /// The command failed, noticed at stream position `rx_pos`, in a way
    /// that may leave answers owed. Where it stopped says what: before its
    /// prompt, a late `>` may still come; after it, the modem may still wait
    /// in data mode.
    pub(crate) fn fail(&self, rx_pos: u32) {
        self.fence_after_failure(false, rx_pos)
    }

    /// Like [`fail`](Self::fail), after a write that stopped mid-line: the
    /// modem may hold half a line.
    pub(crate) fn fail_mid_line(&self, rx_pos: u32) {
        self.fence_after_failure(true, rx_pos)
    }

    fn fence_after_failure(&self, half_line: bool, rx_pos: u32) {
        self.with_mode(|c| {
            c.fence.active = true;
            c.fence.half_line |= half_line;
            c.fence.late_prompt |= c.mode == Mode::Prompt;
            c.fence.in_data_mode |= c.mode == Mode::Payload;
            c.fence.since = rx_pos;
            c.mode = Mode::Fence;
            c.armed_at = None;
        })
    }

    /// The command is over: the handle reads `outcome` (or, if it is gone,
    /// the channel is free at once).
    pub(crate) fn finish(&self, outcome: Outcome) {
        self.with_mode(|c| {
            c.owner = Owner::Nobody;
            c.sent_at = None;
            if c.mode != Mode::Fence {
                c.mode = Mode::Idle;
            }
            c.armed_at = None;
            let outcome = match outcome {
                Outcome::Ok if c.overflow => Outcome::Overflow,
                o => o,
            };
            if c.abandoned {
                c.abandoned = false;
                c.phase = Phase::Idle;
            } else {
                c.phase = Phase::Done(outcome);
            }
        });
        self.st.to_client.signal(());
    }

    // ------------------------------------------------------------ digester side

    /// False when no payload's echo can come now (the mode is not
    /// `Payload`), with no lock: the digester then needs no [`expect`](Self::expect)
    /// to go on with a frame under way. Only the runner's future changes
    /// the mode, and the digester runs in it.
    pub(crate) fn may_echo(&self) -> bool {
        self.st.payload.load(Ordering::Relaxed)
    }

    /// What may come now.
    pub(crate) fn expect(&self) -> Expect {
        self.with(|c| Expect {
            mode: c.mode,
            prefix: c.prefix,
            prefix_len: c.prefix_len,
            read_form: c.read_form,
            echo: c.echo,
            echo_left: c.echo_expected.saturating_sub(c.echo_seen),
        })
    }

    /// `OK`/`ERROR`/`+CME ERROR` at stream position `pos`. `Taken`: the
    /// command's answer; `Late`: an answer the fence discards; `Stray`:
    /// nobody's.
    pub(crate) fn on_final(&self, result: Result<(), ModemError>, pos: u32) -> Verdict {
        let v = self.with_mode(|c| {
            match c.mode {
                Mode::Command | Mode::Prompt | Mode::Payload if eligible(c.armed_at, pos) => {
                    // The modem took the publish: its result may come now.
                    let accepted = result.is_ok() && c.mode != Mode::Prompt;
                    let arm = match core::mem::replace(&mut c.owner, Owner::Nobody) {
                        Owner::Publish(k) if accepted => Some(k),
                        _ => None,
                    };
                    c.answer = Some(Answer::Final(result));
                    c.mode = Mode::Idle;
                    c.armed_at = None;
                    Verdict::Taken { arm }
                }
                Mode::Fence => {
                    c.fence_answers = c.fence_answers.saturating_add(1);
                    Verdict::Late
                }
                _ if c.fence.active => Verdict::Late,
                _ => Verdict::Stray,
            }
        });
        if v != Verdict::Stray {
            self.wake_runner();
        }
        v
    }

    /// A `>` at the start of a line, at stream position `pos`.
    pub(crate) fn on_prompt(&self, pos: u32) -> PromptVerdict {
        let v = self.with_mode(|c| {
            if c.mode == Mode::Prompt && eligible(c.armed_at, pos) {
                c.answer = Some(Answer::Prompt);
                c.mode = Mode::Payload;
                c.armed_at = None;
                PromptVerdict::Accepted
            } else if c.fence.active && c.fence.late_prompt {
                // The modem now waits in data mode, until the ESC reaches it.
                c.fence.late_prompt = false;
                c.fence.in_data_mode = true;
                c.esc_wanted = true;
                PromptVerdict::Late
            } else {
                PromptVerdict::Stray
            }
        });
        if v != PromptVerdict::Stray {
            self.wake_runner();
        }
        v
    }

    /// An information line at stream position `pos`: appended to the answer
    /// if the command in flight may have one now. Returns whether it was.
    pub(crate) fn on_info(&self, line: &[u8], pos: u32) -> bool {
        let at =
            self.with(|c| (c.mode == Mode::Command && eligible(c.armed_at, pos)).then_some(c.len));
        let Some(at) = at else {
            return false;
        };
        // Copied outside the channel's lock: only the digester appends, and
        // nobody else touches the buffer while the command waits for its
        // answer.
        let (len, overflow) = self
            .with_line(|buf| {
                let sep = if at == 0 { 0 } else { 2 };
                let end = at + sep + line.len();
                if end > buf.len() {
                    return (at, true);
                }
                if sep == 2 {
                    buf[at..at + 2].copy_from_slice(b"\r\n");
                }
                buf[at + sep..end].copy_from_slice(line);
                (end, false)
            })
            .unwrap_or((at, true));
        self.with(|c| {
            c.len = len;
            c.overflow |= overflow;
        });
        true
    }

    /// Decides whether the payload is echoed from the bytes that follow the
    /// prompt (`Echo::Unknown` only). `None`: not enough bytes yet.
    pub(crate) fn detect_echo(&self, bytes: &[u8]) -> Option<Echo> {
        self.with(|c| {
            let n = usize::from(c.echo_probe_len);
            if c.echo != Echo::Unknown || n == 0 {
                return Some(c.echo);
            }
            let k = n.min(bytes.len());
            let echo = if bytes[..k] != c.echo_probe[..k] {
                Echo::Off
            } else if k < n {
                return None;
            } else {
                Echo::On
            };
            c.echo = echo;
            Some(echo)
        })
    }

    /// `n` bytes of echo were skipped.
    pub(crate) fn echo_skipped(&self, n: usize) {
        self.with(|c| c.echo_seen = c.echo_seen.saturating_add(n as u32))
    }

    /// The echo did not come whole (a quiet gap): read lines from now on.
    pub(crate) fn echo_give_up(&self) {
        self.with(|c| c.echo = Echo::Off)
    }

    /// The modem restarted (a start-up line at stream position `pos`): what
    /// was out when that line came ends at once, the command in flight and
    /// the fence, and nothing they were owed will come. A line that went out
    /// after it reached the restarted modem, which answers it.
    pub(crate) fn on_reboot(&self, pos: u32) {
        self.with_mode(|c| {
            if c.fence.active && at_or_after(pos, c.fence.since) {
                c.fence = Fence::default();
                c.esc_wanted = false;
                if c.mode == Mode::Fence {
                    c.mode = Mode::Idle;
                }
            }
            let in_flight = matches!(
                c.phase,
                Phase::Busy | Phase::WantData | Phase::DataQueued { .. } | Phase::Abort
            );
            if in_flight && eligible(c.sent_at, pos) {
                c.answer = Some(Answer::Rebooted);
                c.mode = Mode::Idle;
                c.armed_at = None;
            }
        });
        self.wake_runner();
    }
}

#[cfg(test)]
impl<M: RawMutex> Channel<'_, M> {
    /// Puts `line` in flight as the runner would (taken, written, armed at
    /// stream position `rx_pos`), for the digester's unit tests.
    pub(crate) fn test_begin(&self, line: &[u8], data_mode: bool, rx_pos: u32) {
        self.with_line(|b| b[..line.len()].copy_from_slice(line))
            .expect("the line buffer is free");
        self.with(|c| {
            c.len = line.len();
            c.phase = Phase::Busy;
        });
        self.begin_line(data_mode, rx_pos);
        self.arm(rx_pos);
    }

    /// The information lines gathered so far.
    pub(crate) fn test_info(&self, f: &mut dyn FnMut(&[u8])) {
        let len = self.with(|c| c.len);
        self.with_line(|b| f(&b[..len]))
            .expect("the line buffer is free");
    }
}

/// How a final answer was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The command's answer; `arm`: the publish slot the modem accepted.
    Taken {
        arm: Option<u8>,
    },
    Late,
    Stray,
}

/// `AT+QMTCONN?\r` -> (`+QMTCONN`, read form). The prefix of the information
/// lines a command answers with.
pub(crate) fn command_prefix(line: &[u8]) -> ([u8; PREFIX], u8, bool) {
    let mut out = [0u8; PREFIX];
    let body = match line.get(..2) {
        Some(at) if at.eq_ignore_ascii_case(b"AT") => &line[2..],
        _ => return (out, 0, false),
    };
    let end = body
        .iter()
        .position(|&b| matches!(b, b'=' | b'?' | b'\r' | b'\n'))
        .unwrap_or(body.len());
    let read_form = body.get(end) == Some(&b'?');
    let name = &body[..end];
    if name.first() != Some(&b'+') || name.len() > out.len() {
        return (out, 0, read_form);
    }
    out[..name.len()].copy_from_slice(name);
    out[..name.len()].make_ascii_uppercase();
    (out, name.len() as u8, read_form)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_prefix_names_the_information_lines() {
        let (p, n, read) = command_prefix(b"AT+QMTCONN?\r");
        assert_eq!((&p[..n as usize], read), (&b"+QMTCONN"[..], true));
        let (p, n, read) = command_prefix(b"AT+QMTCFG=\"will\",0\r");
        assert_eq!((&p[..n as usize], read), (&b"+QMTCFG"[..], false));
        let (p, n, read) = command_prefix(b"AT+QMTOPEN=?\r");
        assert_eq!((&p[..n as usize], read), (&b"+QMTOPEN"[..], false));
        let (_, n, _) = command_prefix(b"ATE0\r");
        assert_eq!(n, 0);
        let (p, n, _) = command_prefix(b"at+cereg?\r\n");
        assert_eq!(&p[..n as usize], b"+CEREG");
    }

    #[test]
    fn an_answer_counts_only_from_the_armed_position_on_even_across_wrap() {
        assert!(!eligible(None, 5));
        assert!(!eligible(Some(100), 99));
        assert!(eligible(Some(100), 100) && eligible(Some(100), 101));
        assert!(eligible(Some(u32::MAX - 1), 3), "positions wrap");
        assert!(!eligible(Some(u32::MAX - 1), u32::MAX - 2));
    }
}

#[cfg(test)]
mod line_buffer_tests {
    //! The line buffer is worked on with no lock of `M` held: with the
    //! default `CriticalSectionRawMutex`, interrupts stay enabled while a
    //! command line is written (about 1,100 instructions on a Cortex-M3 for
    //! the longest) and while its answer is parsed.

    use core::cell::Cell;
    use core::future::Future;
    use core::pin::pin;
    use core::task::{Context, Poll, Waker};

    use embassy_sync::blocking_mutex::raw::NoopRawMutex;

    use super::*;

    std::thread_local! {
        /// How deep the thread is inside `Depth::lock` now.
        static DEPTH: Cell<u32> = const { Cell::new(0) };
    }

    fn depth() -> u32 {
        DEPTH.with(Cell::get)
    }

    /// `NoopRawMutex` that counts how deep the thread is inside it.
    struct Depth(NoopRawMutex);

    // SAFETY: every lock is `NoopRawMutex`'s, which is sound for the same
    // reason it is: it is neither `Send` nor `Sync` (so is `Depth`, which
    // holds one), so all its users are on one thread, where the closures
    // run one after the other. The counter is the thread's own.
    #[allow(unsafe_code)]
    unsafe impl RawMutex for Depth {
        const INIT: Self = Depth(NoopRawMutex::new());
        fn lock<R>(&self, f: impl FnOnce() -> R) -> R {
            DEPTH.with(|d| d.set(d.get() + 1));
            let r = self.0.lock(f);
            DEPTH.with(|d| d.set(d.get() - 1));
            r
        }
    }

    fn poll<F: Future>(f: core::pin::Pin<&mut F>) -> Poll<F::Output> {
        f.poll(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn a_command_line_is_written_and_its_answer_parsed_with_no_lock_held() {
        let st = ChannelState::<Depth>::new();
        let line = HeldMutex::<Depth, [u8; 64]>::new([0; 64]);
        let ch = Channel::new(&st, &line);
        let written_at = Cell::new(None);
        let write = |b: &mut [u8]| {
            written_at.set(Some(depth()));
            b[..12].copy_from_slice(b"AT+QMTCONN?\r");
            12
        };
        let write = WriteWith(write);
        let mut handle = pin!(ch.exchange(&write, Duration::from_secs(1), None));
        assert!(poll(handle.as_mut()).is_pending());
        assert_eq!(
            written_at.get(),
            Some(0),
            "the line is written with no lock held"
        );

        // The runner takes the line, sends it, and the modem answers.
        let Some(Ok(job)) = ch.take_job() else {
            panic!("the runner gets the line");
        };
        ch.begin_line(job.data_mode, 0);
        let mut out = [0u8; 64];
        assert_eq!(ch.copy_out(0, job.len, &mut out), Some(12));
        assert_eq!(&out[..12], b"AT+QMTCONN?\r");
        ch.arm(0);
        assert!(ch.on_info(b"+QMTCONN: 0,3", 1));
        assert!(matches!(ch.on_final(Ok(()), 16), Verdict::Taken { .. }));
        ch.finish(Outcome::Ok);

        let Poll::Ready(Ok(answered)) = poll(handle.as_mut()) else {
            panic!("the handle gets the answer");
        };
        let parsed_at = Cell::new(None);
        let info = answered.parse(|info| {
            parsed_at.set(Some(depth()));
            Ok(std::vec::Vec::from(info))
        });
        assert_eq!(info.as_deref(), Ok(&b"+QMTCONN: 0,3"[..]));
        assert_eq!(
            parsed_at.get(),
            Some(0),
            "the answer is parsed with no lock held"
        );
    }
}
