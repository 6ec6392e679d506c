//! The flash outbox's journal (feature `flash-outbox`) on the flash test
//! double of `bc26_testkit::flash`: what it keeps across a reopen, its typed
//! errors, and the power-cut sweep: a workload of stores and removals is cut
//! at every step the flash takes (every word written, every page erased),
//! the cut step left in a seed-chosen partial state; after the power comes
//! back the journal opens, every message stored (its caller told so) and not
//! yet delivered is there exactly once and intact, nothing is there that was
//! never stored but the one message being stored, and the journal goes on
//! working.
//!
//! `cargo test --features flash-outbox --test flash_journal` sweeps a few
//! seeds; `BC26_FLASH_SWEEP=<seeds>` sweeps that many (from
//! `BC26_FLASH_SEED`, default 1). A failure prints its seed and cut.
#![cfg(feature = "flash-outbox")]

use std::collections::{BTreeMap, BTreeSet};

use bc26_mqtt::supervisor::{FlashError, Journal, JournalEntry};
use bc26_mqtt::QoS;
use bc26_testkit::flash::{CutErase, CutWhere, FlashDouble, WORD};
use embassy_futures::block_on;

type Flash = FlashDouble<256>;

fn entry<'m>(msg_id: u16, topic: &'m str, payload: &'m [u8], stamp: u32) -> JournalEntry<'m> {
    JournalEntry {
        msg_id,
        qos: if msg_id.is_multiple_of(3) {
            QoS::ExactlyOnce
        } else {
            QoS::AtLeastOnce
        },
        retain: msg_id.is_multiple_of(2),
        stamp,
        topic,
        payload,
    }
}

/// Owned copy of an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Owned {
    msg_id: u16,
    qos: QoS,
    retain: bool,
    stamp: u32,
    topic: String,
    payload: Vec<u8>,
}

fn owned(e: &JournalEntry<'_>) -> Owned {
    Owned {
        msg_id: e.msg_id,
        qos: e.qos,
        retain: e.retain,
        stamp: e.stamp,
        topic: e.topic.into(),
        payload: e.payload.to_vec(),
    }
}

async fn contents(j: &mut Journal<'_, Flash>) -> Result<Vec<Owned>, FlashError> {
    let mut out = Vec::new();
    j.scan(|e| {
        out.push(owned(e));
        bc26_mqtt::supervisor::Keep::Keep
    })
    .await?;
    Ok(out)
}

fn buf() -> &'static mut [u8] {
    Box::leak(vec![0u8; 256].into_boxed_slice())
}

#[test]
fn stored_messages_read_back_whole_and_in_order_after_a_reopen() {
    block_on(async {
        let flash = Flash::new(4, 1);
        let mut j = Journal::open(flash.clone(), 0..1024, buf()).await.unwrap();
        let stored: Vec<Owned> = (1..=5u16)
            .map(|i| {
                owned(&entry(
                    i,
                    "dev/7/up",
                    format!("payload {i}").as_bytes(),
                    100 + u32::from(i),
                ))
            })
            .collect();
        for e in &stored {
            j.store(&entry(e.msg_id, &e.topic, &e.payload, e.stamp))
                .await
                .unwrap();
        }
        assert_eq!(j.remove(|id| id == 2).await, Ok(1));
        drop(j);
        let mut j = Journal::open(flash.clone(), 0..1024, buf()).await.unwrap();
        let want: Vec<Owned> = stored.into_iter().filter(|e| e.msg_id != 2).collect();
        assert_eq!(contents(&mut j).await.unwrap(), want);
        assert_eq!((j.corrupted(), j.unreadable()), (0, 0));
        assert_eq!(flash.violations(), 0);
    })
}

#[test]
fn a_region_that_is_not_two_whole_pages_inside_the_flash_is_refused() {
    block_on(async {
        let flash = Flash::new(4, 1);
        for range in [0..256, 0..300, 10..522, 512..1280, 0..0] {
            let r = Journal::open(flash.clone(), range.clone(), buf()).await;
            assert_eq!(r.err(), Some(FlashError::Region), "{range:?}");
        }
        assert!(Journal::open(flash, 256..768, buf()).await.is_ok());
    })
}

