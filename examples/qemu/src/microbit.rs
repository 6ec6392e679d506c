//! Board support for QEMU's `microbit`: a BBC micro:bit (v1), whose nRF51822
//! has a Cortex-M0 at 16 MHz, 256 KiB of flash and 16 KiB of RAM
//! (`thumbv6m-none-eabi`).
//!
//! What QEMU models of the nRF51 (QEMU 7.2, `hw/arm/nrf51_soc.c`): the UART,
//! the three TIMERs, GPIO, RNG and the NVMC. It has no RTC and no CLOCK
//! peripheral (the CLOCK block is a stub that reads 1), so nothing here
//! starts a clock or waits for a clock-started event: HCLK runs at 16 MHz
//! from reset, and so do the timers. (QEMU gives every Cortex-M a SysTick;
//! the real nRF51 has none, so this board does not use it.)
//!
//! - Time base: TIMER0, 32 bits at 16 MHz (prescaler 0). Its count is read
//!   by a capture task (CC[3]) and extended to 64 bits in software: a value
//!   below the last one read is a wrap (every 268 s). CC[1] and CC[2]
//!   interrupt at a quarter and three quarters of the wrap so that the count
//!   is read at least twice a wrap; CC[0] is the alarm. embassy-time runs at
//!   16 MHz (`tick-hz-16_000_000`). (Not the half-period count of
//!   embassy-nrf's RTC driver: QEMU 7.2's nRF51 timer raises a compare event
//!   whenever it updates while the count equals the compare value, at the
//!   start too, so events can come twice.)
//! - UART0 (P0.24 TX, P0.25 RX, the micro:bit's USB serial pins), 115200
//!   8N1, interrupt driven: RXDRDY moves the received bytes to the RX ring;
//!   TXDRDY, one byte at a time (the nRF51 UART has no TX FIFO), drains the
//!   TX ring. QEMU's model keeps 6 received bytes, raises RXDRDY again when
//!   RXD is read while more wait, and sends a written TXD at once.
//! - The LED: the top left one of the 5x5 matrix (row 1 on P0.13, column 1
//!   on P0.04 held low).

use core::cell::Cell;
use core::ptr::{read_volatile, write_volatile};

use critical_section::{CriticalSection, Mutex};

use crate::uart;

pub const DEVICE: &str = "qemu-microbit";
pub const CLIENT_ID: &str = "bc26-example-qemu-microbit";

const GPIO: usize = 0x5000_0000;
const GPIO_OUTSET: usize = 0x508;
const GPIO_OUTCLR: usize = 0x50C;
const GPIO_DIRSET: usize = 0x518;
const ROW1: u32 = 13;
const COL1: u32 = 4;

const UART0: usize = 0x4000_2000;
const UART_STARTRX: usize = 0x000;
const UART_STARTTX: usize = 0x008;
const UART_RXDRDY: usize = 0x108;
const UART_TXDRDY: usize = 0x11C;
const UART_INTENSET: usize = 0x304;
const UART_INTENCLR: usize = 0x308;
const UART_ENABLE: usize = 0x500;
const UART_PSELTXD: usize = 0x50C;
const UART_PSELRXD: usize = 0x514;
const UART_RXD: usize = 0x518;
const UART_TXD: usize = 0x51C;
const UART_BAUDRATE: usize = 0x524;
const INT_RXDRDY: u32 = 1 << 2;
const INT_TXDRDY: u32 = 1 << 7;
const BAUD_115200: u32 = 0x01D7_E000;

const TIMER0: usize = 0x4000_8000;
const TIMER_START: usize = 0x000;
const TIMER_CLEAR: usize = 0x00C;
const TIMER_CAPTURE3: usize = 0x04C;
const TIMER_COMPARE: usize = 0x140;
const TIMER_INTENSET: usize = 0x304;
const TIMER_INTENCLR: usize = 0x308;
const TIMER_MODE: usize = 0x504;
const TIMER_BITMODE: usize = 0x508;
const TIMER_PRESCALER: usize = 0x510;
const TIMER_CC: usize = 0x540;
/// INTEN bit of COMPARE[n].
const fn compare_int(n: usize) -> u32 {
    1 << (16 + n)
}
/// Half of the 32-bit count.
const HALF: u32 = 1 << 31;
/// Where CC[1] and CC[2] read the count.
const QUARTER: u32 = 1 << 30;

