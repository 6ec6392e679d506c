//! The module's power as the driver knows it: the one owner of whether the
//! module may be asleep (its `AT+QSCLK` setting, the last command line it
//! took, `AT+QRELLOCK`, `+QNBIOTEVENT: "ENTER PSM"`), of whether the power
//! URCs are switched on, and of the latest power event of each kind.
//!
//! - Handle side: [`Power::set_sleep`], [`Power::released`],
//!   [`Power::set_reports`], [`Power::status`], and each subscription's
//!   [`PowerSub`].
//! - Runner side: [`Power::may_sleep`], [`Power::took_line`],
//!   [`Power::lost_line`].
//! - Router side: [`Power::reports`], [`Power::push`], [`Power::rebooted`].
//!
//! Power events do not go through the receive store's notice channel, which
//! a burst of messages may fill: each kind (PSM, signalling connection,
//! registration) has a latest-value cell here. Every subscription keeps how
//! many writes of each cell it has seen, reads the changed cells oldest
//! first, ahead of the messages waiting in the store, and counts the values
//! it never saw because a newer one of the same kind replaced them
//! ([`Stats::power_events_overwritten`](crate::Stats::power_events_overwritten)).

use core::cell::RefCell;
use core::future::poll_fn;
use core::task::Poll;

use embassy_sync::blocking_mutex::Mutex as BlockingMutex;
use embassy_sync::waitqueue::MultiWakerRegistration;
use embassy_time::{Duration, Instant};

use crate::commands::power::parse_registration;
use crate::commands::{PsmTimers, RegistrationTimers, SleepMode};
use crate::event::Event;
use crate::stats::{bump, StatsCell};
use crate::sync::RawMutex;
use crate::urc::parse_int;

/// One power URC, as the router hands it over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PowerNote {
    /// `+QNBIOTEVENT: "ENTER PSM"` (true) or `"EXIT PSM"`.
    Psm(bool),
    /// `+CSCON: <mode>`.
    Signalling(bool),
    /// `+CEREG: <stat>[,...]`.
    Registration(RegistrationTimers),
}

impl PowerNote {
    fn kind(&self) -> usize {
        match self {
            PowerNote::Psm(_) => 0,
            PowerNote::Signalling(_) => 1,
            PowerNote::Registration(_) => 2,
        }
    }

    fn event(self) -> Event<'static> {
        match self {
            PowerNote::Psm(entered) => Event::Psm { entered },
            PowerNote::Signalling(connected) => Event::Signalling { connected },
            PowerNote::Registration(r) => Event::Registration {
                stat: r.stat,
                psm: r.psm,
            },
        }
    }
}

/// A power URC in its unsolicited shape: `+QNBIOTEVENT: "ENTER PSM"`/`"EXIT
/// PSM"`, `+CSCON: <mode>` (one field; the read answer has two), or
/// `+CEREG: <stat>[,...]` (its second field, if any, is not a bare number:
/// the read answer's is the status after `<n>`). `None` for anything else.
pub(crate) fn parse_power(prefix: &[u8], body: &[u8]) -> Option<PowerNote> {
    match prefix {
        b"+QNBIOTEVENT" => match body.trim_ascii() {
            b"\"ENTER PSM\"" => Some(PowerNote::Psm(true)),
            b"\"EXIT PSM\"" => Some(PowerNote::Psm(false)),
            _ => None,
        },
        b"+CSCON" => match parse_int(body)? {
            0 => Some(PowerNote::Signalling(false)),
            1 => Some(PowerNote::Signalling(true)),
            _ => None,
        },
        b"+CEREG" => {
            let second = body.split(|&b| b == b',').nth(1);
            if second.and_then(parse_int).is_some() {
                return None;
            }
            parse_registration(body).map(PowerNote::Registration)
        }
        _ => None,
    }
}

const KINDS: usize = 3;

/// The latest value of one kind of power event.
#[derive(Clone, Copy)]
struct Cell {
    /// Times it was written (wrapping).
    writes: u32,
    /// The event sequence number of its last write (to read cells oldest first).
    stamp: u32,
    value: Option<PowerNote>,
}

struct Inner {
    /// The module's `AT+QSCLK` as far as the driver knows.
    sleep: SleepMode,
    /// When the module took its last command line (its sleep lock started at
    /// or after this instant).
    last_line: Option<Instant>,
    /// The module may be asleep whatever the time says (`AT+QRELLOCK`,
    /// `ENTER PSM`, a line it did not answer).
    asleep: bool,
    /// The power URCs are on (the driver switched them on).
    reports: bool,
    /// Power events so far (wrapping).
    seq: u32,
    cells: [Cell; KINDS],
    /// The PSM timers the network granted, as the last `+CEREG` of a
    /// registered module said (without timers: none granted).
    granted: Option<PsmTimers>,
    /// The subscriptions waiting for a power event.
    wakers: MultiWakerRegistration<4>,
}

