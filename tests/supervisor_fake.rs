//! The supervisor's state machine on an auto-answering fake modem
//! (`bc26_testkit::rules`), in milliseconds: the exact AT sequence of a bring-up,
//! and what each way of failing leads to.
//!
//! In the test target `flash_supervisor` (feature `flash-outbox`) the rig
//! has a flash outbox (`common::rig::FLASH`), and the scenarios that publish
//! through [`Rig::try_publish`] (refusals, failed publishes) go through it.

mod common;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::Rc;

use bc26_mqtt::supervisor::{
    self, Backoff, HardReset, Link, LinkState, NoHardReset, OfflineReason, Outcome, ResetKind,
    Supervisor, SupervisorConfig, SupervisorState, Ticket,
};
use bc26_mqtt::{ClientId, DataFormat, Error, LinkClosedReason, QoS, Subscription};
use bc26_testkit::rules::{Answer, Auto};
use common::rig::{block_on, Recorder};
use common::{fast_config, setup, Fake, TestRunner};
use embassy_futures::join::{join, join3};
use embassy_futures::select::{select4, Either4};
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_time::{with_timeout, Duration, Instant, Timer};

const SUBS: &[Subscription<'static>] = &[Subscription::new("cmd/dev1", QoS::AtLeastOnce)];

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Millisecond timings: back-off 10 to 80 ms (reset after 150 ms online),
/// AT/CEREG polled every 10 ms, no health check unless a test sets one.
fn config() -> SupervisorConfig<'static> {
    let mut c = SupervisorConfig::new(ClientId::new(0).unwrap(), "broker.example", 1883, "dev1");
    c.keepalive_s = 60;
    c.pkt_timeout_s = 1;
    c.retry_times = 0;
    c.subscriptions = SUBS;
    c.backoff = Backoff::new()
        .delays(ms(10), ms(80))
        .stable_after(ms(150))
        .seed(5);
    c.modem_deadline = ms(400);
    c.registration_deadline = ms(100);
    c.poll_interval = ms(10);
    c.health_check = Duration::from_ticks(0);
    c
}

/// The bring-up of `config()`, line by line.
const BRING_UP: &[&str] = &[
    "AT",
    "ATE0",
    "AT+CEREG?",
    "AT+QMTCFG=\"keepalive\",0,60",
    "AT+QMTCFG=\"session\",0,1",
    "AT+QMTCFG=\"timeout\",0,1,0,0",
    "AT+QMTCFG=\"will\",0,0",
    "AT+QMTCFG=\"dataformat\",0,0,0",
    "AT+QMTOPEN=0,\"broker.example\",1883",
    "AT+QMTCONN=0,\"dev1\"",
    "AT+QMTSUB=0,1,\"cmd/dev1\",1",
];

/// A supervisor on the fake (with the board's reset `R`).
struct Rig<R: HardReset = NoHardReset> {
    auto: Auto,
    rec: Recorder,
    link: Link<'static>,
    /// The flash outbox it publishes through (`common::rig::FLASH`).
    #[cfg(feature = "flash-outbox")]
    flash: Option<&'static common::rig::RigFlashOutbox>,
    #[allow(clippy::type_complexity)]
    parts: RefCell<
        Option<(
            TestRunner,
            Supervisor<'static, CriticalSectionRawMutex, R>,
            Fake,
        )>,
    >,
}

