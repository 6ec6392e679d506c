//! The module's power: today its boot after a restart (`SimHandle::reboot`): for
//! `SimConfig::boot_time` it ignores the host and sends nothing, then `RDY`.
//!
//! This is the owner the power model of PSM and eDRX will grow in (radio states, the
//! network's inactivity timer, a UART that sleeps and drops the bytes that wake it, the
//! charge meter): it sees every instant the modem is given ([`Power::tick`]) and every byte
//! from the host before the AT layer does ([`Power::admit`]), and says when it next needs to
//! be woken ([`Power::next_deadline`]). Only this file changes it.

use std::time::Duration;

use crate::model::time::Time;

#[derive(Debug)]
pub(crate) struct Power {
    boot_time: Duration,
    /// Booting until then.
    boot_until: Option<Time>,
}

/// What passing time did to the power state.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PowerEvent {
    /// The boot is over: the module says `RDY`.
    Ready,
}

impl Power {
    pub(crate) fn new(boot_time: Duration) -> Self {
        Power {
            boot_time,
            boot_until: None,
        }
    }

    /// The module restarts at `now`.
    pub(crate) fn reboot(&mut self, now: Time) {
        self.boot_until = Some(now + self.boot_time);
    }

    pub(crate) fn booting(&self) -> bool {
        self.boot_until.is_some()
    }

    /// The bytes of `bytes` that the module takes at `now` (a suffix: none while booting).
    pub(crate) fn admit<'b>(&self, _now: Time, bytes: &'b [u8]) -> &'b [u8] {
        if self.booting() {
            &[]
        } else {
            bytes
        }
    }

    /// Time has come to `now`.
    pub(crate) fn tick(&mut self, now: Time) -> Option<PowerEvent> {
        if self.boot_until.is_some_and(|t| now >= t) {
            self.boot_until = None;
            return Some(PowerEvent::Ready);
        }
        None
    }

    pub(crate) fn next_deadline(&self) -> Option<Time> {
        self.boot_until
    }
}
