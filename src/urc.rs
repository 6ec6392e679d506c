//! What the modem says unsolicited: `+QMTRECV`, `+QMTSTAT`, and the deferred
//! results (`+QMTOPEN: id,result` ...) that finish a command after its `OK`.

use crate::types::{limits, ClientId, QoS};
use heapless::{String, Vec};

/// Why the modem closed a client's link (`+QMTSTAT: <id>,<err_code>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum LinkClosedReason {
    /// 1: connection closed or reset by the peer. Open again.
    PeerClosed,
    /// 2: sending PINGREQ timed out or failed. Deactivate and reactivate PDP, then reopen.
    PingFailed,
    /// 3: sending CONNECT timed out or failed. Check credentials and client ID, reopen.
    ConnectFailed,
    /// 4: receiving CONNACK timed out or failed. Check credentials and client ID, reopen.
    ConnackFailed,
    /// 5: the client sent DISCONNECT and the server closed the link (normal).
    Disconnected,
    /// 6: the client closed the link because sending kept failing. Check data, reopen.
    SendFailed,
    /// 7: the link is not alive or the server is unavailable.
    LinkDead,
    /// A code the reference reserves (8-255); kept as the modem sent it.
    Other(u8),
}

impl LinkClosedReason {
    /// The reason for an `err_code`.
    pub fn from_code(code: u8) -> Self {
        match code {
            1 => Self::PeerClosed,
            2 => Self::PingFailed,
            3 => Self::ConnectFailed,
            4 => Self::ConnackFailed,
            5 => Self::Disconnected,
            6 => Self::SendFailed,
            7 => Self::LinkDead,
            n => Self::Other(n),
        }
    }

    /// The modem's `err_code`.
    pub fn code(self) -> u8 {
        match self {
            Self::PeerClosed => 1,
            Self::PingFailed => 2,
            Self::ConnectFailed => 3,
            Self::ConnackFailed => 4,
            Self::Disconnected => 5,
            Self::SendFailed => 6,
            Self::LinkDead => 7,
            Self::Other(n) => n,
        }
    }
}

/// A PUBLISH the broker sent to one of the clients (`+QMTRECV`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Message {
    /// The client that received it.
    pub client: ClientId,
    /// The packet identifier the modem reports (0 for QoS 0). Kept wide: modems
    /// have been seen to report values above 65535.
    pub msg_id: u32,
    /// The topic.
    pub topic: String<{ limits::TOPIC }>,
    /// The payload bytes (hex-decoded when the client's receive format is hex).
    pub payload: Vec<u8, { limits::RECV_PAYLOAD }>,
}

/// What application tasks receive from [`Events`](crate::Events).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
// No heap to box into: the event queue holds events by value, sized for a message.
#[allow(clippy::large_enum_variant)]
#[non_exhaustive]
pub enum Event {
    /// A message arrived from the broker.
    Message(Message),
    /// The modem closed a client's MQTT link (`+QMTSTAT`).
    LinkClosed {
        /// The client.
        client: ClientId,
        /// Why.
        reason: LinkClosedReason,
    },
    /// This subscriber was too slow: this many events were overwritten before
    /// it read them. The driver counts them too ([`Stats::events_dropped`](crate::Stats::events_dropped)).
    Missed(u64),
}

/// What the server granted for one topic of a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Grant {
    /// Subscribed with this QoS.
    Granted(QoS),
    /// 128: the server rejected the subscription.
    Rejected,
}

/// Most topics one AT+QMTSUB can carry: the shortest topic entry (`,"t",0`) is
/// six bytes, and the line is at most [`limits::LINE`] bytes.
pub const MAX_SUB_TOPICS: usize = (limits::LINE - 18) / 6;

/// The granted QoS of each topic of a subscription, in the order of the request.
/// Packed two bits a topic so that a result for a long list stays small.
#[derive(Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Granted {
    len: u8,
    bits: [u8; MAX_SUB_TOPICS.div_ceil(4)],
}

