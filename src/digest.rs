//! Framing: the digester atat's `Ingress` runs on every byte from the modem.
//! It cuts the stream into what the modem meant (lines, the `>` prompt,
//! command echo, the data-mode echo of a payload, `+QMTRECV` frames) and
//! hands each piece to the AT channel (answers) or the router (everything
//! else). It never awaits.
//!
//! It knows what the command in flight expects (the channel tells it), so it
//! can tell:
//! - a read response (`+QMTCONN: 0,3` to `AT+QMTCONN?`) from a deferred result
//!   of the same prefix (`+QMTCONN: 0,0,0`);
//! - the `>` prompt (only while a data-mode publish waits for one, and only at
//!   the start of a line) from a `>` inside a payload;
//! - information lines from URCs that arrive between them and `OK`;
//! - the modem's echo of a data-mode payload (skipped byte for byte, so a
//!   payload holding `OK` or `+QMTPUB: ...` lines is never read as one).
//!
//! Every byte of a long `+QMTRECV` is looked at once, however the reads cut
//! it, and one call consumes every complete piece (atat's `Ingress` then
//! moves the rest to the front once, not once per line).

use atat::{DigestResult, Digester};

use crate::channel::{Echo, Mode, PromptVerdict, Verdict};
use crate::error::ModemError;
use crate::fmt::Bytes;
use crate::router;
use crate::state::{bump, Core};
use crate::types::{limits, ClientId};
use crate::urc::{self, recv_end, recv_head, Frame, RecvHead, RECV_PREFIX};

/// Lines a modem sends when it starts, or when it powers down: its MQTT
/// state is gone either way.
const RESTART_LINES: [&[u8]; 5] = [
    b"RDY",
    b"NORMAL POWER DOWN",
    b"POWER DOWN",
    b"UNDER-VOLTAGE POWER DOWN",
    b"OVER-VOLTAGE POWER DOWN",
];

/// Most wire bytes a `+QMTRECV` payload may have (hex digits of 1024 bytes).
const RECV_WIRE_MAX: usize = 2 * limits::RECV_PAYLOAD;

/// What is known of the incomplete piece at the head of the buffer, so that
/// the next call goes on where this one stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Held {
    Nothing,
    /// A line without its end yet; bytes before `scanned` hold no LF.
    Line {
        scanned: usize,
    },
    /// A `+QMTRECV` frame, parsed up to its payload.
    Recv {
        head: RecvHead,
        scanned: usize,
    },
    /// A broken line to drop when its end comes.
    Skip {
        scanned: usize,
    },
}

pub(crate) struct Bc26Digester<'a> {
    core: Core<'a>,
    capacity: usize,
    held: Held,
}

impl<'a> Bc26Digester<'a> {
    pub(crate) fn new(core: Core<'a>, capacity: usize) -> Self {
        Self {
            core,
            capacity,
            held: Held::Nothing,
        }
    }

    /// The end of the first line of `b` (just past its LF), searching from
    /// `from`.
    fn line_end(b: &[u8], from: usize) -> Option<usize> {
        memchr::memchr(b'\n', &b[from.min(b.len())..]).map(|i| from + i + 1)
    }

