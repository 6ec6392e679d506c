//! The timing of one direction of an 8N1 UART (10 bit times per byte), on an absolute
//! schedule: byte `k` of a continuous stream that started at `t0` is complete on the wire at
//! `t0 + (k + 1) * 10 / baud`. Waits sleep until instants computed from `t0`, so the
//! scheduler's lateness never accumulates: a late wake-up is caught up by the next bytes.

use std::time::{Duration, Instant};

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

pub(crate) struct Pacer {
    baud: u64,
    /// Start of the current stream.
    t0: Instant,
    /// Bytes of the current stream on the wire so far.
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

    /// When the first `k` bytes of the stream are complete.
    fn end_of(&self, k: u64) -> Instant {
        let nanos = (k as u128) * 10 * 1_000_000_000 / self.baud as u128;
        self.t0 + Duration::from_nanos(nanos as u64)
    }

    /// New bytes for a line that had nothing queued: if its last byte is complete, the line
    /// is idle and a new stream starts now; otherwise they follow the stream back to back.
    pub(crate) fn resume(&mut self) {
        let now = Instant::now();
        if now >= self.end_of(self.k) {
            self.t0 = now;
            self.k = 0;
        }
    }

    /// How many bytes to move at once: about a millisecond's worth (at least one).
    pub(crate) fn piece(&self) -> usize {
        (self.baud / 10 / 1000).max(1) as usize
    }

    /// Wait until the next `n` bytes of the stream are complete on the wire.
    pub(crate) fn wait_for(&mut self, n: usize) {
        self.k += n as u64;
        sleep_until(self.end_of(self.k));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_is_absolute_and_an_idle_line_restarts_it() {
        let mut p = Pacer::new(Some(100_000)).unwrap(); // 100 us per byte
        assert_eq!(p.piece(), 10);
        p.resume();
        let t0 = p.t0;
        p.wait_for(10);
        assert!(Instant::now() >= t0 + Duration::from_millis(1));
        // Late (as after a descheduled thread): no restart while bytes keep coming.
        std::thread::sleep(Duration::from_millis(3));
        p.wait_for(10);
        assert_eq!((p.t0, p.k), (t0, 20));
        // Idle, then new bytes: a new stream.
        p.resume();
        assert!(p.t0 > t0);
        assert_eq!(p.k, 0);
        assert!(Pacer::new(Some(0)).is_none() && Pacer::new(None).is_none());
    }
}
