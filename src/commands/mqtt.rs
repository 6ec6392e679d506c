//! `AT+QMTOPEN`, `AT+QMTCLOSE`, `AT+QMTCONN`, `AT+QMTDISC`, `AT+QMTSUB`,
//! `AT+QMTUNS` and `AT+QMTPUB`: every form of the reference.

use super::parse::{int, lines_with, string, Fields};
use super::{ok_command, test_command, Line};
use crate::channel::Source;
use crate::error::{Error, Field, Problem};
use crate::event::MAX_SUB_TOPICS;
use crate::types::{check_filter, check_quoted, check_topic, limits, quoted_safe, ClientId, QoS};
use atat::{AtatCmd, AtatResp, InternalError};
use heapless::{String, Vec};

fn invalid(field: Field, problem: Problem) -> Error {
    Error::InvalidArgument { field, problem }
}

// ---------------------------------------------------------------- QMTOPEN

/// `AT+QMTOPEN=<id>,"<host_name>",<port>`: open a TCP link to the broker for a
/// client (reference: AT+QMTOPEN, write). Answers `OK`; the outcome follows as
/// `+QMTOPEN: <id>,<result>` within 75 s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct OpenNetwork<'a> {
    client: ClientId,
    host: &'a str,
    port: u16,
}

impl<'a> OpenNetwork<'a> {
    /// `host`: IP address or domain name, 1-100 bytes; `port` 1-65535.
    pub fn new(client: ClientId, host: &'a str, port: u16) -> Result<Self, Error> {
        check_quoted(host, 1, limits::HOST, Field::Host)?;
        if port == 0 {
            return Err(invalid(Field::Port, Problem::OutOfRange));
        }
        Ok(Self { client, host, port })
    }
}

ok_command!(OpenNetwork<'a>, |self, l| {
    l.raw(b"AT+QMTOPEN=").num(self.client.get().into());
    l.quoted(self.host.as_bytes()).num(self.port.into());
});

/// One open client, as `AT+QMTOPEN?` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct OpenLink {
    /// The client.
    pub client: ClientId,
    /// The host it was opened to.
    pub host: String<{ limits::HOST }>,
    /// The port.
    pub port: u16,
}

/// Every open client (`AT+QMTOPEN?`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct OpenLinks(pub Vec<OpenLink, { ClientId::COUNT }>);
impl AtatResp for OpenLinks {}

/// `AT+QMTOPEN?`: which clients are open, to which host and port (reference:
/// AT+QMTOPEN, read). One `+QMTOPEN: <id>,"<host>",<port>` line per open client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct QueryOpenNetworks;

impl AtatCmd for QueryOpenNetworks {
    type Response = OpenLinks;
    const MAX_TIMEOUT_MS: u32 = 300;
    fn write(&self, buf: &mut [u8]) -> usize {
        super::fixed_line(buf, b"AT+QMTOPEN?")
    }
    fn parse(&self, resp: Result<&[u8], InternalError>) -> Result<OpenLinks, atat::Error> {
        let resp = resp.map_err(super::parse_error)?;
        let mut out = OpenLinks::default();
        for body in lines_with(resp, b"+QMTOPEN:") {
            let mut f = Fields::new(body);
            let client = ClientId::new(int(f.next())?).map_err(|_| atat::Error::Parse)?;
            let host = string(f.next())?;
            let port = int(f.next())?;
            out.0
                .push(OpenLink { client, host, port })
                .map_err(|_| atat::Error::Parse)?;
        }
        Ok(out)
    }
}

test_command!(
    /// `AT+QMTOPEN=?`: `+QMTOPEN: (0-5),"<host_name>",<port>` (reference: AT+QMTOPEN, test).
    TestOpenNetwork, "+QMTOPEN"
);

// ---------------------------------------------------------------- QMTCLOSE

