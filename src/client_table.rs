//! The six clients' shared state: the one owner of the deferred-result slots
//! (one operation slot per client, a pool of publish slots shared by all
//! clients), the msgID allocator, what the driver knows of each client's
//! modem-side settings, its link's epoch, and the topic filters a supervisor
//! registered.
//!
//! - Handle side: [`ClientTable::begin_op`] / [`OpTicket::wait`],
//!   [`ClientTable::claim_publish`] / [`ClientTable::try_claim_publish`] /
//!   [`PubTicket::wait`], [`ClientTable::settings`], [`ClientTable::wait_link_change`].
//! - Runner side: [`ClientTable::line_sent`] when an operation's or a
//!   publish's line goes out, with its stream position: only a deferred
//!   result (or a start-up line) that starts from there on is about it.
//! - Digester side: [`ClientTable::arm_publish`] when the modem accepts a
//!   publish (its `OK`, or a result before it): this is when it takes its
//!   place in the QoS 0 queue, so a QoS 0 result goes to the oldest publish
//!   the modem accepted.
//! - Router side: [`ClientTable::deliver_op`], [`ClientTable::deliver_publish`],
//!   [`ClientTable::link_closed`], [`ClientTable::rebooted`], [`ClientTable::accepts`].

use core::cell::{Cell, RefCell};
use core::future::{poll_fn, Future};
use core::pin::{pin, Pin};
use core::sync::atomic::{AtomicU8, Ordering};
use core::task::{ready, Context, Poll, Waker};

use embassy_sync::blocking_mutex::Mutex as BlockingMutex;
use embassy_sync::signal::Signal;
use embassy_time::{Duration, Instant, Timer};

use crate::error::{Error, LinkClosedReason, Stage};
use crate::rx_clock::at_or_after;
use crate::sync::RawMutex;
use crate::types::{topic_matches, ClientId, DataFormat, QoS, Subscription};
pub(crate) use crate::urc::{OpKind, OpOutcome};
use crate::wait::{wait, Lock, LockGuard, WaitSet};

const CLIENTS: usize = ClientId::COUNT;

impl OpOutcome {
    /// Result 1 of CONN/SUB/UNS: the modem retransmits; not the end.
    fn is_progress(&self) -> bool {
        matches!(
            self,
            OpOutcome::Conn { result: 1, .. }
                | OpOutcome::Sub { result: 1, .. }
                | OpOutcome::Uns { result: 1, .. }
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpWait {
    Free,
    /// `sent_at`: where the operation's line went out (`None`: not yet).
    Waiting {
        kind: OpKind,
        msg_id: u16,
        sent_at: Option<u32>,
    },
    Done,
}

/// Whose deferred result a command line asks for. The runner tells the
/// table where the line went out ([`ClientTable::line_sent`]): only a result
/// or a start-up line that starts from there on is about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Owner {
    /// A line without a deferred result.
    Nobody,
    /// The operation waiting in the client's operation slot.
    Op(ClientId),
    /// The publish of this slot.
    Publish(u8),
}

impl Owner {
    /// The publish of `slot`, if any.
    pub(crate) fn publish(slot: Option<u8>) -> Self {
        slot.map_or(Owner::Nobody, Owner::Publish)
    }
}

/// How a client's link last ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LinkEnd {
    /// `+QMTSTAT` with this reason.
    Closed(LinkClosedReason),
    /// The modem restarted.
    Rebooted,
}

/// How a publish's deferred result ended.
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
    Rebooted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotWait {
    Free,
    /// Claimed by a publish the modem has not accepted (yet); `sent_at`:
    /// where its line went out (`None`: not yet).
    Claimed {
        client: u8,
        msg_id: u16,
        sent_at: Option<u32>,
    },
    /// The modem accepted the publish (`seq` orders QoS 0 results);
    /// `retrans`: progress reports so far.
    Waiting {
        client: u8,
        msg_id: u16,
        seq: u32,
        retrans: u16,
    },
    /// The publish's future was dropped after the modem accepted it: the
    /// slot keeps the msgID and absorbs the late result until `until`.
    Abandoned {
        client: u8,
        msg_id: u16,
        seq: u32,
        until: Instant,
    },
    /// A final outcome was signalled; the ticket frees it.
    Done,
}

impl SlotWait {
    /// The (client, msgID) the slot holds, if it holds one now.
    fn holds(self, now: Instant) -> Option<(u8, u16, Option<u32>)> {
        match self {
            SlotWait::Claimed { client, msg_id, .. } => Some((client, msg_id, None)),
            SlotWait::Waiting {
                client,
                msg_id,
                seq,
                ..
            } => Some((client, msg_id, Some(seq))),
            SlotWait::Abandoned {
                client,
                msg_id,
                seq,
                until,
            } if until > now => Some((client, msg_id, Some(seq))),
            _ => None,
        }
    }

