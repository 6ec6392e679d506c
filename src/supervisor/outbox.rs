//! The outbox: the messages a supervisor holds until the broker acknowledged
//! them, by their size, in a byte ring in the user's
//! [`SupervisorState`](super::SupervisorState). The one owner of that store:
//!
//! - Handle side: [`Outbox::push`] (and [`Outbox::push_wait`], which waits for
//!   room), [`Outbox::contains`] / [`Outbox::wait_gone`] for a delivery.
//! - Supervisor side: [`Outbox::take`] the oldest queued message (it is then
//!   in flight), [`Outbox::source`] to read it in place while the driver
//!   writes it, then [`Outbox::delivered`] (it leaves) or [`Outbox::requeue`]
//!   (it goes again); [`Outbox::requeue_all`] after a link loss.
//!
//! A record is 14 bytes of bookkeeping, the topic and the payload:
//! length (2), hold (1: stored, 0: freed), flags (1: QoS, retain, in flight),
//! sequence (4), msgID (2), sends (1), reserved (1), topic length (2).

use core::future::poll_fn;
use core::task::Poll;

use embassy_sync::waitqueue::MultiWakerRegistration;

use crate::channel::Source;
use crate::ring::{self, Ring, RingBuffer};
use crate::sync::{Part, RawMutex};
use crate::types::QoS;

/// Bytes of bookkeeping per message.
pub(crate) const HEADER: usize = 14;

const QOS_MASK: u8 = 0b11;
const RETAIN: u8 = 0b100;
const IN_FLIGHT: u8 = 0b1000;

/// The outbox's bookkeeping, beside its ring.
pub(crate) struct OutboxMeta {
    next_seq: u32,
    /// Most bytes held at once.
    high_water: usize,
    /// Publishers waiting for room.
    space: MultiWakerRegistration<4>,
    /// Tasks waiting for a delivery.
    gone: MultiWakerRegistration<4>,
    /// The supervisor, waiting for a queued message.
    queued: MultiWakerRegistration<2>,
}

impl OutboxMeta {
    pub(crate) const fn new() -> Self {
        Self {
            next_seq: 1,
            high_water: 0,
            space: MultiWakerRegistration::new(),
            gone: MultiWakerRegistration::new(),
            queued: MultiWakerRegistration::new(),
        }
    }
}

/// A stored message: the handle to wait for its delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Ticket {
    /// The order in which messages were stored (wrapping).
    pub seq: u32,
    /// The msgID the message goes out with, every time (0 for QoS 0).
    pub msg_id: u16,
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

/// Why a message was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PushError {
    /// No room now.
    Full,
    /// Larger than the whole store.
    TooLarge,
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
    /// The store's size (`OUTBOX`).
    pub capacity: usize,
}

fn seq_of(buf: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([buf[at + 4], buf[at + 5], buf[at + 6], buf[at + 7]])
}

fn msg_id_of(buf: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([buf[at + 8], buf[at + 9]])
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

/// A stored message read in place, as the driver writes it.
pub(crate) struct Record<'o, M: RawMutex> {
    outbox: Outbox<'o, M>,
    at: usize,
}

impl<M: RawMutex> Source for Record<'_, M> {
    fn with(&self, f: &mut dyn FnMut(&str, &[u8])) {
        let at = self.at;
        self.outbox.with(|_, _, buf| {
            let len = ring::len(buf, at);
            let topic_len = usize::from(u16::from_le_bytes([buf[at + 12], buf[at + 13]]));
            let (topic, payload) = buf[at + HEADER..at + len].split_at(topic_len);
            // Stored from a `&str`: always UTF-8.
            f(core::str::from_utf8(topic).unwrap_or_default(), payload)
        })
    }
}

