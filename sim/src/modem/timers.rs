//! The clients' timers: CONNACK timeout, keep-alive (PINGREQ/PINGRESP), retransmission of
//! unacknowledged operations.

use std::time::{Duration, Instant};

use super::client::{OpKind, PubStage, St};
use super::Modem;
use crate::mqtt;

impl Modem {
    pub(super) fn timers(&mut self) {
        let now = Instant::now();
        for id in 0..self.clients.len() {
            self.connack_timeout(id, now);
            self.keepalive(id, now);
            self.retransmit(id, now);
        }
    }

    /// No CONNACK within `pkt_timeout`: `+QMTCONN: <id>,2`, link closed.
    fn connack_timeout(&mut self, id: usize, now: Instant) {
        if self.clients[id].conn_deadline.is_some_and(|d| now >= d) {
            self.clients[id].drop_link();
            self.deferred(format!("+QMTCONN: {id},2"));
        }
    }

    /// PINGREQ after `keepalive` seconds without sending; no PINGRESP within `pkt_timeout`
    /// (or PINGREQ not sent): `+QMTSTAT: <id>,2`, link closed.
    fn keepalive(&mut self, id: usize, now: Instant) {
        let c = &mut self.clients[id];
        if c.st != St::Connected {
            return;
        }
        let failed = match c.ping_deadline {
            Some(d) => now >= d,
            None => {
                let period = Duration::from_secs(c.cfg.keepalive() as u64);
                if period.is_zero() || now < c.last_tx + period {
                    return;
                }
                let sent = c.send(&mqtt::pingreq());
                c.ping_deadline = Some(now + c.pkt_timeout());
                !sent
            }
        };
        if failed {
            c.drop_link();
            self.urc(format!("+QMTSTAT: {id},2").into_bytes());
        }
    }

    /// Operations not acknowledged within `pkt_timeout`: sent again (PUBLISH with DUP, or
    /// PUBREL) up to `retry_times` times, with a progress line when `timeout_notice` is on;
    /// then `...,2`.
    fn retransmit(&mut self, id: usize, now: Instant) {
        let mut i = 0;
        while i < self.clients[id].ops.len() {
            let c = &mut self.clients[id];
            if now < c.ops[i].deadline {
                i += 1;
                continue;
            }
            if c.ops[i].retries >= c.cfg.retry_times() {
                let op = c.ops.remove(i);
                self.deferred(op.kind.failed(id, op.msgid));
                continue;
            }
            let timeout = c.pkt_timeout();
            let notice = c.cfg.timeout_notice();
            let op = &mut c.ops[i];
            op.retries += 1;
            op.deadline = now + timeout;
            let (n, msgid) = (op.retries, op.msgid);
            let (packet, line) = match &op.kind {
                OpKind::Sub { packet } => (packet.clone(), format!("+QMTSUB: {id},{msgid},1,{n}")),
                OpKind::Uns { packet } => (packet.clone(), format!("+QMTUNS: {id},{msgid},1")),
                OpKind::Pub {
                    stage: PubStage::Comp,
                    ..
                } => (mqtt::pubrel(msgid), format!("+QMTPUB: {id},{msgid},1,{n}")),
                OpKind::Pub {
                    topic,
                    payload,
                    qos,
                    retain,
                    ..
                } => (
                    mqtt::publish(topic, msgid, payload, *qos, *retain, true),
                    format!("+QMTPUB: {id},{msgid},1,{n}"),
                ),
            };
            c.send(&packet);
            if notice {
                self.deferred(line);
            }
            i += 1;
        }
    }
}
