//! The public entry points of the threaded simulator: [`Sim`] starts one behind a transport,
//! [`SimHandle`] controls it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::config::{NetworkPolicy, SimConfig, SimFaults};
use crate::model::{ChargeReport, ClientState, Modem, PowerState, PowerTransition};
use crate::shell::msg::Msg;
use crate::shell::net::Links;
use crate::shell::pipe::{self, Chan, SimReader, SimWriter};
use crate::shell::pty::Pty;
use crate::shell::runner::Runner;
use crate::shell::tx::{self, Sink};
use crate::shell::uart::pacer;

/// The host's two halves of the in-process transport: hand them to a driver.
pub struct HostSide {
    /// Bytes the modem sends (responses, URCs).
    pub reader: SimReader,
    /// Bytes to the modem (commands, payloads).
    pub writer: SimWriter,
}

/// Entry points.
pub struct Sim;

struct PipeSink(Arc<Chan>);

impl Sink for PipeSink {
    fn write_all(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.0
            .write_all_blocking(data)
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))
    }
}

/// Bytes from the host to the modem thread; `false` once it is gone.
fn to_modem(tx: Sender<Msg>) -> impl FnMut(Vec<u8>) -> bool + Send + 'static {
    move |bytes| tx.send(Msg::Host(bytes)).is_ok()
}

