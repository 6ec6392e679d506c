//! BC26 MQTT example for QEMU's emulated LM3S6965 board (`-machine
//! lm3s6965evb`): built for `thumbv7m-none-eabi` it runs on the board's
//! Cortex-M3; built for `thumbv6m-none-eabi` (no compare-and-swap: critical
//! sections instead) on a Cortex-M0 core in its place (`-cpu cortex-m0`).
//!
//! The application (start-up, registration, MQTT session, telemetry,
//! commands, recovery) is `bc26-example-app`, the same code the STM32 and
//! nRF boards run; this crate is the board support that QEMU needs and no
//! HAL provides: the time driver, the interrupt-driven UART (wired by QEMU's
//! `-serial` to the BC26 simulator's pseudo-terminal), the executor loop.
//!
//! It reports through semihosting (QEMU's standard output), one line each,
//! prefixed `bc26-qemu: `: a calibration of the instruction count at boot,
//! every status change of the application, and on every command (which
//! switches the LED) the CPU time used so far (`busy_ns`, instructions
//! under `-icount shift=0`), the uptime, the stack's high-water mark and
//! the bytes received from the UART (and in how many reads).
#![no_std]
#![no_main]

#[macro_use]
mod out;
#[path = "lm3s6965.rs"]
mod board;
mod config;
mod exec;
mod ring;
mod stack;
mod time;
mod uart;

use bc26_example_app::{AppConfig, AppState, Device, Status};
use cortex_m_rt::{entry, exception, ExceptionFrame};
use static_cell::StaticCell;

type Rx = uart::Rx<board::Uart>;
type Tx = uart::Tx<board::Uart>;

#[entry]
fn main() -> ! {
    stack::paint();
    board::init();
    say!(
        "{} up, built for {}",
        board::DEVICE,
        env!("BC26_QEMU_TARGET")
    );
    calibrate();
    let config = config::load(out::cmdline());
    say!(
        "broker {}:{}, client {}, topics {}",
        config.broker.host,
        config.broker.port,
        config.broker.client_id,
        config.topics.command
    );
    let (rx, tx) = uart::split::<board::Uart>();
    exec::run(|spawner| spawner.spawn(app_task(rx, tx, config).unwrap()))
}

/// Counts the emulated time a loop of a known number of instructions takes,
/// so that the host can check that `busy_ns` counts instructions (it does
/// under `-icount shift=0`: one nanosecond per instruction).
fn calibrate() {
    const LOOPS: u32 = 100_000;
    let before = exec::busy_ns();
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
    let after = exec::busy_ns();
    say!(
        "calibration: {} instructions in {} ns",
        2 * LOOPS,
        after - before
    );
}

/// The driver's, the supervisor's and the application's memory, in `.bss`.
static STATE: StaticCell<AppState> = StaticCell::new();

/// The application's [`Device`]: the LED, and the reports to the host. The
/// reports' own cost is taken out of the `busy_ns` they show.
struct Board {
    /// CPU time the reports themselves took.
    reporting_ns: u64,
}

impl Board {
    fn report(&mut self, what: core::fmt::Arguments<'_>) {
        let busy = exec::busy_ns();
        let (stack, size) = stack::peak();
        let (bytes, reads) = uart::rx_stats();
        say!(
            "{} busy_ns={} up_ns={} stack={}/{} rx={}/{}",
            what,
            busy - self.reporting_ns,
            exec::ticks_to_ns(board::now()),
            stack,
            size,
            bytes,
            reads
        );
        self.reporting_ns += exec::busy_ns() - busy;
    }
}

impl Device for Board {
    fn set_led(&mut self, on: bool) {
        board::set_led(on);
        self.report(format_args!("led {}", if on { "on" } else { "off" }));
    }

    fn status(&mut self, status: Status) {
        self.report(format_args!("status {:?}", status));
    }
}

/// The application and the driver, in one task.
#[embassy_executor::task]
async fn app_task(rx: Rx, tx: Tx, config: &'static AppConfig<'static>) -> ! {
    let state = STATE.init_with(AppState::new);
    let mut board = Board { reporting_ns: 0 };
    let app = bc26_example_app::run(state, rx, tx, config, &mut board);
    say!(
        "the application's future: {} bytes",
        core::mem::size_of_val(&app)
    );
    app.await
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
