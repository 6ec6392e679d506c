//! The simulator against a real broker (in-process rmqtt, or MQTT_HOST/MQTT_PORT), driven by
//! raw AT bytes; an independent client (rumqttc) checks what went over MQTT.

mod common;

use std::io::Read;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use bc26_sim::{SimConfig, SimFaults};
use common::{broker, uniq, Peer, Term};

#[test]
fn open_conn_sub_recv_pub_uns_disc_close() {
    let b = broker();
    let mut t = Term::quiet(SimConfig::default());
    let topic = uniq("bc26/flow/");
    let peer = Peer::new(b, &uniq("peer"));
    peer.subscribe(&topic, 1);

    t.open(0, b);
    t.at(
        "AT+QMTOPEN?",
        &format!("\r\n+QMTOPEN: 0,\"{}\",{}\r\n\r\nOK\r\n", b.host, b.port),
    );
    t.at("AT+QMTCONN?", "\r\n+QMTCONN: 0,1\r\n\r\nOK\r\n");
    t.at(&format!("AT+QMTCONN=0,\"{}\"", uniq("sim")), "\r\nOK\r\n");
    t.expect("\r\n+QMTCONN: 0,0,0\r\n");
    t.at("AT+QMTCONN?", "\r\n+QMTCONN: 0,3\r\n\r\nOK\r\n");
    // Connected twice: wrong state.
    t.at("AT+QMTCONN=0,\"again\"", "\r\nERROR\r\n");

    t.at(&format!("AT+QMTSUB=0,1,\"{topic}\",2"), "\r\nOK\r\n");
    t.expect("\r\n+QMTSUB: 0,1,0,2\r\n");

    // A message from someone else.
    peer.publish(&topic, 0, b"This is the payload related to topic");
    // The peer is subscribed too and gets its own message back.
    assert_eq!(
        &peer.recv().payload[..],
        b"This is the payload related to topic"
    );
    t.expect(&format!(
        "\r\n+QMTRECV: 0,0,\"{topic}\",\"This is the payload related to topic\"\r\n"
    ));

    // Our own publish: the peer gets it, and so do we (subscribed).
    t.at(
        &format!("AT+QMTPUB=0,0,0,0,\"{topic}\",\"hello MQTT.\""),
        "\r\nOK\r\n",
    );
    let out = t.until("+QMTRECV");
    assert!(out.contains("\r\n+QMTPUB: 0,0,0\r\n"), "{out}");
    t.expect(&format!(": 0,0,\"{topic}\",\"hello MQTT.\"\r\n"));
    let p = peer.recv();
    assert_eq!(&p.payload[..], b"hello MQTT.");

    t.at(&format!("AT+QMTUNS=0,2,\"{topic}\""), "\r\nOK\r\n");
    t.expect("\r\n+QMTUNS: 0,2,0\r\n");
    peer.publish(&topic, 0, b"not for you");
    assert!(peer.recv().payload.as_ref() == b"not for you");
    assert_eq!(t.drain_for(Duration::from_millis(300)), b"");

    t.at("AT+QMTDISC=0", "\r\nOK\r\n\r\n+QMTDISC: 0,0\r\n");
    t.at("AT+QMTCONN?", "\r\nOK\r\n");
    t.at("AT+QMTOPEN?", "\r\nOK\r\n");
    t.at("AT+QMTCLOSE=0", "\r\nOK\r\n\r\n+QMTCLOSE: 0,-1\r\n");
    // The client can be used again.
    t.connect(0, b, &uniq("sim"));
    t.at("AT+QMTCLOSE=0", "\r\nOK\r\n\r\n+QMTCLOSE: 0,0\r\n");
}

#[test]
fn echo_on_session_matches_the_transcript_shape() {
    let b = broker();
    let mut t = Term::new(SimConfig::default());
    let open = format!("AT+QMTOPEN=0,\"{}\",{}", b.host, b.port);
    t.send(&open);
    t.expect(&format!("{open}\r\r\nOK\r\n"));
    t.expect("\r\n+QMTOPEN: 0,0\r\n");
    let conn = format!("AT+QMTCONN=0,\"{}\"", uniq("echo"));
    t.send(&conn);
    t.expect(&format!("{conn}\r\r\nOK\r\n"));
    t.expect("\r\n+QMTCONN: 0,0,0\r\n");
    t.send("AT+QMTDISC=0");
    t.expect("AT+QMTDISC=0\r\r\nOK\r\n");
    t.expect("\r\n+QMTDISC: 0,0\r\n");
}

