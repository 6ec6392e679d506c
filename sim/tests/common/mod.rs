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

    /// `AT+QMTOPEN` to a loopback port + `+QMTOPEN: id,0`.
    pub fn open_port(&mut self, id: u8, port: u16) {
        self.at(
            &format!("AT+QMTOPEN={id},\"127.0.0.1\",{port}"),
            "\r\nOK\r\n",
        );
        self.expect(&format!("\r\n+QMTOPEN: {id},0\r\n"));
    }

    /// Open and connect client `id` to a fake server, which accepts (CONNACK 0).
    pub fn connect_fake(&mut self, id: u8, server: &FakeServer) -> FakeConn {
        self.open_port(id, server.port);
        let mut conn = server.accept();
        self.at(&format!("AT+QMTCONN={id},\"fake\""), "\r\nOK\r\n");
        let connect = conn.read_packet().expect("CONNECT");
        assert_eq!(connect[0], 0x10, "{}", show(&connect));
        conn.send(b"\x20\x02\x00\x00");
        self.expect(&format!("\r\n+QMTCONN: {id},0,0\r\n"));
        conn
    }

    /// Open and connect client `id` with client id `cid`.
    pub fn connect(&mut self, id: u8, b: &Broker, cid: &str) {
        self.open(id, b);
        self.at(&format!("AT+QMTCONN={id},\"{cid}\""), "\r\nOK\r\n");
        self.expect(&format!("\r\n+QMTCONN: {id},0,0\r\n"));
    }
}

/// A fake MQTT server on a free loopback port, to see the exact bytes a client sends.
pub struct FakeServer {
    pub port: u16,
    listener: std::net::TcpListener,
}

impl FakeServer {
    pub fn new() -> FakeServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        FakeServer {
            port: listener.local_addr().unwrap().port(),
            listener,
        }
    }

    /// The next connection (5 s at most).
    pub fn accept(&self) -> FakeConn {
        self.listener.set_nonblocking(true).unwrap();
        let deadline = Instant::now() + T;
        loop {
            match self.listener.accept() {
                Ok((s, _)) => {
                    s.set_nonblocking(false).unwrap();
                    s.set_read_timeout(Some(T)).unwrap();
                    return FakeConn { s };
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(Instant::now() < deadline, "fake server: no connection");
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => panic!("fake server: {e}"),
            }
        }
    }
}

/// One connection to a [`FakeServer`].
pub struct FakeConn {
    s: std::net::TcpStream,
}

impl FakeConn {
    /// One whole MQTT packet (fixed header, remaining length, body); `None` on EOF.
    pub fn read_packet(&mut self) -> Option<Vec<u8>> {
        use std::io::Read;
        let mut p = vec![0u8; 1];
        if self.s.read(&mut p).expect("fake server: read") == 0 {
            return None;
        }
        let (mut len, mut shift) = (0usize, 0);
        loop {
            let mut b = [0u8; 1];
            self.s.read_exact(&mut b).expect("fake server: length");
            p.push(b[0]);
            len |= ((b[0] & 0x7f) as usize) << shift;
            shift += 7;
            if b[0] & 0x80 == 0 {
                break;
            }
        }
        let start = p.len();
        p.resize(start + len, 0);
        self.s
            .read_exact(&mut p[start..])
            .expect("fake server: body");
        Some(p)
    }

    pub fn send(&mut self, b: &[u8]) {
        use std::io::Write;
        self.s.write_all(b).unwrap();
    }

    /// Everything the client sends until it closes the link (which must happen within 5 s).
    pub fn until_closed(&mut self) -> Vec<u8> {
        use std::io::Read;
        let mut all = Vec::new();
        let mut b = [0u8; 1024];
        loop {
            match self.s.read(&mut b) {
                Ok(0) => return all,
                Ok(n) => all.extend_from_slice(&b[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return all,
                Err(e) => panic!("fake server: link not closed ({e}); got {}", show(&all)),
            }
        }
    }
}

/// Polls `f` every 5 ms until it holds (5 s at most).
pub fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + T;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[allow(unused_imports)]
pub use bc26_sim::broker::{broker, closed_port, qos_of, Auth, Broker, Peer};
