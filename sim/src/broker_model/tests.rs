//! The broker model on literal bytes.

use super::*;

fn t(ms: u64) -> Time {
    Time::from_millis(ms)
}

fn connect(
    client_id: &str,
    clean: bool,
    keepalive: u16,
    will: Option<(&str, &[u8], u8)>,
) -> Vec<u8> {
    let mut b = vec![0, 4, b'M', b'Q', b'T', b'T', 4];
    let mut flags = u8::from(clean) << 1;
    if let Some((_, _, q)) = will {
        flags |= 0x04 | (q << 3);
    }
    b.push(flags);
    b.extend_from_slice(&keepalive.to_be_bytes());
    b.extend_from_slice(&(client_id.len() as u16).to_be_bytes());
    b.extend_from_slice(client_id.as_bytes());
    if let Some((topic, msg, _)) = will {
        b.extend_from_slice(&(topic.len() as u16).to_be_bytes());
        b.extend_from_slice(topic.as_bytes());
        b.extend_from_slice(&(msg.len() as u16).to_be_bytes());
        b.extend_from_slice(msg);
    }
    frame(0x10, &b)
}

fn subscribe(pkid: u16, filter: &str, qos: u8) -> Vec<u8> {
    let mut b = pkid.to_be_bytes().to_vec();
    b.extend_from_slice(&(filter.len() as u16).to_be_bytes());
    b.extend_from_slice(filter.as_bytes());
    b.push(qos);
    frame(0x82, &b)
}

fn publish(topic: &str, pkid: u16, qos: u8, retain: bool, payload: &[u8]) -> Vec<u8> {
    encode_publish(
        &Outgoing {
            topic: topic.into(),
            payload: payload.to_vec(),
            qos,
            retain,
        },
        pkid,
        false,
    )
}

/// Everything the broker did since the last call.
fn out(b: &mut BrokerModel) -> Vec<BrokerAction> {
    std::iter::from_fn(|| b.poll()).collect()
}

fn send(conn: ConnId, bytes: &[u8]) -> BrokerAction {
    BrokerAction::Send {
        conn,
        bytes: bytes.to_vec(),
    }
}

#[test]
fn qos_0_1_2_flows_byte_for_byte() {
    let mut b = BrokerModel::new();
    assert!(b.accept(t(0), 1));
    b.bytes(t(1), 1, &connect("dev", true, 0, None));
    b.bytes(t(2), 1, &subscribe(1, "c/#", 2));
    assert_eq!(
        out(&mut b),
        vec![
            send(1, b"\x20\x02\x00\x00"),
            send(1, b"\x90\x03\x00\x01\x02")
        ]
    );
    // Device to broker: QoS 1 acknowledged, QoS 2 in two phases.
    b.bytes(t(3), 1, &publish("up", 7, 1, false, b"a"));
    b.bytes(t(3), 1, &publish("up", 8, 2, false, b"b"));
    b.bytes(t(3), 1, &publish("up", 8, 2, false, b"b")); // duplicate before PUBREL
    b.bytes(t(4), 1, b"\x62\x02\x00\x08");
    assert_eq!(
        out(&mut b),
        vec![
            send(1, b"\x40\x02\x00\x07"),
            send(1, b"\x50\x02\x00\x08"),
            send(1, b"\x50\x02\x00\x08"),
            send(1, b"\x70\x02\x00\x08"),
        ]
    );
    let r = b.received();
    assert_eq!(r.len(), 3);
    assert!(r[0].routed && r[1].routed && !r[2].routed);
    // Broker to device: at the lower QoS of message and subscription.
    b.publish(t(5), "c/x", b"q2", 2, false);
    b.publish(t(5), "c/y", b"q0", 0, false);
    assert_eq!(
        out(&mut b),
        vec![
            send(1, b"\x34\x09\x00\x03c/x\x00\x01q2"),
            send(1, b"\x30\x07\x00\x03c/yq0"),
        ]
    );
    b.bytes(t(6), 1, b"\x50\x02\x00\x01");
    assert_eq!(out(&mut b), vec![send(1, b"\x62\x02\x00\x01")]);
    assert_eq!(b.pending_for("dev"), 1);
    b.bytes(t(7), 1, b"\x70\x02\x00\x01");
    assert_eq!(b.pending_for("dev"), 0);
    b.bytes(t(8), 1, b"\xc0\x00");
    assert_eq!(out(&mut b), vec![send(1, b"\xd0\x00")]);
}

