//! The application's harness: the shared test kit (`testkit/`) with its
//! auto-answering fake BC26, the board's log, and millisecond timings.
#![allow(dead_code)]

use core::cell::RefCell;
use core::future::Future;
use std::boxed::Box;
use std::vec::Vec;

use bc26_example_app::{AppConfig, AppState, Broker, Device, Status, Timing, Topics};
use bc26_mqtt::ClientId;
pub use bc26_testkit::auto::{AutoModem, Script};
pub use bc26_testkit::run;
use bc26_testkit::{TxPipe, WirePipe};
use embassy_futures::select::{select3, Either3};
use embassy_sync::pipe::Pipe;
use embassy_time::Duration;

pub const TELEMETRY: &str = "dev/telemetry";
pub const COMMAND: &str = "dev/cmd";
pub const STATUS: &str = "dev/status";
pub const ACK: &str = "dev/ack";

/// Millisecond timing; telemetry effectively off (tests that want it set it).
pub fn config() -> AppConfig<'static> {
    AppConfig {
        broker: Broker {
            host: "broker.example",
            port: 1883,
            client_id: "dev-1",
            username: Some("user"),
            password: Some("secret"),
        },
        topics: Topics {
            telemetry: TELEMETRY,
            command: COMMAND,
            status: STATUS,
            ack: ACK,
        },
        client: ClientId::new(0).unwrap(),
        keepalive_s: 60,
        pkt_timeout_s: 5,
        retry_times: 2,
        timing: Timing {
            modem_deadline: Duration::from_secs(2),
            poll_interval: Duration::from_millis(5),
            registration_deadline: Duration::from_millis(100),
            telemetry_period: Duration::from_secs(3600),
            backoff_min: Duration::from_millis(40),
            backoff_max: Duration::from_millis(100),
            stable_after: Duration::from_millis(300),
            health_check: Duration::from_secs(3600),
        },
        driver: bc26_mqtt::Config::new()
            .command_timeout(Duration::from_millis(300))
            .open_timeout(Duration::from_millis(500))
            .close_timeout(Duration::from_millis(500))
            .packet_deadline(Duration::from_millis(500))
            .quiet_gap(Duration::from_millis(20)),
        seed: 1,
    }
}

/// What the application told the board.
#[derive(Default)]
pub struct DeviceLog {
    pub led: Vec<bool>,
    pub status: Vec<Status>,
}

pub struct TestDevice(pub &'static RefCell<DeviceLog>);

impl Device for TestDevice {
    fn set_led(&mut self, on: bool) {
        self.0.borrow_mut().led.push(on);
    }
    fn status(&mut self, status: Status) {
        let mut log = self.0.borrow_mut();
        // Each change once (the supervisor reports every state).
        if log.status.last() != Some(&status) {
            log.status.push(status);
        }
    }
}

/// The application, the fake modem and the board's log.
pub struct Harness {
    pub fake: &'static AutoModem,
    pub device: &'static RefCell<DeviceLog>,
    state: &'static mut AppState,
    to_modem: &'static TxPipe,
    to_host: &'static WirePipe,
}

impl Harness {
    pub fn new() -> Self {
        let to_modem: &'static TxPipe = Box::leak(Box::new(Pipe::new()));
        let to_host: &'static WirePipe = Box::leak(Box::new(Pipe::new()));
        Self {
            fake: Box::leak(Box::new(AutoModem::new(to_modem, to_host))),
            device: Box::leak(Box::new(RefCell::new(DeviceLog::default()))),
            state: Box::leak(Box::new(AppState::new())),
            to_modem,
            to_host,
        }
    }

    /// Runs the application (from power-on) and the fake modem beside
    /// `body`; returns when `body` does.
    pub async fn run<F: Future>(self, config: AppConfig<'static>, body: F) -> F::Output {
        let config: &'static AppConfig<'static> = Box::leak(Box::new(config));
        let mut device = TestDevice(self.device);
        let app =
            bc26_example_app::run(self.state, self.to_host, self.to_modem, config, &mut device);
        match select3(app, self.fake.serve(), body).await {
            Either3::First(never) | Either3::Second(never) => never,
            Either3::Third(out) => out,
        }
    }

    /// [`run`](Self::run) with the telemetry journalled in `region` of
    /// `flash` (`bc26_example_app::run_with_flash`).
    #[cfg(feature = "flash-outbox")]
    pub async fn run_with_flash<F: Future>(
        self,
        config: AppConfig<'static>,
        flash: bc26_testkit::flash::FlashDouble<4096>,
        region: core::ops::Range<u32>,
        body: F,
    ) -> F::Output {
        let config: &'static AppConfig<'static> = Box::leak(Box::new(config));
        let mut device = TestDevice(self.device);
        let app = bc26_example_app::run_with_flash(
            self.state,
            self.to_host,
            self.to_modem,
            config,
            &mut device,
            flash,
            region,
        );
        match select3(app, self.fake.serve(), body).await {
            Either3::First(never) | Either3::Second(never) => never,
            Either3::Third(out) => out,
        }
    }
}

/// The lines the host sends to bring up one MQTT link with [`config`], after
/// `AT`, `ATE0` and the registration polls.
pub fn link_lines() -> Vec<&'static str> {
    vec![
        "AT+QMTCFG=\"keepalive\",0,60",
        "AT+QMTCFG=\"session\",0,1",
        "AT+QMTCFG=\"timeout\",0,5,2,0",
        "AT+QMTCFG=\"will\",0,1,1,1,\"dev/status\",\"offline\"",
        "AT+QMTCFG=\"dataformat\",0,0,1",
        "AT+QMTOPEN=0,\"broker.example\",1883",
        "AT+QMTCONN=0,\"dev-1\",\"user\",\"secret\"",
        "AT+QMTSUB=0,1,\"dev/cmd\",1",
    ]
}
