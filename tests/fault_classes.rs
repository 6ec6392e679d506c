//! The driver's fault classes of issue 15, each against a scripted fake
//! modem with adversarial timing: a wait for a publish slot that must end, a
//! deferred result before its `OK`, a start-up line read after a command
//! that the modem sent before it, a UART that stops taking bytes, and ESC
//! only where the modem may wait in data mode.

mod common;

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use bc26_mqtt::{ClientId, ConnackCode, Error, MqttClient, OpenError, QoS, Stage};
use common::{
    fast_config, next_command_works, run, setup, setup_with, show, with_runner, Fake, TxPipe,
};
use embassy_futures::join::{join, join3};
use embassy_time::{with_timeout, Duration, Instant, Timer};

fn id(n: u8) -> ClientId {
    ClientId::new(n).unwrap()
}

fn leak<T>(v: T) -> &'static T {
    Box::leak(Box::new(v))
}

/// `line` between CR LFs, as the modem sends it.
fn framed(line: &[u8]) -> Vec<u8> {
    [b"\r\n", line, b"\r\n"].concat()
}

// ------------------------------------------------- a wait for a slot ends

#[test]
fn a_publish_waiting_for_a_slot_returns_once_slots_abandoned_after_it_began_expire() {
    run(async {
        let deadline = Duration::from_millis(100);
        let (modem, runner, mut fake) = setup(
            fast_config()
                .quiet_gap(deadline / 2)
                .packet_deadline(deadline),
        );
        let (c0, c1) = (modem.client(id(0)), modem.client(id(1)));
        // The `INFLIGHT` of the default `State`.
        const INFLIGHT: usize = 8;
        with_runner(runner, async {
            let modem_side = async {
                // Client 0's publishes are accepted; their results never come.
                for _ in 0..INFLIGHT {
                    let line = fake.line().await;
                    assert!(line.starts_with(b"AT+QMTPUB=0,"), "{}", show(&line));
                    fake.send(b"\r\nOK\r\n").await;
                }
                let _ = with_timeout(
                    Duration::from_secs(4),
                    fake.answer(
                        b"AT+QMTPUB=1,1,1,0,\"t\",\"late\"\r",
                        b"\r\nOK\r\n\r\n+QMTPUB: 1,1,0\r\n",
                    ),
                )
                .await;
            };
            let device = async {
                let mut pending = Vec::new();
                for _ in 0..INFLIGHT {
                    let p = c0.start_publish("t", b"x", QoS::AtLeastOnce, false);
                    pending.push(p.await.unwrap());
                }
                // Every slot waits for a result and none is abandoned yet:
                // client 1's publish starts waiting for a slot.
                let started = Instant::now();
                let waiting = with_timeout(
                    Duration::from_secs(3),
                    c1.publish("t", b"late", QoS::AtLeastOnce, false),
                );
                // Then client 0 gives up its publishes (their slots are
                // abandoned, and free once their late results' time is up).
                let give_up = async {
                    for p in pending {
                        assert_eq!(p.result().await, Err(Error::Timeout(Stage::Result)));
                    }
                };
                let (r, ()) = join(waiting, give_up).await;
                (r.ok(), started.elapsed())
            };
            let ((r, took), ()) = join(device, modem_side).await;
            assert_eq!(
                r.map(|r| r.map(|p| p.msg_id)),
                Some(Ok(1)),
                "the publish waiting for a slot never returned"
            );
            // Abandoned after one deadline, free after another.
            assert!(took < deadline * 6, "took {took:?}");
        })
        .await;
    });
}

