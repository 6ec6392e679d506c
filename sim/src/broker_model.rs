//! A model of an MQTT 3.1/3.1.1 broker, good enough for a device's view of it, with no
//! socket, thread or clock of its own (like [`crate::model::Modem`]): the caller hands it a
//! connection's bytes at a [`Time`], the passing of time and restarts, and takes what it
//! sends ([`BrokerAction`]: bytes on a connection, or a connection it closes).
//!
//! What it does, as Mosquitto 2.0 does it with its defaults (the scripted scenarios of
//! `tests/broker_model.rs` run against both and compare what the device receives):
//!
//! - **Sessions**: CONNECT at level 3 (`MQIsdp`) or 4 (`MQTT`); clean session on (a new
//!   session, discarded at the end) or off (kept across connections: subscriptions, QoS 1/2
//!   messages queued while offline, messages in flight sent again on the next connect, with
//!   DUP for PUBLISH and as PUBREL after PUBREC); CONNACK's session-present flag (level 4);
//!   a second connection with the same client id takes the session over (the first is
//!   closed and its will published).
//! - **Flows**: QoS 0, 1 and 2 both ways (PUBACK; PUBREC/PUBREL/PUBCOMP, an incoming QoS 2
//!   message routed once, at its PUBLISH as rmqtt does (Mosquitto routes it at its PUBREL:
//!   MQTT 3.1.1 4.3.3 allows both), a duplicate before its PUBREL acknowledged again and
//!   not routed);
//!   a message is delivered to each matching subscription at the lower of the two QoS (the
//!   highest of a session's matching subscriptions); QoS 0 messages are not queued for an
//!   offline session (as Mosquitto; rmqtt queues them; 3.1.2.4 allows both); at most [`MAX_IN_FLIGHT`] messages in flight per session, the rest
//!   queued in order.
//! - **Retained messages**: stored per topic (an empty payload clears), sent with the
//!   retain flag after a SUBSCRIBE whose filter matches; delivered with retain 0 to the
//!   subscriptions that exist when it is published.
//! - **Keep-alive**: a connection silent for 1.5 times its keep-alive is closed and its will
//!   published; PINGREQ answered.
//! - **Wills**: published when a connection ends without DISCONNECT (closed by the client's
//!   side, by keep-alive, by a protocol error, by a takeover), not after DISCONNECT.
//! - **Restarts** ([`BrokerModel::restart`]): every connection closed (no wills); with
//!   `keep_state` the persistent sessions (clean session off) and the retained messages
//!   survive, as with Mosquitto's `persistence true`; without, everything is gone.
//! - **Hostile bytes**: whatever a client sends, the model never panics: bytes that are not
//!   MQTT close the connection (and publish its will).
//!
//! Not modelled: authentication (every client id, user and password is accepted), MQTT 5,
//! `$SYS`, ACLs, retransmission on a timer (Mosquitto 2.0 does not either), message expiry.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use crate::model::Time;

/// Messages in flight per session (Mosquitto's `max_inflight_messages` default is 20).
pub const MAX_IN_FLIGHT: usize = 20;
/// The largest packet the model takes from a client (larger ones close the connection).
pub const MAX_PACKET: usize = 1 << 20;

/// A connection, numbered by the caller (a TCP connection: the world's link number).
pub type ConnId = u64;

/// What the broker does on the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokerAction {
    /// Bytes to the client on `conn` (whole packets).
    Send {
        /// The connection.
        conn: ConnId,
        /// Encoded MQTT.
        bytes: Vec<u8>,
    },
    /// The broker closes `conn`.
    Close {
        /// The connection.
        conn: ConnId,
    },
}

/// A PUBLISH the broker received from a client (the model's log, for a world's checks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// When it arrived.
    pub at: Time,
    /// The client id of the connection it came on.
    pub client_id: String,
    /// Its topic.
    pub topic: String,
    /// Its payload.
    pub payload: Vec<u8>,
    /// Its QoS.
    pub qos: u8,
    /// Its retain flag.
    pub retain: bool,
    /// Its DUP flag.
    pub dup: bool,
    /// Its packet id (0 for QoS 0).
    pub pkid: u16,
    /// False for a QoS 2 duplicate that arrived before the PUBREL of its first copy (the
    /// broker did not route it again).
    pub routed: bool,
}

