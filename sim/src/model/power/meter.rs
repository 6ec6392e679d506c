//! The charge meter: the module's current per power state, integrated over the time spent in
//! each state. Exact and cheap: a state change adds `current x duration` (nanoamperes times
//! nanoseconds, in integers) to that state's account, and nothing happens between changes.
//! Only this file changes the meter's fields.

use std::time::Duration;

use crate::config::Current;
use crate::model::time::Time;

/// What the module is doing, as far as its current goes (see `docs/power-model.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PowerState {
    /// Deep sleep: the modem in PSM, the processor off, only the RTC running; the UART is
    /// dead (only PSM_EINT or the periodic TAU wake the module).
    DeepSleep,
    /// Light sleep with the modem in PSM (deep sleep not allowed: `AT+QSCLK=2`, or a TCP
    /// link open); the UART wakes on a byte, losing the first ones.
    LightSleepPsm,
    /// Light sleep, the modem idle with eDRX paging.
    LightSleepEdrx,
    /// Light sleep, the modem idle with DRX paging.
    LightSleepDrx,
    /// The processor awake (sleep off, within an AT command's sleep lock, waking up, or
    /// booting), the radio idle or in PSM.
    Awake,
    /// RRC connected, not transmitting.
    Connected,
    /// Transmitting: an RRC connection set-up or an uplink packet.
    Transmit,
}

impl PowerState {
    /// Every state, in the order of [`ChargeReport::states`].
    pub const ALL: [PowerState; 7] = [
        PowerState::DeepSleep,
        PowerState::LightSleepPsm,
        PowerState::LightSleepEdrx,
        PowerState::LightSleepDrx,
        PowerState::Awake,
        PowerState::Connected,
        PowerState::Transmit,
    ];

    /// Its name in snake case (`"light_sleep_psm"`), for logs and JSON.
    pub fn name(self) -> &'static str {
        match self {
            PowerState::DeepSleep => "deep_sleep",
            PowerState::LightSleepPsm => "light_sleep_psm",
            PowerState::LightSleepEdrx => "light_sleep_edrx",
            PowerState::LightSleepDrx => "light_sleep_drx",
            PowerState::Awake => "awake",
            PowerState::Connected => "connected",
            PowerState::Transmit => "transmit",
        }
    }

    /// The UART sleeps: bytes from the host are lost (and, in light sleep, wake it).
    pub fn uart_asleep(self) -> bool {
        matches!(
            self,
            PowerState::DeepSleep
                | PowerState::LightSleepPsm
                | PowerState::LightSleepEdrx
                | PowerState::LightSleepDrx
        )
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// An electric charge, exact: a whole number of attocoulombs (1 nA for 1 ns).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Charge(u128);

impl Charge {
    /// `current` for `d`.
    pub fn of(current: Current, d: Duration) -> Charge {
        Charge(u128::from(current.nano_amps()).saturating_mul(d.as_nanos()))
    }

    /// From attocoulombs.
    pub const fn from_attocoulombs(ac: u128) -> Charge {
        Charge(ac)
    }

    /// In attocoulombs (exact).
    pub const fn attocoulombs(self) -> u128 {
        self.0
    }

    /// In microcoulombs (rounded down).
    pub const fn microcoulombs(self) -> u128 {
        self.0 / 1_000_000_000_000
    }

    /// In millicoulombs, as a float (for reports).
    pub fn millicoulombs(self) -> f64 {
        self.0 as f64 / 1e15
    }

    /// The sum (saturating).
    pub fn plus(self, other: Charge) -> Charge {
        Charge(self.0.saturating_add(other.0))
    }
}

/// The time spent in one state and the charge drawn in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateCharge {
    /// The state.
    pub state: PowerState,
    /// Time spent in it.
    pub time: Duration,
    /// Charge drawn in it.
    pub charge: Charge,
}

/// What the power model counted (since the model was made; a reboot does not reset them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PowerCounters {
    /// RRC connections set up (uplink or paging from idle or PSM, periodic TAU, attach).
    pub rrc_setups: u64,
    /// Uplink packets (TCP connects, segments, closes) that were transmitted.
    pub uplink_packets: u64,
    /// Times the modem entered PSM.
    pub psm_entries: u64,
    /// Periodic tracking area updates (T3412 expired) and TAUs for a new PSM/eDRX request.
    pub taus: u64,
    /// Times the UART woke the module from light sleep.
    pub uart_wakes: u64,
    /// Times PSM_EINT woke the module.
    pub eint_wakes: u64,
    /// Bytes from the host lost by a sleeping (or waking) UART.
    pub host_bytes_lost: u64,
    /// Network events (downlink bytes, a peer's close) that waited for an unreachable module.
    pub downlink_held: u64,
    /// Links the operator's NAT forgot (idle too long).
    pub nat_expired: u64,
}

