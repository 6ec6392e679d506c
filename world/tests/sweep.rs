//! The world's sweep: seeds run in parallel threads, each a simulated device with faults,
//! every invariant checked after every step; a failure prints its seed, the command that
//! replays it, and the end of its AT trace.
//!
//! `cargo world` (from the repository's root) runs the short sweep below;
//! `BC26_WORLD_SEEDS=200 BC26_WORLD_DAYS=3650 cargo world --test sweep long -- --ignored
//! --nocapture` runs a long one (`BC26_WORLD_FIRST_SEED` moves the seeds).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bc26_world::{run, Failure, Mutant, Options, Totals};

/// The short sweep: seeds and simulated days of each.
const SEEDS: u64 = 8;
const DAYS: f64 = 20.0;

fn env(name: &str) -> Option<f64> {
    std::env::var(name).ok().map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name}={v}: not a number"))
    })
}

/// Runs `seeds` from `first` on two threads, stops at the first failure.
fn sweep(
    first: u64,
    seeds: u64,
    days: f64,
    mutant: Option<Mutant>,
) -> Result<Totals, Box<Failure>> {
    let next = Arc::new(AtomicU64::new(first));
    let totals = Arc::new(Mutex::new(Totals::default()));
    let failure: Arc<Mutex<Option<Box<Failure>>>> = Arc::new(Mutex::new(None));
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let (next, totals, failure) = (next.clone(), totals.clone(), failure.clone());
            std::thread::spawn(move || loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= first + seeds || failure.lock().unwrap().is_some() {
                    return;
                }
                let opts = Options::new(seed, days).mutant(mutant);
                match run(&opts) {
                    Ok(r) => totals.lock().unwrap().add(&r, opts.duration),
                    Err(f) => {
                        let mut slot = failure.lock().unwrap();
                        // The lowest failing seed, whichever thread found it.
                        if slot.as_ref().is_none_or(|g| g.options.seed > seed) {
                            *slot = Some(f);
                        }
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a sweep thread panicked");
    }
    if let Some(f) = failure.lock().unwrap().take() {
        return Err(f);
    }
    let t = totals.lock().unwrap().clone();
    Ok(t)
}

#[test]
fn a_short_seeded_sweep_holds_every_invariant() {
    let seeds = env("BC26_WORLD_SEEDS").map_or(SEEDS, |v| v as u64);
    let days = env("BC26_WORLD_DAYS").unwrap_or(DAYS);
    let first = env("BC26_WORLD_FIRST_SEED").map_or(1, |v| v as u64);
    match sweep(first, seeds, days, None) {
        Ok(t) => println!("world sweep: {t}"),
        Err(f) => panic!("{f}"),
    }
}

#[test]
#[ignore = "long: BC26_WORLD_SEEDS and BC26_WORLD_DAYS set its size (see the file's doc)"]
fn long() {
    a_short_seeded_sweep_holds_every_invariant();
}

#[test]
fn the_same_seed_gives_a_byte_identical_at_trace() {
    let mut o = Options::new(0x5eed, 4.0);
    o.keep_trace = true;
    let a = run(&o).unwrap_or_else(|f| panic!("{f}"));
    let b = run(&o).unwrap_or_else(|f| panic!("{f}"));
    let (ta, tb) = (a.trace.unwrap(), b.trace.unwrap());
    assert!(ta.len() > 100_000, "a real trace: {} bytes", ta.len());
    assert!(a.faults > 10, "with faults: {}", a.faults);
    assert!(ta == tb, "two runs of one seed differ");
    assert_eq!(a.trace_hash, b.trace_hash);
    // Another seed is another world.
    let mut o2 = o.clone();
    o2.seed += 1;
    assert_ne!(
        run(&o2).unwrap_or_else(|f| panic!("{f}")).trace_hash,
        a.trace_hash
    );
}

#[test]
fn a_simulated_year_takes_less_than_a_minute() {
    let o = Options::new(0x1ea7, 365.0);
    let r = run(&o).unwrap_or_else(|f| panic!("{f}"));
    let ratio = r.simulated.as_secs_f64() / r.wall.as_secs_f64();
    println!(
        "a simulated year (seed {:#x}): {:.1} s of wall time, {ratio:.0} simulated s per wall s; {} faults, {} QoS 1/2 messages, {} duplicates, {} commands received of {}",
        o.seed,
        r.wall.as_secs_f64(),
        r.faults,
        r.handed,
        r.duplicates,
        r.commands_received,
        r.commands_sent
    );
    assert!(
        r.handed > 40_000,
        "a message every 10 minutes: {}",
        r.handed
    );
    assert!(r.faults > 1_000, "a fault every few hours: {}", r.faults);
    // The supervisor's escalation against the simulated BC26: wedged modems were
    // restarted by its `AT+QRST=1` and, when that did not work, by its board reset; all
    // of them (a wedge never ended would keep the world from settling).
    let (struck, qrst, board, fault) = r.wedges;
    println!("wedged modems: {struck}, restarted by AT+QRST=1: {qrst}, by the board: {board}, by a reboot fault: {fault}");
    assert!(qrst > 0 && board > 0, "{:?}", r.wedges);
    assert_eq!(
        struck,
        qrst + board + fault,
        "every wedge ended by a restart"
    );
    assert!(r.wall < Duration::from_secs(60), "{:?}", r.wall);
}

/// The sweep catches `m`: some seed of the short sweep fails; the failure names the seed
/// and how to replay it.
fn the_sweep_finds(m: Mutant) -> Box<Failure> {
    let f = match sweep(1, SEEDS, DAYS, Some(m)) {
        Ok(t) => panic!("the sweep did not find the mutant {m:?}: {t}"),
        Err(f) => f,
    };
    let text = f.to_string();
    assert!(text.contains(&format!("world seed {:#x} failed", f.options.seed)));
    assert!(text.contains(&format!("--mutant {}", m.name())), "{text}");
    println!(
        "{m:?}: found by seed {:#x} at {:.0} s: {}",
        f.options.seed,
        f.at.as_secs_f64(),
        f.what
    );
    f
}

#[test]
fn the_sweep_finds_an_outbox_that_drops_a_message_after_a_reboot() {
    let f = the_sweep_finds(Mutant::DropAfterReboot);
    assert!(
        f.what.contains("never received") || f.what.contains("out of order"),
        "{}",
        f.what
    );
}

#[test]
fn the_sweep_finds_a_backoff_without_a_cap() {
    let f = the_sweep_finds(Mutant::UncappedBackoff);
    assert!(f.what.contains("offline for"), "{}", f.what);
}

#[test]
fn the_sweep_finds_a_wait_without_a_deadline() {
    let f = the_sweep_finds(Mutant::NoDeadline);
    assert!(
        f.what.contains("ticket has waited") || f.what.contains("offline for"),
        "{}",
        f.what
    );
}

/// Found by the world (README.md, "Found"), fixed: five tasks waiting in
/// `Link::delivered` at once spun (the outbox kept four wakers for deliveries). With 16
/// waiters, any spin is 100,000 rounds without time passing, a failure.
#[test]
fn many_tasks_waiting_for_deliveries_do_not_spin() {
    let mut o = Options::new(1, 30.0);
    o.delivery_waiters = 16;
    if let Err(f) = run(&o) {
        panic!("{f}");
    }
}

/// Found by the world (README.md, "Found"), fixed: a `Supervisor` dropped while a
/// message was in flight left it in flight for ever. Re-creation is on by default now;
/// these seeds are the short sweep's, with a re-creation of the supervisor for every one.
#[test]
fn a_supervisor_dropped_and_made_again_mid_publish_loses_nothing() {
    for seed in 1..=SEEDS {
        let mut o = Options::new(seed, DAYS);
        o.recreate_supervisor = true;
        o.fault_every = Duration::from_secs(3600);
        let r = run(&o).unwrap_or_else(|f| panic!("{f}"));
        let made = r
            .by_kind
            .get("supervisor, link, app, events re-created")
            .copied()
            .unwrap_or(0);
        assert!(made > 0, "seed {seed}: no supervisor re-created");
    }
}
