//! End to end: the driver <-> the BC26 simulator <-> a real MQTT broker <-> an
//! independent MQTT client (rumqttc). The broker is an in-process rmqtt, or the
//! one `MQTT_HOST`/`MQTT_PORT` name (`.ci/run` runs these tests a second time
//! against Mosquitto).

mod common;

use std::io::{Read as _, Write as _};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use bc26_mqtt::commands::Will;
use bc26_mqtt::{
    ClientId, Config, DataFormat, Error, Events, Grant, LinkClosedReason, Modem, MqttClient,
    MqttVersion, QoS, Runner, State,
};
use bc26_sim::broker::{broker, Peer};
use bc26_sim::{HostSide, Sim, SimConfig, SimHandle, SimReader, SimWriter};
use common::{run, with_runner};
use embassy_futures::join::join_array;
use embassy_time::{with_timeout, Duration};

type SimRunner = Runner<'static, SimReader, SimWriter>;

/// A name no other test (or test process) uses.
fn uniq(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A driver on a fresh simulator (echo on, as the factory default).
fn driver(cfg: SimConfig) -> (Modem<'static>, SimRunner, SimHandle) {
    let (handle, HostSide { reader, writer }) = Sim::start(cfg);
    let state: &'static mut State = Box::leak(Box::new(State::new()));
    let config = Config::new()
        .command_timeout(Duration::from_secs(2))
        .open_timeout(Duration::from_secs(10));
    let (modem, runner) = bc26_mqtt::new(state, reader, writer, config).expect("consistent Config");
    (modem, runner, handle)
}

/// Opens and connects `client` to the broker under test.
async fn online(c: MqttClient<'static>, cid: &str) {
    let b = broker();
    c.open(&b.host, b.port).await.expect("open");
    c.connect(cid, None, None).await.expect("connect");
}

async fn next_message(events: &mut Events<'static>) -> common::Msg {
    match with_timeout(Duration::from_secs(5), common::next_ev(events))
        .await
        .expect("no event within 5 s")
    {
        common::Ev::Message(m) => m,
        other => panic!("expected a message, got {other:?}"),
    }
}

fn id(n: u8) -> ClientId {
    ClientId::new(n).unwrap()
}

#[test]
fn publishes_of_every_qos_reach_an_independent_client_with_their_bytes_and_qos() {
    let topic = uniq("e2e/pub");
    let peer = Peer::new(broker(), &uniq("peer"));
    peer.subscribe(&format!("{topic}/#"), 2);
    let t = topic.clone();
    run(async move {
        let (modem, runner, _sim) = driver(SimConfig::default());
        let c = modem.client(id(0));
        with_runner(runner, async {
            online(c, &uniq("dev")).await;
            for q in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
                let p = c
                    .publish(
                        &format!("{t}/q{}", q.get()),
                        format!("qos {}", q.get()).as_bytes(),
                        q,
                        false,
                    )
                    .await
                    .unwrap();
                assert_eq!(p.msg_id == 0, q == QoS::AtMostOnce);
            }
            c.disconnect().await.unwrap();
        })
        .await;
    });
    for q in 0..3u8 {
        let m = peer.recv();
        assert_eq!(m.topic, format!("{topic}/q{q}"));
        assert_eq!(&m.payload[..], format!("qos {q}").as_bytes());
        assert_eq!(m.qos as u8, q);
        assert!(!m.retain);
    }
}

#[test]
fn a_retained_publish_is_kept_by_the_broker() {
    let topic = uniq("e2e/retained");
    let t = topic.clone();
    run(async move {
        let (modem, runner, _sim) = driver(SimConfig::default());
        let c = modem.client(id(1));
        with_runner(runner, async {
            online(c, &uniq("dev")).await;
            c.publish(&t, b"kept", QoS::AtLeastOnce, true)
                .await
                .unwrap();
            c.disconnect().await.unwrap();
        })
        .await;
    });
    // A subscriber that comes later gets it, flagged as retained.
    let peer = Peer::new(broker(), &uniq("peer"));
    peer.subscribe(&topic, 1);
    let m = peer.recv();
    assert_eq!(
        (&m.topic[..], &m.payload[..], m.retain),
        (&topic[..], &b"kept"[..], true)
    );
    // Clear it again (an empty retained message).
    peer.client
        .publish(&topic, bc26_sim::broker::qos_of(1), true, Vec::new())
        .unwrap();
}

