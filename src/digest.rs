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
//! A `+QMTRECV` is framed by `recv.rs`, and what it learnt of an incomplete
//! one is kept (`Held::Recv`), so every byte of its payload is looked at
//! once, however the reads cut it; one call consumes every complete piece
//! (atat's `Ingress` then moves the rest to the front once, not once per
//! line).

use atat::{DigestResult, Digester};

use crate::channel::{Echo, Mode, PromptVerdict, Verdict};
use crate::error::ModemError;
use crate::fmt::Bytes;
use crate::recv::{self, Framed, Progress, Start};
use crate::router;
use crate::state::Core;
use crate::stats::bump;
use crate::sync::RawMutex;
use crate::types::ClientId;
use crate::urc;

/// Lines a modem sends when it starts, or when it powers down: its MQTT
/// state is gone either way.
const RESTART_LINES: [&[u8]; 5] = [
    b"RDY",
    b"NORMAL POWER DOWN",
    b"POWER DOWN",
    b"UNDER-VOLTAGE POWER DOWN",
    b"OVER-VOLTAGE POWER DOWN",
];

/// What is known of the incomplete piece at the head of the buffer, so that
/// the next call goes on where this one stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Held {
    Nothing,
    /// A line without its end yet; bytes before `scanned` hold no LF.
    Line {
        scanned: usize,
    },
    /// A `+QMTRECV` frame, as far as it was read.
    Recv(Progress),
    /// A broken line to drop when its end comes.
    Skip {
        scanned: usize,
    },
}

pub(crate) struct Bc26Digester<'a, M: RawMutex> {
    core: Core<'a, M>,
    capacity: usize,
    held: Held,
}

