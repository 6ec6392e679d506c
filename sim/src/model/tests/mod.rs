//! Literal-byte tests of the model through its public API, on one thread with a fake clock:
//! AT lines in at chosen times, bytes to the host and network actions out.
//!
//! - `session.rs`: a whole session (open, connect, subscribe, publish QoS 0/1/2 in text and
//!   hex, inline and in data mode, receive, keep-alive, unsubscribe, disconnect, close);
//! - `faults.rs`: every fault of `SimHandle`, and the timers;
//! - `hostile.rs`: what a host may send that a modem must survive (random bytes, overlong
//!   lines, bad topics and numbers, data-mode garbage, power commands) and malformed broker
//!   bytes;
//! - `power.rs`: the power model (PSM and eDRX grants, the radio's states and URCs, a
//!   sleeping UART, downlink for an unreachable module, the NAT, the charge meter).

mod faults;
mod hostile;
mod power;
mod session;

use std::time::Duration;

use crate::config::SimConfig;
use crate::model::{LinkId, Modem, NetAction, NetEvent, Time, ToHost};

/// A model and the fake clock that drives it.
pub(super) struct Rig {
    pub(super) m: Modem,
    pub(super) t: Time,
}

/// Bytes shown with escapes, for readable assertions.
pub(super) fn show(b: &[u8]) -> String {
    b.escape_ascii().to_string()
}

impl Rig {
    pub(super) fn new(cfg: SimConfig) -> Rig {
        Rig {
            m: Modem::new(&cfg),
            t: Time::ZERO,
        }
    }

    /// Echo off, no output pending.
    pub(super) fn quiet() -> Rig {
        Rig::new(SimConfig {
            echo: false,
            ..SimConfig::default()
        })
    }

    /// The clock moves to `ms` milliseconds (and the model advances to it).
    pub(super) fn at_ms(&mut self, ms: u64) -> &mut Self {
        self.t = Time::from_millis(ms);
        self.m.advance(self.t);
        self
    }

    /// The clock moves on by `d`.
    pub(super) fn after(&mut self, d: Duration) -> &mut Self {
        self.t = self.t + d;
        self.m.advance(self.t);
        self
    }

    /// Bytes from the host now; the bytes the model took.
    pub(super) fn send(&mut self, b: &[u8]) -> Vec<u8> {
        self.m.host_bytes(self.t, b).to_vec()
    }

    /// A command line (CR appended) now.
    pub(super) fn line(&mut self, l: &str) -> &mut Self {
        self.send(format!("{l}\r").as_bytes());
        self
    }

    /// Everything the model has for the host, as one escaped string (a discard shown as
    /// `<discard>`).
    pub(super) fn host(&mut self) -> String {
        let mut s = String::new();
        while let Some(p) = self.m.poll_host() {
            match p {
                ToHost::Echo(b) | ToHost::Message(b) => s.push_str(&show(b)),
                ToHost::Discard => s.push_str("<discard>"),
            }
        }
        s
    }

    /// The host must have received exactly `want`.
    pub(super) fn expect(&mut self, want: &str) -> &mut Self {
        assert_eq!(self.host(), show(want.as_bytes()), "at {:?}", self.t);
        self
    }

    /// The network actions so far.
    pub(super) fn net(&mut self) -> Vec<NetAction> {
        std::iter::from_fn(|| self.m.poll_net()).collect()
    }

    /// The network actions must be exactly `want`.
    pub(super) fn expect_net(&mut self, want: &[NetAction]) -> &mut Self {
        assert_eq!(self.net(), want, "at {:?}", self.t);
        self
    }

    /// Bytes from the broker on `link` now.
    pub(super) fn broker(&mut self, link: LinkId, b: &[u8]) -> &mut Self {
        self.m.network(self.t, NetEvent::Data(link, b));
        self
    }

    /// `AT+QMTOPEN` of client `id`, connected at once: its link.
    pub(super) fn open(&mut self, id: u8) -> LinkId {
        self.line(&format!("AT+QMTOPEN={id},\"broker.test\",1883"));
        let link = match self.net().as_slice() {
            [NetAction::Connect { link, .. }] => *link,
            other => panic!("no connect: {other:?}"),
        };
        self.m.network(self.t, NetEvent::Connected(link));
        self.expect(&format!("\r\nOK\r\n\r\n+QMTOPEN: {id},0\r\n"));
        link
    }

    /// Open and connect client `id` (client id `c`, options as they are): its link.
    pub(super) fn connect(&mut self, id: u8) -> LinkId {
        let link = self.open(id);
        self.line(&format!("AT+QMTCONN={id},\"c\""));
        assert!(matches!(self.net().as_slice(), [NetAction::Send { .. }]));
        self.broker(link, b"\x20\x02\x00\x00");
        self.expect(&format!("\r\nOK\r\n\r\n+QMTCONN: {id},0,0\r\n"));
        link
    }
}

/// `Send { link, bytes }`.
pub(super) fn send(link: LinkId, bytes: &[u8]) -> NetAction {
    NetAction::Send {
        link,
        bytes: bytes.to_vec(),
    }
}

/// `Close { link }`.
pub(super) fn close(link: LinkId) -> NetAction {
    NetAction::Close { link }
}
