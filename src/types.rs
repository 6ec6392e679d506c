//! Values that go into AT commands, each checked against the reference before
//! a byte is sent.

use crate::error::{Error, Field, Problem};

/// The modem's `tcpconnectID`: one of the six MQTT clients (0-5) that share the UART.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ClientId(u8);

impl ClientId {
    /// Number of clients the BC26 supports.
    pub const COUNT: usize = 6;

    /// The client `id`, if it is 0-5.
    pub const fn new(id: u8) -> Result<Self, Error> {
        if (id as usize) < Self::COUNT {
            Ok(Self(id))
        } else {
            Err(Error::InvalidArgument {
                field: Field::ClientId,
                problem: Problem::OutOfRange,
            })
        }
    }

    /// All six clients, in order.
    pub fn all() -> impl Iterator<Item = ClientId> {
        (0..Self::COUNT as u8).map(ClientId)
    }

    /// The number the modem uses for this client.
    pub const fn get(self) -> u8 {
        self.0
    }

    /// The client's index, 0-5. (A `ClientId` is never above 5; the
    /// `min` tells the compiler so: an index into a table of the six
    /// clients then needs no bounds check and no panic path.)
    pub(crate) const fn index(self) -> usize {
        let i = self.0 as usize;
        if i < Self::COUNT {
            i
        } else {
            Self::COUNT - 1
        }
    }
}

impl TryFrom<u8> for ClientId {
    type Error = Error;
    fn try_from(id: u8) -> Result<Self, Error> {
        Self::new(id)
    }
}

/// MQTT quality of service of a publish or subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum QoS {
    /// 0: at most once (no acknowledgement; msgID 0).
    AtMostOnce = 0,
    /// 1: at least once (PUBACK).
    AtLeastOnce = 1,
    /// 2: exactly once (PUBREC/PUBREL/PUBCOMP).
    ExactlyOnce = 2,
}

impl QoS {
    /// The QoS for a number 0-2.
    pub const fn new(n: u8) -> Result<Self, Error> {
        match n {
            0 => Ok(Self::AtMostOnce),
            1 => Ok(Self::AtLeastOnce),
            2 => Ok(Self::ExactlyOnce),
            _ => Err(Error::InvalidArgument {
                field: Field::Qos,
                problem: Problem::OutOfRange,
            }),
        }
    }

    /// The number the modem uses.
    pub const fn get(self) -> u8 {
        self as u8
    }
}

/// MQTT protocol version a client connects with (`AT+QMTCFG="version"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum MqttVersion {
    /// 3: MQTT 3.1 (protocol name "MQIsdp").
    V3_1 = 3,
    /// 4: MQTT 3.1.1 (protocol name "MQTT").
    V3_1_1 = 4,
}

/// How payloads cross the UART (`AT+QMTCFG="dataformat"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum DataFormat {
    /// 0: the payload bytes as they are (the modem's default).
    #[default]
    Text = 0,
    /// 1: the payload as hexadecimal digits, two per byte. Unambiguous for any
    /// payload; the driver encodes and decodes for you.
    Hex = 1,
}

/// A topic filter and the QoS asked for it: one entry of a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Subscription<'a> {
    /// The topic filter (MQTT wildcards `+` and `#` allowed).
    pub topic: &'a str,
    /// The QoS asked for.
    pub qos: QoS,
}

impl<'a> Subscription<'a> {
    /// A filter and its QoS.
    pub const fn new(topic: &'a str, qos: QoS) -> Self {
        Self { topic, qos }
    }
}

/// True if `topic` matches the MQTT topic `filter` (`+` one level, `#` the
/// rest; MQTT 3.1.1 section 4.7: `#` also matches the parent level, and
/// wildcards at the first level do not match topics starting with `$`).
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

