//! Packets from the broker: CONNACK, PUBLISH (and PUBREL of incoming QoS 2), the
//! acknowledgements of our operations, PINGRESP.

use std::time::Instant;

use super::client::{OpKind, PubStage, St};
use super::Modem;
use crate::at::hex_encode_upper;
use crate::mqtt::{self, Incoming};

/// Which operation an acknowledgement answers.
fn pub_waiting_for(stages: &'static [PubStage]) -> impl Fn(&OpKind) -> bool {
    move |k| matches!(k, OpKind::Pub { stage, .. } if stages.contains(stage))
}

impl Modem {
    pub(super) fn on_packet(&mut self, id: usize, pkt: Incoming) {
        match pkt {
            Incoming::ConnAck(code) => self.on_connack(id, code),
            Incoming::Publish {
                topic,
                pkid,
                qos,
                payload,
            } => self.on_publish(id, &topic, pkid, qos, &payload),
            Incoming::PubRel(pkid) => {
                let c = &mut self.clients[id];
                c.in_qos2.remove(&pkid);
                c.send(&mqtt::pubcomp(pkid));
            }
            Incoming::PubAck(pkid) => {
                let done = format!("+QMTPUB: {id},{pkid},0");
                self.on_final_ack(id, pkid, pub_waiting_for(&[PubStage::Ack]), done);
            }
            Incoming::PubRec(pkid) => self.on_pubrec(id, pkid),
            Incoming::PubComp(pkid) => {
                let done = format!("+QMTPUB: {id},{pkid},0");
                self.on_final_ack(id, pkid, pub_waiting_for(&[PubStage::Comp]), done);
            }
            Incoming::SubAck(pkid, codes) => {
                let codes: Vec<String> = codes.iter().map(|c| c.to_string()).collect();
                let done = format!("+QMTSUB: {id},{pkid},0,{}", codes.join(","));
                self.on_final_ack(id, pkid, |k| matches!(k, OpKind::Sub { .. }), done);
            }
            Incoming::UnsubAck(pkid) => {
                let done = format!("+QMTUNS: {id},{pkid},0");
                self.on_final_ack(id, pkid, |k| matches!(k, OpKind::Uns { .. }), done);
            }
            Incoming::PingResp => {
                if !self.faults().ignore_pingresp {
                    self.clients[id].ping_deadline = None;
                }
            }
            Incoming::Other => {}
        }
    }

    fn on_connack(&mut self, id: usize, code: u8) {
        if self.clients[id].st != St::Connecting || self.faults().ignore_connack {
            return;
        }
        let c = &mut self.clients[id];
        c.conn_deadline = None;
        if code == 0 {
            c.st = St::Connected;
            c.ping_deadline = None;
        } else {
            // The server refused: it closes the link, and so does the module.
            c.drop_link();
        }
        self.deferred(format!("+QMTCONN: {id},0,{code}"));
    }

    /// Acknowledge (QoS 1: PUBACK, QoS 2: PUBREC) and report `+QMTRECV`, once per QoS 2
    /// packet id until its PUBREL.
    fn on_publish(&mut self, id: usize, topic: &str, pkid: u16, qos: u8, payload: &[u8]) {
        let c = &mut self.clients[id];
        let report = match qos {
            0 => true,
            1 => {
                c.send(&mqtt::puback(pkid));
                true
            }
            _ => {
                c.send(&mqtt::pubrec(pkid));
                c.in_qos2.insert(pkid)
            }
        };
        if !report {
            return;
        }
        let mut l = format!("+QMTRECV: {id},{pkid},\"").into_bytes();
        l.extend_from_slice(topic.as_bytes());
        l.extend_from_slice(b"\",\"");
        if c.cfg.recv_hex() {
            l.extend_from_slice(&hex_encode_upper(payload));
        } else {
            l.extend_from_slice(payload);
        }
        l.push(b'"');
        self.urc(l);
    }

    /// PUBREC: the QoS 2 publish moves on to PUBREL/PUBCOMP.
    fn on_pubrec(&mut self, id: usize, pkid: u16) {
        let waiting = pub_waiting_for(&[PubStage::Rec, PubStage::Comp]);
        let Some(i) = self.clients[id].find_op(pkid, waiting) else {
            return;
        };
        if self.drop_ack() {
            return;
        }
        let c = &mut self.clients[id];
        let deadline = Instant::now() + c.pkt_timeout();
        let op = &mut c.ops[i];
        if let OpKind::Pub { stage, .. } = &mut op.kind {
            *stage = PubStage::Comp;
        }
        op.deadline = deadline;
        c.send(&mqtt::pubrel(pkid));
    }

    /// The acknowledgement that completes an operation: report `done`.
    fn on_final_ack(
        &mut self,
        id: usize,
        pkid: u16,
        waiting: impl Fn(&OpKind) -> bool,
        done: String,
    ) {
        if let Some(i) = self.clients[id].find_op(pkid, waiting) {
            if !self.drop_ack() {
                self.clients[id].ops.remove(i);
                self.deferred(done);
            }
        }
    }

    /// True when the fault "drop this ack" applies (and consumes one).
    fn drop_ack(&mut self) -> bool {
        self.take_fault(|f| {
            let drop = f.drop_acks > 0;
            f.drop_acks = f.drop_acks.saturating_sub(1);
            drop
        })
    }
}
