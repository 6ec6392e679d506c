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

use embassy_sync::pubsub::{DynSubscriber, PubSubChannel, WaitResult};

use crate::error::LinkClosedReason;
use crate::event::{Event, Message};
use crate::ring::{self, RingBuffer};
use crate::stats::{bump, StatsCell};
use crate::sync::{LockedBy, Part, RawMutex};
use crate::types::ClientId;

/// Notice places kept for link and reboot events.
pub(crate) const RESERVE: usize = 8;
/// Bytes of a record's header: length (2), readers (1), client (1), msgID
/// (4), topic length (2).
const HEADER: usize = 10;

/// One event, as the notice channel carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Notice {
    /// A message record at this offset of the ring.
    Message {
        at: u16,
    },
    LinkClosed {
        client: u8,
        reason: u8,
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

    /// Runs `f` under the ring's lock. The router's pushes and a
    /// subscription's arrival and departure also touch the notice channel
    /// inside it, so that each is one step for the other side.
    fn with<R>(&self, f: impl FnOnce(&mut ring::Ring, &mut InboxMeta, &mut [u8]) -> R) -> R {
        ring::with(&*self.ring, f)
    }

    // ------------------------------------------------------------ router side

    /// Stores a message and tells every subscription; never waits. `false`:
    /// dropped (no subscription, the store or the notices full, or a payload
    /// that is not valid hex), counted.
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
        let stored = self.with(|ring, meta, buf| {
            if meta.subscribers == 0 {
                return Err(false);
            }
            if self.notices.free_capacity() <= RESERVE || len > usize::from(u16::MAX) {
                meta.dropped = meta.dropped.wrapping_add(1);
                return Err(true);
            }
            let Some(at) = ring.alloc(len, buf.len()) else {
                meta.dropped = meta.dropped.wrapping_add(1);
                return Err(true);
            };
            ring::set_header(buf, at, len, meta.subscribers);
            let rec = &mut buf[at..at + len];
            rec[3] = m.client.get();
            rec[4..8].copy_from_slice(&m.msg_id.to_le_bytes());
            rec[8..10].copy_from_slice(&(m.topic.len() as u16).to_le_bytes());
            let (topic, payload) = rec[HEADER..].split_at_mut(m.topic.len());
            topic.copy_from_slice(m.topic.as_bytes());
            if m.hex {
                crate::hex::decode_into(m.payload, payload);
            } else {
                payload.copy_from_slice(m.payload);
            }
            // There is room: the router is the only publisher.
            let sent = self.notices.try_publish(Notice::Message { at: at as u16 });
            debug_assert!(sent);
            Ok(())
        });
        match stored {
            Ok(()) => {
                bump!(self.stats, events_published);
                true
            }
            Err(_) => {
                bump!(self.stats, messages_dropped);
                false
            }
        }
    }

    fn push_control(&self, n: Notice) {
        let sent = self.with(|_, meta, _| meta.subscribers > 0 && self.notices.try_publish(n));
        if sent {
            bump!(self.stats, events_published);
        } else {
            bump!(self.stats, events_dropped);
        }
    }

    /// `+QMTSTAT`: tells every subscription.
    pub(crate) fn push_link_closed(&self, client: ClientId, reason: LinkClosedReason) {
        self.push_control(Notice::LinkClosed {
            client: client.get(),
            reason: reason.code(),
        });
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
        self.with(|_, meta, _| {
            let sub = notices.subscriber()?;
            meta.subscribers += 1;
            Some(Sub {
                inbox: *self,
                sub,
                seen: meta.dropped,
            })
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

impl<M: RawMutex> Sub<'_, M> {
    /// Messages dropped since this subscription last said so.
    fn missed(&mut self) -> Option<u32> {
        let now = self.inbox.with(|_, meta, _| meta.dropped);
        let n = now.wrapping_sub(self.seen);
        self.seen = now;
        (n > 0).then_some(n)
    }

    /// Turns a notice into an event, copying a message into `buf`.
    #[inline]
    fn event<'b>(&mut self, n: Notice, buf: &'b mut [u8]) -> Event<'b> {
        match n {
            Notice::LinkClosed { client, reason } => Event::LinkClosed {
                client: ClientId::new(client).unwrap_or_else(|_| unreachable!()),
                reason: LinkClosedReason::from_code(reason),
            },
            Notice::Rebooted => Event::ModemRebooted,
            Notice::Message { at } => {
                let at = usize::from(at);
                let read = self.inbox.with(|ring, _, ring_buf| {
                    let len = ring::len(ring_buf, at);
                    let rec = &ring_buf[at..];
                    let client = rec[3];
                    let msg_id = u32::from_le_bytes([rec[4], rec[5], rec[6], rec[7]]);
                    let topic_len = usize::from(u16::from_le_bytes([rec[8], rec[9]]));
                    let body = len - HEADER;
                    let fits = body <= buf.len();
                    if fits {
                        buf[..body].copy_from_slice(&rec[HEADER..len]);
                    }
                    ring::release(ring_buf, at);
                    ring.reclaim(ring_buf);
                    fits.then_some((client, msg_id, topic_len, body))
                });
                let Some((client, msg_id, topic_len, body)) = read else {
                    bump!(self.inbox.stats, messages_dropped);
                    return Event::Missed(1);
                };
                let (topic, payload) = buf[..body].split_at(topic_len);
                Event::Message(Message {
                    client: ClientId::new(client).unwrap_or_else(|_| unreachable!()),
                    msg_id,
                    // Checked as UTF-8 before it was stored.
                    topic: core::str::from_utf8(topic).unwrap_or_default(),
                    payload,
                })
            }
        }
    }

    /// The next event, waiting for one. Messages are copied into `buf`.
    pub(crate) async fn next<'b>(&mut self, buf: &'b mut [u8]) -> Event<'b> {
        if let Some(n) = self.missed() {
            return Event::Missed(n);
        }
        match self.sub.next_message().await {
            WaitResult::Message(n) => self.event(n, buf),
            // Never published with overwrite; kept for completeness.
            WaitResult::Lagged(n) => Event::Missed(u32::try_from(n).unwrap_or(u32::MAX)),
        }
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