    /// One piece at the start of `b` (stream position `pos`): `Some(n)` bytes
    /// consumed (n > 0), or `None` when more bytes are needed.
    fn step(&mut self, b: &[u8], pos: u32) -> Option<usize> {
        let e = self.core.channel.expect();

        // The modem's echo of the payload going out in data mode.
        if e.mode == Mode::Payload && e.echo_left > 0 && e.echo != Echo::Off {
            let echo = match e.echo {
                Echo::Unknown => self.core.channel.detect_echo(b)?,
                other => other,
            };
            if echo == Echo::On {
                let n = b.len().min(e.echo_left as usize);
                self.core.channel.echo_skipped(n);
                return Some(n);
            }
        }

        let ws = b
            .iter()
            .position(|c| !matches!(c, b'\r' | b'\n' | b' '))
            .unwrap_or(b.len());
        if ws > 0 {
            return Some(ws);
        }

        // The data-mode prompt: `>` at the start of a line.
        if b[0] == b'>' && b.get(1).is_none_or(|&c| c == b' ') {
            match self.core.channel.on_prompt(pos) {
                PromptVerdict::Accepted => trace!("prompt"),
                PromptVerdict::Late => {
                    warn!("late prompt: ESC");
                    bump!(self.core.stats, late_answers);
                }
                PromptVerdict::Stray => bump!(self.core.stats, stray_responses),
            }
            return Some(1 + usize::from(b.get(1) == Some(&b' ')));
        }

        // Command echo (ATE1): "AT...\r", only while a command is out.
        if e.busy() && matches!(b[0], b'A' | b'a') {
            if b.len() < 2 {
                return None;
            }
            if matches!(b[1], b'T' | b't') {
                return match memchr::memchr(b'\r', b) {
                    Some(i) => Some(i + 1),
                    None => {
                        self.held = Held::Line { scanned: b.len() };
                        None
                    }
                };
            }
        }

        // A line already known to be broken: drop it when its end comes.
        if let Held::Skip { scanned } = self.held {
            return match Self::line_end(b, scanned) {
                Some(end) => Some(end),
                None => {
                    self.held = Held::Skip { scanned: b.len() };
                    None
                }
            };
        }

        // +QMTRECV: framed by structure, since its payload may hold CR LF.
        if b[0] == b'+' && b.len() < RECV_PREFIX.len() && RECV_PREFIX.starts_with(b) {
            return None;
        }
        if b.starts_with(RECV_PREFIX) {
            return self.recv(b);
        }

        let scanned = match self.held {
            Held::Line { scanned } => scanned,
            _ => 0,
        };
        let Some(end) = Self::line_end(b, scanned) else {
            self.held = Held::Line { scanned: b.len() };
            return None;
        };
        let line = &b[..end - 1];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        self.line(line, pos, &e);
        Some(end)
    }

    /// A `+QMTRECV` frame at the start of `b`.
    fn recv(&mut self, b: &[u8]) -> Option<usize> {
        let (head, scanned) = match self.held {
            Held::Recv { head, scanned } => (head, scanned),
            _ => match recv_head(b) {
                Ok(Some(head)) => (head, 0),
                Ok(None) => return None,
                Err(()) => return self.malformed(b),
            },
        };
        let hex = ClientId::new(head.client)
            .is_ok_and(|c| self.core.clients.settings(c).recv == crate::clients::Format::Hex);
        match recv_end(b, &head, scanned, hex, RECV_WIRE_MAX) {
            Frame::Complete { end, len } => {
                router::message(
                    &self.core,
                    &head,
                    &b[head.topic.0..head.topic.1],
                    &b[head.payload..end],
                );
                Some(len)
            }
            Frame::Incomplete { scanned } => {
                self.held = Held::Recv { head, scanned };
                None
            }
            Frame::Malformed => self.malformed(b),
        }
    }

    /// A broken `+QMTRECV`: its first line is dropped (the rest is read
    /// again as lines).
    fn malformed(&mut self, b: &[u8]) -> Option<usize> {
        warn!("malformed +QMTRECV dropped");
        bump!(self.core.stats, malformed_urcs);
        match Self::line_end(b, 0) {
            Some(end) => Some(end),
            None => {
                self.held = Held::Skip { scanned: b.len() };
                None
            }
        }
    }

