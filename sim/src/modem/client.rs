//! One MQTT client (`tcpconnectID` 0-5): its state, its link and its operations in flight.

use std::collections::HashSet;
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use super::qmtcfg::ClientCfg;

/// State of one MQTT client of the simulated modem (see `SimHandle::client_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientState {
    /// Network not open.
    Closed,
    /// `AT+QMTOPEN` in progress.
    Opening,
    /// Network open, MQTT not connected (`AT+QMTCONN?` state 1, "initial").
    Opened,
    /// CONNECT sent, waiting for CONNACK (state 2).
    Connecting,
    /// CONNACK 0 received (state 3).
    Connected,
}

pub(crate) type St = ClientState;

impl ClientState {
    /// The TCP link is up (opened, connecting or connected).
    pub fn has_link(self) -> bool {
        matches!(self, St::Opened | St::Connecting | St::Connected)
    }
}

/// What an outgoing QoS 1/2 publish waits for: PUBACK, PUBREC or PUBCOMP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PubStage {
    Ack,
    Rec,
    Comp,
}

/// An acknowledged operation: SUBSCRIBE, UNSUBSCRIBE or a QoS 1/2 PUBLISH.
pub(crate) enum OpKind {
    Sub {
        packet: Vec<u8>,
    },
    Uns {
        packet: Vec<u8>,
    },
    Pub {
        stage: PubStage,
        topic: String,
        payload: Vec<u8>,
        qos: u8,
        retain: bool,
    },
}

impl OpKind {
    /// The prefix of its result lines.
    pub(crate) fn prefix(&self) -> &'static str {
        match self {
            OpKind::Sub { .. } => "+QMTSUB",
            OpKind::Uns { .. } => "+QMTUNS",
            OpKind::Pub { .. } => "+QMTPUB",
        }
    }

    /// The result line "failed to send": `+QMTSUB: <id>,<msgID>,2`.
    pub(crate) fn failed(&self, id: usize, msgid: u16) -> String {
        format!("{}: {id},{msgid},2", self.prefix())
    }
}

pub(crate) struct Op {
    pub(crate) msgid: u16,
    pub(crate) kind: OpKind,
    pub(crate) deadline: Instant,
    pub(crate) retries: u32,
}

pub(crate) struct Client {
    pub(crate) cfg: ClientCfg,
    pub(crate) st: St,
    pub(crate) host: Vec<u8>,
    pub(crate) port: u16,
    /// Bumped whenever the link is dropped, so that late events of an old link are ignored.
    pub(crate) gen: u64,
    pub(crate) stream: Option<TcpStream>,
    pub(crate) ops: Vec<Op>,
    /// Incoming QoS 2 packet ids reported and waiting for PUBREL.
    pub(crate) in_qos2: HashSet<u16>,
    pub(crate) last_tx: Instant,
    pub(crate) ping_deadline: Option<Instant>,
    pub(crate) conn_deadline: Option<Instant>,
}

impl Client {
    pub(crate) fn new(version: u8) -> Self {
        Client {
            cfg: ClientCfg::new(version),
            st: St::Closed,
            host: Vec::new(),
            port: 0,
            gen: 0,
            stream: None,
            ops: Vec::new(),
            in_qos2: HashSet::new(),
            last_tx: Instant::now(),
            ping_deadline: None,
            conn_deadline: None,
        }
    }

    pub(crate) fn pkt_timeout(&self) -> Duration {
        self.cfg.pkt_timeout()
    }

    /// Drop the link (no MQTT traffic) and forget everything in flight.
    pub(crate) fn drop_link(&mut self) {
        if let Some(s) = self.stream.take() {
            let _ = s.shutdown(Shutdown::Both);
        }
        self.st = St::Closed;
        self.gen += 1;
        self.ops.clear();
        self.in_qos2.clear();
        self.ping_deadline = None;
        self.conn_deadline = None;
    }

    pub(crate) fn send(&mut self, bytes: &[u8]) -> bool {
        use std::io::Write;
        let Some(s) = self.stream.as_mut() else {
            return false;
        };
        let ok = s.write_all(bytes).is_ok();
        if ok {
            self.last_tx = Instant::now();
        }
        ok
    }

    pub(crate) fn find_op(&self, msgid: u16, pred: impl Fn(&OpKind) -> bool) -> Option<usize> {
        self.ops
            .iter()
            .position(|o| o.msgid == msgid && pred(&o.kind))
    }
}
