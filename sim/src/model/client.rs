//! One MQTT client (`tcpconnectID` 0-5): its options, its state, its link and its operations
//! in flight. Only this file changes a client: every change is a named method below, called
//! by the modem for a command, a network event or the passing of time; what the client asks
//! of the rest of the model (packets, TCP actions, result lines) goes into [`Effects`].

use std::collections::BTreeSet;
use std::time::Duration;

use crate::config::SimFaults;
use crate::model::at::{hex_encode_upper, Param, Refused};
use crate::model::effects::Effects;
use crate::model::link::{ConnectError, LinkId};
use crate::model::packet::{FromBroker, ToBroker};
use crate::model::qmtcfg::{ClientCfg, Opt};
use crate::model::time::Time;

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

impl ClientState {
    /// The TCP link is up (opened, connecting or connected).
    pub fn has_link(self) -> bool {
        matches!(
            self,
            ClientState::Opened | ClientState::Connecting | ClientState::Connected
        )
    }
}

/// How an `AT+QMTOPEN` ends once its `open_delay` has passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpenPlan {
    /// A TCP connect.
    Connect,
    /// `+QMTOPEN: <id>,<code>` without a connect (not registered: 3; a `fail_open` fault).
    Fail(i32),
}

/// What an outgoing QoS 1/2 publish waits for: PUBACK, PUBREC or PUBCOMP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PubStage {
    Ack,
    Rec,
    Comp,
}

/// An acknowledged operation: SUBSCRIBE, UNSUBSCRIBE or a QoS 1/2 PUBLISH.
#[derive(Debug)]
enum OpKind {
    Sub(Vec<(String, u8)>),
    Uns(Vec<String>),
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
    fn prefix(&self) -> &'static str {
        match self {
            OpKind::Sub(_) => "+QMTSUB",
            OpKind::Uns(_) => "+QMTUNS",
            OpKind::Pub { .. } => "+QMTPUB",
        }
    }

    /// Its packet, first sent (`dup` false) or again.
    fn packet(&self, msgid: u16, dup: bool) -> ToBroker {
        match self {
            OpKind::Sub(filters) => ToBroker::Subscribe {
                pkid: msgid,
                filters: filters.clone(),
            },
            OpKind::Uns(filters) => ToBroker::Unsubscribe {
                pkid: msgid,
                filters: filters.clone(),
            },
            OpKind::Pub {
                stage: PubStage::Comp,
                ..
            } => ToBroker::PubRel(msgid),
            OpKind::Pub {
                topic,
                payload,
                qos,
                retain,
                ..
            } => ToBroker::Publish {
                topic: topic.clone(),
                pkid: msgid,
                payload: payload.clone(),
                qos: *qos,
                retain: *retain,
                dup,
            },
        }
    }

    fn waits_for_pub(&self, stages: &[PubStage]) -> bool {
        matches!(self, OpKind::Pub { stage, .. } if stages.contains(stage))
    }
}

#[derive(Debug)]
struct Op {
    msgid: u16,
    kind: OpKind,
    deadline: Time,
    retries: u32,
}

/// The credentials of an `AT+QMTCONN`.
#[derive(Debug, Clone)]
pub(crate) struct Login {
    pub(crate) client_id: String,
    pub(crate) username: Option<String>,
    pub(crate) password: Option<String>,
}

#[derive(Debug)]
pub(crate) struct Client {
    id: u8,
    cfg: ClientCfg,
    state: ClientState,
    /// The link of the current `AT+QMTOPEN` (while opening, opened, connecting, connected).
    link: Option<LinkId>,
    host: Vec<u8>,
    port: u16,
    /// While opening: when the open goes on (its `open_delay` over), and how.
    open_at: Option<(Time, OpenPlan)>,
    ops: Vec<Op>,
    /// Incoming QoS 2 packet ids reported and waiting for PUBREL.
    in_qos2: BTreeSet<u16>,
    last_tx: Time,
    ping_deadline: Option<Time>,
    conn_deadline: Option<Time>,
}

