//! Memory the user owns ([`State`]) and the non-generic view of it that the
//! handles, the runner and the digester share ([`Core`]).

use core::cell::{Cell, RefCell};

use atat::{AtatUrc, ResponseSlot, UrcChannel};
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_sync::blocking_mutex::Mutex as BlockingMutex;
use embassy_sync::mutex::Mutex;
use embassy_sync::pubsub::{DynSubscriber, PubSubBehavior, PubSubChannel};
use embassy_sync::signal::Signal;
use embassy_time::Duration;

use crate::config::Config;
use crate::error::{ModemError, Stage};
use crate::types::{limits, ClientId};
use crate::urc::{Event, LinkClosedReason, SubValue};

pub(crate) type Cs = CriticalSectionRawMutex;
pub(crate) const CLIENTS: usize = ClientId::COUNT;
/// atat's response slot only signals completion; information lines go to the line buffer.
pub(crate) const RES_SLOT: usize = 4;

/// Counters of what the driver dropped or could not place. Read them with
/// [`Modem::stats`](crate::Modem::stats); nothing is dropped silently.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Stats {
    /// Events handed to the event channel.
    pub events_published: u32,
    /// Events lost: there was no subscriber, or a full channel overwrote its
    /// oldest event (that subscriber also sees [`Event::Missed`]).
    pub events_dropped: u32,
    /// Deferred results no operation waited for (late after a timeout, or for
    /// an operation the driver did not start).
    pub stale_results: u32,
    /// Lines that were neither a response nor a URC the driver knows
    /// (`+CEREG: 5`, `RDY`, garbage); dropped.
    pub unsolicited_lines: u32,
    /// `+QMTRECV`/`+QMTSTAT` lines that did not parse, or a received message
    /// too large for [`Message`](crate::Message); dropped.
    pub malformed_urcs: u32,
    /// Lines longer than the ingress buffer; dropped.
    pub overflows: u32,
    /// `OK`/`ERROR`/`>` when no command waited for one; dropped.
    pub stray_responses: u32,
}

/// What the AT channel is doing (handle <-> runner protocol).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Free for the next command.
    Idle,
    /// A handle wrote a command line into the line buffer.
    Line { timeout: Duration, data_mode: bool },
    /// The runner is writing or waiting for the modem.
    Busy,
    /// The modem gave the `>` prompt: the handle may put a payload chunk in the buffer.
    WantData,
    /// The handle put a payload chunk in the buffer (`last`: ends with Ctrl+Z).
    Data { last: bool },
    /// The handle went away in data mode: the runner sends ESC.
    Abort,
    /// The command finished; the handle reads the outcome (and info lines).
    Done(Outcome),
}

/// How a command line ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Ok,
    Modem(ModemError),
    Timeout(Stage),
    Write,
    /// Information lines did not fit the line buffer.
    Overflow,
}

pub(crate) struct Chan {
    pub phase: Phase,
    /// Bytes in the line buffer: the command, a chunk, or the information lines.
    pub len: usize,
    /// The handle was dropped while the runner owned the command.
    pub abandoned: bool,
    pub overflow: bool,
}

/// What the digester expects from the modem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RxState {
    /// No command: every line is unsolicited.
    Idle,
    /// A command line is out: information lines, then OK/ERROR.
    Command,
    /// A data-mode publish waits for `>`.
    AwaitPrompt,
    /// Payload is going out: echo is discarded until OK/ERROR.
    DataMode,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Rx {
    pub state: RxState,
    /// `+QMTCONN` of `AT+QMTCONN?`: the command's information-line prefix.
    pub prefix: [u8; 16],
    pub prefix_len: u8,
    /// The command is a read form (`AT+X?`).
    pub read_form: bool,
    /// The runner finished writing the line: information lines may go to the buffer.
    pub sent: bool,
    /// How the last command ended, set with the response signal.
    pub result: Result<(), ModemError>,
}