#[test]
fn a_persistent_session_queues_qos1_while_offline_and_resends_in_flight_with_dup() {
    let mut b = BrokerModel::new();
    b.accept(t(0), 1);
    b.bytes(t(0), 1, &connect("dev", false, 0, None));
    b.bytes(t(0), 1, &subscribe(1, "c", 1));
    b.publish(t(1), "c", b"m1", 1, false); // in flight, never acknowledged
    out(&mut b);
    b.closed(t(2), 1);
    b.publish(t(3), "c", b"m2", 1, false); // queued
    b.publish(t(3), "c", b"m0", 0, false); // QoS 0: not queued
    assert!(out(&mut b).is_empty());
    b.accept(t(4), 2);
    b.bytes(t(4), 2, &connect("dev", false, 0, None));
    assert_eq!(
        out(&mut b),
        vec![
            send(2, b"\x20\x02\x01\x00"),
            send(2, b"\x3a\x07\x00\x01c\x00\x01m1"),
            send(2, b"\x32\x07\x00\x01c\x00\x02m2"),
        ]
    );
    // Clean session: nothing kept, session-present 0.
    b.closed(t(5), 2);
    b.accept(t(6), 3);
    b.bytes(t(6), 3, &connect("dev", true, 0, None));
    assert_eq!(out(&mut b), vec![send(3, b"\x20\x02\x00\x00")]);
}

#[test]
fn retained_messages_go_to_new_subscriptions_with_the_retain_flag() {
    let mut b = BrokerModel::new();
    b.publish(t(0), "r/a", b"x", 1, true);
    b.publish(t(0), "r/b", b"y", 0, true);
    b.publish(t(0), "r/b", b"", 0, true); // cleared
    b.accept(t(1), 1);
    b.bytes(t(1), 1, &connect("dev", true, 0, None));
    b.bytes(t(1), 1, &subscribe(1, "r/+", 1));
    assert_eq!(
        out(&mut b),
        vec![
            send(1, b"\x20\x02\x00\x00"),
            send(1, b"\x90\x03\x00\x01\x01"),
            send(1, b"\x33\x08\x00\x03r/a\x00\x01x"),
        ]
    );
}

#[test]
fn keep_alive_expiry_closes_the_connection_and_publishes_the_will() {
    let mut b = BrokerModel::new();
    b.accept(t(0), 1);
    b.bytes(t(0), 1, &connect("watch", true, 0, None));
    b.bytes(t(0), 1, &subscribe(1, "will", 0));
    b.accept(t(0), 2);
    b.bytes(
        t(0),
        2,
        &connect("dev", true, 2, Some(("will", b"gone", 0))),
    );
    out(&mut b);
    assert_eq!(b.poll_at(), Some(t(3000)));
    b.bytes(t(2000), 2, b"\xc0\x00"); // a ping resets the clock
    assert_eq!(b.poll_at(), Some(t(5000)));
    b.advance(t(4999));
    assert_eq!(out(&mut b), vec![send(2, b"\xd0\x00")]);
    b.advance(t(5000));
    assert_eq!(
        out(&mut b),
        vec![
            BrokerAction::Close { conn: 2 },
            send(1, b"\x30\x0a\x00\x04willgone"),
        ]
    );
    assert!(!b.connected("dev"));
}

