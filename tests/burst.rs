//! The receive store keeps messages by their size: bursts wait for the
//! subscriber instead of being overwritten, and the event that says a link
//! closed is never the one dropped.

mod common;

use bc26_mqtt::{ClientId, LinkClosedReason, State};
use common::{fast_config, next_ev, run, setup, try_next_ev, with_runner, Ev};
use embassy_futures::join::join;
use embassy_time::{Duration, Instant, Timer};

fn id(n: u8) -> ClientId {
    ClientId::new(n).unwrap()
}

/// `+QMTRECV` of a message whose topic and payload together are 64 bytes.
fn urc64(i: usize) -> Vec<u8> {
    let topic = format!("burst/{i:04}");
    let payload = format!("{:0>width$}", i, width = 64 - topic.len());
    format!("\r\n+QMTRECV: 0,{i},\"{topic}\",\"{payload}\"\r\n").into_bytes()
}

#[test]
fn twenty_64_byte_messages_in_one_read_all_reach_a_waiting_subscriber() {
    run(async {
        let (modem, runner, mut fake) = setup(fast_config());
        let mut events = modem.events().unwrap();
        with_runner(runner, async {
            let burst: Vec<u8> = (0..20).flat_map(urc64).collect();
            let (got, _) = join(
                async {
                    let mut got = Vec::new();
                    while got.len() < 20 {
                        match next_ev(&mut events).await {
                            Ev::Message(m) => got.push(m.msg_id),
                            e => panic!("{e:?}"),
                        }
                    }
                    got
                },
                fake.send(&burst),
            )
            .await;
            assert_eq!(got, (0..20).collect::<Vec<u32>>());
            assert_eq!(modem.stats().messages_dropped, 0);
        })
        .await;
    });
}

#[test]
fn a_burst_larger_than_the_store_is_counted_and_the_link_event_after_it_is_kept() {
    run(async {
        let (modem, runner, mut fake) = setup(fast_config());
        let mut events = modem.events().unwrap();
        with_runner(runner, async {
            let mut burst: Vec<u8> = (0..60).flat_map(urc64).collect();
            burst.extend_from_slice(b"\r\n+QMTSTAT: 0,1\r\n\r\nRDY\r\n");
            fake.send(&burst).await;
            let mut messages = 0;
            let mut missed = 0;
            let mut tail = Vec::new();
            while let Some(e) = try_next_ev(&mut events) {
                match e {
                    Ev::Message(_) => messages += 1,
                    Ev::Missed(n) => missed += n,
                    other => tail.push(other),
                }
            }
            let dropped = modem.stats().messages_dropped;
            assert_eq!(messages + missed, 60);
            assert_eq!(missed, dropped);
            assert!(messages >= 20, "only {messages} of the burst were kept");
            assert_eq!(
                tail,
                [
                    Ev::LinkClosed {
                        client: id(0),
                        reason: LinkClosedReason::PeerClosed
                    },
                    Ev::Rebooted
                ]
            );
            // The store is free again: the next message is kept.
            fake.send(&urc64(99)).await;
            assert!(matches!(next_ev(&mut events).await, Ev::Message(m) if m.msg_id == 99));
        })
        .await;
    });
}

#[test]
fn a_message_with_a_255_byte_topic_and_a_1024_byte_payload_arrives_whole() {
    run(async {
        let (modem, runner, mut fake) = setup(fast_config());
        let mut events = modem.events().unwrap();
        with_runner(runner, async {
            let topic = "t".repeat(255);
            let payload: String = (0..1024).map(|i| (b'a' + (i % 26) as u8) as char).collect();
            let urc = format!("\r\n+QMTRECV: 1,7,\"{topic}\",\"{payload}\"\r\n");
            // Twice: the second has to wrap around the ring.
            for _ in 0..2 {
                fake.send(urc.as_bytes()).await;
                match next_ev(&mut events).await {
                    Ev::Message(m) => {
                        assert_eq!((m.client, m.msg_id), (id(1), 7));
                        assert_eq!(m.topic, topic);
                        assert_eq!(m.payload, payload.as_bytes());
                    }
                    e => panic!("{e:?}"),
                }
            }
        })
        .await;
    });
}