impl Rx {
    const fn idle() -> Self {
        Self {
            state: RxState::Idle,
            prefix: [0; 16],
            prefix_len: 0,
            read_form: false,
            sent: false,
            result: Ok(()),
        }
    }

    pub fn prefix(&self) -> &[u8] {
        &self.prefix[..usize::from(self.prefix_len)]
    }
}

/// Operations that wait in a client's single operation slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpKind {
    Open,
    Close,
    Conn,
    Disc,
    Sub,
    Uns,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpWait {
    Free,
    Waiting { kind: OpKind, msg_id: u16 },
    Done,
}

/// A deferred result for the operation slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpOutcome {
    /// OPEN/CLOSE/DISC result code.
    Code(i16),
    Conn {
        result: u8,
        ret_code: Option<u8>,
    },
    Sub {
        result: u8,
        value: SubValue,
    },
    Uns {
        result: u8,
        value: Option<u16>,
    },
    LinkClosed(LinkClosedReason),
}

impl OpOutcome {
    /// Result 1 of CONN/SUB/UNS: the modem retransmits; not the end.
    pub fn is_progress(&self) -> bool {
        matches!(
            self,
            OpOutcome::Conn { result: 1, .. }
                | OpOutcome::Sub { result: 1, .. }
                | OpOutcome::Uns { result: 1, .. }
        )
    }
}

/// What the driver knows of one client's modem-side settings, plus allocators.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientState {
    pub op: OpWait,
    pub next_msg_id: u16,
    pub next_seq: u32,
    pub send_hex: bool,
    pub recv_hex: bool,
    /// `(pkt_timeout, retry_times)` the driver configured, if it did.
    pub timeouts: Option<(u8, u8)>,
}

