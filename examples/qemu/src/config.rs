//! The application's settings: built in, like the other boards' (broker from
//! `BC26_BROKER_HOST` at build time, else `test.mosquitto.org`), or given on
//! QEMU's command line, which the host test does:
//!
//! ```text
//! -append "broker=127.0.0.1:1883 id=dev-1 topics=qemu/dev-1 timing=test"
//! ```
//!
//! `topics=BASE` gives `BASE/telemetry`, `BASE/cmd`, `BASE/status`,
//! `BASE/ack`; `timing=test` gives delays of milliseconds instead of
//! seconds (as the host tests of the application use).

use core::fmt::Write;

use bc26_example_app::{AppConfig, Broker, Timing, Topics};
use bc26_mqtt::ClientId;
use embassy_time::Duration;
use static_cell::StaticCell;

use crate::board::{CLIENT_ID, DEVICE};

/// A topic: the base (the host test's `qemu-e2e/<pid>-<board>`, or the
/// built-in `bc26-example/<device>`) and a name of up to 9 bytes.
#[cfg(not(feature = "small"))]
type Topic = heapless::String<96>;
/// The small configuration keeps 4 x 48 bytes of topics (192 bytes of RAM
/// fewer): bases up to 38 bytes.
#[cfg(feature = "small")]
type Topic = heapless::String<48>;

const fn client() -> ClientId {
    match ClientId::new(0) {
        Ok(c) => c,
        Err(_) => panic!(),
    }
}

/// The settings for `cmdline` (empty: the built-in ones).
pub fn load(cmdline: &'static str) -> &'static AppConfig<'static> {
    static CONFIG: StaticCell<AppConfig<'static>> = StaticCell::new();
    static TOPICS: StaticCell<[Topic; 4]> = StaticCell::new();

    let mut broker = Broker {
        host: match option_env!("BC26_BROKER_HOST") {
            Some(h) => h,
            None => "test.mosquitto.org",
        },
        port: 1883,
        client_id: "",
        username: None,
        password: None,
    };
    let mut id = None;
    let mut base = None;
    let mut test_timing = false;
    for word in cmdline.split_ascii_whitespace() {
        match word.split_once('=') {
            Some(("broker", v)) => {
                let (host, port) = v.rsplit_once(':').unwrap_or((v, "1883"));
                broker.host = host;
                broker.port = port.parse().unwrap_or_else(|_| panic!("bad port in {}", v));
            }
            Some(("id", v)) => id = Some(v),
            Some(("topics", v)) => base = Some(v),
            Some(("timing", "test")) => test_timing = true,
            _ => panic!("unknown setting {}", word),
        }
    }

    let topics = TOPICS.init(Default::default());
    for (t, name) in topics.iter_mut().zip(["telemetry", "cmd", "status", "ack"]) {
        let r = match base {
            Some(b) => write!(t, "{b}/{name}"),
            None => write!(t, "bc26-example/{DEVICE}/{name}"),
        };
        r.unwrap_or_else(|_| panic!("topic too long"));
    }
    let [telemetry, command, status, ack] = &*topics;
    broker.client_id = id.unwrap_or(CLIENT_ID);

    let (timing, driver) = if test_timing {
        (
            // As examples/app/tests/with_sim.rs has them, but the health
            // check (`AT+QMTCONN?` while online) at its real period, so that
            // the test's measurement windows hold none.
            Timing {
                modem_deadline: Duration::from_secs(5),
                poll_interval: Duration::from_millis(20),
                registration_deadline: Duration::from_secs(2),
                telemetry_period: Duration::from_millis(300),
                backoff_min: Duration::from_millis(50),
                backoff_max: Duration::from_millis(200),
                stable_after: Duration::from_secs(1),
                health_check: Duration::from_secs(60),
            },
            bc26_mqtt::Config::new()
                .command_timeout(Duration::from_millis(500))
                .open_timeout(Duration::from_secs(5))
                .quiet_gap(Duration::from_millis(50)),
        )
    } else {
        (Timing::new(), bc26_mqtt::Config::new())
    };

    CONFIG.init(AppConfig {
        broker,
        topics: Topics {
            telemetry,
            command,
            status,
            ack,
        },
        client: client(),
        keepalive_s: if test_timing { 60 } else { 120 },
        pkt_timeout_s: if test_timing { 5 } else { 10 },
        retry_times: if test_timing { 2 } else { 3 },
        timing,
        driver,
        // One fixed seed: one emulated device.
        seed: 0x5EED_0003,
    })
}
