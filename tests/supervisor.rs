//! The supervisor against the BC26 simulator and a real broker, watched by an
//! independent MQTT client: online, recovery from each way a link ends, and
//! every QoS 1 message delivered at least once.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};

use bc26_mqtt::supervisor::{self, Backoff, Link, LinkState, SupervisorConfig, SupervisorState};
use bc26_mqtt::{ClientId, Config, Modem, QoS, State, Subscription};
use bc26_sim::broker::{broker, Broker, Watcher};
use bc26_sim::{HostSide, Sim, SimConfig, SimHandle};
use common::{next_ev, run, with_runner, Ev};
use embassy_futures::select::{select, Either};
use embassy_time::{with_timeout, Duration};

fn uniq(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn leak<T>(v: T) -> &'static T {
    Box::leak(Box::new(v))
}

/// Short, test-sized timings.
fn sup_config(
    client: ClientId,
    b: &'static Broker,
    cid: &'static str,
    subs: &'static [Subscription<'static>],
) -> SupervisorConfig<'static> {
    let mut c = SupervisorConfig::new(client, &b.host, b.port, cid);
    c.keepalive_s = 30;
    c.pkt_timeout_s = 2;
    c.retry_times = 1;
    c.subscriptions = subs;
    c.backoff = Backoff::new()
        .delays(Duration::from_millis(50), Duration::from_millis(400))
        .stable_after(Duration::from_millis(500))
        .seed(7);
    c.modem_deadline = Duration::from_secs(5);
    c.registration_deadline = Duration::from_secs(5);
    c.poll_interval = Duration::from_millis(30);
    c.health_check = Duration::from_millis(400);
    c
}

fn driver(
    sim_cfg: SimConfig,
) -> (
    Modem<'static>,
    bc26_mqtt::Runner<'static, bc26_sim::SimReader, bc26_sim::SimWriter>,
    SimHandle,
) {
    let (sim, HostSide { reader, writer }) = Sim::start(sim_cfg);
    let state: &'static mut State = Box::leak(Box::new(State::new()));
    let config = Config::new()
        .command_timeout(Duration::from_millis(800))
        .open_timeout(Duration::from_secs(5))
        .close_timeout(Duration::from_secs(2))
        .quiet_gap(Duration::from_millis(50));
    let (modem, runner) = bc26_mqtt::new(state, reader, writer, config);
    (modem, runner, sim)
}

/// Waits (up to `limit`) for the next state change, after the one `seen`
/// counts, that `f` accepts.
async fn until(
    link: Link<'static>,
    seen: &mut u32,
    limit: Duration,
    f: impl Fn(LinkState) -> bool,
) -> LinkState {
    let wait = async {
        loop {
            let s = link.changed(seen).await;
            if f(s) {
                return s;
            }
        }
    };
    with_timeout(limit, wait)
        .await
        .unwrap_or_else(|_| panic!("state not reached within {limit:?}; now {:?}", link.state()))
}

#[test]
fn the_supervisor_comes_online_delivers_and_recovers_from_a_link_reset() {
    let b = broker();
    let up = leak(uniq("sup/up"));
    let cmd = leak(uniq("sup/cmd"));
    let watcher = Watcher::new(b, &uniq("watcher"), &[up]);
    let (modem, runner, sim) = driver(SimConfig::default());
    let subs: &'static [Subscription<'static>] = leak([Subscription::new(cmd, QoS::AtLeastOnce)]);
    let cid = leak(uniq("dev"));
    let state = Box::leak(Box::new(SupervisorState::<4096>::new()));
    let (link, sup) = supervisor::new(
        modem,
        state,
        sup_config(ClientId::new(0).unwrap(), b, cid, subs),
    );
    let sim = std::rc::Rc::new(sim);
    let s2 = sim.clone();
    let watcher = std::rc::Rc::new(watcher);
    let w2 = watcher.clone();
    run(async move {
        let mut events = modem.events().unwrap();
        with_runner(runner, async {
            match select(sup.run(), async {
                let seen = &mut 0;
                until(link, seen, Duration::from_secs(5), |s| {
                    s == LinkState::Online
                })
                .await;
                let d = link
                    .publish(up, b"m1", QoS::AtLeastOnce, false)
                    .await
                    .unwrap();
                assert!(d.msg_id > 0);
                s2.break_link(0);
                let off = until(link, seen, Duration::from_secs(5), |s| {
                    matches!(s, LinkState::Offline { .. })
                })
                .await;
                assert_eq!(
                    off,
                    LinkState::Offline {
                        reason: supervisor::OfflineReason::LinkClosed(
                            bc26_mqtt::LinkClosedReason::PeerClosed
                        )
                    }
                );
                until(link, seen, Duration::from_secs(5), |s| {
                    s == LinkState::Online
                })
                .await;
                link.publish(up, b"m2", QoS::AtLeastOnce, false)
                    .await
                    .unwrap();
                // The subscription was made again: a command reaches the device.
                w2.publish(cmd, b"ping");
                let m = with_timeout(Duration::from_secs(5), async {
                    loop {
                        if let Ev::Message(m) = next_ev(&mut events).await {
                            return m;
                        }
                    }
                })
                .await
                .expect("no command");
                assert_eq!(
                    (m.topic.as_str(), &m.payload[..]),
                    (cmd.as_str(), &b"ping"[..])
                );
                let c = link.counters();
                assert_eq!((c.connects, c.reconnects, c.link_losses), (2, 1, 1));
            })
            .await
            {
                Either::First(never) => never,
                Either::Second(()) => {}
            }
        })
        .await;
    });
    watcher.wait_for(up, std::time::Duration::from_secs(5), |p| p.len() >= 2);
    assert_eq!(watcher.payloads(up), [b"m1".to_vec(), b"m2".to_vec()]);
    drop(sim);
}
