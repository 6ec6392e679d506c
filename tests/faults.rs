//! A UART that errs, a frame that never completes, a modem that restarts: the
//! driver never spins, never wedges, and says what happened.

mod common;

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};

use bc26_mqtt::{ClientId, DataFormat, Error, QoS, Stage};
use common::{
    fast_config, next_command_works, next_ev, run, settle, setup, setup_with, with_runner,
    BrokenRx, Ev, FailingTx,
};
use embassy_futures::join::{join, join3, join4};
use embassy_time::{Duration, Instant, Timer};

fn id(n: u8) -> ClientId {
    ClientId::new(n).unwrap()
}

fn leak<T>(v: T) -> &'static T {
    Box::leak(Box::new(v))
}

/// A reader that fails (or reads nothing) at once, forever: the driver
/// pauses between reads, so the executor keeps running other tasks and
/// timers fire on schedule.
fn a_broken_reader_never_spins(eof: bool) {
    run(async move {
        let broken = leak(AtomicBool::new(true));
        let reads = leak(AtomicU32::new(0));
        let pause = Duration::from_millis(5);
        let config = fast_config()
            .quiet_gap(Duration::from_millis(50))
            .command_timeout(Duration::from_millis(100))
            .read_error_pause(pause);
        let (modem, runner, mut fake) = setup_with(
            config,
            |_, pipe| BrokenRx {
                pipe,
                broken,
                eof,
                reads,
            },
            |tx| tx,
        );
        let c0 = modem.client(id(0));
        with_runner(runner, async {
            let start = Instant::now();
            let (r, _) = join(c0.keepalive(), fake.expect(b"AT+QMTCFG=\"keepalive\",0\r")).await;
            let took = start.elapsed();
            assert_eq!(r, Err(Error::Timeout(Stage::Response)));
            // On time (a spinning runner would starve the timer for ever).
            assert!(took < Duration::from_millis(400), "took {took:?}");
            let n = reads.load(Ordering::SeqCst);
            let bound = (took.as_millis() / pause.as_millis()) as u32 + 2;
            assert!(
                n >= 2 && n <= bound,
                "{n} reads in {took:?} (at most {bound})"
            );
            assert_eq!(modem.stats().read_errors, n);
            // The UART comes back: the driver resynchronises and goes on.
            broken.store(false, Ordering::SeqCst);
            Timer::after(pause * 2).await;
            next_command_works(c0, &mut fake, 12).await;
        })
        .await;
    });
}

#[test]
fn a_reader_that_fails_at_once_forever_is_paused_not_spun() {
    a_broken_reader_never_spins(false);
}

#[test]
fn a_reader_that_returns_nothing_forever_is_paused_not_spun() {
    a_broken_reader_never_spins(true);
}