const NVIC_ISER0: usize = 0xE000_E100;
/// IRQ numbers: the peripheral's base address bits 12-16.
const IRQ_UART0: usize = 2;
const IRQ_TIMER0: usize = 8;

fn rd(addr: usize) -> u32 {
    // SAFETY: `addr` is one of the device registers above.
    unsafe { read_volatile(addr as *const u32) }
}

fn wr(addr: usize, v: u32) {
    // SAFETY: `addr` is one of the device registers above.
    unsafe { write_volatile(addr as *mut u32, v) }
}

/// Time base, UART0 and LED. Interrupts are enabled at the NVIC, and taken
/// once the executor runs.
pub fn init() {
    // TIMER0: 32-bit timer at 16 MHz, read twice a wrap.
    wr(TIMER0 + TIMER_MODE, 0);
    wr(TIMER0 + TIMER_BITMODE, 3);
    wr(TIMER0 + TIMER_PRESCALER, 0);
    wr(TIMER0 + TIMER_CC + 4, QUARTER);
    wr(TIMER0 + TIMER_CC + 2 * 4, QUARTER + HALF);
    wr(TIMER0 + TIMER_INTENSET, compare_int(1) | compare_int(2));
    wr(TIMER0 + TIMER_CLEAR, 1);
    wr(TIMER0 + TIMER_START, 1);

    // LED: row 1 and column 1 outputs, the column low.
    wr(GPIO + GPIO_DIRSET, 1 << ROW1 | 1 << COL1);
    wr(GPIO + GPIO_OUTCLR, 1 << ROW1 | 1 << COL1);

    // UART0: 115200 8N1 on the USB serial pins, receiving.
    wr(UART0 + UART_PSELTXD, 24);
    wr(UART0 + UART_PSELRXD, 25);
    wr(UART0 + UART_BAUDRATE, BAUD_115200);
    wr(UART0 + UART_ENABLE, 4);
    wr(UART0 + UART_TXDRDY, 0);
    wr(UART0 + UART_RXDRDY, 0);
    wr(UART0 + UART_STARTTX, 1);
    wr(UART0 + UART_STARTRX, 1);
    wr(UART0 + UART_INTENSET, INT_RXDRDY);

    wr(NVIC_ISER0, 1 << IRQ_UART0 | 1 << IRQ_TIMER0);
}

/// Switches the LED.
pub fn set_led(on: bool) {
    let reg = if on { GPIO_OUTSET } else { GPIO_OUTCLR };
    wr(GPIO + reg, 1 << ROW1);
}

/// TIMER0's count now (a capture task, then CC[3]).
#[inline(always)]
fn count() -> u32 {
    wr(TIMER0 + TIMER_CAPTURE3, 1);
    rd(TIMER0 + TIMER_CC + 3 * 4)
}

/// Mask of [`stamp`]'s significant bits: all 32.
pub const STAMP_MASK: u32 = u32::MAX;

/// A cycle stamp for short intervals: TIMER0's count (16 MHz, 62.5
/// instructions a tick under `-icount shift=0`).
#[inline(always)]
pub fn stamp() -> u32 {
    count()
}

/// The 64-bit count: the last value read and the wraps before it.
#[derive(Clone, Copy)]
struct Count {
    last: u32,
    wraps: u32,
}

static COUNT: Mutex<Cell<Count>> = Mutex::new(Cell::new(Count { last: 0, wraps: 0 }));

/// Ticks (16 MHz) since the time base started.
pub fn now() -> u64 {
    critical_section::with(|cs| {
        let c = COUNT.borrow(cs);
        let mut count = c.get();
        let value = self::count();
        if value < count.last {
            count.wraps = count.wraps.wrapping_add(1);
        }
        count.last = value;
        c.set(count);
        (u64::from(count.wraps) << 32) + u64::from(value)
    })
}