    /// The client of the publish the slot holds.
    fn client(self) -> Option<u8> {
        match self {
            SlotWait::Claimed { client, .. }
            | SlotWait::Waiting { client, .. }
            | SlotWait::Abandoned { client, .. } => Some(client),
            SlotWait::Free | SlotWait::Done => None,
        }
    }

    /// True if the slot's line went out after a line that starts at stream
    /// position `pos` (and the modem has not accepted it yet).
    fn sent_after(self, pos: u32) -> bool {
        matches!(self, SlotWait::Claimed { sent_at: Some(at), .. } if !at_or_after(pos, at))
    }

    fn is_free(self, now: Instant) -> bool {
        match self {
            SlotWait::Free => true,
            SlotWait::Abandoned { until, .. } => until <= now,
            _ => false,
        }
    }
}

/// One in-flight publish slot (the `INFLIGHT` pool of [`State`](crate::State)).
pub(crate) struct PubSlot<M: RawMutex> {
    wait: BlockingMutex<M, Cell<SlotWait>>,
    signal: Signal<M, PubOutcome>,
}

impl<M: RawMutex> PubSlot<M> {
    pub(crate) const fn new() -> Self {
        Self {
            wait: BlockingMutex::new(Cell::new(SlotWait::Free)),
            signal: Signal::new(),
        }
    }

    fn get(&self) -> SlotWait {
        self.wait.lock(Cell::get)
    }

    fn set(&self, w: SlotWait) {
        self.wait.lock(|c| c.set(w))
    }
}

/// The receive format the driver believes a client has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecvFormat {
    /// Not known (the modem may keep a setting from before an MCU reset).
    Unknown,
    Text,
    Hex,
}

/// What the driver knows of one client's modem-side settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Settings {
    /// Payloads are sent as hex digits.
    pub send_hex: bool,
    /// How payloads arrive.
    pub recv: RecvFormat,
    /// The application chose text reception itself (the driver leaves it).
    pub text_chosen: bool,
    /// `(pkt_timeout, retry_times)` the driver configured or read.
    pub timeouts: Option<(u8, u8)>,
}

impl Settings {
    const fn new() -> Self {
        Self {
            send_hex: false,
            recv: RecvFormat::Unknown,
            text_chosen: false,
            timeouts: None,
        }
    }

    /// The modem's defaults, as after a restart.
    const fn defaults() -> Self {
        Self {
            recv: RecvFormat::Text,
            ..Self::new()
        }
    }
}

#[derive(Clone, Copy)]
struct ClientEntry {
    op: OpWait,
    next_msg_id: u16,
    next_seq: u32,
    settings: Settings,
    /// Bumped each time the client's link ends (`+QMTSTAT` but 5, a restart).
    link_epoch: u32,
    last_end: Option<LinkEnd>,
    filters: Option<&'static [Subscription<'static>]>,
}

impl ClientEntry {
    const fn new() -> Self {
        Self {
            op: OpWait::Free,
            next_msg_id: 1,
            next_seq: 0,
            settings: Settings::new(),
            link_epoch: 0,
            last_end: None,
            filters: None,
        }
    }
}

struct Wakers {
    /// Publishes waiting for a free slot (any number of them).
    slots: WaitSet,
    /// Tasks waiting for a link to change (any number of them).
    links: WaitSet,
}

/// The clients' memory, inside the [`State`](crate::State).
pub(crate) struct ClientTableState<M: RawMutex> {
    clients: BlockingMutex<M, RefCell<[ClientEntry; CLIENTS]>>,
    /// Bit `i`: client `i` receives hex (its `settings.recv`), written under
    /// the clients' lock whenever that changes, read without it by the
    /// digester at every read of a `+QMTRECV` (loads and stores only).
    recv_hex: AtomicU8,
    /// One OPEN/CLOSE/CONN/DISC/SUB/UNS at a time per client.
    op_locks: [Lock<M>; CLIENTS],
    op_signals: [Signal<M, OpOutcome>; CLIENTS],
    wakers: BlockingMutex<M, RefCell<Wakers>>,
}