impl<'a, M: RawMutex> Bc26Digester<'a, M> {
    pub(crate) fn new(core: Core<'a, M>, capacity: usize) -> Self {
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
    #[inline]
    fn step(&mut self, b: &[u8], pos: u32) -> Option<usize> {
        // The rest of a `+QMTRECV` under way, while no payload echo can come
        // (the check below would not apply): see the same test below.
        if let (Held::Recv(_), false) = (self.held, self.core.channel.may_echo()) {
            return self.recv(b);
        }
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

        // The rest of a `+QMTRECV` already under way: it starts the buffer
        // (what came before was consumed), so the checks below would find
        // it again (no whitespace, no prompt, no echo, a frame).
        if let Held::Recv(_) = self.held {
            return self.recv(b);
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
        match recv::start(b) {
            Start::Frame => return self.recv(b),
            Start::Unsure => return None,
            Start::Other => {}
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

    /// A `+QMTRECV` frame at the start of `b`: framed by `recv.rs`, going on
    /// from what an earlier call kept.
    #[inline]
    fn recv(&mut self, b: &[u8]) -> Option<usize> {
        if !matches!(self.held, Held::Recv(_)) {
            self.held = Held::Recv(Progress::NEW);
        }
        let Held::Recv(progress) = &mut self.held else {
            return None;
        };
        let clients = self.core.clients;
        let hex = |client| ClientId::new(client).is_ok_and(|c| clients.receives_hex(c));
        match recv::frame(b, progress, hex) {
            Framed::Complete { end, len } => {
                let head = progress.head;
                router::message(
                    &self.core,
                    head.client,
                    head.msg_id,
                    &b[head.topic.0..head.topic.1],
                    &b[head.payload..end],
                );
                Some(len)
            }
            Framed::Incomplete => None,
            Framed::Malformed => self.malformed(b),
            Framed::TooLong => {
                warn!("+QMTRECV longer than the receive limit dropped");
                bump!(self.core.stats, messages_too_long);
                self.skip_line(b)
            }
        }
    }

    /// A broken `+QMTRECV`: its first line is dropped (the rest is read
    /// again as lines).
    fn malformed(&mut self, b: &[u8]) -> Option<usize> {
        warn!("malformed +QMTRECV dropped");
        bump!(self.core.stats, malformed_urcs);
        self.skip_line(b)
    }

    /// Drops the first line of `b` (now, or when its end comes).
    fn skip_line(&mut self, b: &[u8]) -> Option<usize> {
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
            router::rebooted(core, pos);
            return;
        }

        let prefix = urc::split_prefix(line);
        if let Some((p, body)) = prefix {
            if p == b"+QMTSTAT" {
                match urc::stat_of(body) {
                    Some((client, reason)) => router::link_closed(core, client, reason),
                    None => bump!(core.stats, malformed_urcs),
                }
                return;
            }
            if let Some(note) = crate::power::parse_power(p, body) {
                if core.power.reports() {
                    router::power(core, note);
                    return;
                }
            }
            if let Some(kind) = urc::deferred_kind(p).filter(|_| urc::deferred_shaped(body)) {
                // The one ambiguous shape: `+QMTCONN: <id>,<state>` answering
                // `AT+QMTCONN?` looks like a two-field deferred CONN result.
                let conn_read = e.mode == Mode::Command
                    && e.read_form
                    && p == b"+QMTCONN"
                    && p == e.prefix()
                    && urc::Ints::new(body).count() == 2;
                if !conn_read {
                    match urc::deferred_of(kind, body) {
                        Some(d) => router::deferred(core, d, pos),
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

impl<M: RawMutex> Digester for Bc26Digester<'_, M> {
    fn digest<'b>(&mut self, buf: &'b [u8]) -> (DigestResult<'b>, usize) {
        // Stream position of buf[0]: the buffer holds the newest bytes read.
        let (pos, resync) = self.core.rx.begin_digest();
        let base = pos.wrapping_sub(buf.len() as u32);
        let mut off = 0;
        if resync {
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

#[cfg(test)]
mod tests {
    //! The digester on literal bytes, whole and byte by byte, as atat tests
    //! its own: what each piece of the stream becomes.

    use std::boxed::Box;
    use std::string::String;
    use std::vec::Vec;

    use super::*;
    use crate::channel::Answer;
    use crate::config::Config;
    use crate::event::Event;
    use crate::inbox::Sub;
    use crate::state::State;
    use crate::types::DataFormat;

    type Cs = crate::sync::CriticalSectionRawMutex;

    struct Rig {
        core: Core<'static, Cs>,
        d: Bc26Digester<'static, Cs>,
        buf: Vec<u8>,
        sub: Sub<'static, Cs>,
    }

    fn rig() -> Rig {
        rig_with(Config::new().receive_text(true))
    }

    fn rig_with(config: Config) -> Rig {
        let state: &'static mut State = Box::leak(Box::new(State::new()));
        let (core, _, _, _) = state.split(config);
        Rig {
            core,
            d: Bc26Digester::new(core, 2400),
            buf: Vec::new(),
            sub: core.inbox.subscribe().unwrap(),
        }
    }

    impl Rig {
        /// `bytes`, read as the runner reads them (never more than the
        /// ingress buffer's room) and digested as atat's `Ingress` does.
        fn feed(&mut self, mut bytes: &[u8]) {
            loop {
                let room = 2400 - self.buf.len();
                let take = bytes.len().min(room);
                self.core.rx.received(take);
                self.buf.extend_from_slice(&bytes[..take]);
                bytes = &bytes[take..];
                let (_, n) = self.d.digest(&self.buf);
                self.buf.drain(..n);
                if bytes.is_empty() {
                    return;
                }
            }
        }

        fn feed_bytewise(&mut self, bytes: &[u8]) {
            for b in bytes {
                self.feed(core::slice::from_ref(b));
            }
        }

        /// A command line in flight, armed at the bytes read so far.
        fn command(&self, line: &[u8], data_mode: bool) {
            let pos = self.core.rx.position();
            self.core.channel.test_begin(line, data_mode, pos);
        }

        fn answer(&self) -> Option<Answer> {
            self.core.channel.answer()
        }

        /// The events waiting, as text.
        fn events(&mut self) -> Vec<String> {
            let mut out = Vec::new();
            let mut buf = [0u8; 1400];
            while let Some(e) = self.sub.try_next(&mut buf) {
                out.push(match e {
                    Event::Message(m) => std::format!(
                        "msg {} {} {} {}",
                        m.client.get(),
                        m.msg_id,
                        m.topic,
                        String::from_utf8_lossy(m.payload)
                    ),
                    other => std::format!("{other:?}"),
                });
            }
            out
        }

        fn info(&self) -> String {
            let mut s = String::new();
            self.core
                .channel
                .test_info(&mut |b| s = String::from_utf8_lossy(b).into_owned());
            s
        }
    }

    /// Runs `check` on a fresh rig fed `bytes` whole, then byte by byte.
    fn both_ways(setup: impl Fn(&mut Rig), bytes: &[u8], check: impl Fn(&mut Rig)) {
        let mut whole = rig();
        setup(&mut whole);
        whole.feed(bytes);
        check(&mut whole);
        let mut bytewise = rig();
        setup(&mut bytewise);
        bytewise.feed_bytewise(bytes);
        check(&mut bytewise);
    }

    #[test]
    fn ok_error_and_cme_end_the_armed_command() {
        for (bytes, want) in [
            (&b"\r\nOK\r\n"[..], Ok(())),
            (b"\r\nERROR\r\n", Err(ModemError::Error)),
            (b"\r\n+CME ERROR: 50\r\n", Err(ModemError::Cme(50))),
            (b"\r\n+CMS ERROR: 304\r\n", Err(ModemError::Cms(304))),
        ] {
            both_ways(
                |r| r.command(b"AT+QMTCFG=\"keepalive\",0,60\r", false),
                bytes,
                |r| assert_eq!(r.answer(), Some(Answer::Final(want))),
            );
        }
    }

    #[test]
    fn an_ok_with_no_command_is_stray_and_counted() {
        both_ways(
            |_| {},
            b"\r\nOK\r\n",
            |r| {
                assert_eq!(r.answer(), None);
                assert_eq!(r.core.stats.get().stray_responses, 1);
            },
        );
    }

    #[test]
    fn information_lines_are_kept_and_urcs_between_them_routed() {
        let bytes =
            b"\r\n+QMTCFG: \"keepalive\",120\r\n\r\n+QMTSTAT: 1,1\r\n\r\n+QMTRECV: 0,3,\"t\",\"x\"\r\n\r\nOK\r\n";
        both_ways(
            |r| r.command(b"AT+QMTCFG=\"keepalive\",0\r", false),
            bytes,
            |r| {
                assert_eq!(r.answer(), Some(Answer::Final(Ok(()))));
                assert_eq!(r.info(), "+QMTCFG: \"keepalive\",120");
                assert_eq!(
                    r.events(),
                    [
                        "LinkClosed { client: ClientId(1), reason: PeerClosed }",
                        "msg 0 3 t x"
                    ]
                );
            },
        );
    }

    #[test]
    fn a_text_payload_with_quotes_commas_and_crlf_is_one_message() {
        both_ways(
            |_| {},
            b"\r\n+QMTRECV: 2,7,\"a/b\",\"{\"k\":\"v, w\"}\r\nOK\r\n+QMTSTAT: 0,1\"\r\n",
            |r| {
                assert_eq!(
                    r.events(),
                    ["msg 2 7 a/b {\"k\":\"v, w\"}\r\nOK\r\n+QMTSTAT: 0,1"]
                );
                assert_eq!(r.core.stats.get().stray_responses, 0);
            },
        );
    }

    #[test]
    fn the_prompt_counts_only_at_a_line_start_while_a_data_mode_line_waits() {
        both_ways(
            |r| r.command(b"AT+QMTPUB=0,0,0,0,\"t\"\r", true),
            b"\r\n> ",
            |r| assert_eq!(r.answer(), Some(Answer::Prompt)),
        );
        // Inside a payload, cut right after it: not a prompt.
        both_ways(
            |r| r.command(b"AT+QMTPUB=0,0,0,0,\"t\"\r", true),
            b"\r\n+QMTRECV: 0,0,\"t\",\"a\r\n> b\"\r\n",
            |r| {
                assert_eq!(r.answer(), None);
                assert_eq!(r.events(), ["msg 0 0 t a\r\n> b"]);
            },
        );
        // Nobody waits for one: stray.
        both_ways(
            |_| {},
            b"\r\n> ",
            |r| assert_eq!(r.core.stats.get().stray_responses, 1),
        );
    }

    #[test]
    fn command_echo_is_skipped_and_the_answer_still_found() {
        both_ways(
            |r| r.command(b"AT+QMTCONN?\r", false),
            b"AT+QMTCONN?\r\r\n+QMTCONN: 0,3\r\n\r\nOK\r\n",
            |r| {
                assert_eq!(r.answer(), Some(Answer::Final(Ok(()))));
                // The read answer, not a deferred CONN result.
                assert_eq!(r.info(), "+QMTCONN: 0,3");
                assert_eq!(r.core.stats.get().stale_results, 0);
            },
        );
    }

    #[test]
    fn a_deferred_result_is_not_an_information_line() {
        both_ways(
            |r| r.command(b"AT+QMTOPEN?\r", false),
            b"\r\n+QMTOPEN: 0,\"h\",1883\r\n\r\n+QMTOPEN: 1,0\r\n\r\nOK\r\n",
            |r| {
                assert_eq!(r.info(), "+QMTOPEN: 0,\"h\",1883");
                // Nobody waited for client 1's open: stale.
                assert_eq!(r.core.stats.get().stale_results, 1);
            },
        );
    }

    #[test]
    fn a_restart_line_is_a_reboot_event() {
        both_ways(
            |r| r.command(b"AT\r", false),
            b"\r\nRDY\r\n",
            |r| {
                assert_eq!(r.answer(), Some(Answer::Rebooted));
                assert_eq!(r.events(), ["ModemRebooted"]);
                assert_eq!(r.core.stats.get().reboots, 1);
            },
        );
    }

    #[test]
    fn a_line_longer_than_the_buffer_is_dropped_and_counted() {
        let mut r = rig();
        let mut long = b"\r\n+CEREG: ".to_vec();
        long.extend(core::iter::repeat_n(b'9', 3000));
        long.extend_from_slice(b"\r\n\r\nOK\r\n");
        r.command(b"AT\r", false);
        for piece in long.chunks(2000) {
            r.feed(piece);
        }
        assert_eq!(r.core.stats.get().overflows, 1);
        assert_eq!(r.answer(), Some(Answer::Final(Ok(()))));
    }

    #[test]
    fn a_held_recv_is_given_up_on_resync_and_the_rest_read_as_lines() {
        let mut r = rig();
        r.command(b"AT\r", false);
        r.feed(b"\r\n+QMTRECV: 0,1,\"t\",\"no end\r\n\r\nOK\r\n");
        assert_eq!(r.answer(), None, "still inside the payload");
        r.core.rx.request_resync();
        r.feed(b"");
        assert_eq!(r.answer(), Some(Answer::Final(Ok(()))));
        assert_eq!(r.core.stats.get().resyncs, 1);
        assert!(r.events().is_empty());
    }

    #[test]
    fn hex_payloads_are_decoded_and_a_broken_one_dropped_at_once() {
        let mut r = rig_with(Config::new());
        let c = ClientId::new(0).unwrap();
        r.core
            .clients
            .set_formats(c, DataFormat::Text, DataFormat::Hex, false);
        r.feed_bytewise(b"\r\n+QMTRECV: 0,1,\"t\",\"4869\"\r\n");
        assert_eq!(r.events(), ["msg 0 1 t Hi"]);
        r.feed(b"\r\n+QMTRECV: 0,2,\"t\",\"48\r\n\r\n+QMTSTAT: 0,7\r\n");
        assert_eq!(r.core.stats.get().malformed_urcs, 1);
        assert_eq!(
            r.events(),
            ["LinkClosed { client: ClientId(0), reason: LinkDead }"]
        );
        // A non-digit inside the quotes: framed to its `"` CR LF, refused
        // when decoded, and the line behind it read as a line.
        r.feed_bytewise(
            b"\r\n+QMTRECV: 0,3,\"t\",\"48G9\"\r\n\r\n+QMTRECV: 0,4,\"t\",\"4F4B\"\r\n",
        );
        assert_eq!(r.core.stats.get().malformed_urcs, 2);
        assert_eq!(r.events(), ["msg 0 4 t OK"]);
    }
}
