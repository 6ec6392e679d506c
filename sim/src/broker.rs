//! A real MQTT broker for tests and demos, and an independent MQTT client to
//! check what really went over MQTT (feature `broker`, on by default).
//!
//! [`broker()`] is `MQTT_HOST`/`MQTT_PORT` when they are set (with
//! `MQTT_AUTH_PORT`, `MQTT_USER`, `MQTT_PASSWORD` for a listener that needs
//! credentials), and otherwise an in-process rmqtt on two free loopback ports.
//!
//! [`restartable_broker()`] is a broker a test may stop and start again (the broker
//! stopped and started by its operator): an in-process rmqtt of the test's own, or the one
//! `.ci/with-mosquitto` starts for this (`MQTT_RESTART_PORT`, `MQTT_BROKER_STOP`,
//! `MQTT_BROKER_START`).

use std::net::TcpListener;
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::Duration;

/// A PUBLISH as [`Peer`] receives it.
pub use rumqttc::Publish;

/// How long [`Peer`] waits for the broker.
const T: Duration = Duration::from_secs(5);

/// A listener that needs credentials.
pub struct Auth {
    /// Its port.
    pub port: u16,
    /// The user it accepts.
    pub user: String,
    /// That user's password.
    pub password: String,
}

/// The broker under test.
pub struct Broker {
    /// Host to connect to.
    pub host: String,
    /// Anonymous listener.
    pub port: u16,
    /// The listener that needs credentials, if there is one.
    pub auth: Option<Auth>,
    /// "in-process rmqtt" or "external (MQTT_HOST)".
    pub kind: &'static str,
}

const USER: &str = "bc26user";
const PASS: &str = "s3cret-pw";

/// The broker under test: `MQTT_HOST`/`MQTT_PORT` when set (with `MQTT_AUTH_PORT`,
/// `MQTT_USER`, `MQTT_PASSWORD` for the credential tests), else an in-process rmqtt.
pub fn broker() -> &'static Broker {
    static B: OnceLock<Broker> = OnceLock::new();
    B.get_or_init(|| {
        if let (Ok(host), Ok(port)) = (std::env::var("MQTT_HOST"), std::env::var("MQTT_PORT")) {
            let auth = std::env::var("MQTT_AUTH_PORT").ok().map(|p| Auth {
                port: p.parse().expect("MQTT_AUTH_PORT"),
                user: std::env::var("MQTT_USER").unwrap_or_default(),
                password: std::env::var("MQTT_PASSWORD").unwrap_or_default(),
            });
            return Broker {
                host,
                port: port.parse().expect("MQTT_PORT"),
                auth,
                kind: "external (MQTT_HOST)",
            };
        }
        let (port, auth_port) = start_rmqtt();
        in_process(port, auth_port, "in-process rmqtt")
    })
}

/// An in-process broker's address and credentials.
fn in_process(port: u16, auth_port: u16, kind: &'static str) -> Broker {
    Broker {
        host: "127.0.0.1".into(),
        port,
        auth: Some(Auth {
            port: auth_port,
            user: USER.into(),
            password: PASS.into(),
        }),
        kind,
    }
}

/// A broker of the test's own, which it may stop and start again on the same ports, losing
/// its sessions and retained messages as a real restart does. Dereferences to [`Broker`]
/// (host, ports, credentials). Dropping it stops an in-process broker; an external one is
/// left running.
pub struct RestartableBroker {
    broker: Broker,
    ctl: Ctl,
}

enum Ctl {
    /// `None` while stopped.
    InProcess(std::sync::Mutex<Option<Rmqtt>>),
    /// Shell commands; the lease serializes the tests that use the one external broker.
    External {
        stop: String,
        start: String,
        _lease: Lease,
    },
}