#[test]
fn messages_from_an_independent_client_arrive_as_driver_events() {
    let topic = uniq("e2e/down");
    let peer = Peer::new(broker(), &uniq("peer"));
    let peer = Arc::new(Mutex::new(peer));
    let p2 = peer.clone();
    let t = topic.clone();
    run(async move {
        let (modem, runner, _sim) = driver(SimConfig::default());
        let mut events = modem.events().unwrap();
        let c = modem.client(id(2));
        with_runner(runner, async {
            online(c, &uniq("dev")).await;
            let g = c
                .subscribe(&[(&format!("{t}/#"), QoS::ExactlyOnce)])
                .await
                .unwrap();
            assert_eq!(g.get(0), Some(Grant::Granted(QoS::ExactlyOnce)));
            for q in 0..3u8 {
                p2.lock()
                    .unwrap()
                    .publish(&format!("{t}/{q}"), q, format!("down {q}").as_bytes());
                let m = next_message(&mut events).await;
                assert_eq!(
                    (m.client, m.topic.as_str(), &m.payload[..]),
                    (
                        id(2),
                        format!("{t}/{q}").as_str(),
                        format!("down {q}").as_bytes()
                    )
                );
                assert_eq!(m.msg_id == 0, q == 0);
            }
            c.unsubscribe(&[&format!("{t}/#")]).await.unwrap();
            p2.lock()
                .unwrap()
                .publish(&format!("{t}/after"), 1, b"not for us");
            assert!(
                with_timeout(Duration::from_millis(500), common::next_ev(&mut events))
                    .await
                    .is_err(),
                "a message after UNSUBSCRIBE"
            );
            c.disconnect().await.unwrap();
        })
        .await;
    });
    drop(peer);
}

#[test]
fn the_will_is_published_when_the_link_drops_without_disconnect() {
    let topic = uniq("e2e/will");
    let peer = Peer::new(broker(), &uniq("peer"));
    peer.subscribe(&topic, 1);
    let t = topic.clone();
    run(async move {
        let (modem, runner, _sim) = driver(SimConfig::default());
        let c = modem.client(id(3));
        with_runner(runner, async {
            c.set_will(Some(
                Will::new(&t, "gone, unexpectedly", QoS::AtLeastOnce, false).unwrap(),
            ))
            .await
            .unwrap();
            c.set_keepalive(30).await.unwrap();
            online(c, &uniq("dev")).await;
            // Close the TCP link without DISCONNECT: an unclean drop.
            c.close().await.unwrap();
        })
        .await;
    });
    let m = peer.recv();
    assert_eq!(
        (&m.topic[..], &m.payload[..]),
        (&topic[..], &b"gone, unexpectedly"[..])
    );
}

#[test]
fn mqtt_3_1_and_3_1_1_both_connect_and_publish() {
    let topic = uniq("e2e/ver");
    let peer = Peer::new(broker(), &uniq("peer"));
    peer.subscribe(&format!("{topic}/#"), 1);
    let t = topic.clone();
    run(async move {
        let (modem, runner, _sim) = driver(SimConfig::default());
        with_runner(runner, async {
            for (n, v) in [(0u8, MqttVersion::V3_1), (1, MqttVersion::V3_1_1)] {
                let c = modem.client(id(n));
                c.set_version(v).await.unwrap();
                assert_eq!(c.version().await.unwrap(), Some(v));
                online(c, &uniq("dev")).await;
                c.publish(&format!("{t}/{}", v as u8), b"hi", QoS::AtLeastOnce, false)
                    .await
                    .unwrap();
                c.disconnect().await.unwrap();
            }
        })
        .await;
    });
    let mut got: Vec<String> = (0..2).map(|_| peer.recv().topic).collect();
    got.sort();
    assert_eq!(got, [format!("{topic}/3"), format!("{topic}/4")]);
}