impl Rig {
    fn new(name: &'static str, tweak: impl FnOnce(&mut SupervisorConfig<'static>)) -> Rig {
        Self::sized::<4096>(name, tweak)
    }

    fn sized<const N: usize>(
        name: &'static str,
        tweak: impl FnOnce(&mut SupervisorConfig<'static>),
    ) -> Rig {
        let (link, sup, runner, fake) = Self::parts::<N>(tweak);
        Rig {
            auto: Auto::new(),
            rec: Recorder::new(name, link),
            link,
            #[cfg(feature = "flash-outbox")]
            flash: common::rig::FLASH.then(|| common::rig::flash_outbox(link).1),
            parts: RefCell::new(Some((runner, sup, fake))),
        }
    }

    fn parts<const N: usize>(
        tweak: impl FnOnce(&mut SupervisorConfig<'static>),
    ) -> (Link<'static>, Supervisor<'static>, TestRunner, Fake) {
        let (modem, runner, fake) = setup(fast_config());
        let mut c = config();
        tweak(&mut c);
        let state: &'static mut SupervisorState<N> = Box::leak(Box::new(SupervisorState::new()));
        let (link, sup) = supervisor::new(modem, state, c);
        (link, sup, runner, fake)
    }

    /// With the board's reset `board`.
    fn with_reset<R: HardReset>(
        name: &'static str,
        tweak: impl FnOnce(&mut SupervisorConfig<'static>),
        board: R,
    ) -> Rig<R> {
        let (link, sup, runner, fake) = Self::parts::<4096>(tweak);
        Rig {
            auto: Auto::new(),
            rec: Recorder::new(name, link),
            link,
            #[cfg(feature = "flash-outbox")]
            flash: common::rig::FLASH.then(|| common::rig::flash_outbox(link).1),
            parts: RefCell::new(Some((runner, sup.with_hard_reset(board), fake))),
        }
    }
}

impl<R: HardReset> Rig<R> {
    /// Runs the driver, the supervisor and the fake until `body` ends (5 s
    /// at most).
    fn run(&self, body: impl Future<Output = ()>) {
        let (runner, sup, fake) = self.parts.borrow_mut().take().unwrap();
        block_on(std::time::Duration::from_secs(5), async {
            let sides = join3(self.rec.record(), self.auto.serve(fake), self.flash_task());
            match select4(runner.run(), sup.run(), sides, body).await {
                Either4::Fourth(()) => {}
                _ => unreachable!(),
            }
        });
    }

    /// The flash outbox's task, if there is one.
    async fn flash_task(&self) {
        #[cfg(feature = "flash-outbox")]
        if let Some(fo) = self.flash {
            fo.run().await
        }
    }

    /// Hands a message to the outbox at once: [`Link::try_publish`], or the
    /// flash outbox's.
    async fn try_publish(&self, payload: &[u8], qos: QoS) -> Result<Ticket, Error> {
        #[cfg(feature = "flash-outbox")]
        if let Some(fo) = self.flash {
            return fo.try_publish("up/dev1", payload, qos, false).await;
        }
        self.link.try_publish("up/dev1", payload, qos, false)
    }

    /// With a flash outbox: flash empties (every message ended), no flash
    /// failure nor corrupted entry counted.
    async fn flash_empty(&self) {
        #[cfg(feature = "flash-outbox")]
        if let Some(fo) = self.flash {
            common::rig::flash_empty("fake", fo).await;
        }
    }

    /// Fails with the fake's log and the states.
    fn explain(&self) -> String {
        format!(
            "lines:\n{}\nstates:\n{}",
            self.auto.dump(),
            self.rec.history()
        )
    }
}

#[test]
fn a_bring_up_sends_exactly_the_configuration_open_connect_and_subscriptions_in_order() {
    let r = Rig::new("bringup", |_| {});
    r.run(async {
        r.rec.online(ms(500)).await;
        assert_eq!(r.auto.lines(), BRING_UP, "{}", r.explain());
        assert_eq!(
            r.rec.states(),
            [LinkState::Connecting { attempt: 1 }, LinkState::Online]
        );
        let c = r.link.counters();
        assert_eq!((c.connects, c.reconnects, c.failed_attempts), (1, 0, 0));
    });
}

#[test]
fn identifier_occupied_closes_the_client_and_opens_it_again_in_the_same_attempt() {
    let r = Rig::new("occupied", |_| {});
    let first = Rc::new(Cell::new(true));
    let f = first.clone();
    r.auto.rule(move |l| {
        if l.starts_with("AT+QMTOPEN=") && f.replace(false) {
            Answer::Send(b"\r\nOK\r\n\r\n+QMTOPEN: 0,2\r\n".to_vec())
        } else {
            Answer::Default
        }
    });
    r.run(async {
        r.rec.online(ms(500)).await;
        let mut want: Vec<&str> = BRING_UP[..9].to_vec();
        want.extend(["AT+QMTCLOSE=0", BRING_UP[8]]);
        want.extend(&BRING_UP[9..]);
        assert_eq!(r.auto.lines(), want, "{}", r.explain());
        assert_eq!(
            r.rec.states(),
            [LinkState::Connecting { attempt: 1 }, LinkState::Online]
        );
    });
}

/// The `BackingOff` delays recorded from index `from` on.
fn delays(r: &Rig, from: usize) -> Vec<Duration> {
    r.rec.states()[from..]
        .iter()
        .filter_map(|s| match s {
            LinkState::BackingOff { delay } => Some(*delay),
            _ => None,
        })
        .collect()
}

#[test]
fn back_off_grows_while_attempts_fail_keeps_growing_after_a_short_link_and_resets_after_a_stable_one(
) {
    let r = Rig::new("backoff", |_| {});
    let fail = Rc::new(Cell::new(5u32));
    let f = fail.clone();
    r.auto.rule(move |l| {
        if l.starts_with("AT+QMTOPEN=") && f.get() > 0 {
            f.set(f.get() - 1);
            Answer::Send(b"\r\nOK\r\n\r\n+QMTOPEN: 0,-1\r\n".to_vec())
        } else {
            Answer::Default
        }
    });
    r.run(async {
        r.rec.online(ms(2000)).await;
        // Five failed opens: 10, 20, 40, 80, 80 ms before jitter, each
        // delay in [d/2, d], and each attempt waited at least that long.
        let d = delays(&r, 0);
        let bases = [10, 20, 40, 80, 80];
        assert_eq!(d.len(), 5, "{}", r.explain());
        for (got, base) in d.iter().zip(bases) {
            assert!(
                *got >= ms(base) / 2 && *got <= ms(base),
                "{d:?}\n{}",
                r.explain()
            );
        }
        let opens: Vec<usize> = (0..r.auto.count())
            .filter(|&i| r.auto.lines()[i].starts_with("AT+QMTOPEN="))
            .collect();
        for (k, w) in opens.windows(2).enumerate() {
            let gap = r.auto.at(w[1]).saturating_duration_since(r.auto.at(w[0]));
            assert!(gap >= d[k], "attempt {k}: {gap:?} < {:?}", d[k]);
        }
        let states = [
            LinkState::Connecting { attempt: 1 },
            LinkState::Connecting { attempt: 2 },
            LinkState::Connecting { attempt: 6 },
        ];
        for s in states {
            assert!(r.rec.states().contains(&s), "{}", r.explain());
        }
        // A link that ends before `stable_after` (150 ms): the back-off goes
        // on growing.
        let from = r.rec.states().len();
        r.auto.send(b"\r\n+QMTSTAT: 0,1\r\n");
        r.rec.offline(ms(200)).await;
        r.rec.online(ms(500)).await;
        let d = delays(&r, from);
        assert!(d[0] >= ms(40) && d[0] <= ms(80), "{d:?}");
        assert!(r
            .rec
            .states()
            .contains(&LinkState::Connecting { attempt: 7 }));
        // Online longer than `stable_after`: the next delay is the first one.
        Timer::after(ms(200)).await;
        let from = r.rec.states().len();
        r.auto.send(b"\r\n+QMTSTAT: 0,1\r\n");
        r.rec.offline(ms(200)).await;
        r.rec.online(ms(500)).await;
        let d = delays(&r, from);
        assert!(d[0] <= ms(10), "{d:?}\n{}", r.explain());
        // The attempts count from 1 again (this assertion said 2 before
        // issue 15, item 10: it encoded the bug).
        assert_eq!(
            r.rec.states()[from + 2],
            LinkState::Connecting { attempt: 1 }
        );
    });
}

#[test]
fn a_late_qmtstat_5_ends_nothing_and_publishes_go_on() {
    let r = Rig::new("late5", |c| c.health_check = ms(20));
    r.run(async {
        r.rec.online(ms(500)).await;
        let n = r.rec.states().len();
        r.auto.send(b"\r\n+QMTSTAT: 0,5\r\n");
        let o = r
            .link
            .publish("up/dev1", b"after", QoS::AtLeastOnce, false)
            .await;
        assert!(o.is_delivered(), "{o:?}");
        // Health checks go on (every 20 ms: three of them, awaited up to a
        // bound that a loaded test machine's timers never reach) and find
        // the client connected.
        let checks = r.auto.lines().len();
        let since = Instant::now();
        while r
            .auto
            .lines_from(checks)
            .iter()
            .filter(|l| *l == "AT+QMTCONN?")
            .count()
            < 3
        {
            assert!(
                since.elapsed() < ms(2000),
                "fewer than 3 health checks in 2 s\n{}",
                r.explain()
            );
            Timer::after(ms(5)).await;
        }
        assert_eq!(r.rec.states().len(), n, "{}", r.explain());
        assert_eq!(r.link.counters().link_losses, 0);
    });
}

#[test]
fn a_reboot_mid_connect_ends_the_attempt_and_everything_is_configured_again() {
    let r = Rig::new("rebootconn", |_| {});
    let hang = Rc::new(Cell::new(true));
    let h = hang.clone();
    r.auto.rule(move |l| {
        if l.starts_with("AT+QMTCONN=") && h.replace(false) {
            // OK, then no result: the CONNACK is awaited.
            Answer::Send(b"\r\nOK\r\n".to_vec())
        } else {
            Answer::Default
        }
    });
    r.run(async {
        r.auto
            .wait_lines(|l| l.iter().any(|l| l.starts_with("AT+QMTCONN=")))
            .await;
        let at = r.auto.count();
        r.auto.send(b"\r\nRDY\r\n");
        let reason = r.rec.offline(ms(200)).await;
        assert_eq!(reason, OfflineReason::ModemRebooted, "{}", r.explain());
        r.rec.online(ms(500)).await;
        // After RDY: the whole bring-up again, from AT.
        assert_eq!(r.auto.lines_from(at), BRING_UP, "{}", r.explain());
        let c = r.link.counters();
        assert_eq!((c.connects, c.failed_attempts), (1, 1));
    });
}

#[test]
fn a_silent_modem_gets_nothing_but_at_probes_then_the_attempt_backs_off() {
    let r = Rig::new("silent", |_| {});
    r.auto.silent.set(true);
    r.run(async {
        let t0 = Instant::now();
        let reason = r.rec.offline(ms(2000)).await;
        assert_eq!(reason, OfflineReason::ModemSilent, "{}", r.explain());
        // modem_deadline 400 ms, each AT waits up to 300 ms for its answer.
        assert!(t0.elapsed() >= ms(400), "{:?}", t0.elapsed());
        assert!(t0.elapsed() <= ms(1200), "{:?}", t0.elapsed());
        let probes = r.auto.lines();
        assert!(probes.len() >= 2, "{}", r.explain());
        assert!(probes.iter().all(|l| l == "AT"), "{}", r.explain());
        r.rec
            .until(ms(100), "BackingOff", |s| {
                matches!(s, LinkState::BackingOff { .. })
            })
            .await;
        // It answers again: the next attempt comes online.
        r.auto.silent.set(false);
        r.rec.online(ms(1500)).await;
        assert!(r.link.counters().failed_attempts >= 1);
    });
}

#[test]
fn a_silent_modem_while_online_is_found_by_the_health_check() {
    let r = Rig::new("silentonline", |c| c.health_check = ms(50));
    r.run(async {
        r.rec.online(ms(500)).await;
        r.auto.silent.set(true);
        let t0 = Instant::now();
        let reason = r.rec.offline(ms(1000)).await;
        assert_eq!(reason, OfflineReason::ModemSilent, "{}", r.explain());
        // One health-check period, then the command timeout (300 ms).
        assert!(t0.elapsed() <= ms(600), "{:?}", t0.elapsed());
        r.auto.silent.set(false);
        r.rec.online(ms(1500)).await;
    });
}

#[test]
fn registration_missing_past_the_deadline_is_not_registered_and_backs_off() {
    let r = Rig::new("noreg", |_| {});
    r.auto.stat.set(2);
    r.run(async {
        let reason = r.rec.offline(ms(500)).await;
        assert_eq!(reason, OfflineReason::NotRegistered, "{}", r.explain());
        let polls = r.auto.lines()[2..].to_vec();
        // registration_deadline 100 ms, polled every 10 ms; nothing else.
        assert!(polls.len() >= 5, "{}", r.explain());
        assert!(polls.iter().all(|l| l == "AT+CEREG?"), "{}", r.explain());
        r.rec
            .until(ms(100), "BackingOff", |s| {
                matches!(s, LinkState::BackingOff { .. })
            })
            .await;
        r.auto.stat.set(5);
        r.rec.online(ms(500)).await;
        assert_eq!(r.link.counters().failed_attempts, 1);
    });
}

#[test]
fn a_failed_publish_with_the_client_no_longer_connected_ends_the_link_and_the_message_goes_again_under_its_msg_id(
) {
    let r = Rig::new("pubfail", |_| {});
    let failed = Rc::new(Cell::new(0u32));
    let f = failed.clone();
    r.auto.rule(move |l| {
        if l.starts_with("AT+QMTPUB=") && f.get() == 0 {
            f.set(1);
            // The modem gave up on it (`pkt_timeout` x retries).
            let id = l.split(',').nth(1).unwrap();
            Answer::Send(format!("\r\nOK\r\n\r\n+QMTPUB: 0,{id},2\r\n").into_bytes())
        } else if l == "AT+QMTCONN?" && f.get() == 1 {
            f.set(2);
            // Its client is gone (1: initializing).
            Answer::Send(b"\r\n+QMTCONN: 0,1\r\n\r\nOK\r\n".to_vec())
        } else {
            Answer::Default
        }
    });
    r.run(async {
        r.rec.online(ms(500)).await;
        let t = r.try_publish(b"m", QoS::AtLeastOnce).await.unwrap();
        let reason = r.rec.offline(ms(500)).await;
        assert_eq!(reason, OfflineReason::NotConnected, "{}", r.explain());
        r.rec.online(ms(500)).await;
        let o = with_timeout(ms(500), r.link.delivered(t)).await.unwrap();
        assert_eq!(o, Outcome::Acknowledged { msg_id: t.msg_id });
        let pubs: Vec<String> = r
            .auto
            .lines()
            .into_iter()
            .filter(|l| l.starts_with("AT+QMTPUB="))
            .collect();
        let m = format!("AT+QMTPUB=0,{},1,0,\"up/dev1\",\"m\"", t.msg_id);
        assert_eq!(pubs, [m.clone(), m]);
        // The failed link was checked, then closed before the next open.
        let l = r.auto.lines();
        let first_pub = l.iter().position(|l| l.starts_with("AT+QMTPUB=")).unwrap();
        assert_eq!(l[first_pub + 1], "AT+QMTCONN?", "{}", r.explain());
        assert_eq!(l[first_pub + 2], "AT+QMTCLOSE=0", "{}", r.explain());
        let c = r.link.counters();
        assert_eq!((c.resent, c.refused), (1, 0), "{c:?}");
        r.flash_empty().await;
    });
}

#[test]
fn a_link_end_that_came_with_a_publish_error_is_reported_as_the_link_end() {
    let r = Rig::new("statwitherr", |_| {});
    r.auto.rule(|l| {
        if l.starts_with("AT+QMTPUB=") {
            // The link closed just before the line came: the URC, then the
            // refusal, in one burst.
            Answer::Send(b"\r\n+QMTSTAT: 0,6\r\n\r\nERROR\r\n".to_vec())
        } else {
            Answer::Default
        }
    });
    r.run(async {
        r.rec.online(ms(500)).await;
        r.link
            .try_publish("up/dev1", b"m", QoS::AtLeastOnce, false)
            .unwrap();
        let reason = r.rec.offline(ms(500)).await;
        assert_eq!(
            reason,
            OfflineReason::LinkClosed(LinkClosedReason::SendFailed),
            "{}",
            r.explain()
        );
        r.auto.rule(|_| Answer::Default);
        r.rec.online(ms(500)).await;
        r.link.flush().await;
    });
}

#[test]
fn the_health_check_finding_the_client_not_connected_closes_and_reconnects() {
    let r = Rig::new("notconn", |c| c.health_check = ms(30));
    let gone = Rc::new(Cell::new(false));
    let g = gone.clone();
    r.auto.rule(move |l| {
        if l == "AT+QMTCONN?" && g.get() {
            // Only opened (1), not connected (3).
            Answer::Send(b"\r\n+QMTCONN: 0,1\r\n\r\nOK\r\n".to_vec())
        } else {
            Answer::Default
        }
    });
    r.run(async {
        r.rec.online(ms(500)).await;
        let at = r.auto.count();
        gone.set(true);
        let reason = r.rec.offline(ms(200)).await;
        assert_eq!(reason, OfflineReason::NotConnected, "{}", r.explain());
        gone.set(false);
        r.rec.online(ms(500)).await;
        // The check, the close (no DISCONNECT), then a new bring-up.
        let l = r.auto.lines_from(at);
        let close = l.iter().position(|l| l == "AT+QMTCLOSE=0").unwrap();
        assert_eq!(l[close - 1], "AT+QMTCONN?", "{}", r.explain());
        let again = &l[close + 1..];
        assert_eq!(again[..10], BRING_UP[..10], "{}", r.explain());
        assert_eq!(again[10], "AT+QMTSUB=0,2,\"cmd/dev1\",1");
    });
}

#[test]
fn a_rejected_subscription_fails_the_attempt_closes_the_client_and_backs_off() {
    let r = Rig::new("subrej", |_| {});
    let reject = Rc::new(Cell::new(true));
    let j = reject.clone();
    r.auto.rule(move |l| {
        if l.starts_with("AT+QMTSUB=") && j.replace(false) {
            let id = l.split(',').nth(1).unwrap().to_string();
            Answer::Send(format!("\r\nOK\r\n\r\n+QMTSUB: 0,{id},0,128\r\n").into_bytes())
        } else {
            Answer::Default
        }
    });
    r.run(async {
        let reason = r.rec.offline(ms(500)).await;
        assert_eq!(
            reason,
            OfflineReason::SubscriptionRejected,
            "{}",
            r.explain()
        );
        r.rec.online(ms(500)).await;
        let l = r.auto.lines();
        assert_eq!(l[BRING_UP.len()], "AT+QMTCLOSE=0", "{}", r.explain());
        assert_eq!(r.link.counters().failed_attempts, 1);
    });
}

#[test]
fn a_publish_dropped_after_its_message_was_stored_is_still_delivered() {
    let r = Rig::new("dropped", |_| {});
    // Registration comes only later: the message waits in the outbox.
    r.auto.stat.set(2);
    r.run(async {
        let publish = r.link.publish("up/dev1", b"kept", QoS::AtLeastOnce, false);
        // The application gives up waiting after 20 ms.
        assert!(with_timeout(ms(20), publish).await.is_err());
        assert_eq!(r.link.outbox().messages, 1);
        r.auto.stat.set(1);
        r.rec.online(ms(800)).await;
        with_timeout(ms(500), r.link.flush()).await.unwrap();
        let pubs: Vec<String> = r
            .auto
            .lines()
            .into_iter()
            .filter(|l| l.starts_with("AT+QMTPUB="))
            .collect();
        assert_eq!(pubs, ["AT+QMTPUB=0,1,1,0,\"up/dev1\",\"kept\""]);
        assert_eq!(r.link.counters().delivered, 1);
    });
}

#[test]
fn a_publish_dropped_while_it_waited_for_room_stores_nothing() {
    let r = Rig::sized::<64>("noroom", |_| {});
    r.auto.stat.set(2);
    r.run(async {
        // 14 + 7 + 40 bytes: the 64-byte outbox holds one.
        let first = [b'a'; 40];
        r.link
            .try_publish("up/dev1", &first, QoS::AtLeastOnce, false)
            .unwrap();
        let second = [b'b'; 40];
        let waiting = r.link.publish("up/dev1", &second, QoS::AtLeastOnce, false);
        assert!(with_timeout(ms(20), waiting).await.is_err());
        r.auto.stat.set(1);
        r.rec.online(ms(800)).await;
        with_timeout(ms(500), r.link.flush()).await.unwrap();
        let pubs: Vec<String> = r
            .auto
            .lines()
            .into_iter()
            .filter(|l| l.starts_with("AT+QMTPUB="))
            .collect();
        assert_eq!(pubs.len(), 1, "{pubs:?}");
        assert!(pubs[0].ends_with(&format!("\"{}\"", "a".repeat(40))));
    });
}

#[test]
fn a_message_in_flight_when_the_link_ends_unreported_is_resent_once_and_blocks_no_other() {
    let r = Rig::new("abandoned", |c| c.health_check = ms(30));
    let (published, gone) = (Rc::new(Cell::new(0u32)), Rc::new(Cell::new(false)));
    let (p, g) = (published.clone(), gone.clone());
    r.auto.rule(move |l| {
        if l.starts_with("AT+QMTPUB=") {
            p.set(p.get() + 1);
            if p.get() == 1 {
                // Accepted; its result never comes.
                return Answer::Send(b"\r\nOK\r\n".to_vec());
            }
        }
        if l == "AT+QMTCONN?" && p.get() == 1 && !g.replace(true) {
            // Meanwhile the client lost its connection without a +QMTSTAT.
            return Answer::Send(b"\r\n+QMTCONN: 0,1\r\n\r\nOK\r\n".to_vec());
        }
        Answer::Default
    });
    r.run(async {
        r.rec.online(ms(500)).await;
        let t = r.try_publish(b"m", QoS::AtLeastOnce).await.unwrap();
        let reason = r.rec.offline(ms(500)).await;
        assert_eq!(reason, OfflineReason::NotConnected, "{}", r.explain());
        let next = r.try_publish(b"n", QoS::AtLeastOnce).await.unwrap();
        r.rec.online(ms(500)).await;
        let back = Instant::now();
        // The supervisor gave the link up and freed the old publish's slot:
        // the message goes again at once, and the later one does not wait.
        for t in [next, t] {
            let o = with_timeout(ms(100), r.link.delivered(t))
                .await
                .unwrap_or_else(|_| panic!("{}", r.explain()));
            assert!(o.is_delivered(), "{o:?}");
        }
        eprintln!("re-sent {:?} after the link was back", back.elapsed());
        let pubs: Vec<String> = r
            .auto
            .lines()
            .into_iter()
            .filter(|l| l.starts_with("AT+QMTPUB="))
            .collect();
        let m = format!("AT+QMTPUB=0,{},1,0,\"up/dev1\",\"m\"", t.msg_id);
        let n = format!("AT+QMTPUB=0,{},1,0,\"up/dev1\",\"n\"", next.msg_id);
        assert_eq!(pubs, [m.clone(), m, n]);
        let c = r.link.counters();
        assert_eq!((c.resent, c.delivered), (1, 2), "{c:?}\n{}", r.explain());
        r.flash_empty().await;
    });
}

#[test]
fn timeout_notice_has_the_modem_report_retransmissions_which_end_nothing() {
    let r = Rig::new("notice", |c| c.timeout_notice = true);
    r.auto.rule(|l| {
        if l.starts_with("AT+QMTPUB=") {
            let id = l.split(',').nth(1).unwrap().to_string();
            // Two retransmissions reported, then the acknowledgement.
            Answer::Send(
                format!(
                    "\r\nOK\r\n\r\n+QMTPUB: 0,{id},1,1\r\n\r\n+QMTPUB: 0,{id},1,2\r\n\r\n+QMTPUB: 0,{id},0\r\n"
                )
                .into_bytes(),
            )
        } else {
            Answer::Default
        }
    });
    r.run(async {
        r.rec.online(ms(500)).await;
        assert!(r
            .auto
            .lines()
            .contains(&"AT+QMTCFG=\"timeout\",0,1,0,1".to_string()));
        let o = r
            .link
            .publish("up/dev1", b"m", QoS::AtLeastOnce, false)
            .await;
        assert!(o.is_delivered(), "{o:?}");
        let c = r.link.counters();
        assert_eq!((c.delivered, c.link_losses, c.resent), (1, 0, 0));
        assert_eq!(r.rec.states().len(), 2, "{}", r.explain());
    });
}

#[test]
fn after_a_stable_link_the_attempts_count_from_1_again() {
    let r = Rig::new("attempts", |_| {});
    // Two failed opens at each bring-up: attempts 1 and 2 fail, 3 comes online.
    let fails = Rc::new(Cell::new(2u32));
    let f = fails.clone();
    r.auto.rule(move |l| {
        if l.starts_with("AT+QMTOPEN=") && f.get() > 0 {
            f.set(f.get() - 1);
            Answer::Send(b"\r\nOK\r\n\r\n+QMTOPEN: 0,-1\r\n".to_vec())
        } else {
            Answer::Default
        }
    });
    let attempts = |r: &Rig, from: usize| -> Vec<u32> {
        r.rec.states()[from..]
            .iter()
            .filter_map(|s| match s {
                LinkState::Connecting { attempt } => Some(*attempt),
                _ => None,
            })
            .collect()
    };
    r.run(async {
        r.rec.online(ms(1000)).await;
        assert_eq!(attempts(&r, 0), [1, 2, 3], "{}", r.explain());
        // Online longer than `stable_after` (150 ms), then the link ends and
        // the next bring-up fails twice again: 1, 2, 3 once more.
        Timer::after(ms(200)).await;
        let from = r.rec.states().len();
        fails.set(2);
        r.auto.send(b"\r\n+QMTSTAT: 0,1\r\n");
        r.rec.offline(ms(200)).await;
        r.rec.online(ms(1000)).await;
        assert_eq!(attempts(&r, from), [1, 2, 3], "{}", r.explain());
        // A link shorter than `stable_after`: the count goes on.
        let from = r.rec.states().len();
        r.auto.send(b"\r\n+QMTSTAT: 0,1\r\n");
        r.rec.offline(ms(200)).await;
        r.rec.online(ms(1000)).await;
        assert_eq!(attempts(&r, from), [4], "{}", r.explain());
    });
}

#[test]
fn a_qos0_message_dropped_by_a_link_loss_ends_dropped_never_delivered() {
    // One lane: the first QoS 0 publish is accepted but its result never
    // comes; the second waits behind it in the outbox.
    let r = Rig::new("qos0drop", |c| c.in_flight = 1);
    let hang = Rc::new(Cell::new(true));
    let h = hang.clone();
    r.auto.rule(move |l| {
        if l.starts_with("AT+QMTPUB=0,0,0,0,\"up/dev1\",\"lost") && h.get() {
            Answer::Send(b"\r\nOK\r\n".to_vec())
        } else {
            Answer::Default
        }
    });
    r.run(async {
        r.rec.online(ms(500)).await;
        let sent = r
            .link
            .publish("up/dev1", b"first", QoS::AtMostOnce, false)
            .await;
        assert_eq!(sent, Outcome::Sent);
        let acked = r
            .link
            .publish("up/dev1", b"one", QoS::AtLeastOnce, false)
            .await;
        assert!(matches!(acked, Outcome::Acknowledged { .. }), "{acked:?}");
        let in_flight = r
            .link
            .try_publish("up/dev1", b"lost in flight", QoS::AtMostOnce, false)
            .unwrap();
        let queued = r
            .link
            .try_publish("up/dev1", b"lost queued", QoS::AtMostOnce, false)
            .unwrap();
        r.auto
            .wait_lines(|l| l.iter().any(|l| l.contains("lost in flight")))
            .await;
        r.auto.send(b"\r\n+QMTSTAT: 0,1\r\n");
        let both = join(r.link.delivered(in_flight), r.link.delivered(queued));
        let got = with_timeout(ms(300), both)
            .await
            .unwrap_or_else(|_| panic!("{}", r.explain()));
        assert_eq!(got, (Outcome::Dropped, Outcome::Dropped), "{}", r.explain());
        assert!(!got.0.is_delivered());
        let c = r.link.counters();
        assert_eq!((c.qos0_dropped, c.delivered), (2, 2), "{c:?}");
        // The queued one never reached the modem.
        assert!(!r.auto.lines().iter().any(|l| l.contains("lost queued")));
        // And a ticket read later still says so.
        assert_eq!(r.link.outcome(queued), Some(Outcome::Dropped));
    });
}

/// The `AT+QMTPUB` lines the fake got.
fn pubs(r: &Rig) -> Vec<String> {
    r.auto
        .lines()
        .into_iter()
        .filter(|l| l.starts_with("AT+QMTPUB="))
        .collect()
}

/// The checks of item 1 (issue 15): a message that needs hex is taken, one
/// too long for hex is refused at once, whatever the modem holds now.
async fn judged_against_hex(r: &Rig) -> Ticket {
    let binary = r
        .link
        .try_publish("up/dev1", b"a\x1ab", QoS::AtLeastOnce, false)
        .expect("a payload that needs hex is taken when hex is configured");
    // 600 bytes: 1,200 hex digits, more than the modem takes (1,024).
    let long = r
        .link
        .try_publish("up/dev1", &[b'x'; 600], QoS::AtLeastOnce, false);
    assert_eq!(
        long.map(drop),
        Err(Error::InvalidArgument {
            field: bc26_mqtt::Field::Payload,
            problem: bc26_mqtt::Problem::TooLong
        })
    );
    let o = r
        .link
        .publish("up/dev1", &[b'y'; 600], QoS::AtMostOnce, false)
        .await;
    assert!(matches!(o, Outcome::Refused(_)), "{o:?}");
    binary
}

#[test]
fn before_the_first_connect_a_message_is_judged_against_the_configured_format() {
    let r = Rig::new("hexfirst", |c| c.send_format = DataFormat::Hex);
    // Not registered yet: the modem is still at its default, text.
    r.auto.stat.set(2);
    r.run(async {
        Timer::after(ms(30)).await;
        let binary = judged_against_hex(&r).await;
        r.auto.stat.set(1);
        r.rec.online(ms(800)).await;
        let o = with_timeout(ms(300), r.link.delivered(binary)).await;
        assert_eq!(
            o,
            Ok(Outcome::Acknowledged {
                msg_id: binary.msg_id
            }),
            "{}",
            r.explain()
        );
        assert_eq!(
            pubs(&r),
            [format!(
                "AT+QMTPUB=0,{},1,0,\"up/dev1\",\"611A62\"",
                binary.msg_id
            )]
        );
        let c = r.link.counters();
        assert_eq!((c.link_losses, c.refused), (0, 0), "{c:?}");
        assert_eq!(r.link.outbox().messages, 0);
    });
}

#[test]
fn while_the_modem_restarts_a_message_is_judged_against_the_configured_format() {
    let r = Rig::new("hexreboot", |c| c.send_format = DataFormat::Hex);
    r.run(async {
        r.rec.online(ms(500)).await;
        // The modem restarts (its data format is text again) and is not
        // registered for a while: the supervisor waits before it configures
        // hex again.
        r.auto.stat.set(2);
        r.auto.send(b"\r\nRDY\r\n");
        let reason = r.rec.offline(ms(300)).await;
        assert_eq!(reason, OfflineReason::ModemRebooted);
        r.auto
            .wait_lines(|l| l.iter().rev().take(2).any(|l| l == "AT+CEREG?"))
            .await;
        let binary = judged_against_hex(&r).await;
        r.auto.stat.set(1);
        r.rec.online(ms(800)).await;
        let o = with_timeout(ms(300), r.link.delivered(binary)).await;
        assert_eq!(
            o,
            Ok(Outcome::Acknowledged {
                msg_id: binary.msg_id
            }),
            "{}",
            r.explain()
        );
        let c = r.link.counters();
        assert_eq!((c.link_losses, c.refused), (1, 0), "{c:?}");
        assert_eq!(r.link.outbox().messages, 0);
    });
}

#[test]
fn a_message_the_modem_refuses_every_time_fails_typed_counted_and_the_link_stays_up() {
    let r = Rig::new("poison", |c| c.max_refusals = 3);
    r.auto.rule(|l| {
        if l.starts_with("AT+QMTPUB=") && l.ends_with("\"poison\"") {
            Answer::Send(b"\r\nERROR\r\n".to_vec())
        } else {
            Answer::Default
        }
    });
    r.run(async {
        r.rec.online(ms(500)).await;
        let poison = r.try_publish(b"poison", QoS::AtLeastOnce).await.unwrap();
        let mut good: Vec<Ticket> = Vec::new();
        for i in 0..6 {
            let qos = if i % 2 == 0 {
                QoS::AtMostOnce
            } else {
                QoS::ExactlyOnce
            };
            let p = format!("good {i}");
            good.push(r.try_publish(p.as_bytes(), qos).await.unwrap());
        }
        let o = with_timeout(ms(500), r.link.delivered(poison))
            .await
            .unwrap_or_else(|_| panic!("{}", r.explain()));
        assert_eq!(
            o,
            Outcome::Refused(Error::Modem(bc26_mqtt::ModemError::Error)),
            "{}",
            r.explain()
        );
        for t in good {
            let o = with_timeout(ms(300), r.link.delivered(t)).await.unwrap();
            assert!(o.is_delivered(), "{o:?}\n{}", r.explain());
        }
        // Three refusals, each followed by the check that the link is fine,
        // and nothing more.
        let l = r.auto.lines();
        let tries: Vec<usize> = (0..l.len())
            .filter(|&i| l[i].ends_with("\"poison\""))
            .collect();
        assert_eq!(tries.len(), 3, "{}", r.explain());
        for &i in &tries {
            assert!(
                l[i + 1..].iter().take(5).any(|l| l == "AT+QMTCONN?"),
                "{}",
                r.explain()
            );
        }
        let c = r.link.counters();
        assert_eq!((c.link_losses, c.refused, c.delivered), (0, 1, 6), "{c:?}");
        assert_eq!(r.rec.states().len(), 2, "{}", r.explain());
        assert_eq!(r.link.outbox().messages, 0);
        // The refused one leaves flash too.
        r.flash_empty().await;
    });
}

#[test]
fn a_refused_publish_with_the_client_not_connected_ends_the_link_and_counts_no_refusal() {
    let r = Rig::new("pubnotconn", |_| {});
    let gone = Rc::new(Cell::new(true));
    let g = gone.clone();
    r.auto.rule(move |l| {
        if l.starts_with("AT+QMTPUB=") && g.get() {
            Answer::Send(b"\r\nERROR\r\n".to_vec())
        } else if l == "AT+QMTCONN?" && g.get() {
            // The client lost its connection; no +QMTSTAT came.
            g.set(false);
            Answer::Send(b"\r\n+QMTCONN: 0,1\r\n\r\nOK\r\n".to_vec())
        } else {
            Answer::Default
        }
    });
    r.run(async {
        r.rec.online(ms(500)).await;
        let t = r
            .link
            .try_publish("up/dev1", b"m", QoS::AtLeastOnce, false)
            .unwrap();
        let reason = r.rec.offline(ms(300)).await;
        assert_eq!(reason, OfflineReason::NotConnected, "{}", r.explain());
        r.rec.online(ms(500)).await;
        let o = with_timeout(ms(300), r.link.delivered(t)).await.unwrap();
        assert_eq!(o, Outcome::Acknowledged { msg_id: t.msg_id });
        assert_eq!(r.link.counters().refused, 0);
    });
}

#[test]
fn a_modem_that_refuses_every_publish_ends_the_link_and_refuses_no_message() {
    let r = Rig::new("refuseall", |_| {});
    let refuse = Rc::new(Cell::new(true));
    let f = refuse.clone();
    r.auto.rule(move |l| {
        if l.starts_with("AT+QMTPUB=") && f.get() {
            Answer::Send(b"\r\nERROR\r\n".to_vec())
        } else {
            Answer::Default
        }
    });
    r.run(async {
        r.rec.online(ms(500)).await;
        let tickets: Vec<Ticket> = (0..3)
            .map(|i| {
                r.link
                    .try_publish(
                        "up/dev1",
                        format!("m{i}").as_bytes(),
                        QoS::AtLeastOnce,
                        false,
                    )
                    .unwrap()
            })
            .collect();
        let reason = r.rec.offline(ms(500)).await;
        assert_eq!(
            reason,
            OfflineReason::Failed(Error::Modem(bc26_mqtt::ModemError::Error)),
            "{}",
            r.explain()
        );
        refuse.set(false);
        r.rec.online(ms(500)).await;
        for t in tickets {
            let o = with_timeout(ms(300), r.link.delivered(t)).await.unwrap();
            assert_eq!(o, Outcome::Acknowledged { msg_id: t.msg_id });
        }
        assert_eq!(r.link.counters().refused, 0);
    });
}

/// The `Resetting` states recorded, in order.
fn resets<R: HardReset>(r: &Rig<R>) -> Vec<ResetKind> {
    r.rec
        .states()
        .iter()
        .filter_map(|s| match s {
            LinkState::Resetting { how } => Some(*how),
            _ => None,
        })
        .collect()
}

#[test]
fn a_modem_that_answers_only_at_is_restarted_with_at_qrst_and_comes_back() {
    let r = Rig::new("qrst", |c| c.reset_after = 2);
    // Half alive: `AT` gets its `OK`, nothing else gets an answer, until
    // the module restarts.
    let wedged = Rc::new(Cell::new(true));
    let w = wedged.clone();
    r.auto.rule(move |l| match l {
        "AT+QRST=1" => {
            w.set(false);
            Answer::Default
        }
        "AT" => Answer::Default,
        _ if w.get() => Answer::Nothing,
        _ => Answer::Default,
    });
    r.run(async {
        r.rec.online(ms(3000)).await;
        assert_eq!(resets(&r), [ResetKind::Software], "{}", r.explain());
        // Two attempts ended silent (ATE0 unanswered), then the reset.
        let states = r.rec.states();
        let at = states
            .iter()
            .position(|s| matches!(s, LinkState::Resetting { .. }))
            .unwrap();
        let silent = LinkState::Offline {
            reason: OfflineReason::ModemSilent,
        };
        assert_eq!(
            states[..at].iter().filter(|s| **s == silent).count(),
            2,
            "{}",
            r.explain()
        );
        assert_eq!(
            r.auto.lines().iter().filter(|l| *l == "AT+QRST=1").count(),
            1
        );
        let c = r.link.counters();
        assert_eq!((c.software_resets, c.hardware_resets), (1, 0));
        assert!(r.link.alive(ms(50)));
    });
}

#[test]
fn a_modem_that_never_answers_is_reset_by_the_board_after_at_qrst_and_comes_back() {
    let board = Rc::new(Cell::new(0u32));
    let b = board.clone();
    let r = Rig::with_reset(
        "escalate",
        |c| {
            c.reset_after = 2;
            // One `AT` (300 ms without an answer) per attempt.
            c.modem_deadline = ms(100);
        },
        move || {
            b.set(b.get() + 1);
            async {}
        },
    );
    r.auto.silent.set(true);
    r.run(async {
        let t0 = Instant::now();
        // Two silent attempts: AT+QRST=1, written although the modem did
        // not answer the driver's probe `AT` before it (a wedged modem may
        // still read commands). Two more: the board's reset.
        while board.get() == 0 {
            assert!(t0.elapsed() < ms(4000), "{}", r.explain());
            Timer::after(ms(5)).await;
        }
        let qrst = r.auto.lines().iter().filter(|l| *l == "AT+QRST=1").count();
        assert_eq!(qrst, 1, "{}", r.explain());
        // No progress since the start: a watchdog fed by `alive` would bite.
        assert!(!r.link.alive(ms(500)), "{:?}", r.link.progress());
        assert!(r.link.alive(t0.elapsed() + ms(100)));
        // The board's reset worked: the modem starts and answers.
        r.auto.silent.set(false);
        r.auto.send(b"\r\nRDY\r\n");
        r.rec.online(ms(1000)).await;
        assert!(r.link.alive(ms(50)));
        assert_eq!(
            resets(&r),
            [ResetKind::Software, ResetKind::Hardware],
            "{}",
            r.explain()
        );
        let states = r.rec.states();
        let silent_before = |how: ResetKind| {
            let at = states
                .iter()
                .position(|s| *s == LinkState::Resetting { how })
                .unwrap();
            states[..at]
                .iter()
                .filter(|s| {
                    **s == LinkState::Offline {
                        reason: OfflineReason::ModemSilent,
                    }
                })
                .count()
        };
        assert_eq!(silent_before(ResetKind::Software), 2, "{}", r.explain());
        assert_eq!(silent_before(ResetKind::Hardware), 4, "{}", r.explain());
        let c = r.link.counters();
        assert_eq!(
            (c.software_resets, c.hardware_resets, board.get()),
            (1, 1, 1)
        );
        assert_eq!(c.connects, 1);
    });
}

#[test]
fn without_a_board_reset_a_silent_modem_gets_at_qrst_again_every_reset_after_attempts() {
    let r = Rig::new("qrstagain", |c| {
        c.reset_after = 1;
        c.modem_deadline = ms(100);
    });
    r.auto.silent.set(true);
    r.run(async {
        r.rec
            .until(ms(3000), "a third reset", |_| resets(&r).len() >= 3)
            .await;
        assert_eq!(resets(&r)[..3], [ResetKind::Software; 3], "{}", r.explain());
        r.auto.silent.set(false);
        r.rec.online(ms(1500)).await;
        assert_eq!(r.link.counters().hardware_resets, 0);
    });
}

/// A task of its own inside a test: polls `fut` only when its own waker was
/// woken (as an executor polls a task), with a waker that is not the
/// parent's, and counts the polls.
struct OwnTask<F> {
    fut: std::pin::Pin<Box<F>>,
    flag: std::sync::Arc<Woken>,
    polls: Rc<Cell<u32>>,
}

struct Woken {
    set: std::sync::atomic::AtomicBool,
    parent: std::sync::Mutex<Option<std::task::Waker>>,
}

impl std::task::Wake for Woken {
    fn wake(self: std::sync::Arc<Self>) {
        self.set.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(w) = self.parent.lock().unwrap().as_ref() {
            w.wake_by_ref();
        }
    }
}

impl<F: Future> OwnTask<F> {
    fn new(fut: F, polls: Rc<Cell<u32>>) -> Self {
        OwnTask {
            fut: Box::pin(fut),
            flag: std::sync::Arc::new(Woken {
                set: std::sync::atomic::AtomicBool::new(true),
                parent: std::sync::Mutex::new(None),
            }),
            polls,
        }
    }
}

impl<F: Future> Future for OwnTask<F> {
    type Output = F::Output;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        *self.flag.parent.lock().unwrap() = Some(cx.waker().clone());
        if !self
            .flag
            .set
            .swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            return std::task::Poll::Pending;
        }
        self.polls.set(self.polls.get() + 1);
        let waker = std::task::Waker::from(self.flag.clone());
        let mut own = std::task::Context::from_waker(&waker);
        self.fut.as_mut().poll(&mut own)
    }
}