#[test]
fn try_publish_with_every_slot_busy_fails_at_once_and_sends_nothing() {
    run(async {
        let (modem, runner, mut fake) = setup(fast_config());
        let c0 = modem.client(id(0));
        // The `INFLIGHT` of the default `State`.
        const INFLIGHT: u16 = 8;
        with_runner(runner, async {
            let mut pending = Vec::new();
            for n in 1..=INFLIGHT {
                let line = format!("AT+QMTPUB=0,{n},1,0,\"t\",\"x\"\r");
                let (p, _) = join(
                    c0.start_publish("t", b"x", QoS::AtLeastOnce, false),
                    fake.answer(line.as_bytes(), b"\r\nOK\r\n"),
                )
                .await;
                pending.push(p.unwrap());
            }
            // Every slot waits for its result: no await of the modem.
            let r = with_timeout(
                Duration::from_millis(10),
                c0.try_publish("t", b"y", QoS::AtLeastOnce, false),
            )
            .await;
            assert_eq!(
                r.map(|r| r.map(|p| p.msg_id)),
                Ok(Err(Error::TooManyInFlight))
            );
            // A result frees a slot: the next one goes, under the next msgID.
            fake.send(b"\r\n+QMTPUB: 0,1,0\r\n").await;
            assert_eq!(pending.remove(0).result().await.map(|p| p.msg_id), Ok(1));
            let (p, _) = join(
                c0.try_publish("t", b"z", QoS::AtLeastOnce, false),
                fake.answer(
                    b"AT+QMTPUB=0,9,1,0,\"t\",\"z\"\r",
                    b"\r\nOK\r\n\r\n+QMTPUB: 0,9,0\r\n",
                ),
            )
            .await;
            assert_eq!(p.map(|p| p.msg_id), Ok(9));
        })
        .await;
    });
}

// ------------------------------------------- a result before its OK is kept

/// Answers `line` with its deferred `result` first, then `OK` (the
/// reference allows a deferred result between a command line and its `OK`).
async fn result_before_ok(fake: &mut Fake, line: &[u8], result: &[u8]) {
    fake.expect(line).await;
    fake.send(&[framed(result), framed(b"OK")].concat()).await;
}

#[test]
fn a_deferred_result_that_comes_before_its_ok_reaches_its_command() {
    run(async {
        let (modem, runner, mut fake) = setup(fast_config());
        let c0 = modem.client(id(0));
        with_runner(runner, async {
            let f = &mut fake;
            let (r, _) = join(
                c0.open("h", 1),
                result_before_ok(f, b"AT+QMTOPEN=0,\"h\",1\r", b"+QMTOPEN: 0,0"),
            )
            .await;
            assert_eq!(r, Ok(()), "open");
            let (r, _) = join(
                c0.connect("dev", None, None),
                result_before_ok(f, b"AT+QMTCONN=0,\"dev\"\r", b"+QMTCONN: 0,0,0"),
            )
            .await;
            assert_eq!(r, Ok(()), "connect");
            let (r, _) = join(
                c0.subscribe(&[("a", QoS::AtLeastOnce)]),
                result_before_ok(f, b"AT+QMTSUB=0,1,\"a\",1\r", b"+QMTSUB: 0,1,0,1"),
            )
            .await;
            assert!(r.is_ok(), "subscribe: {r:?}");
            let (r, _) = join(
                c0.unsubscribe(&["a"]),
                result_before_ok(f, b"AT+QMTUNS=0,2,\"a\"\r", b"+QMTUNS: 0,2,0"),
            )
            .await;
            assert_eq!(r, Ok(()), "unsubscribe");
            let (r, _) = join(
                c0.publish("t", b"v", QoS::AtLeastOnce, false),
                result_before_ok(f, b"AT+QMTPUB=0,3,1,0,\"t\",\"v\"\r", b"+QMTPUB: 0,3,0"),
            )
            .await;
            assert_eq!(r.map(|p| p.msg_id), Ok(3), "QoS 1 publish");
            let (r, _) = join(
                c0.publish("t", b"v", QoS::AtMostOnce, false),
                result_before_ok(f, b"AT+QMTPUB=0,0,0,0,\"t\",\"v\"\r", b"+QMTPUB: 0,0,0"),
            )
            .await;
            assert_eq!(r.map(|p| p.msg_id), Ok(0), "QoS 0 publish");
            let (r, _) = join(
                c0.publish_data_mode("t", b"x", QoS::AtLeastOnce, false),
                async {
                    f.answer(b"AT+QMTPUB=0,4,1,0,\"t\"\r", b"\r\n> ").await;
                    f.expect(b"x\x1a").await;
                    f.send(&[framed(b"+QMTPUB: 0,4,0"), framed(b"OK")].concat())
                        .await;
                },
            )
            .await;
            assert_eq!(r.map(|p| p.msg_id), Ok(4), "data-mode publish");
            let (r, _) = join(
                c0.disconnect(),
                result_before_ok(f, b"AT+QMTDISC=0\r", b"+QMTDISC: 0,0"),
            )
            .await;
            assert_eq!(r, Ok(()), "disconnect");
            let (r, _) = join(
                c0.close(),
                result_before_ok(f, b"AT+QMTCLOSE=0\r", b"+QMTCLOSE: 0,0"),
            )
            .await;
            assert_eq!(r, Ok(()), "close");
            assert_eq!(modem.stats().stale_results, 0);
        })
        .await;
    });
}

