//! The module's UART as the AT layer sees it: bytes from the host (command lines with echo
//! and backspace, data mode), and everything to the host (responses, the queue of deferred
//! results and URCs, the echo), as [`ToHost`] pieces the caller takes with
//! [`crate::model::Modem::poll_host`]. A dead UART (`SimHandle::set_silent`) lives here too.
//! Only this file changes it.

use std::collections::VecDeque;
use std::time::Duration;

use crate::model::at::hex_decode;
use crate::model::effects::When;
use crate::model::time::Time;

/// A command line is cut at this many bytes (the rest until CR is dropped).
const MAX_LINE: usize = 4096;
/// A data-mode message holds at most this many bytes (twice as many hex digits); more are
/// dropped.
const MAX_DATA: usize = 1024;

/// A piece of output to the host, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToHost<'a> {
    /// The echo of the host's own bytes.
    Echo(&'a [u8]),
    /// A response, result, URC, prompt or injected bytes: the host is likely waiting for
    /// its last byte (the threaded simulator is on time for it).
    Message(&'a [u8]),
    /// Forget what was given before and has not reached the host yet (a reboot, the UART
    /// going silent): a UART's transmit buffer emptied.
    Discard,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Echo,
    Message,
    Discard,
}

/// The output not yet taken: bytes and where each piece ends. Kept between calls, so that
/// steady work allocates nothing.
#[derive(Debug, Default)]
struct Out {
    buf: Vec<u8>,
    pieces: Vec<(Kind, usize)>,
    /// Pieces already taken.
    taken: usize,
}

impl Out {
    fn reuse(&mut self) {
        if self.taken == self.pieces.len() {
            self.buf.clear();
            self.pieces.clear();
            self.taken = 0;
        }
    }

    fn push(&mut self, kind: Kind, bytes: &[u8]) {
        self.reuse();
        self.buf.extend_from_slice(bytes);
        let end = self.buf.len();
        let untaken = self.pieces.len() > self.taken;
        match self.pieces.last_mut() {
            Some((Kind::Echo, e)) if kind == Kind::Echo && untaken => *e = end,
            _ => self.pieces.push((kind, end)),
        }
    }

    fn discard(&mut self) {
        self.reuse();
        self.pieces.truncate(self.taken);
        let end = self.pieces.last().map_or(0, |p| p.1);
        self.buf.truncate(end);
        self.pieces.push((Kind::Discard, end));
    }

    fn next(&mut self) -> Option<ToHost<'_>> {
        if self.taken == self.pieces.len() {
            self.reuse();
            return None;
        }
        let start = match self.taken {
            0 => 0,
            i => self.pieces[i - 1].1,
        };
        let (kind, end) = self.pieces[self.taken];
        self.taken += 1;
        let b = &self.buf[start..end];
        Some(match kind {
            Kind::Echo => ToHost::Echo(b),
            Kind::Message => ToHost::Message(b),
            Kind::Discard => ToHost::Discard,
        })
    }
}

/// A data-mode publish (`AT+QMTPUB` without a message) while the host types the payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DataPublish {
    pub(crate) id: usize,
    pub(crate) msgid: u16,
    pub(crate) qos: u8,
    pub(crate) retain: bool,
    pub(crate) topic: String,
    /// The client's `dataformat` send field: the host types hex digits.
    pub(crate) hex: bool,
    /// The client's `echomode`: each payload byte is echoed.
    pub(crate) echo: bool,
}

/// What the host's bytes amount to, for the modem to act on.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum HostInput {
    /// A command line (without its CR); give it back with [`Serial::recycle`].
    Line(Vec<u8>),
    /// Ctrl+Z ended data mode (`OK` already sent): publish `payload`.
    Publish(DataPublish, Vec<u8>),
}

#[derive(Debug)]
pub(crate) struct Serial {
    echo: bool,
    cmee: u8,
    cme_errors: bool,
    result_delay: Duration,
    line: Vec<u8>,
    spare: Vec<u8>,
    data: Option<(DataPublish, Vec<u8>)>,
    /// Deferred results and URCs, in order, each with the time it is due.
    queue: VecDeque<(Time, Vec<u8>)>,
    silent: bool,
    out: Out,
}

impl Serial {
    pub(crate) fn new(echo: bool, cme_errors: bool, result_delay: Duration) -> Self {
        Serial {
            echo,
            cmee: 0,
            cme_errors,
            result_delay,
            line: Vec::new(),
            spare: Vec::new(),
            data: None,
            queue: VecDeque::new(),
            silent: false,
            out: Out::default(),
        }
    }

    // ------------------------------------------------------------ from the host

