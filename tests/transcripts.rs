//! The modem transcripts replayed through the public API, with the modem's
//! bytes cut at every offset (and byte by byte): every chunking must give the
//! same result.

mod common;

use bc26_mqtt::commands::{TestConnect, TestOpenNetwork, TestPublish, TestSubscribe};
use bc26_mqtt::{
    ClientId, Error, Events, Grant, LinkClosedReason, Modem, ModemError, OpenError, QoS,
};
use common::transcript::{modem_len, parse, play, play_lossy, Cuts, Step};
use common::{fast_config, next_command_works, run, setup, with_runner};
use embassy_futures::join::join;
use embassy_futures::select::{select, Either};
use embassy_time::{Duration, Timer};

const SEED: &str = include_str!("transcripts/seed-example.txt");
const ECHO_ON: &str = include_str!("transcripts/bg770a-echo-on.txt");
const FAILURES: &str = include_str!("transcripts/failures.txt");

fn id(n: u8) -> ClientId {
    ClientId::new(n).unwrap()
}

async fn message(events: &mut Events<'static>) -> (u8, u32, String, Vec<u8>) {
    match common::next_ev(events).await {
        common::Ev::Message(m) => (
            m.client.get(),
            m.msg_id,
            m.topic.as_str().to_owned(),
            m.payload.to_vec(),
        ),
        other => panic!("expected a message, got {other:?}"),
    }
}

/// The BC26 note's session (echo off), through the public API.
async fn seed_script(modem: Modem<'static>) {
    let mut events = modem.events().unwrap();
    let c0 = modem.client(id(0));
    let t = modem.send(&TestOpenNetwork).await.unwrap();
    assert_eq!(
        t.lines().collect::<Vec<_>>(),
        ["+QMTOPEN: (0-5),\"<host_name>\",<port>"]
    );
    c0.open("220.180.239.212", 8401).await.unwrap();
    let links = modem.open_links().await.unwrap();
    assert_eq!(links.0.len(), 1);
    assert_eq!(
        (links.0[0].client, links.0[0].host.as_str(), links.0[0].port),
        (id(0), "220.180.239.212", 8401)
    );
    let t = modem.send(&TestConnect).await.unwrap();
    assert_eq!(
        t.lines().collect::<Vec<_>>(),
        ["+QMTCONN: (0-5),\"<clientID>\"[,\"<username>\"[,\"<password>\"]]"]
    );
    c0.connect("clientExample", None, None).await.unwrap();
    let t = modem.send(&TestSubscribe).await.unwrap();
    assert_eq!(t.lines().count(), 1);
    let g = c0
        .subscribe(&[("topic/example", QoS::ExactlyOnce)])
        .await
        .unwrap();
    assert_eq!(
        g.iter().collect::<Vec<_>>(),
        [Grant::Granted(QoS::ExactlyOnce)]
    );
    let g = c0
        .subscribe(&[("topic/pub", QoS::AtMostOnce)])
        .await
        .unwrap();
    assert_eq!(
        g.iter().collect::<Vec<_>>(),
        [Grant::Granted(QoS::AtMostOnce)]
    );
    assert_eq!(
        message(&mut events).await,
        (
            0,
            0,
            "topic/example".into(),
            b"This is the payload related to topic".to_vec()
        )
    );
    c0.unsubscribe(&["topic/example"]).await.unwrap();
    let t = modem.send(&TestPublish).await.unwrap();
    assert_eq!(
        t.lines().next(),
        Some("+QMTPUB: (0-5),<msgID>,<qos>,<retain>,\"<topic>\",\"<msg>\"")
    );
    let p = c0
        .publish("topic/pub", b"hello MQTT.", QoS::AtMostOnce, false)
        .await
        .unwrap();
    assert_eq!(p.msg_id, 0);
    assert_eq!(
        message(&mut events).await,
        (0, 0, "topic/pub".into(), b"hello MQTT.".to_vec())
    );
    c0.publish_data_mode(
        "topic/pub",
        b"This is test data, hello MQTT.",
        QoS::AtMostOnce,
        false,
    )
    .await
    .unwrap();
    assert_eq!(
        message(&mut events).await,
        (
            0,
            0,
            "topic/pub".into(),
            b"This is test data, hello MQTT.".to_vec()
        )
    );
    c0.disconnect().await.unwrap();
    let s = modem.stats();
    assert_eq!(
        (
            s.stale_results,
            s.malformed_urcs,
            s.unsolicited_lines,
            s.stray_responses,
            s.events_dropped
        ),
        (0, 0, 0, 0, 0),
        "{s:?}"
    );
}

