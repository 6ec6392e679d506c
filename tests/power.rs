//! The module's power through the public API (issue 17, the driver's half):
//! a module that may be asleep is woken before each command (the first bytes
//! into its UART are lost), a command waits for the wake within
//! `Config::wake_timeout` or fails typed with nothing of it sent, the
//! network's grant is reported as it is, and every power URC reaches the
//! subscriptions through a burst of messages. On scripted fakes and on the
//! simulator's power model.

mod common;

use std::rc::Rc;

use bc26_mqtt::commands::{ActiveTime, PeriodicTau, PsmTimers, SleepMode};
use bc26_mqtt::{ClientId, Config, Error, Event, Events, Modem, PowerRequest, State};
use bc26_sim::model::PowerState;
use bc26_sim::{HostSide, NetworkPolicy, PowerConfig, PsmGrant, Sim, SimConfig, SimHandle};
use common::{fast_config, run, setup, with_runner, Fake};
use embassy_futures::join::join;
use embassy_futures::select::{select, Either};
use embassy_time::{with_timeout, Duration, Instant, Timer};

fn id(n: u8) -> ClientId {
    ClientId::new(n).unwrap()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// An event with its bytes copied (the harness's `own` knows no power event).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pe {
    Message(u32),
    Missed(u32),
    Psm(bool),
    Signalling(bool),
    Registration(u8, Option<PsmTimers>),
    Other(String),
}

fn own(e: Event<'_>) -> Pe {
    match e {
        Event::Message(m) => Pe::Message(m.msg_id),
        Event::Missed(n) => Pe::Missed(n),
        Event::Psm { entered } => Pe::Psm(entered),
        Event::Signalling { connected } => Pe::Signalling(connected),
        Event::Registration { stat, psm } => Pe::Registration(stat, psm),
        other => Pe::Other(format!("{other:?}")),
    }
}

fn try_next(events: &mut Events<'static>) -> Option<Pe> {
    let mut buf = [0u8; bc26_mqtt::MESSAGE_MAX];
    events.try_next(&mut buf).map(own)
}

async fn next(events: &mut Events<'static>) -> Pe {
    let mut buf = [0u8; bc26_mqtt::MESSAGE_MAX];
    own(events.next(&mut buf).await)
}

/// The wake-up timings of the fake tests.
fn wake_config() -> Config {
    fast_config()
        .wake_probe(ms(50))
        .wake_timeout(ms(400))
        .quiet_gap(ms(30))
}

const KEEPALIVE_Q: &[u8] = b"AT+QMTCFG=\"keepalive\",0\r";
const KEEPALIVE_A: &[u8] = b"\r\n+QMTCFG: \"keepalive\",120\r\n\r\nOK\r\n";

/// Sleep on, then `AT+QRELLOCK`: the driver must assume the module asleep.
async fn sleep_released(modem: Modem<'static>, fake: &mut Fake) {
    let req = PowerRequest::new().sleep(SleepMode::Light);
    let (r, _) = join(
        modem.set_power(req),
        fake.answer(b"AT+QSCLK=2\r", b"\r\nOK\r\n"),
    )
    .await;
    r.unwrap();
    assert!(!modem.power().may_be_asleep, "it just took a command");
    assert_eq!(modem.power().sleep, SleepMode::Light);
    let (r, _) = join(
        modem.release(),
        fake.answer(b"AT+QRELLOCK\r", b"\r\nOK\r\n"),
    )
    .await;
    r.unwrap();
    assert!(modem.power().may_be_asleep);
}

