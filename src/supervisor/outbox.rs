//! The outbox: the messages a supervisor holds until they end (acknowledged,
//! sent, dropped or refused), by their size, in a byte ring in the user's
//! [`SupervisorState`](super::SupervisorState), and how each of them ended.
//! The one owner of that store:
//!
//! - Handle side: [`Outbox::push`] (and [`Outbox::push_wait`], which waits for
//!   room), [`Outbox::outcome`] / [`Outbox::wait_outcome`] for a ticket,
//!   [`Outbox::wait_empty`], [`Outbox::stats`].
//! - Supervisor side: [`Outbox::take_wait`] the oldest queued message (it is
//!   then in flight) with the [`Turn`]: no other is handed out until the
//!   turn is dropped, once its line went, so the lines leave in the order
//!   the messages were stored; [`Outbox::source`] to read it where it is
//!   while the driver writes it, then [`Outbox::delivered`] (it leaves),
//!   [`Outbox::requeue`] (it goes again), [`Outbox::refused`] (the modem
//!   refused it: counted on the record, it goes again) or [`Outbox::fail`]
//!   (it leaves, refused);
//!   [`Outbox::suspect`] (set aside after a failure, until
//!   [`Outbox::confirm_suspects`] counts it); [`Outbox::requeue_all`] after
//!   a link loss or when a supervisor starts (QoS 0 messages leave,
//!   dropped).
//! - Waits: any number of tasks, through `crate::wait` (no spinning when
//!   more than four wait).
//!
//! The lock is held for bounded work: a message is copied in (reserved,
//! copied, then queued) and read out [`CHUNK`](crate::channel::CHUNK)
//! bytes per lock, never whole (with the default
//! `CriticalSectionRawMutex`, interrupts stay masked for that long,
//! whatever the message's size).
//!
//! A record is 14 bytes of bookkeeping, the topic and the payload:
//! length (2), hold (1: stored, 0: freed), flags (1: QoS, retain, in flight,
//! suspect, being written),
//! sequence (4), msgID (2), sends (1), refusals (1), topic length (2).
//!
//! **Outcomes.** The last 1/28 to 1/56 of the store (a power of two of bytes,
//! `log_len`) keeps 2 bits per message, indexed by its sequence number: how
//! it ended (delivered, dropped, refused), for the last `W = 4 x log_len`
//! messages stored. A message stored is in the ring until it ends, and the
//! ring cannot hold more than `store / 15` records (14 bytes + a topic of one
//! byte at least), so fewer than `W` messages are stored after it while it
//! is there: its outcome is always written, and stays readable until `W`
//! messages in all were stored after it (at least as many again as the
//! store can hold at once). The errors of the last `REFUSALS` refusals are
//! kept beside it. A ticket older than that reads
//! [`Outcome::Forgotten`]: never a false "delivered".

use core::future::Future;
use core::task::Poll;

use crate::channel::{copy_part, Source};
use crate::error::Error;
use crate::ring::{self, Call, Ring, RingBuffer, RingFn};
use crate::sync::{Part, RawMutex};
use crate::types::QoS;
use crate::wait::{wait, WaitSet};

/// Bytes of bookkeeping per message.
pub(crate) const HEADER: usize = 14;

const QOS_MASK: u8 = 0b11;
const RETAIN: u8 = 0b100;
const IN_FLIGHT: u8 = 0b1000;
/// The modem reported it failed (`+QMTPUB: id,msgID,2`) with the client
/// connected: set aside (not taken) until the link proves itself (another
/// message acknowledged, or a quiet keep-alive period) or ends.
const SUSPECT: u8 = 0b1_0000;
/// Reserved, its topic and payload still being copied in (a few bytes a
/// lock): no lane takes it and nothing ends it meanwhile.
const WRITING: u8 = 0b10_0000;

/// Refusals whose error is kept for their tickets.
pub(crate) const REFUSALS: usize = 8;

/// How a message ended, in the outcome log (2 bits).
const ENDED_UNKNOWN: u8 = 0;
const ENDED_DELIVERED: u8 = 1;
const ENDED_DROPPED: u8 = 2;
const ENDED_REFUSED: u8 = 3;

/// The outbox's bookkeeping, beside its ring.
pub(crate) struct OutboxMeta {
    next_seq: u32,
    /// Most bytes held at once.
    high_water: usize,
    /// The last refusals: (sequence, why), `next_refusal` the oldest.
    refusals: [Option<(u32, Error)>; REFUSALS],
    next_refusal: usize,
    /// Publishers waiting for room (any number of them).
    space: WaitSet,
    /// Tasks waiting for a message to end (any number of them).
    gone: WaitSet,
    /// The supervisor's lanes, waiting for a queued message (and the turn).
    queued: WaitSet,
    /// A lane took a message and has not written its line yet ([`Turn`]):
    /// no other lane takes one until then, so the lines leave in order.
    turn: bool,
}

impl OutboxMeta {
    pub(crate) const fn new() -> Self {
        Self {
            next_seq: 1,
            high_water: 0,
            refusals: [None; REFUSALS],
            next_refusal: 0,
            space: WaitSet::new(),
            gone: WaitSet::new(),
            queued: WaitSet::new(),
            turn: false,
        }
    }
}

/// A stored message: the handle to wait for its [`Outcome`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Ticket {
    /// The order in which messages were stored (wrapping).
    pub seq: u32,
    /// The msgID the message goes out with, every time (0 for QoS 0).
    pub msg_id: u16,
}

/// How a message handed to a supervisor ended: what
/// [`Link::delivered`](super::Link::delivered) and
/// [`Link::publish`](super::Link::publish) return, for every QoS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
#[must_use]
pub enum Outcome {
    /// QoS 0: the modem sent it (`+QMTPUB: id,0,0`; QoS 0 has no
    /// acknowledgement).
    Sent,
    /// QoS 1/2: the broker acknowledged it (`+QMTPUB: id,msgID,0`), under
    /// this msgID (the one it got when it was stored, every send).
    Acknowledged {
        /// The msgID.
        msg_id: u16,
    },
    /// QoS 0: the link ended before the modem reported it sent (counted in
    /// [`Counters::qos0_dropped`](super::Counters::qos0_dropped)). QoS 0 is
    /// at most once: it is not sent again. A message whose line the modem
    /// had taken may still have reached the broker.
    Dropped,
    /// Refused, never sent, and it left the outbox: before it was stored
    /// (the error of [`Link::try_publish`](super::Link::try_publish)), or
    /// later: the driver's check at the configured format failed when it
    /// wrote it, or the modem answered `ERROR` to it (or reported it failed,
    /// [`Error::SendFailed`]) `max_refusals` times while the link was fine
    /// (counted in [`Counters::refused`](super::Counters::refused)).
    Refused(Error),
    /// The outbox no longer knows: the message ended before the last
    /// messages stored (at least as many as the outbox holds at once) or
    /// was refused before the last 8 refusals. Never a message still
    /// stored.
    Forgotten,
}