#[test]
fn a_message_larger_than_a_page_or_the_buffer_is_too_large_and_nothing_is_written() {
    block_on(async {
        let flash = Flash::new(4, 1);
        let mut j = Journal::open(flash.clone(), 0..1024, buf()).await.unwrap();
        let before = flash.words_written();
        // 250 + 10 bytes: more than the 256-byte buffer.
        let r = j.store(&entry(1, "t", &[7; 250], 0)).await;
        assert_eq!(r, Err(FlashError::TooLarge));
        // Fits the buffer, not a page (256 bytes less markers and header).
        let r = j.store(&entry(1, "t", &[7; 240], 0)).await;
        assert_eq!(r, Err(FlashError::TooLarge));
        assert_eq!(flash.words_written(), before);
        assert!(contents(&mut j).await.unwrap().is_empty());
    })
}

#[test]
fn a_full_region_says_full_and_takes_messages_again_once_some_are_removed() {
    block_on(async {
        let flash = Flash::new(2, 1);
        let mut j = Journal::open(flash.clone(), 0..512, buf()).await.unwrap();
        let mut n = 0u16;
        loop {
            n += 1;
            match j.store(&entry(n, "t", &[1; 60], 0)).await {
                Ok(()) => {}
                Err(e) => {
                    assert_eq!(e, FlashError::Full);
                    break;
                }
            }
            assert!(n < 100);
        }
        assert!(n >= 4, "{n}");
        // Removing the oldest page's messages makes room.
        j.remove(|id| id < n / 2 + 1).await.unwrap();
        j.store(&entry(n, "t", &[1; 60], 0)).await.unwrap();
    })
}

#[test]
fn write_and_erase_failures_are_typed_errors_and_the_journal_goes_on_after_them() {
    block_on(async {
        let flash = Flash::new(2, 1);
        let mut j = Journal::open(flash.clone(), 0..512, buf()).await.unwrap();
        flash.fail_writes(true);
        assert_eq!(
            j.store(&entry(1, "t", b"x", 0)).await,
            Err(FlashError::Write)
        );
        flash.fail_writes(false);
        // Fill both pages, then empty them: turning to a page whose messages
        // are all gone erases it.
        let mut n = 1u16;
        while j.store(&entry(n, "t", &[1; 60], 0)).await.is_ok() {
            n += 1;
        }
        flash.fail_erases(true);
        let r = async {
            j.remove(|_| true).await?;
            j.store(&entry(n, "t", &[1; 60], 0)).await
        }
        .await;
        assert_eq!(r, Err(FlashError::Erase));
        flash.fail_erases(false);
        // The removal stopped at the failed erase: done again, it goes on.
        j.remove(|_| true).await.unwrap();
        j.store(&entry(n, "t", &[1; 60], 0)).await.unwrap();
        assert_eq!(
            contents(&mut j)
                .await
                .unwrap()
                .iter()
                .map(|e| e.msg_id)
                .collect::<Vec<_>>(),
            [n]
        );
    })
}

#[test]
fn an_entry_that_does_not_decode_is_counted_and_removed_never_a_panic() {
    block_on(async {
        use sequential_storage::cache::Cache;
        use sequential_storage::queue::{QueueConfig, QueueStorage};
        let flash = Flash::new(2, 1);
        {
            let mut j = Journal::open(flash.clone(), 0..512, buf()).await.unwrap();
            j.store(&entry(1, "a", b"1", 0)).await.unwrap();
        }
        // Items with a good CRC that are not ours: another format, a QoS 0,
        // a topic that is not UTF-8, too short.
        let mut q = QueueStorage::new(
            flash.clone(),
            QueueConfig::new(0..512),
            Cache::new_uncached(),
        );
        for raw in [
            &[9u8, 1, 5, 0, 0, 0, 0, 0, 1, 0, b'x'][..],
            &[1, 0, 5, 0, 0, 0, 0, 0, 1, 0, b'x'],
            &[1, 1, 5, 0, 0, 0, 0, 0, 1, 0, 0xFF],
            &[1, 1],
        ] {
            q.push(raw, false).await.unwrap();
        }
        drop(q);
        let mut j = Journal::open(flash.clone(), 0..512, buf()).await.unwrap();
        assert_eq!(j.corrupted(), 4);
        j.store(&entry(2, "b", b"2", 0)).await.unwrap();
        let ids: Vec<u16> = contents(&mut j)
            .await
            .unwrap()
            .iter()
            .map(|e| e.msg_id)
            .collect();
        assert_eq!(ids, [1, 2]);
        assert_eq!(j.corrupted(), 4, "removed: not counted twice");
    })
}

