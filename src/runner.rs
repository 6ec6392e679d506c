//! The one future the user spawns: reads the modem through atat's ingress and
//! the crate's digester, and writes every command the handles submit.

use atat::{AtatIngress, Ingress};
use embassy_futures::select::{select, Either};
use embassy_time::{with_timeout, Duration};
use embedded_io_async::{Read, Write};

use crate::digest::Bc26Digester;
use crate::error::{ModemError, Stage};
use crate::fmt::Bytes;
use crate::state::{Core, NoUrc, Outcome, Phase, RxState, RES_SLOT};
use atat::ResponseSlot;

const ESC: u8 = 0x1b;
/// Bytes copied from the line buffer per UART write.
const CHUNK: usize = 64;

/// Drives the modem: spawn [`Runner::run`] as a task (it never returns).
/// Everything the handles do goes through it.
pub struct Runner<'a, R: Read, W: Write> {
    reader: R,
    writer: W,
    ingress: Ingress<'a, Bc26Digester<'a>, NoUrc, RES_SLOT, 1, 1>,
    res_slot: &'a ResponseSlot<RES_SLOT>,
    core: Core<'a>,
}

/// What the modem answered after a line or payload.
enum Answer {
    Prompt,
    Final(Result<(), ModemError>),
    Timeout,
}

impl<'a, R: Read, W: Write> Runner<'a, R, W> {
    pub(crate) fn new(
        reader: R,
        writer: W,
        ingress: Ingress<'a, Bc26Digester<'a>, NoUrc, RES_SLOT, 1, 1>,
        res_slot: &'a ResponseSlot<RES_SLOT>,
        core: Core<'a>,
    ) -> Self {
        Self {
            reader,
            writer,
            ingress,
            res_slot,
            core,
        }
    }

    /// Runs the driver forever: receive, route, transmit.
    pub async fn run(self) -> ! {
        let Runner {
            reader,
            writer,
            mut ingress,
            res_slot,
            core,
        } = self;
        let mut tx = Tx {
            writer,
            res_slot,
            core,
        };
        match select(ingress.read_from(reader), tx.run()).await {
            Either::First(never) | Either::Second(never) => never,
        }
    }
}

impl<R: Read, W: Write> core::fmt::Debug for Runner<'_, R, W> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Runner")
    }
}

#[cfg(feature = "defmt")]
impl<R: Read, W: Write> defmt::Format for Runner<'_, R, W> {
    fn format(&self, f: defmt::Formatter) {
        defmt::write!(f, "Runner")
    }
}

struct Tx<'a, W: Write> {
    writer: W,
    res_slot: &'a ResponseSlot<RES_SLOT>,
    core: Core<'a>,
}

