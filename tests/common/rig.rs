//! Supervisor scenarios: a device (the driver and a supervisor on the BC26
//! simulator) on a real broker, watched by an independent MQTT client (the
//! [`Watcher`]); helpers that wait for link states, hand QoS 1 messages to
//! the outbox, and check that each of them reached the watcher at least once.
//!
//! In the test target `flash_supervisor` (feature `flash-outbox`), which
//! compiles `tests/supervisor.rs` and `tests/supervisor_soak.rs` again, every
//! [`Dev`] publishes through a `FlashOutbox` on a RAM flash double instead
//! ([`FLASH`]): the same scenario code runs through both outboxes, and
//! [`Dev::scenario`] checks in addition that flash holds nothing once every
//! message was acknowledged.
//!
//! A scenario runs on [`block_on`], a small executor of its own (one task,
//! woken by unparking the test's thread), so that its body may borrow the
//! [`Dev`] and everything is dropped (simulator stopped, restartable broker
//! given back) however the test ends.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use bc26_mqtt::supervisor::Outcome;
use bc26_mqtt::supervisor::{
    self, Backoff, Counters, Link, LinkState, OfflineReason, Supervisor, SupervisorConfig,
    SupervisorState, Ticket,
};
use bc26_mqtt::{ClientId, Config, Error, Events, Modem, QoS, Runner, State, Subscription};
use bc26_sim::broker::{broker, restartable_broker, Broker, RestartableBroker, Watcher};
use bc26_sim::{HostSide, Sim, SimConfig, SimHandle, SimReader, SimWriter};
use embassy_futures::select::{select4, Either4};
use embassy_time::{with_timeout, Duration, Instant, Timer};

use super::{next_ev, Ev};

/// True in the test target `flash_supervisor`: each [`Dev`] publishes
/// through a flash outbox ([`Dev::try_publish`], [`Dev::publish`],
/// [`Dev::hand`]). Chosen by the name of the test target being compiled, so
/// that `tests/supervisor.rs` is the same code in both.
pub const FLASH: bool =
    cfg!(feature = "flash-outbox") && same(env!("CARGO_CRATE_NAME"), "flash_supervisor");

const fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The flash of a [`Dev`] with a flash outbox: 16 pages of 4 KiB (an
/// nRF52's), in RAM.
#[cfg(feature = "flash-outbox")]
pub type RigFlash = bc26_testkit::flash::FlashDouble<4096>;

/// A [`Dev`]'s flash outbox: up to 64 journalled messages in the outbox (a
/// scenario hands up to 40 at once, the soak keeps 64 ahead).
#[cfg(feature = "flash-outbox")]
pub type RigFlashOutbox = bc26_mqtt::supervisor::FlashOutbox<
    'static,
    RigFlash,
    bc26_mqtt::embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex,
    64,
>;

/// A flash outbox on `link` over a fresh flash double.
#[cfg(feature = "flash-outbox")]
pub fn flash_outbox(link: Link<'static>) -> (RigFlash, &'static RigFlashOutbox) {
    use bc26_mqtt::supervisor::FlashOutboxConfig;
    static SEED: AtomicU32 = AtomicU32::new(1);
    let flash = RigFlash::new(16, u64::from(SEED.fetch_add(1, Ordering::Relaxed)));
    let buf: &'static mut [u8] = Box::leak(vec![0u8; 4096].into_boxed_slice());
    let config = FlashOutboxConfig::new(0..16 * 4096);
    // The double answers at once: `open` never waits.
    let fo = embassy_futures::block_on(RigFlashOutbox::open(link, flash.clone(), buf, config))
        .expect("the flash outbox opens");
    (flash, leak(fo))
}

/// A name no other test of this process (or another process) uses.
pub fn uniq(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Leaks `v`: the driver's and the supervisor's memory live as long as the
/// test process, like `static`s on a device.
pub fn leak<T>(v: T) -> &'static T {
    Box::leak(Box::new(v))
}

struct Unpark(std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs `fut` to completion on this thread (one task; woken by unparking the
/// thread); panics if it takes longer than `limit`.
pub fn block_on<F: Future>(limit: std::time::Duration, fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let end = std::time::Instant::now() + limit;
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        let now = std::time::Instant::now();
        assert!(now < end, "did not finish within {limit:?}");
        std::thread::park_timeout(end - now);
    }
}

/// Runs a blocking `f` (a broker restart) on a thread of its own, so that the
/// driver and the supervisor go on meanwhile.
pub async fn off_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let h = std::thread::spawn(f);
    while !h.is_finished() {
        Timer::after_millis(5).await;
    }
    h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))
}

