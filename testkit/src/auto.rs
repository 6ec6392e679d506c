//! A fake BC26 that answers by itself, byte for byte as the modem does, for
//! tests of whole applications (and the supervisor): command echo until
//! `ATE0`, `AT+CEREG?`, every `AT+QMTCFG` option, deferred `+QMTOPEN`,
//! `+QMTCONN`, `+QMTSUB`, `+QMTPUB`, `+QMTCLOSE`, `+QMTDISC` results, the
//! data-mode `>` prompt, `AT+QRST=1` (a restart), and `+QMTRECV`/`+QMTSTAT`
//! URCs when the test asks.
//! It speaks for one MQTT client at a time. Tests change its [`Script`] at
//! any moment and read what the host sent.

use core::cell::RefCell;
use std::collections::VecDeque;
use std::string::String;
use std::vec::Vec;

use embassy_futures::select::{select, Either};
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_sync::signal::Signal;
use embassy_time::{Duration, Instant, Timer};

use crate::{TxPipe, WirePipe};

/// How the fake modem behaves, and what it saw. Tests change it at any time.
pub struct Script {
    /// Echo of command lines (ATE1, the power-on default).
    pub echo: bool,
    /// This many `AT`s get no answer (the modem is still booting).
    pub silent_ats: u32,
    /// The modem's UART is dead (rebooting, asleep, unplugged): it answers
    /// nothing, takes no payload, and its URCs and results are lost.
    pub mute: bool,
    /// Publishes on topics that start with this are refused every time:
    /// `ERROR` to the line (inline) or instead of the `>` prompt.
    pub refuse_topic: Option<String>,
    /// How long the modem takes before each answer to a line or payload.
    pub answer_delay: Duration,
    /// How long after its `OK` a publish's `+QMTPUB` result comes (sent as
    /// a URC: the modem answers other lines meanwhile).
    pub result_delay: Duration,
    /// Every publish with its exact bytes: (topic, payload, qos, retain),
    /// hex decoded.
    pub raw_publishes: Vec<(String, Vec<u8>, u8, bool)>,
    /// `<stat>` of the next `AT+CEREG?` answers; `registered` when empty.
    pub cereg: VecDeque<u8>,
    /// `<stat>` once `cereg` is used up.
    pub registered: u8,
    /// `<result>` of the next `+QMTOPEN`s; 0 when empty (2 while open).
    pub open_results: VecDeque<i16>,
    /// The client's link is open / MQTT-connected (for `AT+QMTCONN?`).
    pub open: bool,
    pub connected: bool,
    /// Received payloads are hex (`AT+QMTCFG="dataformat",<id>,<s>,1`).
    pub recv_hex: bool,
    /// Sent payloads are hex.
    pub send_hex: bool,
    /// Every command line the host sent, without its CR; a data-mode payload
    /// is logged as its own entry, `> <payload>`.
    pub log: Vec<String>,
    /// Every publish: (topic, payload, qos, retain), hex decoded.
    pub publishes: Vec<(String, String, u8, bool)>,
    /// When each command line arrived.
    pub times: Vec<Instant>,
    /// Publishes whose `+QMTPUB` result is held back (msgIDs), answered by
    /// [`AutoModem::release_acks`].
    pub held_acks: Vec<(u8, u16)>,
    /// Hold the results of QoS 1/2 publishes instead of answering at once.
    pub hold_acks: bool,
    urcs: VecDeque<Vec<u8>>,
    /// URCs due later: (when, bytes).
    later: Vec<(Instant, Vec<u8>)>,
    data_mode: Option<(String, u8, bool, u8, u16)>,
}

impl Script {
    /// Command lines that start with `prefix`.
    pub fn count(&self, prefix: &str) -> usize {
        self.log.iter().filter(|l| l.starts_with(prefix)).count()
    }

    /// Publishes on `topic`, payloads only.
    pub fn published(&self, topic: &str) -> Vec<String> {
        self.publishes
            .iter()
            .filter(|p| p.0 == topic)
            .map(|p| p.1.clone())
            .collect()
    }
}