impl Granted {
    pub(crate) const fn empty() -> Self {
        Self {
            len: 0,
            bits: [0; MAX_SUB_TOPICS.div_ceil(4)],
        }
    }

    pub(crate) fn push(&mut self, value: u16) -> bool {
        let code = match value {
            0..=2 => value as u8,
            _ => 3, // 128 and anything else the broker refuses with
        };
        let i = self.len as usize;
        if i >= MAX_SUB_TOPICS {
            return false;
        }
        self.bits[i / 4] |= code << ((i % 4) * 2);
        self.len += 1;
        true
    }

    /// Number of topics.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// True when the result holds no topic.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The grant of topic `i` (in request order).
    pub fn get(&self, i: usize) -> Option<Grant> {
        if i >= self.len() {
            return None;
        }
        Some(match (self.bits[i / 4] >> ((i % 4) * 2)) & 3 {
            0 => Grant::Granted(QoS::AtMostOnce),
            1 => Grant::Granted(QoS::AtLeastOnce),
            2 => Grant::Granted(QoS::ExactlyOnce),
            _ => Grant::Rejected,
        })
    }

    /// The grants in request order.
    pub fn iter(&self) -> impl Iterator<Item = Grant> + '_ {
        (0..self.len()).filter_map(|i| self.get(i))
    }
}

impl core::fmt::Debug for Granted {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// A deferred result line, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub(crate) enum Deferred {
    Open {
        client: u8,
        result: i16,
    },
    Close {
        client: u8,
        result: i16,
    },
    Conn {
        client: u8,
        result: u8,
        ret_code: Option<u8>,
    },
    Disc {
        client: u8,
        result: i16,
    },
    Sub {
        client: u8,
        msg_id: u32,
        result: u8,
        value: SubValue,
    },
    Uns {
        client: u8,
        msg_id: u32,
        result: u8,
        value: Option<u16>,
    },
    Pub {
        client: u8,
        msg_id: u32,
        result: u8,
        value: Option<u16>,
    },
}

/// The values after the result of `+QMTSUB`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub(crate) enum SubValue {
    Granted(Granted),
    Count(Option<u16>),
}

/// Commands whose results arrive later with their own prefix.
pub(crate) const DEFERRED_PREFIXES: [&[u8]; 7] = [
    b"+QMTOPEN",
    b"+QMTCLOSE",
    b"+QMTCONN",
    b"+QMTDISC",
    b"+QMTSUB",
    b"+QMTUNS",
    b"+QMTPUB",
];

/// Splits `+PREFIX: body` into (`+PREFIX`, `body`).
pub(crate) fn split_prefix(line: &[u8]) -> Option<(&[u8], &[u8])> {
    if line.first() != Some(&b'+') {
        return None;
    }
    let colon = line.iter().position(|&b| b == b':')?;
    let body = &line[colon + 1..];
    let body = body.strip_prefix(b" ").unwrap_or(body);
    Some((&line[..colon], body))
}

/// True when a body has the shape of a deferred result: only digits, commas,
/// minus signs and spaces (read and test responses carry quotes or parentheses).
pub(crate) fn deferred_shaped(body: &[u8]) -> bool {
    !body.is_empty()
        && body
            .iter()
            .all(|&b| b.is_ascii_digit() || b == b',' || b == b'-' || b == b' ')
}

/// Comma-separated integers of a deferred result.
pub(crate) struct Ints<'a>(core::slice::Split<'a, u8, fn(&u8) -> bool>);

impl<'a> Ints<'a> {
    pub(crate) fn new(body: &'a [u8]) -> Self {
        fn comma(b: &u8) -> bool {
            *b == b','
        }
        Ints(body.split(comma as fn(&u8) -> bool))
    }
}

impl Iterator for Ints<'_> {
    type Item = Option<i64>;
    fn next(&mut self) -> Option<Option<i64>> {
        self.0.next().map(parse_int)
    }
}

