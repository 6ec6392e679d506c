//! Faults for supervisor tests: reboot, a link closed by the module with any `+QMTSTAT`
//! code, registration lost, a silent UART, CONNACK refusals, QMTOPEN failures; and what a
//! test can read from the handle (client states, what the host sent).
//!
//! Tests with a fake server see the exact MQTT bytes; the others use the broker (in-process,
//! or MQTT_HOST/MQTT_PORT) and an independent client to see wills and messages.

mod common;

use std::time::{Duration, Instant};

use bc26_sim::{ClientState, SimConfig, SimFaults};
use common::{broker, uniq, FakeServer, Peer, Term};

const BOOT: Duration = Duration::from_millis(150);

fn booting_fast() -> SimConfig {
    SimConfig {
        boot_time: BOOT,
        ..SimConfig::default()
    }
}

/// Waits until the modem has taken `tail` from the host (so a later event comes after it).
fn taken(t: &Term, tail: &[u8]) {
    common::wait_for("the modem to take the bytes", || {
        t.handle.host_transcript().ends_with(tail)
    });
}

// ------------------------------------------------------------------ reboot

#[test]
fn reboot_drops_a_connected_link_without_disconnect_and_ignores_the_host_until_rdy() {
    let server = FakeServer::new();
    let mut t = Term::quiet(booting_fast());
    let mut conn = t.connect_fake(0, &server);
    let t0 = Instant::now();
    t.handle.reboot();
    // TCP closed with no DISCONNECT (0xE0) before it.
    assert_eq!(common::show(&conn.until_closed()), "");
    // A command while booting is lost: no echo, no answer.
    t.send("AT");
    t.expect("\r\nRDY\r\n");
    assert!(t0.elapsed() >= BOOT, "RDY after {:?}", t0.elapsed());
    assert_eq!(common::show(&t.drain_for(Duration::from_millis(200))), "");
    // Echo is back on (ATE1 is the factory default); no client is open.
    t.send("AT+QMTCONN?");
    t.expect("AT+QMTCONN?\r\r\nOK\r\n");
    t.send("AT+QMTOPEN?");
    t.expect("AT+QMTOPEN?\r\r\nOK\r\n");
    assert_eq!(t.handle.client_state(0), Some(ClientState::Closed));
}

#[test]
fn reboot_restores_every_setting_to_its_default() {
    let mut t = Term::quiet(SimConfig {
        default_version: 3,
        ..booting_fast()
    });
    for cmd in [
        "AT+QMTCFG=\"will\",2,1,1,1,\"w\",\"m\"",
        "AT+QMTCFG=\"timeout\",2,5,1,1",
        "AT+QMTCFG=\"session\",2,0",
        "AT+QMTCFG=\"keepalive\",2,30",
        "AT+QMTCFG=\"aliauth\",2,\"a\",\"b\",\"c\"",
        "AT+QMTCFG=\"version\",2,4",
        "AT+QMTCFG=\"dataformat\",2,1,1",
        "AT+QMTCFG=\"echomode\",2,0",
        "AT+CMEE=2",
        "AT+CEREG=1",
    ] {
        t.at(cmd, "\r\nOK\r\n");
    }
    t.handle.reboot();
    t.expect("\r\nRDY\r\n");
    t.send("ATE0");
    t.expect("ATE0\r\r\nOK\r\n");
    for (cmd, line) in [
        ("AT+QMTCFG=\"will\",2", "+QMTCFG: \"will\",0"),
        ("AT+QMTCFG=\"timeout\",2", "+QMTCFG: \"timeout\",10,3,0"),
        ("AT+QMTCFG=\"session\",2", "+QMTCFG: \"session\",1"),
        ("AT+QMTCFG=\"keepalive\",2", "+QMTCFG: \"keepalive\",120"),
        // The configured default level, not the one written before the reboot.
        ("AT+QMTCFG=\"version\",2", "+QMTCFG: \"version\",3"),
        ("AT+QMTCFG=\"dataformat\",2", "+QMTCFG: \"dataformat\",0,0"),
        ("AT+QMTCFG=\"echomode\",2", "+QMTCFG: \"echomode\",1"),
        ("AT+CMEE?", "+CMEE: 0"),
        ("AT+CEREG?", "+CEREG: 0,1"),
    ] {
        t.at(cmd, &format!("\r\n{line}\r\n\r\nOK\r\n"));
    }
    t.at("AT+QMTCFG=\"aliauth\",2", "\r\nOK\r\n");
}