#[test]
fn publish_qos1_and_qos2_and_subscribe_several_topics() {
    let b = broker();
    let mut t = Term::quiet(SimConfig::default());
    let topic = uniq("bc26/qos/");
    let peer = Peer::new(b, &uniq("peer"));
    peer.subscribe(&topic, 2);
    t.connect(2, b, &uniq("sim"));

    t.at(
        &format!("AT+QMTPUB=2,5,1,0,\"{topic}\",\"one\""),
        "\r\nOK\r\n",
    );
    t.expect("\r\n+QMTPUB: 2,5,0\r\n");
    let p = peer.recv();
    assert_eq!(
        (&p.payload[..], p.qos),
        (&b"one"[..], rumqttc::QoS::AtLeastOnce)
    );

    t.at(
        &format!("AT+QMTPUB=2,6,2,0,\"{topic}\",\"two\""),
        "\r\nOK\r\n",
    );
    t.expect("\r\n+QMTPUB: 2,6,0\r\n");
    let p = peer.recv();
    assert_eq!(
        (&p.payload[..], p.qos),
        (&b"two"[..], rumqttc::QoS::ExactlyOnce)
    );

    let (a, c) = (format!("{topic}/a"), format!("{topic}/c"));
    t.at(&format!("AT+QMTSUB=2,7,\"{a}\",0,\"{c}\",1"), "\r\nOK\r\n");
    t.expect("\r\n+QMTSUB: 2,7,0,0,1\r\n");
    // Incoming QoS 1 and 2: msgID is the broker's packet id (non-zero).
    peer.publish(&c, 1, b"q1");
    let l = t.until("\r\n+QMTRECV: 2,");
    assert_eq!(l, "\r\n+QMTRECV: 2,");
    let rest = t.until("\r\n");
    let (id, tail) = rest.split_once(',').unwrap();
    assert!(id.parse::<u16>().unwrap() > 0, "{rest}");
    assert_eq!(tail, format!("\"{c}\",\"q1\"\r\n"));
    t.at(&format!("AT+QMTUNS=2,8,\"{a}\",\"{c}\""), "\r\nOK\r\n");
    t.expect("\r\n+QMTUNS: 2,8,0\r\n");
}

#[test]
fn data_mode_ctrl_z_sends_with_and_without_echo() {
    let b = broker();
    let mut t = Term::quiet(SimConfig::default());
    let topic = uniq("bc26/data/");
    let peer = Peer::new(b, &uniq("peer"));
    peer.subscribe(&topic, 1);
    t.connect(0, b, &uniq("sim"));

    t.send(&format!("AT+QMTPUB=0,0,0,0,\"{topic}\""));
    t.expect("\r\n> ");
    t.send_bytes(b"This is test data, \"hello\" MQTT.\r\n\x1a");
    t.expect("This is test data, \"hello\" MQTT.\r\n\r\nOK\r\n\r\n+QMTPUB: 0,0,0\r\n");
    assert_eq!(
        &peer.recv().payload[..],
        b"This is test data, \"hello\" MQTT.\r\n"
    );

    t.at("AT+QMTCFG=\"echomode\",0,0", "\r\nOK\r\n");
    t.send(&format!("AT+QMTPUB=0,9,1,0,\"{topic}\""));
    t.expect("\r\n> ");
    t.send_bytes(b"silent");
    t.send_bytes(b"\x1a");
    t.expect("\r\nOK\r\n\r\n+QMTPUB: 0,9,0\r\n");
    assert_eq!(&peer.recv().payload[..], b"silent");

    // An AT command typed in data mode is payload.
    t.send(&format!("AT+QMTPUB=0,0,0,0,\"{topic}\""));
    t.expect("\r\n> ");
    t.send_bytes(b"AT+QMTDISC=0\r\x1a");
    t.expect("\r\nOK\r\n\r\n+QMTPUB: 0,0,0\r\n");
    assert_eq!(&peer.recv().payload[..], b"AT+QMTDISC=0\r");
}