/// A message on its way to a session.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Outgoing {
    topic: String,
    payload: Vec<u8>,
    qos: u8,
    retain: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// QoS 1: PUBLISH sent, waiting for PUBACK.
    Ack,
    /// QoS 2: PUBLISH sent, waiting for PUBREC.
    Received,
    /// QoS 2: PUBREL sent, waiting for PUBCOMP.
    Released,
}

#[derive(Debug, Clone, Default)]
struct Session {
    clean: bool,
    conn: Option<ConnId>,
    /// Filter -> granted QoS, in filter order (deterministic).
    subs: BTreeMap<String, u8>,
    queued: VecDeque<Outgoing>,
    /// Packet id -> (message, phase), in the order they were sent.
    inflight: Vec<(u16, Outgoing, Phase)>,
    /// Incoming QoS 2 packet ids whose PUBREL has not come.
    incoming: BTreeSet<u16>,
    next_pkid: u16,
}

#[derive(Debug, Clone)]
struct Will {
    topic: String,
    payload: Vec<u8>,
    qos: u8,
    retain: bool,
}

#[derive(Debug)]
struct Conn {
    buf: Vec<u8>,
    /// The client id once CONNECT was accepted.
    client: Option<String>,
    level: u8,
    keepalive: u16,
    last_rx: Time,
    will: Option<Will>,
}

/// The broker. See the module documentation.
#[derive(Debug, Default)]
pub struct BrokerModel {
    conns: BTreeMap<ConnId, Conn>,
    sessions: BTreeMap<String, Session>,
    retained: BTreeMap<String, Outgoing>,
    out: VecDeque<BrokerAction>,
    log: Vec<Received>,
    now: Time,
    running: bool,
}

/// A packet from a client, decoded.
#[derive(Debug)]
enum FromClient {
    Connect {
        level: u8,
        clean: bool,
        keepalive: u16,
        client_id: String,
        will: Option<Will>,
    },
    Publish {
        topic: String,
        pkid: u16,
        qos: u8,
        retain: bool,
        dup: bool,
        payload: Vec<u8>,
    },
    PubAck(u16),
    PubRec(u16),
    PubRel(u16),
    PubComp(u16),
    Subscribe(u16, Vec<(String, u8)>),
    Unsubscribe(u16, Vec<String>),
    PingReq,
    Disconnect,
}

/// Not MQTT (or not what a client may send).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Malformed;

impl BrokerModel {
    /// A running broker with no session and no retained message.
    pub fn new() -> BrokerModel {
        BrokerModel {
            running: true,
            ..BrokerModel::default()
        }
    }

    // ------------------------------------------------------------ inputs

    /// A client opened connection `conn` at `now`. `false` (and nothing else happens) while
    /// the broker is stopped: the connect is refused.
    pub fn accept(&mut self, now: Time, conn: ConnId) -> bool {
        self.now = self.now.max(now);
        if !self.running {
            return false;
        }
        self.conns.insert(
            conn,
            Conn {
                buf: Vec::new(),
                client: None,
                level: 4,
                keepalive: 0,
                last_rx: self.now,
                will: None,
            },
        );
        true
    }

    /// Bytes from the client on `conn` at `now`, cut anywhere.
    pub fn bytes(&mut self, now: Time, conn: ConnId, bytes: &[u8]) {
        self.advance(now);
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.last_rx = self.now;
        c.buf.extend_from_slice(bytes);
        loop {
            let Some(c) = self.conns.get_mut(&conn) else {
                return;
            };
            match next_packet(&mut c.buf) {
                None => return,
                Some(Err(Malformed)) => return self.drop_conn(conn, true, true),
                Some(Ok(p)) => self.packet(conn, p),
            }
        }
    }