#[test]
fn a_publish_ended_by_its_early_result_leaves_its_ok_to_no_other_publish() {
    run(async {
        let (modem, runner, mut fake) = setup(fast_config());
        let c0 = modem.client(id(0));
        with_runner(runner, async {
            let device = async {
                // The first publish ends with its result, before its `OK`;
                // the second takes the slot it left while that `OK` is owed.
                let a = c0.publish("t", b"a", QoS::AtMostOnce, false).await;
                let b = c0.publish("t", b"b", QoS::AtMostOnce, false).await;
                (a.map(|p| p.msg_id), b.map(|p| p.msg_id))
            };
            let modem_side = async {
                fake.expect(b"AT+QMTPUB=0,0,0,0,\"t\",\"a\"\r").await;
                fake.send(b"\r\n+QMTPUB: 0,0,0\r\n").await;
                Timer::after_millis(30).await;
                // The first publish's `OK`, then a QoS 0 failure of some
                // earlier publish: the second's line has not gone out.
                fake.send(b"\r\nOK\r\n\r\n+QMTPUB: 0,0,2\r\n").await;
                let _ = with_timeout(
                    Duration::from_secs(2),
                    fake.answer(
                        b"AT+QMTPUB=0,0,0,0,\"t\",\"b\"\r",
                        b"\r\nOK\r\n\r\n+QMTPUB: 0,0,0\r\n",
                    ),
                )
                .await;
            };
            let ((a, b), ()) = join(device, modem_side).await;
            assert_eq!(a, Ok(0));
            assert_eq!(
                b,
                Ok(0),
                "the second publish took a result older than its line"
            );
            assert_eq!(modem.stats().stale_results, 1);
        })
        .await;
    });
}

/// The operations that wait for a deferred result.
#[derive(Debug, Clone, Copy)]
enum Op {
    Open,
    Close,
    Connect,
    Disconnect,
    Subscribe,
    Unsubscribe,
}

impl Op {
    async fn run(self, c: MqttClient<'static>) -> Result<(), Error> {
        match self {
            Op::Open => c.open("h", 1).await,
            Op::Close => c.close().await,
            Op::Connect => c.connect("dev", None, None).await,
            Op::Disconnect => c.disconnect().await,
            Op::Subscribe => c.subscribe(&[("a", QoS::AtLeastOnce)]).await.map(drop),
            Op::Unsubscribe => c.unsubscribe(&["a"]).await,
        }
    }

    /// Its line; a success result of an earlier command of its kind; its
    /// own result, a failure; and the error that failure is.
    fn script(self) -> (&'static [u8], &'static [u8], &'static [u8], Error) {
        match self {
            Op::Open => (
                b"AT+QMTOPEN=0,\"h\",1\r",
                b"+QMTOPEN: 0,0",
                b"+QMTOPEN: 0,2",
                Error::Open(OpenError::IdentifierOccupied),
            ),
            Op::Close => (
                b"AT+QMTCLOSE=0\r",
                b"+QMTCLOSE: 0,0",
                b"+QMTCLOSE: 0,-1",
                Error::CloseFailed,
            ),
            Op::Connect => (
                b"AT+QMTCONN=0,\"dev\"\r",
                b"+QMTCONN: 0,0,0",
                b"+QMTCONN: 0,0,5",
                Error::ConnectRefused(ConnackCode::NotAuthorized),
            ),
            Op::Disconnect => (
                b"AT+QMTDISC=0\r",
                b"+QMTDISC: 0,0",
                b"+QMTDISC: 0,-1",
                Error::CloseFailed,
            ),
            Op::Subscribe => (
                b"AT+QMTSUB=0,1,\"a\",1\r",
                b"+QMTSUB: 0,1,0,1",
                b"+QMTSUB: 0,1,2",
                Error::SendFailed,
            ),
            Op::Unsubscribe => (
                b"AT+QMTUNS=0,1,\"a\"\r",
                b"+QMTUNS: 0,1,0",
                b"+QMTUNS: 0,1,2",
                Error::SendFailed,
            ),
        }
    }
}

