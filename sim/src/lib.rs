//! `bc26-sim`: a host-side simulator of the Quectel BC26 NB-IoT modem's MQTT AT commands
//! (`AT+QMTCFG`, `AT+QMTOPEN`, `AT+QMTCLOSE`, `AT+QMTCONN`, `AT+QMTDISC`, `AT+QMTSUB`,
//! `AT+QMTUNS`, `AT+QMTPUB`, URCs `+QMTRECV` and `+QMTSTAT`), written from the AT reference
//! alone, with real MQTT (TCP) underneath.
//!
//! The modem itself is [`model::Modem`], a state machine with no thread, socket or clock of
//! its own, which a caller drives with bytes, network events and time. [`Sim`] runs it in
//! real time behind one of two transports:
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

#![forbid(unsafe_code)]

#[cfg(feature = "broker")]
pub mod broker;
pub mod broker_model;
mod config;
pub mod model;
mod shell;

pub use config::{
    Chunking, Current, Currents, EdrxGrant, NetworkPolicy, Poison, PoisonAnswer, PowerConfig,
    PsmGrant, SimConfig, SimFaults, Wedge,
};
pub use model::ClientState;
pub use shell::handle::{HostSide, PowerProbe, Sim, SimHandle};
pub use shell::pipe::{SimReader, SimWriter};
