//! Answers reach the command that waits for them, whatever the order in which
//! the runner, the UART writer's `flush` and the modem's bytes are polled; a
//! command that failed is fenced from the next one.

mod common;

use bc26_mqtt::{ClientId, Error, QoS, Stage};
use common::{
    fast_config, next_command_works, run, settle, setup, setup_with, with_runner, Gate, GatedTx,
};
use embassy_futures::join::join;
use embassy_time::{Duration, Timer};

fn id(n: u8) -> ClientId {
    ClientId::new(n).unwrap()
}

#[test]
fn an_answer_reaches_its_command_whether_flush_returns_before_with_or_after_it() {
    // (ms until flush returns, ms until the modem answers), both counted
    // from when the line has reached the modem.
    let orders = [
        (0, 0),
        (0, 20),
        (20, 0),
        (5, 5),
        (40, 10),
        (10, 40),
        (60, 0),
    ];
    for (flush_ms, answer_ms) in orders {
        run(async move {
            let gate = Gate::new(false);
            let (modem, runner, mut fake) =
                setup_with(fast_config(), |_, rx| rx, |tx| GatedTx { pipe: tx, gate });
            let c0 = modem.client(id(0));
            with_runner(runner, async {
                let (r, _) = join(c0.keepalive(), async {
                    fake.expect(b"AT+QMTCFG=\"keepalive\",0\r").await;
                    join(
                        async {
                            Timer::after_millis(flush_ms).await;
                            gate.set(true);
                        },
                        async {
                            Timer::after_millis(answer_ms).await;
                            fake.send(b"\r\n+QMTCFG: \"keepalive\",120\r\n\r\nOK\r\n")
                                .await;
                        },
                    )
                    .await;
                })
                .await;
                assert_eq!(
                    r,
                    Ok(120),
                    "flush after {flush_ms} ms, answer after {answer_ms} ms"
                );
                assert_eq!(modem.stats().stray_responses, 0);
                // Nothing was owed: no fence before the next command.
                gate.set(true);
                next_command_works(c0, &mut fake, 30).await;
                assert_eq!(modem.stats().fences, 0);
            })
            .await;
        });
    }
}

#[test]
fn a_prompt_that_arrives_before_flush_returns_is_taken_and_the_payload_follows() {
    run(async {
        let gate = Gate::new(false);
        let (modem, runner, mut fake) =
            setup_with(fast_config(), |_, rx| rx, |tx| GatedTx { pipe: tx, gate });
        let c0 = modem.client(id(0));
        with_runner(runner, async {
            let (r, _) = join(
                c0.publish_data_mode("t", b"hello", QoS::AtMostOnce, false),
                async {
                    fake.expect(b"AT+QMTPUB=0,0,0,0,\"t\"\r").await;
                    // The prompt comes while flush is still pending, and no
                    // byte follows it until the payload does.
                    fake.send(b"\r\n> ").await;
                    Timer::after_millis(20).await;
                    gate.set(true);
                    fake.expect(b"hello\x1a").await;
                    fake.send(b"\r\nOK\r\n\r\n+QMTPUB: 0,0,0\r\n").await;
                },
            )
            .await;
            assert_eq!(r.map(|p| p.msg_id), Ok(0));
            assert!(gate.waited.load(core::sync::atomic::Ordering::SeqCst) > 0);
        })
        .await;
    });
}