#[test]
fn sixteen_tasks_waiting_in_delivered_each_get_their_outcome_with_a_bounded_number_of_polls() {
    const N: usize = 16;
    let r = Rig::new("waiters", |_| {});
    // Registration comes only later: the 16 tasks wait while nothing happens.
    r.auto.stat.set(2);
    r.run(async {
        let tickets: Vec<Ticket> = (0..N)
            .map(|i| {
                r.link
                    .try_publish(
                        "up/dev1",
                        format!("m{i}").as_bytes(),
                        QoS::AtLeastOnce,
                        false,
                    )
                    .unwrap()
            })
            .collect();
        let polls = Rc::new(Cell::new(0u32));
        let tasks: [_; N] = std::array::from_fn(|i| {
            let link = r.link;
            let t = tickets[i];
            OwnTask::new(async move { link.delivered(t).await }, polls.clone())
        });
        let all = embassy_futures::join::join_array(tasks);
        let reg = async {
            Timer::after(ms(50)).await;
            // While nothing happened, the 16 waiting tasks woke each other
            // no more than once each.
            assert!(
                polls.get() <= 2 * N as u32,
                "{} polls while nothing happened",
                polls.get()
            );
            r.auto.stat.set(1);
        };
        let (outcomes, ()) = with_timeout(ms(2000), join(all, reg))
            .await
            .unwrap_or_else(|_| {
                panic!("not all delivered; {} polls\n{}", polls.get(), r.explain())
            });
        for (o, t) in outcomes.iter().zip(&tickets) {
            assert_eq!(*o, Outcome::Acknowledged { msg_id: t.msg_id });
        }
        // Each delivery wakes every waiter once at most: N deliveries, N
        // waiters, and a few polls more.
        let bound = (N * (N + 2)) as u32;
        assert!(
            polls.get() <= bound,
            "{} polls for {N} waiters (bound {bound})",
            polls.get()
        );
        eprintln!("{N} waiters: {} polls", polls.get());
    });
}

