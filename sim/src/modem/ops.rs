//! The MQTT operations: `AT+QMTOPEN`, `AT+QMTCLOSE`, `AT+QMTCONN`, `AT+QMTDISC`,
//! `AT+QMTSUB`, `AT+QMTUNS`, `AT+QMTPUB` (inline and data mode).

use std::net::{TcpStream, ToSocketAddrs};
use std::time::Instant;

use super::client::{Op, OpKind, PubStage, St};
use super::{client_id, DataMode, Event, Form, Modem, Res};
use crate::at::{hex_decode, int_in, string, Params};
use crate::config::SimFaults;
use crate::mqtt;

/// A string parameter that must be UTF-8 (client ids, credentials, topics).
fn utf8(p: Option<&crate::at::Param>) -> Result<String, ()> {
    String::from_utf8(string(p)?).map_err(|_| ())
}

/// A topic: 1-255 bytes of UTF-8.
fn topic(p: Option<&crate::at::Param>) -> Result<String, ()> {
    let t = utf8(p)?;
    if t.is_empty() || t.len() > 255 {
        return Err(());
    }
    Ok(t)
}

/// The TCP connect behind `AT+QMTOPEN`: `Err(4)` when the name does not resolve, `Err(-1)`
/// when no address accepts.
fn tcp_connect(host: &str, port: u16, timeout: std::time::Duration) -> Result<TcpStream, i32> {
    let addrs: Vec<_> = (host, port).to_socket_addrs().map_err(|_| 4)?.collect();
    if addrs.is_empty() {
        return Err(4);
    }
    addrs
        .iter()
        .find_map(|a| TcpStream::connect_timeout(a, timeout).ok())
        .ok_or(-1)
}

impl Modem {
    // ------------------------------------------------------------ AT+QMTOPEN / CLOSE

    pub(super) fn cmd_open(&mut self, form: Form<'_>) -> Res {
        if let Form::Read = form {
            let lines: Vec<Vec<u8>> = self
                .clients
                .iter()
                .enumerate()
                .filter(|(_, c)| c.st.has_link())
                .map(|(i, c)| {
                    let mut l = format!("+QMTOPEN: {i},\"").into_bytes();
                    l.extend_from_slice(&c.host);
                    l.extend_from_slice(format!("\",{}", c.port).as_bytes());
                    l
                })
                .collect();
            self.info(&lines);
            return Ok(());
        }
        let Some(p) = self.test_or_write(form, b"+QMTOPEN: (0-5),\"<host_name>\",<port>")? else {
            return Ok(());
        };
        let v = Params::new(p).collect_all()?;
        if v.len() != 3 {
            return Err(());
        }
        let id = client_id(v.first())?;
        let host = string(v.get(1))?;
        if host.is_empty() || host.len() > 100 {
            return Err(());
        }
        let port = int_in(v.get(2), 1, 65535)? as u16;
        self.ok();
        let c = &mut self.clients[id];
        if c.st != St::Closed {
            self.deferred(format!("+QMTOPEN: {id},2"));
            return Ok(());
        }
        c.st = St::Opening;
        c.gen += 1;
        c.host = host.clone();
        c.port = port;
        let gen = c.gen;
        let tx = self.tx.clone();
        let delay = self.faults().open_delay;
        let timeout = self.cfg.connect_timeout;
        let host = String::from_utf8_lossy(&host).into_owned();
        // Not registered: PDP activation fails (3). A `fail_open` fault: its code.
        let forced = match self.net.registered() {
            false => Some(3),
            true => self.take_fault(|f| SimFaults::take(&mut f.fail_open)),
        };
        std::thread::Builder::new()
            .name(format!("bc26-sim-open{id}"))
            .spawn(move || {
                if !delay.is_zero() {
                    std::thread::sleep(delay);
                }
                let result = match forced {
                    Some(code) => Err(code),
                    None => tcp_connect(&host, port, timeout),
                };
                let _ = tx.send(Event::Opened {
                    id: id as u8,
                    gen,
                    result,
                });
            })
            .expect("spawn open thread");
        Ok(())
    }

    pub(super) fn on_opened(&mut self, id: usize, gen: u64, result: Result<TcpStream, i32>) {
        let c = &mut self.clients[id];
        if c.gen != gen || c.st != St::Opening {
            return; // closed meanwhile: the stream (if any) is dropped here
        }
        // Registration lost while connecting: PDP activation failed.
        let result = result.and_then(|s| if self.net.registered() { Ok(s) } else { Err(3) });
        let c = &mut self.clients[id];
        let code = match result.and_then(|s| s.try_clone().map(|r| (s, r)).map_err(|_| -1)) {
            Ok((stream, reader)) => {
                let _ = stream.set_nodelay(true);
                mqtt::spawn_reader(id as u8, gen, reader, self.tx.clone());
                c.stream = Some(stream);
                c.st = St::Opened;
                0
            }
            Err(code) => {
                c.st = St::Closed;
                code
            }
        };
        self.deferred(format!("+QMTOPEN: {id},{code}"));
    }