/// A public BG770A log with echo on (ATE1).
async fn echo_on_script(modem: Modem<'static>) {
    let mut events = modem.events().unwrap();
    let c0 = modem.client(id(0));
    c0.open("broker.emqx.io", 1883).await.unwrap();
    c0.connect("python-mqtt-176", Some("user"), Some("secret"))
        .await
        .unwrap();
    let g = c0
        .subscribe(&[("qf4dcfae.eu-central-1.emqx.cloud", QoS::ExactlyOnce)])
        .await
        .unwrap();
    assert_eq!(g.get(0), Some(Grant::Granted(QoS::ExactlyOnce)));
    assert_eq!(
        message(&mut events).await,
        (
            0,
            0,
            "qf4dcfae.eu-central-1.emqx.cloud".into(),
            b"hello GPS-4G-HAT shield".to_vec()
        )
    );
    c0.disconnect().await.unwrap();
    let s = modem.stats();
    assert_eq!(
        (
            s.stale_results,
            s.malformed_urcs,
            s.unsolicited_lines,
            s.stray_responses
        ),
        (0, 0, 0, 0),
        "{s:?}"
    );
}

/// Failure results from real modules.
async fn failures_script(modem: Modem<'static>) {
    let mut events = modem.events().unwrap();
    assert_eq!(
        modem
            .client(id(0))
            .open("a2c0mm2np5hs-ats.iot.us-west-2.amazonaws.com", 8883)
            .await,
        Err(Error::Open(OpenError::NetworkFailed))
    );
    assert_eq!(
        modem.client(id(1)).open("broker.emqx.io", 1883).await,
        Err(Error::Open(OpenError::DnsFailed))
    );
    assert_eq!(
        modem.client(id(1)).connect("test_client", None, None).await,
        Err(Error::ConnectRefused(
            bc26_mqtt::ConnackCode::IdentifierRejected
        ))
    );
    assert_eq!(
        modem
            .client(id(0))
            .publish("t/x", b"v", QoS::AtLeastOnce, false)
            .await,
        Err(Error::SendFailed)
    );
    match common::next_ev(&mut events).await {
        common::Ev::LinkClosed { client, reason } => {
            assert_eq!((client, reason), (id(0), LinkClosedReason::PingFailed))
        }
        other => panic!("{other:?}"),
    }
    // Client 6 does not exist: the driver refuses it, so the raw line goes
    // through the escape hatch, and the modem's ERROR comes back typed. (A
    // raw line of a command the driver owns is refused and never sent: the
    // transcript's next line is the keepalive one.)
    assert!(ClientId::new(6).is_err());
    let owned: heapless::String<64> = "AT+QMTOPEN=6,\"host\",1883\r".try_into().unwrap();
    assert_eq!(modem.send(&owned).await, Err(Error::OwnedByDriver));
    let raw: heapless::String<64> = "AT+QMTCFG=\"keepalive\",6,120\r".try_into().unwrap();
    assert_eq!(modem.send(&raw).await, Err(Error::Modem(ModemError::Error)));
}