/// `AT+QMTCLOSE=<id>`: close a client's TCP link (reference: AT+QMTCLOSE,
/// write). Answers `OK`; the outcome follows as `+QMTCLOSE: <id>,<result>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct CloseNetwork {
    /// The client.
    pub client: ClientId,
}

ok_command!(CloseNetwork, |self, l| {
    l.raw(b"AT+QMTCLOSE=").num(self.client.get().into());
});

test_command!(
    /// `AT+QMTCLOSE=?`: `+QMTCLOSE: (0-5)` (reference: AT+QMTCLOSE, test).
    TestCloseNetwork, "+QMTCLOSE"
);

// ---------------------------------------------------------------- QMTCONN

/// `AT+QMTCONN=<id>,"<clientID>"[,"<username>"[,"<password>"]]`: send CONNECT
/// (reference: AT+QMTCONN, write). Answers `OK`; the outcome follows as
/// `+QMTCONN: <id>,<result>[,<ret_code>]`. `Debug` never shows the password.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Connect<'a> {
    client: ClientId,
    client_id: &'a str,
    username: Option<&'a str>,
    password: Option<&'a str>,
}

impl core::fmt::Debug for Connect<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Connect")
            .field("client", &self.client)
            .field("client_id", &self.client_id)
            .field("username", &self.username)
            .field("password", &self.password.map(|_| "***"))
            .finish()
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for Connect<'_> {
    fn format(&self, f: defmt::Formatter) {
        defmt::write!(
            f,
            "Connect {{ client: {}, client_id: {=str} }}",
            self.client,
            self.client_id
        )
    }
}

impl<'a> Connect<'a> {
    /// `client_id` 1-256 bytes; a password needs a user name. None of them may
    /// hold `"`, CR, LF or control bytes.
    pub fn new(
        client: ClientId,
        client_id: &'a str,
        username: Option<&'a str>,
        password: Option<&'a str>,
    ) -> Result<Self, Error> {
        check_quoted(client_id, 1, limits::CREDENTIAL, Field::MqttClientId)?;
        if let Some(u) = username {
            check_quoted(u, 0, limits::CREDENTIAL, Field::Username)?;
        }
        if let Some(p) = password {
            if username.is_none() {
                return Err(invalid(Field::Username, Problem::Empty));
            }
            check_quoted(p, 0, limits::CREDENTIAL, Field::Password)?;
        }
        Ok(Self {
            client,
            client_id,
            username,
            password,
        })
    }
}

ok_command!(Connect<'a>, |self, l| {
    l.raw(b"AT+QMTCONN=").num(self.client.get().into());
    l.quoted(self.client_id.as_bytes());
    if let Some(u) = self.username {
        l.quoted(u.as_bytes());
    }
    if let Some(p) = self.password {
        l.quoted(p.as_bytes());
    }
});

/// A client's MQTT state as `AT+QMTCONN?` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ConnectionState {
    /// 1: initializing.
    Initial,
    /// 2: connecting.
    Connecting,
    /// 3: connected.
    Connected,
    /// 4: disconnecting.
    Disconnecting,
    /// A state the reference does not name.
    Other(u8),
}

/// Every client's state (`AT+QMTCONN?`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ConnectionStates(pub Vec<(ClientId, ConnectionState), { ClientId::COUNT }>);
impl AtatResp for ConnectionStates {}

impl ConnectionStates {
    /// The state of `client`, if the modem listed it.
    pub fn get(&self, client: ClientId) -> Option<ConnectionState> {
        self.0.iter().find(|(c, _)| *c == client).map(|(_, s)| *s)
    }
}

/// `AT+QMTCONN?`: the MQTT state of each client (reference: AT+QMTCONN, read).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct QueryConnectionState;

