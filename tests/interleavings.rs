//! URCs, deferred results and commands arriving in awkward orders.

mod common;

use bc26_mqtt::commands::{ConnectionState, Custom};
use bc26_mqtt::{ClientId, Error, Grant, LinkClosedReason, QoS, Stage};
use common::{fast_config, run, settle, setup, with_runner};
use embassy_futures::join::{join, join3};
use embassy_time::{Duration, Instant, Timer};

fn id(n: u8) -> ClientId {
    ClientId::new(n).unwrap()
}

#[test]
fn urcs_inside_a_query_response_reach_events_and_the_query_still_parses() {
    run(async {
        let (modem, runner, mut fake) = setup(fast_config());
        let mut events = modem.events().unwrap();
        let c0 = modem.client(id(0));
        with_runner(runner, async {
            let (ka, _) = join(c0.keepalive(), async {
                fake.expect(b"AT+QMTCFG=\"keepalive\",0\r").await;
                fake.send(b"\r\n+QMTRECV: 1,0,\"a\",\"x\"\r\n\r\n+QMTCFG: \"keepalive\",120\r\n")
                    .await;
                fake.send(b"\r\n+QMTSTAT: 2,1\r\n\r\n+CEREG: 5\r\n\r\nOK\r\n")
                    .await;
            })
            .await;
            assert_eq!(ka, Ok(120));
            match common::next_ev(&mut events).await {
                common::Ev::Message(m) => assert_eq!(
                    (m.client, m.topic.as_str(), &m.payload[..]),
                    (id(1), "a", &b"x"[..])
                ),
                e => panic!("{e:?}"),
            }
            assert_eq!(
                common::next_ev(&mut events).await,
                common::Ev::LinkClosed {
                    client: id(2),
                    reason: LinkClosedReason::PeerClosed
                }
            );
            assert_eq!(modem.stats().unsolicited_lines, 1);
        })
        .await;
    });
}

#[test]
fn deferred_results_for_two_clients_out_of_order_reach_the_right_client() {
    run(async {
        let (modem, runner, mut fake) = setup(fast_config());
        let (c0, c1) = (modem.client(id(0)), modem.client(id(1)));
        with_runner(runner, async {
            let (r0, r1, _) = join3(c0.open("a", 1), c1.open("b", 2), async {
                fake.answer(b"AT+QMTOPEN=0,\"a\",1\r", b"\r\nOK\r\n").await;
                fake.answer(b"AT+QMTOPEN=1,\"b\",2\r", b"\r\nOK\r\n").await;
                fake.send(b"\r\n+QMTOPEN: 1,3\r\n\r\n+QMTOPEN: 0,0\r\n")
                    .await;
            })
            .await;
            assert_eq!(r0, Ok(()));
            assert_eq!(
                r1,
                Err(Error::Open(bc26_mqtt::OpenError::PdpActivationFailed))
            );
        })
        .await;
    });
}

#[test]
fn a_pending_open_on_client_0_does_not_stop_client_1_from_publishing() {
    run(async {
        let (modem, runner, mut fake) = setup(fast_config());
        let (c0, c1) = (modem.client(id(0)), modem.client(id(1)));
        with_runner(runner, async {
            let opened_at = core::cell::Cell::new(None);
            let published_at = core::cell::Cell::new(None);
            join3(
                async {
                    c0.open("slow.example", 1883).await.unwrap();
                    opened_at.set(Some(Instant::now()));
                },
                async {
                    Timer::after_millis(10).await;
                    let p = c1
                        .publish("t", b"v", QoS::AtLeastOnce, false)
                        .await
                        .unwrap();
                    assert_eq!(p.msg_id, 1);
                    published_at.set(Some(Instant::now()));
                },
                async {
                    fake.answer(b"AT+QMTOPEN=0,\"slow.example\",1883\r", b"\r\nOK\r\n")
                        .await;
                    fake.answer(
                        b"AT+QMTPUB=1,1,1,0,\"t\",\"v\"\r",
                        b"\r\nOK\r\n\r\n+QMTPUB: 1,1,0\r\n",
                    )
                    .await;
                    Timer::after_millis(50).await;
                    fake.send(b"\r\n+QMTOPEN: 0,0\r\n").await;
                },
            )
            .await;
            assert!(published_at.get().unwrap() < opened_at.get().unwrap());
        })
        .await;
    });
}

