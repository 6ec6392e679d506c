//! The application the boards run, against a fake BC26 on the host.

mod common;

use bc26_example_app::Status;
use common::{config, run, session_lines, Harness, ACK, COMMAND, STATUS, TELEMETRY};
use embassy_time::{Duration, Instant, Timer};

/// The lines from the first `AT` until the session is up.
fn startup_lines(ats: usize, cereg_polls: usize) -> Vec<&'static str> {
    let mut v = vec!["AT"; ats];
    v.push("ATE0");
    v.extend(vec!["AT+CEREG?"; cereg_polls]);
    v.extend(session_lines());
    v
}

fn connected(s: &common::Script) -> bool {
    s.published(STATUS).len() == 1
}

/// Waits until the session is up and its first telemetry is acknowledged.
async fn idle_session(fake: &common::FakeModem) {
    fake.wait_for("the first telemetry", |s| s.published(TELEMETRY).len() == 1)
        .await;
    Timer::after_millis(10).await;
}

/// `log` begins with `want` (the first telemetry may follow at once).
#[track_caller]
fn assert_begins(log: &[String], want: &[&str]) {
    assert!(log.len() >= want.len(), "{log:#?}");
    assert_eq!(&log[..want.len()], want);
}

#[test]
fn start_up_waits_for_the_modem_turns_echo_off_and_waits_for_registration() {
    run(async {
        let h = Harness::new();
        let fake = h.fake;
        let device = h.device;
        fake.set(|s| {
            s.silent_ats = 2; // still booting
            s.cereg.extend([0, 2, 2]); // not searching yet, searching twice
        });
        let started = Instant::now();
        h.run(config(), async {
            fake.wait_for("the session", connected).await;
            let log = fake.get(|s| s.log.clone());
            assert_begins(&log, &startup_lines(3, 4));
            // Two unanswered ATs, each waited for 300 ms, then retried.
            assert!(started.elapsed() >= Duration::from_millis(600));
            assert!(!fake.get(|s| s.echo), "echo still on");
            let status = device.borrow().status.clone();
            assert_eq!(
                status,
                [
                    Status::Syncing,
                    Status::Registering,
                    Status::Connecting,
                    Status::Connected
                ]
            );
        })
        .await;
    });
}

#[test]
fn a_full_connect_configures_opens_connects_subscribes_and_says_online() {
    run(async {
        let h = Harness::new();
        let fake = h.fake;
        h.run(config(), async {
            fake.wait_for("the first telemetry", |s| s.published(TELEMETRY).len() == 1)
                .await;
            let log = fake.get(|s| s.log.clone());
            let mut want = startup_lines(1, 1);
            want.push("AT+QMTPUB=0,3,1,0,\"dev/telemetry\"");
            assert_begins(&log, &want);
            let publishes = fake.get(|s| s.publishes.clone());
            assert_eq!(publishes[0], (STATUS.into(), "online".into(), 1, true));
            assert_eq!((publishes[1].2, publishes[1].3), (1, false));
            assert!(fake.get(|s| s.connected));
        })
        .await;
    });
}

#[test]
fn telemetry_goes_out_at_once_and_then_every_period() {
    run(async {
        let h = Harness::new();
        let fake = h.fake;
        let mut cfg = config();
        cfg.timing.telemetry_period = Duration::from_millis(50);
        h.run(cfg, async {
            fake.wait_for("three telemetry messages", |s| {
                s.published(TELEMETRY).len() == 3
            })
            .await;
            let t = fake.get(|s| s.published(TELEMETRY));
            for (i, payload) in t.iter().enumerate() {
                let seq = format!("{{\"seq\":{},", i + 1);
                assert!(payload.starts_with(&seq), "{payload}");
                assert!(payload.contains("\"led\":false"), "{payload}");
                assert!(
                    payload.ends_with("\"reconnects\":0,\"commands\":0}"),
                    "{payload}"
                );
            }
            // JSON has quotes: the driver sends it in data mode, QoS 1, msgIDs 3, 4, 5.
            let log = fake.get(|s| s.log.clone());
            let n = session_lines().len() + 3;
            assert_eq!(log[n], "AT+QMTPUB=0,3,1,0,\"dev/telemetry\"");
            assert_eq!(log[n + 1], format!("> {}", t[0]));
            assert_eq!(log[n + 2], "AT+QMTPUB=0,4,1,0,\"dev/telemetry\"");
            // About one period apart.
            let times = fake.get(|s| s.times.clone());
            let gap = times[n + 2] - times[n];
            assert!(gap >= Duration::from_millis(45), "{gap:?}");
            assert!(gap < Duration::from_millis(500), "{gap:?}");
        })
        .await;
    });
}