impl<M: RawMutex> ClientTableState<M> {
    pub(crate) const fn new() -> Self {
        Self {
            clients: BlockingMutex::new(RefCell::new([const { ClientEntry::new() }; CLIENTS])),
            recv_hex: AtomicU8::new(0),
            op_locks: [const { Lock::new() }; CLIENTS],
            op_signals: [const { Signal::new() }; CLIENTS],
            wakers: BlockingMutex::new(RefCell::new(Wakers {
                slots: WaitSet::new(),
                links: WaitSet::new(),
            })),
        }
    }
}

/// The clients, seen without the pool's size. `Copy`.
pub(crate) struct ClientTable<'a, M: RawMutex> {
    st: &'a ClientTableState<M>,
    slots: &'a [PubSlot<M>],
}

impl<M: RawMutex> Clone for ClientTable<'_, M> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<M: RawMutex> Copy for ClientTable<'_, M> {}

/// Has `cx`'s task woken at `t`: an embassy-time timer schedules its
/// wake-up when first polled (always `Pending` then), and dropping it does
/// not cancel that wake-up.
fn wake_at(t: Instant, waker: &Waker) {
    let _ = pin!(Timer::at(t)).poll(&mut Context::from_waker(waker));
}

/// A claimed operation slot; frees it when dropped.
pub(crate) struct OpTicket<'c, M: RawMutex> {
    st: &'c ClientTableState<M>,
    /// The client (not its index: `ClientId::index` is known to be 0-5,
    /// so the tables of the clients need no bounds check).
    client: ClientId,
    _lock: LockGuard<'c, M>,
}

impl<M: RawMutex> OpTicket<'_, M> {
    /// Waits for the final deferred result (progress reports do not end
    /// it) until `deadline`; a link closed or a restart ends it.
    pub(crate) fn wait(
        &self,
        deadline: Instant,
    ) -> impl Future<Output = Result<OpOutcome, Error>> + '_ {
        // The wait itself, not an async fn around it (a state machine less).
        let mut timer = Timer::at(deadline);
        let signal = &self.st.op_signals[self.client.index()];
        poll_fn(move |cx| {
            loop {
                match pin!(signal.wait()).poll(cx) {
                    Poll::Ready(OpOutcome::LinkClosed(r)) => {
                        return Poll::Ready(Err(Error::LinkClosed(r)))
                    }
                    Poll::Ready(OpOutcome::Rebooted) => {
                        return Poll::Ready(Err(Error::ModemRebooted))
                    }
                    Poll::Ready(o) if o.is_progress() => {}
                    Poll::Ready(o) => return Poll::Ready(Ok(o)),
                    Poll::Pending => break,
                }
            }
            // The result first, then the deadline (as `with_deadline`).
            Pin::new(&mut timer)
                .poll(cx)
                .map(|()| Err(Error::Timeout(Stage::Result)))
        })
    }
}

impl<M: RawMutex> Drop for OpTicket<'_, M> {
    fn drop(&mut self) {
        self.st
            .clients
            .lock(|c| c.borrow_mut()[self.client.index()].op = OpWait::Free);
        self.st.op_signals[self.client.index()].reset();
    }
}

/// A claimed publish slot (and its msgID); see [`PubTicket::wait`].
pub(crate) struct PubTicket<'c, M: RawMutex> {
    clients: ClientTable<'c, M>,
    /// The slot (kept, not looked up by index: no bounds check), and its
    /// index.
    slot: &'c PubSlot<M>,
    k: u8,
    msg_id: u16,
    /// Deadline for a late result once abandoned.
    abandon_for: Duration,
}

/// Why a publish slot could not be claimed at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClaimError {
    /// Every slot is busy.
    Busy,
    /// The msgID asked for is in flight for this client.
    MsgIdInUse,
}

