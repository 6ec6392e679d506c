//! What the public API refuses before a byte reaches the UART: topics MQTT
//! 3.1.1 forbids (section 4.7), in every publish form, subscription and
//! will; and through `Modem::send`, commands the driver owns (whatever type
//! wrote the line), lines longer than the line buffer (never a panic) and
//! lines holding more than one command. Queries, test forms and other
//! commands still go through.

mod common;

use bc26_mqtt::commands::{Custom, QueryDataFormat, TestOpenNetwork, TestPublish, Will};
use bc26_mqtt::supervisor::{self, SupervisorConfig, SupervisorState};
use bc26_mqtt::{ClientId, DataFormat, Error, Field, Problem, QoS};
use common::{fast_config, run, settle, setup, with_runner};
use embassy_futures::join::join;

fn id(n: u8) -> ClientId {
    ClientId::new(n).unwrap()
}

const WILDCARD: Error = Error::InvalidArgument {
    field: Field::Topic,
    problem: Problem::Wildcard,
};

/// Topic names holding a wildcard: refused for publishing.
const BAD_NAMES: [&str; 7] = ["a/+", "a/#", "#", "+", "a+b", "sport/tennis#", "+/x"];
/// Filters whose wildcards are not whole levels, or `#` not last.
const BAD_FILTERS: [&str; 7] = ["a/#/b", "#/a", "a#", "a/b#", "a+", "a/+b", "++"];

#[test]
fn topics_mqtt_forbids_are_refused_in_every_form_and_nothing_reaches_the_uart() {
    run(async {
        let (modem, runner, mut fake) = setup(fast_config());
        let c = modem.client(id(0));
        with_runner(runner, async {
            for t in BAD_NAMES {
                let q = QoS::AtLeastOnce;
                assert_eq!(
                    c.publish(t, b"x", q, false).await.map(drop),
                    Err(WILDCARD),
                    "{t}"
                );
                assert_eq!(
                    c.try_publish(t, b"x", q, false).await.map(drop),
                    Err(WILDCARD)
                );
                assert_eq!(
                    c.publish_data_mode(t, b"x", q, false).await.map(drop),
                    Err(WILDCARD),
                    "{t}"
                );
                assert_eq!(
                    c.start_publish(t, b"x", q, false).await.map(drop),
                    Err(WILDCARD),
                    "{t}"
                );
                assert_eq!(
                    Will::new(t, "m", QoS::AtMostOnce, false).map(drop),
                    Err(Error::InvalidArgument {
                        field: Field::WillTopic,
                        problem: Problem::Wildcard
                    }),
                    "{t}"
                );
            }
            for f in BAD_FILTERS {
                assert_eq!(
                    c.subscribe(&[(f, QoS::AtMostOnce)]).await.map(drop),
                    Err(WILDCARD)
                );
                // One bad filter among good ones refuses the whole list.
                let list = [("a/+/c", QoS::AtMostOnce), (f, QoS::AtMostOnce)];
                assert_eq!(c.subscribe(&list).await.map(drop), Err(WILDCARD), "{f}");
                assert_eq!(c.unsubscribe(&["#", f]).await, Err(WILDCARD), "{f}");
            }
            for t in ["a\0b", "a\u{85}"] {
                let e = c.publish(t, b"x", QoS::AtMostOnce, false).await.map(drop);
                assert_eq!(
                    e,
                    Err(Error::InvalidArgument {
                        field: Field::Topic,
                        problem: Problem::ForbiddenByte
                    }),
                    "{t:?}"
                );
            }
            settle().await;
            assert!(
                fake.nothing_from_host(),
                "a forbidden topic reached the UART"
            );
            // Whole-level wildcards in a filter are what MQTT allows.
            let (r, _) = join(
                c.subscribe(&[("a/+/c", QoS::AtMostOnce), ("#", QoS::AtLeastOnce)]),
                fake.answer(
                    b"AT+QMTSUB=0,1,\"a/+/c\",0,\"#\",1\r",
                    b"\r\nOK\r\n\r\n+QMTSUB: 0,1,0,0,1\r\n",
                ),
            )
            .await;
            assert!(r.is_ok(), "{r:?}");
        })
        .await;
    });
}

#[test]
fn a_supervised_link_refuses_a_topic_with_a_wildcard_before_storing_it() {
    let (modem, _runner, _fake) = setup(fast_config());
    let state: &'static mut SupervisorState<512> = Box::leak(Box::new(SupervisorState::new()));
    let config = SupervisorConfig::new(id(0), "broker", 1883, "dev");
    let (link, _sup) = supervisor::new(modem, state, config);
    for t in BAD_NAMES {
        assert_eq!(
            link.try_publish(t, b"x", QoS::AtLeastOnce, false).map(drop),
            Err(WILDCARD),
            "{t}"
        );
    }
    assert_eq!(link.outbox().messages, 0);
}

