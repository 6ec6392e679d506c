//! The supervisor against the BC26 simulator and a real broker, watched by an
//! independent MQTT client: each test injects a fault and asserts the states
//! the link went through (seen through `Link::changed`), that it came online
//! again within a bound, and then (in `Dev::scenario`) that it works again: a
//! command published by the watcher reaches the device (its subscription was
//! made again) and every QoS 1 message handed to the outbox reached the
//! watcher at least once (duplicates are counted and printed).
//!
//! In-process rmqtt by default; against Mosquitto with
//! `.ci/with-mosquitto cargo test -p bc26-mqtt --test supervisor` (the
//! broker-restart tests use the second, restartable Mosquitto, lent to one
//! test at a time).
//!
//! Timings are scaled down (see `common::rig::sup_config`): a back-off of
//! 20-300 ms, a health check every 300 ms, `pkt_timeout` 2 s with one
//! retransmission, commands answered within 600 ms.

mod common;

use bc26_mqtt::commands::Will;
use bc26_mqtt::supervisor::{LinkState, OfflineReason};
use bc26_mqtt::{ConnackCode, Error, LinkClosedReason, ModemError, OpenError, QoS};
use bc26_sim::broker::{Peer, Watcher};
use bc26_sim::ClientState;
use common::rig::{leak, off_thread, uniq, Dev, Opts};
use embassy_futures::select::{select, Either};
use embassy_time::{Duration, Instant, Timer};

const S: std::time::Duration = std::time::Duration::from_secs(30);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// The states after a link loss, up to and including `Online`, are exactly
/// `Offline{want}`, `BackingOff` (the first delay, at most the minimum),
/// `Connecting`, `Online`.
async fn one_clean_recovery(d: &Dev, want: OfflineReason, since: Instant, bound: Duration) {
    d.offline_for(secs(5), want).await;
    let took = d.online_within(since, bound).await;
    let tail = d.states().into_iter().rev().take(3).collect::<Vec<_>>();
    match tail[..] {
        [LinkState::Online, LinkState::Connecting { .. }, LinkState::BackingOff { delay }] => {
            assert!(delay <= ms(20), "{}: first delay {delay:?}", d.name)
        }
        _ => panic!("{}: not one clean recovery:\n{}", d.name, d.history()),
    }
    eprintln!("{}: online again {took:?} after the fault", d.name);
}

/// `+QMTSTAT: 0,<code>` while messages are going out: the link ends at once
/// for that reason, comes back within 3 s, and nothing is lost.
fn qmtstat_ends_the_link(name: &'static str, code: u8) {
    let d = Dev::start(Opts::new(name));
    d.scenario(S, async {
        d.online(secs(5)).await;
        d.hand(10, "before").await;
        let t0 = Instant::now();
        d.sim.close_link(0, code);
        let reason = OfflineReason::LinkClosed(LinkClosedReason::from_code(code));
        one_clean_recovery(&d, reason, t0, secs(3)).await;
        let c = d.counters();
        assert_eq!((c.link_losses, c.reconnects), (1, 1), "{c:?}");
    });
}

#[test]
fn qmtstat_1_peer_closed_ends_the_link_and_it_comes_back_with_every_message() {
    qmtstat_ends_the_link("stat1", 1);
}

#[test]
fn qmtstat_2_ping_failed_ends_the_link_and_it_comes_back_with_every_message() {
    qmtstat_ends_the_link("stat2", 2);
}

#[test]
fn qmtstat_3_connect_failed_ends_the_link_and_it_comes_back_with_every_message() {
    qmtstat_ends_the_link("stat3", 3);
}

#[test]
fn qmtstat_4_connack_failed_ends_the_link_and_it_comes_back_with_every_message() {
    qmtstat_ends_the_link("stat4", 4);
}

#[test]
fn qmtstat_6_send_failed_ends_the_link_and_it_comes_back_with_every_message() {
    qmtstat_ends_the_link("stat6", 6);
}

#[test]
fn qmtstat_7_link_dead_ends_the_link_and_it_comes_back_with_every_message() {
    qmtstat_ends_the_link("stat7", 7);
}

#[test]
fn qmtstat_with_a_reserved_code_ends_the_link_and_it_comes_back_with_every_message() {
    qmtstat_ends_the_link("stat200", 200);
}

#[test]
fn qmtstat_5_that_really_closed_the_link_is_found_by_the_health_check() {
    let d = Dev::start(Opts::new("stat5"));
    d.scenario(S, async {
        d.online(secs(5)).await;
        d.hand(5, "before").await;
        d.flush(secs(5)).await;
        let t0 = Instant::now();
        // The modem closes the link but reports the code of a normal close,
        // which ends nothing by itself: AT+QMTCONN? finds it.
        d.sim.close_link(0, 5);
        d.offline_for(secs(3), OfflineReason::NotConnected).await;
        d.hand(5, "after").await;
        let took = d.online_within(t0, secs(3)).await;
        assert!(took >= ms(1), "{took:?}");
        assert_eq!(d.counters().link_losses, 1);
    });
}

