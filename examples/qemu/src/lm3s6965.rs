//! Board support for QEMU's `lm3s6965evb`: a TI Stellaris LM3S6965
//! (Cortex-M3, 256 KiB flash, 64 KiB RAM) on its evaluation board. The
//! same code runs on a Cortex-M0 core put in its place (`-cpu cortex-m0`,
//! `thumbv6m-none-eabi`): SysTick, the NVIC and the peripherals are the same.
//!
//! - Clock: 50 MHz from the PLL (8 MHz crystal, 400 MHz PLL / 2 / SYSDIV 4).
//! - Time base: SysTick counts down from 2^24 - 1 at the core clock; the
//!   count is extended to 64 bits in software (a value below the last one
//!   read is a wrap; the wrap interrupt reads it at least once a period);
//!   alarms are one-shots of general-purpose timer 0A (the count of which
//!   QEMU cannot read back, so it only ever wakes the time driver, which
//!   reads SysTick). embassy-time runs at 50 MHz (`tick-hz-50_000_000`).
//! - UART0 (PA0 RX, PA1 TX, 115200 8N1, FIFOs on), interrupt driven: RX and
//!   receive-timeout interrupts fill the RX ring, the TX interrupt drains the
//!   TX ring (16 bytes, one FIFO's worth, at a time).
//! - The user LED (PF0).
//! - For the bench (`src/bench.rs`): general-purpose timer 1A, periodic,
//!   whose interrupt stands in for a UART's.

use core::cell::Cell;
use core::ptr::{read_volatile, write_volatile};

use cortex_m_rt::exception;
use critical_section::{CriticalSection, Mutex};

use crate::uart;

pub const DEVICE: &str = "qemu-lm3s6965";
pub const CLIENT_ID: &str = "bc26-example-qemu-lm3s6965";

const SYSCTL_RIS: usize = 0x400F_E050;
const SYSCTL_RCC: usize = 0x400F_E060;
const SYSCTL_RCGC1: usize = 0x400F_E104;
const SYSCTL_RCGC2: usize = 0x400F_E108;

const GPIOA: usize = 0x4000_4000;
const GPIOF: usize = 0x4002_5000;
const GPIO_DIR: usize = 0x400;
const GPIO_AFSEL: usize = 0x420;
const GPIO_DEN: usize = 0x51C;

const UART0: usize = 0x4000_C000;
const UART_DR: usize = 0x00;
const UART_FR: usize = 0x18;
const UART_IBRD: usize = 0x24;
const UART_FBRD: usize = 0x28;
const UART_LCRH: usize = 0x2C;
const UART_CR: usize = 0x30;
const UART_IMSC: usize = 0x38;
const UART_MIS: usize = 0x40;
const UART_ICR: usize = 0x44;
const FR_BUSY: u32 = 1 << 3;
const FR_RXFE: u32 = 1 << 4;
const FR_TXFF: u32 = 1 << 5;
const INT_RX: u32 = 1 << 4;
const INT_TX: u32 = 1 << 5;
const INT_RT: u32 = 1 << 6;
const UART_FIFO: usize = 16;

const GPTM0: usize = 0x4003_0000;
const GPTM_CFG: usize = 0x00;
const GPTM_TAMR: usize = 0x04;
const GPTM_CTL: usize = 0x0C;
const GPTM_IMR: usize = 0x18;
const GPTM_ICR: usize = 0x24;
const GPTM_TAILR: usize = 0x28;
const TATO: u32 = 1 << 0;
const GPTM1: usize = 0x4003_1000;

const SYST_CSR: usize = 0xE000_E010;
const SYST_RVR: usize = 0xE000_E014;
const SYST_CVR: usize = 0xE000_E018;
const NVIC_ISER0: usize = 0xE000_E100;

const IRQ_UART0: usize = 5;
const IRQ_TIMER0A: usize = 19;
const IRQ_TIMER1A: usize = 21;

/// SysTick wraps every 2^24 ticks.
const SYST_BITS: u32 = 24;
const SYST_MAX: u32 = (1 << SYST_BITS) - 1;

fn rd(addr: usize) -> u32 {
    // SAFETY: `addr` is one of the device registers above.
    unsafe { read_volatile(addr as *const u32) }
}

fn wr(addr: usize, v: u32) {
    // SAFETY: `addr` is one of the device registers above.
    unsafe { write_volatile(addr as *mut u32, v) }
}

fn set_bits(addr: usize, bits: u32) {
    wr(addr, rd(addr) | bits);
}

fn clear_bits(addr: usize, bits: u32) {
    wr(addr, rd(addr) & !bits);
}

