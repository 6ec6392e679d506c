//! The driver's ground floor: the lock every owner's state is built on. It
//! imports none of the owners, so that `state.rs` can compose them without
//! an import circle.

use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;

/// The raw mutex under every lock of the driver: its blocking mutexes (held
/// for a few instructions, never across an await), signals, the AT lock and
/// the notice channel.
pub(crate) type Cs = CriticalSectionRawMutex;