impl Outcome {
    /// True for [`Sent`](Self::Sent) and
    /// [`Acknowledged`](Self::Acknowledged).
    pub fn is_delivered(&self) -> bool {
        matches!(self, Outcome::Sent | Outcome::Acknowledged { .. })
    }
}

/// A message taken for sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Taken {
    pub at: usize,
    pub seq: u32,
    pub msg_id: u16,
    pub qos: QoS,
    pub retain: bool,
    /// Times it was taken, this one included.
    pub sends: u8,
}

/// What a task waits for.
#[derive(Clone, Copy)]
enum Wait {
    /// Room (a publisher).
    Space,
    /// A message ending (a ticket's reader).
    Gone,
    /// A queued message (the supervisor).
    Queued,
}

/// A small change under the outbox's lock ([`Outbox::change`]).
#[derive(Clone, Copy)]
enum Change {
    /// The record's flags: these cleared, those set; the lanes look again.
    Flags(u8, u8),
    /// The turn is free again ([`Turn`]); the lanes look again.
    TurnDone,
    /// One more refusal counted on the record; returns how many.
    Refused,
    /// The message ended (how, and the refusal's error): it leaves.
    End(u8, Option<Error>),
    /// Is a message other than this one set aside? (1: yes.)
    OtherSuspect(u32),
    /// [`Outbox::confirm_suspects`]: how many left.
    Confirm(u8, Error),
    /// [`Outbox::requeue_all`]: how many were dropped.
    RequeueAll,
}

/// Where a stored message's msgID comes from.
enum MsgId<'f> {
    /// The next one the allocator gives that no stored message holds.
    Next(&'f mut dyn FnMut() -> u16),
    /// This one ([`PushError::InUse`] if a stored message holds it).
    #[cfg(feature = "flash-outbox")]
    Given(u16),
}

/// Why a message was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PushError {
    /// No room now.
    Full,
    /// Larger than the whole store.
    TooLarge,
    /// The msgID asked for is held by a stored message.
    #[cfg(feature = "flash-outbox")]
    InUse,
}

/// What the outbox holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct OutboxStats {
    /// Messages stored (queued or in flight).
    pub messages: usize,
    /// Bytes they take (with their bookkeeping).
    pub bytes: usize,
    /// Most bytes held at once since start.
    pub high_water: usize,
    /// Bytes for messages: `OUTBOX` less the outcome log (1/28 to 1/56 of
    /// it).
    pub capacity: usize,
}

/// A record's bookkeeping (one bounds check, not one a byte).
fn header(buf: &[u8], at: usize) -> &[u8; HEADER] {
    // A slice of HEADER bytes: the conversion cannot fail.
    buf[at..at + HEADER]
        .try_into()
        .unwrap_or_else(|_| unreachable!())
}

fn header_mut(buf: &mut [u8], at: usize) -> &mut [u8; HEADER] {
    // A slice of HEADER bytes: the conversion cannot fail.
    (&mut buf[at..at + HEADER])
        .try_into()
        .unwrap_or_else(|_| unreachable!())
}

/// A record's length (`ring::len`) and its topic's length, from one read
/// of its header.
fn lens_of(buf: &[u8], at: usize) -> (usize, usize) {
    let h = header(buf, at);
    (
        usize::from(u16::from_le_bytes([h[0], h[1]])),
        usize::from(u16::from_le_bytes([h[12], h[13]])),
    )
}

fn seq_of(buf: &[u8], at: usize) -> u32 {
    let h = header(buf, at);
    u32::from_le_bytes([h[4], h[5], h[6], h[7]])
}

fn msg_id_of(buf: &[u8], at: usize) -> u16 {
    let h = header(buf, at);
    u16::from_le_bytes([h[8], h[9]])
}

/// Bytes of a store of `size` that keep the outcome log: the largest power
/// of two not above `size / 28` (at least 1), so that the sequence numbers
/// (which wrap at 2^32) index it without a jump. Found without a division:
/// it is computed at every lock of the outbox, and a Cortex-M0 has no
/// divide instruction (the library's division took some 1,100 instructions
/// a UART read in the QEMU profile).
fn log_len(size: usize) -> usize {
    let mut p = 1;
    while 2 * 28 * p <= size {
        p *= 2;
    }
    p
}

/// The outcome log: 2 bits per sequence number.
struct Log<'b>(&'b mut [u8]);

impl Log<'_> {
    /// Messages it covers.
    fn span(&self) -> u32 {
        // At most 2^14 (a store of 65535 bytes): fits.
        (self.0.len() * 4) as u32
    }

    fn place(&self, seq: u32) -> (usize, u32) {
        // The log's length is a power of two: a mask, not a division (and
        // the byte is within the log).
        let byte = (seq as usize / 4) & (self.0.len().max(1) - 1);
        (byte, (seq % 4) * 2)
    }

    fn set(&mut self, seq: u32, code: u8) {
        let (byte, shift) = self.place(seq);
        self.0[byte] = (self.0[byte] & !(0b11 << shift)) | (code << shift);
    }

    fn get(&self, seq: u32) -> u8 {
        let (byte, shift) = self.place(seq);
        (self.0[byte] >> shift) & 0b11
    }
}

/// Work on the outbox under its lock (see [`RingFn`]).
trait OutboxFn {
    fn call(&mut self, ring: &mut Ring, meta: &mut OutboxMeta, buf: &mut [u8], log: Log<'_>);
}

impl<F: FnMut(&mut Ring, &mut OutboxMeta, &mut [u8], Log<'_>) -> R, R> OutboxFn for Call<F, R> {
    fn call(&mut self, ring: &mut Ring, meta: &mut OutboxMeta, buf: &mut [u8], log: Log<'_>) {
        self.run(|f| f(ring, meta, buf, log))
    }
}

/// An [`OutboxFn`] run on the ring: the outcome log split off its end.
struct WithLog<'f>(&'f mut dyn OutboxFn);

impl RingFn<OutboxMeta> for WithLog<'_> {
    fn call(&mut self, ring: &mut Ring, meta: &mut OutboxMeta, buf: &mut [u8]) {
        let at = buf.len() - log_len(buf.len());
        let (buf, log) = buf.split_at_mut(at);
        self.0.call(ring, meta, buf, Log(log))
    }
}

/// The outbox, seen without its size. `Copy`.
pub(crate) struct Outbox<'a, M: RawMutex> {
    ring: Part<'a, M, dyn RingBuffer<OutboxMeta, M> + 'a>,
}

impl<M: RawMutex> Clone for Outbox<'_, M> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<M: RawMutex> Copy for Outbox<'_, M> {}

/// The turn to send, handed out with a message by
/// [`Outbox::take_wait`]: dropped once that message's line went (or
/// failed), and the next message may be taken.
pub(crate) struct Turn<'t, 'o, M: RawMutex>(&'t Outbox<'o, M>);

impl<M: RawMutex> Drop for Turn<'_, '_, M> {
    // Not inlined: one copy for the lane's drop and its futures' drop glue.
    #[inline(never)]
    fn drop(&mut self) {
        self.0.change(0, Change::TurnDone);
    }
}