#[test]
fn a_result_after_its_timeout_is_dropped_counted_and_harmless() {
    run(async {
        // A deadline of two quiet gaps at least (Config::validate).
        let config = fast_config()
            .quiet_gap(Duration::from_millis(15))
            .open_timeout(Duration::from_millis(30));
        let (modem, runner, mut fake) = setup(config);
        let c0 = modem.client(id(0));
        with_runner(runner, async {
            let (r, _) = join(
                c0.open("h", 1),
                fake.answer(b"AT+QMTOPEN=0,\"h\",1\r", b"\r\nOK\r\n"),
            )
            .await;
            assert_eq!(r, Err(Error::Timeout(Stage::Result)));
            fake.send(b"\r\n+QMTOPEN: 0,0\r\n").await;
            settle().await;
            assert_eq!(modem.stats().stale_results, 1);
            let (r, _) = join(
                c0.open("h", 1),
                fake.answer(
                    b"AT+QMTOPEN=0,\"h\",1\r",
                    b"\r\nOK\r\n\r\n+QMTOPEN: 0,2\r\n",
                ),
            )
            .await;
            assert_eq!(
                r,
                Err(Error::Open(bc26_mqtt::OpenError::IdentifierOccupied))
            );
        })
        .await;
    });
}

#[test]
fn a_subscriber_that_does_not_read_yet_stalls_no_command_and_loses_no_message() {
    run(async {
        let (modem, runner, mut fake) = setup(fast_config());
        let mut slow = modem.events().unwrap();
        let c0 = modem.client(id(0));
        with_runner(runner, async {
            for i in 0..5u8 {
                let urc = format!("\r\n+QMTRECV: 0,0,\"t\",\"m{i}\"\r\n");
                fake.send(urc.as_bytes()).await;
            }
            // Commands still flow while the subscriber sleeps.
            let (r, _) = join(
                c0.set_keepalive(60),
                fake.answer(b"AT+QMTCFG=\"keepalive\",0,60\r", b"\r\nOK\r\n"),
            )
            .await;
            assert_eq!(r, Ok(()));
            // The messages waited in the receive store, in order.
            for i in 0..5u8 {
                match common::next_ev(&mut slow).await {
                    common::Ev::Message(m) => assert_eq!(m.payload, format!("m{i}").into_bytes()),
                    e => panic!("{e:?}"),
                }
            }
            assert_eq!(common::try_next_ev(&mut slow), None);
            let s = modem.stats();
            assert_eq!((s.events_published, s.messages_dropped), (5, 0));
        })
        .await;
    });
}

#[test]
fn events_without_a_subscriber_are_counted_as_dropped() {
    run(async {
        let (modem, runner, mut fake) = setup(fast_config());
        with_runner(runner, async {
            fake.send(b"\r\n+QMTSTAT: 0,7\r\n\r\n+QMTRECV: 0,0,\"t\",\"x\"\r\n")
                .await;
            settle().await;
            let s = modem.stats();
            assert_eq!((s.events_dropped, s.messages_dropped), (1, 1));
        })
        .await;
    });
}

#[test]
fn conn_state_query_and_a_deferred_conn_result_are_told_apart() {
    run(async {
        let (modem, runner, mut fake) = setup(fast_config());
        let c1 = modem.client(id(1));
        with_runner(runner, async {
            let (conn, states, _) = join3(
                c1.connect("dev", None, None),
                async {
                    Timer::after_millis(5).await;
                    modem.connection_states().await
                },
                async {
                    fake.answer(b"AT+QMTCONN=1,\"dev\"\r", b"\r\nOK\r\n").await;
                    fake.expect(b"AT+QMTCONN?\r").await;
                    // The read answer for client 0, then client 1's deferred result, then OK.
                    fake.send(b"\r\n+QMTCONN: 0,2\r\n\r\n+QMTCONN: 1,0,0\r\n\r\nOK\r\n")
                        .await;
                },
            )
            .await;
            assert_eq!(conn, Ok(()));
            let states = states.unwrap();
            assert_eq!(states.0.len(), 1);
            assert_eq!(states.get(id(0)), Some(ConnectionState::Connecting));
        })
        .await;
    });
}