#[test]
fn reboot_discards_pending_results_and_a_half_received_line() {
    let server = FakeServer::new();
    let mut t = Term::quiet(SimConfig {
        result_delay: Duration::from_millis(300),
        ..booting_fast()
    });
    t.at(
        &format!("AT+QMTOPEN=0,\"127.0.0.1\",{}", server.port),
        "\r\nOK\r\n",
    );
    t.send_bytes(b"AT+QM");
    taken(&t, b"AT+QM");
    t.handle.reboot();
    t.expect("\r\nRDY\r\n");
    // "AT+QM" is gone: this line is a plain AT (echoed, as after any reboot).
    t.send("AT");
    t.expect("AT\r\r\nOK\r\n");
    // The +QMTOPEN result that was still waiting never comes.
    assert_eq!(common::show(&t.drain_for(Duration::from_millis(500))), "");
    assert_eq!(t.handle.client_state(0), Some(ClientState::Closed));
}

#[test]
fn reboot_while_connecting_drops_the_link_and_never_reports_the_connect() {
    let server = FakeServer::new();
    let mut t = Term::quiet(booting_fast());
    t.open_port(0, server.port);
    let mut conn = server.accept();
    t.at("AT+QMTCONN=0,\"c\"", "\r\nOK\r\n");
    assert_eq!(conn.read_packet().expect("CONNECT")[0], 0x10);
    assert_eq!(t.handle.client_state(0), Some(ClientState::Connecting));
    t.handle.reboot();
    assert_eq!(common::show(&conn.until_closed()), "");
    // A CONNACK now would be too late; the modem is booting anyway.
    t.expect("\r\nRDY\r\n");
    assert_eq!(common::show(&t.drain_for(Duration::from_millis(300))), "");
    assert_eq!(t.handle.client_state(0), Some(ClientState::Closed));
}

#[test]
fn reboot_in_data_mode_publishes_nothing_and_leaves_data_mode() {
    let b = broker();
    let topic = uniq("bc26/rebootdata/");
    let peer = Peer::new(b, &uniq("peer"));
    peer.subscribe(&topic, 1);
    let mut t = Term::quiet(booting_fast());
    t.connect(0, b, &uniq("sim"));
    t.send(&format!("AT+QMTPUB=0,1,1,0,\"{topic}\""));
    t.expect("\r\n> ");
    t.send_bytes(b"half a payload");
    t.expect("half a payload");
    t.handle.reboot();
    t.expect("\r\nRDY\r\n");
    // Ctrl+Z now ends nothing: the modem is in command mode (the line "\x1aAT" is not AT).
    t.send_bytes(b"\x1aAT\r");
    t.expect("\x1aAT\r\r\nERROR\r\n");
    t.send("AT");
    t.expect("AT\r\r\nOK\r\n");
    assert!(peer.nothing_for(Duration::from_millis(300)));
}

#[test]
fn reboot_makes_the_broker_publish_the_will() {
    let b = broker();
    let wt = uniq("bc26/rebootwill/");
    let peer = Peer::new(b, &uniq("peer"));
    peer.subscribe(&wt, 1);
    let mut t = Term::quiet(booting_fast());
    t.at(
        &format!("AT+QMTCFG=\"will\",0,1,1,0,\"{wt}\",\"rebooted\""),
        "\r\nOK\r\n",
    );
    t.connect(0, b, &uniq("sim"));
    t.handle.reboot();
    assert_eq!(&peer.recv().payload[..], b"rebooted");
    t.expect("\r\nRDY\r\n");
}

// ------------------------------------------------------------------ close_link

#[test]
fn close_link_reports_the_given_code_closes_the_client_and_the_broker_publishes_the_will() {
    let b = broker();
    let wt = uniq("bc26/closelink/");
    let peer = Peer::new(b, &uniq("peer"));
    peer.subscribe(&wt, 1);
    let mut t = Term::quiet(SimConfig::default());
    t.at(
        &format!("AT+QMTCFG=\"will\",0,1,1,0,\"{wt}\",\"cut\""),
        "\r\nOK\r\n",
    );
    t.connect(0, b, &uniq("sim"));
    t.handle.close_link(0, 6);
    t.expect("\r\n+QMTSTAT: 0,6\r\n");
    assert_eq!(&peer.recv().payload[..], b"cut");
    t.at("AT+QMTCONN?", "\r\nOK\r\n");
    t.at("AT+QMTOPEN?", "\r\nOK\r\n");
    // Open again, then a reserved code.
    t.connect(0, b, &uniq("sim"));
    t.handle.close_link(0, 255);
    t.expect("\r\n+QMTSTAT: 0,255\r\n");
    // No link: nothing happens.
    t.handle.close_link(0, 7);
    assert_eq!(common::show(&t.drain_for(Duration::from_millis(200))), "");
}

