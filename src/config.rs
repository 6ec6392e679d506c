//! Timeouts and defaults, all in one place so tests run in milliseconds and
//! firmware gets the reference's real limits.

use embassy_time::Duration;

use crate::error::{ConfigError, Setting};
use crate::types::limits;

/// Driver configuration. Every deadline the driver applies comes from here or
/// from the `pkt_timeout`/`retry_times` the driver configured for a client.
///
/// # Values that contradict each other
///
/// [`new`](crate::new) refuses a `Config` that [`validate`](Self::validate)
/// refuses, with the [`ConfigError`] that names the first contradiction
/// found. Checked, in this order:
///
/// 1. **No zero duration.** `command_timeout`, `tx_timeout`, `open_timeout`,
///    `close_timeout`, `quiet_gap`, `read_error_pause`, `wake_timeout` and
///    `wake_probe`, and `packet_deadline` when it is set: a zero deadline
///    fails every command before the modem can answer; a zero `quiet_gap`
///    gives up every frame cut between two reads; a zero `read_error_pause`
///    or `wake_probe` lets a broken UART or a sleeping module spin the
///    executor ([`ConfigError::Zero`]).
/// 2. **The modem's ranges.** `default_pkt_timeout_s` 1-60 and
///    `default_retry_times` 0-10, the only values a modem can have
///    ([`ConfigError::PacketTimeout`], [`ConfigError::RetryTimes`]).
/// 3. **Every deadline that waits for modem bytes is at least two quiet
///    gaps**: `command_timeout`, `open_timeout`, `close_timeout`, the
///    CONN/SUB/UNS/PUB result deadline (`packet_deadline` when set, else at
///    least the shortest one a client can have, 1 s + `result_margin`) and
///    `wake_timeout` ([`ConfigError::ShorterThanQuietGaps`]). An incomplete frame (a
///    `+QMTRECV` whose closing quote was lost) holds every later line until
///    the modem has been quiet for `quiet_gap`; an answer that arrives while
///    it is held is read after that gap. With a deadline shorter than the
///    gap, the answer to a command is always read too late, and so is the
///    answer to the driver's own re-synchronising `AT` after it: the modem
///    is never quiet for a whole gap, and the frame is never given up. Two
///    gaps leave the modem one gap to answer and one for the frame to be
///    given up: with a modem that answers within `quiet_gap`, a frame that
///    never completes holds the stream for `quiet_gap` at most after the
///    modem's last byte.
/// 4. **A wake-up probe outlasts the quiet gap** (`wake_probe` longer than
///    `quiet_gap`), for the same reason: the wake-up `AT`s go every
///    `wake_probe`, and if their answers came closer together than a gap,
///    an incomplete frame held while the module slept would never be given
///    up ([`ConfigError::ProbeWithinQuietGap`]).
///
/// Not contradictions, so not refused (documented instead):
/// - a `packet_deadline` shorter than the modem's own `pkt_timeout x
///   (retry_times + 1)`: the driver gives up first and counts the modem's
///   late report in [`Stats::stale_results`](crate::Stats::stale_results);
/// - a [`State`](crate::State) whose `INGRESS` is smaller than the longest
///   `+QMTRECV` (a 255-byte topic and a 1,024-byte payload, 2,048 digits in
///   hex): longer frames are dropped and counted
///   ([`Stats::overflows`](crate::Stats::overflows)). The sizes of the
///   `State` are checked when it is built (`LINE` at least 1,024 bytes,
///   `INGRESS` at least 256, ...): a `State` that breaks them does not
///   compile.
/// - [`Modem::send_with_timeout`](crate::Modem::send_with_timeout) with a
///   deadline shorter than two quiet gaps: the caller's choice, for that one
///   command. [`Modem::send`](crate::Modem::send) waits at least two gaps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct Config {
    /// How long a command line may wait for `OK`/`ERROR` (or a data-mode
    /// publish for its `>` prompt) after it was written. The reference's
    /// maximum is 300 ms; the default leaves room for a busy modem.
    pub command_timeout: Duration,
    /// How long writing one command line or payload chunk to the UART may take.
    pub tx_timeout: Duration,
    /// Deadline of the deferred `+QMTOPEN` result: 75 s in the reference.
    pub open_timeout: Duration,
    /// Deadline of the deferred `+QMTCLOSE` and `+QMTDISC` results.
    pub close_timeout: Duration,
    /// `pkt_timeout` the driver assumes for a client it has not configured
    /// (the modem's default, 10 s).
    pub default_pkt_timeout_s: u8,
    /// `retry_times` the driver assumes for a client it has not configured
    /// (the modem's default, 3).
    pub default_retry_times: u8,
    /// Added to `pkt_timeout x (retry_times + 1)`, the modem's own limit for
    /// CONN/SUB/UNS/PUB results, so that its failure report arrives before the
    /// driver gives up.
    pub result_margin: Duration,
    /// If set, replaces `pkt_timeout x (retry_times + 1) + result_margin` as the
    /// deadline of CONN/SUB/UNS/PUB results.
    pub packet_deadline: Option<Duration>,
    /// How long the modem must stay silent before the driver treats what it
    /// holds as complete or broken. A modem sends each line or URC in one
    /// burst, so after this gap an incomplete frame (a `+QMTRECV` whose
    /// closing quote was lost, a cut line) is given up: its first line is
    /// dropped and the rest read again line by line. Also the quiet period
    /// that ends the fence after a failed command.
    pub quiet_gap: Duration,
    /// Pause after a UART read that failed or returned no bytes, before the
    /// next read (an unplugged adapter or a closed pipe never spins the
    /// executor).
    pub read_error_pause: Duration,
    /// Receive payloads as text (the modem's default) instead of hex. By
    /// default the driver configures hex reception itself
    /// (`AT+QMTCFG="dataformat"` before `AT+QMTOPEN`), because the modem does
    /// not escape text payloads: a remote publisher's payload holding `"`
    /// CR LF followed by modem-like lines would be read as modem lines (a
    /// forged `+QMTSTAT`, `+QMTPUB` or `+QMTRECV`). Set this only for brokers
    /// and publishers you trust, or firmware without the `dataformat` option.
    pub receive_text: bool,
    /// How long the driver may try to wake a module that may be asleep before
    /// a command (docs/power.md): wake-up `AT`s, and the board's wake pin if
    /// the [`Runner`](crate::Runner) has one. A command whose wake-up takes
    /// longer ends with [`Error::WakeTimeout`](crate::Error::WakeTimeout),
    /// nothing of it sent. Default 2 s (the module's UART wakes within
    /// milliseconds; from deep sleep its wake pin takes about 100 ms).
    pub wake_timeout: Duration,
    /// How long each wake-up `AT` waits for its `OK` before the next one is
    /// sent (the first bytes into a sleeping UART are lost). Default 300 ms,
    /// the manual's longest answer time for these commands.
    pub wake_probe: Duration,
    /// With sleep on (`AT+QSCLK=1/2`), how long after the last command line
    /// the module took the driver assumes it may be asleep. The module's
    /// sleep lock holds it awake 10 s after each command (not configurable);
    /// the default, 9 s, leaves a second for the line on the wire and for the
    /// two clocks' drift.
    pub sleep_after: Duration,
    /// The module sleeps from start-up (its `AT+QSCLK` default is not 0, as
    /// Quectel's OpenCPU note says of some firmware): the driver then wakes it
    /// before the first command, and again after each restart. Default
    /// `false`: the driver assumes sleep is off until it sets it itself.
    pub module_sleeps: bool,
}