/// The charge meter's reading at a time: per state and in total, with the power counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeReport {
    /// The time of the reading (the model's latest time).
    pub at: Time,
    /// The supply voltage the energy assumes, in millivolts.
    pub supply_mv: u32,
    /// One entry per state, in the order of [`PowerState::ALL`].
    pub states: [StateCharge; 7],
    /// What the model counted.
    pub counters: PowerCounters,
}

impl ChargeReport {
    /// The total charge.
    pub fn total(&self) -> Charge {
        self.states
            .iter()
            .fold(Charge::default(), |a, s| a.plus(s.charge))
    }

    /// The entry of state `s`.
    pub fn state(&self, s: PowerState) -> StateCharge {
        self.states[s.index()]
    }

    /// The energy at the supply voltage, in millijoules.
    pub fn energy_mj(&self) -> f64 {
        self.total().millicoulombs() * f64::from(self.supply_mv) / 1000.0
    }

    /// The average current since the model's start, in microamperes.
    pub fn average_ua(&self) -> f64 {
        let secs = self.at.since_epoch().as_secs_f64();
        if secs == 0.0 {
            0.0
        } else {
            self.total().millicoulombs() * 1000.0 / secs
        }
    }
}

/// A change of power state, for a log of what happened (`Modem::poll_power`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PowerTransition {
    /// When.
    pub at: Time,
    /// The state entered.
    pub state: PowerState,
}

#[derive(Debug, Clone)]
pub(crate) struct Meter {
    state: PowerState,
    current: Current,
    since: Time,
    acc: [(Duration, Charge); 7],
}

impl Meter {
    pub(crate) fn new(t: Time, state: PowerState, current: Current) -> Meter {
        Meter {
            state,
            current,
            since: t,
            acc: [(Duration::ZERO, Charge::default()); 7],
        }
    }

    pub(crate) fn state(&self) -> PowerState {
        self.state
    }

    /// From `t` on, the module draws `current` in `state` (no-op when nothing changes).
    /// Returns whether the state changed.
    pub(crate) fn switch(&mut self, t: Time, state: PowerState, current: Current) -> bool {
        if state == self.state && current == self.current {
            return false;
        }
        self.close(t);
        let changed = state != self.state;
        self.state = state;
        self.current = current;
        changed
    }

    /// Account for the time from `since` to `t`.
    fn close(&mut self, t: Time) {
        let d = t.saturating_since(self.since);
        let e = &mut self.acc[self.state.index()];
        e.0 = e.0.saturating_add(d);
        e.1 = e.1.plus(Charge::of(self.current, d));
        self.since = self.since.max(t);
    }

    /// Every state's time and charge up to `now`.
    pub(crate) fn read(&self, now: Time) -> [StateCharge; 7] {
        let mut m = self.clone();
        m.close(now);
        PowerState::ALL.map(|s| StateCharge {
            state: s,
            time: m.acc[s.index()].0,
            charge: m.acc[s.index()].1,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_meter_adds_current_times_time_per_state_exactly() {
        let ms = Time::from_millis;
        let mut m = Meter::new(Time::ZERO, PowerState::Awake, Current::micro_amps(5_100));
        assert!(!m.switch(ms(10), PowerState::Awake, Current::micro_amps(5_100)));
        assert!(m.switch(ms(1_000), PowerState::Transmit, Current::milli_amps(100)));
        assert!(m.switch(
            ms(3_500),
            PowerState::Connected,
            Current::micro_amps(15_500)
        ));
        // Same state, another current: accounted, but not a change of state.
        assert!(!m.switch(
            ms(4_000),
            PowerState::Connected,
            Current::micro_amps(15_000)
        ));
        let r = m.read(ms(5_000));
        // 5.1 mA x 1 s = 5.1 mC = 5.1e15 aC; 100 mA x 2.5 s = 250 mC; 15.5 mA x 0.5 s + 15 mA x 1 s.
        assert_eq!(
            r[4].charge,
            Charge::from_attocoulombs(5_100_000_000_000_000)
        );
        assert_eq!(
            r[6].charge,
            Charge::from_attocoulombs(250_000_000_000_000_000)
        );
        assert_eq!(
            r[5].charge,
            Charge::from_attocoulombs(7_750_000_000_000_000 + 15_000_000_000_000_000)
        );
        assert_eq!(r[5].time, Duration::from_millis(1_500));
        // Reading does not change the meter.
        assert_eq!(m.read(ms(5_000)), r);
    }
}