#[test]
fn close_link_on_an_opened_client_closes_its_tcp_link() {
    let server = FakeServer::new();
    let mut t = Term::quiet(SimConfig::default());
    t.open_port(3, server.port);
    let mut conn = server.accept();
    t.handle.close_link(3, 3);
    t.expect("\r\n+QMTSTAT: 3,3\r\n");
    assert_eq!(common::show(&conn.until_closed()), "");
    t.open_port(3, server.port);
}

// ------------------------------------------------------------------ registration

#[test]
fn losing_registration_drops_every_link_with_qmtstat_2_and_open_fails_with_3() {
    let b = broker();
    let mut t = Term::quiet(SimConfig::default());
    t.connect(0, b, &uniq("reg"));
    t.connect(1, b, &uniq("reg"));
    t.at("AT+CEREG=1", "\r\nOK\r\n");
    t.at("AT+CEREG?", "\r\n+CEREG: 1,1\r\n\r\nOK\r\n");
    t.handle.set_registration(2);
    t.expect("\r\n+CEREG: 2\r\n");
    t.expect("\r\n+QMTSTAT: 0,2\r\n");
    t.expect("\r\n+QMTSTAT: 1,2\r\n");
    t.at("AT+CEREG?", "\r\n+CEREG: 1,2\r\n\r\nOK\r\n");
    t.at("AT+CGATT?", "\r\n+CGATT: 0\r\n\r\nOK\r\n");
    t.at("AT+QMTCONN?", "\r\nOK\r\n");
    t.at(
        &format!("AT+QMTOPEN=0,\"{}\",{}", b.host, b.port),
        "\r\nOK\r\n",
    );
    t.expect("\r\n+QMTOPEN: 0,3\r\n");
    // Roaming counts as registered.
    t.handle.set_registration(5);
    t.expect("\r\n+CEREG: 5\r\n");
    t.at("AT+CGATT?", "\r\n+CGATT: 1\r\n\r\nOK\r\n");
    t.connect(0, b, &uniq("reg"));
    // URCs off (n = 0): the link still drops, silently on the +CEREG side.
    t.at("AT+CEREG=0", "\r\nOK\r\n");
    t.handle.set_registration(3);
    t.expect("\r\n+QMTSTAT: 0,2\r\n");
    t.at("AT+CEREG?", "\r\n+CEREG: 0,3\r\n\r\nOK\r\n");
}

#[test]
fn cereg_2_reports_the_location_while_registered() {
    let mut t = Term::quiet(SimConfig::default());
    t.at("AT+CEREG=?", "\r\n+CEREG: (0-5)\r\n\r\nOK\r\n");
    t.at("AT+CEREG=6", "\r\nERROR\r\n");
    t.at("AT+CEREG=2", "\r\nOK\r\n");
    t.at(
        "AT+CEREG?",
        "\r\n+CEREG: 2,1,\"1A2D\",\"0CF5E9A1\",9\r\n\r\nOK\r\n",
    );
    t.handle.set_registration(0);
    t.expect("\r\n+CEREG: 0\r\n");
    t.at("AT+CEREG?", "\r\n+CEREG: 2,0\r\n\r\nOK\r\n");
    t.handle.set_registration(1);
    t.expect("\r\n+CEREG: 1,\"1A2D\",\"0CF5E9A1\",9\r\n");
    // The same status again: no URC.
    t.handle.set_registration(1);
    assert_eq!(common::show(&t.drain_for(Duration::from_millis(200))), "");
}

#[test]
fn registration_lost_during_qmtopen_reports_3() {
    let server = FakeServer::new();
    let mut t = Term::quiet(SimConfig {
        faults: SimFaults {
            open_delay: Duration::from_millis(300),
            ..SimFaults::default()
        },
        ..SimConfig::default()
    });
    t.at(
        &format!("AT+QMTOPEN=4,\"127.0.0.1\",{}", server.port),
        "\r\nOK\r\n",
    );
    assert_eq!(t.handle.client_state(4), Some(ClientState::Opening));
    t.handle.set_registration(2);
    t.expect("\r\n+QMTOPEN: 4,3\r\n");
    assert_eq!(t.handle.client_state(4), Some(ClientState::Closed));
}

