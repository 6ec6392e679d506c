//! The application the boards run, against a fake BC26 on the host. The
//! supervisor's own recovery is tested in the driver (`tests/supervisor*.rs`);
//! these tests show what the application adds on top of it.

mod common;

use bc26_example_app::Status;
use common::{config, link_lines, run, Harness, ACK, COMMAND, STATUS, TELEMETRY};
use embassy_time::{Duration, Instant, Timer};

/// The lines from the first `AT` until the link is up.
fn startup_lines(ats: usize, cereg_polls: usize) -> Vec<&'static str> {
    let mut v = vec!["AT"; ats];
    v.push("ATE0");
    v.extend(vec!["AT+CEREG?"; cereg_polls]);
    v.extend(link_lines());
    v
}

fn online(s: &common::Script) -> bool {
    s.published(STATUS).len() == 1
}

/// `log` begins with `want` (a subscription's msgID may be any).
#[track_caller]
fn assert_begins(log: &[String], want: &[&str]) {
    assert!(log.len() >= want.len(), "{log:#?}");
    for (got, want) in log.iter().zip(want) {
        if want.starts_with("AT+QMTSUB=0,") {
            let (g, w) = (got.splitn(3, ',').nth(2), want.splitn(3, ',').nth(2));
            assert!(got.starts_with("AT+QMTSUB=0,") && g == w, "{got} vs {want}");
        } else {
            assert_eq!(got, want, "{log:#?}");
        }
    }
}

/// The `AT`s at the start of `log`: the ones that went unanswered, and
/// after each timeout the driver's re-synchronisation (a bare `AT` too).
fn leading_ats(log: &[String]) -> usize {
    log.iter().take_while(|l| *l == "AT").count()
}

