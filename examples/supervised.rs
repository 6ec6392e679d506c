//! A client kept online by the driver's supervisor, on a real BC26 behind a
//! USB serial adapter: telemetry every 10 s at QoS 1 (delivered at least
//! once, across link losses), commands printed as they arrive.
//!
//! ```text
//! cargo run --example supervised -- /dev/ttyUSB0 broker.hivemq.com 1883
//! ```
//!
//! The part between the `supervised` markers is the crate documentation's
//! "Keeping a client online", word for word (a test checks it); `device`
//! below shows the outbox and the events in use.

use bc26_host::serial::{self, Rx, Tx};
use bc26_mqtt::{Config, State};
use embassy_executor::Spawner;
use static_cell::StaticCell;

static STATE: StaticCell<State> = StaticCell::new();

#[embassy_executor::task]
async fn modem_task(runner: bc26_mqtt::Runner<'static, Rx, Tx>) -> ! {
    runner.run().await
}

// supervised begin
use bc26_mqtt::supervisor::{self, Link, Supervisor, SupervisorConfig, SupervisorState};
use bc26_mqtt::{ClientId, Modem, QoS, Subscription};

/// The outbox (4 KiB by default) and the supervisor's state, in a static.
static SUPERVISOR: StaticCell<SupervisorState> = StaticCell::new();
/// What the supervisor subscribes to after every connect.
static SUBSCRIPTIONS: [Subscription<'static>; 1] =
    [Subscription::new("bc26/demo/cmd", QoS::AtLeastOnce)];

/// The supervisor's task: keeps client 0 online for ever.
#[embassy_executor::task]
async fn supervisor_task(supervisor: Supervisor<'static>) -> ! {
    supervisor.run().await
}

/// Starts the supervisor for client 0; returns its handle.
fn supervise(
    spawner: Spawner,
    modem: Modem<'static>,
    host: &'static str,
    port: u16,
) -> Link<'static> {
    let mut config =
        SupervisorConfig::new(ClientId::new(0).unwrap(), host, port, "bc26-supervised");
    config.subscriptions = &SUBSCRIPTIONS;
    config.backoff = config.backoff.seed(0x1234_5678); // each device its own
    let (link, supervisor) =
        supervisor::new(modem, SUPERVISOR.init(SupervisorState::new()), config);
    spawner.spawn(supervisor_task(supervisor).expect("one supervisor task"));
    link
}
// supervised end

use bc26_mqtt::{Event, MESSAGE_MAX};
use embassy_futures::select::{select, Either};
use embassy_time::Timer;

/// Telemetry through the outbox; commands from the events.
async fn device(modem: Modem<'static>, link: Link<'static>) -> Result<(), bc26_mqtt::Error> {
    let mut events = modem.events()?;
    let mut buf = [0u8; MESSAGE_MAX];
    let mut seq = 0u32;
    loop {
        match select(Timer::after_secs(10), events.next(&mut buf)).await {
            Either::First(()) => {
                seq += 1;
                let payload = format!("{{\"seq\":{seq}}}");
                // Stored at once; goes out when the link is up, at least once.
                match link.try_publish(
                    "bc26/demo/telemetry",
                    payload.as_bytes(),
                    QoS::AtLeastOnce,
                    false,
                ) {
                    Ok(ticket) => println!("telemetry {seq} stored as msgID {}", ticket.msg_id),
                    Err(e) => println!("telemetry {seq} not stored: {e}"),
                }
                println!("link {:?}, {:?}", link.state(), link.counters());
            }
            Either::Second(Event::Message(m)) => {
                println!("{} <- {:?}", m.topic, core::str::from_utf8(m.payload))
            }
            Either::Second(_) => {}
        }
    }
}

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        eprintln!("usage: supervised SERIAL_DEVICE BROKER_HOST BROKER_PORT");
        std::process::exit(2);
    }
    let (rx, tx) = match serial::open(&args[1], 115200) {
        Ok(halves) => halves,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    let (modem, runner) = bc26_mqtt::new(STATE.init(State::new()), rx, tx, Config::new())
        .expect("the default Config is consistent");
    spawner.spawn(modem_task(runner).expect("one modem task"));
    let host: &'static str = Box::leak(args[2].clone().into_boxed_str());
    let port = args[3].parse().expect("port");
    let link = supervise(spawner, modem, host, port);
    if let Err(e) = device(modem, link).await {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