#[test]
fn a_result_that_comes_before_an_operations_line_went_out_is_not_its_result() {
    for op in [
        Op::Open,
        Op::Close,
        Op::Connect,
        Op::Disconnect,
        Op::Subscribe,
        Op::Unsubscribe,
    ] {
        run(async move {
            let (modem, runner, mut fake) = setup(fast_config());
            let (c0, c1) = (modem.client(id(0)), modem.client(id(1)));
            let (line, earlier, own, error) = op.script();
            with_runner(runner, async {
                let (k, r, _) = join3(
                    c1.keepalive(),
                    async {
                        Timer::after_millis(5).await;
                        op.run(c0).await
                    },
                    async {
                        fake.expect(b"AT+QMTCFG=\"keepalive\",1\r").await;
                        // Client 0's operation waits for the channel when a
                        // result of an earlier command of its kind comes.
                        Timer::after_millis(20).await;
                        fake.send(&framed(earlier)).await;
                        fake.send(b"\r\n+QMTCFG: \"keepalive\",60\r\n\r\nOK\r\n")
                            .await;
                        fake.answer(line, b"\r\nOK\r\n").await;
                        fake.send(&framed(own)).await;
                    },
                )
                .await;
                assert_eq!(k, Ok(60));
                assert_eq!(r, Err(error), "{op:?} took a result older than its line");
                assert_eq!(modem.stats().stale_results, 1, "{op:?}");
            })
            .await;
        });
    }
}

// ------------------------- a start-up line ends only what it came after

/// What goes out after the start-up line, in the tests below.
#[derive(Debug, Clone, Copy)]
enum Sent {
    /// A command with no deferred result.
    Command,
    /// An operation (open).
    Operation,
    /// A QoS 1 publish.
    Publish,
}

#[test]
fn a_startup_line_sent_before_a_command_but_read_after_it_does_not_end_it() {
    for sent in [Sent::Command, Sent::Operation, Sent::Publish] {
        run(async move {
            let gap = Duration::from_millis(100);
            let (modem, runner, mut fake) = setup(fast_config().quiet_gap(gap));
            let c0 = modem.client(id(0));
            let (line, answer): (&[u8], &[u8]) = match sent {
                Sent::Command => (b"AT+QMTCFG=\"keepalive\",0,30\r", b"\r\nOK\r\n"),
                Sent::Operation => (
                    b"AT+QMTOPEN=0,\"h\",1\r",
                    b"\r\nOK\r\n\r\n+QMTOPEN: 0,0\r\n",
                ),
                Sent::Publish => (
                    b"AT+QMTPUB=0,1,1,0,\"t\",\"v\"\r",
                    b"\r\nOK\r\n\r\n+QMTPUB: 0,1,0\r\n",
                ),
            };
            with_runner(runner, async {
                // A message whose closing quote was lost, then the modem
                // restarted: the driver holds both (a text payload may hold
                // CR LF) until the line has been quiet a gap, and reads `RDY`
                // only then, after the command below went out.
                fake.send(b"\r\n+QMTRECV: 0,1,\"t\",\"cut short\r\nRDY\r\n")
                    .await;
                let device = async {
                    match sent {
                        Sent::Command => c0.set_keepalive(30).await,
                        Sent::Operation => c0.open("h", 1).await,
                        Sent::Publish => c0
                            .publish("t", b"v", QoS::AtLeastOnce, false)
                            .await
                            .map(drop),
                    }
                };
                let (r, _) = join(device, async {
                    fake.expect(line).await;
                    Timer::after(gap * 2).await;
                    fake.send(answer).await;
                })
                .await;
                assert_eq!(r, Ok(()), "{sent:?} ended by a restart that came before it");
                let s = modem.stats();
                assert_eq!((s.resyncs, s.reboots), (1, 1), "{sent:?}");
            })
            .await;
        });
    }
}

