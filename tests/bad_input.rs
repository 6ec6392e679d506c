//! Every argument is checked before a byte is sent: a bad one is a typed
//! error and the modem sees nothing.

mod common;

use bc26_mqtt::commands::Will;
use bc26_mqtt::{ClientId, Error, Field, Problem, QoS};
use common::{fast_config, run, settle, setup, with_runner};

fn bad(field: Field, problem: Problem) -> Error {
    Error::InvalidArgument { field, problem }
}

#[test]
fn each_bad_argument_is_refused_and_nothing_reaches_the_uart() {
    run(async {
        let (modem, runner, mut fake) = setup(fast_config());
        let c = modem.client(ClientId::new(0).unwrap());
        with_runner(runner, async {
            let long_host = "h".repeat(101);
            let topic_256 = "t".repeat(256);
            let t250 = "t".repeat(250);
            let many: Vec<(&str, QoS)> = (0..5).map(|_| (t250.as_str(), QoS::AtMostOnce)).collect();
            let many_uns: Vec<&str> = (0..5).map(|_| t250.as_str()).collect();
            let big = vec![b'a'; 1025];
            let cases: Vec<(&str, Result<(), Error>, Error)> = vec![
                (
                    "client id 6",
                    ClientId::new(6).map(drop),
                    bad(Field::ClientId, Problem::OutOfRange),
                ),
                (
                    "qos 3",
                    QoS::new(3).map(drop),
                    bad(Field::Qos, Problem::OutOfRange),
                ),
                (
                    "host 101 bytes",
                    c.open(&long_host, 1883).await,
                    bad(Field::Host, Problem::TooLong),
                ),
                (
                    "empty host",
                    c.open("", 1883).await,
                    bad(Field::Host, Problem::Empty),
                ),
                (
                    "host with quote",
                    c.open("a\"b", 1883).await,
                    bad(Field::Host, Problem::ForbiddenByte),
                ),
                (
                    "host with CR LF",
                    c.open("a\r\nAT+QMTCLOSE=0", 1883).await,
                    bad(Field::Host, Problem::ForbiddenByte),
                ),
                (
                    "port 0",
                    c.open("h", 0).await,
                    bad(Field::Port, Problem::OutOfRange),
                ),
                (
                    "client id with quote",
                    c.connect("a\"", None, None).await,
                    bad(Field::MqttClientId, Problem::ForbiddenByte),
                ),
                (
                    "empty client id",
                    c.connect("", None, None).await,
                    bad(Field::MqttClientId, Problem::Empty),
                ),
                (
                    "user with LF",
                    c.connect("a", Some("u\n"), None).await,
                    bad(Field::Username, Problem::ForbiddenByte),
                ),
                (
                    "password with quote",
                    c.connect("a", Some("u"), Some("p\"")).await,
                    bad(Field::Password, Problem::ForbiddenByte),
                ),
                (
                    "password without user",
                    c.connect("a", None, Some("p")).await,
                    bad(Field::Username, Problem::Empty),
                ),
                (
                    "empty topic",
                    c.publish("", b"x", QoS::AtMostOnce, false).await.map(drop),
                    bad(Field::Topic, Problem::Empty),
                ),
                (
                    "topic 256 bytes",
                    c.publish(&topic_256, b"x", QoS::AtMostOnce, false)
                        .await
                        .map(drop),
                    bad(Field::Topic, Problem::TooLong),
                ),
                (
                    "topic with quote",
                    c.publish("a\"", b"x", QoS::AtMostOnce, false)
                        .await
                        .map(drop),
                    bad(Field::Topic, Problem::ForbiddenByte),
                ),
                (
                    "topic with CR",
                    c.subscribe(&[("a\r", QoS::AtMostOnce)]).await.map(drop),
                    bad(Field::Topic, Problem::ForbiddenByte),
                ),
                (
                    "topic with control byte",
                    c.unsubscribe(&["a\x01"]).await,
                    bad(Field::Topic, Problem::ForbiddenByte),
                ),
                (
                    "no topics",
                    c.subscribe(&[]).await.map(drop),
                    bad(Field::Topics, Problem::Empty),
                ),
                (
                    "no topics to unsubscribe",
                    c.unsubscribe(&[]).await,
                    bad(Field::Topics, Problem::Empty),
                ),
                (
                    "topics over the line",
                    c.subscribe(&many).await.map(drop),
                    bad(Field::Topics, Problem::LineTooLong),
                ),
                (
                    "unsubscribe over the line",
                    c.unsubscribe(&many_uns).await,
                    bad(Field::Topics, Problem::LineTooLong),
                ),
                (
                    "payload 1025 bytes",
                    c.publish("t", &big, QoS::AtMostOnce, false).await.map(drop),
                    bad(Field::Payload, Problem::TooLong),
                ),
                (
                    "text payload with Ctrl+Z",
                    c.publish("t", b"a\x1ab", QoS::AtMostOnce, false)
                        .await
                        .map(drop),
                    bad(Field::Payload, Problem::NeedsHexFormat),
                ),
                (
                    "text payload with ESC",
                    c.publish("t", b"a\x1bb", QoS::AtMostOnce, false)
                        .await
                        .map(drop),
                    bad(Field::Payload, Problem::NeedsHexFormat),
                ),
                (
                    "keepalive 3601",
                    c.set_keepalive(3601).await,
                    bad(Field::KeepAlive, Problem::OutOfRange),
                ),
                (
                    "pkt_timeout 0",
                    c.set_timeout(0, 3, false).await,
                    bad(Field::PacketTimeout, Problem::OutOfRange),
                ),
                (
                    "pkt_timeout 61",
                    c.set_timeout(61, 3, false).await,
                    bad(Field::PacketTimeout, Problem::OutOfRange),
                ),
                (
                    "retry_times 11",
                    c.set_timeout(10, 11, false).await,
                    bad(Field::RetryTimes, Problem::OutOfRange),
                ),
                (
                    "will topic with quote",
                    Will::new("a\"", "m", QoS::AtMostOnce, false).map(drop),
                    bad(Field::WillTopic, Problem::ForbiddenByte),
                ),
                (
                    "empty will topic",
                    Will::new("", "m", QoS::AtMostOnce, false).map(drop),
                    bad(Field::WillTopic, Problem::Empty),
                ),
                (
                    "will message with CR",
                    Will::new("t", "m\r", QoS::AtMostOnce, false).map(drop),
                    bad(Field::WillMessage, Problem::ForbiddenByte),
                ),
                (
                    "aliauth with quote",
                    c.set_aliauth("p", "d\"", "s").await,
                    bad(Field::AliAuth, Problem::ForbiddenByte),
                ),
                (
                    "empty aliauth",
                    c.set_aliauth("", "d", "s").await,
                    bad(Field::AliAuth, Problem::Empty),
                ),
            ];
            for (what, got, want) in cases {
                assert_eq!(got, Err(want), "{what}");
            }
            settle().await;
            assert!(fake.nothing_from_host(), "bad input reached the UART");
            // The driver is still usable, and no msgID or slot leaked.
            let (r, _) = embassy_futures::join::join(
                c.publish("t", b"x", QoS::AtLeastOnce, false),
                fake.answer(
                    b"AT+QMTPUB=0,1,1,0,\"t\",\"x\"\r",
                    b"\r\nOK\r\n\r\n+QMTPUB: 0,1,0\r\n",
                ),
            )
            .await;
            assert_eq!(r.map(|p| p.msg_id), Ok(1));
        })
        .await;
    });
}