#[test]
fn wrong_credentials_are_refused_with_the_connack_code_and_right_ones_accepted() {
    let Some(auth) = broker().auth.as_ref() else {
        eprintln!("skipped: the broker under test has no listener that needs credentials");
        return;
    };
    let (port, user, password) = (auth.port, auth.user.clone(), auth.password.clone());
    run(async move {
        let (modem, runner, _sim) = driver(SimConfig::default());
        let c = modem.client(id(4));
        with_runner(runner, async {
            let host = broker().host.clone();
            c.open(&host, port).await.unwrap();
            let r = c.connect(&uniq("dev"), Some(&user), Some("wrong")).await;
            // Mosquitto and the in-process broker both answer CONNACK 5.
            assert_eq!(
                r,
                Err(Error::ConnectRefused(bc26_mqtt::ConnackCode::NotAuthorized))
            );
            // The simulator closes a refused link, as the modem does: open again.
            let _ = c.close().await;
            c.open(&host, port).await.unwrap();
            c.connect(&uniq("dev"), Some(&user), Some(&password))
                .await
                .unwrap();
            c.disconnect().await.unwrap();
        })
        .await;
    });
}

/// A TCP relay to the broker that the test can cut, as a broker that goes away.
struct Relay {
    port: u16,
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl Relay {
    fn new(to: (String, u16)) -> Relay {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let c2 = conns.clone();
        std::thread::spawn(move || {
            for inbound in l.incoming().flatten() {
                let Ok(outbound) = TcpStream::connect((to.0.as_str(), to.1)) else {
                    continue;
                };
                c2.lock()
                    .unwrap()
                    .extend([inbound.try_clone().unwrap(), outbound.try_clone().unwrap()]);
                for (mut from, mut into) in [
                    (inbound.try_clone().unwrap(), outbound.try_clone().unwrap()),
                    (outbound, inbound),
                ] {
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 4096];
                        while let Ok(n) = from.read(&mut buf) {
                            if n == 0 || into.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = into.shutdown(Shutdown::Both);
                    });
                }
            }
        });
        Relay { port, conns }
    }

    fn cut(&self) {
        for s in self.conns.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

#[test]
fn a_broker_gone_mid_session_is_reported_as_link_closed_and_ends_pending_work() {
    let b = broker();
    let relay = Arc::new(Relay::new((b.host.clone(), b.port)));
    let r2 = relay.clone();
    run(async move {
        let (modem, runner, _sim) = driver(SimConfig::default());
        let mut events = modem.events().unwrap();
        let c = modem.client(id(5));
        with_runner(runner, async {
            c.open("127.0.0.1", r2.port).await.unwrap();
            c.connect(&uniq("dev"), None, None).await.unwrap();
            r2.cut();
            let e = with_timeout(Duration::from_secs(5), common::next_ev(&mut events))
                .await
                .expect("no +QMTSTAT");
            assert_eq!(
                e,
                common::Ev::LinkClosed {
                    client: id(5),
                    reason: LinkClosedReason::PeerClosed
                }
            );
            // The modem refuses to publish on a closed link.
            assert!(c.publish("t", b"x", QoS::AtLeastOnce, false).await.is_err());
        })
        .await;
    });
}

#[test]
fn six_clients_at_once() {
    let topic = uniq("e2e/six");
    let peer = Arc::new(Mutex::new(Peer::new(broker(), &uniq("peer"))));
    peer.lock().unwrap().subscribe(&format!("{topic}/up/#"), 1);
    let (p2, t) = (peer.clone(), topic.clone());
    run(async move {
        let (modem, runner, _sim) = driver(SimConfig::default());
        let mut events = modem.events().unwrap();
        with_runner(runner, async {
            let clients: [MqttClient<'static>; 6] =
                core::array::from_fn(|i| modem.client(id(i as u8)));
            // All six open, connect and subscribe at the same time.
            join_array(clients.map(|c| {
                let t = t.clone();
                async move {
                    online(c, &uniq("dev")).await;
                    c.subscribe(&[(&format!("{t}/down/{}", c.id().get()), QoS::AtLeastOnce)])
                        .await
                        .unwrap();
                }
            }))
            .await;
            for c in clients {
                p2.lock().unwrap().publish(
                    &format!("{t}/down/{}", c.id().get()),
                    1,
                    format!("to {}", c.id().get()).as_bytes(),
                );
            }
            let mut seen = [false; 6];
            for _ in 0..6 {
                let m = next_message(&mut events).await;
                assert_eq!(m.topic.as_str(), format!("{t}/down/{}", m.client.get()));
                assert_eq!(&m.payload[..], format!("to {}", m.client.get()).as_bytes());
                seen[usize::from(m.client.get())] = true;
            }
            assert_eq!(seen, [true; 6]);
            join_array(clients.map(|c| {
                let t = t.clone();
                async move {
                    c.publish(
                        &format!("{t}/up/{}", c.id().get()),
                        b"up",
                        QoS::AtLeastOnce,
                        false,
                    )
                    .await
                    .unwrap();
                }
            }))
            .await;
        })
        .await;
    });
    let mut up: Vec<String> = (0..6).map(|_| peer.lock().unwrap().recv().topic).collect();
    up.sort();
    assert_eq!(
        up,
        (0..6)
            .map(|i| format!("{topic}/up/{i}"))
            .collect::<Vec<_>>()
    );
}

#[test]
fn binary_and_1024_byte_payloads_go_both_ways() {
    let topic = uniq("e2e/big");
    let peer = Arc::new(Mutex::new(Peer::new(broker(), &uniq("peer"))));
    peer.lock().unwrap().subscribe(&format!("{topic}/up/#"), 1);
    let (p2, t) = (peer.clone(), topic.clone());
    let binary: Vec<u8> = (0..512u32).map(|i| (i * 37 % 256) as u8).collect();
    let big_binary: Vec<u8> = (0..1024u32).map(|i| (i * 11 % 256) as u8).collect();
    let text: Vec<u8> = (0..1024).map(|i| b'a' + (i % 26) as u8).collect();
    let (b2, bb2, t2) = (binary.clone(), big_binary.clone(), text.clone());
    run(async move {
        let (modem, runner, _sim) = driver(SimConfig {
            echo: false,
            ..SimConfig::default()
        });
        let mut events = modem.events().unwrap();
        let (hexc, textc) = (modem.client(id(0)), modem.client(id(1)));
        with_runner(runner, async {
            hexc.set_data_format(DataFormat::Hex, DataFormat::Hex)
                .await
                .unwrap();
            online(hexc, &uniq("dev")).await;
            online(textc, &uniq("dev")).await;
            hexc.subscribe(&[(&format!("{t}/down"), QoS::AtLeastOnce)])
                .await
                .unwrap();
            // Up: 512 binary bytes (1024 hex digits, data mode) and 1024 text bytes (data mode).
            hexc.publish(&format!("{t}/up/bin"), &b2, QoS::AtLeastOnce, false)
                .await
                .unwrap();
            textc
                .publish(&format!("{t}/up/text"), &t2, QoS::AtLeastOnce, false)
                .await
                .unwrap();
            // Down: 1024 binary bytes, 2048 hex digits in one +QMTRECV.
            p2.lock().unwrap().publish(&format!("{t}/down"), 1, &bb2);
            let m = next_message(&mut events).await;
            assert_eq!((m.client, &m.payload[..]), (id(0), &bb2[..]));
        })
        .await;
    });
    let a = peer.lock().unwrap().recv();
    let b = peer.lock().unwrap().recv();
    let (bin, txt) = if a.topic.ends_with("bin") {
        (a, b)
    } else {
        (b, a)
    };
    assert_eq!(&bin.payload[..], &binary[..]);
    assert_eq!(&txt.payload[..], &text[..]);
}

#[test]
fn payloads_with_quotes_commas_and_crlf_go_both_ways_unchanged() {
    let topic = uniq("e2e/json");
    let payload = b"{\"a\":\"b, c\",\r\n \"d\":[1,2],\"e\":\"x\\\"y\"}".to_vec();
    let peer = Arc::new(Mutex::new(Peer::new(broker(), &uniq("peer"))));
    peer.lock().unwrap().subscribe(&format!("{topic}/up"), 1);
    let (p2, t, pl) = (peer.clone(), topic.clone(), payload.clone());
    run(async move {
        let (modem, runner, _sim) = driver(SimConfig::default());
        let mut events = modem.events().unwrap();
        let c = modem.client(id(0));
        with_runner(runner, async {
            online(c, &uniq("dev")).await;
            c.subscribe(&[(&format!("{t}/down"), QoS::AtLeastOnce)])
                .await
                .unwrap();
            c.publish(&format!("{t}/up"), &pl, QoS::AtLeastOnce, false)
                .await
                .unwrap();
            p2.lock().unwrap().publish(&format!("{t}/down"), 1, &pl);
            let m = next_message(&mut events).await;
            assert_eq!(&m.payload[..], &pl[..]);
        })
        .await;
    });
    assert_eq!(&peer.lock().unwrap().recv().payload[..], &payload[..]);
}

#[test]
fn every_cfg_option_read_and_test_form_agrees_between_driver_and_simulator() {
    use bc26_mqtt::commands::{
        ConnectionState, TestCloseNetwork, TestConfigure, TestConnect, TestDisconnect,
        TestOpenNetwork, TestPublish, TestSubscribe, TestUnsubscribe, TimeoutSetting, WillSetting,
    };
    run(async move {
        let (modem, runner, _sim) = driver(SimConfig::default());
        let c = modem.client(id(2));
        with_runner(runner, async {
            c.set_will(Some(
                Will::new("dev/lwt", "gone, bye", QoS::AtLeastOnce, true).unwrap(),
            ))
            .await
            .unwrap();
            assert_eq!(
                c.will().await.unwrap(),
                WillSetting::Enabled {
                    qos: QoS::AtLeastOnce,
                    retain: true,
                    topic: "dev/lwt".try_into().unwrap(),
                    message: "gone, bye".try_into().unwrap()
                }
            );
            c.set_will(None).await.unwrap();
            assert_eq!(c.will().await.unwrap(), WillSetting::Disabled);
            c.set_timeout(7, 2, true).await.unwrap();
            assert_eq!(
                c.timeout().await.unwrap(),
                TimeoutSetting {
                    pkt_timeout: 7,
                    retry_times: 2,
                    timeout_notice: true
                }
            );
            c.set_clean_session(false).await.unwrap();
            assert!(!c.clean_session().await.unwrap());
            c.set_keepalive(3600).await.unwrap();
            assert_eq!(c.keepalive().await.unwrap(), 3600);
            assert_eq!(c.aliauth().await.unwrap(), None);
            c.set_aliauth("pk", "dev-1", "s3cret").await.unwrap();
            let a = c.aliauth().await.unwrap().unwrap();
            assert_eq!(
                (
                    a.product_key.as_str(),
                    a.device_name.as_str(),
                    a.device_secret.as_str()
                ),
                ("pk", "dev-1", "s3cret")
            );
            c.set_version(MqttVersion::V3_1).await.unwrap();
            assert_eq!(c.version().await.unwrap(), Some(MqttVersion::V3_1));
            c.set_data_format(DataFormat::Hex, DataFormat::Text)
                .await
                .unwrap();
            let f = c.data_format().await.unwrap();
            assert_eq!((f.send, f.recv), (DataFormat::Hex, DataFormat::Text));
            c.set_echo_mode(false).await.unwrap();
            assert!(!c.echo_mode().await.unwrap());

            // Test forms: the simulator prints the reference's lines.
            assert_eq!(modem.send(&TestConfigure).await.unwrap().lines().count(), 8);
            for t in [
                modem.send(&TestOpenNetwork).await.unwrap(),
                modem.send(&TestCloseNetwork).await.unwrap(),
                modem.send(&TestConnect).await.unwrap(),
                modem.send(&TestDisconnect).await.unwrap(),
                modem.send(&TestSubscribe).await.unwrap(),
                modem.send(&TestUnsubscribe).await.unwrap(),
                modem.send(&TestPublish).await.unwrap(),
            ] {
                assert_eq!(t.lines().count(), 1, "{t:?}");
                assert!(
                    t.as_str().starts_with("+QMT") && t.as_str().contains("(0-5)"),
                    "{t:?}"
                );
            }

            // Read forms, with client 0 connected and client 2 only open.
            let b = broker();
            let c0 = modem.client(id(0));
            online(c0, &uniq("dev")).await;
            c.set_version(MqttVersion::V3_1_1).await.unwrap();
            c.open(&b.host, b.port).await.unwrap();
            let links = modem.open_links().await.unwrap();
            let mut open: Vec<(u8, u16)> =
                links.0.iter().map(|l| (l.client.get(), l.port)).collect();
            open.sort();
            assert_eq!(open, [(0, b.port), (2, b.port)]);
            assert!(links.0.iter().all(|l| l.host.as_str() == b.host));
            let states = modem.connection_states().await.unwrap();
            assert_eq!(states.get(id(0)), Some(ConnectionState::Connected));
            assert_eq!(states.get(id(2)), Some(ConnectionState::Initial));
            c0.disconnect().await.unwrap();
            c.close().await.unwrap();
        })
        .await;
    });
}
