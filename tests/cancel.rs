//! Dropping an operation's future at any await point leaves the driver and
//! the modem usable: no half line on the wire, no response taken by the wrong
//! command, no leaked slot or msgID, and never the modem left in data mode.

mod common;

use core::future::Future;

use bc26_mqtt::{ClientId, Error, QoS};
use common::{fast_config, next_command_works, run, settle, setup, with_runner};
use embassy_futures::join::{join, join3};
use embassy_futures::select::{select, Either};
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_sync::signal::Signal;
use embassy_time::Timer;

type Trigger = Signal<CriticalSectionRawMutex, ()>;

/// Runs `fut` until `trigger` fires; `None` if it was dropped then.
async fn drop_on<F: Future>(trigger: &Trigger, fut: F) -> Option<F::Output> {
    match select(trigger.wait(), fut).await {
        Either::First(()) => None,
        Either::Second(out) => Some(out),
    }
}

fn id(n: u8) -> ClientId {
    ClientId::new(n).unwrap()
}

#[test]
fn open_dropped_while_waiting_for_the_clients_op_lock() {
    run(async {
        let (modem, runner, mut fake) = setup(fast_config());
        let c0 = modem.client(id(0));
        let trig = Trigger::new();
        with_runner(runner, async {
            let (first, second, _) = join3(
                c0.open("a", 1),
                drop_on(&trig, async {
                    Timer::after_millis(2).await;
                    c0.open("b", 2).await
                }),
                async {
                    fake.answer(b"AT+QMTOPEN=0,\"a\",1\r", b"\r\nOK\r\n").await;
                    settle().await;
                    trig.signal(());
                    settle().await;
                    fake.send(b"\r\n+QMTOPEN: 0,0\r\n").await;
                },
            )
            .await;
            assert_eq!(first, Ok(()));
            assert_eq!(second, None);
            settle().await;
            assert!(fake.nothing_from_host(), "the dropped open was sent");
        })
        .await;
    });
}

#[test]
fn open_dropped_while_waiting_for_the_at_channel() {
    run(async {
        let (modem, runner, mut fake) = setup(fast_config());
        let trig = Trigger::new();
        with_runner(runner, async {
            let (ka, dropped, _) = join3(
                modem.client(id(0)).keepalive(),
                drop_on(&trig, async {
                    Timer::after_millis(2).await;
                    modem.client(id(1)).open("b", 2).await
                }),
                async {
                    fake.expect(b"AT+QMTCFG=\"keepalive\",0\r").await;
                    settle().await;
                    trig.signal(());
                    settle().await;
                    fake.send(b"\r\n+QMTCFG: \"keepalive\",120\r\n\r\nOK\r\n")
                        .await;
                },
            )
            .await;
            assert_eq!((ka, dropped), (Ok(120), None));
            settle().await;
            assert!(fake.nothing_from_host());
        })
        .await;
    });
}

#[test]
fn open_dropped_after_its_line_went_out_does_not_lend_its_ok_to_the_next_command() {
    run(async {
        let (modem, runner, mut fake) = setup(fast_config());
        let c0 = modem.client(id(0));
        let trig = Trigger::new();
        with_runner(runner, async {
            let (dropped, _) = join(drop_on(&trig, c0.open("a", 1)), async {
                fake.expect(b"AT+QMTOPEN=0,\"a\",1\r").await;
                trig.signal(());
            })
            .await;
            assert_eq!(dropped, None);
            // The next command waits until the modem has answered the dropped one.
            let (next, _) = join(c0.keepalive(), async {
                settle().await;
                assert!(
                    fake.nothing_from_host(),
                    "next command sent before the pending OK"
                );
                fake.send(b"\r\nOK\r\n\r\n+QMTOPEN: 0,0\r\n").await;
                fake.answer(
                    b"AT+QMTCFG=\"keepalive\",0\r",
                    b"\r\n+QMTCFG: \"keepalive\",7\r\n\r\nOK\r\n",
                )
                .await;
            })
            .await;
            assert_eq!(next, Ok(7));
            assert_eq!(modem.stats().stale_results, 1);
        })
        .await;
    });
}

#[test]
fn open_dropped_while_waiting_for_its_result_frees_the_client() {
    run(async {
        let (modem, runner, mut fake) = setup(fast_config());
        let c0 = modem.client(id(0));
        let trig = Trigger::new();
        with_runner(runner, async {
            let (dropped, _) = join(drop_on(&trig, c0.open("a", 1)), async {
                fake.answer(b"AT+QMTOPEN=0,\"a\",1\r", b"\r\nOK\r\n").await;
                settle().await;
                trig.signal(());
            })
            .await;
            assert_eq!(dropped, None);
            fake.send(b"\r\n+QMTOPEN: 0,0\r\n").await;
            settle().await;
            assert_eq!(modem.stats().stale_results, 1);
            let (again, _) = join(
                c0.open("a", 1),
                fake.answer(
                    b"AT+QMTOPEN=0,\"a\",1\r",
                    b"\r\nOK\r\n\r\n+QMTOPEN: 0,0\r\n",
                ),
            )
            .await;
            assert_eq!(again, Ok(()));
        })
        .await;
    });
}

