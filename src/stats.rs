//! The counters ([`Stats`]) of what the driver dropped, discarded or
//! recovered from, and their shared cell. A counter changes only through
//! [`bump!`] (the cell's `bump`), which adds one, wrapping, or the cell's
//! `add` for a batch.

use core::cell::Cell;

use embassy_sync::blocking_mutex::Mutex as BlockingMutex;

use crate::sync::RawMutex;

/// Counters of what the driver dropped, discarded or recovered from. Read
/// them with [`Modem::stats`](crate::Modem::stats); nothing is dropped
/// silently. Every counter wraps at `u32::MAX` (compare differences).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct Stats {
    /// Events handed to the subscriptions (messages, link and reboot events).
    pub events_published: u32,
    /// Link or reboot events that found no subscription (or no room).
    pub events_dropped: u32,
    /// Messages not delivered: no subscription existed, the receive store was
    /// full, or a subscription's buffer was too small for one.
    pub messages_dropped: u32,
    /// Messages on a topic that matches none of the client's registered
    /// subscriptions (a supervisor registers its set): dropped.
    pub messages_filtered: u32,
    /// Deferred results no operation waited for (late after a timeout, for a
    /// cancelled operation, or for an operation the driver did not start).
    pub stale_results: u32,
    /// Lines that were neither a response nor a URC the driver knows
    /// (`+CEREG: 5`, garbage); dropped.
    pub unsolicited_lines: u32,
    /// `+QMTRECV`/`+QMTSTAT` lines that did not parse, or a received message
    /// the driver cannot keep (not UTF-8 topic, bad hex); dropped.
    pub malformed_urcs: u32,
    /// Lines longer than the ingress buffer; dropped.
    pub overflows: u32,
    /// `OK`/`ERROR`/`>` when no command waited for one; dropped.
    pub stray_responses: u32,
    /// Final answers and prompts that arrived for a command that had already
    /// failed (timed out, write error): discarded by the fence. The answers
    /// to the fence's own `AT` (and to wake-up `AT`s) count here too.
    pub late_answers: u32,
    /// Times the channel was re-synchronised (`AT` probe) after a failure.
    pub fences: u32,
    /// Incomplete frames given up after a quiet gap (a lost byte, a cut URC):
    /// their first line was dropped and the rest read again line by line.
    pub resyncs: u32,
    /// UART reads that failed or returned no bytes (each followed by a pause).
    pub read_errors: u32,
    /// UART writes that failed or timed out.
    pub write_errors: u32,
    /// Times the modem restarted (`RDY`, power-down lines).
    pub reboots: u32,
    /// Times the driver woke the module before a command (it may have been
    /// asleep, and answered a wake-up `AT`).
    pub wakes: u32,
    /// Wake-up `AT`s the module did not answer within `Config::wake_probe`
    /// (it was asleep: the bytes that wake its UART are lost).
    pub wake_probes_lost: u32,
    /// Power events a subscription never saw because a newer one of the same
    /// kind (PSM, signalling connection, registration) replaced it first.
    pub power_events_overwritten: u32,
}

/// The counters, shared.
pub(crate) struct StatsCell<M: RawMutex>(BlockingMutex<M, Cell<Stats>>);

impl<M: RawMutex> StatsCell<M> {
    pub(crate) const fn new() -> Self {
        Self(BlockingMutex::new(Cell::new(Stats {
            events_published: 0,
            events_dropped: 0,
            messages_dropped: 0,
            messages_filtered: 0,
            stale_results: 0,
            unsolicited_lines: 0,
            malformed_urcs: 0,
            overflows: 0,
            stray_responses: 0,
            late_answers: 0,
            fences: 0,
            resyncs: 0,
            read_errors: 0,
            write_errors: 0,
            reboots: 0,
            wakes: 0,
            wake_probes_lost: 0,
            power_events_overwritten: 0,
        })))
    }

    /// Adds one to the counter `counter` picks, wrapping: the one way a
    /// counter changes (through [`bump!`]).
    pub(crate) fn bump(&self, counter: impl FnOnce(&mut Stats) -> &mut u32) {
        self.add(counter, 1)
    }

    /// Adds `n` to the counter `counter` picks, wrapping (for counts that
    /// come in batches).
    pub(crate) fn add(&self, counter: impl FnOnce(&mut Stats) -> &mut u32, n: u32) {
        self.0.lock(|s| {
            let mut v = s.get();
            let c = counter(&mut v);
            *c = c.wrapping_add(n);
            s.set(v);
        })
    }

    pub(crate) fn get(&self) -> Stats {
        self.0.lock(Cell::get)
    }
}

/// Adds one to a counter, wrapping: `bump!(core.stats, overflows)`.
macro_rules! bump {
    ($stats:expr, $field:ident) => {
        $stats.bump(|s| &mut s.$field)
    };
}
pub(crate) use bump;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_wrap_instead_of_overflowing() {
        let s = StatsCell::<crate::sync::CriticalSectionRawMutex>::new();
        s.0.lock(|c| {
            c.set(Stats {
                stray_responses: u32::MAX,
                ..c.get()
            })
        });
        bump!(s, stray_responses);
        assert_eq!(s.get().stray_responses, 0);
    }
}