#[test]
fn a_late_qmtstat_5_on_a_live_link_ends_nothing() {
    let d = Dev::start(Opts::new("late5"));
    d.scenario(S, async {
        d.online(secs(5)).await;
        let quiet = d.states().len();
        d.sim.inject_urc("+QMTSTAT: 0,5");
        d.hand(5, "around").await;
        // Three health checks later the link is still the same one.
        Timer::after(ms(1000)).await;
        assert_eq!(d.states().len(), quiet, "{}", d.history());
        assert_eq!(d.link.state(), LinkState::Online);
        let c = d.counters();
        assert_eq!((c.connects, c.link_losses, c.failed_attempts), (1, 0, 0));
        assert_eq!(d.sim.client_state(0), Some(ClientState::Connected));
    });
}

#[test]
fn a_tcp_reset_by_the_broker_ends_the_link_and_it_comes_back_with_every_message() {
    let d = Dev::start(Opts::new("reset"));
    d.scenario(S, async {
        d.online(secs(5)).await;
        d.hand(10, "before").await;
        d.flush(secs(5)).await;
        let t0 = Instant::now();
        d.sim.break_link(0);
        let r = OfflineReason::LinkClosed(LinkClosedReason::PeerClosed);
        d.offline_for(secs(3), r).await;
        d.hand(5, "offline").await;
        d.online_within(t0, secs(3)).await;
        let tail = d.states().into_iter().rev().take(4).collect::<Vec<_>>();
        assert!(
            matches!(
                tail[..],
                [
                    LinkState::Online,
                    LinkState::Connecting { attempt: 2 },
                    LinkState::BackingOff { .. },
                    LinkState::Offline { .. }
                ]
            ),
            "{}",
            d.history()
        );
    });
}

#[test]
fn a_tcp_reset_in_the_middle_of_a_burst_loses_no_message() {
    let d = Dev::start(Opts::new("burst"));
    d.scenario(S, async {
        d.online(secs(5)).await;
        d.hand(40, "burst").await;
        // Some are acknowledged, some in flight, most queued. A publish on
        // the reset socket may fail before the modem reports the reset: the
        // link ends for either.
        Timer::after(ms(3)).await;
        let t0 = Instant::now();
        d.sim.break_link(0);
        let r = d.offline(secs(5)).await;
        assert!(
            matches!(
                r,
                OfflineReason::LinkClosed(LinkClosedReason::PeerClosed)
                    | OfflineReason::Failed(Error::SendFailed)
            ),
            "{r:?}"
        );
        d.online_within(t0, secs(3)).await;
        d.flush(secs(10)).await;
    });
}

#[test]
fn a_client_id_takeover_at_the_broker_ends_the_link_and_it_comes_back() {
    let d = Dev::start(Opts::new("takeover"));
    d.scenario(S, async {
        d.online(secs(5)).await;
        d.hand(5, "before").await;
        d.flush(secs(5)).await;
        // Another client connects with the device's identifier: the broker
        // drops the device's link (a real reset, not a simulated one).
        let b = d.broker.get();
        let t0 = Instant::now();
        let (host, port, id) = (b.host.clone(), b.port, d.client_id.to_string());
        let peer = off_thread(move || {
            let b = bc26_sim::broker::Broker {
                host,
                port,
                auth: None,
                kind: "takeover",
            };
            Peer::new(&b, &id)
        })
        .await;
        let r = OfflineReason::LinkClosed(LinkClosedReason::PeerClosed);
        d.offline_for(secs(5), r).await;
        d.online_within(t0, secs(3)).await;
        drop(peer);
    });
}

#[test]
fn a_broker_restart_ends_the_link_and_it_comes_back_with_every_message() {
    let Some(d) = Dev::start_restartable(Opts::new("restart")) else {
        return;
    };
    d.scenario(S, async {
        d.online(secs(5)).await;
        d.hand(5, "before").await;
        d.flush(secs(5)).await;
        // A broker restart loses what it holds: everything handed so far
        // must be at the watcher first.
        d.watcher_has_all(secs(5)).await;
        let b = d.restartable();
        off_thread(move || b.stop()).await;
        let r = OfflineReason::LinkClosed(LinkClosedReason::PeerClosed);
        d.offline_for(secs(5), r).await;
        d.hand(5, "while-down").await;
        // Down: opens are refused for real.
        d.offline_for(
            secs(5),
            OfflineReason::Failed(Error::Open(OpenError::NetworkFailed)),
        )
        .await;
        // Keep the device back until the watcher has subscribed again, so that
        // what the device sends next is not lost to the watcher.
        d.hold_back();
        let b = d.restartable();
        off_thread(move || b.start()).await;
        d.watcher_back(secs(10)).await;
        let t0 = Instant::now();
        d.release();
        d.online_within(t0, secs(3)).await;
        assert!(d.counters().failed_attempts >= 1);
    });
}

