//! `bc26 --stdin TOPIC --duty-cycle PERIOD`: lines written while the module
//! sleeps are published at the next wake; a command published while it sleeps
//! reaches it in the next wake (persistent session); the events say when it
//! sleeps ("asleep") and what the module's power URCs said; with `--power`
//! the simulator's charge meter ends the output. Against the test's broker
//! (in-process rmqtt, or Mosquitto with `MQTT_HOST`).

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bc26_sim::broker::{broker, Watcher};

fn uniq(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn wait_for(events: &Mutex<Vec<String>>, what: &str, f: impl Fn(&[String]) -> bool) {
    let start = Instant::now();
    while !f(&events.lock().unwrap()) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{what} not within 20 s:\n{}",
            events.lock().unwrap().join("\n")
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn count(events: &[String], part: &str) -> usize {
    events.iter().filter(|l| l.contains(part)).count()
}

#[test]
fn duty_cycle_publishes_lines_buffered_while_asleep_and_takes_commands_queued_meanwhile() {
    let b = broker();
    let topic = uniq("dc/up");
    let cmd = uniq("dc/cmd");
    let watcher = Watcher::new(b, &uniq("w-dc"), &[&topic]);
    let port = b.port.to_string();
    let mut child = Command::new(env!("CARGO_BIN_EXE_bc26"))
        .args(["--sim", "--power", "--host", &b.host, "--port", &port])
        .args(["--stdin", &topic, "--sub", &cmd, "--qos", "1"])
        .args(["--duty-cycle", "2s", "--receive-window", "500ms"])
        .args(["--client-id", &uniq("dc-cli"), "--command-timeout", "1s"])
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
    let mut stdin = child.stdin.take().unwrap();
    // The first wake, then asleep.
    wait_for(&events, "asleep", |ev| {
        count(ev, "\"state\":\"asleep\"") >= 1
    });
    let wakes = |ev: &[String]| count(ev, "\"state\":\"connecting\"");
    let before = wakes(&events.lock().unwrap());
    // Written and published while it sleeps.
    writeln!(stdin, "line 1").unwrap();
    writeln!(stdin, "line 2").unwrap();
    stdin.flush().unwrap();
    watcher.publish(&cmd, b"queued while asleep");
    std::thread::sleep(Duration::from_millis(300));
    {
        let ev = events.lock().unwrap();
        if wakes(&ev) == before {
            assert_eq!(count(&ev, "\"event\":\"published\""), 0, "{ev:?}");
            assert_eq!(count(&ev, "queued while asleep"), 0, "{ev:?}");
        }
    }
    // The next wake publishes both lines and takes the command.
    wait_for(&events, "both lines published", |ev| {
        count(ev, "\"event\":\"published\"") == 2
    });
    wait_for(&events, "the queued command", |ev| {
        count(ev, "\"payload\":\"queued while asleep\"") == 1
    });
    assert!(wakes(&events.lock().unwrap()) > before);
    wait_for(&events, "asleep again", |ev| {
        count(ev, "\"state\":\"asleep\"") >= 2
    });
    // The end of input wakes it at once for what is left.
    writeln!(stdin, "line 3").unwrap();
    drop(stdin);
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "bc26 did not exit"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    std::thread::sleep(Duration::from_millis(100));
    let ev = events.lock().unwrap().clone();
    assert_eq!(status.code(), Some(0), "{}", ev.join("\n"));
    assert!(
        watcher.wait_for(&topic, Duration::from_secs(5), |p| p.len() >= 3),
        "{ev:?}"
    );
    let got: Vec<String> = watcher
        .payloads(&topic)
        .iter()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    assert_eq!(got, ["line 1", "line 2", "line 3"]);
    // The module's power URCs were switched on and reported.
    assert!(
        count(&ev, "{\"event\":\"registration\"") + count(&ev, "{\"event\":\"signalling\"") >= 1,
        "{ev:?}"
    );
    // Asleep with the time to the next wake; the charge meter at the end.
    assert!(ev
        .iter()
        .any(|l| l.contains("\"state\":\"asleep\",\"delay_ms\":")));
    assert!(
        ev.last().unwrap().starts_with("{\"event\":\"charge\""),
        "{ev:?}"
    );
}

#[test]
fn duty_cycle_refuses_qos0_and_needs_stdin() {
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_bc26"))
            .args(args)
            .output()
            .expect("run bc26")
            .status
            .code()
    };
    assert_eq!(
        run(&["--sim", "--stdin", "t", "--duty-cycle", "1m"]),
        Some(2)
    );
    assert_eq!(
        run(&["--sim", "--pub", "t=x", "--duty-cycle", "1m", "--qos", "1"]),
        Some(2)
    );
}
