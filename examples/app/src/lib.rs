//! The application the board examples run, shared with the host tests.
//!
//! [`run`] takes the UART halves (any [`embedded_io_async::Read`] and
//! [`Write`]) and does what a field device does, on top of the driver's
//! [supervisor](bc26_mqtt::supervisor), which keeps MQTT client 0 online by
//! itself (the modem answers, it is registered, the client is configured,
//! opened, connected and subscribed to the command topic; every way the link
//! ends is noticed and followed by a back-off and a new attempt):
//!
//! 1. each time the link comes online, publishes `online` (retained) on the
//!    status topic; the will says `offline`;
//! 2. publishes a telemetry message every period, through the supervisor's
//!    outbox: telemetry produced while the link is down goes out after it
//!    comes back (at least once, in order);
//! 3. answers the commands of [`command`] on the ack topic.
//!
//! With the feature `flash-outbox`, [`run_with_flash`] does the same with
//! the telemetry journalled in flash (the driver's
//! [`FlashOutbox`](bc26_mqtt::supervisor::FlashOutbox)): it survives a reset
//! of the microcontroller.
//!
//! Every delay is in [`Timing`], so the host tests run in milliseconds.
#![no_std]
#![deny(unsafe_code)]
#![warn(missing_docs)]

#[cfg(test)]
extern crate std;

#[macro_use]
mod fmt;
pub mod board;
pub mod command;
#[cfg(feature = "flash-outbox")]
mod durable;

#[cfg(feature = "flash-outbox")]
pub use durable::{run_with_flash, JOURNAL_BUF};

use core::fmt::Write as _;

use bc26_mqtt::supervisor::{Link, LinkState, Supervisor, SupervisorState};
use bc26_mqtt::{ClientId, Event, Message, Modem, QoS, Runner, State, Subscription};
use embassy_futures::select::{select, select3, Either, Either3};
use embassy_time::{Duration, Instant, Timer};
use embedded_io_async::{Read, Write};

use crate::command::{Command, CommandError};

/// Room for one received message (topic, then payload): commands are short,
/// so the application keeps 256 bytes, not the 1279 any message may need; a
/// longer message is not a command and is reported as missed.
const MESSAGE_BUF: usize = 256;

/// The broker and the credentials.
#[derive(Debug, Clone, Copy)]
pub struct Broker<'a> {
    /// Host name or IP address.
    pub host: &'a str,
    /// TCP port.
    pub port: u16,
    /// MQTT client identifier.
    pub client_id: &'a str,
    /// User name, if the broker wants one.
    pub username: Option<&'a str>,
    /// Password (sent only with a user name).
    pub password: Option<&'a str>,
}

/// The device's topics.
#[derive(Debug, Clone, Copy)]
pub struct Topics<'a> {
    /// Telemetry goes here, every period (QoS 1).
    pub telemetry: &'a str,
    /// Commands arrive here (subscribed with QoS 1).
    pub command: &'a str,
    /// `online` after connecting, `offline` as the will (both retained).
    pub status: &'a str,
    /// Replies to commands.
    pub ack: &'a str,
}

/// Every delay and deadline of the application and its supervisor.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// How long the modem may take to answer `AT` (it boots in about 2 s).
    pub modem_deadline: Duration,
    /// Pause between two `AT`s or `AT+CEREG?` polls while waiting.
    pub poll_interval: Duration,
    /// Give up waiting for registration after this long (then back off).
    pub registration_deadline: Duration,
    /// Telemetry period (a `period` command changes it).
    pub telemetry_period: Duration,
    /// First back-off after a lost or failed link; doubles each time.
    pub backoff_min: Duration,
    /// Longest back-off.
    pub backoff_max: Duration,
    /// A link online this long resets the back-off.
    pub stable_after: Duration,
    /// How often the supervisor checks `AT+QMTCONN?` while online.
    pub health_check: Duration,
}