#[test]
fn received_commands_switch_the_led_and_are_answered() {
    run(async {
        let h = Harness::new();
        let fake = h.fake;
        let device = h.device;
        h.run(config(), async {
            fake.wait_for("the session", connected).await;
            // The first telemetry goes out right after connecting.
            fake.wait_for("telemetry", |s| s.published(TELEMETRY).len() == 1)
                .await;
            fake.message(1, COMMAND, "led on");
            fake.wait_for("an ack", |s| s.published(ACK).len() == 1)
                .await;
            assert_eq!(device.borrow().led.last(), Some(&true));
            // Two at once fit the driver's default event queue (EVENTS = 2).
            fake.message(2, COMMAND, "ping");
            fake.message(3, "other/topic", "led off");
            fake.wait_for("two acks", |s| s.published(ACK).len() == 2)
                .await;
            fake.message(4, COMMAND, "period 0");
            fake.wait_for("three acks", |s| s.published(ACK).len() == 3)
                .await;
            fake.message(5, COMMAND, "led toggle");
            fake.message(6, COMMAND, "report");
            fake.wait_for("five acks", |s| s.published(ACK).len() == 5)
                .await;
            fake.wait_for("the report", |s| s.published(TELEMETRY).len() == 2)
                .await;
            assert_eq!(
                fake.get(|s| s.published(ACK)),
                [
                    "ok led on",
                    "pong",
                    "error: bad argument",
                    "ok led off",
                    "ok report"
                ]
            );
            // The message on another topic was not taken as a command.
            assert_eq!(device.borrow().led.last(), Some(&false));
            let report = fake.get(|s| s.published(TELEMETRY)[1].clone());
            assert!(report.starts_with("{\"seq\":2,"), "{report}");
            assert!(report.contains("\"led\":false"), "{report}");
            assert!(report.ends_with("\"commands\":5}"), "{report}");
            // Acks go inline (no quotes in them), QoS 1, not retained.
            let acks = fake.get(|s| {
                s.publishes
                    .iter()
                    .filter(|p| p.0 == ACK)
                    .all(|p| p.2 == 1 && !p.3)
            });
            assert!(acks);
        })
        .await;
    });
}

#[test]
fn the_period_command_changes_the_telemetry_period() {
    run(async {
        let h = Harness::new();
        let fake = h.fake;
        h.run(config(), async {
            fake.wait_for("telemetry", |s| s.published(TELEMETRY).len() == 1)
                .await;
            fake.message(1, COMMAND, "period 1");
            fake.wait_for("an ack", |s| s.published(ACK).len() == 1)
                .await;
            assert_eq!(fake.get(|s| s.published(ACK)), ["ok period 1"]);
            let acked = Instant::now();
            fake.wait_for("telemetry a second later", |s| {
                s.published(TELEMETRY).len() == 2
            })
            .await;
            let gap = acked.elapsed();
            assert!(gap >= Duration::from_millis(900), "{gap:?}");
            let t = fake.get(|s| s.published(TELEMETRY));
            assert!(t[1].contains("\"period_s\":1,"), "{}", t[1]);
        })
        .await;
    });
}

#[test]
fn after_qmtstat_it_backs_off_reopens_reconnects_and_resubscribes() {
    run(async {
        let h = Harness::new();
        let fake = h.fake;
        let device = h.device;
        h.run(config(), async {
            idle_session(fake).await;
            let before = fake.get(|s| s.log.len());
            let closed_at = Instant::now();
            fake.link_closed(1);
            fake.wait_for("a second session", |s| s.published(STATUS).len() == 2)
                .await;
            let log = fake.get(|s| s.log[before..].to_vec());
            let mut want = vec!["AT+QMTCONN?", "AT+CEREG?"];
            want.extend(session_lines());
            // msgIDs go on (3 was the first telemetry).
            want[8] = "AT+QMTSUB=0,4,\"dev/cmd\",1";
            want[9] = "AT+QMTPUB=0,5,1,1,\"dev/status\",\"online\"";
            assert_begins(&log, &want);
            // The open waited for the back-off (40 ms).
            let i = fake.get(|s| s.log.iter().rposition(|l| l.starts_with("AT+QMTOPEN")));
            let opened_at = fake.get(|s| s.times[i.unwrap()]);
            assert!(opened_at - closed_at >= Duration::from_millis(40));
            assert!(fake.get(|s| s.connected));
            let status = device.borrow().status.clone();
            assert_eq!(
                &status[status.len() - 4..],
                [
                    Status::BackingOff,
                    Status::Registering,
                    Status::Connecting,
                    Status::Connected
                ]
            );
            // Commands work in the new session.
            fake.message(7, COMMAND, "ping");
            fake.wait_for("an ack", |s| s.published(ACK).len() == 1)
                .await;
        })
        .await;
    });
}