#[test]
fn a_command_issued_while_the_module_sleeps_runs_after_the_wake_up() {
    run(async {
        let (modem, runner, mut fake) = setup(wake_config());
        with_runner(runner, async {
            sleep_released(modem, &mut fake).await;
            let c = modem.client(id(0));
            let (r, _) = join(c.keepalive(), async {
                // The first `AT` wakes the UART and is lost: no answer.
                fake.expect(b"AT\r").await;
                let lost_at = Instant::now();
                fake.expect(b"AT\r").await;
                assert!(lost_at.elapsed() >= ms(40), "the next AT came too soon");
                fake.send(b"\r\nOK\r\n").await;
                // Only now the command itself.
                fake.answer(KEEPALIVE_Q, KEEPALIVE_A).await;
            })
            .await;
            assert_eq!(r, Ok(120));
            let s = modem.stats();
            assert_eq!((s.wakes, s.wake_probes_lost), (1, 1), "{s:?}");
            assert!(!modem.power().may_be_asleep);
            // Awake now: the next command goes out at once, no wake-up.
            let (r, _) = join(c.keepalive(), fake.answer(KEEPALIVE_Q, KEEPALIVE_A)).await;
            assert_eq!(r, Ok(120));
            assert_eq!(modem.stats().wakes, 1);
        })
        .await;
    });
}

#[test]
fn a_command_whose_wake_deadline_passes_fails_typed_with_nothing_of_it_sent() {
    run(async {
        let (modem, runner, mut fake) = setup(wake_config());
        with_runner(runner, async {
            sleep_released(modem, &mut fake).await;
            let c = modem.client(id(0));
            let start = Instant::now();
            // The module never answers.
            let r = c.keepalive().await;
            let took = start.elapsed();
            assert_eq!(r, Err(Error::WakeTimeout));
            assert!(
                took >= ms(400) && took < ms(1_000),
                "ended after {took:?}, not at the wake deadline"
            );
            let sent = fake.bytes_available();
            let text = String::from_utf8_lossy(&sent).to_string();
            assert!(
                !sent.is_empty() && text.split_terminator('\r').all(|l| l == "AT"),
                "only wake-up ATs may go out: {text:?}"
            );
            // One every wake_probe within the deadline.
            let probes = text.matches("AT\r").count();
            assert!((7..=10).contains(&probes), "{probes} wake-up ATs");
            // The client can go on: the next command wakes the module again.
            let (r, _) = join(c.keepalive(), async {
                fake.answer(b"AT\r", b"\r\nOK\r\n").await;
                fake.answer(KEEPALIVE_Q, KEEPALIVE_A).await;
            })
            .await;
            assert_eq!(r, Ok(120));
        })
        .await;
    });
}

#[test]
fn without_sleep_the_driver_sends_no_wake_up() {
    run(async {
        let (modem, runner, mut fake) = setup(wake_config());
        with_runner(runner, async {
            assert!(!modem.power().may_be_asleep);
            let c = modem.client(id(0));
            Timer::after(ms(100)).await;
            let (r, _) = join(c.keepalive(), fake.answer(KEEPALIVE_Q, KEEPALIVE_A)).await;
            assert_eq!(r, Ok(120));
            assert_eq!(modem.stats().wakes, 0);
        })
        .await;
    });
}

/// `+QMTRECV` of a 64-byte message.
fn urc64(i: usize) -> Vec<u8> {
    let topic = format!("burst/{i:04}");
    let payload = format!("{:0>width$}", i, width = 64 - topic.len());
    format!("\r\n+QMTRECV: 0,{i},\"{topic}\",\"{payload}\"\r\n").into_bytes()
}

