//! BC26 MQTT example for an STM32L476RG Nucleo-64 (embassy-stm32).
//!
//! Wiring (see the README ("Board examples")): USART1 at 115200 8N1,
//! PA9 (Arduino D8) = MCU TX -> BC26 RXD, PA10 (Arduino D2) = MCU RX <- BC26 TXD,
//! GND to GND. LD2 (PA5) is the LED the `led` commands switch.
//!
//! The application (start-up, registration, MQTT session, telemetry, commands,
//! recovery) is `bc26-example-app`, the same code the host tests run; this file
//! only sets up the HAL. With the `no-mqtt` feature it builds the same HAL,
//! executor, UART and defmt setup without the driver and the application, as
//! the baseline of the footprint table.
#![no_std]
#![no_main]

use defmt::{info, unwrap};
use embassy_executor::Spawner;
use embassy_stm32::gpio::{Level, Output, Speed};
use embassy_stm32::usart::{self, BufferedUart, BufferedUartRx, BufferedUartTx};
use embassy_stm32::{bind_interrupts, peripherals};
use static_cell::StaticCell;
use {defmt_rtt as _, panic_probe as _};

bind_interrupts!(struct Irqs {
    USART1 => usart::BufferedInterruptHandler<peripherals::USART1>;
});

/// UART buffers: the driver reads continuously, so 1 KiB of receive buffer
/// covers more than 80 ms of traffic at 115200 baud.
static TX_BUF: StaticCell<[u8; 256]> = StaticCell::new();
static RX_BUF: StaticCell<[u8; 1024]> = StaticCell::new();

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    let p = embassy_stm32::init(Default::default());
    info!("BC26 MQTT example on an STM32L476RG Nucleo");

    let led = Output::new(p.PA5, Level::Low, Speed::Low);
    let mut config = usart::Config::default();
    config.baudrate = 115_200;
    let uart = unwrap!(BufferedUart::new(
        p.USART1,
        p.PA10,
        p.PA9,
        TX_BUF.init([0; 256]),
        RX_BUF.init([0; 1024]),
        Irqs,
        config,
    ));
    let (tx, rx) = uart.split();
    spawner.spawn(unwrap!(app_task(rx, tx, led)));
}

#[cfg(not(feature = "no-mqtt"))]
mod app {
    use bc26_example_app::{AppConfig, AppState, Device, Status};
    use embassy_stm32::gpio::Output;
    use static_cell::StaticCell;

    /// Build-time settings: `BC26_BROKER_HOST=... cargo run --release`
    /// (`bc26_example_app::board_config!` says the rest).
    const DEVICE: &str = "nucleo-l476";
    pub const CONFIG: AppConfig<'static> =
        bc26_example_app::board_config!("nucleo-l476", 0x5EED_0001);

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
            self.led.set_level(on.into());
        }

        fn status(&mut self, status: Status) {
            defmt::info!("[{}] {}", DEVICE, status);
        }
    }
}

/// The application and the driver, in one task.
#[cfg(not(feature = "no-mqtt"))]
#[embassy_executor::task]
async fn app_task(
    rx: BufferedUartRx<'static>,
    tx: BufferedUartTx<'static>,
    led: Output<'static>,
) -> ! {
    let state = app::STATE.init(bc26_example_app::AppState::new());
    let mut board = app::Board { led };
    bc26_example_app::run(state, rx, tx, &app::CONFIG, &mut board).await
}

/// Baseline for the footprint table: the application's UART traffic pattern
/// without the driver (`bc26_example_app::board::baseline`).
#[cfg(feature = "no-mqtt")]
#[embassy_executor::task]
async fn app_task(
    rx: BufferedUartRx<'static>,
    tx: BufferedUartTx<'static>,
    mut led: Output<'static>,
) -> ! {
    bc26_example_app::board::baseline(rx, tx, || led.toggle()).await
}