#[test]
fn subscribe_dropped_before_ok_and_before_result_leaves_msg_ids_and_slots_usable() {
    run(async {
        let (modem, runner, mut fake) = setup(fast_config());
        let c0 = modem.client(id(0));
        let trig = Trigger::new();
        with_runner(runner, async {
            // Dropped before OK.
            let (d, _) = join(
                drop_on(&trig, c0.subscribe(&[("a", QoS::AtLeastOnce)])),
                async {
                    fake.expect(b"AT+QMTSUB=0,1,\"a\",1\r").await;
                    trig.signal(());
                },
            )
            .await;
            assert_eq!(d, None);
            fake.send(b"\r\nOK\r\n").await;
            // Dropped before the result.
            let (d, _) = join(
                drop_on(&trig, c0.subscribe(&[("b", QoS::AtLeastOnce)])),
                async {
                    fake.answer(b"AT+QMTSUB=0,2,\"b\",1\r", b"\r\nOK\r\n").await;
                    settle().await;
                    trig.signal(());
                },
            )
            .await;
            assert_eq!(d, None);
            fake.send(b"\r\n+QMTSUB: 0,1,0,1\r\n\r\n+QMTSUB: 0,2,0,1\r\n")
                .await;
            settle().await;
            assert_eq!(modem.stats().stale_results, 2);
            let (g, _) = join(
                c0.subscribe(&[("c", QoS::ExactlyOnce)]),
                fake.answer(
                    b"AT+QMTSUB=0,3,\"c\",2\r",
                    b"\r\nOK\r\n\r\n+QMTSUB: 0,3,0,2\r\n",
                ),
            )
            .await;
            assert_eq!(g.map(|g| g.len()), Ok(1));
        })
        .await;
    });
}

#[test]
fn publishes_dropped_while_waiting_free_their_slots() {
    run(async {
        let (modem, runner, mut fake) = setup(fast_config());
        let c0 = modem.client(id(0));
        let trig = Trigger::new();
        with_runner(runner, async {
            // More drops than INFLIGHT (4): a leaked slot would end in TooManyInFlight.
            for n in 1..=6u16 {
                let line = format!("AT+QMTPUB=0,{n},1,0,\"t\",\"v\"\r");
                let (d, _) = join(
                    drop_on(&trig, c0.publish("t", b"v", QoS::AtLeastOnce, false)),
                    async {
                        fake.answer(line.as_bytes(), b"\r\nOK\r\n").await;
                        settle().await;
                        trig.signal(());
                    },
                )
                .await;
                assert_eq!(d, None);
            }
            // Dropped before its OK: the OK still goes to the dropped command.
            let (d, _) = join(
                drop_on(&trig, c0.publish("t", b"v", QoS::AtLeastOnce, false)),
                async {
                    fake.expect(b"AT+QMTPUB=0,7,1,0,\"t\",\"v\"\r").await;
                    trig.signal(());
                },
            )
            .await;
            assert_eq!(d, None);
            fake.send(b"\r\nOK\r\n").await;
            let (p, _) = join(
                c0.publish("t", b"w", QoS::AtLeastOnce, false),
                fake.answer(
                    b"AT+QMTPUB=0,8,1,0,\"t\",\"w\"\r",
                    b"\r\nOK\r\n\r\n+QMTPUB: 0,8,0\r\n",
                ),
            )
            .await;
            assert_eq!(p.map(|p| p.msg_id), Ok(8));
        })
        .await;
    });
}

#[test]
fn data_mode_publish_dropped_before_the_prompt_is_cancelled_with_esc() {
    run(async {
        let (modem, runner, mut fake) = setup(fast_config());
        let c0 = modem.client(id(0));
        let trig = Trigger::new();
        with_runner(runner, async {
            let (d, _) = join(
                drop_on(
                    &trig,
                    c0.publish("t", b"line1\r\nline2", QoS::AtMostOnce, false),
                ),
                async {
                    fake.expect(b"AT+QMTPUB=0,0,0,0,\"t\"\r").await;
                    trig.signal(());
                },
            )
            .await;
            assert_eq!(d, None);
            settle().await;
            // The prompt comes after the future is gone: the modem gets ESC, not payload.
            fake.send(b"\r\n> ").await;
            fake.expect(b"\x1b").await;
            fake.send(b"\r\nOK\r\n").await;
            next_command_works(c0, &mut fake, 5).await;
        })
        .await;
    });
}