impl Client {
    pub(crate) fn new(id: u8, version: u8) -> Self {
        Client {
            id,
            cfg: ClientCfg::new(version),
            state: ClientState::Closed,
            link: None,
            host: Vec::new(),
            port: 0,
            open_at: None,
            ops: Vec::new(),
            in_qos2: BTreeSet::new(),
            last_tx: Time::ZERO,
            ping_deadline: None,
            conn_deadline: None,
        }
    }

    // ------------------------------------------------------------ reading

    pub(crate) fn state(&self) -> ClientState {
        self.state
    }

    pub(crate) fn link(&self) -> Option<LinkId> {
        self.link
    }

    pub(crate) fn send_hex(&self) -> bool {
        self.cfg.send_hex()
    }

    pub(crate) fn echomode(&self) -> bool {
        self.cfg.echomode()
    }

    /// The query line of option `o` (`None` while unset).
    pub(crate) fn query(&self, o: Opt, quote: bool) -> Option<Vec<u8>> {
        self.cfg.query(o, quote)
    }

    /// Its line of `AT+QMTOPEN?` (`None` without a link).
    pub(crate) fn open_line(&self) -> Option<Vec<u8>> {
        if !self.state.has_link() {
            return None;
        }
        let mut l = format!("+QMTOPEN: {},\"", self.id).into_bytes();
        l.extend_from_slice(&self.host);
        l.extend_from_slice(format!("\",{}", self.port).as_bytes());
        Some(l)
    }

    /// Its line of `AT+QMTCONN?` (`None` without a link).
    pub(crate) fn conn_line(&self) -> Option<Vec<u8>> {
        let s = match self.state {
            ClientState::Opened => 1,
            ClientState::Connecting => 2,
            ClientState::Connected => 3,
            ClientState::Closed | ClientState::Opening => return None,
        };
        Some(format!("+QMTCONN: {},{s}", self.id).into_bytes())
    }

    /// The next instant [`Client::tick`] has something to do.
    pub(crate) fn next_deadline(&self) -> Option<Time> {
        if !self.on_time() {
            return None;
        }
        let keepalive = match (self.state, self.ping_deadline) {
            (ClientState::Connected, Some(d)) => Some(d),
            (ClientState::Connected, None) => self.keepalive_period().map(|p| self.last_tx + p),
            _ => None,
        };
        [self.open_at.map(|(t, _)| t), self.conn_deadline, keepalive]
            .into_iter()
            .chain(self.ops.iter().map(|o| Some(o.deadline)))
            .flatten()
            .min()
    }

    /// Whether anything of this client runs on time: an open's delay, a CONNACK timeout,
    /// or a connection (keep-alive, operations).
    fn on_time(&self) -> bool {
        self.open_at.is_some()
            || self.conn_deadline.is_some()
            || self.state == ClientState::Connected
    }

    fn keepalive_period(&self) -> Option<Duration> {
        let s = self.cfg.keepalive();
        (s > 0).then(|| Duration::from_secs(u64::from(s)))
    }

    // ------------------------------------------------------------ options

    /// `AT+QMTCFG` write.
    pub(crate) fn configure(&mut self, o: Opt, args: &[Param]) -> Result<(), Refused> {
        self.cfg.write(o, args)
    }

    // ------------------------------------------------------------ link

    fn send(&mut self, fx: &mut Effects, now: Time, p: ToBroker) {
        if let Some(link) = self.link {
            fx.send(link, p);
            self.last_tx = now;
        }
    }

    /// Drop the link (no MQTT traffic) and forget everything in flight.
    fn drop_link(&mut self, fx: &mut Effects) {
        let connect_asked = !(self.state == ClientState::Opening && self.open_at.is_some());
        if let Some(link) = self.link.take() {
            if connect_asked {
                fx.close(link);
            }
        }
        self.state = ClientState::Closed;
        self.open_at = None;
        self.ops.clear();
        self.in_qos2.clear();
        self.ping_deadline = None;
        self.conn_deadline = None;
    }

    /// The module restarts: the link dropped without DISCONNECT, every option back to its
    /// default.
    pub(crate) fn reset(&mut self, fx: &mut Effects, version: u8) {
        self.drop_link(fx);
        *self = Client::new(self.id, version);
    }