impl Timing {
    /// Values for a real device on NB-IoT.
    pub const fn new() -> Self {
        Self {
            modem_deadline: Duration::from_secs(30),
            poll_interval: Duration::from_secs(2),
            registration_deadline: Duration::from_secs(180),
            telemetry_period: Duration::from_secs(60),
            backoff_min: Duration::from_secs(2),
            backoff_max: Duration::from_secs(300),
            stable_after: Duration::from_secs(60),
            health_check: Duration::from_secs(60),
        }
    }
}

impl Default for Timing {
    fn default() -> Self {
        Self::new()
    }
}

/// Everything the application needs to know.
#[derive(Debug, Clone, Copy)]
pub struct AppConfig<'a> {
    /// Where to connect.
    pub broker: Broker<'a>,
    /// What to publish and subscribe.
    pub topics: Topics<'a>,
    /// The modem's MQTT client (`tcpconnectID`) to use.
    pub client: ClientId,
    /// MQTT keep-alive, seconds.
    pub keepalive_s: u16,
    /// The modem's packet timeout (1-60 s) and retransmissions (0-10).
    pub pkt_timeout_s: u8,
    /// See [`pkt_timeout_s`](Self::pkt_timeout_s).
    pub retry_times: u8,
    /// Delays and deadlines.
    pub timing: Timing,
    /// The driver's own timeouts.
    pub driver: bc26_mqtt::Config,
    /// Seed of the back-off's jitter: each device its own (an MCU unique ID).
    pub seed: u32,
}

/// What the link is doing, reported to [`Device::status`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Status {
    /// Bringing the link up (modem, registration, open, connect, subscribe).
    Connecting,
    /// Connected and subscribed.
    Connected,
    /// The link ended.
    Offline,
    /// Waiting before the next attempt.
    BackingOff,
}

/// What the board provides to the application.
pub trait Device {
    /// Switches the user LED.
    fn set_led(&mut self, on: bool);
    /// The link's state changed (e.g. to show it on a LED). Optional.
    fn status(&mut self, _status: Status) {}
}

/// Counters the application keeps (and publishes with the telemetry).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Counters {
    /// Telemetry messages handed to the outbox.
    pub telemetry: u32,
    /// Telemetry messages the outbox had no room for.
    pub telemetry_lost: u32,
    /// Commands received (valid or not).
    pub commands: u32,
}

/// Bytes of the supervisor's outbox: a few hours of telemetry at one
/// message a minute, or a long outage's worth at the default period.
pub const OUTBOX: usize = 2048;

/// All the memory of the driver, its supervisor and the application: put
/// it in a `static` (`StaticCell`). The parameters are the driver's
/// [`State`] sizes (same names, same defaults) and the outbox's bytes; the
/// defaults suit a part with 64 KiB of RAM or more. A smaller part picks
/// smaller ones, e.g. `AppState<640, 1024, 384, 10, 1, 1, 1344>`: one
/// subscription, `+QMTRECV` lines up to 640 bytes (a 256-byte payload in
/// hex with a topic of up to 100 bytes), one message waiting for the
/// application, one publish in flight, four 256-byte messages in the outbox.
pub struct AppState<
    const INGRESS: usize = 2400,
    const LINE: usize = 1024,
    const INBOX: usize = 2560,
    const EVENTS: usize = 32,
    const SUBSCRIBERS: usize = 2,
    const INFLIGHT: usize = 8,
    const OUTBOX_BYTES: usize = OUTBOX,
