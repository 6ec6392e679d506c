//! The simulated modem: AT command interpreter, per-client MQTT state machines, timers.
//!
//! Everything runs on one std thread fed by an `mpsc` channel of [`Event`]s (bytes from the
//! host, packets from the brokers, results of TCP connects, handle requests).

use std::collections::{HashSet, VecDeque};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::at::{hex_decode, hex_encode_upper, int_in, string, Param, Params};
use crate::config::{SimConfig, SimFaults};
use crate::mqtt::{self, Incoming};
use crate::output::Output;

pub(crate) enum Event {
    Host(Vec<u8>),
    Inject(Vec<u8>),
    Opened {
        id: u8,
        gen: u64,
        result: Result<TcpStream, i32>,
    },
    Packet {
        id: u8,
        gen: u64,
        pkt: Incoming,
    },
    LinkClosed {
        id: u8,
        gen: u64,
    },
    BreakLink(u8),
    Shutdown,
}

/// State of one MQTT client (`tcpconnectID`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum St {
    /// Network not open.
    Closed,
    /// `AT+QMTOPEN` in progress.
    Opening,
    /// Network open, MQTT not connected (`AT+QMTCONN?` state 1, "initial").
    Opened,
    /// CONNECT sent, waiting for CONNACK (state 2).
    Connecting,
    /// CONNACK 0 received (state 3).
    Connected,
}

#[derive(Clone)]
struct WillCfg {
    qos: u8,
    retain: u8,
    topic: Vec<u8>,
    msg: Vec<u8>,
}

#[derive(Clone)]
struct ClientCfg {
    will: Option<WillCfg>,
    pkt_timeout: u32,
    retry_times: u32,
    timeout_notice: u8,
    clean_session: u8,
    keepalive: u32,
    aliauth: Option<(Vec<u8>, Vec<u8>, Vec<u8>)>,
    version: u8,
    send_hex: u8,
    recv_hex: u8,
    echomode: u8,
}

