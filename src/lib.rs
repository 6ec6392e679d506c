#![doc = include_str!("../docs/crate.md")]
#![no_std]
#![warn(missing_docs)]
#![deny(unsafe_code)]

#[cfg(test)]
extern crate std;

#[macro_use]
mod fmt;

mod channel;
pub mod commands;
mod config;
mod digest;
mod error;
mod hex;
mod runner;
mod state;
mod types;
pub mod urc;

pub use config::Config;
pub use error::{AtError, ConnackCode, Error, Field, ModemError, OpenError, Problem, Stage};
pub use runner::Runner;
pub use state::{State, Stats};
pub use types::{limits, ClientId, DataFormat, MqttVersion, QoS};
pub use urc::{Event, Grant, Granted, LinkClosedReason, Message};

mod client;
pub use client::{Events, Modem, MqttClient, Published};

/// Re-exported so that users name the same `atat` the driver uses.
pub use atat;

use atat::Ingress;
use digest::Bc26Digester;
use embedded_io_async::{Read, Write};
use state::Core;

/// Creates the driver in `state`: returns the [`Modem`] handle for
/// application tasks and the [`Runner`] to spawn, which owns the UART halves.
///
/// The `state` is used by one driver at a time; it must outlive both
/// (typically a `static` through `StaticCell`).
pub fn new<
    'a,
    R: Read,
    W: Write,
    const INGRESS: usize,
    const LINE: usize,
    const EVENTS: usize,
    const SUBSCRIBERS: usize,
    const INFLIGHT: usize,
>(
    state: &'a mut State<INGRESS, LINE, EVENTS, SUBSCRIBERS, INFLIGHT>,
    reader: R,
    writer: W,
    config: Config,
) -> (Modem<'a>, Runner<'a, R, W>) {
    let State {
        ingress,
        line,
        events,
        slots,
        shared,
        res_slot,
        urc,
    } = state;
    shared.config = config;
    let shared = &*shared;
    let core = Core {
        sh: shared,
        line: &*line,
        slots: slots.as_flattened(),
        events: &*events,
    };
    let digester = Bc26Digester::new(core, INGRESS);
    let ingress = Ingress::new(digester, ingress, res_slot, urc);
    (
        Modem { core },
        Runner::new(reader, writer, ingress, res_slot, core),
    )
}