#[test]
fn every_power_urc_reaches_every_subscription_through_a_burst_of_messages() {
    run(async {
        let (modem, runner, mut fake) = setup(wake_config());
        let mut a = modem.events().unwrap();
        let mut b = modem.events().unwrap();
        with_runner(runner, async {
            let (r, _) = join(modem.power_reports(true), async {
                fake.answer(b"AT+CSCON=1\r", b"\r\nOK\r\n").await;
                fake.answer(b"AT+QNBIOTEVENT=1,1\r", b"\r\nOK\r\n").await;
                fake.answer(b"AT+CEREG=4\r", b"\r\nOK\r\n").await;
            })
            .await;
            r.unwrap();
            // 100 messages (the store holds about 30), with power URCs among
            // them: more than the 8 notice places kept for link events.
            let mut burst = Vec::new();
            for i in 0..100 {
                burst.extend(urc64(i));
                match i % 10 {
                    1 => burst.extend_from_slice(b"\r\n+CSCON: 1\r\n"),
                    3 => burst.extend_from_slice(b"\r\n+QNBIOTEVENT: \"ENTER PSM\"\r\n"),
                    5 => burst.extend_from_slice(b"\r\n+QNBIOTEVENT: \"EXIT PSM\"\r\n"),
                    7 => burst.extend_from_slice(b"\r\n+CSCON: 0\r\n"),
                    _ => {}
                }
            }
            burst.extend_from_slice(
                b"\r\n+CEREG: 1,\"1A2D\",\"0CF5E9A1\",9,,,\"00000011\",\"00100001\"\r\n",
            );
            fake.send(&burst).await;
            let granted = PsmTimers {
                periodic_tau: PeriodicTau::from_code(0b001_00001),
                active_time: ActiveTime::from_code(0b000_00011),
            };
            for events in [&mut a, &mut b] {
                let mut power = Vec::new();
                let mut messages = 0;
                while let Some(e) = try_next(events) {
                    match e {
                        Pe::Message(_) | Pe::Missed(_) => messages += 1,
                        other => power.push(other),
                    }
                }
                assert!(messages > 0);
                // The latest of each kind, oldest first.
                assert_eq!(
                    power,
                    [
                        Pe::Psm(false),
                        Pe::Signalling(false),
                        Pe::Registration(1, Some(granted))
                    ]
                );
            }
            let s = modem.stats();
            assert!(s.messages_dropped > 0, "the burst must overflow the store");
            // 20 PSM and 20 CSCON lines, one of each kind read: 38 overwritten
            // for each of the two subscriptions.
            assert_eq!(s.power_events_overwritten, 76, "{s:?}");
            assert_eq!(modem.power().in_psm, Some(false));
            assert_eq!(modem.power().connected, Some(false));
            assert_eq!(modem.power().granted, Some(granted));
            // A waiting subscription is woken by a power URC alone.
            let (e, _) = join(next(&mut a), fake.send(b"\r\n+CSCON: 1\r\n")).await;
            assert_eq!(e, Pe::Signalling(true));
            assert_eq!(try_next(&mut b), Some(Pe::Signalling(true)));
        })
        .await;
    });
}

// ------------------------------------------------------------ on the simulator

type SimRunner = bc26_mqtt::Runner<'static, bc26_sim::SimReader, bc26_sim::SimWriter>;

/// A driver on a simulator whose module's sleep lock is `lock` long.
fn sim_driver(
    lock: Duration,
    tweak: impl FnOnce(&mut SimConfig),
) -> (Modem<'static>, SimRunner, SimHandle) {
    sim_driver_with(lock, tweak, |c| c)
}

/// Like [`sim_driver`], with changes to the driver's configuration.
fn sim_driver_with(
    lock: Duration,
    tweak: impl FnOnce(&mut SimConfig),
    driver: impl FnOnce(Config) -> Config,
) -> (Modem<'static>, SimRunner, SimHandle) {
    let mut cfg = SimConfig {
        power: PowerConfig {
            sleep_lock: std::time::Duration::from_millis(lock.as_millis()),
            rrc_setup: std::time::Duration::from_millis(100),
            ..PowerConfig::default()
        },
        ..SimConfig::default()
    };
    tweak(&mut cfg);
    let (handle, HostSide { reader, writer }) = Sim::start(cfg);
    let state: &'static mut State = Box::leak(Box::new(State::new()));
    let config = Config::new()
        .command_timeout(ms(1_000))
        .quiet_gap(ms(30))
        .sleep_after(lock - ms(100))
        .wake_probe(ms(100))
        .wake_timeout(ms(800));
    let (modem, runner) = bc26_mqtt::new(state, reader, writer, driver(config));
    (modem, runner, handle)
}

