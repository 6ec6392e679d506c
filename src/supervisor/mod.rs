//! A supervisor that keeps one MQTT client online for years: it brings the
//! link up (the modem answers, it is registered, the client is configured,
//! opened, connected and subscribed to its persistent set), notices every
//! way the link ends, backs off, and brings it up again; and it delivers
//! the QoS 1/2 messages handed to its outbox at least once across link
//! losses.
//!
//! ```text
//!   Connecting{attempt} --> Online --> Offline{reason} --+--> BackingOff{delay} --+
//!        ^          |                                     |        ^               |
//!        |          +-- (failed) --> Offline{reason} -----+        |               |
//!        |                          (the modem silent reset_after  |               |
//!        |                           times in a row) --> Resetting{how} ---------- |
//!        +-------------------------------------------------------------------------+
//! ```
//!
//! | what ends the link | what the supervisor does |
//! |---|---|
//! | `+QMTSTAT` with any code but 5 (1-7, 8-255) | ends at once (operations in flight end too); back off, open again |
//! | `+QMTSTAT: id,5` (the close after a DISCONNECT) | nothing: it ends no link the supervisor did not end itself |
//! | a publish whose result never comes (the driver's deadline) | ends the link; the message goes again |
//! | a publish that fails (`+QMTPUB: id,msgID,2`), `AT+QMTCONN?` right after says connected, and the broker answers a subscription again | nothing ends: a refusal of this message is counted; it goes again after `poll_interval`, and after `max_refusals` it leaves, [`Outcome::Refused`] with [`Error::SendFailed`] |
//! | the same, the broker does not answer the subscription (a broker gone, a NAT that forgot the link), or the client not connected | ends the link; nothing is counted; the message goes again |
//! | the same without subscriptions to ask with | the message is set aside and the next ones go; once the link proves itself (another message acknowledged, or a keep-alive period with nothing sent) the failure counts as a refusal; a second message failing meanwhile ends the link, uncounted |
//! | `ERROR` to a publish, `AT+QMTCONN?` right after says connected | nothing ends: the modem refused *this message*; it goes again after `poll_interval`, and after `max_refusals` refusals it leaves, [`Outcome::Refused`] |
//! | `ERROR` to publishes of two messages in a row, none taken in between, the client connected | ends the link: the modem refuses publishing as such (no refusal counted) |
//! | `ERROR` to a publish, the client not connected | ends the link (`NotConnected`); no refusal is counted; the message goes again |
//! | `AT+QMTCONN?` (every `health_check`) says the client is not connected | ends the link |
//! | the modem silent (a command or `AT` times out) | ends the link; `AT` until it answers; after `reset_after` such attempts in a row, `AT+QRST=1` ([`ResetKind::Software`]), then the board's [`HardReset`] every `reset_after` more (`AT+QRST=1` again without one) |
//! | the modem restarts (`RDY` or a power-down line) | ends at once; everything is configured again |
//! | registration lost (`AT+CEREG?` not 1 or 5) | waits for it up to `registration_deadline`, else backs off |
//! | `+QMTOPEN: id,2` (the modem still holds the client) | closes it and opens again |
//! | CONNACK refused, open failed | backs off and tries again |
//!
//! Delivery: a QoS 1/2 message stays in the outbox until its
//! `+QMTPUB: id,msgID,0` arrives, and is sent again after a link loss,
//! always under the msgID it got when it was stored. So the broker may get
//! it twice: when the link dropped after the broker received it but before
//! the modem reported the acknowledgement, and when the acknowledgement
//! came after the driver's deadline. MQTT's DUP flag is not available
//! through the modem, so a receiver that must not act twice tells copies
//! apart by the message itself (a sequence number in the payload) or stays
//! idempotent. QoS 0 messages are never stored across a link loss: refused
//! while offline ([`Error::Offline`]), and dropped (counted, and
//! [`Outcome::Dropped`] on their ticket) if the link ends before they went
//! out.
//!
//! **Order.** Messages go out in the order they were stored, as MQTT 3.1.1
//! (4.6) asks of a client: up to [`in_flight`](SupervisorConfig::in_flight)
//! wait for their results at once, but the outbox hands a lane the next
//! message only once the modem took the `AT+QMTPUB` of the one before (or
//! refused it), so no later message's line is written before an earlier
//! one's. After a link loss the messages that were in flight are the
//! oldest: they go again first, then the rest, in order (so the broker may
//! see a copy of a message after later ones; the first copies arrive in
//! order). A message sent again on the same link goes behind later ones:
//! after a refusal (`ERROR`, or a failure the broker's answer proved the
//! message's, see below) or while its msgID still waits for an earlier
//! send's late result; and one set aside (no subscriptions, below) lets
//! the later ones pass.
//!
//! **What survives a reset of the microcontroller.** The outbox is RAM (the
//! [`SupervisorState`]): it keeps messages across link losses and modem
//! restarts, and loses them all when the microcontroller resets (a
//! watchdog, a brown-out, a firmware update, a standby that powers RAM
//! down). With the feature `flash-outbox`, a `FlashOutbox` has the `Link`'s
//! `try_publish` and `publish` (async: a QoS 1/2 message is journalled in a
//! `NorFlash` region before its ticket is returned), removes each message
//! from flash once it ended, and after a reset sends what flash holds again
//! under the same msgIDs. QoS 0 goes to the RAM outbox only. A receiver sees
//! every message whose ticket was given at least once, and a copy when the
//! reset came between the acknowledgement and the removal from flash: it
//! tells copies apart by the payload, as after a link loss.
//!
//! **No message blocks the outbox.** A message is judged when it is
//! stored against what the supervisor is *configured* with
//! ([`SupervisorConfig::send_format`]: its topic, and its payload's size
//! and bytes in that format), not against what the modem holds at that
//! moment (text before the first connect and while it restarts): one that
//! can never be sent is refused then ([`Link::try_publish`]'s error), and
//! nothing is stored. Whatever can still refuse it later ends that
//! message, never the link: the driver checks it again when it writes it,
//! and if that check fails with the driver at the configured format the
//! message leaves, refused (a message stored under other rules: a store
//! kept across a change of configuration); with the driver at another
//! format the modem lost its configuration (a restart) and the link ends.
//! When the modem answers `ERROR` to its `AT+QMTPUB` (or to its payload),
//! the lane asks `AT+QMTCONN?`:
//!
//! - not connected, or no answer: the link is gone; it ends, and no refusal
//!   is counted;
//! - connected, and the modem refused another message just before, with no
//!   publish taken in between: the modem refuses publishing as such, not
//!   this message; the link ends (`Failed`), which opens and connects it
//!   again, and no refusal is counted;
//! - connected otherwise: the modem refused *this message*. A refusal is
//!   counted on its record and the same lane sends it again after
//!   `poll_interval`; at [`max_refusals`](SupervisorConfig::max_refusals)
//!   it leaves, [`Outcome::Refused`] with the modem's error, counted in
//!   [`Counters::refused`].
//!
//! So one message never ends the link, and a modem that refuses every
//! publish, link after link, costs at most one message per `max_refusals`
//! links.
//!
//! When the modem reports a publish failed (`+QMTPUB: id,msgID,2`: it
//! gave up after its retransmissions), the broker may be gone, a NAT may
//! have forgotten an idle link (the modem learns it only then), or the
//! broker may refuse this one message. The lane asks `AT+QMTCONN?`: not
//! connected, the link ends. Connected: it asks the broker, with the first
//! subscription of the persistent set again (`AT+QMTSUB`; the broker sends
//! that filter's retained messages again, as after every connect). No
//! answer: the link is gone; it ends, nothing is counted, and the message
//! goes again on the next link. A SUBACK: the broker hears the device, and
//! the failure was this message's: a refusal is counted, the same lane
//! sends it again after `poll_interval`, and at `max_refusals` it leaves,
//! [`Outcome::Refused`] with [`Error::SendFailed`], counted in
//! [`Counters::refused`]. So a message the broker never acknowledges is
//! sent `max_refusals` times and ends no link, and a dead link costs no
//! message.
//!
//! Without subscriptions there is nothing to ask the broker with: the
//! message is then *set aside* (no lane takes it; the ones behind it go,
//! and may reach the broker before it) until the link proves itself: a
//! QoS 1/2 message acknowledged, or the link up for a keep-alive period plus
//! the modem's wait for an answer plus `poll_interval` with nothing sent
//! (the modem pinged the broker, and a broker that did not answer would
//! have ended the link); then the failure counts as a refusal and the
//! message goes again (or leaves, as above). A second message failing
//! while one is set aside ends the link, uncounted; a link that ends puts
//! the message back uncounted.
//!
//! A message to which the modem never answers at all (a timeout) is taken
//! for a silent modem, not refused.
//!
//! **Liveness.** [`Link::progress`] is when the supervisor last made
//! progress (the modem answered it, a message went, the link came up), and
//! [`Link::alive`] says whether that was recent: feed a hardware watchdog
//! with it, so that a modem no reset brought back, or a supervisor stuck,
//! ends in a reset of the whole device (docs/design.md, "Liveness").
//!
//! Every message stored ends with one [`Outcome`], which its [`Ticket`]
//! reads ([`Link::delivered`], [`Link::outcome`]) and [`Link::publish`]
//! returns: [`Sent`](Outcome::Sent) (QoS 0),
//! [`Acknowledged`](Outcome::Acknowledged) (QoS 1/2),
//! [`Dropped`](Outcome::Dropped) (QoS 0, a link loss) or
//! [`Refused`](Outcome::Refused) with its error.

