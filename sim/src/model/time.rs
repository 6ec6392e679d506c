//! The model's clock: a point in time the caller passes in with every input.

use std::ops::Add;
use std::time::Duration;

/// A point in time, as a span since an epoch the caller chooses (the threaded simulator: the
/// moment it started; a virtual-time world: its own zero). The model has no clock of its
/// own: every input carries the time at which it happens, and [`crate::model::Modem::poll_at`]
/// says when the model next needs to be woken. Times given to a model never go back (an
/// earlier one counts as the latest seen).
///
/// Arithmetic saturates (no panic at `Duration::MAX`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time(Duration);

impl Time {
    /// The epoch.
    pub const ZERO: Time = Time(Duration::ZERO);

    /// `d` after the epoch.
    pub const fn from_duration(d: Duration) -> Time {
        Time(d)
    }

    /// `us` microseconds after the epoch (an `embassy_time::Instant::as_micros()`, say).
    pub const fn from_micros(us: u64) -> Time {
        Time(Duration::from_micros(us))
    }

    /// `ms` milliseconds after the epoch.
    pub const fn from_millis(ms: u64) -> Time {
        Time(Duration::from_millis(ms))
    }

    /// The span since the epoch.
    pub const fn since_epoch(self) -> Duration {
        self.0
    }

    /// Microseconds since the epoch (saturating at `u64::MAX`).
    pub fn as_micros(self) -> u64 {
        u64::try_from(self.0.as_micros()).unwrap_or(u64::MAX)
    }

    /// How long after `earlier` this is (zero if it is not later).
    pub fn saturating_since(self, earlier: Time) -> Duration {
        self.0.saturating_sub(earlier.0)
    }
}

impl Add<Duration> for Time {
    type Output = Time;
    fn add(self, d: Duration) -> Time {
        Time(self.0.saturating_add(d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_arithmetic_saturates_instead_of_panicking() {
        let t = Time::from_micros(1_500);
        assert_eq!(t.as_micros(), 1_500);
        assert_eq!(t + Duration::from_millis(2), Time::from_micros(3_500));
        assert_eq!(
            Time::from_duration(Duration::MAX) + Duration::from_secs(1),
            Time::from_duration(Duration::MAX)
        );
        assert_eq!(Time::from_duration(Duration::MAX).as_micros(), u64::MAX);
        assert_eq!(Time::ZERO.saturating_since(t), Duration::ZERO);
        assert_eq!(
            t.saturating_since(Time::from_millis(1)),
            Duration::from_micros(500)
        );
    }
}
