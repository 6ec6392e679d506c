//! The receive clock: the one owner of what the runner's receive side has
//! read (the stream position, when the last byte came) and of its request
//! that the digester give up an incomplete frame after a quiet gap.
//!
//! - Runner side: [`RxClock::received`], [`RxClock::request_resync`].
//! - Digester side: [`RxClock::begin_digest`] (the position and the resync
//!   request, in one lock: it runs on every read), [`RxClock::position`];
//!   the runner and the channel's fence also read [`RxClock::last`].

use core::cell::Cell;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use embassy_sync::blocking_mutex::Mutex as BlockingMutex;
use embassy_time::Instant;

use crate::sync::RawMutex;

/// True if a line that starts at stream position `pos` came at or after
/// stream position `mark` (a command line that went out when `mark` bytes
/// had been read: only what starts from there on can be about it).
/// Positions wrap; within 2 GiB of each other they compare right.
pub(crate) fn at_or_after(pos: u32, mark: u32) -> bool {
    pos.wrapping_sub(mark) < 1 << 31
}

/// What the runner's receive side has read: the stream position (bytes read
/// since the start, wrapping), when the last byte came, and whether the
/// digester must give up what it holds (a quiet gap passed).
///
/// Every writer and every reader is inside the runner's future (its
/// receive side writes, its digester and transmit side read), which one
/// thread polls at a time: the position and the resync request are
/// atomics that each have one writer (loads and stores only, so ARMv6-M
/// too), read without a lock; only the time of the last byte, 64 bits, is
/// under the lock. Each read takes the lock once ([`received`](Self::received)).
pub(crate) struct RxClock<M: RawMutex> {
    pos: AtomicU32,
    resync: AtomicBool,
    last: BlockingMutex<M, Cell<Instant>>,
}

impl<M: RawMutex> RxClock<M> {
    pub(crate) const fn new() -> Self {
        Self {
            pos: AtomicU32::new(0),
            resync: AtomicBool::new(false),
            last: BlockingMutex::new(Cell::new(Instant::from_ticks(0))),
        }
    }

    /// Bytes read so far (wrapping).
    pub(crate) fn position(&self) -> u32 {
        self.pos.load(Ordering::Acquire)
    }

    /// When the last byte came.
    pub(crate) fn last(&self) -> Instant {
        self.last.lock(Cell::get)
    }

    /// `n` bytes were read just now; returns when (the new [`last`](Self::last)).
    pub(crate) fn received(&self, n: usize) -> Instant {
        let now = Instant::now();
        self.last.lock(|l| l.set(now));
        // The receive side is the only writer: a load and a store.
        let pos = self.pos.load(Ordering::Relaxed).wrapping_add(n as u32);
        self.pos.store(pos, Ordering::Release);
        now
    }

    /// Runner: the modem was quiet for `Config::quiet_gap` while the digester
    /// held an incomplete frame.
    pub(crate) fn request_resync(&self) {
        self.resync.store(true, Ordering::Release)
    }

    /// Digester, at the start of each call: the bytes read so far
    /// ([`position`](Self::position)) and whether a resync was asked for
    /// (taken: the digester is the only one that clears it, and the runner,
    /// the only one that sets it, does not run meanwhile).
    pub(crate) fn begin_digest(&self) -> (u32, bool) {
        let resync = self.resync.load(Ordering::Acquire);
        if resync {
            self.resync.store(false, Ordering::Relaxed);
        }
        (self.position(), resync)
    }
}