    pub(super) fn cmd_close(&mut self, form: Form<'_>) -> Res {
        let Some(id) = self.single_id(form, b"+QMTCLOSE: (0-5)")? else {
            return Ok(());
        };
        self.ok();
        let c = &mut self.clients[id];
        if c.st == St::Closed {
            self.deferred(format!("+QMTCLOSE: {id},-1"));
        } else {
            c.drop_link();
            self.deferred(format!("+QMTCLOSE: {id},0"));
        }
        Ok(())
    }

    /// The forms of a command whose only parameter is the client id (CLOSE, DISC): the
    /// test form answers `test`; `Ok(Some(id))` for a write.
    fn single_id(&mut self, form: Form<'_>, test: &[u8]) -> Result<Option<usize>, ()> {
        let Some(p) = self.test_or_write(form, test)? else {
            return Ok(None);
        };
        let v = Params::new(p).collect_all()?;
        if v.len() != 1 {
            return Err(());
        }
        client_id(v.first()).map(Some)
    }

    // ------------------------------------------------------------ AT+QMTCONN / DISC

    pub(super) fn cmd_conn(&mut self, form: Form<'_>) -> Res {
        if let Form::Read = form {
            let lines: Vec<Vec<u8>> = self
                .clients
                .iter()
                .enumerate()
                .filter_map(|(i, c)| {
                    let s = match c.st {
                        St::Opened => 1,
                        St::Connecting => 2,
                        St::Connected => 3,
                        _ => return None,
                    };
                    Some(format!("+QMTCONN: {i},{s}").into_bytes())
                })
                .collect();
            self.info(&lines);
            return Ok(());
        }
        let test = b"+QMTCONN: (0-5),\"<clientID>\"[,\"<username>\"[,\"<password>\"]]";
        let Some(p) = self.test_or_write(form, test)? else {
            return Ok(());
        };
        let v = Params::new(p).collect_all()?;
        if !(2..=4).contains(&v.len()) {
            return Err(());
        }
        let id = client_id(v.first())?;
        let cid = utf8(v.get(1))?;
        let user = v.get(2).map(|p| utf8(Some(p))).transpose()?;
        let pass = v.get(3).map(|p| utf8(Some(p))).transpose()?;
        if self.clients[id].st != St::Opened {
            return Err(());
        }
        let cfg = &self.clients[id].cfg;
        let packet = mqtt::connect(&mqtt::ConnectSpec {
            version: cfg.version(),
            client_id: &cid,
            username: user.as_deref(),
            password: pass.as_deref(),
            keepalive: cfg.keepalive(),
            clean_session: cfg.clean_session(),
            will: cfg.will(),
        })
        .map_err(|_| ())?;
        self.ok();
        if let Some(code) = self.take_fault(|f| SimFaults::take(&mut f.refuse_connect)) {
            // As a broker's refusal: reported, and the link closed (nothing sent, so the
            // broker has no session and publishes no will).
            self.clients[id].drop_link();
            self.deferred(format!("+QMTCONN: {id},0,{code}"));
            return Ok(());
        }
        let c = &mut self.clients[id];
        if c.send(&packet) {
            c.st = St::Connecting;
            c.conn_deadline = Some(Instant::now() + c.pkt_timeout());
        } else {
            c.drop_link();
            self.deferred(format!("+QMTCONN: {id},2"));
        }
        Ok(())
    }

    pub(super) fn cmd_disc(&mut self, form: Form<'_>) -> Res {
        let Some(id) = self.single_id(form, b"+QMTDISC: (0-5)")? else {
            return Ok(());
        };
        self.ok();
        let c = &mut self.clients[id];
        if matches!(c.st, St::Connected | St::Connecting) {
            c.send(&mqtt::disconnect());
            c.drop_link();
            self.deferred(format!("+QMTDISC: {id},0"));
        } else {
            self.deferred(format!("+QMTDISC: {id},-1"));
        }
        Ok(())
    }

    // ------------------------------------------------------------ AT+QMTSUB / UNS

    pub(super) fn cmd_sub(&mut self, form: Form<'_>) -> Res {
        let Some(p) = self.test_or_write(
            form,
            b"+QMTSUB: (0-5),<msgID>,\"<topic>\",<qos>[,\"<topic>\",<qos>...]",
        )?
        else {
            return Ok(());
        };
        let v = Params::new(p).collect_all()?;
        if v.len() < 4 || v.len() % 2 != 0 {
            return Err(());
        }
        let id = client_id(v.first())?;
        let msgid = int_in(v.get(1), 1, 65535)? as u16;
        let mut topics = Vec::new();
        for pair in v[2..].chunks(2) {
            topics.push((topic(pair.first())?, int_in(pair.get(1), 0, 2)? as u8));
        }
        if self.clients[id].st != St::Connected {
            return Err(());
        }
        self.ok();
        let packet = mqtt::subscribe(msgid, &topics);
        self.start_op(id, msgid, OpKind::Sub { packet });
        Ok(())
    }