impl Config {
    /// The reference's limits.
    pub const fn new() -> Self {
        Self {
            command_timeout: Duration::from_secs(3),
            tx_timeout: Duration::from_secs(3),
            open_timeout: Duration::from_secs(75),
            close_timeout: Duration::from_secs(10),
            default_pkt_timeout_s: 10,
            default_retry_times: 3,
            result_margin: Duration::from_secs(2),
            packet_deadline: None,
            quiet_gap: Duration::from_millis(100),
            read_error_pause: Duration::from_millis(50),
            receive_text: false,
            wake_timeout: Duration::from_secs(2),
            wake_probe: Duration::from_millis(300),
            sleep_after: Duration::from_secs(9),
            module_sleeps: false,
        }
    }

    /// Sets [`wake_timeout`](Self::wake_timeout).
    pub const fn wake_timeout(mut self, d: Duration) -> Self {
        self.wake_timeout = d;
        self
    }

    /// Sets [`wake_probe`](Self::wake_probe).
    pub const fn wake_probe(mut self, d: Duration) -> Self {
        self.wake_probe = d;
        self
    }

    /// Sets [`sleep_after`](Self::sleep_after).
    pub const fn sleep_after(mut self, d: Duration) -> Self {
        self.sleep_after = d;
        self
    }