impl ClientState {
    const fn new() -> Self {
        Self {
            op: OpWait::Free,
            next_msg_id: 1,
            next_seq: 0,
            send_hex: false,
            recv_hex: false,
            timeouts: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SlotWait {
    Free,
    /// `retrans`: retransmissions reported so far (`+QMTPUB: ...,1,<n>`).
    Waiting {
        client: u8,
        msg_id: u16,
        seq: u32,
        retrans: u16,
    },
    Done,
}

/// A deferred `+QMTPUB` result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PubOutcome {
    /// Result 1: the modem retransmits; not the end.
    Progress,
    /// Result 0 (sent) or 2 (failed), with the retransmissions seen before.
    Final {
        result: u8,
        retransmissions: u16,
    },
    LinkClosed(LinkClosedReason),
}

/// One in-flight publish.
pub(crate) struct PubSlot {
    pub(crate) wait: BlockingMutex<Cs, Cell<SlotWait>>,
    pub(crate) signal: Signal<Cs, PubOutcome>,
}

impl PubSlot {
    const fn new() -> Self {
        Self {
            wait: BlockingMutex::new(Cell::new(SlotWait::Free)),
            signal: Signal::new(),
        }
    }
}

/// The parts of the state whose size does not depend on the const generics.
pub(crate) struct Shared {
    pub config: Config,
    /// Held by a handle for one command (until OK/ERROR), never longer.
    pub at_lock: Mutex<Cs, ()>,
    pub chan: BlockingMutex<Cs, RefCell<Chan>>,
    pub to_runner: Signal<Cs, ()>,
    pub to_client: Signal<Cs, ()>,
    pub rx: BlockingMutex<Cs, Cell<Rx>>,
    pub clients: BlockingMutex<Cs, RefCell<[ClientState; CLIENTS]>>,
    /// One OPEN/CLOSE/CONN/DISC/SUB/UNS at a time per client.
    pub op_locks: [Mutex<Cs, ()>; CLIENTS],
    pub op_signals: [Signal<Cs, OpOutcome>; CLIENTS],
    pub stats: BlockingMutex<Cs, Cell<Stats>>,
    pub subscribers: BlockingMutex<Cs, Cell<u8>>,
}

impl Shared {
    const fn new() -> Self {
        Self {
            config: Config::new(),
            at_lock: Mutex::new(()),
            chan: BlockingMutex::new(RefCell::new(Chan {
                phase: Phase::Idle,
                len: 0,
                abandoned: false,
                overflow: false,
            })),
            to_runner: Signal::new(),
            to_client: Signal::new(),
            rx: BlockingMutex::new(Cell::new(Rx::idle())),
            clients: BlockingMutex::new(RefCell::new([const { ClientState::new() }; CLIENTS])),
            op_locks: [const { Mutex::new(()) }; CLIENTS],
            op_signals: [const { Signal::new() }; CLIENTS],
            stats: BlockingMutex::new(Cell::new(Stats {
                events_published: 0,
                events_dropped: 0,
                stale_results: 0,
                unsolicited_lines: 0,
                malformed_urcs: 0,
                overflows: 0,
                stray_responses: 0,
            })),
            subscribers: BlockingMutex::new(Cell::new(0)),
        }
    }

    pub fn count(&self, f: impl FnOnce(&mut Stats)) {
        self.stats.lock(|s| {
            let mut v = s.get();
            f(&mut v);
            s.set(v);
        })
    }

    pub fn rx(&self) -> Rx {
        self.rx.lock(Cell::get)
    }

    pub fn update_rx(&self, f: impl FnOnce(&mut Rx)) {
        self.rx.lock(|c| {
            let mut v = c.get();
            f(&mut v);
            c.set(v);
        })
    }

    pub fn with_chan<R>(&self, f: impl FnOnce(&mut Chan) -> R) -> R {
        self.chan.lock(|c| f(&mut c.borrow_mut()))
    }

    pub fn with_clients<R>(&self, f: impl FnOnce(&mut [ClientState; CLIENTS]) -> R) -> R {
        self.clients.lock(|c| f(&mut c.borrow_mut()))
    }
}

/// The event channel, seen without its sizes.
pub(crate) trait EventSource: Sync {
    fn publisher(&self) -> &dyn PubSubBehavior<Event>;
    fn subscriber(&self) -> Option<DynSubscriber<'_, Event>>;
}

impl<const C: usize, const S: usize> EventSource for PubSubChannel<Cs, Event, C, S, 0> {
    fn publisher(&self) -> &dyn PubSubBehavior<Event> {
        self
    }
    fn subscriber(&self) -> Option<DynSubscriber<'_, Event>> {
        self.dyn_subscriber().ok()
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

/// The view of the [`State`] that handles, runner and digester share: plain
/// references, so handles are `Copy` and not generic over sizes or the UART.
#[derive(Clone, Copy)]
pub(crate) struct Core<'a> {
    pub sh: &'a Shared,
    pub line: &'a dyn LineBuffer,
    /// `CLIENTS` groups of in-flight publish slots.
    pub slots: &'a [PubSlot],
    pub events: &'a dyn EventSource,
}

impl<'a> Core<'a> {
    /// The publish slots of one client.
    pub fn client_slots(&self, client: usize) -> &'a [PubSlot] {
        let per = self.slots.len() / CLIENTS;
        &self.slots[client * per..(client + 1) * per]
    }

    /// Runs `f` on the line buffer, inside a critical section.
    pub fn with_line(&self, f: impl FnOnce(&mut [u8])) {
        let mut f = Some(f);
        self.line.with_buf(&mut |b| {
            if let Some(f) = f.take() {
                f(b)
            }
        });
    }

    pub fn config(&self) -> &'a Config {
        &self.sh.config
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
/// - `LINE`: bytes of the command line buffer (at least 1024, the longest line).
/// - `EVENTS`: events queued for slow subscribers (each about 1.3 KiB).
/// - `SUBSCRIBERS`: how many [`Events`](crate::Events) may exist at once.
/// - `INFLIGHT`: publishes one client may have waiting for their result at once.
pub struct State<
    const INGRESS: usize = 2400,
    const LINE: usize = 1024,
    const EVENTS: usize = 2,
    const SUBSCRIBERS: usize = 2,
    const INFLIGHT: usize = 4,
> {
    pub(crate) ingress: [u8; INGRESS],
    pub(crate) line: BlockingMutex<Cs, RefCell<[u8; LINE]>>,
    pub(crate) events: PubSubChannel<Cs, Event, EVENTS, SUBSCRIBERS, 0>,
    pub(crate) slots: [[PubSlot; INFLIGHT]; CLIENTS],
    pub(crate) shared: Shared,
    pub(crate) res_slot: ResponseSlot<RES_SLOT>,
    pub(crate) urc: UrcChannel<NoUrc, 1, 1>,
}

impl<
        const INGRESS: usize,
        const LINE: usize,
        const EVENTS: usize,
        const SUBSCRIBERS: usize,
        const INFLIGHT: usize,
    > State<INGRESS, LINE, EVENTS, SUBSCRIBERS, INFLIGHT>
{
    const SIZES_OK: () = {
        assert!(
            LINE >= limits::LINE,
            "LINE must hold the longest command line (1024 bytes)"
        );
        assert!(INGRESS >= 256, "INGRESS must be at least 256 bytes");
        assert!(INFLIGHT >= 1, "INFLIGHT must be at least 1");
        // msgIDs 1-65535 must always leave a free one for the allocator.
        assert!(INFLIGHT <= 1024, "INFLIGHT must be at most 1024");
    };

    /// Fresh driver memory.
    pub const fn new() -> Self {
        #[allow(clippy::let_unit_value)]
        let () = Self::SIZES_OK;
        Self {
            ingress: [0; INGRESS],
            line: BlockingMutex::new(RefCell::new([0; LINE])),
            events: PubSubChannel::new(),
            slots: [const { [const { PubSlot::new() }; INFLIGHT] }; CLIENTS],
            shared: Shared::new(),
            res_slot: ResponseSlot::new(),
            urc: UrcChannel::new(),
        }
    }
}

impl<
        const INGRESS: usize,
        const LINE: usize,
        const EVENTS: usize,
        const SUBSCRIBERS: usize,
        const INFLIGHT: usize,
    > core::fmt::Debug for State<INGRESS, LINE, EVENTS, SUBSCRIBERS, INFLIGHT>
{
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "State<{INGRESS}, {LINE}, {EVENTS}, {SUBSCRIBERS}, {INFLIGHT}>"
        )
    }
}

