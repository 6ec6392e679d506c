//! Parsers of what the modem says unsolicited: the deferred results
//! (`+QMTOPEN: id,result` ...) that finish a command after its `OK`,
//! `+QMTSTAT`, and the framing of `+QMTRECV`. Pure functions on byte slices;
//! the digester decides where a line is, the router where it goes.

use crate::error::LinkClosedReason;
use crate::event::Granted;
use crate::types::{limits, ClientId};

/// A deferred result line, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// `+QMTRECV: <id>,<msgID>,"` ... up to where the payload starts: what the
/// digester keeps while the rest of the frame arrives, so that every byte of
/// a long payload is looked at once (the frame is O(n) however it is cut).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecvHead {
    pub client: u8,
    pub msg_id: u32,
    /// The topic: `buf[topic.0..topic.1]`.
    pub topic: (usize, usize),
    /// Where the payload starts.
    pub payload: usize,
    /// The payload length, on firmware that sends one (`"<topic>",<len>,"..."`).
    pub length: Option<usize>,
}

/// How much of a `+QMTRECV` is there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Frame {
    /// The payload is `buf[head.payload..end]`; the frame is `len` bytes
    /// (through its final CR LF).
    Complete { end: usize, len: usize },
    /// More bytes are needed; bytes before `scanned` cannot end the payload.
    Incomplete { scanned: usize },
    /// Not a well-formed frame.
    Malformed,
}

pub(crate) const RECV_PREFIX: &[u8] = b"+QMTRECV:";

/// The longest header before the topic: `+QMTRECV: 5,4294967295,"`.
const RECV_HEADER_MAX: usize = 32;

/// Parses the head of `+QMTRECV: <id>,<msgID>,"<topic>",["<len>,]"` at the
/// start of `buf`. `Ok(None)`: more bytes are needed. `Err(())`: malformed.
///
/// Modules do not escape the topic or the payload: the topic ends at the
/// first `"` followed by a comma (a topic holding `",` is cut there).
pub(crate) fn recv_head(buf: &[u8]) -> Result<Option<RecvHead>, ()> {
    let Some(rest) = buf.strip_prefix(RECV_PREFIX) else {
        return if RECV_PREFIX.starts_with(buf) {
            Ok(None)
        } else {
            Err(())
        };
    };
    let off = RECV_PREFIX.len();
    // <id>,<msgID>," : digits, commas and spaces up to the first quote.
    let window = &rest[..rest.len().min(RECV_HEADER_MAX)];
    let Some(q) = memchr::memchr(b'"', window) else {
        let clean = window
            .iter()
            .all(|&b| b.is_ascii_digit() || b == b',' || b == b' ');
        return if clean && window.len() < RECV_HEADER_MAX {
            Ok(None)
        } else {
            Err(())
        };
    };
    let header = &rest[..q];
    let mut ints = Ints::new(header);
    let (Some(Some(id)), Some(Some(msg_id)), Some(None), None) =
        (ints.next(), ints.next(), ints.next(), ints.next())
    else {
        return Err(());
    };
    if !header.ends_with(b",") {
        return Err(());
    }
    let (Ok(client), Ok(msg_id)) = (u8::try_from(id), u32::try_from(msg_id)) else {
        return Err(());
    };
    let topic_start = off + q + 1;
    let after = &buf[topic_start..];
    let window = &after[..after.len().min(limits::TOPIC + 2)];
    let mut t_end = None;
    for i in memchr::memchr_iter(b'"', window) {
        match window.get(i + 1) {
            Some(b',') => {
                t_end = Some(i);
                break;
            }
            Some(_) => {}
            None => return Ok(None),
        }
    }
    let Some(t_end) = t_end else {
        return if window.len() >= limits::TOPIC + 2
            || memchr::memchr2(b'\r', b'\n', window).is_some()
        {
            Err(())
        } else {
            Ok(None)
        };
    };
    if memchr::memchr2(b'\r', b'\n', &after[..t_end]).is_some() {
        return Err(());
    }
    let topic = (topic_start, topic_start + t_end);
    let after_comma = topic_start + t_end + 2;
    match buf.get(after_comma) {
        None => Ok(None),
        Some(b'"') => Ok(Some(RecvHead {
            client,
            msg_id,
            topic,
            payload: after_comma + 1,
            length: None,
        })),
        Some(d) if d.is_ascii_digit() => {
            let digits = &buf[after_comma..];
            let window = &digits[..digits.len().min(6)];
            let Some(comma) = memchr::memchr(b',', window) else {
                return if window.len() < 6 && window.iter().all(u8::is_ascii_digit) {
                    Ok(None)
                } else {
                    Err(())
                };
            };
            let n = parse_int(&window[..comma])
                .and_then(|v| usize::try_from(v).ok())
                .ok_or(())?;
            match digits.get(comma + 1) {
                None => Ok(None),
                Some(b'"') => Ok(Some(RecvHead {
                    client,
                    msg_id,
                    topic,
                    payload: after_comma + comma + 2,
                    length: Some(n),
                })),
                Some(_) => Err(()),
            }
        }
        Some(_) => Err(()),
    }
}

