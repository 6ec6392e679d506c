//! Shared test helpers: a raw AT "terminal" on the simulator, the broker to test against,
//! and an independent MQTT client (rumqttc) to check what really went over MQTT.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};

use std::time::{Duration, Instant};

use bc26_sim::{HostSide, Sim, SimConfig, SimHandle};

pub const T: Duration = Duration::from_secs(5);

/// A unique name for this process and call (parallel-safe client ids and topics).
pub fn uniq(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{}x{n}", std::process::id() % 100_000)
}

/// Shows bytes with escapes, for assertion messages.
pub fn show(b: &[u8]) -> String {
    b.escape_ascii().to_string()
}

/// A raw AT terminal on a simulator.
pub struct Term {
    pub handle: SimHandle,
    pub host: HostSide,
    buf: Vec<u8>,
}

impl Term {
    pub fn new(cfg: SimConfig) -> Term {
        let (handle, host) = Sim::start(cfg);
        Term {
            handle,
            host,
            buf: Vec::new(),
        }
    }

    /// A terminal with echo off (ATE0 already sent and answered).
    pub fn quiet(cfg: SimConfig) -> Term {
        let mut t = Term::new(SimConfig { echo: false, ..cfg });
        t.send("AT");
        t.expect("\r\nOK\r\n");
        t
    }

    pub fn send_bytes(&mut self, b: &[u8]) {
        self.host.writer.write_all_blocking(b).expect("sim gone");
    }

    /// Send a command line (`\r` appended).
    pub fn send(&mut self, cmd: &str) {
        self.send_bytes(format!("{cmd}\r").as_bytes());
    }

    fn fill(&mut self, deadline: Instant) -> bool {
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        let mut b = [0u8; 4096];
        match self.host.reader.read_blocking(&mut b, deadline - now) {
            Some(0) | None => false,
            Some(n) => {
                self.buf.extend_from_slice(&b[..n]);
                true
            }
        }
    }

    /// The next bytes must be exactly `exp`.
    pub fn expect(&mut self, exp: &str) {
        self.expect_bytes(exp.as_bytes());
    }

    pub fn expect_bytes(&mut self, exp: &[u8]) {
        let deadline = Instant::now() + T;
        while self.buf.len() < exp.len() && self.buf[..] == exp[..self.buf.len()] {
            if !self.fill(deadline) {
                break;
            }
        }
        let n = exp.len().min(self.buf.len());
        assert_eq!(
            show(&self.buf[..n]),
            show(exp),
            "unexpected modem output (buffer: {})",
            show(&self.buf)
        );
        assert!(
            self.buf.len() >= exp.len(),
            "timed out waiting for {}",
            show(exp)
        );
        self.buf.drain(..exp.len());
    }

    /// Read until `pat` appears; returns everything up to and including it.
    pub fn until(&mut self, pat: &str) -> String {
        self.until_timeout(pat, T)
    }

    pub fn until_timeout(&mut self, pat: &str, t: Duration) -> String {
        let deadline = Instant::now() + t;
        let pat = pat.as_bytes();
        loop {
            if let Some(i) = self.buf.windows(pat.len()).position(|w| w == pat) {
                let out: Vec<u8> = self.buf.drain(..i + pat.len()).collect();
                return String::from_utf8_lossy(&out).into_owned();
            }
            if !self.fill(deadline) {
                panic!(
                    "timed out waiting for {} (buffer: {})",
                    show(pat),
                    show(&self.buf)
                );
            }
        }
    }

    /// Everything that arrives within `d`.
    pub fn drain_for(&mut self, d: Duration) -> Vec<u8> {
        let deadline = Instant::now() + d;
        while self.fill(deadline) {}
        std::mem::take(&mut self.buf)
    }

    /// Send a command and expect exactly `resp` back (echo off).
    pub fn at(&mut self, cmd: &str, resp: &str) {
        self.send(cmd);
        self.expect(resp);
    }

    /// `AT+QMTOPEN` + `+QMTOPEN: id,0`.
    pub fn open(&mut self, id: u8, b: &Broker) {
        self.at(
            &format!("AT+QMTOPEN={id},\"{}\",{}", b.host, b.port),
            "\r\nOK\r\n",
        );
        self.expect(&format!("\r\n+QMTOPEN: {id},0\r\n"));
    }

    /// Open and connect client `id` with client id `cid`.
    pub fn connect(&mut self, id: u8, b: &Broker, cid: &str) {
        self.open(id, b);
        self.at(&format!("AT+QMTCONN={id},\"{cid}\""), "\r\nOK\r\n");
        self.expect(&format!("\r\n+QMTCONN: {id},0,0\r\n"));
    }
}

#[allow(unused_imports)]
pub use bc26_sim::broker::{broker, closed_port, qos_of, Auth, Broker, Peer};