/// An item whose data no longer matches its CRC (a worn cell, a write cut
/// in its data) is skipped by `sequential-storage` and counted here
/// (`Journal::unreadable`); the others read back whole. The count pins
/// how `durable.rs` reads the dependency's reads (its `Trace`).
#[test]
fn an_item_whose_crc_fails_is_skipped_and_counted_unreadable_and_the_others_read_back() {
    block_on(async {
        let flash = Flash::new(4, 1);
        let pay = |id: u16| [0x40 + id as u8; 24];
        {
            let mut j = Journal::open(flash.clone(), 0..1024, buf()).await.unwrap();
            for id in 1..=6u16 {
                j.store(&entry(id, "t", &pay(id), 0)).await.unwrap();
            }
            assert_eq!(j.unreadable(), 0);
        }
        // A bit cleared in the payloads of 2 and of 6 (the last one).
        let snap = flash.snapshot();
        for id in [2u16, 6] {
            let at = snap.windows(24).position(|w| w == pay(id)).unwrap();
            flash.poke(at + 5, &[pay(id)[0] & !0x40]);
        }
        let mut j = Journal::open(flash.clone(), 0..1024, buf()).await.unwrap();
        assert_eq!(j.unreadable(), 2);
        let back = contents(&mut j).await.unwrap();
        assert_eq!(
            back.iter().map(|e| e.msg_id).collect::<Vec<_>>(),
            [1, 3, 4, 5]
        );
        assert!(back.iter().all(|e| e.payload == pay(e.msg_id)));
        assert_eq!((j.unreadable(), j.corrupted()), (2, 0), "not decoded");
        // A scan that stops early does not tell: the count stays.
        j.scan(|_| bc26_mqtt::supervisor::Keep::Stop).await.unwrap();
        assert_eq!(j.unreadable(), 2);
    })
}

#[test]
fn a_page_of_garbage_is_an_error_or_skipped_and_erase_all_makes_the_region_usable() {
    block_on(async {
        for seed in 1..40u64 {
            let flash = Flash::new(4, seed);
            {
                let mut j = Journal::open(flash.clone(), 0..1024, buf()).await.unwrap();
                for i in 1..=6 {
                    j.store(&entry(i, "t", &[i as u8; 50], 0)).await.unwrap();
                }
            }
            // Random bytes over one page (a corrupted page).
            let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            let page = (seed % 4) as usize * 256;
            let junk: Vec<u8> = (0..256)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            flash.poke(page, &junk);
            match Journal::open(flash.clone(), 0..1024, buf()).await {
                Ok(mut j) => {
                    // What is read back is what was stored.
                    if let Ok(all) = contents(&mut j).await {
                        for e in all {
                            assert_eq!(e.payload, vec![e.msg_id as u8; 50], "seed {seed}");
                        }
                    }
                }
                Err(e) => {
                    assert_eq!(e, FlashError::Corrupted, "seed {seed}");
                    let mut j = Journal::open_erased(flash.clone(), 0..1024, buf())
                        .await
                        .unwrap();
                    j.store(&entry(1, "t", b"x", 0)).await.unwrap();
                    assert_eq!(contents(&mut j).await.unwrap().len(), 1);
                }
            }
        }
    })
}

// ------------------------------------------------------------ the sweep

