//! The board-independent half of the interrupt-driven UART: ring buffers
//! between the interrupt handler and the task, wakers, and the
//! `embedded_io_async::{Read, Write}` halves the application gets.
//!
//! The board's half (`Hw`) touches the registers: its interrupt handler
//! moves bytes between the hardware FIFOs and [`UART`] with the `isr_*`
//! functions below, and the two methods restart it when the task has
//! produced (TX) or consumed (RX) bytes.

use core::convert::Infallible;
use core::future::poll_fn;
use core::marker::PhantomData;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use core::task::{Poll, Waker};

use embassy_sync::waitqueue::AtomicWaker;

use crate::ring::Ring;

/// Register-level operations of the board's UART. Called with interrupts
/// disabled.
pub trait Hw {
    /// The TX ring got bytes while the transmitter was idle: fill the FIFO
    /// (with [`isr_tx`]); if bytes remain in the ring, enable the TX
    /// interrupt and return `true`.
    fn start_tx() -> bool;
    /// The RX ring has room again after it filled up: re-enable the RX
    /// interrupt (the FIFO held the bytes meanwhile).
    fn resume_rx();
    /// The last byte has left the shift register.
    fn tx_idle() -> bool;
}

/// Receive buffer: the driver reads continuously, so 1 KiB covers more
/// than 80 ms of traffic at 115200 baud (the small configuration: 256
/// bytes, 22 ms; when it fills, the handler masks the RX interrupt and the
/// UART holds the bytes, which QEMU's UARTs do without loss).
#[cfg(not(feature = "small"))]
pub const RX_SIZE: usize = 1024;
#[cfg(feature = "small")]
pub const RX_SIZE: usize = 256;
/// Transmit buffer (the driver writes 64-byte chunks).
#[cfg(not(feature = "small"))]
pub const TX_SIZE: usize = 256;
#[cfg(feature = "small")]
pub const TX_SIZE: usize = 128;

pub struct Shared {
    rx: Ring<RX_SIZE>,
    tx: Ring<TX_SIZE>,
    rx_waker: AtomicWaker,
    tx_waker: AtomicWaker,
    /// The TX interrupt is enabled and drains `tx`.
    tx_on: AtomicBool,
    /// The RX interrupt is masked because `rx` was full.
    rx_paused: AtomicBool,
}

/// The waker last registered in `rx_waker` (its data and vtable
/// addresses): a read by the same task registers nothing again (the
/// handler's `wake` keeps the waker). Only the task writes them.
static RX_WAKER_DATA: AtomicUsize = AtomicUsize::new(0);
static RX_WAKER_VTABLE: AtomicUsize = AtomicUsize::new(0);

/// Registers the reader's waker, unless it is the one registered already
/// (`Waker::will_wake`'s test, without the critical section of
/// `AtomicWaker::register`). `true`: it was registered already.
fn register_rx(w: &Waker) -> bool {
    let data = w.data() as usize;
    let vtable = w.vtable() as *const _ as usize;
    let same = RX_WAKER_DATA.load(Ordering::Relaxed) == data
        && RX_WAKER_VTABLE.load(Ordering::Relaxed) == vtable;
    if !same {
        UART.rx_waker.register(w);
        RX_WAKER_DATA.store(data, Ordering::Relaxed);
        RX_WAKER_VTABLE.store(vtable, Ordering::Relaxed);
    }
    same
}

pub static UART: Shared = Shared {
    rx: Ring::new(),
    tx: Ring::new(),
    rx_waker: AtomicWaker::new(),
    tx_waker: AtomicWaker::new(),
    tx_on: AtomicBool::new(false),
    rx_paused: AtomicBool::new(false),
};

/// Bytes the task has read, and in how many reads (only the task writes
/// them: load and store suffice, also on Cortex-M0).
static READ_BYTES: AtomicU32 = AtomicU32::new(0);
static READS: AtomicU32 = AtomicU32::new(0);

/// (bytes received by the task, reads that returned them) so far.
pub fn rx_stats() -> (u32, u32) {
    (
        READ_BYTES.load(Ordering::Relaxed),
        READS.load(Ordering::Relaxed),
    )
}

/// Interrupt handler: whether the RX ring has room for a byte. If not, the
/// handler masks the RX interrupt, leaves the bytes in the FIFO and calls
/// [`isr_rx_pause`]; [`Hw::resume_rx`] comes once the task has read.
pub fn isr_rx_room() -> bool {
    !UART.rx.is_full()
}