impl<'a, M: RawMutex> Outbox<'a, M> {
    pub(crate) fn new(ring: &'a (dyn RingBuffer<OutboxMeta, M> + 'a)) -> Self {
        Self {
            ring: Part::new(ring),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Ring, &mut OutboxMeta, &mut [u8]) -> R) -> R {
        ring::with(&*self.ring, f)
    }

    /// Live records, oldest first.
    fn live<'b>(ring: &Ring, buf: &'b [u8]) -> impl Iterator<Item = usize> + 'b {
        ring.records(buf)
            .filter(move |&at| ring::hold(buf, at) != 0)
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
        let len = HEADER + topic.len() + payload.len();
        let ticket = self.with(|ring, meta, buf| {
            if len > buf.len() || len > usize::from(u16::MAX) {
                return Err(PushError::TooLarge);
            }
            let msg_id = match qos {
                QoS::AtMostOnce => 0,
                // At most 65535 tries: the store holds fewer messages.
                _ => loop {
                    let id = next_id();
                    if !Self::live(ring, buf).any(|r| msg_id_of(buf, r) == id) {
                        break id;
                    }
                },
            };
            let at = ring.alloc(len, buf.len()).ok_or(PushError::Full)?;
            let seq = meta.next_seq;
            meta.next_seq = meta.next_seq.wrapping_add(1);
            ring::set_header(buf, at, len, 1);
            let rec = &mut buf[at..at + len];
            rec[3] = qos.get() | if retain { RETAIN } else { 0 };
            rec[4..8].copy_from_slice(&seq.to_le_bytes());
            rec[8..10].copy_from_slice(&msg_id.to_le_bytes());
            rec[10] = 0;
            rec[11] = 0;
            rec[12..14].copy_from_slice(&(topic.len() as u16).to_le_bytes());
            rec[HEADER..HEADER + topic.len()].copy_from_slice(topic.as_bytes());
            rec[HEADER + topic.len()..].copy_from_slice(payload);
            meta.high_water = meta.high_water.max(ring.used(buf.len()));
            meta.queued.wake();
            Ok(Ticket { seq, msg_id })
        })?;
        Ok(ticket)
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
        poll_fn(|cx| match self.push(topic, payload, qos, retain, next_id) {
            Err(PushError::Full) => {
                // Register, then look again: room freed in between is not missed.
                self.with(|_, meta, _| meta.space.register(cx.waker()));
                match self.push(topic, payload, qos, retain, next_id) {
                    Err(PushError::Full) => Poll::Pending,
                    other => Poll::Ready(other),
                }
            }
            other => Poll::Ready(other),
        })
        .await
    }

    /// True while the message of `seq` is stored (not yet delivered).
    pub(crate) fn contains(&self, seq: u32) -> bool {
        self.with(|ring, _, buf| Self::live(ring, buf).any(|at| seq_of(buf, at) == seq))
    }

    /// Waits until the message of `seq` is no longer stored.
    pub(crate) async fn wait_gone(&self, seq: u32) {
        poll_fn(|cx| {
            self.with(|ring, meta, buf| {
                if Self::live(ring, buf).any(|at| seq_of(buf, at) == seq) {
                    meta.gone.register(cx.waker());
                    Poll::Pending
                } else {
                    Poll::Ready(())
                }
            })
        })
        .await
    }

    /// Waits until nothing is stored.
    pub(crate) async fn wait_empty(&self) {
        poll_fn(|cx| {
            self.with(|ring, meta, buf| {
                if Self::live(ring, buf).next().is_some() {
                    meta.gone.register(cx.waker());
                    Poll::Pending
                } else {
                    Poll::Ready(())
                }
            })
        })
        .await
    }

    /// What is stored.
    pub(crate) fn stats(&self) -> OutboxStats {
        self.with(|ring, meta, buf| {
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
    pub(crate) fn take(&self) -> Option<Taken> {
        self.with(|ring, _, buf| {
            let at = Self::live(ring, buf).find(|&at| buf[at + 3] & IN_FLIGHT == 0)?;
            buf[at + 3] |= IN_FLIGHT;
            buf[at + 10] = buf[at + 10].saturating_add(1);
            let flags = buf[at + 3];
            Some(Taken {
                at,
                seq: seq_of(buf, at),
                msg_id: msg_id_of(buf, at),
                qos: QoS::new(flags & QOS_MASK).unwrap_or(QoS::AtLeastOnce),
                retain: flags & RETAIN != 0,
                sends: buf[at + 10],
            })
        })
    }

    /// Waits for a queued message and takes it.
    pub(crate) async fn take_wait(&self) -> Taken {
        poll_fn(|cx| match self.take() {
            Some(t) => Poll::Ready(t),
            None => {
                self.with(|_, meta, _| meta.queued.register(cx.waker()));
                match self.take() {
                    Some(t) => Poll::Ready(t),
                    None => Poll::Pending,
                }
            }
        })
        .await
    }

    /// The message at `at`, read in place.
    pub(crate) fn source(&self, at: usize) -> Record<'a, M> {
        Record { outbox: *self, at }
    }

    /// The message at `at` was delivered: it leaves.
    pub(crate) fn delivered(&self, at: usize) {
        self.with(|ring, meta, buf| {
            ring::free(buf, at);
            ring.reclaim(buf);
            meta.space.wake();
            meta.gone.wake();
        })
    }

    /// The message at `at` goes again later.
    pub(crate) fn requeue(&self, at: usize) {
        self.with(|_, meta, buf| {
            buf[at + 3] &= !IN_FLIGHT;
            meta.queued.wake();
        })
    }

    /// After a link loss: every message in flight goes again, but QoS 0
    /// ones, which are at most once: they leave. Returns how many of those.
    pub(crate) fn requeue_all(&self) -> u32 {
        self.with(|ring, meta, buf| {
            let mut dropped = 0;
            // In batches: the offsets are read, then the records changed.
            let pending = |buf: &[u8], at: usize| {
                let flags = buf[at + 3];
                flags & QOS_MASK == 0 || flags & IN_FLIGHT != 0
            };
            loop {
                let batch: heapless::Vec<usize, 16> = Self::live(ring, buf)
                    .filter(|&at| pending(buf, at))
                    .take(16)
                    .collect();
                if batch.is_empty() {
                    break;
                }
                for at in batch {
                    if buf[at + 3] & QOS_MASK == 0 {
                        ring::free(buf, at);
                        dropped += 1;
                    } else {
                        buf[at + 3] &= !IN_FLIGHT;
                    }
                }
            }
            ring.reclaim(buf);
            meta.space.wake();
            meta.gone.wake();
            meta.queued.wake();
            dropped
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
        let mut out = Default::default();
        o.source(at)
            .with(&mut |t, p| out = (std::string::String::from(t), p.to_vec()));
        out
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
        assert!(!o.contains(a.seq));
        assert!(o.contains(b.seq));
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
        assert!(!o.contains(z.seq));
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
}