/// Clocks, time base, UART0 and LED. Interrupts are enabled at the NVIC,
/// and taken once the executor runs.
pub fn init() {
    // 50 MHz: bypass the PLL, select the 8 MHz crystal, power the PLL up,
    // divide by 4, wait for lock, leave bypass.
    const BYPASS: u32 = 1 << 11;
    const USESYSDIV: u32 = 1 << 22;
    const PWRDN: u32 = 1 << 13;
    const XTAL_8MHZ: u32 = 0xE << 6;
    const SYSDIV_4: u32 = 3 << 23;
    let mut rcc = (rd(SYSCTL_RCC) | BYPASS) & !USESYSDIV;
    wr(SYSCTL_RCC, rcc);
    rcc = (rcc & !(0xF << 6 | 0x3 << 4 | PWRDN | 1)) | XTAL_8MHZ;
    wr(SYSCTL_RCC, rcc);
    rcc = (rcc & !(0xF << 23)) | SYSDIV_4 | USESYSDIV;
    wr(SYSCTL_RCC, rcc);
    while rd(SYSCTL_RIS) & (1 << 6) == 0 {}
    wr(SYSCTL_RCC, rcc & !BYPASS);

    // Clock gates: UART0, timers 0 and 1; GPIO A and F.
    set_bits(SYSCTL_RCGC1, 1 << 0 | 1 << 16 | 1 << 17);
    set_bits(SYSCTL_RCGC2, 1 << 0 | 1 << 5);

    // SysTick: free running at the core clock, interrupt on wrap.
    wr(SYST_RVR, SYST_MAX);
    wr(SYST_CVR, 0);
    wr(SYST_CSR, 0b111);
    // Timer 0A: 32-bit one-shot, time-out interrupt.
    wr(GPTM0 + GPTM_CTL, 0);
    wr(GPTM0 + GPTM_CFG, 0);
    wr(GPTM0 + GPTM_TAMR, 0x1);
    wr(GPTM0 + GPTM_IMR, TATO);

    // LED: PF0 output.
    set_bits(GPIOF + GPIO_DIR, 1);
    set_bits(GPIOF + GPIO_DEN, 1);

    // UART0 on PA0/PA1, 115200 baud from 50 MHz: 50e6 / (16 * 115200)
    // = 27.127 -> IBRD 27, FBRD round(0.127 * 64) = 8. 8N1, FIFOs on.
    set_bits(GPIOA + GPIO_AFSEL, 0b11);
    set_bits(GPIOA + GPIO_DEN, 0b11);
    wr(UART0 + UART_CR, 0);
    wr(UART0 + UART_IBRD, 27);
    wr(UART0 + UART_FBRD, 8);
    wr(UART0 + UART_LCRH, 0b11 << 5 | 1 << 4);
    wr(UART0 + UART_ICR, 0x7FF);
    wr(UART0 + UART_IMSC, INT_RX | INT_RT);
    wr(UART0 + UART_CR, 1 << 0 | 1 << 8 | 1 << 9);

    // Timer 1A (the bench's): 32-bit periodic, time-out interrupt, stopped.
    wr(GPTM1 + GPTM_CTL, 0);
    wr(GPTM1 + GPTM_CFG, 0);
    wr(GPTM1 + GPTM_TAMR, 0x2);
    wr(GPTM1 + GPTM_IMR, TATO);

    wr(
        NVIC_ISER0,
        1 << IRQ_UART0 | 1 << IRQ_TIMER0A | 1 << IRQ_TIMER1A,
    );
}

/// Mask of [`stamp`]'s significant bits: it wraps at 2^24.
pub const STAMP_MASK: u32 = SYST_MAX;

/// A cycle stamp for short intervals: SysTick's count, upwards (50 MHz, 20
/// instructions a tick under `-icount shift=0`). The difference of two,
/// masked with [`STAMP_MASK`], is the ticks between them (up to 335 ms).
#[inline(always)]
pub fn stamp() -> u32 {
    SYST_MAX - rd(SYST_CVR)
}

/// Starts timer 1A: an interrupt every `ticks` (50 MHz), until
/// [`bench_timer_stop`].
pub fn bench_timer_start(ticks: u32) {
    wr(GPTM1 + GPTM_CTL, 0);
    wr(GPTM1 + GPTM_TAILR, ticks);
    wr(GPTM1 + GPTM_ICR, TATO);
    wr(GPTM1 + GPTM_CTL, 1);
}

/// Stops timer 1A.
pub fn bench_timer_stop() {
    wr(GPTM1 + GPTM_CTL, 0);
}

/// Acknowledges timer 1A's interrupt (its handler is the image's
/// `BenchTick`: the bench's, else `DefaultHandler`).
pub fn bench_timer_ack() {
    wr(GPTM1 + GPTM_ICR, TATO);
}

/// Switches the user LED.
pub fn set_led(on: bool) {
    // GPIODATA is addressed through a bit mask: offset (mask << 2).
    wr(GPIOF + (1 << 2), on as u32);
}