/// A stored message read in place, as the driver writes it: a few bytes
/// (at most [`CHUNK`](crate::channel::CHUNK)) under each lock of the outbox,
/// so that the lock is held for bounded work whatever the message's size.
/// The message is in flight meanwhile: nothing else removes or changes it.
pub(crate) struct Record<'o, M: RawMutex> {
    outbox: Outbox<'o, M>,
    at: usize,
}

impl<M: RawMutex> Source for Record<'_, M> {
    fn lens(&self) -> (usize, usize) {
        let (topic, payload, _) = self.part(0, &mut []);
        (topic, payload)
    }

    fn read(&self, off: usize, out: &mut [u8]) -> usize {
        self.part(off, out).2
    }
}

impl<M: RawMutex> Record<'_, M> {
    /// The topic's length, the payload's, and the bytes copied from `off`
    /// into `out` (none for an empty `out`): one lock site for both of
    /// [`Source`]'s reads.
    fn part(&self, off: usize, out: &mut [u8]) -> (usize, usize, usize) {
        let at = self.at;
        self.outbox.with((0, 0, 0), move |_, _, buf, _| {
            let (len, topic_len) = lens_of(buf, at);
            let (topic, payload) = buf[at + HEADER..at + len].split_at(topic_len);
            (
                topic_len,
                payload.len(),
                copy_part(topic, payload, off, out),
            )
        })
    }
}

