//! The timing of one direction of an 8N1 UART (10 bit times per byte), on any clock.
//!
//! A byte handed to the UART at `q` (the moment it was written or queued) goes on the wire
//! at once if the line is idle then, else right after the byte before it: byte `k` of a
//! continuous stream that started at `t0` is complete at `t0 + (k + 1) * 10 / baud`. The
//! schedule is absolute (computed from `t0`, not from the moment a thread woke up), so
//! lateness never accumulates.
//!
//! It is generic over the clock: the threaded simulator's pacing threads use
//! `std::time::Instant`, a virtual-time world uses [`Time`](crate::model::Time). Nothing here
//! reads a clock.

use std::ops::Add;
use std::time::Duration;

/// The schedule of one direction of the line, on a clock `T`.
#[derive(Debug, Clone)]
pub struct Pacer<T> {
    baud: u64,
    /// Start of the current stream.
    t0: T,
    /// Bytes of the current stream scheduled so far.
    k: u64,
}

impl<T: Copy + PartialOrd + Add<Duration, Output = T>> Pacer<T> {
    /// A line idle since `t0`; `None` for no pacing (`baud` `None` or 0).
    pub fn new(baud: Option<u32>, t0: T) -> Option<Pacer<T>> {
        let baud = baud.filter(|&b| b > 0)? as u64;
        Some(Pacer { baud, t0, k: 0 })
    }

    /// When the first `k` bytes of the current stream are complete.
    fn end_of(&self, k: u64) -> T {
        let nanos = u128::from(k) * 10 * 1_000_000_000 / u128::from(self.baud);
        self.t0 + Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// Schedule the next byte, handed to the UART at `queued` (not earlier than the bytes
    /// before it): if the line is idle at `queued` (the stream's last byte complete), a new
    /// stream starts then; otherwise the byte follows the stream back to back. Returns the
    /// instant its stop bit is complete.
    pub fn schedule(&mut self, queued: T) -> T {
        self.schedule_n(queued, 1)
    }

    /// Schedule `n` bytes handed to the UART at `queued` at once (as `n` calls of
    /// [`Pacer::schedule`], without the loop): returns the instant the last one's stop bit
    /// is complete (`queued`'s own schedule for `n` = 0 is not changed: returns when the
    /// line is idle again).
    pub fn schedule_n(&mut self, queued: T, n: u64) -> T {
        if n > 0 && queued >= self.end_of(self.k) {
            self.t0 = queued;
            self.k = 0;
        }
        self.k = self.k.saturating_add(n);
        self.end_of(self.k)
    }

    /// When the line is idle again (every byte scheduled so far complete).
    pub fn idle_at(&self) -> T {
        self.end_of(self.k)
    }

    /// When the byte scheduled `back` bytes before the last one is complete (`back` = 0: the
    /// last one): for a chunk scheduled with [`Pacer::schedule_n`], the instant of each of
    /// its bytes.
    pub fn complete_before_last(&self, back: u64) -> T {
        self.end_of(self.k.saturating_sub(back))
    }

    /// One byte's time on the wire (10 bit times).
    pub fn byte_time(&self) -> Duration {
        Duration::from_nanos(10 * 1_000_000_000 / self.baud)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::time::Time;

    const BT: Duration = Duration::from_micros(100); // 100_000 baud

    fn pacer() -> Pacer<Time> {
        Pacer::new(Some(100_000), Time::ZERO).unwrap()
    }

    #[test]
    fn a_byte_on_an_idle_line_is_complete_one_byte_time_after_it_was_queued() {
        let mut p = pacer();
        let q = Time::from_millis(1000);
        assert_eq!(p.schedule(q), q + BT);
        let q2 = q + Duration::from_secs(1);
        assert_eq!(p.schedule(q2), q2 + BT);
        assert!(Pacer::new(Some(0), Time::ZERO).is_none());
        assert!(Pacer::new(None, Time::ZERO).is_none());
        assert_eq!(p.byte_time(), BT);
    }

    #[test]
    fn bytes_queued_while_the_line_is_busy_follow_back_to_back_on_an_absolute_schedule() {
        let mut p = pacer();
        let t0 = Time::from_millis(1000);
        for k in 1..=10u32 {
            assert_eq!(p.schedule(t0), t0 + BT * k);
        }
        for k in 11..=10_000u32 {
            assert_eq!(p.schedule(t0 + BT * 9 + BT / 2), t0 + BT * k);
        }
        let end = t0 + BT * 10_000;
        assert_eq!(p.schedule(end), end + BT);
        assert_eq!(p.schedule(end), end + BT * 2);
    }

    #[test]
    fn a_chunk_scheduled_at_once_ends_where_its_bytes_one_by_one_would() {
        let t0 = Time::from_millis(5);
        for (gap, n) in [(0u32, 7u64), (3, 1), (50, 200), (0, 0)] {
            let (mut a, mut b) = (pacer(), pacer());
            a.schedule_n(t0, 5);
            b.schedule_n(t0, 5);
            let q = t0 + BT * gap;
            let end = a.schedule_n(q, n);
            let mut last = b.idle_at();
            for _ in 0..n {
                last = b.schedule(q);
            }
            assert_eq!(end, last, "gap {gap} n {n}");
            for back in 0..n {
                assert_eq!(a.complete_before_last(back) + BT * back as u32, last);
            }
        }
    }
}