> {
    driver: State<INGRESS, LINE, INBOX, EVENTS, SUBSCRIBERS, INFLIGHT>,
    supervisor: SupervisorState<OUTBOX_BYTES>,
    subscriptions: [Subscription<'static>; 1],
    /// The flash outbox's buffer: the largest journalled message.
    #[cfg(feature = "flash-outbox")]
    journal: [u8; JOURNAL_BUF],
}

impl<
        const INGRESS: usize,
        const LINE: usize,
        const INBOX: usize,
        const EVENTS: usize,
        const SUBSCRIBERS: usize,
        const INFLIGHT: usize,
        const OUTBOX_BYTES: usize,
    > AppState<INGRESS, LINE, INBOX, EVENTS, SUBSCRIBERS, INFLIGHT, OUTBOX_BYTES>
{
    /// Fresh memory.
    pub const fn new() -> Self {
        Self {
            driver: State::new(),
            supervisor: SupervisorState::new(),
            subscriptions: [Subscription::new("", QoS::AtLeastOnce)],
            #[cfg(feature = "flash-outbox")]
            journal: [0; JOURNAL_BUF],
        }
    }
}

impl<
        const INGRESS: usize,
        const LINE: usize,
        const INBOX: usize,
        const EVENTS: usize,
        const SUBSCRIBERS: usize,
        const INFLIGHT: usize,
        const OUTBOX_BYTES: usize,
    > Default for AppState<INGRESS, LINE, INBOX, EVENTS, SUBSCRIBERS, INFLIGHT, OUTBOX_BYTES>
{
    fn default() -> Self {
        Self::new()
    }
}

/// The driver, its supervisor and the link from the application's memory and
/// configuration, for [`run`] and [`run_with_flash`]: `start!(state, rx, tx,
/// config => modem, runner, link, supervisor, journal)` binds the four
/// names, and the pattern `journal` to the flash outbox's buffer with the
/// feature `flash-outbox`. A macro, not a function, so that `run` is the
/// same code it was before the feature.
macro_rules! start {
    ($state:ident, $rx:ident, $tx:ident, $config:ident
        => $modem:ident, $runner:ident, $link:ident, $supervisor:ident, $journal:pat) => {
        let $crate::AppState {
            driver,
            supervisor: sup_state,
            subscriptions,
            #[cfg(feature = "flash-outbox")]
                journal: $journal,
        } = $state;
        *subscriptions = [::bc26_mqtt::Subscription::new(
            $config.topics.command,
            ::bc26_mqtt::QoS::AtLeastOnce,
        )];
        let subscriptions: &'static [::bc26_mqtt::Subscription<'static>] = subscriptions;
        // A driver Config whose values contradict each other is a build mistake
        // (the boards check theirs at compile time, `AppConfig::validate`):
        // nothing can run with it.
        let Ok(($modem, $runner)) = ::bc26_mqtt::new(driver, $rx, $tx, $config.driver) else {
            panic!("bc26_mqtt::new refused the driver Config (Config::validate)")
        };
        let t = $config.timing;
        let b = $config.broker;
        let mut sup = ::bc26_mqtt::supervisor::SupervisorConfig::new(
            $config.client,
            b.host,
            b.port,
            b.client_id,
        );
        sup.username = b.username;
        sup.password = b.password;
        sup.will = ::bc26_mqtt::commands::Will::new(
            $config.topics.status,
            "offline",
            ::bc26_mqtt::QoS::AtLeastOnce,
            true,
        )
        .ok();
        sup.keepalive_s = $config.keepalive_s;
        sup.pkt_timeout_s = $config.pkt_timeout_s;
        sup.retry_times = $config.retry_times;
        sup.subscriptions = subscriptions;
        sup.backoff = ::bc26_mqtt::supervisor::Backoff::new()
            .delays(t.backoff_min, t.backoff_max)
            .stable_after(t.stable_after)
            .seed($config.seed);
        sup.modem_deadline = t.modem_deadline;
        sup.registration_deadline = t.registration_deadline;
        sup.poll_interval = t.poll_interval;
        sup.health_check = t.health_check;
        let ($link, $supervisor) = ::bc26_mqtt::supervisor::new($modem, sup_state, sup);
    };
}
#[cfg(feature = "flash-outbox")]
pub(crate) use start;

