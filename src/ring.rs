//! A byte ring of contiguous variable-size records, freed in any order and
//! reclaimed in order (bbqueue style): the receive store and a supervisor's
//! outbox keep messages by their size in it.
//!
//! Every record starts with its length (2 bytes, little endian) and a hold
//! count (1 byte); a record whose hold count is 0 is free, and the tail
//! moves past free records only.

use core::cell::RefCell;

use embassy_sync::blocking_mutex::Mutex as BlockingMutex;

use crate::sync::{LockedBy, RawMutex};

/// Where the live records are. When a record does not fit before the end,
/// it goes at the start and `wrap` marks where the older records end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ring {
    /// The oldest live record.
    tail: usize,
    /// Where the next record goes.
    head: usize,
    /// When wrapped: the end of the records at `tail..`; the newer ones are
    /// at `0..head`.
    wrap: Option<usize>,
}

impl Ring {
    pub(crate) const fn new() -> Self {
        Self {
            tail: 0,
            head: 0,
            wrap: None,
        }
    }

    /// Reserves `n` contiguous bytes in a ring of `size`; returns where.
    pub(crate) fn alloc(&mut self, n: usize, size: usize) -> Option<usize> {
        match self.wrap {
            None => {
                if size - self.head >= n {
                    let at = self.head;
                    self.head += n;
                    Some(at)
                } else if self.tail > n {
                    // Strictly greater: `head == tail` only when empty.
                    self.wrap = Some(self.head);
                    self.head = n;
                    Some(0)
                } else {
                    None
                }
            }
            Some(_) => {
                if self.head + n < self.tail {
                    let at = self.head;
                    self.head += n;
                    Some(at)
                } else {
                    None
                }
            }
        }
    }

    /// Frees the records at the tail that nobody holds.
    pub(crate) fn reclaim(&mut self, buf: &[u8]) {
        loop {
            if self.wrap.is_none() && self.tail == self.head {
                // Empty: start again at 0, so a large record finds room.
                self.tail = 0;
                self.head = 0;
                return;
            }
            if self.wrap == Some(self.tail) {
                self.tail = 0;
                self.wrap = None;
                continue;
            }
            if hold(buf, self.tail) != 0 {
                return;
            }
            self.tail += len(buf, self.tail);
        }
    }

    /// Bytes between the oldest live record and the head (with the end a
    /// wrap left unused).
    pub(crate) fn used(&self, size: usize) -> usize {
        match self.wrap {
            None => self.head - self.tail,
            Some(w) => w - self.tail + self.head + (size - w),
        }
    }

    /// The offsets of the records from the oldest on (free ones included).
    #[cfg(test)]
    pub(crate) fn records<'b>(&self, buf: &'b [u8]) -> impl Iterator<Item = usize> + 'b {
        let mut c = self.cursor();
        core::iter::from_fn(move || c.next(buf))
    }

    /// The offsets of the live records (held), from the oldest on.
    pub(crate) fn live<'b>(&self, buf: &'b [u8]) -> Live<'b> {
        Live(self.cursor(), buf)
    }

    /// A walk over the records that does not borrow the ring's bytes: they
    /// may change between two steps (flags, hold counts; not lengths).
    pub(crate) fn cursor(&self) -> Cursor {
        Cursor {
            at: self.tail,
            head: self.head,
            wrap: self.wrap,
            wrapped: self.wrap.is_none(),
        }
    }
}

/// See [`Ring::cursor`].
pub(crate) struct Cursor {
    at: usize,
    head: usize,
    wrap: Option<usize>,
    wrapped: bool,
}

impl Cursor {
    /// The next record (free ones included).
    fn next(&mut self, buf: &[u8]) -> Option<usize> {
        loop {
            let end = if self.wrapped {
                self.head
            } else {
                self.wrap.unwrap_or(self.head)
            };
            if self.at < end {
                let here = self.at;
                // A record is never empty; stop rather than loop on one.
                let l = len(buf, here);
                self.at = if l == 0 { end } else { here + l };
                return Some(here);
            }
            if self.wrapped {
                return None;
            }
            self.wrapped = true;
            self.at = 0;
        }
    }

    /// The next live record (held).
    // Not inlined: one copy for every search of the records.
    #[inline(never)]
    pub(crate) fn next_live(&mut self, buf: &[u8]) -> Option<usize> {
        while let Some(at) = self.next(buf) {
            if hold(buf, at) != 0 {
                return Some(at);
            }
        }
        None
    }
}

/// See [`Ring::live`].
pub(crate) struct Live<'b>(Cursor, &'b [u8]);

impl Iterator for Live<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        self.0.next_live(self.1)
    }
}

/// A record's length and hold count (one bounds check for the three).
fn head(buf: &[u8], at: usize) -> [u8; 3] {
    // A slice of 3 bytes: the conversion cannot fail.
    buf[at..at + 3]
        .try_into()
        .unwrap_or_else(|_| unreachable!())
}

/// A record's length.
pub(crate) fn len(buf: &[u8], at: usize) -> usize {
    let [l0, l1, _] = head(buf, at);
    usize::from(u16::from_le_bytes([l0, l1]))
}

/// A record's hold count.
pub(crate) fn hold(buf: &[u8], at: usize) -> u8 {
    head(buf, at)[2]
}

/// Writes a record's length and hold count.
pub(crate) fn set_header(buf: &mut [u8], at: usize, len: usize, hold: u8) {
    let [l0, l1] = (len as u16).to_le_bytes();
    buf[at..at + 3].copy_from_slice(&[l0, l1, hold]);
}