#[test]
fn a_supervisor_dropped_mid_publish_and_made_again_delivers_the_message_in_flight() {
    let (modem, runner, fake) = setup(fast_config());
    let auto = Auto::new();
    let published = Rc::new(Cell::new(0u32));
    let p = published.clone();
    auto.rule(move |l| {
        if l.starts_with("AT+QMTPUB=") {
            p.set(p.get() + 1);
            if p.get() == 1 {
                // Taken; its result has not come when the supervisor goes.
                return Answer::Send(b"\r\nOK\r\n".to_vec());
            }
        }
        Answer::Default
    });
    let mut state: SupervisorState<4096> = SupervisorState::new();
    let state = &mut state;
    block_on(std::time::Duration::from_secs(5), async {
        let body = async {
            let ticket = {
                let (link, sup) = supervisor::new(modem, &mut *state, config());
                let t = link
                    .try_publish("up/dev1", b"m", QoS::AtLeastOnce, false)
                    .unwrap();
                // Until the modem took the publish: then the supervisor (its
                // task) is dropped, in the middle of the publish.
                let taken = async {
                    while published.get() == 0 {
                        Timer::after(ms(1)).await;
                    }
                };
                embassy_futures::select::select(sup.run(), taken).await;
                assert_eq!(link.outcome(t), None, "still stored");
                t
            };
            let (link, sup) = supervisor::new(modem, &mut *state, config());
            let delivered = async {
                with_timeout(ms(3000), link.delivered(ticket))
                    .await
                    .unwrap_or_else(|_| panic!("never delivered:\n{}", auto.dump()))
            };
            let o = match embassy_futures::select::select(sup.run(), delivered).await {
                embassy_futures::select::Either::Second(o) => o,
                embassy_futures::select::Either::First(_) => unreachable!(),
            };
            assert_eq!(
                o,
                Outcome::Acknowledged {
                    msg_id: ticket.msg_id
                }
            );
            assert_eq!(published.get(), 2, "sent again once:\n{}", auto.dump());
            assert_eq!(link.outbox().messages, 0);
        };
        match embassy_futures::select::select3(runner.run(), auto.serve(fake), body).await {
            embassy_futures::select::Either3::Third(()) => {}
            _ => unreachable!(),
        }
    });
}