#[test]
fn a_late_ok_after_a_timeout_is_discarded_and_the_next_command_gets_its_own() {
    run(async {
        let (modem, runner, mut fake) =
            setup(fast_config().command_timeout(Duration::from_millis(40)));
        let c0 = modem.client(id(0));
        with_runner(runner, async {
            let (r, _) = join(c0.keepalive(), fake.expect(b"AT+QMTCFG=\"keepalive\",0\r")).await;
            assert_eq!(r, Err(Error::Timeout(Stage::Response)));
            // The answer of the command that timed out comes late, while
            // nothing waits: discarded.
            fake.send(b"\r\n+QMTCFG: \"keepalive\",120\r\n\r\nOK\r\n")
                .await;
            settle().await;
            assert_eq!(modem.stats().late_answers, 1);
            let (r, _) = join(c0.clean_session(), async {
                fake.answer(b"AT\r", b"\r\nOK\r\n").await;
                fake.answer(
                    b"AT+QMTCFG=\"session\",0\r",
                    b"\r\n+QMTCFG: \"session\",0\r\n\r\nOK\r\n",
                )
                .await;
            })
            .await;
            assert_eq!(r, Ok(false));
        })
        .await;
    });
}

#[test]
fn a_late_ok_that_arrives_during_the_fence_is_not_the_next_commands_answer() {
    run(async {
        let (modem, runner, mut fake) =
            setup(fast_config().command_timeout(Duration::from_millis(40)));
        let c0 = modem.client(id(0));
        with_runner(runner, async {
            let (r, _) = join(c0.keepalive(), fake.expect(b"AT+QMTCFG=\"keepalive\",0\r")).await;
            assert_eq!(r, Err(Error::Timeout(Stage::Response)));
            let (r, _) = join(c0.clean_session(), async {
                // The modem was slow, not dead: it answers the old command,
                // then the probe, in order.
                fake.expect(b"AT\r").await;
                fake.send(b"\r\n+QMTCFG: \"keepalive\",120\r\n\r\nOK\r\n")
                    .await;
                fake.send(b"\r\nOK\r\n").await;
                fake.answer(
                    b"AT+QMTCFG=\"session\",0\r",
                    b"\r\n+QMTCFG: \"session\",1\r\n\r\nOK\r\n",
                )
                .await;
            })
            .await;
            assert_eq!(r, Ok(true));
            assert_eq!(modem.stats().late_answers, 2);
        })
        .await;
    });
}

#[test]
fn the_fence_gives_up_when_the_modem_stays_silent_and_sends_nothing_else() {
    run(async {
        let (modem, runner, mut fake) =
            setup(fast_config().command_timeout(Duration::from_millis(30)));
        let c0 = modem.client(id(0));
        with_runner(runner, async {
            let (r, _) = join(c0.keepalive(), fake.expect(b"AT+QMTCFG=\"keepalive\",0\r")).await;
            assert_eq!(r, Err(Error::Timeout(Stage::Response)));
            let (r, _) = join(c0.clean_session(), fake.expect(b"AT\r")).await;
            assert_eq!(r, Err(Error::Timeout(Stage::Response)));
            settle().await;
            assert!(fake.nothing_from_host(), "the command went out unfenced");
            // The modem is back: the next command is fenced, then sent.
            next_command_works(c0, &mut fake, 7).await;
        })
        .await;
    });
}

#[test]
fn a_late_prompt_after_a_prompt_timeout_is_cancelled_with_esc_at_once() {
    run(async {
        let (modem, runner, mut fake) =
            setup(fast_config().command_timeout(Duration::from_millis(40)));
        let c0 = modem.client(id(0));
        with_runner(runner, async {
            let (r, _) = join(
                c0.publish_data_mode("t", b"x", QoS::AtMostOnce, false),
                fake.expect(b"AT+QMTPUB=0,0,0,0,\"t\"\r"),
            )
            .await;
            assert_eq!(r, Err(Error::Timeout(Stage::Prompt)));
            // The prompt comes late, with no command in flight: the modem
            // waits in data mode, and the driver cancels it at once.
            fake.send(b"\r\n> ").await;
            fake.expect(b"\x1b").await;
            fake.send(b"\r\nOK\r\n").await;
            settle().await;
            assert!(modem.stats().late_answers >= 2);
            // The next command is fenced (a bare `AT`: the ESC went out) and goes through.
            next_command_works(c0, &mut fake, 9).await;
        })
        .await;
    });
}

