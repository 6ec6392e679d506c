//! The one clock of a world: `embassy-time`'s driver for this process, which moves only
//! when the world moves it, and jumps over idle periods.
//!
//! Time and timers are per thread, so that tests running worlds in parallel threads do not
//! see each other's time. A tick is a microsecond (embassy-time's default rate), the same
//! unit as the simulator's `Time::from_micros`.

use std::cell::{Cell, RefCell};
use std::task::Waker;

use bc26_sim::model::Time;

struct VirtualClock;

embassy_time_driver::time_driver_impl!(static CLOCK: VirtualClock = VirtualClock);

thread_local! {
    static NOW: Cell<u64> = const { Cell::new(0) };
    /// Pending timers: (expiry in ticks, waker), one entry per waker with the earliest
    /// expiry asked for (as embassy's queues keep them; a task woken early looks at its
    /// timers again and asks anew).
    static TIMERS: RefCell<Vec<(u64, Waker)>> = const { RefCell::new(Vec::new()) };
}

impl embassy_time_driver::Driver for VirtualClock {
    fn now(&self) -> u64 {
        NOW.with(Cell::get)
    }

    fn schedule_wake(&self, at: u64, waker: &Waker) {
        if at <= self.now() {
            waker.wake_by_ref();
            return;
        }
        TIMERS.with(|t| {
            let mut t = t.borrow_mut();
            match t.iter_mut().find(|(_, w)| w.will_wake(waker)) {
                Some(e) => e.0 = e.0.min(at),
                None => t.push((at, waker.clone())),
            }
        });
    }
}

/// Now, in ticks (microseconds).
pub(crate) fn ticks() -> u64 {
    NOW.with(Cell::get)
}

/// Now, as the simulator's time.
pub(crate) fn now() -> Time {
    Time::from_micros(ticks())
}

/// The earliest pending timer.
pub(crate) fn next_timer() -> Option<Time> {
    TIMERS.with(|t| t.borrow().iter().map(|e| e.0).min().map(Time::from_micros))
}

/// Moves the clock to `to` (never back) and wakes the timers due by then.
pub(crate) fn advance_to(to: Time) {
    let to = to.as_micros().max(ticks());
    NOW.with(|n| n.set(to));
    let due: Vec<Waker> = TIMERS.with(|t| {
        let mut t = t.borrow_mut();
        let mut due = Vec::new();
        t.retain(|(at, w)| {
            let keep = *at > to;
            if !keep {
                due.push(w.clone());
            }
            keep
        });
        due
    });
    for w in due {
        w.wake();
    }
}

/// Back to zero, no timer (the start of a run).
pub(crate) fn reset() {
    NOW.with(|n| n.set(0));
    TIMERS.with(|t| t.borrow_mut().clear());
}