#[test]
fn payloads_that_cannot_go_inline_go_in_data_mode_and_hex_mode_encodes() {
    run(async {
        let (modem, runner, mut fake) = setup(fast_config());
        let c = modem.client(ClientId::new(1).unwrap());
        with_runner(runner, async {
            // A quote, CR LF: data mode, bytes as they are.
            let (r, _) = embassy_futures::join::join(
                c.publish("t", b"a\"b\r\nc", QoS::AtMostOnce, false),
                async {
                    fake.answer(b"AT+QMTPUB=1,0,0,0,\"t\"\r", b"\r\n> ").await;
                    fake.answer(b"a\"b\r\nc\x1a", b"\r\nOK\r\n\r\n+QMTPUB: 1,0,0\r\n")
                        .await;
                },
            )
            .await;
            r.unwrap();
            // 1024 text bytes: data mode, in two chunks through the 1024-byte line buffer.
            let big: Vec<u8> = (0..1024).map(|i| b'a' + (i % 26) as u8).collect();
            let (r, _) =
                embassy_futures::join::join(c.publish("t", &big, QoS::AtMostOnce, false), async {
                    fake.answer(b"AT+QMTPUB=1,0,0,0,\"t\"\r", b"\r\n> ").await;
                    let mut want = big.clone();
                    want.push(0x1a);
                    fake.answer(&want, b"\r\nOK\r\n\r\n+QMTPUB: 1,0,0\r\n")
                        .await;
                })
                .await;
            r.unwrap();
            // Hex send format: binary goes as hex digits, inline or in data mode.
            let (r, _) = embassy_futures::join::join(
                c.set_data_format(bc26_mqtt::DataFormat::Hex, bc26_mqtt::DataFormat::Text),
                fake.answer(b"AT+QMTCFG=\"dataformat\",1,1,0\r", b"\r\nOK\r\n"),
            )
            .await;
            r.unwrap();
            let (r, _) = embassy_futures::join::join(
                c.publish("t", &[0x00, 0x1a, 0xff], QoS::AtMostOnce, false),
                async {
                    fake.answer(
                        b"AT+QMTPUB=1,0,0,0,\"t\",\"001AFF\"\r",
                        b"\r\nOK\r\n\r\n+QMTPUB: 1,0,0\r\n",
                    )
                    .await;
                },
            )
            .await;
            r.unwrap();
            let bin: Vec<u8> = (0..512u32).map(|i| i as u8).collect();
            let (r, _) =
                embassy_futures::join::join(c.publish("t", &bin, QoS::AtMostOnce, false), async {
                    fake.answer(b"AT+QMTPUB=1,0,0,0,\"t\"\r", b"\r\n> ").await;
                    let mut want: Vec<u8> = bin
                        .iter()
                        .flat_map(|b| format!("{b:02X}").into_bytes())
                        .collect();
                    want.push(0x1a);
                    fake.answer(&want, b"\r\nOK\r\n\r\n+QMTPUB: 1,0,0\r\n")
                        .await;
                })
                .await;
            r.unwrap();
            assert_eq!(
                c.publish("t", &[0u8; 513], QoS::AtMostOnce, false).await,
                Err(Error::InvalidArgument {
                    field: Field::Payload,
                    problem: Problem::TooLong
                })
            );
        })
        .await;
    });
}