pub(crate) fn parse_int(field: &[u8]) -> Option<i64> {
    let field = field.trim_ascii();
    let (neg, digits) = match field.strip_prefix(b"-") {
        Some(d) => (true, d),
        None => (false, field),
    };
    if digits.is_empty() || digits.len() > 10 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut v: i64 = 0;
    for &d in digits {
        v = v * 10 + i64::from(d - b'0');
    }
    Some(if neg { -v } else { v })
}

/// Parses a deferred result line (`+QMTxxx: ...`). `None` when it is not one.
pub(crate) fn parse_deferred(line: &[u8]) -> Option<Deferred> {
    let (prefix, body) = split_prefix(line)?;
    if !deferred_shaped(body) {
        return None;
    }
    let mut it = Ints::new(body);
    let mut next = || it.next().flatten();
    let client = u8::try_from(next()?).ok()?;
    let small = |v: i64| i16::try_from(v).ok();
    let d = match prefix {
        b"+QMTOPEN" => Deferred::Open {
            client,
            result: small(next()?)?,
        },
        b"+QMTCLOSE" => Deferred::Close {
            client,
            result: small(next()?)?,
        },
        b"+QMTDISC" => Deferred::Disc {
            client,
            result: small(next()?)?,
        },
        b"+QMTCONN" => {
            let result = u8::try_from(next()?).ok()?;
            let ret_code = next().and_then(|v| u8::try_from(v).ok());
            Deferred::Conn {
                client,
                result,
                ret_code,
            }
        }
        b"+QMTSUB" | b"+QMTUNS" | b"+QMTPUB" => {
            let msg_id = u32::try_from(next()?).ok()?;
            let result = u8::try_from(next()?).ok()?;
            if prefix == b"+QMTSUB" {
                let value = if result == 0 {
                    let mut g = Granted::empty();
                    for v in it {
                        let v = u16::try_from(v?).ok()?;
                        if !g.push(v) {
                            return None;
                        }
                    }
                    SubValue::Granted(g)
                } else {
                    SubValue::Count(next().and_then(|v| u16::try_from(v).ok()))
                };
                Deferred::Sub {
                    client,
                    msg_id,
                    result,
                    value,
                }
            } else {
                let value = next().and_then(|v| u16::try_from(v).ok());
                if prefix == b"+QMTUNS" {
                    Deferred::Uns {
                        client,
                        msg_id,
                        result,
                        value,
                    }
                } else {
                    Deferred::Pub {
                        client,
                        msg_id,
                        result,
                        value,
                    }
                }
            }
        }
        _ => return None,
    };
    Some(d)
}

/// Parses `+QMTSTAT: <id>,<err_code>`.
pub(crate) fn parse_stat(line: &[u8]) -> Option<(ClientId, LinkClosedReason)> {
    let (prefix, body) = split_prefix(line)?;
    if prefix != b"+QMTSTAT" {
        return None;
    }
    let mut it = Ints::new(body);
    let client = ClientId::new(u8::try_from(it.next()??).ok()?).ok()?;
    let code = u8::try_from(it.next()??).ok()?;
    if it.next().is_some() {
        return None;
    }
    Some((client, LinkClosedReason::from_code(code)))
}

/// How a `+QMTRECV` at the start of the buffer parses.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Recv<'a> {
    /// A whole URC of `len` bytes (through its final CRLF).
    Complete {
        client: u8,
        msg_id: u32,
        topic: &'a [u8],
        payload: &'a [u8],
        len: usize,
    },
    /// More bytes are needed.
    Incomplete,
    /// Not a well-formed `+QMTRECV`; skip its first line (`skip` bytes).
    Malformed { skip: usize },
}

pub(crate) const RECV_PREFIX: &[u8] = b"+QMTRECV:";

