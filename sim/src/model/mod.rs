//! The BC26 model: the simulated modem as a state machine, with no thread, socket or clock
//! of its own (sans-I/O). [`Modem`] takes bytes from the host, network events and the
//! passing of time, each at a [`Time`] the caller gives, and produces bytes to the host
//! ([`ToHost`]), network actions ([`NetAction`]: TCP connect, send encoded MQTT, close) and
//! the time it next needs to be woken ([`Modem::poll_at`]).
//!
//! The threaded simulator ([`crate::Sim`]) is a shell around it: real time, a pipe or a
//! pseudo-terminal paced like a UART, TCP to a real broker. A virtual-time world can drive
//! the same model with its own clock, UART and broker model, deterministically.
//!
//! A caller's loop, in short:
//!
//! ```text
//! at each input (host bytes complete at t / a network event at t / t = poll_at()):
//!     modem.host_bytes(t, bytes) | modem.network(t, ev) | modem.advance(t)
//!     while let Some(out) = modem.poll_host() { deliver to the host: Echo/Message bytes, or Discard }
//!     while let Some(act) = modem.poll_net()  { Connect / Send / Close on the network }
//!     sleep until the next input or modem.poll_at()
//! ```
//!
//! Inside, each state has one owner that changes it through named methods: `serial.rs` (the
//! UART and AT layer: echo, line editing, data mode, output, deferred results), `client.rs`
//! (one MQTT client: its options from `qmtcfg.rs`, its link, its operations, its timers),
//! `network.rs` (registration), `power/` (boot, sleep, the radio's RRC states, PSM and eDRX,
//! the charge meter), `carrier.rs` (the operator's NAT, downlink waiting for a module that
//! cannot be reached). `command.rs`
//! parses a line into a typed command; `modem.rs` runs it on its owner. `packet.rs` holds
//! the MQTT packets as values, which the clients produce and consume and `mqtt.rs` encodes
//! and decodes: neither of those two imports the other.

mod at;
mod carrier;
mod client;
mod command;
mod effects;
mod link;
mod modem;
mod mqtt;
mod network;
mod pacer;
mod packet;
mod power;
mod qmtcfg;
mod serial;
mod time;

pub use client::ClientState;
pub use link::{ConnectError, LinkId, NetAction, NetEvent};
pub use modem::Modem;
pub use pacer::Pacer;
pub use power::{Charge, ChargeReport, PowerCounters, PowerState, PowerTransition, StateCharge};
pub use serial::ToHost;
pub use time::Time;

#[cfg(test)]
mod tests;
