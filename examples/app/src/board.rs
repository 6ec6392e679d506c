//! What the board examples (`examples/stm32`, `examples/nrf`) share beyond
//! [`run`](crate::run): their settings, named after the device
//! ([`board_config!`](crate::board_config)), and the baseline of the
//! footprint table ([`baseline`]), so that a board's `main.rs` only sets up
//! its HAL.

use bc26_mqtt::ClientId;
use embassy_time::{with_timeout, Duration};
use embedded_io_async::{Read, Write};

use crate::{AppConfig, Broker, Timing, Topics};

/// The settings of a board example: the public test broker unless the build
/// names another (`BC26_BROKER_HOST=... cargo build --release`: read by
/// [`board_config!`](crate::board_config) where the board is compiled),
/// port 1883 without credentials, client 0, keep-alive 120 s, packet timeout
/// 10 s with 3 retransmissions, the default timings and driver timeouts.
/// `seed`: the back-off's jitter; give each device its own (e.g. from the
/// MCU's unique ID) so that a fleet does not reconnect in step after an
/// outage.
pub const fn config(
    host: &'static str,
    client_id: &'static str,
    topics: Topics<'static>,
    seed: u32,
) -> AppConfig<'static> {
    AppConfig {
        broker: Broker {
            host,
            port: 1883,
            client_id,
            username: None,
            password: None,
        },
        topics,
        client: match ClientId::new(0) {
            Ok(c) => c,
            Err(_) => panic!(),
        },
        keepalive_s: 120,
        pkt_timeout_s: 10,
        retry_times: 3,
        timing: Timing::new(),
        driver: bc26_mqtt::Config::new(),
        seed,
    }
}

/// A board example's [`AppConfig`] from the device's name: client id
/// `bc26-example-<device>`, topics `bc26-example/<device>/telemetry`,
/// `.../cmd`, `.../status` and `.../ack`, the broker `BC26_BROKER_HOST` (at
/// build time) or `test.mosquitto.org`; the rest as [`board::config`](crate::board::config) says.
///
/// ```
/// const CONFIG: bc26_example_app::AppConfig<'static> =
///     bc26_example_app::board_config!("nucleo-l476", 0x5EED_0001);
/// assert_eq!(CONFIG.broker.client_id, "bc26-example-nucleo-l476");
/// assert_eq!(CONFIG.topics.command, "bc26-example/nucleo-l476/cmd");
/// ```
#[macro_export]
macro_rules! board_config {
    ($device:literal, $seed:expr) => {
        $crate::board::config(
            match option_env!("BC26_BROKER_HOST") {
                Some(h) => h,
                None => "test.mosquitto.org",
            },
            concat!("bc26-example-", $device),
            $crate::Topics {
                telemetry: concat!("bc26-example/", $device, "/telemetry"),
                command: concat!("bc26-example/", $device, "/cmd"),
                status: concat!("bc26-example/", $device, "/status"),
                ack: concat!("bc26-example/", $device, "/ack"),
            },
            $seed,
        )
    };
}

/// The baseline of the footprint table (a board's `no-mqtt` build): the
/// same UART traffic pattern as the application (an `AT` a second, read
/// what comes back, blink) without the driver, so that the difference
/// between the two images is what the driver and the application cost.
pub async fn baseline<R: Read, W: Write>(mut rx: R, mut tx: W, mut toggle_led: impl FnMut()) -> ! {
    let mut buf = [0u8; 64];
    loop {
        if tx.write_all(b"AT\r").await.is_err() {
            warn!("UART write failed");
        }
        match with_timeout(Duration::from_secs(1), rx.read(&mut buf)).await {
            Ok(Ok(n)) => info!("modem: {=[u8]:a}", buf[..n]),
            Ok(Err(_)) => warn!("UART read failed"),
            Err(_) => info!("no answer"),
        }
        toggle_led();
    }
}
