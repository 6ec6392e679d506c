//! `bc26-sim`: a host-side simulator of the Quectel BC26 NB-IoT modem's MQTT AT commands
//! (`AT+QMTCFG`, `AT+QMTOPEN`, `AT+QMTCLOSE`, `AT+QMTCONN`, `AT+QMTDISC`, `AT+QMTSUB`,
//! `AT+QMTUNS`, `AT+QMTPUB`, URCs `+QMTRECV` and `+QMTSTAT`), written from the AT reference
//! alone, with real MQTT (TCP) underneath.
//!
//! Two transports:
//! - [`Sim::start`]: an in-process byte pipe whose host halves ([`SimReader`], [`SimWriter`])
//!   implement `embedded_io_async::{Read, Write}`, for a driver running on any executor;
//! - [`Sim::start_pty`]: a pseudo-terminal (`/dev/pts/N`) for programs that open a serial port.
//!
//! ```no_run
//! use bc26_sim::{Sim, SimConfig};
//! let (handle, mut host) = Sim::start(SimConfig::default());
//! host.writer.write_all_blocking(b"AT\r").unwrap();
//! let mut buf = [0u8; 64];
//! let n = host.reader.read_blocking(&mut buf, std::time::Duration::from_secs(1)).unwrap();
//! assert_eq!(&buf[..n], b"AT\r\r\nOK\r\n");
//! drop(handle);
//! ```

#![forbid(unsafe_op_in_unsafe_fn)]

mod at;
#[cfg(feature = "broker")]
pub mod broker;
mod config;
pub mod model;
mod modem;
mod mqtt;
mod output;
mod pipe;
mod pty;
mod uart;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

pub use config::{Chunking, SimConfig, SimFaults};
pub use modem::ClientState;
pub use pipe::{SimReader, SimWriter};

use modem::{Event, Modem};
use output::Sink;

/// The host's two halves of the in-process transport: hand them to a driver.
pub struct HostSide {
    /// Bytes the modem sends (responses, URCs).
    pub reader: SimReader,
    /// Bytes to the modem (commands, payloads).
    pub writer: SimWriter,
}

/// Entry points.
pub struct Sim;

struct PipeSink(Arc<pipe::Chan>);

impl Sink for PipeSink {
    fn write_all(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.0
            .write_all_blocking(data)
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))
    }
}

impl Sim {
    /// Start a simulated modem on an in-process pipe.
    pub fn start(cfg: SimConfig) -> (SimHandle, HostSide) {
        let pacer = uart::Pacer::new(cfg.baud);
        let paced = pacer.is_some();
        let to_sim = pipe::Chan::paced(
            if paced {
                cfg.uart_fifo.max(1)
            } else {
                cfg.pipe_capacity
            },
            pacer,
        );
        let to_host = pipe::Chan::new(cfg.pipe_capacity);
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = channel();

        let pump = {
            let to_sim = to_sim.clone();
            let tx = tx.clone();
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("bc26-sim-rx".into())
                .spawn(move || pump(&to_sim, paced, &tx, &stop))
                .expect("spawn rx thread")
        };

        let sink = Box::new(PipeSink(to_host.clone()));
        let handle = SimHandle::spawn(cfg, sink, tx, rx, stop, vec![pump], {
            let a = to_host.clone();
            let b = to_sim.clone();
            Box::new(move || {
                a.close();
                b.close();
            })
        });
        (
            handle,
            HostSide {
                reader: SimReader { chan: to_host },
                writer: SimWriter { chan: to_sim },
            },
        )
    }

    /// Start a simulated modem behind a pseudo-terminal (raw mode) and return the path of
    /// its device (`/dev/pts/N`). The simulator keeps the device open, so a program may open
    /// and close it several times.
    pub fn start_pty(cfg: SimConfig) -> std::io::Result<(SimHandle, PathBuf)> {
        let p = pty::Pty::open()?;
        let path = p.path.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = channel();
        let reader = p.spawn_reader(tx.clone(), stop.clone(), uart::Pacer::new(cfg.baud))?;
        let sink = Box::new(p.sink()?);
        let handle = SimHandle::spawn(
            cfg,
            sink,
            tx,
            rx,
            stop,
            vec![reader],
            Box::new(move || {
                drop(p);
            }),
        );
        Ok((handle, path))
    }
}

/// The modem's receiving end of the pipe: takes the host's bytes as they complete on the
/// wire (paced like a UART when the pipe is: they stay in the pipe, which is the FIFO the
/// host's writes block on, until their stop bit is complete, and each goes to the modem as
/// soon as it is).
fn pump(to_sim: &pipe::Chan, paced: bool, tx: &Sender<Event>, stop: &AtomicBool) {
    if paced {
        uart::precise_timers();
    }
    let mut buf = vec![0u8; 1024];
    let mut waiter = uart::Waiter::default();
    while !stop.load(Ordering::Relaxed) {
        match to_sim.take_complete(&mut buf, Duration::from_millis(50), &mut waiter) {
            Some(0) => break,
            Some(n) if tx.send(Event::Host(buf[..n].to_vec())).is_err() => break,
            Some(_) | None => {}
        }
    }
}

/// Controls a running simulator. Dropping it stops the simulator (its MQTT links are
/// dropped without DISCONNECT, and the host reader then reads EOF).
pub struct SimHandle {
    tx: Sender<Event>,
    faults: Arc<Mutex<SimFaults>>,
    log: Arc<Mutex<Vec<u8>>>,
    host_log: Arc<Mutex<Vec<u8>>>,
    stop: Arc<AtomicBool>,
    modem: Option<JoinHandle<()>>,
    helpers: Vec<JoinHandle<()>>,
    on_stop: Option<Box<dyn FnOnce() + Send>>,
}

