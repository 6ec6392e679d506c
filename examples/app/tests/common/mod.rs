//! Test harness: the application (driver included) on embassy's std executor,
//! its UART two in-memory pipes, and on the other end a scripted fake BC26
//! that reads command lines and answers byte-exact as the modem does.
#![allow(dead_code)]

use core::cell::RefCell;
use core::future::Future;
use core::pin::Pin;
use std::boxed::Box;
use std::collections::VecDeque;
use std::string::String;
use std::sync::atomic::{AtomicBool, Ordering};
use std::vec::Vec;

use bc26_example_app::{AppConfig, Broker, Device, Status, Timing, Topics};
use bc26_mqtt::{ClientId, State};
use embassy_executor::Executor;
use embassy_futures::select::{select, select3, Either, Either3};
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_sync::pipe::Pipe;
use embassy_sync::signal::Signal;
use embassy_time::{with_timeout, Duration, Instant, Timer};

/// Modem to host: roomy.
pub type WirePipe = Pipe<CriticalSectionRawMutex, 8192>;
/// Host to modem: small, like a UART's transmit buffer.
pub type TxPipe = Pipe<CriticalSectionRawMutex, 256>;

pub const TELEMETRY: &str = "dev/telemetry";
pub const COMMAND: &str = "dev/cmd";
pub const STATUS: &str = "dev/status";
pub const ACK: &str = "dev/ack";

/// Millisecond timing; telemetry effectively off (tests that want it set it).
pub fn config() -> AppConfig<'static> {
    AppConfig {
        broker: Broker {
            host: "broker.example",
            port: 1883,
            client_id: "dev-1",
            username: Some("user"),
            password: Some("secret"),
        },
        topics: Topics {
            telemetry: TELEMETRY,
            command: COMMAND,
            status: STATUS,
            ack: ACK,
        },
        client: ClientId::new(0).unwrap(),
        keepalive_s: 60,
        pkt_timeout_s: 5,
        retry_times: 2,
        timing: Timing {
            power_on_wait: Duration::from_millis(5),
            at_retry_interval: Duration::from_millis(5),
            registration_poll: Duration::from_millis(5),
            registration_deadline: Duration::from_millis(100),
            telemetry_period: Duration::from_secs(3600),
            backoff_min: Duration::from_millis(40),
            backoff_max: Duration::from_millis(100),
        },
        driver: bc26_mqtt::Config::new()
            .command_timeout(Duration::from_millis(300))
            .open_timeout(Duration::from_millis(500))
            .close_timeout(Duration::from_millis(500))
            .packet_deadline(Duration::from_millis(500)),
    }
}

// ------------------------------------------------------------------ executor

#[embassy_executor::task(pool_size = 32)]
async fn test_task(fut: Pin<Box<dyn Future<Output = ()>>>, done: &'static AtomicBool) {
    fut.await;
    done.store(true, Ordering::SeqCst);
}

/// Runs `fut` to completion on a fresh embassy std executor (20 s limit).
pub fn run<F: Future<Output = ()> + 'static>(fut: F) {
    let done: &'static AtomicBool = Box::leak(Box::new(AtomicBool::new(false)));
    let executor: &'static mut Executor = Box::leak(Box::new(Executor::new()));
    let fut: Pin<Box<dyn Future<Output = ()>>> = Box::pin(async move {
        if with_timeout(Duration::from_secs(20), fut).await.is_err() {
            panic!("test did not finish within 20 s");
        }
    });
    executor.run_until(
        |spawner| spawner.spawn(test_task(fut, done).expect("task pool")),
        || done.load(Ordering::SeqCst),
    );
}

// ------------------------------------------------------------------ device

/// What the application told the board.
#[derive(Default)]
pub struct DeviceLog {
    pub led: Vec<bool>,
    pub status: Vec<Status>,
}

