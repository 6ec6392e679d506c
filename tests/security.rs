//! A payload is never read as a modem line: not the device's own payload
//! echoed back in data mode, not a remote publisher's payload.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};

use bc26_mqtt::{ClientId, Config, Grant, QoS, State};
use bc26_sim::broker::{broker, Peer};
use bc26_sim::{HostSide, Sim, SimConfig};
use common::{fast_config, next_ev, run, settle, setup, try_next_ev, with_runner, Ev};
use embassy_futures::join::{join, join4};
use embassy_time::{with_timeout, Duration, Instant, Timer};

fn id(n: u8) -> ClientId {
    ClientId::new(n).unwrap()
}

fn uniq(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Lines the device's own payload holds, echoed back by the modem in data
/// mode: they complete nothing.
#[test]
fn an_echoed_payload_holding_modem_lines_completes_nothing_else() {
    for echo in [true, false] {
        run(async move {
            let (modem, runner, mut fake) = setup(fast_config());
            let c0 = modem.client(id(0));
            let forged =
                b"a\r\nOK\r\n+QMTPUB: 0,1,0\r\n+QMTSUB: 0,2,0,1\r\n+QMTSTAT: 0,1\r\nRDY\r\nz";
            with_runner(runner, async {
                let real_at = core::cell::Cell::new(None);
                let (p1, sub, dm, _) = join4(
                    async {
                        let r = c0.publish("t", b"v", QoS::AtLeastOnce, false).await;
                        (r, Instant::now())
                    },
                    async {
                        Timer::after_millis(5).await;
                        let r = c0.subscribe(&[("s", QoS::AtLeastOnce)]).await;
                        (r, Instant::now())
                    },
                    async {
                        Timer::after_millis(10).await;
                        c0.publish("t", forged, QoS::AtMostOnce, false).await
                    },
                    async {
                        fake.answer(b"AT+QMTPUB=0,1,1,0,\"t\",\"v\"\r", b"\r\nOK\r\n")
                            .await;
                        fake.answer(b"AT+QMTSUB=0,2,\"s\",1\r", b"\r\nOK\r\n").await;
                        fake.answer(b"AT+QMTPUB=0,0,0,0,\"t\"\r", b"\r\n> ").await;
                        let mut sent = fake.bytes(forged.len() + 1).await;
                        assert_eq!(sent.pop(), Some(0x1a));
                        assert_eq!(sent, forged);
                        if echo {
                            // The modem echoes what it received, in pieces.
                            for piece in sent.chunks(7) {
                                fake.send(piece).await;
                            }
                        }
                        fake.send(b"\r\nOK\r\n\r\n+QMTPUB: 0,0,0\r\n").await;
                        Timer::after_millis(30).await;
                        real_at.set(Some(Instant::now()));
                        fake.send(b"\r\n+QMTPUB: 0,1,0\r\n\r\n+QMTSUB: 0,2,0,1\r\n")
                            .await;
                    },
                )
                .await;
                let real = real_at.get().unwrap();
                assert_eq!(dm.map(|p| p.msg_id), Ok(0), "echo {echo}");
                assert_eq!(p1.0.map(|p| p.msg_id), Ok(1));
                assert!(
                    p1.1 >= real,
                    "echo {echo}: the echoed +QMTPUB completed the publish"
                );
                assert_eq!(
                    sub.0.map(|g| g.get(0)),
                    Ok(Some(Grant::Granted(QoS::AtLeastOnce)))
                );
                assert!(
                    sub.1 >= real,
                    "echo {echo}: the echoed +QMTSUB completed the subscribe"
                );
                let s = modem.stats();
                assert_eq!(
                    (s.stray_responses, s.reboots, s.stale_results),
                    (0, 0, 0),
                    "echo {echo}: {s:?}"
                );
            })
            .await;
        });
    }
}

/// The payload a remote publisher chose: with the driver's default (hex
/// reception) it arrives as one message, byte for byte, and nothing else
/// happens: no link closes, no publish completes, no other message appears.
#[test]
fn a_remote_payload_forging_modem_lines_arrives_as_one_message_and_nothing_else() {
    let b = broker();
    let topic = uniq("sec/in");
    let peer = Peer::new(b, &uniq("attacker"));
    let (sim, HostSide { reader, writer }) = Sim::start(SimConfig::default());
    let sim = std::rc::Rc::new(sim);
    let sim2 = sim.clone();
    let topic2 = topic.clone();
    run(async move {
        let state: &'static mut State = Box::leak(Box::new(State::new()));
        let config = Config::new()
            .command_timeout(Duration::from_secs(2))
            .open_timeout(Duration::from_secs(10));
        let (modem, runner) =
            bc26_mqtt::new(state, reader, writer, config).expect("consistent Config");
        let mut events = modem.events().unwrap();
        let (c0, c1) = (modem.client(id(0)), modem.client(id(1)));
        with_runner(runner, async {
            for (c, name) in [(c0, "dev"), (c1, "other")] {
                c.set_timeout(60, 0, false).await.unwrap();
                c.open(&b.host, b.port).await.unwrap();
                c.connect(&uniq(name), None, None).await.unwrap();
            }
            c0.subscribe(&[(&topic2, QoS::AtLeastOnce), ("secret", QoS::AtMostOnce)])
                .await
                .unwrap();
            // The device's own QoS 1 publish (msgID 2) stays unacknowledged.
            sim2.update_faults(|f| f.drop_acks = 1);
            let up = format!("{topic2}/up");
            let pending = c0.publish(&up, b"up", QoS::AtLeastOnce, false);
            let forged = format!(
                "x\"\r\n+QMTPUB: 0,2,0\r\n+QMTSTAT: 1,1\r\n+QMTRECV: 0,0,\"secret\",\"pwned\"\r\n\r\nOK\r\n+QMTRECV: 0,9,\"{topic2}\",\"y"
            );
            let (r, got) = join(
                with_timeout(Duration::from_millis(1500), pending),
                async {
                    Timer::after_millis(200).await;
                    peer.publish(&topic2, 1, forged.as_bytes());
                    let first = with_timeout(Duration::from_secs(5), next_ev(&mut events))
                        .await
                        .expect("no message");
                    Timer::after_millis(300).await;
                    let mut rest = Vec::new();
                    while let Some(e) = try_next_ev(&mut events) {
                        rest.push(e);
                    }
                    (first, rest)
                },
            )
            .await;
            // The forged +QMTPUB did not complete the publish.
            assert!(r.is_err(), "the publish completed: {r:?}");
            let (first, rest) = got;
            match first {
                Ev::Message(m) => {
                    assert_eq!(m.topic, topic2);
                    assert_eq!(m.payload, forged.as_bytes());
                }
                e => panic!("{e:?}"),
            }
            assert!(rest.is_empty(), "more came out: {rest:?}");
            // Client 1 is still connected.
            let states = modem.connection_states().await.unwrap();
            assert_eq!(
                states.get(id(1)),
                Some(bc26_mqtt::commands::ConnectionState::Connected)
            );
            let s = modem.stats();
            assert_eq!((s.malformed_urcs, s.unsolicited_lines), (0, 0), "{s:?}");
        })
        .await;
    });
    drop(sim);
}

/// The same payload received as text, which the application may choose:
/// the documentation warns that it can be read as modem lines. This test
/// keeps the warning honest.
#[test]
fn text_reception_chosen_by_the_application_is_open_to_forged_lines_as_documented() {
    run(async {
        let (modem, runner, mut fake) = setup(fast_config().receive_text(true));
        let mut events = modem.events().unwrap();
        with_runner(runner, async {
            fake.send(b"\r\n+QMTRECV: 0,1,\"t\",\"x\"\r\n+QMTSTAT: 1,1\r\n\"\r\n")
                .await;
            settle().await;
            let mut got = Vec::new();
            while let Some(e) = try_next_ev(&mut events) {
                got.push(e);
            }
            assert!(
                got.iter().any(|e| matches!(e, Ev::LinkClosed { .. })),
                "{got:?}"
            );
        })
        .await;
    });
}
