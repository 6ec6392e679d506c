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
            let old = fo
                .try_publish(up, b"old", QoS::AtLeastOnce, false)
                .await
                .unwrap();
            NOW.store(5000, std::sync::atomic::Ordering::Relaxed);
            let new = fo
                .try_publish(up, b"new", QoS::AtLeastOnce, false)
                .await
                .unwrap();
            let mut stamps = Vec::new();
            fo.list_pending(|p| stamps.push(p.entry.stamp))
                .await
                .unwrap();
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
                        match fo
                            .try_publish(up, p.as_bytes(), QoS::AtLeastOnce, false)
                            .await
                        {
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
/// outbox (a future per ticket made it 2128 bytes), and `try_publish`
/// stays under 1 KiB. The outbox itself: 648 bytes with `flush`'s wait set
/// and the trace that counts unreadable items (528 before them).
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
    assert!(std::mem::size_of_val(&fo) <= 680);
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
        // The message whose removal failed is counted once, when it left
        // flash (not once per attempt).
        assert_eq!(fo.stats().dropped, 1);
        assert!(pending_ids(fo).await.is_empty());
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

/// A page of garbage in the region (a corrupted page): `open` either reads
/// what is left (every message it hands over is byte for byte one that was
/// stored) or says `FlashError::Corrupted`, and `open_erased` then starts
/// afresh; never a panic.
#[test]
fn a_corrupted_page_opens_as_a_typed_error_or_without_it_and_open_erased_starts_afresh() {
    let (sim, HostSide { reader, writer }) = Sim::start(SimConfig::default());
    let state: &'static mut State = Box::leak(Box::new(State::new()));
    let (modem, _runner) =
        bc26_mqtt::new(state, reader, writer, driver_config()).expect("consistent Config");
    let sup_state: &'static mut SupervisorState<2048> = Box::leak(Box::new(SupervisorState::new()));
    let (link, _sup) = supervisor::new(modem, sup_state, sup_config("h", 1, "c", leak([])));
    let (mut errors, mut opened) = (0, 0);
    for seed in 1..24u64 {
        let flash = Flash::new(8, seed);
        embassy_futures::block_on(async {
            let mut jbuf = [0u8; 400];
            let mut j = bc26_mqtt::supervisor::Journal::open(flash.clone(), REGION, &mut jbuf)
                .await
                .unwrap();
            for id in 1..=20u16 {
                let e = bc26_mqtt::supervisor::JournalEntry {
                    msg_id: id,
                    qos: QoS::AtLeastOnce,
                    retain: false,
                    stamp: 0,
                    topic: "t",
                    payload: &[id as u8; 80],
                };
                j.store(&e).await.unwrap();
            }
        });
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let junk: Vec<u8> = (0..512)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        flash.poke((seed % 4) as usize * 512, &junk);
        let buf: &'static mut [u8] = Box::leak(vec![0u8; 400].into_boxed_slice());
        let config = FlashOutboxConfig::new(REGION);
        match embassy_futures::block_on(FlashOutbox::<'static, Flash>::open(
            link,
            flash.clone(),
            buf,
            config.clone(),
        )) {
            Ok(fo) => {
                opened += 1;
                let mut bad = Vec::new();
                let r = embassy_futures::block_on(fo.list_pending(|p| {
                    if p.entry.payload != [p.entry.msg_id as u8; 80] {
                        bad.push(p.entry.msg_id);
                    }
                }));
                assert!(
                    r.is_ok() || r == Err(bc26_mqtt::FlashError::Corrupted),
                    "seed {seed}: {r:?}"
                );
                assert!(bad.is_empty(), "seed {seed}: garbled {bad:?}");
            }
            Err(e) => {
                errors += 1;
                assert_eq!(e, bc26_mqtt::FlashError::Corrupted, "seed {seed}");
                let buf: &'static mut [u8] = Box::leak(vec![0u8; 400].into_boxed_slice());
                let fo = embassy_futures::block_on(FlashOutbox::<'static, Flash>::open_erased(
                    link,
                    flash.clone(),
                    buf,
                    config,
                ))
                .expect("an erased region opens");
                assert!(embassy_futures::block_on(pending_ids(&fo)).is_empty());
            }
        }
    }
    eprintln!("a page of garbage: {opened} opened, {errors} Corrupted then erased");
    sim.shutdown();
}