/// The owner's memory, inside the [`State`](crate::State).
pub(crate) struct PowerState<M: RawMutex> {
    inner: BlockingMutex<M, RefCell<Inner>>,
}

impl<M: RawMutex> PowerState<M> {
    pub(crate) const fn new() -> Self {
        const EMPTY: Cell = Cell {
            writes: 0,
            stamp: 0,
            value: None,
        };
        Self {
            inner: BlockingMutex::new(RefCell::new(Inner {
                sleep: SleepMode::Off,
                last_line: None,
                asleep: false,
                reports: false,
                seq: 0,
                cells: [EMPTY; KINDS],
                granted: None,
                wakers: MultiWakerRegistration::new(),
            })),
        }
    }
}

/// What the driver knows of the module's power now
/// ([`Modem::power`](crate::Modem::power)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct PowerStatus {
    /// The module's sleep setting as the driver last set it (or
    /// [`Config::module_sleeps`](crate::Config::module_sleeps) after a restart).
    pub sleep: SleepMode,
    /// The module may be asleep now: the next command is preceded by a wake-up.
    pub may_be_asleep: bool,
    /// The power URCs are on ([`Modem::power_reports`](crate::Modem::power_reports)).
    pub reports: bool,
    /// The modem is in PSM, as the last `+QNBIOTEVENT` said (`None`: none yet).
    pub in_psm: Option<bool>,
    /// The RRC connection is up, as the last `+CSCON` said.
    pub connected: Option<bool>,
    /// The PSM timers the network granted, as the last `+CEREG` of a
    /// registered module said (`None`: none seen, or PSM not granted).
    pub granted: Option<PsmTimers>,
}

/// The power owner, seen from handles, runner and router. `Copy`.
pub(crate) struct Power<'a, M: RawMutex> {
    st: &'a PowerState<M>,
    stats: &'a StatsCell<M>,
}

impl<M: RawMutex> Clone for Power<'_, M> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<M: RawMutex> Copy for Power<'_, M> {}

impl<'a, M: RawMutex> Power<'a, M> {
    pub(crate) fn new(st: &'a PowerState<M>, stats: &'a StatsCell<M>) -> Self {
        Self { st, stats }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        self.st.inner.lock(|i| f(&mut i.borrow_mut()))
    }

    // ------------------------------------------------------------ handle side

    /// The module took `AT+QSCLK=<n>`.
    pub(crate) fn set_sleep(&self, mode: SleepMode) {
        self.with(|i| i.sleep = mode)
    }

    /// The module took `AT+QRELLOCK`: it may sleep from now on.
    pub(crate) fn released(&self) {
        self.with(|i| i.asleep = true)
    }

    /// The power URCs were switched on or off.
    pub(crate) fn set_reports(&self, on: bool) {
        self.with(|i| i.reports = on)
    }

    /// What the driver knows now.
    pub(crate) fn status(&self, now: Instant, after: Duration) -> PowerStatus {
        let may = self.may_sleep(now, after);
        self.with(|i| {
            let latest = |k: usize| i.cells[k].value;
            PowerStatus {
                sleep: i.sleep,
                may_be_asleep: may,
                reports: i.reports,
                in_psm: match latest(0) {
                    Some(PowerNote::Psm(p)) => Some(p),
                    _ => None,
                },
                connected: match latest(1) {
                    Some(PowerNote::Signalling(c)) => Some(c),
                    _ => None,
                },
                granted: i.granted,
            }
        })
    }