#[test]
fn cgatt_0_detaches_like_a_lost_registration_and_cgatt_1_attaches_again() {
    let server = FakeServer::new();
    let mut t = Term::quiet(SimConfig::default());
    t.open_port(0, server.port);
    let mut conn = server.accept();
    t.at("AT+CGATT=0", "\r\nOK\r\n\r\n+QMTSTAT: 0,2\r\n");
    assert_eq!(common::show(&conn.until_closed()), "");
    t.at("AT+CGATT?", "\r\n+CGATT: 0\r\n\r\nOK\r\n");
    t.at("AT+CEREG?", "\r\n+CEREG: 0,0\r\n\r\nOK\r\n");
    t.at(
        &format!("AT+QMTOPEN=0,\"127.0.0.1\",{}", server.port),
        "\r\nOK\r\n\r\n+QMTOPEN: 0,3\r\n",
    );
    t.at("AT+CGATT=1", "\r\nOK\r\n");
    t.at("AT+CGATT?", "\r\n+CGATT: 1\r\n\r\nOK\r\n");
    t.at("AT+CGATT=2", "\r\nERROR\r\n");
    t.open_port(0, server.port);
}

// ------------------------------------------------------------------ silence

#[test]
fn silence_loses_both_directions_while_mqtt_goes_on() {
    let b = broker();
    let topic = uniq("bc26/silent/");
    let peer = Peer::new(b, &uniq("peer"));
    peer.subscribe(&topic, 1);
    let mut t = Term::quiet(SimConfig::default());
    t.connect(0, b, &uniq("sim"));
    t.at(&format!("AT+QMTSUB=0,1,\"{topic}\",1"), "\r\nOK\r\n");
    t.expect("\r\n+QMTSUB: 0,1,0,1\r\n");

    t.handle.set_silent(true);
    t.send("AT+QMTDISC=0"); // lost: the client stays connected
    t.handle.inject_urc("+INJECTED"); // lost too: same dead UART
    peer.publish(&topic, 1, b"while silent");
    assert_eq!(&peer.recv().payload[..], b"while silent");
    assert_eq!(common::show(&t.drain_for(Duration::from_millis(300))), "");
    t.handle.set_silent(false);
    // Nothing was kept: the first bytes after the silence answer this command.
    t.at("AT+QMTCONN?", "\r\n+QMTCONN: 0,3\r\n\r\nOK\r\n");
    let sent = t.handle.transcript();
    assert!(!sent.windows(12).any(|w| w == b"while silent"));
    assert!(!sent.windows(9).any(|w| w == b"+INJECTED"));
    assert!(!t
        .handle
        .host_transcript()
        .windows(7)
        .any(|w| w == b"QMTDISC"));
    // The link dies while silent: its +QMTSTAT is lost too.
    t.handle.set_silent(true);
    t.handle.break_link(0);
    common::wait_for("the link to close", || {
        t.handle.client_state(0) == Some(ClientState::Closed)
    });
    t.handle.set_silent(false);
    t.at("AT+QMTCONN?", "\r\nOK\r\n");
}

// ------------------------------------------------------------------ refused, failed

#[test]
fn refuse_connect_refuses_the_next_n_connects_then_accepts() {
    let b = broker();
    let wt = uniq("bc26/refused/");
    let peer = Peer::new(b, &uniq("peer"));
    peer.subscribe(&wt, 1);
    let mut t = Term::quiet(SimConfig {
        faults: SimFaults {
            refuse_connect: Some((2, 4)),
            ..SimFaults::default()
        },
        ..SimConfig::default()
    });
    t.at(
        &format!("AT+QMTCFG=\"will\",0,1,1,0,\"{wt}\",\"never\""),
        "\r\nOK\r\n",
    );
    for left in [Some((1, 4)), None] {
        t.open(0, b);
        t.at(&format!("AT+QMTCONN=0,\"{}\"", uniq("sim")), "\r\nOK\r\n");
        t.expect("\r\n+QMTCONN: 0,0,4\r\n");
        // Closed, as after a broker's refusal: it must be opened again.
        t.at("AT+QMTCONN?", "\r\nOK\r\n");
        assert_eq!(t.handle.faults().refuse_connect, left);
    }
    t.connect(0, b, &uniq("sim"));
    // A refused connect never reached the broker: no will.
    assert!(peer.nothing_for(Duration::from_millis(300)));
}

#[test]
fn fail_open_fails_the_next_n_opens_with_the_code() {
    let server = FakeServer::new();
    let mut t = Term::quiet(SimConfig::default());
    t.handle.update_faults(|f| f.fail_open = Some((2, -1)));
    let open = format!("AT+QMTOPEN=1,\"127.0.0.1\",{}", server.port);
    t.at(&open, "\r\nOK\r\n\r\n+QMTOPEN: 1,-1\r\n");
    t.at(&open, "\r\nOK\r\n\r\n+QMTOPEN: 1,-1\r\n");
    t.open_port(1, server.port);
    t.at("AT+QMTCLOSE=1", "\r\nOK\r\n\r\n+QMTCLOSE: 1,0\r\n");
    t.handle.update_faults(|f| f.fail_open = Some((1, 5)));
    t.at(&open, "\r\nOK\r\n\r\n+QMTOPEN: 1,5\r\n");
    assert_eq!(t.handle.faults().fail_open, None);
}