    /// `AT+QMTOPEN`: opening on `link` from now; the TCP connect (or the failure `plan` says)
    /// comes after `delay`. A client that is not closed answers `+QMTOPEN: <id>,2`.
    pub(crate) fn open(
        &mut self,
        fx: &mut Effects,
        now: Time,
        link: LinkId,
        (host, port): (Vec<u8>, u16),
        delay: Duration,
        plan: OpenPlan,
    ) {
        if self.state != ClientState::Closed {
            fx.result(format!("+QMTOPEN: {},2", self.id));
            return;
        }
        self.state = ClientState::Opening;
        self.link = Some(link);
        self.host = host;
        self.port = port;
        self.open_at = Some((now + delay, plan));
    }

    /// The open's delay is over: connect (if still registered) or fail.
    fn open_due(&mut self, fx: &mut Effects, plan: OpenPlan, registered: bool) {
        let Some(link) = self.link else { return };
        match plan {
            OpenPlan::Connect if registered => {
                self.open_at = None;
                let host = String::from_utf8_lossy(&self.host).into_owned();
                fx.connect(link, host, self.port);
            }
            OpenPlan::Connect => self.open_failed(fx, 3),
            OpenPlan::Fail(code) => self.open_failed(fx, code),
        }
    }

    fn open_failed(&mut self, fx: &mut Effects, code: i32) {
        self.drop_link(fx);
        fx.result(format!("+QMTOPEN: {},{code}", self.id));
    }

    /// Whether `link` is this client's connect in flight.
    fn connecting_on(&self, link: LinkId) -> bool {
        self.link == Some(link) && self.state == ClientState::Opening && self.open_at.is_none()
    }

    /// The TCP connect of `link` succeeded: opened (`+QMTOPEN: <id>,0`), or 3 if the
    /// registration went meanwhile; a link no longer wanted is closed.
    pub(crate) fn connected(&mut self, fx: &mut Effects, link: LinkId, registered: bool) {
        if !self.connecting_on(link) {
            fx.close(link);
        } else if !registered {
            self.open_failed(fx, 3);
        } else {
            self.state = ClientState::Opened;
            fx.result(format!("+QMTOPEN: {},0", self.id));
        }
    }

    /// The TCP connect of `link` failed: `+QMTOPEN: <id>,-1` or `4`.
    pub(crate) fn connect_failed(&mut self, fx: &mut Effects, link: LinkId, e: ConnectError) {
        if self.connecting_on(link) {
            let code = match e {
                ConnectError::NameNotResolved => 4,
                ConnectError::Refused => -1,
            };
            self.open_failed(fx, code);
        }
    }

    /// The peer closed `link`: `+QMTSTAT: <id>,1`.
    pub(crate) fn link_closed(&mut self, fx: &mut Effects, link: LinkId) {
        if self.link == Some(link) {
            self.lose_link(fx, 1);
        }
    }

    /// The link is lost (the peer reset it: 1; registration lost: 2; the module's own
    /// reason: any code): `+QMTSTAT: <id>,<code>`. Nothing without a link.
    pub(crate) fn lose_link(&mut self, fx: &mut Effects, code: u8) {
        if self.state.has_link() {
            self.drop_link(fx);
            fx.urc(format!("+QMTSTAT: {},{code}", self.id).into_bytes());
        }
    }

    /// `AT+QMTCLOSE`: `+QMTCLOSE: <id>,0` (TCP closed without DISCONNECT), or `-1` when
    /// closed already.
    pub(crate) fn close(&mut self, fx: &mut Effects) {
        if self.state == ClientState::Closed {
            fx.result(format!("+QMTCLOSE: {},-1", self.id));
        } else {
            self.drop_link(fx);
            fx.result(format!("+QMTCLOSE: {},0", self.id));
        }
    }

    // ------------------------------------------------------------ MQTT session