impl AtatCmd for QueryConnectionState {
    type Response = ConnectionStates;
    const MAX_TIMEOUT_MS: u32 = 300;
    fn write(&self, buf: &mut [u8]) -> usize {
        super::fixed_line(buf, b"AT+QMTCONN?")
    }
    fn parse(&self, resp: Result<&[u8], InternalError>) -> Result<ConnectionStates, atat::Error> {
        let resp = resp.map_err(super::parse_error)?;
        let mut out = ConnectionStates::default();
        for body in lines_with(resp, b"+QMTCONN:") {
            let mut f = Fields::new(body);
            let client = ClientId::new(int(f.next())?).map_err(|_| atat::Error::Parse)?;
            let state = match int::<u8>(f.next())? {
                1 => ConnectionState::Initial,
                2 => ConnectionState::Connecting,
                3 => ConnectionState::Connected,
                4 => ConnectionState::Disconnecting,
                n => ConnectionState::Other(n),
            };
            out.0
                .push((client, state))
                .map_err(|_| atat::Error::Parse)?;
        }
        Ok(out)
    }
}

test_command!(
    /// `AT+QMTCONN=?`: `+QMTCONN: (0-5),"<clientID>"[,"<username>"[,"<password>"]]`
    /// (reference: AT+QMTCONN, test).
    TestConnect, "+QMTCONN"
);

// ---------------------------------------------------------------- QMTDISC

/// `AT+QMTDISC=<id>`: send DISCONNECT (reference: AT+QMTDISC, write). Answers
/// `OK`; the outcome follows as `+QMTDISC: <id>,<result>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Disconnect {
    /// The client.
    pub client: ClientId,
}

ok_command!(Disconnect, |self, l| {
    l.raw(b"AT+QMTDISC=").num(self.client.get().into());
});

test_command!(
    /// `AT+QMTDISC=?`: `+QMTDISC: (0-5)` (reference: AT+QMTDISC, test).
    TestDisconnect, "+QMTDISC"
);

// ---------------------------------------------------------------- QMTSUB / QMTUNS

fn check_msg_id(msg_id: u16) -> Result<(), Error> {
    if msg_id == 0 {
        return Err(invalid(Field::Topics, Problem::OutOfRange));
    }
    Ok(())
}

/// Bytes of `AT+QMTxxx=<id>,<msgID>` and the final CR.
const SUB_HEAD: usize = "AT+QMTSUB=5,65535\r".len();

/// `AT+QMTSUB=<id>,<msgID>,"<topic1>",<qos1>[,"<topic2>",<qos2>...]`: subscribe
/// to one or more topics (reference: AT+QMTSUB, write). Answers `OK`; the
/// granted QoS of each topic follows as `+QMTSUB: <id>,<msgID>,<result>[,<value>...]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Subscribe<'a> {
    client: ClientId,
    msg_id: u16,
    topics: &'a [(&'a str, QoS)],
}

impl<'a> Subscribe<'a> {
    /// `msg_id` 1-65535; one or more topics of 1-255 bytes, as many as the
    /// 1024-byte line holds.
    pub fn new(client: ClientId, msg_id: u16, topics: &'a [(&'a str, QoS)]) -> Result<Self, Error> {
        check_msg_id(msg_id)?;
        check_topic_list(&topics, topics.len(), 2)?;
        Ok(Self {
            client,
            msg_id,
            topics,
        })
    }

    pub(crate) fn msg_id(&self) -> u16 {
        self.msg_id
    }

    /// The same line under another msgID (1-65535: the allocator's).
    pub(crate) fn with_msg_id(self, msg_id: u16) -> Self {
        Self { msg_id, ..self }
    }
}

/// The topics of a SUB or UNS line, by index: one copy of
/// [`check_topic_list`] for both.
pub(crate) trait TopicList {
    fn topic(&self, i: usize) -> Option<&str>;
}

impl TopicList for &[(&str, QoS)] {
    fn topic(&self, i: usize) -> Option<&str> {
        self.get(i).map(|(t, _)| *t)
    }
}

impl TopicList for &[&str] {
    fn topic(&self, i: usize) -> Option<&str> {
        self.get(i).copied()
    }
}