/// Parses `+QMTRECV: <id>,<msgID>,"<topic>","<payload>"\r\n` by structure.
///
/// Modules do not escape the payload, so it may hold commas, quotes and CR/LF:
/// the topic ends at the first `"` followed by a comma, and the payload at the
/// first `"` that is followed by CR LF. What stays ambiguous: a text payload
/// that itself holds `"` followed by CR LF is cut there, and a topic that holds
/// `",` is cut there. Hex data format has neither problem. Firmware that sends
/// the payload length (`+QMTRECV: <id>,<msgID>,"<topic>",<len>,"<payload>"`,
/// seen on sibling modules) is framed exactly by it.
///
/// `max_payload` bounds how far the parser looks for the end (wire bytes).
pub(crate) fn parse_recv(buf: &[u8], max_payload: usize) -> Recv<'_> {
    let first_line_end = find(buf, b"\r\n");
    let malformed = || match first_line_end {
        Some(i) => Recv::Malformed { skip: i + 2 },
        None => Recv::Incomplete,
    };
    let Some(rest) = buf.strip_prefix(RECV_PREFIX) else {
        return malformed();
    };
    let rest_off = RECV_PREFIX.len();
    // Header: <id>,<msgID>,"
    let Some(q) = rest.iter().position(|&b| b == b'"') else {
        return if rest.len() > 24 || first_line_end.is_some() {
            malformed()
        } else {
            Recv::Incomplete
        };
    };
    let header = &rest[..q];
    let mut ints = Ints::new(header);
    let (Some(Some(id)), Some(Some(msg_id)), Some(None), None) =
        (ints.next(), ints.next(), ints.next(), ints.next())
    else {
        return malformed();
    };
    if !header.ends_with(b",") {
        return malformed();
    }
    let (Ok(client), Ok(msg_id)) = (u8::try_from(id), u32::try_from(msg_id)) else {
        return malformed();
    };
    let topic_start = rest_off + q + 1;
    let after_topic = &buf[topic_start..];
    // The topic ends at the first `"` followed by a comma; then comes either
    // the quoted payload, or (on firmware that sends one) its length and `,"`.
    let window = &after_topic[..after_topic.len().min(limits::TOPIC + 2)];
    let Some(t_end) = find(window, b"\",") else {
        return if first_line_end.is_some() || window.len() >= limits::TOPIC + 2 {
            malformed()
        } else {
            Recv::Incomplete
        };
    };
    let topic = &after_topic[..t_end];
    if topic.contains(&b'\r') || topic.contains(&b'\n') {
        return malformed();
    }
    let after_comma = &after_topic[t_end + 2..];
    let (payload_start, length) = match after_comma.first() {
        None => return Recv::Incomplete,
        Some(b'"') => (topic_start + t_end + 3, None),
        Some(d) if d.is_ascii_digit() => {
            let Some(comma) = after_comma.iter().position(|&b| b == b',') else {
                return if after_comma.len() > 5 || first_line_end.is_some() {
                    malformed()
                } else {
                    Recv::Incomplete
                };
            };
            let n = match parse_int(&after_comma[..comma]).and_then(|v| usize::try_from(v).ok()) {
                Some(n) if n <= max_payload => n,
                _ => return malformed(),
            };
            match after_comma.get(comma + 1) {
                None => return Recv::Incomplete,
                Some(b'"') => (topic_start + t_end + 2 + comma + 2, Some(n)),
                Some(_) => return malformed(),
            }
        }
        Some(_) => return malformed(),
    };
    let after_payload = &buf[payload_start..];
    if let Some(n) = length {
        // Framed by its length: exact, whatever the payload holds.
        return match after_payload.get(n..n + 3) {
            Some(b"\"\r\n") => Recv::Complete {
                client,
                msg_id,
                topic,
                payload: &after_payload[..n],
                len: payload_start + n + 3,
            },
            Some(_) => malformed(),
            None => Recv::Incomplete,
        };
    }
    let window = &after_payload[..after_payload.len().min(max_payload + 3)];
    match find(window, b"\"\r\n") {
        Some(p_end) => Recv::Complete {
            client,
            msg_id,
            topic,
            payload: &after_payload[..p_end],
            len: payload_start + p_end + 3,
        },
        None if after_payload.len() >= max_payload + 3 => malformed(),
        None => Recv::Incomplete,
    }
}

