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
    /// A poisoned message: every publish whose payload contains `Poison::marker` fails,
    /// every time, as `Poison::answer` says (`ERROR` to its `AT+QMTPUB`, or `OK` then
    /// `+QMTPUB: <id>,<msgID>,2`); nothing reaches the broker. Other messages go as usual.
    pub poison: Option<Poison>,
    /// A wedged module: its AT layer reads every line and answers none (runs none), but
    /// for `AT+QRST=1` with [`Wedge::ResetWorks`]; a restart (that, or
    /// `SimHandle::reboot()`, the board's reset) ends the wedge. Its MQTT side runs on.
    pub wedged: Option<Wedge>,
}

/// How wedged a module is ([`SimFaults::wedged`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wedge {
    /// `AT+QRST=1` still restarts it (`OK`, then the restart).
    ResetWorks,
    /// Only the board's reset brings it back.
    Deaf,
}

/// A message the modem never publishes ([`SimFaults::poison`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Poison {
    /// Bytes its payload contains (after hex decoding, in hex mode).
    pub marker: Vec<u8>,
    /// How the modem answers it.
    pub answer: PoisonAnswer,
}

/// How the modem answers a poisoned message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoisonAnswer {
    /// `ERROR` to its `AT+QMTPUB` line (inline) or to its payload (data mode).
    Error,
    /// `OK`, then `+QMTPUB: <id>,<msgID>,2` (failed) after `result_delay`.
    Failed,
}

impl Poison {
    /// How the modem answers `payload`: `None` when it is not the poisoned message.
    pub(crate) fn answer(&self, payload: &[u8]) -> Option<PoisonAnswer> {
        let m = &self.marker;
        let hit = m.is_empty() || payload.windows(m.len()).any(|w| w == m.as_slice());
        hit.then_some(self.answer)
    }
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
    /// The power model: currents, the module's timing and the network's policy (see
    /// `docs/power-model.md`). The default never lets the module sleep (`AT+QSCLK=0` at
    /// start-up) and requests neither PSM nor eDRX, so a host that sends no power command
    /// sees the same bytes at the same times as without the model; the charge meter runs
    /// all the same.
    pub power: PowerConfig,
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
            power: PowerConfig::default(),
        }
    }
}

/// A current, in nanoamperes (exact: the charge meter multiplies it by nanoseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Current(pub u64);

impl Current {
    /// `ua` microamperes.
    pub const fn micro_amps(ua: u64) -> Current {
        Current(ua * 1_000)
    }

    /// `ua_tenths` tenths of a microampere (3.5 uA is `tenth_micro_amps(35)`).
    pub const fn tenth_micro_amps(ua_tenths: u64) -> Current {
        Current(ua_tenths * 100)
    }

    /// `ma_tenths` tenths of a milliampere (15.5 mA is `tenth_milli_amps(155)`).
    pub const fn tenth_milli_amps(ma_tenths: u64) -> Current {
        Current(ma_tenths * 100_000)
    }

    /// `ma` milliamperes.
    pub const fn milli_amps(ma: u64) -> Current {
        Current(ma * 1_000_000)
    }

    /// In nanoamperes.
    pub const fn nano_amps(self) -> u64 {
        self.0
    }
}

/// The current the module draws in each of its power states (`model::PowerState`), at
/// the supply voltage of [`PowerConfig::supply_mv`]. Every default and its source:
/// `docs/power-model.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Currents {
    /// Deep sleep: the modem in PSM, the application processor off (only the RTC runs).
    /// 3.5 uA (Quectel BC26-OpenCPU Hardware Design V1.3, table 22).
    pub deep_sleep: Current,
    /// Light sleep while the modem is in PSM (no paging), when deep sleep is not allowed
    /// (`AT+QSCLK=2`, or a TCP/MQTT link is open). Not in Quectel's tables: 190 uA, read off
    /// a published BC26 current trace.
    pub light_sleep_psm: Current,
    /// Light sleep in idle with DRX paging. 434 uA (BC26 Hardware Design, DRX 2.56 s; 541 uA
    /// at 1.28 s).
    pub light_sleep_drx: Current,
    /// Light sleep in idle with eDRX paging. 288 uA (BC26 Hardware Design, eDRX 81.92 s with
    /// a 40.96 s paging time window), used for every eDRX cycle.
    pub light_sleep_edrx: Current,
    /// The application processor awake, the radio idle or in PSM (sleep not allowed, within
    /// the sleep lock of an AT command, or waking up). Not in Quectel's tables: 5.1 mA, a
    /// published BC26 measurement with sleep disabled.
    pub awake: Current,
    /// RRC connected and not transmitting (receiving, or waiting for the network's
    /// inactivity timer). Not in Quectel's tables: 15.5 mA, read off a published BC26 trace.
    pub connected: Current,
    /// Transmitting (RRC connection set-up and uplink packets): 100 mA (BC26 Hardware
    /// Design, average at 23 dBm, single-tone 15 kHz, band 1).
    pub transmit: Current,
}

impl Default for Currents {
    fn default() -> Self {
        Currents {
            deep_sleep: Current::tenth_micro_amps(35),
            light_sleep_psm: Current::micro_amps(190),
            light_sleep_drx: Current::micro_amps(434),
            light_sleep_edrx: Current::micro_amps(288),
            awake: Current::tenth_milli_amps(51),
            connected: Current::tenth_milli_amps(155),
            transmit: Current::milli_amps(100),
        }
    }
}

