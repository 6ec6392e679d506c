//! The digester atat's `Ingress` runs on every byte from the modem, and the
//! router it hands URCs to.
//!
//! Unlike atat's `AtDigester`, it knows which command is in flight (the runner
//! tells it), so it can tell:
//! - a read response (`+QMTCONN: 0,3` to `AT+QMTCONN?`) from a deferred result
//!   of the same prefix (`+QMTCONN: 0,0,0`);
//! - a `>` prompt (only while a data-mode publish waits for one, and only at
//!   the start of a line) from a `>` inside a payload;
//! - information lines from URCs that arrive between them and `OK`.
//!
//! It never awaits: URCs are routed synchronously, events are published with
//! `publish_immediate`, and what cannot be placed is counted in [`Stats`].

use atat::{DigestResult, Digester, InternalError};
use heapless::{String, Vec};

use crate::error::ModemError;
use crate::fmt::Bytes;
use crate::state::{Core, OpKind, OpOutcome, OpWait, PubOutcome, RxState, SlotWait, Stats};
use crate::types::{limits, ClientId};
use crate::urc::{
    self, find, parse_deferred, parse_recv, parse_stat, split_prefix, Deferred, Event,
    LinkClosedReason, Message, Recv, RECV_PREFIX,
};

/// Lines some modems send on their own that carry no `+` prefix.
const BARE_URCS: [&[u8]; 3] = [b"RDY", b"NORMAL POWER DOWN", b"POWER DOWN"];

/// Most wire bytes a `+QMTRECV` payload may have (hex digits of 1024 bytes).
const RECV_WIRE_MAX: usize = 2 * limits::RECV_PAYLOAD;

pub(crate) struct Bc26Digester<'a> {
    core: Core<'a>,
    capacity: usize,
}

impl<'a> Bc26Digester<'a> {
    pub(crate) fn new(core: Core<'a>, capacity: usize) -> Self {
        Self { core, capacity }
    }

    /// Nothing complete yet: wait for more bytes, unless the buffer is full.
    fn incomplete<'b>(&self, buf: &'b [u8], skipped: usize) -> (DigestResult<'b>, usize) {
        if buf.len() >= self.capacity {
            warn!(
                "line longer than the ingress buffer ({} bytes): dropped",
                buf.len()
            );
            self.core.sh.count(|s| s.overflows += 1);
            // Drop up to the end of the first line, or everything.
            let end = find(&buf[skipped..], b"\r\n").map_or(buf.len(), |e| skipped + e + 2);
            return (DigestResult::None, end);
        }
        (DigestResult::None, skipped)
    }

    fn finish<'b>(&self, result: Result<(), ModemError>) -> DigestResult<'b> {
        self.core.sh.update_rx(|rx| {
            rx.state = RxState::Idle;
            rx.sent = false;
            rx.result = result;
        });
        DigestResult::Response(match result {
            Ok(()) => Ok(&[]),
            Err(_) => Err(InternalError::Error),
        })
    }

    fn append_info(&self, line: &[u8]) {
        let core = self.core;
        core.sh.with_chan(|chan| {
            core.with_line(|buf| {
                let sep = if chan.len == 0 { 0 } else { 2 };
                let end = chan.len + sep + line.len();
                if end > buf.len() {
                    chan.overflow = true;
                    return;
                }
                if sep == 2 {
                    buf[chan.len..chan.len + 2].copy_from_slice(b"\r\n");
                }
                buf[chan.len + sep..end].copy_from_slice(line);
                chan.len = end;
            })
        })
    }

    /// A complete line (without its CR LF).
    fn line<'b>(&self, line: &[u8]) -> DigestResult<'b> {
        let rx = self.core.sh.rx();
        let waiting = rx.state != RxState::Idle && rx.sent;
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
            if waiting {
                return self.finish(result);
            }
            debug!("stray {:?} dropped", Bytes(line));
            self.core.sh.count(|s| s.stray_responses += 1);
            return DigestResult::None;
        }

        if let Some((client, reason)) = parse_stat(line) {
            route_stat(&self.core, client, reason);
            return DigestResult::None;
        }

        let prefix = split_prefix(line);
        if let Some((p, body)) = prefix {
            if urc::DEFERRED_PREFIXES.contains(&p) && urc::deferred_shaped(body) {
                // The one ambiguous shape: `+QMTCONN: <id>,<state>` answering
                // `AT+QMTCONN?` looks like a two-field deferred CONN result.
                let conn_read = waiting
                    && rx.read_form
                    && p == b"+QMTCONN"
                    && p == rx.prefix()
                    && urc::Ints::new(body).count() == 2;
                if !conn_read {
                    match parse_deferred(line) {
                        Some(d) => route_deferred(&self.core, d),
                        None => self.core.sh.count(|s| s.malformed_urcs += 1),
                    }
                    return DigestResult::None;
                }
            }
            if p == b"+QMTSTAT" {
                self.core.sh.count(|s| s.malformed_urcs += 1);
                return DigestResult::None;
            }
        }

        let is_info = match prefix {
            Some((p, _)) => !rx.prefix().is_empty() && p == rx.prefix(),
            None => !BARE_URCS.contains(&line),
        };
        if waiting && rx.state == RxState::Command && is_info {
            self.append_info(line);
        } else if rx.state == RxState::DataMode {
            trace!("data-mode echo dropped: {:?}", Bytes(line));
        } else {
            debug!("unsolicited line dropped: {:?}", Bytes(line));
            self.core.sh.count(|s| s.unsolicited_lines += 1);
        }
        DigestResult::None
    }
}