    /// The CONNECT an `AT+QMTCONN` would send, from the options; `Err` (`ERROR`) unless the
    /// client is opened.
    pub(crate) fn connect_packet(&self, login: Login) -> Result<ToBroker, Refused> {
        if self.state != ClientState::Opened {
            return Err(Refused);
        }
        Ok(ToBroker::Connect {
            level: self.cfg.version(),
            client_id: login.client_id,
            username: login.username,
            password: login.password,
            keepalive: self.cfg.keepalive(),
            clean_session: self.cfg.clean_session(),
            will: self.cfg.will(),
        })
    }

    /// `AT+QMTCONN` answered `OK`: send `connect` and wait for CONNACK for `pkt_timeout`;
    /// or, refused by a fault, `+QMTCONN: <id>,0,<code>` and the link closed (the broker
    /// saw nothing).
    pub(crate) fn connect(
        &mut self,
        fx: &mut Effects,
        now: Time,
        connect: ToBroker,
        refused: Option<u8>,
    ) {
        if let Some(code) = refused {
            self.drop_link(fx);
            fx.result(format!("+QMTCONN: {},0,{code}", self.id));
            return;
        }
        self.send(fx, now, connect);
        self.state = ClientState::Connecting;
        self.conn_deadline = Some(now + self.cfg.pkt_timeout());
    }

    /// `AT+QMTDISC`: DISCONNECT and TCP closed, `+QMTDISC: <id>,0`; `-1` when not connected.
    pub(crate) fn disconnect(&mut self, fx: &mut Effects, now: Time) {
        if matches!(self.state, ClientState::Connected | ClientState::Connecting) {
            self.send(fx, now, ToBroker::Disconnect);
            self.drop_link(fx);
            fx.result(format!("+QMTDISC: {},0", self.id));
        } else {
            fx.result(format!("+QMTDISC: {},-1", self.id));
        }
    }

    pub(crate) fn connected_to_broker(&self) -> bool {
        self.state == ClientState::Connected
    }

    /// `AT+QMTSUB` (the client is connected).
    pub(crate) fn subscribe(
        &mut self,
        fx: &mut Effects,
        now: Time,
        msgid: u16,
        filters: Vec<(String, u8)>,
    ) {
        self.start_op(fx, now, msgid, OpKind::Sub(filters));
    }

    /// `AT+QMTUNS` (the client is connected).
    pub(crate) fn unsubscribe(
        &mut self,
        fx: &mut Effects,
        now: Time,
        msgid: u16,
        filters: Vec<String>,
    ) {
        self.start_op(fx, now, msgid, OpKind::Uns(filters));
    }

    /// `AT+QMTPUB`, once the message is known (inline, or at the end of data mode): QoS 0
    /// sent and reported at once, QoS 1/2 acknowledged. `+QMTPUB: <id>,<msgID>,2` when the
    /// client is no longer connected (its link went during data mode).
    pub(crate) fn publish(
        &mut self,
        fx: &mut Effects,
        now: Time,
        msgid: u16,
        (qos, retain): (u8, bool),
        topic: String,
        payload: Vec<u8>,
    ) {
        if self.state != ClientState::Connected {
            fx.result(format!("+QMTPUB: {},{msgid},2", self.id));
            return;
        }
        if qos == 0 {
            let p = ToBroker::Publish {
                topic,
                pkid: 0,
                payload,
                qos: 0,
                retain,
                dup: false,
            };
            self.send(fx, now, p);
            fx.result(format!("+QMTPUB: {},0,0", self.id));
            return;
        }
        let stage = if qos == 1 {
            PubStage::Ack
        } else {
            PubStage::Rec
        };
        let kind = OpKind::Pub {
            stage,
            topic,
            payload,
            qos,
            retain,
        };
        self.start_op(fx, now, msgid, kind);
    }

    /// Send the first packet of an acknowledged operation and start its retransmission timer.
    fn start_op(&mut self, fx: &mut Effects, now: Time, msgid: u16, kind: OpKind) {
        self.send(fx, now, kind.packet(msgid, false));
        self.ops.push(Op {
            msgid,
            kind,
            deadline: now + self.cfg.pkt_timeout(),
            retries: 0,
        });
    }

