//! Memory the user owns ([`State`]), the counters ([`Stats`]), and the
//! non-generic view of the state that handles, runner and digester share
//! ([`Core`]): one reference to each owner of a shared protocol.

use core::cell::{Cell, RefCell};

use atat::{AtatUrc, ResponseSlot, UrcChannel};
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_sync::blocking_mutex::Mutex as BlockingMutex;
use embassy_sync::pubsub::PubSubChannel;
use embassy_time::{Duration, Instant};

use crate::channel::{Channel, ChannelState};
use crate::clients::{Clients, ClientsState, PubSlot};
use crate::config::Config;
use crate::inbox::{Inbox, InboxMeta, Notice, RESERVE};
use crate::ring::RingStore;
use crate::types::{limits, ClientId};

pub(crate) type Cs = CriticalSectionRawMutex;
/// atat's response slot is not used: the digester hands answers to the channel.
pub(crate) const RES_SLOT: usize = 1;

/// Counters of what the driver dropped, discarded or recovered from. Read
/// them with [`Modem::stats`](crate::Modem::stats); nothing is dropped
/// silently. Every counter wraps at `u32::MAX` (compare differences).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct Stats {
    /// Events handed to the subscriptions (messages, link and reboot events).
    pub events_published: u32,
    /// Link or reboot events that found no subscription (or no room).
    pub events_dropped: u32,
    /// Messages not delivered: no subscription existed, the receive store was
    /// full, or a subscription's buffer was too small for one.
    pub messages_dropped: u32,
    /// Messages on a topic that matches none of the client's registered
    /// subscriptions (a supervisor registers its set): dropped.
    pub messages_filtered: u32,
    /// Deferred results no operation waited for (late after a timeout, for a
    /// cancelled operation, or for an operation the driver did not start).
    pub stale_results: u32,
    /// Lines that were neither a response nor a URC the driver knows
    /// (`+CEREG: 5`, garbage); dropped.
    pub unsolicited_lines: u32,
    /// `+QMTRECV`/`+QMTSTAT` lines that did not parse, or a received message
    /// the driver cannot keep (not UTF-8 topic, bad hex); dropped.
    pub malformed_urcs: u32,
    /// Lines longer than the ingress buffer; dropped.
    pub overflows: u32,
    /// `OK`/`ERROR`/`>` when no command waited for one; dropped.
    pub stray_responses: u32,
    /// Final answers and prompts that arrived for a command that had already
    /// failed (timed out, write error): discarded by the fence.
    pub late_answers: u32,
    /// Times the channel was re-synchronised (`AT` probe) after a failure.
    pub fences: u32,
    /// Incomplete frames given up after a quiet gap (a lost byte, a cut URC):
    /// their first line was dropped and the rest read again line by line.
    pub resyncs: u32,
    /// UART reads that failed or returned no bytes (each followed by a pause).
    pub read_errors: u32,
    /// UART writes that failed or timed out.
    pub write_errors: u32,
    /// Times the modem restarted (`RDY`, power-down lines).
    pub reboots: u32,
}

/// The counters, shared.
pub(crate) struct StatsCell(BlockingMutex<Cs, Cell<Stats>>);

impl StatsCell {
    const fn new() -> Self {
        Self(BlockingMutex::new(Cell::new(Stats {
            events_published: 0,
            events_dropped: 0,
            messages_dropped: 0,
            messages_filtered: 0,
            stale_results: 0,
            unsolicited_lines: 0,
            malformed_urcs: 0,
            overflows: 0,
            stray_responses: 0,
            late_answers: 0,
            fences: 0,
            resyncs: 0,
            read_errors: 0,
            write_errors: 0,
            reboots: 0,
        })))
    }

    /// Changes the counters (each change must wrap: `wrapping_add`).
    pub(crate) fn count(&self, f: impl FnOnce(&mut Stats)) {
        self.0.lock(|s| {
            let mut v = s.get();
            f(&mut v);
            s.set(v);
        })
    }

    pub(crate) fn get(&self) -> Stats {
        self.0.lock(Cell::get)
    }
}

/// Adds one to a counter, wrapping.
macro_rules! bump {
    ($stats:expr, $field:ident) => {
        $stats.count(|s| s.$field = s.$field.wrapping_add(1))
    };
}
pub(crate) use bump;

/// What the runner's receive side has read: the stream position (bytes read
/// since the start, wrapping), when the last byte came, and whether the
/// digester must give up what it holds (a quiet gap passed).
pub(crate) struct RxClock(BlockingMutex<Cs, Cell<Rx>>);

#[derive(Clone, Copy)]
struct Rx {
    pos: u32,
    last: Instant,
    resync: bool,
}

impl RxClock {
    const fn new() -> Self {
        Self(BlockingMutex::new(Cell::new(Rx {
            pos: 0,
            last: Instant::from_ticks(0),
            resync: false,
        })))
    }

    fn update(&self, f: impl FnOnce(&mut Rx)) {
        self.0.lock(|c| {
            let mut v = c.get();
            f(&mut v);
            c.set(v);
        })
    }

    /// Bytes read so far (wrapping).
    pub(crate) fn position(&self) -> u32 {
        self.0.lock(|c| c.get().pos)
    }

