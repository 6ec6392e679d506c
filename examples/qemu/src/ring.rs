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

    /// Producer side: appends what fits of `data`; returns how much.
    pub fn push(&self, data: &[u8]) -> usize {
        let start = self.start.load(Ordering::Acquire);
        let mut end = self.end.load(Ordering::Relaxed);
        let n = data.len().min(N - Self::len_of(start, end));
        for &b in &data[..n] {
            // SAFETY: the slot at `end` is free (counted above) and only the
            // producer writes free slots.
            unsafe { (*self.buf.get())[end & (N - 1)] = b };
            end = (end + 1) & (2 * N - 1);
        }
        self.end.store(end, Ordering::Release);
        n
    }

    /// Consumer side: takes up to `out.len()` bytes; returns how many.
    pub fn pop(&self, out: &mut [u8]) -> usize {
        let end = self.end.load(Ordering::Acquire);
        let mut start = self.start.load(Ordering::Relaxed);
        let n = out.len().min(Self::len_of(start, end));
        for o in &mut out[..n] {
            // SAFETY: the slot at `start` was published by the producer and
            // is not reused until `start` moves past it.
            *o = unsafe { (*self.buf.get())[start & (N - 1)] };
            start = (start + 1) & (2 * N - 1);
        }
        self.start.store(start, Ordering::Release);
        n
    }
}