#[test]
fn a_buffer_too_small_for_a_message_is_reported_as_missed_and_the_next_fits() {
    run(async {
        let (modem, runner, mut fake) = setup(fast_config());
        let mut events = modem.events().unwrap();
        with_runner(runner, async {
            fake.send(
                b"\r\n+QMTRECV: 0,1,\"t\",\"a long payload\"\r\n\r\n+QMTRECV: 0,2,\"t\",\"ok\"\r\n",
            )
            .await;
            let mut small = [0u8; 8];
            assert_eq!(events.next(&mut small).await, bc26_mqtt::Event::Missed(1));
            match events.next(&mut small).await {
                bc26_mqtt::Event::Message(m) => assert_eq!((m.topic, m.payload), ("t", &b"ok"[..])),
                e => panic!("{e:?}"),
            }
            assert_eq!(modem.stats().messages_dropped, 1);
        })
        .await;
    });
}

#[test]
fn each_subscription_reads_every_message_and_only_the_last_reader_frees_it() {
    run(async {
        let (modem, runner, mut fake) = setup(fast_config());
        let mut a = modem.events().unwrap();
        let mut b = modem.events().unwrap();
        with_runner(runner, async {
            // a reads each round at once, b not at all: a's reading frees
            // nothing, so the second round finds the store nearly full.
            let count = |e: Ev, seen: &mut u32, missed: &mut u32| match e {
                Ev::Message(_) => *seen += 1,
                Ev::Missed(n) => *missed += n,
                e => panic!("{e:?}"),
            };
            let (mut a_seen, mut a_missed) = (0, 0);
            for round in 0..2 {
                let burst: Vec<u8> = (0..20).flat_map(|i| urc64(round * 20 + i)).collect();
                fake.send(&burst).await;
                while let Some(e) = try_next_ev(&mut a) {
                    count(e, &mut a_seen, &mut a_missed);
                }
            }
            assert_eq!(a_seen + a_missed, 40);
            assert!(a_missed > 0, "a's reading freed the store");
            let (mut b_seen, mut b_missed) = (0, 0);
            while let Some(e) = try_next_ev(&mut b) {
                count(e, &mut b_seen, &mut b_missed);
            }
            // Both saw the same messages.
            assert_eq!((b_seen, b_missed), (a_seen, a_missed));
            // b's reading freed the store: the next burst is kept whole.
            let burst: Vec<u8> = (100..120).flat_map(urc64).collect();
            fake.send(&burst).await;
            drop(b);
            for i in 100..120 {
                assert!(matches!(next_ev(&mut a).await, Ev::Message(m) if m.msg_id == i));
            }
        })
        .await;
    });
}

#[test]
fn a_slow_consumer_of_messages_at_line_rate_gets_what_the_store_holds_and_a_count_of_the_rest() {
    // 100 messages at 115200 baud (about 90 bytes each, 7.8 ms apart), a
    // consumer that takes 20 ms for each: more arrive than it can read.
    run(async {
        let (modem, runner, mut fake) = setup(fast_config());
        let mut events = modem.events().unwrap();
        with_runner(runner, async {
            let per_message = Duration::from_micros(7_800);
            let start = Instant::now();
            let (got, _) = join(
                async {
                    let (mut messages, mut missed) = (0u32, 0u32);
                    while messages + missed < 100 {
                        match next_ev(&mut events).await {
                            Ev::Message(_) => {
                                messages += 1;
                                Timer::after_millis(20).await;
                            }
                            Ev::Missed(n) => missed += n,
                            e => panic!("{e:?}"),
                        }
                    }
                    (messages, missed)
                },
                async {
                    for i in 0..100 {
                        Timer::at(start + per_message * i).await;
                        fake.send(&urc64(i as usize)).await;
                    }
                },
            )
            .await;
            let (messages, missed) = got;
            println!("slow consumer: {messages} messages read, {missed} dropped");
            assert_eq!(messages + missed, 100);
            assert_eq!(missed, modem.stats().messages_dropped);
            // The store holds 24 messages waiting; the consumer read about
            // one in 2.6 meanwhile.
            assert!(messages >= 40, "only {messages} read");
        })
        .await;
    });
}

/// The default `State` keeps to its 8 KiB on 32-bit targets; on the host
/// (64-bit pointers) it is a little larger, and still bounded.
#[test]
fn the_default_state_is_small() {
    assert!(core::mem::size_of::<State>() <= 9 * 1024);
}