/// A UART writer that passes `budget` bytes, then waits until the test
/// raises it (a UART whose transmit buffer the modem drains slowly).
struct MeteredTx {
    pipe: &'static TxPipe,
    budget: &'static AtomicUsize,
}

impl embedded_io_async::ErrorType for MeteredTx {
    type Error = core::convert::Infallible;
}

impl embedded_io_async::Write for MeteredTx {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        while self.budget.load(Ordering::SeqCst) == 0 {
            Timer::after_millis(1).await;
        }
        let n = buf.len().min(self.budget.load(Ordering::SeqCst));
        let n = self.pipe.write(&buf[..n]).await;
        self.budget.fetch_sub(n, Ordering::SeqCst);
        Ok(n)
    }
    async fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

#[test]
fn a_startup_line_after_the_first_bytes_of_a_line_went_out_ends_that_command() {
    run(async {
        let budget = leak(AtomicUsize::new(64));
        let (modem, runner, mut fake) =
            setup_with(fast_config(), |_, rx| rx, |pipe| MeteredTx { pipe, budget });
        let c0 = modem.client(id(0));
        let (a, b) = ("a".repeat(200), "b".repeat(200));
        with_runner(runner, async {
            let topics = [
                (a.as_str(), QoS::AtLeastOnce),
                (b.as_str(), QoS::AtLeastOnce),
            ];
            let (r, _) = join(c0.subscribe(&topics), async {
                // The modem has the line's first bytes when it restarts:
                // the rest reaches a modem that never saw its start.
                let head = fake.bytes(64).await;
                assert!(head.starts_with(b"AT+QMTSUB=0,1,"), "{}", show(&head));
                fake.send(b"\r\nRDY\r\n").await;
                budget.store(usize::MAX, Ordering::SeqCst);
                let _ = fake.line().await;
            })
            .await;
            assert_eq!(r.map(drop), Err(Error::ModemRebooted));
        })
        .await;
    });
}

#[test]
fn an_open_queued_when_the_modem_restarts_goes_to_the_restarted_modem_and_gets_its_answer() {
    run(async {
        let (modem, runner, mut fake) = setup(fast_config());
        let (c0, c1) = (modem.client(id(0)), modem.client(id(1)));
        with_runner(runner, async {
            let (k, r, _) = join3(
                c1.keepalive(),
                async {
                    Timer::after_millis(5).await;
                    c0.open("h", 1).await
                },
                async {
                    fake.expect(b"AT+QMTCFG=\"keepalive\",1\r").await;
                    // The modem restarts while client 0's open waits for the
                    // channel: the command in flight ends, the open is not
                    // out yet.
                    Timer::after_millis(20).await;
                    fake.send(b"\r\nRDY\r\n").await;
                    fake.answer(
                        b"AT+QMTOPEN=0,\"h\",1\r",
                        b"\r\nOK\r\n\r\n+QMTOPEN: 0,0\r\n",
                    )
                    .await;
                },
            )
            .await;
            assert_eq!(k, Err(Error::ModemRebooted));
            assert_eq!(
                r,
                Ok(()),
                "the open the restarted modem answered was ended by the restart"
            );
        })
        .await;
    });
}

#[test]
fn a_startup_line_sent_before_the_resync_probe_but_read_after_it_leaves_the_probe_owed() {
    run(async {
        let gap = Duration::from_millis(100);
        let config = fast_config()
            .quiet_gap(gap)
            .command_timeout(Duration::from_millis(400));
        let (modem, runner, mut fake) = setup(config);
        let c0 = modem.client(id(0));
        with_runner(runner, async {
            let (r, _) = join(c0.keepalive(), fake.expect(b"AT+QMTCFG=\"keepalive\",0\r")).await;
            assert_eq!(r, Err(Error::Timeout(Stage::Response)));
            // The modem restarts; the driver holds `RDY` behind a broken
            // frame until a quiet gap, after its probe `AT` went out.
            fake.send(b"\r\n+QMTRECV: 0,1,\"t\",\"cut short\r\nRDY\r\n")
                .await;
            let (r, _) = join(c0.keepalive(), async {
                fake.expect(b"AT\r").await;
                Timer::after(gap * 2).await;
                // The restarted modem answers the probe it received.
                fake.send(b"\r\nOK\r\n").await;
                fake.answer(
                    b"AT+QMTCFG=\"keepalive\",0\r",
                    b"\r\n+QMTCFG: \"keepalive\",5\r\n\r\nOK\r\n",
                )
                .await;
            })
            .await;
            assert_eq!(r, Ok(5), "the command took the probe's answer");
            assert_eq!(modem.stats().reboots, 1);
        })
        .await;
    });
}