impl<'a, M: RawMutex> Outbox<'a, M> {
    pub(crate) fn new(ring: &'a (dyn RingBuffer<OutboxMeta, M> + 'a)) -> Self {
        Self {
            ring: Part::new(ring),
        }
    }

    /// Runs `f` on the ring (its bytes), the bookkeeping and the outcome
    /// log, and returns what it returns (`init` until it ran: a result
    /// without an `Option` to unwrap).
    fn with<R>(
        &self,
        init: R,
        f: impl FnMut(&mut Ring, &mut OutboxMeta, &mut [u8], Log<'_>) -> R,
    ) -> R {
        let mut call = Call::new(f, init);
        self.with_dyn(&mut call);
        call.out()
    }

    /// [`with`](Self::with), not generic: the lock, the borrow and the
    /// outcome log's place once, not at every call site.
    #[inline(never)]
    fn with_dyn(&self, f: &mut dyn OutboxFn) {
        self.ring.with(&mut WithLog(f))
    }

    /// Live records, oldest first.
    fn live<'b>(ring: &Ring, buf: &'b [u8]) -> ring::Live<'b> {
        ring.live(buf)
    }

    // ------------------------------------------------------------ handle side

    /// Stores a message; its msgID is chosen now (0 for QoS 0, else the next
    /// one `next_id` gives that no stored message holds) and kept for every
    /// send.
    pub(crate) fn push(
        &self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
        next_id: &mut dyn FnMut() -> u16,
    ) -> Result<Ticket, PushError> {
        let r = self.with(Err(PushError::Full), move |ring, meta, buf, log| {
            let msg = (topic, payload, qos, retain);
            Self::push_in(ring, meta, buf, log, msg, MsgId::Next(next_id))
        });
        self.fill(r, topic, payload)
    }

    /// Copies the topic and the payload of a message [`push_in`]
    /// reserved into its record, [`CHUNK`](crate::channel::CHUNK) bytes a
    /// lock (from the caller's slices straight into the record), then lets
    /// the lanes take it: the outbox's lock is never held to copy a whole
    /// message.
    ///
    /// [`push_in`]: Self::push_in
    // Not inlined: one copy for every way in.
    #[inline(never)]
    fn fill(
        &self,
        r: Result<(Ticket, usize), PushError>,
        topic: &str,
        payload: &[u8],
    ) -> Result<Ticket, PushError> {
        let (ticket, at) = r?;
        let total = topic.len() + payload.len();
        let mut off = 0;
        // Each step copies 1 to CHUNK bytes (`off < total`: the record
        // reaches past `to`), straight into the record, under the lock.
        while off < total {
            off += self.with(0, move |_, _, buf, _| {
                let to = at + HEADER + off;
                copy_part(topic.as_bytes(), payload, off, &mut buf[to..])
            });
        }
        self.change(at, Change::Flags(WRITING, 0));
        Ok(ticket)
    }

    /// [`push`](Self::push) (and `push_as`), under the lock: reserves the
    /// record and writes its bookkeeping; [`fill`](Self::fill) copies the
    /// message in.
    fn push_in(
        ring: &mut Ring,
        meta: &mut OutboxMeta,
        buf: &mut [u8],
        mut log: Log<'_>,
        (topic, payload, qos, retain): (&str, &[u8], QoS, bool),
        id: MsgId<'_>,
    ) -> Result<(Ticket, usize), PushError> {
        let len = HEADER + topic.len() + payload.len();
        {
            if len > buf.len() || len > usize::from(u16::MAX) {
                return Err(PushError::TooLarge);
            }
            let msg_id = match (qos, id) {
                (QoS::AtMostOnce, _) => 0,
                #[cfg(feature = "flash-outbox")]
                (_, MsgId::Given(id)) => {
                    if Self::live(ring, buf).any(|r| msg_id_of(buf, r) == id) {
                        return Err(PushError::InUse);
                    }
                    id
                }
                // At most 65535 tries: the store holds fewer messages.
                (_, MsgId::Next(next_id)) => loop {
                    let id = next_id();
                    if !Self::live(ring, buf).any(|r| msg_id_of(buf, r) == id) {
                        break id;
                    }
                },
            };
            let at = ring.alloc(len, buf.len()).ok_or(PushError::Full)?;
            let seq = meta.next_seq;
            meta.next_seq = meta.next_seq.wrapping_add(1);
            log.set(seq, ENDED_UNKNOWN);
            let [l0, l1] = (len as u16).to_le_bytes();
            let [s0, s1, s2, s3] = seq.to_le_bytes();
            let [m0, m1] = msg_id.to_le_bytes();
            let [t0, t1] = (topic.len() as u16).to_le_bytes();
            let flags = qos.get() | if retain { RETAIN } else { 0 } | WRITING;
            // Length, hold 1 (`ring::set_header`), flags, sequence, msgID,
            // sends, refusals, topic length: one store of the whole header.
            *header_mut(buf, at) = [l0, l1, 1, flags, s0, s1, s2, s3, m0, m1, 0, 0, t0, t1];
            meta.high_water = meta.high_water.max(ring.used(buf.len()));
            Ok((Ticket { seq, msg_id }, at))
        }
    }

    /// Like [`push`](Self::push), waiting for room instead of failing.
    pub(crate) async fn push_wait(
        &self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
        next_id: &mut dyn FnMut() -> u16,
    ) -> Result<Ticket, PushError> {
        let mut next_id = next_id;
        let r = wait(self.lock(Wait::Space), |w, waker| {
            self.with(Poll::Pending, |ring, meta, buf, log| {
                let r = match Self::push_in(
                    ring,
                    meta,
                    buf,
                    log,
                    (topic, payload, qos, retain),
                    MsgId::Next(&mut next_id),
                ) {
                    Err(PushError::Full) => None,
                    other => Some(other),
                };
                w.poll(&mut meta.space, waker, r)
            })
        })
        .await;
        // No await from here on: the reserved record is filled at once.
        self.fill(r, topic, payload)
    }

    /// How the message of `ticket` ended; `None` while it is stored.
    pub(crate) fn outcome(&self, ticket: Ticket) -> Option<Outcome> {
        self.with(None, |ring, meta, buf, log| {
            Self::outcome_in(ring, meta, buf, &log, ticket)
        })
    }

    fn outcome_in(
        ring: &Ring,
        meta: &OutboxMeta,
        buf: &[u8],
        log: &Log<'_>,
        t: Ticket,
    ) -> Option<Outcome> {
        if Self::live(ring, buf).any(|at| seq_of(buf, at) == t.seq) {
            return None;
        }
        let age = meta.next_seq.wrapping_sub(t.seq);
        if age == 0 || age > log.span() {
            return Some(Outcome::Forgotten);
        }
        Some(match log.get(t.seq) {
            ENDED_DELIVERED if t.msg_id == 0 => Outcome::Sent,
            ENDED_DELIVERED => Outcome::Acknowledged { msg_id: t.msg_id },
            ENDED_DROPPED => Outcome::Dropped,
            ENDED_REFUSED => meta
                .refusals
                .iter()
                .flatten()
                .find(|r| r.0 == t.seq)
                .map_or(Outcome::Forgotten, |r| Outcome::Refused(r.1)),
            _ => Outcome::Forgotten,
        })
    }

    /// Waits until the message of `ticket` ended; how. Any number of tasks
    /// may wait at once (`crate::wait`).
    pub(crate) fn wait_outcome(&self, ticket: Ticket) -> impl Future<Output = Outcome> + '_ {
        // The wait itself, not an async fn around it (a state machine less).
        wait(self.lock(Wait::Gone), move |w, waker| {
            self.with(Poll::Pending, |ring, meta, buf, log| {
                let o = Self::outcome_in(ring, meta, buf, &log, ticket);
                w.poll(&mut meta.gone, waker, o)
            })
        })
    }

    /// Waits until nothing is stored.
    pub(crate) fn wait_empty(&self) -> impl Future<Output = ()> + '_ {
        self.wait_count(Wait::Gone, 1)
    }

    /// Waits until at least `n` messages are stored (a duty cycle's wake).
    pub(crate) fn wait_stored(&self, n: usize) -> impl Future<Output = ()> + '_ {
        self.wait_count(Wait::Queued, n)
    }

    /// Waits until no message is stored (`Gone`, the waiters of an end) or
    /// at least `n` are (`Queued`): one wait (one state machine) for both.
    /// At most `n` records (one for `Gone`) are looked at under each lock.
    fn wait_count(&self, which: Wait, n: usize) -> impl Future<Output = ()> + '_ {
        wait(self.lock(which), move |w, waker| {
            self.with(Poll::Pending, move |ring, meta, buf, _| {
                let mut live = Self::live(ring, buf);
                let (ready, set) = if let Wait::Gone = which {
                    (live.next().is_none(), &mut meta.gone)
                } else {
                    let mut seen = 0;
                    while seen < n && live.next().is_some() {
                        seen += 1;
                    }
                    (seen >= n, &mut meta.queued)
                };
                w.poll(set, waker, ready.then_some(()))
            })
        })
    }

    /// Runs a function on the waiters of `which`, under the lock.
    fn lock(&self, which: Wait) -> impl FnMut(&mut dyn FnMut(&mut WaitSet)) + Unpin + '_ {
        move |f| {
            self.with((), move |_, meta, _, _| {
                f(match which {
                    Wait::Space => &mut meta.space,
                    Wait::Gone => &mut meta.gone,
                    Wait::Queued => &mut meta.queued,
                })
            })
        }
    }

    /// What is stored.
    pub(crate) fn stats(&self) -> OutboxStats {
        self.with(OutboxStats::default(), |ring, meta, buf, _| {
            let mut s = OutboxStats {
                high_water: meta.high_water,
                capacity: buf.len(),
                ..OutboxStats::default()
            };
            for at in Self::live(ring, buf) {
                s.messages += 1;
                s.bytes += ring::len(buf, at);
            }
            s
        })
    }

    // ------------------------------------------------------------ supervisor side

    /// The oldest queued message, now in flight; `None` if none is queued.
    #[cfg(test)]
    pub(crate) fn take(&self) -> Option<Taken> {
        self.with(None, |ring, _, buf, _| Self::take_in(ring, buf))
    }

    fn take_in(ring: &Ring, buf: &mut [u8]) -> Option<Taken> {
        {
            let at = Self::live(ring, buf)
                .find(|&at| header(buf, at)[3] & (IN_FLIGHT | SUSPECT) == 0)?;
            let h = header_mut(buf, at);
            // One still being copied in holds back those stored after it:
            // they go out in the order they were stored.
            if h[3] & WRITING != 0 {
                return None;
            }
            h[3] |= IN_FLIGHT;
            h[10] = h[10].saturating_add(1);
            let flags = h[3];
            Some(Taken {
                at,
                seq: u32::from_le_bytes([h[4], h[5], h[6], h[7]]),
                msg_id: u16::from_le_bytes([h[8], h[9]]),
                qos: QoS::new(flags & QOS_MASK).unwrap_or(QoS::AtLeastOnce),
                retain: flags & RETAIN != 0,
                sends: h[10],
            })
        }
    }

    /// Waits for a queued message and for the turn, and takes both: the
    /// next message is handed out once the [`Turn`] is dropped (its line
    /// went), so the messages go out in the order they were stored.
    pub(crate) fn take_wait(&self) -> impl Future<Output = (Taken, Turn<'_, 'a, M>)> + '_ {
        // The wait itself, not an async fn around it (a state machine less).
        wait(self.lock(Wait::Queued), move |w, waker| {
            self.with(Poll::Pending, move |ring, meta, buf, _| {
                let t = if meta.turn {
                    None
                } else {
                    Self::take_in(ring, buf)
                };
                meta.turn |= t.is_some();
                w.poll(&mut meta.queued, waker, t)
            })
            .map(|t| (t, Turn(self)))
        })
    }

    /// The message at `at`, read in place.
    pub(crate) fn source(&self, at: usize) -> Record<'a, M> {
        Record { outbox: *self, at }
    }

    /// The message at `at` ended (`code`): it leaves.
    fn end(&self, at: usize, code: u8, error: Option<Error>) {
        self.change(at, Change::End(code, error));
    }

    /// One change to the record at `at` (or to the turn), under one lock:
    /// one function for the small changes, not one each.
    #[inline(never)]
    fn change(&self, at: usize, c: Change) -> u32 {
        self.with(0, move |ring, meta, buf, mut log| {
            match c {
                Change::Flags(clear, set) => {
                    let h = header_mut(buf, at);
                    h[3] = (h[3] & !clear) | set;
                    meta.queued.wake();
                    return 0;
                }
                Change::TurnDone => {
                    meta.turn = false;
                    meta.queued.wake();
                    return 0;
                }
                Change::Refused => {
                    let h = header_mut(buf, at);
                    h[11] = h[11].saturating_add(1);
                    return u32::from(h[11]);
                }
                Change::End(code, error) => {
                    Self::end_in(meta, buf, &mut log, at, code, error);
                    ring.reclaim(buf);
                    meta.space.wake();
                    meta.gone.wake();
                    return 0;
                }
                Change::OtherSuspect(_) | Change::Confirm(..) | Change::RequeueAll => {}
            }
            // A sweep of the records (`OtherSuspect`: a search, nothing
            // changed); `left` of them leave.
            let mut left = 0;
            // Records changed (`Confirm`: at most 16 at a time).
            let mut n = 0;
            let mut cur = ring.cursor();
            while let Some(at) = cur.next_live(buf) {
                let h = header_mut(buf, at);
                if let Change::Confirm(max, e) = c {
                    // Each failure counts as a refusal of its message.
                    if h[3] & SUSPECT == 0 {
                        continue;
                    }
                    n += 1;
                    h[3] &= !SUSPECT;
                    h[11] = h[11].saturating_add(1);
                    if h[11] >= max {
                        Self::end_in(meta, buf, &mut log, at, ENDED_REFUSED, Some(e));
                        left += 1;
                    }
                    if n == 16 {
                        break;
                    }
                } else if let Change::OtherSuspect(seq) = c {
                    if h[3] & SUSPECT != 0 && u32::from_le_bytes([h[4], h[5], h[6], h[7]]) != seq {
                        return 1;
                    }
                } else {
                    // After a link loss: in flight or set aside, it goes
                    // again; QoS 0 leaves, dropped.
                    if h[3] & WRITING != 0 {
                        continue;
                    }
                    n += 1;
                    if h[3] & QOS_MASK == 0 {
                        Self::end_in(meta, buf, &mut log, at, ENDED_DROPPED, None);
                        left += 1;
                    } else {
                        h[3] &= !(IN_FLIGHT | SUSPECT);
                    }
                }
            }
            // Nothing changed (`OtherSuspect` changes nothing): no wake.
            if n == 0 && !matches!(c, Change::RequeueAll) {
                return 0;
            }
            ring.reclaim(buf);
            meta.space.wake();
            meta.gone.wake();
            meta.queued.wake();
            left
        })
    }

    fn end_in(
        meta: &mut OutboxMeta,
        buf: &mut [u8],
        log: &mut Log<'_>,
        at: usize,
        code: u8,
        error: Option<Error>,
    ) {
        let seq = seq_of(buf, at);
        if meta.next_seq.wrapping_sub(seq) <= log.span() {
            log.set(seq, code);
        }
        if let Some(e) = error {
            // Below REFUSALS (a power of two): no bounds check.
            let i = meta.next_refusal % REFUSALS;
            meta.refusals[i] = Some((seq, e));
            meta.next_refusal = (i + 1) % REFUSALS;
        }
        ring::free(buf, at);
    }

    /// The message at `at` was delivered: it leaves.
    pub(crate) fn delivered(&self, at: usize) {
        self.end(at, ENDED_DELIVERED, None)
    }

    /// The message at `at` can never be sent: it leaves, refused with `e`.
    pub(crate) fn fail(&self, at: usize, e: Error) {
        self.end(at, ENDED_REFUSED, Some(e))
    }

    /// The modem refused the message at `at`, in flight (the link being
    /// fine): counted on the record, which stays in flight. Returns the
    /// refusals so far.
    pub(crate) fn refused(&self, at: usize) -> u8 {
        // At most 255: a record's count.
        self.change(at, Change::Refused) as u8
    }

    /// The modem reported the message at `at`, in flight, failed
    /// (`+QMTPUB: id,msgID,2`) with the client connected: it is set aside
    /// (no lane takes it) until [`confirm_suspects`](Self::confirm_suspects)
    /// counts the failure against it, or a link loss puts it back uncounted.
    pub(crate) fn suspect(&self, at: usize) {
        self.change(at, Change::Flags(IN_FLIGHT, SUSPECT));
    }

    /// True if a message other than `seq` is set aside.
    pub(crate) fn other_suspect(&self, seq: u32) -> bool {
        self.change(0, Change::OtherSuspect(seq)) != 0
    }

    /// The link proved itself while messages were set aside: each failure
    /// counts as a refusal of its message, which goes again, or leaves,
    /// refused with `e`, at `max` refusals. Returns how many left.
    pub(crate) fn confirm_suspects(&self, max: u8, e: Error) -> u32 {
        self.change(0, Change::Confirm(max, e))
    }

    /// The message at `at` goes again later.
    pub(crate) fn requeue(&self, at: usize) {
        self.change(at, Change::Flags(IN_FLIGHT, 0));
    }

    /// After a link loss: every message in flight (or set aside) goes
    /// again, uncounted, but QoS 0 ones, which are at most once: they leave,
    /// dropped. Returns how many of those.
    pub(crate) fn requeue_all(&self) -> u32 {
        self.change(0, Change::RequeueAll)
    }
}