/// Checks a SUB/UNS topic list: not empty, each topic valid, and the line fits.
/// `extra` is the bytes each entry adds after its quoted topic (`,q` = 2).
pub(crate) fn check_topic_list(
    topics: &dyn TopicList,
    count: usize,
    extra: usize,
) -> Result<(), Error> {
    if count == 0 {
        return Err(invalid(Field::Topics, Problem::Empty));
    }
    if count > MAX_SUB_TOPICS {
        return Err(invalid(Field::Topics, Problem::LineTooLong));
    }
    let mut len = SUB_HEAD;
    for t in (0..count).filter_map(|i| topics.topic(i)) {
        check_filter(t)?;
        len += 3 + t.len() + extra;
    }
    if len > limits::LINE {
        return Err(invalid(Field::Topics, Problem::LineTooLong));
    }
    Ok(())
}

ok_command!(Subscribe<'a>, |self, l| {
    l.raw(b"AT+QMTSUB=")
        .num(self.client.get().into())
        .num(self.msg_id.into());
    for (t, q) in self.topics {
        l.quoted(t.as_bytes()).num(q.get().into());
    }
});

test_command!(
    /// `AT+QMTSUB=?`: `+QMTSUB: (0-5),<msgID>,"<topic>",<qos>[,"<topic>",<qos>...]`
    /// (reference: AT+QMTSUB, test).
    TestSubscribe, "+QMTSUB"
);

/// `AT+QMTUNS=<id>,<msgID>,"<topic1>"[,"<topic2>"...]`: unsubscribe (reference:
/// AT+QMTUNS, write). Answers `OK`; the outcome follows as `+QMTUNS: <id>,<msgID>,<result>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Unsubscribe<'a> {
    client: ClientId,
    msg_id: u16,
    topics: &'a [&'a str],
}

impl<'a> Unsubscribe<'a> {
    /// `msg_id` 1-65535; one or more topics of 1-255 bytes that fit the line.
    pub fn new(client: ClientId, msg_id: u16, topics: &'a [&'a str]) -> Result<Self, Error> {
        check_msg_id(msg_id)?;
        check_topic_list(&topics, topics.len(), 0)?;
        Ok(Self {
            client,
            msg_id,
            topics,
        })
    }
    pub(crate) fn msg_id(&self) -> u16 {
        self.msg_id
    }

    /// The same line under another msgID (1-65535: the allocator's).
    pub(crate) fn with_msg_id(self, msg_id: u16) -> Self {
        Self { msg_id, ..self }
    }
}

ok_command!(Unsubscribe<'a>, |self, l| {
    l.raw(b"AT+QMTUNS=")
        .num(self.client.get().into())
        .num(self.msg_id.into());
    for t in self.topics {
        l.quoted(t.as_bytes());
    }
});

test_command!(
    /// `AT+QMTUNS=?`: `+QMTUNS: (0-5),<msgID>,"<topic>"` (reference: AT+QMTUNS, test).
    TestUnsubscribe, "+QMTUNS"
);

// ---------------------------------------------------------------- QMTPUB

fn check_pub_head(msg_id: u16, qos: QoS, topic: &str) -> Result<(), Error> {
    check_topic(topic)?;
    // msgID 0 only, and always, with QoS 0.
    if (qos == QoS::AtMostOnce) != (msg_id == 0) {
        return Err(invalid(Field::Qos, Problem::OutOfRange));
    }
    Ok(())
}

/// `AT+QMTPUB=<id>,<msgID>,<qos>,<retain>,"<topic>","<msg>"`: publish with the
/// payload on the command line (reference: AT+QMTPUB, inline write). At most
/// 700 bytes on the line (hex digits in hex data format), none of them `"`, CR,
/// LF or a control byte. Answers `OK`; the outcome follows as `+QMTPUB: ...`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PublishInline<'a> {
    client: ClientId,
    msg_id: u16,
    qos: QoS,
    retain: bool,
    topic: &'a str,
    payload: &'a [u8],
    hex: bool,
}

