//! The receive store: the one owner of what the router hands to the
//! application. Messages are kept by their size in a byte ring (a record is
//! a 10-byte header, the topic and the decoded payload), and every event
//! goes through an embassy `PubSubChannel` of small notices, in order, to
//! each [`Events`](crate::Events) subscription. A record is freed when every
//! subscription that existed when it arrived has read it.
//!
//! - Router side: [`Inbox::push_message`], [`Inbox::push_link_closed`],
//!   [`Inbox::push_rebooted`]. Never waits: what cannot be stored is
//!   counted (and reported to each subscription as [`Event::Missed`]).
//! - Subscriber side: [`Inbox::subscribe`], [`Sub::next`], [`Sub::try_next`].
//!
//! Link and reboot events need no bytes in the ring, and the notice channel
//! keeps [`RESERVE`] places that messages may not take, so a burst of
//! messages never pushes out the event that says the link closed.
//!
//! The lock (with the default `CriticalSectionRawMutex`, interrupts masked)
//! is never held for work proportional to a message's size: a message is
//! stored in three steps, reserve (its record, held and not yet announced),
//! copy (at most [`CHUNK`] bytes decoded or copied per lock) and commit (its
//! readers counted, its notice published), and read out the same way. A
//! record is invisible to readers until its notice is published and is
//! never moved or reclaimed while it is held, so no one else touches its
//! bytes between the locks.

use core::future::{poll_fn, Future};
use core::pin::Pin;
use core::task::Poll;

use embassy_sync::pubsub::{DynSubscriber, PubSubChannel, WaitResult};

use crate::error::LinkClosedReason;
use crate::event::{Event, Message};
use crate::ring::{self, RingBuffer};
use crate::stats::{bump, StatsCell};
use crate::sync::{LockedBy, Part, RawMutex};
use crate::types::ClientId;

/// Client 0, where a `ClientId` is needed and no other can be.
const CLIENT_0: ClientId = match ClientId::new(0) {
    Ok(c) => c,
    Err(_) => panic!(),
};

/// Notice places kept for link and reboot events.
pub(crate) const RESERVE: usize = 8;
/// Bytes of a record's header: length (2), readers (1), client (1), msgID
/// (4), topic length (2).
const HEADER: usize = 10;
/// Bytes of a message stored or read out per lock: a bounded time with the
/// lock held (on a Cortex-M3, some 300 instructions to decode 32 bytes of
/// hex), whatever the message's size.
pub(crate) const CHUNK: usize = 32;

/// One event, as the notice channel carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Notice {
    /// A message record at this offset of the ring.
    Message {
        at: u16,
    },
    LinkClosed {
        client: ClientId,
        reason: LinkClosedReason,
    },
    Rebooted,
}

/// The notice channel, seen without its sizes.
pub(crate) trait NoticeChannel<M>: LockedBy<M> {
    fn subscriber(&self) -> Option<DynSubscriber<'_, Notice>>;
    fn try_publish(&self, n: Notice) -> bool;
    fn free_capacity(&self) -> usize;
}

impl<M: RawMutex, const C: usize, const S: usize> NoticeChannel<M>
    for PubSubChannel<M, Notice, C, S, 0>
{
    fn subscriber(&self) -> Option<DynSubscriber<'_, Notice>> {
        self.dyn_subscriber().ok()
    }
    fn try_publish(&self, n: Notice) -> bool {
        self.dyn_immediate_publisher().try_publish(n).is_ok()
    }
    fn free_capacity(&self) -> usize {
        PubSubChannel::free_capacity(self)
    }
}

/// The receive store's bookkeeping, beside its ring.
pub(crate) struct InboxMeta {
    /// Active subscriptions (the readers a new record gets).
    subscribers: u8,
    /// Messages dropped while subscriptions existed (wrapping).
    dropped: u32,
}

impl InboxMeta {
    pub(crate) const fn new() -> Self {
        Self {
            subscribers: 0,
            dropped: 0,
        }
    }
}

/// An inbox closure as the ring's [`ring::RingFn`]: its results go out
/// through the variables it captures, with no `Option` around the closure or
/// its result (as `ring::with` needs for any closure).
struct Locked<F>(F);

impl<F: FnMut(&mut ring::Ring, &mut InboxMeta, &mut [u8])> ring::RingFn<InboxMeta> for Locked<F> {
    fn call(&mut self, ring: &mut ring::Ring, meta: &mut InboxMeta, buf: &mut [u8]) {
        (self.0)(ring, meta, buf)
    }
}

