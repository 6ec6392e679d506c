//! The application the board examples run, shared with the host tests.
//!
//! [`run`] takes the UART halves (any [`embedded_io_async::Read`] and
//! [`Write`]) and does what a field device does:
//!
//! 1. waits for the modem to power on, then sends a bare `AT` until it answers;
//! 2. turns the echo off (`ATE0`);
//! 3. polls `AT+CEREG?` until the modem is registered (home or roaming), with a
//!    deadline; past it, starts over from step 1 after a back-off;
//! 4. configures MQTT client 0 (keep-alive, will, packet timeout, clean
//!    session), opens the link (closing it first if the modem still holds it
//!    after an MCU-only reset: `+QMTOPEN: 0,2`), connects, subscribes to the
//!    command topic and publishes `online` (retained) on the status topic;
//! 5. publishes a telemetry message every period and answers the commands of
//!    [`command`] on the ack topic;
//! 6. when the link goes (`+QMTSTAT`, a failed publish), waits a back-off that
//!    doubles up to a maximum and goes back to step 3 (step 1 if the modem
//!    stopped answering).
//!
//! Every delay is in [`Timing`], so the host tests run in milliseconds.
#![no_std]
#![deny(unsafe_code)]
#![warn(missing_docs)]

#[cfg(test)]
extern crate std;

#[macro_use]
mod fmt;
pub mod at;
pub mod command;

use core::fmt::Write as _;

use bc26_mqtt::commands::{ConnectionState, Will};
use bc26_mqtt::{
    ClientId, Error, Event, Grant, LinkClosedReason, Message, Modem, MqttClient, OpenError, QoS,
    Stage, State,
};
use embassy_futures::select::{select, Either};
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

/// Every delay and deadline of the application.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Wait after reset before the first `AT` (the BC26 boots in about 2 s).
    pub power_on_wait: Duration,
    /// Pause between two unanswered `AT`s (each waits 300 ms for its answer).
    pub at_retry_interval: Duration,
    /// Pause between two `AT+CEREG?` polls.
    pub registration_poll: Duration,
    /// Give up waiting for registration after this long (then start over).
    pub registration_deadline: Duration,
    /// Telemetry period (a `period` command changes it).
    pub telemetry_period: Duration,
    /// First back-off after a lost or failed session; doubles each time.
    pub backoff_min: Duration,
    /// Longest back-off.
    pub backoff_max: Duration,
}

impl Timing {
    /// Values for a real device on NB-IoT.
    pub const fn new() -> Self {
        Self {
            power_on_wait: Duration::from_secs(3),
            at_retry_interval: Duration::from_millis(500),
            registration_poll: Duration::from_secs(2),
            registration_deadline: Duration::from_secs(180),
            telemetry_period: Duration::from_secs(60),
            backoff_min: Duration::from_secs(2),
            backoff_max: Duration::from_secs(300),
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
}

/// What the application is doing, reported to [`Device::status`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Status {
    /// Waiting for the modem to answer `AT`.
    Syncing,
    /// Waiting for network registration.
    Registering,
    /// Opening and connecting the MQTT link.
    Connecting,
    /// Connected and subscribed.
    Connected,
    /// The session ended; backing off before the next attempt.
    BackingOff,
}

/// What the board provides to the application.
pub trait Device {
    /// Switches the user LED.
    fn set_led(&mut self, on: bool);
    /// The application's state changed (e.g. to show it on a LED). Optional.
    fn status(&mut self, _status: Status) {}
}

/// Counters the application keeps (and publishes with the telemetry).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Counters {
    /// Telemetry messages acknowledged by the broker.
    pub telemetry: u32,
    /// Commands received (valid or not).
    pub commands: u32,
    /// MQTT sessions that ended and were started again.
    pub reconnects: u32,
    /// `AT`s that went unanswered.
    pub at_retries: u32,
}

