//! A NOR flash test double (`embedded-storage-async`'s `NorFlash` and
//! `MultiwriteNorFlash`) that loses power when told to.
//!
//! Every step the flash takes counts: one word written, or one page erased.
//! [`FlashDouble::cut_at`] makes step `n` the last: that step is left half
//! done, in a state the seed chooses, and from then on every operation fails
//! ([`FlashFault::PowerCut`]) until [`FlashDouble::power_on`] (the reset).
//!
//! - A word cut while written: each bit the write was to clear (1 to 0) is
//!   cleared or not, at random; the others keep what they had.
//! - A page cut while erased, one of: the erase never started (the page as
//!   it was); it went through the page in address order up to a random byte
//!   (as a byte-wise erase would); or every cleared bit of the page came back
//!   to 1 with one probability (chosen at random per cut), so that the
//!   page's first and last words may end up in any state.
//!
//! Writes are NOR writes: they can only clear bits (the result is the old
//! value AND the new one); a write that asks for a bit to go from 0 to 1 is
//! counted ([`FlashDouble::violations`]), as a bug of the user. A handle is
//! `Clone` and shares the memory: keep one while a journal owns another, as
//! the flash outlives a reset of the microcontroller.

use std::boxed::Box;
use std::sync::{Arc, Mutex};
use std::vec::Vec;

use embedded_storage_async::nor_flash::{
    ErrorType, MultiwriteNorFlash, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};

/// Bytes per word (the write unit).
pub const WORD: usize = 4;

/// Why an operation of the double failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlashFault {
    /// The power is off (a cut happened, no [`FlashDouble::power_on`] since).
    PowerCut,
    /// A write failed ([`FlashDouble::fail_writes`]); nothing was written.
    WriteFailed,
    /// An erase failed ([`FlashDouble::fail_erases`]); nothing was erased.
    EraseFailed,
    /// Misaligned.
    NotAligned,
    /// Outside the flash.
    OutOfBounds,
}

impl NorFlashError for FlashFault {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            FlashFault::NotAligned => NorFlashErrorKind::NotAligned,
            FlashFault::OutOfBounds => NorFlashErrorKind::OutOfBounds,
            _ => NorFlashErrorKind::Other,
        }
    }
}

/// How an interrupted erase left its page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutErase {
    /// Not started.
    Untouched,
    /// Erased in address order up to this many bytes.
    Prefix(usize),
    /// Each cleared bit came back with this probability (per mille).
    Bits(u32),
}

/// What the last cut did (for a failure's message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutWhere {
    /// The word at this address was cut while written.
    Write(u32),
    /// The page at this address was cut while erased, so.
    Erase(u32, CutErase),
}

struct Inner {
    data: Vec<u8>,
    /// Steps taken (words written + pages erased) since creation.
    steps: u64,
    /// The step that is cut, if any.
    cut_at: Option<u64>,
    powered: bool,
    rng: u64,
    last_cut: Option<CutWhere>,
    erases: Vec<u64>,
    words_written: u64,
    violations: u64,
    fail_writes: bool,
    fail_erases: bool,
    on_erase: Option<Box<dyn FnMut(u32) + Send>>,
}

