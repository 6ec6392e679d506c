//! The AT channel, handle side: one command at a time, held only until the
//! command's `OK`/`ERROR`.
//!
//! A handle writes its command line into the shared line buffer and hands it
//! to the runner, which owns the UART writer and sees the command through to
//! its final response even if the handle's future is dropped. So a dropped
//! future never leaves half a line on the wire, a response attributed to the
//! wrong command, or the modem in data mode.

use atat::AtatCmd;
use embassy_time::Duration;

use crate::error::{Error, Field, Problem};
use crate::state::{Core, Outcome, Phase};

/// Returns the channel to `Idle` (or tells the runner to clean up) when the
/// handle's future ends in any way.
struct ChanGuard<'c, 'a> {
    core: &'c Core<'a>,
}

impl Drop for ChanGuard<'_, '_> {
    fn drop(&mut self) {
        let sh = self.core.sh;
        let wake_runner = sh.with_chan(|chan| match chan.phase {
            Phase::Idle => false,
            Phase::Line { .. } => {
                // Never written: take it back.
                chan.phase = Phase::Idle;
                false
            }
            Phase::Done(_) => {
                chan.phase = Phase::Idle;
                false
            }
            Phase::WantData => {
                // The modem waits for payload: the runner cancels with ESC
                // and nobody reads the outcome.
                chan.phase = Phase::Abort;
                chan.abandoned = true;
                true
            }
            Phase::Busy | Phase::Data { .. } | Phase::Abort => {
                chan.abandoned = true;
                true
            }
        });
        if wake_runner {
            sh.to_runner.signal(());
        }
    }
}

/// How a payload goes out in data mode.
pub(crate) struct Payload<'p> {
    pub bytes: &'p [u8],
    pub hex: bool,
}

impl<'a> Core<'a> {
    /// Waits until the phase satisfies `done`, returning it.
    async fn wait_phase(&self, done: impl Fn(&Phase) -> bool) -> Phase {
        loop {
            let phase = self.sh.with_chan(|c| c.phase);
            if done(&phase) {
                return phase;
            }
            self.sh.to_client.wait().await;
        }
    }

    /// Puts a command line in the buffer and hands it to the runner.
    async fn submit<C: AtatCmd>(
        &self,
        cmd: &C,
        timeout: Duration,
        data_mode: bool,
    ) -> Result<(), Error> {
        self.wait_phase(|p| *p == Phase::Idle).await;
        let mut n = 0;
        self.with_line(|b| n = cmd.write(b));
        if n == 0 {
            return Err(Error::InvalidArgument {
                field: Field::Payload,
                problem: Problem::LineTooLong,
            });
        }
        self.sh.with_chan(|c| {
            c.len = n;
            c.overflow = false;
            c.abandoned = false;
            c.phase = Phase::Line { timeout, data_mode };
        });
        self.sh.to_runner.signal(());
        Ok(())
    }

    /// Sends one command and parses its answer. `timeout` bounds the wait for
    /// `OK`/`ERROR` after the line was written.
    pub(crate) async fn command<C: AtatCmd>(
        &self,
        cmd: &C,
        timeout: Duration,
    ) -> Result<C::Response, Error> {
        let _at = self.sh.at_lock.lock().await;
        let _guard = ChanGuard { core: self };
        self.submit(cmd, timeout, false).await?;
        let phase = self.wait_phase(|p| matches!(p, Phase::Done(_))).await;
        let Phase::Done(outcome) = phase else {
            return Err(Error::UnexpectedResponse);
        };
        match outcome {
            Outcome::Ok => {
                let len = self.sh.with_chan(|c| c.len);
                let mut parsed = Err(Error::UnexpectedResponse);
                self.with_line(|b| parsed = cmd.parse(Ok(&b[..len])).map_err(Error::from));
                parsed
            }
            other => Err(outcome_error(other)),
        }
    }

    /// Sends a data-mode publish line, then the payload after the `>` prompt,
    /// in chunks through the line buffer (hex-encoded if asked), then Ctrl+Z.
    pub(crate) async fn data_mode<C: AtatCmd>(
        &self,
        cmd: &C,
        payload: Payload<'_>,
    ) -> Result<(), Error> {
        let timeout = self.config().command_timeout;
        let _at = self.sh.at_lock.lock().await;
        let _guard = ChanGuard { core: self };
        self.submit(cmd, timeout, true).await?;
        let mut rest = payload.bytes;
        loop {
            let phase = self
                .wait_phase(|p| matches!(p, Phase::Done(_) | Phase::WantData))
                .await;
            match phase {
                Phase::Done(Outcome::Ok) => return Ok(()),
                Phase::Done(other) => return Err(outcome_error(other)),
                _ => {}
            }
            // Fill the buffer with the next chunk.
            let (mut taken, mut last) = (0, false);
            self.with_line(|b| {
                let room = b.len() - 1; // keep a byte for Ctrl+Z
                let (take, len) = if payload.hex {
                    let take = rest.len().min(room / 2);
                    (take, crate::hex::encode_into(&rest[..take], b))
                } else {
                    let take = rest.len().min(room);
                    b[..take].copy_from_slice(&rest[..take]);
                    (take, take)
                };
                let is_last = take == rest.len();
                let mut len = len;
                if is_last {
                    b[len] = 0x1a;
                    len += 1;
                }
                self.sh.with_chan(|c| c.len = len);
                (taken, last) = (take, is_last);
            });
            rest = &rest[taken..];
            self.sh.with_chan(|c| c.phase = Phase::Data { last });
            self.sh.to_runner.signal(());
        }
    }
}

pub(crate) fn outcome_error(o: Outcome) -> Error {
    match o {
        Outcome::Ok => Error::UnexpectedResponse,
        Outcome::Modem(e) => Error::Modem(e),
        Outcome::Timeout(s) => Error::Timeout(s),
        Outcome::Write => Error::Write,
        Outcome::Overflow => Error::UnexpectedResponse,
    }
}
