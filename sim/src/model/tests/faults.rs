//! Every fault of `SimHandle` (and `SimFaults`) on the model, and its timers, at chosen
//! times, byte for byte.

use std::time::Duration;

use super::{close, send, Rig};
use crate::config::{SimConfig, SimFaults};
use crate::model::{ClientState, ConnectError, NetAction, NetEvent, Time};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn drop_acks_makes_a_publish_retransmit_with_dup_then_succeed_or_fail() {
    let mut r = Rig::quiet();
    r.line("AT+QMTCFG=\"timeout\",0,1,2,1").expect("\r\nOK\r\n");
    let link = r.connect(0);
    r.m.faults_mut().drop_acks = 1;
    r.line("AT+QMTPUB=0,5,1,0,\"t\",\"m\"").expect("\r\nOK\r\n");
    r.expect_net(&[send(link, b"\x32\x06\x00\x01t\x00\x05m")]);
    r.broker(link, b"\x40\x02\x00\x05").expect("");
    assert_eq!(r.m.faults().drop_acks, 0, "one ack dropped");
    r.after(secs(1));
    r.expect("\r\n+QMTPUB: 0,5,1,1\r\n");
    r.expect_net(&[send(link, b"\x3a\x06\x00\x01t\x00\x05m")]);
    r.broker(link, b"\x40\x02\x00\x05");
    r.expect("\r\n+QMTPUB: 0,5,0\r\n");
    // No ack at all: two retries (timeout_notice on), then failed.
    r.line("AT+QMTSUB=0,6,\"s\",0").expect("\r\nOK\r\n");
    r.net();
    r.after(secs(1)).expect("\r\n+QMTSUB: 0,6,1,1\r\n");
    r.expect_net(&[send(link, b"\x82\x06\x00\x06\x00\x01s\x00")]);
    r.after(secs(1)).expect("\r\n+QMTSUB: 0,6,1,2\r\n");
    r.after(Duration::from_millis(999)).expect("");
    r.after(Duration::from_millis(1))
        .expect("\r\n+QMTSUB: 0,6,2\r\n");
    r.expect_net(&[send(link, b"\x82\x06\x00\x06\x00\x01s\x00")]);
}

#[test]
fn a_qos2_publish_whose_pubcomp_is_lost_sends_pubrel_again() {
    let mut r = Rig::quiet();
    r.line("AT+QMTCFG=\"timeout\",0,2,1,0").expect("\r\nOK\r\n");
    let link = r.connect(0);
    r.line("AT+QMTPUB=0,9,2,0,\"t\",\"m\"").expect("\r\nOK\r\n");
    r.net();
    r.broker(link, b"\x50\x02\x00\x09");
    r.expect_net(&[send(link, b"\x62\x02\x00\x09")]);
    r.m.faults_mut().drop_acks = 1;
    r.broker(link, b"\x70\x02\x00\x09").expect("");
    r.after(secs(2)).expect("");
    r.expect_net(&[send(link, b"\x62\x02\x00\x09")]);
    r.after(secs(2)).expect("\r\n+QMTPUB: 0,9,2\r\n");
}

#[test]
fn ignore_pingresp_loses_the_link_one_pkt_timeout_after_the_pingreq() {
    let mut r = Rig::quiet();
    r.line("AT+QMTCFG=\"keepalive\",0,1").expect("\r\nOK\r\n");
    r.line("AT+QMTCFG=\"timeout\",0,1").expect("\r\nOK\r\n");
    let t0 = r.t;
    let link = r.connect(0);
    r.m.faults_mut().ignore_pingresp = true;
    assert_eq!(r.m.poll_at(), Some(t0 + secs(1)));
    r.after(secs(1)).expect_net(&[send(link, b"\xc0\x00")]);
    r.broker(link, b"\xd0\x00");
    assert_eq!(r.m.poll_at(), Some(t0 + secs(2)));
    r.after(secs(1)).expect("\r\n+QMTSTAT: 0,2\r\n");
    r.expect_net(&[close(link)]);
    assert_eq!(r.m.client_state(0), Some(ClientState::Closed));
}