/// Runs the driver and the application on the UART halves; never returns.
///
/// The driver's [`Runner`](bc26_mqtt::Runner) and the application run in the
/// one future this returns, so a board spawns one task for both.
pub async fn run<R: Read, W: Write, D: Device>(
    state: &mut State,
    rx: R,
    tx: W,
    config: &AppConfig<'_>,
    device: &mut D,
) -> ! {
    let (modem, runner) = bc26_mqtt::new(state, rx, tx, config.driver);
    let mut app = App::new(modem, config, device);
    match select(runner.run(), app.run()).await {
        Either::First(never) | Either::Second(never) => never,
    }
}

/// Why a session ended.
enum End {
    /// `+QMTSTAT`: the modem closed the link.
    LinkClosed(LinkClosedReason),
    /// An operation failed.
    Failed(Error),
}

impl From<Error> for End {
    fn from(e: Error) -> Self {
        match e {
            Error::LinkClosed(r) => End::LinkClosed(r),
            e => End::Failed(e),
        }
    }
}

/// The modem did not answer at all: start over with `AT`.
fn modem_silent(e: &Error) -> bool {
    matches!(e, Error::Timeout(Stage::Response) | Error::Write)
}

/// Waits that double from `min` up to `max`.
struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max,
            next: min,
        }
    }

    async fn wait(&mut self) {
        info!("backing off for {} ms", self.next.as_millis());
        Timer::after(self.next).await;
        self.next = (self.next * 2).min(self.max);
    }

    fn reset(&mut self) {
        self.next = self.min;
    }
}

enum RegistrationError {
    Deadline,
    Modem(Error),
}

struct App<'m, 'c, D> {
    modem: Modem<'m>,
    client: MqttClient<'m>,
    cfg: &'c AppConfig<'c>,
    device: &'c mut D,
    led: bool,
    period: Duration,
    seq: u32,
    counters: Counters,
}

impl<'m, 'c, D: Device> App<'m, 'c, D> {
    fn new(modem: Modem<'m>, cfg: &'c AppConfig<'c>, device: &'c mut D) -> Self {
        Self {
            modem,
            client: modem.client(cfg.client),
            cfg,
            device,
            led: false,
            period: cfg.timing.telemetry_period,
            seq: 0,
            counters: Counters::default(),
        }
    }

    async fn run(&mut self) -> ! {
        let t = self.cfg.timing;
        self.device.set_led(false);
        info!(
            "waiting {} ms for the modem to power on",
            t.power_on_wait.as_millis()
        );
        Timer::after(t.power_on_wait).await;
        // One subscription for the application's whole life: no message or
        // link event falls between two sessions unseen.
        // (No `expect`: it would link the Debug formatting of every error.)
        let Ok(mut events) = self.modem.events() else {
            panic!("no free event subscription");
        };
        let mut backoff = Backoff::new(t.backoff_min, t.backoff_max);
        let mut synced = false;
        loop {
            if !synced {
                self.sync().await;
                match self.modem.send(&at::EchoOff).await {
                    Ok(_) => synced = true,
                    Err(e) => {
                        warn!("ATE0 failed: {:?}", e);
                        continue;
                    }
                }
            }
            match self.wait_registered().await {
                Ok(()) => {}
                Err(RegistrationError::Deadline) => {
                    warn!("not registered within the deadline: starting over");
                    synced = false;
                    self.device.status(Status::BackingOff);
                    backoff.wait().await;
                    continue;
                }
                Err(RegistrationError::Modem(e)) => {
                    warn!("AT+CEREG? failed: {:?}", e);
                    synced = !modem_silent(&e);
                    self.device.status(Status::BackingOff);
                    backoff.wait().await;
                    continue;
                }
            }
            match self.session(&mut events, &mut backoff).await {
                End::LinkClosed(reason) => warn!("link closed by the modem: {:?}", reason),
                End::Failed(e) => {
                    warn!("session failed: {:?}", e);
                    if modem_silent(&e) {
                        synced = false;
                    }
                }
            }
            self.counters.reconnects += 1;
            self.device.status(Status::BackingOff);
            backoff.wait().await;
        }
    }