/// What the workload saw before the cut.
#[derive(Default, Debug)]
struct Ledger {
    /// Stored: the caller was told so (its ticket).
    stored: BTreeMap<u16, Owned>,
    /// Delivered (the broker had it): removal from flash may follow.
    delivered: BTreeSet<u16>,
    /// The message being stored when the power went.
    storing: Option<Owned>,
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

const PAGES: usize = 4;
const REGION: std::ops::Range<u32> = 0..(PAGES * 256) as u32;

fn message(id: u16, rng: &mut Rng) -> Owned {
    let len = (rng.next() % 70) as usize;
    Owned {
        msg_id: id,
        qos: if id.is_multiple_of(3) {
            QoS::ExactlyOnce
        } else {
            QoS::AtLeastOnce
        },
        retain: id.is_multiple_of(2),
        stamp: u32::from(id) * 10,
        topic: format!("dev/{}/up", id % 5),
        payload: (0..len).map(|k| (id as usize * 31 + k) as u8).collect(),
    }
}

/// Stores and removes messages (`ops` operations, chosen by `seed`) until
/// the flash fails. Messages are delivered out of order, as acks come.
async fn workload(flash: &Flash, seed: u64, ops: usize, first_id: u16, ledger: &mut Ledger) {
    let mut rng = Rng(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1);
    let Ok(mut j) = Journal::open(flash.clone(), REGION, buf()).await else {
        return;
    };
    let mut next = first_id;
    for _ in 0..ops {
        let queued: Vec<u16> = ledger
            .stored
            .keys()
            .filter(|id| !ledger.delivered.contains(id))
            .copied()
            .collect();
        if queued.len() < 2 || rng.next() % 100 < 55 {
            let m = message(next, &mut rng);
            ledger.storing = Some(m.clone());
            match j
                .store(&JournalEntry {
                    msg_id: m.msg_id,
                    qos: m.qos,
                    retain: m.retain,
                    stamp: m.stamp,
                    topic: &m.topic,
                    payload: &m.payload,
                })
                .await
            {
                Ok(()) => {
                    ledger.storing = None;
                    ledger.stored.insert(m.msg_id, m);
                    next += 1;
                }
                Err(FlashError::Full) => {
                    ledger.storing = None;
                }
                Err(_) => return,
            }
        } else {
            // The broker acknowledged one (any of those queued): it is
            // delivered, then removed.
            let id = queued[(rng.next() % queued.len() as u64) as usize];
            ledger.delivered.insert(id);
            if j.remove(|m| m == id).await.is_err() {
                return;
            }
        }
    }
}

/// One run cut at step `cut` (none: `u64::MAX`); `Err` says what broke.
/// The steps the workload took, where it was cut, and the items skipped
/// (CRC) on the reopen.
async fn run(seed: u64, cut: u64) -> Result<(u64, Option<CutWhere>, u32), String> {
    let flash = Flash::new(PAGES, seed);
    if cut != u64::MAX {
        flash.cut_after(cut);
    }
    let mut ledger = Ledger::default();
    workload(&flash, seed, 60, 1, &mut ledger).await;
    let steps = flash.steps();
    let how = flash.last_cut();
    flash.no_cut();
    flash.power_on();
    let ctx = |what: String| format!("seed {seed} cut {cut} ({how:?}): {what}\n{ledger:?}");
    let mut j = Journal::open(flash.clone(), REGION, buf())
        .await
        .map_err(|e| ctx(format!("does not open: {e:?}")))?;
    let found = contents(&mut j)
        .await
        .map_err(|e| ctx(format!("does not read: {e:?}")))?;
    if j.corrupted() != 0 {
        return Err(ctx(format!("{} corrupted entries", j.corrupted())));
    }
    let unreadable = j.unreadable();
    let mut seen = BTreeSet::new();
    for e in &found {
        if !seen.insert(e.msg_id) {
            return Err(ctx(format!("msgID {} twice", e.msg_id)));
        }
        let want = ledger
            .stored
            .get(&e.msg_id)
            .or(ledger.storing.as_ref().filter(|s| s.msg_id == e.msg_id));
        match want {
            Some(w) if w == e => {}
            Some(w) => return Err(ctx(format!("{e:?} read back, {w:?} stored"))),
            None => return Err(ctx(format!("{e:?} was never stored"))),
        }
    }
    for (id, _) in ledger.stored.iter() {
        if !ledger.delivered.contains(id) && !seen.contains(id) {
            return Err(ctx(format!("msgID {id} stored, not delivered, lost")));
        }
    }
    if flash.violations() != 0 {
        return Err(ctx("a write set a cleared bit".into()));
    }
    // It goes on: more stores and removals, then everything delivered.
    drop(j);
    let mut after = Ledger {
        stored: found.iter().map(|e| (e.msg_id, e.clone())).collect(),
        ..Ledger::default()
    };
    workload(&flash, seed ^ 0x55, 30, 1000, &mut after).await;
    let mut j = Journal::open(flash.clone(), REGION, buf())
        .await
        .map_err(|e| ctx(format!("after the cut: does not open again: {e:?}")))?;
    let left: BTreeSet<u16> = contents(&mut j)
        .await
        .map_err(|e| ctx(format!("after the cut: {e:?}")))?
        .iter()
        .map(|e| e.msg_id)
        .collect();
    let want: BTreeSet<u16> = after
        .stored
        .keys()
        .filter(|id| !after.delivered.contains(id))
        .copied()
        .collect();
    if left != want {
        return Err(ctx(format!(
            "after the cut: {left:?} held, {want:?} expected"
        )));
    }
    j.remove(|_| true)
        .await
        .map_err(|e| ctx(format!("after the cut, emptying: {e:?}")))?;
    Ok((steps, how, unreadable))
}

fn sweep(seeds: std::ops::Range<u64>) {
    let seeds_swept = seeds.end - seeds.start;
    let mut failures = Vec::new();
    let mut cuts = 0u64;
    // Cuts in a write, in an erase (untouched, prefix, bits).
    let mut kinds = [0u64; 4];
    // Cuts in a write, by the items skipped (their CRC failed) on reopen.
    let mut skipped: BTreeMap<u32, u64> = BTreeMap::new();
    for seed in seeds {
        let (steps, _, u) = block_on(run(seed, u64::MAX)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(u, 0, "seed {seed}: uncut, items skipped");
        for cut in 1..=steps {
            cuts += 1;
            match block_on(run(seed, cut)) {
                Err(e) => {
                    eprintln!("{e}");
                    failures.push((seed, cut));
                }
                Ok((_, how, u)) => match how {
                    Some(CutWhere::Write(_)) => {
                        kinds[0] += 1;
                        *skipped.entry(u).or_default() += 1;
                    }
                    Some(CutWhere::Erase(_, CutErase::Untouched)) => kinds[1] += 1,
                    Some(CutWhere::Erase(_, CutErase::Prefix(_))) => kinds[2] += 1,
                    Some(CutWhere::Erase(_, CutErase::Bits(_))) => kinds[3] += 1,
                    None => panic!("seed {seed} cut {cut}: no cut happened"),
                },
            }
        }
    }
    eprintln!(
        "{cuts} cuts ({} in a write; in an erase: {} untouched, {} a prefix, {} bits), {} failures",
        kinds[0],
        kinds[1],
        kinds[2],
        kinds[3],
        failures.len()
    );
    eprintln!("cuts in a write, by items skipped (unreadable) on reopen: {skipped:?}");
    // A write cut in an item's data (or in the CRC word a removal clears)
    // leaves that one item unreadable: counted, and never more than it.
    assert!(skipped.keys().any(|&u| u > 0), "{skipped:?}");
    assert!(skipped.keys().all(|&u| u <= 1), "{skipped:?}");
    // Erases were cut too (each way, in a sweep of 20 seeds or more).
    assert!(kinds[1..].iter().sum::<u64>() > 0, "{kinds:?}");
    if seeds_swept >= 20 {
        assert!(kinds[1..].iter().all(|&k| k > 0), "{kinds:?}");
    }
    assert!(failures.is_empty(), "seed/cut that failed: {failures:?}");
}

#[test]
fn a_power_cut_at_any_step_loses_no_stored_message_and_corrupts_none() {
    let first: u64 = std::env::var("BC26_FLASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let seeds: u64 = std::env::var("BC26_FLASH_SWEEP")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    sweep(first..first + seeds);
}

#[test]
fn the_double_cuts_where_told_and_leaves_the_cut_word_partly_written() {
    block_on(async {
        use embedded_storage_async::nor_flash::{NorFlash, ReadNorFlash};
        let mut partial = 0;
        for seed in 1..50 {
            let mut f = Flash::new(2, seed);
            f.cut_after(2);
            assert!(f.write(0, &[0; WORD]).await.is_ok());
            assert!(f.write(WORD as u32, &[0; WORD]).await.is_err());
            assert!(f.is_off());
            let mut b = [0; WORD];
            assert!(f.read(0, &mut b).await.is_err(), "off: no read");
            f.power_on();
            f.read(WORD as u32, &mut b).await.unwrap();
            if b != [0; WORD] && b != [0xFF; WORD] {
                partial += 1;
            }
            f.cut_after(1);
            assert!(f.erase(0, 256).await.is_err());
            f.power_on();
            assert_eq!(f.erases()[0], 1);
        }
        assert!(partial > 40, "{partial}");
    })
}

// ------------------------------------------------------------ wear

/// Bytes a message takes in flash: `sequential-storage`'s item header (8),
/// then our entry (10 + topic + payload) padded to a word.
fn item_bytes(topic: usize, payload: usize) -> usize {
    8 + (10 + topic + payload).div_ceil(WORD) * WORD
}

/// Messages a page holds: its bytes less the two page markers (a word
/// each), in whole items (an item never spans two pages).
fn per_page(page: usize, item: usize) -> usize {
    (page - 2 * WORD) / item
}

/// The figure of docs/design.md ("Flash outbox: wear"): 4 KiB pages, a
/// message of a 20-byte topic and a 100-byte payload (140 bytes in flash),
/// 29 to a page: one erase per 29 messages. Streamed through a region of 4
/// pages on the double, the pages are erased as often as that says (within
/// one turn of the region), each as often as the others, and every erase
/// happens while messages are removed, none while one is stored.
#[test]
fn a_message_costs_one_page_erase_per_messages_a_page_holds_spread_over_the_region() {
    const PAGE: usize = 4096;
    const N: usize = 2000;
    let item = item_bytes(20, 100);
    assert_eq!((item, per_page(PAGE, item)), (140, 29));
    let (erases, in_store, per_page_erases) = block_on(async {
        let flash = FlashDouble::<PAGE>::new(4, 1);
        let mut j = Journal::open(flash.clone(), 0..(4 * PAGE) as u32, buf())
            .await
            .unwrap();
        let topic = "t".repeat(20);
        let mut in_store = 0;
        let mut next = 1u16;
        let mut queued = std::collections::VecDeque::new();
        for k in 0..N {
            let before = flash.total_erases();
            j.store(&entry(next, &topic, &[k as u8; 100], 0))
                .await
                .unwrap();
            in_store += flash.total_erases() - before;
            queued.push_back(next);
            next = next % 60000 + 1;
            // Up to 8 waiting for their acknowledgement, acked in bursts.
            if queued.len() == 8 || k % 5 == 0 {
                let acked: Vec<u16> = queued.drain(..).collect();
                j.remove(|id| acked.contains(&id)).await.unwrap();
            }
        }
        (flash.total_erases(), in_store, flash.erases())
    });
    let want = N as f64 / 29.0;
    eprintln!(
        "{N} messages: {erases} page erases ({want:.1} by the figure), {in_store} while storing, per page {per_page_erases:?}"
    );
    assert!(
        (erases as f64 - want).abs() <= 4.0,
        "{erases} erases, figure {want:.1}"
    );
    let (lo, hi) = (
        per_page_erases.iter().min().unwrap(),
        per_page_erases.iter().max().unwrap(),
    );
    assert!(hi - lo <= 1, "uneven wear: {per_page_erases:?}");
    assert_eq!(in_store, 0, "an erase while a message was being stored");
    // The lifetime of docs/design.md: a region of 4 such pages rated for
    // 10 000 cycles, one message every 10 minutes: 22.1 years.
    let per_year = 6.0 * 24.0 * 365.25;
    let years = 10_000.0 * 4.0 / (erases as f64 / N as f64) / per_year;
    assert!(
        (years - 22.1).abs() < 1.2,
        "{years:.1} years, 22.1 in the figure"
    );
}
