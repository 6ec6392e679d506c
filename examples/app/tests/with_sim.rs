//! The application the boards run, against the BC26 simulator and a real MQTT
//! broker, checked from outside by an independent MQTT client: the logic CI
//! exercises end to end is the logic the boards run.

use core::future::Future;
use core::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration as StdDuration;

use bc26_example_app::{AppConfig, AppState, Broker, Device, Timing, Topics};
use bc26_mqtt::ClientId;
use bc26_sim::broker::{broker, Peer};
use bc26_sim::{HostSide, Sim, SimConfig};
use embassy_executor::Executor;
use embassy_time::Duration;

struct Board;
impl Device for Board {
    fn set_led(&mut self, _on: bool) {}
}

#[embassy_executor::task]
async fn app_task(fut: Pin<Box<dyn Future<Output = ()>>>) {
    fut.await
}

fn text(p: &bc26_sim::broker::Publish) -> String {
    String::from_utf8_lossy(&p.payload).into_owned()
}

#[test]
fn the_application_runs_telemetry_commands_and_recovery_against_the_simulator() {
    let b = broker();
    let base = format!("app-e2e/{}", std::process::id());
    let topics: &'static [String; 4] = Box::leak(Box::new(
        ["telemetry", "cmd", "status", "ack"].map(|t| format!("{base}/{t}")),
    ));
    let peer = Peer::new(b, &format!("{base}-peer").replace('/', "-"));
    peer.subscribe(&format!("{base}/#"), 1);

    let (sim, HostSide { reader, writer }) = Sim::start(SimConfig::default());

    let config: &'static AppConfig<'static> = Box::leak(Box::new(AppConfig {
        broker: Broker {
            host: Box::leak(b.host.clone().into_boxed_str()),
            port: b.port,
            client_id: Box::leak(format!("{base}-dev").replace('/', "-").into_boxed_str()),
            username: None,
            password: None,
        },
        topics: Topics {
            telemetry: &topics[0],
            command: &topics[1],
            status: &topics[2],
            ack: &topics[3],
        },
        client: ClientId::new(0).unwrap(),
        keepalive_s: 60,
        pkt_timeout_s: 5,
        retry_times: 2,
        timing: Timing {
            modem_deadline: Duration::from_secs(5),
            poll_interval: Duration::from_millis(20),
            registration_deadline: Duration::from_secs(2),
            telemetry_period: Duration::from_millis(300),
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_millis(200),
            stable_after: Duration::from_secs(1),
            health_check: Duration::from_secs(1),
        },
        driver: bc26_mqtt::Config::new()
            .command_timeout(Duration::from_millis(500))
            .open_timeout(Duration::from_secs(5))
            .quiet_gap(Duration::from_millis(50)),
        seed: std::process::id(),
    }));

    // The board: driver and application in one task, on embassy's std executor.
    let stop: &'static AtomicBool = Box::leak(Box::new(AtomicBool::new(false)));
    let board = std::thread::spawn(move || {
        let executor: &'static mut Executor = Box::leak(Box::new(Executor::new()));
        let state: &'static mut AppState = Box::leak(Box::new(AppState::new()));
        let device: &'static mut Board = Box::leak(Box::new(Board));
        let fut: Pin<Box<dyn Future<Output = ()>>> =
            Box::pin(
                async move { bc26_example_app::run(state, reader, writer, config, device).await },
            );
        executor.run_until(
            |s| s.spawn(app_task(fut).expect("task")),
            || stop.load(Ordering::SeqCst),
        );
    });

    // Seen from outside: online, then telemetry every period.
    let next_on = |topic: &str| loop {
        let p = peer.recv();
        if p.topic == topic {
            return p;
        }
    };
    assert_eq!(text(&next_on(&topics[2])), "online");
    let t1 = text(&next_on(&topics[0]));
    assert!(
        t1.starts_with("{\"seq\":") && t1.contains("\"reconnects\":0"),
        "{t1}"
    );

    // A command round trip.
    peer.publish(&topics[1], 1, b"ping");
    assert_eq!(text(&next_on(&topics[3])), "pong");

    // The link breaks: the broker publishes the will, the device sees
    // +QMTSTAT, backs off, reconnects and says so.
    sim.break_link(0);
    assert_eq!(text(&next_on(&topics[2])), "offline");
    assert_eq!(text(&next_on(&topics[2])), "online");
    let t2 = loop {
        let t = text(&next_on(&topics[0]));
        if t.contains("\"reconnects\":1") {
            break t;
        }
    };
    assert!(t2.contains("\"commands\":1"), "{t2}");

    stop.store(true, Ordering::SeqCst);
    board.join().expect("the board thread");
    // Leave no retained status behind on a shared broker.
    peer.client
        .publish(&topics[2], bc26_sim::broker::qos_of(1), true, Vec::new())
        .unwrap();
    std::thread::sleep(StdDuration::from_millis(100));
}