    /// Sets [`module_sleeps`](Self::module_sleeps).
    pub const fn module_sleeps(mut self, sleeps: bool) -> Self {
        self.module_sleeps = sleeps;
        self
    }

    /// Sets [`command_timeout`](Self::command_timeout).
    pub const fn command_timeout(mut self, d: Duration) -> Self {
        self.command_timeout = d;
        self
    }

    /// Sets [`tx_timeout`](Self::tx_timeout).
    pub const fn tx_timeout(mut self, d: Duration) -> Self {
        self.tx_timeout = d;
        self
    }

    /// Sets [`open_timeout`](Self::open_timeout).
    pub const fn open_timeout(mut self, d: Duration) -> Self {
        self.open_timeout = d;
        self
    }

    /// Sets [`close_timeout`](Self::close_timeout).
    pub const fn close_timeout(mut self, d: Duration) -> Self {
        self.close_timeout = d;
        self
    }

    /// Sets [`result_margin`](Self::result_margin).
    pub const fn result_margin(mut self, d: Duration) -> Self {
        self.result_margin = d;
        self
    }

    /// Sets [`packet_deadline`](Self::packet_deadline).
    pub const fn packet_deadline(mut self, d: Duration) -> Self {
        self.packet_deadline = Some(d);
        self
    }

    /// Sets [`quiet_gap`](Self::quiet_gap).
    pub const fn quiet_gap(mut self, d: Duration) -> Self {
        self.quiet_gap = d;
        self
    }

    /// Sets [`read_error_pause`](Self::read_error_pause).
    pub const fn read_error_pause(mut self, d: Duration) -> Self {
        self.read_error_pause = d;
        self
    }

    /// Sets [`receive_text`](Self::receive_text).
    pub const fn receive_text(mut self, text: bool) -> Self {
        self.receive_text = text;
        self
    }

