//! The simulated modem: one std thread fed by an `mpsc` channel of [`Event`]s (bytes from the
//! host, packets from the brokers, results of TCP connects, handle requests).
//!
//! This file holds the event loop and the output (responses, the queue of deferred results
//! and URCs); the jobs live beside it: `host` (command lines, data mode, basic commands),
//! `qmtcfg` (the option table), `ops` (OPEN/CLOSE/CONN/DISC/SUB/UNS/PUB), `incoming`
//! (packets from the broker), `timers` (CONNACK timeout, keep-alive, retransmission) and
//! `client` (one client's state).

mod client;
mod host;
mod incoming;
mod network;
mod ops;
mod power;
mod qmtcfg;
mod timers;

use std::collections::VecDeque;
use std::net::{Shutdown, TcpStream};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::at::{int_in, Param};
use crate::config::{SimConfig, SimFaults};
use crate::mqtt::Incoming;
use crate::output::Output;
use client::Client;
pub use client::ClientState;
use network::Network;

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
    CloseLink {
        id: u8,
        code: u8,
    },
    Reboot,
    Registration(u8),
    Silent(bool),
    State(u8, Sender<ClientState>),
    Shutdown,
}

/// A data-mode publish (`AT+QMTPUB` without a message) while the host types the payload.
struct DataMode {
    id: usize,
    msgid: u16,
    qos: u8,
    retain: bool,
    topic: String,
    buf: Vec<u8>,
}

/// The form of an AT command.
enum Form<'a> {
    Exec,
    Read,
    Test,
    Write(&'a [u8]),
}

/// A command's outcome: `Err` answers `ERROR`.
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
    net: Network,
    /// Rebooting until then (see `power.rs`).
    boot_until: Option<Instant>,
    /// The UART is dead (see `power.rs`).
    silent: bool,
    /// Every byte taken from the host, for `SimHandle::host_transcript`.
    host_log: Arc<Mutex<Vec<u8>>>,
}

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
        host_log: Arc<Mutex<Vec<u8>>>,
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
            net: Network::new(),
            boot_until: None,
            silent: false,
            host_log,
        }
    }

    fn faults(&self) -> SimFaults {
        self.faults.lock().map(|f| f.clone()).unwrap_or_default()
    }

    /// Read and update the faults at once (for the counted ones).
    fn take_fault<T>(&self, f: impl FnOnce(&mut SimFaults) -> T) -> T {
        f(&mut self.faults.lock().unwrap_or_else(|e| e.into_inner()))
    }

    // ---------------------------------------------------------------- main loop

    pub(crate) fn run(mut self, rx: Receiver<Event>) {
        loop {
            self.boot_timer();
            self.flush_queue();
            self.timers();
            let mut wait = Duration::from_millis(20);
            let next = match self.boot_until {
                Some(t) => Some(t),
                None if self.data.is_none() => self.queue.front().map(|(due, _)| *due),
                None => None,
            };
            if let Some(t) = next {
                wait = wait.min(t.saturating_duration_since(Instant::now()));
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
            Event::Host(bytes) => {
                if !self.booting() && !self.silent {
                    if let Ok(mut l) = self.host_log.lock() {
                        l.extend_from_slice(&bytes);
                    }
                    self.on_host(&bytes);
                }
            }
            Event::Inject(bytes) => self.emit(&bytes),
            Event::Opened { id, gen, result } => self.on_opened(id as usize, gen, result),
            Event::Packet { id, gen, pkt } => {
                if self.clients[id as usize].gen == gen {
                    self.on_packet(id as usize, pkt);
                }
            }
            Event::LinkClosed { id, gen } => {
                let c = &mut self.clients[id as usize];
                if c.gen == gen && c.st.has_link() {
                    c.drop_link();
                    self.urc(format!("+QMTSTAT: {id},1").into_bytes());
                }
            }
            Event::BreakLink(id) => {
                if let Some(s) = self
                    .clients
                    .get(id as usize)
                    .and_then(|c| c.stream.as_ref())
                {
                    let _ = s.shutdown(Shutdown::Both);
                }
            }
            Event::CloseLink { id, code } => self.close_link(id as usize, code),
            Event::Reboot => self.reboot(),
            Event::Registration(stat) => self.set_network(Some(stat), None),
            Event::Silent(on) => self.set_silent(on),
            Event::State(id, reply) => {
                if let Some(c) = self.clients.get(id as usize) {
                    let _ = reply.send(c.st);
                }
            }
            Event::Shutdown => {}
        }
    }

    /// The usual forms of a QMT command: the test form answers `test` (`Ok(None)`), the
    /// write form gives its parameters; the others answer `ERROR`.
    fn test_or_write<'a>(&mut self, form: Form<'a>, test: &[u8]) -> Result<Option<&'a [u8]>, ()> {
        match form {
            Form::Test => {
                self.info(&[test.to_vec()]);
                Ok(None)
            }
            Form::Write(p) => Ok(Some(p)),
            Form::Exec | Form::Read => Err(()),
        }
    }

    // ---------------------------------------------------------------- output

    fn flush_echo(&mut self) {
        if !self.echo_buf.is_empty() {
            let e = std::mem::take(&mut self.echo_buf);
            self.out.send_echo(&e);
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
        if self.data.is_some() || self.booting() {
            return; // held while the host types a payload; nothing while booting
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
}