mod backoff;
#[cfg(feature = "flash-outbox")]
mod durable;
mod duty;
mod outbox;

use core::cell::{Cell, RefCell};
use core::future::{poll_fn, Future};
use core::pin::{pin, Pin};
use core::task::Poll;

use embassy_futures::select::{select, select3, select_slice, Either, Either3};
use embassy_sync::blocking_mutex::Mutex as BlockingMutex;
use embassy_time::{Duration, Instant, Timer};

#[cfg(feature = "flash-outbox")]
pub use crate::error::FlashError;
pub use backoff::Backoff;
#[cfg(feature = "flash-outbox")]
pub use durable::{
    FlashOutbox, FlashOutboxConfig, FlashStats, Journal, JournalEntry, Keep, Pending,
};
pub use duty::{DutyCycle, Mode, OnlineTimers};
pub use outbox::{OutboxStats, Outcome, Ticket};

use crate::channel::WriteLine;
use crate::client_table::{LinkEnd, Owner};
use crate::commands::{
    Attention, ConnectionState, EchoOff, QueryConnectionState, QueryRegistration, ResetModule, Will,
};
use crate::error::{Error, Field, LinkClosedReason, OpenError, Problem, Stage};
use crate::event::Grant;
use crate::modem::Modem;
use crate::mqtt_client::{check_payload, MqttClient, PublishOptions, Setting, Step};
use crate::ring::RingStore;
use crate::sync::{CriticalSectionRawMutex, RawMutex};
use crate::types::{check_topic, ClientId, DataFormat, MqttVersion, QoS, Subscription};
use crate::wait::{wait, WaitSet};
use backoff::Delays;
use outbox::{Outbox, OutboxMeta, PushError, Taken, Turn};

/// Most outbox messages a supervisor has in flight at once.
pub const MAX_IN_FLIGHT: usize = 4;
// `lanes` runs exactly this many lanes.
const _: () = assert!(MAX_IN_FLIGHT == 4);

/// What a [`Supervisor`] does for one client. Build it with
/// [`SupervisorConfig::new`] and change what you need.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct SupervisorConfig<'a> {
    /// The modem's client (`tcpconnectID`).
    pub client: ClientId,
    /// The broker.
    pub host: &'a str,
    /// The broker's port.
    pub port: u16,
    /// The MQTT client identifier.
    pub client_id: &'a str,
    /// User name and password (`AT+QMTCONN`). Never logged.
    pub username: Option<&'a str>,
    /// The password (needs a user name).
    pub password: Option<&'a str>,
    /// The will the broker publishes when the link dies (`AT+QMTCFG="will"`).
    pub will: Option<Will<'a>>,
    /// Keep-alive, 0-3600 s (`AT+QMTCFG="keepalive"`). Default 120 s.
    pub keepalive_s: u16,
    /// Clean session (`AT+QMTCFG="session"`). With `false`, the broker keeps
    /// the subscriptions and queues QoS 1/2 messages while the device is
    /// offline; they arrive after it connects again. Default `true`.
    pub clean_session: bool,
    /// MQTT version (`AT+QMTCFG="version"`); `None` keeps the modem's.
    pub version: Option<MqttVersion>,
    /// Packet timeout 1-60 s and retransmissions 0-10
    /// (`AT+QMTCFG="timeout"`). Defaults 10 s, 3.
    pub pkt_timeout_s: u8,
    /// Retransmissions.
    pub retry_times: u8,
    /// Have the modem report each retransmission of a publish
    /// (`+QMTPUB: id,msgID,1,<n>`, the third field of
    /// `AT+QMTCFG="timeout"`). Progress only: the message still stays in the
    /// outbox until its final result. Default `false`.
    pub timeout_notice: bool,
    /// How payloads are sent (`AT+QMTCFG="dataformat"`); reception is hex
    /// unless the driver's [`Config::receive_text`](crate::Config::receive_text).
    pub send_format: DataFormat,
    /// The persistent set of subscriptions, made again after every connect.
    /// Messages on topics none of them matches are dropped by the driver
    /// (counted in [`Stats::messages_filtered`](crate::Stats::messages_filtered)).
    pub subscriptions: &'static [Subscription<'static>],
    /// Back-off between attempts.
    pub backoff: Backoff,
    /// How long to wait for the modem to answer `AT` before backing off.
    /// Default 30 s.
    pub modem_deadline: Duration,
    /// How long to wait for registration (`AT+CEREG?` 1 or 5) before backing
    /// off. Default 180 s.
    pub registration_deadline: Duration,
    /// How often to ask `AT`/`AT+CEREG?` while waiting. Default 2 s.
    pub poll_interval: Duration,
    /// While online, how often to check `AT+QMTCONN?` (which also finds a
    /// modem gone silent). `Duration::from_ticks(0)` never does. Default 60 s.
    pub health_check: Duration,
    /// Outbox messages in flight at once, 1 to [`MAX_IN_FLIGHT`]. Default 4.
    pub in_flight: usize,
    /// How many times the modem may refuse one message (`ERROR` to its
    /// `AT+QMTPUB`, while `AT+QMTCONN?` right after says the client is
    /// connected; or `+QMTPUB: id,msgID,2` on a link that then proved
    /// itself, see the module's documentation) before it leaves the outbox,
    /// refused ([`Outcome::Refused`], [`Counters::refused`]). At least 1.
    /// Default 3.
    pub max_refusals: u8,
    /// Turn the command echo off (`ATE0`) at each start. Default `true`.
    pub echo_off: bool,
    /// Attempts in a row that end with the modem silent
    /// ([`OfflineReason::ModemSilent`]) before the supervisor restarts it:
    /// `AT+QRST=1` the first time, then the board's [`HardReset`] (if
    /// [`Supervisor::with_hard_reset`] gave one; else `AT+QRST=1` again)
    /// after every `reset_after` more. 0: never. Default 3.
    pub reset_after: u8,
    /// Online all the time (the default), or a duty cycle: online only at
    /// each wake, the module asleep in between ([`Mode::DutyCycle`],
    /// docs/duty-cycle.md).
    pub mode: Mode,
}

