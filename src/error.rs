//! The crate's one error type, and the reasons it carries.

/// Why the modem closed a client's link (`+QMTSTAT: <id>,<err_code>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum LinkClosedReason {
    /// 1: connection closed or reset by the peer. Open again.
    PeerClosed,
    /// 2: sending PINGREQ timed out or failed. Deactivate and reactivate PDP, then reopen.
    PingFailed,
    /// 3: sending CONNECT timed out or failed. Check credentials and client ID, reopen.
    ConnectFailed,
    /// 4: receiving CONNACK timed out or failed. Check credentials and client ID, reopen.
    ConnackFailed,
    /// 5: the client sent DISCONNECT and the server closed the link (normal).
    Disconnected,
    /// 6: the client closed the link because sending kept failing. Check data, reopen.
    SendFailed,
    /// 7: the link is not alive or the server is unavailable.
    LinkDead,
    /// A code the reference reserves (8-255); kept as the modem sent it.
    Other(u8),
}

impl LinkClosedReason {
    /// The reason for an `err_code`.
    pub fn from_code(code: u8) -> Self {
        match code {
            1 => Self::PeerClosed,
            2 => Self::PingFailed,
            3 => Self::ConnectFailed,
            4 => Self::ConnackFailed,
            5 => Self::Disconnected,
            6 => Self::SendFailed,
            7 => Self::LinkDead,
            n => Self::Other(n),
        }
    }

    /// The modem's `err_code`.
    pub fn code(self) -> u8 {
        match self {
            Self::PeerClosed => 1,
            Self::PingFailed => 2,
            Self::ConnectFailed => 3,
            Self::ConnackFailed => 4,
            Self::Disconnected => 5,
            Self::SendFailed => 6,
            Self::LinkDead => 7,
            Self::Other(n) => n,
        }
    }
}

/// Which argument was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Field {
    /// tcpconnectID (0-5).
    ClientId,
    /// Host name of AT+QMTOPEN (1-100 bytes).
    Host,
    /// Port of AT+QMTOPEN (1-65535).
    Port,
    /// MQTT client identifier of AT+QMTCONN.
    MqttClientId,
    /// User name of AT+QMTCONN.
    Username,
    /// Password of AT+QMTCONN.
    Password,
    /// A topic (1-255 bytes).
    Topic,
    /// The topic list of AT+QMTSUB / AT+QMTUNS.
    Topics,
    /// A QoS (0-2).
    Qos,
    /// A publish payload.
    Payload,
    /// Will topic (1-255 bytes).
    WillTopic,
    /// Will message.
    WillMessage,
    /// Keep-alive interval (0-3600 s).
    KeepAlive,
    /// `pkt_timeout` (1-60 s).
    PacketTimeout,
    /// `retry_times` (0-10).
    RetryTimes,
    /// AliCloud product key, device name or device secret.
    AliAuth,
    /// A msgID given for a publish (1-65535 for QoS 1/2).
    MsgId,
    /// A command line given to [`Modem::send`](crate::Modem::send): one
    /// line, printable bytes and a final CR, that fits the `LINE` buffer.
    CommandLine,
}

/// What is wrong with the argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Problem {
    /// Empty where the reference needs at least one byte.
    Empty,
    /// Longer than the reference allows.
    TooLong,
    /// Outside the reference's range.
    OutOfRange,
    /// Holds `"`, CR, LF or another control byte, which would end the quoted
    /// string or the command line.
    ForbiddenByte,
    /// A payload in text data format that holds Ctrl+Z (0x1A) or ESC (0x1B):
    /// data mode would end or cancel at that byte. Configure
    /// [`DataFormat::Hex`](crate::DataFormat::Hex) to send it.
    NeedsHexFormat,
    /// The command line would exceed the line buffer (too many topics).
    LineTooLong,
    /// A topic wildcard where MQTT 3.1.1 forbids it (section 4.7): `+` or
    /// `#` in a topic name (publish, will), or in a subscription filter a
    /// wildcard that is not a whole level (`a+`, `a/b#`) or a `#` that is not
    /// the last level (`a/#/b`).
    Wildcard,
    /// The value is in use (a msgID the client has in flight).
    InUse,
    /// The message (topic, payload and 14 bytes of bookkeeping) is larger
    /// than a supervisor's whole outbox: it could never be stored.
    LargerThanOutbox,
}