#[test]
fn start_up_waits_for_the_modem_and_registration_then_says_online() {
    run(async {
        let h = Harness::new();
        let fake = h.fake;
        let device = h.device;
        fake.set(|s| {
            s.silent_ats = 2; // still booting
            s.cereg.extend([0, 2, 2]); // not searching yet, searching twice
        });
        h.run(config(), async {
            fake.wait_for("online", online).await;
            let log = fake.get(|s| s.log.clone());
            let ats = leading_ats(&log);
            assert!(ats >= 3, "{log:#?}");
            assert_begins(&log[ats - 1..], &startup_lines(1, 4));
            assert!(!fake.get(|s| s.echo), "echo still on");
            assert!(fake.get(|s| s.recv_hex), "text reception");
            assert_eq!(
                fake.get(|s| s.publishes[0].clone()),
                (STATUS.into(), "online".into(), 1, true)
            );
            let status = device.borrow().status.clone();
            assert_eq!(status, [Status::Connecting, Status::Connected]);
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
            // JSON has quotes: data mode, QoS 1; msgIDs follow the
            // subscription's (1) and the online message's (2).
            let log = fake.get(|s| s.log.clone());
            let i = log
                .iter()
                .position(|l| l.starts_with("AT+QMTPUB=0,3,1,0,\"dev/telemetry\""))
                .expect("the first telemetry line");
            assert_eq!(log[i + 1], format!("> {}", t[0]));
            // About one period apart.
            let times = fake.get(|s| s.times.clone());
            let j = log
                .iter()
                .position(|l| l.starts_with("AT+QMTPUB=0,4,1,0,\"dev/telemetry\""))
                .unwrap();
            let gap = times[j] - times[i];
            assert!(gap >= Duration::from_millis(40), "{gap:?}");
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
            fake.wait_for("telemetry", |s| s.published(TELEMETRY).len() == 1)
                .await;
            fake.message(1, COMMAND, "led on");
            fake.wait_for("an ack", |s| s.published(ACK).len() == 1)
                .await;
            assert_eq!(device.borrow().led.last(), Some(&true));
            // A burst: the driver keeps them all for the application.
            fake.message(2, COMMAND, "ping");
            fake.message(3, "other/topic", "led off");
            fake.message(4, COMMAND, "period 0");
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
            // The message on another topic never reached the application: the
            // supervisor's filters dropped it.
            assert_eq!(device.borrow().led.last(), Some(&false));
            let report = fake.get(|s| s.published(TELEMETRY)[1].clone());
            assert!(report.starts_with("{\"seq\":2,"), "{report}");
            assert!(report.ends_with("\"commands\":5}"), "{report}");
            let acks_ok = fake.get(|s| {
                s.publishes
                    .iter()
                    .filter(|p| p.0 == ACK)
                    .all(|p| p.2 == 1 && !p.3)
            });
            assert!(acks_ok, "acks go at QoS 1, not retained");
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
fn after_a_link_loss_it_comes_back_subscribed_says_online_and_counts_the_reconnect() {
    run(async {
        let h = Harness::new();
        let fake = h.fake;
        let device = h.device;
        let mut cfg = config();
        cfg.timing.telemetry_period = Duration::from_millis(60);
        h.run(cfg, async {
            fake.wait_for("telemetry", |s| s.published(TELEMETRY).len() == 1)
                .await;
            let closed_at = Instant::now();
            fake.link_closed(1);
            fake.wait_for("online again", |s| s.published(STATUS).len() == 2)
                .await;
            // Subscribed again, after the back-off (40 ms at least).
            let i = fake.get(|s| s.log.iter().rposition(|l| l.starts_with("AT+QMTSUB=")));
            let subscribed_at = fake.get(|s| s.times[i.unwrap()]);
            assert!(subscribed_at - closed_at >= Duration::from_millis(20));
            fake.message(9, COMMAND, "ping");
            fake.wait_for("pong", |s| s.published(ACK) == ["pong"])
                .await;
            fake.wait_for("telemetry that counts the reconnect", |s| {
                s.published(TELEMETRY)
                    .iter()
                    .any(|t| t.contains("\"reconnects\":1"))
            })
            .await;
            let status = device.borrow().status.clone();
            assert_eq!(
                status,
                [
                    Status::Connecting,
                    Status::Connected,
                    Status::Offline,
                    Status::BackingOff,
                    Status::Connecting,
                    Status::Connected
                ]
            );
        })
        .await;
    });
}

#[test]
fn telemetry_produced_while_the_link_is_down_is_delivered_after_it_comes_back() {
    run(async {
        let h = Harness::new();
        let fake = h.fake;
        let mut cfg = config();
        cfg.timing.telemetry_period = Duration::from_millis(30);
        cfg.timing.backoff_min = Duration::from_millis(150);
        cfg.timing.backoff_max = Duration::from_millis(150);
        h.run(cfg, async {
            fake.wait_for("telemetry", |s| s.published(TELEMETRY).len() == 2)
                .await;
            // The broker goes away: acknowledgements stop coming, the link
            // ends, the modem refuses publishes while it is down.
            fake.link_closed(1);
            Timer::after_millis(120).await;
            fake.wait_for("online again", |s| s.published(STATUS).len() == 2)
                .await;
            fake.wait_for("a few more", |s| s.published(TELEMETRY).len() >= 8)
                .await;
            // Every sequence number arrived, in order, none lost.
            let seqs: Vec<u32> = fake.get(|s| {
                s.published(TELEMETRY)
                    .iter()
                    .map(|t| t[7..t.find(',').unwrap()].parse().unwrap())
                    .collect()
            });
            let mut unique = seqs.clone();
            unique.dedup();
            assert_eq!(
                unique,
                (1..=unique.len() as u32).collect::<Vec<_>>(),
                "{seqs:?}"
            );
        })
        .await;
    });
}

#[test]
fn the_client_still_open_after_an_mcu_reset_is_closed_and_opened_again() {
    run(async {
        let h = Harness::new();
        let fake = h.fake;
        // The modem kept the client open: +QMTOPEN: 0,2.
        fake.set(|s| s.open = true);
        h.run(config(), async {
            fake.wait_for("online", online).await;
            let log = fake.get(|s| s.log.clone());
            let opens: Vec<&String> = log
                .iter()
                .filter(|l| l.starts_with("AT+QMTOPEN") || l.starts_with("AT+QMTCLOSE"))
                .collect();
            assert_eq!(
                opens,
                [
                    "AT+QMTOPEN=0,\"broker.example\",1883",
                    "AT+QMTCLOSE=0",
                    "AT+QMTOPEN=0,\"broker.example\",1883"
                ]
            );
        })
        .await;
    });
}

#[test]
fn a_modem_that_restarts_is_configured_again_from_the_start() {
    run(async {
        let h = Harness::new();
        let fake = h.fake;
        h.run(config(), async {
            fake.wait_for("online", online).await;
            // The first telemetry goes out right after the link is up; let it
            // finish, so the modem restarts with nothing on the wire and every
            // line after `before` is the driver's answer to the restart.
            fake.wait_for("first telemetry", |s| s.published(TELEMETRY).len() == 1)
                .await;
            let before = fake.get(|s| s.log.len());
            fake.reboot();
            fake.wait_for("online again", |s| s.published(STATUS).len() == 2)
                .await;
            let log = fake.get(|s| s.log[before..].to_vec());
            // Echo off again, hex reception again, everything configured again.
            assert_begins(&log, &startup_lines(1, 1));
        })
        .await;
    });
}