#[test]
fn data_mode_esc_cancels_and_publishes_nothing() {
    let b = broker();
    let mut t = Term::quiet(SimConfig::default());
    let topic = uniq("bc26/esc/");
    let peer = Peer::new(b, &uniq("peer"));
    peer.subscribe(&topic, 1);
    t.connect(0, b, &uniq("sim"));
    t.send(&format!("AT+QMTPUB=0,3,1,0,\"{topic}\""));
    t.expect("\r\n> ");
    t.send_bytes(b"never\x1b");
    t.expect("never\r\nOK\r\n");
    assert_eq!(t.drain_for(Duration::from_millis(500)), b"");
    assert!(peer.nothing_for(Duration::from_millis(300)));
    // Back in command mode.
    t.at("AT", "\r\nOK\r\n");
}

#[test]
fn hex_dataformat_both_ways() {
    let b = broker();
    let mut t = Term::quiet(SimConfig::default());
    let topic = uniq("bc26/hex/");
    let peer = Peer::new(b, &uniq("peer"));
    peer.subscribe(&topic, 0);
    t.at("AT+QMTCFG=\"dataformat\",1,1,1", "\r\nOK\r\n");
    t.connect(1, b, &uniq("sim"));
    t.at(&format!("AT+QMTSUB=1,1,\"{topic}\",0"), "\r\nOK\r\n");
    t.expect("\r\n+QMTSUB: 1,1,0,0\r\n");

    t.at(
        &format!("AT+QMTPUB=1,0,0,0,\"{topic}\",\"48656c6c6f00FF\""),
        "\r\nOK\r\n",
    );
    let out = t.until(&format!("\"{topic}\",\"48656C6C6F00FF\"\r\n"));
    assert!(out.contains("+QMTPUB: 1,0,0\r\n"), "{out}");
    assert_eq!(&peer.recv().payload[..], b"Hello\x00\xff");

    t.send(&format!("AT+QMTPUB=1,0,0,0,\"{topic}\""));
    t.expect("\r\n> ");
    t.send_bytes(b"4142\x1a");
    t.expect("4142\r\nOK\r\n");
    assert_eq!(&peer.recv().payload[..], b"AB");
    t.until("\"4142\"\r\n");

    peer.publish(&topic, 0, b"\"x\",\r\n");
    assert_eq!(&peer.recv().payload[..], b"\"x\",\r\n");
    t.until("\"2278222C0D0A\"\r\n");

    // Not hex: ERROR, nothing published.
    t.at(
        &format!("AT+QMTPUB=1,0,0,0,\"{topic}\",\"4G\""),
        "\r\nERROR\r\n",
    );
    t.send(&format!("AT+QMTPUB=1,0,0,0,\"{topic}\""));
    t.expect("\r\n> ");
    t.send_bytes(b"123\x1a");
    t.expect("123\r\nERROR\r\n");
    assert!(peer.nothing_for(Duration::from_millis(300)));
}

#[test]
fn recv_payload_is_raw_with_quotes_commas_and_crlf() {
    let b = broker();
    let mut t = Term::quiet(SimConfig::default());
    let topic = uniq("bc26/raw/");
    let peer = Peer::new(b, &uniq("peer"));
    t.connect(4, b, &uniq("sim"));
    t.at(&format!("AT+QMTSUB=4,1,\"{topic}\",0"), "\r\nOK\r\n");
    t.expect("\r\n+QMTSUB: 4,1,0,0\r\n");
    let json = "{\"a\": \"b, c\",\r\n \"d\": 1}";
    peer.publish(&topic, 0, json.as_bytes());
    t.expect(&format!("\r\n+QMTRECV: 4,0,\"{topic}\",\"{json}\"\r\n"));
    // Inline publish keeps quotes and commas between the first and the last quote.
    t.at(
        &format!("AT+QMTPUB=4,0,0,0,\"{topic}\",\"say \"hi\", ok\""),
        "\r\nOK\r\n",
    );
    t.expect("\r\n+QMTPUB: 4,0,0\r\n");
    t.expect(&format!(
        "\r\n+QMTRECV: 4,0,\"{topic}\",\"say \"hi\", ok\"\r\n"
    ));
}