impl<'a> PublishInline<'a> {
    /// `msg_id` is 0 for QoS 0 and 1-65535 otherwise. With `hex`, `payload` is
    /// the raw bytes and goes on the line as hex digits (at most 350 bytes);
    /// otherwise it goes as it is (at most 700 bytes, quoted-safe).
    pub fn new(
        client: ClientId,
        msg_id: u16,
        qos: QoS,
        retain: bool,
        topic: &'a str,
        payload: &'a [u8],
        hex: bool,
    ) -> Result<Self, Error> {
        check_pub_head(msg_id, qos, topic)?;
        let wire = if hex {
            2 * payload.len()
        } else {
            payload.len()
        };
        if wire > limits::INLINE_PAYLOAD {
            return Err(invalid(Field::Payload, Problem::TooLong));
        }
        if !hex && !payload.iter().all(|&b| quoted_safe(b)) {
            return Err(invalid(Field::Payload, Problem::ForbiddenByte));
        }
        Ok(Self {
            client,
            msg_id,
            qos,
            retain,
            topic,
            payload,
            hex,
        })
    }
}

/// Writes an `AT+QMTPUB` line: the head, then with `payload` the payload
/// of its source inline, as hex digits with its flag (a message waiting in
/// a supervisor's outbox is read where it stays, a few bytes at a time). Checked as the constructors check, the payload chunk by chunk as
/// it is written: 0 (nothing to send) if a check fails. The one writer of
/// [`PublishInline`], [`PublishDataMode`] and the driver's publish line.
pub(crate) fn write_publish(
    (client, msg_id, qos, retain): (ClientId, u16, QoS, bool),
    topic: &str,
    payload: Option<(&dyn Source, bool)>,
    buf: &mut [u8],
) -> usize {
    if check_pub_head(msg_id, qos, topic).is_err() {
        return 0;
    }
    let mut l = Line::new(buf);
    l.raw(b"AT+QMTPUB=")
        .num(client.get().into())
        .num(msg_id.into());
    l.num(qos.get().into()).num(retain.into());
    l.quoted(topic.as_bytes());
    if let Some((source, hex)) = payload {
        let (start, len) = source.lens();
        let wire = if hex { 2 * len } else { len };
        if wire > limits::INLINE_PAYLOAD {
            return 0;
        }
        l.raw(b",\"");
        let mut tmp = [0u8; 32];
        let mut hexed = [0u8; 64];
        let mut off = 0;
        while off < len {
            let want = (len - off).min(tmp.len());
            let n = source.read(start + off, &mut tmp[..want]);
            // (A source gives at most what it was asked: `get`, no panic
            // path.)
            let Some(chunk) = tmp.get(..n).filter(|c| !c.is_empty()) else {
                return 0;
            };
            if hex {
                let m = crate::hex::encode_into(chunk, &mut hexed);
                l.raw(hexed.get(..m).unwrap_or_default());
            } else if chunk.iter().all(|&b| quoted_safe(b)) {
                l.raw(chunk);
            } else {
                return 0;
            }
            off += n;
        }
        l.raw(b"\"");
    }
    l.finish()
}

impl AtatCmd for PublishInline<'_> {
    type Response = super::NoResponse;
    const MAX_TIMEOUT_MS: u32 = 300;
    fn write(&self, buf: &mut [u8]) -> usize {
        // The payload as a source with no topic.
        let source = ("", self.payload);
        let head = (self.client, self.msg_id, self.qos, self.retain);
        write_publish(head, self.topic, Some((&source, self.hex)), buf)
    }
    fn parse(&self, resp: Result<&[u8], InternalError>) -> Result<super::NoResponse, atat::Error> {
        resp.map_err(super::parse_error)?;
        Ok(super::NoResponse)
    }
}