#[test]
fn while_the_broker_is_down_the_back_off_grows_and_after_a_stable_link_starts_again() {
    let Some(d) = Dev::start_restartable(Opts::new("growth")) else {
        return;
    };
    d.scenario(S, async {
        d.online(secs(5)).await;
        d.flush(secs(5)).await;
        let start = d.states().len();
        let b = d.restartable();
        off_thread(move || b.stop()).await;
        // 20, 40, 80, 160, 300 ms (before jitter: each in [d/2, d]).
        d.wait(secs(10), "five failed attempts", || {
            d.counters().failed_attempts >= 5
        })
        .await;
        d.hold_back();
        let b = d.restartable();
        off_thread(move || b.start()).await;
        d.watcher_back(secs(10)).await;
        let t0 = Instant::now();
        d.release();
        d.online_within(t0, secs(3)).await;
        let delays: Vec<Duration> = d.states()[start..]
            .iter()
            .filter_map(|s| match s {
                LinkState::BackingOff { delay } => Some(*delay),
                _ => None,
            })
            .collect();
        let mut base = ms(20);
        for (i, got) in delays.iter().take(5).enumerate() {
            assert!(
                *got >= base / 2 && *got <= base,
                "delay {i}: {got:?} outside [{:?}, {base:?}]; all {delays:?}",
                base / 2
            );
            base = (base * 2).min(ms(300));
        }
        // Stable for longer than `stable_after` (500 ms): the next loss
        // starts again from the first delay.
        Timer::after(ms(700)).await;
        d.sim.break_link(0);
        let t1 = Instant::now();
        let r = OfflineReason::LinkClosed(LinkClosedReason::PeerClosed);
        one_clean_recovery(&d, r, t1, secs(3)).await;
    });
}

#[test]
fn a_modem_reboot_while_online_configures_everything_again() {
    let d = Dev::start(Opts::new("reboot"));
    d.scenario(S, async {
        d.online(secs(5)).await;
        d.hand(5, "before").await;
        let t0 = Instant::now();
        d.sim.reboot();
        d.offline_for(secs(3), OfflineReason::ModemRebooted).await;
        d.hand(5, "booting").await;
        // 200 ms of boot, then the whole bring-up.
        d.online_within(t0, secs(3)).await;
        // Echo off and every setting made again after RDY.
        assert_eq!(d.host_said("ATE0\r"), 2);
        assert_eq!(d.host_said("AT+QMTCFG=\"keepalive\",0,30\r"), 2);
        assert_eq!(d.host_said("AT+QMTSUB=0,"), 2);
    });
}

#[test]
fn a_modem_reboot_mid_publish_sends_the_messages_in_flight_again() {
    let d = Dev::start(Opts::new("rebootpub"));
    d.scenario(S, async {
        d.online(secs(5)).await;
        d.flush(secs(5)).await;
        // Four publishes reach the broker and their acknowledgements are
        // lost: they are in flight in the modem when it restarts.
        d.sim.update_faults(|f| f.drop_acks = 4);
        d.hand(8, "inflight").await;
        d.wait(secs(3), "four acks dropped", || {
            d.sim.faults().drop_acks == 0
        })
        .await;
        assert!(d.link.outbox().messages >= 4);
        let t0 = Instant::now();
        d.sim.reboot();
        d.offline_for(secs(3), OfflineReason::ModemRebooted).await;
        d.online_within(t0, secs(3)).await;
        d.flush(secs(5)).await;
        assert!(d.counters().resent >= 4, "{:?}", d.counters());
    });
}

#[test]
fn a_modem_reboot_mid_connect_ends_the_attempt_and_the_next_one_succeeds() {
    let d = Dev::start(Opts::new("rebootconn"));
    d.scenario(S, async {
        d.online(secs(5)).await;
        d.hand(5, "before").await;
        d.flush(secs(5)).await;
        // The next CONNACK never comes: the attempt hangs in AT+QMTCONN.
        d.sim.update_faults(|f| f.ignore_connack = true);
        d.sim.break_link(0);
        let r = OfflineReason::LinkClosed(LinkClosedReason::PeerClosed);
        d.offline_for(secs(3), r).await;
        d.hand(5, "during").await;
        d.wait(secs(3), "the modem connecting", || {
            d.sim.client_state(0) == Some(ClientState::Connecting)
        })
        .await;
        d.sim.update_faults(|f| f.ignore_connack = false);
        let t0 = Instant::now();
        d.sim.reboot();
        d.offline_for(secs(3), OfflineReason::ModemRebooted).await;
        d.online_within(t0, secs(3)).await;
        let c = d.counters();
        assert_eq!((c.link_losses, c.failed_attempts), (1, 1), "{c:?}");
    });
}

