//! A whole session on one thread with a fake clock, byte for byte: open, connect, subscribe,
//! publish QoS 0/1/2 in text and in hex (inline and in data mode), receive in text and hex,
//! keep-alive, unsubscribe, disconnect, close.

use std::time::Duration;

use super::{close, send, Rig};
use crate::config::SimConfig;
use crate::model::{ClientState, NetAction, NetEvent, Time, ToHost};

#[test]
fn a_whole_session_byte_for_byte_on_a_fake_clock() {
    let mut r = Rig::new(SimConfig::default()); // echo on, as a BC26 starts
    r.at_ms(0).line("ATE0");
    assert_eq!(r.m.poll_host(), Some(ToHost::Echo(b"ATE0\r")));
    assert_eq!(r.m.poll_host(), Some(ToHost::Message(b"\r\nOK\r\n")));
    assert_eq!(r.m.poll_host(), None);

    // Open: a TCP connect, and the result once the network says it is up.
    r.at_ms(10).line("AT+QMTOPEN=0,\"broker.test\",1883");
    r.expect("\r\nOK\r\n");
    let link = match r.net().as_slice() {
        [NetAction::Connect { link, host, port }] => {
            assert_eq!((host.as_str(), *port), ("broker.test", 1883));
            *link
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(link.client(), 0);
    assert_eq!(r.m.client_state(0), Some(ClientState::Opening));
    assert_eq!(
        r.m.poll_at(),
        None,
        "nothing to do until the network answers"
    );
    r.at_ms(25);
    r.m.network(r.t, NetEvent::Connected(link));
    r.expect("\r\n+QMTOPEN: 0,0\r\n");

    // Connect: CONNECT at level 4, keep-alive 120 s, clean session; CONNACK 0.
    r.at_ms(40)
        .line("AT+QMTCONN=0,\"dev1\"")
        .expect("\r\nOK\r\n");
    r.expect_net(&[send(
        link,
        b"\x10\x10\x00\x04MQTT\x04\x02\x00\x78\x00\x04dev1",
    )]);
    let t40 = Time::from_millis(40);
    assert_eq!(
        r.m.poll_at(),
        Some(t40 + Duration::from_secs(10)),
        "CONNACK timeout"
    );
    r.at_ms(50).broker(link, b"\x20\x02\x00\x00");
    r.expect("\r\n+QMTCONN: 0,0,0\r\n");
    assert_eq!(r.m.client_state(0), Some(ClientState::Connected));
    assert_eq!(
        r.m.poll_at(),
        Some(t40 + Duration::from_secs(120)),
        "keep-alive"
    );

    // Subscribe.
    r.at_ms(60)
        .line("AT+QMTSUB=0,1,\"cmd/#\",1")
        .expect("\r\nOK\r\n");
    r.expect_net(&[send(link, b"\x82\x0a\x00\x01\x00\x05cmd/#\x01")]);
    r.at_ms(70).broker(link, b"\x90\x03\x00\x01\x01");
    r.expect("\r\n+QMTSUB: 0,1,0,1\r\n");

    // QoS 0, text, inline: sent and reported at once.
    r.at_ms(80).line("AT+QMTPUB=0,0,0,0,\"up/t\",\"hi\"");
    r.expect("\r\nOK\r\n\r\n+QMTPUB: 0,0,0\r\n");
    r.expect_net(&[send(link, b"\x30\x08\x00\x04up/thi")]);

    // QoS 1, text, inline, a quote and a comma in the message.
    r.at_ms(90).line("AT+QMTPUB=0,2,1,0,\"up/t\",\"a,\"b\"\"");
    r.expect("\r\nOK\r\n");
    r.expect_net(&[send(link, b"\x32\x0d\x00\x04up/t\x00\x02a,\"b\"")]);
    r.at_ms(95).broker(link, b"\x40\x02\x00\x02");
    r.expect("\r\n+QMTPUB: 0,2,0\r\n");

    // QoS 2, text, data mode (echoed, echomode 1), retained, CR LF inside.
    r.at_ms(100)
        .line("AT+QMTPUB=0,3,2,1,\"up/t\"")
        .expect("\r\n> ");
    r.at_ms(101).send(b"line1\r\nline2\x1a");
    r.expect("line1\r\nline2\r\nOK\r\n");
    r.expect_net(&[send(link, b"\x35\x14\x00\x04up/t\x00\x03line1\r\nline2")]);
    r.at_ms(110).broker(link, b"\x50\x02\x00\x03").expect("");
    r.expect_net(&[send(link, b"\x62\x02\x00\x03")]);
    r.at_ms(115).broker(link, b"\x70\x02\x00\x03");
    r.expect("\r\n+QMTPUB: 0,3,0\r\n");

    // Receive, text, QoS 1, in two TCP segments: PUBACK and +QMTRECV.
    r.at_ms(120).broker(link, b"\x32\x0b\x00\x05cm").expect("");
    r.expect_net(&[]);
    r.broker(link, b"d/x\x00\x07go");
    r.expect("\r\n+QMTRECV: 0,7,\"cmd/x\",\"go\"\r\n");
    r.expect_net(&[send(link, b"\x40\x02\x00\x07")]);

    // Hex both ways from now on.
    r.at_ms(130).line("AT+QMTCFG=\"dataformat\",0,1,1");
    r.expect("\r\nOK\r\n");
    r.at_ms(140).line("AT+QMTPUB=0,4,1,0,\"up/t\",\"00FF1a\"");
    r.expect("\r\nOK\r\n");
    r.expect_net(&[send(link, b"\x32\x0b\x00\x04up/t\x00\x04\x00\xff\x1a")]);
    r.at_ms(145).broker(link, b"\x40\x02\x00\x04");
    r.expect("\r\n+QMTPUB: 0,4,0\r\n");
    r.at_ms(150)
        .line("AT+QMTPUB=0,0,0,0,\"up/t\"")
        .expect("\r\n> ");
    r.send(b"1b0D\x1a");
    r.expect("1b0D\r\nOK\r\n\r\n+QMTPUB: 0,0,0\r\n");
    r.expect_net(&[send(link, b"\x30\x08\x00\x04up/t\x1b\x0d")]);
    r.at_ms(155).line("AT+QMTPUB=0,6,2,0,\"up/t\",\"CAFE\"");
    r.expect("\r\nOK\r\n");
    r.expect_net(&[send(link, b"\x34\x0a\x00\x04up/t\x00\x06\xca\xfe")]);
    r.broker(link, b"\x50\x02\x00\x06").expect("");
    r.expect_net(&[send(link, b"\x62\x02\x00\x06")]);
    r.broker(link, b"\x70\x02\x00\x06");
    r.expect("\r\n+QMTPUB: 0,6,0\r\n");

    // Receive, hex, QoS 2: reported once (a duplicate is not), PUBREC each time, PUBCOMP.
    let qos2 = b"\x34\x0d\x00\x05cmd/y\x00\x09\x00\x01\r\n";
    r.at_ms(160).broker(link, qos2);
    r.expect("\r\n+QMTRECV: 0,9,\"cmd/y\",\"00010D0A\"\r\n");
    r.expect_net(&[send(link, b"\x50\x02\x00\x09")]);
    let dup = [&[0x3c][..], &qos2[1..]].concat();
    r.broker(link, &dup).expect("");
    r.expect_net(&[send(link, b"\x50\x02\x00\x09")]);
    r.broker(link, b"\x62\x02\x00\x09").expect("");
    r.expect_net(&[send(link, b"\x70\x02\x00\x09")]);

    // Keep-alive: PINGREQ 120 s after the last packet sent (the PUBCOMP), not before.
    let t160 = Time::from_millis(160);
    assert_eq!(r.m.poll_at(), Some(t160 + Duration::from_secs(120)));
    r.at_ms(160 + 119_999).expect_net(&[]);
    r.at_ms(160 + 120_000).expect("");
    r.expect_net(&[send(link, b"\xc0\x00")]);
    r.at_ms(160 + 120_050).broker(link, b"\xd0\x00").expect("");
    assert_eq!(
        r.m.poll_at(),
        Some(t160 + Duration::from_secs(240)),
        "the next PINGREQ"
    );

    // Unsubscribe, disconnect (DISCONNECT then the TCP link closed), close.
    r.line("AT+QMTUNS=0,5,\"cmd/#\"").expect("\r\nOK\r\n");
    r.expect_net(&[send(link, b"\xa2\x09\x00\x05\x00\x05cmd/#")]);
    r.broker(link, b"\xb0\x02\x00\x05");
    r.expect("\r\n+QMTUNS: 0,5,0\r\n");
    r.line("AT+QMTDISC=0");
    r.expect("\r\nOK\r\n\r\n+QMTDISC: 0,0\r\n");
    r.expect_net(&[send(link, b"\xe0\x00"), close(link)]);
    r.line("AT+QMTCLOSE=0");
    r.expect("\r\nOK\r\n\r\n+QMTCLOSE: 0,-1\r\n");
    assert_eq!(r.m.client_state(0), Some(ClientState::Closed));
    assert_eq!(r.m.poll_at(), None, "nothing left to do");
}

#[test]
fn the_output_does_not_depend_on_how_the_host_bytes_are_cut() {
    let script: &[u8] = b"AT+QMTCLOSE=1\rAT+QMTCFG=\"keepalive\",1\rAT+CMEE?\rAT+QMTDISC=2\r";
    let whole = {
        let mut r = Rig::quiet();
        r.send(script);
        r.host()
    };
    assert_eq!(
        whole,
        super::show(
            b"\r\nOK\r\n\r\n+QMTCLOSE: 1,-1\r\n\r\n+QMTCFG: \"keepalive\",120\r\n\r\nOK\r\n\
              \r\n+CMEE: 0\r\n\r\nOK\r\n\r\nOK\r\n\r\n+QMTDISC: 2,-1\r\n"
        )
    );
    for cut in 1..script.len() {
        let mut r = Rig::quiet();
        r.send(&script[..cut]);
        r.send(&script[cut..]);
        assert_eq!(r.host(), whole, "cut at {cut}");
    }
    let mut r = Rig::quiet();
    for b in script {
        r.send(&[*b]);
    }
    assert_eq!(r.host(), whole, "byte by byte");
}

#[test]
fn two_clients_have_their_own_links_and_options() {
    let mut r = Rig::quiet();
    let a = r.connect(0);
    r.line("AT+QMTCFG=\"dataformat\",5,0,1")
        .expect("\r\nOK\r\n");
    let b = r.connect(5);
    assert_ne!(a, b);
    assert_eq!((a.client(), b.client()), (0, 5));
    r.line("AT+QMTCONN?");
    r.expect("\r\n+QMTCONN: 0,3\r\n+QMTCONN: 5,3\r\n\r\nOK\r\n");
    r.line("AT+QMTOPEN?");
    r.expect(
        "\r\n+QMTOPEN: 0,\"broker.test\",1883\r\n+QMTOPEN: 5,\"broker.test\",1883\r\n\r\nOK\r\n",
    );
    // The same PUBLISH to both: text on 0, hex on 5.
    r.broker(a, b"\x30\x04\x00\x01tz")
        .broker(b, b"\x30\x04\x00\x01tz");
    r.expect("\r\n+QMTRECV: 0,0,\"t\",\"z\"\r\n\r\n+QMTRECV: 5,0,\"t\",\"7A\"\r\n");
    // Bytes for a link its client no longer holds are ignored.
    r.line("AT+QMTCLOSE=0")
        .expect("\r\nOK\r\n\r\n+QMTCLOSE: 0,0\r\n");
    r.expect_net(&[close(a)]);
    r.broker(a, b"\x30\x04\x00\x01tz").expect("");
    r.expect_net(&[]);
}
