//! The supervisor's duty cycle (`Mode::DutyCycle`) against the BC26 simulator
//! and a real broker, watched by an independent MQTT client: a persistent
//! session's queued QoS 1 messages arrive in the next wake's receive window;
//! a planned sleep publishes no will and a real loss does; nothing goes on
//! the UART or the radio between wakes; every outbox message is delivered at
//! least once across sleeps, link losses and modem restarts.
//!
//! In-process rmqtt by default; against Mosquitto with
//! `.ci/with-mosquitto cargo test -p bc26-mqtt --test duty_cycle` (CI runs
//! it so: the persistent session across the sleep, through a real broker).
//!
//! Timings are scaled down: a period of 1.5 s and a receive window of
//! 300 ms (the other timings of `common::rig::sup_config`).

mod common;

use bc26_mqtt::commands::Will;
use bc26_mqtt::supervisor::{DutyCycle, LinkState, Mode, OfflineReason};
use bc26_mqtt::{LinkClosedReason, QoS};
use bc26_sim::broker::Watcher;
use common::rig::{leak, uniq, Dev, Opts};
use embassy_time::{Duration, Instant, Timer};

const S: std::time::Duration = std::time::Duration::from_secs(60);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn duty() -> Mode {
    Mode::DutyCycle(DutyCycle::new(ms(1500), ms(300)))
}

fn is_asleep(s: LinkState) -> bool {
    matches!(s, LinkState::Asleep { .. })
}

/// Waits for the next `Asleep`; returns the end of its period.
async fn asleep(d: &Dev) -> Instant {
    match d.until(secs(10), "Asleep", is_asleep).await.0 {
        LinkState::Asleep { until } => until,
        _ => unreachable!(),
    }
}

#[test]
fn queued_qos1_commands_reach_a_sleeping_device_in_its_next_receive_window() {
    let d = Dev::start(Opts::new("dc-queued").sup(|c| {
        // Asked for a clean session: the duty cycle still keeps the session.
        c.clean_session = true;
        c.mode = duty();
    }));
    d.scenario(S, async {
        d.online(secs(5)).await;
        let until = asleep(&d).await;
        // Published while the device sleeps: the broker queues them.
        let cmds: Vec<Vec<u8>> = (0..3).map(|k| format!("queued-{k}").into_bytes()).collect();
        for c in &cmds {
            d.watcher.publish(d.cmd, c);
        }
        Timer::after(ms(200)).await;
        assert!(is_asleep(d.link.state()), "{}", d.history());
        d.commands_arrive(secs(5), &cmds).await;
        // They came in the next wake, after the period ended (the broker
        // sends them after its CONNACK: while the supervisor subscribes, or
        // online).
        let s = d.link.state();
        assert!(
            matches!(s, LinkState::Connecting { .. } | LinkState::Online),
            "{s:?}:\n{}",
            d.history()
        );
        assert!(Instant::now() >= until, "{}", d.history());
        assert!(
            d.host_said("AT+QMTCFG=\"session\",0,0") >= 2,
            "clean session off at every wake"
        );
    });
}

#[test]
fn a_planned_sleep_publishes_no_will_and_a_real_loss_does() {
    let will: &'static str = leak(uniq("dc-will"));
    let d = Dev::start(Opts::new("dc-will").sup(move |c| {
        c.will = Some(Will::new(will, "device-gone", QoS::AtLeastOnce, false).unwrap());
        c.mode = duty();
    }));
    let w = Watcher::new(d.broker.get(), &uniq("w-dc-will"), &[will]);
    d.scenario(S, async {
        // Three wakes, each ended by a sleep.
        for k in 0..3 {
            d.online(secs(5)).await;
            d.hand(2, &format!("wake{k}")).await;
            asleep(&d).await;
        }
        assert!(d.host_said("AT+QMTDISC=0") >= 3, "{}", d.history());
        // The broker had time to publish a will, had it any reason to.
        Timer::after(ms(500)).await;
        assert!(w.payloads(will).is_empty(), "a will after a planned sleep");
        // A real loss in the middle of a wake: the will.
        d.online(secs(5)).await;
        d.sim.break_link(0);
        d.offline_for(
            secs(3),
            OfflineReason::LinkClosed(LinkClosedReason::PeerClosed),
        )
        .await;
        d.wait(secs(5), "the will at the watcher", || {
            w.payloads(will) == [b"device-gone".to_vec()]
        })
        .await;
        // And the cycle goes on.
        asleep(&d).await;
    });
}

