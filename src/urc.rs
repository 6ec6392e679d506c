//! Parsers of what the modem says unsolicited in one line: the deferred
//! results (`+QMTOPEN: id,result` ...) that finish a command after its `OK`,
//! and `+QMTSTAT` (`+QMTRECV`, which may span lines, is framed in
//! `recv.rs`). Pure functions on byte slices; the digester decides where a
//! line is, the router where it goes.

use crate::error::LinkClosedReason;
use crate::event::Granted;
use crate::types::ClientId;

/// A deferred result line, parsed: for a client's operation slot, or for
/// a publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Deferred {
    /// OPEN/CLOSE/CONN/DISC/SUB/UNS: the outcome of the client's operation
    /// of `kind` (SUB/UNS name theirs by `msg_id`), in the form the
    /// operation slot takes it.
    Op {
        client: u8,
        kind: OpKind,
        msg_id: Option<u32>,
        outcome: OpOutcome,
    },
    Pub {
        client: u8,
        msg_id: u32,
        result: u8,
        value: Option<u16>,
    },
}

/// Operations that wait in a client's single operation slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpKind {
    Open,
    Close,
    Conn,
    Disc,
    Sub,
    Uns,
}

/// A deferred result for the operation slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpOutcome {
    /// OPEN/CLOSE/DISC result code.
    Code(i16),
    Conn {
        result: u8,
        ret_code: Option<u8>,
    },
    Sub {
        result: u8,
        value: SubValue,
    },
    Uns {
        result: u8,
        value: Option<u16>,
    },
    LinkClosed(LinkClosedReason),
    Rebooted,
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

/// Comma-separated integers of a deferred result: each field (as
/// `split(',')` cuts them, an empty one included) parsed by [`parse_int`].
pub(crate) struct Ints<'a>(Option<&'a [u8]>);

impl<'a> Ints<'a> {
    pub(crate) fn new(body: &'a [u8]) -> Self {
        Ints(Some(body))
    }
}