#[test]
fn data_mode_publish_dropped_at_the_prompt_is_cancelled_with_esc() {
    run(async {
        let (modem, runner, mut fake) = setup(fast_config());
        let c0 = modem.client(id(0));
        let trig = Trigger::new();
        with_runner(runner, async {
            let (d, _) = join(
                drop_on(&trig, c0.publish("t", b"a\"b", QoS::AtMostOnce, false)),
                async {
                    fake.expect(b"AT+QMTPUB=0,0,0,0,\"t\"\r").await;
                    trig.signal(());
                    fake.send(b"\r\n> ").await;
                },
            )
            .await;
            assert_eq!(d, None);
            fake.expect(b"\x1b").await;
            // This modem answers ESC with nothing at all: the driver gives up after
            // command_timeout and the next command goes through.
            next_command_works(c0, &mut fake, 6).await;
        })
        .await;
    });
}

#[test]
fn data_mode_publish_dropped_mid_payload_is_cancelled_with_esc() {
    run(async {
        let (modem, runner, mut fake) = setup(fast_config());
        let c0 = modem.client(id(0));
        let trig = Trigger::new();
        let payload = vec![b'x'; 1024];
        with_runner(runner, async {
            let (d, _) = join(
                drop_on(&trig, c0.publish("t", &payload, QoS::AtMostOnce, false)),
                async {
                    fake.answer(b"AT+QMTPUB=0,0,0,0,\"t\"\r", b"\r\n> ").await;
                    // The UART is slow: the first 300 bytes are out when the future is dropped.
                    let first = fake.bytes(300).await;
                    assert!(first.iter().all(|&b| b == b'x'));
                    trig.signal(());
                },
            )
            .await;
            assert_eq!(d, None);
            // The chunk already handed to the UART finishes; the rest of the
            // payload and Ctrl+Z never come: ESC does.
            let rest = fake.bytes(1023 - 300).await;
            assert!(rest.iter().all(|&b| b == b'x'));
            fake.expect(b"\x1b").await;
            fake.send(b"\r\nERROR\r\n").await;
            settle().await;
            assert!(fake.nothing_from_host());
            let (p, _) = join(
                c0.publish("t", b"ok", QoS::AtMostOnce, false),
                fake.answer(
                    b"AT+QMTPUB=0,0,0,0,\"t\",\"ok\"\r",
                    b"\r\nOK\r\n\r\n+QMTPUB: 0,0,0\r\n",
                ),
            )
            .await;
            assert_eq!(p.map(|p| p.msg_id), Ok(0));
        })
        .await;
    });
}

#[test]
fn publish_waiting_for_its_result_is_ended_by_link_closed() {
    run(async {
        let (modem, runner, mut fake) = setup(fast_config());
        let c0 = modem.client(id(0));
        with_runner(runner, async {
            let (p, _) = join(c0.publish("t", b"v", QoS::ExactlyOnce, false), async {
                fake.answer(b"AT+QMTPUB=0,1,2,0,\"t\",\"v\"\r", b"\r\nOK\r\n")
                    .await;
                fake.send(b"\r\n+QMTSTAT: 0,1\r\n").await;
            })
            .await;
            assert_eq!(
                p,
                Err(Error::LinkClosed(bc26_mqtt::LinkClosedReason::PeerClosed))
            );
        })
        .await;
    });
}

#[test]
fn a_publish_waiting_for_a_slot_goes_once_abandoned_slots_expire() {
    run(async {
        let deadline = embassy_time::Duration::from_millis(100);
        let (modem, runner, mut fake) = setup(
            fast_config()
                .quiet_gap(deadline / 2)
                .packet_deadline(deadline),
        );
        let c0 = modem.client(id(0));
        let trig = Trigger::new();
        with_runner(runner, async {
            // Eight publishes (every slot) the modem accepts, then dropped
            // while their results are still owed: their slots are held.
            let pubs = embassy_futures::join::join_array(core::array::from_fn::<_, 8, _>(|_| {
                c0.publish("t", b"v", QoS::AtLeastOnce, false)
            }));
            let (dropped, _) = join(drop_on(&trig, pubs), async {
                for _ in 0..8 {
                    fake.line().await;
                    fake.send(b"\r\nOK\r\n").await;
                }
                trig.signal(());
            })
            .await;
            assert!(dropped.is_none());
            // The next one waits for a slot; nothing frees one but time.
            let start = embassy_time::Instant::now();
            let (p, _) = join(c0.publish("t", b"w", QoS::AtLeastOnce, false), async {
                let line = fake.line().await;
                assert!(line.ends_with(b",\"t\",\"w\"\r"), "{}", common::show(&line));
                let id = core::str::from_utf8(&line[12..])
                    .unwrap()
                    .split(',')
                    .next()
                    .unwrap()
                    .to_owned();
                fake.send(format!("\r\nOK\r\n\r\n+QMTPUB: 0,{id},0\r\n").as_bytes())
                    .await;
            })
            .await;
            assert!(p.is_ok(), "{p:?}");
            assert!(start.elapsed() >= deadline / 2, "{:?}", start.elapsed());
        })
        .await;
    });
}