/// `+QMTPUB: 0,<msgID>,2` for every publish whose line ends with `tail`
/// (while `on` says so).
fn fail_publishes(r: &Rig, tail: &'static str, on: Rc<Cell<bool>>) {
    r.auto.rule(move |l| {
        if l.starts_with("AT+QMTPUB=") && l.ends_with(tail) && on.get() {
            let id = l.split(',').nth(1).unwrap();
            Answer::Send(format!("\r\nOK\r\n\r\n+QMTPUB: 0,{id},2\r\n").into_bytes())
        } else {
            Answer::Default
        }
    });
}

#[test]
fn a_message_the_modem_fails_every_time_ends_refused_after_max_refusals_blocks_nothing_and_ends_no_link(
) {
    // One message in flight: the ones behind it still go.
    let r = Rig::new("failed", |c| {
        c.max_refusals = 3;
        c.in_flight = 1;
    });
    let before = r.auto.count();
    fail_publishes(&r, "\"poison\"", Rc::new(Cell::new(true)));
    r.run(async {
        r.rec.online(ms(500)).await;
        let poison = r.try_publish(b"poison", QoS::AtLeastOnce).await.unwrap();
        let mut good: Vec<Ticket> = Vec::new();
        for i in 0..5 {
            let p = format!("good {i}");
            good.push(r.try_publish(p.as_bytes(), QoS::AtLeastOnce).await.unwrap());
        }
        let o = with_timeout(ms(1000), r.link.delivered(poison))
            .await
            .unwrap_or_else(|_| panic!("{}", r.explain()));
        assert_eq!(o, Outcome::Refused(Error::SendFailed), "{}", r.explain());
        for t in good {
            let o = with_timeout(ms(500), r.link.delivered(t)).await.unwrap();
            assert_eq!(
                o,
                Outcome::Acknowledged { msg_id: t.msg_id },
                "{}",
                r.explain()
            );
        }
        // Each failure: is the client connected, does the broker answer a
        // subscription; then the message again, or not at all.
        let l = r.auto.lines_from(before);
        let tries: Vec<usize> = (0..l.len())
            .filter(|&i| l[i].ends_with("\"poison\""))
            .collect();
        assert_eq!(tries.len(), 3, "{}", r.explain());
        for &i in &tries {
            assert_eq!(l[i + 1], "AT+QMTCONN?", "{}", r.explain());
            assert!(l[i + 2].starts_with("AT+QMTSUB=0,"), "{}", r.explain());
        }
        let c = r.link.counters();
        assert_eq!((c.link_losses, c.refused, c.delivered), (0, 1, 5), "{c:?}");
        assert_eq!(r.rec.states().len(), 2, "{}", r.explain());
        assert_eq!(r.link.outbox().messages, 0);
        // The refused one leaves flash too.
        r.flash_empty().await;
    });
}

