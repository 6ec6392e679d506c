//! Quick start: the driver on a real BC26 behind a USB serial adapter.
//!
//! ```text
//! cargo run --example quickstart -- /dev/ttyUSB0 broker.hivemq.com 1883
//! ```
//!
//! The part between the `quick-start` markers is the README's quick start,
//! word for word (a test checks it). The rest bridges a serial device file to
//! the driver on the host; on a board, the HAL's buffered UART takes its place.

use bc26_host::serial::{self, Rx, Tx};
use embassy_executor::Spawner;

// quick-start begin
use bc26_mqtt::{ClientId, Config, Event, Modem, QoS, Runner, State, MESSAGE_MAX};
use static_cell::StaticCell;

/// All of the driver's memory (at most 8 KiB: checked at compile time), in a static.
static STATE: StaticCell<State> = StaticCell::new();

/// The driver's one task: reads the modem, routes URCs, writes commands.
#[embassy_executor::task]
async fn modem_task(runner: Runner<'static, Rx, Tx>) -> ! {
    runner.run().await
}

/// Start the driver on the UART halves; returns the handle tasks share.
fn start(spawner: Spawner, uart_rx: Rx, uart_tx: Tx) -> Modem<'static> {
    // A Config whose values contradict each other is refused (Config::validate).
    let (modem, runner) = bc26_mqtt::new(STATE.init(State::new()), uart_rx, uart_tx, Config::new())
        .expect("the default Config is consistent");
    spawner.spawn(modem_task(runner).expect("one modem task"));
    modem
}

/// Open, connect, subscribe, publish, and print what arrives.
async fn mqtt(modem: Modem<'static>, host: &str, port: u16) -> Result<(), bc26_mqtt::Error> {
    let mut events = modem.events()?;
    let client = modem.client(ClientId::new(0)?);
    client.set_keepalive(120).await?;
    client.open(host, port).await?; // up to 75 s on NB-IoT
    client.connect("bc26-quickstart", None, None).await?;
    let granted = client
        .subscribe(&[("bc26/demo/cmd", QoS::AtLeastOnce)])
        .await?;
    println!("subscribed: {granted:?}");
    let sent = client
        .publish(
            "bc26/demo/telemetry",
            b"{\"temp\":21.5}",
            QoS::AtLeastOnce,
            false,
        )
        .await?;
    println!("published as msgID {}", sent.msg_id);
    let mut buf = [0u8; MESSAGE_MAX]; // a message is copied here: topic, then payload
    loop {
        match events.next(&mut buf).await {
            Event::Message(m) => println!("{} <- {:?}", m.topic, core::str::from_utf8(m.payload)),
            Event::LinkClosed { client, reason } => {
                println!("client {} lost its link: {reason:?}", client.get());
                return Ok(());
            }
            Event::Missed(n) => println!("missed {n} messages"),
            _ => {}
        }
    }
}
// quick-start end

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        eprintln!("usage: quickstart SERIAL_DEVICE BROKER_HOST BROKER_PORT");
        std::process::exit(2);
    }
    let (rx, tx) = match serial::open(&args[1], 115200) {
        Ok(halves) => halves,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    let modem = start(spawner, rx, tx);
    let port = args[3].parse().expect("port");
    if let Err(e) = mqtt(modem, &args[2], port).await {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
    std::process::exit(0);
}
