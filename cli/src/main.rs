//! `bc26`: drive a BC26's MQTT client from the command line, for a developer
//! with an evaluation board on a USB serial adapter, and for scripts.
//!
//! ```text
//! cargo run -p bc26-cli -- --serial /dev/ttyUSB0 --host broker.hivemq.com \
//!     --sub 'dev/cmd' --pub 'dev/telemetry={"t":21}' --qos 1 --listen 10
//! cargo run -p bc26-cli -- --help
//! ```
//!
//! Standard output is one JSON object per line, `"event"` first; logs go to
//! standard error. Exit status 0 when every step succeeded, 1 otherwise, 2 for
//! bad arguments (refused before anything is sent to the modem).

mod args;
mod durable;
mod faults;
mod out;
mod power;
mod session;
mod stream;

use std::time::Instant;

use bc26_host::serial;
use bc26_host::tap::Tap;
use bc26_mqtt::{Config, Modem, Runner, State};
use bc26_sim::broker::RestartableBroker;
use bc26_sim::{HostSide, Sim, SimConfig, SimReader, SimWriter};
use clap::Parser as _;
use embassy_executor::Spawner;

type SerialRunner = Runner<'static, Tap<serial::Rx>, Tap<serial::Tx>>;
type SimRunner = Runner<'static, Tap<SimReader>, Tap<SimWriter>>;

#[embassy_executor::task]
async fn serial_modem(runner: SerialRunner) -> ! {
    runner.run().await
}

#[embassy_executor::task]
async fn sim_modem(runner: SimRunner) -> ! {
    runner.run().await
}

/// The two UART halves, shown on standard error with `--trace`.
fn tap<R, W>(reader: R, writer: W, on: bool) -> (Tap<R>, Tap<W>) {
    let start = Instant::now();
    (
        Tap {
            inner: reader,
            arrow: "modem >",
            on,
            start,
        },
        Tap {
            inner: writer,
            arrow: "host  >",
            on,
            start,
        },
    )
}

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    // clap prints help (exit 0) or what is wrong (exit 2) itself.
    let run = match args::Args::parse().check() {
        Ok(run) => Box::leak(Box::new(run)),
        Err(e) => {
            eprintln!("bc26: {e}");
            std::process::exit(2);
        }
    };
    let a = &run.args;
    let config = Config::new().command_timeout(embassy_time::Duration::from_micros(
        a.command_timeout.as_micros() as u64,
    ));
    // In --sim mode: the simulator and the broker, for the fault thread.
    let mut sim_parts: Option<(bc26_sim::SimHandle, Option<RestartableBroker>)> = None;
    // In --sim mode: its charge meter, printed at the end (power.rs).
    let mut meter: Option<power::Meter> = None;
    let state: &'static mut State = Box::leak(Box::new(State::new()));
    let (modem, host, port): (Modem<'static>, String, u16) = if let Some(path) = &a.serial {
        let (rx, tx) = match serial::open(path, a.baud) {
            Ok(halves) => halves,
            Err(e) => {
                out::error("serial", &e);
                std::process::exit(1);
            }
        };
        let (rx, tx) = tap(rx, tx, a.trace);
        let (modem, runner) = bc26_mqtt::new(state, rx, tx, config);
        spawner.spawn(serial_modem(runner).expect("one modem task"));
        (modem, a.host.clone().expect("checked"), a.port)
    } else {
        // The simulator, and an in-process broker unless --host names one.
        let (sim, HostSide { reader, writer }) = Sim::start(SimConfig::default());
        let restart = a
            .sim_fault
            .iter()
            .any(|f| matches!(f.kind, faults::Kind::BrokerRestart(_)));
        let mut restartable = None;
        let (host, port) = match &a.host {
            Some(h) => (h.clone(), a.port),
            None => {
                let b: &bc26_sim::broker::Broker = if restart {
                    // A broker of its own, which the fault thread stops and starts.
                    let Some(r) = bc26_sim::broker::restartable_broker() else {
                        eprintln!(
                            "bc26: --sim-fault broker-restart: no restartable broker (MQTT_HOST \
                             is set without MQTT_RESTART_PORT, MQTT_BROKER_STOP, MQTT_BROKER_START)"
                        );
                        std::process::exit(2);
                    };
                    restartable.insert(r)
                } else {
                    bc26_sim::broker::broker()
                };
                eprintln!(
                    "bc26: simulator, broker {} at {}:{}",
                    b.kind, b.host, b.port
                );
                if a.stdin.is_some() {
                    out::emit(&out::Ev::Broker {
                        host: &b.host,
                        port: b.port,
                        kind: b.kind,
                    });
                }
                (b.host.clone(), b.port)
            }
        };
        meter = Some(power::start(&sim, a.power));
        sim_parts = Some((sim, restartable));
        let (rx, tx) = tap(reader, writer, a.trace);
        let (modem, runner) = bc26_mqtt::new(state, rx, tx, config);
        spawner.spawn(sim_modem(runner).expect("one modem task"));
        (modem, host, port)
    };
    let ok = if a.stdin.is_some() {
        let first_online = match sim_parts {
            Some((sim, broker)) if !a.sim_fault.is_empty() => {
                let (tx, rx) = std::sync::mpsc::channel();
                faults::spawn(a.sim_fault.clone(), run.id.get(), sim, broker, rx);
                Some(tx)
            }
            other => {
                // Kept for the whole run.
                Box::leak(Box::new(other));
                None
            }
        };
        let host: &'static str = Box::leak(host.into_boxed_str());
        stream::stream(modem, run, host, port, first_online).await
    } else {
        Box::leak(Box::new(sim_parts));
        session::session(modem, run, &host, port).await
    };
    if let Some(m) = &meter {
        power::finish(m);
    }
    std::process::exit(if ok { 0 } else { 1 });
}