#[test]
fn without_subscriptions_a_failure_on_a_quiet_link_counts_after_a_keepalive_period_and_the_message_goes_again(
) {
    // Keep-alive 1 s, one try of 1 s: the link proves itself after 2 s
    // and a poll interval with nothing sent.
    // No subscription to ask the broker with.
    let r = Rig::new("quiet", |c| {
        c.subscriptions = &[];
        c.keepalive_s = 1;
        c.pkt_timeout_s = 1;
        c.retry_times = 0;
    });
    let once = Rc::new(Cell::new(true));
    let o2 = once.clone();
    r.auto.rule(move |l| {
        if l.starts_with("AT+QMTPUB=") && o2.replace(false) {
            let id = l.split(',').nth(1).unwrap();
            Answer::Send(format!("\r\nOK\r\n\r\n+QMTPUB: 0,{id},2\r\n").into_bytes())
        } else {
            Answer::Default
        }
    });
    r.run(async {
        r.rec.online(ms(500)).await;
        let t = r
            .link
            .try_publish("up/dev1", b"m", QoS::AtLeastOnce, false)
            .unwrap();
        let sent = Instant::now();
        let o = with_timeout(ms(4000), r.link.delivered(t))
            .await
            .unwrap_or_else(|_| panic!("{}", r.explain()));
        assert_eq!(o, Outcome::Acknowledged { msg_id: t.msg_id });
        let took = sent.elapsed();
        assert!(took >= ms(2000), "not before the period: {took:?}");
        let c = r.link.counters();
        assert_eq!((c.link_losses, c.refused, c.resent), (0, 0, 1), "{c:?}");
    });
}