    fn find_op(&self, msgid: u16, pred: impl Fn(&OpKind) -> bool) -> Option<usize> {
        self.ops
            .iter()
            .position(|o| o.msgid == msgid && pred(&o.kind))
    }

    /// A packet from the broker on this client's link.
    pub(crate) fn on_packet(
        &mut self,
        fx: &mut Effects,
        now: Time,
        p: FromBroker,
        faults: &mut SimFaults,
    ) {
        let id = self.id;
        match p {
            FromBroker::ConnAck(code) => self.on_connack(fx, code, faults),
            FromBroker::Publish {
                topic,
                pkid,
                qos,
                payload,
            } => self.on_publish(fx, now, &topic, (pkid, qos), &payload),
            FromBroker::PubRel(pkid) => {
                self.in_qos2.remove(&pkid);
                self.send(fx, now, ToBroker::PubComp(pkid));
            }
            FromBroker::PubAck(pkid) => {
                let done = format!("+QMTPUB: {id},{pkid},0");
                self.on_final_ack(
                    fx,
                    pkid,
                    |k| k.waits_for_pub(&[PubStage::Ack]),
                    done,
                    faults,
                );
            }
            FromBroker::PubRec(pkid) => self.on_pubrec(fx, now, pkid, faults),
            FromBroker::PubComp(pkid) => {
                let done = format!("+QMTPUB: {id},{pkid},0");
                self.on_final_ack(
                    fx,
                    pkid,
                    |k| k.waits_for_pub(&[PubStage::Comp]),
                    done,
                    faults,
                );
            }
            FromBroker::SubAck(pkid, codes) => {
                let mut done = format!("+QMTSUB: {id},{pkid},0");
                for c in codes {
                    done.push_str(&format!(",{c}"));
                }
                self.on_final_ack(fx, pkid, |k| matches!(k, OpKind::Sub(_)), done, faults);
            }
            FromBroker::UnsubAck(pkid) => {
                let done = format!("+QMTUNS: {id},{pkid},0");
                self.on_final_ack(fx, pkid, |k| matches!(k, OpKind::Uns(_)), done, faults);
            }
            FromBroker::PingResp => {
                if !faults.ignore_pingresp {
                    self.ping_deadline = None;
                }
            }
            FromBroker::Other => {}
        }
    }

    fn on_connack(&mut self, fx: &mut Effects, code: u8, faults: &SimFaults) {
        if self.state != ClientState::Connecting || faults.ignore_connack {
            return;
        }
        self.conn_deadline = None;
        if code == 0 {
            self.state = ClientState::Connected;
            self.ping_deadline = None;
        } else {
            // The server refused: it closes the link, and so does the module.
            self.drop_link(fx);
        }
        fx.result(format!("+QMTCONN: {},0,{code}", self.id));
    }

    /// Acknowledge (QoS 1: PUBACK, QoS 2: PUBREC) and report `+QMTRECV`, once per QoS 2
    /// packet id until its PUBREL.
    fn on_publish(
        &mut self,
        fx: &mut Effects,
        now: Time,
        topic: &[u8],
        (pkid, qos): (u16, u8),
        payload: &[u8],
    ) {
        let report = match qos {
            0 => true,
            1 => {
                self.send(fx, now, ToBroker::PubAck(pkid));
                true
            }
            _ => {
                self.send(fx, now, ToBroker::PubRec(pkid));
                self.in_qos2.insert(pkid)
            }
        };
        if !report {
            return;
        }
        let mut l = format!("+QMTRECV: {},{pkid},\"", self.id).into_bytes();
        l.extend_from_slice(topic);
        l.extend_from_slice(b"\",\"");
        if self.cfg.recv_hex() {
            l.extend_from_slice(&hex_encode_upper(payload));
        } else {
            l.extend_from_slice(payload);
        }
        l.push(b'"');
        fx.urc(l);
    }

