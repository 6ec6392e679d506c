//! A supervisor with a flash outbox (feature `flash-outbox`), against the
//! BC26 simulator and the in-process broker, watched by an independent MQTT
//! client, across resets of the microcontroller: a reset drops the driver's
//! and the supervisor's memory (their `State`s) and keeps only the flash
//! double; the next boot opens the same flash.
#![cfg(feature = "flash-outbox")]

mod common;

use bc26_mqtt::supervisor::{self, FlashOutbox, FlashOutboxConfig, Outcome, SupervisorState};
use bc26_mqtt::{QoS, State, Subscription};
use bc26_sim::broker::{broker, closed_port, Watcher};
use bc26_sim::{HostSide, Sim, SimConfig, SimHandle};
use bc26_testkit::flash::FlashDouble;
use common::rig::{block_on, driver_config, leak, sup_config, uniq};
use embassy_futures::select::{select4, Either4};
use embassy_time::{with_timeout, Duration, Timer};

type Flash = FlashDouble<512>;

const REGION: core::ops::Range<u32> = 0..4096;

/// One boot of the device: a fresh driver and supervisor (new `State`s) on
/// a fresh simulator, with a flash outbox on `flash`; `body` runs beside the
/// driver, the supervisor and the outbox's task. Returns what `body` returns
/// and the AT lines the device wrote.
fn boot<T>(
    flash: &Flash,
    port: Option<u16>,
    up: &'static str,
    body: impl AsyncFnOnce(&FlashOutbox<'static, Flash>, &SimHandle) -> T,
) -> (T, String) {
    let b = broker();
    let (sim, HostSide { reader, writer }): (SimHandle, HostSide) =
        Sim::start(SimConfig::default());
    let state: &'static mut State = Box::leak(Box::new(State::new()));
    let (modem, runner) =
        bc26_mqtt::new(state, reader, writer, driver_config()).expect("consistent Config");
    let subs: &'static [Subscription<'static>] = leak([]);
    let host: &'static str = leak(b.host.clone());
    let id: &'static str = leak(uniq("flash"));
    let config = sup_config(host, port.unwrap_or(b.port), id, subs);
    let sup_state: &'static mut SupervisorState<2048> = Box::leak(Box::new(SupervisorState::new()));
    let (link, sup) = supervisor::new(modem, sup_state, config);
    let buf: &'static mut [u8] = Box::leak(vec![0u8; 400].into_boxed_slice());
    let _ = up;
    let out = block_on(std::time::Duration::from_secs(60), async {
        let fo: FlashOutbox<'static, Flash> =
            FlashOutbox::open(link, flash.clone(), buf, FlashOutboxConfig::new(REGION))
                .await
                .expect("the flash outbox opens");
        let fo = &fo;
        match select4(runner.run(), sup.run(), fo.run(), body(fo, &sim)).await {
            Either4::First(n) | Either4::Second(n) | Either4::Third(n) => n,
            Either4::Fourth(v) => v,
        }
    });
    let at = String::from_utf8_lossy(&sim.host_transcript()).into_owned();
    sim.shutdown();
    (out, at)
}

/// The msgIDs of the `AT+QMTPUB` lines the device wrote.
fn published_ids(at: &str) -> Vec<u16> {
    at.split(['\r', '\n'])
        .filter_map(|l| l.strip_prefix("AT+QMTPUB=0,"))
        .filter_map(|rest| rest.split(',').next()?.parse().ok())
        .collect()
}

async fn pending_ids(fo: &FlashOutbox<'static, Flash>) -> Vec<(u16, Option<u16>)> {
    let mut v = Vec::new();
    fo.list_pending(|p| v.push((p.entry.msg_id, p.ticket.map(|t| t.msg_id))))
        .await
        .unwrap();
    v
}

