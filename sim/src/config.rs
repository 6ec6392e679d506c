//! Simulator configuration and fault-injection knobs.

use std::time::Duration;

/// Random chunking of everything the modem sends (deterministic for a given seed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunking {
    /// PRNG seed: the same seed gives the same split points.
    pub seed: u64,
    /// Largest chunk, in bytes (chunks are 1..=max_chunk bytes long).
    pub max_chunk: usize,
    /// Pause between two chunks, so that a reader really sees them separately.
    pub gap: Duration,
}

/// Faults to inject. Set the initial value in [`SimConfig::faults`]; change it at run time
/// with [`crate::SimHandle::set_faults`] / [`crate::SimHandle::update_faults`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimFaults {
    /// Ignore this many of the next acknowledgements from the broker (PUBACK, PUBREC,
    /// PUBCOMP, SUBACK, UNSUBACK), as if they were lost: the simulator then retransmits
    /// after `pkt_timeout` (see `AT+QMTCFG="timeout"`). Decremented for each ack dropped.
    pub drop_acks: u32,
    /// Ignore PINGRESP: the keep-alive then fails after `pkt_timeout` with `+QMTSTAT: <id>,2`.
    pub ignore_pingresp: bool,
    /// Ignore CONNACK: `AT+QMTCONN` then times out after `pkt_timeout`.
    pub ignore_connack: bool,
    /// Extra delay added before every `+QMTOPEN` result (on top of `result_delay`).
    pub open_delay: Duration,
    /// Answer every command line that starts with this prefix (e.g. `"AT+QMTPUB"`) with
    /// `ERROR`, whatever the state.
    pub error_on_prefix: Option<String>,
    /// `Some((count, code))`: the next `count` `AT+QMTCONN` are refused as a broker refuses
    /// them: `+QMTCONN: <id>,0,<code>` (CONNACK codes 1-5) and the link is closed (the client
    /// must be opened again; no CONNECT reaches the broker, so no will is published). Counts
    /// down with each refusal and becomes `None` after the last.
    pub refuse_connect: Option<(u32, u8)>,
    /// `Some((count, code))`: the next `count` `AT+QMTOPEN` fail with `+QMTOPEN: <id>,<code>`
    /// (-1 network, 1 parameter, 3 PDP, 4 name, 5 network disconnection) without a TCP
    /// connect, after `open_delay` like a real attempt. Counts down like `refuse_connect`.
    pub fail_open: Option<(u32, i32)>,
}

impl SimFaults {
    /// Take one use of a counted fault (`refuse_connect`, `fail_open`): its value, if any.
    pub(crate) fn take<T: Copy>(slot: &mut Option<(u32, T)>) -> Option<T> {
        let (n, v) = (*slot)?;
        *slot = (n > 1).then_some((n - 1, v));
        (n > 0).then_some(v)
    }
}

/// Configuration of a simulated modem.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Command echo at start-up (`ATE1` is the factory default on Quectel modules).
    pub echo: bool,
    /// Delay before each deferred result (`+QMTOPEN: 0,0`, `+QMTCONN: ...`, ...). URCs
    /// (`+QMTRECV`, `+QMTSTAT`) are not delayed, but never overtake an earlier queued line.
    pub result_delay: Duration,
    /// Model a UART at this baud rate (8N1: 10 bit times per byte), both ways, byte by byte:
    /// a stream starts when its first byte is written (or queued by the modem) on an idle
    /// line, byte `k` of it is complete `(k + 1) * 10 / baud` later on an absolute schedule,
    /// and each byte reaches the other side as soon as it is complete; the host's writes
    /// block once `uart_fifo` bytes wait. `None`: as fast as possible.
    pub baud: Option<u32>,
    /// With `baud`: how many bytes the host can write ahead of the wire (the in-process
    /// pipe's host-to-modem capacity). The pty's is the kernel's (tens of KiB).
    pub uart_fifo: usize,
    /// Random chunking of the output. `None`: every response is written in one piece.
    pub chunking: Option<Chunking>,
    /// MQTT protocol level a client uses until `AT+QMTCFG="version"` changes it:
    /// 3 (MQTT 3.1, "MQIsdp") or 4 (MQTT 3.1.1).
    pub default_version: u8,
    /// Quote the string fields of the `"will"` and `"aliauth"` query responses. The
    /// reference prints them unquoted (`+QMTCFG: "will",1,0,0,t,m`), which is the default.
    pub quote_cfg_strings: bool,
    /// Answer errors with `+CME ERROR: 50` (`AT+CMEE=1`) or `+CME ERROR: Incorrect
    /// parameters` (`AT+CMEE=2`) instead of plain `ERROR`, as some firmware still does.
    /// Off by default: v1.1 of the note answers a plain `ERROR`.
    pub cme_errors: bool,
    /// Timeout of the TCP connect behind `AT+QMTOPEN`.
    pub connect_timeout: Duration,
    /// Capacity, in bytes, of each direction of the in-process pipe (host to modem:
    /// `uart_fifo` instead when `baud` is set).
    pub pipe_capacity: usize,
    /// Faults to inject from the start.
    pub faults: SimFaults,
    /// How long a reboot ([`crate::SimHandle::reboot`]) takes: the modem ignores the host
    /// and sends nothing for this long, then sends `\r\nRDY\r\n`.
    pub boot_time: Duration,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            echo: true,
            result_delay: Duration::ZERO,
            baud: None,
            uart_fifo: 128,
            chunking: None,
            default_version: 4,
            quote_cfg_strings: false,
            cme_errors: false,
            connect_timeout: Duration::from_secs(5),
            pipe_capacity: 64 * 1024,
            faults: SimFaults::default(),
            boot_time: Duration::from_millis(200),
        }
    }
}
