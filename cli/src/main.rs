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
mod out;
mod session;

use std::time::Instant;

use bc26_host::serial;
use bc26_host::tap::Tap;
use bc26_mqtt::{Config, Modem, Runner, State};
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
    let config = Config::new();
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
        Box::leak(Box::new(sim));
        let (host, port) = match &a.host {
            Some(h) => (h.clone(), a.port),
            None => {
                let b = bc26_sim::broker::broker();
                eprintln!(
                    "bc26: simulator, broker {} at {}:{}",
                    b.kind, b.host, b.port
                );
                (b.host.clone(), b.port)
            }
        };
        let (rx, tx) = tap(reader, writer, a.trace);
        let (modem, runner) = bc26_mqtt::new(state, rx, tx, config);
        spawner.spawn(sim_modem(runner).expect("one modem task"));
        (modem, host, port)
    };
    let ok = session::session(modem, run, &host, port).await;
    std::process::exit(if ok { 0 } else { 1 });
}
