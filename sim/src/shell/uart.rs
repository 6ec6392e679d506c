//! The timing of one direction of an 8N1 UART (10 bit times per byte), byte by byte.
//!
//! A byte handed to the UART at `q` (the moment it was written or queued) goes on the wire
//! at once if the line is idle then, else right after the byte before it: byte `k` of a
//! continuous stream that started at `t0` is complete at `t0 + (k + 1) * 10 / baud`. The
//! schedule is absolute (computed from `t0`, not from the moment a thread woke up), so the
//! scheduler's lateness never accumulates: a late wake-up delivers every byte complete by
//! then, and the next bytes are on time again. Each byte is delivered on its own schedule:
//! nothing completed is held back waiting for the bytes after it.

use std::time::{Duration, Instant};

/// Timer slack of the pacing threads: Linux wakes a sleeping thread up to its slack (50 us
/// by default) after the deadline, to batch wake-ups. A byte at 115200 baud takes 87 us, so
/// the threads that deliver bytes on time ask for 1 ns (the kernel's hrtimers then wake them
/// within a few microseconds of the deadline when a core is free).
pub(crate) fn precise_timers() {
    // Best effort: without it the pacing is only less precise.
    let _ = nix::sys::prctl::set_timerslack(1);
}

/// Sleep until `t` (std has no stable `sleep_until`).
pub(crate) fn sleep_until(t: Instant) {
    loop {
        let now = Instant::now();
        if now >= t {
            return;
        }
        std::thread::sleep(t - now);
    }
}

/// How long before a deadline a [`Waiter`] may stop sleeping and spin.
const SPIN: Duration = Duration::from_micros(80);
/// A [`Waiter`] spins at most once in this long (so at most 8% of a core).
const SPIN_EVERY: Duration = Duration::from_millis(1);

/// Waits for the deadlines of one pacing thread.
///
/// Even with 1 ns of timer slack, a thread that sleeps 87 us (a byte at 115200 baud) wakes
/// 29-82 us after its deadline (minimum, 90th percentile; median 49 us) on the 2-core VM
/// this was measured on: the idle vCPU must be woken by the host. One that sleeps until 80
/// us before the deadline and then spins is on time to within 0.3 us in 9 cases out of 10,
/// spinning 30 us on average. That matters at the end of a message, when the other side
/// waits for it to answer (a publish loop turns the line around twice a publish), and
/// nowhere else: so a waiter spins only for an `urgent` deadline (the modem's side: the
/// last byte of a response, result, URC or prompt, not of an echo; the host's side: the
/// last byte it has written) and at most once a millisecond (at most 8% of a core). Every
/// other byte is delivered after a plain sleep, late by the wake-up (less than a byte time
/// when a core is free; the schedule stays absolute, so the next bytes are on time again).
#[derive(Debug, Default)]
pub(crate) struct Waiter {
    last_spin: Option<Instant>,
}

impl Waiter {
    /// Whether waiting for `t` may spin.
    pub(crate) fn spins(&self, t: Instant, urgent: bool) -> bool {
        urgent && self.last_spin.is_none_or(|l| t >= l + SPIN_EVERY)
    }

    /// Wait until `t`.
    pub(crate) fn wait_until(&mut self, t: Instant, urgent: bool) {
        if self.spins(t, urgent) {
            self.spin_until(t);
        } else {
            sleep_until(t);
        }
    }

    /// Wait until `t`: sleep until [`SPIN`] before it, then spin (once [`Waiter::spins`]
    /// allowed it).
    pub(crate) fn spin_until(&mut self, t: Instant) {
        if let Some(early) = t.checked_sub(SPIN) {
            sleep_until(early);
        }
        while Instant::now() < t {
            std::hint::spin_loop();
        }
        self.last_spin = Some(t);
    }

    /// How long to sleep at most before the spin for `t` from `now`.
    pub(crate) fn sleep_before(t: Instant, now: Instant) -> Duration {
        t.saturating_duration_since(now).saturating_sub(SPIN)
    }
}

/// The schedule of one direction of the line, on the real clock (the model's [`Pacer`]).
///
/// [`Pacer`]: crate::model::Pacer
pub(crate) type Pacer = crate::model::Pacer<Instant>;

/// A line at `baud` idle from now; `None` for no pacing.
pub(crate) fn pacer(baud: Option<u32>) -> Option<Pacer> {
    Pacer::new(baud, Instant::now())
}