#[test]
fn ignore_connack_times_qmtconn_out_with_2() {
    let mut r = Rig::quiet();
    let link = r.open(0);
    r.m.faults_mut().ignore_connack = true;
    r.line("AT+QMTCONN=0,\"c\"").expect("\r\nOK\r\n");
    r.net();
    r.broker(link, b"\x20\x02\x00\x00").expect("");
    assert_eq!(r.m.client_state(0), Some(ClientState::Connecting));
    r.after(Duration::from_millis(9_999)).expect("");
    r.after(Duration::from_millis(1))
        .expect("\r\n+QMTCONN: 0,2\r\n");
    r.expect_net(&[close(link)]);
}

#[test]
fn open_delay_and_fail_open_delay_and_fail_the_open() {
    let mut r = Rig::new(SimConfig {
        echo: false,
        faults: SimFaults {
            open_delay: Duration::from_millis(300),
            fail_open: Some((1, 5)),
            ..SimFaults::default()
        },
        ..SimConfig::default()
    });
    r.line("AT+QMTOPEN=2,\"h\",1").expect("\r\nOK\r\n");
    assert_eq!(r.m.faults().fail_open, None, "counted down");
    assert_eq!(r.m.client_state(2), Some(ClientState::Opening));
    assert_eq!(r.m.poll_at(), Some(Time::from_millis(300)));
    r.at_ms(299).expect("");
    r.at_ms(300).expect("\r\n+QMTOPEN: 2,5\r\n");
    r.expect_net(&[]);
    // The next one connects, 300 ms after its command.
    r.at_ms(1000)
        .line("AT+QMTOPEN=2,\"h\",1")
        .expect("\r\nOK\r\n");
    r.expect_net(&[]);
    r.at_ms(1300);
    let link = match r.net().as_slice() {
        [NetAction::Connect { link, .. }] => *link,
        other => panic!("{other:?}"),
    };
    r.m.network(
        r.t,
        NetEvent::ConnectFailed(link, ConnectError::NameNotResolved),
    );
    r.expect("\r\n+QMTOPEN: 2,4\r\n");
}

#[test]
fn a_refused_connect_never_reaches_the_network() {
    let mut r = Rig::quiet();
    r.m.faults_mut().refuse_connect = Some((1, 4));
    let link = r.open(1);
    r.line("AT+QMTCONN=1,\"c\"");
    r.expect("\r\nOK\r\n\r\n+QMTCONN: 1,0,4\r\n");
    r.expect_net(&[close(link)]);
    assert_eq!(r.m.faults().refuse_connect, None);
    r.line("AT+QMTCONN?").expect("\r\nOK\r\n");
}

#[test]
fn error_on_prefix_refuses_matching_lines_only() {
    let mut r = Rig::quiet();
    r.m.faults_mut().error_on_prefix = Some("at+qmtpub".into());
    r.line("AT+QMTPUB=?").expect("\r\nERROR\r\n");
    r.line("AT+QMTUNS=?");
    r.expect("\r\n+QMTUNS: (0-5),<msgID>,\"<topic>\"\r\n\r\nOK\r\n");
}

#[test]
fn reboot_drops_links_discards_output_ignores_the_host_then_says_rdy() {
    let mut r = Rig::new(SimConfig {
        echo: false,
        boot_time: Duration::from_millis(200),
        ..SimConfig::default()
    });
    r.line("AT+QMTCFG=\"echomode\",0,0").expect("\r\nOK\r\n");
    let link = r.connect(0);
    // In data mode with half a payload, and a +QMTRECV held back meanwhile.
    r.line("AT+QMTPUB=0,1,1,0,\"t\"").expect("\r\n> ");
    r.send(b"half");
    r.broker(link, b"\x30\x04\x00\x01tz").expect("");
    r.at_ms(1_000);
    r.m.reboot(r.t);
    assert_eq!(r.host(), "<discard>");
    r.expect_net(&[close(link)]);
    assert_eq!(r.m.client_state(0), Some(ClientState::Closed));
    // While booting: nothing taken, nothing sent.
    assert_eq!(r.send(b"AT\r"), b"");
    assert_eq!(r.m.poll_at(), Some(Time::from_millis(1_200)));
    r.at_ms(1_199).expect("");
    r.at_ms(1_200).expect("\r\nRDY\r\n");
    // Echo on (the factory default), options back to their defaults, no data mode, no URC.
    r.line("AT").expect("AT\r\r\nOK\r\n");
    r.line("AT+QMTCFG=\"echomode\",0");
    r.expect("AT+QMTCFG=\"echomode\",0\r\r\n+QMTCFG: \"echomode\",1\r\n\r\nOK\r\n");
    r.broker(link, b"\x30\x04\x00\x01tz").expect("");
    assert_eq!(r.m.poll_at(), None);
}

