//! The delay between two attempts to bring a link up: exponential, with a
//! cap, jittered so that a fleet that lost its broker at the same moment does
//! not come back in step, and reset once a link stayed up for a while.

use embassy_time::Duration;

/// Back-off settings of a [`Supervisor`](super::Supervisor).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct Backoff {
    /// The first delay (before jitter). Default 2 s.
    pub min: Duration,
    /// The longest delay (before jitter). Default 5 min.
    pub max: Duration,
    /// A link that stayed online this long resets the delay to `min`.
    /// Default 60 s.
    pub stable_after: Duration,
    /// Seed of the jitter: give each device its own (its IMEI, the MCU's
    /// unique ID), so that devices spread out. Default 1.
    pub seed: u32,
}

impl Backoff {
    /// The defaults: 2 s doubling to 5 min, reset after 60 s online.
    pub const fn new() -> Self {
        Self {
            min: Duration::from_secs(2),
            max: Duration::from_secs(300),
            stable_after: Duration::from_secs(60),
            seed: 1,
        }
    }

    /// Sets the first and the longest delay.
    pub const fn delays(mut self, min: Duration, max: Duration) -> Self {
        self.min = min;
        self.max = max;
        self
    }

    /// Sets [`stable_after`](Self::stable_after).
    pub const fn stable_after(mut self, d: Duration) -> Self {
        self.stable_after = d;
        self
    }

    /// Sets [`seed`](Self::seed).
    pub const fn seed(mut self, seed: u32) -> Self {
        self.seed = seed;
        self
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

/// The running back-off: attempts so far and the jitter's generator.
pub(crate) struct Delays {
    cfg: Backoff,
    /// Failed attempts since the last reset.
    failures: u32,
    rng: u32,
}

impl Delays {
    pub(crate) fn new(cfg: Backoff) -> Self {
        Self {
            cfg,
            failures: 0,
            // xorshift needs a non-zero state.
            rng: cfg.seed | 1,
        }
    }

    /// A link stayed up `stable_after`: the next delay starts from `min`.
    pub(crate) fn reset(&mut self) {
        self.failures = 0;
    }

    /// Attempts that failed since the last reset.
    #[cfg(test)]
    pub(crate) fn failures(&self) -> u32 {
        self.failures
    }

    /// The delay before the next attempt: `d = min(max, min x 2^n)` for the
    /// n-th failure in a row (from 0), then a random point of `[d/2, d]`
    /// ("equal jitter": never less than half, spread over the other half).
    pub(crate) fn next(&mut self) -> Duration {
        let min = self.cfg.min.as_ticks();
        let max = self.cfg.max.as_ticks().max(min);
        let d = min
            .checked_shl(self.failures.min(63))
            .filter(|&d| d >> self.failures.min(63) == min)
            .map_or(max, |d| d.min(max));
        self.failures = self.failures.saturating_add(1);
        let half = d / 2;
        Duration::from_ticks(half + self.random() % (d - half + 1))
    }

    fn random(&mut self) -> u64 {
        // xorshift32: small, fast, enough to spread a fleet.
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.rng = x;
        u64::from(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(seed: u32) -> Backoff {
        Backoff::new()
            .delays(Duration::from_secs(2), Duration::from_secs(60))
            .seed(seed)
    }

    #[test]
    fn delays_double_within_their_jitter_up_to_the_cap() {
        let mut d = Delays::new(cfg(7));
        let mut base = Duration::from_secs(2);
        for _ in 0..12 {
            let got = d.next();
            assert!(
                got >= base / 2 && got <= base,
                "{got:?} outside [{:?}, {base:?}]",
                base / 2
            );
            base = (base * 2).min(Duration::from_secs(60));
        }
        // Capped for ever, never overflowing.
        for _ in 0..200 {
            assert!(d.next() <= Duration::from_secs(60));
        }
    }

    #[test]
    fn a_reset_starts_again_from_the_first_delay() {
        let mut d = Delays::new(cfg(3));
        for _ in 0..6 {
            d.next();
        }
        d.reset();
        assert!(d.next() <= Duration::from_secs(2));
        assert_eq!(d.failures(), 1);
    }

    #[test]
    fn devices_with_other_seeds_spread_out() {
        let firsts: std::collections::BTreeSet<u64> = (1..=50u32)
            .map(|seed| {
                let mut d = Delays::new(cfg(seed.wrapping_mul(2654435761)));
                for _ in 0..4 {
                    d.next();
                }
                d.next().as_millis()
            })
            .collect();
        // 50 devices after the same outage: their fifth delays (16-32 s) differ.
        assert!(firsts.len() > 40, "{} distinct delays", firsts.len());
    }
}
