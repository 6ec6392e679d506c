//! BC26 MQTT example for an nRF52840 DK (embassy-nrf).
//!
//! Wiring (see the README ("Board examples")): UARTE0 at 115200 8N1,
//! P1.02 (Arduino D1) = MCU TX -> BC26 RXD, P1.01 (Arduino D0) = MCU RX <- BC26 TXD,
//! GND to GND. LED1 (P0.13, active low) is the LED the `led` commands switch.
//!
//! The application (start-up, registration, MQTT session, telemetry, commands,
//! recovery) is `bc26-example-app`, the same code the host tests run; this file
//! only sets up the HAL. With the `no-mqtt` feature it builds the same HAL,
//! executor, UART and defmt setup without the driver and the application, as
//! the baseline of the footprint table. With the `flash-outbox` feature the
//! telemetry is journalled in the OUTBOX region of `memory.x` (examples/README.md,
//! "The flash outbox").
#![no_std]
#![no_main]

use defmt::{info, unwrap};
use embassy_executor::Spawner;
use embassy_nrf::buffered_uarte::{self, BufferedUarte, BufferedUarteRx, BufferedUarteTx};
use embassy_nrf::gpio::{Level, Output, OutputDrive};
use embassy_nrf::{bind_interrupts, peripherals, uarte};
use static_cell::StaticCell;
use {defmt_rtt as _, panic_probe as _};

bind_interrupts!(struct Irqs {
    UARTE0 => buffered_uarte::InterruptHandler<peripherals::UARTE0>;
});

/// UART buffers: the driver reads continuously, so 1 KiB of receive buffer
/// covers more than 80 ms of traffic at 115200 baud. With the flash outbox,
/// 2 KiB: a page erase stalls the CPU for up to 85 ms (980 bytes at 115200
/// baud) and no interrupt runs; the UARTE's EasyDMA goes on into the half of
/// the ring it was filling, then into the other half, which the interrupt
/// armed before. Half the ring must hold a stall's bytes
/// (examples/README.md, "The flash outbox").
static TX_BUF: StaticCell<[u8; 256]> = StaticCell::new();
static RX_BUF: StaticCell<[u8; RX_BYTES]> = StaticCell::new();
const RX_BYTES: usize = if cfg!(feature = "flash-outbox") {
    2048
} else {
    1024
};

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    let p = embassy_nrf::init(Default::default());
    info!("BC26 MQTT example on an nRF52840 DK");

    // LED1 is active low: high is off.
    let led = Output::new(p.P0_13, Level::High, OutputDrive::Standard);
    let mut config = uarte::Config::default();
    config.parity = uarte::Parity::Excluded;
    config.baudrate = uarte::Baudrate::Baud115200;
    let uart = BufferedUarte::new(
        p.UARTE0,
        p.TIMER0,
        p.PPI_CH0,
        p.PPI_CH1,
        p.PPI_GROUP0,
        p.P1_01,
        p.P1_02,
        Irqs,
        config,
        RX_BUF.init([0; RX_BYTES]),
        TX_BUF.init([0; 256]),
    );
    let (rx, tx) = uart.split();
    #[cfg(not(all(feature = "flash-outbox", not(feature = "no-mqtt"))))]
    spawner.spawn(unwrap!(app_task(rx, tx, led)));
    #[cfg(all(feature = "flash-outbox", not(feature = "no-mqtt")))]
    spawner.spawn(unwrap!(app_task(
        rx,
        tx,
        led,
        embassy_nrf::nvmc::Nvmc::new(p.NVMC)
    )));
}

#[cfg(not(feature = "no-mqtt"))]
mod app {
    use bc26_example_app::{AppConfig, AppState, Device, Status};
    use embassy_nrf::gpio::Output;
    use static_cell::StaticCell;

    /// Build-time settings: `BC26_BROKER_HOST=... cargo run --release`
    /// (`bc26_example_app::board_config!` says the rest).
    const DEVICE: &str = "nrf52840-dk";
    pub const CONFIG: AppConfig<'static> =
        bc26_example_app::board_config!("nrf52840-dk", 0x5EED_0001);

    // The driver refuses a Config whose values contradict each other: check
    // it when the firmware is built, not when it starts.
    const _: () = assert!(CONFIG.driver.validate().is_ok(), "inconsistent driver Config");

    /// The driver's, the supervisor's and the application's memory, in `.bss`.
    pub static STATE: StaticCell<AppState> = StaticCell::new();

    pub struct Board {
        pub led: Output<'static>,
    }

    impl Device for Board {
        fn set_led(&mut self, on: bool) {
            // Active low.
            self.led.set_level((!on).into());
        }

        fn status(&mut self, status: Status) {
            defmt::info!("[{}] {}", DEVICE, status);
        }
    }
}

/// The application and the driver, in one task.
#[cfg(not(any(feature = "no-mqtt", feature = "flash-outbox")))]
#[embassy_executor::task]
async fn app_task(
    rx: BufferedUarteRx<'static>,
    tx: BufferedUarteTx<'static>,
    led: Output<'static>,
) -> ! {
    let state = app::STATE.init(bc26_example_app::AppState::new());
    let mut board = app::Board { led };
    bc26_example_app::run(state, rx, tx, &app::CONFIG, &mut board).await
}

/// The OUTBOX region of `memory.x`: the flash outbox's pages.
#[cfg(all(feature = "flash-outbox", not(feature = "no-mqtt")))]
mod outbox {
    use core::ops::Range;

    extern "C" {
        // Linker symbols (memory.x): only their addresses are used, taken
        // with `&raw const`, which reads nothing (safe for an extern static).
        static __outbox_start: u8;
        static __outbox_end: u8;
    }

    /// The region as offsets in the NVMC's flash, which starts at address 0.
    pub fn region() -> Range<u32> {
        (&raw const __outbox_start) as u32..(&raw const __outbox_end) as u32
    }
}

/// The application and the driver in one task, the telemetry journalled in
/// the OUTBOX region through the NVMC (blocking: it stalls the CPU anyway;
/// `BlockingAsync` gives it the async traits the driver takes).
#[cfg(all(feature = "flash-outbox", not(feature = "no-mqtt")))]
#[embassy_executor::task]
async fn app_task(
    rx: BufferedUarteRx<'static>,
    tx: BufferedUarteTx<'static>,
    led: Output<'static>,
    nvmc: embassy_nrf::nvmc::Nvmc<'static>,
) -> ! {
    let state = app::STATE.init(bc26_example_app::AppState::new());
    let mut board = app::Board { led };
    let flash = embassy_embedded_hal::adapter::BlockingAsync::new(nvmc);
    bc26_example_app::run_with_flash(
        state,
        rx,
        tx,
        &app::CONFIG,
        &mut board,
        flash,
        outbox::region(),
    )
    .await
}

/// Baseline for the footprint table: the application's UART traffic pattern
/// without the driver (`bc26_example_app::board::baseline`).
#[cfg(feature = "no-mqtt")]
#[embassy_executor::task]
async fn app_task(
    rx: BufferedUarteRx<'static>,
    tx: BufferedUarteTx<'static>,
    mut led: Output<'static>,
) -> ! {
    bc26_example_app::board::baseline(rx, tx, || led.toggle()).await
}
