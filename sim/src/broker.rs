//! A real MQTT broker for tests and demos, and an independent MQTT client to
//! check what really went over MQTT (feature `broker`, on by default).
//!
//! [`broker()`] is `MQTT_HOST`/`MQTT_PORT` when they are set (with
//! `MQTT_AUTH_PORT`, `MQTT_USER`, `MQTT_PASSWORD` for a listener that needs
//! credentials), and otherwise an in-process rmqtt on two free loopback ports.

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
        Broker {
            host: "127.0.0.1".into(),
            port,
            auth: Some(Auth {
                port: auth_port,
                user: USER.into(),
                password: PASS.into(),
            }),
            kind: "in-process rmqtt",
        }
    })
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

/// Start rmqtt on two free loopback ports (anonymous, and credentials required) in a
/// background thread with its own tokio runtime; returns the ports once both listen.
fn start_rmqtt() -> (u16, u16) {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("rmqtt".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("tokio runtime");
            rt.block_on(async move {
                use rmqtt::{context::ServerContext, net::Builder, server::MqttServer};
                let scx = ServerContext::new().build().await;
                // rmqtt keeps no retained messages unless a retainer is installed.
                *scx.extends.retain_mut().await = Box::new(Retainer(Default::default()));
                let reg = scx.extends.hook_mgr().register();
                reg.add(rmqtt::hook::Type::ClientAuthenticate, Box::new(AuthHook))
                    .await;
                reg.start().await;
                let anon = Builder::new()
                    .name("anon/tcp")
                    .laddr(([127, 0, 0, 1], 0).into())
                    .allow_zero_keepalive(true)
                    .bind()
                    .expect("bind")
                    .tcp()
                    .expect("tcp");
                let auth = Builder::new()
                    .name("auth/tcp")
                    .laddr(([127, 0, 0, 1], 0).into())
                    .allow_anonymous(false)
                    .allow_zero_keepalive(true)
                    .bind()
                    .expect("bind")
                    .tcp()
                    .expect("tcp");
                let p1 = anon.local_addr().expect("addr").port();
                let p2 = auth.local_addr().expect("addr").port();
                tx.send((p1, p2)).unwrap();
                let _reg = reg;
                MqttServer::new(scx)
                    .listener_by_id(anon, p1)
                    .listener_by_id(auth, p2)
                    .build()
                    .run()
                    .await
                    .expect("rmqtt run");
            });
        })
        .expect("spawn rmqtt");
    rx.recv_timeout(Duration::from_secs(20))
        .expect("rmqtt did not start")
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

/// rumqttc's QoS for a number.
pub fn qos_of(q: u8) -> rumqttc::QoS {
    match q {
        0 => rumqttc::QoS::AtMostOnce,
        1 => rumqttc::QoS::AtLeastOnce,
        _ => rumqttc::QoS::ExactlyOnce,
    }
}