fn code(n: &[u8]) -> u16 {
    urc::parse_int(n)
        .and_then(|v| u16::try_from(v).ok())
        .unwrap_or(0)
}

impl Digester for Bc26Digester<'_> {
    fn digest<'b>(&mut self, buf: &'b [u8]) -> (DigestResult<'b>, usize) {
        let start = buf
            .iter()
            .position(|b| !matches!(b, b'\r' | b'\n' | b' '))
            .unwrap_or(buf.len());
        let b = &buf[start..];
        if b.is_empty() {
            return (DigestResult::None, start);
        }
        let rx = self.core.sh.rx();

        // The prompt: only while a data-mode publish waits for it, only at a line start.
        if rx.state == RxState::AwaitPrompt && rx.sent && b[0] == b'>' {
            self.core.sh.update_rx(|rx| rx.state = RxState::DataMode);
            let space = usize::from(b.get(1) == Some(&b' '));
            return (DigestResult::Prompt(b'>'), start + 1 + space);
        }
        if b[0] == b'>' && (b.len() == 1 || b[1] == b' ') {
            if rx.state == RxState::AwaitPrompt {
                // The runner has not marked the line sent yet: keep it for then.
                return self.incomplete(buf, start);
            }
            // A prompt nobody waits for.
            self.core.sh.count(|s| s.stray_responses += 1);
            return (DigestResult::None, start + 1);
        }

        // Command echo (ATE1): "AT...\r". Only while a command is out.
        if rx.state != RxState::Idle && (b[0] == b'A' || b[0] == b'a') {
            if b.len() < 2 {
                return self.incomplete(buf, start);
            }
            if b[1] == b'T' || b[1] == b't' {
                return match b.iter().position(|&c| c == b'\r') {
                    Some(i) => (DigestResult::None, start + i + 1),
                    None => self.incomplete(buf, start),
                };
            }
        }

        // +QMTRECV: framed by structure, since its payload may hold CR LF.
        let n = b.len().min(RECV_PREFIX.len());
        if b[..n] == RECV_PREFIX[..n] {
            if n < RECV_PREFIX.len() {
                return self.incomplete(buf, start);
            }
            return match parse_recv(b, RECV_WIRE_MAX) {
                Recv::Complete {
                    client,
                    msg_id,
                    topic,
                    payload,
                    len,
                } => {
                    route_recv(&self.core, client, msg_id, topic, payload);
                    (DigestResult::None, start + len)
                }
                Recv::Incomplete => self.incomplete(buf, start),
                Recv::Malformed { skip } => {
                    warn!("malformed +QMTRECV dropped");
                    self.core.sh.count(|s| s.malformed_urcs += 1);
                    (DigestResult::None, start + skip)
                }
            };
        }

        match find(b, b"\r\n") {
            Some(end) => (self.line(&b[..end]), start + end + 2),
            None => self.incomplete(buf, start),
        }
    }
}

// ------------------------------------------------------------------ router

fn stale(core: &Core<'_>, what: &Deferred) {
    debug!("stale result dropped: {:?}", what);
    let _ = what;
    core.sh.count(|s| s.stale_results += 1);
}

/// Sends a deferred result to the operation or publish that waits for it.
pub(crate) fn route_deferred(core: &Core<'_>, d: Deferred) {
    let (client, kind, msg_id, outcome) = match d {
        Deferred::Open { client, result } => (client, OpKind::Open, None, OpOutcome::Code(result)),
        Deferred::Close { client, result } => {
            (client, OpKind::Close, None, OpOutcome::Code(result))
        }
        Deferred::Disc { client, result } => (client, OpKind::Disc, None, OpOutcome::Code(result)),
        Deferred::Conn {
            client,
            result,
            ret_code,
        } => (
            client,
            OpKind::Conn,
            None,
            OpOutcome::Conn { result, ret_code },
        ),
        Deferred::Sub {
            client,
            msg_id,
            result,
            value,
        } => (
            client,
            OpKind::Sub,
            Some(msg_id),
            OpOutcome::Sub { result, value },
        ),
        Deferred::Uns {
            client,
            msg_id,
            result,
            value,
        } => (
            client,
            OpKind::Uns,
            Some(msg_id),
            OpOutcome::Uns { result, value },
        ),
        Deferred::Pub {
            client,
            msg_id,
            result,
            value,
        } => {
            return route_pub(core, client, msg_id, result, value, &d);
        }
    };
    let Ok(id) = ClientId::new(client) else {
        core.sh.count(|s| s.malformed_urcs += 1);
        return;
    };
    let i = id.index();
    let delivered = core.sh.with_clients(|c| match c[i].op {
        OpWait::Waiting { kind: k, msg_id: m }
            if k == kind && msg_id.is_none_or(|id| id == u32::from(m)) =>
        {
            if !outcome.is_progress() {
                c[i].op = OpWait::Done;
            }
            true
        }
        _ => false,
    });
    if delivered {
        core.sh.op_signals[i].signal(outcome);
    } else {
        stale(core, &d);
    }
}