    /// Checks that the values do not contradict each other (the list is in
    /// the type's documentation). [`new`](crate::new) calls it and refuses a
    /// `Config` it refuses; a `const` can call it too, to refuse one at build
    /// time:
    ///
    /// ```
    /// use bc26_mqtt::Config;
    /// use embassy_time::Duration;
    /// const CONFIG: Config = Config::new().quiet_gap(Duration::from_millis(50));
    /// const _: () = assert!(CONFIG.validate().is_ok());
    /// ```
    pub const fn validate(&self) -> Result<(), ConfigError> {
        // Each check a loop over the names (constants), the values read by
        // name (`ticks`): no copy of them is made at run time.
        const ZERO: [Setting; 9] = [
            Setting::CommandTimeout,
            Setting::TxTimeout,
            Setting::OpenTimeout,
            Setting::CloseTimeout,
            Setting::QuietGap,
            Setting::ReadErrorPause,
            Setting::WakeTimeout,
            Setting::WakeProbe,
            Setting::PacketDeadline,
        ];
        let mut i = 0;
        while i < ZERO.len() {
            if let Some(0) = self.ticks(ZERO[i]) {
                return Err(ConfigError::Zero(ZERO[i]));
            }
            i += 1;
        }
        if self.default_pkt_timeout_s < *limits::PKT_TIMEOUT.start()
            || self.default_pkt_timeout_s > *limits::PKT_TIMEOUT.end()
        {
            return Err(ConfigError::PacketTimeout);
        }
        if self.default_retry_times > limits::RETRY_TIMES_MAX {
            return Err(ConfigError::RetryTimes);
        }
        let two_gaps = self.quiet_gap.as_ticks().saturating_mul(2);
        const WAITS: [Setting; 5] = [
            Setting::CommandTimeout,
            Setting::OpenTimeout,
            Setting::CloseTimeout,
            Setting::PacketDeadline,
            Setting::WakeTimeout,
        ];
        let mut i = 0;
        while i < WAITS.len() {
            let wait = match self.ticks(WAITS[i]) {
                Some(t) => t,
                // The shortest result deadline a client can have without
                // the override: pkt_timeout 1 s with no retry, plus the
                // margin.
                None => Duration::from_secs(*limits::PKT_TIMEOUT.start() as u64)
                    .as_ticks()
                    .saturating_add(self.result_margin.as_ticks()),
            };
            if wait < two_gaps {
                return Err(ConfigError::ShorterThanQuietGaps(WAITS[i]));
            }
            i += 1;
        }
        if self.wake_probe.as_ticks() <= self.quiet_gap.as_ticks() {
            return Err(ConfigError::ProbeWithinQuietGap);
        }
        Ok(())
    }

    /// The value of the duration `s` names, in ticks (`None`: no
    /// `packet_deadline` is set).
    const fn ticks(&self, s: Setting) -> Option<u64> {
        let d = match s {
            Setting::CommandTimeout => self.command_timeout,
            Setting::TxTimeout => self.tx_timeout,
            Setting::OpenTimeout => self.open_timeout,
            Setting::CloseTimeout => self.close_timeout,
            Setting::PacketDeadline => match self.packet_deadline {
                Some(d) => d,
                None => return None,
            },
            Setting::QuietGap => self.quiet_gap,
            Setting::ReadErrorPause => self.read_error_pause,
            Setting::WakeTimeout => self.wake_timeout,
            Setting::WakeProbe => self.wake_probe,
        };
        Some(d.as_ticks())
    }