impl Inner {
    fn next(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Takes a step: `true` if this one is cut.
    fn step(&mut self) -> bool {
        self.steps += 1;
        if self.cut_at == Some(self.steps) {
            self.cut_at = None;
            self.powered = false;
            true
        } else {
            false
        }
    }
}

/// The flash: `PAGES` pages of `PAGE` bytes, erased (all ones) at first.
#[derive(Clone)]
pub struct FlashDouble<const PAGE: usize = 512> {
    inner: Arc<Mutex<Inner>>,
}

impl<const PAGE: usize> FlashDouble<PAGE> {
    /// `pages` erased pages; `seed` chooses every partial state.
    pub fn new(pages: usize, seed: u64) -> Self {
        assert!(PAGE.is_multiple_of(WORD));
        Self {
            inner: Arc::new(Mutex::new(Inner {
                data: std::vec![0xFF; pages * PAGE],
                steps: 0,
                cut_at: None,
                powered: true,
                rng: seed | 1,
                last_cut: None,
                erases: std::vec![0; pages],
                words_written: 0,
                violations: 0,
                fail_writes: false,
                fail_erases: false,
                on_erase: None,
            })),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        f(&mut self.inner.lock().unwrap())
    }

    /// Bytes.
    pub fn len(&self) -> usize {
        self.with(|i| i.data.len())
    }

    /// Never: at least one page.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Steps taken so far (words written and pages erased).
    pub fn steps(&self) -> u64 {
        self.with(|i| i.steps)
    }

    /// Cuts the power during the `n`-th step from now (1: the next one).
    pub fn cut_after(&self, n: u64) {
        self.with(|i| i.cut_at = Some(i.steps + n.max(1)))
    }

    /// No cut planned.
    pub fn no_cut(&self) {
        self.with(|i| i.cut_at = None)
    }

    /// True once the power was cut (and not back on).
    pub fn is_off(&self) -> bool {
        self.with(|i| !i.powered)
    }

    /// The last cut, if any.
    pub fn last_cut(&self) -> Option<CutWhere> {
        self.with(|i| i.last_cut)
    }

    /// Power back on: the reset after a cut.
    pub fn power_on(&self) {
        self.with(|i| i.powered = true)
    }

    /// Every write fails from now on (or not).
    pub fn fail_writes(&self, on: bool) {
        self.with(|i| i.fail_writes = on)
    }

    /// Every erase fails from now on (or not).
    pub fn fail_erases(&self, on: bool) {
        self.with(|i| i.fail_erases = on)
    }

    /// Calls `f` with the page's address at every erase (before it).
    pub fn on_erase(&self, f: impl FnMut(u32) + Send + 'static) {
        self.with(|i| i.on_erase = Some(Box::new(f)))
    }

    /// Erases of each page so far (interrupted ones included).
    pub fn erases(&self) -> Vec<u64> {
        self.with(|i| i.erases.clone())
    }

    /// Erases of every page so far.
    pub fn total_erases(&self) -> u64 {
        self.with(|i| i.erases.iter().sum())
    }

    /// Words written so far.
    pub fn words_written(&self) -> u64 {
        self.with(|i| i.words_written)
    }

    /// Writes that asked a bit to go from 0 to 1 (a NOR flash cannot).
    pub fn violations(&self) -> u64 {
        self.with(|i| i.violations)
    }

    /// A copy of the memory.
    pub fn snapshot(&self) -> Vec<u8> {
        self.with(|i| i.data.clone())
    }

    /// Overwrites the memory (a corrupted page, for a test).
    pub fn poke(&self, at: usize, bytes: &[u8]) {
        self.with(|i| i.data[at..at + bytes.len()].copy_from_slice(bytes))
    }
}

fn check(i: &Inner, offset: u32, len: usize, align: usize) -> Result<(), FlashFault> {
    if !i.powered {
        return Err(FlashFault::PowerCut);
    }
    if !(offset as usize).is_multiple_of(align) || !len.is_multiple_of(align) {
        return Err(FlashFault::NotAligned);
    }
    if offset as usize + len > i.data.len() {
        return Err(FlashFault::OutOfBounds);
    }
    Ok(())
}

impl<const PAGE: usize> ErrorType for FlashDouble<PAGE> {
    type Error = FlashFault;
}

impl<const PAGE: usize> ReadNorFlash for FlashDouble<PAGE> {
    const READ_SIZE: usize = WORD;

    async fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), FlashFault> {
        self.with(|i| {
            check(i, offset, bytes.len(), WORD)?;
            let at = offset as usize;
            bytes.copy_from_slice(&i.data[at..at + bytes.len()]);
            Ok(())
        })
    }

    fn capacity(&self) -> usize {
        self.len()
    }
}

impl<const PAGE: usize> NorFlash for FlashDouble<PAGE> {
    const WRITE_SIZE: usize = WORD;
    const ERASE_SIZE: usize = PAGE;

    async fn erase(&mut self, from: u32, to: u32) -> Result<(), FlashFault> {
        self.with(|i| {
            if to < from {
                return Err(FlashFault::OutOfBounds);
            }
            check(i, from, (to - from) as usize, PAGE)?;
            if i.fail_erases {
                return Err(FlashFault::EraseFailed);
            }
            for page in (from as usize..to as usize).step_by(PAGE) {
                if let Some(f) = i.on_erase.as_mut() {
                    f(page as u32);
                }
                i.erases[page / PAGE] += 1;
                if i.step() {
                    let how = match i.next() % 3 {
                        0 => CutErase::Untouched,
                        1 => CutErase::Prefix((i.next() % PAGE as u64) as usize),
                        _ => CutErase::Bits((i.next() % 1001) as u32),
                    };
                    match how {
                        CutErase::Untouched => {}
                        CutErase::Prefix(n) => i.data[page..page + n].fill(0xFF),
                        CutErase::Bits(p) => {
                            for at in page..page + PAGE {
                                let mut back = 0u8;
                                for bit in 0..8 {
                                    if (i.next() % 1000) < u64::from(p) {
                                        back |= 1 << bit;
                                    }
                                }
                                i.data[at] |= back;
                            }
                        }
                    }
                    i.last_cut = Some(CutWhere::Erase(page as u32, how));
                    return Err(FlashFault::PowerCut);
                }
                i.data[page..page + PAGE].fill(0xFF);
            }
            Ok(())
        })
    }

    async fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), FlashFault> {
        self.with(|i| {
            check(i, offset, bytes.len(), WORD)?;
            if i.fail_writes {
                return Err(FlashFault::WriteFailed);
            }
            for (k, word) in bytes.chunks(WORD).enumerate() {
                let at = offset as usize + k * WORD;
                i.words_written += 1;
                let cut = i.step();
                for (b, &new) in word.iter().enumerate() {
                    let old = i.data[at + b];
                    if new & !old != 0 {
                        i.violations += 1;
                    }
                    i.data[at + b] = if cut {
                        // Each bit to clear is cleared or not.
                        let clear = old & !new;
                        let done = clear & (i.next() as u8);
                        old & !done
                    } else {
                        old & new
                    };
                }
                if cut {
                    i.last_cut = Some(CutWhere::Write(at as u32));
                    return Err(FlashFault::PowerCut);
                }
            }
            Ok(())
        })
    }
}

impl<const PAGE: usize> MultiwriteNorFlash for FlashDouble<PAGE> {}
