//! The nRF51822's NVMC (non-volatile memory controller) as a NOR flash
//! (feature `flash-outbox`, micro:bit only): embedded-storage's blocking
//! [`NorFlash`], [`ReadNorFlash`] and [`MultiwriteNorFlash`], and [`Async`],
//! which gives a blocking flash the async traits the driver's
//! `FlashOutbox` takes (a write or an erase stalls the CPU on the nRF51
//! anyway: there is nothing to await).
//!
//! The nRF51 Series Reference Manual (NVMC chapter): flash is read through
//! the bus; CONFIG (0x4001E504) selects writes (WEN, 1) or erases (EEN, 2);
//! a write is one aligned 32-bit word stored to the flash address while WEN
//! is set; writing a page's address to ERASEPAGE (0x4001E508) while EEN is
//! set erases that page (1 KiB) to all ones; READY (0x4001E400) reads 1
//! when the NVMC is idle. A write only clears bits (NOR flash).
//!
//! `MultiwriteNorFlash` (a word written again, clearing more bits, without
//! an erase) is what the journal needs: sequential-storage removes an item
//! by writing its 8-byte header a second time with the data CRC 0. The
//! nRF51 documents a limit on writes to one word between erases (n_WRITE,
//! in its product specification's flash table: check the part's figure
//! before relying on more than two); the journal writes a header word twice
//! and every other word once. embassy-nrf makes the same claim for the
//! NVMC of every nRF5 it supports, the nRF51 included.
//!
//! QEMU 7.2 models this (`hw/nvram/nrf51_nvm.c`): a write while WEN is set
//! ANDs the word into the flash, any number of times (seen by experiment:
//! tests/qemu_flash.rs reads items whose header was written twice, its CRC
//! now 0); an ERASEPAGE while EEN is set fills the page with 0xFF (not
//! reached by the test: its messages fit in the region's first pages);
//! READY reads 1. The flash lives in QEMU's memory, not in a file: it survives a
//! reset of the machine (the monitor's `system_reset`: the test), not a new
//! QEMU.

use core::ptr::{read_volatile, write_volatile};

use embedded_storage::nor_flash::{
    ErrorType, MultiwriteNorFlash, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};

const NVMC: usize = 0x4001_E000;
const READY: usize = NVMC + 0x400;
const CONFIG: usize = NVMC + 0x504;
const ERASEPAGE: usize = NVMC + 0x508;
const CONFIG_REN: u32 = 0;
const CONFIG_WEN: u32 = 1;
const CONFIG_EEN: u32 = 2;

/// The nRF51822's flash: 256 KiB from address 0.
pub const FLASH_SIZE: u32 = 256 * 1024;
/// An erase page of the nRF51 (code page): 1 KiB.
pub const PAGE_SIZE: u32 = 1024;

/// An access outside the flash, or not aligned to a word (writes) or a
/// page (erases).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    OutOfBounds,
    NotAligned,
}

impl NorFlashError for Error {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            Error::OutOfBounds => NorFlashErrorKind::OutOfBounds,
            Error::NotAligned => NorFlashErrorKind::NotAligned,
        }
    }
}

/// The NVMC. One value per image: it is the only writer of the flash (the
/// program runs from flash too, and never writes it otherwise).
pub struct Nvmc {
    _private: (),
}

impl Nvmc {
    /// The NVMC, in read mode.
    pub fn new() -> Nvmc {
        reg_write(CONFIG, CONFIG_REN);
        Nvmc { _private: () }
    }

    fn check(offset: u32, len: usize, align: u32) -> Result<(), Error> {
        let end = offset as u64 + len as u64;
        if end > FLASH_SIZE as u64 {
            return Err(Error::OutOfBounds);
        }
        if offset % align != 0 || len as u32 % align != 0 {
            return Err(Error::NotAligned);
        }
        Ok(())
    }
}

impl Default for Nvmc {
    fn default() -> Self {
        Nvmc::new()
    }
}

fn reg_write(addr: usize, v: u32) {
    // SAFETY: `addr` is one of the NVMC's registers above.
    unsafe { write_volatile(addr as *mut u32, v) }
}

fn wait_ready() {
    // SAFETY: READY is the NVMC's read-only status register.
    while unsafe { read_volatile(READY as *const u32) } & 1 == 0 {}
}

impl ErrorType for Nvmc {
    type Error = Error;
}

impl ReadNorFlash for Nvmc {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Error> {
        Self::check(offset, bytes.len(), 1)?;
        for (i, b) in bytes.iter_mut().enumerate() {
            // SAFETY: the address is inside the flash (checked above),
            // which is mapped at 0 and always readable.
            *b = unsafe { read_volatile((offset as usize + i) as *const u8) };
        }
        Ok(())
    }

    fn capacity(&self) -> usize {
        FLASH_SIZE as usize
    }
}

impl NorFlash for Nvmc {
    const WRITE_SIZE: usize = 4;
    const ERASE_SIZE: usize = PAGE_SIZE as usize;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), Error> {
        if from > to {
            return Err(Error::OutOfBounds);
        }
        Self::check(from, (to - from) as usize, PAGE_SIZE)?;
        reg_write(CONFIG, CONFIG_EEN);
        wait_ready();
        for page in (from..to).step_by(PAGE_SIZE as usize) {
            reg_write(ERASEPAGE, page);
            wait_ready();
        }
        reg_write(CONFIG, CONFIG_REN);
        wait_ready();
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Error> {
        Self::check(offset, bytes.len(), 4)?;
        reg_write(CONFIG, CONFIG_WEN);
        wait_ready();
        for (i, w) in bytes.chunks_exact(4).enumerate() {
            let word = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
            // SAFETY: a word-aligned address inside the flash (checked
            // above), written while the NVMC is in write mode: the NVMC
            // stores the word; no Rust value lives in flash that is written
            // (the outbox's region is apart from the program, memory.x).
            unsafe { write_volatile((offset as usize + 4 * i) as *mut u32, word) };
            wait_ready();
        }
        reg_write(CONFIG, CONFIG_REN);
        wait_ready();
        Ok(())
    }
}

/// A word written again clears more bits (see the module's documentation
/// for the nRF51's limit; QEMU's model has none).
impl MultiwriteNorFlash for Nvmc {}

/// A blocking flash with the async traits (embedded-storage-async): each
/// call completes at once.
pub struct Async<F>(pub F);

impl<F: ErrorType> embedded_storage_async::nor_flash::ErrorType for Async<F> {
    type Error = F::Error;
}

impl<F: ReadNorFlash> embedded_storage_async::nor_flash::ReadNorFlash for Async<F> {
    const READ_SIZE: usize = F::READ_SIZE;

    async fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        self.0.read(offset, bytes)
    }

    fn capacity(&self) -> usize {
        self.0.capacity()
    }
}

impl<F: NorFlash> embedded_storage_async::nor_flash::NorFlash for Async<F> {
    const WRITE_SIZE: usize = F::WRITE_SIZE;
    const ERASE_SIZE: usize = F::ERASE_SIZE;

    async fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        self.0.erase(from, to)
    }

    async fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        self.0.write(offset, bytes)
    }
}

impl<F: MultiwriteNorFlash> embedded_storage_async::nor_flash::MultiwriteNorFlash for Async<F> {}