/// A flash that fails while `run` removes delivered messages: each failure
/// is counted (`FlashStats::failures`, `last_failure`) and tried again
/// after `retry`; the supervisor goes on delivering meanwhile (a store
/// that cannot be journalled is refused, typed; the RAM outbox takes what
/// needs no flash); once the flash works again, flash empties.
#[test]
fn flash_failing_in_run_is_counted_and_retried_and_the_supervisor_goes_on() {
    let b = broker();
    let up: &'static str = leak(uniq("flash/failing"));
    let watcher = Watcher::new(b, &uniq("w-failing"), &[up]);
    let flash = Flash::new(8, 17);
    let ((), _) = boot(&flash, None, up, async |fo, _| {
        let link = fo.link();
        link.wait_online().await;
        let ten = Duration::from_secs(10);
        // Writes fail: the removal (which clears a CRC word) fails.
        let t = fo
            .try_publish(up, b"failing/1", QoS::AtLeastOnce, false)
            .await
            .unwrap();
        flash.fail_writes(true);
        assert!(fo.delivered(t).await.is_delivered());
        with_timeout(ten, async {
            while fo.stats().failures == 0 {
                Timer::after_millis(5).await;
            }
        })
        .await
        .expect("the failed removal is counted");
        assert_eq!(fo.stats().last_failure, Some(bc26_mqtt::FlashError::Write));
        assert_eq!(pending_ids(fo).await, [(t.msg_id, Some(t.msg_id))]);
        // The supervisor goes on: a store that cannot be journalled is a
        // typed error; QoS 0 and the RAM outbox still go out.
        assert_eq!(
            fo.try_publish(up, b"failing/never", QoS::AtLeastOnce, false)
                .await,
            Err(bc26_mqtt::Error::Flash(bc26_mqtt::FlashError::Write))
        );
        let z = fo.publish(up, b"failing/q0", QoS::AtMostOnce, false).await;
        assert_eq!(z, Outcome::Sent);
        let r = link
            .publish(up, b"failing/ram", QoS::AtLeastOnce, false)
            .await;
        assert!(r.is_delivered(), "{r:?}");
        // Erases fail: fill pages, then their removal must erase them.
        flash.fail_writes(false);
        flash.fail_erases(true);
        for k in 0..12 {
            let p = format!("failing/erase/{k}/{}", "e".repeat(40));
            let o = fo.publish(up, p.as_bytes(), QoS::AtLeastOnce, false).await;
            assert!(o.is_delivered(), "{o:?}");
        }
        with_timeout(ten, async {
            while fo.stats().last_failure != Some(bc26_mqtt::FlashError::Erase) {
                Timer::after_millis(5).await;
            }
        })
        .await
        .expect("the failed erase is counted");
        let failures = fo.stats().failures;
        // It keeps trying, and the link stays up.
        Timer::after(Duration::from_millis(2500)).await;
        assert!(fo.stats().failures > failures, "{:?}", fo.stats());
        assert!(link.state() == bc26_mqtt::supervisor::LinkState::Online);
        flash.fail_erases(false);
        with_timeout(ten, fo.flush())
            .await
            .expect("flash empties once it works");
        assert!(pending_ids(fo).await.is_empty());
        let s = fo.stats();
        assert_eq!(s.removed, s.stored, "{s:?}");
        eprintln!("{s:?}");
    });
    assert!(
        watcher.wait_for(up, std::time::Duration::from_secs(10), |got| {
            got.iter().any(|g| g == b"failing/1") && got.iter().any(|g| g == b"failing/ram")
        })
    );
}

/// `publish` waits for room in the table of `N` journalled messages while
/// the ended ones wait for their removal (deferred while another still owes
/// its result, `erase_defer`): it lets the other tasks run meanwhile (it
/// once polled its wait again and again without yielding, and the driver,
/// the supervisor and `run` never ran again). Run on a thread of its own,
/// so that a spin fails the test instead of hanging it.
#[test]
fn publish_waiting_for_room_behind_ended_messages_lets_the_other_tasks_run() {
    let up: &'static str = leak(uniq("flash/room"));
    let flash = Flash::new(8, 19);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let ((), _) = boot(&flash, None, up, async |fo, sim| {
            fo.link().wait_online().await;
            // The first message's acknowledgement is lost: it owes its result
            // for a while (retransmitted after `pkt_timeout`).
            sim.update_faults(|f| f.drop_acks = 1);
            let mut tickets = Vec::new();
            for k in 0..16 {
                let p = format!("room/{k}");
                tickets.push(
                    fo.try_publish(up, p.as_bytes(), QoS::AtLeastOnce, false)
                        .await
                        .unwrap(),
                );
            }
            // The other 15 end; their removal waits for the first.
            with_timeout(Duration::from_secs(10), async {
                while tickets[1..].iter().any(|t| fo.pending(*t)) {
                    Timer::after_millis(2).await;
                }
            })
            .await
            .expect("delivered");
            assert!(fo.pending(tickets[0]));
            assert_eq!(
                fo.try_publish(up, b"room/full", QoS::AtLeastOnce, false)
                    .await,
                Err(bc26_mqtt::Error::OutboxFull),
                "the table of 16 is full"
            );
            let o = with_timeout(
                Duration::from_secs(20),
                fo.publish(up, b"room/waited", QoS::AtLeastOnce, false),
            )
            .await
            .expect("publish ends");
            assert!(o.is_delivered(), "{o:?}");
        });
        tx.send(()).unwrap();
    });
    rx.recv_timeout(std::time::Duration::from_secs(40))
        .expect("the boot ends (publish did not spin)");
}