#[test]
fn wrong_state_results_with_a_broker() {
    let b = broker();
    let mut t = Term::quiet(SimConfig::default());
    t.connect(0, b, &uniq("sim"));
    t.at(
        &format!("AT+QMTOPEN=0,\"{}\",{}", b.host, b.port),
        "\r\nOK\r\n",
    );
    t.expect("\r\n+QMTOPEN: 0,2\r\n");
    t.at("AT+QMTPUB=0,1,0,0,\"t\",\"m\"", "\r\nERROR\r\n");
    t.at("AT+QMTPUB=0,0,2,0,\"t\",\"m\"", "\r\nERROR\r\n");
    t.at("AT+QMTSUB=0,1,\"t\",0,\"u\"", "\r\nERROR\r\n");
    t.at(
        &format!("AT+QMTPUB=0,0,0,0,\"t\",\"{}\"", "x".repeat(701)),
        "\r\nERROR\r\n",
    );
    // Another client id is independent.
    t.at("AT+QMTSUB=1,1,\"t\",0", "\r\nERROR\r\n");
    t.at("AT+QMTCLOSE=0", "\r\nOK\r\n\r\n+QMTCLOSE: 0,0\r\n");
    t.at("AT+QMTPUB=0,0,0,0,\"t\",\"m\"", "\r\nERROR\r\n");
}

#[test]
fn mqtt_3_1_and_3_1_1_connect_are_accepted_by_the_broker() {
    let b = broker();
    let mut t = Term::quiet(SimConfig::default());
    let topic = uniq("bc26/v31/");
    t.at("AT+QMTCFG=\"version\",3,3", "\r\nOK\r\n");
    t.at("AT+QMTCFG=\"version\",4,4", "\r\nOK\r\n");
    // MQTT 3.1 limits client ids to 23 characters.
    t.connect(3, b, &uniq("v31"));
    t.connect(4, b, &uniq("v311"));
    t.at(&format!("AT+QMTSUB=3,1,\"{topic}\",1"), "\r\nOK\r\n");
    t.expect("\r\n+QMTSUB: 3,1,0,1\r\n");
    t.at(
        &format!("AT+QMTPUB=4,1,1,0,\"{topic}\",\"from 3.1.1\""),
        "\r\nOK\r\n",
    );
    let out = t.until("\"from 3.1.1\"\r\n");
    assert!(out.contains("\r\n+QMTPUB: 4,1,0\r\n"), "{out}");
    assert!(out.contains("+QMTRECV: 3,"), "{out}");
}