/// How a stage of a command ran out of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Stage {
    /// No `OK`/`ERROR` for the command line within `Config::command_timeout`.
    Response,
    /// No `>` prompt for a data-mode publish within `Config::command_timeout`.
    Prompt,
    /// No deferred `+QMTxxx: id,...` result within the operation's deadline.
    Result,
}

/// The modem refused the command line itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ModemError {
    /// `ERROR`.
    Error,
    /// `+CME ERROR: <n>`.
    Cme(u16),
    /// `+CMS ERROR: <n>`.
    Cms(u16),
}

/// Why AT+QMTOPEN failed (`+QMTOPEN: id,<result>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum OpenError {
    /// -1: failed to open the network.
    NetworkFailed,
    /// 1: wrong parameter.
    WrongParameter,
    /// 2: the MQTT identifier is occupied (the client is already open, e.g.
    /// after an MCU-only reset: close it and open again).
    IdentifierOccupied,
    /// 3: failed to activate PDP.
    PdpActivationFailed,
    /// 4: failed to parse the domain name.
    DnsFailed,
    /// 5: network disconnection error.
    NetworkDisconnected,
    /// A result code the reference does not name.
    Other(i16),
}

impl OpenError {
    pub(crate) fn from_code(code: i16) -> Self {
        match code {
            -1 => Self::NetworkFailed,
            1 => Self::WrongParameter,
            2 => Self::IdentifierOccupied,
            3 => Self::PdpActivationFailed,
            4 => Self::DnsFailed,
            5 => Self::NetworkDisconnected,
            n => Self::Other(n),
        }
    }
}

/// The server's CONNACK refusal (`+QMTCONN: id,0,<ret_code>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ConnackCode {
    /// 1: unacceptable protocol version.
    UnacceptableProtocolVersion,
    /// 2: identifier rejected.
    IdentifierRejected,
    /// 3: server unavailable.
    ServerUnavailable,
    /// 4: bad user name or password.
    BadCredentials,
    /// 5: not authorized.
    NotAuthorized,
    /// A code the reference does not name.
    Other(u8),
}

impl ConnackCode {
    pub(crate) fn from_code(code: u8) -> Self {
        match code {
            1 => Self::UnacceptableProtocolVersion,
            2 => Self::IdentifierRejected,
            3 => Self::ServerUnavailable,
            4 => Self::BadCredentials,
            5 => Self::NotAuthorized,
            n => Self::Other(n),
        }
    }
}