/// The 64-bit count: the last SysTick value read (counting up) and the
/// periods completed before it.
#[derive(Clone, Copy)]
struct Count {
    last: u32,
    periods: u64,
}

static COUNT: Mutex<Cell<Count>> = Mutex::new(Cell::new(Count {
    last: 0,
    periods: 0,
}));

/// The wrap interrupt only makes sure the count is read at least once a
/// period (every 335 ms), so that no wrap goes unseen.
#[exception]
fn SysTick() {
    now();
}

/// Ticks (50 MHz) since the time base started.
///
/// A wrap shows as a value smaller than the last one read. (Not the pending
/// SysTick exception: in QEMU the count wraps before the exception is
/// pending, a window in which that method goes back a period; under
/// `-icount` with `sleep=off` it did, several times a second.)
pub fn now() -> u64 {
    critical_section::with(|cs| {
        let c = COUNT.borrow(cs);
        let mut count = c.get();
        let value = SYST_MAX - rd(SYST_CVR);
        if value < count.last {
            count.periods += 1;
        }
        count.last = value;
        c.set(count);
        (count.periods << SYST_BITS) + u64::from(value)
    })
}

/// Arms the alarm for tick `at` (`u64::MAX`: none). `false` if `at` has
/// passed already. Fires no earlier than `at`; a deadline more than 2^32
/// ticks (86 s) away fires early, and the driver arms it again.
pub fn set_alarm(_cs: CriticalSection<'_>, at: u64) -> bool {
    wr(GPTM0 + GPTM_CTL, 0);
    if at == u64::MAX {
        return true;
    }
    let now = now();
    if at <= now {
        return false;
    }
    let ticks = (at - now).min(u64::from(u32::MAX)) as u32;
    wr(GPTM0 + GPTM_TAILR, ticks);
    wr(GPTM0 + GPTM_ICR, TATO);
    wr(GPTM0 + GPTM_CTL, 1);
    true
}

extern "C" fn timer0a() {
    wr(GPTM0 + GPTM_ICR, TATO);
    crate::time::on_alarm();
}

/// Moves up to one FIFO's worth of bytes from the TX ring to the FIFO;
/// whether bytes remain in the ring.
fn fill_tx_fifo() -> bool {
    for _ in 0..UART_FIFO {
        if rd(UART0 + UART_FR) & FR_TXFF != 0 {
            break;
        }
        match uart::isr_tx() {
            Some(b) => wr(UART0 + UART_DR, b.into()),
            None => break,
        }
    }
    uart::isr_tx_pending()
}

extern "C" fn uart0() {
    let mis = rd(UART0 + UART_MIS);
    // Clear first: what arrives while draining raises the interrupt again.
    wr(UART0 + UART_ICR, mis & (INT_RX | INT_RT | INT_TX));
    if mis & (INT_RX | INT_RT) != 0 {
        let mut got = false;
        while rd(UART0 + UART_FR) & FR_RXFE == 0 {
            if !uart::isr_rx_room() {
                clear_bits(UART0 + UART_IMSC, INT_RX | INT_RT);
                uart::isr_rx_pause();
                break;
            }
            uart::isr_rx(rd(UART0 + UART_DR) as u8);
            got = true;
        }
        if got {
            uart::isr_rx_wake();
        }
    }
    if mis & INT_TX != 0 {
        if fill_tx_fifo() {
            uart::isr_tx_wake();
        } else {
            clear_bits(UART0 + UART_IMSC, INT_TX);
            uart::isr_tx_stopped();
        }
    }
}

/// UART0's register half.
pub struct Uart;

impl uart::Hw for Uart {
    fn start_tx() -> bool {
        let more = fill_tx_fifo();
        if more {
            set_bits(UART0 + UART_IMSC, INT_TX);
        }
        more
    }

    fn resume_rx() {
        set_bits(UART0 + UART_IMSC, INT_RX | INT_RT);
    }

    fn tx_idle() -> bool {
        rd(UART0 + UART_FR) & FR_BUSY == 0
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
    /// Timer 1A's handler: the bench image defines it; `device.x` makes it
    /// `DefaultHandler` elsewhere.
    fn BenchTick();
}

#[doc(hidden)]
#[unsafe(link_section = ".vector_table.interrupts")]
#[unsafe(no_mangle)]
pub static __INTERRUPTS: [Vector; 22] = {
    let mut v = [const {
        Vector {
            handler: DefaultHandler,
        }
    }; 22];
    v[IRQ_UART0] = Vector { handler: uart0 };
    v[IRQ_TIMER0A] = Vector { handler: timer0a };
    v[IRQ_TIMER1A] = Vector { handler: BenchTick };
    v
};