/// The fake modem on the other end of the driver's UART pipes.
pub struct AutoModem {
    rx: &'static TxPipe,
    tx: &'static WirePipe,
    pub script: RefCell<Script>,
    kick: Signal<CriticalSectionRawMutex, ()>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

fn unhex_bytes(digits: &[u8]) -> Vec<u8> {
    (0..digits.len() / 2)
        .filter_map(|i| {
            let d = core::str::from_utf8(&digits[2 * i..2 * i + 2]).ok()?;
            u8::from_str_radix(d, 16).ok()
        })
        .collect()
}

impl AutoModem {
    /// A fake modem reading `rx` (the host's writes) and writing `tx`.
    pub fn new(rx: &'static TxPipe, tx: &'static WirePipe) -> Self {
        Self {
            rx,
            tx,
            script: RefCell::new(Script {
                echo: true,
                silent_ats: 0,
                mute: false,
                refuse_topic: None,
                answer_delay: Duration::from_ticks(0),
                result_delay: Duration::from_ticks(0),
                raw_publishes: Vec::new(),
                cereg: VecDeque::new(),
                registered: 1,
                open_results: VecDeque::new(),
                open: false,
                connected: false,
                recv_hex: false,
                send_hex: false,
                log: Vec::new(),
                publishes: Vec::new(),
                times: Vec::new(),
                held_acks: Vec::new(),
                hold_acks: false,
                urcs: VecDeque::new(),
                later: Vec::new(),
                data_mode: None,
            }),
            kick: Signal::new(),
        }
    }

    /// Changes the script.
    pub fn set(&self, f: impl FnOnce(&mut Script)) {
        f(&mut self.script.borrow_mut());
    }

    /// Reads the script.
    pub fn get<T>(&self, f: impl FnOnce(&Script) -> T) -> T {
        f(&self.script.borrow())
    }

    /// Sends `bytes` to the host unsolicited (a URC), between two answers.
    pub fn urc(&self, bytes: &[u8]) {
        self.script.borrow_mut().urcs.push_back(bytes.to_vec());
        self.kick.signal(());
    }

    /// The broker closed the link: `+QMTSTAT: 0,<code>`.
    pub fn link_closed(&self, code: u8) {
        self.set(|s| {
            s.open = false;
            s.connected = false;
        });
        self.urc(format!("\r\n+QMTSTAT: 0,{code}\r\n").as_bytes());
    }

    /// The modem restarts: `RDY`, echo on, every setting back to its default.
    pub fn reboot(&self) {
        self.set(|s| {
            s.open = false;
            s.connected = false;
            s.echo = true;
            s.recv_hex = false;
            s.send_hex = false;
            s.data_mode = None;
        });
        self.urc(b"\r\nRDY\r\n");
    }

    /// A message from the broker: `+QMTRECV: 0,<msg_id>,"<topic>","<payload>"`,
    /// the payload in hex when the host configured hex reception.
    pub fn message(&self, msg_id: u16, topic: &str, payload: &str) {
        let p = if self.get(|s| s.recv_hex) {
            hex(payload.as_bytes())
        } else {
            payload.to_string()
        };
        self.urc(format!("\r\n+QMTRECV: 0,{msg_id},\"{topic}\",\"{p}\"\r\n").as_bytes());
    }

    /// Sends the held `+QMTPUB` results.
    pub fn release_acks(&self) {
        let held: Vec<(u8, u16)> = self.script.borrow_mut().held_acks.drain(..).collect();
        for (id, msg_id) in held {
            self.urc(format!("\r\n+QMTPUB: {id},{msg_id},0\r\n").as_bytes());
        }
    }

    /// Waits (up to 5 s) until `f` holds for the script.
    pub async fn wait_for(&self, what: &str, f: impl Fn(&Script) -> bool) {
        let start = Instant::now();
        while !f(&self.script.borrow()) {
            if start.elapsed() > Duration::from_secs(5) {
                panic!(
                    "fake modem: waited 5 s for {what}; the host sent:\n{}",
                    self.script.borrow().log.join("\n")
                );
            }
            Timer::after_millis(1).await;
        }
    }

    async fn send(&self, bytes: &[u8]) {
        self.tx.write_all(bytes).await;
    }

    /// The URCs that are due, in order (none while mute: lost).
    fn due(&self) -> Vec<Vec<u8>> {
        let mut s = self.script.borrow_mut();
        let now = Instant::now();
        let mut out: Vec<Vec<u8>> = s.urcs.drain(..).collect();
        let mut i = 0;
        while i < s.later.len() {
            if s.later[i].0 <= now {
                out.push(s.later.remove(i).1);
            } else {
                i += 1;
            }
        }
        if s.mute {
            out.clear();
        }
        out
    }