/// Everything that can go wrong. Each variant says whether the client can go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Error {
    /// An argument breaks the reference's rules. Nothing was sent to the modem;
    /// the client can go on.
    InvalidArgument {
        /// The argument.
        field: Field,
        /// What is wrong with it.
        problem: Problem,
    },
    /// The modem answered the command line with an error. Nothing changed on
    /// the modem; the client can go on (the command may be wrong for the
    /// client's state, e.g. publishing before connecting).
    Modem(ModemError),
    /// A stage of the command ran out of time. The modem may be asleep,
    /// rebooting or unplugged; the driver stays usable and the next command
    /// tries again. The channel is fenced: before the next command line, the
    /// driver sends a bare `AT` and discards every answer that belongs to the
    /// command that timed out ([`Stats::late_answers`](crate::Stats::late_answers));
    /// a deferred result that arrives after its deadline is dropped and counted
    /// ([`Stats::stale_results`](crate::Stats::stale_results)).
    Timeout(Stage),
    /// Writing to the UART failed, or the UART did not take the bytes (or
    /// `flush` did not complete) within `Config::tx_timeout`: for this
    /// command's line, or for the re-synchronisation that had to go before
    /// it (then the line never went out). The command may be cut short on
    /// the wire; before the next command the driver ends the half line (CR)
    /// and re-synchronises, so the modem never glues it to the next one. The
    /// client can go on.
    Write,
    /// The modem restarted (`RDY` or another start-up line) while this
    /// operation was pending: its line went out before the start-up line
    /// (a line that went out after it reached the restarted modem, which
    /// answers it). Its MQTT clients, their settings and its echo
    /// mode are back to the defaults (the driver's own copy of the settings
    /// too): configure, open and connect again. The driver stays usable.
    ModemRebooted,
    /// AT+QMTOPEN reported a failure; the client stays closed and can open again.
    Open(OpenError),
    /// The server refused the connection (CONNACK code). The TCP link stays
    /// open; connect again with other credentials or close.
    ConnectRefused(ConnackCode),
    /// The modem could not send the packet (result 2 of CONN/SUB/UNS/PUB),
    /// after its own retries. The link is probably gone; expect `+QMTSTAT`.
    SendFailed,
    /// AT+QMTCLOSE or AT+QMTDISC answered -1 (failed).
    CloseFailed,
    /// The modem closed the client's link (`+QMTSTAT`) while this operation
    /// waited for its result. Open and connect again.
    LinkClosed(LinkClosedReason),
    /// Every in-flight publish slot is busy (the `INFLIGHT` parameter of
    /// [`State`](crate::State)), returned by
    /// [`MqttClient::try_publish`](crate::MqttClient::try_publish) only
    /// ([`publish`](crate::MqttClient::publish) waits for a slot). Retry when
    /// one completes; the client can go on.
    TooManyInFlight,
    /// Every event subscription is taken (the `SUBSCRIBERS` parameter of
    /// [`State`](crate::State)); drop one first.
    TooManySubscribers,
    /// A supervisor's outbox has no room for the message now, returned by
    /// [`Link::try_publish`](crate::supervisor::Link::try_publish) only
    /// ([`publish`](crate::supervisor::Link::publish) waits for room).
    /// Nothing was stored; retry when messages were delivered.
    OutboxFull,
    /// A QoS 0 message while the supervised link is not online: QoS 0 is
    /// never stored, so it is refused (and counted). The link can go on.
    Offline,
    /// The module may have been asleep and did not answer the driver's
    /// wake-up `AT`s (sent every `Config::wake_probe`, after a pulse of the
    /// board's wake pin if the runner has one) within `Config::wake_timeout`:
    /// it may be in deep sleep with no wake pin wired, or unplugged. Nothing
    /// of the command was sent. The client can go on: the next command tries
    /// to wake the module again.
    WakeTimeout,
    /// The modem answered with lines the driver could not parse. The client
    /// can go on.
    UnexpectedResponse,
    /// A command's own `parse` failed, or its answer did not fit: atat's
    /// error, kept as a compact value. The client can go on.
    At(AtError),
    /// The [`Config`](crate::Config) given to [`new`](crate::new) holds
    /// values that contradict each other; no driver was created. (`new`
    /// returns the [`ConfigError`](crate::ConfigError) itself; this variant
    /// lets `?` carry it into an `Error`.)
    Config(ConfigError),
    /// A command the driver owns, refused by
    /// [`Modem::send`](crate::Modem::send): a line that opens, closes,
    /// connects, disconnects, subscribes, unsubscribes or publishes, or sets
    /// what the driver keeps track of (`AT+QMTCFG="dataformat"` or
    /// `"timeout"` write forms, the power settings). Sent behind the
    /// driver's back it would bypass the msgID allocator, the operation
    /// slots or the receive-format tracker. Nothing was sent; use the
    /// [`MqttClient`](crate::MqttClient) method instead.
    OwnedByDriver,
    /// The flash outbox's journal failed (feature `flash-outbox`): see
    /// [`FlashError`]. Nothing was stored.
    #[cfg(feature = "flash-outbox")]
    Flash(FlashError),
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::InvalidArgument { field, problem } => {
                write!(f, "invalid argument {field:?}: {problem:?} (nothing sent)")
            }
            Error::Modem(e) => write!(f, "modem refused the command: {e:?}"),
            Error::Timeout(s) => write!(f, "timed out waiting for the {s:?}"),
            Error::Write => f.write_str("UART write failed or stalled past tx_timeout"),
            Error::Open(e) => write!(f, "open failed: {e:?}"),
            Error::ConnectRefused(c) => write!(f, "connection refused: {c:?}"),
            Error::SendFailed => f.write_str("the modem failed to send the packet"),
            Error::CloseFailed => f.write_str("close/disconnect failed"),
            Error::LinkClosed(r) => write!(f, "link closed: {r:?}"),
            Error::ModemRebooted => f.write_str("the modem restarted"),
            Error::TooManyInFlight => f.write_str("too many publishes in flight"),
            Error::TooManySubscribers => f.write_str("every event subscription is taken"),
            Error::OutboxFull => f.write_str("the outbox is full"),
            Error::Offline => f.write_str("the link is offline (QoS 0 is not stored)"),
            Error::WakeTimeout => f.write_str("the module did not wake up in time (nothing sent)"),
            Error::UnexpectedResponse => f.write_str("unexpected response from the modem"),
            Error::At(e) => write!(f, "atat: {e:?}"),
            Error::Config(e) => write!(f, "configuration refused: {e}"),
            Error::OwnedByDriver => {
                f.write_str("the driver owns this command: use the client's method (nothing sent)")
            }
            #[cfg(feature = "flash-outbox")]
            Error::Flash(e) => write!(f, "flash outbox: {e:?}"),
        }
    }
}

