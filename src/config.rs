//! Timeouts and defaults, all in one place so tests run in milliseconds and
//! firmware gets the reference's real limits.

use embassy_time::Duration;

/// Driver configuration. Every deadline the driver applies comes from here or
/// from the `pkt_timeout`/`retry_times` the driver configured for a client.
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