    /// PUBREC: the QoS 2 publish moves on to PUBREL/PUBCOMP.
    fn on_pubrec(&mut self, fx: &mut Effects, now: Time, pkid: u16, faults: &mut SimFaults) {
        let Some(i) = self.find_op(pkid, |k| k.waits_for_pub(&[PubStage::Rec, PubStage::Comp]))
        else {
            return;
        };
        if drop_ack(faults) {
            return;
        }
        let deadline = now + self.cfg.pkt_timeout();
        let op = &mut self.ops[i];
        if let OpKind::Pub { stage, .. } = &mut op.kind {
            *stage = PubStage::Comp;
        }
        op.deadline = deadline;
        self.send(fx, now, ToBroker::PubRel(pkid));
    }

    /// The acknowledgement that completes an operation: report `done`.
    fn on_final_ack(
        &mut self,
        fx: &mut Effects,
        pkid: u16,
        waiting: impl Fn(&OpKind) -> bool,
        done: String,
        faults: &mut SimFaults,
    ) {
        if let Some(i) = self.find_op(pkid, waiting) {
            if !drop_ack(faults) {
                self.ops.remove(i);
                fx.result(done);
            }
        }
    }

    // ------------------------------------------------------------ time

    /// Everything due at `now`: the end of an open's delay, the CONNACK timeout, keep-alive,
    /// retransmissions.
    pub(crate) fn tick(&mut self, fx: &mut Effects, now: Time, registered: bool) {
        if !self.on_time() {
            return;
        }
        if let Some((at, plan)) = self.open_at {
            if now >= at {
                self.open_due(fx, plan, registered);
            }
        }
        if self.conn_deadline.is_some_and(|d| now >= d) {
            // No CONNACK within `pkt_timeout`: `+QMTCONN: <id>,2`, link closed.
            self.drop_link(fx);
            fx.result(format!("+QMTCONN: {},2", self.id));
        }
        self.keepalive(fx, now);
        self.retransmit(fx, now);
    }

    /// PINGREQ after `keepalive` seconds without sending; no PINGRESP within `pkt_timeout`:
    /// `+QMTSTAT: <id>,2`, link closed.
    fn keepalive(&mut self, fx: &mut Effects, now: Time) {
        if self.state != ClientState::Connected {
            return;
        }
        match self.ping_deadline {
            Some(d) if now >= d => self.lose_link(fx, 2),
            Some(_) => {}
            None => {
                if self
                    .keepalive_period()
                    .is_some_and(|p| now >= self.last_tx + p)
                {
                    self.send(fx, now, ToBroker::PingReq);
                    self.ping_deadline = Some(now + self.cfg.pkt_timeout());
                }
            }
        }
    }

    /// Operations not acknowledged within `pkt_timeout`: sent again (PUBLISH with DUP, or
    /// PUBREL) up to `retry_times` times, with a progress line when `timeout_notice` is on;
    /// then `...,2`.
    fn retransmit(&mut self, fx: &mut Effects, now: Time) {
        let id = self.id;
        let timeout = self.cfg.pkt_timeout();
        let notice = self.cfg.timeout_notice();
        let mut i = 0;
        while i < self.ops.len() {
            if now < self.ops[i].deadline {
                i += 1;
                continue;
            }
            if self.ops[i].retries >= self.cfg.retry_times() {
                let op = self.ops.remove(i);
                fx.result(format!("{}: {id},{},2", op.kind.prefix(), op.msgid));
                continue;
            }
            let op = &mut self.ops[i];
            op.retries += 1;
            op.deadline = now + timeout;
            let (n, msgid) = (op.retries, op.msgid);
            let line = match op.kind {
                OpKind::Uns(_) => format!("+QMTUNS: {id},{msgid},1"),
                _ => format!("{}: {id},{msgid},1,{n}", op.kind.prefix()),
            };
            let packet = op.kind.packet(msgid, true);
            self.send(fx, now, packet);
            if notice {
                fx.result(line);
            }
            i += 1;
        }
    }
}

/// True when the fault "drop this ack" applies (and consumes one).
fn drop_ack(faults: &mut SimFaults) -> bool {
    let drop = faults.drop_acks > 0;
    faults.drop_acks = faults.drop_acks.saturating_sub(1);
    drop
}