/// Looks for the end of the payload of the frame whose head is `head`, from
/// `scanned` on (bytes before it were looked at by an earlier call).
///
/// - A payload length, when the firmware sends one, frames it exactly.
/// - Hex payloads hold only hex digits, so neither `"` nor CR: the first of
///   either must be the closing `"` CR LF, else the frame is broken (a lost
///   byte, a cut URC): malformed at the end of its line, never a wait across
///   later lines. Other non-digits are refused when the digits are decoded.
/// - Text payloads are not escaped and may hold quotes, commas and CR LF: the
///   payload ends at the first `"` CR LF (a payload holding `"` CR LF is cut
///   there, which is why the driver receives in hex unless told otherwise).
///
/// `max` bounds the payload (wire bytes).
pub(crate) fn recv_end(
    buf: &[u8],
    head: &RecvHead,
    scanned: usize,
    hex: bool,
    max: usize,
) -> Frame {
    let start = head.payload;
    let closing = |at: usize| -> Option<bool> {
        // Some(true): `"\r\n` at `at`; None: not enough bytes yet to tell.
        let want = b"\"\r\n";
        let have = buf.get(at..)?;
        let n = have.len().min(3);
        if have[..n] != want[..n] {
            return Some(false);
        }
        if n < 3 {
            None
        } else {
            Some(true)
        }
    };
    if let Some(n) = head.length {
        if n > max {
            return Frame::Malformed;
        }
        return match closing(start + n) {
            Some(true) => Frame::Complete {
                end: start + n,
                len: start + n + 3,
            },
            Some(false) => Frame::Malformed,
            None => Frame::Incomplete {
                scanned: buf.len().max(start),
            },
        };
    }
    let from = scanned.max(start);
    let limit = start + max;
    if hex {
        // Hex digits never hold `"` or CR: the first of either ends the
        // payload (found with `memchr2`, many bytes per step). Any other
        // non-digit is caught when the digits are decoded.
        let stop = buf.len().min(limit + 1);
        return match memchr::memchr2(b'"', b'\r', &buf[from..stop]) {
            Some(q) => match closing(from + q) {
                Some(true) => Frame::Complete {
                    end: from + q,
                    len: from + q + 3,
                },
                Some(false) => Frame::Malformed,
                None => Frame::Incomplete { scanned: from + q },
            },
            None if stop > limit => Frame::Malformed,
            None => Frame::Incomplete { scanned: stop },
        };
    }
    let stop = buf.len().min(limit + 3);
    let hay = &buf[from..stop];
    for q in memchr::memchr_iter(b'"', hay) {
        let at = from + q;
        if at > limit {
            return Frame::Malformed;
        }
        match closing(at) {
            Some(true) => {
                return Frame::Complete {
                    end: at,
                    len: at + 3,
                }
            }
            Some(false) => {}
            None => return Frame::Incomplete { scanned: at },
        }
    }
    if stop >= limit + 3 {
        Frame::Malformed
    } else {
        Frame::Incomplete { scanned: stop }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Grant;
    use crate::types::QoS;

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

    /// The whole frame at the start of `buf`, as the digester would find it.
    fn frame(buf: &[u8], hex: bool, max: usize) -> Option<(RecvHead, Frame)> {
        let head = recv_head(buf).ok()??;
        Some((head, recv_end(buf, &head, 0, hex, max)))
    }

    fn payload(buf: &[u8], hex: bool) -> (&[u8], &[u8], usize) {
        match frame(buf, hex, 2048) {
            Some((head, Frame::Complete { end, len })) => (
                &buf[head.topic.0..head.topic.1],
                &buf[head.payload..end],
                len,
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn recv_text_payload_with_commas_quotes_and_crlf_ends_at_quote_crlf() {
        let buf = b"+QMTRECV: 0,3,\"a/b\",\"{\"k\":\"v, w\"}\r\nline 2\"\r\nrest";
        let (topic, p, len) = payload(buf, false);
        assert_eq!(topic, b"a/b");
        assert_eq!(p, b"{\"k\":\"v, w\"}\r\nline 2");
        assert_eq!(&buf[len..], b"rest");
        let head = recv_head(buf).unwrap().unwrap();
        assert_eq!((head.client, head.msg_id, head.length), (0, 3, None));
    }

    #[test]
    fn recv_waits_for_its_closing_quote_and_crlf_at_every_cut() {
        for hex in [false, true] {
            let full: &[u8] = if hex {
                b"+QMTRECV: 1,0,\"t\",\"0A0b\"\r\n"
            } else {
                b"+QMTRECV: 1,0,\"t\",\"x\"\r\n"
            };
            for cut in 1..full.len() {
                let part = &full[..cut];
                match recv_head(part) {
                    Ok(None) => {}
                    Ok(Some(h)) => assert!(
                        matches!(recv_end(part, &h, 0, hex, 1024), Frame::Incomplete { .. }),
                        "cut {cut}"
                    ),
                    Err(()) => panic!("cut {cut} malformed"),
                }
            }
            assert!(
                matches!(frame(full, hex, 1024), Some((_, Frame::Complete { len, .. })) if len == full.len())
            );
        }
    }

    #[test]
    fn recv_resumed_scans_each_payload_byte_once_and_finds_the_same_end() {
        // Fed a byte at a time, the scan resumes where it stopped: `scanned`
        // only grows, and the frame found is the one found in one piece.
        let mut full = b"+QMTRECV: 0,9,\"t\",\"".to_vec();
        full.extend(core::iter::repeat_n(b'A', 1024));
        full.extend_from_slice(b"\"\r\n");
        for hex in [false, true] {
            let head = recv_head(&full).unwrap().unwrap();
            let mut scanned = head.payload;
            let mut steps = 0;
            for cut in head.payload..=full.len() {
                match recv_end(&full[..cut], &head, scanned, hex, 1024) {
                    Frame::Incomplete { scanned: s } => {
                        assert!(s >= scanned);
                        steps += s - scanned;
                        scanned = s;
                    }
                    Frame::Complete { end, len } => {
                        assert_eq!((end, len), (full.len() - 3, full.len()));
                        assert_eq!(cut, full.len());
                    }
                    Frame::Malformed => panic!("malformed at {cut}"),
                }
            }
            assert!(
                steps <= 1024 + 3,
                "{steps} bytes scanned for a 1024-byte payload"
            );
        }
    }

    #[test]
    fn recv_hex_payload_broken_by_a_lost_byte_is_malformed_at_once() {
        // The closing quote lost: the CR LF that follows is not a hex digit.
        let buf = b"+QMTRECV: 0,1,\"t\",\"414243\r\n\r\nOK\r\n";
        assert_eq!(frame(buf, true, 1024).map(|f| f.1), Some(Frame::Malformed));
        // A text frame in the same state waits (the quiet gap ends the wait).
        assert!(matches!(
            frame(buf, false, 1024),
            Some((_, Frame::Incomplete { .. }))
        ));
    }

    #[test]
    fn recv_with_a_payload_length_is_framed_by_it() {
        let buf = b"+QMTRECV: 0,1,\"t/x\",8,\"a\"\r\n\"b,c\"\r\nOK";
        let (topic, p, len) = payload(buf, false);
        assert_eq!(topic, b"t/x");
        assert_eq!(p, b"a\"\r\n\"b,c");
        assert_eq!(&buf[len..], b"OK");
        let full = b"+QMTRECV: 0,1,\"t\",3,\"abc\"\r\n";
        for cut in 1..full.len() {
            let part = &full[..cut];
            if let Ok(Some(h)) = recv_head(part) {
                assert!(
                    matches!(recv_end(part, &h, 0, false, 1024), Frame::Incomplete { .. }),
                    "cut {cut}"
                );
            }
        }
        assert_eq!(
            frame(b"+QMTRECV: 0,1,\"t\",2,\"abc\"\r\n", false, 1024).map(|f| f.1),
            Some(Frame::Malformed)
        );
        assert_eq!(
            frame(b"+QMTRECV: 0,1,\"t\",5000,\"abc\"\r\n", false, 1024).map(|f| f.1),
            Some(Frame::Malformed)
        );
    }

    #[test]
    fn recv_without_quotes_or_with_bad_ids_is_malformed() {
        assert_eq!(recv_head(b"+QMTRECV: 1,7\r\nOK\r\n"), Err(()));
        assert_eq!(recv_head(b"+QMTRECV: a,0,\"t\",\"x\"\r\n"), Err(()));
        assert_eq!(recv_head(b"+QMTRECV: 0,0,\"t\r\n\",\"x\"\r\n"), Err(()));
        assert_eq!(recv_head(b"+QMTRECX: 0"), Err(()));
        assert_eq!(recv_head(b"+QMTRE"), Ok(None));
    }

    #[test]
    fn recv_longer_than_the_limit_is_malformed_not_waited_for() {
        let mut v = b"+QMTRECV: 0,0,\"t\",\"".to_vec();
        v.extend_from_slice(&[b'a'; 20]);
        v.extend_from_slice(b"\r\n");
        v.extend_from_slice(&[b'b'; 20]);
        assert_eq!(frame(&v, false, 16).map(|f| f.1), Some(Frame::Malformed));
        assert_eq!(frame(&v, true, 16).map(|f| f.1), Some(Frame::Malformed));
    }
}