impl<'a> SupervisorConfig<'a> {
    /// A client `client_id` on `host:port`, with the defaults above.
    pub const fn new(client: ClientId, host: &'a str, port: u16, client_id: &'a str) -> Self {
        Self {
            client,
            host,
            port,
            client_id,
            username: None,
            password: None,
            will: None,
            keepalive_s: 120,
            clean_session: true,
            version: None,
            pkt_timeout_s: 10,
            retry_times: 3,
            timeout_notice: false,
            send_format: DataFormat::Text,
            subscriptions: &[],
            backoff: Backoff::new(),
            modem_deadline: Duration::from_secs(30),
            registration_deadline: Duration::from_secs(180),
            poll_interval: Duration::from_secs(2),
            health_check: Duration::from_secs(60),
            in_flight: MAX_IN_FLIGHT,
            max_refusals: 3,
            echo_off: true,
            reset_after: 3,
            mode: Mode::AlwaysOnline,
        }
    }
}

/// Why a supervised link went offline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum OfflineReason {
    /// The modem closed the link (`+QMTSTAT`).
    LinkClosed(LinkClosedReason),
    /// The modem restarted.
    ModemRebooted,
    /// The modem did not answer (`AT` or a command timed out).
    ModemSilent,
    /// The modem did not register within `registration_deadline`.
    NotRegistered,
    /// `AT+QMTCONN?` said the client is not connected.
    NotConnected,
    /// The broker rejected a subscription (granted 128).
    SubscriptionRejected,
    /// An operation failed: open, connect, subscribe, a publish.
    Failed(Error),
}

/// What a supervised link is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum LinkState {
    /// Bringing the link up; `attempt` counts from 1 since the last stable
    /// period.
    Connecting {
        /// The attempt.
        attempt: u32,
    },
    /// Connected and subscribed: messages go out.
    Online,
    /// The link ended.
    Offline {
        /// Why.
        reason: OfflineReason,
    },
    /// Waiting before the next attempt.
    BackingOff {
        /// How long.
        delay: Duration,
    },
    /// Restarting a modem that stopped answering
    /// ([`SupervisorConfig::reset_after`]), before the back-off.
    Resetting {
        /// How.
        how: ResetKind,
    },
    /// Duty cycle: the link closed as planned, the module left to sleep;
    /// the next wake at `until` at the latest ([`Mode::DutyCycle`]).
    Asleep {
        /// The end of the period.
        until: Instant,
    },
}

/// How a supervisor restarts a modem that stopped answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ResetKind {
    /// `AT+QRST=1`: the module restarts itself, if it still reads commands
    /// ([`Counters::software_resets`]).
    Software,
    /// The board's reset of the module: its RESET or PWRKEY pin, or its
    /// power ([`HardReset`], [`Counters::hardware_resets`]).
    Hardware,
}

/// The board's way to restart the modem without its UART: pulse its RESET
/// pin, its PWRKEY, or switch its power off and on. Give it with
/// [`Supervisor::with_hard_reset`]; a closure returning a future
/// (`|| async { ... }`) is one. The supervisor awaits it to the end (it is
/// the application's await, with no deadline of the supervisor's), then
/// backs off and wakes the modem with `AT` as after any failed attempt.
pub trait HardReset {
    /// Restarts the modem: returns once the modem is starting (for a PWRKEY,
    /// once the pulse is over).
    fn reset(&mut self) -> impl Future<Output = ()>;
}

impl<F: FnMut() -> Fut, Fut: Future<Output = ()>> HardReset for F {
    fn reset(&mut self) -> impl Future<Output = ()> {
        self()
    }
}

/// No hardware reset (the default): the supervisor restarts the modem with
/// `AT+QRST=1` only.
#[derive(Debug)]
pub enum NoHardReset {}

impl HardReset for NoHardReset {
    fn reset(&mut self) -> impl Future<Output = ()> {
        core::future::ready(())
    }
}

/// What a supervisor has done so far: for logs and telemetry. Counters wrap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct Counters {
    /// Times the link came online.
    pub connects: u32,
    /// Times it came online again after it had been online before.
    pub reconnects: u32,
    /// Times an online link ended.
    pub link_losses: u32,
    /// Attempts to bring the link up that failed.
    pub failed_attempts: u32,
    /// Outbox messages sent again (after a link loss or a failed publish),
    /// counted when the modem accepted the line again.
    pub resent: u32,
    /// Outbox messages the broker acknowledged (QoS 1/2) or the modem sent
    /// (QoS 0): [`Outcome::Acknowledged`], [`Outcome::Sent`].
    pub delivered: u32,
    /// QoS 0 messages refused while offline.
    pub refused_offline: u32,
    /// Stored messages that left the outbox refused ([`Outcome::Refused`]):
    /// the modem refused them (or failed them on a working link)
    /// `max_refusals` times, or the driver's check when it wrote them failed
    /// at the configured format.
    pub refused: u32,
    /// QoS 0 messages stored while online whose link ended before they went
    /// out: [`Outcome::Dropped`].
    pub qos0_dropped: u32,
    /// Milliseconds online, over every link so far (the current one included
    /// when it ends; see [`Link::time_online`]).
    pub online_ms: u64,
    /// Times the supervisor sent `AT+QRST=1` to a modem that stopped
    /// answering ([`ResetKind::Software`]).
    pub software_resets: u32,
    /// Times it had the board reset the modem ([`ResetKind::Hardware`]).
    pub hardware_resets: u32,
}

/// State changes a [`Link::changed`] caller may be behind and still see
/// each of them.
const HISTORY: usize = 8;

/// A supervisor's status, read and changed under its lock. Each value is
/// a `Cell` (a plain load or store, under the lock); only what is changed
/// through `&mut` (the waiters) is a `RefCell`, whose borrow is checked at
/// each use.
struct Status {
    state: Cell<LinkState>,
    /// Bumped at each state change.
    epoch: Cell<u32>,
    /// The last changes: `history[epoch % HISTORY]` is the state of `epoch`.
    history: [Cell<LinkState>; HISTORY],
    counters: Cell<Counters>,
    online_since: Cell<Option<Instant>>,
    /// Tasks waiting for a state change (any number of them).
    wakers: RefCell<WaitSet>,
    /// Publishes the modem took (its `OK`) on this link, wrapping.
    accepted: Cell<u32>,
    /// The last message the modem refused on this link, and `accepted` then.
    last_refusal: Cell<Option<(u32, u32)>>,
    /// When the supervisor last made progress ([`Link::progress`]).
    progress: Cell<Instant>,
    /// Duty cycle: the application asked for a wake.
    wake: RefCell<duty::WakeCell>,
    /// Since when messages are set aside on this link (a failure reported
    /// with the client connected), and `accepted` then.
    suspect: Cell<Option<(Instant, u32)>>,
}

impl Status {
    /// Changes the counters.
    fn count(&self, f: impl FnOnce(&mut Counters)) {
        let mut c = self.counters.get();
        f(&mut c);
        self.counters.set(c);
    }
}

/// A supervisor's status, shared by its task and its [`Link`] handles: the
/// part of its state that does not depend on the outbox size.
struct StatusCell<M: RawMutex>(BlockingMutex<M, Status>);

/// A supervisor's memory: the outbox (`OUTBOX` bytes, holding messages by
/// their size: 14 bytes + topic + payload each) and its state. Create it
/// with [`SupervisorState::new`] (a `const fn`) and pass it to [`new`].
/// `M` is the lock, the driver's [`State`](crate::State)'s.
pub struct SupervisorState<const OUTBOX: usize = 4096, M: RawMutex = CriticalSectionRawMutex> {
    outbox: BlockingMutex<M, RefCell<RingStore<OutboxMeta, OUTBOX>>>,
    status: StatusCell<M>,
}

impl<const OUTBOX: usize, M: RawMutex> SupervisorState<OUTBOX, M> {
    const SIZE_OK: () = assert!(
        OUTBOX >= 64 && OUTBOX <= u16::MAX as usize,
        "OUTBOX must be 64-65535 bytes"
    );