    /// The modem: answers for ever.
    pub async fn serve(&self) -> ! {
        let mut pending: Vec<u8> = Vec::new();
        let mut buf = [0u8; 256];
        loop {
            for u in self.due() {
                self.send(&u).await;
            }
            let next = self.script.borrow().later.iter().map(|l| l.0).min();
            let wake = async {
                match next {
                    Some(at) => Timer::at(at).await,
                    None => self.kick.wait().await,
                }
            };
            match select(self.rx.read(&mut buf), select(self.kick.wait(), wake)).await {
                Either::First(n) => pending.extend_from_slice(&buf[..n]),
                Either::Second(_) => continue,
            }
            loop {
                let in_data_mode = self.script.borrow().data_mode.is_some();
                if in_data_mode {
                    let Some(end) = pending.iter().position(|&b| b == 0x1a || b == 0x1b) else {
                        break;
                    };
                    let payload: Vec<u8> = pending.drain(..=end).collect();
                    self.payload(&payload[..end], payload[end] == 0x1a).await;
                } else {
                    let Some(end) = pending.iter().position(|&b| b == b'\r') else {
                        break;
                    };
                    let line: Vec<u8> = pending.drain(..=end).collect();
                    self.line(&line).await;
                }
            }
        }
    }

    async fn payload(&self, payload: &[u8], send: bool) {
        let text = String::from_utf8_lossy(payload).into_owned();
        let (d, mute, delay) = {
            let mut s = self.script.borrow_mut();
            s.log.push(format!("> {text}"));
            s.times.push(Instant::now());
            (s.data_mode.take().unwrap(), s.mute, s.answer_delay)
        };
        if mute {
            return;
        }
        Timer::after(delay).await;
        self.send(b"\r\nOK\r\n").await;
        if send {
            self.published(d.1, d.4, d.0, payload, d.3, d.2).await;
        }
    }

    async fn published(
        &self,
        id: u8,
        msg_id: u16,
        topic: String,
        payload: &[u8],
        qos: u8,
        retain: bool,
    ) {
        let payload = if self.get(|s| s.send_hex) {
            unhex_bytes(payload)
        } else {
            payload.to_vec()
        };
        let (hold, delay) = {
            let mut s = self.script.borrow_mut();
            let text = String::from_utf8_lossy(&payload).into_owned();
            s.publishes.push((topic.clone(), text, qos, retain));
            s.raw_publishes.push((topic, payload, qos, retain));
            let hold = s.hold_acks && qos > 0;
            if hold {
                s.held_acks.push((id, msg_id));
            }
            (hold, s.result_delay)
        };
        if hold {
            return;
        }
        let result = format!("\r\n+QMTPUB: {id},{msg_id},0\r\n").into_bytes();
        if delay == Duration::from_ticks(0) {
            self.send(&result).await;
        } else {
            self.script
                .borrow_mut()
                .later
                .push((Instant::now() + delay, result));
            self.kick.signal(());
        }
    }

