//! `bc26 --stdin TOPIC`: lines piped in while the link is reset, the modem
//! reboots and the broker goes away and comes back; an independent MQTT
//! client (`Watcher`, which survives broker restarts) gets every line at
//! least once, in order of first arrival; the events say what happened; the
//! exit status is right. Over a real pseudo-terminal (`--serial`, the test
//! owns the simulator and injects the faults) and with `--sim` (the CLI's
//! own `--sim-fault` flags).

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bc26_sim::broker::{broker, restartable_broker, Watcher};
use bc26_sim::{Sim, SimConfig};

fn uniq(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Test-sized timings for the supervisor.
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
    "--keepalive",
    "30",
];

/// A running `bc26`, its standard input, and the events it printed so far.
struct Cli {
    child: Child,
    stdin: Option<ChildStdin>,
    events: Arc<Mutex<Vec<String>>>,
}

impl Cli {
    fn start(args: &[&str]) -> Cli {
        // A test's own `--qos` replaces the one of FAST.
        let fast = if args.contains(&"--qos") {
            &FAST[2..]
        } else {
            FAST
        };
        let mut child = Command::new(env!("CARGO_BIN_EXE_bc26"))
            .args(args)
            .args(fast)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run bc26");
        let events = Arc::new(Mutex::new(Vec::new()));
        let e = events.clone();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { return };
                e.lock().unwrap().push(line);
            }
        });
        Cli {
            stdin: child.stdin.take(),
            child,
            events,
        }
    }

    fn events(&self) -> Vec<String> {
        self.events.lock().unwrap().clone()
    }

    /// Events that contain every one of `parts`.
    fn count(&self, parts: &[&str]) -> usize {
        self.events()
            .iter()
            .filter(|l| parts.iter().all(|p| l.contains(p)))
            .count()
    }

    /// Waits (10 s at most) until `n` events contain every one of `parts`.
    fn wait_for(&self, n: usize, parts: &[&str]) {
        let start = Instant::now();
        while self.count(parts) < n {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "no {n} events with {parts:?} within 10 s:\n{}",
                self.events().join("\n")
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn write_lines(&mut self, lines: std::ops::RangeInclusive<u32>, gap: Duration) {
        let stdin = self.stdin.as_mut().expect("input still open");
        for i in lines {
            writeln!(stdin, "line {i}").unwrap();
            stdin.flush().unwrap();
            std::thread::sleep(gap);
        }
    }

    /// Ends the input and waits (60 s at most) for the exit status.
    fn finish(mut self) -> (Option<i32>, Vec<String>) {
        drop(self.stdin.take());
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // The reader thread has what is left of standard output.
                std::thread::sleep(Duration::from_millis(100));
                return (status.code(), self.events());
            }
            if start.elapsed() > Duration::from_secs(60) {
                let _ = self.child.kill();
                panic!(
                    "bc26 did not exit within 60 s:\n{}",
                    self.events().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The payloads in order of first arrival.
fn first_arrivals(payloads: &[Vec<u8>]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    payloads
        .iter()
        .map(|p| String::from_utf8(p.clone()).unwrap())
        .filter(|p| seen.insert(p.clone()))
        .collect()
}

fn expected(n: u32) -> Vec<String> {
    (1..=n).map(|i| format!("line {i}")).collect()
}

/// Every line, at least once, in order of first arrival.
fn assert_all_arrived_in_order(watcher: &Watcher, topic: &str, n: u32) {
    watcher.wait_for(topic, Duration::from_secs(10), |p| {
        first_arrivals(p).len() >= n as usize
    });
    assert_eq!(first_arrivals(&watcher.payloads(topic)), expected(n));
}

/// Every line, at least once, in any order (several in flight may overtake
/// each other).
fn assert_all_arrived(watcher: &Watcher, topic: &str, n: u32) {
    watcher.wait_for(topic, Duration::from_secs(10), |p| {
        first_arrivals(p).len() >= n as usize
    });
    let mut got = first_arrivals(&watcher.payloads(topic));
    got.sort_by_key(|l| {
        l.trim_start_matches("line ")
            .parse::<u32>()
            .unwrap_or(u32::MAX)
    });
    assert_eq!(got, expected(n));
}

/// Whether some event contains every one of `parts`.
fn has_event(events: &[String], parts: &[&str]) -> bool {
    events.iter().any(|l| parts.iter().all(|p| l.contains(p)))
}

/// The `published` events name every line once, in line order.
fn assert_published_in_line_order(events: &[String], n: u32) {
    let lines: Vec<u32> = events
        .iter()
        .filter(|l| l.starts_with("{\"event\":\"published\""))
        .map(|l| {
            let at = l.find("\"line\":").expect("a line number") + 7;
            l[at..]
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert_eq!(lines, (1..=n).collect::<Vec<_>>());
}

/// Waits (10 s at most) until the watcher is subscribed again after a broker
/// restart: a probe it publishes comes back to it.
fn wait_watcher_back(watcher: &Watcher, probe: &str) {
    let start = Instant::now();
    while watcher.payloads(probe).is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the watcher did not come back"
        );
        watcher.publish(probe, b"probe");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn summary(events: &[String]) -> &str {
    events
        .iter()
        .find(|l| l.starts_with("{\"event\":\"summary\""))
        .expect("a summary event")
}

#[test]
fn stdin_lines_reach_a_watcher_in_order_over_a_pty_through_link_reset_reboot_and_broker_restart() {
    let Some(b) = restartable_broker() else {
        eprintln!(
            "skipped: MQTT_HOST is set without a restartable broker (MQTT_RESTART_PORT, ...)"
        );
        return;
    };
    let (sim, pty) = Sim::start_pty(SimConfig::default()).expect("pty");
    let topic = uniq("cli/stdin");
    let probe = uniq("cli/probe");
    let watcher = Watcher::new(&b, &uniq("watcher"), &[&topic, &probe]);
    let port = b.port.to_string();
    let cid = uniq("cli");
    let mut cli = Cli::start(&[
        "--serial",
        pty.to_str().unwrap(),
        "--host",
        &b.host,
        "--port",
        &port,
        "--client-id",
        &cid,
        "--stdin",
        &topic,
    ]);
    let gap = Duration::from_millis(5);
    cli.wait_for(1, &["\"state\":\"online\""]);
    cli.write_lines(1..=20, gap);

    // The peer resets the link; lines keep coming while it is down.
    sim.break_link(0);
    cli.write_lines(21..=40, gap);
    cli.wait_for(2, &["\"state\":\"online\""]);
    cli.write_lines(41..=60, gap);

    // The modem restarts.
    sim.reboot();
    cli.write_lines(61..=80, gap);
    cli.wait_for(3, &["\"state\":\"online\""]);

    // The broker goes away (every session lost) and comes back. The modem
    // is kept off the network until the watcher has subscribed again, so
    // that no line reaches the new broker before the watcher does.
    cli.wait_for(80, &["\"event\":\"published\""]);
    b.stop();
    cli.write_lines(81..=100, gap);
    sim.set_registration(0);
    b.start();
    wait_watcher_back(&watcher, &probe);
    sim.set_registration(1);
    cli.write_lines(101..=120, gap);

    let (code, events) = cli.finish();
    let all = events.join("\n");
    assert_eq!(code, Some(0), "{all}");
    assert_all_arrived_in_order(&watcher, &topic, 120);
    assert_published_in_line_order(&events, 120);
    for what in [
        &[
            "\"state\":\"offline\"",
            "\"reason\":\"link_closed\"",
            "\"code\":1",
        ][..],
        &["\"state\":\"offline\"", "\"reason\":\"modem_rebooted\""],
        &["\"state\":\"backing_off\"", "\"delay_ms\":"],
        &["\"event\":\"link_closed\"", "\"code\":1"],
    ] {
        assert!(has_event(&events, what), "no event with {what:?}:\n{all}");
    }
    // Online four times: at start, after the reset, the reboot, the broker.
    assert!(
        events
            .iter()
            .filter(|l| l.contains("\"state\":\"online\""))
            .count()
            >= 4,
        "{all}"
    );
    let s = summary(&events);
    assert!(
        s.contains("\"lines\":120,\"published\":120,\"failed\":0,\"undelivered\":0"),
        "{s}"
    );
    assert!(
        events
            .iter()
            .any(|l| l.starts_with("{\"event\":\"outbox\"") && l.contains("\"messages\":0")),
        "{all}"
    );
    let tail: Vec<&str> = events.iter().rev().take(2).map(|l| l.as_str()).collect();
    assert_eq!(
        tail,
        [
            "{\"event\":\"closed\",\"client\":0}",
            "{\"event\":\"disconnected\",\"client\":0}"
        ]
    );
    drop(sim);
}

#[test]
fn sim_fault_flags_reset_close_reboot_and_unregister_the_link_and_every_line_still_arrives() {
    let b = broker();
    let topic = uniq("cli/faults");
    let watcher = Watcher::new(b, &uniq("watcher"), &[&topic]);
    let port = b.port.to_string();
    let cid = uniq("cli");
    let mut cli = Cli::start(&[
        "--sim",
        "--host",
        &b.host,
        "--port",
        &port,
        "--client-id",
        &cid,
        "--stdin",
        &topic,
        "--sim-fault",
        "link-reset@300ms",
        "--sim-fault",
        "reboot@1s",
        "--sim-fault",
        "link-close:3@1700ms",
        "--sim-fault",
        "registration-loss:300ms@2400ms",
    ]);
    cli.wait_for(1, &["\"state\":\"online\""]);
    // Lines throughout the faults (about 3 s).
    cli.write_lines(1..=100, Duration::from_millis(30));
    cli.wait_for(
        1,
        &["\"event\":\"fault\"", "\"kind\":\"registration-back\""],
    );
    let (code, events) = cli.finish();
    let all = events.join("\n");
    assert_eq!(code, Some(0), "{all}");
    assert_all_arrived_in_order(&watcher, &topic, 100);
    assert_published_in_line_order(&events, 100);
    let faults: Vec<&str> = events
        .iter()
        .filter(|l| l.starts_with("{\"event\":\"fault\""))
        .map(|l| l.split('"').nth(7).unwrap())
        .collect();
    assert_eq!(
        faults,
        [
            "link-reset",
            "reboot",
            "link-close",
            "registration-loss",
            "registration-back"
        ],
        "{all}"
    );
    for what in [
        &["\"reason\":\"link_closed\"", "\"code\":1"][..],
        &["\"reason\":\"modem_rebooted\""],
        &["\"reason\":\"link_closed\"", "\"code\":3"],
        // Registration lost: the simulator drops the link with +QMTSTAT 2.
        &["\"reason\":\"link_closed\"", "\"code\":2"],
    ] {
        let parts: Vec<&str> = ["\"state\":\"offline\""]
            .iter()
            .chain(what)
            .copied()
            .collect();
        assert!(
            has_event(&events, &parts),
            "no offline event with {what:?}:\n{all}"
        );
    }
    assert!(summary(&events).contains("\"undelivered\":0"), "{all}");
}

#[test]
fn sim_fault_silence_that_swallows_publishes_in_flight_ends_the_link_and_every_line_still_arrives()
{
    let b = broker();
    let topic = uniq("cli/silence");
    let watcher = Watcher::new(b, &uniq("watcher"), &[&topic]);
    let port = b.port.to_string();
    let cid = uniq("cli");
    let mut cli = Cli::start(&[
        "--sim",
        "--host",
        &b.host,
        "--port",
        &port,
        "--client-id",
        &cid,
        "--stdin",
        &topic,
        "--in-flight",
        "4",
        "--sim-fault",
        "silence:2s@500ms",
    ]);
    cli.wait_for(1, &["\"state\":\"online\""]);
    // Lines before, through and after the silence: the modem takes none of
    // the bytes sent while it is silent, so publishes are lost mid-flight.
    cli.write_lines(1..=80, Duration::from_millis(30));
    cli.wait_for(1, &["\"event\":\"fault\"", "\"kind\":\"silence-end\""]);
    let (code, events) = cli.finish();
    let all = events.join("\n");
    assert_eq!(code, Some(0), "{all}");
    assert!(
        has_event(
            &events,
            &["\"state\":\"offline\"", "\"reason\":\"modem_silent\""]
        ),
        "the silence was not noticed:\n{all}"
    );
    // Four in flight: lines may first arrive out of order; each arrives.
    assert_all_arrived(&watcher, &topic, 80);
    assert!(summary(&events).contains("\"undelivered\":0"), "{all}");
}

#[test]
fn sim_fault_broker_restart_restarts_the_clis_own_broker_and_lines_sent_meanwhile_arrive() {
    // Against an external broker, the restartable one is shared by this
    // process's tests: hold it while the CLI restarts it.
    let _lease = if std::env::var("MQTT_HOST").is_ok() {
        match restartable_broker() {
            Some(b) => Some(b),
            None => {
                eprintln!("skipped: MQTT_HOST is set without a restartable broker");
                return;
            }
        }
    } else {
        None
    };
    let topic = uniq("cli/restart");
    let probe = uniq("cli/probe");
    let cid = uniq("cli");
    let mut cli = Cli::start(&[
        "--sim",
        "--client-id",
        &cid,
        "--stdin",
        &topic,
        "--sim-fault",
        "broker-restart:500ms@1500ms",
    ]);
    // The broker the CLI runs (or was given) is in its first event.
    cli.wait_for(1, &["\"event\":\"broker\""]);
    let first = cli.events()[0].clone();
    let field = |k: &str| -> String {
        let at = first.find(&format!("\"{k}\":")).unwrap() + k.len() + 3;
        first[at..]
            .trim_start_matches('"')
            .split(['"', ',', '}'])
            .next()
            .unwrap()
            .to_owned()
    };
    let b = bc26_sim::broker::Broker {
        host: field("host"),
        port: field("port").parse().unwrap(),
        auth: None,
        kind: "the CLI's",
    };
    let watcher = Watcher::new(&b, &uniq("watcher"), &[&topic, &probe]);
    cli.wait_for(1, &["\"state\":\"online\""]);
    cli.write_lines(1..=10, Duration::from_millis(5));
    cli.wait_for(10, &["\"event\":\"published\""]);
    assert_eq!(
        cli.count(&["\"event\":\"fault\""]),
        0,
        "the lines took more than 1.5 s:\n{}",
        cli.events().join("\n")
    );
    cli.wait_for(1, &["\"event\":\"fault\"", "\"kind\":\"broker-start\""]);
    wait_watcher_back(&watcher, &probe);
    cli.write_lines(11..=30, Duration::from_millis(5));
    let (code, events) = cli.finish();
    let all = events.join("\n");
    assert_eq!(code, Some(0), "{all}");
    assert_all_arrived_in_order(&watcher, &topic, 30);
    assert_published_in_line_order(&events, 30);
    assert!(
        events.iter().any(
            |l| l.contains("\"state\":\"offline\"") && l.contains("\"reason\":\"link_closed\"")
        ),
        "{all}"
    );
    assert!(
        cli_count_online(&events) >= 2,
        "not online again after the restart:\n{all}"
    );
}

fn cli_count_online(events: &[String]) -> usize {
    events
        .iter()
        .filter(|l| l.contains("\"state\":\"online\""))
        .count()
}

#[test]
fn lines_that_cannot_be_published_are_errors_and_the_exit_status_says_how_many() {
    let topic = uniq("cli/bad");
    let mut cli = Cli::start(&["--sim", "--stdin", &topic]);
    let stdin = cli.stdin.as_mut().unwrap();
    stdin.write_all(b"first\n").unwrap();
    stdin.write_all(&vec![b'x'; 3000]).unwrap();
    stdin.write_all(b"\nctrl\x1az\nlast").unwrap();
    let (code, events) = cli.finish();
    let all = events.join("\n");
    assert_eq!(code, Some(1), "{all}");
    assert!(
        events.iter().any(|l| l
            == "{\"event\":\"error\",\"op\":\"publish\",\"line\":2,\"error\":\"line too long: 3000 bytes, the modem takes at most 1024\"}"),
        "{all}"
    );
    assert!(
        events
            .iter()
            .any(|l| l.starts_with("{\"event\":\"error\",\"op\":\"publish\",\"line\":3,")),
        "{all}"
    );
    let published = events
        .iter()
        .filter(|l| l.starts_with("{\"event\":\"published\""))
        .count();
    assert_eq!(published, 2, "{all}");
    assert!(
        events.iter().any(|l| l.starts_with(
            "{\"event\":\"error\",\"op\":\"deliver\",\"error\":\"2 of 4 lines not delivered"
        )),
        "{all}"
    );
    assert!(
        summary(&events).contains("\"lines\":4,\"published\":2,\"failed\":2"),
        "{all}"
    );
}

#[test]
fn more_lines_than_the_outbox_holds_wait_for_room_and_all_arrive_in_order() {
    let b = broker();
    let topic = uniq("cli/many");
    let watcher = Watcher::new(b, &uniq("watcher"), &[&topic]);
    let port = b.port.to_string();
    let mut cli = Cli::start(&[
        "--sim", "--host", &b.host, "--port", &port, "--stdin", &topic,
    ]);
    // About 24 KiB of records at once, for a 16 KiB outbox.
    let stdin = cli.stdin.as_mut().unwrap();
    let text: String = expected(1200).iter().map(|l| format!("{l}\n")).collect();
    stdin.write_all(text.as_bytes()).unwrap();
    let (code, events) = cli.finish();
    let all = events.join("\n");
    assert_eq!(code, Some(0), "{all}");
    assert_published_in_line_order(&events, 1200);
    assert_all_arrived_in_order(&watcher, &topic, 1200);
    let outbox = events
        .iter()
        .find(|l| l.starts_with("{\"event\":\"outbox\""))
        .unwrap();
    assert!(
        outbox.contains("\"capacity\":15872,\"messages\":0"),
        "{outbox}"
    );
}

/// The line number of an event that has one.
fn line_of(event: &str) -> Option<u32> {
    let at = event.find("\"line\":")? + 7;
    event[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

#[test]
fn qos0_lines_dropped_by_a_link_loss_are_errors_for_their_lines_never_published() {
    let b = broker();
    let (sim, pty) = Sim::start_pty(SimConfig::default()).expect("pty");
    let topic = uniq("cli/drop");
    let watcher = Watcher::new(b, &uniq("watcher"), &[&topic]);
    let port = b.port.to_string();
    let cid = uniq("cli");
    let mut cli = Cli::start(&[
        "--serial",
        pty.to_str().unwrap(),
        "--host",
        &b.host,
        "--port",
        &port,
        "--client-id",
        &cid,
        "--stdin",
        &topic,
        "--qos",
        "0",
    ]);
    cli.wait_for(1, &["\"state\":\"online\""]);
    cli.write_lines(1..=10, Duration::from_millis(5));
    cli.wait_for(10, &["\"event\":\"published\""]);
    // The modem's UART goes dead: the publishes in flight get no answer
    // (command timeout 1 s), the link ends, and the QoS 0 lines stored
    // meanwhile are dropped.
    sim.set_silent(true);
    cli.write_lines(11..=30, Duration::from_millis(10));
    cli.wait_for(1, &["\"state\":\"offline\""]);
    sim.set_silent(false);
    cli.wait_for(2, &["\"state\":\"online\""]);
    cli.write_lines(31..=40, Duration::from_millis(5));
    let (code, events) = cli.finish();
    let all = events.join("\n");
    // Each line has exactly one fate, and a line called published reached
    // the broker.
    let mut fate = std::collections::BTreeMap::new();
    for e in &events {
        let kind = if e.starts_with("{\"event\":\"published\"") {
            "published"
        } else if e.starts_with("{\"event\":\"error\",\"op\":\"publish\"") {
            "error"
        } else {
            continue;
        };
        let n = line_of(e).unwrap_or_else(|| panic!("no line in {e}"));
        assert!(fate.insert(n, kind).is_none(), "line {n} twice:\n{all}");
    }
    assert_eq!(
        fate.keys().copied().collect::<Vec<_>>(),
        (1..=40).collect::<Vec<_>>(),
        "{all}"
    );
    watcher.wait_for(&topic, Duration::from_secs(5), |p| {
        first_arrivals(p).len() >= fate.values().filter(|k| **k == "published").count()
    });
    let arrived: std::collections::HashSet<String> = first_arrivals(&watcher.payloads(&topic))
        .into_iter()
        .collect();
    for (n, kind) in &fate {
        if *kind == "published" {
            assert!(
                arrived.contains(&format!("line {n}")),
                "line {n} reported published, never arrived:\n{all}"
            );
        }
    }
    let dropped = events
        .iter()
        .filter(|e| {
            e.starts_with("{\"event\":\"error\",\"op\":\"publish\"") && e.contains("dropped")
        })
        .count();
    assert!(dropped >= 1, "no line was dropped:\n{all}");
    let published = fate.values().filter(|k| **k == "published").count();
    let s = summary(&events);
    assert!(
        s.contains(&format!("\"lines\":40,\"published\":{published},")),
        "{s}"
    );
    assert_eq!(code, Some(1), "{all}");
    drop(sim);
}
/// Waits (10 s at most) until the CLI printed an event with every one of
/// `parts` after the first `from` events.
fn wait_after(cli: &Cli, from: usize, parts: &[&str]) {
    let start = Instant::now();
    while !has_event(&cli.events()[from.min(cli.events().len())..], parts) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no event with {parts:?} after event {from} within 10 s:\n{}",
            cli.events().join("\n")
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_line_too_long_for_hex_stored_during_a_reboot_is_refused_at_once_and_blocks_no_other() {
    let b = broker();
    let (sim, pty) = Sim::start_pty(SimConfig::default()).expect("pty");
    let topic = uniq("cli/hexlong");
    let watcher = Watcher::new(b, &uniq("watcher"), &[&topic]);
    let port = b.port.to_string();
    let cid = uniq("cli");
    let mut cli = Cli::start(&[
        "--serial",
        pty.to_str().unwrap(),
        "--host",
        &b.host,
        "--port",
        &port,
        "--client-id",
        &cid,
        "--stdin",
        &topic,
        "--hex",
    ]);
    cli.wait_for(1, &["\"state\":\"online\""]);
    cli.write_lines(1..=5, Duration::from_millis(5));
    cli.wait_for(5, &["\"event\":\"published\""]);
    // The network goes, then the modem restarts: its data format is text
    // again, and the supervisor waits for registration before it configures
    // hex once more.
    let before = cli.events().len();
    sim.set_registration(0);
    wait_after(&cli, before, &["\"state\":\"offline\""]);
    // It says RDY after 200 ms; the supervisor asks AT+CEREG? meanwhile.
    sim.reboot();
    std::thread::sleep(Duration::from_millis(1000));
    // 700 bytes: 1,400 hex digits, more than the modem takes (1,024).
    let stdin = cli.stdin.as_mut().unwrap();
    stdin.write_all(&[b'y'; 700]).unwrap();
    stdin.write_all(b"\n").unwrap();
    stdin.flush().unwrap();
    cli.write_lines(7..=30, Duration::from_millis(5));
    cli.wait_for(1, &["\"event\":\"error\",\"op\":\"publish\",\"line\":6,"]);
    sim.set_registration(1);
    let (code, events) = cli.finish();
    let all = events.join("\n");
    assert_eq!(code, Some(1), "{all}");
    let long = events
        .iter()
        .find(|e| e.starts_with("{\"event\":\"error\",\"op\":\"publish\",\"line\":6,"))
        .unwrap();
    assert!(long.contains("TooLong"), "{long}");
    let s = summary(&events);
    assert!(
        s.contains("\"lines\":30,\"published\":29,\"failed\":1,\"undelivered\":0"),
        "{s}"
    );
    watcher.wait_for(&topic, Duration::from_secs(10), |p| {
        first_arrivals(p).len() >= 29
    });
    let mut want = expected(30);
    want.remove(5);
    assert_eq!(first_arrivals(&watcher.payloads(&topic)), want, "{all}");
    // The link was never dropped because of that line.
    assert!(
        !has_event(&events, &["\"state\":\"offline\"", "\"reason\":\"failed\""]),
        "{all}"
    );
    drop(sim);
}