    /// Fresh supervisor memory.
    pub const fn new() -> Self {
        #[allow(clippy::let_unit_value)]
        let () = Self::SIZE_OK;
        Self {
            outbox: BlockingMutex::new(RefCell::new(RingStore::new(OutboxMeta::new()))),
            status: StatusCell(BlockingMutex::new(Status {
                state: Cell::new(LinkState::Connecting { attempt: 1 }),
                epoch: Cell::new(0),
                history: [const { Cell::new(LinkState::Connecting { attempt: 1 }) }; HISTORY],
                counters: Cell::new(Counters {
                    connects: 0,
                    reconnects: 0,
                    link_losses: 0,
                    failed_attempts: 0,
                    resent: 0,
                    delivered: 0,
                    refused_offline: 0,
                    refused: 0,
                    qos0_dropped: 0,
                    online_ms: 0,
                    software_resets: 0,
                    hardware_resets: 0,
                }),
                online_since: Cell::new(None),
                wakers: RefCell::new(WaitSet::new()),
                accepted: Cell::new(0),
                last_refusal: Cell::new(None),
                progress: Cell::new(Instant::from_ticks(0)),
                wake: RefCell::new(duty::WakeCell::new()),
                suspect: Cell::new(None),
            })),
        }
    }
}

impl<const OUTBOX: usize, M: RawMutex> Default for SupervisorState<OUTBOX, M> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const OUTBOX: usize, M: RawMutex> core::fmt::Debug for SupervisorState<OUTBOX, M> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "SupervisorState<{OUTBOX}>")
    }
}

/// The handle of a supervised client: publish through its outbox, watch its
/// state. `Copy`; use it from as many tasks as you like. While a supervisor
/// runs a client, use this handle (not [`MqttClient`]) to publish on it.
pub struct Link<'a, M: RawMutex = CriticalSectionRawMutex> {
    client: MqttClient<'a, M>,
    outbox: Outbox<'a, M>,
    status: &'a StatusCell<M>,
    /// The configured send format is hex: what every message is judged
    /// against, whatever the modem holds now.
    hex: bool,
}

impl<M: RawMutex> Clone for Link<'_, M> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<M: RawMutex> Copy for Link<'_, M> {}

/// The task that keeps the link up: spawn [`Supervisor::run`] (it never
/// returns). Several may run, one per client. `R` is the board's
/// [`HardReset`] ([`with_hard_reset`](Supervisor::with_hard_reset)), none by
/// default.
pub struct Supervisor<'a, M: RawMutex = CriticalSectionRawMutex, R: HardReset = NoHardReset> {
    /// Its client is the supervisor's way to the modem too (`command`):
    /// one copy of the driver's references, not two, in the task.
    link: Link<'a, M>,
    config: SupervisorConfig<'a>,
    hard_reset: Option<R>,
}

/// Creates a supervisor for `config.client` in `state`: returns its handle
/// and the task to spawn. Registers the subscriptions as the client's topic
/// filters with the driver.
pub fn new<'a, const OUTBOX: usize, M: RawMutex>(
    modem: Modem<'a, M>,
    state: &'a mut SupervisorState<OUTBOX, M>,
    config: SupervisorConfig<'a>,
) -> (Link<'a, M>, Supervisor<'a, M>) {
    let SupervisorState { outbox, status } = state;
    let client = modem.client(config.client);
    modem
        .core
        .clients
        .set_filters(config.client, Some(config.subscriptions));
    let link = Link {
        client,
        outbox: Outbox::new(&*outbox),
        status: &*status,
        hex: config.send_format == DataFormat::Hex,
    };
    (
        link,
        Supervisor {
            link,
            config,
            hard_reset: None,
        },
    )
}

impl<'a, M: RawMutex> Supervisor<'a, M> {
    /// With the board's reset of the modem, used when `AT+QRST=1` did not
    /// bring it back ([`SupervisorConfig::reset_after`]).
    pub fn with_hard_reset<R: HardReset>(self, reset: R) -> Supervisor<'a, M, R> {
        Supervisor {
            link: self.link,
            config: self.config,
            hard_reset: Some(reset),
        }
    }
}

impl<M: RawMutex> StatusCell<M> {
    fn with<R>(&self, f: impl FnOnce(&Status) -> R) -> R {
        self.0.lock(f)
    }

    /// Runs a function on the waiters of a state change, under the lock.
    fn lock(&self) -> impl FnMut(&mut dyn FnMut(&mut WaitSet)) + Unpin + '_ {
        move |f| self.with(|s| f(&mut s.wakers.borrow_mut()))
    }

    fn set_state(&self, state: LinkState) {
        self.with(|s| {
            let now = Instant::now();
            if let Some(since) = s.online_since.take() {
                let ms = now.saturating_duration_since(since).as_millis();
                s.count(|c| c.online_ms = c.online_ms.wrapping_add(ms));
            }
            if state == LinkState::Online {
                s.online_since.set(Some(now));
                s.progress.set(now);
                // Counted, under the same lock; the last link's refusal
                // forgotten.
                s.count(|c| {
                    if c.connects > 0 {
                        c.reconnects = c.reconnects.wrapping_add(1);
                    }
                    c.connects = c.connects.wrapping_add(1);
                });
                s.last_refusal.set(None);
            }
            s.state.set(state);
            let epoch = s.epoch.get().wrapping_add(1);
            s.epoch.set(epoch);
            s.history[epoch as usize % HISTORY].set(state);
            s.wakers.borrow_mut().wake();
        });
        info!("link: {}", StateName(state));
    }

    fn count(&self, f: impl FnOnce(&mut Counters)) {
        self.with(|s| s.count(f))
    }

    /// The modem answered, a message went, the link came up: progress.
    fn progress(&self) {
        self.with(|s| s.progress.set(Instant::now()))
    }
}

/// A state for the log.
struct StateName(LinkState);

#[cfg(feature = "defmt")]
impl defmt::Format for StateName {
    fn format(&self, f: defmt::Formatter) {
        defmt::write!(f, "{}", self.0)
    }
}

impl core::fmt::Debug for StateName {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Debug::fmt(&self.0, f)
    }
}

impl core::fmt::Display for StateName {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Debug::fmt(&self.0, f)
    }
}

impl<'a, M: RawMutex> Link<'a, M> {
    /// The supervised client.
    pub fn client(&self) -> ClientId {
        self.client.id()
    }

    /// The link's state now.
    pub fn state(&self) -> LinkState {
        self.status.with(|s| s.state.get())
    }

    /// The next state change after the one `seen` counts, waiting for it
    /// (`seen` is updated; start with 0). A caller that falls no more than 8
    /// changes behind sees every state, in order; one further behind skips
    /// to the current state.
    pub fn changed<'s>(&'s self, seen: &'s mut u32) -> impl Future<Output = LinkState> + 's {
        // The wait itself, not an async fn around it (a state machine less).
        wait(self.status.lock(), move |w, waker| {
            self.status.with(|s| {
                let behind = s.epoch.get().wrapping_sub(*seen);
                let r = if behind == 0 {
                    None
                } else if behind as usize <= HISTORY {
                    *seen = seen.wrapping_add(1);
                    Some(s.history[*seen as usize % HISTORY].get())
                } else {
                    *seen = s.epoch.get();
                    Some(s.state.get())
                };
                w.poll(&mut s.wakers.borrow_mut(), waker, r)
            })
        })
    }