/// The CONNECT bytes on the wire, captured by a fake server.
fn captured_connect(version: u8, extra_cfg: &[&str], conn: &str) -> Vec<u8> {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let mut t = Term::quiet(SimConfig::default());
    t.at(&format!("AT+QMTCFG=\"version\",0,{version}"), "\r\nOK\r\n");
    for c in extra_cfg {
        t.at(c, "\r\nOK\r\n");
    }
    t.at(&format!("AT+QMTOPEN=0,\"127.0.0.1\",{port}"), "\r\nOK\r\n");
    t.expect("\r\n+QMTOPEN: 0,0\r\n");
    let (mut s, _) = l.accept().unwrap();
    t.at(conn, "\r\nOK\r\n");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = vec![0u8; 512];
    let mut got = Vec::new();
    while got.len() < 2 || got.len() < 2 + got[1] as usize {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    got
}

#[test]
fn connect_packet_bytes_for_protocol_levels_3_and_4() {
    let v3 = captured_connect(3, &["AT+QMTCFG=\"keepalive\",0,60"], "AT+QMTCONN=0,\"c1\"");
    assert_eq!(
        v3,
        b"\x10\x10\x00\x06MQIsdp\x03\x02\x00\x3c\x00\x02c1",
        "{}",
        common::show(&v3)
    );
    let v4 = captured_connect(
        4,
        &[
            "AT+QMTCFG=\"session\",0,0",
            "AT+QMTCFG=\"will\",0,1,1,1,\"w\",\"bye\"",
        ],
        "AT+QMTCONN=0,\"c2\",\"u\",\"p\"",
    );
    // flags: user, password, will retain, will QoS 1, will; keepalive 120.
    assert_eq!(
        v4,
        b"\x10\x1c\x00\x04MQTT\x04\xec\x00\x78\x00\x02c2\x00\x01w\x00\x03bye\x00\x01u\x00\x01p",
        "{}",
        common::show(&v4)
    );
}

#[test]
fn credentials_good_and_bad() {
    let b = broker();
    let Some(auth) = &b.auth else {
        eprintln!("skipped: no MQTT_AUTH_PORT for the external broker");
        return;
    };
    let mut t = Term::quiet(SimConfig::default());
    for (id, user, pass, code) in [
        (0, auth.user.as_str(), auth.password.as_str(), 0),
        (1, auth.user.as_str(), "wrong", 5),
    ] {
        t.at(
            &format!("AT+QMTOPEN={id},\"{}\",{}", b.host, auth.port),
            "\r\nOK\r\n",
        );
        t.expect(&format!("\r\n+QMTOPEN: {id},0\r\n"));
        t.at(
            &format!("AT+QMTCONN={id},\"{}\",\"{user}\",\"{pass}\"", uniq("auth")),
            "\r\nOK\r\n",
        );
        t.expect(&format!("\r\n+QMTCONN: {id},0,{code}\r\n"));
    }
    // No credentials at all on the authenticated listener.
    t.at(
        &format!("AT+QMTOPEN=2,\"{}\",{}", b.host, auth.port),
        "\r\nOK\r\n",
    );
    t.expect("\r\n+QMTOPEN: 2,0\r\n");
    t.at(&format!("AT+QMTCONN=2,\"{}\"", uniq("anon")), "\r\nOK\r\n");
    t.expect("\r\n+QMTCONN: 2,0,5\r\n");
    // A refused client is closed: it must be opened again.
    t.at("AT+QMTCONN?", "\r\n+QMTCONN: 0,3\r\n\r\nOK\r\n");
}

#[test]
fn broker_dropping_the_link_gives_qmtstat_1() {
    let b = broker();
    let mut t = Term::quiet(SimConfig::default());
    let cid = uniq("takeover");
    t.connect(0, b, &cid);
    // Same client id from elsewhere: the broker drops the older connection.
    let _peer = Peer::new(b, &cid);
    t.expect("\r\n+QMTSTAT: 0,1\r\n");
    t.at("AT+QMTCONN?", "\r\nOK\r\n");
    t.at("AT+QMTPUB=0,0,0,0,\"t\",\"m\"", "\r\nERROR\r\n");
    // Reopen works.
    t.connect(0, b, &uniq("again"));
    t.handle.break_link(0);
    t.expect("\r\n+QMTSTAT: 0,1\r\n");
}

#[test]
fn server_closing_right_after_open_gives_qmtstat_1() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let mut t = Term::quiet(SimConfig::default());
    t.at(&format!("AT+QMTOPEN=5,\"127.0.0.1\",{port}"), "\r\nOK\r\n");
    t.expect("\r\n+QMTOPEN: 5,0\r\n");
    drop(l.accept().unwrap());
    t.expect("\r\n+QMTSTAT: 5,1\r\n");
}

#[test]
fn keepalive_pings_keep_the_link_and_a_lost_pingresp_gives_qmtstat_2() {
    let b = broker();
    let mut t = Term::quiet(SimConfig::default());
    t.at("AT+QMTCFG=\"keepalive\",0,1", "\r\nOK\r\n");
    t.at("AT+QMTCFG=\"timeout\",0,1,0,0", "\r\nOK\r\n");
    t.connect(0, b, &uniq("ka"));
    // 1 s keep-alive: the broker would drop a silent client after 1.5 s.
    assert_eq!(t.drain_for(Duration::from_millis(2500)), b"");
    t.at("AT+QMTCONN?", "\r\n+QMTCONN: 0,3\r\n\r\nOK\r\n");
    t.handle.update_faults(|f| f.ignore_pingresp = true);
    let t0 = Instant::now();
    t.expect("\r\n+QMTSTAT: 0,2\r\n");
    assert!(t0.elapsed() < Duration::from_secs(4));
    t.at("AT+QMTCONN?", "\r\nOK\r\n");
}