impl Iterator for Ints<'_> {
    type Item = Option<i64>;
    // One copy for every parser that reads fields.
    #[inline(never)]
    fn next(&mut self) -> Option<Option<i64>> {
        let rest = self.0?;
        let (field, tail) = match rest.iter().position(|&b| b == b',') {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => (rest, None),
        };
        self.0 = tail;
        Some(parse_int(field))
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
#[cfg(test)]
pub(crate) fn parse_deferred(line: &[u8]) -> Option<Deferred> {
    let (prefix, body) = split_prefix(line)?;
    if !deferred_shaped(body) {
        return None;
    }
    deferred_of(deferred_kind(prefix)?, body)
}

/// The index of `prefix` in [`DEFERRED_PREFIXES`] (one comparison loop for
/// all seven), if it is one.
pub(crate) fn deferred_kind(prefix: &[u8]) -> Option<usize> {
    DEFERRED_PREFIXES.iter().position(|&p| p == prefix)
}

/// Parses the body of a deferred result (its prefix is
/// `DEFERRED_PREFIXES[kind]`, the body [`deferred_shaped`]). `None` when it
/// is not one.
pub(crate) fn deferred_of(kind: usize, body: &[u8]) -> Option<Deferred> {
    let mut it = Ints::new(body);
    // The first three fields (each `None` when missing or not a number),
    // read at one place (in order, each written once).
    let f: [Option<i64>; 3] = core::array::from_fn(|_| it.next().flatten());
    let client = u8::try_from(f[0]?).ok()?;
    let byte = |v: Option<i64>| v.and_then(|v| u8::try_from(v).ok());
    let (kind, msg_id, outcome) = match kind {
        0 | 1 | 3 => {
            let code = OpOutcome::Code(i16::try_from(f[1]?).ok()?);
            let kind = match kind {
                0 => OpKind::Open,
                1 => OpKind::Close,
                _ => OpKind::Disc,
            };
            (kind, None, code)
        }
        2 => (
            OpKind::Conn,
            None,
            OpOutcome::Conn {
                result: byte(f[1])?,
                ret_code: byte(f[2]),
            },
        ),
        _ => {
            let msg_id = u32::try_from(f[1]?).ok()?;
            let result = byte(f[2])?;
            // SUB with result 0: the granted QoS of every topic follows.
            let grants = kind == 4 && result == 0;
            let mut g = Granted::empty();
            if grants {
                for v in it.by_ref() {
                    let v = u16::try_from(v?).ok()?;
                    if !g.push(v) {
                        return None;
                    }
                }
            }
            let value = it.next().flatten().and_then(|v| u16::try_from(v).ok());
            match kind {
                4 => {
                    let value = if grants {
                        SubValue::Granted(g)
                    } else {
                        SubValue::Count(value)
                    };
                    (OpKind::Sub, Some(msg_id), OpOutcome::Sub { result, value })
                }
                5 => (OpKind::Uns, Some(msg_id), OpOutcome::Uns { result, value }),
                _ => {
                    return Some(Deferred::Pub {
                        client,
                        msg_id,
                        result,
                        value,
                    })
                }
            }
        }
    };
    Some(Deferred::Op {
        client,
        kind,
        msg_id,
        outcome,
    })
}

/// Parses `+QMTSTAT: <id>,<err_code>`.
#[cfg(test)]
pub(crate) fn parse_stat(line: &[u8]) -> Option<(ClientId, LinkClosedReason)> {
    let (prefix, body) = split_prefix(line)?;
    if prefix != b"+QMTSTAT" {
        return None;
    }
    stat_of(body)
}

/// Parses the body of `+QMTSTAT: <id>,<err_code>`.
pub(crate) fn stat_of(body: &[u8]) -> Option<(ClientId, LinkClosedReason)> {
    // Exactly two integers.
    let mut it = Ints::new(body);
    let (Some(Some(id)), Some(Some(code)), None) = (it.next(), it.next(), it.next()) else {
        return None;
    };
    let client = ClientId::new(u8::try_from(id).ok()?).ok()?;
    let code = u8::try_from(code).ok()?;
    Some((client, LinkClosedReason::from_code(code)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Grant;
    use crate::types::QoS;

    #[test]
    fn every_deferred_result_of_the_reference_parses() {
        use OpKind::*;
        use OpOutcome::{Code, Conn, Sub, Uns};
        let op = |client, kind, msg_id, outcome| Deferred::Op {
            client,
            kind,
            msg_id,
            outcome,
        };
        let publ = |client, msg_id, result, value| Deferred::Pub {
            client,
            msg_id,
            result,
            value,
        };
        let cases: &[(&[u8], Deferred)] = &[
            (b"+QMTOPEN: 0,0", op(0, Open, None, Code(0))),
            (b"+QMTOPEN: 1,-1", op(1, Open, None, Code(-1))),
            (b"+QMTOPEN: 5,5", op(5, Open, None, Code(5))),
            (b"+QMTCLOSE: 2,-1", op(2, Close, None, Code(-1))),
            (b"+QMTDISC: 0,0", op(0, Disc, None, Code(0))),
            (
                b"+QMTCONN: 0,0,0",
                op(
                    0,
                    OpKind::Conn,
                    None,
                    Conn {
                        result: 0,
                        ret_code: Some(0),
                    },
                ),
            ),
            (
                b"+QMTCONN: 1,0,5",
                op(
                    1,
                    OpKind::Conn,
                    None,
                    Conn {
                        result: 0,
                        ret_code: Some(5),
                    },
                ),
            ),
            (
                b"+QMTCONN: 1,2",
                op(
                    1,
                    OpKind::Conn,
                    None,
                    Conn {
                        result: 2,
                        ret_code: None,
                    },
                ),
            ),
            (
                b"+QMTUNS: 0,2,0",
                op(
                    0,
                    OpKind::Uns,
                    Some(2),
                    Uns {
                        result: 0,
                        value: None,
                    },
                ),
            ),
            (
                b"+QMTUNS: 0,2,1,3",
                op(
                    0,
                    OpKind::Uns,
                    Some(2),
                    Uns {
                        result: 1,
                        value: Some(3),
                    },
                ),
            ),
            (b"+QMTPUB: 0,0,0", publ(0, 0, 0, None)),
            (b"+QMTPUB: 0,7,1,2", publ(0, 7, 1, Some(2))),
            (b"+QMTPUB: 3,65535,2", publ(3, 65535, 2, None)),
            (
                b"+QMTSUB: 0,1,1,4",
                op(
                    0,
                    OpKind::Sub,
                    Some(1),
                    Sub {
                        result: 1,
                        value: SubValue::Count(Some(4)),
                    },
                ),
            ),
            (
                b"+QMTSUB: 0,1,2",
                op(
                    0,
                    OpKind::Sub,
                    Some(1),
                    Sub {
                        result: 2,
                        value: SubValue::Count(None),
                    },
                ),
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
        let Some(Deferred::Op {
            client: 0,
            kind: OpKind::Sub,
            msg_id: Some(1),
            outcome:
                OpOutcome::Sub {
                    result: 0,
                    value: SubValue::Granted(g),
                },
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
}