#[test]
fn a_partial_line_held_before_a_command_is_never_its_answer() {
    run(async {
        let (modem, runner, mut fake) = setup(fast_config());
        let c0 = modem.client(id(0));
        with_runner(runner, async {
            // The start of a line that had nothing to do with the command.
            fake.send(b"\r\nO").await;
            let (r, _) = join(c0.set_keepalive(30), async {
                fake.expect(b"AT+QMTCFG=\"keepalive\",0,30\r").await;
                // Its end: "OK" started before the command went out.
                fake.send(b"K\r\n").await;
                settle().await;
                fake.send(b"\r\nERROR\r\n").await;
            })
            .await;
            assert_eq!(
                r,
                Err(Error::Modem(bc26_mqtt::ModemError::Error)),
                "the OK that started before the line was taken as its answer"
            );
            assert_eq!(modem.stats().stray_responses, 1);
        })
        .await;
    });
}

#[test]
fn a_stray_qos0_result_goes_to_no_publish_whose_line_is_not_accepted_yet() {
    run(async {
        let (modem, runner, mut fake) = setup(fast_config());
        let (c0, c1) = (modem.client(id(0)), modem.client(id(1)));
        with_runner(runner, async {
            let (k, p, _) = embassy_futures::join::join3(
                c1.keepalive(),
                async {
                    Timer::after_millis(5).await;
                    c0.publish("t", b"v", QoS::AtMostOnce, false).await
                },
                async {
                    fake.expect(b"AT+QMTCFG=\"keepalive\",1\r").await;
                    Timer::after_millis(20).await;
                    // A QoS 0 failure of some earlier publish, while client 0's
                    // publish waits for the channel: it is not that publish's.
                    fake.send(b"\r\n+QMTPUB: 0,0,2\r\n").await;
                    fake.send(b"\r\n+QMTCFG: \"keepalive\",60\r\n\r\nOK\r\n")
                        .await;
                    fake.answer(
                        b"AT+QMTPUB=0,0,0,0,\"t\",\"v\"\r",
                        b"\r\nOK\r\n\r\n+QMTPUB: 0,0,0\r\n",
                    )
                    .await;
                },
            )
            .await;
            assert_eq!(k, Ok(60));
            assert_eq!(p.map(|p| p.msg_id), Ok(0));
            assert_eq!(modem.stats().stale_results, 1);
        })
        .await;
    });
}

#[test]
fn qos0_results_reach_the_publishes_in_the_order_the_modem_accepted_them() {
    run(async {
        let (modem, runner, mut fake) = setup(fast_config());
        let c0 = modem.client(id(0));
        with_runner(runner, async {
            let publish = |p: &'static [u8]| async move {
                c0.publish("t", p, QoS::AtMostOnce, false)
                    .await
                    .map(|_| p)
                    .map_err(|e| (p, e))
            };
            let (a, b, c, d, order) = embassy_futures::join::join5(
                publish(b"a"),
                publish(b"b"),
                publish(b"c"),
                publish(b"d"),
                async {
                    // Four lines, each accepted; then the four results, of
                    // which the second is a failure.
                    let mut order = Vec::new();
                    for _ in 0..4 {
                        let line = fake.line().await;
                        order.push(line[line.len() - 3]);
                        fake.send(b"\r\nOK\r\n").await;
                    }
                    fake.send(b"\r\n+QMTPUB: 0,0,0\r\n\r\n+QMTPUB: 0,0,2\r\n")
                        .await;
                    fake.send(b"\r\n+QMTPUB: 0,0,0\r\n\r\n+QMTPUB: 0,0,0\r\n")
                        .await;
                    order
                },
            )
            .await;
            let failed = [a, b, c, d]
                .into_iter()
                .filter_map(|r| r.err())
                .collect::<Vec<_>>();
            assert_eq!(failed.len(), 1, "{failed:?}");
            // The one that failed is the second whose line the modem took.
            assert_eq!(failed[0], (&[order[1]][..], Error::SendFailed));
        })
        .await;
    });
}
