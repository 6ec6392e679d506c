//! The receive clock: the one owner of what the runner's receive side has
//! read (the stream position, when the last byte came) and of its request
//! that the digester give up an incomplete frame after a quiet gap.
//!
//! - Runner side: [`RxClock::received`], [`RxClock::request_resync`].
//! - Digester side: [`RxClock::position`], [`RxClock::take_resync`]; the
//!   runner and the channel's fence also read [`RxClock::last`].

use core::cell::Cell;

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
pub(crate) struct RxClock<M: RawMutex>(BlockingMutex<M, Cell<RxMark>>);

#[derive(Clone, Copy)]
struct RxMark {
    pos: u32,
    last: Instant,
    resync: bool,
}

impl<M: RawMutex> RxClock<M> {
    pub(crate) const fn new() -> Self {
        Self(BlockingMutex::new(Cell::new(RxMark {
            pos: 0,
            last: Instant::from_ticks(0),
            resync: false,
        })))
    }

    fn update(&self, f: impl FnOnce(&mut RxMark)) {
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