/// The driver's configuration in the scenarios: short, but long enough for a
/// busy two-core machine running tests in parallel.
pub fn driver_config() -> Config {
    Config::new()
        .command_timeout(Duration::from_millis(600))
        .open_timeout(Duration::from_secs(5))
        .close_timeout(Duration::from_secs(2))
        .quiet_gap(Duration::from_millis(50))
}

/// The supervisor's configuration in the scenarios: test-sized timings.
/// `pkt_timeout` 2 s with 1 retransmission puts a publish's deadline at
/// about 4 s; the back-off runs from 20 to 300 ms.
pub fn sup_config(
    host: &'static str,
    port: u16,
    client_id: &'static str,
    subscriptions: &'static [Subscription<'static>],
) -> SupervisorConfig<'static> {
    static SEED: AtomicU32 = AtomicU32::new(1);
    let mut c = SupervisorConfig::new(ClientId::new(0).unwrap(), host, port, client_id);
    c.keepalive_s = 30;
    c.pkt_timeout_s = 2;
    c.retry_times = 1;
    c.subscriptions = subscriptions;
    c.backoff = Backoff::new()
        .delays(Duration::from_millis(20), Duration::from_millis(300))
        .stable_after(Duration::from_millis(500))
        .seed(SEED.fetch_add(0x9e37_79b9, Ordering::Relaxed));
    c.modem_deadline = Duration::from_secs(3);
    c.registration_deadline = Duration::from_secs(3);
    c.poll_interval = Duration::from_millis(30);
    c.health_check = Duration::from_millis(300);
    c
}

/// `fo` holds nothing in flash (every message it journalled ended and was
/// removed: waits for that up to 10 s), and counted no flash failure and no
/// corrupted entry.
#[cfg(feature = "flash-outbox")]
pub async fn flash_empty(name: &str, fo: &RigFlashOutbox) {
    if with_timeout(Duration::from_secs(10), fo.flush())
        .await
        .is_err()
    {
        panic!("{name}: flash does not empty: {:?}", fo.stats());
    }
    let mut left = Vec::new();
    fo.list_pending(|p| left.push(p.entry.msg_id))
        .await
        .expect("flash reads");
    let s = fo.stats();
    assert!(left.is_empty(), "{name}: flash still holds {left:?}; {s:?}");
    assert_eq!(s.removed + s.dropped, s.stored, "{name}: {s:?}");
    assert_eq!(
        (s.corrupted, s.unreadable, s.failures),
        (0, 0, 0),
        "{name}: {s:?}"
    );
    eprintln!("{name}: flash outbox {s:?}");
}

/// Which broker a scenario uses.
pub enum BrokerRef {
    /// The shared one ([`broker`]): in-process rmqtt or `MQTT_HOST`.
    Shared(&'static Broker),
    /// One the test may stop and start ([`restartable_broker`]).
    Restartable(Arc<RestartableBroker>),
}

impl BrokerRef {
    pub fn get(&self) -> &Broker {
        match self {
            BrokerRef::Shared(b) => b,
            BrokerRef::Restartable(b) => b,
        }
    }
}

/// How a scenario's device is set up.
pub struct Opts {
    /// Short: in topics, client ids and messages.
    pub name: &'static str,
    pub sim: SimConfig,
    pub driver: Config,
    /// Changes to [`sup_config`].
    #[allow(clippy::type_complexity)]
    pub sup: Box<dyn FnOnce(&mut SupervisorConfig<'static>)>,
    /// The outbox size: 512, 4096 or 16384.
    pub outbox: usize,
    /// The broker can be stopped and started.
    pub restartable: bool,
    /// Before the driver starts, open client 0 on the broker (the modem
    /// still holds it, as after a restart of the MCU alone).
    pub pre_open: bool,
}

impl Opts {
    pub fn new(name: &'static str) -> Self {
        Opts {
            name,
            sim: SimConfig::default(),
            driver: driver_config(),
            sup: Box::new(|_| {}),
            outbox: 4096,
            restartable: false,
            pre_open: false,
        }
    }

