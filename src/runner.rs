//! The one future the user spawns. Its receive side owns the read loop
//! (atat's `Ingress` buffer and the crate's digester), its transmit side
//! writes every command the handles submit and sees it through.

use atat::{AtatIngress, Ingress};
use embassy_futures::select::{select, Either};
use embassy_time::{with_timeout, Instant, Timer};
use embedded_io_async::{Read, Write};

use crate::channel::{Answer, DataStep, Job, Outcome};
use crate::digest::Bc26Digester;
use crate::error::Stage;
use crate::state::{Core, NoUrc, RES_SLOT};
use crate::stats::bump;
use crate::sync::{CriticalSectionRawMutex, RawMutex};

const ESC: u8 = 0x1b;
/// Bytes copied from the line buffer per UART write.
const CHUNK: usize = 64;

type Ing<'a, M> = Ingress<'a, Bc26Digester<'a, M>, NoUrc, RES_SLOT, 1, 1>;

/// Drives the modem: spawn [`Runner::run`] as a task (it never returns).
/// Everything the handles do goes through it.
///
/// The reader's `read` must be cancel-safe (a read dropped before it
/// completes loses no byte), as embassy's buffered UARTs are: the runner
/// stops a read when the modem has been quiet for `Config::quiet_gap` with an
/// incomplete frame held.
pub struct Runner<'a, R: Read, W: Write, M: RawMutex = CriticalSectionRawMutex> {
    reader: R,
    writer: W,
    ingress: Ing<'a, M>,
    capacity: usize,
    core: Core<'a, M>,
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
        } = self;
        let mut rx = Rx {
            reader,
            ingress,
            capacity,
            core,
        };
        let mut tx = Tx { writer, core };
        match select(rx.run(), tx.run()).await {
            Either::First(never) | Either::Second(never) => never,
        }
    }
}

impl<R: Read, W: Write, M: RawMutex> core::fmt::Debug for Runner<'_, R, W, M> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Runner")
    }
}

#[cfg(feature = "defmt")]
impl<R: Read, W: Write, M: RawMutex> defmt::Format for Runner<'_, R, W, M> {
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
        loop {
            let buf = self.ingress.write_buf();
            let held = self.capacity - buf.len();
            let read = if held > 0 {
                // Bytes are held: read until the modem has been quiet a gap.
                let quiet = Timer::at(self.core.rx.last() + gap);
                match select(self.reader.read(buf), quiet).await {
                    Either::First(r) => Some(r),
                    Either::Second(()) => None,
                }
            } else {
                Some(self.reader.read(buf).await)
            };
            match read {
                Some(Ok(n)) if n > 0 => {
                    self.core.rx.received(n);
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

/// The transmit side.
struct Tx<'a, W: Write, M: RawMutex> {
    writer: W,
    core: Core<'a, M>,
}

impl<W: Write, M: RawMutex> Tx<'_, W, M> {
    async fn run(&mut self) -> ! {
        loop {
            match self.core.channel.next_job().await {
                Ok(job) => {
                    let outcome = self.transact(job).await;
                    self.core.channel.finish(outcome);
                }
                // A late prompt after a failure: the modem waits in data
                // mode. Cancel at once (its OK is a late answer).
                Err(()) => {
                    let _ = self.write(&[ESC]).await;
                }
            }
        }
    }

    async fn transact(&mut self, job: Job) -> Outcome {
        let ch = self.core.channel;
        if ch.fenced() && !self.fence(job.timeout).await && !job.force {
            // The modem does not answer: the line never went out.
            return Outcome::Timeout(Stage::Response);
        }
        if ch.abandoned() {
            // The handle went away while the channel was fenced: not sent.
            return Outcome::Timeout(Stage::Response);
        }
        ch.begin_line(job.data_mode);
        if self.write_line(job.len).await.is_err() {
            bump!(self.core.stats, write_errors);
            ch.fail(job.data_mode, true);
            return Outcome::Write;
        }
        let deadline = Instant::now() + job.timeout;
        match ch.wait_answer(deadline).await {
            None => {
                ch.fail(job.data_mode, false);
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
                ch.copy_out(0, echoed, &mut probe)
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
                    ch.fail(false, true);
                    return Outcome::Rebooted;
                }
                Err(Stop::Failed) => {
                    bump!(self.core.stats, write_errors);
                    // Whatever reached the modem, leave data mode.
                    let _ = self.write(&[ESC]).await;
                    ch.fail(true, false);
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
                ch.fail(true, false);
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
            ch.fail(true, false);
            return Outcome::Write;
        }
        match ch.wait_answer(Instant::now() + timeout).await {
            Some(Answer::Rebooted) => Outcome::Rebooted,
            Some(_) => Outcome::Timeout(Stage::Response),
            None => {
                ch.fail(true, false);
                Outcome::Timeout(Stage::Response)
            }
        }
    }

    /// Re-synchronises after a failure: ends a half line, leaves data mode if
    /// the modem may be in it, sends a bare `AT` and waits for its answer,
    /// then until the modem has been quiet for `Config::quiet_gap`. The modem
    /// answers in order, so every late answer of the failed command comes
    /// before the probe's (and is discarded by the channel). `false`: the
    /// modem did not answer within `timeout`.
    async fn fence(&mut self, timeout: embassy_time::Duration) -> bool {
        let ch = self.core.channel;
        bump!(self.core.stats, fences);
        let (half_line, prompt) = ch.begin_fence();
        let mut probe = [0u8; 5];
        let mut n = 0;
        if prompt {
            probe[n] = ESC;
            n += 1;
        }
        if half_line {
            probe[n] = b'\r';
            n += 1;
        }
        probe[n..n + 3].copy_from_slice(b"AT\r");
        n += 3;
        debug!("fence: re-synchronising with the modem");
        if self.write(&probe[..n]).await.is_err() {
            bump!(self.core.stats, write_errors);
            return false;
        }
        let deadline = Instant::now() + timeout;
        loop {
            match ch.fence_answers() {
                // A restart cleared the fence: nothing is owed any more.
                None => return true,
                Some(n) if n > 0 => break,
                Some(_) => {}
            }
            if ch.take_esc() && self.write(&[ESC]).await.is_err() {
                return false;
            }
            if !ch.wait_wake(deadline).await {
                return false;
            }
        }
        loop {
            let quiet_at = self.core.rx.last() + self.core.config.quiet_gap;
            if Instant::now() >= quiet_at {
                break;
            }
            Timer::at(quiet_at).await;
            if ch.take_esc() && self.write(&[ESC]).await.is_err() {
                return false;
            }
        }
        ch.end_fence();
        true
    }

    /// Writes the command line in the line buffer, arming the command just
    /// before the chunk that ends the line.
    async fn write_line(&mut self, len: usize) -> Result<(), ()> {
        let core = self.core;
        let writer = &mut self.writer;
        let work = async {
            let mut off = 0;
            while off < len {
                let mut chunk = [0u8; CHUNK];
                let n = core.channel.copy_out(off, len, &mut chunk);
                if off + n == len {
                    core.channel.arm(core.rx.position());
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
                let n = core.channel.copy_out(off, len, &mut chunk);
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