    /// Take bytes until an input is complete: how many were taken, and the input.
    pub(crate) fn take(&mut self, bytes: &[u8]) -> (usize, Option<HostInput>) {
        for (i, &b) in bytes.iter().enumerate() {
            if self.data.is_some() {
                if let Some(input) = self.data_byte(b) {
                    return (i + 1, Some(input));
                }
                continue;
            }
            if self.echo {
                self.echo_bytes(&[b]);
            }
            match b {
                b'\r' if !self.line.is_empty() => {
                    let next = std::mem::take(&mut self.spare);
                    return (
                        i + 1,
                        Some(HostInput::Line(std::mem::replace(&mut self.line, next))),
                    );
                }
                b'\r' | b'\n' => {}
                0x08 | 0x7f => {
                    self.line.pop();
                }
                _ if self.line.len() < MAX_LINE => self.line.push(b),
                _ => {}
            }
        }
        (bytes.len(), None)
    }

    /// A line taken with [`Serial::take`], back for reuse (no allocation per line).
    pub(crate) fn recycle(&mut self, mut line: Vec<u8>) {
        line.clear();
        self.spare = line;
    }

    fn data_byte(&mut self, b: u8) -> Option<HostInput> {
        let (dm, buf) = self.data.as_mut()?;
        match b {
            0x1a => {
                let (dm, buf) = self.data.take()?;
                let payload = if dm.hex {
                    match hex_decode(&buf) {
                        Some(p) => p,
                        None => {
                            self.error();
                            return None;
                        }
                    }
                } else {
                    buf
                };
                // The caller answers (`OK`, or `ERROR` to a poisoned message).
                Some(HostInput::Publish(dm, payload))
            }
            0x1b => {
                // Cancel: OK, nothing is published, no +QMTPUB result.
                self.data = None;
                self.ok();
                None
            }
            _ => {
                let limit = if dm.hex { 2 * MAX_DATA } else { MAX_DATA };
                if buf.len() < limit {
                    buf.push(b);
                    if dm.echo {
                        self.echo_bytes(&[b]);
                    }
                }
                None
            }
        }
    }

    /// Data mode: the prompt `\r\n> `, then the host's bytes are the message.
    pub(crate) fn enter_data_mode(&mut self, p: DataPublish) {
        self.message(b"\r\n> ");
        let cap = if p.hex { 2 * MAX_DATA } else { MAX_DATA };
        self.data = Some((p, Vec::with_capacity(cap)));
    }

    // ------------------------------------------------------------ settings

    pub(crate) fn set_echo(&mut self, on: bool) {
        self.echo = on;
    }

    pub(crate) fn cmee(&self) -> u8 {
        self.cmee
    }

    pub(crate) fn set_cmee(&mut self, n: u8) {
        self.cmee = n;
    }

    /// A dead UART: nothing is sent while silent, and what was on its way is lost.
    pub(crate) fn set_silent(&mut self, silent: bool) {
        if silent && !self.silent {
            self.out.discard();
        }
        self.silent = silent;
    }

    pub(crate) fn silent(&self) -> bool {
        self.silent
    }

    /// The module restarts: echo on (ATE1, the factory default), CMEE 0, data mode left, the
    /// half-received line and all output not yet sent discarded.
    pub(crate) fn reset(&mut self) {
        self.restart();
        self.out.discard();
    }

    /// The module restarts after it sent what it had (`AT+QRST=1`: its `OK`): as
    /// [`reset`](Self::reset), but the output already given goes out.
    pub(crate) fn restart(&mut self) {
        self.echo = true;
        self.cmee = 0;
        self.line.clear();
        self.data = None;
        self.queue.clear();
    }

    // ------------------------------------------------------------ to the host

    fn echo_bytes(&mut self, b: &[u8]) {
        if !self.silent {
            self.out.push(Kind::Echo, b);
        }
    }

    /// Bytes to the host now (lost while silent).
    pub(crate) fn message(&mut self, b: &[u8]) {
        if !self.silent {
            self.out.push(Kind::Message, b);
        }
    }

    pub(crate) fn ok(&mut self) {
        self.message(b"\r\nOK\r\n");
    }

    pub(crate) fn error(&mut self) {
        let msg: &[u8] = match (self.cme_errors, self.cmee) {
            (true, 1) => b"\r\n+CME ERROR: 50\r\n",
            (true, 2) => b"\r\n+CME ERROR: Incorrect parameters\r\n",
            _ => b"\r\nERROR\r\n",
        };
        self.message(msg);
    }

    /// Information lines then `OK`: `\r\n<l1>\r\n<l2>\r\n\r\nOK\r\n`.
    pub(crate) fn info<L: AsRef<[u8]>>(&mut self, lines: &[L]) {
        let mut v = Vec::new();
        if !lines.is_empty() {
            v.extend_from_slice(b"\r\n");
            for l in lines {
                v.extend_from_slice(l.as_ref());
                v.extend_from_slice(b"\r\n");
            }
        }
        v.extend_from_slice(b"\r\nOK\r\n");
        self.message(&v);
    }