    /// With changes to the supervisor's configuration.
    pub fn sup(mut self, f: impl FnOnce(&mut SupervisorConfig<'static>) + 'static) -> Self {
        self.sup = Box::new(f);
        self
    }

    /// With changes to the simulator's configuration.
    pub fn sim(mut self, f: impl FnOnce(&mut SimConfig)) -> Self {
        f(&mut self.sim);
        self
    }
}

/// The device under test and its watcher.
pub struct Dev {
    pub name: &'static str,
    pub sim: SimHandle,
    pub link: Link<'static>,
    /// The link's states.
    pub rec: Recorder,
    pub modem: Modem<'static>,
    pub watcher: Watcher,
    /// The device publishes here; the watcher subscribes.
    pub up: &'static str,
    /// The watcher publishes here; the device subscribes (its persistent set).
    pub cmd: &'static str,
    /// The watcher's own probe topic (to see that it is subscribed again).
    probe: &'static str,
    /// The device's MQTT client identifier.
    pub client_id: &'static str,
    pub broker: BrokerRef,
    events: Cell<Option<Events<'static>>>,
    parts: RefCell<Option<(Runner<'static, SimReader, SimWriter>, Supervisor<'static>)>>,
    /// The flash outbox the device publishes through ([`FLASH`]), and its
    /// flash.
    #[cfg(feature = "flash-outbox")]
    pub flash: Option<(RigFlash, &'static RigFlashOutbox)>,
    /// QoS 1 payloads handed to the outbox.
    handed: RefCell<Vec<Vec<u8>>>,
    commands: Cell<u32>,
    /// Every payload the device received on the command topic.
    received: RefCell<Vec<Vec<u8>>>,
}

/// Every state change of a link, as [`Link::changed`] reports it, and waits
/// on them: each wait consumes the states up to the one it found.
pub struct Recorder {
    pub name: &'static str,
    pub link: Link<'static>,
    states: RefCell<Vec<(Instant, LinkState)>>,
    cursor: Cell<usize>,
    /// Recovery times measured by [`online_within`](Self::online_within).
    recoveries: RefCell<Vec<Duration>>,
}

impl Recorder {
    pub fn new(name: &'static str, link: Link<'static>) -> Recorder {
        Recorder {
            name,
            link,
            states: RefCell::new(Vec::new()),
            cursor: Cell::new(0),
            recoveries: RefCell::new(Vec::new()),
        }
    }

    /// Records every state change.
    pub async fn record(&self) -> ! {
        let mut seen = 0;
        loop {
            let s = self.link.changed(&mut seen).await;
            self.states.borrow_mut().push((Instant::now(), s));
        }
    }