    /// The client's side closed `conn` (or the network lost it) at `now`: its will goes
    /// out. Nothing is sent back.
    pub fn closed(&mut self, now: Time, conn: ConnId) {
        self.advance(now);
        self.drop_conn(conn, true, false);
    }

    /// Time has come to `now`: connections silent for 1.5 keep-alive periods are closed.
    pub fn advance(&mut self, now: Time) {
        self.now = self.now.max(now);
        loop {
            let expired = self
                .conns
                .iter()
                .find(|(_, c)| expiry(c).is_some_and(|t| t <= self.now))
                .map(|(&id, _)| id);
            match expired {
                Some(id) => self.drop_conn(id, true, true),
                None => break,
            }
        }
    }

    /// The broker stops at `now`: every connection closed, no will published; with
    /// `keep_state` the persistent sessions (queued and in-flight messages, subscriptions)
    /// and the retained messages are kept, else everything is forgotten. It refuses
    /// connections until [`BrokerModel::start`].
    pub fn stop(&mut self, now: Time, keep_state: bool) {
        self.advance(now);
        let conns: Vec<ConnId> = self.conns.keys().copied().collect();
        for id in conns {
            self.drop_conn(id, false, true);
        }
        if keep_state {
            self.sessions.retain(|_, s| !s.clean);
        } else {
            self.sessions.clear();
            self.retained.clear();
        }
        self.running = false;
    }

    /// The broker runs again.
    pub fn start(&mut self) {
        self.running = true;
    }

    /// Whether it runs.
    pub fn running(&self) -> bool {
        self.running
    }

    /// Another client (an application server, say) publishes at `now`: routed to the
    /// matching subscriptions (and stored, with `retain`). `false` (nothing happens) while
    /// the broker is stopped.
    pub fn publish(
        &mut self,
        now: Time,
        topic: &str,
        payload: &[u8],
        qos: u8,
        retain: bool,
    ) -> bool {
        self.advance(now);
        if !self.running {
            return false;
        }
        let m = Outgoing {
            topic: topic.into(),
            payload: payload.to_vec(),
            qos: qos.min(2),
            retain,
        };
        self.route(m);
        true
    }

    // ------------------------------------------------------------ outputs

    /// The next action, in order.
    pub fn poll(&mut self) -> Option<BrokerAction> {
        self.out.pop_front()
    }

    /// When [`BrokerModel::advance`] is next needed (a keep-alive expiry); `None`: not
    /// until the next input.
    pub fn poll_at(&self) -> Option<Time> {
        self.conns.values().filter_map(expiry).min()
    }

    /// Every PUBLISH received from a client so far, in order.
    pub fn received(&self) -> &[Received] {
        &self.log
    }

    /// Forgets the log (a long run keeps it short).
    pub fn clear_received(&mut self) {
        self.log.clear();
    }

    /// Messages queued or in flight for the session of `client_id`.
    pub fn pending_for(&self, client_id: &str) -> usize {
        self.sessions
            .get(client_id)
            .map_or(0, |s| s.queued.len() + s.inflight.len())
    }

    /// Whether `client_id` is connected now.
    pub fn connected(&self, client_id: &str) -> bool {
        self.sessions
            .get(client_id)
            .is_some_and(|s| s.conn.is_some())
    }

    // ------------------------------------------------------------ inside

    fn send(&mut self, conn: ConnId, bytes: Vec<u8>) {
        self.out.push_back(BrokerAction::Send { conn, bytes });
    }

    /// Ends `conn`: its will published (`will`), the broker closing it (`close`) or the
    /// client having done so; a clean session is discarded.
    fn drop_conn(&mut self, conn: ConnId, will: bool, close: bool) {
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        if close {
            self.out.push_back(BrokerAction::Close { conn });
        }
        if let Some(id) = &c.client {
            if let Some(s) = self.sessions.get_mut(id) {
                if s.conn == Some(conn) {
                    s.conn = None;
                    if s.clean {
                        self.sessions.remove(id);
                    }
                }
            }
        }
        if let (true, Some(w)) = (will, c.will) {
            self.route(Outgoing {
                topic: w.topic,
                payload: w.payload,
                qos: w.qos,
                retain: w.retain,
            });
        }
    }