#[test]
fn without_subscriptions_two_messages_failed_with_nothing_acknowledged_between_end_the_link_and_count_nothing(
) {
    let r = Rig::new("twofail", |c| {
        c.in_flight = 1;
        c.subscriptions = &[];
    });
    let on = Rc::new(Cell::new(true));
    fail_publishes(&r, "", on.clone());
    r.run(async {
        r.rec.online(ms(500)).await;
        let a = r
            .link
            .try_publish("up/dev1", b"a", QoS::AtLeastOnce, false)
            .unwrap();
        let b = r
            .link
            .try_publish("up/dev1", b"b", QoS::ExactlyOnce, false)
            .unwrap();
        let reason = r.rec.offline(ms(500)).await;
        assert_eq!(
            reason,
            OfflineReason::Failed(Error::SendFailed),
            "{}",
            r.explain()
        );
        on.set(false);
        for t in [a, b] {
            let o = with_timeout(ms(800), r.link.delivered(t))
                .await
                .unwrap_or_else(|_| panic!("{}", r.explain()));
            assert_eq!(o, Outcome::Acknowledged { msg_id: t.msg_id });
        }
        let c = r.link.counters();
        assert_eq!((c.link_losses, c.refused), (1, 0), "{c:?}");
    });
}

#[test]
fn a_failed_publish_whose_broker_does_not_answer_the_subscription_ends_the_link_and_counts_nothing()
{
    let r = Rig::new("deadlink", |_| {});
    // The link is dead (a NAT forgot it): the publish and the subscription
    // that asks the broker both fail, once.
    let dead = Rc::new(Cell::new(true));
    let d = dead.clone();
    r.auto.rule(move |l| {
        let id = l.split(',').nth(1).unwrap_or("0").to_string();
        if l.starts_with("AT+QMTPUB=") && d.get() {
            Answer::Send(format!("\r\nOK\r\n\r\n+QMTPUB: 0,{id},2\r\n").into_bytes())
        } else if l.starts_with("AT+QMTSUB=") && d.get() && l.contains("cmd/dev1") {
            Answer::Send(format!("\r\nOK\r\n\r\n+QMTSUB: 0,{id},2\r\n").into_bytes())
        } else {
            Answer::Default
        }
    });
    r.run(async {
        // Online first (its subscription answered), then the link dies.
        dead.set(false);
        r.rec.online(ms(500)).await;
        dead.set(true);
        let t = r
            .link
            .try_publish("up/dev1", b"m", QoS::AtLeastOnce, false)
            .unwrap();
        let reason = r.rec.offline(ms(500)).await;
        assert_eq!(
            reason,
            OfflineReason::Failed(Error::SendFailed),
            "{}",
            r.explain()
        );
        dead.set(false);
        let o = with_timeout(ms(800), r.link.delivered(t))
            .await
            .unwrap_or_else(|_| panic!("{}", r.explain()));
        assert_eq!(o, Outcome::Acknowledged { msg_id: t.msg_id });
        let c = r.link.counters();
        assert_eq!((c.link_losses, c.refused, c.resent), (1, 0, 1), "{c:?}");
    });
}