/// A broker that can be restarted: without `MQTT_HOST`, a new in-process rmqtt on two free
/// ports (each call its own, so tests stay parallel); with `MQTT_HOST`, the broker that
/// `MQTT_RESTART_PORT` (and `MQTT_RESTART_AUTH_PORT`) name, stopped and started by the shell
/// commands `MQTT_BROKER_STOP` / `MQTT_BROKER_START` (`.ci/with-mosquitto` sets them up),
/// lent to one test at a time (others wait, 120 s at most). `None` when `MQTT_HOST` is set
/// without them.
#[must_use]
pub fn restartable_broker() -> Option<RestartableBroker> {
    if std::env::var("MQTT_HOST").is_err() {
        let (r, port, auth_port) = Rmqtt::start(0, 0).expect("in-process broker");
        return Some(RestartableBroker {
            broker: in_process(port, auth_port, "in-process rmqtt (restartable)"),
            ctl: Ctl::InProcess(std::sync::Mutex::new(Some(r))),
        });
    }
    let var = |k: &str| std::env::var(k).ok();
    let (host, port, stop, start) = (
        var("MQTT_HOST")?,
        var("MQTT_RESTART_PORT")?,
        var("MQTT_BROKER_STOP")?,
        var("MQTT_BROKER_START")?,
    );
    let auth = var("MQTT_RESTART_AUTH_PORT").map(|p| Auth {
        port: p.parse().expect("MQTT_RESTART_AUTH_PORT"),
        user: var("MQTT_USER").unwrap_or_default(),
        password: var("MQTT_PASSWORD").unwrap_or_default(),
    });
    let b = RestartableBroker {
        broker: Broker {
            host,
            port: port.parse().expect("MQTT_RESTART_PORT"),
            auth,
            kind: "external (MQTT_BROKER_STOP/START)",
        },
        ctl: Ctl::External {
            stop,
            start,
            _lease: Lease::take(),
        },
    };
    // A test that failed while it was stopped left it so.
    if !b.is_running() {
        b.start();
    }
    Some(b)
}

impl std::ops::Deref for RestartableBroker {
    type Target = Broker;
    fn deref(&self) -> &Broker {
        &self.broker
    }
}

impl RestartableBroker {
    /// Stop the broker: when this returns, its ports refuse connections and every client's
    /// link has been closed. Stopping a stopped broker does nothing.
    pub fn stop(&self) {
        match &self.ctl {
            Ctl::InProcess(r) => drop(r.lock().unwrap_or_else(|e| e.into_inner()).take()),
            Ctl::External { stop, .. } => run(stop),
        }
        assert!(
            !self.is_running(),
            "{}: still accepting after stop",
            self.kind
        );
    }

    /// Start it again on the same ports, empty (no sessions, no retained messages): when
    /// this returns, it accepts connections. Starting a running broker does nothing.
    pub fn start(&self) {
        match &self.ctl {
            Ctl::InProcess(r) => {
                let mut r = r.lock().unwrap_or_else(|e| e.into_inner());
                if r.is_none() {
                    let auth = self.auth.as_ref().map_or(0, |a| a.port);
                    *r = Some(restart_rmqtt(self.port, auth));
                }
            }
            Ctl::External { start, .. } => run(start),
        }
        assert!(
            self.is_running(),
            "{}: not accepting after start",
            self.kind
        );
    }

    /// Stop, stay down for `downtime`, start.
    pub fn restart(&self, downtime: Duration) {
        self.stop();
        std::thread::sleep(downtime);
        self.start();
    }

    /// Whether its anonymous port accepts a TCP connection.
    pub fn is_running(&self) -> bool {
        let addr = (self.host.as_str(), self.port);
        std::net::ToSocketAddrs::to_socket_addrs(&addr)
            .ok()
            .and_then(|mut a| a.next())
            .is_some_and(|a| std::net::TcpStream::connect_timeout(&a, T).is_ok())
    }
}