#[test]
fn a_modem_reboot_mid_open_ends_the_attempt_and_the_next_one_succeeds() {
    let d = Dev::start(Opts::new("rebootopen"));
    d.scenario(S, async {
        d.online(secs(5)).await;
        d.hand(5, "before").await;
        d.flush(secs(5)).await;
        d.sim
            .update_faults(|f| f.open_delay = std::time::Duration::from_secs(2));
        d.sim.break_link(0);
        d.wait(secs(3), "the modem opening", || {
            d.sim.client_state(0) == Some(ClientState::Opening)
        })
        .await;
        d.sim
            .update_faults(|f| f.open_delay = std::time::Duration::ZERO);
        let t0 = Instant::now();
        d.sim.reboot();
        let r = OfflineReason::LinkClosed(LinkClosedReason::PeerClosed);
        d.offline_for(secs(3), r).await;
        d.hand(5, "opening").await;
        d.offline_for(secs(3), OfflineReason::ModemRebooted).await;
        d.online_within(t0, secs(3)).await;
    });
}

#[test]
fn a_silent_modem_is_found_by_the_health_check_and_the_link_taken_over_again() {
    let d = Dev::start(Opts::new("silent"));
    d.scenario(S, async {
        d.online(secs(5)).await;
        d.hand(5, "before").await;
        d.flush(secs(5)).await;
        // "Silent for a minute", scaled down: 2 s is longer than the health
        // check (300 ms) and the command timeout (600 ms) together.
        d.sim.set_silent(true);
        let t0 = Instant::now();
        d.hand(5, "silent").await;
        d.offline_for(secs(2), OfflineReason::ModemSilent).await;
        assert!(t0.elapsed() <= ms(1500), "{:?}", t0.elapsed());
        Timer::at(t0 + secs(2)).await;
        d.sim.set_silent(false);
        let t1 = Instant::now();
        d.online_within(t1, secs(3)).await;
        // The modem kept its link through the silence: the open found the
        // client occupied, closed it and opened again.
        assert_eq!(d.modem_said("+QMTOPEN: 0,2"), 1);
        assert_eq!(d.host_said("AT+QMTCLOSE=0\r"), 1);
        assert_eq!(d.counters().failed_attempts, 0);
    });
}

#[test]
fn a_modem_silent_longer_than_the_modem_deadline_backs_off_and_probes_again() {
    let d = Dev::start(Opts::new("mute").sup(|c| c.modem_deadline = Duration::from_millis(800)));
    d.scenario(S, async {
        d.online(secs(5)).await;
        d.sim.set_silent(true);
        let t0 = Instant::now();
        d.hand(5, "silent").await;
        d.offline_for(secs(2), OfflineReason::ModemSilent).await;
        // Then at least one attempt in which AT got no answer.
        d.offline_for(secs(3), OfflineReason::ModemSilent).await;
        Timer::at(t0 + ms(2500)).await;
        d.sim.set_silent(false);
        let t1 = Instant::now();
        d.online_within(t1, secs(3)).await;
        assert!(d.counters().failed_attempts >= 1, "{:?}", d.counters());
    });
}

#[test]
fn registration_lost_and_regained_within_the_deadline_brings_the_link_back() {
    let d = Dev::start(Opts::new("reg"));
    d.scenario(S, async {
        d.online(secs(5)).await;
        d.hand(5, "before").await;
        let polls = d.host_said("AT+CEREG?");
        d.sim.set_registration(2);
        let r = OfflineReason::LinkClosed(LinkClosedReason::PingFailed);
        d.offline_for(secs(3), r).await;
        d.hand(5, "unregistered").await;
        Timer::after(ms(500)).await;
        // The supervisor waits for registration (AT+CEREG? every 30 ms).
        assert!(d.host_said("AT+CEREG?") >= polls + 5);
        assert!(matches!(d.link.state(), LinkState::Connecting { .. }));
        d.sim.set_registration(5);
        let t0 = Instant::now();
        d.online_within(t0, secs(2)).await;
        assert_eq!(d.counters().failed_attempts, 0);
    });
}

