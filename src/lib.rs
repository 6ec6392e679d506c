#![doc = include_str!("../docs/crate.md")]
#![no_std]
#![warn(missing_docs)]
#![deny(unsafe_code)]

#[cfg(test)]
extern crate std;

#[macro_use]
mod fmt;

mod channel;
mod client_table;
pub mod commands;
mod config;
mod digest;
mod error;
mod event;
mod hex;
mod inbox;
mod modem;
mod mqtt_client;
mod power;
mod recv;
mod ring;
mod router;
mod runner;
mod rx_clock;
#[cfg(bc26_type_sizes)]
#[doc(hidden)]
pub mod size_probe;
mod state;
mod stats;
pub mod supervisor;
mod sync;
mod timers;
mod types;
mod urc;
mod wait;

pub use config::Config;
#[cfg(feature = "flash-outbox")]
pub use error::FlashError;
pub use error::{
    AtError, ConfigError, ConnackCode, Error, Field, LinkClosedReason, ModemError, OpenError,
    Problem, Setting, Stage,
};
pub use event::{Event, Grant, Granted, Message, MAX_SUB_TOPICS, MESSAGE_MAX};
pub use modem::{Events, Modem, PowerRequest};
pub use mqtt_client::{MqttClient, PendingPublish, Published};
pub use power::PowerStatus;
pub use runner::{NoWakePin, Runner, WakePin};
pub use state::State;
pub use stats::Stats;
pub use types::{limits, topic_matches, ClientId, DataFormat, MqttVersion, QoS, Subscription};

/// Re-exported so that users name the same `atat` the driver uses.
pub use atat;
/// Re-exported so that users name the same `embassy-sync` the driver uses
/// (its raw mutexes: the lock `M` of [`State`] and the handles).
pub use embassy_sync;

use atat::Ingress;
use digest::Bc26Digester;
use embedded_io_async::{Read, Write};
use sync::RawMutex;

/// Creates the driver in `state`: returns the [`Modem`] handle for
/// application tasks and the [`Runner`] to spawn, which owns the UART halves.
///
/// The `state` is used by one driver at a time; it must outlive both
/// (typically a `static` through `StaticCell`).
///
/// # Errors
///
/// A `config` whose values contradict each other ([`Config::validate`]; the
/// checks are listed on [`Config`]) is refused with its [`ConfigError`]:
/// nothing is created and the `state` is left as it was.
// The pair the callers destructure; an alias would only hide it.
#[allow(clippy::type_complexity)]
pub fn new<
    'a,
    R: Read,
    W: Write,
    const INGRESS: usize,
    const LINE: usize,
    const INBOX: usize,
    const EVENTS: usize,
    const SUBSCRIBERS: usize,
    const INFLIGHT: usize,
    M: RawMutex,
>(
    state: &'a mut State<INGRESS, LINE, INBOX, EVENTS, SUBSCRIBERS, INFLIGHT, M>,
    reader: R,
    writer: W,
    config: Config,
) -> Result<(Modem<'a, M>, Runner<'a, R, W, M>), ConfigError> {
    config.check()?;
    let (core, ingress, res_slot, urc) = state.split(config);
    let digester = Bc26Digester::new(core, INGRESS);
    let ingress = Ingress::new(digester, ingress, res_slot, urc);
    Ok((
        Modem { core },
        Runner::new(reader, writer, ingress, INGRESS, core),
    ))
}