    /// Sends a bare `AT` until the modem answers.
    async fn sync(&mut self) {
        self.device.status(Status::Syncing);
        let mut tries: u32 = 0;
        loop {
            match self.modem.send(&at::At).await {
                Ok(_) => {
                    info!("modem answered AT after {} retries", tries);
                    return;
                }
                Err(e) => {
                    tries += 1;
                    self.counters.at_retries += 1;
                    if tries % 10 == 1 {
                        warn!("no answer to AT ({:?}), retrying", e);
                    }
                    Timer::after(self.cfg.timing.at_retry_interval).await;
                }
            }
        }
    }

    /// Polls `AT+CEREG?` until registered or past the deadline.
    async fn wait_registered(&mut self) -> Result<(), RegistrationError> {
        self.device.status(Status::Registering);
        let t = self.cfg.timing;
        let deadline = Instant::now() + t.registration_deadline;
        loop {
            let reg = self
                .modem
                .send(&at::GetRegistration)
                .await
                .map_err(RegistrationError::Modem)?;
            if reg.registered() {
                info!("registered (stat {})", reg.stat);
                return Ok(());
            }
            debug!("not registered yet (stat {})", reg.stat);
            if Instant::now() + t.registration_poll > deadline {
                return Err(RegistrationError::Deadline);
            }
            Timer::after(t.registration_poll).await;
        }
    }

    /// One MQTT session: open, connect, subscribe, then telemetry and
    /// commands until the link goes.
    async fn session(&mut self, events: &mut bc26_mqtt::Events<'m>, backoff: &mut Backoff) -> End {
        self.device.status(Status::Connecting);
        // Forget what the previous link left behind (its +QMTSTAT, messages
        // that arrived while it failed).
        let mut buf = [0u8; MESSAGE_BUF];
        while let Some(e) = events.try_next(&mut buf) {
            debug!("dropping an event of the previous session: {:?}", e);
        }
        if let Err(e) = self.open().await {
            return e.into();
        }
        let end = self.connected(events, backoff).await;
        if let End::Failed(e) = &end {
            if !modem_silent(e) {
                // The TCP link may still be open: close it so that the next
                // open starts clean.
                if let Err(e) = self.client.close().await {
                    debug!("close after a failed session: {:?}", e);
                }
            }
        }
        end
    }

