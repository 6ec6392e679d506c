//! The driver's lock is a type parameter (`M`, embassy-sync's `RawMutex`,
//! default `CriticalSectionRawMutex`): a whole session runs with
//! `NoopRawMutex`, which masks no interrupt, on one executor; the handles are
//! `Send` and `Sync` exactly when the lock is.

mod common;

use std::marker::PhantomData;

use bc26_mqtt::embassy_sync::blocking_mutex::raw::{CriticalSectionRawMutex, NoopRawMutex};
use bc26_mqtt::supervisor::{self, Link, Supervisor, SupervisorConfig, SupervisorState};
use bc26_mqtt::{
    ClientId, Events, Grant, LinkClosedReason, Modem, MqttClient, PendingPublish, Published, QoS,
    Runner, State, Subscription,
};
use bc26_testkit::rules::Auto;
use common::rig::block_on;
use common::{fast_config, next_ev, run, setup_in, with_runner, Ev, Msg, TestRunner};
use embassy_futures::join::join;
use embassy_futures::select::{select4, Either4};
use embassy_time::Duration;

/// The default sizes, with the no-op lock.
type NoopState = State<2400, 1024, 2560, 32, 2, 8, NoopRawMutex>;

fn id(n: u8) -> ClientId {
    ClientId::new(n).unwrap()
}

#[test]
fn a_whole_session_runs_with_a_noop_mutex_on_one_executor() {
    run(async {
        let state: &'static mut NoopState = Box::leak(Box::new(State::new()));
        let (modem, runner, mut fake) = setup_in(state, fast_config(), |_, rx| rx, |tx| tx);
        let modem: Modem<'static, NoopRawMutex> = modem;
        let c0: MqttClient<'static, NoopRawMutex> = modem.client(id(0));
        let mut events: Events<'static, NoopRawMutex> = modem.events().unwrap();
        with_runner(runner, async {
            let (r, _) = join(
                c0.open("broker", 1883),
                fake.answer(
                    b"AT+QMTOPEN=0,\"broker\",1883\r",
                    b"\r\nOK\r\n\r\n+QMTOPEN: 0,0\r\n",
                ),
            )
            .await;
            assert_eq!(r, Ok(()));
            let (r, _) = join(
                c0.connect("dev", None, None),
                fake.answer(
                    b"AT+QMTCONN=0,\"dev\"\r",
                    b"\r\nOK\r\n\r\n+QMTCONN: 0,0,0\r\n",
                ),
            )
            .await;
            assert_eq!(r, Ok(()));
            let (r, _) = join(
                c0.subscribe(&[("cmd", QoS::AtLeastOnce)]),
                fake.answer(
                    b"AT+QMTSUB=0,1,\"cmd\",1\r",
                    b"\r\nOK\r\n\r\n+QMTSUB: 0,1,0,1\r\n",
                ),
            )
            .await;
            assert_eq!(
                r.map(|g| g.get(0)),
                Ok(Some(Grant::Granted(QoS::AtLeastOnce)))
            );
            let (r, _) = join(
                c0.publish("t", b"v", QoS::AtLeastOnce, false),
                fake.answer(
                    b"AT+QMTPUB=0,2,1,0,\"t\",\"v\"\r",
                    b"\r\nOK\r\n\r\n+QMTPUB: 0,2,0\r\n",
                ),
            )
            .await;
            assert_eq!(
                r,
                Ok(Published {
                    msg_id: 2,
                    retransmissions: 0
                })
            );
            let (r, _) = join(
                c0.publish_data_mode("t", b"data", QoS::AtMostOnce, false),
                async {
                    fake.expect(b"AT+QMTPUB=0,0,0,0,\"t\"\r").await;
                    fake.send(b"\r\n> ").await;
                    fake.expect(b"data\x1a").await;
                    fake.send(b"\r\nOK\r\n\r\n+QMTPUB: 0,0,0\r\n").await;
                },
            )
            .await;
            assert_eq!(r.map(|p| p.msg_id), Ok(0));
            fake.send(b"\r\n+QMTRECV: 0,7,\"cmd\",\"on\"\r\n\r\n+QMTSTAT: 0,1\r\n")
                .await;
            assert_eq!(
                next_ev(&mut events).await,
                Ev::Message(Msg {
                    client: id(0),
                    msg_id: 7,
                    topic: "cmd".into(),
                    payload: b"on".to_vec(),
                })
            );
            assert_eq!(
                next_ev(&mut events).await,
                Ev::LinkClosed {
                    client: id(0),
                    reason: LinkClosedReason::PeerClosed
                }
            );
            let s = modem.stats();
            assert_eq!(
                (s.stray_responses, s.unsolicited_lines, s.messages_dropped),
                (0, 0, 0)
            );
        })
        .await;
    });
}