    /// A subscription to power events from now on.
    pub(crate) fn subscribe(&self) -> PowerSub<'a, M> {
        let seen = self.with(|i| i.cells.map(|c| c.writes));
        PowerSub { power: *self, seen }
    }

    // ------------------------------------------------------------ runner side

    /// True when the module may be asleep at `now`: sleep is on, and it was
    /// told it may sleep, or `after` has passed since it took a line.
    pub(crate) fn may_sleep(&self, now: Instant, after: Duration) -> bool {
        self.with(|i| {
            i.sleep != SleepMode::Off && (i.asleep || i.last_line.is_none_or(|t| now >= t + after))
        })
    }

    /// The module answered a line written (first) at `at`: its sleep lock
    /// runs from then.
    pub(crate) fn took_line(&self, at: Instant) {
        self.with(|i| {
            i.last_line = Some(at);
            i.asleep = false;
        })
    }

    /// A line got no answer: if the module may sleep, it may be asleep.
    pub(crate) fn lost_line(&self) {
        self.with(|i| i.asleep = true)
    }

    // ------------------------------------------------------------ router side

    /// True when the driver switched the power URCs on: only then are
    /// `+CSCON`, `+QNBIOTEVENT` and `+CEREG` lines events.
    pub(crate) fn reports(&self) -> bool {
        self.with(|i| i.reports)
    }

    /// A power URC: the latest of its kind, for every subscription.
    pub(crate) fn push(&self, note: PowerNote) {
        self.with(|i| {
            match note {
                PowerNote::Psm(true) => i.asleep = true,
                // Registered: the line has the timers, or PSM is not granted.
                PowerNote::Registration(r) if matches!(r.stat, 1 | 5) => i.granted = r.psm,
                _ => {}
            }
            i.seq = i.seq.wrapping_add(1);
            let c = &mut i.cells[note.kind()];
            c.writes = c.writes.wrapping_add(1);
            c.stamp = i.seq;
            c.value = Some(note);
            i.wakers.wake();
        });
        bump!(self.stats, events_published);
    }

    /// The module restarted: its sleep setting is `sleep` again and its
    /// URCs are off; it is awake (it just said `RDY`).
    pub(crate) fn rebooted(&self, sleep: SleepMode, at: Instant) {
        self.with(|i| {
            i.sleep = sleep;
            i.reports = false;
            i.asleep = false;
            i.last_line = Some(at);
        })
    }
}

/// One subscription's view of the power events.
pub(crate) struct PowerSub<'a, M: RawMutex> {
    power: Power<'a, M>,
    /// Writes of each cell this subscription has seen.
    seen: [u32; KINDS],
}

impl<M: RawMutex> PowerSub<'_, M> {
    /// The oldest power event this subscription has not seen, if any.
    pub(crate) fn take(&mut self) -> Option<Event<'static>> {
        let seen = &mut self.seen;
        let (note, lost) = self.power.with(|i| {
            let seq = i.seq;
            let k = (0..KINDS)
                .filter(|&k| i.cells[k].writes != seen[k])
                .max_by_key(|&k| seq.wrapping_sub(i.cells[k].stamp))?;
            let c = i.cells[k];
            let lost = c.writes.wrapping_sub(seen[k]).wrapping_sub(1);
            seen[k] = c.writes;
            Some((c.value?, lost))
        })?;
        if lost > 0 {
            self.power
                .stats
                .add(|s| &mut s.power_events_overwritten, lost);
        }
        Some(note.event())
    }

    /// Waits for a power event this subscription has not seen, and takes it.
    pub(crate) async fn next(&mut self) -> Event<'static> {
        poll_fn(|cx| {
            if let Some(e) = self.take() {
                return Poll::Ready(e);
            }
            self.power.with(|i| i.wakers.register(cx.waker()));
            // A push between `take` and `register` woke nobody: look again.
            match self.take() {
                Some(e) => Poll::Ready(e),
                None => Poll::Pending,
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_urcs_parse_and_read_answers_of_the_same_prefix_do_not() {
        let p = |line: &[u8]| {
            let (prefix, body) = crate::urc::split_prefix(line).unwrap();
            parse_power(prefix, body)
        };
        assert_eq!(
            p(b"+QNBIOTEVENT: \"ENTER PSM\""),
            Some(PowerNote::Psm(true))
        );
        assert_eq!(
            p(b"+QNBIOTEVENT: \"EXIT PSM\""),
            Some(PowerNote::Psm(false))
        );
        assert_eq!(p(b"+QNBIOTEVENT: \"ENTER DEEPSLEEP\""), None);
        assert_eq!(p(b"+CSCON: 1"), Some(PowerNote::Signalling(true)));
        assert_eq!(p(b"+CSCON: 0"), Some(PowerNote::Signalling(false)));
        // `AT+CSCON?` answers `<n>,<mode>`.
        assert_eq!(p(b"+CSCON: 1,0"), None);
        let Some(PowerNote::Registration(r)) =
            p(b"+CEREG: 1,\"1A2D\",\"0CF5E9A1\",9,,,\"00000101\",\"00100001\"")
        else {
            panic!("not a registration");
        };
        let t = r.psm.unwrap();
        assert_eq!(
            (r.stat, t.active_time.secs(), t.periodic_tau.secs()),
            (1, Some(10), Some(3600))
        );
        assert!(
            matches!(p(b"+CEREG: 2"), Some(PowerNote::Registration(r)) if r.stat == 2 && r.psm.is_none())
        );
        // `AT+CEREG?` answers `<n>,<stat>,...`.
        assert_eq!(
            p(b"+CEREG: 4,1,\"1A2D\",\"0CF5E9A1\",9,,,\"00000101\",\"00100001\""),
            None
        );
        assert_eq!(p(b"+CEREG: 0,1"), None);
        assert_eq!(p(b"+QMTSTAT: 0,1"), None);
    }
}