#[test]
fn modem_send_refuses_lines_of_commands_the_driver_owns_and_sends_nothing() {
    mod derived {
        use bc26_mqtt::atat::atat_derive::{AtatCmd, AtatResp};
        use bc26_mqtt::atat::{self};

        #[derive(Clone, Debug, PartialEq, AtatResp)]
        pub struct NoResp;

        /// An application's own type for a command the driver owns.
        #[derive(Clone, AtatCmd)]
        #[at_cmd("+QMTCFG=\"dataformat\",0,0,0", NoResp, termination = "\r")]
        pub struct TextReception;
    }
    run(async {
        let (modem, runner, mut fake) = setup(fast_config());
        with_runner(runner, async {
            for line in [
                "AT+QMTCFG=\"dataformat\",0,0,0\r",
                "AT+QMTCFG=\"timeout\",0,60,10,0\r",
                "AT+QMTOPEN=0,\"h\",1883\r",
                "AT+QMTCLOSE=0\r",
                "AT+QMTCONN=0,\"c\"\r",
                "AT+QMTDISC=0\r",
                "AT+QMTSUB=0,1,\"t\",0\r",
                "AT+QMTUNS=0,1,\"t\"\r",
                "AT+QMTPUB=0,0,0,0,\"t\",\"m\"\r",
                "at+qmtpub=0,0,0,0,\"t\"\r",
                "AT+QSCLK=1\r",
                "AT+CPSMS=1\r",
                "AT+QRELLOCK\r",
                "AT+CEREG?;+QMTDISC=0\r",
                "A/\r",
            ] {
                let raw: heapless::String<64> = line.try_into().unwrap();
                assert_eq!(
                    modem.send(&raw).await,
                    Err(Error::OwnedByDriver),
                    "{line:?}"
                );
            }
            assert_eq!(
                modem.send(&Custom(&derived::TextReception)).await,
                Err(Error::OwnedByDriver)
            );
            // One line only: a second command after a CR is refused whole.
            let two: heapless::String<64> = "AT\rAT+QMTDISC=0\r".try_into().unwrap();
            assert_eq!(
                modem.send(&two).await,
                Err(Error::InvalidArgument {
                    field: Field::CommandLine,
                    problem: Problem::ForbiddenByte
                })
            );
            // Longer than the 1,024-byte line buffer: a typed error, no panic.
            let mut long: heapless::String<2048> = heapless::String::new();
            long.push_str("AT+CGDCONT=1,\"IP\",\"").unwrap();
            while long.len() < 1100 {
                long.push('a').unwrap();
            }
            long.push_str("\"\r").unwrap();
            assert_eq!(
                modem.send(&long).await,
                Err(Error::InvalidArgument {
                    field: Field::CommandLine,
                    problem: Problem::LineTooLong
                })
            );
            settle().await;
            assert!(fake.nothing_from_host(), "a refused line reached the UART");

            // Queries, test forms and other commands go through.
            let c0 = modem.client(id(0));
            let (r, _) = join(
                modem.send(&QueryDataFormat { client: id(0) }),
                fake.answer(
                    b"AT+QMTCFG=\"dataformat\",0\r",
                    b"\r\n+QMTCFG: \"dataformat\",0,1\r\n\r\nOK\r\n",
                ),
            )
            .await;
            assert_eq!(r.map(|s| s.recv), Ok(DataFormat::Hex));
            let (r, _) = join(
                modem.send(&TestOpenNetwork),
                fake.answer(
                    b"AT+QMTOPEN=?\r",
                    b"\r\n+QMTOPEN: (0-5),\"<host_name>\",<port>\r\n\r\nOK\r\n",
                ),
            )
            .await;
            assert_eq!(r.unwrap().lines().count(), 1);
            let (r, _) = join(
                modem.send(&TestPublish),
                fake.answer(b"AT+QMTPUB=?\r", b"\r\nOK\r\n"),
            )
            .await;
            assert!(r.is_ok());
            let raw: heapless::String<16> = "AT+CGATT?\r".try_into().unwrap();
            let (r, _) = join(
                modem.send(&raw),
                fake.answer(b"AT+CGATT?\r", b"\r\n+CGATT: 1\r\n\r\nOK\r\n"),
            )
            .await;
            assert_eq!(r.as_deref().map(str::trim), Ok("+CGATT: 1"));
            // The driver's own path to the data format is open as before.
            let (r, _) = join(
                c0.set_data_format(DataFormat::Text, DataFormat::Hex),
                fake.answer(b"AT+QMTCFG=\"dataformat\",0,0,1\r", b"\r\nOK\r\n"),
            )
            .await;
            assert_eq!(r, Ok(()));
        })
        .await;
    });
}
