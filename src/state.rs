//! Memory the user owns ([`State`]) and the non-generic view of it that
//! handles, runner and digester share ([`Core`]): one reference to each
//! owner of a shared protocol. This file only composes the owners; none of
//! them imports anything from it.

use core::cell::RefCell;

use atat::{AtatUrc, ResponseSlot, UrcChannel};
use embassy_sync::blocking_mutex::Mutex as BlockingMutex;
use embassy_sync::pubsub::PubSubChannel;
use embassy_time::Duration;

use crate::channel::{Channel, ChannelState};
use crate::client_table::{ClientTable, ClientTableState, PubSlot};
use crate::commands::SleepMode;
use crate::config::Config;
use crate::inbox::{Inbox, InboxMeta, Notice, RESERVE};
use crate::power::{Power, PowerState};
use crate::ring::RingStore;
use crate::rx_clock::RxClock;
use crate::stats::StatsCell;
use crate::sync::{CriticalSectionRawMutex, RawMutex};
use crate::types::{limits, ClientId};

/// atat's response slot is not used: the digester hands answers to the channel.
pub(crate) const RES_SLOT: usize = 1;

/// The parts of the state whose size does not depend on the const generics.
pub(crate) struct FixedParts<M: RawMutex> {
    pub(crate) config: Config,
    pub(crate) channel: ChannelState<M>,
    pub(crate) clients: ClientTableState<M>,
    pub(crate) stats: StatsCell<M>,
    pub(crate) rx: RxClock<M>,
    pub(crate) power: PowerState<M>,
}

impl<M: RawMutex> FixedParts<M> {
    const fn new() -> Self {
        Self {
            config: Config::new(),
            channel: ChannelState::new(),
            clients: ClientTableState::new(),
            stats: StatsCell::new(),
            rx: RxClock::new(),
            power: PowerState::new(),
        }
    }
}

/// The view of the [`State`] that handles, runner and digester share: one
/// reference to each owner, so handles are `Copy` and not generic over
/// sizes or the UART (only over the lock `M`).
pub(crate) struct Core<'a, M: RawMutex> {
    pub(crate) channel: Channel<'a, M>,
    pub(crate) clients: ClientTable<'a, M>,
    pub(crate) inbox: Inbox<'a, M>,
    pub(crate) stats: &'a StatsCell<M>,
    pub(crate) config: &'a Config,
    pub(crate) rx: &'a RxClock<M>,
    pub(crate) power: Power<'a, M>,
}

impl<M: RawMutex> Clone for Core<'_, M> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<M: RawMutex> Copy for Core<'_, M> {}

impl<M: RawMutex> Core<'_, M> {
    /// The deadline of a client's CONN/SUB/UNS/PUB results: the modem's own
    /// `pkt_timeout x (retry_times + 1)` with the values the driver configured.
    pub(crate) fn packet_deadline(&self, client: ClientId) -> Duration {
        let cfg = self.config;
        let (p, r) = self
            .clients
            .settings(client)
            .timeouts
            .unwrap_or((cfg.default_pkt_timeout_s, cfg.default_retry_times));
        cfg.packet_result_deadline(p, r)
    }
}

/// The URC type handed to atat's ingress. The digester routes every URC
/// itself, so none ever reaches atat's URC channel.
#[derive(Clone)]
pub(crate) enum NoUrc {}

impl AtatUrc for NoUrc {
    fn parse(_: &[u8]) -> Option<Self> {
        None
    }
}

/// All the memory of the driver. Create it with [`State::new`] (a `const fn`,
/// so it can live in a `static`), and pass it to [`new`](crate::new).
///
/// - `INGRESS`: bytes of the receive buffer. One whole `+QMTRECV` must fit:
///   the default holds a 255-byte topic and a 1024-byte payload in hex (2048
///   digits). Longer lines are dropped and counted.
/// - `LINE`: bytes of the command line buffer (at least 1024, the longest
///   line), shared with the information lines of the answer.
/// - `INBOX`: bytes of the receive store, where messages wait for the
///   subscriptions by their size (10 bytes + topic + payload each): the
///   default holds a message with a 255-byte topic and a 1024-byte payload,
///   or 30 messages of 64 bytes.
/// - `EVENTS`: events that may wait for the subscriptions at once (8 of the
///   places are kept for link and reboot events).
/// - `SUBSCRIBERS`: how many [`Events`](crate::Events) may exist at once.
/// - `INFLIGHT`: publishes (of all clients) that may wait for their result at
///   once; [`publish`](crate::MqttClient::publish) waits for a free one.
/// - `M`: the embassy-sync raw mutex of every lock of the driver: the default
///   [`CriticalSectionRawMutex`] works from any executor and any interrupt
///   priority; a firmware with one executor may pick `ThreadModeRawMutex`
///   (Cortex-M) or `NoopRawMutex`, which mask no interrupt (see the crate
///   documentation, "Which mutex"). The handles take the same `M`.
pub struct State<
    const INGRESS: usize = 2400,
    const LINE: usize = 1024,
    const INBOX: usize = 2560,
    const EVENTS: usize = 32,
    const SUBSCRIBERS: usize = 2,
    const INFLIGHT: usize = 8,
    M: RawMutex = CriticalSectionRawMutex,