#[test]
fn reboot_discards_a_result_still_waiting_for_result_delay() {
    let mut r = Rig::new(SimConfig {
        echo: false,
        result_delay: Duration::from_millis(50),
        boot_time: Duration::ZERO,
        ..SimConfig::default()
    });
    r.line("AT+QMTCLOSE=0").expect("\r\nOK\r\n");
    assert_eq!(r.m.poll_at(), Some(Time::from_millis(50)));
    r.at_ms(10);
    r.m.reboot(r.t);
    r.at_ms(100).expect("<discard>\r\nRDY\r\n");
    assert_eq!(r.m.poll_at(), None);
}

#[test]
fn result_delay_delays_results_and_urcs_never_overtake_them() {
    let mut r = Rig::new(SimConfig {
        echo: false,
        result_delay: Duration::from_millis(100),
        ..SimConfig::default()
    });
    r.line("AT+QMTOPEN=0,\"h\",1").expect("\r\nOK\r\n");
    let link = match r.net().as_slice() {
        [NetAction::Connect { link, .. }] => *link,
        other => panic!("{other:?}"),
    };
    r.at_ms(20);
    r.m.network(r.t, NetEvent::Connected(link));
    r.expect("");
    // A URC at 50 ms waits for the result due at 120 ms.
    r.at_ms(50);
    r.m.close_link(r.t, 0, 7);
    r.expect("");
    r.at_ms(119).expect("");
    r.at_ms(120)
        .expect("\r\n+QMTOPEN: 0,0\r\n\r\n+QMTSTAT: 0,7\r\n");
}

#[test]
fn silence_loses_both_directions_while_mqtt_goes_on() {
    let mut r = Rig::quiet();
    let link = r.connect(0);
    r.m.set_silent(r.t, true);
    assert_eq!(r.host(), "<discard>");
    assert_eq!(r.send(b"AT+QMTDISC=0\r"), b"", "not taken");
    r.m.inject(r.t, b"\r\n+INJECTED\r\n");
    // A message arrives and is acknowledged; its +QMTRECV is lost.
    r.broker(link, b"\x32\x06\x00\x01t\x00\x03m").expect("");
    r.expect_net(&[send(link, b"\x40\x02\x00\x03")]);
    r.m.set_silent(r.t, false);
    r.line("AT+QMTCONN?")
        .expect("\r\n+QMTCONN: 0,3\r\n\r\nOK\r\n");
    // A link that dies while silent: its +QMTSTAT is lost too.
    r.m.set_silent(r.t, true);
    r.m.break_link(r.t, 0);
    r.expect_net(&[close(link)]);
    r.m.set_silent(r.t, false);
    r.line("AT+QMTCONN?").expect("<discard>\r\nOK\r\n");
}

#[test]
fn close_link_and_break_link_report_their_codes_and_need_a_link() {
    let mut r = Rig::quiet();
    let link = r.connect(3);
    r.m.close_link(r.t, 3, 255);
    r.expect("\r\n+QMTSTAT: 3,255\r\n");
    r.expect_net(&[close(link)]);
    r.m.close_link(r.t, 3, 6);
    r.m.close_link(r.t, 9, 6);
    r.expect("");
    let link = r.open(3);
    r.m.break_link(r.t, 3);
    r.expect("\r\n+QMTSTAT: 3,1\r\n");
    r.expect_net(&[close(link)]);
    // The peer closing: the same.
    let link = r.connect(3);
    r.m.network(r.t, NetEvent::Closed(link));
    r.expect("\r\n+QMTSTAT: 3,1\r\n");
    r.expect_net(&[close(link)]);
    // A close of an old link changes nothing.
    let new = r.open(3);
    r.m.network(r.t, NetEvent::Closed(link));
    r.expect("");
    assert_eq!(r.m.client_state(3), Some(ClientState::Opened));
    assert_ne!(new, link);
}

