//! MQTT on the wire: [`encode`] turns a [`ToBroker`] into bytes (through the `mqute-codec`
//! crate: MQTT 3.1 `MQIsdp` level 3 and MQTT 3.1.1 level 4), and a [`Decoder`] turns a
//! link's byte stream from the broker into [`FromBroker`] values.
//!
//! Neither can panic on what it is given: `encode` checks every precondition of the codec's
//! constructors first (they panic on a topic with a wildcard, a packet id of 0, an empty
//! SUBSCRIBE) and refuses instead; the decoder is written here (from MQTT 3.1.1 section 2
//! and 3), so that a broker's bytes, however malformed, end in [`Malformed`], never a panic.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use mqute_codec::codec::Encode;
use mqute_codec::protocol::util::{is_valid_topic_filter, is_valid_topic_name};
use mqute_codec::protocol::{v3, v4, Credentials, Flags, QoS};

use crate::model::packet::{FromBroker, ToBroker};

/// A packet the codec cannot encode (a topic MQTT forbids, a packet id of 0, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unencodable(pub(crate) String);

/// Bytes from a broker that are not MQTT: the link is unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Malformed;

fn qos(q: u8) -> QoS {
    match q {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

fn bytes_of<P: Encode>(p: &P) -> Result<Vec<u8>, Unencodable> {
    let mut b = BytesMut::new();
    p.encode(&mut b).map_err(|e| Unencodable(e.to_string()))?;
    Ok(b.to_vec())
}

fn refuse<T>(why: &str) -> Result<T, Unencodable> {
    Err(Unencodable(why.into()))
}

fn nonzero(pkid: u16) -> Result<u16, Unencodable> {
    if pkid == 0 {
        return refuse("packet id 0");
    }
    Ok(pkid)
}

/// The largest remaining length MQTT can frame (four length bytes).
const MAX_REMAINING: usize = 268_435_455;

/// The bytes of `p`, or why the codec cannot produce them.
pub(crate) fn encode(p: &ToBroker) -> Result<Vec<u8>, Unencodable> {
    match p {
        ToBroker::Connect {
            level,
            client_id,
            username,
            password,
            keepalive,
            clean_session,
            will,
        } => {
            let creds = username
                .as_ref()
                .map(|u| Credentials::new(u.as_str(), password.clone()));
            let will = match will {
                Some(w) if !is_valid_topic_name(&w.topic) => return refuse("will topic"),
                Some(w) => Some(v4::Will::new(
                    w.topic.clone(),
                    Bytes::copy_from_slice(&w.msg),
                    qos(w.qos),
                    w.retain,
                )),
                None => None,
            };
            let ka = Duration::from_secs(u64::from(*keepalive));
            if *level == 3 {
                let c = v3::Connect::new(client_id.as_str(), creds, will, ka, *clean_session);
                bytes_of(&c)
            } else {
                let c = v4::Connect::new(client_id.as_str(), creds, will, ka, *clean_session);
                bytes_of(&c)
            }
        }
        ToBroker::Publish {
            topic,
            pkid,
            payload,
            qos: q,
            retain,
            dup,
        } => {
            if !is_valid_topic_name(topic) {
                return refuse("topic name");
            }
            if *q > 0 {
                nonzero(*pkid)?;
            }
            if topic.len() + payload.len() + 4 > MAX_REMAINING {
                return refuse("too long");
            }
            let mut flags = Flags::new(qos(*q));
            flags.retain = *retain;
            flags.dup = *dup && *q > 0;
            let pkid = if *q == 0 { 0 } else { *pkid };
            bytes_of(&v4::Publish::new(
                topic.as_str(),
                pkid,
                Bytes::copy_from_slice(payload),
                flags,
            ))
        }
        ToBroker::PubAck(id) => bytes_of(&v4::PubAck::new(nonzero(*id)?)),
        ToBroker::PubRec(id) => bytes_of(&v4::PubRec::new(nonzero(*id)?)),
        ToBroker::PubRel(id) => bytes_of(&v4::PubRel::new(nonzero(*id)?)),
        ToBroker::PubComp(id) => bytes_of(&v4::PubComp::new(nonzero(*id)?)),
        ToBroker::Subscribe { pkid, filters } => {
            if filters.is_empty() || !filters.iter().all(|(f, _)| is_valid_topic_filter(f)) {
                return refuse("topic filter");
            }
            bytes_of(&v4::Subscribe::new(
                nonzero(*pkid)?,
                filters
                    .iter()
                    .map(|(f, q)| v4::TopicQosFilter::new(f.as_str(), qos(*q))),
            ))
        }
        ToBroker::Unsubscribe { pkid, filters } => {
            if filters.is_empty() || !filters.iter().all(is_valid_topic_filter) {
                return refuse("topic filter");
            }
            bytes_of(&v4::Unsubscribe::new(
                nonzero(*pkid)?,
                filters.iter().map(String::as_str),
            ))
        }
        ToBroker::PingReq => bytes_of(&v4::PingReq::default()),
        ToBroker::Disconnect => bytes_of(&v4::Disconnect::default()),
    }
}

/// One link's stream from the broker, cut into packets.
#[derive(Debug, Default)]
pub(crate) struct Decoder {
    buf: Vec<u8>,
}

impl Decoder {
    /// Bytes as they arrived (any cut).
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete packet: `None` until one is complete, `Some(Err(Malformed))` when
    /// the stream is not MQTT (nothing after that is meaningful).
    pub(crate) fn next_packet(&mut self) -> Option<Result<FromBroker, Malformed>> {
        let (len, header) = match remaining_length(&self.buf)? {
            Ok(v) => v,
            Err(m) => return Some(Err(m)),
        };
        let total = header + len;
        if self.buf.len() < total {
            return None;
        }
        let p = parse(self.buf[0], &self.buf[header..total]);
        self.buf.drain(..total);
        Some(p)
    }
}

/// The remaining length and the size of the fixed header; `None` until it is complete.
fn remaining_length(b: &[u8]) -> Option<Result<(usize, usize), Malformed>> {
    let mut len = 0usize;
    for i in 0..4 {
        let byte = *b.get(1 + i)?;
        len |= usize::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some(Ok((len, 2 + i)));
        }
    }
    Some(Err(Malformed))
}

fn word(b: &[u8], at: usize) -> Result<u16, Malformed> {
    match b.get(at..at + 2) {
        Some(w) => Ok(u16::from_be_bytes([w[0], w[1]])),
        None => Err(Malformed),
    }
}

/// A packet id that must be there and not 0, and nothing after it.
fn id_only(body: &[u8]) -> Result<u16, Malformed> {
    match word(body, 0)? {
        0 => Err(Malformed),
        id if body.len() == 2 => Ok(id),
        _ => Err(Malformed),
    }
}

/// One packet: its first byte (type and flags) and what follows the fixed header.
fn parse(first: u8, body: &[u8]) -> Result<FromBroker, Malformed> {
    let flags = first & 0x0f;
    let need_flags = |want: u8| {
        if flags == want {
            Ok(())
        } else {
            Err(Malformed)
        }
    };
    Ok(match first >> 4 {
        2 => {
            need_flags(0)?;
            match body {
                [ack, code] if ack & 0xfe == 0 => FromBroker::ConnAck(*code),
                _ => return Err(Malformed),
            }
        }
        3 => {
            let q = (flags >> 1) & 3;
            if q == 3 {
                return Err(Malformed);
            }
            let tlen = usize::from(word(body, 0)?);
            let topic = body.get(2..2 + tlen).ok_or(Malformed)?.to_vec();
            let mut at = 2 + tlen;
            let pkid = if q > 0 {
                let id = word(body, at)?;
                if id == 0 {
                    return Err(Malformed);
                }
                at += 2;
                id
            } else {
                0
            };
            FromBroker::Publish {
                topic,
                pkid,
                qos: q,
                payload: body[at..].to_vec(),
            }
        }
        4 => {
            need_flags(0)?;
            FromBroker::PubAck(id_only(body)?)
        }
        5 => {
            need_flags(0)?;
            FromBroker::PubRec(id_only(body)?)
        }
        6 => {
            need_flags(2)?;
            FromBroker::PubRel(id_only(body)?)
        }
        7 => {
            need_flags(0)?;
            FromBroker::PubComp(id_only(body)?)
        }
        9 => {
            need_flags(0)?;
            let id = word(body, 0)?;
            if id == 0 || body.len() < 3 {
                return Err(Malformed);
            }
            FromBroker::SubAck(id, body[2..].to_vec())
        }
        11 => {
            need_flags(0)?;
            FromBroker::UnsubAck(id_only(body)?)
        }
        13 => {
            need_flags(0)?;
            if !body.is_empty() {
                return Err(Malformed);
            }
            FromBroker::PingResp
        }
        1 | 8 | 10 | 12 | 14 => FromBroker::Other,
        _ => return Err(Malformed),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::packet::Will;

    fn publish(topic: &str, pkid: u16, q: u8, dup: bool) -> ToBroker {
        ToBroker::Publish {
            topic: topic.into(),
            pkid,
            payload: b"hi".to_vec(),
            qos: q,
            retain: false,
            dup,
        }
    }

    #[test]
    fn packets_encode_byte_for_byte() {
        assert_eq!(
            encode(&publish("a/b", 0, 0, false)).unwrap(),
            b"\x30\x07\x00\x03a/bhi"
        );
        assert_eq!(
            encode(&publish("a/b", 7, 1, true)).unwrap(),
            b"\x3a\x09\x00\x03a/b\x00\x07hi"
        );
        assert_eq!(
            encode(&ToBroker::PubRel(0x1234)).unwrap(),
            b"\x62\x02\x12\x34"
        );
        assert_eq!(encode(&ToBroker::PubAck(1)).unwrap(), b"\x40\x02\x00\x01");
        assert_eq!(encode(&ToBroker::PubRec(1)).unwrap(), b"\x50\x02\x00\x01");
        assert_eq!(encode(&ToBroker::PubComp(1)).unwrap(), b"\x70\x02\x00\x01");
        assert_eq!(encode(&ToBroker::PingReq).unwrap(), b"\xc0\x00");
        assert_eq!(encode(&ToBroker::Disconnect).unwrap(), b"\xe0\x00");
        let sub = ToBroker::Subscribe {
            pkid: 2,
            filters: vec![("a/+".into(), 1)],
        };
        assert_eq!(encode(&sub).unwrap(), b"\x82\x08\x00\x02\x00\x03a/+\x01");
        let uns = ToBroker::Unsubscribe {
            pkid: 3,
            filters: vec!["#".into()],
        };
        assert_eq!(encode(&uns).unwrap(), b"\xa2\x05\x00\x03\x00\x01#");
        let connect = |level| ToBroker::Connect {
            level,
            client_id: "c".into(),
            username: None,
            password: None,
            keepalive: 60,
            clean_session: true,
            will: None,
        };
        assert_eq!(
            encode(&connect(4)).unwrap(),
            b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x3c\x00\x01c"
        );
        assert_eq!(
            encode(&connect(3)).unwrap(),
            b"\x10\x0f\x00\x06MQIsdp\x03\x02\x00\x3c\x00\x01c"
        );
    }

    #[test]
    fn what_the_codec_would_panic_on_is_refused() {
        assert!(encode(&publish("a/+", 0, 0, false)).is_err());
        assert!(encode(&publish("a/#", 0, 0, false)).is_err());
        assert!(encode(&publish("", 0, 0, false)).is_err());
        assert!(encode(&publish("a\0", 0, 0, false)).is_err());
        assert!(encode(&publish("a", 0, 1, false)).is_err());
        assert!(encode(&ToBroker::PubAck(0)).is_err());
        assert!(encode(&ToBroker::PubRel(0)).is_err());
        for filters in [
            vec![],
            vec![("a/#/b".to_string(), 0)],
            vec![("a+".to_string(), 0)],
        ] {
            assert!(encode(&ToBroker::Subscribe { pkid: 1, filters }).is_err());
        }
        assert!(encode(&ToBroker::Subscribe {
            pkid: 0,
            filters: vec![("a".into(), 0)]
        })
        .is_err());
        assert!(encode(&ToBroker::Unsubscribe {
            pkid: 1,
            filters: vec![]
        })
        .is_err());
        let will = Will {
            qos: 0,
            retain: false,
            topic: "w/+".into(),
            msg: vec![],
        };
        assert!(encode(&ToBroker::Connect {
            level: 4,
            client_id: "c".into(),
            username: None,
            password: None,
            keepalive: 0,
            clean_session: true,
            will: Some(will),
        })
        .is_err());
    }

    fn decode_all(bytes: &[u8]) -> Vec<Result<FromBroker, Malformed>> {
        let mut d = Decoder::default();
        d.push(bytes);
        std::iter::from_fn(|| d.next_packet()).take(10).collect()
    }

    #[test]
    fn broker_packets_decode_at_any_cut() {
        let stream: &[u8] = b"\x20\x02\x00\x00\x90\x04\x00\x05\x01\x80\x34\x0a\x00\x03t/x\x00\x09pay\
            \x40\x02\x00\x07\x50\x02\x00\x08\x62\x02\x00\x09\x70\x02\x00\x0a\xb0\x02\x00\x0b\xd0\x00\x30\x03\x00\x01z";
        let want = vec![
            FromBroker::ConnAck(0),
            FromBroker::SubAck(5, vec![1, 0x80]),
            FromBroker::Publish {
                topic: b"t/x".to_vec(),
                pkid: 9,
                qos: 2,
                payload: b"pay".to_vec(),
            },
            FromBroker::PubAck(7),
            FromBroker::PubRec(8),
            FromBroker::PubRel(9),
            FromBroker::PubComp(10),
            FromBroker::UnsubAck(11),
            FromBroker::PingResp,
            FromBroker::Publish {
                topic: b"z".to_vec(),
                pkid: 0,
                qos: 0,
                payload: vec![],
            },
        ];
        for cut in 0..stream.len() {
            let mut d = Decoder::default();
            let mut got = Vec::new();
            for part in [&stream[..cut], &stream[cut..]] {
                d.push(part);
                while let Some(p) = d.next_packet() {
                    got.push(p.unwrap());
                }
            }
            assert_eq!(got, want, "cut at {cut}");
        }
    }

    #[test]
    fn malformed_broker_packets_are_refused_not_panicked_on() {
        for bad in [
            &b"\x40\x02\x00\x00"[..],     // PUBACK id 0
            b"\x60\x02\x00\x01",          // PUBREL without its flags
            b"\x32\x05\x00\x01a\x00\x00", // QoS 1 PUBLISH id 0
            b"\x36\x03\x00\x01a",         // QoS 3
            b"\x30\x01\x00",              // topic length cut
            b"\x90\x02\x00\x01",          // SUBACK without codes
            b"\x20\x03\x00\x00\x00",      // CONNACK too long
            b"\xd0\x01\x00",              // PINGRESP with a body
            b"\x00\x00",                  // type 0
            b"\xf0\x00",                  // type 15
            b"\x30\xff\xff\xff\xff\x01",  // a fifth length byte
        ] {
            assert_eq!(decode_all(bad).first(), Some(&Err(Malformed)), "{bad:?}");
        }
        assert_eq!(decode_all(b"\x10\x00"), vec![Ok(FromBroker::Other)]);
        assert!(
            decode_all(b"\x30\x80").is_empty(),
            "incomplete: nothing yet"
        );
    }
}