    /// The states recorded so far, for messages.
    pub fn history(&self) -> String {
        let st = self.states.borrow();
        let t0 = st.first().map_or(Instant::now(), |s| s.0);
        st.iter()
            .map(|(t, s)| {
                format!(
                    "{:>6} ms {s:?}",
                    t.saturating_duration_since(t0).as_millis()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// States recorded since the last one a wait consumed (not consuming).
    pub fn states_since_cursor(&self) -> Vec<LinkState> {
        self.states.borrow()[self.cursor.get()..]
            .iter()
            .map(|s| s.1)
            .collect()
    }

    /// Every state recorded so far.
    pub fn states(&self) -> Vec<LinkState> {
        self.states.borrow().iter().map(|s| s.1).collect()
    }

    /// Waits (up to `limit`) for the next state that `f` accepts, after the
    /// last one a wait consumed; returns it and when it came.
    pub async fn until(
        &self,
        limit: Duration,
        what: &str,
        f: impl Fn(LinkState) -> bool,
    ) -> (LinkState, Instant) {
        let start = Instant::now();
        loop {
            {
                let st = self.states.borrow();
                while self.cursor.get() < st.len() {
                    let (t, s) = st[self.cursor.get()];
                    self.cursor.set(self.cursor.get() + 1);
                    if f(s) {
                        return (s, t);
                    }
                }
            }
            if start.elapsed() > limit {
                panic!(
                    "{}: {what} not reached within {limit:?}; states:\n{}",
                    self.name,
                    self.history()
                );
            }
            Timer::after_millis(2).await;
        }
    }

    /// Waits for the link to come online.
    pub async fn online(&self, limit: Duration) {
        self.until(limit, "Online", |s| s == LinkState::Online)
            .await;
    }

    /// Waits for the link to come online within `bound` of `since`; returns
    /// how long it took (also kept for the test's summary).
    pub async fn online_within(&self, since: Instant, bound: Duration) -> Duration {
        let left = (since + bound).saturating_duration_since(Instant::now());
        let (_, at) = self
            .until(left, "Online again", |s| s == LinkState::Online)
            .await;
        let took = at.saturating_duration_since(since);
        self.recoveries.borrow_mut().push(took);
        took
    }

    /// Waits for the link to go offline; returns why.
    pub async fn offline(&self, limit: Duration) -> OfflineReason {
        match self
            .until(limit, "Offline", |s| matches!(s, LinkState::Offline { .. }))
            .await
            .0
        {
            LinkState::Offline { reason } => reason,
            _ => unreachable!(),
        }
    }

    /// Waits for the link to go offline for `want`.
    pub async fn offline_for(&self, limit: Duration, want: OfflineReason) {
        let got = self.offline(limit).await;
        assert_eq!(
            got,
            want,
            "{}: offline for another reason:\n{}",
            self.name,
            self.history()
        );
    }
}

/// `AT+QMTOPEN=0,...` typed on the simulator's UART before the driver owns
/// it; returns once `+QMTOPEN: 0,0` came.
fn open_before_the_driver(reader: &mut SimReader, writer: &mut SimWriter, b: &Broker) {
    let line = format!("AT+QMTOPEN=0,\"{}\",{}\r", b.host, b.port);
    writer.write_all_blocking(line.as_bytes()).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    let end = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !String::from_utf8_lossy(&got).contains("+QMTOPEN: 0,0\r\n") {
        assert!(std::time::Instant::now() < end, "pre-open: {got:?}");
        if let Some(n) = reader.read_blocking(&mut buf, std::time::Duration::from_millis(100)) {
            got.extend_from_slice(&buf[..n]);
        }
    }
}

fn new_supervisor<const N: usize>(
    modem: Modem<'static>,
    config: SupervisorConfig<'static>,
) -> (Link<'static>, Supervisor<'static>) {
    let state: &'static mut SupervisorState<N> = Box::leak(Box::new(SupervisorState::new()));
    supervisor::new(modem, state, config)
}

impl std::ops::Deref for Dev {
    type Target = Recorder;
    fn deref(&self) -> &Recorder {
        &self.rec
    }
}

impl Dev {
    /// A device on the shared broker.
    pub fn start(opts: Opts) -> Dev {
        assert!(!opts.restartable);
        Self::with_broker(opts, BrokerRef::Shared(broker()))
    }

    /// A device on a broker of its own that it may stop and start; `None`
    /// (the test skips, saying so) when there is none (`MQTT_HOST` set
    /// without `MQTT_RESTART_PORT`/`MQTT_BROKER_STOP`/`START`).
    pub fn start_restartable(mut opts: Opts) -> Option<Dev> {
        opts.restartable = true;
        let Some(b) = restartable_broker() else {
            eprintln!(
                "{}: skipped: MQTT_HOST is set without MQTT_RESTART_PORT/MQTT_BROKER_STOP/START",
                opts.name
            );
            return None;
        };
        Some(Self::with_broker(opts, BrokerRef::Restartable(Arc::new(b))))
    }

    fn with_broker(opts: Opts, broker: BrokerRef) -> Dev {
        let name = opts.name;
        let b = broker.get();
        let up: &'static str = leak(uniq(&format!("sup/{name}/up")));
        let cmd: &'static str = leak(uniq(&format!("sup/{name}/cmd")));
        let probe: &'static str = leak(uniq(&format!("sup/{name}/probe")));
        let client_id: &'static str = leak(uniq(name));
        let watcher = Watcher::new(b, &uniq(&format!("w-{name}")), &[up, probe]);
        let (
            sim,
            HostSide {
                mut reader,
                mut writer,
            },
        ) = Sim::start(opts.sim);
        if opts.pre_open {
            open_before_the_driver(&mut reader, &mut writer, b);
        }
        let state: &'static mut State = Box::leak(Box::new(State::new()));
        let (modem, runner) =
            bc26_mqtt::new(state, reader, writer, opts.driver).expect("consistent Config");
        let events = modem.events().expect("events");
        let subs: &'static [Subscription<'static>] =
            leak([Subscription::new(cmd, QoS::AtLeastOnce)]);
        let host: &'static str = leak(b.host.clone());
        let mut config = sup_config(host, b.port, client_id, subs);
        (opts.sup)(&mut config);
        let (link, sup) = match opts.outbox {
            512 => new_supervisor::<512>(modem, config),
            4096 => new_supervisor::<4096>(modem, config),
            16384 => new_supervisor::<16384>(modem, config),
            n => panic!("no outbox of {n} bytes in the rig"),
        };
        #[cfg(feature = "flash-outbox")]
        let flash = FLASH.then(|| flash_outbox(link));
        Dev {
            name,
            sim,
            link,
            rec: Recorder::new(name, link),
            modem,
            watcher,
            up,
            cmd,
            probe,
            client_id,
            broker,
            events: Cell::new(Some(events)),
            parts: RefCell::new(Some((runner, sup))),
            #[cfg(feature = "flash-outbox")]
            flash,
            handed: RefCell::new(Vec::new()),
            commands: Cell::new(0),
            received: RefCell::new(Vec::new()),
        }
    }

    /// Runs the driver, the supervisor and `body` until `body` ends (within
    /// `limit`); then checks that the link works: a few more messages go out,
    /// the outbox empties, and a command from the watcher reaches the device
    /// (its subscription was made again). Then every QoS 1 message handed
    /// to the outbox must reach the watcher (at least once); returns how many
    /// copies it got beyond one.
    pub fn scenario(&self, limit: std::time::Duration, body: impl Future<Output = ()>) -> usize {
        let (runner, sup) = self
            .parts
            .borrow_mut()
            .take()
            .expect("one scenario per Dev");
        block_on(limit, async {
            let body = async {
                body.await;
                self.works_again().await;
                self.flash_empty().await;
            };
            match select4(runner.run(), sup.run(), self.background(), body).await {
                Either4::First(never) | Either4::Second(never) => never,
                Either4::Third(()) => unreachable!("the recorder runs for ever"),
                Either4::Fourth(()) => {}
            }
        });
        self.all_arrived(std::time::Duration::from_secs(10))
    }

    /// The recorder, and the flash outbox's task if there is one: for ever.
    async fn background(&self) {
        #[cfg(feature = "flash-outbox")]
        if let Some((_, fo)) = self.flash {
            embassy_futures::select::select(self.rec.record(), fo.run()).await;
        }
        self.rec.record().await
    }

    /// With a flash outbox: flash holds nothing (every message was
    /// acknowledged and removed), and it counted no flash failure and no
    /// corrupted entry.
    async fn flash_empty(&self) {
        #[cfg(feature = "flash-outbox")]
        if let Some((_, fo)) = self.flash {
            flash_empty(self.name, fo).await;
        }
    }

    /// Hands a message to the outbox at once: [`Link::try_publish`], or the
    /// flash outbox's (which returns once the message is in flash).
    pub async fn try_publish(
        &self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
    ) -> Result<Ticket, Error> {
        #[cfg(feature = "flash-outbox")]
        if let Some((_, fo)) = self.flash {
            return fo.try_publish(topic, payload, qos, retain).await;
        }
        self.link.try_publish(topic, payload, qos, retain)
    }

    /// Publishes and waits for the outcome: [`Link::publish`], or the flash
    /// outbox's.
    pub async fn publish(&self, topic: &str, payload: &[u8], qos: QoS, retain: bool) -> Outcome {
        #[cfg(feature = "flash-outbox")]
        if let Some((_, fo)) = self.flash {
            return fo.publish(topic, payload, qos, retain).await;
        }
        self.link.publish(topic, payload, qos, retain).await
    }

    /// Hands `n` QoS 1 messages to the outbox at once
    /// ([`try_publish`](Self::try_publish)); their payloads are
    /// `<name>/<tag>/<k>`.
    pub async fn hand(&self, n: usize, tag: &str) -> Vec<Ticket> {
        let mut tickets = Vec::new();
        for _ in 0..n {
            let k = self.handed.borrow().len();
            let p = format!("{}/{tag}/{k}", self.name).into_bytes();
            let t = self
                .try_publish(self.up, &p, QoS::AtLeastOnce, false)
                .await
                .unwrap_or_else(|e| panic!("{}: try_publish: {e:?}", self.name));
            self.handed.borrow_mut().push(p);
            tickets.push(t);
        }
        tickets
    }

    /// Notes a QoS 1 payload handed to the outbox by the test itself.
    pub fn handed(&self, payload: &[u8]) {
        self.handed.borrow_mut().push(payload.to_vec());
    }

    /// Waits (up to `limit`) until the outbox is empty (with a flash
    /// outbox: and flash too, `FlashOutbox::flush`).
    pub async fn flush(&self, limit: Duration) {
        let flush = async {
            #[cfg(feature = "flash-outbox")]
            if let Some((_, fo)) = self.flash {
                return fo.flush().await;
            }
            self.link.flush().await
        };
        if with_timeout(limit, flush).await.is_err() {
            #[cfg(feature = "flash-outbox")]
            if let Some((_, fo)) = self.flash {
                eprintln!("{}: flash outbox {:?}", self.name, fo.stats());
            }
            panic!(
                "{}: outbox not empty after {limit:?}: {:?}; {:?}; states:\n{}",
                self.name,
                self.link.outbox(),
                self.link.counters(),
                self.history()
            );
        }
    }

    /// The watcher publishes a command; it must reach the device within
    /// `limit`.
    pub async fn command_arrives(&self, limit: Duration) {
        let n = self.commands.get() + 1;
        self.commands.set(n);
        let payload = format!("cmd-{n}").into_bytes();
        self.watcher.publish(self.cmd, &payload);
        self.commands_arrive(limit, &[payload]).await;
    }

    /// Each of `payloads` reaches the device on the command topic within
    /// `limit` (other events are skipped).
    pub async fn commands_arrive(&self, limit: Duration, payloads: &[Vec<u8>]) {
        // Taken out while waiting (no borrow held across the awaits).
        let mut events = self.events.take().expect("one waiter for commands");
        let mut missing: Vec<Vec<u8>> = payloads.to_vec();
        let r = with_timeout(limit, async {
            while !missing.is_empty() {
                if let Ev::Message(m) = next_ev(&mut events).await {
                    if m.topic == self.cmd {
                        missing.retain(|p| *p != m.payload);
                        self.received.borrow_mut().push(m.payload);
                    }
                }
            }
        })
        .await;
        self.events.set(Some(events));
        if r.is_err() {
            panic!(
                "{}: commands {:?} did not reach the device within {limit:?}; states:\n{}",
                self.name,
                missing
                    .iter()
                    .map(|p| String::from_utf8_lossy(p).into_owned())
                    .collect::<Vec<_>>(),
                self.history()
            );
        }
    }

    /// Whether the device received `payload` on the command topic (seen by
    /// a [`commands_arrive`](Self::commands_arrive) so far).
    pub fn received_command(&self, payload: &[u8]) -> bool {
        self.received.borrow().iter().any(|p| p == payload)
    }

    /// Waits (up to `limit`) until the message of `t` was delivered.
    pub async fn delivered_within(&self, t: Ticket, limit: Duration) {
        match with_timeout(limit, self.link.delivered(t)).await {
            Ok(o) if o.is_delivered() => {}
            got => panic!(
                "{}: message {t:?} not delivered within {limit:?} ({got:?}); states:\n{}",
                self.name,
                self.history()
            ),
        }
    }

    /// The link works: online, a few more messages go out and the outbox
    /// empties, a command reaches the device.
    pub async fn works_again(&self) {
        if self.link.state() != LinkState::Online {
            self.until(Duration::from_secs(10), "Online at the end", |s| {
                s == LinkState::Online
            })
            .await;
        }
        self.hand(3, "end").await;
        self.flush(Duration::from_secs(10)).await;
        self.command_arrives(Duration::from_secs(5)).await;
    }

    /// Waits until the watcher received every handed payload at least once
    /// (up to `limit`), fails naming the missing ones; returns the number of
    /// duplicates and prints a summary.
    pub fn all_arrived(&self, limit: std::time::Duration) -> usize {
        let want: Vec<Vec<u8>> = self.handed.borrow().clone();
        let missing = |got: &[Vec<u8>]| {
            let have: HashSet<&Vec<u8>> = got.iter().collect();
            want.iter()
                .filter(|w| !have.contains(w))
                .cloned()
                .collect::<Vec<_>>()
        };
        self.watcher
            .wait_for(self.up, limit, |got| missing(got).is_empty());
        let got = self.watcher.payloads(self.up);
        let lost = missing(&got);
        let want_set: HashSet<&Vec<u8>> = want.iter().collect();
        let garbled: Vec<String> = got
            .iter()
            .filter(|g| !want_set.contains(g))
            .map(|g| String::from_utf8_lossy(g).into_owned())
            .collect();
        assert!(
            garbled.is_empty(),
            "{}: the watcher got messages never handed (garbled?): {garbled:?}",
            self.name
        );
        assert!(
            lost.is_empty(),
            "{}: {} of {} QoS 1 messages handed to the outbox never reached the watcher: {:?}\nstates:\n{}",
            self.name,
            lost.len(),
            want.len(),
            lost.iter()
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .collect::<Vec<_>>(),
            self.history()
        );
        let mut copies: BTreeMap<&Vec<u8>, usize> = BTreeMap::new();
        for g in &got {
            *copies.entry(g).or_default() += 1;
        }
        let dups = copies.values().map(|n| n - 1).sum();
        eprintln!(
            "{}: {} handed, {} received ({} duplicates); online again in {:?}; {:?}",
            self.name,
            want.len(),
            got.len(),
            dups,
            self.rec
                .recoveries
                .borrow()
                .iter()
                .map(|d| d.as_millis())
                .collect::<Vec<_>>(),
            self.link.counters()
        );
        dups
    }

    /// What the supervisor counted.
    pub fn counters(&self) -> Counters {
        self.link.counters()
    }

    /// The restartable broker (panics on the shared one).
    pub fn restartable(&self) -> Arc<RestartableBroker> {
        match &self.broker {
            BrokerRef::Restartable(b) => b.clone(),
            BrokerRef::Shared(_) => panic!("{}: not a restartable broker", self.name),
        }
    }

    /// Keeps the device from opening (every `AT+QMTOPEN` fails with `-1`)
    /// until [`release`](Self::release).
    pub fn hold_back(&self) {
        self.sim
            .update_faults(|f| f.fail_open = Some((u32::MAX, -1)));
    }

    /// Lets the device open again.
    pub fn release(&self) {
        self.sim.update_faults(|f| f.fail_open = None);
    }

    /// Waits until the watcher is subscribed (again, after a broker
    /// restart): its own probes reach it.
    pub async fn watcher_back(&self, limit: Duration) {
        let before = self.watcher.payloads(self.probe).len();
        let start = Instant::now();
        while self.watcher.payloads(self.probe).len() == before {
            assert!(
                start.elapsed() < limit,
                "{}: the watcher is not back within {limit:?}",
                self.name
            );
            self.watcher.publish(self.probe, b"probe");
            Timer::after_millis(100).await;
        }
    }

    /// Waits until the watcher got every payload handed so far (before a
    /// broker restart, which loses what the broker holds).
    pub async fn watcher_has_all(&self, limit: Duration) {
        let want: HashSet<Vec<u8>> = self.handed.borrow().iter().cloned().collect();
        let start = Instant::now();
        loop {
            let got: HashSet<Vec<u8>> = self.watcher.payloads(self.up).into_iter().collect();
            if want.is_subset(&got) {
                return;
            }
            if start.elapsed() >= limit {
                let lacks: Vec<String> = want
                    .difference(&got)
                    .map(|p| String::from_utf8_lossy(p).into_owned())
                    .collect();
                panic!(
                    "{}: the watcher lacks {} messages after {limit:?}: {lacks:?}; {:?}; states:\n{}",
                    self.name,
                    lacks.len(),
                    self.link.counters(),
                    self.history()
                );
            }
            Timer::after_millis(10).await;
        }
    }

    /// Waits (up to `limit`) until `f` holds, checking every 2 ms.
    pub async fn wait(&self, limit: Duration, what: &str, f: impl Fn() -> bool) {
        let start = Instant::now();
        while !f() {
            if start.elapsed() > limit {
                panic!(
                    "{}: {what} not seen within {limit:?}; states:\n{}",
                    self.name,
                    self.history()
                );
            }
            Timer::after_millis(2).await;
        }
    }

    /// Lines the modem sent to the host so far that contain `pat`.
    pub fn modem_said(&self, pat: &str) -> usize {
        String::from_utf8_lossy(&self.sim.transcript())
            .matches(pat)
            .count()
    }

    /// Times the host sent a line containing `pat` so far.
    pub fn host_said(&self, pat: &str) -> usize {
        String::from_utf8_lossy(&self.sim.host_transcript())
            .matches(pat)
            .count()
    }
}