/// Runs the driver, its supervisor and the application on the UART halves;
/// never returns. They run in the one future this returns, so a board
/// spawns one task for all three. A board that can spawn a second task
/// runs the driver's runner in a task of its own instead ([`split`], then
/// [`Runner::run`](bc26_mqtt::Runner::run) in one task and
/// [`AppTask::run`] in the other): a UART read then wakes the runner alone,
/// not the supervisor and the application too (on a Cortex-M3, about 1,000
/// instructions a read instead of 2,500: examples/qemu/README.md), for
/// some RAM (two task futures: on the micro:bit's 16 KiB they did not fit).
pub async fn run<
    R: Read,
    W: Write,
    D: Device,
    const INGRESS: usize,
    const LINE: usize,
    const INBOX: usize,
    const EVENTS: usize,
    const SUBSCRIBERS: usize,
    const INFLIGHT: usize,
    const OUTBOX_BYTES: usize,
>(
    state: &'static mut AppState<INGRESS, LINE, INBOX, EVENTS, SUBSCRIBERS, INFLIGHT, OUTBOX_BYTES>,
    rx: R,
    tx: W,
    config: &'static AppConfig<'static>,
    device: &mut D,
) -> ! {
    start!(state, rx, tx, config => modem, runner, link, supervisor, _);
    #[cfg(not(feature = "flash-outbox"))]
    let mut app = App::new(modem, link, config, device);
    #[cfg(feature = "flash-outbox")]
    let mut app = App::new(modem, link, config, device, ());
    match select3(runner.run(), supervisor.run(), app.run()).await {
        Either3::First(never) | Either3::Second(never) | Either3::Third(never) => never,
    }
}

/// Sets up the driver and its supervisor on the UART halves, as [`run`]
/// does: returns the driver's runner (spawn
/// [`Runner::run`](bc26_mqtt::Runner::run) in a task of its own) and the
/// supervisor with the application ([`AppTask::run`], in another task).
pub fn split<
    R: Read,
    W: Write,
    const INGRESS: usize,
    const LINE: usize,
    const INBOX: usize,
    const EVENTS: usize,
    const SUBSCRIBERS: usize,
    const INFLIGHT: usize,
    const OUTBOX_BYTES: usize,
>(
    state: &'static mut AppState<INGRESS, LINE, INBOX, EVENTS, SUBSCRIBERS, INFLIGHT, OUTBOX_BYTES>,
    rx: R,
    tx: W,
    config: &'static AppConfig<'static>,
) -> (Runner<'static, R, W>, AppTask) {
    start!(state, rx, tx, config => modem, runner, link, supervisor, _);
    (
        runner,
        AppTask {
            modem,
            link,
            supervisor,
            config,
        },
    )
}

/// The supervisor and the application, set up by [`split`]: everything but
/// the driver's runner.
pub struct AppTask {
    modem: Modem<'static>,
    link: Link<'static>,
    supervisor: Supervisor<'static>,
    config: &'static AppConfig<'static>,
}

impl AppTask {
    /// Runs the supervisor and the application (with `device`); never
    /// returns. The driver's runner must run meanwhile, in another task.
    pub async fn run<D: Device>(self, device: &mut D) -> ! {
        let AppTask {
            modem,
            link,
            supervisor,
            config,
        } = self;
        #[cfg(not(feature = "flash-outbox"))]
        let mut app = App::new(modem, link, config, device);
        #[cfg(feature = "flash-outbox")]
        let mut app = App::new(modem, link, config, device, ());
        match select(supervisor.run(), app.run()).await {
            Either::First(never) | Either::Second(never) => never,
        }
    }
}

/// `telemetry_payload!(app => payload)`: the next telemetry message of the
/// [`App`] `app` in a new `heapless::String` named `payload` (a macro, so
/// that `run`'s code is the same it was before the feature `flash-outbox`).
macro_rules! telemetry_payload {
    ($app:ident => $payload:ident) => {
        $app.seq += 1;
        let mut $payload: heapless::String<160> = heapless::String::new();
        // 160 bytes hold the longest values of every field.
        let _ = write!(
            $payload,
            "{{\"seq\":{},\"uptime_s\":{},\"led\":{},\"period_s\":{},\"reconnects\":{},\"commands\":{}}}",
            $app.seq,
            Instant::now().as_secs(),
            $app.led,
            $app.period.as_secs(),
            $app.link.counters().reconnects,
            $app.counters.commands,
        );
    };
}