    /// When the last byte came.
    pub(crate) fn last(&self) -> Instant {
        self.0.lock(|c| c.get().last)
    }

    /// `n` bytes were read just now.
    pub(crate) fn received(&self, n: usize) {
        let now = Instant::now();
        self.update(|r| {
            r.pos = r.pos.wrapping_add(n as u32);
            r.last = now;
        })
    }

    /// Runner: the modem was quiet for `Config::quiet_gap` while the digester
    /// held an incomplete frame.
    pub(crate) fn request_resync(&self) {
        self.update(|r| r.resync = true)
    }

    /// Digester: whether a resync was asked for (taken).
    pub(crate) fn take_resync(&self) -> bool {
        let mut was = false;
        self.update(|r| was = core::mem::replace(&mut r.resync, false));
        was
    }
}

/// The parts of the state whose size does not depend on the const generics.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) channel: ChannelState,
    pub(crate) clients: ClientsState,
    pub(crate) stats: StatsCell,
    pub(crate) rx: RxClock,
}

impl Shared {
    const fn new() -> Self {
        Self {
            config: Config::new(),
            channel: ChannelState::new(),
            clients: ClientsState::new(),
            stats: StatsCell::new(),
            rx: RxClock::new(),
        }
    }
}

/// The line buffer, seen without its size.
pub(crate) trait LineBuffer: Sync {
    fn with_buf(&self, f: &mut dyn FnMut(&mut [u8]));
}

impl<const N: usize> LineBuffer for BlockingMutex<Cs, RefCell<[u8; N]>> {
    fn with_buf(&self, f: &mut dyn FnMut(&mut [u8])) {
        self.lock(|b| f(&mut b.borrow_mut()[..]))
    }
}

/// The view of the [`State`] that handles, runner and digester share: one
/// reference to each owner, so handles are `Copy` and not generic over
/// sizes or the UART.
#[derive(Clone, Copy)]
pub(crate) struct Core<'a> {
    pub(crate) channel: Channel<'a>,
    pub(crate) clients: Clients<'a>,
    pub(crate) inbox: Inbox<'a>,
    pub(crate) stats: &'a StatsCell,
    pub(crate) config: &'a Config,
    pub(crate) rx: &'a RxClock,
}

impl Core<'_> {
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
pub struct State<
    const INGRESS: usize = 2400,
    const LINE: usize = 1024,
    const INBOX: usize = 2560,
    const EVENTS: usize = 32,
    const SUBSCRIBERS: usize = 2,
    const INFLIGHT: usize = 8,
> {
    pub(crate) ingress: [u8; INGRESS],
    pub(crate) line: BlockingMutex<Cs, RefCell<[u8; LINE]>>,
    pub(crate) ring: BlockingMutex<Cs, RefCell<RingStore<InboxMeta, INBOX>>>,
    pub(crate) notices: PubSubChannel<Cs, Notice, EVENTS, SUBSCRIBERS, 0>,
    pub(crate) slots: [PubSlot; INFLIGHT],
    pub(crate) shared: Shared,
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
    > State<INGRESS, LINE, INBOX, EVENTS, SUBSCRIBERS, INFLIGHT>
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
        Core<'_>,
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
            shared,
            res_slot,
            urc,
        } = self;
        shared.config = config;
        let shared = &*shared;
        let core = Core {
            channel: Channel::new(&shared.channel, &*line),
            clients: Clients::new(&shared.clients, &*slots),
            inbox: Inbox::new(&*ring, &*notices, &shared.stats),
            stats: &shared.stats,
            config: &shared.config,
            rx: &shared.rx,
        };
        (core, &mut ingress[..], &*res_slot, &*urc)
    }

    /// Fresh driver memory.
    pub const fn new() -> Self {
        #[allow(clippy::let_unit_value)]
        let () = Self::SIZES_OK;
        Self {
            ingress: [0; INGRESS],
            line: BlockingMutex::new(RefCell::new([0; LINE])),
            ring: BlockingMutex::new(RefCell::new(RingStore::new(InboxMeta::new()))),
            notices: PubSubChannel::new(),
            slots: [const { PubSlot::new() }; INFLIGHT],
            shared: Shared::new(),
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
    > core::fmt::Debug for State<INGRESS, LINE, INBOX, EVENTS, SUBSCRIBERS, INFLIGHT>
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
    > defmt::Format for State<INGRESS, LINE, INBOX, EVENTS, SUBSCRIBERS, INFLIGHT>
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
    > Default for State<INGRESS, LINE, INBOX, EVENTS, SUBSCRIBERS, INFLIGHT>
{
    fn default() -> Self {
        Self::new()
    }
}

// The default State stays within 8 KiB on 32-bit targets (checked in every
// thumb build).
#[cfg(target_pointer_width = "32")]
const _: () = assert!(core::mem::size_of::<State>() <= 8 * 1024);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_wrap_instead_of_overflowing() {
        let s = StatsCell::new();
        s.count(|s| s.stray_responses = u32::MAX);
        bump!(s, stray_responses);
        assert_eq!(s.get().stray_responses, 0);
    }
}