    /// A complete line (without its CR LF) that started at `pos`.
    fn line(&self, line: &[u8], pos: u32, e: &crate::channel::Expect) {
        let core = &self.core;
        let final_code = match line {
            b"OK" => Some(Ok(())),
            b"ERROR" => Some(Err(ModemError::Error)),
            _ => match line.strip_prefix(b"+CME ERROR:") {
                Some(n) => Some(Err(ModemError::Cme(code(n)))),
                None => line
                    .strip_prefix(b"+CMS ERROR:")
                    .map(|n| Err(ModemError::Cms(code(n)))),
            },
        };
        if let Some(result) = final_code {
            match core.channel.on_final(result, pos) {
                Verdict::Taken { arm: Some(k) } => core.clients.arm_publish(k),
                Verdict::Taken { arm: None } => {}
                Verdict::Late => {
                    debug!("late answer {:?} discarded", Bytes(line));
                    bump!(core.stats, late_answers);
                }
                Verdict::Stray => {
                    debug!("stray {:?} dropped", Bytes(line));
                    bump!(core.stats, stray_responses);
                }
            }
            return;
        }

        if RESTART_LINES.contains(&line) {
            router::rebooted(core);
            return;
        }

        let prefix = urc::split_prefix(line);
        if let Some((p, body)) = prefix {
            if p == b"+QMTSTAT" {
                match urc::parse_stat(line) {
                    Some((client, reason)) => router::link_closed(core, client, reason),
                    None => bump!(core.stats, malformed_urcs),
                }
                return;
            }
            if urc::DEFERRED_PREFIXES.contains(&p) && urc::deferred_shaped(body) {
                // The one ambiguous shape: `+QMTCONN: <id>,<state>` answering
                // `AT+QMTCONN?` looks like a two-field deferred CONN result.
                let conn_read = e.mode == Mode::Command
                    && e.read_form
                    && p == b"+QMTCONN"
                    && p == e.prefix()
                    && urc::Ints::new(body).count() == 2;
                if !conn_read {
                    match urc::parse_deferred(line) {
                        Some(d) => router::deferred(core, d),
                        None => bump!(core.stats, malformed_urcs),
                    }
                    return;
                }
            }
        }

        let is_info = match prefix {
            Some((p, _)) => !e.prefix().is_empty() && p == e.prefix(),
            None => true,
        };
        if is_info && core.channel.on_info(line, pos) {
            return;
        }
        debug!("unsolicited line dropped: {:?}", Bytes(line));
        bump!(core.stats, unsolicited_lines);
    }

    /// The modem was quiet for `Config::quiet_gap` with `buf` held: give up
    /// the incomplete piece at its head. Returns the bytes to drop.
    fn resync(&mut self, buf: &[u8]) -> usize {
        let e = self.core.channel.expect();
        self.held = Held::Nothing;
        if buf.is_empty() {
            return 0;
        }
        if e.mode == Mode::Payload && e.echo_left > 0 && e.echo != Echo::Off {
            // The echo did not come whole: read lines from here on.
            self.core.channel.echo_give_up();
            return 0;
        }
        bump!(self.core.stats, resyncs);
        warn!("incomplete frame given up after a quiet gap");
        Self::line_end(buf, 0).unwrap_or(buf.len())
    }
}

fn code(n: &[u8]) -> u16 {
    urc::parse_int(n)
        .and_then(|v| u16::try_from(v).ok())
        .unwrap_or(0)
}

impl Digester for Bc26Digester<'_> {
    fn digest<'b>(&mut self, buf: &'b [u8]) -> (DigestResult<'b>, usize) {
        // Stream position of buf[0]: the buffer holds the newest bytes read.
        let base = self.core.rx.position().wrapping_sub(buf.len() as u32);
        let mut off = 0;
        if self.core.rx.take_resync() {
            off = self.resync(buf);
        }
        while off < buf.len() {
            match self.step(&buf[off..], base.wrapping_add(off as u32)) {
                Some(n) => {
                    off += n;
                    self.held = Held::Nothing;
                }
                None => break,
            }
        }
        if off == 0 && buf.len() >= self.capacity {
            warn!("line longer than the ingress buffer: dropped");
            bump!(self.core.stats, overflows);
            self.held = Held::Nothing;
            off = Self::line_end(buf, 0).unwrap_or(buf.len());
        }
        (DigestResult::None, off)
    }
}