#[test]
fn a_restart_keeps_persistent_sessions_and_retained_messages_only_with_keep_state() {
    for keep in [false, true] {
        let mut b = BrokerModel::new();
        b.accept(t(0), 1);
        b.bytes(t(0), 1, &connect("dev", false, 0, None));
        b.bytes(t(0), 1, &subscribe(1, "c", 1));
        b.publish(t(0), "r", b"kept", 0, true);
        out(&mut b);
        b.stop(t(1), keep);
        assert_eq!(out(&mut b), vec![BrokerAction::Close { conn: 1 }]);
        assert!(!b.accept(t(2), 2), "refused while stopped");
        assert!(!b.publish(t(2), "c", b"while down", 1, false));
        b.start();
        b.accept(t(3), 3);
        b.bytes(t(3), 3, &connect("dev", false, 0, None));
        b.publish(t(4), "c", b"after", 1, false);
        let got = out(&mut b);
        let present = if keep { 1 } else { 0 };
        assert_eq!(got[0], send(3, &[0x20, 2, present, 0]), "keep {keep}");
        // The subscription survives only with the state.
        assert_eq!(got.len(), if keep { 2 } else { 1 }, "keep {keep}: {got:?}");
        b.accept(t(5), 4);
        b.bytes(t(5), 4, &connect("other", true, 0, None));
        b.bytes(t(5), 4, &subscribe(1, "r", 0));
        let retained = out(&mut b).len() == 3;
        assert_eq!(
            retained, keep,
            "the retained message survives only with the state"
        );
    }
}

#[test]
fn a_takeover_closes_the_first_connection_and_publishes_its_will() {
    let mut b = BrokerModel::new();
    b.accept(t(0), 1);
    b.bytes(t(0), 1, &connect("watch", true, 0, None));
    b.bytes(t(0), 1, &subscribe(1, "w", 0));
    b.accept(t(0), 2);
    b.bytes(t(0), 2, &connect("dev", true, 0, Some(("w", b"x", 0))));
    b.accept(t(0), 3);
    b.bytes(t(0), 3, &connect("dev", true, 0, None));
    let got = out(&mut b);
    assert!(got.contains(&BrokerAction::Close { conn: 2 }));
    assert!(got.contains(&send(1, b"\x30\x04\x00\x01wx")));
    assert!(got.ends_with(&[send(3, b"\x20\x02\x00\x00")]));
}

#[test]
fn hostile_bytes_close_the_connection_and_never_panic() {
    let mut rng = 0x1234_5678_9abc_def0u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for round in 0..2000u64 {
        let mut b = BrokerModel::new();
        b.accept(t(0), round);
        if round % 2 == 0 {
            b.bytes(t(0), round, &connect("dev", round % 4 == 0, 5, None));
        }
        let n = (next() % 64) as usize;
        let bytes: Vec<u8> = (0..n).map(|_| next() as u8).collect();
        for piece in bytes.chunks(1 + (next() % 8) as usize) {
            b.bytes(t(1), round, piece);
        }
        b.advance(t(100_000));
        out(&mut b);
    }
    // A second CONNECT, a packet before CONNECT, a bad protocol name: closed.
    for bad in [
        [connect("a", true, 0, None), connect("a", true, 0, None)].concat(),
        b"\xc0\x00".to_vec(),
        frame(0x10, b"\x00\x04MQTX\x04\x02\x00\x00\x00\x01a"),
        publish("a/+", 0, 0, false, b""),
    ] {
        let mut b = BrokerModel::new();
        b.accept(t(0), 1);
        if bad[0] == 0x30 {
            b.bytes(t(0), 1, &connect("a", true, 0, None));
        }
        b.bytes(t(0), 1, &bad);
        assert_eq!(out(&mut b).last(), Some(&BrokerAction::Close { conn: 1 }));
    }
}

#[test]
fn topic_matching_follows_mqtt_3_1_1() {
    for (f, t, m) in [
        ("a/#", "a", true),
        ("a/#", "a/b/c", true),
        ("a/+", "a/b", true),
        ("a/+", "a/b/c", false),
        ("+/+", "/x", true),
        ("#", "$SYS/x", false),
        ("a", "a/", false),
    ] {
        assert_eq!(topic_matches(f, t), m, "{f} {t}");
    }
}