#[test]
fn between_wakes_the_supervisor_sends_no_at_line_and_the_module_no_packet() {
    let d = Dev::start(Opts::new("dc-quiet").sup(|c| {
        c.mode = Mode::DutyCycle(DutyCycle::new(secs(3), ms(300)));
        // The always-online mode would check every 300 ms and ping every 1 s.
        c.keepalive_s = 1;
    }));
    d.scenario(S, async {
        for _ in 0..2 {
            let until = asleep(&d).await;
            // The last answer (to AT+QRELLOCK) is in before `Asleep`.
            Timer::after(ms(100)).await;
            let host = d.sim.host_transcript().len();
            let packets = d.sim.charge().expect("meter").counters.uplink_packets;
            Timer::at(until - ms(100)).await;
            assert!(is_asleep(d.link.state()), "{}", d.history());
            let more = &d.sim.host_transcript()[host..];
            assert!(
                more.is_empty(),
                "the host wrote while asleep: {:?}",
                String::from_utf8_lossy(more)
            );
            let after = d.sim.charge().expect("meter").counters.uplink_packets;
            assert_eq!(after, packets, "the module sent packets while asleep");
            assert!(
                until.saturating_duration_since(Instant::now()) <= ms(100),
                "slept the whole period"
            );
        }
        assert!(d.host_said("AT+QRELLOCK") >= 2, "the sleep lock released");
        assert_eq!(d.host_said("AT+QMTCONN?"), 0, "no health check");
    });
}

#[test]
fn every_message_is_delivered_across_sleeps_link_losses_and_reboots() {
    let d = Dev::start(Opts::new("dc-every").sup(|c| {
        c.mode = duty();
    }));
    d.scenario(S, async {
        d.online(secs(5)).await;
        d.hand(3, "first-wake").await;
        asleep(&d).await;
        // Handed while asleep: they wait for the next wake.
        d.hand(4, "asleep").await;
        assert_eq!(d.link.outbox().messages, 4);
        d.online(secs(5)).await;
        // A link loss in the middle of a wake, messages in flight.
        d.hand(5, "before-loss").await;
        d.sim.break_link(0);
        d.offline(secs(3)).await;
        d.hand(3, "after-loss").await;
        d.online(secs(5)).await;
        // A restart in the middle of a wake.
        d.hand(5, "before-reboot").await;
        d.sim.reboot();
        d.offline(secs(3)).await;
        d.online(secs(10)).await;
        assert!(d.counters().connects >= 4, "{:?}", d.counters());
    });
}

#[test]
fn an_application_wake_and_an_outbox_past_its_threshold_end_a_long_sleep() {
    let d = Dev::start(Opts::new("dc-wake").sup(|c| {
        c.mode = Mode::DutyCycle(DutyCycle::new(secs(600), secs(2)).wake_at(3));
    }));
    d.scenario(S, async {
        d.online(secs(5)).await;
        asleep(&d).await;
        d.hand(2, "below").await;
        Timer::after(ms(500)).await;
        assert!(is_asleep(d.link.state()), "woke below the threshold");
        d.hand(1, "at").await;
        d.online(secs(3)).await;
        d.flush(secs(5)).await;
        asleep(&d).await;
        // One message, below the threshold: the application asks.
        d.hand(1, "asked").await;
        Timer::after(ms(300)).await;
        assert!(is_asleep(d.link.state()), "woke below the threshold");
        let t0 = Instant::now();
        d.link.wake();
        d.flush(secs(5)).await;
        assert!(t0.elapsed() < secs(5), "{}", d.history());
        // Asked again while awake, nothing left: this wake serves it, and
        // the next sleep lasts.
        assert_eq!(d.link.state(), LinkState::Online, "{}", d.history());
        d.link.wake();
        asleep(&d).await;
        Timer::after(secs(1)).await;
        assert!(
            is_asleep(d.link.state()),
            "woke again for nothing:\n{}",
            d.history()
        );
        // The scenario's own checks need it online.
        d.link.wake();
    });
}