// ------------------------------------- a UART that stops taking bytes

const FLOWING: u8 = 0;
const WRITE_STALLS: u8 = 1;
const FLUSH_STALLS: u8 = 2;

/// A UART writer that stops while `stall` says so: its `write` never
/// completes (`WRITE_STALLS`, as with CTS held), or its `flush` never does
/// (`FLUSH_STALLS`, as with a hung DMA).
struct StallingTx {
    pipe: &'static TxPipe,
    stall: &'static AtomicU8,
}

impl embedded_io_async::ErrorType for StallingTx {
    type Error = core::convert::Infallible;
}

impl embedded_io_async::Write for StallingTx {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        if self.stall.load(Ordering::SeqCst) == WRITE_STALLS {
            core::future::pending::<()>().await;
        }
        Ok(self.pipe.write(buf).await)
    }
    async fn flush(&mut self) -> Result<(), Self::Error> {
        if self.stall.load(Ordering::SeqCst) == FLUSH_STALLS {
            core::future::pending::<()>().await;
        }
        Ok(())
    }
}

#[test]
fn a_uart_that_stops_taking_bytes_is_a_write_error_for_every_command_it_stops() {
    for stall_mode in [WRITE_STALLS, FLUSH_STALLS] {
        run(async move {
            let stall = leak(AtomicU8::new(FLOWING));
            let config = fast_config().tx_timeout(Duration::from_millis(30));
            let (modem, runner, mut fake) =
                setup_with(config, |_, rx| rx, |pipe| StallingTx { pipe, stall });
            let c0 = modem.client(id(0));
            with_runner(runner, async {
                stall.store(stall_mode, Ordering::SeqCst);
                // The command that meets the stall, and the next one (whose
                // re-synchronisation meets it first): neither blames the modem.
                assert_eq!(c0.set_keepalive(60).await, Err(Error::Write));
                assert_eq!(
                    c0.set_keepalive(60).await,
                    Err(Error::Write),
                    "stall mode {stall_mode}: the next command's stall was reported as a timeout"
                );
                assert_eq!(modem.stats().write_errors, 2);
                // The UART takes bytes again: the driver goes on.
                stall.store(FLOWING, Ordering::SeqCst);
                fake.discard();
                next_command_works(c0, &mut fake, 7).await;
            })
            .await;
        });
    }
}

// ------------------------- ESC only where the modem may be in data mode

/// A 40 ms `command_timeout`, with the quiet gap the driver then requires
/// (at most half of it, `Config::validate`).
fn short_timeout_config() -> bc26_mqtt::Config {
    fast_config()
        .quiet_gap(Duration::from_millis(20))
        .command_timeout(Duration::from_millis(40))
}

#[test]
fn after_a_prompt_that_never_came_the_resync_sends_no_esc() {
    run(async {
        let (modem, runner, mut fake) = setup(short_timeout_config());
        let c0 = modem.client(id(0));
        with_runner(runner, async {
            let (r, _) = join(
                c0.publish_data_mode("t", b"x", QoS::AtMostOnce, false),
                fake.expect(b"AT+QMTPUB=0,0,0,0,\"t\"\r"),
            )
            .await;
            assert_eq!(r, Err(Error::Timeout(Stage::Prompt)));
            // No prompt came: the modem is in command mode, where an ESC
            // has no meaning. The re-synchronisation is a bare `AT`.
            let (r, _) = join(c0.keepalive(), async {
                fake.expect(b"AT\r").await;
                fake.send(b"\r\nOK\r\n").await;
                fake.answer(
                    b"AT+QMTCFG=\"keepalive\",0\r",
                    b"\r\n+QMTCFG: \"keepalive\",5\r\n\r\nOK\r\n",
                )
                .await;
            })
            .await;
            assert_eq!(r, Ok(5));
        })
        .await;
    });
}