/// Waits (polling the simulator) until its module is in `state`.
async fn until_state(sim: &SimHandle, state: PowerState) {
    let end = Instant::now() + Duration::from_secs(5);
    while sim.power_state() != Some(state) {
        assert!(
            Instant::now() < end,
            "never reached {state:?}: {:?}",
            sim.power_state()
        );
        Timer::after(ms(20)).await;
    }
}

#[test]
fn a_sleeping_uart_loses_the_first_bytes_and_the_driver_recovers_with_no_failed_command() {
    run(async {
        let (modem, runner, sim) = sim_driver(ms(500), |_| {});
        with_runner(runner, async {
            modem
                .set_power(PowerRequest::new().sleep(SleepMode::Light))
                .await
                .unwrap();
            for round in 1..=3u64 {
                // Asleep once its sleep lock has run out.
                until_state(&sim, PowerState::LightSleepDrx).await;
                let p = modem.psm_request().await.expect("no failed command");
                assert!(!p.enabled);
                let c = sim.charge().unwrap().counters;
                assert_eq!(c.uart_wakes, round, "each command woke the UART once");
                // What was lost is a wake-up `AT` each time, never the command.
                assert_eq!(c.host_bytes_lost, 3 * round);
            }
            let took = String::from_utf8(sim.host_transcript()).unwrap();
            assert_eq!(took.matches("AT+CPSMS?\r").count(), 3, "{took:?}");
            let s = modem.stats();
            assert_eq!(s.wakes, 3, "{s:?}");
            assert!(s.wake_probes_lost >= 3, "{s:?}");
            assert_eq!(s.write_errors, 0);
        })
        .await;
    });
}

#[test]
fn a_module_in_deep_sleep_wakes_by_the_wake_pin_and_without_one_the_command_fails_typed() {
    run(async {
        let (modem, runner, sim) = sim_driver(ms(400), |_| {});
        let sim = Rc::new(sim);
        let pin_sim = sim.clone();
        let pulses = Rc::new(std::cell::Cell::new(0u32));
        let counted = pulses.clone();
        let pin_on = Rc::new(std::cell::Cell::new(false));
        let armed = pin_on.clone();
        let runner = runner.wake_pin(move || {
            if armed.get() {
                counted.set(counted.get() + 1);
                pin_sim.psm_eint();
            }
        });
        let mut events = modem.events().unwrap();
        let body = async {
            modem.power_reports(true).await.unwrap();
            let timers = PsmTimers {
                periodic_tau: PeriodicTau::from_secs(3_600).unwrap(),
                active_time: ActiveTime::from_secs(2).unwrap(),
            };
            modem
                .set_power(PowerRequest::new().psm(timers).sleep(SleepMode::Deep))
                .await
                .unwrap();
            // T3324 after the TAU's release: PSM; no link open: deep sleep.
            loop {
                let e = with_timeout(Duration::from_secs(5), next(&mut events))
                    .await
                    .expect("no ENTER PSM");
                if e == Pe::Psm(true) {
                    break;
                }
            }
            until_state(&sim, PowerState::DeepSleep).await;
            // The pin is not wired: the UART is dead, the wake deadline passes.
            assert_eq!(modem.psm_request().await, Err(Error::WakeTimeout));
            assert_eq!(sim.power_state(), Some(PowerState::DeepSleep));
            let took = String::from_utf8(sim.host_transcript()).unwrap();
            assert!(
                !took.contains("AT+CPSMS?"),
                "nothing of the command went out"
            );
            // Now it is: one pulse wakes it, and the command runs.
            pin_on.set(true);
            let p = modem.psm_request().await.expect("woken by the pin");
            assert!(p.enabled);
            assert!(pulses.get() >= 1);
            let c = sim.charge().unwrap().counters;
            assert_eq!(c.eint_wakes, 1);
            let s = modem.stats();
            assert_eq!(s.wakes, 1, "{s:?}");
        };
        // (The harness's `with_runner` takes a runner without a pin.)
        match select(runner.run(), body).await {
            Either::First(never) => never,
            Either::Second(()) => {}
        }
    });
}