    /// Waits until the link is online.
    pub fn wait_online(&self) -> impl Future<Output = ()> + '_ {
        wait(self.status.lock(), |w, waker| {
            self.status.with(|s| {
                let r = (s.state.get() == LinkState::Online).then_some(());
                w.poll(&mut s.wakers.borrow_mut(), waker, r)
            })
        })
    }

    /// When the supervisor last made progress: the modem answered one of its
    /// commands (`AT`, `AT+CEREG?`, a step of the bring-up, a health check),
    /// took or delivered a message, or the link came online. A modem that
    /// stopped answering, or a supervisor stuck, makes none. See
    /// [`alive`](Self::alive).
    pub fn progress(&self) -> Instant {
        self.status.with(|s| s.progress.get())
    }

    /// True if the supervisor made [`progress`](Self::progress) within
    /// `within`: the signal to feed a hardware watchdog with (docs/design.md,
    /// "Liveness"). Choose `within` above the longest quiet step: the
    /// back-off's `max` plus `modem_deadline` (silent modem, before a
    /// reset), `Config::open_timeout`, and `health_check` plus
    /// `Config::command_timeout` while online with no traffic (with
    /// `health_check` 0, an idle link makes no progress).
    pub fn alive(&self, within: Duration) -> bool {
        Instant::now().saturating_duration_since(self.progress()) <= within
    }

    /// What the supervisor has done so far.
    pub fn counters(&self) -> Counters {
        self.status.with(|s| s.counters.get())
    }

    /// Time online over every link so far, the current one included.
    pub fn time_online(&self) -> Duration {
        self.status.with(|s| {
            let current = s.online_since.get().map_or(0, |since| {
                Instant::now().saturating_duration_since(since).as_millis()
            });
            Duration::from_millis(s.counters.get().online_ms.wrapping_add(current))
        })
    }

    /// What the outbox holds.
    pub fn outbox(&self) -> OutboxStats {
        self.outbox.stats()
    }

    /// Can the message ever be sent? Judged against the configured send
    /// format, not the one the modem holds now (text before the first
    /// connect and after a restart).
    fn check(&self, topic: &str, payload: &[u8]) -> Result<(), Error> {
        check_message(topic, payload, self.hex)
    }

    fn online(&self) -> bool {
        self.state() == LinkState::Online
    }

    /// msgIDs from the driver's allocator for the client: one sequence for
    /// its subscriptions and publishes.
    fn next_id(&self) -> impl FnMut() -> u16 + 'a {
        let client = self.client;
        move || client.alloc_msg_id()
    }

    fn refuse_offline(&self) -> Error {
        self.status
            .count(|c| c.refused_offline = c.refused_offline.wrapping_add(1));
        Error::Offline
    }

    /// Hands a message to the outbox at once and returns its [`Ticket`]
    /// ([`delivered`](Self::delivered) waits for its [`Outcome`]):
    /// [`Error::OutboxFull`] when there is no room now. QoS 0 is taken only
    /// while the link is online ([`Error::Offline`] otherwise). A message
    /// that could never be sent in the configured
    /// [`send_format`](SupervisorConfig::send_format) (a payload too long
    /// for it, Ctrl+Z or ESC in text, a topic the driver refuses) is refused
    /// here, [`Error::InvalidArgument`], whatever the modem holds now.
    pub fn try_publish(
        &self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
    ) -> Result<Ticket, Error> {
        self.check(topic, payload)?;
        if qos == QoS::AtMostOnce && !self.online() {
            return Err(self.refuse_offline());
        }
        self.outbox
            .push(topic, payload, qos, retain, &mut self.next_id())
            .map_err(push_error)
    }

    /// Publishes through the outbox: waits for room, then for the message's
    /// [`Outcome`]: the broker's acknowledgement (QoS 1/2, across link
    /// losses) or the modem's report (QoS 0), or why it was not delivered.
    /// A message refused before it was stored (what
    /// [`try_publish`](Self::try_publish) returns as an error, but
    /// [`Error::OutboxFull`]: this waits for room) is
    /// [`Outcome::Refused`] at once; QoS 0 while the link is not online is
    /// `Refused(Error::Offline)`. Once the message is stored, dropping this
    /// future does not withdraw it: bound the wait with `with_timeout` as
    /// you like.
    pub async fn publish(&self, topic: &str, payload: &[u8], qos: QoS, retain: bool) -> Outcome {
        if let Err(e) = self.check(topic, payload) {
            return Outcome::Refused(e);
        }
        if qos == QoS::AtMostOnce && !self.online() {
            return Outcome::Refused(self.refuse_offline());
        }
        match self
            .outbox
            .push_wait(topic, payload, qos, retain, &mut self.next_id())
            .await
        {
            Ok(ticket) => self.delivered(ticket).await,
            Err(e) => Outcome::Refused(push_error(e)),
        }
    }

    /// Waits until the message of `ticket` ended, and says how: sent (QoS
    /// 0), acknowledged (QoS 1/2), dropped by a link loss (QoS 0), or
    /// refused. Ends for every message: a QoS 1/2 one when the broker
    /// acknowledged it (however many link losses that takes) or the modem
    /// refused it `max_refusals` times. See [`Outcome::Forgotten`] for a
    /// ticket read long after its message ended.
    pub async fn delivered(&self, ticket: Ticket) -> Outcome {
        self.outbox.wait_outcome(ticket).await
    }

    /// How the message of `ticket` ended; `None` while it is in the outbox.
    pub fn outcome(&self, ticket: Ticket) -> Option<Outcome> {
        self.outbox.outcome(ticket)
    }

    /// True while the message of `ticket` is in the outbox.
    pub fn pending(&self, ticket: Ticket) -> bool {
        self.outcome(ticket).is_none()
    }

    /// Waits until the outbox is empty.
    pub async fn flush(&self) {
        self.outbox.wait_empty().await
    }
}

/// The supervisor's general commands (the modem's, not the client's),
/// each sent through [`Supervisor::exchange`]: one state machine for all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum General {
    /// `AT`: does the modem answer?
    Attention,
    /// `ATE0`.
    EchoOff,
    /// `AT+CEREG?`: is the modem registered (home or roaming)?
    Registration,
    /// `AT+QMTCONN?`: does the modem say the client is connected? Asked by
    /// the publish lanes' checks and the health check.
    Connected,
    /// `AT+QRST=1`, sent even to a modem that answers nothing.
    Reset,
}

/// What the answer (its information lines `info`) to `cmd` says: registered
/// (`AT+CEREG?`), or the `client` connected (`AT+QMTCONN?`).
fn read_answer(cmd: General, client: ClientId, info: &[u8]) -> Result<bool, Error> {
    Ok(if cmd == General::Registration {
        atat::AtatCmd::parse(&QueryRegistration, Ok(info))
            .map_err(Error::from_own_parse)?
            .registered()
    } else {
        atat::AtatCmd::parse(&QueryConnectionState, Ok(info))
            .map_err(Error::from_own_parse)?
            .get(client)
            == Some(ConnectionState::Connected)
    })
}

/// The checks a message must pass to be sent in the format `hex`.
fn check_message(topic: &str, payload: &[u8], hex: bool) -> Result<(), Error> {
    check_topic(topic)?;
    check_payload(payload, hex, false).map(drop)
}

fn push_error(e: PushError) -> Error {
    match e {
        PushError::Full => Error::OutboxFull,
        PushError::TooLarge => Error::InvalidArgument {
            field: Field::Payload,
            problem: Problem::LargerThanOutbox,
        },
        #[cfg(feature = "flash-outbox")]
        PushError::InUse => Error::InvalidArgument {
            field: Field::MsgId,
            problem: Problem::InUse,
        },
    }
}

/// Why the modem ended a link.
fn link_end(end: LinkEnd) -> OfflineReason {
    match end {
        LinkEnd::Closed(r) => OfflineReason::LinkClosed(r),
        LinkEnd::Rebooted => OfflineReason::ModemRebooted,
    }
}

/// Why an operation ended the link. Not inlined: it is called at every
/// step of a bring-up and of a publish.
#[inline(never)]
fn reason(e: Error) -> OfflineReason {
    match e {
        Error::LinkClosed(r) => OfflineReason::LinkClosed(r),
        Error::ModemRebooted => OfflineReason::ModemRebooted,
        Error::Timeout(Stage::Response | Stage::Prompt) | Error::Write | Error::WakeTimeout => {
            OfflineReason::ModemSilent
        }
        e => OfflineReason::Failed(e),
    }
}