    fn packet(&mut self, conn: ConnId, p: FromClient) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let client = match (&c.client, &p) {
            (None, FromClient::Connect { .. }) => None,
            (Some(_), FromClient::Connect { .. }) | (None, _) => {
                // A second CONNECT, or anything before the first: a protocol error.
                return self.drop_conn(conn, true, true);
            }
            (Some(id), _) => Some(id.clone()),
        };
        match (client, p) {
            (
                None,
                FromClient::Connect {
                    level,
                    clean,
                    keepalive,
                    client_id,
                    will,
                },
            ) => self.connect(conn, level, clean, keepalive, client_id, will),
            (Some(id), p) => self.on_packet(conn, &id, p),
            (None, _) => {}
        }
    }

    fn connect(
        &mut self,
        conn: ConnId,
        level: u8,
        clean: bool,
        keepalive: u16,
        client_id: String,
        will: Option<Will>,
    ) {
        if client_id.is_empty() && !clean {
            // Identifier rejected (3.1.1, 3.1.3.1).
            self.send(conn, vec![0x20, 2, 0, 2]);
            return self.drop_conn(conn, false, true);
        }
        let client_id = if client_id.is_empty() {
            format!("auto-{conn}")
        } else {
            client_id
        };
        // A takeover: the old connection closed, its will published.
        if let Some(old) = self.sessions.get(&client_id).and_then(|s| s.conn) {
            if old != conn {
                self.drop_conn(old, true, true);
            }
        }
        let present = if clean {
            self.sessions.remove(&client_id);
            false
        } else {
            self.sessions.contains_key(&client_id)
        };
        let s = self.sessions.entry(client_id.clone()).or_default();
        s.clean = clean;
        s.conn = Some(conn);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.client = Some(client_id.clone());
            c.level = level;
            c.keepalive = keepalive;
            c.will = will;
        }
        let flags = u8::from(present && level >= 4);
        self.send(conn, vec![0x20, 2, flags, 0]);
        // Messages in flight go again (DUP; PUBREL where PUBREC came), then the queue.
        let again: Vec<(u16, Outgoing, Phase)> = self
            .sessions
            .get(&client_id)
            .map(|s| s.inflight.clone())
            .unwrap_or_default();
        for (pkid, m, phase) in again {
            let bytes = match phase {
                Phase::Released => ack(0x62, pkid),
                Phase::Ack | Phase::Received => encode_publish(&m, pkid, true),
            };
            self.send(conn, bytes);
        }
        self.pump(&client_id);
    }

    fn on_packet(&mut self, conn: ConnId, id: &str, p: FromClient) {
        match p {
            FromClient::Connect { .. } => {}
            FromClient::Publish {
                topic,
                pkid,
                qos,
                retain,
                dup,
                payload,
            } => {
                let fresh = qos < 2
                    || self
                        .sessions
                        .get_mut(id)
                        .is_some_and(|s| s.incoming.insert(pkid));
                self.log.push(Received {
                    at: self.now,
                    client_id: id.into(),
                    topic: topic.clone(),
                    payload: payload.clone(),
                    qos,
                    retain,
                    dup,
                    pkid,
                    routed: fresh,
                });
                match qos {
                    1 => self.send(conn, ack(0x40, pkid)),
                    2 => self.send(conn, ack(0x50, pkid)),
                    _ => {}
                }
                if fresh {
                    self.route(Outgoing {
                        topic,
                        payload,
                        qos,
                        retain,
                    });
                }
            }
            FromClient::PubRel(pkid) => {
                if let Some(s) = self.sessions.get_mut(id) {
                    s.incoming.remove(&pkid);
                }
                self.send(conn, ack(0x70, pkid));
            }
            FromClient::PubAck(pkid) => self.acked(id, pkid, Phase::Ack, None),
            FromClient::PubRec(pkid) => {
                self.acked(id, pkid, Phase::Received, Some(Phase::Released));
                // PUBREL, whether or not the id was known (3.1.1, 4.3.3: the sender of a
                // PUBREC gets a PUBREL).
                self.send(conn, ack(0x62, pkid));
            }
            FromClient::PubComp(pkid) => self.acked(id, pkid, Phase::Released, None),
            FromClient::Subscribe(pkid, filters) => {
                let mut body = vec![(pkid >> 8) as u8, pkid as u8];
                for (f, q) in &filters {
                    body.push((*q).min(2));
                    if let Some(s) = self.sessions.get_mut(id) {
                        s.subs.insert(f.clone(), (*q).min(2));
                    }
                }
                self.send(conn, frame(0x90, &body));
                // Retained messages for each filter, in topic order.
                let mut sent = Vec::new();
                for (f, q) in &filters {
                    for (t, m) in &self.retained {
                        if topic_matches(f, t) && !sent.contains(t) {
                            sent.push(t.clone());
                            let mut m = m.clone();
                            m.qos = m.qos.min(*q);
                            m.retain = true;
                            self.sessions
                                .get_mut(id)
                                .into_iter()
                                .for_each(|s| s.queued.push_back(m.clone()));
                        }
                    }
                }
                self.pump(id);
            }
            FromClient::Unsubscribe(pkid, filters) => {
                if let Some(s) = self.sessions.get_mut(id) {
                    for f in &filters {
                        s.subs.remove(f);
                    }
                }
                self.send(conn, ack(0xb0, pkid));
            }
            FromClient::PingReq => self.send(conn, vec![0xd0, 0]),
            FromClient::Disconnect => {
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.will = None;
                }
                self.drop_conn(conn, false, true);
            }
        }
    }

    /// An acknowledgement from the client: the message in flight under `pkid` in `phase`
    /// moves to `next` (or leaves), and the queue moves on.
    fn acked(&mut self, id: &str, pkid: u16, phase: Phase, next: Option<Phase>) {
        let Some(s) = self.sessions.get_mut(id) else {
            return;
        };
        if let Some(i) = s
            .inflight
            .iter()
            .position(|(p, _, ph)| *p == pkid && *ph == phase)
        {
            match next {
                Some(n) => s.inflight[i].2 = n,
                None => {
                    s.inflight.remove(i);
                }
            }
        }
        self.pump(id);
    }

    /// A message to every matching subscription.
    fn route(&mut self, m: Outgoing) {
        if m.retain {
            if m.payload.is_empty() {
                self.retained.remove(&m.topic);
            } else {
                self.retained.insert(m.topic.clone(), m.clone());
            }
        }
        let ids: Vec<String> = self.sessions.keys().cloned().collect();
        for id in ids {
            let Some(s) = self.sessions.get_mut(&id) else {
                continue;
            };
            let Some(q) = s
                .subs
                .iter()
                .filter(|(f, _)| topic_matches(f, &m.topic))
                .map(|(_, q)| *q)
                .max()
            else {
                continue;
            };
            let qos = q.min(m.qos);
            if s.conn.is_none() && qos == 0 {
                continue;
            }
            s.queued.push_back(Outgoing {
                qos,
                retain: false,
                ..m.clone()
            });
            self.pump(&id);
        }
    }

    /// Sends what a connected session can have in flight.
    fn pump(&mut self, id: &str) {
        let Some(s) = self.sessions.get_mut(id) else {
            return;
        };
        let Some(conn) = s.conn else {
            return;
        };
        let mut out = Vec::new();
        while let Some(m) = s.queued.front() {
            if m.qos > 0 && s.inflight.len() >= MAX_IN_FLIGHT {
                break;
            }
            let m = s.queued.pop_front().unwrap_or_else(|| unreachable!());
            if m.qos == 0 {
                out.push(encode_publish(&m, 0, false));
                continue;
            }
            let pkid = loop {
                s.next_pkid = s.next_pkid.wrapping_add(1).max(1);
                let p = s.next_pkid;
                if !s.inflight.iter().any(|(q, _, _)| *q == p) {
                    break p;
                }
            };
            out.push(encode_publish(&m, pkid, false));
            let phase = if m.qos == 1 {
                Phase::Ack
            } else {
                Phase::Received
            };
            s.inflight.push((pkid, m, phase));
        }
        for b in out {
            self.send(conn, b);
        }
    }
}