#[test]
fn messages_pending_at_a_reset_are_sent_after_it_under_their_msg_ids_and_new_ids_go_above() {
    let b = broker();
    let up: &'static str = leak(uniq("flash/up"));
    let watcher = Watcher::new(b, &uniq("w-flash"), &[up]);
    let flash = Flash::new(8, 7);

    // Boot 1, online: delivered messages leave flash.
    let ((), _) = boot(&flash, None, up, async |fo, _| {
        fo.link().wait_online().await;
        for k in 0..3 {
            let o = fo
                .publish(up, format!("boot1/{k}").as_bytes(), QoS::AtLeastOnce, false)
                .await;
            assert!(matches!(o, Outcome::Acknowledged { .. }), "{o:?}");
        }
        while fo.stats().removed < 3 {
            Timer::after_millis(5).await;
        }
        assert!(pending_ids(fo).await.is_empty());
    });

    // Boot 2, the broker unreachable: messages are journalled (their
    // tickets given), QoS 0 is refused, nothing goes out. Then the reset.
    let (stored, at2) = boot(&flash, Some(closed_port()), up, async |fo, _| {
        let mut ids = Vec::new();
        for k in 0..5 {
            let t = fo
                .try_publish(
                    up,
                    format!("boot2/{k}").as_bytes(),
                    QoS::AtLeastOnce,
                    k == 4,
                )
                .await
                .expect("stored");
            ids.push(t.msg_id);
        }
        assert_eq!(
            fo.try_publish(up, b"qos0", QoS::AtMostOnce, false).await,
            Err(bc26_mqtt::Error::Offline)
        );
        // Let the supervisor try (and fail) for a while.
        Timer::after(Duration::from_millis(300)).await;
        let pending = pending_ids(fo).await;
        assert_eq!(
            pending,
            ids.iter().map(|&i| (i, Some(i))).collect::<Vec<_>>(),
            "flash holds them, oldest first, each in the outbox under its msgID"
        );
        ids
    });
    assert!(published_ids(&at2).is_empty(), "boot 2 sent nothing");
    let highest = *stored.iter().max().unwrap();

    // Boot 3, online again: what flash holds goes out under the msgIDs it
    // had; a new message gets a msgID above them; flash empties.
    let (new_id, at3) = boot(&flash, None, up, async |fo, _| {
        assert_eq!(fo.stats().reloaded, 5);
        fo.link().wait_online().await;
        // The reloaded ones go first and leave flash; then a new one, whose
        // msgID is not one of theirs again.
        with_timeout(Duration::from_secs(20), async {
            while !pending_ids(fo).await.is_empty() {
                Timer::after_millis(5).await;
            }
        })
        .await
        .expect("the reloaded messages are delivered");
        // QoS 0 goes to the outbox only, never to flash.
        let z = fo
            .try_publish(up, b"boot3/qos0", QoS::AtMostOnce, false)
            .await
            .unwrap();
        assert_eq!(z.msg_id, 0);
        assert!(pending_ids(fo).await.is_empty(), "QoS 0 journalled");
        let t = fo
            .try_publish(up, b"boot3/new", QoS::AtLeastOnce, false)
            .await
            .unwrap();
        let o = with_timeout(Duration::from_secs(20), fo.link().delivered(t))
            .await
            .expect("delivered");
        assert!(o.is_delivered(), "{o:?}");
        with_timeout(Duration::from_secs(20), fo.link().flush())
            .await
            .expect("the outbox empties");
        while !pending_ids(fo).await.is_empty() {
            Timer::after_millis(5).await;
        }
        assert_eq!(fo.stats().removed, 6);
        t.msg_id
    });
    assert!(
        new_id > highest,
        "new msgID {new_id}, stored up to {highest}"
    );
    let sent = published_ids(&at3);
    for id in &stored {
        assert!(
            sent.contains(id),
            "msgID {id} not sent after the reset: {sent:?}"
        );
    }
    let want: Vec<Vec<u8>> = (0..3)
        .map(|k| format!("boot1/{k}"))
        .chain((0..5).map(|k| format!("boot2/{k}")))
        .chain(["boot3/new".to_string()])
        .map(String::into_bytes)
        .collect();
    let ok = watcher.wait_for(up, std::time::Duration::from_secs(10), |got| {
        want.iter().all(|w| got.contains(w))
    });
    let got = watcher.payloads(up);
    assert!(
        ok,
        "the watcher misses {:?}",
        want.iter()
            .filter(|w| !got.contains(w))
            .map(|w| String::from_utf8_lossy(w).into_owned())
            .collect::<Vec<_>>()
    );
}