#[test]
fn open_query_and_a_deferred_open_result_are_told_apart() {
    run(async {
        let (modem, runner, mut fake) = setup(fast_config());
        let c1 = modem.client(id(1));
        with_runner(runner, async {
            let (opened, links, _) = join3(
                c1.open("b", 2),
                async {
                    Timer::after_millis(5).await;
                    modem.open_links().await
                },
                async {
                    fake.answer(b"AT+QMTOPEN=1,\"b\",2\r", b"\r\nOK\r\n").await;
                    fake.expect(b"AT+QMTOPEN?\r").await;
                    fake.send(b"\r\n+QMTOPEN: 0,\"a\",1\r\n\r\n+QMTOPEN: 1,0\r\n\r\nOK\r\n")
                        .await;
                },
            )
            .await;
            assert_eq!(opened, Ok(()));
            let links = links.unwrap();
            assert_eq!(links.0.len(), 1);
            assert_eq!((links.0[0].client, links.0[0].host.as_str()), (id(0), "a"));
        })
        .await;
    });
}

#[test]
fn a_gt_inside_a_urc_cut_by_a_read_is_not_the_prompt() {
    run(async {
        let (modem, runner, mut fake) = setup(fast_config());
        let mut events = modem.events().unwrap();
        let c0 = modem.client(id(0));
        with_runner(runner, async {
            let (r, _) = join(
                c0.publish_data_mode("t", b"data", QoS::AtMostOnce, false),
                async {
                    fake.expect(b"AT+QMTPUB=0,0,0,0,\"t\"\r").await;
                    // A URC whose payload holds CR LF and "> ", cut right after the '>'.
                    fake.send(b"\r\n+QMTRECV: 0,0,\"x\",\"a\r\n>").await;
                    fake.send(b" b\"\r\n").await;
                    Timer::after_millis(5).await;
                    assert!(
                        fake.nothing_from_host(),
                        "payload sent before the real prompt"
                    );
                    fake.send(b"\r\n> ").await;
                    fake.expect(b"data\x1a").await;
                    fake.send(b"\r\nOK\r\n\r\n+QMTPUB: 0,0,0\r\n").await;
                },
            )
            .await;
            assert_eq!(r.map(|p| p.msg_id), Ok(0));
            match common::next_ev(&mut events).await {
                common::Ev::Message(m) => assert_eq!(&m.payload[..], b"a\r\n> b"),
                e => panic!("{e:?}"),
            }
        })
        .await;
    });
}

#[test]
fn unknown_urcs_do_not_corrupt_the_next_response() {
    run(async {
        let (modem, runner, mut fake) = setup(fast_config());
        let c0 = modem.client(id(0));
        with_runner(runner, async {
            fake.send(b"\r\n+CEREG: 1\r\n\r\n+CSCON: 1\r\n\r\n+QNBIOTEVENT: \"ENTER PSM\"\r\n\r\n+IP: 10.1.2.3\r\n").await;
            let (v, _) = join(c0.version(), async {
                fake.expect(b"AT+QMTCFG=\"version\",0\r").await;
                fake.send(b"\r\n+CSCON: 0\r\n\r\n+QMTCFG: \"version\",4\r\n\r\nOK\r\n").await;
            })
            .await;
            assert_eq!(v, Ok(Some(bc26_mqtt::MqttVersion::V3_1_1)));
            assert_eq!(modem.stats().unsolicited_lines, 5);
            assert_eq!(modem.stats().stray_responses, 0);
        })
        .await;
    });
}

#[test]
fn a_stray_ok_between_commands_is_not_taken_by_the_next_command() {
    run(async {
        let (modem, runner, mut fake) = setup(fast_config());
        let c0 = modem.client(id(0));
        with_runner(runner, async {
            fake.send(b"\r\nOK\r\n").await;
            settle().await;
            let (r, _) = join(c0.keepalive(), async {
                fake.expect(b"AT+QMTCFG=\"keepalive\",0\r").await;
                fake.send(b"\r\n+QMTCFG: \"keepalive\",30\r\n\r\nOK\r\n")
                    .await;
            })
            .await;
            assert_eq!(r, Ok(30));
            assert_eq!(modem.stats().stray_responses, 1);
        })
        .await;
    });
}