/// Arms the alarm for tick `at` (`u64::MAX`: none). `false` if `at` has
/// passed already. A deadline more than half a wrap (134 s) away is left to
/// the quarter interrupts, which ask the time driver again. (A compare
/// event may come early, see above: the time driver then finds nothing due
/// and arms the alarm again.)
pub fn set_alarm(_cs: CriticalSection<'_>, at: u64) -> bool {
    wr(TIMER0 + TIMER_INTENCLR, compare_int(0));
    if at == u64::MAX {
        return true;
    }
    let now = now();
    if at <= now {
        return false;
    }
    if at - now < u64::from(HALF) {
        // The compare value first, then clear the event: QEMU re-arms its
        // timer for a compare register only once its event is clear.
        wr(TIMER0 + TIMER_CC, at as u32);
        wr(TIMER0 + TIMER_COMPARE, 0);
        wr(TIMER0 + TIMER_INTENSET, compare_int(0));
        // The count may have passed the compare value meanwhile: then the
        // event would come only after a wrap.
        if now_after(at) {
            wr(TIMER0 + TIMER_INTENCLR, compare_int(0));
            return false;
        }
    }
    true
}

/// Whether tick `at` is due (with two ticks to spare for the register
/// writes that follow).
fn now_after(at: u64) -> bool {
    now() + 2 >= at
}

extern "C" fn timer0() {
    for n in [1, 2] {
        if rd(TIMER0 + TIMER_COMPARE + 4 * n) != 0 {
            wr(TIMER0 + TIMER_COMPARE + 4 * n, 0);
            now();
        }
    }
    if rd(TIMER0 + TIMER_COMPARE) != 0 {
        wr(TIMER0 + TIMER_COMPARE, 0);
        wr(TIMER0 + TIMER_INTENCLR, compare_int(0));
    }
    // An alarm, or a quarter (which may bring a far deadline within reach).
    crate::time::on_alarm();
}

extern "C" fn uart0() {
    if rd(UART0 + UART_RXDRDY) != 0 {
        let mut got = false;
        // Clear the event before reading RXD: reading it raises the event
        // again while more bytes wait.
        while rd(UART0 + UART_RXDRDY) != 0 {
            if !uart::isr_rx_room() {
                wr(UART0 + UART_INTENCLR, INT_RXDRDY);
                uart::isr_rx_pause();
                break;
            }
            wr(UART0 + UART_RXDRDY, 0);
            uart::isr_rx(rd(UART0 + UART_RXD) as u8);
            got = true;
        }
        if got {
            uart::isr_rx_wake();
        }
    }
    if rd(UART0 + UART_TXDRDY) != 0 {
        wr(UART0 + UART_TXDRDY, 0);
        match uart::isr_tx() {
            Some(b) => {
                wr(UART0 + UART_TXD, b.into());
                uart::isr_tx_wake();
            }
            None => {
                wr(UART0 + UART_INTENCLR, INT_TXDRDY);
                uart::isr_tx_stopped();
            }
        }
    }
}

/// UART0's register half.
pub struct Uart;

impl uart::Hw for Uart {
    fn start_tx() -> bool {
        match uart::isr_tx() {
            Some(b) => {
                wr(UART0 + UART_TXDRDY, 0);
                wr(UART0 + UART_TXD, b.into());
                wr(UART0 + UART_INTENSET, INT_TXDRDY);
                true
            }
            None => false,
        }
    }

    fn resume_rx() {
        wr(UART0 + UART_INTENSET, INT_RXDRDY);
    }

    fn tx_idle() -> bool {
        // The TXDRDY of the last byte ended the transmission (`start_tx`
        // and the handler send one byte per TXDRDY).
        true
    }
}

/// The interrupt part of the vector table (cortex-m-rt's `device` feature).
#[doc(hidden)]
pub struct Vector {
    #[allow(dead_code)] // read by the core, not by the program
    handler: unsafe extern "C" fn(),
}

unsafe extern "C" {
    fn DefaultHandler();
}

#[doc(hidden)]
#[unsafe(link_section = ".vector_table.interrupts")]
#[unsafe(no_mangle)]
pub static __INTERRUPTS: [Vector; 32] = {
    let mut v = [const {
        Vector {
            handler: DefaultHandler,
        }
    }; 32];
    v[IRQ_UART0] = Vector { handler: uart0 };
    v[IRQ_TIMER0] = Vector { handler: timer0 };
    v
};