#[test]
fn a_grant_shorter_than_the_request_is_honoured_and_reported() {
    run(async {
        // The network grants at most 10 min of T3412 and 2 s of T3324.
        let (modem, runner, sim) = sim_driver(ms(400), |c| {
            c.power.network = NetworkPolicy {
                psm: PsmGrant::Clamp {
                    periodic_tau: 0b000_00001,
                    active_time: 0b000_00001,
                },
                ..NetworkPolicy::default()
            };
        });
        let mut events = modem.events().unwrap();
        with_runner(runner, async {
            modem.power_reports(true).await.unwrap();
            let asked = PsmTimers {
                periodic_tau: PeriodicTau::from_secs(3_600).unwrap(),
                active_time: ActiveTime::from_secs(60).unwrap(),
            };
            let granted = PsmTimers {
                periodic_tau: PeriodicTau::from_code(0b000_00001),
                active_time: ActiveTime::from_code(0b000_00001),
            };
            let start = Instant::now();
            modem
                .set_power(PowerRequest::new().psm(asked))
                .await
                .unwrap();
            // Reported: the event, the status, the read.
            let mut seen_grant = None;
            let entered_at = loop {
                match with_timeout(Duration::from_secs(10), next(&mut events))
                    .await
                    .expect("no power event")
                {
                    Pe::Registration(1, psm) => seen_grant = psm,
                    Pe::Psm(true) => break start.elapsed(),
                    _ => {}
                }
            };
            assert_eq!(seen_grant, Some(granted));
            assert_eq!(modem.power().granted, Some(granted));
            assert_eq!(
                modem.registration_timers().await.unwrap().psm,
                Some(granted)
            );
            // What the module asked for stays what it asked for.
            let req = modem.psm_request().await.unwrap();
            assert_eq!(
                (req.periodic_tau, req.active_time),
                (Some(asked.periodic_tau), Some(asked.active_time))
            );
            // Honoured: PSM came after the granted 2 s of active time (and the
            // TAU's 0.1 s connection), not the requested minute.
            assert!(
                entered_at >= ms(2_000) && entered_at < ms(10_000),
                "ENTER PSM after {entered_at:?}"
            );
            assert_eq!(modem.power().in_psm, Some(true));
            drop(sim);
        })
        .await;
    });
}

#[test]
fn a_module_that_sleeps_from_start_up_is_woken_before_the_first_command_when_the_config_says_so() {
    run(async {
        let asleep_at_boot = |c: &mut SimConfig| c.power.qsclk_at_boot = 2;
        // Told: the first command is preceded by a wake-up, and succeeds.
        let (modem, runner, sim) =
            sim_driver_with(ms(500), asleep_at_boot, |c| c.module_sleeps(true));
        with_runner(runner, async {
            assert!(modem.power().may_be_asleep);
            modem.psm_request().await.expect("woken first");
            assert_eq!(modem.stats().wakes, 1);
            assert_eq!(sim.charge().unwrap().counters.uart_wakes, 1);
        })
        .await;
        // Not told: the first command goes into the sleeping UART, lost.
        let (modem, runner, sim) = sim_driver(ms(500), asleep_at_boot);
        with_runner(runner, async {
            assert!(!modem.power().may_be_asleep);
            assert!(matches!(modem.psm_request().await, Err(Error::Timeout(_))));
            assert_eq!(modem.stats().wakes, 0);
            let lost = sim.charge().unwrap().counters.host_bytes_lost;
            assert_eq!(lost, "AT+CPSMS?\r".len() as u64);
        })
        .await;
    });
}