#[test]
fn registration_lost_past_the_deadline_backs_off_as_not_registered_then_comes_back() {
    let d = Dev::start(
        Opts::new("noreg").sup(|c| c.registration_deadline = Duration::from_millis(300)),
    );
    d.scenario(S, async {
        d.online(secs(5)).await;
        d.hand(5, "before").await;
        d.sim.set_registration(0);
        let r = OfflineReason::LinkClosed(LinkClosedReason::PingFailed);
        d.offline_for(secs(3), r).await;
        d.hand(5, "unregistered").await;
        d.offline_for(secs(3), OfflineReason::NotRegistered).await;
        d.until(secs(1), "BackingOff", |s| {
            matches!(s, LinkState::BackingOff { .. })
        })
        .await;
        Timer::after(ms(700)).await;
        d.sim.set_registration(1);
        let t0 = Instant::now();
        d.online_within(t0, secs(2)).await;
        assert!(d.counters().failed_attempts >= 1);
    });
}

#[test]
fn identifier_occupied_after_an_mcu_only_reset_is_closed_and_opened_again() {
    // The modem still holds client 0 from before the MCU restarted.
    let mut o = Opts::new("occupied");
    o.pre_open = true;
    let d = Dev::start(o);
    d.scenario(S, async {
        let t0 = Instant::now();
        d.online_within(t0, secs(5)).await;
        assert_eq!(d.modem_said("+QMTOPEN: 0,2"), 1);
        assert_eq!(d.host_said("AT+QMTCLOSE=0\r"), 1);
        let c = d.counters();
        assert_eq!((c.connects, c.failed_attempts), (1, 0));
        assert_eq!(
            d.states(),
            [LinkState::Connecting { attempt: 1 }, LinkState::Online]
        );
    });
}

#[test]
fn connack_refused_twice_then_accepted_backs_off_and_comes_online() {
    let d = Dev::start(Opts::new("refused"));
    d.scenario(S, async {
        d.online(secs(5)).await;
        d.hand(5, "before").await;
        d.flush(secs(5)).await;
        d.sim.update_faults(|f| f.refuse_connect = Some((2, 3)));
        let t0 = Instant::now();
        d.sim.break_link(0);
        let refused = OfflineReason::Failed(Error::ConnectRefused(ConnackCode::ServerUnavailable));
        d.offline_for(
            secs(3),
            OfflineReason::LinkClosed(LinkClosedReason::PeerClosed),
        )
        .await;
        d.hand(5, "offline").await;
        d.offline_for(secs(3), refused).await;
        d.offline_for(secs(3), refused).await;
        d.online_within(t0, secs(3)).await;
        assert_eq!(d.counters().failed_attempts, 2);
        assert_eq!(d.modem_said("+QMTCONN: 0,0,3"), 2);
    });
}

#[test]
fn lost_acks_are_reported_as_retransmissions_then_failure_and_the_message_goes_again_on_the_same_link(
) {
    let d = Dev::start(Opts::new("acklost").sup(|c| {
        c.pkt_timeout_s = 1;
        c.retry_times = 1;
        c.timeout_notice = true;
    }));
    let dups = d.scenario(S, async {
        d.online(secs(5)).await;
        d.flush(secs(5)).await;
        // The PUBLISH and its retransmission reach the broker; both PUBACKs
        // are lost: `+QMTPUB: 0,<id>,1,1`, then `+QMTPUB: 0,<id>,2`. The
        // broker answers the subscription the supervisor then asks it with:
        // the link stays, the message goes again (one refusal counted on it).
        d.sim.update_faults(|f| f.drop_acks = 2);
        let t = d.hand(1, "lost").await[0];
        d.delivered_within(t, secs(8)).await;
        assert_eq!(d.modem_said(&format!("+QMTPUB: 0,{},1,1", t.msg_id)), 1);
        assert_eq!(d.modem_said(&format!("+QMTPUB: 0,{},2", t.msg_id)), 1);
        let c = d.counters();
        assert_eq!((c.link_losses, c.resent, c.refused), (0, 1, 0), "{c:?}");
    });
    // The broker got the message three times (send, retransmission, re-send).
    assert!(dups >= 2, "{dups} duplicates");
}

#[test]
fn one_lost_ack_is_retransmitted_by_the_modem_and_the_link_stays_up() {
    let d = Dev::start(Opts::new("ackonce").sup(|c| {
        c.pkt_timeout_s = 1;
        c.retry_times = 1;
        c.timeout_notice = true;
    }));
    let dups = d.scenario(S, async {
        d.online(secs(5)).await;
        d.flush(secs(5)).await;
        d.sim.update_faults(|f| f.drop_acks = 1);
        let t = d.hand(1, "once").await[0];
        d.delivered_within(t, secs(4)).await;
        assert_eq!(d.modem_said(&format!("+QMTPUB: 0,{},1,1", t.msg_id)), 1);
        assert_eq!(d.modem_said(&format!("+QMTPUB: 0,{},0", t.msg_id)), 1);
        let c = d.counters();
        assert_eq!((c.link_losses, c.resent), (0, 0), "{c:?}");
    });
    assert!(dups >= 1, "{dups} duplicates");
}