impl SimHandle {
    fn spawn(
        cfg: SimConfig,
        sink: Box<dyn Sink>,
        tx: Sender<Event>,
        rx: std::sync::mpsc::Receiver<Event>,
        stop: Arc<AtomicBool>,
        helpers: Vec<JoinHandle<()>>,
        on_stop: Box<dyn FnOnce() + Send>,
    ) -> SimHandle {
        let faults = Arc::new(Mutex::new(cfg.faults.clone()));
        let log = Arc::new(Mutex::new(Vec::new()));
        let host_log = Arc::new(Mutex::new(Vec::new()));
        let (out, tx_thread) = output::spawn_tx(output::Tx {
            sink,
            baud: cfg.baud,
            chunking: cfg.chunking,
            log: log.clone(),
        });
        let mut helpers = helpers;
        helpers.push(tx_thread);
        let modem = Modem::new(cfg, faults.clone(), out, tx.clone(), host_log.clone());
        let modem = std::thread::Builder::new()
            .name("bc26-sim-modem".into())
            .spawn(move || modem.run(rx))
            .expect("spawn modem thread");
        SimHandle {
            tx,
            faults,
            log,
            host_log,
            stop,
            modem: Some(modem),
            helpers,
            on_stop: Some(on_stop),
        }
    }

    /// Send raw bytes to the host as if the modem had sent them (garbage, partial lines,
    /// extra URCs). They go out in order with the modem's other output.
    pub fn inject(&self, bytes: &[u8]) {
        let _ = self.tx.send(Event::Inject(bytes.to_vec()));
    }

    /// Send one unsolicited line, framed like a real URC: `\r\n<line>\r\n`.
    pub fn inject_urc(&self, line: &str) {
        self.inject(format!("\r\n{line}\r\n").as_bytes());
    }

    /// Replace the fault-injection settings.
    pub fn set_faults(&self, faults: SimFaults) {
        *self.faults.lock().unwrap_or_else(|e| e.into_inner()) = faults;
    }

    /// Change the fault-injection settings in place.
    pub fn update_faults(&self, f: impl FnOnce(&mut SimFaults)) {
        f(&mut self.faults.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// The current fault-injection settings.
    pub fn faults(&self) -> SimFaults {
        self.faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Cut the TCP link of client `id` as if the peer had reset it: the modem reports
    /// `+QMTSTAT: <id>,1`.
    pub fn break_link(&self, id: u8) {
        let _ = self.tx.send(Event::BreakLink(id));
    }

    /// The module closes client `id`'s link by itself (TCP dropped without DISCONNECT, so
    /// the broker publishes the will) and reports `+QMTSTAT: <id>,<code>`; the client is
    /// closed (`AT+QMTOPEN?`/`AT+QMTCONN?` no longer list it; `AT+QMTOPEN` works again).
    /// Nothing happens when the client has no link (closed, or its QMTOPEN in progress).
    ///
    /// # Panics
    /// When `code` is 0 (`+QMTSTAT` codes are 1-255).
    pub fn close_link(&self, id: u8, code: u8) {
        assert!(code >= 1, "+QMTSTAT codes are 1-255");
        let _ = self.tx.send(Event::CloseLink { id, code });
    }

    /// The module restarts now (see the README, "Faults"): links dropped without DISCONNECT,
    /// every setting back to its default (echo on), output not yet sent and a half-received
    /// line discarded; for `SimConfig::boot_time` it ignores the host and sends nothing,
    /// then sends `\r\nRDY\r\n`.
    pub fn reboot(&self) {
        let _ = self.tx.send(Event::Reboot);
    }

    /// The network's registration status, as `AT+CEREG?` reports it: 0 not registered,
    /// 1 home, 2 searching, 3 denied, 4 unknown, 5 roaming (1 at start). Losing registration
    /// (1/5 to anything else) drops every link with `+QMTSTAT: <id>,2`, and `AT+QMTOPEN` then
    /// fails with `+QMTOPEN: <id>,3`; `AT+CGATT?` answers 1 only while registered.
    pub fn set_registration(&self, stat: u8) {
        let _ = self.tx.send(Event::Registration(stat));
    }

    /// A dead UART: while silent, every byte from the host is lost and the modem sends
    /// nothing (what it would have sent is lost, not delayed). Its MQTT side keeps running:
    /// messages arrive and are acknowledged, keep-alive goes on, links may die (and their
    /// `+QMTSTAT` is lost too).
    pub fn set_silent(&self, silent: bool) {
        let _ = self.tx.send(Event::Silent(silent));
    }

    /// The state of client `id` (0-5) in the modem; `None` if the simulator does not answer
    /// within a second or `id` is out of range.
    pub fn client_state(&self, id: u8) -> Option<ClientState> {
        let (tx, rx) = channel();
        self.tx.send(Event::State(id, tx)).ok()?;
        rx.recv_timeout(Duration::from_secs(1)).ok()
    }

    /// Everything the modem has sent to the host so far.
    pub fn transcript(&self) -> Vec<u8> {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Everything the modem has taken from the host so far (not the bytes lost while it was
    /// silent or booting): lets a test count the commands a driver sent.
    pub fn host_transcript(&self) -> Vec<u8> {
        self.host_log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Stop the simulator and wait for its threads.
    pub fn shutdown(self) {
        drop(self);
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(f) = self.on_stop.take() {
            f();
        }
        let _ = self.tx.send(Event::Shutdown);
        if let Some(m) = self.modem.take() {
            let _ = m.join();
        }
        for h in self.helpers.drain(..) {
            let _ = h.join();
        }
    }
}
