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

/// The schedule of one direction of the line.
#[derive(Debug, Clone)]
pub(crate) struct Pacer {
    baud: u64,
    /// Start of the current stream.
    t0: Instant,
    /// Bytes of the current stream scheduled so far.
    k: u64,
}

impl Pacer {
    /// `None` for no pacing (`baud` `None` or 0).
    pub(crate) fn new(baud: Option<u32>) -> Option<Pacer> {
        let baud = baud.filter(|&b| b > 0)? as u64;
        Some(Pacer {
            baud,
            t0: Instant::now(),
            k: 0,
        })
    }

    /// When the first `k` bytes of the current stream are complete.
    fn end_of(&self, k: u64) -> Instant {
        let nanos = (k as u128) * 10 * 1_000_000_000 / self.baud as u128;
        self.t0 + Duration::from_nanos(nanos as u64)
    }

    /// Schedule the next byte, handed to the UART at `queued` (not earlier than the bytes
    /// before it): if the line is idle at `queued` (the stream's last byte complete), a new
    /// stream starts then; otherwise the byte follows the stream back to back. Returns the
    /// instant its stop bit is complete.
    pub(crate) fn schedule(&mut self, queued: Instant) -> Instant {
        if queued >= self.end_of(self.k) {
            self.t0 = queued;
            self.k = 0;
        }
        self.k += 1;
        self.end_of(self.k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BT: Duration = Duration::from_micros(100); // 100_000 baud

    fn pacer() -> Pacer {
        Pacer::new(Some(100_000)).unwrap()
    }

    #[test]
    fn a_byte_on_an_idle_line_is_complete_one_byte_time_after_it_was_queued() {
        let mut p = pacer();
        let q = Instant::now() + Duration::from_secs(1); // the line is idle by then
        assert_eq!(p.schedule(q), q + BT);
        // However late the thread that computes it: the schedule is the queue time's.
        std::thread::sleep(Duration::from_millis(2));
        let q2 = q + Duration::from_secs(1);
        assert_eq!(p.schedule(q2), q2 + BT);
        assert!(Pacer::new(Some(0)).is_none() && Pacer::new(None).is_none());
    }

    #[test]
    fn bytes_queued_while_the_line_is_busy_follow_back_to_back_on_an_absolute_schedule() {
        let mut p = pacer();
        let t0 = Instant::now() + Duration::from_secs(1);
        // Ten bytes at once, each on its own schedule: byte k at t0 + (k + 1) byte times.
        for k in 1..=10u32 {
            assert_eq!(p.schedule(t0), t0 + BT * k);
        }
        // Queued later while byte 10 is still on the wire: no restart, no drift.
        for k in 11..=10_000u32 {
            assert_eq!(p.schedule(t0 + BT * 9 + BT / 2), t0 + BT * k);
        }
        // Queued exactly when the last byte is complete: a new stream starts then.
        let end = t0 + BT * 10_000;
        assert_eq!(p.schedule(end), end + BT);
        assert_eq!(p.schedule(end), end + BT * 2);
    }
}