#[test]
fn a_supervised_link_comes_online_and_delivers_with_a_noop_mutex() {
    const SUBS: &[Subscription<'static>] = &[Subscription::new("cmd/dev1", QoS::AtLeastOnce)];
    let state: &'static mut NoopState = Box::leak(Box::new(State::new()));
    let (modem, runner, fake) = setup_in(state, fast_config(), |_, rx| rx, |tx| tx);
    let mut c = SupervisorConfig::new(id(0), "broker.example", 1883, "dev1");
    c.subscriptions = SUBS;
    c.poll_interval = Duration::from_millis(10);
    c.health_check = Duration::from_ticks(0);
    let sup_state: &'static mut SupervisorState<1024, NoopRawMutex> =
        Box::leak(Box::new(SupervisorState::new()));
    let (link, sup): (
        Link<'static, NoopRawMutex>,
        Supervisor<'static, NoopRawMutex>,
    ) = supervisor::new(modem, sup_state, c);
    let auto = Auto::new();
    block_on(std::time::Duration::from_secs(5), async {
        let body = async {
            link.wait_online().await;
            let d = link.publish("tele/dev1", b"21.5", QoS::AtLeastOnce, false);
            let d = embassy_time::with_timeout(Duration::from_secs(2), d).await;
            assert!(matches!(d, Ok(o) if o.is_delivered()), "{d:?}");
            assert_eq!(link.counters().delivered, 1);
        };
        match select4(runner.run(), sup.run(), auto.serve(fake), body).await {
            Either4::Fourth(()) => {}
            _ => unreachable!(),
        }
    });
    assert!(
        auto.lines().iter().any(|l| l.starts_with("AT+QMTPUB=0,")),
        "{}",
        auto.dump()
    );
}

/// `Probe::<T>::default().is_send()` is `true` when `T: Send` (an inherent
/// method, chosen first), else `false` (the trait's method).
struct Probe<T>(PhantomData<T>);

trait Fallback {
    fn is_send(&self) -> bool {
        false
    }
    fn is_sync(&self) -> bool {
        false
    }
}

impl<T> Fallback for Probe<T> {}

#[allow(dead_code)]
impl<T: Send> Probe<T> {
    fn is_send(&self) -> bool {
        true
    }
}

struct SyncProbe<T>(PhantomData<T>);

impl<T> Fallback for SyncProbe<T> {}

#[allow(dead_code)]
impl<T: Sync> SyncProbe<T> {
    fn is_sync(&self) -> bool {
        true
    }
}

macro_rules! send_sync {
    ($t:ty) => {
        (
            Probe::<$t>(PhantomData).is_send(),
            SyncProbe::<$t>(PhantomData).is_sync(),
        )
    };
}

#[test]
fn handles_are_send_and_sync_exactly_when_the_lock_is() {
    type Cs = CriticalSectionRawMutex;
    type Noop = NoopRawMutex;
    // The default lock: as before the lock was a parameter.
    assert_eq!(send_sync!(Modem<'static>), (true, true));
    assert_eq!(send_sync!(Modem<'static, Cs>), (true, true));
    assert_eq!(send_sync!(MqttClient<'static>), (true, true));
    assert_eq!(send_sync!(Link<'static>), (true, true));
    assert_eq!(send_sync!(Supervisor<'static>), (true, true));
    assert_eq!(send_sync!(State), (true, true));
    assert_eq!(send_sync!(SupervisorState), (true, true));
    assert!(send_sync!(PendingPublish<'static>).0);
    assert!(send_sync!(TestRunner).0);
    // The no-op lock: the handles cannot leave the executor.
    assert_eq!(send_sync!(Modem<'static, Noop>), (false, false));
    assert_eq!(send_sync!(MqttClient<'static, Noop>), (false, false));
    assert_eq!(send_sync!(Link<'static, Noop>), (false, false));
    assert_eq!(send_sync!(Supervisor<'static, Noop>), (false, false));
    assert!(!send_sync!(NoopState).1);
    assert!(!send_sync!(SupervisorState<4096, Noop>).1);
    assert!(!send_sync!(PendingPublish<'static, Noop>).0);
    assert!(
        !send_sync!(Runner<'static, &'static common::WirePipe, &'static common::TxPipe, Noop>).0
    );
}