/// Position of `needle` in `hay`.
pub(crate) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_deferred_result_of_the_reference_parses() {
        use Deferred::*;
        let cases: &[(&[u8], Deferred)] = &[
            (
                b"+QMTOPEN: 0,0",
                Open {
                    client: 0,
                    result: 0,
                },
            ),
            (
                b"+QMTOPEN: 1,-1",
                Open {
                    client: 1,
                    result: -1,
                },
            ),
            (
                b"+QMTOPEN: 5,5",
                Open {
                    client: 5,
                    result: 5,
                },
            ),
            (
                b"+QMTCLOSE: 2,-1",
                Close {
                    client: 2,
                    result: -1,
                },
            ),
            (
                b"+QMTDISC: 0,0",
                Disc {
                    client: 0,
                    result: 0,
                },
            ),
            (
                b"+QMTCONN: 0,0,0",
                Conn {
                    client: 0,
                    result: 0,
                    ret_code: Some(0),
                },
            ),
            (
                b"+QMTCONN: 1,0,5",
                Conn {
                    client: 1,
                    result: 0,
                    ret_code: Some(5),
                },
            ),
            (
                b"+QMTCONN: 1,2",
                Conn {
                    client: 1,
                    result: 2,
                    ret_code: None,
                },
            ),
            (
                b"+QMTUNS: 0,2,0",
                Uns {
                    client: 0,
                    msg_id: 2,
                    result: 0,
                    value: None,
                },
            ),
            (
                b"+QMTUNS: 0,2,1,3",
                Uns {
                    client: 0,
                    msg_id: 2,
                    result: 1,
                    value: Some(3),
                },
            ),
            (
                b"+QMTPUB: 0,0,0",
                Pub {
                    client: 0,
                    msg_id: 0,
                    result: 0,
                    value: None,
                },
            ),
            (
                b"+QMTPUB: 0,7,1,2",
                Pub {
                    client: 0,
                    msg_id: 7,
                    result: 1,
                    value: Some(2),
                },
            ),
            (
                b"+QMTPUB: 3,65535,2",
                Pub {
                    client: 3,
                    msg_id: 65535,
                    result: 2,
                    value: None,
                },
            ),
            (
                b"+QMTSUB: 0,1,1,4",
                Sub {
                    client: 0,
                    msg_id: 1,
                    result: 1,
                    value: SubValue::Count(Some(4)),
                },
            ),
            (
                b"+QMTSUB: 0,1,2",
                Sub {
                    client: 0,
                    msg_id: 1,
                    result: 2,
                    value: SubValue::Count(None),
                },
            ),
        ];
        for (line, want) in cases {
            assert_eq!(
                parse_deferred(line),
                Some(*want),
                "{}",
                core::str::from_utf8(line).unwrap()
            );
        }
    }

    #[test]
    fn subscription_grants_keep_order_and_rejections() {
        let Some(Deferred::Sub {
            value: SubValue::Granted(g),
            ..
        }) = parse_deferred(b"+QMTSUB: 0,1,0,2,128,0,1")
        else {
            panic!("not parsed");
        };
        let got: std::vec::Vec<Grant> = g.iter().collect();
        assert_eq!(
            got,
            [
                Grant::Granted(QoS::ExactlyOnce),
                Grant::Rejected,
                Grant::Granted(QoS::AtMostOnce),
                Grant::Granted(QoS::AtLeastOnce)
            ]
        );
        assert_eq!(g.get(4), None);
    }

    #[test]
    fn read_and_test_responses_are_not_deferred_results() {
        assert_eq!(
            parse_deferred(b"+QMTOPEN: 0,\"220.180.239.212\",8401"),
            None
        );
        assert_eq!(
            parse_deferred(b"+QMTOPEN: (0-5),\"<host_name>\",<port>"),
            None
        );
        assert_eq!(parse_deferred(b"+QMTCFG: \"keepalive\",120"), None);
        assert_eq!(parse_deferred(b"+QMTSTAT: 0,1"), None);
        assert_eq!(parse_deferred(b"+QMTOPEN: x,0"), None);
    }

    #[test]
    fn link_closed_codes_one_to_seven_are_named_and_others_kept() {
        for code in 1..=7u8 {
            let r = LinkClosedReason::from_code(code);
            assert!(!matches!(r, LinkClosedReason::Other(_)));
            assert_eq!(r.code(), code);
        }
        assert_eq!(
            parse_stat(b"+QMTSTAT: 2,8"),
            Some((ClientId::new(2).unwrap(), LinkClosedReason::Other(8)))
        );
        assert_eq!(
            parse_stat(b"+QMTSTAT: 0,1"),
            Some((ClientId::new(0).unwrap(), LinkClosedReason::PeerClosed))
        );
        assert_eq!(parse_stat(b"+QMTSTAT: 9,1"), None);
        assert_eq!(parse_stat(b"+QMTSTAT: 0"), None);
    }

    #[test]
    fn recv_payload_with_commas_quotes_and_crlf_parses_by_structure() {
        let buf = b"+QMTRECV: 0,3,\"a/b\",\"{\"k\":\"v, w\"}\r\nline 2\"\r\nrest";
        match parse_recv(buf, 1024) {
            Recv::Complete {
                client,
                msg_id,
                topic,
                payload,
                len,
            } => {
                assert_eq!((client, msg_id), (0, 3));
                assert_eq!(topic, b"a/b");
                assert_eq!(payload, b"{\"k\":\"v, w\"}\r\nline 2");
                assert_eq!(&buf[len..], b"rest");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn recv_waits_for_its_closing_quote_and_crlf() {
        let full = b"+QMTRECV: 1,0,\"t\",\"x\"\r\n";
        for cut in 1..full.len() {
            assert_eq!(
                parse_recv(&full[..cut], 1024),
                Recv::Incomplete,
                "cut {cut}"
            );
        }
        assert!(matches!(parse_recv(full, 1024), Recv::Complete { len, .. } if len == full.len()));
    }

    #[test]
    fn recv_with_a_payload_length_is_framed_by_it() {
        let buf = b"+QMTRECV: 0,1,\"t/x\",8,\"a\"\r\n\"b,c\"\r\nOK";
        match parse_recv(buf, 1024) {
            Recv::Complete {
                topic,
                payload,
                len,
                ..
            } => {
                assert_eq!(topic, b"t/x");
                assert_eq!(payload, b"a\"\r\n\"b,c");
                assert_eq!(&buf[len..], b"OK");
            }
            other => panic!("{other:?}"),
        }
        let full = b"+QMTRECV: 0,1,\"t\",3,\"abc\"\r\n";
        for cut in 1..full.len() {
            assert_eq!(
                parse_recv(&full[..cut], 1024),
                Recv::Incomplete,
                "cut {cut}"
            );
        }
        assert!(matches!(
            parse_recv(b"+QMTRECV: 0,1,\"t\",2,\"abc\"\r\n", 1024),
            Recv::Malformed { .. }
        ));
        assert!(matches!(
            parse_recv(b"+QMTRECV: 0,1,\"t\",5000,\"abc\"\r\n", 1024),
            Recv::Malformed { .. }
        ));
    }

    #[test]
    fn recv_without_quotes_or_with_bad_ids_is_skipped_one_line() {
        assert_eq!(
            parse_recv(b"+QMTRECV: 1,7\r\nOK\r\n", 1024),
            Recv::Malformed { skip: 15 }
        );
        assert_eq!(
            parse_recv(b"+QMTRECV: a,0,\"t\",\"x\"\r\n", 1024),
            Recv::Malformed { skip: 23 }
        );
    }

    #[test]
    fn recv_longer_than_the_limit_is_malformed_not_waited_for() {
        let mut v = std::vec::Vec::new();
        v.extend_from_slice(b"+QMTRECV: 0,0,\"t\",\"");
        v.extend_from_slice(&[b'a'; 20]);
        v.extend_from_slice(b"\r\n");
        v.extend_from_slice(&[b'b'; 20]);
        assert!(matches!(parse_recv(&v, 16), Recv::Malformed { skip } if skip == 19 + 20 + 2));
    }
}