impl core::error::Error for Error {}

impl Error {
    /// True when the error means the client's MQTT link is (or must be
    /// assumed) gone: open and connect again before the next operation.
    pub fn link_lost(&self) -> bool {
        matches!(
            self,
            Error::LinkClosed(_) | Error::ModemRebooted | Error::SendFailed
        )
    }
}

/// Why the flash outbox's journal failed (feature `flash-outbox`,
/// `supervisor::Journal`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
#[cfg(feature = "flash-outbox")]
pub enum FlashError {
    /// The region is not whole pages of the flash, lies outside it, or has
    /// fewer than 2 pages (the queue needs one to turn to while it erases
    /// another).
    Region,
    /// The flash failed to read.
    Read,
    /// The flash failed to write (the message being stored is not stored).
    Write,
    /// The flash failed to erase a page.
    Erase,
    /// No room in the region now (messages must be delivered first).
    Full,
    /// The message (10 bytes of bookkeeping, topic, payload) is larger than
    /// a page of the region, or than the buffer given to the journal.
    TooLarge,
    /// `sequential-storage` found the region in a state it could not
    /// repair. `Journal::open_erased` makes it usable again, losing what it
    /// held.
    Corrupted,
}

#[cfg(feature = "flash-outbox")]
impl core::fmt::Display for FlashError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Debug::fmt(self, f)
    }
}

/// atat's error, kept without atat's large tables: formatting an
/// `atat::Error` with `Debug` pulls the names of every CME error code into
/// the firmware (about 10 KiB of flash); this keeps the codes as numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum AtError {
    /// Serial read error.
    Read,
    /// Serial write error.
    Write,
    /// No answer in time.
    Timeout,
    /// The answer was not valid.
    InvalidResponse,
    /// The command was aborted.
    Aborted,
    /// The answer did not parse into the command's response type.
    Parse,
    /// The answer did not fit.
    Capacity,
    /// `ERROR`.
    Error,
    /// `+CME ERROR: <n>`.
    Cme(u16),
    /// `+CMS ERROR: <n>`.
    Cms(u16),
    /// A connection error (atat's `ConnectionError` as a number).
    Connection(u8),
    /// Any other error atat reports.
    Other,
}

impl From<atat::Error> for AtError {
    fn from(e: atat::Error) -> Self {
        match e {
            atat::Error::CmeError(c) => Self::Cme(c.into()),
            atat::Error::CmsError(c) => Self::Cms(c.into()),
            e => Self::without_code(e),
        }
    }
}

impl AtError {
    /// An error of atat but a CME/CMS code (those are [`AtError::Other`]
    /// here): without the match over every 3GPP code.
    fn without_code(e: atat::Error) -> Self {
        match e {
            atat::Error::Read => Self::Read,
            atat::Error::Write => Self::Write,
            atat::Error::Timeout => Self::Timeout,
            atat::Error::InvalidResponse => Self::InvalidResponse,
            atat::Error::Aborted => Self::Aborted,
            atat::Error::Parse => Self::Parse,
            atat::Error::Capacity => Self::Capacity,
            atat::Error::Error => Self::Error,
            atat::Error::ConnectionError(c) => Self::Connection(c as u8),
            _ => Self::Other,
        }
    }
}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Self {
        Error::Config(e)
    }
}

impl From<atat::Error> for Error {
    fn from(e: atat::Error) -> Self {
        Error::At(e.into())
    }
}