/// Limits from the reference.
pub mod limits {
    /// Host name of AT+QMTOPEN, bytes.
    pub const HOST: usize = 100;
    /// Topic of SUB/UNS/PUB and the will topic, bytes.
    pub const TOPIC: usize = 255;
    /// Payload of an inline AT+QMTPUB, bytes on the UART (hex digits in hex mode).
    pub const INLINE_PAYLOAD: usize = 700;
    /// Payload of a data-mode AT+QMTPUB, bytes on the UART (hex digits in hex mode).
    pub const DATA_MODE_PAYLOAD: usize = 1024;
    /// Payload of a received message (`+QMTRECV`), bytes: the one receive
    /// limit, in both receive formats (1,024 bytes as text, 2,048 digits as
    /// hex). A longer message is dropped and counted
    /// ([`Stats::messages_too_long`](crate::Stats::messages_too_long)),
    /// never delivered cut.
    pub const RECV_PAYLOAD: usize = 1024;
    /// Keep-alive interval, seconds.
    pub const KEEPALIVE_MAX: u16 = 3600;
    /// `pkt_timeout` range, seconds.
    pub const PKT_TIMEOUT: core::ops::RangeInclusive<u8> = 1..=60;
    /// `retry_times` maximum.
    pub const RETRY_TIMES_MAX: u8 = 10;
    /// Longest command line the driver sends, including the final `\r`.
    pub const LINE: usize = 1024;
    /// Client identifier, user name, password and AliCloud keys: the reference
    /// gives no limit; the driver bounds them so a line always fits.
    pub const CREDENTIAL: usize = 256;
    /// Will message, bytes.
    pub const WILL_MESSAGE: usize = 256;
}

/// Checks a string that goes between quotes on an AT command line: length in
/// `min..=max` and no `"`, CR, LF or other control byte (each could end the
/// string or the line and let the rest run as a command).
pub(crate) fn check_quoted(s: &str, min: usize, max: usize, field: Field) -> Result<(), Error> {
    if s.len() < min {
        return Err(Error::InvalidArgument {
            field,
            problem: Problem::Empty,
        });
    }
    if s.len() > max {
        return Err(Error::InvalidArgument {
            field,
            problem: Problem::TooLong,
        });
    }
    if !s.bytes().all(quoted_safe) {
        return Err(Error::InvalidArgument {
            field,
            problem: Problem::ForbiddenByte,
        });
    }
    Ok(())
}

/// A byte that may stand inside a quoted AT string.
pub(crate) const fn quoted_safe(b: u8) -> bool {
    b != b'"' && b >= 0x20 && b != 0x7f
}

/// Checks a topic name, the topic of a publish or a will (MQTT 3.1.1
/// section 4.7): 1-255 bytes of UTF-8 (a `&str` is), quoted-safe (so no NUL
/// and no other control byte), no C1 control character (U+0080-U+009F, which
/// MQTT says a topic should not hold), and no wildcard: `+` and `#` are for
/// filters only (section 3.3.2.1).
pub(crate) fn check_topic(topic: &str) -> Result<(), Error> {
    check_topic_text(topic)?;
    if topic.bytes().any(|b| b == b'+' || b == b'#') {
        return Err(Error::InvalidArgument {
            field: Field::Topic,
            problem: Problem::Wildcard,
        });
    }
    Ok(())
}

/// Checks a topic filter of a subscription (MQTT 3.1.1 section 4.7.1): the
/// text rules of a topic name, and wildcards only as whole levels: `+` alone
/// in its level, `#` alone in the last level (`a/+/c`, `a/#`, `#`; not `a+`,
/// `a/#/b`, `a/b#`).
pub(crate) fn check_filter(filter: &str) -> Result<(), Error> {
    check_topic_text(filter)?;
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        let last = levels.peek().is_none();
        let ok = match level {
            "+" => true,
            "#" => last,
            l => !l.contains(['+', '#']),
        };
        if !ok {
            return Err(Error::InvalidArgument {
                field: Field::Topic,
                problem: Problem::Wildcard,
            });
        }
    }
    Ok(())
}

