//! Soak: N QoS 1 messages through the supervisor, the simulator and a real
//! broker, with a link fault injected at random every few dozen messages;
//! the independent client must get every one (0 lost); duplicates are
//! counted and printed with the faults, reconnects and time. Each message
//! first reaches the broker in the order it was handed to the outbox. A
//! broker restart (which loses what the broker holds) first waits until the
//! watcher has every message handed, the one being handed at that moment
//! included; a stall (45 s without a message handed or acknowledged) fails
//! saying where the soak stands.
//!
//! `BC26_SOAK_N` sets N (default 2,000); `BC26_SOAK_SEED` the faults' seed
//! (default: from the clock; printed either way, to replay a run). Against
//! Mosquitto: `.ci/with-mosquitto cargo test -p bc26-mqtt --test
//! supervisor_soak -- --nocapture`.

mod common;

use std::cell::Cell;
use std::collections::BTreeMap;

use bc26_mqtt::{Error, QoS};
use common::rig::{off_thread, Dev, Opts};
use embassy_futures::join::join;
use embassy_futures::select::select;
use embassy_time::{Duration, Instant, Timer};

/// splitmix64: small, seedable, good enough to pick faults.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// In `lo..hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name}={v}: not a number"))
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    /// The peer resets the TCP link (`+QMTSTAT: 0,1`).
    BreakLink,
    /// The modem closes the link with a random `+QMTSTAT` code (5 included:
    /// found by the health check).
    CloseLink,
    /// The modem restarts (`RDY`).
    Reboot,
    /// One or two PUBACKs lost: a retransmission, or a failed publish.
    DropAcks,
    /// Registration lost for 50-300 ms.
    Registration,
    /// The UART dead for 0.8-1.2 s (longer than the health check and the
    /// command timeout).
    Silence,
    /// The next CONNACK refused, after a link reset.
    Refused,
    /// The next one or two opens fail, after a link reset.
    OpenFails,
    /// The broker stopped and started again.
    BrokerRestart,
}

const FAULTS: &[(Fault, u64)] = &[
    (Fault::BreakLink, 3),
    (Fault::CloseLink, 3),
    (Fault::Reboot, 2),
    (Fault::DropAcks, 2),
    (Fault::Registration, 1),
    (Fault::Silence, 1),
    (Fault::Refused, 1),
    (Fault::OpenFails, 1),
    (Fault::BrokerRestart, 1),
];

fn pick(rng: &mut Rng, restartable: bool) -> Fault {
    let faults: Vec<(Fault, u64)> = FAULTS
        .iter()
        .copied()
        .filter(|(f, _)| restartable || *f != Fault::BrokerRestart)
        .collect();
    let total: u64 = faults.iter().map(|f| f.1).sum();
    let mut x = rng.range(0, total);
    for (f, w) in faults {
        if x < w {
            return f;
        }
        x -= w;
    }
    unreachable!()
}