impl<M: RawMutex> PubTicket<'_, M> {
    /// The slot's index, for the channel to arm when the modem accepts.
    pub(crate) fn index(&self) -> u8 {
        self.k
    }

    pub(crate) fn msg_id(&self) -> u16 {
        self.msg_id
    }

    /// Waits for the slot's final outcome (progress reports do not end
    /// it): a link closed or a restart (also before the line went out: a
    /// publish queued behind other commands ends at once), or a final
    /// `+QMTPUB` result. `Err` once `deadline` (if any) passed. One future
    /// for both waits of a publish (beside its line, and for its result).
    pub(crate) fn wait(
        &self,
        deadline: Option<Instant>,
    ) -> impl Future<Output = Result<PubOutcome, ()>> + '_ {
        // The wait itself, not an async fn around it (a state machine less).
        let mut timer = deadline.map(Timer::at);
        poll_fn(move |cx| self.poll_wait(&mut timer, cx))
    }

    /// [`wait`](Self::wait)'s poll, with its deadline's timer: also what
    /// a pending publish that owns its ticket polls.
    pub(crate) fn poll_wait(
        &self,
        timer: &mut Option<Timer>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<PubOutcome, ()>> {
        let signal = &self.slot.signal;
        {
            loop {
                match pin!(signal.wait()).poll(cx) {
                    Poll::Ready(PubOutcome::Progress) => {}
                    Poll::Ready(o) => return Poll::Ready(Ok(o)),
                    Poll::Pending => break,
                }
            }
            // The result first, then the deadline (as `with_deadline`).
            if timer
                .as_mut()
                .is_some_and(|t| Pin::new(t).poll(cx).is_ready())
            {
                Poll::Ready(Err(()))
            } else {
                Poll::Pending
            }
        }
    }
}

impl<M: RawMutex> Drop for PubTicket<'_, M> {
    fn drop(&mut self) {
        let slot = self.slot;
        let next = match slot.get() {
            // The modem accepted it and no result came yet: keep the msgID
            // and absorb the late result (so that a QoS 0 result is not
            // given to the next QoS 0 publish).
            SlotWait::Waiting {
                client,
                msg_id,
                seq,
                ..
            } => SlotWait::Abandoned {
                client,
                msg_id,
                seq,
                until: Instant::now() + self.abandon_for,
            },
            _ => SlotWait::Free,
        };
        slot.set(next);
        slot.signal.reset();
        self.clients.wake_slot_waiters();
    }
}

impl<'a, M: RawMutex> ClientTable<'a, M> {
    pub(crate) fn new(st: &'a ClientTableState<M>, slots: &'a [PubSlot<M>]) -> Self {
        Self { st, slots }
    }

    fn with<R>(&self, f: impl FnOnce(&mut [ClientEntry; CLIENTS]) -> R) -> R {
        self.st.clients.lock(|c| f(&mut c.borrow_mut()))
    }

