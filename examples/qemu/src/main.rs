//! BC26 MQTT example for QEMU's emulated boards:
//!
//! - feature `lm3s6965` (the default), `-machine lm3s6965evb`: built for
//!   `thumbv7m-none-eabi` it runs on the board's Cortex-M3; built for
//!   `thumbv6m-none-eabi` (no compare-and-swap: critical sections instead)
//!   on a Cortex-M0 core in its place (`-cpu cortex-m0`);
//! - feature `microbit`, `-machine microbit`: the nRF51822 (Cortex-M0,
//!   16 KiB of RAM), `thumbv6m-none-eabi`, with the application's small
//!   configuration.
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

use bc26_example_app::{AppConfig, Device, Status};
use bc26_example_qemu::{board, calibrate, config, exec, out, say, stack, uart, Rx, Tx};
use cortex_m_rt::entry;
use static_cell::ConstStaticCell;

/// The application's memory: the default sizes, or (feature `small`) the
/// small configuration: one subscription, `+QMTRECV` lines up to 640 bytes
/// (a 256-byte payload in hex and a topic of up to 100 bytes), one message
/// waiting for the application, one publish in flight, and four messages of
/// a 64-byte topic and a 256-byte payload in the outbox.
#[cfg(not(feature = "small"))]
type AppState = bc26_example_app::AppState;
#[cfg(feature = "small")]
type AppState = bc26_example_app::AppState<640, 1024, 384, 10, 1, 1, 1344>;

#[entry]
fn main() -> ! {
    stack::paint();
    board::init();
    say!(
        "{} up, built for {}",
        board::DEVICE,
        env!("BC26_QEMU_TARGET")
    );
    bc26_example_qemu::say_memory();
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
    say!(
        "the application's memory: {} bytes (the driver's State, the supervisor's, the subscription)",
        core::mem::size_of::<AppState>()
    );
    exec::run(|spawner| spawn(spawner, rx, tx, config))
}

/// The driver's runner in a task of its own: a UART read wakes it alone
/// (README, "The cost of a UART read"), not the supervisor and the
/// application too.
#[cfg(not(feature = "small"))]
fn spawn(spawner: embassy_executor::Spawner, rx: Rx, tx: Tx, config: &'static AppConfig<'static>) {
    let (runner, app) = bc26_example_app::split(STATE.take(), rx, tx, config);
    spawner.spawn(runner_task(runner).unwrap());
    spawner.spawn(app_task(app).unwrap());
}

/// The small configuration keeps the three in one task, as
/// `bc26_example_app::run` runs them: two tasks took 4.5 KB more RAM on the
/// micro:bit (each task's future keeps its argument beside the future it
/// awaits, and the application's was built on the stack when it was
/// spawned: 17,976 bytes in all, README "The micro:bit"), more than its
/// 16 KiB.
#[cfg(feature = "small")]
fn spawn(spawner: embassy_executor::Spawner, rx: Rx, tx: Tx, config: &'static AppConfig<'static>) {
    spawner.spawn(one_task(rx, tx, config).unwrap());
}

/// The driver's, the supervisor's and the application's memory, made at
/// compile time (`AppState::new` is a `const fn`). Not `StaticCell::init_with`
/// in the task: LLVM built the state on the stack, in the task's poll frame,
/// and copied it (a 15.5 KB frame, most of it the state's arrays; see
/// README, "Stack").
static STATE: ConstStaticCell<AppState> = ConstStaticCell::new(AppState::new());

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

/// The driver's runner.
#[cfg(not(feature = "small"))]
#[embassy_executor::task]
async fn runner_task(runner: bc26_mqtt::Runner<'static, Rx, Tx>) -> ! {
    runner.run().await
}

/// The supervisor and the application.
#[cfg(not(feature = "small"))]
#[embassy_executor::task]
async fn app_task(app: bc26_example_app::AppTask) -> ! {
    let mut board = Board { reporting_ns: 0 };
    // Pinned where it is made: awaiting a future held in a local would keep
    // it twice in this task's future (the local and the awaited copy).
    let app = core::pin::pin!(app.run(&mut board));
    say!(
        "the application's future: {} bytes",
        core::mem::size_of_val(&*app)
    );
    app.await
}

/// The application and the driver, in one task.
#[cfg(all(feature = "small", not(feature = "flash-outbox")))]
#[embassy_executor::task]
async fn one_task(rx: Rx, tx: Tx, config: &'static AppConfig<'static>) -> ! {
    let state = STATE.take();
    let mut board = Board { reporting_ns: 0 };
    // Pinned where it is made: awaiting a future held in a local would keep
    // it twice in this task's future (the local and the awaited copy).
    let app = core::pin::pin!(bc26_example_app::run(state, rx, tx, config, &mut board));
    say!(
        "the application's future: {} bytes",
        core::mem::size_of_val(&*app)
    );
    app.await
}

/// The OUTBOX region of `memory.x` (build.rs): the flash outbox's pages.
#[cfg(feature = "flash-outbox")]
fn outbox_region() -> core::ops::Range<u32> {
    extern "C" {
        // Linker symbols: only their addresses are used, taken with
        // `&raw const`, which reads nothing (safe for an extern static).
        static __outbox_start: u8;
        static __outbox_end: u8;
    }
    (&raw const __outbox_start) as u32..(&raw const __outbox_end) as u32
}

/// The application and the driver in one task, the telemetry journalled in
/// the OUTBOX region through the nRF51's NVMC (src/nvmc.rs).
#[cfg(feature = "flash-outbox")]
#[embassy_executor::task]
async fn one_task(rx: Rx, tx: Tx, config: &'static AppConfig<'static>) -> ! {
    use bc26_example_qemu::nvmc::{Async, Nvmc};
    let state = STATE.take();
    let mut board = Board { reporting_ns: 0 };
    let region = outbox_region();
    say!("flash outbox: {:#x}..{:#x}", region.start, region.end);
    let app = core::pin::pin!(bc26_example_app::run_with_flash(
        state,
        rx,
        tx,
        config,
        &mut board,
        Async(Nvmc::new()),
        region,
    ));
    say!(
        "the application's future: {} bytes",
        core::mem::size_of_val(&*app)
    );
    app.await
}