/// Replays `text` once for each chunking in `cuts`, in one executor run.
fn replay<F, Fut>(text: &'static str, script: F, cuts: Vec<Cuts>)
where
    F: Fn(Modem<'static>) -> Fut + 'static,
    Fut: core::future::Future<Output = ()>,
{
    let steps: Vec<Step> = parse(text);
    run(async move {
        for c in cuts {
            let (modem, runner, mut fake) = setup(fast_config());
            with_runner(runner, join(play(&mut fake, &steps, c), script(modem))).await;
            assert!(
                fake.nothing_from_host(),
                "{c:?}: host sent more than the transcript"
            );
        }
    });
}

/// Whole segments, byte by byte, and one cut at every offset of the modem's
/// bytes (the cut points spread over two threads).
fn replay_every_split<F, Fut>(text: &'static str, script: F)
where
    F: Fn(Modem<'static>) -> Fut + Clone + Send + 'static,
    Fut: core::future::Future<Output = ()>,
{
    let n = modem_len(&parse(text));
    let mut first: Vec<Cuts> = vec![Cuts::Whole, Cuts::Every];
    first.extend((1..n).step_by(2).map(Cuts::At));
    let second: Vec<Cuts> = (2..n).step_by(2).map(Cuts::At).collect();
    let total = first.len() + second.len();
    let other = {
        let script = script.clone();
        std::thread::spawn(move || replay(text, script, second))
    };
    replay(text, script, first);
    other.join().expect("a split failed");
    assert_eq!(total, n + 1, "every cut point was replayed");
}

#[test]
fn seed_session_gives_the_same_result_for_every_split() {
    replay_every_split(SEED, seed_script);
}

#[test]
fn echo_on_session_gives_the_same_result_for_every_split() {
    replay_every_split(ECHO_ON, echo_on_script);
}

#[test]
fn failure_results_give_the_same_errors_for_every_split() {
    replay_every_split(FAILURES, failures_script);
}

// ------------------------------------------------------------------ one byte lost

/// The host side of each transcript, asking for the same operations but
/// accepting any outcome: with a byte lost, an answer may be garbled or
/// missing. What must hold is that each call ends, and that the driver is
/// usable afterwards.
async fn lossy_script(modem: Modem<'static>, which: &'static str) {
    let c0 = modem.client(id(0));
    let c1 = modem.client(id(1));
    match which {
        "seed" => {
            let _ = modem.send(&TestOpenNetwork).await;
            let _ = c0.open("220.180.239.212", 8401).await;
            let _ = modem.open_links().await;
            let _ = modem.send(&TestConnect).await;
            let _ = c0.connect("clientExample", None, None).await;
            let _ = modem.send(&TestSubscribe).await;
            let _ = c0.subscribe(&[("topic/example", QoS::ExactlyOnce)]).await;
            let _ = c0.subscribe(&[("topic/pub", QoS::AtMostOnce)]).await;
            let _ = c0.unsubscribe(&["topic/example"]).await;
            let _ = modem.send(&TestPublish).await;
            let _ = c0
                .publish("topic/pub", b"hello MQTT.", QoS::AtMostOnce, false)
                .await;
            let _ = c0
                .publish_data_mode(
                    "topic/pub",
                    b"This is test data, hello MQTT.",
                    QoS::AtMostOnce,
                    false,
                )
                .await;
            let _ = c0.disconnect().await;
        }
        "echo" => {
            let _ = c0.open("broker.emqx.io", 1883).await;
            let _ = c0
                .connect("python-mqtt-176", Some("user"), Some("secret"))
                .await;
            let _ = c0
                .subscribe(&[("qf4dcfae.eu-central-1.emqx.cloud", QoS::ExactlyOnce)])
                .await;
            let _ = c0.disconnect().await;
        }
        _ => {
            let _ = c0
                .open("a2c0mm2np5hs-ats.iot.us-west-2.amazonaws.com", 8883)
                .await;
            let _ = c1.open("broker.emqx.io", 1883).await;
            let _ = c1.connect("test_client", None, None).await;
            let _ = c0.publish("t/x", b"v", QoS::AtLeastOnce, false).await;
            let raw: heapless::String<64> = "AT+QMTCFG=\"keepalive\",6,120\r".try_into().unwrap();
            let _ = modem.send(&raw).await;
        }
    }
}

/// Replays `text` with each byte of the modem's stream lost in turn (spread
/// over threads); after each, the next command gets its own answer.
fn every_lost_byte(text: &'static str, which: &'static str) {
    use std::sync::atomic::{AtomicU32, Ordering};
    let steps = parse(text);
    let n = modem_len(&steps);
    let threads = 8;
    // What the losses made the driver do, summed over every replay.
    let seen: &'static [AtomicU32; 4] = Box::leak(Box::default());
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let steps = steps.clone();
            std::thread::spawn(move || {
                run(async move {
                    for drop_at in (t..n).step_by(threads) {
                        let config = fast_config()
                            .command_timeout(Duration::from_millis(40))
                            .open_timeout(Duration::from_millis(60))
                            .close_timeout(Duration::from_millis(60))
                            .packet_deadline(Duration::from_millis(60))
                            .quiet_gap(Duration::from_millis(15));
                        let (modem, runner, mut fake) = setup(config);
                        with_runner(runner, async {
                            join(
                                lossy_script(modem, which),
                                play_lossy(&mut fake, &steps, drop_at, Duration::from_millis(150)),
                            )
                            .await;
                            Timer::after_millis(20).await;
                            fake.discard();
                            let r = select(
                                next_command_works(modem.client(id(0)), &mut fake, 42),
                                Timer::after_secs(5),
                            )
                            .await;
                            assert!(
                                matches!(r, Either::First(())),
                                "{which}: byte {drop_at} lost: wedged"
                            );
                            let s = modem.stats();
                            for (k, v) in [s.fences, s.resyncs, s.malformed_urcs, 1]
                                .into_iter()
                                .enumerate()
                            {
                                seen[k].fetch_add(v, Ordering::Relaxed);
                            }
                        })
                        .await;
                    }
                });
            })
        })
        .collect();
    for h in handles {
        h.join().expect("a lost byte wedged the driver");
    }
    let [fences, resyncs, malformed, replays] = seen.each_ref().map(|a| a.load(Ordering::Relaxed));
    println!("{which}: {replays} replays, {fences} fences, {resyncs} resyncs, {malformed} malformed URCs");
    assert_eq!(replays as usize, n, "every byte was lost once");
    assert!(fences > 0, "no loss ever needed the fence");
}

#[test]
fn seed_session_with_any_one_byte_lost_resynchronises_and_the_next_command_works() {
    every_lost_byte(SEED, "seed");
}

#[test]
fn echo_on_session_with_any_one_byte_lost_resynchronises_and_the_next_command_works() {
    every_lost_byte(ECHO_ON, "echo");
}

#[test]
fn failure_results_with_any_one_byte_lost_resynchronise_and_the_next_command_works() {
    every_lost_byte(FAILURES, "failures");
}