#[test]
fn stale_messages_are_dropped_by_age_and_their_tickets_say_dropped() {
    let flash = Flash::new(8, 3);
    let up: &'static str = leak(uniq("flash/stale"));
    static NOW: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1000);
    let b = broker();
    let (sim, HostSide { reader, writer }) = Sim::start(SimConfig::default());
    let state: &'static mut State = Box::leak(Box::new(State::new()));
    let (modem, runner) =
        bc26_mqtt::new(state, reader, writer, driver_config()).expect("consistent Config");
    let host: &'static str = leak(b.host.clone());
    let config = sup_config(host, closed_port(), leak(uniq("stale")), leak([]));
    let sup_state: &'static mut SupervisorState<2048> = Box::leak(Box::new(SupervisorState::new()));
    let (link, sup) = supervisor::new(modem, sup_state, config);
    let buf: &'static mut [u8] = Box::leak(vec![0u8; 400].into_boxed_slice());
    block_on(std::time::Duration::from_secs(30), async {
        let mut cfg = FlashOutboxConfig::new(REGION);
        cfg.clock = || NOW.load(std::sync::atomic::Ordering::Relaxed);
        let fo: FlashOutbox<'static, Flash> = FlashOutbox::open(link, flash.clone(), buf, cfg)
            .await
            .unwrap();
        let fo = &fo;
        let body = async {
            let old = fo.try_publish(up, b"old", QoS::AtLeastOnce, false).await.unwrap();
            NOW.store(5000, std::sync::atomic::Ordering::Relaxed);
            let new = fo.try_publish(up, b"new", QoS::AtLeastOnce, false).await.unwrap();
            let mut stamps = Vec::new();
            fo.list_pending(|p| stamps.push(p.entry.stamp)).await.unwrap();
            assert_eq!(stamps, [1000, 5000]);
            assert_eq!(fo.drop_older_than(4000).await, Ok(1));
            assert_eq!(fo.link().outcome(old), Some(Outcome::Dropped));
            assert_eq!(fo.link().outcome(new), None);
            assert_eq!(pending_ids(fo).await, [(new.msg_id, Some(new.msg_id))]);
        };
        match select4(runner.run(), sup.run(), fo.run(), body).await {
            Either4::First(n) | Either4::Second(n) | Either4::Third(n) => n,
            Either4::Fourth(()) => {}
        }
    });
    sim.shutdown();
}

/// Erases wait for a quiet UART: the removal of acknowledged messages from
/// flash (where pages are erased) waits until none of the journalled
/// messages still owes its result, so no erase happens while the modem may
/// be sending one (docs/design.md, "Flash outbox: erases and the UART").
#[test]
fn pages_are_erased_only_while_no_journalled_message_owes_its_result() {
    let b = broker();
    let up: &'static str = leak(uniq("flash/quiet"));
    let watcher = Watcher::new(b, &uniq("w-quiet"), &[up]);
    let flash = Flash::new(8, 11);
    let at_erase = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let ((), _) = boot(&flash, None, up, async |fo, _| {
        let link = fo.link();
        let rec = at_erase.clone();
        flash.on_erase(move |_| rec.lock().unwrap().push(link.outbox().messages));
        link.wait_online().await;
        for burst in 0..8 {
            let mut tickets = Vec::new();
            for k in 0..8 {
                let p = format!("quiet/{burst}/{k}/{}", "x".repeat(20));
                tickets.push(
                    fo.try_publish(up, p.as_bytes(), QoS::AtLeastOnce, false)
                        .await
                        .unwrap(),
                );
            }
            for t in tickets {
                let o = with_timeout(Duration::from_secs(20), link.delivered(t))
                    .await
                    .expect("delivered");
                assert!(o.is_delivered(), "{o:?}");
            }
            with_timeout(Duration::from_secs(10), async {
                while fo.stats().removed < 8 * (burst + 1) {
                    Timer::after_millis(2).await;
                }
            })
            .await
            .expect("removed from flash");
        }
    });
    let seen = at_erase.lock().unwrap().clone();
    eprintln!("messages in the outbox at each erase: {seen:?}");
    assert!(seen.len() >= 3, "pages were erased: {seen:?}");
    assert!(
        seen.iter().all(|&n| n == 0),
        "an erase while messages were owed: {seen:?}"
    );
    assert!(
        watcher.wait_for(up, std::time::Duration::from_secs(10), |got| got.len()
            >= 64)
    );
}