#[test]
fn a_publish_cancelled_while_the_link_drops_is_still_delivered() {
    let d = Dev::start(Opts::new("cancel"));
    d.scenario(S, async {
        d.online(secs(5)).await;
        d.flush(secs(5)).await;
        d.sim.update_faults(|f| f.drop_acks = 1);
        let payload = b"cancel/the-one";
        d.handed(payload);
        let publish = d.publish(d.up, payload, QoS::AtLeastOnce, false);
        let drop_it = async {
            // Its PUBLISH reached the broker; the ack is lost; the link drops
            // and the application gives up waiting.
            d.wait(secs(3), "the ack dropped", || d.sim.faults().drop_acks == 0)
                .await;
            d.sim.break_link(0);
        };
        match select(publish, drop_it).await {
            Either::First(r) => panic!("publish ended first: {r:?}"),
            Either::Second(()) => {}
        }
        // Dropped, yet stored: it goes again after the link is back.
        assert_eq!(d.link.outbox().messages, 1);
        let t0 = Instant::now();
        let r = OfflineReason::LinkClosed(LinkClosedReason::PeerClosed);
        d.offline_for(secs(3), r).await;
        d.online_within(t0, secs(3)).await;
        d.flush(secs(5)).await;
    });
}

#[test]
fn a_persistent_session_gets_the_commands_queued_while_offline() {
    let d = Dev::start(Opts::new("persist").sup(|c| c.clean_session = false));
    d.scenario(S, async {
        d.online(secs(5)).await;
        d.command_arrives(secs(5)).await;
        d.hold_back();
        d.sim.break_link(0);
        let r = OfflineReason::LinkClosed(LinkClosedReason::PeerClosed);
        d.offline_for(secs(3), r).await;
        // Offline: the broker queues these for the device's session.
        let queued: Vec<Vec<u8>> = (0..3).map(|i| format!("queued-{i}").into_bytes()).collect();
        for q in &queued {
            d.watcher.publish(d.cmd, q);
        }
        Timer::after(ms(300)).await;
        d.release();
        let t0 = Instant::now();
        d.online_within(t0, secs(3)).await;
        d.commands_arrive(secs(5), &queued).await;
        // Every attempt asked for the persistent session.
        assert!(d.host_said("AT+QMTCFG=\"session\",0,0\r") >= 2);
        assert_eq!(d.host_said("AT+QMTCFG=\"session\",0,1\r"), 0);
    });
}

#[test]
fn a_clean_session_does_not_get_the_commands_sent_while_offline() {
    // The control of the test above: the difference is the session flag.
    let d = Dev::start(Opts::new("clean"));
    d.scenario(S, async {
        d.online(secs(5)).await;
        d.hold_back();
        d.sim.break_link(0);
        let r = OfflineReason::LinkClosed(LinkClosedReason::PeerClosed);
        d.offline_for(secs(3), r).await;
        d.watcher.publish(d.cmd, b"lost-while-offline");
        Timer::after(ms(300)).await;
        d.release();
        d.online(secs(3)).await;
        d.command_arrives(secs(5)).await;
        assert!(!d.received_command(b"lost-while-offline"));
    });
}

#[test]
fn a_lost_keep_alive_ends_the_link_with_ping_failed_and_it_comes_back() {
    let d = Dev::start(Opts::new("ping").sup(|c| {
        c.keepalive_s = 1;
        c.pkt_timeout_s = 1;
    }));
    d.scenario(S, async {
        d.online(secs(5)).await;
        d.hand(3, "before").await;
        d.flush(secs(5)).await;
        d.sim.update_faults(|f| f.ignore_pingresp = true);
        let t0 = Instant::now();
        let r = OfflineReason::LinkClosed(LinkClosedReason::PingFailed);
        d.offline_for(secs(4), r).await;
        d.sim.update_faults(|f| f.ignore_pingresp = false);
        d.hand(3, "after").await;
        d.online_within(t0, secs(5)).await;
    });
}

#[test]
fn a_connack_that_never_comes_fails_the_attempt_and_the_next_one_succeeds() {
    let d = Dev::start(Opts::new("noconnack").sup(|c| {
        c.pkt_timeout_s = 1;
        c.retry_times = 0;
    }));
    d.scenario(S, async {
        d.online(secs(5)).await;
        d.sim.update_faults(|f| f.ignore_connack = true);
        d.sim.break_link(0);
        let t0 = Instant::now();
        let r = OfflineReason::LinkClosed(LinkClosedReason::PeerClosed);
        d.offline_for(secs(3), r).await;
        d.hand(5, "offline").await;
        d.offline_for(secs(4), OfflineReason::Failed(Error::SendFailed))
            .await;
        d.sim.update_faults(|f| f.ignore_connack = false);
        d.online_within(t0, secs(5)).await;
        assert_eq!(d.modem_said("+QMTCONN: 0,2"), 1);
    });
}