/// The receive store. `Copy`.
pub(crate) struct Inbox<'a, M: RawMutex> {
    ring: Part<'a, M, dyn RingBuffer<InboxMeta, M> + 'a>,
    notices: Part<'a, M, dyn NoticeChannel<M> + 'a>,
    stats: &'a StatsCell<M>,
}

impl<M: RawMutex> Clone for Inbox<'_, M> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<M: RawMutex> Copy for Inbox<'_, M> {}

/// A message's bytes as they arrived.
pub(crate) struct WireMessage<'m> {
    pub client: ClientId,
    pub msg_id: u32,
    pub topic: &'m str,
    /// Wire bytes: hex digits if `hex`.
    pub payload: &'m [u8],
    pub hex: bool,
}

impl<'a, M: RawMutex> Inbox<'a, M> {
    pub(crate) fn new(
        ring: &'a (dyn RingBuffer<InboxMeta, M> + 'a),
        notices: &'a (dyn NoticeChannel<M> + 'a),
        stats: &'a StatsCell<M>,
    ) -> Self {
        Self {
            ring: Part::new(ring),
            notices: Part::new(notices),
            stats,
        }
    }

    /// Runs `f` under the ring's lock; `f` hands out what it found through
    /// the variables it captures. The router's pushes and a subscription's
    /// arrival and departure also touch the notice channel inside it, so
    /// that each is one step for the other side.
    fn with<F: FnMut(&mut ring::Ring, &mut InboxMeta, &mut [u8])>(&self, f: F) {
        RingBuffer::with(&*self.ring, &mut Locked(f))
    }

    // ------------------------------------------------------------ router side

    /// Stores a message and tells every subscription; never waits. `false`:
    /// dropped (no subscription, the store or the notices full, or a payload
    /// that is not valid hex), counted. The lock is taken once to reserve,
    /// once per [`CHUNK`] of the message, and once to commit.
    #[inline]
    pub(crate) fn push_message(&self, m: &WireMessage<'_>) -> bool {
        let payload_len = if m.hex {
            if !crate::hex::is_valid(m.payload) {
                bump!(self.stats, malformed_urcs);
                return false;
            }
            m.payload.len() / 2
        } else {
            m.payload.len()
        };
        let len = HEADER + m.topic.len() + payload_len;
        let stored = self.reserve(m, len).and_then(|at| {
            self.fill(at + HEADER, m);
            self.commit(at)
        });
        match stored {
            Ok(()) => {
                bump!(self.stats, events_published);
                true
            }
            Err(()) => {
                bump!(self.stats, messages_dropped);
                false
            }
        }
    }

    /// Reserves a record of `len` bytes and writes its header, held (a hold
    /// count of 1, so that it is never reclaimed) and not yet announced.
    fn reserve(&self, m: &WireMessage<'_>, len: usize) -> Result<usize, ()> {
        let mut out = Err(());
        self.with(|ring, meta, buf| {
            if meta.subscribers == 0 {
                return;
            }
            let room = self.notices.free_capacity() > RESERVE && len <= usize::from(u16::MAX);
            let Some(at) = room.then(|| ring.alloc(len, buf.len())).flatten() else {
                meta.dropped = meta.dropped.wrapping_add(1);
                return;
            };
            ring::set_header(buf, at, len, 1);
            let rec = &mut buf[at..at + HEADER];
            rec[3] = m.client.get();
            rec[4..8].copy_from_slice(&m.msg_id.to_le_bytes());
            rec[8..10].copy_from_slice(&(m.topic.len() as u16).to_le_bytes());
            out = Ok(at);
        });
        out
    }

    /// Copies the topic and decodes or copies the payload into the reserved
    /// record's body at `body`, [`CHUNK`] bytes per lock.
    fn fill(&self, body: usize, m: &WireMessage<'_>) {
        let mut at = body;
        for (src, hex) in [(m.topic.as_bytes(), false), (m.payload, m.hex)] {
            // A hex payload in even-sized chunks (its size is even: checked).
            let step = if hex { 2 * CHUNK } else { CHUNK };
            for part in src.chunks(step) {
                let n = if hex { part.len() / 2 } else { part.len() };
                self.with(|_, _, buf| {
                    let out = &mut buf[at..at + n];
                    if hex {
                        crate::hex::decode_into(part, out)
                    } else {
                        out.copy_from_slice(part)
                    }
                });
                at += n;
            }
        }
    }

    /// Gives the record at `at` one hold per subscription there is now and
    /// announces it; frees it if there is none or the notices filled.
    fn commit(&self, at: usize) -> Result<(), ()> {
        let mut out = Err(());
        self.with(|ring, meta, buf| {
            let room = self.notices.free_capacity() > RESERVE;
            if meta.subscribers == 0 || !room {
                // With no subscription left (all left meanwhile), nobody
                // misses it.
                if meta.subscribers > 0 {
                    meta.dropped = meta.dropped.wrapping_add(1);
                }
                ring::free(buf, at);
                ring.reclaim(buf);
                return;
            }
            buf[at + 2] = meta.subscribers;
            // There is room: the router is the only publisher.
            let sent = self.notices.try_publish(Notice::Message { at: at as u16 });
            debug_assert!(sent);
            out = Ok(());
        });
        out
    }

    fn push_control(&self, n: Notice) {
        let mut sent = false;
        self.with(|_, meta, _| {
            sent = meta.subscribers > 0 && self.notices.try_publish(n);
        });
        if sent {
            bump!(self.stats, events_published);
        } else {
            bump!(self.stats, events_dropped);
        }
    }

    /// `+QMTSTAT`: tells every subscription.
    pub(crate) fn push_link_closed(&self, client: ClientId, reason: LinkClosedReason) {
        self.push_control(Notice::LinkClosed { client, reason });
    }

    /// The modem restarted: tells every subscription.
    pub(crate) fn push_rebooted(&self) {
        self.push_control(Notice::Rebooted);
    }

    // ------------------------------------------------------------ subscriber side

    /// A new subscription, or `None` when every place is taken.
    pub(crate) fn subscribe(&self) -> Option<Sub<'a, M>> {
        // Under the ring's lock, which the router holds while it stores a
        // record and publishes its notice: a record never counts a reader
        // that will not read it, nor misses one that will.
        let notices = self.notices.get();
        let mut out = None;
        self.with(|_, meta, _| {
            if let Some(sub) = notices.subscriber() {
                meta.subscribers += 1;
                out = Some((sub, meta.dropped));
            }
        });
        // The subscription is made here, not inside the lock: the closure
        // then overwrites an `Option` of no `Sub` (whose drop, which takes
        // the lock, an image that never drops its `Events` then leaves out).
        let (sub, seen) = out?;
        Some(Sub {
            inbox: *self,
            sub,
            seen,
        })
    }
}