#[test]
fn a_late_prompt_gets_one_esc_and_the_resync_no_second() {
    run(async {
        let (modem, runner, mut fake) = setup(short_timeout_config());
        let c0 = modem.client(id(0));
        with_runner(runner, async {
            let (r, _) = join(
                c0.publish_data_mode("t", b"x", QoS::AtMostOnce, false),
                fake.expect(b"AT+QMTPUB=0,0,0,0,\"t\"\r"),
            )
            .await;
            assert_eq!(r, Err(Error::Timeout(Stage::Prompt)));
            // The prompt comes late: ESC at once takes the modem out of
            // data mode, and it says OK.
            fake.send(b"\r\n> ").await;
            fake.expect(b"\x1b").await;
            fake.send(b"\r\nOK\r\n").await;
            let (r, _) = join(c0.keepalive(), async {
                fake.expect(b"AT\r").await;
                fake.send(b"\r\nOK\r\n").await;
                fake.answer(
                    b"AT+QMTCFG=\"keepalive\",0\r",
                    b"\r\n+QMTCFG: \"keepalive\",5\r\n\r\nOK\r\n",
                )
                .await;
            })
            .await;
            assert_eq!(r, Ok(5));
        })
        .await;
    });
}

#[test]
fn after_a_payload_the_modem_may_still_hold_the_resync_starts_with_esc() {
    run(async {
        let (modem, runner, mut fake) = setup(short_timeout_config());
        let c0 = modem.client(id(0));
        with_runner(runner, async {
            let (r, _) = join(
                c0.publish_data_mode("t", b"x", QoS::AtMostOnce, false),
                async {
                    fake.answer(b"AT+QMTPUB=0,0,0,0,\"t\"\r", b"\r\n> ").await;
                    // Ctrl+Z may not have reached the modem: no answer.
                    fake.expect(b"x\x1a").await;
                },
            )
            .await;
            assert_eq!(r, Err(Error::Timeout(Stage::Response)));
            let (r, _) = join(c0.keepalive(), async {
                fake.expect(b"\x1bAT\r").await;
                fake.send(b"\r\nOK\r\n").await;
                fake.answer(
                    b"AT+QMTCFG=\"keepalive\",0\r",
                    b"\r\n+QMTCFG: \"keepalive\",5\r\n\r\nOK\r\n",
                )
                .await;
            })
            .await;
            assert_eq!(r, Ok(5));
        })
        .await;
    });
}

// ------------------------------------------- every wait of the driver ends

#[test]
fn a_modem_that_is_never_quiet_holds_the_resync_one_command_timeout_at_most() {
    run(async {
        let timeout = Duration::from_millis(60);
        let config = fast_config()
            .command_timeout(timeout)
            .quiet_gap(Duration::from_millis(30));
        let (modem, runner, mut fake) = setup(config);
        let c0 = modem.client(id(0));
        with_runner(runner, async {
            let (r, _) = join(c0.keepalive(), fake.expect(b"AT+QMTCFG=\"keepalive\",0\r")).await;
            assert_eq!(r, Err(Error::Timeout(Stage::Response)));
            let started = Instant::now();
            let (r, _) = join(
                with_timeout(Duration::from_secs(2), c0.keepalive()),
                async {
                    // The probe is answered; then the modem sends a line every
                    // 10 ms for a second (a stream of messages): never quiet for
                    // a gap. The command line is answered when it comes.
                    fake.expect(b"AT\r").await;
                    fake.send(b"\r\nOK\r\n").await;
                    let end = Instant::now() + Duration::from_secs(1);
                    let mut got = Vec::new();
                    while Instant::now() < end {
                        fake.send(b"\r\n+CEREG: 1\r\n").await;
                        got.extend(fake.bytes_available());
                        if got == b"AT+QMTCFG=\"keepalive\",0\r" {
                            fake.send(b"\r\n+QMTCFG: \"keepalive\",5\r\n\r\nOK\r\n")
                                .await;
                            break;
                        }
                        Timer::after_millis(10).await;
                    }
                },
            )
            .await;
            assert_eq!(r.ok(), Some(Ok(5)), "the command waited for a quiet line");
            let took = started.elapsed();
            assert!(took < timeout * 4, "took {took:?}");
        })
        .await;
    });
}