#[test]
fn echo_on_query_answers_parse() {
    run(async {
        let (modem, runner, mut fake) = setup(fast_config());
        with_runner(runner, async {
            let (r, _) = join(modem.connection_states(), async {
                fake.expect(b"AT+QMTCONN?\r").await;
                fake.send(b"AT+QMTCONN?\r\r\n+QMTCONN: 0,3\r\n\r\nOK\r\n")
                    .await;
            })
            .await;
            assert_eq!(r.unwrap().get(id(0)), Some(ConnectionState::Connected));
        })
        .await;
    });
}

#[test]
fn hex_payloads_of_1024_bytes_arrive_whole_with_default_sizes() {
    run(async {
        let (modem, runner, mut fake) = setup(fast_config());
        let mut events = modem.events().unwrap();
        let c0 = modem.client(id(0));
        with_runner(runner, async {
            let (r, _) = join(
                c0.set_data_format(bc26_mqtt::DataFormat::Hex, bc26_mqtt::DataFormat::Hex),
                fake.answer(b"AT+QMTCFG=\"dataformat\",0,1,1\r", b"\r\nOK\r\n"),
            )
            .await;
            r.unwrap();
            let payload: Vec<u8> = (0..1024u32).map(|i| (i * 7 % 256) as u8).collect();
            let hex: String = payload.iter().map(|b| format!("{b:02X}")).collect();
            let topic = "t".repeat(255);
            let urc = format!("\r\n+QMTRECV: 0,65535,\"{topic}\",\"{hex}\"\r\n");
            // In three reads, cut inside the hex digits.
            let b = urc.as_bytes();
            fake.send(&b[..700]).await;
            fake.send(&b[700..2100]).await;
            fake.send(&b[2100..]).await;
            match common::next_ev(&mut events).await {
                common::Ev::Message(m) => {
                    assert_eq!((m.msg_id, m.topic.len()), (65535, 255));
                    assert_eq!(&m.payload[..], &payload[..]);
                }
                e => panic!("{e:?}"),
            }
            assert_eq!(modem.stats().overflows, 0);
        })
        .await;
    });
}

#[test]
fn text_payloads_with_quotes_commas_and_crlf_arrive_as_sent() {
    run(async {
        let (modem, runner, mut fake) = setup(fast_config());
        let mut events = modem.events().unwrap();
        with_runner(runner, async {
            let payload = b"{\"a\":\"b, c\",\r\n \"d\":[1,2]}";
            let mut urc = b"\r\n+QMTRECV: 3,9,\"dev/cmd\",\"".to_vec();
            urc.extend_from_slice(payload);
            urc.extend_from_slice(b"\"\r\n");
            fake.send_bytewise(&urc).await;
            match common::next_ev(&mut events).await {
                common::Ev::Message(m) => assert_eq!(
                    (m.client, m.msg_id, &m.payload[..]),
                    (id(3), 9, &payload[..])
                ),
                e => panic!("{e:?}"),
            }
        })
        .await;
    });
}

#[test]
fn qos1_publishes_of_one_client_overlap_and_complete_out_of_order() {
    run(async {
        let (modem, runner, mut fake) = setup(fast_config());
        let c0 = modem.client(id(0));
        with_runner(runner, async {
            let (a, b, _) = join3(
                c0.publish("a", b"1", QoS::AtLeastOnce, false),
                async {
                    Timer::after_millis(5).await;
                    c0.publish("b", b"2", QoS::ExactlyOnce, true).await
                },
                async {
                    fake.answer(b"AT+QMTPUB=0,1,1,0,\"a\",\"1\"\r", b"\r\nOK\r\n")
                        .await;
                    fake.answer(b"AT+QMTPUB=0,2,2,1,\"b\",\"2\"\r", b"\r\nOK\r\n")
                        .await;
                    // Retransmission progress, then the results in reverse order.
                    fake.send(
                        b"\r\n+QMTPUB: 0,1,1,1\r\n\r\n+QMTPUB: 0,2,0\r\n\r\n+QMTPUB: 0,1,0\r\n",
                    )
                    .await;
                },
            )
            .await;
            assert_eq!(a.map(|p| (p.msg_id, p.retransmissions)), Ok((1, 1)));
            assert_eq!(b.map(|p| (p.msg_id, p.retransmissions)), Ok((2, 0)));
        })
        .await;
    });
}