/// When a connection's keep-alive runs out.
fn expiry(c: &Conn) -> Option<Time> {
    (c.keepalive > 0).then(|| c.last_rx + Duration::from_millis(u64::from(c.keepalive) * 1500))
}

/// MQTT 3.1.1 topic matching (section 4.7): `+` one level, `#` the rest (and the parent);
/// wildcards at the start do not match topics starting with `$`.
pub fn topic_matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

// ------------------------------------------------------------ the codec (client side in)

fn frame(first: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![first];
    let mut len = body.len();
    loop {
        let mut b = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            b |= 0x80;
        }
        v.push(b);
        if len == 0 {
            break;
        }
    }
    v.extend_from_slice(body);
    v
}

fn ack(first: u8, pkid: u16) -> Vec<u8> {
    vec![first, 2, (pkid >> 8) as u8, pkid as u8]
}

fn encode_publish(m: &Outgoing, pkid: u16, dup: bool) -> Vec<u8> {
    let first = 0x30 | (u8::from(dup && m.qos > 0) << 3) | (m.qos << 1) | u8::from(m.retain);
    let mut body = Vec::with_capacity(m.topic.len() + m.payload.len() + 4);
    body.extend_from_slice(&(m.topic.len() as u16).to_be_bytes());
    body.extend_from_slice(m.topic.as_bytes());
    if m.qos > 0 {
        body.extend_from_slice(&pkid.to_be_bytes());
    }
    body.extend_from_slice(&m.payload);
    frame(first, &body)
}