    /// A line for later: a deferred result after `result_delay`, a URC at once; never before
    /// a line queued earlier.
    pub(crate) fn defer(&mut self, now: Time, when: When, body: &[u8]) {
        let delay = match when {
            When::Result => self.result_delay,
            When::Urc => Duration::ZERO,
        };
        let mut due = now + delay;
        if let Some((last, _)) = self.queue.back() {
            due = due.max(*last);
        }
        let mut line = Vec::with_capacity(body.len() + 4);
        line.extend_from_slice(b"\r\n");
        line.extend_from_slice(body);
        line.extend_from_slice(b"\r\n");
        self.queue.push_back((due, line));
    }

    /// Send the queued lines due at `now`; none while the host types a payload or `hold`.
    pub(crate) fn flush_due(&mut self, now: Time, hold: bool) {
        if hold || self.data.is_some() {
            return;
        }
        while self.queue.front().is_some_and(|(due, _)| *due <= now) {
            if let Some((_, line)) = self.queue.pop_front() {
                self.message(&line);
            }
        }
    }

    /// When the next queued line is due (none while in data mode).
    pub(crate) fn next_due(&self) -> Option<Time> {
        match self.data {
            Some(_) => None,
            None => self.queue.front().map(|(t, _)| *t),
        }
    }

    /// The next piece of output.
    pub(crate) fn poll(&mut self) -> Option<ToHost<'_>> {
        self.out.next()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(s: &mut Serial) -> Vec<String> {
        std::iter::from_fn(|| {
            s.poll().map(|p| match p {
                ToHost::Echo(b) => format!("echo {}", b.escape_ascii()),
                ToHost::Message(b) => format!("msg {}", b.escape_ascii()),
                ToHost::Discard => "discard".into(),
            })
        })
        .collect()
    }

    #[test]
    fn a_line_is_echoed_byte_by_byte_in_one_piece_and_backspace_edits_it() {
        let mut s = Serial::new(true, false, Duration::ZERO);
        let (n, input) = s.take(b"ATX\x08\r\nAT");
        assert_eq!((n, input), (5, Some(HostInput::Line(b"AT".to_vec()))));
        assert_eq!(all(&mut s), ["echo ATX\\x08\\r"]);
        s.ok();
        assert_eq!(s.take(b"\nAT"), (3, None));
        assert_eq!(all(&mut s), ["msg \\r\\nOK\\r\\n", "echo \\nAT"]);
    }

    #[test]
    fn data_mode_takes_the_message_until_ctrl_z_or_esc() {
        let mut s = Serial::new(false, false, Duration::ZERO);
        let p = DataPublish {
            id: 0,
            msgid: 1,
            qos: 1,
            retain: false,
            topic: "t".into(),
            hex: true,
            echo: true,
        };
        s.enter_data_mode(p.clone());
        s.defer(Time::ZERO, When::Urc, b"+URC");
        s.flush_due(Time::ZERO, false);
        assert_eq!(
            s.take(b"4142\x1aAT"),
            (5, Some(HostInput::Publish(p.clone(), b"AB".to_vec())))
        );
        // The modem answers the message (`OK`, or `ERROR` to a poisoned one).
        assert_eq!(all(&mut s), ["msg \\r\\n> ", "echo 4142"]);
        s.flush_due(Time::ZERO, false);
        assert_eq!(
            all(&mut s),
            ["msg \\r\\n+URC\\r\\n"],
            "held back until data mode ended"
        );
        s.enter_data_mode(p.clone());
        assert_eq!(s.take(b"4\x1a"), (2, None));
        s.enter_data_mode(p);
        assert_eq!(s.take(b"41\x1b"), (3, None));
        assert_eq!(
            all(&mut s),
            [
                "msg \\r\\n> ",
                "echo 4",
                "msg \\r\\nERROR\\r\\n",
                "msg \\r\\n> ",
                "echo 41",
                "msg \\r\\nOK\\r\\n"
            ]
        );
    }

    #[test]
    fn silence_and_reset_discard_what_was_not_taken() {
        let mut s = Serial::new(false, false, Duration::ZERO);
        s.message(b"taken");
        assert_eq!(all(&mut s), ["msg taken"]);
        s.message(b"lost");
        s.set_silent(true);
        s.message(b"lost too");
        s.set_silent(false);
        s.message(b"after");
        s.reset();
        // One discard covers both: nothing between them reached the host.
        assert_eq!(all(&mut s), ["discard"]);
        s.ok();
        assert_eq!(all(&mut s), ["msg \\r\\nOK\\r\\n"]);
    }
}