impl Sim {
    /// Start a simulated modem on an in-process pipe.
    pub fn start(cfg: SimConfig) -> (SimHandle, HostSide) {
        let pacer = pacer(cfg.baud);
        let paced = pacer.is_some();
        let fifo = if paced {
            cfg.uart_fifo.max(1)
        } else {
            cfg.pipe_capacity
        };
        let to_sim = Chan::paced(fifo, pacer);
        let to_host = Chan::new(cfg.pipe_capacity);
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = channel();

        let pump = {
            let to_sim = to_sim.clone();
            let deliver = to_modem(tx.clone());
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("bc26-sim-rx".into())
                .spawn(move || pipe::pump(&to_sim, paced, deliver, &stop))
                .expect("spawn rx thread")
        };

        let sink = Box::new(PipeSink(to_host.clone()));
        let handle = SimHandle::spawn(cfg, sink, (tx, rx), stop, vec![pump], {
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
        let p = Pty::open()?;
        let path = p.path.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = channel();
        let reader = p.spawn_reader(to_modem(tx.clone()), stop.clone(), pacer(cfg.baud))?;
        let sink = Box::new(p.sink()?);
        let handle = SimHandle::spawn(
            cfg,
            sink,
            (tx, rx),
            stop,
            vec![reader],
            Box::new(move || {
                drop(p);
            }),
        );
        Ok((handle, path))
    }
}

/// Controls a running simulator. Dropping it stops the simulator (its MQTT links are
/// dropped without DISCONNECT, and the host reader then reads EOF).
pub struct SimHandle {
    tx: Sender<Msg>,
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
        (tx, rx): (Sender<Msg>, Receiver<Msg>),
        stop: Arc<AtomicBool>,
        mut helpers: Vec<JoinHandle<()>>,
        on_stop: Box<dyn FnOnce() + Send>,
    ) -> SimHandle {
        let log = Arc::new(Mutex::new(Vec::new()));
        let host_log = Arc::new(Mutex::new(Vec::new()));
        let (out, tx_thread) = tx::spawn_tx(tx::Tx {
            sink,
            baud: cfg.baud,
            chunking: cfg.chunking,
            log: log.clone(),
        });
        helpers.push(tx_thread);
        let links = Links::new(cfg.connect_timeout, tx.clone());
        let runner = Runner::new(Modem::new(&cfg), out, links, host_log.clone());
        let modem = std::thread::Builder::new()
            .name("bc26-sim-modem".into())
            .spawn(move || runner.run(rx))
            .expect("spawn modem thread");
        SimHandle {
            tx,
            log,
            host_log,
            stop,
            modem: Some(modem),
            helpers,
            on_stop: Some(on_stop),
        }
    }

    fn send(&self, m: Msg) {
        let _ = self.tx.send(m);
    }

    /// Send raw bytes to the host as if the modem had sent them (garbage, partial lines,
    /// extra URCs). They go out in order with the modem's other output.
    pub fn inject(&self, bytes: &[u8]) {
        self.send(Msg::Inject(bytes.to_vec()));
    }

    /// Send one unsolicited line, framed like a real URC: `\r\n<line>\r\n`.
    pub fn inject_urc(&self, line: &str) {
        self.inject(format!("\r\n{line}\r\n").as_bytes());
    }

    /// Replace the fault-injection settings.
    pub fn set_faults(&self, faults: SimFaults) {
        self.send(Msg::SetFaults(faults));
    }

    /// Change the fault-injection settings in place (atomically: the simulator waits for
    /// the change).
    pub fn update_faults(&self, f: impl FnOnce(&mut SimFaults)) {
        let (cur_tx, cur_rx) = channel();
        let (back_tx, back_rx) = channel();
        self.send(Msg::EditFaults(cur_tx, back_rx));
        if let Ok(mut faults) = cur_rx.recv() {
            f(&mut faults);
            let _ = back_tx.send(faults);
        }
    }

    /// The current fault-injection settings (counted faults as far as they have counted
    /// down); the defaults if the simulator has stopped.
    pub fn faults(&self) -> SimFaults {
        let (reply, rx) = channel();
        self.send(Msg::GetFaults(reply));
        rx.recv().unwrap_or_default()
    }

    /// Cut the TCP link of client `id` as if the peer had reset it: the modem reports
    /// `+QMTSTAT: <id>,1`.
    pub fn break_link(&self, id: u8) {
        self.send(Msg::BreakLink(id));
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
        self.send(Msg::CloseLink { id, code });
    }

    /// The module restarts now (see the README, "Faults"): links dropped without DISCONNECT,
    /// every setting back to its default (echo on), output not yet sent and a half-received
    /// line discarded; for `SimConfig::boot_time` it ignores the host and sends nothing,
    /// then sends `\r\nRDY\r\n`.
    pub fn reboot(&self) {
        self.send(Msg::Reboot);
    }

    /// The network's registration status, as `AT+CEREG?` reports it: 0 not registered,
    /// 1 home, 2 searching, 3 denied, 4 unknown, 5 roaming (1 at start). Losing registration
    /// (1/5 to anything else) drops every link with `+QMTSTAT: <id>,2`, and `AT+QMTOPEN` then
    /// fails with `+QMTOPEN: <id>,3`; `AT+CGATT?` answers 1 only while registered.
    pub fn set_registration(&self, stat: u8) {
        self.send(Msg::Registration(stat));
    }

    /// A dead UART: while silent, every byte from the host is lost and the modem sends
    /// nothing (what it would have sent is lost, not delayed). Its MQTT side keeps running:
    /// messages arrive and are acknowledged, keep-alive goes on, links may die (and their
    /// `+QMTSTAT` is lost too).
    pub fn set_silent(&self, silent: bool) {
        self.send(Msg::Silent(silent));
    }

    /// The state of client `id` (0-5) in the modem; `None` if `id` is out of range or the
    /// simulator does not answer within a second.
    pub fn client_state(&self, id: u8) -> Option<ClientState> {
        let (tx, rx) = channel();
        self.send(Msg::State(id, tx));
        rx.recv_timeout(Duration::from_secs(1)).ok().flatten()
    }

    /// A falling edge on the module's PSM_EINT pin: wakes it from deep sleep (after
    /// `PowerConfig::deep_wake`) or light sleep (at once). See `docs/power-model.md`.
    pub fn psm_eint(&self) {
        self.send(Msg::PsmEint);
    }

    /// Replace the network's policy (inactivity timer, PSM/eDRX grants, NAT timeout): see
    /// `model::Modem::network_policy_mut`.
    pub fn set_network_policy(&self, policy: NetworkPolicy) {
        self.send(Msg::NetworkPolicy(policy));
    }

    /// The charge meter now: time and charge per power state, the total, the power
    /// counters. `None` if the simulator does not answer within a second.
    pub fn charge(&self) -> Option<ChargeReport> {
        self.power_probe().charge()
    }

    /// The module's power state now; `None` if the simulator does not answer within a second.
    pub fn power_state(&self) -> Option<PowerState> {
        let (tx, rx) = channel();
        self.send(Msg::PowerState(tx));
        rx.recv_timeout(Duration::from_secs(1)).ok()
    }

    /// Every change of power state from now on, with its time (the simulator's clock, from
    /// its start), as it is known (a change the host does not see is known at the
    /// simulator's next input, with its own time).
    pub fn power_events(&self) -> Receiver<PowerTransition> {
        self.power_probe().events()
    }

    /// A handle on the power model that outlives a move of this handle (`Clone`, `Send`):
    /// for a program that hands the `SimHandle` to another thread.
    pub fn power_probe(&self) -> PowerProbe {
        PowerProbe {
            tx: self.tx.clone(),
        }
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

/// Reads the power model of a running simulator ([`SimHandle::power_probe`]).
#[derive(Clone)]
pub struct PowerProbe {
    tx: Sender<Msg>,
}

impl PowerProbe {
    /// See [`SimHandle::charge`].
    pub fn charge(&self) -> Option<ChargeReport> {
        let (tx, rx) = channel();
        let _ = self.tx.send(Msg::Charge(tx));
        rx.recv_timeout(Duration::from_secs(1)).ok()
    }

    /// See [`SimHandle::power_events`].
    pub fn events(&self) -> Receiver<PowerTransition> {
        let (tx, rx) = channel();
        let _ = self.tx.send(Msg::PowerEvents(tx));
        rx
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(f) = self.on_stop.take() {
            f();
        }
        self.send(Msg::Shutdown);
        if let Some(m) = self.modem.take() {
            let _ = m.join();
        }
        for h in self.helpers.drain(..) {
            let _ = h.join();
        }
    }
}