/// A client connected with `AT+QMTCFG="timeout",0,1,<retries>,<notice>`, a topic, and a
/// peer subscribed to it.
fn retx_setup(retries: u8, notice: u8) -> (Term, String, Peer) {
    let b = broker();
    let mut t = Term::quiet(SimConfig::default());
    let topic = uniq("bc26/retx/");
    let peer = Peer::new(b, &uniq("peer"));
    peer.subscribe(&topic, 1);
    t.at(
        &format!("AT+QMTCFG=\"timeout\",0,1,{retries},{notice}"),
        "\r\nOK\r\n",
    );
    t.connect(0, b, &uniq("retx"));
    (t, topic, peer)
}

#[test]
fn retransmission_after_one_lost_ack_reports_progress_then_success() {
    let (mut t, topic, peer) = retx_setup(2, 1);
    // One ack lost: one retransmission (DUP), then success.
    t.handle.update_faults(|f| f.drop_acks = 1);
    t.at(
        &format!("AT+QMTPUB=0,7,1,0,\"{topic}\",\"again\""),
        "\r\nOK\r\n",
    );
    t.expect("\r\n+QMTPUB: 0,7,1,1\r\n");
    t.expect("\r\n+QMTPUB: 0,7,0\r\n");
    assert_eq!(&peer.recv().payload[..], b"again");
}

#[test]
fn retransmission_with_every_ack_lost_reports_progress_then_failure() {
    let (mut t, topic, _peer) = retx_setup(2, 1);
    // Every ack lost: two retransmissions, then failure.
    t.handle.update_faults(|f| f.drop_acks = 100);
    t.at(&format!("AT+QMTSUB=0,8,\"{topic}/x\",1"), "\r\nOK\r\n");
    t.expect("\r\n+QMTSUB: 0,8,1,1\r\n");
    t.expect("\r\n+QMTSUB: 0,8,1,2\r\n");
    t.expect("\r\n+QMTSUB: 0,8,2\r\n");
}

#[test]
fn retransmission_without_timeout_notice_reports_only_the_result() {
    let (mut t, topic, _peer) = retx_setup(1, 0);
    // timeout_notice = 0: no progress lines.
    t.handle.update_faults(|f| f.drop_acks = 100);
    t.at(&format!("AT+QMTUNS=0,9,\"{topic}/x\""), "\r\nOK\r\n");
    t.expect("\r\n+QMTUNS: 0,9,2\r\n");
    t.handle.set_faults(SimFaults::default());
}

#[test]
fn will_is_published_when_the_link_is_closed_without_disconnect() {
    let b = broker();
    let mut t = Term::quiet(SimConfig::default());
    let wt = uniq("bc26/will/");
    let peer = Peer::new(b, &uniq("peer"));
    peer.subscribe(&wt, 1);
    t.at(
        &format!("AT+QMTCFG=\"will\",0,1,1,0,\"{wt}\",\"gone\""),
        "\r\nOK\r\n",
    );
    t.connect(0, b, &uniq("will"));
    t.at("AT+QMTCLOSE=0", "\r\nOK\r\n\r\n+QMTCLOSE: 0,0\r\n");
    assert_eq!(&peer.recv().payload[..], b"gone");
}

#[test]
fn six_clients_at_once() {
    let b = broker();
    let mut t = Term::quiet(SimConfig::default());
    let topic = uniq("bc26/six/");
    for id in 0..6u8 {
        t.connect(id, b, &uniq(&format!("c{id}x")));
    }
    t.at(&format!("AT+QMTSUB=5,1,\"{topic}\",0"), "\r\nOK\r\n");
    t.expect("\r\n+QMTSUB: 5,1,0,0\r\n");
    t.at(
        &format!("AT+QMTPUB=0,0,0,0,\"{topic}\",\"to five\""),
        "\r\nOK\r\n",
    );
    let out = t.until("\"to five\"\r\n");
    assert!(out.contains(&format!("+QMTRECV: 5,0,\"{topic}\"")), "{out}");
    t.at(
        "AT+QMTCONN?",
        "\r\n+QMTCONN: 0,3\r\n+QMTCONN: 1,3\r\n+QMTCONN: 2,3\r\n+QMTCONN: 3,3\r\n+QMTCONN: 4,3\r\n+QMTCONN: 5,3\r\n\r\nOK\r\n",
    );
}