#[test]
fn losing_registration_drops_every_link_and_open_then_fails_with_3() {
    let mut r = Rig::quiet();
    let a = r.connect(0);
    let b = r.open(1);
    r.line("AT+CEREG=1").expect("\r\nOK\r\n");
    r.m.set_registration(r.t, 2);
    r.expect("\r\n+CEREG: 2\r\n\r\n+QMTSTAT: 0,2\r\n\r\n+QMTSTAT: 1,2\r\n");
    r.expect_net(&[close(a), close(b)]);
    r.line("AT+CGATT?").expect("\r\n+CGATT: 0\r\n\r\nOK\r\n");
    r.line("AT+QMTOPEN=0,\"h\",1");
    r.expect("\r\nOK\r\n\r\n+QMTOPEN: 0,3\r\n");
    r.expect_net(&[]);
    // Registered again (roaming); lost during the TCP connect: 3, the link closed.
    r.m.set_registration(r.t, 5);
    r.expect("\r\n+CEREG: 5\r\n");
    r.line("AT+QMTOPEN=0,\"h\",1").expect("\r\nOK\r\n");
    let link = match r.net().as_slice() {
        [NetAction::Connect { link, .. }] => *link,
        other => panic!("{other:?}"),
    };
    r.m.set_registration(r.t, 0);
    r.expect("\r\n+CEREG: 0\r\n");
    r.m.network(r.t, NetEvent::Connected(link));
    r.expect("\r\n+QMTOPEN: 0,3\r\n");
    r.expect_net(&[close(link)]);
    // CGATT=0 detaches like a lost registration.
    r.m.set_registration(r.t, 1);
    r.expect("\r\n+CEREG: 1\r\n");
    let c = r.connect(2);
    r.line("AT+CGATT=0");
    r.expect("\r\nOK\r\n\r\n+CEREG: 0\r\n\r\n+QMTSTAT: 2,2\r\n");
    r.expect_net(&[close(c)]);
}

#[test]
fn inject_goes_out_in_order_even_in_data_mode() {
    let mut r = Rig::quiet();
    r.line("AT+QMTCLOSE=0");
    r.m.inject(r.t, b"\xff\x00garbage");
    let want = super::show(b"\r\nOK\r\n\r\n+QMTCLOSE: 0,-1\r\n\xff\x00garbage");
    assert_eq!(r.host(), want);
    // In data mode too (a URC would wait; injected bytes do not).
    let link = r.connect(0);
    r.line("AT+QMTPUB=0,0,0,0,\"t\"").expect("\r\n> ");
    r.send(b"ab");
    r.broker(link, b"\x30\x04\x00\x01tz");
    r.m.inject(r.t, b"!");
    r.expect("ab!");
}

#[test]
fn late_network_events_of_a_closed_client_are_answered_by_a_close() {
    let mut r = Rig::quiet();
    r.line("AT+QMTOPEN=4,\"h\",1").expect("\r\nOK\r\n");
    let link = match r.net().as_slice() {
        [NetAction::Connect { link, .. }] => *link,
        other => panic!("{other:?}"),
    };
    r.line("AT+QMTCLOSE=4")
        .expect("\r\nOK\r\n\r\n+QMTCLOSE: 4,0\r\n");
    r.expect_net(&[close(link)]);
    r.m.network(r.t, NetEvent::Connected(link));
    r.expect("");
    r.expect_net(&[close(link)]);
    r.m.network(r.t, NetEvent::ConnectFailed(link, ConnectError::Refused));
    r.expect("");
    assert_eq!(r.m.client_state(4), Some(ClientState::Closed));
}

#[test]
fn time_never_goes_back() {
    let mut r = Rig::quiet();
    r.at_ms(500);
    r.m.advance(Time::ZERO);
    assert_eq!(r.m.now(), Time::from_millis(500));
    r.line("AT").expect("\r\nOK\r\n");
}