    pub(super) fn cmd_uns(&mut self, form: Form<'_>) -> Res {
        let Some(p) = self.test_or_write(form, b"+QMTUNS: (0-5),<msgID>,\"<topic>\"")? else {
            return Ok(());
        };
        let v = Params::new(p).collect_all()?;
        if v.len() < 3 {
            return Err(());
        }
        let id = client_id(v.first())?;
        let msgid = int_in(v.get(1), 1, 65535)? as u16;
        let topics = v[2..]
            .iter()
            .map(|t| topic(Some(t)))
            .collect::<Result<Vec<_>, ()>>()?;
        if self.clients[id].st != St::Connected {
            return Err(());
        }
        self.ok();
        let packet = mqtt::unsubscribe(msgid, &topics);
        self.start_op(id, msgid, OpKind::Uns { packet });
        Ok(())
    }

    /// Send the first packet of an acknowledged operation and start its retransmission timer.
    fn start_op(&mut self, id: usize, msgid: u16, kind: OpKind) {
        let c = &mut self.clients[id];
        let packet = match &kind {
            OpKind::Sub { packet } | OpKind::Uns { packet } => packet.clone(),
            OpKind::Pub {
                topic,
                payload,
                qos,
                retain,
                ..
            } => mqtt::publish(topic, msgid, payload, *qos, *retain, false),
        };
        if c.send(&packet) {
            let deadline = Instant::now() + c.pkt_timeout();
            c.ops.push(Op {
                msgid,
                kind,
                deadline,
                retries: 0,
            });
        } else {
            self.deferred(kind.failed(id, msgid));
        }
    }

    // ------------------------------------------------------------ AT+QMTPUB

    pub(super) fn cmd_pub(&mut self, form: Form<'_>) -> Res {
        let Some(p) = self.test_or_write(
            form,
            b"+QMTPUB: (0-5),<msgID>,<qos>,<retain>,\"<topic>\",\"<msg>\"",
        )?
        else {
            return Ok(());
        };
        let mut ps = Params::new(p);
        let mut v = Vec::new();
        for _ in 0..5 {
            v.push(ps.next_param().ok_or(())??);
        }
        let id = client_id(v.first())?;
        let msgid = int_in(v.get(1), 0, 65535)? as u16;
        let qos = int_in(v.get(2), 0, 2)? as u8;
        let retain = int_in(v.get(3), 0, 1)? == 1;
        let topic = topic(v.get(4))?;
        if (qos == 0) != (msgid == 0) {
            return Err(());
        }
        let hex = self.clients[id].cfg.send_hex();
        // Inline message: everything between the first and the last quote of the rest, so
        // that quotes and commas inside the message are kept.
        let inline = if ps.at_end() {
            None
        } else {
            let rest = crate::at::trim(ps.rest());
            if rest.len() < 2 || rest[0] != b'"' || rest[rest.len() - 1] != b'"' {
                return Err(());
            }
            let msg = &rest[1..rest.len() - 1];
            let msg = if hex {
                if msg.len() > 2 * 700 {
                    return Err(());
                }
                hex_decode(msg).ok_or(())?
            } else {
                if msg.len() > 700 {
                    return Err(());
                }
                msg.to_vec()
            };
            Some(msg)
        };
        if self.clients[id].st != St::Connected {
            return Err(());
        }
        match inline {
            Some(msg) => {
                self.ok();
                self.publish(id, msgid, qos, retain, topic, msg);
            }
            None => {
                self.emit(b"\r\n> ");
                self.data = Some(DataMode {
                    id,
                    msgid,
                    qos,
                    retain,
                    topic,
                    buf: Vec::new(),
                });
            }
        }
        Ok(())
    }

    pub(super) fn publish(
        &mut self,
        id: usize,
        msgid: u16,
        qos: u8,
        retain: bool,
        topic: String,
        payload: Vec<u8>,
    ) {
        if self.clients[id].st != St::Connected {
            self.deferred(format!("+QMTPUB: {id},{msgid},2"));
            return;
        }
        if qos == 0 {
            let ok = self.clients[id].send(&mqtt::publish(&topic, 0, &payload, 0, retain, false));
            self.deferred(format!("+QMTPUB: {id},0,{}", if ok { 0 } else { 2 }));
            return;
        }
        let stage = if qos == 1 {
            PubStage::Ack
        } else {
            PubStage::Rec
        };
        self.start_op(
            id,
            msgid,
            OpKind::Pub {
                stage,
                topic,
                payload,
                qos,
                retain,
            },
        );
    }
}