pub struct TestDevice(pub &'static RefCell<DeviceLog>);

impl Device for TestDevice {
    fn set_led(&mut self, on: bool) {
        self.0.borrow_mut().led.push(on);
    }
    fn status(&mut self, status: Status) {
        self.0.borrow_mut().status.push(status);
    }
}

// ------------------------------------------------------------------ fake modem

/// How the fake modem behaves, and what it saw. Tests change it at any time.
pub struct Script {
    /// Echo of command lines (ATE1, the power-on default).
    pub echo: bool,
    /// This many `AT`s get no answer (the modem is still booting).
    pub silent_ats: u32,
    /// The modem answers nothing at all (rebooting, asleep, unplugged).
    pub mute: bool,
    /// `<stat>` of the next `AT+CEREG?` answers; `registered` when empty.
    pub cereg: VecDeque<u8>,
    /// `<stat>` once `cereg` is used up.
    pub registered: u8,
    /// `<result>` of the next `+QMTOPEN`s; 0 when empty.
    pub open_results: VecDeque<i16>,
    /// The client's link is open / MQTT-connected (for `AT+QMTCONN?`).
    pub open: bool,
    pub connected: bool,
    /// Every command line the host sent, without its CR; a data-mode payload
    /// is logged as its own entry, `> <payload>`.
    pub log: Vec<String>,
    /// Every publish: (topic, payload, qos, retain).
    pub publishes: Vec<(String, String, u8, bool)>,
    /// When each command line arrived.
    pub times: Vec<Instant>,
    urcs: VecDeque<Vec<u8>>,
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

pub struct FakeModem {
    rx: &'static TxPipe,
    tx: &'static WirePipe,
    pub script: RefCell<Script>,
    kick: Signal<CriticalSectionRawMutex, ()>,
}

impl FakeModem {
    fn new(rx: &'static TxPipe, tx: &'static WirePipe) -> Self {
        Self {
            rx,
            tx,
            script: RefCell::new(Script {
                echo: true,
                silent_ats: 0,
                mute: false,
                cereg: VecDeque::new(),
                registered: 1,
                open_results: VecDeque::new(),
                open: false,
                connected: false,
                log: Vec::new(),
                publishes: Vec::new(),
                times: Vec::new(),
                urcs: VecDeque::new(),
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

    /// A message from the broker: `+QMTRECV: 0,<msg_id>,"<topic>","<payload>"`.
    pub fn message(&self, msg_id: u16, topic: &str, payload: &str) {
        self.urc(format!("\r\n+QMTRECV: 0,{msg_id},\"{topic}\",\"{payload}\"\r\n").as_bytes());
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

    /// The modem: answers forever.
    pub async fn serve(&self) -> ! {
        let mut pending: Vec<u8> = Vec::new();
        let mut buf = [0u8; 256];
        loop {
            let urcs: Vec<Vec<u8>> = self.script.borrow_mut().urcs.drain(..).collect();
            for u in urcs {
                self.send(&u).await;
            }
            match select(self.rx.read(&mut buf), self.kick.wait()).await {
                Either::First(n) => pending.extend_from_slice(&buf[..n]),
                Either::Second(()) => continue,
            }
            loop {
                let in_data_mode = self.script.borrow().data_mode.is_some();
                if in_data_mode {
                    let Some(end) = pending.iter().position(|&b| b == 0x1a) else {
                        break;
                    };
                    let payload: Vec<u8> = pending.drain(..=end).collect();
                    self.payload(&payload[..end]).await;
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

    async fn payload(&self, payload: &[u8]) {
        let text = String::from_utf8_lossy(payload).into_owned();
        let (topic, id, retain, qos, msg_id) = {
            let mut s = self.script.borrow_mut();
            s.log.push(format!("> {text}"));
            s.times.push(Instant::now());
            let d = s.data_mode.take().unwrap();
            s.publishes.push((d.0.clone(), text, d.3, d.2));
            d
        };
        let _ = (topic, retain, qos);
        self.send(b"\r\nOK\r\n").await;
        self.send(format!("\r\n+QMTPUB: {id},{msg_id},0\r\n").as_bytes())
            .await;
    }

    async fn line(&self, raw: &[u8]) {
        let line = String::from_utf8_lossy(&raw[..raw.len() - 1]).into_owned();
        let (echo, mute) = {
            let mut s = self.script.borrow_mut();
            s.log.push(line.clone());
            s.times.push(Instant::now());
            (s.echo, s.mute)
        };
        if mute {
            return;
        }
        if echo {
            self.send(raw).await;
        }
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
        } else if line == "AT+CEREG?" {
            let stat = {
                let mut s = self.script.borrow_mut();
                let r = s.registered;
                s.cereg.pop_front().unwrap_or(r)
            };
            self.send(format!("\r\n+CEREG: 0,{stat}\r\n\r\nOK\r\n").as_bytes())
                .await;
        } else if line.starts_with("AT+QMTCFG=") {
            self.send(OK).await;
        } else if let Some(args) = line.strip_prefix("AT+QMTOPEN=") {
            let id = field(args, 0);
            let result = self
                .script
                .borrow_mut()
                .open_results
                .pop_front()
                .unwrap_or(0);
            self.send(OK).await;
            Timer::after_millis(2).await;
            self.send(format!("\r\n+QMTOPEN: {id},{result}\r\n").as_bytes())
                .await;
            if result == 0 {
                self.set(|s| s.open = true);
            }
        } else if let Some(args) = line.strip_prefix("AT+QMTCLOSE=") {
            let id = field(args, 0);
            self.set(|s| {
                s.open = false;
                s.connected = false;
            });
            self.send(OK).await;
            self.send(format!("\r\n+QMTCLOSE: {id},0\r\n").as_bytes())
                .await;
        } else if line == "AT+QMTCONN?" {
            let connected = self.get(|s| s.connected);
            if connected {
                self.send(b"\r\n+QMTCONN: 0,3\r\n").await;
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
            match rest.find("\",\"") {
                Some(i) => {
                    let topic = rest[1..i].to_string();
                    let payload = rest[i + 3..rest.len() - 1].to_string();
                    self.set(|s| s.publishes.push((topic, payload, qos, retain)));
                    self.send(OK).await;
                    self.send(format!("\r\n+QMTPUB: {id},{msg_id},0\r\n").as_bytes())
                        .await;
                }
                None => {
                    let topic = rest[1..rest.len() - 1].to_string();
                    self.set(|s| s.data_mode = Some((topic, id, retain, qos, msg_id)));
                    self.send(b"\r\n> ").await;
                }
            }
        } else if let Some(args) = line.strip_prefix("AT+QMTDISC=") {
            let id = field(args, 0);
            self.set(|s| s.connected = false);
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

// ------------------------------------------------------------------ harness

/// The application, the fake modem and the board's log.
pub struct Harness {
    pub fake: &'static FakeModem,
    pub device: &'static RefCell<DeviceLog>,
    state: &'static mut State,
    to_modem: &'static TxPipe,
    to_host: &'static WirePipe,
}

impl Harness {
    pub fn new() -> Self {
        let to_modem: &'static TxPipe = Box::leak(Box::new(Pipe::new()));
        let to_host: &'static WirePipe = Box::leak(Box::new(Pipe::new()));
        Self {
            fake: Box::leak(Box::new(FakeModem::new(to_modem, to_host))),
            device: Box::leak(Box::new(RefCell::new(DeviceLog::default()))),
            state: Box::leak(Box::new(State::new())),
            to_modem,
            to_host,
        }
    }

    /// Runs the application (from power-on) and the fake modem beside
    /// `body`; returns when `body` does.
    pub async fn run<F: Future>(self, config: AppConfig<'static>, body: F) -> F::Output {
        let config: &'static AppConfig<'static> = Box::leak(Box::new(config));
        let mut device = TestDevice(self.device);
        let app =
            bc26_example_app::run(self.state, self.to_host, self.to_modem, config, &mut device);
        match select3(app, self.fake.serve(), body).await {
            Either3::First(never) | Either3::Second(never) => never,
            Either3::Third(out) => out,
        }
    }
}

/// The lines the host sent to bring up one MQTT session with [`config`].
pub fn session_lines() -> Vec<&'static str> {
    vec![
        "AT+QMTCFG=\"keepalive\",0,60",
        "AT+QMTCFG=\"will\",0,1,1,1,\"dev/status\",\"offline\"",
        "AT+QMTCFG=\"timeout\",0,5,2,0",
        "AT+QMTCFG=\"session\",0,1",
        "AT+QMTOPEN=0,\"broker.example\",1883",
        "AT+QMTCONN=0,\"dev-1\",\"user\",\"secret\"",
        "AT+QMTSUB=0,1,\"dev/cmd\",1",
        "AT+QMTPUB=0,2,1,1,\"dev/status\",\"online\"",
    ]
}