/// The flash outbox's ways in (feature `flash-outbox`), apart so that the
/// outbox without the feature is what it was.
#[cfg(feature = "flash-outbox")]
impl<M: RawMutex> Outbox<'_, M> {
    /// Stores a QoS 1/2 message under `msg_id` (a flash outbox's, chosen
    /// before the message was journalled): [`PushError::InUse`] if a stored
    /// message holds it. The record is the one [`push`](Self::push) writes
    /// (durable.rs tests that both read back alike).
    pub(crate) fn push_as(
        &self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
        msg_id: u16,
    ) -> Result<Ticket, PushError> {
        let r = self.with(Err(PushError::Full), |ring, meta, buf, log| {
            let msg = (topic, payload, qos, retain);
            Self::push_in(ring, meta, buf, log, msg, MsgId::Given(msg_id))
        });
        self.fill(r, topic, payload)
    }

    /// Waits until the message of one of `tickets` ended (for ever if none
    /// is given).
    pub(crate) async fn wait_any_ended(&self, tickets: &[Option<Ticket>]) {
        wait(self.lock(Wait::Gone), |w, waker| {
            self.with(Poll::Pending, |ring, meta, buf, log| {
                let ended = tickets
                    .iter()
                    .flatten()
                    .any(|t| Self::outcome_in(ring, meta, buf, &log, *t).is_some());
                w.poll(&mut meta.gone, waker, ended.then_some(()))
            })
        })
        .await
    }

    /// A stored message leaves while still queued (not in flight), ended
    /// [`Outcome::Dropped`]: a flash outbox drops a stale one. `false` if the
    /// message of `seq` is not queued.
    pub(crate) fn withdraw(&self, seq: u32) -> bool {
        self.with(false, |ring, meta, buf, mut log| {
            let Some(at) = Self::live(ring, buf)
                .find(|&at| seq_of(buf, at) == seq && buf[at + 3] & (IN_FLIGHT | WRITING) == 0)
            else {
                return false;
            };
            Self::end_in(meta, buf, &mut log, at, ENDED_DROPPED, None);
            ring.reclaim(buf);
            meta.space.wake();
            meta.gone.wake();
            true
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::RingStore;
    use core::cell::RefCell;
    use embassy_sync::blocking_mutex::Mutex as BlockingMutex;
    use std::vec::Vec;

    type Cs = crate::sync::CriticalSectionRawMutex;
    type Store<const N: usize> = BlockingMutex<Cs, RefCell<RingStore<OutboxMeta, N>>>;

    fn store<const N: usize>() -> &'static Store<N> {
        std::boxed::Box::leak(std::boxed::Box::new(BlockingMutex::new(RefCell::new(
            RingStore::new(OutboxMeta::new()),
        ))))
    }

    /// msgIDs 1, 2, ... as the driver's allocator gives them.
    fn ids() -> impl FnMut() -> u16 {
        let mut n = 0u16;
        move || {
            n = if n == u16::MAX { 1 } else { n + 1 };
            n
        }
    }

    fn read(o: &Outbox<'_, Cs>, at: usize) -> (std::string::String, Vec<u8>) {
        crate::channel::read_all(&o.source(at))
    }

    std::thread_local! {
        /// Locks taken of `Counted` on this thread.
        static LOCKS: core::cell::Cell<u32> = const { core::cell::Cell::new(0) };
    }

    type Hook = std::boxed::Box<dyn FnMut()>;

    std::thread_local! {
        /// Run after each lock of `Counted` on this thread (not within
        /// itself).
        static AFTER: RefCell<Option<Hook>> = const { RefCell::new(None) };
    }

    /// `NoopRawMutex` that counts the locks taken, and runs `AFTER` once
    /// each is let go.
    struct Counted(embassy_sync::blocking_mutex::raw::NoopRawMutex);

    // SAFETY: every lock is `NoopRawMutex`'s, which is sound for the same
    // reason it is: it is neither `Send` nor `Sync` (so is `Counted`, which
    // holds one), so all its users are on one thread, where the closures
    // run one after the other. The counter is the thread's own.
    #[allow(unsafe_code)]
    unsafe impl RawMutex for Counted {
        const INIT: Self = Counted(embassy_sync::blocking_mutex::raw::NoopRawMutex::new());
        fn lock<R>(&self, f: impl FnOnce() -> R) -> R {
            LOCKS.with(|n| n.set(n.get() + 1));
            let r = self.0.lock(f);
            if let Some(mut hook) = AFTER.with(|h| h.borrow_mut().take()) {
                hook();
                AFTER.with(|h| *h.borrow_mut() = Some(hook));
            }
            r
        }
    }

    type CountedStore = BlockingMutex<Counted, RefCell<RingStore<OutboxMeta, 2048>>>;

    fn counted() -> Outbox<'static, Counted> {
        let s: &'static CountedStore = std::boxed::Box::leak(std::boxed::Box::new(
            BlockingMutex::new(RefCell::new(RingStore::new(OutboxMeta::new()))),
        ));
        Outbox::new(s)
    }

    #[test]
    fn a_kilobyte_message_is_stored_at_most_64_bytes_per_lock_of_the_outbox() {
        let o = counted();
        // No byte of it is 0, the store's bytes before: each one copied in
        // changes the store.
        let payload: Vec<u8> = (0..1024u32).map(|i| (i % 255 + 1) as u8).collect();
        let before = std::rc::Rc::new(RefCell::new(o.with(Vec::new(), |_, _, b, _| b.to_vec())));
        let most = std::rc::Rc::new(core::cell::Cell::new(0));
        let (b, m) = (before.clone(), most.clone());
        // After each lock: how many bytes of the store it changed.
        AFTER.with(|h| {
            *h.borrow_mut() = Some(std::boxed::Box::new(move || {
                let now = o.with(Vec::new(), |_, _, buf, _| buf.to_vec());
                let changed = {
                    let b = b.borrow();
                    now.iter().zip(b.iter()).filter(|(x, y)| x != y).count()
                };
                m.set(m.get().max(changed));
                *b.borrow_mut() = now;
            }))
        });
        let ticket = o.push("t/k", &payload, QoS::AtMostOnce, false, &mut ids());
        AFTER.with(|h| *h.borrow_mut() = None);
        assert!(ticket.is_ok());
        assert!(
            most.get() <= 64,
            "{} bytes changed under one lock",
            most.get()
        );
        let t = o.take().unwrap();
        assert_eq!(
            crate::channel::read_all(&o.source(t.at)),
            ("t/k".into(), payload)
        );
    }

    #[test]
    fn a_message_being_copied_in_is_neither_taken_nor_dropped_nor_passed() {
        let o = counted();
        let payload = [7u8; 300];
        let seen = std::rc::Rc::new(RefCell::new(Vec::new()));
        let later = std::rc::Rc::new(core::cell::Cell::new(None));
        let (s, l) = (seen.clone(), later.clone());
        // Between the locks of the copy: another task stores a message
        // (whole), a lane looks for one, the link ends (QoS 0 messages
        // leave).
        AFTER.with(|h| {
            *h.borrow_mut() = Some(std::boxed::Box::new(move || {
                // The record is the store's first.
                if o.with(false, |_, _, buf, _| buf[3] & WRITING != 0) {
                    if l.get().is_none() {
                        l.set(o.push("b", b"2", QoS::AtLeastOnce, false, &mut ids()).ok());
                    }
                    s.borrow_mut()
                        .push((o.take(), o.requeue_all(), o.stats().messages));
                }
            }))
        });
        let ticket = o.push("z", &payload, QoS::AtMostOnce, false, &mut ids());
        AFTER.with(|h| *h.borrow_mut() = None);
        let ticket = ticket.unwrap();
        let seen = seen.borrow();
        // After the reservation and after each chunk's lock: the topic's
        // byte, then the payload's 300 in 10.
        assert_eq!(seen.len(), 12);
        for &(taken, dropped, messages) in seen.iter() {
            assert_eq!((taken, dropped, messages), (None, 0, 2));
        }
        assert_eq!(o.outcome(ticket), None);
        // Then both, in the order they were stored.
        let t = o.take().unwrap();
        assert_eq!(t.seq, ticket.seq);
        assert_eq!(crate::channel::read_all(&o.source(t.at)).1, payload);
        let later = later.get().expect("stored while the first was copied in");
        assert_eq!(o.take().map(|t| t.seq), Some(later.seq));
    }

    #[test]
    fn a_kilobyte_message_is_read_out_at_most_32_bytes_per_lock_of_the_outbox() {
        let o = counted();
        let payload: Vec<u8> = (0..1024u32).map(|i| (i * 7) as u8).collect();
        o.push("t/k", &payload, QoS::AtLeastOnce, false, &mut ids())
            .unwrap();
        let t = o.take().unwrap();
        let src = o.source(t.at);
        let locks = || LOCKS.with(core::cell::Cell::get);

        let before = locks();
        assert_eq!(src.lens(), (3, 1024));
        assert_eq!(locks() - before, 1);
        // However much room the reader offers, one lock copies at most 32
        // bytes: the lock is held for that, never for the whole message.
        let mut run = Vec::new();
        let mut out = [0u8; 2048];
        let mut most = 0;
        loop {
            let before = locks();
            let n = src.read(run.len(), &mut out);
            assert_eq!(locks() - before, 1, "one lock a read");
            if n == 0 {
                break;
            }
            most = most.max(n);
            run.extend_from_slice(&out[..n]);
        }
        assert!(most <= 32, "{most} bytes under one lock");
        assert_eq!(&run[..3], b"t/k");
        assert_eq!(&run[3..], &payload[..]);
        assert_eq!(
            crate::channel::read_all(&src),
            ("t/k".into(), payload.clone())
        );
    }

    #[test]
    fn a_message_from_the_outbox_is_checked_and_written_as_the_same_bytes_in_place() {
        let o = Outbox::new(store::<4096>());
        let long_topic = "t".repeat(300);
        let cases: [(&str, std::vec::Vec<u8>); 7] = [
            ("a/b", b"v".to_vec()),
            ("a/b", (0..350u32).map(|i| b'a' + (i % 26) as u8).collect()),
            ("a/b", (0..1000u32).map(|i| b'a' + (i % 26) as u8).collect()),
            ("a/b", b"say \"hi\"".to_vec()),
            ("a/b", b"ctrl-z \x1a".to_vec()),
            ("a/#", b"v".to_vec()),
            (&long_topic, b"v".to_vec()),
        ];
        // In text mode, not forced to data mode: inline, data mode or why not.
        let bad = |field, problem| Err(Error::InvalidArgument { field, problem });
        use crate::error::{Field, Problem};
        let text = [
            Ok(true),
            Ok(true),
            Ok(false),
            Ok(false),
            bad(Field::Payload, Problem::NeedsHexFormat),
            bad(Field::Topic, Problem::Wildcard),
            bad(Field::Topic, Problem::TooLong),
        ];
        let mut next = 0u16;
        for ((topic, payload), text) in cases.iter().zip(text) {
            let direct: (&str, &[u8]) = (topic, payload);
            assert_eq!(
                crate::mqtt_client::check_source(&direct, false, false),
                text,
                "{topic}"
            );
            for hex in [false, true] {
                for force in [false, true] {
                    let direct: (&str, &[u8]) = (topic, payload);
                    let stored = o
                        .push(topic, payload, QoS::AtLeastOnce, true, &mut || {
                            next += 1;
                            next
                        })
                        .unwrap();
                    let t = o.take().unwrap();
                    assert_eq!(t.seq, stored.seq);
                    let record = o.source(t.at);
                    let checked = crate::mqtt_client::check_source(&direct, hex, force);
                    assert_eq!(
                        crate::mqtt_client::check_source(&record, hex, force),
                        checked
                    );
                    if let Ok(inline) = checked {
                        let want = crate::mqtt_client::publish_line(
                            &direct,
                            QoS::AtLeastOnce,
                            hex,
                            inline,
                        );
                        assert!(!want.is_empty());
                        assert_eq!(
                            crate::mqtt_client::publish_line(
                                &record,
                                QoS::AtLeastOnce,
                                hex,
                                inline
                            ),
                            want
                        );
                    }
                    o.delivered(t.at);
                }
            }
        }
    }

    #[test]
    fn messages_go_out_oldest_first_with_one_msg_id_each_for_every_send() {
        let o = Outbox::new(store::<256>());
        let mut next = ids();
        let a = o
            .push("a", b"1", QoS::AtLeastOnce, false, &mut next)
            .unwrap();
        let b = o
            .push("b", b"22", QoS::ExactlyOnce, true, &mut next)
            .unwrap();
        let z = o
            .push("z", b"0", QoS::AtMostOnce, false, &mut next)
            .unwrap();
        assert_eq!((a.msg_id, b.msg_id, z.msg_id), (1, 2, 0));
        let t = o.take().unwrap();
        assert_eq!(
            (t.seq, t.msg_id, t.qos, t.retain, t.sends),
            (a.seq, 1, QoS::AtLeastOnce, false, 1)
        );
        assert_eq!(read(&o, t.at), ("a".into(), b"1".to_vec()));
        let t2 = o.take().unwrap();
        assert_eq!((t2.msg_id, t2.retain), (2, true));
        // The first is sent again after a failure, under the same msgID.
        o.requeue(t.at);
        let again = o.take().unwrap();
        assert_eq!((again.seq, again.msg_id, again.sends), (a.seq, 1, 2));
        o.delivered(again.at);
        assert_eq!(
            o.outcome(a),
            Some(Outcome::Acknowledged { msg_id: a.msg_id })
        );
        assert_eq!(o.outcome(b), None);
        assert_eq!(o.stats().messages, 2);
    }

    #[test]
    fn a_full_outbox_refuses_and_a_message_larger_than_it_never_fits() {
        let o = Outbox::new(store::<64>());
        let mut next = ids();
        assert_eq!(
            o.push("t", &[0; 40], QoS::AtLeastOnce, false, &mut next)
                .map(drop),
            Ok(())
        );
        assert_eq!(
            o.push("t", &[0; 20], QoS::AtLeastOnce, false, &mut next),
            Err(PushError::Full)
        );
        assert_eq!(
            o.push("t", &[0; 60], QoS::AtLeastOnce, false, &mut next),
            Err(PushError::TooLarge)
        );
        let t = o.take().unwrap();
        o.delivered(t.at);
        assert_eq!(
            o.push("t", &[0; 20], QoS::AtLeastOnce, false, &mut next)
                .map(drop),
            Ok(())
        );
    }

    #[test]
    fn kilobyte_messages_wrap_around_the_store_and_read_back_whole() {
        let o = Outbox::new(store::<3000>());
        let mut next = ids();
        let payload = |i: u8| std::vec![i; 1000];
        let mut expect = std::collections::VecDeque::new();
        for i in 0..20u8 {
            // Keep at most two stored: deliver the oldest when full.
            while o
                .push("k", &payload(i), QoS::AtLeastOnce, false, &mut next)
                .is_err()
            {
                let t = o.take().unwrap();
                assert_eq!(
                    read(&o, t.at),
                    ("k".into(), payload(expect.pop_front().unwrap()))
                );
                o.delivered(t.at);
            }
            expect.push_back(i);
        }
        assert!(o.stats().high_water <= 3000);
        assert_eq!(o.stats().messages, expect.len());
    }

    #[test]
    fn after_a_link_loss_messages_in_flight_go_again_and_qos0_ones_leave() {
        let o = Outbox::new(store::<256>());
        let mut next = ids();
        let a = o
            .push("a", b"1", QoS::AtLeastOnce, false, &mut next)
            .unwrap();
        let z = o
            .push("z", b"0", QoS::AtMostOnce, false, &mut next)
            .unwrap();
        o.take().unwrap();
        o.take().unwrap();
        assert_eq!(o.take(), None);
        assert_eq!(o.requeue_all(), 1);
        assert_eq!(o.outcome(z), Some(Outcome::Dropped));
        assert_eq!(o.outcome(a), None);
        let t = o.take().unwrap();
        assert_eq!((t.seq, t.sends), (a.seq, 2));
    }

    #[test]
    fn msg_ids_skip_those_still_stored() {
        let o = Outbox::new(store::<512>());
        let a = o
            .push("a", b"", QoS::AtLeastOnce, false, &mut ids())
            .unwrap();
        let b = o
            .push("b", b"", QoS::AtLeastOnce, false, &mut || 7)
            .unwrap();
        // The allocator gives 1 again (a restarted counter): 1 is stored, so 2.
        let c = o
            .push("c", b"", QoS::AtLeastOnce, false, &mut ids())
            .unwrap();
        assert_eq!((a.msg_id, b.msg_id, c.msg_id), (1, 7, 2));
    }

    #[test]
    fn every_ending_is_kept_for_its_ticket_sent_acknowledged_dropped_refused() {
        let o = Outbox::new(store::<512>());
        let mut next = ids();
        let z = o
            .push("z", b"0", QoS::AtMostOnce, false, &mut next)
            .unwrap();
        let a = o
            .push("a", b"1", QoS::AtLeastOnce, false, &mut next)
            .unwrap();
        let r = o
            .push("r", b"2", QoS::ExactlyOnce, false, &mut next)
            .unwrap();
        let d = o
            .push("d", b"3", QoS::AtMostOnce, false, &mut next)
            .unwrap();
        for t in [z, a, r, d] {
            assert_eq!(o.outcome(t), None);
        }
        let tz = o.take().unwrap();
        o.delivered(tz.at);
        let ta = o.take().unwrap();
        o.delivered(ta.at);
        let tr = o.take().unwrap();
        // Refused twice (it stays in flight), then put back after a link
        // loss and taken again with its count, then failed.
        assert_eq!(o.refused(tr.at), 1);
        assert_eq!(o.refused(tr.at), 2);
        o.requeue(tr.at);
        let tr = o.take().unwrap();
        assert_eq!((tr.seq, tr.sends), (r.seq, 2));
        assert_eq!(o.refused(tr.at), 3);
        let e = Error::Modem(crate::error::ModemError::Error);
        o.fail(tr.at, e);
        assert_eq!(o.requeue_all(), 1);
        assert_eq!(o.outcome(z), Some(Outcome::Sent));
        assert_eq!(o.outcome(a), Some(Outcome::Acknowledged { msg_id: 1 }));
        assert_eq!(o.outcome(r), Some(Outcome::Refused(e)));
        assert_eq!(o.outcome(d), Some(Outcome::Dropped));
        assert_eq!(o.stats().messages, 0);
        // A ticket never given out is not taken for delivered.
        assert_eq!(
            o.outcome(Ticket {
                seq: 999,
                msg_id: 0
            }),
            Some(Outcome::Forgotten)
        );
    }

    #[test]
    fn an_outcome_is_kept_while_its_message_is_stored_however_many_pass_it() {
        // 256 bytes: a log of 8 bytes (32 outcomes), 248 for messages.
        let o = Outbox::new(store::<256>());
        assert_eq!(o.stats().capacity, 248);
        let mut next = ids();
        let slow = o
            .push("s", b"", QoS::AtLeastOnce, false, &mut next)
            .unwrap();
        let ts = o.take().unwrap();
        // Messages go through while the first one waits for its result, as
        // many as fit behind it (the ring cannot pass it).
        let mut n = 0;
        while let Ok(t) = o.push("m", b"", QoS::AtMostOnce, false, &mut next) {
            let tt = o.take().unwrap();
            assert_eq!(tt.seq, t.seq);
            o.delivered(tt.at);
            n += 1;
        }
        assert!(n >= 10, "{n}");
        o.delivered(ts.at);
        assert_eq!(o.outcome(slow), Some(Outcome::Acknowledged { msg_id: 1 }));
        // Then kept until 32 messages in all were stored after it.
        for _ in n..31 {
            let t = o.push("m", b"", QoS::AtMostOnce, false, &mut next).unwrap();
            let tt = o.take().unwrap();
            assert_eq!(tt.seq, t.seq);
            o.delivered(tt.at);
        }
        assert_eq!(o.outcome(slow), Some(Outcome::Acknowledged { msg_id: 1 }));
        let t = o.push("m", b"", QoS::AtMostOnce, false, &mut next).unwrap();
        assert_eq!(o.outcome(slow), Some(Outcome::Forgotten));
        assert_eq!(o.outcome(t), None);
    }

    #[test]
    fn outcomes_are_kept_across_the_wrap_of_the_sequence_numbers() {
        let o = Outbox::new(store::<256>());
        o.with((), |_, meta, _, _| meta.next_seq = u32::MAX - 2);
        let mut next = ids();
        let tickets: Vec<Ticket> = (0..6)
            .map(|i| {
                let qos = if i % 2 == 0 {
                    QoS::AtMostOnce
                } else {
                    QoS::AtLeastOnce
                };
                o.push("w", b"", qos, false, &mut next).unwrap()
            })
            .collect();
        assert_eq!(tickets[3].seq, 0);
        for _ in 0..3 {
            let t = o.take().unwrap();
            o.delivered(t.at);
        }
        assert_eq!(o.requeue_all(), 1, "the queued QoS 0 one");
        let t = o.take().unwrap();
        o.fail(t.at, Error::OutboxFull);
        let got: Vec<Option<Outcome>> = tickets.iter().map(|t| o.outcome(*t)).collect();
        assert_eq!(
            got,
            [
                Some(Outcome::Sent),
                Some(Outcome::Acknowledged { msg_id: 1 }),
                Some(Outcome::Sent),
                Some(Outcome::Refused(Error::OutboxFull)),
                Some(Outcome::Dropped),
                None,
            ]
        );
    }

    #[test]
    fn the_outcome_log_is_a_power_of_two_of_1_28_to_1_56_of_the_store() {
        for size in [64usize, 100, 256, 3000, 4096, 16384, 65535] {
            let l = log_len(size);
            assert!(l.is_power_of_two());
            assert!(l <= (size / 28).max(1) && l > size / 56, "{size}: {l}");
            // More outcomes than the ring can hold records (15 bytes at least).
            assert!(l * 4 > (size - l) / 15, "{size}: {l}");
        }
        // The same as with a division, for every store size.
        for size in 1..=65535usize {
            let target = (size / 28).max(1);
            let by_division = 1 << (usize::BITS - 1 - target.leading_zeros());
            assert_eq!(log_len(size), by_division, "{size}");
        }
    }
}