impl ClientCfg {
    fn new(version: u8) -> Self {
        ClientCfg {
            will: None,
            pkt_timeout: 10,
            retry_times: 3,
            timeout_notice: 0,
            clean_session: 1,
            keepalive: 120,
            aliauth: None,
            version,
            send_hex: 0,
            recv_hex: 0,
            echomode: 1,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
/// What an outgoing QoS 1/2 publish waits for: PUBACK, PUBREC or PUBCOMP.
enum PubStage {
    Ack,
    Rec,
    Comp,
}

enum OpKind {
    Sub {
        packet: Vec<u8>,
    },
    Uns {
        packet: Vec<u8>,
    },
    Pub {
        stage: PubStage,
        topic: String,
        payload: Vec<u8>,
        qos: u8,
        retain: bool,
    },
}

struct Op {
    msgid: u16,
    kind: OpKind,
    deadline: Instant,
    retries: u32,
}

struct Client {
    cfg: ClientCfg,
    st: St,
    host: Vec<u8>,
    port: u16,
    gen: u64,
    stream: Option<TcpStream>,
    ops: Vec<Op>,
    in_qos2: HashSet<u16>,
    last_tx: Instant,
    ping_deadline: Option<Instant>,
    conn_deadline: Option<Instant>,
}

impl Client {
    fn new(version: u8) -> Self {
        Client {
            cfg: ClientCfg::new(version),
            st: St::Closed,
            host: Vec::new(),
            port: 0,
            gen: 0,
            stream: None,
            ops: Vec::new(),
            in_qos2: HashSet::new(),
            last_tx: Instant::now(),
            ping_deadline: None,
            conn_deadline: None,
        }
    }

    fn pkt_timeout(&self) -> Duration {
        Duration::from_secs(self.cfg.pkt_timeout.max(1) as u64)
    }

    /// Drop the link (no MQTT traffic) and forget everything in flight.
    fn drop_link(&mut self) {
        if let Some(s) = self.stream.take() {
            let _ = s.shutdown(Shutdown::Both);
        }
        self.st = St::Closed;
        self.gen += 1;
        self.ops.clear();
        self.in_qos2.clear();
        self.ping_deadline = None;
        self.conn_deadline = None;
    }

    fn send(&mut self, bytes: &[u8]) -> bool {
        use std::io::Write;
        let Some(s) = self.stream.as_mut() else {
            return false;
        };
        let ok = s.write_all(bytes).is_ok();
        if ok {
            self.last_tx = Instant::now();
        }
        ok
    }
}

struct DataMode {
    id: usize,
    msgid: u16,
    qos: u8,
    retain: bool,
    topic: String,
    buf: Vec<u8>,
}

enum Form<'a> {
    Exec,
    Read,
    Test,
    Write(&'a [u8]),
}

type Res = Result<(), ()>;

pub(crate) struct Modem {
    cfg: SimConfig,
    faults: Arc<Mutex<SimFaults>>,
    out: Output,
    tx: Sender<Event>,
    echo: bool,
    cmee: u8,
    line: Vec<u8>,
    echo_buf: Vec<u8>,
    data: Option<DataMode>,
    clients: Vec<Client>,
    /// Unsolicited output (deferred results and URCs), in order, with the time it is due.
    queue: VecDeque<(Instant, Vec<u8>)>,
}

const MAX_LINE: usize = 4096;
const MAX_DATA: usize = 1024;

fn crlf_line(body: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(body.len() + 4);
    v.extend_from_slice(b"\r\n");
    v.extend_from_slice(body);
    v.extend_from_slice(b"\r\n");
    v
}

fn client_id(p: Option<&Param>) -> Result<usize, ()> {
    int_in(p, 0, 5).map(|v| v as usize)
}

impl Modem {
    pub(crate) fn new(
        cfg: SimConfig,
        faults: Arc<Mutex<SimFaults>>,
        out: Output,
        tx: Sender<Event>,
    ) -> Self {
        let clients = (0..6).map(|_| Client::new(cfg.default_version)).collect();
        Modem {
            echo: cfg.echo,
            cfg,
            faults,
            out,
            tx,
            cmee: 0,
            line: Vec::new(),
            echo_buf: Vec::new(),
            data: None,
            clients,
            queue: VecDeque::new(),
        }
    }

    fn faults(&self) -> SimFaults {
        self.faults.lock().map(|f| f.clone()).unwrap_or_default()
    }

    // ---------------------------------------------------------------- output

    fn flush_echo(&mut self) {
        if !self.echo_buf.is_empty() {
            let e = std::mem::take(&mut self.echo_buf);
            self.out.send(&e);
        }
    }

    fn emit(&mut self, bytes: &[u8]) {
        self.flush_echo();
        self.out.send(bytes);
    }

    fn ok(&mut self) {
        self.emit(b"\r\nOK\r\n");
    }

    fn error(&mut self) {
        let msg: &[u8] = match (self.cfg.cme_errors, self.cmee) {
            (true, 1) => b"\r\n+CME ERROR: 50\r\n",
            (true, 2) => b"\r\n+CME ERROR: Incorrect parameters\r\n",
            _ => b"\r\nERROR\r\n",
        };
        self.emit(msg);
    }

    /// Information lines then `OK`: `\r\n<l1>\r\n<l2>\r\n\r\nOK\r\n`.
    fn info(&mut self, lines: &[Vec<u8>]) {
        let mut v = Vec::new();
        if !lines.is_empty() {
            v.extend_from_slice(b"\r\n");
            for l in lines {
                v.extend_from_slice(l);
                v.extend_from_slice(b"\r\n");
            }
        }
        v.extend_from_slice(b"\r\nOK\r\n");
        self.emit(&v);
    }

    fn enqueue(&mut self, delay: Duration, body: Vec<u8>) {
        let now = Instant::now();
        let mut due = now + delay;
        if let Some((last, _)) = self.queue.back() {
            due = due.max(*last);
        }
        self.queue.push_back((due, crlf_line(&body)));
    }

    /// A deferred result (`+QMTOPEN: 0,0`): after `result_delay`.
    fn deferred(&mut self, body: String) {
        self.enqueue(self.cfg.result_delay, body.into_bytes());
    }

    /// A URC (`+QMTRECV`, `+QMTSTAT`): as soon as the queue before it has gone out.
    fn urc(&mut self, body: Vec<u8>) {
        self.enqueue(Duration::ZERO, body);
    }

    fn flush_queue(&mut self) {
        if self.data.is_some() {
            return; // held while the host types a payload
        }
        let now = Instant::now();
        while let Some((due, _)) = self.queue.front() {
            if *due > now {
                break;
            }
            let (_, bytes) = self.queue.pop_front().expect("front exists");
            self.emit(&bytes);
        }
    }

    // ---------------------------------------------------------------- main loop

    pub(crate) fn run(mut self, rx: Receiver<Event>) {
        loop {
            self.flush_queue();
            self.timers();
            let mut wait = Duration::from_millis(20);
            if self.data.is_none() {
                if let Some((due, _)) = self.queue.front() {
                    wait = wait.min(due.saturating_duration_since(Instant::now()));
                }
            }
            match rx.recv_timeout(wait) {
                Ok(Event::Shutdown) | Err(RecvTimeoutError::Disconnected) => break,
                Ok(ev) => self.handle(ev),
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
        for c in &mut self.clients {
            c.drop_link();
        }
    }

    fn handle(&mut self, ev: Event) {
        match ev {
            Event::Host(bytes) => self.on_host(&bytes),
            Event::Inject(bytes) => self.emit(&bytes),
            Event::Opened { id, gen, result } => self.on_opened(id as usize, gen, result),
            Event::Packet { id, gen, pkt } => {
                if self.clients[id as usize].gen == gen {
                    self.on_packet(id as usize, pkt);
                }
            }
            Event::LinkClosed { id, gen } => {
                let c = &mut self.clients[id as usize];
                if c.gen == gen && c.st != St::Closed && c.st != St::Opening {
                    c.drop_link();
                    self.urc(format!("+QMTSTAT: {id},1").into_bytes());
                }
            }
            Event::BreakLink(id) => {
                if let Some(c) = self.clients.get(id as usize) {
                    if let Some(s) = &c.stream {
                        let _ = s.shutdown(Shutdown::Both);
                    }
                }
            }
            Event::Shutdown => {}
        }
    }

    // ---------------------------------------------------------------- host input

    fn on_host(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if self.data.is_some() {
                self.data_byte(b);
                continue;
            }
            if self.echo {
                self.echo_buf.push(b);
            }
            match b {
                b'\r' => {
                    let line = std::mem::take(&mut self.line);
                    self.flush_echo();
                    if !line.is_empty() {
                        self.dispatch(&line);
                    }
                }
                b'\n' => {}
                0x08 | 0x7f => {
                    self.line.pop();
                }
                _ => {
                    if self.line.len() < MAX_LINE {
                        self.line.push(b);
                    }
                }
            }
        }
        self.flush_echo();
    }

    fn data_byte(&mut self, b: u8) {
        let dm = self.data.as_mut().expect("in data mode");
        let id = dm.id;
        match b {
            0x1a => {
                let dm = self.data.take().expect("in data mode");
                let payload = if self.clients[id].cfg.send_hex == 1 {
                    match hex_decode(&dm.buf) {
                        Some(p) => p,
                        None => {
                            self.error();
                            return;
                        }
                    }
                } else {
                    dm.buf
                };
                self.ok();
                self.publish(id, dm.msgid, dm.qos, dm.retain, dm.topic, payload);
            }
            0x1b => {
                // Cancel: OK, nothing is published, no +QMTPUB result.
                self.data = None;
                self.ok();
            }
            _ => {
                let limit = if self.clients[id].cfg.send_hex == 1 {
                    2 * MAX_DATA
                } else {
                    MAX_DATA
                };
                if dm.buf.len() < limit {
                    dm.buf.push(b);
                    if self.clients[id].cfg.echomode == 1 {
                        self.out.send(&[b]);
                    }
                }
            }
        }
    }

    fn dispatch(&mut self, line: &[u8]) {
        if let Some(prefix) = self.faults().error_on_prefix {
            if line.len() >= prefix.len()
                && line[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
            {
                self.error();
                return;
            }
        }
        if line.len() < 2 || !line[..2].eq_ignore_ascii_case(b"AT") {
            self.error();
            return;
        }
        let rest = &line[2..];
        if rest.is_empty() {
            return self.ok();
        }
        if rest.eq_ignore_ascii_case(b"E0") || rest.eq_ignore_ascii_case(b"E") {
            self.echo = false;
            return self.ok();
        }
        if rest.eq_ignore_ascii_case(b"E1") {
            self.echo = true;
            return self.ok();
        }
        if rest[0] != b'+' {
            return self.error();
        }
        let end = rest
            .iter()
            .position(|&c| c == b'=' || c == b'?')
            .unwrap_or(rest.len());
        let name = String::from_utf8_lossy(&rest[1..end]).to_ascii_uppercase();
        let tail = &rest[end..];
        let form = if tail.is_empty() {
            Form::Exec
        } else if tail == b"?" {
            Form::Read
        } else if tail == b"=?" {
            Form::Test
        } else if tail[0] == b'=' {
            Form::Write(&tail[1..])
        } else {
            return self.error();
        };
        let r = match name.as_str() {
            "CMEE" => self.cmd_cmee(form),
            "CEREG" => self.cmd_simple(form, "+CEREG: 0,1", "+CEREG: (0-5)", 0, 5),
            "CGATT" => self.cmd_simple(form, "+CGATT: 1", "+CGATT: (0,1)", 1, 1),
            "QMTCFG" => self.cmd_qmtcfg(form),
            "QMTOPEN" => self.cmd_open(form),
            "QMTCLOSE" => self.cmd_close(form),
            "QMTCONN" => self.cmd_conn(form),
            "QMTDISC" => self.cmd_disc(form),
            "QMTSUB" => self.cmd_sub(form),
            "QMTUNS" => self.cmd_uns(form),
            "QMTPUB" => self.cmd_pub(form),
            _ => Err(()),
        };
        if r.is_err() {
            self.error();
        }
    }

    // ---------------------------------------------------------------- basic commands

    fn cmd_cmee(&mut self, form: Form<'_>) -> Res {
        match form {
            Form::Write(p) => {
                let v = Params::new(p).collect_all()?;
                if v.len() != 1 {
                    return Err(());
                }
                self.cmee = int_in(v.first(), 0, 2)? as u8;
                self.ok();
            }
            Form::Read => self.info(&[format!("+CMEE: {}", self.cmee).into_bytes()]),
            Form::Test => self.info(&[b"+CMEE: (0-2)".to_vec()]),
            Form::Exec => return Err(()),
        }
        Ok(())
    }

    /// A read-only network status command that always reports "attached/registered".
    fn cmd_simple(&mut self, form: Form<'_>, read: &str, test: &str, lo: i64, hi: i64) -> Res {
        match form {
            Form::Read => self.info(&[read.as_bytes().to_vec()]),
            Form::Test => self.info(&[test.as_bytes().to_vec()]),
            Form::Write(p) => {
                let v = Params::new(p).collect_all()?;
                if v.len() != 1 {
                    return Err(());
                }
                int_in(v.first(), lo, hi)?;
                self.ok();
            }
            Form::Exec => return Err(()),
        }
        Ok(())
    }

    // ---------------------------------------------------------------- AT+QMTCFG

    fn cfg_str(&self, s: &[u8]) -> Vec<u8> {
        if self.cfg.quote_cfg_strings {
            let mut v = vec![b'"'];
            v.extend_from_slice(s);
            v.push(b'"');
            v
        } else {
            s.to_vec()
        }
    }

    fn cmd_qmtcfg(&mut self, form: Form<'_>) -> Res {
        let p = match form {
            Form::Test => {
                let lines: Vec<Vec<u8>> = [
                    "+QMTCFG: \"echomode\",(0-5),(0,1)",
                    "+QMTCFG: \"dataformat\",(0-5),(0,1),(0,1)",
                    "+QMTCFG: \"keepalive\",(0-5),(0-3600)",
                    "+QMTCFG: \"session\",(0-5),(0,1)",
                    "+QMTCFG: \"timeout\",(0-5),(1-60),(1-10),(0,1)",
                    "+QMTCFG: \"will\",(0-5),(0,1),(0-2),(0,1),\"will_topic\",\"will_msg\"",
                    "+QMTCFG: \"version\",(0-5),(3,4)",
                    "+QMTCFG: \"aliauth\",(0-5),\"productkey\",\"devicename\",\"devicesecret\"",
                ]
                .iter()
                .map(|l| l.as_bytes().to_vec())
                .collect();
                self.info(&lines);
                return Ok(());
            }
            Form::Write(p) => p,
            _ => return Err(()),
        };
        let v = Params::new(p).collect_all()?;
        let name = String::from_utf8_lossy(&string(v.first())?).to_ascii_lowercase();
        let id = client_id(v.get(1))?;
        let args = &v[2..];
        let query = args.is_empty();
        let mut cfg = self.clients[id].cfg.clone();
        let line: Option<Vec<u8>> = match name.as_str() {
            "will" => {
                if query {
                    let mut l = b"+QMTCFG: \"will\",".to_vec();
                    match &cfg.will {
                        None => l.push(b'0'),
                        Some(w) => {
                            l.extend_from_slice(format!("1,{},{},", w.qos, w.retain).as_bytes());
                            l.extend_from_slice(&self.cfg_str(&w.topic));
                            l.push(b',');
                            l.extend_from_slice(&self.cfg_str(&w.msg));
                        }
                    }
                    Some(l)
                } else {
                    let fg = int_in(args.first(), 0, 1)?;
                    if fg == 0 {
                        if args.len() != 1 {
                            return Err(());
                        }
                        cfg.will = None;
                    } else {
                        if args.len() != 5 {
                            return Err(());
                        }
                        let topic = string(args.get(3))?;
                        if topic.is_empty() || topic.len() > 255 {
                            return Err(());
                        }
                        cfg.will = Some(WillCfg {
                            qos: int_in(args.get(1), 0, 2)? as u8,
                            retain: int_in(args.get(2), 0, 1)? as u8,
                            topic,
                            msg: string(args.get(4))?,
                        });
                    }
                    None
                }
            }
            "timeout" => {
                if query {
                    Some(
                        format!(
                            "+QMTCFG: \"timeout\",{},{},{}",
                            cfg.pkt_timeout, cfg.retry_times, cfg.timeout_notice
                        )
                        .into_bytes(),
                    )
                } else {
                    if args.len() > 3 {
                        return Err(());
                    }
                    cfg.pkt_timeout = int_in(args.first(), 1, 60)? as u32;
                    match args.get(1) {
                        None | Some(Param::Empty) => {}
                        p => cfg.retry_times = int_in(p, 0, 10)? as u32,
                    }
                    if args.len() == 3 {
                        cfg.timeout_notice = int_in(args.get(2), 0, 1)? as u8;
                    }
                    None
                }
            }
            "session" => {
                if query {
                    Some(format!("+QMTCFG: \"session\",{}", cfg.clean_session).into_bytes())
                } else {
                    if args.len() != 1 {
                        return Err(());
                    }
                    cfg.clean_session = int_in(args.first(), 0, 1)? as u8;
                    None
                }
            }
            "keepalive" => {
                if query {
                    Some(format!("+QMTCFG: \"keepalive\",{}", cfg.keepalive).into_bytes())
                } else {
                    if args.len() != 1 {
                        return Err(());
                    }
                    cfg.keepalive = int_in(args.first(), 0, 3600)? as u32;
                    None
                }
            }
            "aliauth" => {
                if query {
                    cfg.aliauth.as_ref().map(|(pk, dn, ds)| {
                        let mut l = b"+QMTCFG: \"aliauth\",".to_vec();
                        l.extend_from_slice(&self.cfg_str(pk));
                        l.push(b',');
                        l.extend_from_slice(&self.cfg_str(dn));
                        l.push(b',');
                        l.extend_from_slice(&self.cfg_str(ds));
                        l
                    })
                } else {
                    if args.len() != 3 {
                        return Err(());
                    }
                    cfg.aliauth = Some((
                        string(args.first())?,
                        string(args.get(1))?,
                        string(args.get(2))?,
                    ));
                    None
                }
            }
            "version" => {
                if query {
                    Some(format!("+QMTCFG: \"version\",{}", cfg.version).into_bytes())
                } else {
                    if args.len() != 1 {
                        return Err(());
                    }
                    cfg.version = int_in(args.first(), 3, 4)? as u8;
                    None
                }
            }
            "dataformat" => {
                if query {
                    Some(
                        format!("+QMTCFG: \"dataformat\",{},{}", cfg.send_hex, cfg.recv_hex)
                            .into_bytes(),
                    )
                } else {
                    if args.len() != 2 {
                        return Err(());
                    }
                    cfg.send_hex = int_in(args.first(), 0, 1)? as u8;
                    cfg.recv_hex = int_in(args.get(1), 0, 1)? as u8;
                    None
                }
            }
            "echomode" => {
                if query {
                    Some(format!("+QMTCFG: \"echomode\",{}", cfg.echomode).into_bytes())
                } else {
                    if args.len() != 1 {
                        return Err(());
                    }
                    cfg.echomode = int_in(args.first(), 0, 1)? as u8;
                    None
                }
            }
            _ => return Err(()),
        };
        self.clients[id].cfg = cfg;
        match line {
            Some(l) => self.info(&[l]),
            None => self.ok(),
        }
        Ok(())
    }

    // ---------------------------------------------------------------- AT+QMTOPEN / CLOSE

    fn cmd_open(&mut self, form: Form<'_>) -> Res {
        let p = match form {
            Form::Test => {
                self.info(&[b"+QMTOPEN: (0-5),\"<host_name>\",<port>".to_vec()]);
                return Ok(());
            }
            Form::Read => {
                let lines: Vec<Vec<u8>> = self
                    .clients
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| !matches!(c.st, St::Closed | St::Opening))
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
            Form::Write(p) => p,
            Form::Exec => return Err(()),
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
        std::thread::Builder::new()
            .name(format!("bc26-sim-open{id}"))
            .spawn(move || {
                if !delay.is_zero() {
                    std::thread::sleep(delay);
                }
                let result = match (host.as_str(), port).to_socket_addrs() {
                    Err(_) => Err(4),
                    Ok(addrs) => {
                        let addrs: Vec<_> = addrs.collect();
                        if addrs.is_empty() {
                            Err(4)
                        } else {
                            addrs
                                .iter()
                                .find_map(|a| TcpStream::connect_timeout(a, timeout).ok())
                                .ok_or(-1)
                        }
                    }
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

    fn on_opened(&mut self, id: usize, gen: u64, result: Result<TcpStream, i32>) {
        let c = &mut self.clients[id];
        if c.gen != gen || c.st != St::Opening {
            return; // closed meanwhile: the stream (if any) is dropped here
        }
        match result {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                match stream.try_clone() {
                    Ok(r) => {
                        mqtt::spawn_reader(id as u8, gen, r, self.tx.clone());
                        c.stream = Some(stream);
                        c.st = St::Opened;
                        self.deferred(format!("+QMTOPEN: {id},0"));
                    }
                    Err(_) => {
                        c.st = St::Closed;
                        self.deferred(format!("+QMTOPEN: {id},-1"));
                    }
                }
            }
            Err(code) => {
                c.st = St::Closed;
                self.deferred(format!("+QMTOPEN: {id},{code}"));
            }
        }
    }

    fn cmd_close(&mut self, form: Form<'_>) -> Res {
        let p = match form {
            Form::Test => {
                self.info(&[b"+QMTCLOSE: (0-5)".to_vec()]);
                return Ok(());
            }
            Form::Write(p) => p,
            _ => return Err(()),
        };
        let v = Params::new(p).collect_all()?;
        if v.len() != 1 {
            return Err(());
        }
        let id = client_id(v.first())?;
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

    // ---------------------------------------------------------------- AT+QMTCONN / DISC

    fn cmd_conn(&mut self, form: Form<'_>) -> Res {
        let p = match form {
            Form::Test => {
                self.info(&[
                    b"+QMTCONN: (0-5),\"<clientID>\"[,\"<username>\"[,\"<password>\"]]".to_vec(),
                ]);
                return Ok(());
            }
            Form::Read => {
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
            Form::Write(p) => p,
            Form::Exec => return Err(()),
        };
        let v = Params::new(p).collect_all()?;
        if !(2..=4).contains(&v.len()) {
            return Err(());
        }
        let id = client_id(v.first())?;
        let cid = String::from_utf8(string(v.get(1))?).map_err(|_| ())?;
        let user = match v.get(2) {
            Some(p) => Some(String::from_utf8(string(Some(p))?).map_err(|_| ())?),
            None => None,
        };
        let pass = match v.get(3) {
            Some(p) => Some(String::from_utf8(string(Some(p))?).map_err(|_| ())?),
            None => None,
        };
        if self.clients[id].st != St::Opened {
            return Err(());
        }
        let c = &mut self.clients[id];
        let will = c.cfg.will.as_ref().map(|w| mqtt::WillSpec {
            qos: w.qos,
            retain: w.retain == 1,
            topic: String::from_utf8_lossy(&w.topic).into_owned(),
            msg: w.msg.clone(),
        });
        let packet = mqtt::connect(&mqtt::ConnectSpec {
            version: c.cfg.version,
            client_id: &cid,
            username: user.as_deref(),
            password: pass.as_deref(),
            keepalive: c.cfg.keepalive as u16,
            clean_session: c.cfg.clean_session == 1,
            will,
        })
        .map_err(|_| ())?;
        self.ok();
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

    fn cmd_disc(&mut self, form: Form<'_>) -> Res {
        let p = match form {
            Form::Test => {
                self.info(&[b"+QMTDISC: (0-5)".to_vec()]);
                return Ok(());
            }
            Form::Write(p) => p,
            _ => return Err(()),
        };
        let v = Params::new(p).collect_all()?;
        if v.len() != 1 {
            return Err(());
        }
        let id = client_id(v.first())?;
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

    // ---------------------------------------------------------------- AT+QMTSUB / UNS

    fn cmd_sub(&mut self, form: Form<'_>) -> Res {
        let p = match form {
            Form::Test => {
                self.info(&[
                    b"+QMTSUB: (0-5),<msgID>,\"<topic>\",<qos>[,\"<topic>\",<qos>...]".to_vec(),
                ]);
                return Ok(());
            }
            Form::Write(p) => p,
            _ => return Err(()),
        };
        let v = Params::new(p).collect_all()?;
        if v.len() < 4 || v.len() % 2 != 0 {
            return Err(());
        }
        let id = client_id(v.first())?;
        let msgid = int_in(v.get(1), 1, 65535)? as u16;
        let mut topics = Vec::new();
        for pair in v[2..].chunks(2) {
            let t = String::from_utf8(string(pair.first())?).map_err(|_| ())?;
            if t.is_empty() || t.len() > 255 {
                return Err(());
            }
            topics.push((t, int_in(pair.get(1), 0, 2)? as u8));
        }
        if self.clients[id].st != St::Connected {
            return Err(());
        }
        self.ok();
        let packet = mqtt::subscribe(msgid, &topics);
        self.start_op(id, msgid, OpKind::Sub { packet });
        Ok(())
    }

    fn cmd_uns(&mut self, form: Form<'_>) -> Res {
        let p = match form {
            Form::Test => {
                self.info(&[b"+QMTUNS: (0-5),<msgID>,\"<topic>\"".to_vec()]);
                return Ok(());
            }
            Form::Write(p) => p,
            _ => return Err(()),
        };
        let v = Params::new(p).collect_all()?;
        if v.len() < 3 {
            return Err(());
        }
        let id = client_id(v.first())?;
        let msgid = int_in(v.get(1), 1, 65535)? as u16;
        let mut topics = Vec::new();
        for t in &v[2..] {
            let t = String::from_utf8(string(Some(t))?).map_err(|_| ())?;
            if t.is_empty() || t.len() > 255 {
                return Err(());
            }
            topics.push(t);
        }
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
            let line = match kind {
                OpKind::Sub { .. } => format!("+QMTSUB: {id},{msgid},2"),
                OpKind::Uns { .. } => format!("+QMTUNS: {id},{msgid},2"),
                OpKind::Pub { .. } => format!("+QMTPUB: {id},{msgid},2"),
            };
            self.deferred(line);
        }
    }

    // ---------------------------------------------------------------- AT+QMTPUB

    fn cmd_pub(&mut self, form: Form<'_>) -> Res {
        let p = match form {
            Form::Test => {
                self.info(&[
                    b"+QMTPUB: (0-5),<msgID>,<qos>,<retain>,\"<topic>\",\"<msg>\"".to_vec(),
                ]);
                return Ok(());
            }
            Form::Write(p) => p,
            _ => return Err(()),
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
        let topic = String::from_utf8(string(v.get(4))?).map_err(|_| ())?;
        if topic.is_empty() || topic.len() > 255 || ((qos == 0) != (msgid == 0)) {
            return Err(());
        }
        let hex = self.clients[id].cfg.send_hex == 1;
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

    fn publish(
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

    // ---------------------------------------------------------------- broker input

    /// True when the fault "drop this ack" applies (and consumes one).
    fn drop_ack(&mut self) -> bool {
        let mut f = self.faults.lock().unwrap_or_else(|e| e.into_inner());
        if f.drop_acks > 0 {
            f.drop_acks -= 1;
            true
        } else {
            false
        }
    }

    fn find_op(&self, id: usize, msgid: u16, pred: impl Fn(&OpKind) -> bool) -> Option<usize> {
        self.clients[id]
            .ops
            .iter()
            .position(|o| o.msgid == msgid && pred(&o.kind))
    }

    fn on_packet(&mut self, id: usize, pkt: Incoming) {
        match pkt {
            Incoming::ConnAck(code) => {
                if self.clients[id].st != St::Connecting || self.faults().ignore_connack {
                    return;
                }
                let c = &mut self.clients[id];
                c.conn_deadline = None;
                if code == 0 {
                    c.st = St::Connected;
                    c.ping_deadline = None;
                    self.deferred(format!("+QMTCONN: {id},0,0"));
                } else {
                    // The server refused: it closes the link, and so does the module.
                    c.drop_link();
                    self.deferred(format!("+QMTCONN: {id},0,{code}"));
                }
            }
            Incoming::Publish {
                topic,
                pkid,
                qos,
                payload,
            } => {
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
                if report {
                    let mut l = format!("+QMTRECV: {id},{pkid},\"").into_bytes();
                    l.extend_from_slice(topic.as_bytes());
                    l.extend_from_slice(b"\",\"");
                    if c.cfg.recv_hex == 1 {
                        l.extend_from_slice(&hex_encode_upper(&payload));
                    } else {
                        l.extend_from_slice(&payload);
                    }
                    l.push(b'"');
                    self.urc(l);
                }
            }
            Incoming::PubRel(pkid) => {
                let c = &mut self.clients[id];
                c.in_qos2.remove(&pkid);
                c.send(&mqtt::pubcomp(pkid));
            }
            Incoming::PubAck(pkid) => {
                if let Some(i) = self.find_op(id, pkid, |k| {
                    matches!(
                        k,
                        OpKind::Pub {
                            stage: PubStage::Ack,
                            ..
                        }
                    )
                }) {
                    if !self.drop_ack() {
                        self.clients[id].ops.remove(i);
                        self.deferred(format!("+QMTPUB: {id},{pkid},0"));
                    }
                }
            }
            Incoming::PubRec(pkid) => {
                if let Some(i) = self.find_op(id, pkid, |k| {
                    matches!(
                        k,
                        OpKind::Pub {
                            stage: PubStage::Rec | PubStage::Comp,
                            ..
                        }
                    )
                }) {
                    if !self.drop_ack() {
                        let c = &mut self.clients[id];
                        let deadline = Instant::now() + c.pkt_timeout();
                        let op = &mut c.ops[i];
                        if let OpKind::Pub { stage, .. } = &mut op.kind {
                            *stage = PubStage::Comp;
                        }
                        op.deadline = deadline;
                        c.send(&mqtt::pubrel(pkid));
                    }
                }
            }
            Incoming::PubComp(pkid) => {
                if let Some(i) = self.find_op(id, pkid, |k| {
                    matches!(
                        k,
                        OpKind::Pub {
                            stage: PubStage::Comp,
                            ..
                        }
                    )
                }) {
                    if !self.drop_ack() {
                        self.clients[id].ops.remove(i);
                        self.deferred(format!("+QMTPUB: {id},{pkid},0"));
                    }
                }
            }
            Incoming::SubAck(pkid, codes) => {
                if let Some(i) = self.find_op(id, pkid, |k| matches!(k, OpKind::Sub { .. })) {
                    if !self.drop_ack() {
                        self.clients[id].ops.remove(i);
                        let codes: Vec<String> = codes.iter().map(|c| c.to_string()).collect();
                        self.deferred(format!("+QMTSUB: {id},{pkid},0,{}", codes.join(",")));
                    }
                }
            }
            Incoming::UnsubAck(pkid) => {
                if let Some(i) = self.find_op(id, pkid, |k| matches!(k, OpKind::Uns { .. })) {
                    if !self.drop_ack() {
                        self.clients[id].ops.remove(i);
                        self.deferred(format!("+QMTUNS: {id},{pkid},0"));
                    }
                }
            }
            Incoming::PingResp => {
                if !self.faults().ignore_pingresp {
                    self.clients[id].ping_deadline = None;
                }
            }
            Incoming::Other => {}
        }
    }

    // ---------------------------------------------------------------- timers

    fn timers(&mut self) {
        let now = Instant::now();
        for id in 0..self.clients.len() {
            // CONNACK timeout.
            if let Some(d) = self.clients[id].conn_deadline {
                if now >= d {
                    self.clients[id].drop_link();
                    self.deferred(format!("+QMTCONN: {id},2"));
                    continue;
                }
            }
            // Keep-alive.
            let c = &mut self.clients[id];
            if c.st == St::Connected {
                if let Some(d) = c.ping_deadline {
                    if now >= d {
                        c.drop_link();
                        self.urc(format!("+QMTSTAT: {id},2").into_bytes());
                        continue;
                    }
                } else if c.cfg.keepalive > 0
                    && now >= c.last_tx + Duration::from_secs(c.cfg.keepalive as u64)
                {
                    if c.send(&mqtt::pingreq()) {
                        c.ping_deadline = Some(now + c.pkt_timeout());
                    } else {
                        c.drop_link();
                        self.urc(format!("+QMTSTAT: {id},2").into_bytes());
                        continue;
                    }
                }
            }
            // Retransmissions.
            let mut i = 0;
            while i < self.clients[id].ops.len() {
                let c = &mut self.clients[id];
                if now < c.ops[i].deadline {
                    i += 1;
                    continue;
                }
                let timeout = c.pkt_timeout();
                let notice = c.cfg.timeout_notice == 1;
                if c.ops[i].retries < c.cfg.retry_times {
                    let op = &mut c.ops[i];
                    op.retries += 1;
                    op.deadline = now + timeout;
                    let n = op.retries;
                    let msgid = op.msgid;
                    let (packet, line) = match &op.kind {
                        OpKind::Sub { packet } => {
                            (packet.clone(), format!("+QMTSUB: {id},{msgid},1,{n}"))
                        }
                        OpKind::Uns { packet } => {
                            (packet.clone(), format!("+QMTUNS: {id},{msgid},1"))
                        }
                        OpKind::Pub {
                            stage,
                            topic,
                            payload,
                            qos,
                            retain,
                        } => (
                            match stage {
                                PubStage::Comp => mqtt::pubrel(msgid),
                                _ => mqtt::publish(topic, msgid, payload, *qos, *retain, true),
                            },
                            format!("+QMTPUB: {id},{msgid},1,{n}"),
                        ),
                    };
                    c.send(&packet);
                    if notice {
                        self.deferred(line);
                    }
                    i += 1;
                } else {
                    let op = c.ops.remove(i);
                    let msgid = op.msgid;
                    let line = match op.kind {
                        OpKind::Sub { .. } => format!("+QMTSUB: {id},{msgid},2"),
                        OpKind::Uns { .. } => format!("+QMTUNS: {id},{msgid},2"),
                        OpKind::Pub { .. } => format!("+QMTPUB: {id},{msgid},2"),
                    };
                    self.deferred(line);
                }
            }
        }
    }
}