fn route_pub(
    core: &Core<'_>,
    client: u8,
    msg_id: u32,
    result: u8,
    value: Option<u16>,
    d: &Deferred,
) {
    if usize::from(client) >= ClientId::COUNT {
        core.sh.count(|s| s.malformed_urcs += 1);
        return;
    }
    let slots = core.client_slots(usize::from(client));
    // Oldest waiting publish with this msgID (several QoS 0 publishes share 0).
    let mut best: Option<(usize, u32)> = None;
    for (k, slot) in slots.iter().enumerate() {
        if let SlotWait::Waiting {
            client: c,
            msg_id: m,
            seq,
            ..
        } = slot.wait.lock(|w| w.get())
        {
            if c == client && u32::from(m) == msg_id && best.is_none_or(|(_, s)| seq < s) {
                best = Some((k, seq));
            }
        }
    }
    let Some((k, _)) = best else {
        return stale(core, d);
    };
    let outcome = slots[k].wait.lock(|w| {
        let SlotWait::Waiting {
            client,
            msg_id,
            seq,
            retrans,
        } = w.get()
        else {
            return PubOutcome::Progress;
        };
        if result == 1 {
            let retrans = value.unwrap_or(retrans.saturating_add(1));
            w.set(SlotWait::Waiting {
                client,
                msg_id,
                seq,
                retrans,
            });
            PubOutcome::Progress
        } else {
            w.set(SlotWait::Done);
            PubOutcome::Final {
                result,
                retransmissions: retrans,
            }
        }
    });
    slots[k].signal.signal(outcome);
}

/// `+QMTSTAT`: an event for the application, and (except for code 5, the
/// normal close after our own DISCONNECT) the end of every operation of that
/// client that needs the link.
pub(crate) fn route_stat(core: &Core<'_>, client: ClientId, reason: LinkClosedReason) {
    if reason == LinkClosedReason::Disconnected {
        // 5 follows the client's own DISCONNECT, and may arrive late: after the
        // application has opened and connected again. It ends nothing.
        publish(core, Event::LinkClosed { client, reason });
        return;
    }
    let i = client.index();
    let fail_op = core.sh.with_clients(|c| match c[i].op {
        OpWait::Waiting {
            kind: OpKind::Conn | OpKind::Sub | OpKind::Uns,
            ..
        } => {
            c[i].op = OpWait::Done;
            true
        }
        _ => false,
    });
    if fail_op {
        core.sh.op_signals[i].signal(OpOutcome::LinkClosed(reason));
    }
    for slot in core.client_slots(i) {
        let waiting = slot.wait.lock(|w| {
            let waiting = matches!(w.get(), SlotWait::Waiting { .. });
            if waiting {
                w.set(SlotWait::Done);
            }
            waiting
        });
        if waiting {
            slot.signal.signal(PubOutcome::LinkClosed(reason));
        }
    }
    publish(core, Event::LinkClosed { client, reason });
}

/// `+QMTRECV`: a message event, hex-decoded if the client receives hex.
pub(crate) fn route_recv(core: &Core<'_>, client: u8, msg_id: u32, topic: &[u8], payload: &[u8]) {
    let Some(msg) = message(core, client, msg_id, topic, payload) else {
        warn!("+QMTRECV that does not fit a Message dropped");
        core.sh.count(|s| s.malformed_urcs += 1);
        return;
    };
    publish(core, Event::Message(msg));
}

fn message(
    core: &Core<'_>,
    client: u8,
    msg_id: u32,
    topic: &[u8],
    payload: &[u8],
) -> Option<Message> {
    let client = ClientId::new(client).ok()?;
    let topic = String::try_from(core::str::from_utf8(topic).ok()?).ok()?;
    let hex = core.sh.with_clients(|c| c[client.index()].recv_hex);
    let mut bytes = Vec::new();
    if hex {
        crate::hex::decode(payload, &mut bytes)?;
    } else {
        bytes = Vec::from_slice(payload).ok()?;
    }
    Some(Message {
        client,
        msg_id,
        topic,
        payload: bytes,
    })
}

/// Hands an event to the channel without ever waiting.
fn publish(core: &Core<'_>, event: Event) {
    let subscribers = core.sh.subscribers.lock(|c| c.get());
    if subscribers == 0 {
        debug!("no event subscriber: event dropped");
        core.sh.count(|s| s.events_dropped += 1);
        return;
    }
    let channel = core.events.publisher();
    let full = channel.is_full();
    channel.publish_immediate(event);
    core.sh.count(|s: &mut Stats| {
        s.events_published += 1;
        if full {
            s.events_dropped += 1;
        }
    });
}