impl<W: Write> Tx<'_, W> {
    async fn run(&mut self) -> ! {
        loop {
            let (timeout, data_mode) = self.next_line().await;
            let outcome = self.transact(timeout, data_mode).await;
            self.core.sh.update_rx(|rx| {
                rx.state = RxState::Idle;
                rx.sent = false;
            });
            self.finish(outcome);
        }
    }

    /// Waits for a handle's command line and takes it.
    async fn next_line(&mut self) -> (Duration, bool) {
        loop {
            let line = self.core.sh.with_chan(|c| match c.phase {
                Phase::Line { timeout, data_mode } => {
                    c.phase = Phase::Busy;
                    Some((timeout, data_mode))
                }
                _ => None,
            });
            if let Some(l) = line {
                return l;
            }
            self.core.sh.to_runner.wait().await;
        }
    }

    async fn transact(&mut self, timeout: Duration, data_mode: bool) -> Outcome {
        let len = self.core.sh.with_chan(|c| c.len);
        self.begin_rx(len, data_mode);
        self.res_slot.reset();
        if self.write_buffer(len).await.is_err() {
            return Outcome::Write;
        }
        self.core.sh.with_chan(|c| c.len = 0);
        self.core.sh.update_rx(|rx| rx.sent = true);

        match self.answer(timeout).await {
            Answer::Final(r) => self.final_outcome(r),
            Answer::Timeout => Outcome::Timeout(if data_mode {
                Stage::Prompt
            } else {
                Stage::Response
            }),
            Answer::Prompt if !data_mode => {
                // The digester only reports a prompt when one is awaited.
                Outcome::Timeout(Stage::Response)
            }
            Answer::Prompt => self.data_mode(timeout).await,
        }
    }

    /// After the prompt: payload chunks from the handle, then Ctrl+Z; or ESC
    /// if the handle went away.
    async fn data_mode(&mut self, timeout: Duration) -> Outcome {
        loop {
            let step = self.core.sh.with_chan(|c| {
                if c.abandoned {
                    c.phase = Phase::Abort;
                } else if c.phase == Phase::Busy {
                    c.phase = Phase::WantData;
                }
                c.phase
            });
            if step == Phase::WantData {
                self.core.sh.to_client.signal(());
            }
            let step = loop {
                let p = self.core.sh.with_chan(|c| c.phase);
                if matches!(p, Phase::Data { .. } | Phase::Abort) {
                    break p;
                }
                self.core.sh.to_runner.wait().await;
            };
            match step {
                Phase::Data { last } => {
                    let len = self.core.sh.with_chan(|c| {
                        c.phase = Phase::Busy;
                        c.len
                    });
                    if self.write_buffer(len).await.is_err() {
                        // Whatever reached the modem, leave data mode.
                        let _ = self.write_bytes(&[ESC]).await;
                        let _ = self.answer(timeout).await;
                        return Outcome::Write;
                    }
                    self.core.sh.with_chan(|c| c.len = 0);
                    if last {
                        break;
                    }
                }
                _ => {
                    debug!("data-mode publish abandoned: ESC");
                    let _ = self.write_bytes(&[ESC]).await;
                    let _ = self.answer(timeout).await;
                    return Outcome::Timeout(Stage::Response);
                }
            }
        }
        match self.answer(timeout).await {
            Answer::Final(r) => self.final_outcome(r),
            _ => Outcome::Timeout(Stage::Response),
        }
    }

    fn final_outcome(&self, r: Result<(), ModemError>) -> Outcome {
        match r {
            Err(e) => Outcome::Modem(e),
            Ok(()) if self.core.sh.with_chan(|c| c.overflow) => Outcome::Overflow,
            Ok(()) => Outcome::Ok,
        }
    }

    /// Waits for OK/ERROR or the prompt.
    async fn answer(&mut self, timeout: Duration) -> Answer {
        match with_timeout(timeout, self.res_slot.get()).await {
            Ok(guard) => {
                let prompt = matches!(&*guard, atat::Response::Prompt(_));
                drop(guard);
                if prompt {
                    Answer::Prompt
                } else {
                    Answer::Final(self.core.sh.rx().result)
                }
            }
            Err(_) => Answer::Timeout,
        }
    }

    /// Tells the digester what to expect from this command line.
    fn begin_rx(&self, len: usize, data_mode: bool) {
        let (mut prefix, mut prefix_len, mut read_form) = ([0; 16], 0, false);
        self.core.with_line(|b| {
            let line = &b[..len];
            trace!("tx {:?}", Bytes(&line[..line.len().min(12)]));
            (prefix, prefix_len, read_form) = command_prefix(line);
        });
        self.core.sh.update_rx(|rx| {
            rx.state = if data_mode {
                RxState::AwaitPrompt
            } else {
                RxState::Command
            };
            rx.prefix = prefix;
            rx.prefix_len = prefix_len;
            rx.read_form = read_form;
            rx.sent = false;
            rx.result = Ok(());
        });
    }

    fn finish(&self, outcome: Outcome) {
        let sh = self.core.sh;
        sh.with_chan(|c| {
            if c.abandoned {
                c.abandoned = false;
                c.phase = Phase::Idle;
            } else {
                c.phase = Phase::Done(outcome);
            }
        });
        sh.to_client.signal(());
    }

    /// Writes `len` bytes of the line buffer, a chunk at a time (the buffer
    /// cannot stay borrowed across an await).
    async fn write_buffer(&mut self, len: usize) -> Result<(), ()> {
        let mut off = 0;
        let tx_timeout = self.core.config().tx_timeout;
        let work = async {
            while off < len {
                let mut chunk = [0u8; CHUNK];
                let n = (len - off).min(CHUNK);
                self.core
                    .with_line(|b| chunk[..n].copy_from_slice(&b[off..off + n]));
                self.writer.write_all(&chunk[..n]).await.map_err(drop)?;
                off += n;
            }
            self.writer.flush().await.map_err(drop)
        };
        with_timeout(tx_timeout, work).await.map_err(drop)?
    }

    async fn write_bytes(&mut self, bytes: &[u8]) -> Result<(), ()> {
        let tx_timeout = self.core.config().tx_timeout;
        let work = async {
            self.writer.write_all(bytes).await.map_err(drop)?;
            self.writer.flush().await.map_err(drop)
        };
        with_timeout(tx_timeout, work).await.map_err(drop)?
    }
}

/// `AT+QMTCONN?\r` -> (`+QMTCONN`, read form). The prefix of the information
/// lines a command answers with.
pub(crate) fn command_prefix(line: &[u8]) -> ([u8; 16], u8, bool) {
    let mut out = [0u8; 16];
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
    for b in &mut out[..name.len()] {
        b.make_ascii_uppercase();
    }
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
}