    /// Configures the client and opens its link; if the modem still holds
    /// the client (`+QMTOPEN: id,2`), closes it and opens again.
    async fn open(&mut self) -> Result<(), Error> {
        let b = self.cfg.broker;
        let mut closed_once = false;
        loop {
            self.configure().await?;
            info!("opening {}:{}", b.host, b.port);
            match self.client.open(b.host, b.port).await {
                Ok(()) => return Ok(()),
                Err(Error::Open(OpenError::IdentifierOccupied)) if !closed_once => {
                    warn!("the modem still holds the client (MCU-only reset?): closing it");
                    closed_once = true;
                    if let Err(e) = self.client.close().await {
                        warn!("close failed: {:?}", e);
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn configure(&mut self) -> Result<(), Error> {
        let c = self.client;
        c.set_keepalive(self.cfg.keepalive_s).await?;
        let will = Will::new(self.cfg.topics.status, "offline", QoS::AtLeastOnce, true)?;
        c.set_will(Some(will)).await?;
        c.set_timeout(self.cfg.pkt_timeout_s, self.cfg.retry_times, false)
            .await?;
        c.set_clean_session(true).await
    }

    async fn connected(
        &mut self,
        events: &mut bc26_mqtt::Events<'m>,
        backoff: &mut Backoff,
    ) -> End {
        let (b, topics, c) = (self.cfg.broker, self.cfg.topics, self.client);
        if let Err(e) = c.connect(b.client_id, b.username, b.password).await {
            return e.into();
        }
        match c.subscribe(&[(topics.command, QoS::AtLeastOnce)]).await {
            Ok(g) if g.get(0) == Some(Grant::Rejected) => {
                warn!("the broker refused the subscription to {}", topics.command)
            }
            Ok(_) => {}
            Err(e) => return e.into(),
        }
        if let Err(e) = c
            .publish(topics.status, b"online", QoS::AtLeastOnce, true)
            .await
        {
            return e.into();
        }
        info!("connected; commands on {}", topics.command);
        self.device.status(Status::Connected);
        backoff.reset();
        // The first telemetry goes out at once.
        let mut next = Instant::now();
        let mut buf = [0u8; MESSAGE_BUF];
        loop {
            match select(Timer::at(next), events.next(&mut buf)).await {
                Either::First(()) => {
                    if let Err(e) = self.telemetry().await {
                        if self.link_really_closed(&e).await {
                            return e.into();
                        }
                        warn!("telemetry lost: {:?}", e);
                    }
                    next += self.period;
                    let now = Instant::now();
                    if next < now {
                        next = now + self.period;
                    }
                }
                Either::Second(Event::Message(m)) => {
                    if let Err(e) = self.on_message(&m, &mut next).await {
                        if self.link_really_closed(&e).await {
                            return e.into();
                        }
                        warn!("command reply lost: {:?}", e);
                    }
                }
                Either::Second(Event::LinkClosed { client, reason }) if client == c.id() => {
                    if self.still_connected().await {
                        // A late +QMTSTAT of a link closed on purpose.
                        debug!(
                            "+QMTSTAT ({:?}) but the client is connected: ignored",
                            reason
                        );
                        continue;
                    }
                    return End::LinkClosed(reason);
                }
                Either::Second(Event::Missed(n)) => warn!("missed {} events", n),
                Either::Second(_) => {}
            }
        }
    }

    /// Whether `e` ends the session. A `+QMTSTAT` ends the operations in
    /// flight of its client, but it may be a late one of a link closed on
    /// purpose: the modem has the last word.
    async fn link_really_closed(&self, e: &Error) -> bool {
        !matches!(e, Error::LinkClosed(_)) || !self.still_connected().await
    }

    /// Asks the modem whether the client is still connected.
    async fn still_connected(&self) -> bool {
        match self.modem.connection_states().await {
            Ok(s) => s.get(self.client.id()) == Some(ConnectionState::Connected),
            Err(_) => false,
        }
    }

    async fn telemetry(&mut self) -> Result<(), Error> {
        self.seq += 1;
        let mut payload: heapless::String<160> = heapless::String::new();
        // 160 bytes hold the longest values of every field.
        let _ = write!(
            payload,
            "{{\"seq\":{},\"uptime_s\":{},\"led\":{},\"period_s\":{},\"reconnects\":{},\"commands\":{}}}",
            self.seq,
            Instant::now().as_secs(),
            self.led,
            self.period.as_secs(),
            self.counters.reconnects,
            self.counters.commands,
        );
        let p = self
            .client
            .publish(
                self.cfg.topics.telemetry,
                payload.as_bytes(),
                QoS::AtLeastOnce,
                false,
            )
            .await?;
        self.counters.telemetry += 1;
        info!("telemetry {} sent (msgID {})", self.seq, p.msg_id);
        Ok(())
    }

    async fn on_message(&mut self, m: &Message<'_>, next: &mut Instant) -> Result<(), Error> {
        if m.topic != self.cfg.topics.command {
            info!("message on {} ignored", m.topic);
            return Ok(());
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
        self.client
            .publish(
                self.cfg.topics.ack,
                reply.as_bytes(),
                QoS::AtLeastOnce,
                false,
            )
            .await
            .map(drop)
    }
}
