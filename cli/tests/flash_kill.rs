//! `bc26 --sim --stdin TOPIC --flash FILE` killed (SIGKILL) at random points
//! in a stream of QoS 1 lines, and started again on the same file, many
//! times: an independent MQTT client (`Watcher`) sees every line at least
//! once. The feeder plays a producer that resends what was not acknowledged
//! to it: a line counts as handed over once `bc26` reported it `stored`
//! (journalled in the file); after a kill it feeds again from the first line
//! not reported so. Lines reported `stored` before a kill are sent by the
//! next run from the file.
//!
//! `cargo test -p bc26-cli --features flash --test flash_kill`; more kills
//! with `BC26_KILL_ROUNDS` (default 6), another sequence with
//! `BC26_KILL_SEED`.
#![cfg(feature = "flash")]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bc26_sim::broker::{broker, Watcher};

const FAST: &[&str] = &[
    "--qos",
    "1",
    "--drain-timeout",
    "20s",
    "--backoff-min",
    "100ms",
    "--backoff-max",
    "500ms",
    "--poll-interval",
    "100ms",
    "--health-check",
    "1s",
    "--command-timeout",
    "1s",
    "--pkt-timeout",
    "2",
    "--retries",
    "1",
    "--in-flight",
    "4",
];

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// A child process, killed and reaped however the test ends.
struct Proc(std::process::Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One run of `bc26`: lines `first..=last` fed every `gap` until they are
/// all fed and (if `kill_after`) the time is up: then SIGKILL. Returns the
/// global numbers of the lines it reported `stored`, and its events.
fn run_once(
    args: &[&str],
    first: u32,
    last: u32,
    gap: Duration,
    kill_after: Option<Duration>,
) -> (BTreeSet<u32>, Vec<String>, Option<i32>) {
    let mut child = Proc(
        Command::new(env!("CARGO_BIN_EXE_bc26"))
            .args(args)
            .args(FAST)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run bc26"),
    );
    let child = &mut child.0;
    let events = Arc::new(Mutex::new(Vec::new()));
    let e = events.clone();
    let out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { return };
            e.lock().unwrap().push(line);
        }
    });
    let mut stdin = child.stdin.take().unwrap();
    let start = Instant::now();
    let mut next = first;
    let status = loop {
        if let Some(k) = kill_after {
            if start.elapsed() >= k {
                child.kill().expect("SIGKILL");
                child.wait().unwrap();
                break None;
            }
        }
        if next <= last {
            if writeln!(stdin, "line {next}")
                .and_then(|_| stdin.flush())
                .is_err()
            {
                // It died (or stopped reading): the kill above follows.
            }
            next += 1;
        } else if kill_after.is_none() {
            drop(stdin);
            let end = Instant::now() + Duration::from_secs(60);
            let code = loop {
                if let Some(s) = child.try_wait().unwrap() {
                    break s.code();
                }
                if Instant::now() > end {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("bc26 did not exit within 60 s");
                }
                std::thread::sleep(Duration::from_millis(20));
            };
            break code;
        }
        std::thread::sleep(gap);
    };
    let _ = reader.join();
    let events = events.lock().unwrap().clone();
    let stored = events
        .iter()
        .filter(|l| l.starts_with("{\"event\":\"stored\""))
        .map(|l| {
            let at = l.find("\"line\":").unwrap() + 7;
            let n: u32 = l[at..]
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .unwrap()
                .parse()
                .unwrap();
            first + n - 1
        })
        .collect();
    (stored, events, status)
}

#[test]
fn killed_at_random_points_and_restarted_on_its_flash_file_every_line_arrives() {
    let b = broker();
    let id = format!("{}-{}", std::process::id(), line!());
    let topic = format!("flash/kill/{id}");
    let watcher = Watcher::new(b, &format!("w-kill-{id}"), &[&topic]);
    let file = std::env::temp_dir().join(format!("bc26-flash-{id}.bin"));
    let _ = std::fs::remove_file(&file);
    let port = b.port.to_string();
    let path = file.to_string_lossy().into_owned();
    let args = [
        "--sim", "--host", &b.host, "--port", &port, "--stdin", &topic, "--flash", &path,
    ];
    let rounds = env_u64("BC26_KILL_ROUNDS", 6);
    let mut seed = env_u64("BC26_KILL_SEED", 0x5eed) | 1;
    let mut rng = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let per_round = 25u32;
    let mut acked: BTreeSet<u32> = BTreeSet::new();
    let mut next = 1u32;
    let mut reloaded = 0;
    for round in 0..rounds {
        // Between the start (the simulator still booting, nothing online)
        // and well into the stream; the lines come in bursts (a gap of 0 to
        // 20 ms), faster than they are acknowledged.
        // Half of the runs have their modem go silent for a while (publishes
        // in flight swallowed), so that the kill finds lines stored and not
        // yet acknowledged.
        let kill = Duration::from_millis(100 + rng() % 1200);
        let gap = Duration::from_millis(rng() % 20);
        let fault = format!("silence:3s@{}ms", rng() % 400);
        let mut a: Vec<&str> = args.to_vec();
        if rng() % 2 == 0 {
            a.extend(["--sim-fault", &fault]);
        }
        let (stored, events, _) = run_once(&a, next, next + per_round - 1, gap, Some(kill));
        reloaded += events
            .iter()
            .filter(|l| l.starts_with("{\"event\":\"reloaded\"") && !l.contains("\"messages\":0"))
            .count();
        eprintln!(
            "round {round}: killed after {kill:?} (lines every {gap:?}{}), {} lines stored (from line {next}), {}",
            if a.len() > args.len() { format!(", {fault}") } else { String::new() },
            stored.len(),
            events.iter().find(|l| l.contains("\"reloaded\"")).map_or("", |l| l.as_str())
        );
        // The producer resends from the first line not acknowledged to it.
        let mut n = next;
        while stored.contains(&n) {
            n += 1;
        }
        acked.extend(stored);
        next = n;
    }
    let last = next + per_round - 1;
    let (stored, events, status) = run_once(&args, next, last, Duration::from_millis(5), None);
    acked.extend(stored);
    assert_eq!(status, Some(0), "the last run:\n{}", events.join("\n"));
    let want: BTreeSet<u32> = (1..=last).collect();
    let got = |p: &[Vec<u8>]| -> BTreeSet<u32> {
        p.iter()
            .filter_map(|p| {
                std::str::from_utf8(p)
                    .ok()?
                    .strip_prefix("line ")?
                    .parse()
                    .ok()
            })
            .collect()
    };
    watcher.wait_for(&topic, Duration::from_secs(20), |p| {
        got(p).is_superset(&want)
    });
    let payloads = watcher.payloads(&topic);
    let seen = got(&payloads);
    let missing: Vec<u32> = want.difference(&seen).copied().collect();
    let lost_acked: Vec<u32> = acked.difference(&seen).copied().collect();
    eprintln!(
        "{rounds} kills, {last} lines, {} received ({} copies beyond one), {reloaded} runs started with messages in the file",
        payloads.len(),
        payloads.len() - seen.len()
    );
    assert!(
        lost_acked.is_empty(),
        "lines stored before a kill and never received: {lost_acked:?}"
    );
    assert!(missing.is_empty(), "lines never received: {missing:?}");
    let _ = std::fs::remove_file(&file);
}