/// Interrupt handler: one received byte (after [`isr_rx_room`]).
pub fn isr_rx(b: u8) {
    UART.rx.push(&[b]);
}

/// The bench's stand-in handler: bytes of room in the RX ring.
#[cfg(feature = "lm3s6965")]
pub fn isr_rx_free() -> usize {
    UART.rx.free()
}

/// The bench's stand-in handler: several received bytes (after
/// [`isr_rx_free`]).
#[cfg(feature = "lm3s6965")]
pub fn isr_rx_push(bytes: &[u8]) {
    UART.rx.push(bytes);
}

/// Interrupt handler: the RX ring is full and the RX interrupt masked.
pub fn isr_rx_pause() {
    UART.rx_paused.store(true, Ordering::Release);
}

/// Interrupt handler: bytes were received.
pub fn isr_rx_wake() {
    UART.rx_waker.wake();
}

/// Interrupt handler: the next byte to send, if any.
pub fn isr_tx() -> Option<u8> {
    let mut b = [0];
    (UART.tx.pop(&mut b) == 1).then_some(b[0])
}

/// Whether bytes wait in the TX ring.
pub fn isr_tx_pending() -> bool {
    !UART.tx.is_empty()
}

/// Interrupt handler: the TX ring is empty and the TX interrupt masked.
pub fn isr_tx_stopped() {
    UART.tx_on.store(false, Ordering::Release);
    UART.tx_waker.wake();
}

/// Interrupt handler: room was made in the TX ring.
pub fn isr_tx_wake() {
    UART.tx_waker.wake();
}

/// The receiving half.
pub struct Rx<H: Hw>(PhantomData<H>);
/// The transmitting half.
pub struct Tx<H: Hw>(PhantomData<H>);

/// The two halves. Call once, after the board has set the UART up.
pub fn split<H: Hw>() -> (Rx<H>, Tx<H>) {
    (Rx(PhantomData), Tx(PhantomData))
}

impl<H: Hw> embedded_io::ErrorType for Rx<H> {
    type Error = Infallible;
}

impl<H: Hw> embedded_io::ErrorType for Tx<H> {
    type Error = Infallible;
}

impl<H: Hw> embedded_io_async::Read for Rx<H> {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
        if buf.is_empty() {
            return Ok(0);
        }
        poll_fn(|cx| {
            let mut n = UART.rx.pop(buf);
            if n == 0 {
                // Registered before the ring was found empty: a byte since
                // has woken the task. Registered only now: look again.
                if register_rx(cx.waker()) {
                    return Poll::Pending;
                }
                n = UART.rx.pop(buf);
                if n == 0 {
                    return Poll::Pending;
                }
            }
            READ_BYTES.store(
                READ_BYTES.load(Ordering::Relaxed).wrapping_add(n as u32),
                Ordering::Relaxed,
            );
            READS.store(
                READS.load(Ordering::Relaxed).wrapping_add(1),
                Ordering::Relaxed,
            );
            if UART.rx_paused.load(Ordering::Acquire) {
                critical_section::with(|_| {
                    UART.rx_paused.store(false, Ordering::Relaxed);
                    H::resume_rx();
                });
            }
            Poll::Ready(Ok(n))
        })
        .await
    }
}

impl<H: Hw> embedded_io_async::Write for Tx<H> {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
        if buf.is_empty() {
            return Ok(0);
        }
        poll_fn(|cx| {
            let mut n = UART.tx.push(buf);
            if n == 0 {
                UART.tx_waker.register(cx.waker());
                n = UART.tx.push(buf);
                if n == 0 {
                    return Poll::Pending;
                }
            }
            critical_section::with(|_| {
                if !UART.tx_on.load(Ordering::Acquire) {
                    UART.tx_on.store(H::start_tx(), Ordering::Release);
                }
            });
            Poll::Ready(Ok(n))
        })
        .await
    }

    async fn flush(&mut self) -> Result<(), Infallible> {
        poll_fn(|cx| {
            UART.tx_waker.register(cx.waker());
            if UART.tx_on.load(Ordering::Acquire) {
                return Poll::Pending;
            }
            if critical_section::with(|_| H::tx_idle()) {
                Poll::Ready(Ok(()))
            } else {
                // The FIFO's last byte is still shifting out (a few
                // microseconds at most): look again on the next poll.
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        })
        .await
    }
}