/// Bind the same ports again; another socket may hold one for a moment (a client's
/// connection that is still closing): retry for up to 5 s.
fn restart_rmqtt(port: u16, auth_port: u16) -> Rmqtt {
    let deadline = std::time::Instant::now() + T;
    loop {
        match Rmqtt::start(port, auth_port) {
            Ok((r, _, _)) => return r,
            Err(e) if std::time::Instant::now() >= deadline => panic!("{e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Run a shell command (`MQTT_BROKER_STOP`/`START`); panics when it fails.
fn run(cmd: &str) {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd}: {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The external restartable broker, lent to one test of the process at a time.
struct Lease;

static LEASED: std::sync::Mutex<bool> = std::sync::Mutex::new(false);
static RETURNED: std::sync::Condvar = std::sync::Condvar::new();

impl Lease {
    fn take() -> Lease {
        let lock = |m: &'static std::sync::Mutex<bool>| m.lock().unwrap_or_else(|e| e.into_inner());
        let (mut leased, _) = RETURNED
            .wait_timeout_while(lock(&LEASED), Duration::from_secs(120), |l| *l)
            .unwrap_or_else(|e| e.into_inner());
        assert!(!*leased, "the restartable broker stayed lent for 120 s");
        *leased = true;
        Lease
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        *LEASED.lock().unwrap_or_else(|e| e.into_inner()) = false;
        RETURNED.notify_all();
    }
}

/// rmqtt's in-memory retained-message tree, switched on (its default storage
/// answers "not supported" and leaves the work to a plugin).
struct Retainer(rmqtt::retain::DefaultRetainStorage);

#[async_trait::async_trait]
impl rmqtt::retain::RetainStorage for Retainer {
    fn enable(&self) -> bool {
        true
    }

    async fn set(
        &self,
        topic: &rmqtt::types::TopicName,
        retain: rmqtt::types::Retain,
        expiry_interval: Option<Duration>,
    ) -> rmqtt::Result<()> {
        self.0
            .set_with_timeout(topic, retain, expiry_interval)
            .await
    }

    async fn get(
        &self,
        topic_filter: &rmqtt::types::TopicFilter,
    ) -> rmqtt::Result<Vec<(rmqtt::types::TopicName, rmqtt::types::Retain)>> {
        self.0.get_message(topic_filter).await
    }

    async fn count(&self) -> isize {
        rmqtt::retain::RetainStorage::count(&self.0).await
    }

    async fn max(&self) -> isize {
        rmqtt::retain::RetainStorage::max(&self.0).await
    }
}

struct AuthHook;

#[async_trait::async_trait]
impl rmqtt::hook::Handler for AuthHook {
    async fn hook(
        &self,
        param: &rmqtt::hook::Parameter,
        acc: Option<rmqtt::hook::HookResult>,
    ) -> rmqtt::hook::ReturnType {
        use rmqtt::hook::{HookResult, Parameter};
        use rmqtt::types::AuthResult;
        if let Parameter::ClientAuthenticate(ci) = param {
            let ok = ci.username().map(|u| &**u == USER).unwrap_or(false)
                && ci
                    .password()
                    .map(|p| &p[..] == PASS.as_bytes())
                    .unwrap_or(false);
            // Like Mosquitto: wrong or missing credentials get CONNACK 5 (not authorized).
            let r = if ok {
                AuthResult::Allow(false, None)
            } else {
                AuthResult::NotAuthorized
            };
            return (false, Some(HookResult::AuthResult(r)));
        }
        (true, acc)
    }
}

/// One rmqtt instance: two listeners (anonymous, and credentials required) on loopback, on
/// its own thread and tokio runtime. Stopping it shuts the runtime down, which drops every
/// task: listeners and client connections are closed, and the sessions and retained
/// messages (all in memory) are gone.
struct Rmqtt {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Rmqtt {
    /// Start on these ports (0: a free one); returns the instance and its two ports once
    /// both listen, or why it could not bind.
    fn start(anon_port: u16, auth_port: u16) -> Result<(Rmqtt, u16, u16), String> {
        let (tx, rx) = mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("rmqtt".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("tokio runtime");
                rt.block_on(async move {
                    // The hook registration is kept while the server runs.
                    let (server, _reg) = match rmqtt_server(anon_port, auth_port).await {
                        Ok((server, reg, p1, p2)) => {
                            let _ = tx.send(Ok((p1, p2)));
                            (server, reg)
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return;
                        }
                    };
                    tokio::select! {
                        r = server.run() => r.expect("rmqtt run"),
                        _ = stop_rx => {}
                    }
                });
                // Drops every task: listeners and connections close.
                rt.shutdown_timeout(Duration::from_secs(2));
            })
            .map_err(|e| e.to_string())?;
        let (p1, p2) = rx
            .recv_timeout(Duration::from_secs(20))
            .map_err(|_| "rmqtt did not start".to_string())??;
        let r = Rmqtt {
            stop: Some(stop_tx),
            thread: Some(thread),
        };
        Ok((r, p1, p2))
    }
}

impl Drop for Rmqtt {
    /// Stops the broker and waits until it has.
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// rmqtt's server with the retainer, the authentication hook and the two listeners
/// (SO_REUSEADDR, so that a restart can bind the same ports at once).
async fn rmqtt_server(
    anon_port: u16,
    auth_port: u16,
) -> Result<
    (
        rmqtt::server::MqttServer,
        Box<dyn rmqtt::hook::Register>,
        u16,
        u16,
    ),
    String,
> {
    use rmqtt::{context::ServerContext, net::Builder, server::MqttServer};
    let scx = ServerContext::new().build().await;
    // rmqtt keeps no retained messages unless a retainer is installed.
    *scx.extends.retain_mut().await = Box::new(Retainer(Default::default()));
    let reg = scx.extends.hook_mgr().register();
    reg.add(rmqtt::hook::Type::ClientAuthenticate, Box::new(AuthHook))
        .await;
    reg.start().await;
    let listener = |name: &str, port: u16, anonymous: bool| {
        Builder::new()
            .name(name)
            .laddr(([127, 0, 0, 1], port).into())
            .reuseaddr(Some(true))
            .allow_anonymous(anonymous)
            .allow_zero_keepalive(true)
            .bind()
            .and_then(|b| b.tcp())
            .map_err(|e| format!("rmqtt: cannot listen on 127.0.0.1:{port}: {e}"))
    };
    let anon = listener("anon/tcp", anon_port, true)?;
    let auth = listener("auth/tcp", auth_port, false)?;
    let p1 = anon.local_addr().map_err(|e| e.to_string())?.port();
    let p2 = auth.local_addr().map_err(|e| e.to_string())?.port();
    let server = MqttServer::new(scx)
        .listener_by_id(anon, p1)
        .listener_by_id(auth, p2)
        .build();
    Ok((server, reg, p1, p2))
}

/// Start the shared in-process rmqtt on two free ports; it runs until the process ends.
fn start_rmqtt() -> (u16, u16) {
    let (r, p1, p2) = Rmqtt::start(0, 0).expect("in-process broker");
    std::mem::forget(r);
    (p1, p2)
}

/// A loopback port with nothing listening on it.
#[must_use]
pub fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// An independent MQTT 3.1.1 client (rumqttc) that records what it receives.
pub struct Peer {
    /// The rumqttc client.
    pub client: rumqttc::Client,
    /// Every PUBLISH it receives.
    pub rx: mpsc::Receiver<rumqttc::Publish>,
    suback: mpsc::Receiver<()>,
}

impl Peer {
    /// Connects (MQTT 3.1.1) as `id` and waits for CONNACK.
    pub fn new(b: &Broker, id: &str) -> Peer {
        let mut o = rumqttc::MqttOptions::new(id, b.host.clone(), b.port);
        o.set_keep_alive(Duration::from_secs(30));
        let (client, mut conn) = rumqttc::Client::new(o, 64);
        let (tx, rx) = mpsc::channel();
        let (stx, srx) = mpsc::channel();
        let (ctx, crx) = mpsc::channel();
        std::thread::spawn(move || {
            for ev in conn.iter() {
                match ev {
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                        if tx.send(p).is_err() {
                            return;
                        }
                    }
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_))) => {
                        let _ = stx.send(());
                    }
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) => {
                        let _ = ctx.send(());
                    }
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        });
        // Publish a no-op to drive the connection, then wait for CONNACK.
        crx.recv_timeout(T).expect("peer: no CONNACK");
        Peer {
            client,
            rx,
            suback: srx,
        }
    }

    /// Subscribes and waits for SUBACK.
    pub fn subscribe(&self, topic: &str, qos: u8) {
        self.client.subscribe(topic, qos_of(qos)).unwrap();
        self.suback.recv_timeout(T).expect("peer: no SUBACK");
    }

    /// Publishes (not retained).
    pub fn publish(&self, topic: &str, qos: u8, payload: &[u8]) {
        self.client
            .publish(topic, qos_of(qos), false, payload.to_vec())
            .unwrap();
    }

    /// The next PUBLISH (5 s at most).
    pub fn recv(&self) -> rumqttc::Publish {
        self.rx.recv_timeout(T).expect("peer: no PUBLISH")
    }

    /// True if no PUBLISH arrives within `d`.
    pub fn nothing_for(&self, d: Duration) -> bool {
        self.rx.recv_timeout(d).is_err()
    }
}

/// An independent MQTT 3.1.1 client (rumqttc) that outlives the broker: it
/// connects again by itself after the broker went away (with a persistent
/// session, so that QoS 1 messages published meanwhile still reach it),
/// subscribes again each time, and keeps every PUBLISH it receives. For
/// tests in which the broker restarts.
pub struct Watcher {
    /// The rumqttc client.
    pub client: rumqttc::Client,
    got: std::sync::Arc<std::sync::Mutex<Vec<rumqttc::Publish>>>,
}

impl Watcher {
    /// Connects as `id`, subscribes to `topics` at QoS 1, and waits for the
    /// first SUBACK.
    pub fn new(b: &Broker, id: &str, topics: &[&str]) -> Watcher {
        let mut o = rumqttc::MqttOptions::new(id, b.host.clone(), b.port);
        o.set_keep_alive(Duration::from_secs(5));
        o.set_clean_session(false);
        let (client, mut conn) = rumqttc::Client::new(o, 1024);
        let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (stx, srx) = mpsc::channel();
        let topics: Vec<String> = topics.iter().map(|t| t.to_string()).collect();
        let sub = client.clone();
        let g = got.clone();
        std::thread::spawn(move || {
            for ev in conn.iter() {
                match ev {
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) => {
                        for t in &topics {
                            let _ = sub.try_subscribe(t, rumqttc::QoS::AtLeastOnce);
                        }
                    }
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_))) => {
                        let _ = stx.send(());
                    }
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                        g.lock().unwrap_or_else(|e| e.into_inner()).push(p);
                    }
                    Ok(_) => {}
                    // The broker went away: rumqttc connects again on the
                    // next poll; wait a little meanwhile.
                    Err(_) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        });
        srx.recv_timeout(T).expect("watcher: no SUBACK");
        Watcher { client, got }
    }

    /// Payloads received on `topic`, in the order they arrived.
    pub fn payloads(&self, topic: &str) -> Vec<Vec<u8>> {
        self.got
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|p| p.topic == topic)
            .map(|p| p.payload.to_vec())
            .collect()
    }

    /// Waits (up to `limit`) until `f` holds for the payloads on `topic`.
    pub fn wait_for(&self, topic: &str, limit: Duration, f: impl Fn(&[Vec<u8>]) -> bool) -> bool {
        let start = std::time::Instant::now();
        loop {
            if f(&self.payloads(topic)) {
                return true;
            }
            if start.elapsed() > limit {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Publishes at QoS 1 (not retained); queued while the broker is away.
    pub fn publish(&self, topic: &str, payload: &[u8]) {
        let _ = self
            .client
            .try_publish(topic, rumqttc::QoS::AtLeastOnce, false, payload.to_vec());
    }
}

/// rumqttc's QoS for a number.
pub fn qos_of(q: u8) -> rumqttc::QoS {
    match q {
        0 => rumqttc::QoS::AtMostOnce,
        1 => rumqttc::QoS::AtLeastOnce,
        _ => rumqttc::QoS::ExactlyOnce,
    }
}