/// The next whole packet at the head of `buf` (taken out of it).
fn next_packet(buf: &mut Vec<u8>) -> Option<Result<FromClient, Malformed>> {
    let mut len = 0usize;
    let mut header = 0;
    for i in 0..4 {
        let byte = *buf.get(1 + i)?;
        len |= usize::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            header = 2 + i;
            break;
        }
    }
    if header == 0 || len > MAX_PACKET {
        return Some(Err(Malformed));
    }
    if buf.len() < header + len {
        return None;
    }
    let p = parse(buf[0], &buf[header..header + len]);
    buf.drain(..header + len);
    Some(p)
}

struct Cursor<'b> {
    b: &'b [u8],
    at: usize,
}

impl Cursor<'_> {
    fn byte(&mut self) -> Result<u8, Malformed> {
        let v = *self.b.get(self.at).ok_or(Malformed)?;
        self.at += 1;
        Ok(v)
    }
    fn word(&mut self) -> Result<u16, Malformed> {
        Ok(u16::from(self.byte()?) << 8 | u16::from(self.byte()?))
    }
    fn bytes(&mut self) -> Result<Vec<u8>, Malformed> {
        let n = usize::from(self.word()?);
        let v = self.b.get(self.at..self.at + n).ok_or(Malformed)?.to_vec();
        self.at += n;
        Ok(v)
    }
    fn string(&mut self) -> Result<String, Malformed> {
        let s = String::from_utf8(self.bytes()?).map_err(|_| Malformed)?;
        if s.contains('\0') {
            return Err(Malformed);
        }
        Ok(s)
    }
    fn rest(&self) -> &[u8] {
        self.b.get(self.at..).unwrap_or(&[])
    }
    fn done(&self) -> bool {
        self.at >= self.b.len()
    }
}

fn id_only(body: &[u8]) -> Result<u16, Malformed> {
    match body {
        [a, b] if (*a, *b) != (0, 0) => Ok(u16::from(*a) << 8 | u16::from(*b)),
        _ => Err(Malformed),
    }
}