    async fn line(&self, raw: &[u8]) {
        let line = String::from_utf8_lossy(&raw[..raw.len() - 1]).into_owned();
        let (echo, mute, delay) = {
            let mut s = self.script.borrow_mut();
            s.log.push(line.clone());
            s.times.push(Instant::now());
            (s.echo, s.mute, s.answer_delay)
        };
        if mute || line.is_empty() {
            return;
        }
        if echo {
            self.send(raw).await;
        }
        Timer::after(delay).await;
        const OK: &[u8] = b"\r\nOK\r\n";
        if line == "AT" {
            let silent = {
                let mut s = self.script.borrow_mut();
                let silent = s.silent_ats > 0;
                s.silent_ats = s.silent_ats.saturating_sub(1);
                silent
            };
            if !silent {
                self.send(OK).await;
            }
        } else if line == "ATE0" {
            self.send(OK).await;
            self.set(|s| s.echo = false);
        } else if line == "AT+QRST=1" {
            // `OK`, then the module restarts (`RDY`).
            self.send(OK).await;
            self.reboot();
        } else if line == "AT+CEREG?" {
            let stat = {
                let mut s = self.script.borrow_mut();
                let r = s.registered;
                s.cereg.pop_front().unwrap_or(r)
            };
            self.send(format!("\r\n+CEREG: 0,{stat}\r\n\r\nOK\r\n").as_bytes())
                .await;
        } else if let Some(args) = line.strip_prefix("AT+QMTCFG=\"dataformat\",") {
            let f: Vec<&str> = args.split(',').collect();
            if f.len() == 3 {
                self.set(|s| {
                    s.send_hex = f[1] == "1";
                    s.recv_hex = f[2] == "1";
                });
            }
            self.send(OK).await;
        } else if line.starts_with("AT+QMTCFG=") {
            self.send(OK).await;
        } else if let Some(args) = line.strip_prefix("AT+QMTOPEN=") {
            let id = field(args, 0);
            let result = {
                let mut s = self.script.borrow_mut();
                match s.open_results.pop_front() {
                    Some(r) => r,
                    None if s.open => 2,
                    None => 0,
                }
            };
            self.send(OK).await;
            Timer::after_millis(2).await;
            self.send(format!("\r\n+QMTOPEN: {id},{result}\r\n").as_bytes())
                .await;
            if result == 0 {
                self.set(|s| s.open = true);
            }
        } else if let Some(args) = line.strip_prefix("AT+QMTCLOSE=") {
            let id = field(args, 0);
            let was_open = self.get(|s| s.open);
            self.set(|s| {
                s.open = false;
                s.connected = false;
            });
            self.send(OK).await;
            let r = if was_open { 0 } else { -1 };
            self.send(format!("\r\n+QMTCLOSE: {id},{r}\r\n").as_bytes())
                .await;
        } else if line == "AT+QMTCONN?" {
            let (open, connected) = self.get(|s| (s.open, s.connected));
            if open {
                let state = if connected { 3 } else { 1 };
                self.send(format!("\r\n+QMTCONN: 0,{state}\r\n").as_bytes())
                    .await;
            }
            self.send(OK).await;
        } else if let Some(args) = line.strip_prefix("AT+QMTCONN=") {
            let id = field(args, 0);
            let open = self.get(|s| s.open);
            self.send(OK).await;
            if open {
                self.set(|s| s.connected = true);
                self.send(format!("\r\n+QMTCONN: {id},0,0\r\n").as_bytes())
                    .await;
            } else {
                self.send(format!("\r\n+QMTCONN: {id},2\r\n").as_bytes())
                    .await;
            }
        } else if (line.starts_with("AT+QMTSUB=") || line.starts_with("AT+QMTPUB="))
            && !self.get(|s| s.connected)
        {
            // Not connected: the modem refuses the line.
            self.send(b"\r\nERROR\r\n").await;
        } else if let Some(args) = line.strip_prefix("AT+QMTSUB=") {
            let (id, msg_id) = (field(args, 0), field(args, 1));
            self.send(OK).await;
            self.send(format!("\r\n+QMTSUB: {id},{msg_id},0,1\r\n").as_bytes())
                .await;
        } else if let Some(args) = line.strip_prefix("AT+QMTPUB=") {
            let mut f = args.splitn(5, ',');
            let id: u8 = f.next().unwrap().parse().unwrap();
            let msg_id: u16 = f.next().unwrap().parse().unwrap();
            let qos: u8 = f.next().unwrap().parse().unwrap();
            let retain = f.next().unwrap() == "1";
            let rest = f.next().unwrap();
            // The payload from the bytes themselves (the line above is
            // text, lossy): the topic holds no quote, so the first `","`
            // ends it.
            let bytes = &raw[..raw.len() - 1];
            let inline = bytes.windows(3).position(|w| w == b"\",\"");
            let topic = match inline {
                Some(i) => {
                    let start = bytes.iter().position(|&b| b == b'"').unwrap() + 1;
                    String::from_utf8_lossy(&bytes[start..i]).into_owned()
                }
                None => rest[1..rest.len() - 1].to_string(),
            };
            let refused = self.get(|s| {
                s.refuse_topic
                    .as_deref()
                    .is_some_and(|p| topic.starts_with(p))
            });
            match inline {
                _ if refused => self.send(b"\r\nERROR\r\n").await,
                Some(i) => {
                    let payload = &bytes[i + 3..bytes.len() - 1];
                    self.send(OK).await;
                    self.published(id, msg_id, topic, payload, qos, retain)
                        .await;
                }
                None => {
                    self.set(|s| s.data_mode = Some((topic, id, retain, qos, msg_id)));
                    self.send(b"\r\n> ").await;
                }
            }
        } else if let Some(args) = line.strip_prefix("AT+QMTDISC=") {
            let id = field(args, 0);
            self.set(|s| {
                s.connected = false;
                s.open = false;
            });
            self.send(OK).await;
            self.send(format!("\r\n+QMTDISC: {id},0\r\n").as_bytes())
                .await;
        } else {
            self.send(b"\r\nERROR\r\n").await;
        }
    }
}

fn field(args: &str, i: usize) -> &str {
    args.split(',').nth(i).unwrap()
}
