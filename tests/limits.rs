//! One receive limit: a received payload of up to `limits::RECV_PAYLOAD`
//! (1,024) bytes is delivered whole, as text and as hex digits; one byte
//! more is dropped and counted (`Stats::messages_too_long`), never delivered
//! cut, never a panic, and the stream goes on.

mod common;

use bc26_mqtt::{limits, ClientId, DataFormat, Modem};
use common::{fast_config, next_ev, run, settle, setup, with_runner, Ev, Fake};
use embassy_futures::join::join;

fn id(n: u8) -> ClientId {
    ClientId::new(n).unwrap()
}

/// `+QMTRECV: 0,<msg_id>,"t",["<len>",]"<wire>"`.
fn recv(msg_id: u16, wire: &[u8], length: bool) -> Vec<u8> {
    let mut f = format!("\r\n+QMTRECV: 0,{msg_id},\"t\",").into_bytes();
    if length {
        f.extend_from_slice(format!("{},", wire.len()).as_bytes());
    }
    f.push(b'"');
    f.extend_from_slice(wire);
    f.extend_from_slice(b"\"\r\n");
    f
}

/// A text payload of `n` bytes (no `"`, so only the closing quote ends it).
fn text(n: usize) -> Vec<u8> {
    (0..n).map(|i| b'a' + (i % 26) as u8).collect()
}

fn hex(bytes: &[u8]) -> Vec<u8> {
    bytes
        .iter()
        .flat_map(|b| format!("{b:02X}").into_bytes())
        .collect()
}

/// Sends `frame`, then a short message: returns the payload delivered for
/// `frame` (None if it was not delivered) and checks the next one arrives.
async fn deliver(
    modem: Modem<'static>,
    fake: &mut Fake,
    events: &mut bc26_mqtt::Events<'static>,
    frame: &[u8],
    msg_id: u16,
    after: &[u8],
) -> Option<Vec<u8>> {
    fake.send(frame).await;
    fake.send(after).await;
    settle().await;
    let mut got = None;
    loop {
        match next_ev(events).await {
            Ev::Message(m) if m.msg_id == u32::from(msg_id) => got = Some(m.payload),
            Ev::Message(m) if m.msg_id == 999 => {
                assert_eq!(m.payload, b"next");
                break;
            }
            other => panic!("unexpected {other:?} ({:?})", modem.stats()),
        }
    }
    got
}

#[test]
fn text_payloads_are_delivered_up_to_1024_bytes_and_dropped_and_counted_beyond() {
    run(async {
        let (modem, runner, mut fake) = setup(fast_config());
        let mut events = modem.events().unwrap();
        with_runner(runner, async {
            let next = recv(999, b"next", false);
            let mut dropped = 0;
            for length in [false, true] {
                let at = text(limits::RECV_PAYLOAD);
                let frame = recv(1, &at, length);
                let got = deliver(modem, &mut fake, &mut events, &frame, 1, &next).await;
                assert_eq!(
                    got.as_deref(),
                    Some(&at[..]),
                    "1024 bytes, length field {length}"
                );
                for n in [limits::RECV_PAYLOAD + 1, 2 * limits::RECV_PAYLOAD] {
                    let over = text(n);
                    let frame = recv(2, &over, length);
                    let got = deliver(modem, &mut fake, &mut events, &frame, 2, &next).await;
                    let got = got.map(|p| p.len());
                    assert_eq!(
                        got, None,
                        "{n} text bytes delivered (length field {length})"
                    );
                    dropped += 1;
                    assert_eq!(modem.stats().messages_too_long, dropped);
                }
            }
            let s = modem.stats();
            assert_eq!((s.malformed_urcs, s.overflows), (0, 0), "{s:?}");
        })
        .await;
    });
}

#[test]
fn hex_payloads_are_delivered_up_to_1024_bytes_and_dropped_and_counted_beyond() {
    run(async {
        let (modem, runner, mut fake) = setup(fast_config());
        let mut events = modem.events().unwrap();
        let c0 = modem.client(id(0));
        with_runner(runner, async {
            let (r, _) = join(
                c0.set_data_format(DataFormat::Text, DataFormat::Hex),
                fake.answer(b"AT+QMTCFG=\"dataformat\",0,0,1\r", b"\r\nOK\r\n"),
            )
            .await;
            assert_eq!(r, Ok(()));
            let next = recv(999, &hex(b"next"), false);
            let mut dropped = 0;
            for length in [false, true] {
                let at: Vec<u8> = (0..limits::RECV_PAYLOAD).map(|i| i as u8).collect();
                let frame = recv(1, &hex(&at), length);
                let got = deliver(modem, &mut fake, &mut events, &frame, 1, &next).await;
                assert_eq!(
                    got.as_deref(),
                    Some(&at[..]),
                    "1024 bytes, length field {length}"
                );
                let over: Vec<u8> = (0..=limits::RECV_PAYLOAD).map(|i| i as u8).collect();
                let frame = recv(2, &hex(&over), length);
                let got = deliver(modem, &mut fake, &mut events, &frame, 2, &next).await;
                let got = got.map(|p| p.len());
                assert_eq!(got, None, "1025 bytes delivered (length field {length})");
                dropped += 1;
                assert_eq!(modem.stats().messages_too_long, dropped);
            }
            let s = modem.stats();
            assert_eq!((s.malformed_urcs, s.overflows), (0, 0), "{s:?}");
        })
        .await;
    });
}