#[test]
fn the_back_off_doubles_while_the_broker_stays_away_and_resets_after_a_session() {
    run(async {
        let h = Harness::new();
        let fake = h.fake;
        let mut cfg = config();
        cfg.timing.backoff_max = Duration::from_millis(200);
        h.run(cfg, async {
            idle_session(fake).await;
            // The next three opens fail (network), the fourth works.
            fake.set(|s| s.open_results.extend([-1, -1, -1]));
            fake.link_closed(1);
            fake.wait_for("a second session", |s| s.published(STATUS).len() == 2)
                .await;
            let (log, times) = fake.get(|s| (s.log.clone(), s.times.clone()));
            let opens: Vec<Instant> = log
                .iter()
                .zip(&times)
                .filter(|(l, _)| l.starts_with("AT+QMTOPEN"))
                .map(|(_, t)| *t)
                .collect();
            assert_eq!(opens.len(), 5);
            let gaps: Vec<Duration> = opens.windows(2).map(|w| w[1] - w[0]).collect();
            // Back-offs 40 (before the second open), 80, 160, then 200 (the
            // maximum) instead of 320, plus the commands between.
            assert!(gaps[1] >= Duration::from_millis(80), "{gaps:?}");
            assert!(gaps[2] >= Duration::from_millis(160), "{gaps:?}");
            assert!(gaps[3] >= Duration::from_millis(200), "{gaps:?}");
            assert!(gaps[3] < Duration::from_millis(300), "{gaps:?}");
            // Reset once the session is up: the next loss waits 40 ms, not 200.
            let t0 = Instant::now();
            fake.link_closed(7);
            fake.wait_for("a third session", |s| s.published(STATUS).len() == 3)
                .await;
            let t = t0.elapsed();
            assert!(t >= Duration::from_millis(40), "{t:?}");
            assert!(t < Duration::from_millis(150), "{t:?}");
        })
        .await;
    });
}

#[test]
fn identifier_occupied_after_an_mcu_reset_closes_and_reopens() {
    run(async {
        let h = Harness::new();
        let fake = h.fake;
        h.run(config(), async {
            // The modem kept client 0 open across the MCU's reset.
            fake.set(|s| {
                s.echo = false;
                s.open = true;
                s.connected = true;
                s.open_results.push_back(2);
            });
            fake.wait_for("the session", connected).await;
            let log = fake.get(|s| s.log.clone());
            let s = session_lines();
            let mut want = vec!["AT", "ATE0", "AT+CEREG?"];
            want.extend(&s[..5]); // configure, open -> +QMTOPEN: 0,2
            want.push("AT+QMTCLOSE=0");
            want.extend(&s); // configure again, open, connect, ...
            assert_begins(&log, &want);
        })
        .await;
    });
}

#[test]
fn a_late_qmtstat_of_a_link_that_is_still_connected_is_ignored() {
    run(async {
        let h = Harness::new();
        let fake = h.fake;
        h.run(config(), async {
            fake.wait_for("telemetry", |s| s.published(TELEMETRY).len() == 1)
                .await;
            Timer::after_millis(10).await;
            // +QMTSTAT while the modem still reports the client connected.
            fake.urc(b"\r\n+QMTSTAT: 0,5\r\n");
            fake.wait_for("the check", |s| s.count("AT+QMTCONN?") == 1)
                .await;
            Timer::after_millis(60).await;
            assert_eq!(fake.get(|s| s.count("AT+QMTOPEN")), 1);
            fake.message(1, COMMAND, "ping");
            fake.wait_for("an ack", |s| s.published(ACK).len() == 1)
                .await;
            // A +QMTSTAT of another client is none of its business.
            fake.urc(b"\r\n+QMTSTAT: 3,1\r\n");
            Timer::after_millis(20).await;
            assert_eq!(fake.get(|s| s.count("AT+QMTCONN?")), 1);
            assert_eq!(fake.get(|s| s.count("AT+QMTOPEN")), 1);
        })
        .await;
    });
}