#[test]
fn link_closed_during_connect_ends_it_with_the_reason() {
    run(async {
        let (modem, runner, mut fake) = setup(fast_config());
        let c0 = modem.client(id(0));
        with_runner(runner, async {
            let (r, _) = join(c0.connect("dev", Some("u"), Some("p")), async {
                fake.answer(b"AT+QMTCONN=0,\"dev\",\"u\",\"p\"\r", b"\r\nOK\r\n")
                    .await;
                fake.send(b"\r\n+QMTSTAT: 0,4\r\n").await;
            })
            .await;
            assert_eq!(r, Err(Error::LinkClosed(LinkClosedReason::ConnackFailed)));
        })
        .await;
    });
}

#[test]
fn subscribe_reports_each_grant_and_rejection_in_order() {
    run(async {
        let (modem, runner, mut fake) = setup(fast_config());
        let c2 = modem.client(id(2));
        with_runner(runner, async {
            let topics = [
                ("a/#", QoS::ExactlyOnce),
                ("$SYS/x", QoS::AtLeastOnce),
                ("c", QoS::AtMostOnce),
            ];
            let (g, _) = join(c2.subscribe(&topics), async {
                fake.expect(b"AT+QMTSUB=2,1,\"a/#\",2,\"$SYS/x\",1,\"c\",0\r")
                    .await;
                fake.send(b"\r\nOK\r\n\r\n+QMTSUB: 2,1,1,1\r\n").await;
                fake.send(b"\r\n+QMTSUB: 2,1,0,1,128,0\r\n").await;
            })
            .await;
            let g = g.unwrap();
            assert_eq!(
                g.iter().collect::<Vec<_>>(),
                [
                    Grant::Granted(QoS::AtLeastOnce),
                    Grant::Rejected,
                    Grant::Granted(QoS::AtMostOnce)
                ]
            );
        })
        .await;
    });
}

#[test]
fn modem_errors_keep_their_cme_code() {
    run(async {
        let (modem, runner, mut fake) = setup(fast_config());
        let c0 = modem.client(id(0));
        with_runner(runner, async {
            let (r, _) = join(
                c0.disconnect(),
                fake.answer(b"AT+QMTDISC=0\r", b"\r\n+CME ERROR: 53\r\n"),
            )
            .await;
            assert_eq!(r, Err(Error::Modem(bc26_mqtt::ModemError::Cme(53))));
        })
        .await;
    });
}

#[test]
fn a_silent_modem_times_out_and_the_next_command_resynchronises_first() {
    run(async {
        let (modem, runner, mut fake) = setup(
            fast_config()
                .quiet_gap(Duration::from_millis(20))
                .command_timeout(Duration::from_millis(40)),
        );
        let c0 = modem.client(id(0));
        with_runner(runner, async {
            let (r, _) = join(c0.keepalive(), fake.expect(b"AT+QMTCFG=\"keepalive\",0\r")).await;
            assert_eq!(r, Err(Error::Timeout(Stage::Response)));
            let (r, _) = join(c0.set_clean_session(true), async {
                // A bare AT first, then the command.
                fake.answer(b"AT\r", b"\r\nOK\r\n").await;
                fake.answer(b"AT+QMTCFG=\"session\",0,1\r", b"\r\nOK\r\n")
                    .await;
            })
            .await;
            assert_eq!(r, Ok(()));
            assert_eq!(modem.stats().fences, 1);
        })
        .await;
    });
}