impl<M: RawMutex, R: HardReset> Supervisor<'_, M, R> {
    /// Keeps the link up, for ever.
    ///
    /// A supervisor dropped while it sent a message (its task dropped, the
    /// `Supervisor` made again on the same [`SupervisorState`]) left that
    /// message in flight: this one puts it back in the queue before its
    /// first attempt (QoS 1/2: sent again, at least once; QoS 0: dropped,
    /// as after any link loss).
    pub async fn run(mut self) -> ! {
        let mut delays = Delays::new(self.config.backoff);
        let status = self.link.status;
        status.progress();
        self.requeue();
        // Attempts since the last stable link (or the start), this one included.
        let mut attempt = 0u32;
        // Attempts in a row that ended with the modem silent.
        let mut silent = 0u32;
        loop {
            attempt = attempt.saturating_add(1);
            status.set_state(LinkState::Connecting { attempt });
            let started = Instant::now();
            let (reason, was_online) = match self.config.mode {
                Mode::DutyCycle(d) => self.duty(d).await,
                // One attempt: bring the link up, and keep it until it
                // ends (in `run`, not an async fn of its own).
                Mode::AlwaysOnline => {
                    let epoch = self.link.client.link().0;
                    match self.bring_up().await {
                        Err(r) => (r, false),
                        Ok(()) => {
                            // Online: send the outbox, watch the link, check
                            // its health, until the link ends.
                            status.with(|s| s.suspect.set(None));
                            status.set_state(LinkState::Online);
                            let send = self.lanes();
                            let checks = select(self.health(), self.probation());
                            let r = match select3(send, self.watch(epoch), checks).await {
                                Either3::First(r) | Either3::Second(r) => r,
                                Either3::Third(Either::First(r)) => r,
                                Either3::Third(Either::Second(never)) => match never {},
                            };
                            // A link end the driver saw (`+QMTSTAT`, a
                            // restart) is why: a publish refused in the same
                            // burst because the link was gone only follows.
                            let r = match self.link.client.link() {
                                (now, Some(end)) if now != epoch => link_end(end),
                                _ => r,
                            };
                            (r, true)
                        }
                    }
                }
            };
            status.set_state(LinkState::Offline { reason });
            warn!("link offline");
            if was_online {
                status.count(|c| c.link_losses = c.link_losses.wrapping_add(1));
                if Instant::now().saturating_duration_since(started)
                    >= self.config.backoff.stable_after
                {
                    delays.reset();
                    attempt = 0;
                }
            } else {
                status.count(|c| c.failed_attempts = c.failed_attempts.wrapping_add(1));
            }
            self.requeue();
            // If the modem may still hold the link open, close it (without
            // DISCONNECT, so the broker publishes the will). In `run` itself,
            // not an async fn of its own: a state machine less.
            let may_be_open = matches!(
                reason,
                OfflineReason::Failed(_)
                    | OfflineReason::NotConnected
                    | OfflineReason::SubscriptionRejected
            );
            if may_be_open {
                if let Err(e) = self.link.client.step(Step::Close).await {
                    debug!("close after a failed link: {}", e);
                }
            }
            // Results owed on the old link will not come: the messages go
            // again under their msgIDs, which must not wait for those slots.
            self.link.client.release_abandoned();
            silent = match reason {
                OfflineReason::ModemSilent => silent.saturating_add(1),
                _ => 0,
            };
            let every = u32::from(self.config.reset_after);
            if every > 0 && silent.is_multiple_of(every) && silent > 0 {
                // Restart the modem: the board's way (if there is one) from
                // the second time on, else `AT+QRST=1`. In `run` itself,
                // not an async fn of its own: a state machine less.
                let hard = silent / every > 1;
                match self.hard_reset.as_mut().filter(|_| hard) {
                    Some(board) => {
                        status.set_state(LinkState::Resetting {
                            how: ResetKind::Hardware,
                        });
                        status.count(|c| c.hardware_resets = c.hardware_resets.wrapping_add(1));
                        board.reset().await;
                    }
                    None => {
                        status.set_state(LinkState::Resetting {
                            how: ResetKind::Software,
                        });
                        status.count(|c| c.software_resets = c.software_resets.wrapping_add(1));
                        // `OK` if it still reads commands; a wedged one says
                        // nothing. Sent even if the modem does not answer the
                        // `AT` before it: it may still read commands
                        // (`exchange` forces it past the channel's fence).
                        if let Err(e) = self.exchange(General::Reset, None).await {
                            debug!("AT+QRST=1: {}", e);
                        }
                    }
                }
            }
            let delay = delays.next();
            status.set_state(LinkState::BackingOff { delay });
            Timer::after(delay).await;
        }
    }

    fn client(&self) -> MqttClient<'_, M> {
        self.link.client
    }

    /// The link ended (or a supervisor before this one did): every message
    /// in flight goes again; QoS 0 ones leave, dropped (counted).
    fn requeue(&self) {
        let dropped = self.link.outbox.requeue_all();
        if dropped > 0 {
            self.link
                .status
                .count(|c| c.qos0_dropped = c.qos0_dropped.wrapping_add(dropped));
        }
    }

    /// The driver's configuration.
    fn driver_config(&self) -> &crate::Config {
        self.link.client.core().config
    }

    /// Modem, registration, configuration, open, connect, subscriptions.
    async fn bring_up(&self) -> Result<(), OfflineReason> {
        let cfg = &self.config;
        // Borrowed: a copy of the client would be kept across every await.
        let c = &self.link.client;
        // `AT` until the modem answers (then `ATE0`), within `modem_deadline`;
        // then `AT+CEREG?` until registered (home or roaming), within
        // `registration_deadline`. One loop, one await of each kind, here
        // (not an async fn of its own): one state machine for both waits
        // and the steps after them.
        // Both kinds of steps end the same way when one fails: one exit.
        let e = 'failed: {
            let mut until = Instant::now() + cfg.modem_deadline;
            let mut cmd = General::Attention;
            // The pause before the next try (in `exchange`'s await).
            let mut pause = None;
            loop {
                // One await for the three commands and the pause.
                match (cmd, self.exchange(cmd, pause.take()).await) {
                    (General::Attention | General::EchoOff, Ok(_)) => {
                        cmd = if cmd == General::Attention && cfg.echo_off {
                            General::EchoOff
                        } else {
                            until = Instant::now() + cfg.registration_deadline;
                            General::Registration
                        };
                        continue;
                    }
                    (General::Attention, Err(e)) => debug!("no answer to AT: {}", e),
                    (_, Ok(true)) => break,
                    (_, Ok(false)) => debug!("not registered yet"),
                    (_, Err(e)) => break 'failed e,
                }
                if Instant::now() + cfg.poll_interval > until {
                    return Err(if cmd == General::Attention {
                        OfflineReason::ModemSilent
                    } else {
                        OfflineReason::NotRegistered
                    });
                }
                pause = Some(cfg.poll_interval);
            }
            // A duty cycle needs the broker to keep its session while it sleeps.
            let clean = cfg.clean_session && cfg.mode == Mode::AlwaysOnline;
            let recv = if self.driver_config().receive_text {
                DataFormat::Text
            } else {
                DataFormat::Hex
            };
            // The settings, open (closed first and opened again once if the
            // modem still holds the client: an MCU-only reset, a link given up
            // without closing), connect and subscriptions in this order, through
            // one await (one state machine, not one per step).
            let mut closed = false;
            // The subscription of the step (one per `AT+QMTSUB`).
            let mut one: [(&str, QoS); 1];
            let mut n = 0;
            loop {
                let step = match n {
                    0 => Step::Configure(Setting::KeepAlive(cfg.keepalive_s)),
                    1 => Step::Configure(Setting::Session(clean)),
                    2 => Step::Configure(Setting::Timeout(
                        cfg.pkt_timeout_s,
                        cfg.retry_times,
                        cfg.timeout_notice,
                    )),
                    3 => match cfg.version {
                        Some(v) => Step::Configure(Setting::Version(v)),
                        None => {
                            n += 1;
                            continue;
                        }
                    },
                    4 => Step::Configure(Setting::Will(cfg.will)),
                    5 => Step::Configure(Setting::DataFormat(cfg.send_format, recv)),
                    6 => Step::Open(cfg.host, cfg.port),
                    7 => Step::Close,
                    8 => Step::Connect(cfg.client_id, cfg.username, cfg.password),
                    _ => match cfg.subscriptions.get(n - 9) {
                        Some(s) => {
                            one = [(s.topic, s.qos)];
                            Step::Subscribe(&one)
                        }
                        None => return Ok(()),
                    },
                };
                match c.step(step).await {
                    Ok(g) if n >= 9 && g.get(0) == Some(Grant::Rejected) => {
                        warn!("subscription rejected");
                        return Err(OfflineReason::SubscriptionRejected);
                    }
                    Err(Error::Open(OpenError::IdentifierOccupied)) if n == 6 && !closed => {
                        warn!("the modem still holds the client: closing it");
                        closed = true;
                        n = 7;
                    }
                    // After the close (whatever its outcome), open again.
                    _ if n == 7 => n = 6,
                    Ok(_) => n += if n == 6 { 2 } else { 1 },
                    Err(e) => break 'failed e,
                }
            }
        };
        Err(reason(e))
    }

    /// A general command (the modem's, not the client's), with the
    /// driver's `command_timeout`: sends `cmd`'s line and waits for `OK`;
    /// then what its answer says ([`read_answer`]; `true` for a command
    /// without one). Progress when it succeeded. Through the AT channel, as
    /// `Modem`'s own commands go: one state machine for every general
    /// command of the supervisor. After `pause` if given (one await for
    /// both where a pause comes before a command).
    async fn exchange(&self, cmd: General, pause: Option<Duration>) -> Result<bool, Error> {
        if let Some(d) = pause {
            Timer::after(d).await;
        }
        let core = self.link.client.core();
        let timeout = core.config.command_timeout;
        let write: &dyn WriteLine = match cmd {
            General::Attention => &Attention,
            General::EchoOff => &EchoOff,
            General::Registration => &QueryRegistration,
            General::Connected => &QueryConnectionState,
            General::Reset => &ResetModule,
        };
        // `AT+QRST=1` goes out even to a modem that answers nothing (the
        // channel's fence, a bare `AT`, would otherwise hold it back).
        let force = cmd == General::Reset;
        let client = self.config.client;
        let r = core
            .channel
            .exchange_as(write, timeout, Owner::publish(None), force)
            .await
            .and_then(|a| match cmd {
                General::Registration | General::Connected => {
                    a.parse(|info| read_answer(cmd, client, info))
                }
                _ => Ok(true),
            });
        if r.is_ok() {
            self.link.status.progress();
        }
        r
    }

    /// The outbox's lanes (`in_flight` of them active): ends, with why, when
    /// the first lane whose publish fails ends the link (the others wait
    /// for messages, or are idle, for ever). One state machine for the
    /// online part of `run` and the duty cycle's wakes.
    async fn lanes(&self) -> OfflineReason {
        let lanes = self.config.in_flight.clamp(1, MAX_IN_FLIGHT);
        // The lanes are pinned where they are made, in this future's state,
        // and polled there through a slice (one call of a lane's poll, not
        // one per lane): an array of lanes made first and then moved into a
        // select was built twice on the stack (2 x 1,856 bytes in the poll
        // frame on a Cortex-M0, the deepest of the application's stack).
        let l = pin!([
            self.lane(0 < lanes),
            self.lane(1 < lanes),
            self.lane(2 < lanes),
            self.lane(3 < lanes),
        ]);
        select_slice(l as Pin<&mut [_]>).await.0
    }

    /// One lane: takes the oldest queued message, sends it, waits for its
    /// result; again. Ends (with why) when a publish ends the link. An idle
    /// lane (`active` false) waits for ever.
    ///
    /// The lanes send in the outbox's order: the outbox hands out one
    /// message at a time, with the turn ([`Turn`]), which the lane keeps
    /// until the modem took the message's line (or refused it), so no lane
    /// takes a later message and writes it first (the lanes are polled in a
    /// fixed order: lane 0, taking message 5 after message 1's result, used
    /// to get the AT lock before lane 1 with message 2). The turn is not
    /// held while a result is awaited: four are still in flight.
    async fn lane(&self, active: bool) -> OfflineReason {
        if !active {
            return poll_fn(|_| Poll::Pending).await;
        }
        let outbox = self.link.outbox;
        loop {
            let (t, turn): (Taken, Turn<'_, '_, M>) = outbox.take_wait().await;
            let t = &t;
            let mut turn = Some(turn);
            // Sends the message until it ends: delivered, or refused (it
            // leaves); `Err` when the link ended (the message goes back).
            // `turn` is released once the first line went out (or failed);
            // a message sent again on this link (refused, or its msgID
            // still busy) goes without it, at once: it went in order the
            // first time. Here, not an async fn of its own: a state
            // machine less.
            let r: Result<(), OfflineReason> = 'msg: {
                let status = self.link.status;
                let src = outbox.source(t.at);
                let msg_id = (t.qos != QoS::AtMostOnce).then_some(t.msg_id);
                // Sent before: on an earlier link, or by this lane after a failure.
                let mut again = t.sends > 1;
                // A pause before the next send (one await for both kinds).
                let mut pause = None;
                loop {
                    if let Some(d) = pause.take() {
                        Timer::after(d).await;
                    }
                    let options = PublishOptions::new(t.qos, t.retain).msg_id(msg_id);
                    // The link's client, borrowed (a copy would be kept across the
                    // await, in each lane), and the pending publish moved into its
                    // wait (not kept beside it).
                    let started = self.link.client.start_from(&src, options).await;
                    // The line went (or not): the next lane may take the next.
                    drop(turn.take());
                    let e = match started {
                        Err(Error::InvalidArgument {
                            problem: Problem::InUse,
                            ..
                        }) => {
                            // An earlier send of this msgID still waits for its
                            // late result (until its deadline): this lane keeps
                            // the message and tries again a little later; the
                            // other lanes go on with the next ones.
                            pause = Some(self.driver_config().quiet_gap);
                            continue;
                        }
                        Ok(pending) => {
                            status.with(|s| {
                                s.progress.set(Instant::now());
                                s.accepted.set(s.accepted.get().wrapping_add(1));
                                if again {
                                    s.count(|c| c.resent = c.resent.wrapping_add(1));
                                }
                            });
                            // Bound first: the publish (its slot) is dropped
                            // with its future, before what follows.
                            let result = pending.finish().await;
                            match result {
                                Ok(_) => {
                                    outbox.delivered(t.at);
                                    status.with(|s| {
                                        s.progress.set(Instant::now());
                                        s.count(|c| c.delivered = c.delivered.wrapping_add(1));
                                    });
                                    if t.qos != QoS::AtMostOnce {
                                        // The broker answered: the link works, and
                                        // what failed on it failed for itself.
                                        self.confirm_suspects();
                                    }
                                    break 'msg Ok(());
                                }
                                Err(e) => e,
                            }
                        }
                        Err(e) => e,
                    };
                    warn!("publish failed: {}", e);
                    again = true;
                    match e {
                        // (Every way out with an error goes through `reason`:
                        // for the errors here, `Failed`.)
                        // The driver's own check of the message (a later check: it
                        // was stored after the same check against the configured
                        // format). With the driver at the configured format, the
                        // message can never be sent: it leaves. Else the modem lost
                        // its configuration (a restart): the link ends.
                        Error::InvalidArgument { .. } => {
                            let core = self.link.client.core();
                            if core.clients.settings(self.config.client).send_hex != self.link.hex {
                                break 'msg Err(reason(e));
                            }
                            self.refuse(t, e);
                            break 'msg Ok(());
                        }
                        // The modem refused the line (or the payload), or gave up
                        // on it (`+QMTPUB: id,msgID,2`): this message, or the link?
                        // One path for both (one state machine for its waits).
                        Error::Modem(_) | Error::SendFailed => {
                            let refused = matches!(e, Error::Modem(_));
                            let general = if refused {
                                // A link the modem knows is gone? `AT+QMTCONN?`
                                // tells. And if it refused another message just
                                // before, with no publish taken in between, it
                                // refuses publishing as such. (A message refused
                                // for good clears `last_refusal`: the one before
                                // is still stored.)
                                status.with(|s| {
                                    let accepted = s.accepted.get();
                                    let prior = s.last_refusal.replace(Some((t.seq, accepted)));
                                    prior.is_some_and(|(seq, taken)| {
                                        seq != t.seq && taken == accepted
                                    })
                                })
                            } else {
                                // Given up on: a broker gone, a NAT that forgot the
                                // link? See the module's documentation.
                                if outbox.other_suspect(t.seq) {
                                    break 'msg Err(reason(e));
                                }
                                false
                            };
                            match self.exchange(General::Connected, None).await {
                                Ok(false) => break 'msg Err(OfflineReason::NotConnected),
                                Ok(_) if general => break 'msg Err(reason(e)),
                                Ok(_) => {}
                                Err(e) => break 'msg Err(reason(e)),
                            }
                            if !refused {
                                let Some(sub) = self.config.subscriptions.first() else {
                                    // No way to ask the broker: set aside until the
                                    // link proves itself (`confirm_suspects`).
                                    outbox.suspect(t.at);
                                    status.with(|s| {
                                        if s.suspect.get().is_none() {
                                            s.suspect.set(Some((Instant::now(), s.accepted.get())));
                                        }
                                    });
                                    break 'msg Ok(());
                                };
                                // Does the broker answer? The first subscription
                                // again: its SUBACK says so (and the broker sends
                                // its retained messages again, as after every
                                // connect). No answer: the link is gone, and the
                                // failure was not the message's.
                                if let Err(e) = self
                                    .link
                                    .client
                                    .step(Step::Subscribe(&[(sub.topic, sub.qos)]))
                                    .await
                                {
                                    break 'msg Err(reason(e));
                                }
                                status.progress();
                            }
                            if outbox.refused(t.at) >= self.config.max_refusals {
                                self.refuse(t, e);
                                break 'msg Ok(());
                            }
                            // Perhaps busy: the same message again, a little later.
                            pause = Some(self.config.poll_interval);
                        }
                        // A result that never came (`Timeout(Result)`): the
                        // link failed (`reason`), as any other error.
                        e => break 'msg Err(reason(e)),
                    }
                }
            };
            if let Err(r) = r {
                outbox.requeue(t.at);
                return r;
            }
        }
    }

    /// The link proved itself while messages were set aside after a failure
    /// (`+QMTPUB: id,msgID,2`): each failure counts as a refusal of its
    /// message, which goes again, or leaves at `max_refusals`
    /// ([`Outcome::Refused`] with [`Error::SendFailed`]).
    fn confirm_suspects(&self) {
        let status = self.link.status;
        if status.with(|s| s.suspect.take()).is_none() {
            return;
        }
        let left = self
            .link
            .outbox
            .confirm_suspects(self.config.max_refusals.max(1), Error::SendFailed);
        if left > 0 {
            warn!("messages refused: {}", left);
            status.count(|c| c.refused = c.refused.wrapping_add(left));
        }
    }

    /// How long the link must stay up, with nothing sent, after a failure
    /// for the failure to count against its message: a keep-alive period
    /// (the modem then pings the broker, and a broker that does not answer
    /// ends the link) and the modem's wait for the answer, plus
    /// `poll_interval`. Without a keep-alive, `health_check` (at least a
    /// minute) stands for it.
    fn probation_period(&self) -> Duration {
        let c = &self.config;
        let keepalive = match c.keepalive_s {
            0 => Duration::from_secs(60).max(c.health_check),
            k => Duration::from_secs(u64::from(k)),
        };
        let answer =
            Duration::from_secs(u64::from(c.pkt_timeout_s) * (u64::from(c.retry_times) + 1));
        keepalive + answer + c.poll_interval
    }

    /// While messages are set aside: once the link stayed up for
    /// [`probation_period`](Self::probation_period) with nothing sent,
    /// their failures count ([`confirm_suspects`](Self::confirm_suspects)).
    /// A publish sent meanwhile starts the period again (the modem pings
    /// only when idle); an acknowledged one confirms at once.
    async fn probation(&self) -> core::convert::Infallible {
        if !self.config.subscriptions.is_empty() {
            // Failures are judged at once, with a subscription (in `lane`):
            // nothing is ever set aside.
            return poll_fn(|_| Poll::Pending).await;
        }
        let status = self.link.status;
        let period = self.probation_period();
        loop {
            // One timer for both: a period after the failure set aside, or
            // (none) a period from now, then look again.
            let suspect = status.with(|s| s.suspect.get());
            let at = match suspect {
                Some((since, _)) => since + period,
                None => Instant::now() + period,
            };
            Timer::at(at).await;
            let Some((since, accepted)) = suspect else {
                continue;
            };
            // Quiet since: confirmed; a publish sent meanwhile: the period
            // starts again (under the same lock).
            let quiet = status.with(|s| match s.suspect.get() {
                Some((t, a)) if t == since && a == accepted => {
                    let quiet = a == s.accepted.get();
                    if !quiet {
                        s.suspect.set(Some((Instant::now(), s.accepted.get())));
                    }
                    quiet
                }
                _ => false,
            });
            if quiet {
                self.confirm_suspects();
            }
        }
    }

    /// The message of `t` can never be sent: it leaves, refused with `e`.
    fn refuse(&self, t: &Taken, e: Error) {
        warn!("message refused: {}", e);
        self.link.outbox.fail(t.at, e);
        self.link.status.with(|s| {
            s.count(|c| c.refused = c.refused.wrapping_add(1));
            s.last_refusal.set(None);
        });
    }

    /// Waits until the modem ends the client's link (`+QMTSTAT` but 5, a
    /// restart).
    fn watch(&self, epoch: u32) -> impl Future<Output = OfflineReason> + '_ {
        // The wait itself, not an async fn around it (a state machine less).
        let c = &self.link.client;
        let mut changed = c.link_changed(epoch);
        poll_fn(move |cx| {
            core::pin::Pin::new(&mut changed)
                .poll(cx)
                .map(|_| c.link().1.map_or(OfflineReason::ModemRebooted, link_end))
        })
    }

    /// Every `health_check`: `AT+QMTCONN?` must say the client is connected.
    async fn health(&self) -> OfflineReason {
        let every = self.config.health_check;
        if every == Duration::from_ticks(0) {
            return poll_fn(|_| Poll::Pending).await;
        }
        loop {
            match self.exchange(General::Connected, Some(every)).await {
                Ok(true) => {}
                Ok(false) => return OfflineReason::NotConnected,
                Err(
                    e @ (Error::Timeout(_)
                    | Error::Write
                    | Error::ModemRebooted
                    | Error::WakeTimeout),
                ) => return reason(e),
                // An answer that did not parse: ask again next time.
                Err(e) => debug!("health check: {}", e),
            }
        }
    }
}

impl<M: RawMutex> core::fmt::Debug for Link<'_, M> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Link")
            .field("client", &self.client())
            .field("state", &self.state())
            .finish()
    }
}

impl<M: RawMutex, R: HardReset> core::fmt::Debug for Supervisor<'_, M, R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Supervisor")
            .field("client", &self.config.client)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "defmt")]
impl<M: RawMutex> defmt::Format for Link<'_, M> {
    fn format(&self, f: defmt::Formatter) {
        defmt::write!(
            f,
            "Link {{ client: {}, state: {} }}",
            self.client(),
            self.state()
        )
    }
}

#[cfg(feature = "defmt")]
impl<M: RawMutex, R: HardReset> defmt::Format for Supervisor<'_, M, R> {
    fn format(&self, f: defmt::Formatter) {
        defmt::write!(f, "Supervisor {{ client: {} }}", self.config.client)
    }
}

// The duty cycle's (`duty.rs`) changes to the status, kept with their owner.
impl<M: RawMutex> StatusCell<M> {
    /// QoS 0 messages dropped when a link ended before they went out.
    fn qos0_dropped(&self, n: u32) {
        self.count(|c| c.qos0_dropped = c.qos0_dropped.wrapping_add(n))
    }
}