/// One subscription's reading end.
pub(crate) struct Sub<'a, M: RawMutex> {
    inbox: Inbox<'a, M>,
    sub: DynSubscriber<'a, Notice>,
    /// `Ring::dropped` when this subscription last reported what it missed.
    seen: u32,
}

impl<'a, M: RawMutex> Sub<'a, M> {
    /// Messages dropped since this subscription last said so.
    fn missed(&mut self) -> Option<u32> {
        let mut now = 0;
        self.inbox.with(|_, meta, _| now = meta.dropped);
        let n = now.wrapping_sub(self.seen);
        self.seen = now;
        (n > 0).then_some(n)
    }

    /// Turns a notice into an event, copying a message into `buf`.
    #[inline]
    fn event<'b>(&mut self, n: Notice, buf: &'b mut [u8]) -> Event<'b> {
        match n {
            Notice::LinkClosed { client, reason } => Event::LinkClosed { client, reason },
            Notice::Rebooted => Event::ModemRebooted,
            Notice::Message { at } => {
                let at = usize::from(at);
                let read = self.copy_out(at, buf);
                let Some((client, msg_id, topic_len, body)) = read else {
                    bump!(self.inbox.stats, messages_dropped);
                    return Event::Missed(1);
                };
                let (topic, payload) = buf[..body].split_at(topic_len);
                Event::Message(Message {
                    // Stored from a `ClientId`: never the fallback.
                    client: ClientId::new(client).unwrap_or(CLIENT_0),
                    msg_id,
                    // Checked as UTF-8 before it was stored.
                    topic: core::str::from_utf8(topic).unwrap_or_default(),
                    payload,
                })
            }
        }
    }

    /// Copies the body of the record at `at` (held by this subscription
    /// until it lets it go here) into `buf`, [`CHUNK`] bytes per lock, and
    /// lets it go. `None`: it does not fit `buf`.
    fn copy_out(&self, at: usize, buf: &mut [u8]) -> Option<(u8, u32, usize, usize)> {
        let mut head = (0, 0, 0, 0);
        self.inbox.with(|_, _, ring_buf| {
            let rec = &ring_buf[at..at + HEADER];
            head = (
                rec[3],
                u32::from_le_bytes([rec[4], rec[5], rec[6], rec[7]]),
                usize::from(u16::from_le_bytes([rec[8], rec[9]])),
                ring::len(ring_buf, at) - HEADER,
            );
        });
        let (client, msg_id, topic_len, body) = head;
        let fits = body <= buf.len();
        if fits {
            let from = at + HEADER;
            for (i, part) in buf[..body].chunks_mut(CHUNK).enumerate() {
                let src = from + i * CHUNK;
                self.inbox
                    .with(|_, _, ring_buf| part.copy_from_slice(&ring_buf[src..src + part.len()]));
            }
        }
        self.inbox.with(|ring, _, ring_buf| {
            ring::release(ring_buf, at);
            ring.reclaim(ring_buf);
        });
        fits.then_some((client, msg_id, topic_len, body))
    }

    /// The next event, waiting for one. Messages are copied into `buf`.
    /// The wait itself, not an async fn around it (a state machine less):
    /// what was missed is looked at when first polled, then the notices are
    /// waited for.
    pub(crate) fn next<'s, 'b: 's>(
        &'s mut self,
        buf: &'b mut [u8],
    ) -> impl Future<Output = Event<'b>> + use<'s, 'b, 'a, M> {
        let mut buf = Some(buf);
        let mut first = true;
        poll_fn(move |cx| {
            if core::mem::take(&mut first) {
                if let Some(n) = self.missed() {
                    return Poll::Ready(Event::Missed(n));
                }
            }
            // Taken when the event is given (`None`: the future is done).
            let Some(b) = buf.take() else {
                return Poll::Pending;
            };
            let Poll::Ready(r) = Pin::new(&mut self.sub.next_message()).poll(cx) else {
                buf = Some(b);
                return Poll::Pending;
            };
            let buf = b;
            Poll::Ready(match r {
                WaitResult::Message(n) => self.event(n, buf),
                // Never published with overwrite; kept for completeness.
                WaitResult::Lagged(n) => Event::Missed(u32::try_from(n).unwrap_or(u32::MAX)),
            })
        })
    }

    /// The next event if one is there.
    pub(crate) fn try_next<'b>(&mut self, buf: &'b mut [u8]) -> Option<Event<'b>> {
        if let Some(n) = self.missed() {
            return Some(Event::Missed(n));
        }
        match self.sub.try_next_message()? {
            WaitResult::Message(n) => Some(self.event(n, buf)),
            WaitResult::Lagged(n) => Some(Event::Missed(u32::try_from(n).unwrap_or(u32::MAX))),
        }
    }
}