#[test]
fn a_stray_prompt_during_a_command_is_counted_not_waited_on() {
    run(async {
        let (modem, runner, mut fake) = setup(fast_config());
        let c0 = modem.client(id(0));
        with_runner(runner, async {
            let (r, _) = join(c0.echo_mode(), async {
                fake.expect(b"AT+QMTCFG=\"echomode\",0\r").await;
                fake.send(b"\r\n> ").await;
                fake.send(b"\r\n+QMTCFG: \"echomode\",1\r\n\r\nOK\r\n")
                    .await;
            })
            .await;
            assert_eq!(r, Ok(true));
            assert_eq!(modem.stats().stray_responses, 1);
        })
        .await;
    });
}

mod derived {
    use bc26_mqtt::atat::atat_derive::{AtatCmd, AtatResp};
    use bc26_mqtt::atat::{self};
    use heapless::String;

    #[derive(Clone, Debug, PartialEq, AtatResp)]
    pub struct Imei {
        #[at_arg(position = 0)]
        pub imei: String<20>,
    }

    /// `AT+CGSN=1`: the IMEI.
    #[derive(Clone, AtatCmd)]
    #[at_cmd("+CGSN=1", Imei, termination = "\r", timeout_ms = 300)]
    pub struct GetImei;

    #[derive(Clone, Debug, PartialEq, AtatResp)]
    pub struct NoResp;

    /// `ATE0`: echo off.
    #[derive(Clone, AtatCmd)]
    #[at_cmd("E0", NoResp, cmd_prefix = "AT", termination = "\r", timeout_ms = 300)]
    pub struct EchoOff;
}

#[test]
fn the_escape_hatch_sends_derived_commands_and_keeps_urcs_out_of_their_answer() {
    run(async {
        let (modem, runner, mut fake) = setup(fast_config());
        let mut events = modem.events().unwrap();
        with_runner(runner, async {
            let (r, _) = join(modem.send(&Custom(&derived::EchoOff)), async {
                // Echo still on for this one.
                fake.answer(b"ATE0\r", b"ATE0\r\r\nOK\r\n").await;
            })
            .await;
            assert!(r.is_ok());
            let (r, _) = join(modem.send(&Custom(&derived::GetImei)), async {
                fake.expect(b"AT+CGSN=1\r").await;
                fake.send(b"\r\n+CSCON: 1\r\n\r\n+CGSN: 866425030012345\r\n\r\n+QMTSTAT: 0,1\r\n\r\nOK\r\n").await;
            })
            .await;
            assert_eq!(r.unwrap().imei.as_str(), "866425030012345");
            assert!(matches!(common::next_ev(&mut events).await, common::Ev::LinkClosed { .. }));
            assert_eq!(modem.stats().unsolicited_lines, 1);
        })
        .await;
    });
}

#[test]
fn a_late_normal_close_report_does_not_end_the_next_sessions_operations() {
    run(async {
        let (modem, runner, mut fake) = setup(fast_config());
        let mut events = modem.events().unwrap();
        let c0 = modem.client(id(0));
        with_runner(runner, async {
            let (r, _) = join(c0.publish("t", b"v", QoS::AtLeastOnce, false), async {
                fake.answer(b"AT+QMTPUB=0,1,1,0,\"t\",\"v\"\r", b"\r\nOK\r\n")
                    .await;
                // Left over from an earlier DISCONNECT of ours, then the real result.
                fake.send(b"\r\n+QMTSTAT: 0,5\r\n\r\n+QMTPUB: 0,1,0\r\n")
                    .await;
            })
            .await;
            assert_eq!(r.map(|p| p.msg_id), Ok(1));
            assert_eq!(
                common::next_ev(&mut events).await,
                common::Ev::LinkClosed {
                    client: id(0),
                    reason: LinkClosedReason::Disconnected
                }
            );
        })
        .await;
    });
}

#[test]
fn send_with_timeout_uses_the_callers_deadline() {
    run(async {
        let (modem, runner, mut fake) = setup(fast_config());
        with_runner(runner, async {
            let at: heapless::String<8> = "AT\r".try_into().unwrap();
            let start = Instant::now();
            let (r, _) = join(
                modem.send_with_timeout(&at, Duration::from_millis(20)),
                fake.expect(b"AT\r"),
            )
            .await;
            assert_eq!(r, Err(Error::Timeout(Stage::Response)));
            assert!(start.elapsed() < Duration::from_millis(200));
        })
        .await;
    });
}
