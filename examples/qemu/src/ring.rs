//! A single-producer single-consumer byte ring between an interrupt handler
//! and a task. Atomic loads and stores only (no read-modify-write), so it
//! works on Cortex-M0 too.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicUsize, Ordering};

/// `N` bytes; `N` must be a power of two.
pub struct Ring<const N: usize> {
    buf: UnsafeCell<[u8; N]>,
    /// Where the consumer reads next, modulo `2 * N`.
    start: AtomicUsize,
    /// Where the producer writes next, modulo `2 * N`.
    end: AtomicUsize,
}

// SAFETY: one producer and one consumer, each only ever touching the bytes
// the indices give it; the indices are published with release/acquire.
unsafe impl<const N: usize> Sync for Ring<N> {}

impl<const N: usize> Ring<N> {
    const OK: () = assert!(N.is_power_of_two());

    pub const fn new() -> Self {
        #[allow(clippy::let_unit_value)]
        let () = Self::OK;
        Self {
            buf: UnsafeCell::new([0; N]),
            start: AtomicUsize::new(0),
            end: AtomicUsize::new(0),
        }
    }

    fn len_of(start: usize, end: usize) -> usize {
        end.wrapping_sub(start) & (2 * N - 1)
    }

    pub fn is_empty(&self) -> bool {
        self.start.load(Ordering::Acquire) == self.end.load(Ordering::Acquire)
    }

    pub fn is_full(&self) -> bool {
        Self::len_of(
            self.start.load(Ordering::Acquire),
            self.end.load(Ordering::Acquire),
        ) == N
    }

    /// Producer side: bytes of room.
    #[allow(dead_code)] // the bench's (LM3S6965 builds)
    pub fn free(&self) -> usize {
        N - Self::len_of(
            self.start.load(Ordering::Acquire),
            self.end.load(Ordering::Relaxed),
        )
    }

    /// Producer side: appends what fits of `data`; returns how much. (At
    /// most two copies: up to the end of the buffer, then from its start.)
    pub fn push(&self, data: &[u8]) -> usize {
        let start = self.start.load(Ordering::Acquire);
        let end = self.end.load(Ordering::Relaxed);
        let n = data.len().min(N - Self::len_of(start, end));
        let at = end & (N - 1);
        let first = n.min(N - at);
        // SAFETY: the `n` slots from `end` are free (counted above) and only
        // the producer writes free slots; `buf` is not otherwise borrowed.
        let buf = unsafe { &mut *self.buf.get() };
        copy(&mut buf[at..at + first], &data[..first]);
        copy(&mut buf[..n - first], &data[first..n]);
        self.end.store((end + n) & (2 * N - 1), Ordering::Release);
        n
    }

    /// Consumer side: takes up to `out.len()` bytes; returns how many.
    pub fn pop(&self, out: &mut [u8]) -> usize {
        let end = self.end.load(Ordering::Acquire);
        let start = self.start.load(Ordering::Relaxed);
        let n = out.len().min(Self::len_of(start, end));
        if n == 0 {
            return 0;
        }
        let at = start & (N - 1);
        let first = n.min(N - at);
        // SAFETY: the `n` slots from `start` were published by the producer
        // and are not reused until `start` moves past them.
        let buf = unsafe { &*self.buf.get() };
        copy(&mut out[..first], &buf[at..at + first]);
        copy(&mut out[first..n], &buf[..n - first]);
        self.start
            .store((start + n) & (2 * N - 1), Ordering::Release);
        n
    }
}

/// `to.copy_from_slice(from)`, with a loop for a few bytes (a call to
/// `memcpy` costs more than it saves there).
#[inline(always)]
fn copy(to: &mut [u8], from: &[u8]) {
    if to.len() <= 4 {
        for (t, f) in to.iter_mut().zip(from) {
            *t = *f;
        }
    } else {
        to.copy_from_slice(from);
    }
}