    /// [`validate`](Self::validate) as [`new`](crate::new) runs it: one
    /// copy out of line, reading the values where they are (inlined, the
    /// values were copied out of the `Config` once for each check).
    #[inline(never)]
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        self.validate()
    }

    /// The shortest deadline [`Modem::send`](crate::Modem::send) gives a
    /// command: two quiet gaps (see the type's documentation).
    pub(crate) fn min_answer_wait(&self) -> Duration {
        Duration::from_ticks(self.quiet_gap.as_ticks().saturating_mul(2))
    }

    /// The deadline of a CONN/SUB/UNS/PUB result for these modem settings.
    pub(crate) fn packet_result_deadline(&self, pkt_timeout_s: u8, retry_times: u8) -> Duration {
        match self.packet_deadline {
            Some(d) => d,
            None => {
                Duration::from_secs(u64::from(pkt_timeout_s) * (u64::from(retry_times) + 1))
                    + self.result_margin
            }
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_defaults_and_consistent_values_are_accepted() {
        assert_eq!(Config::new().validate(), Ok(()));
        // Exactly two gaps is enough.
        let c = Config::new().quiet_gap(ms(50)).command_timeout(ms(100));
        assert_eq!(c.validate(), Ok(()));
        let c = c
            .packet_deadline(ms(100))
            .open_timeout(ms(100))
            .close_timeout(ms(100));
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn a_command_timeout_within_two_quiet_gaps_is_refused() {
        for (cmd, gap) in [(40, 200), (99, 50), (100, 100), (1, 1)] {
            let c = Config::new().quiet_gap(ms(gap)).command_timeout(ms(cmd));
            assert_eq!(
                c.validate(),
                Err(ConfigError::ShorterThanQuietGaps(Setting::CommandTimeout)),
                "command_timeout {cmd} ms, quiet_gap {gap} ms"
            );
        }
    }

    #[test]
    fn every_deadline_that_waits_for_the_modem_is_checked_against_the_gap() {
        let gap = Config::new().quiet_gap(ms(500)).command_timeout(ms(1000));
        let short = ms(999);
        let cases = [
            (gap.open_timeout(short), Setting::OpenTimeout),
            (gap.close_timeout(short), Setting::CloseTimeout),
            (gap.packet_deadline(short), Setting::PacketDeadline),
        ];
        for (c, which) in cases {
            assert_eq!(c.validate(), Err(ConfigError::ShorterThanQuietGaps(which)));
        }
        let c = Config::new().quiet_gap(ms(100));
        assert_eq!(
            c.wake_timeout(ms(199)).validate(),
            Err(ConfigError::ShorterThanQuietGaps(Setting::WakeTimeout))
        );
        // The wake-up ATs must be further apart than a gap.
        assert_eq!(
            c.wake_probe(ms(100)).validate(),
            Err(ConfigError::ProbeWithinQuietGap)
        );
        assert_eq!(c.wake_probe(ms(101)).validate(), Ok(()));
        // Without an override, the shortest result deadline is 1 s + margin.
        let c = Config::new()
            .quiet_gap(ms(800))
            .command_timeout(ms(1600))
            .open_timeout(ms(1600))
            .close_timeout(ms(1600))
            .wake_probe(ms(801));
        assert_eq!(
            c.result_margin(ms(599)).validate(),
            Err(ConfigError::ShorterThanQuietGaps(Setting::PacketDeadline))
        );
        assert_eq!(c.result_margin(ms(600)).validate(), Ok(()));
    }

    #[test]
    fn zero_durations_and_values_a_modem_cannot_have_are_refused() {
        let c = Config::new();
        let zero = Duration::from_ticks(0);
        let cases = [
            (
                c.command_timeout(zero),
                ConfigError::Zero(Setting::CommandTimeout),
            ),
            (c.tx_timeout(zero), ConfigError::Zero(Setting::TxTimeout)),
            (
                c.open_timeout(zero),
                ConfigError::Zero(Setting::OpenTimeout),
            ),
            (
                c.close_timeout(zero),
                ConfigError::Zero(Setting::CloseTimeout),
            ),
            (c.quiet_gap(zero), ConfigError::Zero(Setting::QuietGap)),
            (
                c.read_error_pause(zero),
                ConfigError::Zero(Setting::ReadErrorPause),
            ),
            (
                c.packet_deadline(zero),
                ConfigError::Zero(Setting::PacketDeadline),
            ),
            (
                c.wake_timeout(zero),
                ConfigError::Zero(Setting::WakeTimeout),
            ),
            (c.wake_probe(zero), ConfigError::Zero(Setting::WakeProbe)),
        ];
        for (c, want) in cases {
            assert_eq!(c.validate(), Err(want));
        }
        let mut c = Config::new();
        c.default_pkt_timeout_s = 0;
        assert_eq!(c.validate(), Err(ConfigError::PacketTimeout));
        c.default_pkt_timeout_s = 61;
        assert_eq!(c.validate(), Err(ConfigError::PacketTimeout));
        c.default_pkt_timeout_s = 60;
        c.default_retry_times = 11;
        assert_eq!(c.validate(), Err(ConfigError::RetryTimes));
        c.default_retry_times = 10;
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn packet_deadline_follows_pkt_timeout_and_retries() {
        let c = Config::new();
        assert_eq!(c.packet_result_deadline(10, 3), Duration::from_secs(42));
        assert_eq!(c.packet_result_deadline(60, 10), Duration::from_secs(662));
        let c = c.packet_deadline(Duration::from_millis(50));
        assert_eq!(c.packet_result_deadline(10, 3), Duration::from_millis(50));
        assert_eq!(Config::new().open_timeout, Duration::from_secs(75));
    }
}