impl<M: RawMutex> Drop for Sub<'_, M> {
    fn drop(&mut self) {
        // Leave as a reader of every record not read yet; from now on new
        // records do not count this subscription. Under the ring's lock, as
        // `subscribe`.
        let sub = &mut self.sub;
        self.inbox.with(|ring, meta, buf| {
            meta.subscribers -= 1;
            while let Some(r) = sub.try_next_message() {
                if let WaitResult::Message(Notice::Message { at }) = r {
                    ring::release(buf, usize::from(at));
                    ring.reclaim(buf);
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use core::cell::RefCell;

    use embassy_sync::blocking_mutex::raw::NoopRawMutex;
    use embassy_sync::blocking_mutex::Mutex as BlockingMutex;

    use super::*;
    use crate::ring::RingStore;

    type Ring = BlockingMutex<NoopRawMutex, RefCell<RingStore<InboxMeta, 512>>>;
    type Notices = PubSubChannel<NoopRawMutex, Notice, 16, 4, 0>;

    struct Parts {
        ring: Ring,
        notices: Notices,
        stats: StatsCell<NoopRawMutex>,
    }

    fn parts() -> Parts {
        Parts {
            ring: BlockingMutex::new(RefCell::new(RingStore::new(InboxMeta::new()))),
            notices: PubSubChannel::new(),
            stats: StatsCell::new(),
        }
    }

    fn inbox(p: &Parts) -> Inbox<'_, NoopRawMutex> {
        Inbox::new(&p.ring, &p.notices, &p.stats)
    }

    fn message<'m>(topic: &'m str, payload: &'m [u8], hex: bool) -> WireMessage<'m> {
        WireMessage {
            client: ClientId::new(2).unwrap(),
            msg_id: 7,
            topic,
            payload,
            hex,
        }
    }

    fn read(sub: &mut Sub<'_, NoopRawMutex>) -> (std::string::String, std::vec::Vec<u8>) {
        let mut buf = [0u8; 512];
        match sub.try_next(&mut buf) {
            Some(Event::Message(m)) => (m.topic.into(), m.payload.to_vec()),
            other => panic!("expected a message, got {other:?}"),
        }
    }

    #[test]
    fn a_message_longer_than_many_chunks_arrives_whole_in_text_and_in_hex() {
        let p = parts();
        let inbox = inbox(&p);
        let mut sub = inbox.subscribe().unwrap();
        let topic = "t/".repeat(CHUNK); // two chunks and more of topic
        let payload: std::vec::Vec<u8> = (0..5 * CHUNK + 3).map(|i| i as u8).collect();
        let mut digits = std::vec![0u8; payload.len() * 2];
        crate::hex::encode_into(&payload, &mut digits);
        assert!(inbox.push_message(&message(&topic, &payload, false)));
        assert!(inbox.push_message(&message(&topic, &digits, true)));
        assert_eq!(read(&mut sub), (topic.clone(), payload.clone()));
        assert_eq!(read(&mut sub), (topic, payload));
    }

    /// Between reserve and commit (an interrupt, another core's task), a
    /// subscription that arrives gets the message; one that leaves is not
    /// waited for: the record is freed once the readers there are at commit
    /// have read it.
    #[test]
    fn a_subscription_that_arrives_or_leaves_while_a_message_is_copied_is_counted_at_commit() {
        let p = parts();
        let inbox = inbox(&p);
        let mut stays = inbox.subscribe().unwrap();
        let leaves = inbox.subscribe().unwrap();
        let m = message("a/b", b"hello", false);
        let len = HEADER + 3 + 5;
        let at = inbox.reserve(&m, len).unwrap();
        drop(leaves);
        let mut arrives = inbox.subscribe().unwrap();
        inbox.fill(at + HEADER, &m);
        inbox.commit(at).unwrap();
        assert_eq!(read(&mut stays), ("a/b".into(), b"hello".to_vec()));
        assert_eq!(read(&mut arrives), ("a/b".into(), b"hello".to_vec()));
        // Both read it: the ring is empty again, a record of the whole ring fits.
        inbox.with(|ring, _, buf| assert_eq!(ring.used(buf.len()), 0));
    }

    /// A record being filled is held: a reader's release and the ring's
    /// reclaim never free it, and nothing else is allocated over it.
    #[test]
    fn a_record_being_filled_is_never_reclaimed_or_overwritten() {
        let p = parts();
        let inbox = inbox(&p);
        let mut sub = inbox.subscribe().unwrap();
        assert!(inbox.push_message(&message("old", b"1", false)));
        let m = message("new", &[0xAB; 100], false);
        let at = inbox.reserve(&m, HEADER + 3 + 100).unwrap();
        // The older record is read and freed meanwhile; the ring reclaims
        // up to the held one and no further.
        assert_eq!(read(&mut sub), ("old".into(), b"1".to_vec()));
        inbox.with(|ring, _, buf| assert_eq!(ring.used(buf.len()), HEADER + 3 + 100));
        assert!(inbox.push_message(&message("next", b"2", false)));
        inbox.fill(at + HEADER, &m);
        inbox.commit(at).unwrap();
        assert_eq!(read(&mut sub), ("next".into(), b"2".to_vec()));
        assert_eq!(read(&mut sub), ("new".into(), std::vec![0xAB; 100]));
    }

    /// With every subscription gone before the commit, the record is freed
    /// and nobody is told of a drop.
    #[test]
    fn a_message_whose_subscriptions_all_left_before_its_commit_is_freed() {
        let p = parts();
        let inbox = inbox(&p);
        let sub = inbox.subscribe().unwrap();
        let m = message("a", b"x", false);
        let at = inbox.reserve(&m, HEADER + 2).unwrap();
        drop(sub);
        inbox.fill(at + HEADER, &m);
        assert_eq!(inbox.commit(at), Err(()));
        inbox.with(|ring, meta, buf| {
            assert_eq!(ring.used(buf.len()), 0);
            assert_eq!(meta.dropped, 0);
        });
    }
}