    /// Runs a function on the waiters for a link change (`links`) or for a
    /// slot, under their lock.
    fn lock_wakers(&self, links: bool) -> impl FnMut(&mut dyn FnMut(&mut WaitSet)) + Unpin + '_ {
        move |f| {
            self.st.wakers.lock(|w| {
                let w = &mut *w.borrow_mut();
                f(if links { &mut w.links } else { &mut w.slots })
            })
        }
    }

    fn wake_slot_waiters(&self) {
        self.st.wakers.lock(|w| w.borrow_mut().slots.wake());
    }

    // ------------------------------------------------------------ handle side

    /// Takes the client's operation lock (one OPEN/CLOSE/CONN/DISC/SUB/UNS
    /// at a time) and slot, waiting for `kind`'s result with `msg_id` (0
    /// when the result carries none). The lock's wait itself, the slot
    /// taken once it is held: no state machine of its own.
    pub(crate) fn begin_op(
        &self,
        client: ClientId,
        kind: OpKind,
        msg_id: u16,
    ) -> impl Future<Output = OpTicket<'a, M>> + 'a {
        let st = self.st;
        let table = *self;
        let mut lock = st.op_locks[client.index()].lock();
        poll_fn(move |cx| {
            let lock = ready!(Pin::new(&mut lock).poll(cx));
            let i = client.index();
            st.op_signals[i].reset();
            table.with(|c| {
                c[i].op = OpWait::Waiting {
                    kind,
                    msg_id,
                    sent_at: None,
                }
            });
            Poll::Ready(OpTicket {
                st,
                client,
                _lock: lock,
            })
        })
    }

    /// A msgID 1-65535 (wrapping) that no operation or publish of the
    /// client has in flight.
    pub(crate) fn alloc_msg_id(&self, client: ClientId) -> u16 {
        self.with(|c| self.next_msg_id(&mut c[client.index()], client))
    }

    /// The allocator of `client` goes on from `next` (1-65535; 0 counts as
    /// 1): after a reset, above the msgIDs a flash outbox still holds.
    #[cfg(feature = "flash-outbox")]
    pub(crate) fn continue_msg_ids_at(&self, client: ClientId, next: u16) {
        self.with(|c| c[client.index()].next_msg_id = next.max(1))
    }

    fn next_msg_id(&self, c: &mut ClientEntry, client: ClientId) -> u16 {
        let now = Instant::now();
        loop {
            let id = c.next_msg_id;
            c.next_msg_id = if id == u16::MAX { 1 } else { id + 1 };
            if !self.in_flight(c, client, id, now) {
                return id;
            }
        }
    }

    fn in_flight(&self, c: &ClientEntry, client: ClientId, id: u16, now: Instant) -> bool {
        let in_op = matches!(c.op, OpWait::Waiting { msg_id, .. } if msg_id == id);
        in_op
            || self.slots.iter().any(
                |s| matches!(s.get().holds(now), Some((cl, m, _)) if cl == client.get() && m == id),
            )
    }

    /// Claims a free publish slot and a msgID (0 for QoS 0; `msg_id` if given,
    /// else the allocator's) in one critical section.
    pub(crate) fn try_claim_publish(
        &self,
        client: ClientId,
        qos: QoS,
        msg_id: Option<u16>,
        abandon_for: Duration,
    ) -> Result<PubTicket<'a, M>, ClaimError> {
        let now = Instant::now();
        let claimed = self.with(|c| {
            let c = &mut c[client.index()];
            let (k, slot) = self
                .slots
                .iter()
                .enumerate()
                .find(|(_, s)| s.get().is_free(now))
                .ok_or(ClaimError::Busy)?;
            let id = match (qos, msg_id) {
                (QoS::AtMostOnce, _) => 0,
                (_, Some(id)) if self.in_flight(c, client, id, now) => {
                    return Err(ClaimError::MsgIdInUse)
                }
                (_, Some(id)) => id,
                (_, None) => self.next_msg_id(c, client),
            };
            slot.signal.reset();
            slot.set(SlotWait::Claimed {
                client: client.get(),
                msg_id: id,
                sent_at: None,
            });
            Ok((slot, k, id))
        })?;
        Ok(PubTicket {
            clients: *self,
            slot: claimed.0,
            // As `index` gives it to the channel (`Owner::Publish` holds
            // a u8).
            k: claimed.1 as u8,
            msg_id: claimed.2,
            abandon_for,
        })
    }

    /// Like [`try_claim_publish`](Self::try_claim_publish); with `wait_for_slot`,
    /// waiting for a free slot instead of failing. The wait ends when a slot is freed (a
    /// publish ends: its ticket wakes the waiters), when an abandoned slot's
    /// deadline passes (no wake-up comes for that: each poll sets a timer for
    /// the earliest such deadline, so a slot abandoned while this waits
    /// brings its deadline in), or when the caller drops the future.
    pub(crate) fn claim_publish(
        &self,
        client: ClientId,
        qos: QoS,
        msg_id: Option<u16>,
        abandon_for: Duration,
        wait_for_slot: bool,
    ) -> impl Future<Output = Result<PubTicket<'a, M>, ClaimError>> + '_ {
        // The wait itself, not an async fn around it (a state machine less).
        wait(self.lock_wakers(false), move |w, waker| {
            // Try and register in one critical section: no wake-up is lost.
            self.st.wakers.lock(|ws| {
                let r = match self.try_claim_publish(client, qos, msg_id, abandon_for) {
                    Err(ClaimError::Busy) if wait_for_slot => {
                        if let Some(t) = self.next_expiry() {
                            wake_at(t, waker);
                        }
                        None
                    }
                    other => Some(other),
                };
                w.poll(&mut ws.borrow_mut().slots, waker, r)
            })
        })
    }

    /// The client's link was given up (closed by the driver's user, not by
    /// the modem): the results its abandoned publishes waited for will not
    /// come; their slots and msgIDs are free again.
    pub(crate) fn release_abandoned(&self, client: ClientId) {
        let mut freed = false;
        for slot in self.slots {
            self.with(|_| {
                if let SlotWait::Abandoned { client: c, .. } = slot.get() {
                    if c == client.get() {
                        slot.set(SlotWait::Free);
                        freed = true;
                    }
                }
            });
        }
        if freed {
            self.wake_slot_waiters();
        }
    }

    /// The earliest deadline of an abandoned slot still held.
    fn next_expiry(&self) -> Option<Instant> {
        let now = Instant::now();
        self.slots
            .iter()
            .filter_map(|s| match s.get() {
                SlotWait::Abandoned { until, .. } if until > now => Some(until),
                _ => None,
            })
            .min()
    }

    /// What the driver knows of the client's settings.
    pub(crate) fn settings(&self, client: ClientId) -> Settings {
        self.with(|c| c[client.index()].settings)
    }

    /// Whether the client's payloads arrive as hex digits (as far as the
    /// driver knows).
    pub(crate) fn receives_hex(&self, client: ClientId) -> bool {
        self.st.recv_hex.load(Ordering::Acquire) & (1 << client.index()) != 0
    }

    /// The client's packet timeout and retransmissions, as the driver
    /// configured or read them: its deadlines for CONN/SUB/UNS/PUB results
    /// follow.
    pub(crate) fn set_timeouts(&self, client: ClientId, pkt_timeout_s: u8, retry_times: u8) {
        self.with(|c| c[client.index()].settings.timeouts = Some((pkt_timeout_s, retry_times)))
    }

    /// The client's payload formats, as configured or read. `by_app`: the
    /// application set them (`set_data_format`), and a text reception it
    /// chose is then left as it is.
    pub(crate) fn set_formats(
        &self,
        client: ClientId,
        send: DataFormat,
        recv: DataFormat,
        by_app: bool,
    ) {
        self.with(|c| {
            let s = &mut c[client.index()].settings;
            s.send_hex = send == DataFormat::Hex;
            s.recv = match recv {
                DataFormat::Hex => RecvFormat::Hex,
                DataFormat::Text => RecvFormat::Text,
            };
            // Under the lock: the writers of the mask take turns.
            let bit = 1 << client.index();
            let mask = self.st.recv_hex.load(Ordering::Relaxed) & !bit;
            let mask = if s.recv == RecvFormat::Hex {
                mask | bit
            } else {
                mask
            };
            self.st.recv_hex.store(mask, Ordering::Release);
            if by_app {
                s.text_chosen = recv == DataFormat::Text;
            }
        })
    }

    /// The client's link epoch (bumped each time its link ends) and how it
    /// last ended.
    pub(crate) fn link(&self, client: ClientId) -> (u32, Option<LinkEnd>) {
        self.with(|c| (c[client.index()].link_epoch, c[client.index()].last_end))
    }

    /// Waits until the client's link epoch differs from `since`.
    pub(crate) fn wait_link_change(
        &self,
        client: ClientId,
        since: u32,
    ) -> impl Future<Output = u32> + '_ {
        // The wait itself, not an async fn around it (a state machine less).
        wait(self.lock_wakers(true), move |w, waker| {
            self.st.wakers.lock(|ws| {
                let now = self.with(|c| c[client.index()].link_epoch);
                w.poll(
                    &mut ws.borrow_mut().links,
                    waker,
                    (now != since).then_some(now),
                )
            })
        })
    }

    /// Registers the topic filters the client is subscribed to (a
    /// supervisor's persistent set): messages on other topics are dropped.
    pub(crate) fn set_filters(
        &self,
        client: ClientId,
        filters: Option<&'static [Subscription<'static>]>,
    ) {
        self.with(|c| c[client.index()].filters = filters)
    }

    // ------------------------------------------------------------ runner side

    /// The line of `owner` goes out now, when `pos` bytes have been read:
    /// its results (and a start-up line that ends it) start from there on.
    pub(crate) fn line_sent(&self, owner: Owner, pos: u32) {
        match owner {
            Owner::Nobody => {}
            Owner::Op(client) => self.with(|c| {
                if let OpWait::Waiting { sent_at, .. } = &mut c[client.index()].op {
                    *sent_at = Some(pos);
                }
            }),
            Owner::Publish(k) => {
                let Some(slot) = self.slots.get(usize::from(k)) else {
                    return;
                };
                self.with(|_| {
                    if let SlotWait::Claimed { client, msg_id, .. } = slot.get() {
                        slot.set(SlotWait::Claimed {
                            client,
                            msg_id,
                            sent_at: Some(pos),
                        });
                    }
                })
            }
        }
    }

    // ------------------------------------------------------------ digester side

    /// The modem accepted the publish of slot `k` (its `OK`, or a result
    /// that came before it): it takes its place in the client's QoS 0 queue
    /// and may receive results. Only a publish whose line went out is
    /// accepted: the `OK` of a publish that ended before it (its handle
    /// gone, or its result already in) arms no other publish that took the
    /// slot meanwhile.
    pub(crate) fn arm_publish(&self, k: u8) {
        let Some(slot) = self.slots.get(usize::from(k)) else {
            return;
        };
        self.with(|c| {
            if let SlotWait::Claimed {
                client,
                msg_id,
                sent_at: Some(_),
            } = slot.get()
            {
                let cs = &mut c[usize::from(client)];
                cs.next_seq = cs.next_seq.wrapping_add(1);
                slot.set(SlotWait::Waiting {
                    client,
                    msg_id,
                    seq: cs.next_seq,
                    retrans: 0,
                });
            }
        })
    }

    // ------------------------------------------------------------ router side

    /// An OPEN/CLOSE/CONN/DISC/SUB/UNS result that starts at stream
    /// position `pos`: it goes to the operation of its kind (and msgID)
    /// whose line went out before it, also if its `OK` has not come yet.
    /// `false`: nobody waited (stale).
    pub(crate) fn deliver_op(
        &self,
        client: u8,
        kind: OpKind,
        msg_id: Option<u32>,
        outcome: &OpOutcome,
        pos: u32,
    ) -> bool {
        let i = usize::from(client);
        if i >= CLIENTS {
            return false;
        }
        let matched = self.with(|c| match c[i].op {
            OpWait::Waiting {
                kind: k,
                msg_id: m,
                sent_at: Some(at),
            } if k == kind
                && msg_id.is_none_or(|id| id == u32::from(m))
                && at_or_after(pos, at) =>
            {
                if !outcome.is_progress() {
                    c[i].op = OpWait::Done;
                }
                true
            }
            _ => false,
        });
        if matched {
            self.st.op_signals[i].signal(*outcome);
        }
        matched
    }

    /// A `+QMTPUB: <id>,<msgID>,<result>[,<value>]` that starts at stream
    /// position `pos`. `false`: nobody waited (stale). A late result
    /// absorbed by an abandoned slot counts as stale.
    pub(crate) fn deliver_publish(
        &self,
        client: u8,
        msg_id: u32,
        result: u8,
        value: Option<u16>,
        pos: u32,
    ) -> bool {
        let Some(k) = self
            .oldest_accepted(client, msg_id)
            .or_else(|| self.sent_not_accepted(client, msg_id, pos))
        else {
            return false;
        };
        let slot = &self.slots[k];
        let (outcome, waited) = self.with(|_| match slot.get() {
            SlotWait::Waiting {
                client,
                msg_id,
                seq,
                retrans,
            } => {
                if result == 1 {
                    let retrans = value.unwrap_or(retrans.saturating_add(1));
                    slot.set(SlotWait::Waiting {
                        client,
                        msg_id,
                        seq,
                        retrans,
                    });
                    (PubOutcome::Progress, true)
                } else {
                    slot.set(SlotWait::Done);
                    (
                        PubOutcome::Final {
                            result,
                            retransmissions: retrans,
                        },
                        true,
                    )
                }
            }
            // Abandoned: a progress report keeps it; a final frees it.
            _ => {
                if result != 1 {
                    slot.set(SlotWait::Free);
                }
                (PubOutcome::Progress, false)
            }
        });
        if waited {
            slot.signal.signal(outcome);
        } else if result != 1 {
            self.wake_slot_waiters();
        }
        waited
    }

    /// The slot of the oldest publish the modem accepted that holds
    /// (`client`, `msg_id`): QoS 0 results (msgID 0) come in that order.
    fn oldest_accepted(&self, client: u8, msg_id: u32) -> Option<usize> {
        let now = Instant::now();
        let mut best: Option<(usize, u32)> = None;
        for (k, slot) in self.slots.iter().enumerate() {
            if let Some((c, m, Some(seq))) = slot.get().holds(now) {
                let older = best.is_none_or(|(_, s)| seq.wrapping_sub(s) >= 1 << 31);
                if c == client && u32::from(m) == msg_id && older {
                    best = Some((k, seq));
                }
            }
        }
        best.map(|(k, _)| k)
    }

    /// A result before its `OK`: the slot of the publish (`client`,
    /// `msg_id`) whose line went out before `pos` and whose `OK` has not come
    /// yet. The result says the modem took it: it is accepted now.
    fn sent_not_accepted(&self, client: u8, msg_id: u32, pos: u32) -> Option<usize> {
        let k = self.slots.iter().position(|s| {
            matches!(s.get(), SlotWait::Claimed { client: c, msg_id: m, sent_at: Some(at) }
                if c == client && u32::from(m) == msg_id && at_or_after(pos, at))
        })?;
        self.arm_publish(k as u8);
        Some(k)
    }

    /// `+QMTSTAT`: the end of every operation of the client that needs the
    /// link, and of its publishes (also those whose line has not gone out).
    /// Code 5 (the normal close after the client's own DISCONNECT, possibly
    /// late, after the application opened and connected again) ends nothing.
    pub(crate) fn link_closed(&self, client: ClientId, reason: LinkClosedReason) {
        if reason == LinkClosedReason::Disconnected {
            return;
        }
        let i = client.index();
        let fail_op = self.with(|c| {
            c[i].link_epoch = c[i].link_epoch.wrapping_add(1);
            c[i].last_end = Some(LinkEnd::Closed(reason));
            match c[i].op {
                OpWait::Waiting {
                    kind: OpKind::Conn | OpKind::Sub | OpKind::Uns,
                    ..
                } => {
                    c[i].op = OpWait::Done;
                    true
                }
                _ => false,
            }
        });
        if fail_op {
            self.st.op_signals[i].signal(OpOutcome::LinkClosed(reason));
        }
        self.end_links(Some(client.get()), 0, PubOutcome::LinkClosed(reason));
    }

    /// The modem restarted (a start-up line at stream position `pos`): every
    /// operation whose line had gone out ends, and every publish (one whose
    /// line has not gone out yet too: its link is gone); the settings go back
    /// to the modem's defaults. An operation or publish whose line went out
    /// after `pos` reached the restarted modem, which answers it: it goes on.
    pub(crate) fn rebooted(&self, pos: u32) {
        let failed = self.with(|c| {
            let mut failed = [false; CLIENTS];
            for (i, cs) in c.iter_mut().enumerate() {
                cs.link_epoch = cs.link_epoch.wrapping_add(1);
                cs.last_end = Some(LinkEnd::Rebooted);
                cs.settings = Settings::defaults();
                // The defaults receive text.
                self.st.recv_hex.store(0, Ordering::Release);
                if let OpWait::Waiting {
                    sent_at: Some(at), ..
                } = cs.op
                {
                    if at_or_after(pos, at) {
                        cs.op = OpWait::Done;
                        failed[i] = true;
                    }
                }
            }
            failed
        });
        for (i, f) in failed.iter().enumerate() {
            if *f {
                self.st.op_signals[i].signal(OpOutcome::Rebooted);
            }
        }
        self.end_links(None, pos, PubOutcome::Rebooted);
    }

    /// A link ended (`client`'s, or with `None` every link, by a restart at
    /// stream position `pos`): ends the publishes it takes with `outcome`
    /// (those of `client`; after a restart, all but those whose line went
    /// out after `pos`), frees the abandoned slots it takes, and wakes the
    /// tasks that wait for a link change. One copy for both.
    #[inline(never)]
    fn end_links(&self, client: Option<u8>, pos: u32, outcome: PubOutcome) {
        let ends = |w: SlotWait| match client {
            Some(c) => w.client() == Some(c),
            None => !w.sent_after(pos),
        };
        let mut freed = false;
        for slot in self.slots {
            let signal = self.with(|_| match slot.get() {
                w @ (SlotWait::Claimed { .. } | SlotWait::Waiting { .. }) if ends(w) => {
                    slot.set(SlotWait::Done);
                    true
                }
                w @ SlotWait::Abandoned { .. } if ends(w) => {
                    slot.set(SlotWait::Free);
                    freed = true;
                    false
                }
                _ => false,
            });
            if signal {
                slot.signal.signal(outcome);
            }
        }
        if freed {
            self.wake_slot_waiters();
        }
        self.st.wakers.lock(|w| w.borrow_mut().links.wake());
    }

    /// True if a message on `topic` for `client` may be delivered: no filters
    /// registered, or one of them matches.
    pub(crate) fn accepts(&self, client: ClientId, topic: &str) -> bool {
        let filters = self.with(|c| c[client.index()].filters);
        filters.is_none_or(|f| f.iter().any(|s| topic_matches(s.topic, topic)))
    }
}