/// The supervisor's faults (the link closed or reset, the modem rebooted or
/// silent) and resets of the microcontroller, at random, while messages are
/// stored through the flash outbox: every message whose ticket was given
/// reaches the watcher. `BC26_FLASH_BOOTS` boots (default 8), from
/// `BC26_FLASH_SEED`.
#[test]
fn link_faults_and_resets_at_random_lose_no_message_whose_ticket_was_given() {
    let b = broker();
    let up: &'static str = leak(uniq("flash/soak"));
    let watcher = Watcher::new(b, &uniq("w-soak"), &[up]);
    let boots: u64 = std::env::var("BC26_FLASH_BOOTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    let mut seed: u64 = std::env::var("BC26_FLASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(21)
        | 1;
    let flash = Flash::new(8, seed);
    let mut given: Vec<String> = Vec::new();
    let mut next = 0u32;
    for boot_no in 0..boots {
        let mut rng = {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let mut x = seed | 1;
            move || {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x
            }
        };
        let (mine, _) = boot(&flash, None, up, async |fo, sim| {
            let mut mine = Vec::new();
            // The reset comes after 200-1500 ms, wherever the link is.
            let reset = embassy_time::Instant::now() + Duration::from_millis(200 + rng() % 1300);
            while embassy_time::Instant::now() < reset {
                match rng() % 10 {
                    0 => sim.close_link(0, 1 + (rng() % 7) as u8),
                    1 => sim.break_link(0),
                    2 => sim.reboot(),
                    _ => {
                        let p = format!("soak/{boot_no}/{next}");
                        match fo.try_publish(up, p.as_bytes(), QoS::AtLeastOnce, false).await {
                            Ok(_) => {
                                mine.push(p);
                                next += 1;
                            }
                            // Full while the link is down: later.
                            Err(bc26_mqtt::Error::OutboxFull) => {}
                            Err(e) => panic!("store: {e:?}"),
                        }
                    }
                }
                Timer::after(Duration::from_millis(rng() % 60)).await;
            }
            mine
        });
        eprintln!("boot {boot_no}: {} messages given tickets", mine.len());
        given.extend(mine);
    }
    // The last boot: no fault; what flash holds goes out.
    let ((), _) = boot(&flash, None, up, async |fo, _| {
        with_timeout(Duration::from_secs(30), async {
            while !pending_ids(fo).await.is_empty() {
                Timer::after_millis(10).await;
            }
        })
        .await
        .expect("flash empties");
    });
    let ok = watcher.wait_for(up, std::time::Duration::from_secs(10), |got| {
        given.iter().all(|w| got.iter().any(|g| g == w.as_bytes()))
    });
    let got = watcher.payloads(up);
    let missing: Vec<&String> = given
        .iter()
        .filter(|w| !got.iter().any(|g| g == w.as_bytes()))
        .collect();
    eprintln!(
        "{boots} resets: {} messages given tickets, {} received ({} copies beyond one)",
        given.len(),
        got.len(),
        got.len() as i64 - given.len() as i64
    );
    assert!(ok && missing.is_empty(), "never received: {missing:?}");
}

/// The sizes of docs/design.md ("What survives a reset", memory), on this
/// host: `run` waits for its 16 tickets with one registration on the
/// outbox (a future per ticket made it 2128 bytes), and `store` stays
/// under 1 KiB.
#[test]
fn the_flash_outbox_and_its_futures_stay_small() {
    let flash = Flash::new(8, 1);
    let (sim, HostSide { reader, writer }) = Sim::start(SimConfig::default());
    let state: &'static mut State = Box::leak(Box::new(State::new()));
    let (modem, _runner) =
        bc26_mqtt::new(state, reader, writer, driver_config()).expect("consistent Config");
    let config = sup_config("h", 1, "c", leak([]));
    let sup_state: &'static mut SupervisorState<2048> = Box::leak(Box::new(SupervisorState::new()));
    let (link, _sup) = supervisor::new(modem, sup_state, config);
    let buf: &'static mut [u8] = Box::leak(vec![0u8; 400].into_boxed_slice());
    let open =
        FlashOutbox::<'static, Flash>::open(link, flash, buf, FlashOutboxConfig::new(REGION));
    eprintln!("open future: {}", std::mem::size_of_val(&open));
    let fo = embassy_futures::block_on(open).unwrap();
    eprintln!("FlashOutbox<N=16>: {}", std::mem::size_of_val(&fo));
    eprintln!(
        "try_publish future: {}",
        std::mem::size_of_val(&fo.try_publish("t", b"p", QoS::AtLeastOnce, false))
    );
    eprintln!("run future: {}", std::mem::size_of_val(&fo.run()));
    assert!(std::mem::size_of_val(&fo.run()) <= 1100);
    assert!(std::mem::size_of_val(&fo.try_publish("t", b"p", QoS::AtLeastOnce, false)) <= 1024);
    assert!(std::mem::size_of_val(&fo) <= 600);
    sim.shutdown();
}

/// Bad flash is a typed error, never a panic nor a stored message without
/// its journal entry: a region too small, a failing write (nothing stored,
/// the outbox holds nothing), a failing removal; afterwards it works again.
#[test]
fn bad_flash_is_a_typed_error_and_nothing_is_stored_without_its_entry() {
    let flash = Flash::new(8, 5);
    let ((), _) = boot(&flash, Some(closed_port()), "x", async |fo, _| {
        let link = fo.link();
        flash.fail_writes(true);
        assert_eq!(
            fo.try_publish("t/x", b"1", QoS::AtLeastOnce, false).await,
            Err(bc26_mqtt::Error::Flash(bc26_mqtt::FlashError::Write))
        );
        assert_eq!(link.outbox().messages, 0);
        assert!(pending_ids(fo).await.is_empty());
        flash.fail_writes(false);
        let t = fo
            .try_publish("t/x", b"2", QoS::AtLeastOnce, false)
            .await
            .unwrap();
        flash.fail_writes(true);
        assert_eq!(
            fo.drop_older_than(1).await,
            Err(bc26_mqtt::FlashError::Write)
        );
        flash.fail_writes(false);
        assert_eq!(fo.drop_older_than(1).await, Ok(1));
        assert_eq!(link.outcome(t), Some(Outcome::Dropped));
    });
    // A region of one page, one outside the flash: refused, typed.
    let (sim, HostSide { reader, writer }) = Sim::start(SimConfig::default());
    let state: &'static mut State = Box::leak(Box::new(State::new()));
    let (modem, _runner) =
        bc26_mqtt::new(state, reader, writer, driver_config()).expect("consistent Config");
    let sup_state: &'static mut SupervisorState<2048> = Box::leak(Box::new(SupervisorState::new()));
    let (link, _sup) = supervisor::new(modem, sup_state, sup_config("h", 1, "c", leak([])));
    for range in [0..512, 0..8192] {
        let buf: &'static mut [u8] = Box::leak(vec![0u8; 64].into_boxed_slice());
        let r = embassy_futures::block_on(FlashOutbox::<'static, Flash>::open(
            link,
            flash.clone(),
            buf,
            FlashOutboxConfig::new(range.clone()),
        ));
        assert_eq!(r.err(), Some(bc26_mqtt::FlashError::Region), "{range:?}");
    }
    sim.shutdown();
}