/// The rules names and filters share: 1-255 bytes, quoted-safe, no C1 control.
fn check_topic_text(topic: &str) -> Result<(), Error> {
    check_quoted(topic, 1, limits::TOPIC, Field::Topic)?;
    if topic.chars().any(|c| ('\u{80}'..='\u{9f}').contains(&c)) {
        return Err(Error::InvalidArgument {
            field: Field::Topic,
            problem: Problem::ForbiddenByte,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_zero_to_five_only() {
        for i in 0..6 {
            assert_eq!(ClientId::new(i).unwrap().get(), i);
        }
        assert!(matches!(
            ClientId::new(6),
            Err(Error::InvalidArgument {
                field: Field::ClientId,
                problem: Problem::OutOfRange
            })
        ));
        assert_eq!(ClientId::all().count(), 6);
    }

    #[test]
    fn topic_filters_match_as_mqtt_says() {
        let yes = [
            ("a/b", "a/b"),
            ("a/+", "a/b"),
            ("a/#", "a/b/c"),
            ("a/#", "a"),
            ("#", "a/b"),
            ("+/+", "a/b"),
            ("a/+/c", "a//c"),
            ("+", ""),
        ];
        let no = [
            ("a/b", "a/c"),
            ("a/+", "a/b/c"),
            ("a/b", "a/b/c"),
            ("a/b/c", "a/b"),
            ("+", "a/b"),
            ("#", "$SYS/x"),
            ("+/x", "$SYS/x"),
            ("a", "A"),
        ];
        for (f, t) in yes {
            assert!(topic_matches(f, t), "{f} should match {t}");
        }
        for (f, t) in no {
            assert!(!topic_matches(f, t), "{f} should not match {t}");
        }
    }

    fn topic_problem(r: Result<(), Error>) -> Option<Problem> {
        match r {
            Ok(()) => None,
            Err(Error::InvalidArgument {
                field: Field::Topic,
                problem,
            }) => Some(problem),
            Err(other) => panic!("{other:?}"),
        }
    }

    #[test]
    fn topic_names_refuse_wildcards_nul_controls_and_empty() {
        for ok in ["a", "a/b", "/", "a//b", "$SYS/x", "\u{e9}/\u{fc}", "a b"] {
            assert_eq!(topic_problem(check_topic(ok)), None, "{ok:?}");
        }
        for (bad, why) in [
            ("a/+", Problem::Wildcard),
            ("+", Problem::Wildcard),
            ("#", Problem::Wildcard),
            ("a/#", Problem::Wildcard),
            ("a+b", Problem::Wildcard),
            ("sport/tennis#", Problem::Wildcard),
            ("", Problem::Empty),
            ("a\0b", Problem::ForbiddenByte),
            ("a\u{85}b", Problem::ForbiddenByte),
            ("a\u{9f}", Problem::ForbiddenByte),
        ] {
            assert_eq!(topic_problem(check_topic(bad)), Some(why), "{bad:?}");
        }
        let at_limit = "t".repeat(limits::TOPIC);
        assert_eq!(topic_problem(check_topic(&at_limit)), None);
        let over = "t".repeat(limits::TOPIC + 1);
        assert_eq!(topic_problem(check_topic(&over)), Some(Problem::TooLong));
    }

    #[test]
    fn topic_filters_allow_whole_level_wildcards_only() {
        for ok in [
            "a", "#", "+", "a/#", "a/+/b", "+/+", "/#", "a//+", "+/#", "/", "$SYS/#",
        ] {
            assert_eq!(topic_problem(check_filter(ok)), None, "{ok:?}");
        }
        for (bad, why) in [
            ("a/#/b", Problem::Wildcard),
            ("#/a", Problem::Wildcard),
            ("a#", Problem::Wildcard),
            ("a/b#", Problem::Wildcard),
            ("a+", Problem::Wildcard),
            ("a/+b", Problem::Wildcard),
            ("++", Problem::Wildcard),
            ("##", Problem::Wildcard),
            ("", Problem::Empty),
            ("a\0", Problem::ForbiddenByte),
            ("a/\u{80}", Problem::ForbiddenByte),
        ] {
            assert_eq!(topic_problem(check_filter(bad)), Some(why), "{bad:?}");
        }
    }

    #[test]
    fn qos_accepts_zero_to_two() {
        assert_eq!(QoS::new(2).unwrap(), QoS::ExactlyOnce);
        assert!(QoS::new(3).is_err());
    }

    #[test]
    fn quoted_strings_reject_quote_cr_lf_and_controls() {
        for bad in ["a\"b", "a\rb", "a\nb", "a\x1ab", "a\x1bb", "a\x7fb", "a\0"] {
            assert_eq!(
                check_quoted(bad, 1, 10, Field::Host),
                Err(Error::InvalidArgument {
                    field: Field::Host,
                    problem: Problem::ForbiddenByte
                }),
                "{bad:?}"
            );
        }
        assert!(check_quoted("ünïcode,ok >", 1, 20, Field::Host).is_ok());
        assert_eq!(
            check_quoted("", 1, 10, Field::Topic).unwrap_err(),
            Error::InvalidArgument {
                field: Field::Topic,
                problem: Problem::Empty
            }
        );
        assert_eq!(
            check_quoted("12345678901", 1, 10, Field::Topic).unwrap_err(),
            Error::InvalidArgument {
                field: Field::Topic,
                problem: Problem::TooLong
            }
        );
    }
}
