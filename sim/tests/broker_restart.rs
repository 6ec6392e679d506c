//! The broker stopped and started again (`bc26_sim::broker::restartable_broker`): in-process
//! rmqtt by default; against Mosquitto with `.ci/with-mosquitto cargo test -p bc26-sim
//! --test broker_restart` (the script starts a second, restartable Mosquitto for this).

mod common;

use std::sync::mpsc;
use std::time::Duration;

use bc26_sim::broker::{restartable_broker, RestartableBroker};
use bc26_sim::SimConfig;
use common::{uniq, Peer, Term};

fn restartable() -> Option<RestartableBroker> {
    let b = restartable_broker();
    if b.is_none() {
        eprintln!("skipped: MQTT_HOST is set without MQTT_RESTART_PORT/MQTT_BROKER_STOP/START");
    }
    b
}

/// The next output is the two `+QMTSTAT: <id>,1` lines of clients 0 and 1, in either order.
fn both_links_drop(t: &mut Term) {
    let mut codes = Vec::new();
    for _ in 0..2 {
        assert_eq!(t.until("\r\n+QMTSTAT: "), "\r\n+QMTSTAT: ");
        codes.push(t.until("\r\n"));
    }
    codes.sort();
    assert_eq!(codes, ["0,1\r\n", "1,1\r\n"]);
}

#[test]
fn broker_restart_drops_links_refuses_opens_meanwhile_and_forgets_sessions_and_retained() {
    let Some(b) = restartable() else { return };
    eprintln!("broker: {} on {}:{}", b.kind, b.host, b.port);
    let mut t = Term::quiet(SimConfig::default());
    let kept = uniq("bc26/restart/kept/");
    let retained = uniq("bc26/restart/retained/");
    let persistent = uniq("persist");

    // Before: a retained message, and a persistent session (clean_session 0) that the
    // broker keeps across a disconnect.
    let peer = Peer::new(&b, &uniq("peer"));
    peer.client
        .publish(&retained, common::qos_of(1), true, b"retained".to_vec())
        .unwrap();
    let check = Peer::new(&b, &uniq("check"));
    check.subscribe(&retained, 1);
    assert_eq!(&check.recv().payload[..], b"retained");
    t.at("AT+QMTCFG=\"session\",1,0", "\r\nOK\r\n");
    t.connect(1, &b, &persistent);
    t.at(&format!("AT+QMTSUB=1,1,\"{kept}\",1"), "\r\nOK\r\n");
    t.expect("\r\n+QMTSUB: 1,1,0,1\r\n");
    t.at("AT+QMTDISC=1", "\r\nOK\r\n\r\n+QMTDISC: 1,0\r\n");
    t.connect(1, &b, &persistent);
    peer.publish(&kept, 1, b"session kept");
    let l = t.until("\"session kept\"\r\n");
    assert!(l.contains("+QMTRECV: 1,"), "{l}");
    t.connect(0, &b, &uniq("clean"));

    b.stop();
    both_links_drop(&mut t);
    let open0 = format!("AT+QMTOPEN=0,\"{}\",{}", b.host, b.port);
    t.at(&open0, "\r\nOK\r\n\r\n+QMTOPEN: 0,-1\r\n");

    b.start();
    t.connect(0, &b, &uniq("clean"));
    t.connect(1, &b, &persistent);
    // The session (subscription) is gone: a message on its topic does not arrive.
    let peer = Peer::new(&b, &uniq("peer"));
    peer.subscribe(&kept, 1);
    peer.publish(&kept, 1, b"after restart");
    assert_eq!(&peer.recv().payload[..], b"after restart");
    assert_eq!(
        common::show(&t.drain_for(Duration::from_millis(300))),
        "",
        "the persistent session survived the restart"
    );
    // The retained message is gone.
    let check = Peer::new(&b, &uniq("check"));
    check.subscribe(&retained, 1);
    assert!(check.nothing_for(Duration::from_millis(300)));
    t.at(
        "AT+QMTCONN?",
        "\r\n+QMTCONN: 0,3\r\n+QMTCONN: 1,3\r\n\r\nOK\r\n",
    );
}

#[test]
fn broker_restart_with_downtime_then_the_same_client_reconnects() {
    let Some(b) = restartable() else { return };
    let mut t = Term::quiet(SimConfig::default());
    let cid = uniq("again");
    t.connect(0, &b, &cid);
    t.connect(1, &b, &uniq("other"));
    b.restart(Duration::from_millis(200));
    both_links_drop(&mut t);
    assert!(b.is_running());
    t.connect(0, &b, &cid);
    // Stop and start are idempotent.
    b.start();
    b.stop();
    b.stop();
    assert!(!b.is_running());
    t.expect("\r\n+QMTSTAT: 0,1\r\n");
    b.start();
    t.connect(0, &b, &cid);
}

#[test]
fn a_restartable_broker_left_stopped_is_running_for_the_next_test() {
    let Some(b) = restartable() else { return };
    let (kind, port) = (b.kind, b.port);
    b.stop();
    drop(b);
    if kind.starts_with("in-process") {
        // Dropping an in-process one stops it for good.
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    }
    let b = restartable().expect("again");
    assert!(b.is_running());
}

#[test]
fn restartable_brokers_are_separate_in_process_and_lent_one_at_a_time_outside() {
    let Some(a) = restartable() else { return };
    let (tx, rx) = mpsc::channel();
    let other = std::thread::spawn(move || {
        let b = restartable_broker().expect("restartable");
        tx.send(b.port).unwrap();
    });
    if a.kind.starts_with("external") {
        // The one external broker: the other test waits for it.
        assert!(rx.recv_timeout(Duration::from_millis(300)).is_err());
        let port = a.port;
        drop(a);
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), port);
    } else {
        // Each in-process one is its own, on its own ports.
        let p = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_ne!(p, a.port);
    }
    other.join().unwrap();
}
