//! MQTT packets on the wire, through the `mqute-codec` crate (v3 = MQTT 3.1 "MQIsdp",
//! v4 = MQTT 3.1.1), and the TCP reader thread of one client.

use std::io::Read;
use std::net::TcpStream;
use std::sync::mpsc::Sender;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use mqute_codec::codec::{Encode, PacketCodec};
use mqute_codec::protocol::{v3, v4, Credentials, Flags, QoS};

use crate::modem::Event;

pub(crate) fn qos(q: u8) -> QoS {
    match q {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

fn enc<P: Encode>(p: &P) -> Vec<u8> {
    let mut b = BytesMut::new();
    p.encode(&mut b).expect("MQTT packet encoding failed");
    b.to_vec()
}

pub(crate) struct WillSpec {
    pub qos: u8,
    pub retain: bool,
    pub topic: String,
    pub msg: Vec<u8>,
}

pub(crate) struct ConnectSpec<'a> {
    pub version: u8,
    pub client_id: &'a str,
    pub username: Option<&'a str>,
    pub password: Option<&'a str>,
    pub keepalive: u16,
    pub clean_session: bool,
    pub will: Option<WillSpec>,
}

pub(crate) fn connect(c: &ConnectSpec<'_>) -> Result<Vec<u8>, String> {
    let creds = c
        .username
        .map(|u| Credentials::new(u, c.password.map(|p| p.to_string())));
    let will = c.will.as_ref().map(|w| {
        v4::Will::new(
            w.topic.clone(),
            Bytes::copy_from_slice(&w.msg),
            qos(w.qos),
            w.retain,
        )
    });
    let ka = Duration::from_secs(c.keepalive as u64);
    let mut b = BytesMut::new();
    let r = if c.version == 3 {
        v3::Connect::new(c.client_id, creds, will, ka, c.clean_session).encode(&mut b)
    } else {
        v4::Connect::new(c.client_id, creds, will, ka, c.clean_session).encode(&mut b)
    };
    r.map_err(|e| e.to_string())?;
    Ok(b.to_vec())
}

pub(crate) fn publish(
    topic: &str,
    pkid: u16,
    payload: &[u8],
    q: u8,
    retain: bool,
    dup: bool,
) -> Vec<u8> {
    let mut flags = Flags::new(qos(q));
    flags.retain = retain;
    flags.dup = dup && q > 0;
    enc(&v4::Publish::new(
        topic,
        pkid,
        Bytes::copy_from_slice(payload),
        flags,
    ))
}

pub(crate) fn subscribe(pkid: u16, topics: &[(String, u8)]) -> Vec<u8> {
    enc(&v4::Subscribe::new(
        pkid,
        topics
            .iter()
            .map(|(t, q)| v4::TopicQosFilter::new(t.clone(), qos(*q))),
    ))
}

pub(crate) fn unsubscribe(pkid: u16, topics: &[String]) -> Vec<u8> {
    enc(&v4::Unsubscribe::new(pkid, topics.iter().cloned()))
}

pub(crate) fn puback(pkid: u16) -> Vec<u8> {
    enc(&v4::PubAck::new(pkid))
}
pub(crate) fn pubrec(pkid: u16) -> Vec<u8> {
    enc(&v4::PubRec::new(pkid))
}
pub(crate) fn pubrel(pkid: u16) -> Vec<u8> {
    enc(&v4::PubRel::new(pkid))
}
pub(crate) fn pubcomp(pkid: u16) -> Vec<u8> {
    enc(&v4::PubComp::new(pkid))
}
pub(crate) fn pingreq() -> Vec<u8> {
    enc(&v4::PingReq::default())
}
pub(crate) fn disconnect() -> Vec<u8> {
    enc(&v4::Disconnect::default())
}

/// What the modem needs to know of a packet from the broker.
#[derive(Debug)]
pub(crate) enum Incoming {
    ConnAck(u8),
    Publish {
        topic: String,
        pkid: u16,
        qos: u8,
        payload: Vec<u8>,
    },
    PubAck(u16),
    PubRec(u16),
    PubRel(u16),
    PubComp(u16),
    SubAck(u16, Vec<u8>),
    UnsubAck(u16),
    PingResp,
    Other,
}

fn convert(p: v4::Packet) -> Incoming {
    use v4::Packet as P;
    match p {
        P::ConnAck(c) => Incoming::ConnAck(c.code() as u8),
        P::Publish(p) => Incoming::Publish {
            topic: p.topic(),
            pkid: p.packet_id().unwrap_or(0),
            qos: p.flags().qos as u8,
            payload: p.payload().to_vec(),
        },
        P::PubAck(a) => Incoming::PubAck(a.packet_id()),
        P::PubRec(a) => Incoming::PubRec(a.packet_id()),
        P::PubRel(a) => Incoming::PubRel(a.packet_id()),
        P::PubComp(a) => Incoming::PubComp(a.packet_id()),
        P::SubAck(s) => {
            Incoming::SubAck(s.packet_id(), s.codes().into_iter().map(u8::from).collect())
        }
        P::UnsubAck(a) => Incoming::UnsubAck(a.packet_id()),
        P::PingResp(_) => Incoming::PingResp,
        _ => Incoming::Other,
    }
}

/// Reads packets from the broker until the link closes, then reports `LinkClosed`.
pub(crate) fn spawn_reader(id: u8, gen: u64, mut stream: TcpStream, tx: Sender<Event>) {
    std::thread::Builder::new()
        .name(format!("bc26-sim-mqtt{id}"))
        .spawn(move || {
            let codec = PacketCodec::new(None, None);
            let mut buf = BytesMut::new();
            let mut chunk = [0u8; 4096];
            loop {
                // Decode everything complete in the buffer.
                loop {
                    match codec.try_decode(&mut buf) {
                        Ok(raw) => match v4::Packet::decode(raw) {
                            Ok(p) => {
                                if tx
                                    .send(Event::Packet {
                                        id,
                                        gen,
                                        pkt: convert(p),
                                    })
                                    .is_err()
                                {
                                    return;
                                }
                            }
                            Err(_) => {
                                let _ = tx.send(Event::LinkClosed { id, gen });
                                return;
                            }
                        },
                        Err(mqute_codec::Error::NotEnoughBytes(_)) => break,
                        Err(_) => {
                            let _ = tx.send(Event::LinkClosed { id, gen });
                            return;
                        }
                    }
                }
                match stream.read(&mut chunk) {
                    Ok(0) | Err(_) => {
                        let _ = tx.send(Event::LinkClosed { id, gen });
                        return;
                    }
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
        })
        .expect("spawn MQTT reader thread");
}