#[test]
fn failed_opens_back_off_and_the_next_one_succeeds() {
    let d = Dev::start(Opts::new("openfail"));
    d.scenario(S, async {
        d.online(secs(5)).await;
        d.sim.update_faults(|f| f.fail_open = Some((2, 3)));
        d.sim.break_link(0);
        let t0 = Instant::now();
        let failed = OfflineReason::Failed(Error::Open(OpenError::PdpActivationFailed));
        let r = OfflineReason::LinkClosed(LinkClosedReason::PeerClosed);
        d.offline_for(secs(3), r).await;
        d.hand(5, "offline").await;
        d.offline_for(secs(3), failed).await;
        d.offline_for(secs(3), failed).await;
        d.online_within(t0, secs(3)).await;
        assert_eq!(d.counters().failed_attempts, 2);
    });
}

#[test]
fn a_failed_subscription_fails_the_attempt_and_the_next_one_subscribes() {
    let d = Dev::start(Opts::new("subfail"));
    d.scenario(S, async {
        d.online(secs(5)).await;
        d.sim
            .update_faults(|f| f.error_on_prefix = Some("AT+QMTSUB".into()));
        d.sim.break_link(0);
        let t0 = Instant::now();
        let r = OfflineReason::LinkClosed(LinkClosedReason::PeerClosed);
        d.offline_for(secs(3), r).await;
        d.hand(3, "offline").await;
        let r = OfflineReason::Failed(Error::Modem(ModemError::Error));
        d.offline_for(secs(3), r).await;
        d.sim.update_faults(|f| f.error_on_prefix = None);
        d.online_within(t0, secs(3)).await;
        // The failed attempt's connected client was closed before the next.
        assert!(d.host_said("AT+QMTCLOSE=0\r") >= 1);
    });
}

#[test]
fn a_publish_the_modem_refuses_ends_the_link_and_the_message_goes_again() {
    let d = Dev::start(Opts::new("puberr"));
    d.scenario(S, async {
        d.online(secs(5)).await;
        d.sim
            .update_faults(|f| f.error_on_prefix = Some("AT+QMTPUB".into()));
        let t0 = Instant::now();
        d.hand(3, "refused").await;
        let r = OfflineReason::Failed(Error::Modem(ModemError::Error));
        d.offline_for(secs(3), r).await;
        d.sim.update_faults(|f| f.error_on_prefix = None);
        d.online_within(t0, secs(3)).await;
        d.flush(secs(5)).await;
    });
}

#[test]
fn a_full_outbox_refuses_try_publish_and_publish_waits_for_room_across_the_outage() {
    let mut o = Opts::new("full");
    o.outbox = 512;
    let d = Dev::start(o);
    d.scenario(S, async {
        d.online(secs(5)).await;
        d.hold_back();
        d.sim.break_link(0);
        let r = OfflineReason::LinkClosed(LinkClosedReason::PeerClosed);
        d.offline_for(secs(3), r).await;
        // QoS 0 is never stored while offline.
        assert_eq!(
            d.try_publish(d.up, b"q0", QoS::AtMostOnce, false).await,
            Err(Error::Offline)
        );
        assert_eq!(d.counters().refused_offline, 1);
        let mut n = 0;
        let full = loop {
            let p = format!("full/{n:03}/{}", "x".repeat(60));
            match d
                .try_publish(d.up, p.as_bytes(), QoS::AtLeastOnce, false)
                .await
            {
                Ok(_) => d.handed(p.as_bytes()),
                Err(e) => break e,
            }
            n += 1;
        };
        assert_eq!(full, Error::OutboxFull);
        assert!(n >= 4, "{n} messages fit");
        let waiting = b"full/waiting-for-room";
        d.handed(waiting);
        let publish = d.publish(d.up, waiting, QoS::AtLeastOnce, false);
        let t0 = Instant::now();
        let release = async {
            Timer::after(ms(200)).await;
            d.release();
            d.online_within(t0, secs(3)).await;
        };
        let (r, ()) = embassy_futures::join::join(publish, release).await;
        assert!(r.is_delivered(), "{r:?}");
        // The ones stored before may still be in flight (the lanes reorder):
        // room for the rig's last three (seen full under load).
        d.flush(secs(5)).await;
        let s = d.link.outbox();
        // 512 bytes, 16 of them keep the outcomes of the last 64 messages.
        assert!(s.high_water <= 496 && s.capacity == 496, "{s:?}");
    });
}