/// What the network grants a module that requests PSM (`AT+CPSMS`): the timers are one-byte
/// codes as `AT+CPSMS` and `+CEREG` write them (`0b001_00001` is 1 hour of T3412).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PsmGrant {
    /// The timers the module requested.
    #[default]
    AsRequested,
    /// The requested timers, each at most this long (a longer request gets this code).
    Clamp {
        /// The longest periodic TAU (T3412, GPRS Timer 3 code).
        periodic_tau: u8,
        /// The longest active time (T3324, GPRS Timer 2 code).
        active_time: u8,
    },
    /// These timers, whatever the module requested.
    Fixed {
        /// Periodic TAU (T3412, GPRS Timer 3 code).
        periodic_tau: u8,
        /// Active time (T3324, GPRS Timer 2 code).
        active_time: u8,
    },
    /// No PSM: the module stays in idle between connections.
    Refuse,
}

/// What the network grants a module that requests eDRX (`AT+CEDRXS`): a 4-bit eDRX cycle code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EdrxGrant {
    /// The requested cycle.
    #[default]
    AsRequested,
    /// This cycle, whatever was requested.
    Fixed(u8),
    /// No eDRX: paging at the DRX cycle.
    Refuse,
}

/// The network's side of the power model: timers the operator sets, and what it grants.
/// Defaults and their sources: `docs/power-model.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetworkPolicy {
    /// The RRC inactivity timer: the base station releases the connection this long after
    /// the last uplink or downlink. 20 s.
    pub inactivity: Duration,
    /// The periodic TAU timer (T3412) of a module without PSM: 54 min (3GPP TS 24.301's
    /// default).
    pub periodic_tau: Duration,
    /// The timers granted to a module that requests PSM.
    pub psm: PsmGrant,
    /// The timers granted when the module requests PSM without giving them (`AT+CPSMS=1`):
    /// T3412 and T3324 codes, 1 h (`0b001_00001`) and 10 s (`0b000_00101`), a choice.
    pub psm_default: (u8, u8),
    /// The eDRX cycle granted to a module that requests eDRX.
    pub edrx: EdrxGrant,
    /// The paging time window granted with eDRX (4-bit code, NB-S1: (n + 1) x 2.56 s):
    /// `0b0011`, 10.24 s.
    pub ptw: u8,
    /// The operator's NAT forgets a TCP link after this long without a packet either way: a
    /// packet after that is dropped (the link is dead, and found dead when the module next
    /// waits for an answer on it). 300 s; `None`: never.
    pub nat_idle: Option<Duration>,
}

impl Default for NetworkPolicy {
    fn default() -> Self {
        NetworkPolicy {
            inactivity: Duration::from_secs(20),
            periodic_tau: Duration::from_secs(54 * 60),
            psm: PsmGrant::AsRequested,
            psm_default: (0b001_00001, 0b000_00101),
            edrx: EdrxGrant::AsRequested,
            ptw: 0b0011,
            nat_idle: Some(Duration::from_secs(300)),
        }
    }
}

/// The power model's knobs (`SimConfig::power`). Defaults and sources: `docs/power-model.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PowerConfig {
    /// `AT+QSCLK` at start-up and after a reboot: 0 sleep disabled (the default here, so
    /// that hosts that know nothing of sleep work as before), 1 light and deep sleep,
    /// 2 light sleep only.
    pub qsclk_at_boot: u8,
    /// The supply voltage the energy figures assume, in millivolts: 3300 (Quectel's current
    /// tables are at 3.3 V).
    pub supply_mv: u32,
    /// Current per power state.
    pub currents: Currents,
    /// The network's timers and grants (also `Modem::network_policy_mut`,
    /// `SimHandle::set_network_policy`).
    pub network: NetworkPolicy,
    /// The sleep lock each AT command takes: the module does not sleep for this long after
    /// a command line (`AT+QRELLOCK` releases it). 10 s (BC26 AT Commands Manual, QRELLOCK).
    pub sleep_lock: Duration,
    /// A UART in light sleep wakes on the first byte it gets; the bytes that arrive until
    /// this long after it are lost. 5 ms (a choice: Quectel says only that the first bytes
    /// are lost).
    pub uart_wake: Duration,
    /// A falling edge on PSM_EINT wakes the module from deep sleep in this long; the host's
    /// bytes meanwhile are lost. 100 ms (a choice).
    pub deep_wake: Duration,
    /// Transmitting time of an RRC connection set-up (from idle or PSM, paging included):
    /// 2.5 s (with `tx_per_packet`, a set-up and one packet cost 280 mC, as a published BC26
    /// trace shows).
    pub rrc_setup: Duration,
    /// Transmitting time of each uplink packet (TCP segment): 0.3 s.
    pub tx_per_packet: Duration,
    /// Apply `AT+QNBIOTRAI` to MQTT traffic: release the RRC connection right after an
    /// uplink (1) or after the downlink that answers it (2). Off: the BC26 manual documents
    /// release assistance as a module setting, not for MQTT/TCP, so the model keeps the
    /// network's inactivity timer unless this is set.
    pub rai_for_mqtt: bool,
}

impl Default for PowerConfig {
    fn default() -> Self {
        PowerConfig {
            qsclk_at_boot: 0,
            supply_mv: 3300,
            currents: Currents::default(),
            network: NetworkPolicy::default(),
            sleep_lock: Duration::from_secs(10),
            uart_wake: Duration::from_millis(5),
            deep_wake: Duration::from_millis(100),
            rrc_setup: Duration::from_millis(2500),
            tx_per_packet: Duration::from_millis(300),
            rai_for_mqtt: false,
        }
    }
}