/// `AT+QMTPUB=<id>,<msgID>,<qos>,<retain>,"<topic>"`: publish in data mode
/// (reference: AT+QMTPUB, data-mode write). The modem answers `>`; the payload
/// follows (at most 1024 bytes on the wire) and Ctrl+Z sends it, ESC cancels.
/// [`MqttClient::publish`](crate::MqttClient::publish) does all of that; this
/// value is the command line alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PublishDataMode<'a> {
    client: ClientId,
    msg_id: u16,
    qos: QoS,
    retain: bool,
    topic: &'a str,
}

impl<'a> PublishDataMode<'a> {
    /// `msg_id` is 0 for QoS 0 and 1-65535 otherwise; topic 1-255 bytes.
    pub fn new(
        client: ClientId,
        msg_id: u16,
        qos: QoS,
        retain: bool,
        topic: &'a str,
    ) -> Result<Self, Error> {
        check_pub_head(msg_id, qos, topic)?;
        Ok(Self {
            client,
            msg_id,
            qos,
            retain,
            topic,
        })
    }
}

impl AtatCmd for PublishDataMode<'_> {
    type Response = super::NoResponse;
    const MAX_TIMEOUT_MS: u32 = 300;
    fn write(&self, buf: &mut [u8]) -> usize {
        let head = (self.client, self.msg_id, self.qos, self.retain);
        write_publish(head, self.topic, None, buf)
    }
    fn parse(&self, resp: Result<&[u8], InternalError>) -> Result<super::NoResponse, atat::Error> {
        resp.map_err(super::parse_error)?;
        Ok(super::NoResponse)
    }
}

test_command!(
    /// `AT+QMTPUB=?`: `+QMTPUB: (0-5),<msgID>,<qos>,<retain>,"<topic>","<msg>"`
    /// (reference: AT+QMTPUB, test).
    TestPublish, "+QMTPUB"
);

#[cfg(test)]
mod tests {
    use super::*;