#[cfg(feature = "defmt")]
impl<
        const INGRESS: usize,
        const LINE: usize,
        const EVENTS: usize,
        const SUBSCRIBERS: usize,
        const INFLIGHT: usize,
    > defmt::Format for State<INGRESS, LINE, EVENTS, SUBSCRIBERS, INFLIGHT>
{
    fn format(&self, f: defmt::Formatter) {
        defmt::write!(
            f,
            "State<{}, {}, {}, {}, {}>",
            INGRESS,
            LINE,
            EVENTS,
            SUBSCRIBERS,
            INFLIGHT
        )
    }
}

impl<
        const INGRESS: usize,
        const LINE: usize,
        const EVENTS: usize,
        const SUBSCRIBERS: usize,
        const INFLIGHT: usize,
    > Default for State<INGRESS, LINE, EVENTS, SUBSCRIBERS, INFLIGHT>
{
    fn default() -> Self {
        Self::new()
    }
}

/// The deadline of a client's CONN/SUB/UNS/PUB results: the modem's own
/// `pkt_timeout x (retry_times + 1)` with the values the driver configured.
pub(crate) fn packet_deadline(core: &Core<'_>, client: ClientId) -> Duration {
    let cfg = core.config();
    let (p, r) = core
        .sh
        .with_clients(|c| c[client.index()].timeouts)
        .unwrap_or((cfg.default_pkt_timeout_s, cfg.default_retry_times));
    cfg.packet_result_deadline(p, r)
}

// The default State for six clients and 1024-byte payloads stays under 8 KiB
// on 32-bit targets (checked in every thumb build; README lists the figures).
#[cfg(target_pointer_width = "32")]
const _: () = assert!(core::mem::size_of::<State>() <= 8 * 1024);