/// One holder of the record let it go (its hold count goes down by one; at
/// 0 the record is free). Then [`Ring::reclaim`].
pub(crate) fn release(buf: &mut [u8], at: usize) {
    buf[at + 2] = buf[at + 2].saturating_sub(1);
}

/// Frees the record whoever holds it. Then [`Ring::reclaim`].
pub(crate) fn free(buf: &mut [u8], at: usize) {
    buf[at + 2] = 0;
}

/// A ring of `N` bytes with the bookkeeping `Meta` of its owner.
pub(crate) struct RingStore<Meta, const N: usize> {
    ring: Ring,
    meta: Meta,
    buf: [u8; N],
}

impl<Meta, const N: usize> RingStore<Meta, N> {
    pub(crate) const fn new(meta: Meta) -> Self {
        Self {
            ring: Ring::new(),
            meta,
            buf: [0; N],
        }
    }
}

/// Work on a ring under its lock: a trait of its own, not `dyn FnMut`,
/// whose vtable would also hold a `call_once` shim, a second copy of the
/// closure's body at every call site.
pub(crate) trait RingFn<Meta> {
    fn call(&mut self, ring: &mut Ring, meta: &mut Meta, buf: &mut [u8]);
}

/// The ring, seen without its size, under its lock `M`.
pub(crate) trait RingBuffer<Meta, M>: LockedBy<M> {
    fn with(&self, f: &mut dyn RingFn<Meta>);
}

impl<Meta: Send, M: RawMutex, const N: usize> RingBuffer<Meta, M>
    for BlockingMutex<M, RefCell<RingStore<Meta, N>>>
{
    // Not inlined: the lock and the borrow once, not at every call site.
    #[inline(never)]
    fn with(&self, f: &mut dyn RingFn<Meta>) {
        self.lock(|r| {
            let r = &mut *r.borrow_mut();
            f.call(&mut r.ring, &mut r.meta, &mut r.buf)
        })
    }
}

/// A closure run under a lock, and its result (`init` until it ran:
/// nothing to unwrap). The closure is called in place, through `&mut` (an
/// `FnMut`): not moved out of an `Option` first, as a closure run once
/// would be (a copy of its captures at every call site).
pub(crate) struct Call<F, R> {
    f: F,
    out: R,
}

impl<F, R> Call<F, R> {
    pub(crate) fn new(f: F, init: R) -> Self {
        Self { f, out: init }
    }

    /// The result (`init` if the closure did not run).
    pub(crate) fn out(self) -> R {
        self.out
    }

    /// Runs the closure and keeps its result.
    pub(crate) fn run(&mut self, f: impl FnOnce(&mut F) -> R) {
        self.out = f(&mut self.f);
    }
}

impl<Meta, F: FnMut(&mut Ring, &mut Meta, &mut [u8]) -> R, R> RingFn<Meta> for Call<F, R> {
    fn call(&mut self, ring: &mut Ring, meta: &mut Meta, buf: &mut [u8]) {
        self.run(|f| f(ring, meta, buf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(r: &mut Ring, buf: &mut [u8], n: usize) -> Option<usize> {
        let at = r.alloc(n, buf.len())?;
        set_header(buf, at, n, 1);
        Some(at)
    }

    fn free(r: &mut Ring, buf: &mut [u8], at: usize) {
        super::free(buf, at);
        r.reclaim(buf);
    }

    #[test]
    fn ring_keeps_records_contiguous_and_wraps_at_the_end() {
        let mut buf = [0u8; 100];
        let mut r = Ring::new();
        let a = put(&mut r, &mut buf, 40).unwrap();
        let b = put(&mut r, &mut buf, 40).unwrap();
        assert_eq!((a, b), (0, 40));
        assert_eq!(
            put(&mut r, &mut buf, 30),
            None,
            "20 bytes left at the end, none at the start"
        );
        free(&mut r, &mut buf, a);
        let c = put(&mut r, &mut buf, 30).unwrap();
        assert_eq!(c, 0, "wrapped to the start");
        assert_eq!(r.records(&buf).collect::<std::vec::Vec<_>>(), [40, 0]);
        assert_eq!(put(&mut r, &mut buf, 15), None, "head may not reach tail");
        // Freed out of order: the tail waits for the oldest.
        free(&mut r, &mut buf, c);
        assert_eq!(r.tail, 40);
        free(&mut r, &mut buf, b);
        assert_eq!((r.tail, r.head, r.wrap), (0, 0, None), "empty again");
        assert_eq!(
            put(&mut r, &mut buf, 100),
            Some(0),
            "the whole ring is usable"
        );
    }

    #[test]
    fn records_are_listed_oldest_first_across_the_wrap() {
        let mut buf = [0u8; 64];
        let mut r = Ring::new();
        let ids: std::vec::Vec<usize> =
            (0..4).map(|_| put(&mut r, &mut buf, 14).unwrap()).collect();
        assert_eq!(ids, [0, 14, 28, 42]);
        free(&mut r, &mut buf, 0);
        free(&mut r, &mut buf, 14);
        let e = put(&mut r, &mut buf, 20).unwrap();
        assert_eq!(e, 0);
        assert_eq!(r.records(&buf).collect::<std::vec::Vec<_>>(), [28, 42, 0]);
        assert_eq!(r.used(64), 14 + 14 + 8 + 20);
    }
}