#[test]
fn a_write_error_mid_line_is_ended_with_cr_and_resynchronised_before_the_next_command() {
    run(async {
        let budget = leak(AtomicUsize::new(10));
        let (modem, runner, mut fake) =
            setup_with(fast_config(), |_, rx| rx, |pipe| FailingTx { pipe, budget });
        let c0 = modem.client(id(0));
        with_runner(runner, async {
            let (r, half) = join(c0.set_keepalive(60), fake.bytes(10)).await;
            assert_eq!(r, Err(Error::Write));
            assert_eq!(half, b"AT+QMTCFG=");
            assert_eq!(modem.stats().write_errors, 1);
            budget.store(usize::MAX, Ordering::SeqCst);
            let (r, _) = join(c0.set_keepalive(60), async {
                // The modem holds half a line: CR ends it (it answers ERROR),
                // then the probe, then the command.
                fake.expect(b"\rAT\r").await;
                fake.send(b"\r\nERROR\r\n\r\nOK\r\n").await;
                fake.answer(b"AT+QMTCFG=\"keepalive\",0,60\r", b"\r\nOK\r\n")
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
fn a_text_recv_whose_closing_quote_is_lost_holds_the_stream_only_a_quiet_gap() {
    run(async {
        let gap = Duration::from_millis(30);
        let (modem, runner, mut fake) = setup(fast_config().quiet_gap(gap));
        let mut events = modem.events().unwrap();
        let c0 = modem.client(id(0));
        with_runner(runner, async {
            // The closing quote was lost: a text payload could go on for lines.
            fake.send(b"\r\n+QMTRECV: 0,1,\"t\",\"cut short\r\n").await;
            let start = Instant::now();
            let (r, _) = join(c0.keepalive(), async {
                fake.expect(b"AT+QMTCFG=\"keepalive\",0\r").await;
                fake.send(b"\r\n+QMTCFG: \"keepalive\",120\r\n\r\nOK\r\n")
                    .await;
            })
            .await;
            assert_eq!(r, Ok(120));
            assert!(start.elapsed() >= gap, "answered before the gap");
            assert!(start.elapsed() < gap * 4, "{:?}", start.elapsed());
            let s = modem.stats();
            assert_eq!(s.resyncs, 1);
            // A whole message after the broken one arrives.
            fake.send(b"\r\n+QMTRECV: 0,2,\"t\",\"whole\"\r\n").await;
            match next_ev(&mut events).await {
                Ev::Message(m) => assert_eq!((m.msg_id, &m.payload[..]), (2, &b"whole"[..])),
                e => panic!("{e:?}"),
            }
        })
        .await;
    });
}

#[test]
fn a_hex_recv_whose_closing_quote_is_lost_is_dropped_at_once_without_waiting() {
    run(async {
        // A long gap: the test shows the stream is not held for it.
        let (modem, runner, mut fake) = setup(
            fast_config()
                .receive_text(false)
                .quiet_gap(Duration::from_secs(5))
                // Every deadline at least two gaps (Config::validate).
                .command_timeout(Duration::from_secs(10))
                .open_timeout(Duration::from_secs(10))
                .close_timeout(Duration::from_secs(10))
                .packet_deadline(Duration::from_secs(10))
                .wake_timeout(Duration::from_secs(10))
                .wake_probe(Duration::from_secs(6)),
        );
        let c0 = modem.client(id(0));
        with_runner(runner, async {
            let (r, _) = join(
                c0.set_data_format(DataFormat::Text, DataFormat::Hex),
                async {
                    fake.answer(b"AT+QMTCFG=\"dataformat\",0,0,1\r", b"\r\nOK\r\n")
                        .await;
                },
            )
            .await;
            assert_eq!(r, Ok(()));
            fake.send(b"\r\n+QMTRECV: 0,1,\"t\",\"4142\r\n").await;
            let start = Instant::now();
            let (r, _) = join(c0.keepalive(), async {
                fake.answer(
                    b"AT+QMTCFG=\"keepalive\",0\r",
                    b"\r\n+QMTCFG: \"keepalive\",120\r\n\r\nOK\r\n",
                )
                .await;
            })
            .await;
            assert_eq!(r, Ok(120));
            assert!(start.elapsed() < Duration::from_millis(500));
            assert_eq!(modem.stats().malformed_urcs, 1);
            assert_eq!(modem.stats().resyncs, 0);
        })
        .await;
    });
}

#[test]
fn a_reboot_ends_every_pending_operation_at_once_and_subscribers_hear_of_it() {
    run(async {
        // Deadlines far longer than the test: only the reboot can end them.
        let config = fast_config()
            .open_timeout(Duration::from_secs(60))
            .packet_deadline(Duration::from_secs(60))
            .command_timeout(Duration::from_secs(60));
        let (modem, runner, mut fake) = setup(config);
        let mut events = modem.events().unwrap();
        let (c0, c1, c2) = (
            modem.client(id(0)),
            modem.client(id(1)),
            modem.client(id(2)),
        );
        with_runner(runner, async {
            let start = Instant::now();
            let (open, publish, query, _) = join4(
                c0.open("h", 1),
                async {
                    Timer::after_millis(5).await;
                    c1.publish("t", b"v", QoS::AtLeastOnce, false).await
                },
                async {
                    Timer::after_millis(10).await;
                    c2.keepalive().await
                },
                async {
                    fake.answer(b"AT+QMTOPEN=0,\"h\",1\r", b"\r\nOK\r\n").await;
                    fake.answer(b"AT+QMTPUB=1,1,1,0,\"t\",\"v\"\r", b"\r\nOK\r\n")
                        .await;
                    fake.expect(b"AT+QMTCFG=\"keepalive\",2\r").await;
                    settle().await;
                    fake.send(b"\r\nRDY\r\n").await;
                },
            )
            .await;
            assert!(start.elapsed() < Duration::from_secs(2));
            assert_eq!(open, Err(Error::ModemRebooted));
            assert_eq!(publish, Err(Error::ModemRebooted));
            assert_eq!(query, Err(Error::ModemRebooted));
            assert_eq!(next_ev(&mut events).await, Ev::Rebooted);
            assert_eq!(modem.stats().reboots, 1);
            // No fence: nothing is owed by a modem that restarted.
            next_command_works(c0, &mut fake, 5).await;
            assert_eq!(modem.stats().fences, 0);
        })
        .await;
    });
}

#[test]
fn after_a_reboot_the_driver_forgets_the_settings_the_modem_forgot() {
    run(async {
        let (modem, runner, mut fake) = setup(fast_config().receive_text(false));
        let c0 = modem.client(id(0));
        with_runner(runner, async {
            let (r, _) = join(
                c0.set_data_format(DataFormat::Hex, DataFormat::Hex),
                fake.answer(b"AT+QMTCFG=\"dataformat\",0,1,1\r", b"\r\nOK\r\n"),
            )
            .await;
            assert_eq!(r, Ok(()));
            fake.send(b"\r\nRDY\r\n").await;
            settle().await;
            // The modem sends text again: so does the driver.
            let (p, _) = join(
                c0.publish("t", b"hello", QoS::AtMostOnce, false),
                fake.answer(
                    b"AT+QMTPUB=0,0,0,0,\"t\",\"hello\"\r",
                    b"\r\nOK\r\n\r\n+QMTPUB: 0,0,0\r\n",
                ),
            )
            .await;
            assert_eq!(p.map(|p| p.msg_id), Ok(0));
            // And it sets hex reception up again before the next open.
            let (o, _) = join(c0.open("h", 1), async {
                fake.answer(b"AT+QMTCFG=\"dataformat\",0,0,1\r", b"\r\nOK\r\n")
                    .await;
                fake.answer(
                    b"AT+QMTOPEN=0,\"h\",1\r",
                    b"\r\nOK\r\n\r\n+QMTOPEN: 0,0\r\n",
                )
                .await;
            })
            .await;
            assert_eq!(o, Ok(()));
        })
        .await;
    });
}

#[test]
fn a_reboot_in_the_middle_of_a_data_mode_publish_sends_no_more_payload() {
    run(async {
        let (modem, runner, mut fake) = setup(fast_config());
        let c0 = modem.client(id(0));
        let payload = vec![b'p'; 1000];
        with_runner(runner, async {
            let (r, _) = join(c0.publish("t", &payload, QoS::AtMostOnce, false), async {
                fake.answer(b"AT+QMTPUB=0,0,0,0,\"t\"\r", b"\r\n> ").await;
                let first = fake.bytes(100).await;
                assert!(first.iter().all(|&b| b == b'p'));
                fake.send(b"\r\nRDY\r\n").await;
            })
            .await;
            assert_eq!(r, Err(Error::ModemRebooted));
            settle().await;
            // At most what sat in the UART's transmit buffer (the 256-byte
            // pipe) and the one piece being handed to it when the restart
            // was seen; never the rest, never the Ctrl+Z that would end it.
            let rest = fake.bytes_available();
            assert!(
                rest.len() <= 256 + 64,
                "{} payload bytes after the restart",
                rest.len()
            );
            assert!(!rest.contains(&0x1a), "Ctrl+Z after the restart");
            // The next command ends the half line the restarted modem may
            // hold, then goes through.
            let (r, _) = join(c0.keepalive(), async {
                fake.answer(b"\rAT\r", b"\r\nERROR\r\n\r\nOK\r\n").await;
                fake.answer(
                    b"AT+QMTCFG=\"keepalive\",0\r",
                    b"\r\n+QMTCFG: \"keepalive\",3\r\n\r\nOK\r\n",
                )
                .await;
            })
            .await;
            assert_eq!(r, Ok(3));
        })
        .await;
    });
}

#[test]
fn a_publish_queued_behind_another_clients_command_ends_at_once_when_its_link_closes() {
    run(async {
        let (modem, runner, mut fake) = setup(fast_config());
        let (c0, c1) = (modem.client(id(0)), modem.client(id(1)));
        with_runner(runner, async {
            let (k, p, answered) = join3(
                c1.keepalive(),
                async {
                    Timer::after_millis(5).await;
                    let r = c0.publish("t", b"v", QoS::AtLeastOnce, false).await;
                    (r, Instant::now())
                },
                async {
                    fake.expect(b"AT+QMTCFG=\"keepalive\",1\r").await;
                    Timer::after_millis(20).await;
                    fake.send(b"\r\n+QMTSTAT: 0,1\r\n").await;
                    Timer::after_millis(50).await;
                    let answered = Instant::now();
                    fake.send(b"\r\n+QMTCFG: \"keepalive\",60\r\n\r\nOK\r\n")
                        .await;
                    answered
                },
            )
            .await;
            assert_eq!(k, Ok(60));
            let (r, ended) = p;
            assert_eq!(
                r,
                Err(Error::LinkClosed(bc26_mqtt::LinkClosedReason::PeerClosed))
            );
            assert!(ended < answered, "the publish waited for the channel");
            settle().await;
            assert!(fake.nothing_from_host(), "the publish line went out");
        })
        .await;
    });
}