    fn line<C: AtatCmd>(c: &C) -> std::string::String {
        let mut buf = [0u8; 1024];
        let n = c.write(&mut buf);
        assert!(n > 0, "line did not fit");
        std::string::String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    fn id(n: u8) -> ClientId {
        ClientId::new(n).unwrap()
    }

    #[test]
    fn every_mqtt_write_form_has_the_reference_bytes() {
        assert_eq!(
            line(&OpenNetwork::new(id(0), "220.180.239.212", 8401).unwrap()),
            "AT+QMTOPEN=0,\"220.180.239.212\",8401\r"
        );
        assert_eq!(line(&CloseNetwork { client: id(1) }), "AT+QMTCLOSE=1\r");
        assert_eq!(
            line(&Connect::new(id(0), "clientExample", None, None).unwrap()),
            "AT+QMTCONN=0,\"clientExample\"\r"
        );
        assert_eq!(
            line(&Connect::new(id(0), "c", Some("u"), None).unwrap()),
            "AT+QMTCONN=0,\"c\",\"u\"\r"
        );
        assert_eq!(
            line(&Connect::new(id(2), "c", Some("u"), Some("p")).unwrap()),
            "AT+QMTCONN=2,\"c\",\"u\",\"p\"\r"
        );
        assert_eq!(line(&Disconnect { client: id(0) }), "AT+QMTDISC=0\r");
        assert_eq!(
            line(&Subscribe::new(id(0), 1, &[("topic/example", QoS::ExactlyOnce)]).unwrap()),
            "AT+QMTSUB=0,1,\"topic/example\",2\r"
        );
        assert_eq!(
            line(
                &Subscribe::new(
                    id(0),
                    9,
                    &[("a", QoS::AtMostOnce), ("b/#", QoS::AtLeastOnce)]
                )
                .unwrap()
            ),
            "AT+QMTSUB=0,9,\"a\",0,\"b/#\",1\r"
        );
        assert_eq!(
            line(&Unsubscribe::new(id(0), 2, &["topic/example"]).unwrap()),
            "AT+QMTUNS=0,2,\"topic/example\"\r"
        );
        assert_eq!(
            line(&Unsubscribe::new(id(3), 2, &["a", "b"]).unwrap()),
            "AT+QMTUNS=3,2,\"a\",\"b\"\r"
        );
        assert_eq!(
            line(
                &PublishInline::new(
                    id(0),
                    0,
                    QoS::AtMostOnce,
                    false,
                    "topic/pub",
                    b"hello MQTT.",
                    false
                )
                .unwrap()
            ),
            "AT+QMTPUB=0,0,0,0,\"topic/pub\",\"hello MQTT.\"\r"
        );
        assert_eq!(
            line(
                &PublishInline::new(
                    id(1),
                    7,
                    QoS::AtLeastOnce,
                    true,
                    "t",
                    &[0x00, 0xAB, b'"'],
                    true
                )
                .unwrap()
            ),
            "AT+QMTPUB=1,7,1,1,\"t\",\"00AB22\"\r"
        );
        assert_eq!(
            line(&PublishDataMode::new(id(0), 0, QoS::AtMostOnce, false, "topic/pub").unwrap()),
            "AT+QMTPUB=0,0,0,0,\"topic/pub\"\r"
        );
    }

    #[test]
    fn every_read_and_test_form_has_the_reference_bytes() {
        assert_eq!(line(&QueryOpenNetworks), "AT+QMTOPEN?\r");
        assert_eq!(line(&QueryConnectionState), "AT+QMTCONN?\r");
        assert_eq!(line(&TestOpenNetwork), "AT+QMTOPEN=?\r");
        assert_eq!(line(&TestCloseNetwork), "AT+QMTCLOSE=?\r");
        assert_eq!(line(&TestConnect), "AT+QMTCONN=?\r");
        assert_eq!(line(&TestDisconnect), "AT+QMTDISC=?\r");
        assert_eq!(line(&TestSubscribe), "AT+QMTSUB=?\r");
        assert_eq!(line(&TestUnsubscribe), "AT+QMTUNS=?\r");
        assert_eq!(line(&TestPublish), "AT+QMTPUB=?\r");
    }

    #[test]
    fn read_answers_parse_to_typed_values() {
        let links = QueryOpenNetworks
            .parse(Ok(
                b"+QMTOPEN: 0,\"220.180.239.212\",8401\r\n+QMTOPEN: 4,\"b.example\",1883",
            ))
            .unwrap();
        assert_eq!(links.0.len(), 2);
        assert_eq!(links.0[0].host.as_str(), "220.180.239.212");
        assert_eq!((links.0[1].client.get(), links.0[1].port), (4, 1883));
        assert_eq!(
            QueryOpenNetworks.parse(Ok(b"")).unwrap(),
            OpenLinks::default()
        );
        let st = QueryConnectionState
            .parse(Ok(
                b"+QMTCONN: 0,3\r\n+QMTCONN: 1,1\r\n+QMTCONN: 2,2\r\n+QMTCONN: 3,4",
            ))
            .unwrap();
        assert_eq!(st.get(id(0)), Some(ConnectionState::Connected));
        assert_eq!(st.get(id(1)), Some(ConnectionState::Initial));
        assert_eq!(st.get(id(2)), Some(ConnectionState::Connecting));
        assert_eq!(st.get(id(3)), Some(ConnectionState::Disconnecting));
        assert_eq!(st.get(id(5)), None);
    }

    #[test]
    fn bad_mqtt_arguments_are_refused_with_their_field() {
        let e = |r: Result<(), Error>| match r {
            Err(Error::InvalidArgument { field, problem }) => (field, problem),
            other => panic!("{other:?}"),
        };
        let long = "h".repeat(101);
        assert_eq!(
            e(OpenNetwork::new(id(0), &long, 1).map(drop)),
            (Field::Host, Problem::TooLong)
        );
        assert_eq!(
            e(OpenNetwork::new(id(0), "h", 0).map(drop)),
            (Field::Port, Problem::OutOfRange)
        );
        assert_eq!(
            e(OpenNetwork::new(id(0), "h\"", 1).map(drop)),
            (Field::Host, Problem::ForbiddenByte)
        );
        assert_eq!(
            e(Connect::new(id(0), "c\r\nAT+QMTCLOSE=0", None, None).map(drop)),
            (Field::MqttClientId, Problem::ForbiddenByte)
        );
        assert_eq!(
            e(Connect::new(id(0), "c", Some("u"), Some("p\"")).map(drop)),
            (Field::Password, Problem::ForbiddenByte)
        );
        assert_eq!(
            e(Connect::new(id(0), "c", None, Some("p")).map(drop)),
            (Field::Username, Problem::Empty)
        );
        let t256 = "t".repeat(256);
        assert_eq!(
            e(Subscribe::new(id(0), 1, &[(&t256, QoS::AtMostOnce)]).map(drop)),
            (Field::Topic, Problem::TooLong)
        );
        assert_eq!(
            e(Subscribe::new(id(0), 1, &[]).map(drop)),
            (Field::Topics, Problem::Empty)
        );
        assert_eq!(
            e(Subscribe::new(id(0), 0, &[("a", QoS::AtMostOnce)]).map(drop)),
            (Field::Topics, Problem::OutOfRange)
        );
        let many: std::vec::Vec<(&str, QoS)> = (0..5)
            .map(|_| (t256.as_str().get(..250).unwrap(), QoS::AtMostOnce))
            .collect();
        assert_eq!(
            e(Subscribe::new(id(0), 1, &many).map(drop)),
            (Field::Topics, Problem::LineTooLong)
        );
        assert_eq!(
            e(PublishInline::new(id(0), 1, QoS::AtMostOnce, false, "t", b"x", false).map(drop)),
            (Field::Qos, Problem::OutOfRange)
        );
        assert_eq!(
            e(PublishInline::new(id(0), 0, QoS::AtLeastOnce, false, "t", b"x", false).map(drop)),
            (Field::Qos, Problem::OutOfRange)
        );
        assert_eq!(
            e(
                PublishInline::new(id(0), 0, QoS::AtMostOnce, false, "t", &[b'a'; 701], false)
                    .map(drop)
            ),
            (Field::Payload, Problem::TooLong)
        );
        assert_eq!(
            e(
                PublishInline::new(id(0), 0, QoS::AtMostOnce, false, "t", &[b'a'; 351], true)
                    .map(drop)
            ),
            (Field::Payload, Problem::TooLong)
        );
        assert_eq!(
            e(PublishInline::new(id(0), 0, QoS::AtMostOnce, false, "t", b"a\"b", false).map(drop)),
            (Field::Payload, Problem::ForbiddenByte)
        );
    }

    #[test]
    fn the_longest_lines_fit_the_line_buffer() {
        let t = "t".repeat(255);
        let p = [b'p'; 700];
        let c = PublishInline::new(id(5), 65535, QoS::ExactlyOnce, true, &t, &p, false).unwrap();
        assert!(line(&c).len() <= limits::LINE);
        let topics: std::vec::Vec<(&str, QoS)> = (0..MAX_SUB_TOPICS)
            .map(|_| ("a", QoS::ExactlyOnce))
            .collect();
        let s = Subscribe::new(id(5), 65535, &topics).unwrap();
        assert!(line(&s).len() <= limits::LINE);
        let u: std::vec::Vec<&str> = (0..4).map(|_| t.as_str()).collect();
        assert!(Unsubscribe::new(id(5), 65535, &u[..3]).is_ok());
        assert!(Unsubscribe::new(id(5), 65535, &u).is_err());
    }

    #[test]
    fn connect_debug_hides_the_password() {
        let c = Connect::new(id(0), "c", Some("u"), Some("hunter2")).unwrap();
        assert!(!std::format!("{c:?}").contains("hunter2"));
    }
}