#[test]
fn a_late_qmtstat_right_after_connecting_does_not_end_the_session() {
    run(async {
        let h = Harness::new();
        let fake = h.fake;
        h.run(config(), async {
            fake.wait_for("the session", connected).await;
            // Right behind the status publish comes the first telemetry: the
            // +QMTSTAT lands before it or while it waits for its +QMTPUB (and
            // ends it); either way the modem says the client is connected.
            fake.urc(b"\r\n+QMTSTAT: 0,5\r\n");
            fake.wait_for("the check", |s| s.count("AT+QMTCONN?") >= 1)
                .await;
            Timer::after_millis(60).await;
            assert_eq!(fake.get(|s| s.count("AT+QMTOPEN")), 1);
            fake.message(1, COMMAND, "report");
            fake.wait_for("an ack", |s| s.published(ACK).len() == 1)
                .await;
        })
        .await;
    });
}

#[test]
fn a_failed_telemetry_publish_ends_the_session_and_it_recovers() {
    run(async {
        let h = Harness::new();
        let fake = h.fake;
        let mut cfg = config();
        cfg.timing.telemetry_period = Duration::from_millis(30);
        h.run(cfg, async {
            fake.wait_for("telemetry", |s| s.published(TELEMETRY).len() == 1)
                .await;
            // The modem restarts on its own and says so only with RDY: echo
            // on again, nothing open, no +QMTSTAT.
            fake.set(|s| {
                s.open = false;
                s.connected = false;
                s.echo = true;
            });
            fake.urc(b"\r\nRDY\r\n");
            fake.wait_for("a second session", |s| s.published(STATUS).len() == 2)
                .await;
            let log = fake.get(|s| s.log.clone());
            // The publish is refused (ERROR in the fake: not connected); the
            // application closes, backs off and opens again.
            assert!(log.iter().any(|l| l == "AT+QMTCLOSE=0"), "{log:#?}");
            assert_eq!(fake.get(|s| s.count("AT+QMTOPEN")), 2);
        })
        .await;
    });
}

#[test]
fn no_registration_within_the_deadline_starts_over_from_at() {
    run(async {
        let h = Harness::new();
        let fake = h.fake;
        h.run(config(), async {
            fake.set(|s| s.registered = 2);
            // 100 ms deadline, 5 ms polls: about 20 polls, then back off and sync again.
            fake.wait_for("a second AT", |s| {
                s.log.iter().filter(|l| *l == "AT").count() == 2
            })
            .await;
            let polls = fake.get(|s| s.count("AT+CEREG?"));
            assert!((5..=25).contains(&polls), "{polls}");
            assert_eq!(fake.get(|s| s.count("AT+QMTOPEN")), 0);
            fake.set(|s| s.registered = 5); // roaming will do
            fake.wait_for("the session", connected).await;
        })
        .await;
    });
}

#[test]
fn a_modem_that_stops_answering_is_synced_again_from_at() {
    run(async {
        let h = Harness::new();
        let fake = h.fake;
        let mut cfg = config();
        cfg.timing.telemetry_period = Duration::from_millis(30);
        h.run(cfg, async {
            fake.wait_for("telemetry", |s| s.published(TELEMETRY).len() == 1)
                .await;
            fake.set(|s| {
                s.mute = true;
                s.open = false;
                s.connected = false;
                s.echo = true;
            });
            // The next publish times out (no OK within 300 ms): back to AT.
            fake.wait_for("two ATs", |s| {
                s.log.iter().filter(|l| *l == "AT").count() == 3
            })
            .await;
            let before = fake.get(|s| s.log.len());
            fake.set(|s| s.mute = false);
            fake.wait_for("a second session", |s| s.published(STATUS).len() == 2)
                .await;
            let log = fake.get(|s| s.log[before..].to_vec());
            let mut want = vec!["AT", "ATE0", "AT+CEREG?"];
            want.extend(session_lines());
            assert_eq!(&log[..3], &want[..3], "{log:#?}");
            assert!(!log.iter().any(|l| l == "AT+QMTCLOSE=0"), "{log:#?}");
        })
        .await;
    });
}