fn name_ok(t: &str) -> bool {
    !t.is_empty() && !t.contains(['+', '#'])
}

fn filter_ok(f: &str) -> bool {
    if f.is_empty() {
        return false;
    }
    let levels: Vec<&str> = f.split('/').collect();
    levels.iter().enumerate().all(|(i, l)| {
        if l.contains('#') {
            *l == "#" && i == levels.len() - 1
        } else {
            !l.contains('+') || *l == "+"
        }
    })
}

fn parse(first: u8, body: &[u8]) -> Result<FromClient, Malformed> {
    let flags = first & 0x0f;
    let need = |want: u8| {
        if flags == want {
            Ok(())
        } else {
            Err(Malformed)
        }
    };
    let mut c = Cursor { b: body, at: 0 };
    Ok(match first >> 4 {
        1 => {
            need(0)?;
            let name = c.bytes()?;
            let level = c.byte()?;
            match (&name[..], level) {
                (b"MQTT", 4) | (b"MQIsdp", 3) => {}
                _ => return Err(Malformed),
            }
            let f = c.byte()?;
            if f & 1 != 0 {
                return Err(Malformed);
            }
            let keepalive = c.word()?;
            let client_id = c.string()?;
            let will = if f & 0x04 != 0 {
                let topic = c.string()?;
                let payload = c.bytes()?;
                let qos = (f >> 3) & 3;
                if qos == 3 || !name_ok(&topic) {
                    return Err(Malformed);
                }
                Some(Will {
                    topic,
                    payload,
                    qos,
                    retain: f & 0x20 != 0,
                })
            } else {
                None
            };
            if f & 0x80 != 0 {
                c.string()?;
            }
            if f & 0x40 != 0 {
                c.bytes()?;
            }
            if !c.done() {
                return Err(Malformed);
            }
            FromClient::Connect {
                level,
                clean: f & 0x02 != 0,
                keepalive,
                client_id,
                will,
            }
        }
        3 => {
            let qos = (flags >> 1) & 3;
            if qos == 3 {
                return Err(Malformed);
            }
            let topic = c.string()?;
            if !name_ok(&topic) {
                return Err(Malformed);
            }
            let pkid = if qos > 0 {
                match c.word()? {
                    0 => return Err(Malformed),
                    id => id,
                }
            } else {
                0
            };
            FromClient::Publish {
                topic,
                pkid,
                qos,
                retain: flags & 1 != 0,
                dup: flags & 8 != 0,
                payload: c.rest().to_vec(),
            }
        }
        4 => {
            need(0)?;
            FromClient::PubAck(id_only(body)?)
        }
        5 => {
            need(0)?;
            FromClient::PubRec(id_only(body)?)
        }
        6 => {
            need(2)?;
            FromClient::PubRel(id_only(body)?)
        }
        7 => {
            need(0)?;
            FromClient::PubComp(id_only(body)?)
        }
        8 => {
            need(2)?;
            let pkid = c.word()?;
            let mut filters = Vec::new();
            while !c.done() {
                let f = c.string()?;
                let q = c.byte()?;
                if q > 2 || !filter_ok(&f) {
                    return Err(Malformed);
                }
                filters.push((f, q));
            }
            if pkid == 0 || filters.is_empty() {
                return Err(Malformed);
            }
            FromClient::Subscribe(pkid, filters)
        }
        10 => {
            need(2)?;
            let pkid = c.word()?;
            let mut filters = Vec::new();
            while !c.done() {
                let f = c.string()?;
                if !filter_ok(&f) {
                    return Err(Malformed);
                }
                filters.push(f);
            }
            if pkid == 0 || filters.is_empty() {
                return Err(Malformed);
            }
            FromClient::Unsubscribe(pkid, filters)
        }
        12 if body.is_empty() => {
            need(0)?;
            FromClient::PingReq
        }
        14 if body.is_empty() => {
            need(0)?;
            FromClient::Disconnect
        }
        _ => return Err(Malformed),
    })
}

#[cfg(test)]
mod tests;