/// Where [`App`] stores its telemetry with the feature `flash-outbox`: `()`
/// is the supervisor's outbox in RAM ([`run`]), a flash outbox
/// ([`run_with_flash`]).
#[cfg(feature = "flash-outbox")]
pub(crate) trait Store {
    /// Stores a QoS 1 message that is not retained (its ticket once it is
    /// durable); an error if it was not stored.
    async fn store(
        &self,
        link: Link<'_>,
        topic: &str,
        payload: &[u8],
    ) -> Result<bc26_mqtt::supervisor::Ticket, bc26_mqtt::Error>;
}

#[cfg(feature = "flash-outbox")]
impl Store for () {
    async fn store(
        &self,
        link: Link<'_>,
        topic: &str,
        payload: &[u8],
    ) -> Result<bc26_mqtt::supervisor::Ticket, bc26_mqtt::Error> {
        link.try_publish(topic, payload, QoS::AtLeastOnce, false)
    }
}

/// The application: without the feature `flash-outbox` the type it always
/// was; with it, generic over where its telemetry goes (`J`, a [`Store`]).
/// (Two definitions, not a generic parameter the default build fills with
/// `()`: that changed the default image's symbol names, and so the order of
/// its constants and its size.)
#[cfg(not(feature = "flash-outbox"))]
struct App<'m, 'c, D> {
    modem: Modem<'m>,
    link: Link<'m>,
    cfg: &'c AppConfig<'c>,
    device: &'c mut D,
    led: bool,
    period: Duration,
    seq: u32,
    counters: Counters,
}

/// See the other definition.
#[cfg(feature = "flash-outbox")]
struct App<'m, 'c, D, J> {
    /// Where the telemetry goes (see [`Store`]).
    journal: J,
    modem: Modem<'m>,
    link: Link<'m>,
    cfg: &'c AppConfig<'c>,
    device: &'c mut D,
    led: bool,
    period: Duration,
    seq: u32,
    counters: Counters,
}

/// `app_impl! { items }`: the items as `App`'s methods, for either
/// definition of `App`.
macro_rules! app_impl {
    ($($items:tt)*) => {
        #[cfg(not(feature = "flash-outbox"))]
        impl<'m, 'c, D: Device> App<'m, 'c, D> {
            $($items)*
        }
        #[cfg(feature = "flash-outbox")]
        impl<'m, 'c, D: Device, J: Store> App<'m, 'c, D, J> {
            $($items)*
        }
    };
}