#[test]
fn soak_every_qos1_message_arrives_through_random_link_faults() {
    let n = env_u64("BC26_SOAK_N").unwrap_or(2000) as usize;
    let seed = env_u64("BC26_SOAK_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    });
    let opts = Opts::new("soak")
        .sim(|s| s.boot_time = std::time::Duration::from_millis(50))
        .sup(|c| {
            c.pkt_timeout_s = 1;
            c.retry_times = 1;
            c.timeout_notice = true;
            c.backoff = c
                .backoff
                .delays(Duration::from_millis(10), Duration::from_millis(100))
                .stable_after(Duration::from_millis(300));
            c.health_check = Duration::from_millis(200);
        });
    let mut opts = opts;
    opts.outbox = 16384;
    // A broker that can restart when there is one (always in-process).
    let d = match Dev::start_restartable(opts) {
        Some(d) => d,
        None => {
            let mut o = Opts::new("soak");
            o.outbox = 16384;
            Dev::start(o)
        }
    };
    let restartable = matches!(d.broker, common::rig::BrokerRef::Restartable(_));
    eprintln!(
        "soak: N = {n}, seed = {seed} (BC26_SOAK_SEED), broker: {}",
        d.broker.get().kind
    );
    let rng = std::cell::RefCell::new(Rng(seed));
    let handed = Cell::new(0usize);
    let pause = Pause::default();
    let faults: std::cell::RefCell<BTreeMap<Fault, u32>> = Default::default();
    let started = std::time::Instant::now();
    let limit =
        std::time::Duration::from_secs(60) + std::time::Duration::from_millis(25) * n as u32;

    let dups = d.scenario(limit, async {
        d.online(Duration::from_secs(5)).await;
        let produce = async {
            for k in 0..n {
                // At most 64 ahead of the broker's acknowledgements, so that
                // faults come every few dozen messages that went through.
                while pause.paused.get() || k as u32 >= d.counters().delivered + 64 {
                    Timer::after_millis(2).await;
                }
                pause.handing.set(true);
                let (pad, big) = {
                    let mut r = rng.borrow_mut();
                    (r.range(0, 40) as usize, r.range(0, 50) == 0)
                };
                // Mostly short (inline); one in 50 is 900 bytes (data mode).
                let fill = if big { 890 } else { pad };
                let p = format!("soak/{k:06}/{}", ".".repeat(fill)).into_bytes();
                loop {
                    match d.try_publish(d.up, &p, QoS::AtLeastOnce, false).await {
                        Ok(_) => break,
                        Err(Error::OutboxFull) => Timer::after_millis(2).await,
                        Err(e) => panic!("try_publish: {e:?}"),
                    }
                }
                d.handed(&p);
                handed.set(k + 1);
                pause.handing.set(false);
            }
        };
        let inject = async {
            loop {
                // Every 20-60 messages that went through.
                let gap = rng.borrow_mut().range(20, 60) as u32;
                let at = d.counters().delivered + gap;
                while d.counters().delivered < at {
                    if handed.get() >= n {
                        return;
                    }
                    Timer::after_millis(1).await;
                }
                // Each fault hits a live link.
                d.link.wait_online().await;
                let f = pick(&mut rng.borrow_mut(), restartable);
                *faults.borrow_mut().entry(f).or_default() += 1;
                inject(&d, f, &rng, &pause).await;
            }
        };
        // A stall (no message handed and none acknowledged for 45 s, outside
        // a broker restart, which bounds its own waits) fails saying where
        // the soak stands, instead of running into the scenario's limit.
        let watchdog = async {
            let mut last = (usize::MAX, u32::MAX);
            let mut since = Instant::now();
            loop {
                Timer::after_secs(1).await;
                let now = (handed.get(), d.counters().delivered);
                if now != last || pause.paused.get() {
                    last = now;
                    since = Instant::now();
                    continue;
                }
                if since.elapsed() > Duration::from_secs(45) {
                    #[cfg(feature = "flash-outbox")]
                    let flash = d.flash.as_ref().map(|(_, fo)| fo.stats());
                    #[cfg(not(feature = "flash-outbox"))]
                    let flash: Option<()> = None;
                    let tail = |t: Vec<u8>| {
                        let t = String::from_utf8_lossy(&t).replace('\r', "");
                        let lines: Vec<&str> = t.lines().filter(|l| !l.is_empty()).collect();
                        lines[lines.len().saturating_sub(30)..].join(" | ")
                    };
                    panic!(
                        "soak stalled for 45 s (seed {seed}): {} handed, {} acknowledged; {:?}; \
                         {:?}; flash {flash:?}; {:?}; faults {:?}\nthe host's last lines: {}\n\
                         the modem's last lines: {}\nstates:\n{}",
                        now.0,
                        now.1,
                        d.link.state(),
                        d.link.outbox(),
                        d.counters(),
                        faults.borrow(),
                        tail(d.sim.host_transcript()),
                        tail(d.sim.transcript()),
                        d.history()
                    );
                }
            }
        };
        let run = async {
            join(produce, inject).await;
            d.flush(Duration::from_secs(60)).await;
        };
        select(run, watchdog).await;
    });

    let elapsed = started.elapsed();
    let c = d.counters();
    let total_faults: u32 = faults.borrow().values().sum();
    eprintln!(
        "soak: {n} messages, 0 lost, {dups} duplicates; {total_faults} faults {:?}; \
         connects {}, reconnects {}, link losses {}, failed attempts {}, re-sent {}; \
         outbox high water {} B; {:.1} s ({:.0} messages/s); seed {seed}",
        faults.borrow(),
        c.connects,
        c.reconnects,
        c.link_losses,
        c.failed_attempts,
        c.resent,
        d.link.outbox().high_water,
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64(),
    );
    // Every few dozen messages a fault, and each took the link down (a lost
    // ack that was retransmitted in time need not).
    assert!(total_faults as usize >= n / 60, "{total_faults} faults");
    assert!(c.link_losses >= total_faults / 2, "{c:?}");
    // In publish order: each message first reached the broker after every
    // message handed before it (copies sent again come later; a fault
    // loses no PUBLISH the broker had, and the supervisor's lanes write
    // their lines in the outbox's order).
    let firsts = first_arrivals(&d.watcher.payloads(d.up));
    let late: Vec<(usize, usize)> = firsts
        .windows(2)
        .filter(|w| w[1] < w[0])
        .map(|w| (w[0], w[1]))
        .take(10)
        .collect();
    assert!(
        late.is_empty(),
        "messages reached the broker out of order (seed {seed}): (before, after) {late:?}"
    );
    assert_eq!(firsts.len(), n, "each message once in the first arrivals");
}

/// The numbers `k` of the soak's payloads `soak/<k>/...`, each at its first
/// arrival, in the order they arrived.
fn first_arrivals(payloads: &[Vec<u8>]) -> Vec<usize> {
    let mut seen = std::collections::HashSet::new();
    payloads
        .iter()
        .filter_map(|p| {
            let p = std::str::from_utf8(p).ok()?;
            p.strip_prefix("soak/")?.get(..6)?.parse::<usize>().ok()
        })
        .filter(|k| seen.insert(*k))
        .collect()
}

/// Holds the producer back while the broker restarts.
#[derive(Default)]
struct Pause {
    /// No new message is handed to the outbox.
    paused: Cell<bool>,
    /// The producer is handing a message: between its check of `paused`
    /// and [`Dev::handed`]. Through a flash outbox `try_publish` awaits its
    /// journal, so a message can be handed after `paused` was set: not yet
    /// in the outbox when the restart flushes it, nor among the payloads
    /// the watcher must have, it could reach the broker just before the
    /// stop, be acknowledged, and be lost with what the broker holds.
    handing: Cell<bool>,
}

impl Pause {
    /// Stops the producer, and waits until the message it may be handing
    /// is handed (and so flushed and waited for, as every other one).
    async fn hold(&self) {
        self.paused.set(true);
        while self.handing.get() {
            Timer::after_millis(1).await;
        }
    }
}

async fn inject(d: &Dev, f: Fault, rng: &std::cell::RefCell<Rng>, pause: &Pause) {
    let r = |lo, hi| rng.borrow_mut().range(lo, hi);
    match f {
        Fault::BreakLink => d.sim.break_link(0),
        Fault::CloseLink => {
            let codes = [1u8, 2, 3, 4, 5, 6, 7, 8, 42, 255];
            d.sim
                .close_link(0, codes[r(0, codes.len() as u64) as usize]);
        }
        Fault::Reboot => d.sim.reboot(),
        Fault::DropAcks => d.sim.update_faults(|x| x.drop_acks = r(1, 3) as u32),
        Fault::Registration => {
            let lost = [0u8, 2, 3][r(0, 3) as usize];
            d.sim.set_registration(lost);
            Timer::after(Duration::from_millis(r(50, 300))).await;
            d.sim.set_registration([1u8, 5][r(0, 2) as usize]);
        }
        Fault::Silence => {
            d.sim.set_silent(true);
            Timer::after(Duration::from_millis(r(800, 1200))).await;
            d.sim.set_silent(false);
        }
        Fault::Refused => {
            let code = r(1, 6) as u8;
            d.sim.update_faults(|x| x.refuse_connect = Some((1, code)));
            d.sim.break_link(0);
        }
        Fault::OpenFails => {
            let code = [-1i32, 3, 4, 5][r(0, 4) as usize];
            let count = r(1, 3) as u32;
            d.sim.update_faults(|x| x.fail_open = Some((count, code)));
            d.sim.break_link(0);
        }
        Fault::BrokerRestart => {
            // A restart loses what the broker holds: let it deliver all it
            // has first, with nothing new meanwhile.
            pause.hold().await;
            d.flush(Duration::from_secs(60)).await;
            d.watcher_has_all(Duration::from_secs(30)).await;
            let b = d.restartable();
            off_thread(move || b.stop()).await;
            // New messages wait in the outbox while the broker is down.
            pause.paused.set(false);
            Timer::after(Duration::from_millis(r(100, 500))).await;
            // Back only after the watcher subscribed again.
            d.hold_back();
            let b = d.restartable();
            off_thread(move || b.start()).await;
            d.watcher_back(Duration::from_secs(10)).await;
            d.release();
        }
    }
    // Let the fault take effect before the next one may come.
    Timer::after_millis(5).await;
}
