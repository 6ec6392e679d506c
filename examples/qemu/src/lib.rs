//! Board support for BC26 MQTT examples on QEMU's emulated boards, which no
//! HAL provides: the boards' clocks, UART and time base (`board`), the
//! embassy-time driver ([`time`]), the interrupt-driven UART's
//! board-independent half ([`uart`]), the executor loop that counts the time
//! asleep ([`exec`]), the critical-section implementation with its
//! masked-interrupt probe ([`cs`]), the stack's high-water mark ([`stack`]),
//! the settings ([`config`]) and the reports through semihosting ([`out`]).
//!
//! - feature `lm3s6965` (the default), `-machine lm3s6965evb`: a TI Stellaris
//!   LM3S6965 with its Cortex-M3 (`thumbv7m-none-eabi`), or a Cortex-M0 core
//!   in its place (`-cpu cortex-m0`, `thumbv6m-none-eabi`);
//! - feature `microbit`, `-machine microbit`: a BBC micro:bit's nRF51822
//!   (Cortex-M0, 16 KiB of RAM, `thumbv6m-none-eabi`).
//!
//! Two images use it: the example application (`src/main.rs`) and the bench
//! (`src/bin/bench.rs`).
#![no_std]

#[cfg(all(feature = "lm3s6965", feature = "microbit"))]
compile_error!("one board per build: features `lm3s6965` and `microbit` exclude each other");
#[cfg(not(any(feature = "lm3s6965", feature = "microbit")))]
compile_error!("no board: build with feature `lm3s6965` (the default) or `microbit`");

#[macro_use]
pub mod out;
#[cfg_attr(feature = "lm3s6965", path = "lm3s6965.rs")]
#[cfg_attr(feature = "microbit", path = "microbit.rs")]
pub mod board;
pub mod config;
pub mod cs;
pub mod exec;
#[cfg(feature = "flash-outbox")]
pub mod nvmc;
pub mod ring;
pub mod stack;
pub mod time;
pub mod uart;

use cortex_m_rt::{exception, ExceptionFrame};

/// The receiving half of the board's UART.
pub type Rx = uart::Rx<board::Uart>;
/// The transmitting half of the board's UART.
pub type Tx = uart::Tx<board::Uart>;

/// Counts the emulated time a loop of a known number of instructions takes,
/// so that the host can check that `busy_ns` counts instructions (it does
/// under `-icount shift=0`: one nanosecond per instruction).
pub fn calibrate() {
    const LOOPS: u32 = 100_000;
    let before = exec::busy_ticks();
    // SAFETY: a register-only loop: SUBS and BNE, LOOPS times each.
    unsafe {
        core::arch::asm!(
            "2:",
            "subs {n}, #1",
            "bne 2b",
            n = inout(reg) LOOPS => _,
            options(nomem, nostack),
        );
    }
    let after = exec::busy_ticks();
    say!(
        "calibration: {} instructions in {} ns",
        2 * LOOPS,
        exec::ticks_to_ns(after - before)
    );
}

/// Says what RAM the image was linked for and how it is used.
pub fn say_memory() {
    let (ram, statics, stack) = stack::layout();
    say!(
        "memory: RAM {} bytes, statics {} bytes, stack {} bytes",
        ram,
        statics,
        stack
    );
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    cortex_m::interrupt::disable();
    say!("panic: {}", info);
    loop {
        cortex_m_semihosting::debug::exit(cortex_m_semihosting::debug::EXIT_FAILURE);
    }
}

#[exception]
unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
    say!("hard fault at pc {:#010x}", frame.pc());
    loop {
        cortex_m_semihosting::debug::exit(cortex_m_semihosting::debug::EXIT_FAILURE);
    }
}