app_impl! {
    fn new(
        modem: Modem<'m>,
        link: Link<'m>,
        cfg: &'c AppConfig<'c>,
        device: &'c mut D,
        #[cfg(feature = "flash-outbox")] journal: J,
    ) -> Self {
        Self {
            #[cfg(feature = "flash-outbox")]
            journal,
            modem,
            link,
            cfg,
            device,
            led: false,
            period: cfg.timing.telemetry_period,
            seq: 0,
            counters: Counters::default(),
        }
    }

    async fn run(&mut self) -> ! {
        self.device.set_led(false);
        // One subscription for the application's whole life: no message
        // falls between two links unseen. (No `expect`: it would link the
        // Debug formatting of every error.)
        let Ok(mut events) = self.modem.events() else {
            panic!("no free event subscription");
        };
        let mut seen = 0;
        let mut online = false;
        let mut next = Instant::now() + self.period;
        let mut buf = [0u8; MESSAGE_BUF];
        loop {
            match select3(
                self.link.changed(&mut seen),
                Timer::at(next),
                events.next(&mut buf),
            )
            .await
            {
                Either3::First(state) => {
                    let status = match state {
                        LinkState::Online => Status::Connected,
                        LinkState::Offline { .. } => Status::Offline,
                        LinkState::BackingOff { .. } => Status::BackingOff,
                        _ => Status::Connecting,
                    };
                    self.device.status(status);
                    let now_online = state == LinkState::Online;
                    if now_online && !online {
                        info!("connected; commands on {}", self.cfg.topics.command);
                        self.say(self.cfg.topics.status, b"online", true);
                        // The first telemetry of a link goes out at once.
                        if self.seq == 0 {
                            next = Instant::now();
                        }
                    }
                    online = now_online;
                }
                Either3::Second(()) => {
                    #[cfg(not(feature = "flash-outbox"))]
                    self.telemetry();
                    #[cfg(feature = "flash-outbox")]
                    self.telemetry().await;
                    next += self.period;
                    let now = Instant::now();
                    if next < now {
                        next = now + self.period;
                    }
                }
                Either3::Third(Event::Message(m)) => self.on_message(&m, &mut next),
                Either3::Third(Event::Missed(n)) => warn!("missed {} messages", n),
                Either3::Third(_) => {}
            }
        }
    }

    /// Hands a message to the outbox (QoS 1): it goes out when the link is
    /// up, at least once. `false` if the outbox had no room.
    fn say(&mut self, topic: &str, payload: &[u8], retain: bool) -> bool {
        match self
            .link
            .try_publish(topic, payload, QoS::AtLeastOnce, retain)
        {
            Ok(_) => true,
            Err(e) => {
                warn!("not sent ({}): {}", topic, e);
                false
            }
        }
    }

    #[cfg(not(feature = "flash-outbox"))]
    fn telemetry(&mut self) {
        telemetry_payload!(self => payload);
        if self.say(self.cfg.topics.telemetry, payload.as_bytes(), false) {
            self.counters.telemetry += 1;
            info!("telemetry {} queued", self.seq);
        } else {
            self.counters.telemetry_lost += 1;
        }
    }

    /// The telemetry through [`Store`]: in flash first with a flash outbox.
    #[cfg(feature = "flash-outbox")]
    async fn telemetry(&mut self) {
        telemetry_payload!(self => payload);
        let topic = self.cfg.topics.telemetry;
        match self
            .journal
            .store(self.link, topic, payload.as_bytes())
            .await
        {
            Ok(_) => {
                self.counters.telemetry += 1;
                info!("telemetry {} stored", self.seq);
            }
            Err(e) => {
                self.counters.telemetry_lost += 1;
                warn!("telemetry {} not stored: {}", self.seq, e);
            }
        }
    }

    fn on_message(&mut self, m: &Message<'_>, next: &mut Instant) {
        if m.topic != self.cfg.topics.command {
            info!("message on {} ignored", m.topic);
            return;
        }
        self.counters.commands += 1;
        let mut reply: heapless::String<32> = heapless::String::new();
        match command::parse(m.payload) {
            Ok(cmd) => {
                info!("command: {:?}", cmd);
                match cmd {
                    Command::Led(on) => self.led = on,
                    Command::ToggleLed => self.led = !self.led,
                    Command::Ping => {}
                    Command::Report => *next = Instant::now(),
                    Command::Period(s) => {
                        self.period = Duration::from_secs(s.into());
                        *next = Instant::now() + self.period;
                    }
                }
                self.device.set_led(self.led);
                let _ = match cmd {
                    Command::Led(_) | Command::ToggleLed => {
                        write!(reply, "ok led {}", if self.led { "on" } else { "off" })
                    }
                    Command::Ping => reply.write_str("pong"),
                    Command::Report => reply.write_str("ok report"),
                    Command::Period(s) => write!(reply, "ok period {s}"),
                };
            }
            Err(e) => {
                warn!("bad command: {:?}", e);
                let _ = reply.write_str(CommandError::reply(e));
            }
        }
        self.say(self.cfg.topics.ack, reply.as_bytes(), false);
    }
}