#[test]
fn five_tasks_waiting_for_the_at_lock_are_polled_a_bounded_number_of_times() {
    const N: usize = 5;
    let (modem, runner, fake) = setup(fast_config());
    let auto = Auto::new();
    let first = Rc::new(Cell::new(true));
    let f = first.clone();
    // The first command gets no answer: the AT lock is held for the
    // command timeout (300 ms) while the others wait for it.
    auto.rule(move |l| {
        if l == "AT+QMTCONN?" && f.replace(false) {
            Answer::Nothing
        } else {
            Answer::Default
        }
    });
    let polls = Rc::new(Cell::new(0u32));
    block_on(std::time::Duration::from_secs(5), async {
        let tasks: [_; N] = std::array::from_fn(|_| {
            OwnTask::new(
                async move { modem.connection_states().await },
                polls.clone(),
            )
        });
        let body = async {
            let results = embassy_futures::join::join_array(tasks).await;
            let ok = results.iter().filter(|r| r.is_ok()).count();
            assert_eq!(ok, N - 1, "{results:?}\n{}", auto.dump());
            // Each task: its first poll, and one per release of the lock at
            // most (N releases), and its command's own steps.
            let bound = (N * (N + 4)) as u32;
            assert!(
                polls.get() <= bound,
                "{} polls (bound {bound})",
                polls.get()
            );
            eprintln!("{N} tasks on the AT lock: {} polls", polls.get());
        };
        match embassy_futures::select::select3(runner.run(), auto.serve(fake), body).await {
            embassy_futures::select::Either3::Third(()) => {}
            _ => unreachable!(),
        }
    });
}

/// Hands twelve QoS 1 messages `m0`..`m11` to the outbox, in that order.
async fn twelve(r: &Rig) -> Vec<Ticket> {
    let mut tickets = Vec::new();
    for i in 0..12 {
        let p = format!("m{i}");
        tickets.push(r.try_publish(p.as_bytes(), QoS::AtLeastOnce).await.unwrap());
    }
    tickets
}

/// The msgIDs of the `AT+QMTPUB` lines the fake got, in the order they came.
fn pub_ids(r: &Rig) -> Vec<u16> {
    pubs(r)
        .iter()
        .map(|l| l.split(',').nth(1).unwrap().parse().unwrap())
        .collect()
}

#[test]
fn a_queue_published_while_offline_leaves_in_publish_order_when_the_link_comes_back() {
    let r = Rig::new("order", |_| {});
    // Not registered: the link stays down while the messages are queued.
    r.auto.stat.set(2);
    r.run(async {
        let tickets = twelve(&r).await;
        r.auto.stat.set(1);
        r.rec.online(ms(500)).await;
        with_timeout(ms(1000), r.link.flush())
            .await
            .unwrap_or_else(|_| panic!("{}", r.explain()));
        let want: Vec<u16> = tickets.iter().map(|t| t.msg_id).collect();
        assert_eq!(pub_ids(&r), want, "{}", r.explain());
        r.flash_empty().await;
    });
}

#[test]
fn after_a_link_loss_with_four_in_flight_those_go_again_first_then_the_rest_in_publish_order() {
    let r = Rig::new("order-drop", |_| {});
    // The first four publishes are taken by the modem, their results never
    // come; then the link ends.
    let taken = Rc::new(Cell::new(0u32));
    let t = taken.clone();
    r.auto.rule(move |l| {
        if l.starts_with("AT+QMTPUB=") {
            t.set(t.get() + 1);
            if t.get() <= 4 {
                return Answer::Send(b"\r\nOK\r\n".to_vec());
            }
        }
        Answer::Default
    });
    r.run(async {
        r.rec.online(ms(500)).await;
        let tickets = twelve(&r).await;
        r.auto
            .wait_lines(|l| l.iter().filter(|l| l.starts_with("AT+QMTPUB=")).count() >= 4)
            .await;
        r.auto.send(b"\r\n+QMTSTAT: 0,1\r\n");
        r.rec.offline(ms(500)).await;
        r.rec.online(ms(500)).await;
        with_timeout(ms(1000), r.link.flush())
            .await
            .unwrap_or_else(|_| panic!("{}", r.explain()));
        let want: Vec<u16> = tickets.iter().map(|t| t.msg_id).collect();
        let got = pub_ids(&r);
        // The four in flight, then every message once, in publish order.
        assert_eq!(got[..4], want[..4], "{}", r.explain());
        assert_eq!(got[4..], want[..], "{}", r.explain());
        r.flash_empty().await;
    });
}