// ------------------------------------------------------------------ what a test can read

#[test]
fn client_state_follows_each_client_and_host_transcript_records_the_host() {
    let server = FakeServer::new();
    let mut t = Term::quiet(SimConfig {
        faults: SimFaults {
            open_delay: Duration::from_millis(200),
            ..SimFaults::default()
        },
        ..SimConfig::default()
    });
    assert_eq!(t.handle.client_state(2), Some(ClientState::Closed));
    assert_eq!(t.handle.client_state(6), None);
    t.at(
        &format!("AT+QMTOPEN=2,\"127.0.0.1\",{}", server.port),
        "\r\nOK\r\n",
    );
    assert_eq!(t.handle.client_state(2), Some(ClientState::Opening));
    t.expect("\r\n+QMTOPEN: 2,0\r\n");
    assert_eq!(t.handle.client_state(2), Some(ClientState::Opened));
    let mut conn = server.accept();
    t.at("AT+QMTCONN=2,\"c\"", "\r\nOK\r\n");
    conn.read_packet().expect("CONNECT");
    assert_eq!(t.handle.client_state(2), Some(ClientState::Connecting));
    conn.send(b"\x20\x02\x00\x00");
    t.expect("\r\n+QMTCONN: 2,0,0\r\n");
    assert_eq!(t.handle.client_state(2), Some(ClientState::Connected));
    assert_eq!(t.handle.client_state(0), Some(ClientState::Closed));
    let host = String::from_utf8(t.handle.host_transcript()).unwrap();
    assert_eq!(
        host,
        format!(
            "AT\rAT+QMTOPEN=2,\"127.0.0.1\",{}\rAT+QMTCONN=2,\"c\"\r",
            server.port
        )
    );
}

#[test]
#[should_panic(expected = "+QMTSTAT codes are 1-255")]
fn close_link_with_code_0_panics() {
    let t = Term::quiet(SimConfig::default());
    t.handle.close_link(0, 0);
}

#[test]
fn ignore_connack_makes_qmtconn_time_out_with_2_and_close_the_link() {
    let server = FakeServer::new();
    let mut t = Term::quiet(SimConfig::default());
    t.at("AT+QMTCFG=\"timeout\",0,1", "\r\nOK\r\n");
    t.handle.update_faults(|f| f.ignore_connack = true);
    t.open_port(0, server.port);
    let mut conn = server.accept();
    let t0 = Instant::now();
    t.at("AT+QMTCONN=0,\"c\"", "\r\nOK\r\n");
    assert_eq!(conn.read_packet().expect("CONNECT")[0], 0x10);
    conn.send(b"\x20\x02\x00\x00");
    t.expect("\r\n+QMTCONN: 0,2\r\n");
    assert!(t0.elapsed() >= Duration::from_secs(1), "{:?}", t0.elapsed());
    assert_eq!(common::show(&conn.until_closed()), "");
    assert_eq!(t.handle.client_state(0), Some(ClientState::Closed));
}

#[test]
fn error_on_prefix_answers_error_to_matching_lines_only() {
    let mut t = Term::quiet(SimConfig::default());
    t.handle
        .update_faults(|f| f.error_on_prefix = Some("AT+QMTPUB".into()));
    t.at("AT+QMTPUB=?", "\r\nERROR\r\n");
    t.at("at+qmtpub=?", "\r\nERROR\r\n");
    t.at(
        "AT+QMTSUB=?",
        "\r\n+QMTSUB: (0-5),<msgID>,\"<topic>\",<qos>[,\"<topic>\",<qos>...]\r\n\r\nOK\r\n",
    );
    t.handle.set_faults(SimFaults::default());
    t.at(
        "AT+QMTPUB=?",
        "\r\n+QMTPUB: (0-5),<msgID>,<qos>,<retain>,\"<topic>\",\"<msg>\"\r\n\r\nOK\r\n",
    );
}

#[test]
fn open_delay_delays_the_qmtopen_result() {
    let server = FakeServer::new();
    let mut t = Term::quiet(SimConfig::default());
    t.handle
        .update_faults(|f| f.open_delay = Duration::from_millis(300));
    let t0 = Instant::now();
    t.open_port(0, server.port);
    assert!(
        t0.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t0.elapsed()
    );
}