impl Error {
    /// The error of one of the driver's own commands whose `parse` refused
    /// the information lines. Given the lines (never an error), those parse
    /// functions fail with `atat::Error::Parse` or another variant without
    /// a code; a CME/CMS code (only in an `Err` given to `parse`) cannot
    /// come from them, so it is not converted here: the conversion of
    /// atat's codes (a match over every 3GPP code, about 2.3 KB of flash)
    /// stays out of firmware that does not use `Modem::send`.
    pub(crate) fn from_own_parse(e: atat::Error) -> Self {
        Error::At(AtError::without_code(e))
    }
}

/// A setting of [`Config`](crate::Config), as [`ConfigError`] names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Setting {
    /// [`Config::command_timeout`](crate::Config::command_timeout).
    CommandTimeout,
    /// [`Config::tx_timeout`](crate::Config::tx_timeout).
    TxTimeout,
    /// [`Config::open_timeout`](crate::Config::open_timeout).
    OpenTimeout,
    /// [`Config::close_timeout`](crate::Config::close_timeout).
    CloseTimeout,
    /// The CONN/SUB/UNS/PUB result deadline: [`Config::packet_deadline`](crate::Config::packet_deadline)
    /// when set, else `pkt_timeout x (retry_times + 1)` +
    /// [`Config::result_margin`](crate::Config::result_margin).
    PacketDeadline,
    /// [`Config::quiet_gap`](crate::Config::quiet_gap).
    QuietGap,
    /// [`Config::read_error_pause`](crate::Config::read_error_pause).
    ReadErrorPause,
    /// [`Config::wake_timeout`](crate::Config::wake_timeout).
    WakeTimeout,
    /// [`Config::wake_probe`](crate::Config::wake_probe).
    WakeProbe,
}

/// Why [`Config::validate`](crate::Config::validate) (and so [`new`](crate::new)) refused a
/// [`Config`](crate::Config): values that contradict each other or the modem. The list of
/// checks is in [`Config`](crate::Config)'s documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ConfigError {
    /// This duration is zero.
    Zero(Setting),
    /// `default_pkt_timeout_s` is outside the modem's 1-60 s.
    PacketTimeout,
    /// `default_retry_times` is above the modem's 10.
    RetryTimes,
    /// This deadline waits for modem bytes but is shorter than two
    /// [`Config::quiet_gap`](crate::Config::quiet_gap)s: an incomplete frame could make it miss every
    /// answer, and never be given up.
    ShorterThanQuietGaps(Setting),
    /// [`Config::wake_probe`](crate::Config::wake_probe) is not longer than
    /// [`Config::quiet_gap`](crate::Config::quiet_gap): the answers to the
    /// wake-up `AT`s could keep an incomplete frame held for ever.
    ProbeWithinQuietGap,
}

impl core::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ConfigError::Zero(s) => write!(f, "{s:?} is zero"),
            ConfigError::PacketTimeout => f.write_str("default_pkt_timeout_s is outside 1-60 s"),
            ConfigError::RetryTimes => f.write_str("default_retry_times is above 10"),
            ConfigError::ShorterThanQuietGaps(s) => {
                write!(f, "{s:?} is shorter than two quiet gaps")
            }
            ConfigError::ProbeWithinQuietGap => {
                f.write_str("wake_probe is not longer than the quiet gap")
            }
        }
    }
}

impl core::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_parse_errors_convert_as_every_atat_error_does_but_the_codes() {
        let plain = [
            atat::Error::Read,
            atat::Error::Write,
            atat::Error::Timeout,
            atat::Error::InvalidResponse,
            atat::Error::Aborted,
            atat::Error::Parse,
            atat::Error::Capacity,
            atat::Error::Error,
        ];
        for (i, e) in plain.into_iter().enumerate() {
            assert_eq!(
                Error::from_own_parse(e.clone()),
                Error::from(e),
                "error {i}"
            );
        }
        // A code (never from the driver's own parse functions) keeps its
        // number through `From`, and is `Other` without it.
        let cme = atat::Error::CmeError(atat::CmeError::NotAllowed);
        assert_eq!(Error::from(cme.clone()), Error::At(AtError::Cme(3)));
        assert_eq!(Error::from_own_parse(cme), Error::At(AtError::Other));
    }
}