#[test]
fn kilobyte_messages_survive_a_link_loss_in_data_mode() {
    let mut o = Opts::new("kib");
    o.outbox = 16384;
    let d = Dev::start(o);
    d.scenario(S, async {
        d.online(secs(5)).await;
        for i in 0..6 {
            // Text mode, 1,000 bytes: too long for the inline form.
            let p = format!("kib/{i}/{}", "k".repeat(994)).into_bytes();
            assert_eq!(p.len(), 1000);
            d.try_publish(d.up, &p, QoS::AtLeastOnce, false)
                .await
                .unwrap();
            d.handed(&p);
        }
        let t0 = Instant::now();
        d.sim.break_link(0);
        let r = OfflineReason::LinkClosed(LinkClosedReason::PeerClosed);
        d.offline_for(secs(3), r).await;
        d.online_within(t0, secs(3)).await;
        d.flush(secs(5)).await;
        assert!(d.host_said("\x1a") >= 6);
    });
}

#[test]
fn the_will_is_published_when_the_link_dies_and_the_link_comes_back() {
    let will: &'static str = leak(uniq("will"));
    let d = Dev::start(Opts::new("will").sup(move |c| {
        c.will = Some(Will::new(will, "device-gone", QoS::AtLeastOnce, false).unwrap());
    }));
    let w = Watcher::new(d.broker.get(), &uniq("w-will"), &[will]);
    d.scenario(S, async {
        d.online(secs(5)).await;
        d.hand(3, "before").await;
        d.flush(secs(5)).await;
        assert!(w.payloads(will).is_empty());
        let t0 = Instant::now();
        d.sim.break_link(0);
        let r = OfflineReason::LinkClosed(LinkClosedReason::PeerClosed);
        d.offline_for(secs(3), r).await;
        d.online_within(t0, secs(3)).await;
        d.wait(secs(5), "the will at the watcher", || {
            w.payloads(will) == [b"device-gone".to_vec()]
        })
        .await;
    });
}

/// The payloads of `tag` the watcher got, each at its first arrival.
fn first_arrivals(d: &Dev, tag: &str) -> Vec<String> {
    let mark = format!("/{tag}/");
    let mut seen = Vec::new();
    for p in d.watcher.payloads(d.up) {
        let p = String::from_utf8(p).unwrap();
        if p.contains(&mark) && !seen.contains(&p) {
            seen.push(p);
        }
    }
    seen
}

/// An application busy on the same executor: every millisecond it keeps
/// the thread for 10 ms, so that the modem's `OK` to a publish and the
/// broker's acknowledgement (through the simulator's thread) often reach
/// the driver in one read, as on a device whose other tasks compute.
async fn busy_application() -> ! {
    loop {
        Timer::after(ms(1)).await;
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// `hand`'s payloads `<name>/<tag>/<k>` for `k` in `from..from + n`.
fn handed(d: &Dev, tag: &str, from: usize, n: usize) -> Vec<String> {
    (from..from + n)
        .map(|k| format!("{}/{tag}/{k}", d.name))
        .collect()
}

#[test]
fn a_queue_handed_while_offline_reaches_the_broker_in_publish_order() {
    let d = Dev::start(Opts::new("order"));
    d.scenario(S, async {
        // Every open fails: the thirty messages wait in the outbox.
        d.hold_back();
        d.hand(30, "queued").await;
        d.until(secs(5), "a failed attempt", |s| {
            matches!(s, LinkState::BackingOff { .. })
        })
        .await;
        d.release();
        d.online(secs(5)).await;
        let busy = select(d.flush(secs(5)), busy_application()).await;
        assert!(matches!(busy, Either::First(())));
    });
    assert_eq!(
        first_arrivals(&d, "queued"),
        handed(&d, "queued", 0, 30),
        "{}",
        d.history()
    );
}

#[test]
fn after_a_link_loss_with_four_in_flight_the_queue_reaches_the_broker_in_publish_order() {
    let d = Dev::start(Opts::new("order-drop"));
    d.scenario(S, async {
        d.online(secs(5)).await;
        // The broker's first four PUBACKs are lost: four publishes stay in
        // flight (the modem would send them again after `pkt_timeout`).
        d.sim.update_faults(|f| f.drop_acks = 4);
        d.hand(30, "burst").await;
        d.wait(secs(3), "four publishes in flight", || {
            d.host_said("AT+QMTPUB=") >= 4
        })
        .await;
        Timer::after(ms(20)).await;
        assert_eq!(d.host_said("AT+QMTPUB="), 4, "four lanes, each waiting");
        d.sim.break_link(0);
        d.offline(secs(5)).await;
        d.online(secs(5)).await;
        let busy = select(d.flush(secs(5)), busy_application()).await;
        assert!(matches!(busy, Either::First(())));
    });
    assert_eq!(
        first_arrivals(&d, "burst"),
        handed(&d, "burst", 0, 30),
        "{}",
        d.history()
    );
}