#[test]
fn at_qrst_1_answers_ok_then_restarts_drops_links_ignores_the_host_then_says_rdy() {
    let mut r = Rig::new(SimConfig {
        echo: false,
        boot_time: Duration::from_millis(300),
        ..SimConfig::default()
    });
    let link = r.connect(0);
    r.at_ms(1_000);
    // `OK` goes out whole (no discard), then the module restarts: its links dropped,
    // the rest of the bytes of the same write lost.
    assert_eq!(r.send(b"AT+QRST=1\rAT\r"), b"AT+QRST=1\rAT\r");
    assert_eq!(r.host(), "\\r\\nOK\\r\\n");
    r.expect_net(&[close(link)]);
    assert_eq!(r.m.client_state(0), Some(ClientState::Closed));
    // While it boots: nothing taken, nothing sent; then `RDY`.
    assert_eq!(r.send(b"AT\r"), b"");
    assert_eq!(r.m.poll_at(), Some(Time::from_millis(1_300)));
    r.at_ms(1_299).expect("");
    r.at_ms(1_300).expect("\r\nRDY\r\n");
    // As after power-on: echo on.
    r.line("AT").expect("AT\r\r\nOK\r\n");
    // Only mode 1 exists.
    r.line("ATE0").expect("ATE0\r\r\nOK\r\n");
    for l in ["AT+QRST=0", "AT+QRST", "AT+QRST?", "AT+QRST=1,1"] {
        r.line(l).expect("\r\nERROR\r\n");
    }
}

#[test]
fn a_poisoned_message_fails_every_time_and_the_others_go() {
    use crate::config::{Poison, PoisonAnswer};
    let mut r = Rig::quiet();
    let link = r.connect(0);
    r.m.faults_mut().poison = Some(Poison {
        marker: b"bad".to_vec(),
        answer: PoisonAnswer::Failed,
    });
    for _ in 0..3 {
        r.line("AT+QMTPUB=0,5,1,0,\"t\",\"a bad one\"");
        r.expect("\r\nOK\r\n\r\n+QMTPUB: 0,5,2\r\n");
        r.expect_net(&[]);
    }
    // Data mode too, and the others go.
    r.line("AT+QMTCFG=\"echomode\",0,0").expect("\r\nOK\r\n");
    r.line("AT+QMTPUB=0,5,1,0,\"t\"").expect("\r\n> ");
    r.send(b"bad\x1a");
    r.expect("\r\nOK\r\n\r\n+QMTPUB: 0,5,2\r\n");
    r.line("AT+QMTPUB=0,6,1,0,\"t\",\"good\"")
        .expect("\r\nOK\r\n");
    r.expect_net(&[send(link, b"\x32\x09\x00\x01t\x00\x06good")]);
    // ERROR instead: to the line, and to the payload in data mode.
    r.m.faults_mut().poison.as_mut().unwrap().answer = PoisonAnswer::Error;
    r.line("AT+QMTPUB=0,7,1,0,\"t\",\"bad\"")
        .expect("\r\nERROR\r\n");
    r.line("AT+QMTPUB=0,7,1,0,\"t\"").expect("\r\n> ");
    r.send(b"bad\x1a");
    r.expect("\r\nERROR\r\n");
    r.line("AT+QMTPUB=0,0,0,0,\"t\"").expect("\r\n> ");
    r.send(b"fine\x1a");
    r.expect("\r\nOK\r\n\r\n+QMTPUB: 0,0,0\r\n");
    r.expect_net(&[send(link, b"\x30\x07\x00\x01tfine")]);
}

#[test]
fn a_wedged_module_answers_nothing_and_a_restart_ends_the_wedge() {
    use crate::config::Wedge;
    let mut r = Rig::new(SimConfig {
        echo: false,
        boot_time: Duration::from_millis(100),
        ..SimConfig::default()
    });
    r.m.faults_mut().wedged = Some(Wedge::ResetWorks);
    r.line("AT").expect("");
    r.line("AT+CEREG?").expect("");
    // `AT+QRST=1` still restarts it: OK, the boot, RDY, and answers again.
    r.line("AT+QRST=1").expect("\r\nOK\r\n");
    assert_eq!(r.m.faults().wedged, None);
    r.after(Duration::from_millis(100)).expect("\r\nRDY\r\n");
    r.line("AT").expect("AT\r\r\nOK\r\n");
    r.line("ATE0").expect("ATE0\r\r\nOK\r\n");
    // Deaf: `AT+QRST=1` is not answered either; the board's reset ends it.
    r.m.faults_mut().wedged = Some(Wedge::Deaf);
    r.line("AT+QRST=1").expect("");
    r.line("AT").expect("");
    r.m.reboot(r.t);
    r.after(Duration::from_millis(100))
        .expect("<discard>\r\nRDY\r\n");
    r.line("AT").expect("AT\r\r\nOK\r\n");
}
