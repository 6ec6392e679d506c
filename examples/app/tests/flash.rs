//! The application with its telemetry journalled in flash
//! (`run_with_flash`, feature `flash-outbox`), on the fake modem and the
//! test kit's NOR flash: what was stored before a reset of the
//! microcontroller is published after it.

mod common;

use std::collections::{HashMap, VecDeque};
use std::vec::Vec;

use bc26_mqtt::supervisor::{Journal, Keep};
use bc26_testkit::flash::FlashDouble;
use common::*;
use embassy_time::{Duration, Instant, Timer};

/// Four pages of 4 KiB, as on the nRF52840.
const REGION: core::ops::Range<u32> = 0..4 * 4096;

/// What the flash holds: (msgID, payload), oldest first.
async fn journalled(flash: &FlashDouble<4096>) -> Vec<(u16, String)> {
    let mut buf = [0u8; 256];
    let mut j = Journal::open(flash.clone(), REGION, &mut buf)
        .await
        .expect("the journal opens");
    let mut out = Vec::new();
    j.scan(|e| {
        assert_eq!(e.topic, TELEMETRY);
        out.push((e.msg_id, String::from_utf8(e.payload.to_vec()).unwrap()));
        Keep::Keep
    })
    .await
    .expect("the journal reads");
    out
}

/// The msgIDs of the host's `AT+QMTPUB` lines on the telemetry topic.
fn telemetry_msg_ids(s: &Script) -> Vec<u16> {
    s.log
        .iter()
        .filter_map(|l| l.strip_prefix("AT+QMTPUB=0,"))
        .filter(|l| l.contains(TELEMETRY))
        .map(|l| l[..l.find(',').unwrap()].parse().unwrap())
        .collect()
}

#[test]
fn telemetry_stored_before_a_reset_is_published_after_it_in_order_under_its_msg_ids() {
    run(async {
        let flash = FlashDouble::<4096>::new(4, 21);
        let mut cfg = config();
        cfg.timing.telemetry_period = Duration::from_millis(20);

        // First boot: the modem never registers, the link never comes up;
        // telemetry goes to flash (and the RAM outbox) every 20 ms.
        let h = Harness::new();
        let fake = h.fake;
        fake.set(|s| {
            s.cereg = VecDeque::new();
            s.registered = 2;
        });
        h.run_with_flash(cfg, flash.clone(), REGION, async {
            Timer::after_millis(200).await;
        })
        .await;
        assert_eq!(fake.get(|s| s.publishes.len()), 0, "nothing went out");

        // The reset: the application's RAM is gone; the flash holds what it
        // stored (a store cut by the reset is not there, and its caller had
        // no ticket).
        let stored = journalled(&flash).await;
        assert!(stored.len() >= 4, "{stored:?}");
        let seqs: Vec<String> = (1..=stored.len())
            .map(|n| format!("{{\"seq\":{n},"))
            .collect();
        for (i, (_, payload)) in stored.iter().enumerate() {
            assert!(payload.starts_with(&seqs[i]), "{stored:?}");
        }

        // Second boot, the broker reachable: every stored message goes out
        // under the msgID it had, and the new boot's own first telemetry
        // (seq 1 again, `period_s` 3600) under a msgID above them.
        let h = Harness::new();
        let fake = h.fake;
        let mut cfg = config();
        cfg.timing.telemetry_period = Duration::from_secs(3600);
        let all_out = |s: &Script| {
            let p = s.published(TELEMETRY);
            stored.iter().all(|(_, m)| p.contains(m)) && p.iter().any(|m| m.contains("3600"))
        };
        h.run_with_flash(cfg, flash.clone(), REGION, async {
            fake.wait_for("the stored telemetry and the new", all_out)
                .await;
            // Acknowledged: out of flash (after `erase_defer`, 5 s, at the
            // latest).
            let deadline = Instant::now() + Duration::from_secs(8);
            while !journalled(&flash).await.is_empty() {
                assert!(Instant::now() < deadline, "flash not emptied");
                Timer::after_millis(50).await;
            }
        })
        .await;
        let (ids, published) = fake.get(|s| (telemetry_msg_ids(s), s.published(TELEMETRY)));
        assert_eq!(ids.len(), published.len());
        let sent: HashMap<u16, &String> = ids.iter().copied().zip(published.iter()).collect();
        for (id, payload) in &stored {
            assert_eq!(sent.get(id), Some(&payload), "msgID {id}: {sent:?}");
        }
        let newest = ids[published.iter().position(|m| m.contains("3600")).unwrap()];
        assert!(
            stored.iter().all(|(id, _)| *id < newest),
            "{newest} {stored:?}"
        );
        // In the order they were stored, then the new boot's: the first
        // send of each (a copy sent again may follow later ones).
        let mut firsts: Vec<u16> = Vec::new();
        for id in &ids {
            if !firsts.contains(id) {
                firsts.push(*id);
            }
        }
        let mut want: Vec<u16> = stored.iter().map(|(id, _)| *id).collect();
        want.push(newest);
        assert_eq!(firsts, want, "{published:?}");
    });
}