> {
    pub(crate) ingress: [u8; INGRESS],
    pub(crate) line: embassy_sync::mutex::Mutex<M, [u8; LINE]>,
    pub(crate) ring: BlockingMutex<M, RefCell<RingStore<InboxMeta, INBOX>>>,
    pub(crate) notices: PubSubChannel<M, Notice, EVENTS, SUBSCRIBERS, 0>,
    pub(crate) slots: [PubSlot<M>; INFLIGHT],
    pub(crate) fixed: FixedParts<M>,
    pub(crate) res_slot: ResponseSlot<RES_SLOT>,
    pub(crate) urc: UrcChannel<NoUrc, 1, 1>,
}

impl<
        const INGRESS: usize,
        const LINE: usize,
        const INBOX: usize,
        const EVENTS: usize,
        const SUBSCRIBERS: usize,
        const INFLIGHT: usize,
        M: RawMutex,
    > State<INGRESS, LINE, INBOX, EVENTS, SUBSCRIBERS, INFLIGHT, M>
{
    const SIZES_OK: () = {
        assert!(
            LINE >= limits::LINE,
            "LINE must hold the longest command line (1024 bytes)"
        );
        assert!(INGRESS >= 256, "INGRESS must be at least 256 bytes");
        assert!(
            INBOX >= 64 && INBOX <= u16::MAX as usize,
            "INBOX must be 64-65535 bytes"
        );
        assert!(
            EVENTS > RESERVE,
            "EVENTS must be more than the 8 kept for link events"
        );
        assert!(
            SUBSCRIBERS >= 1 && SUBSCRIBERS <= 255,
            "SUBSCRIBERS must be 1-255"
        );
        assert!(INFLIGHT >= 1, "INFLIGHT must be at least 1");
        // msgIDs 1-65535 must always leave a free one for the allocator.
        assert!(INFLIGHT <= 1024, "INFLIGHT must be at most 1024");
    };

    /// Splits the memory into the owners' shared view and what atat's
    /// `Ingress` takes.
    #[allow(clippy::type_complexity)]
    pub(crate) fn split(
        &mut self,
        config: Config,
    ) -> (
        Core<'_, M>,
        &mut [u8],
        &ResponseSlot<RES_SLOT>,
        &UrcChannel<NoUrc, 1, 1>,
    ) {
        let State {
            ingress,
            line,
            ring,
            notices,
            slots,
            fixed,
            res_slot,
            urc,
        } = self;
        fixed.config = config;
        let fixed = &*fixed;
        let core = Core {
            channel: Channel::new(&fixed.channel, &*line),
            clients: ClientTable::new(&fixed.clients, &*slots),
            inbox: Inbox::new(&*ring, &*notices, &fixed.stats),
            stats: &fixed.stats,
            config: &fixed.config,
            rx: &fixed.rx,
            power: Power::new(&fixed.power, &fixed.stats),
        };
        if core.config.module_sleeps {
            core.power.set_sleep(SleepMode::Deep);
        }
        (core, &mut ingress[..], &*res_slot, &*urc)
    }

    /// Fresh driver memory.
    pub const fn new() -> Self {
        #[allow(clippy::let_unit_value)]
        let () = Self::SIZES_OK;
        Self {
            ingress: [0; INGRESS],
            line: embassy_sync::mutex::Mutex::new([0; LINE]),
            ring: BlockingMutex::new(RefCell::new(RingStore::new(InboxMeta::new()))),
            notices: PubSubChannel::new(),
            slots: [const { PubSlot::new() }; INFLIGHT],
            fixed: FixedParts::new(),
            res_slot: ResponseSlot::new(),
            urc: UrcChannel::new(),
        }
    }
}

impl<
        const INGRESS: usize,
        const LINE: usize,
        const INBOX: usize,
        const EVENTS: usize,
        const SUBSCRIBERS: usize,
        const INFLIGHT: usize,
        M: RawMutex,
    > core::fmt::Debug for State<INGRESS, LINE, INBOX, EVENTS, SUBSCRIBERS, INFLIGHT, M>
{
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "State<{INGRESS}, {LINE}, {INBOX}, {EVENTS}, {SUBSCRIBERS}, {INFLIGHT}>"
        )
    }
}

#[cfg(feature = "defmt")]
impl<
        const INGRESS: usize,
        const LINE: usize,
        const INBOX: usize,
        const EVENTS: usize,
        const SUBSCRIBERS: usize,
        const INFLIGHT: usize,
        M: RawMutex,
    > defmt::Format for State<INGRESS, LINE, INBOX, EVENTS, SUBSCRIBERS, INFLIGHT, M>
{
    fn format(&self, f: defmt::Formatter) {
        defmt::write!(
            f,
            "State<{}, {}, {}, {}, {}, {}>",
            INGRESS,
            LINE,
            INBOX,
            EVENTS,
            SUBSCRIBERS,
            INFLIGHT
        )
    }
}

impl<
        const INGRESS: usize,
        const LINE: usize,
        const INBOX: usize,
        const EVENTS: usize,
        const SUBSCRIBERS: usize,
        const INFLIGHT: usize,
        M: RawMutex,
    > Default for State<INGRESS, LINE, INBOX, EVENTS, SUBSCRIBERS, INFLIGHT, M>
{
    fn default() -> Self {
        Self::new()
    }
}

// The default State stays within 8 KiB on 32-bit targets (checked in every
// thumb build).
#[cfg(target_pointer_width = "32")]
const _: () = assert!(core::mem::size_of::<State>() <= 8 * 1024);
