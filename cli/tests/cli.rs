//! The `bc26` command line (its one-shot session) against the simulator over
//! a real pseudo-terminal, and its `--sim` mode.

use std::process::{Command, Output};

use bc26_sim::broker::{broker, qos_of, Peer};
use bc26_sim::{Sim, SimConfig};

fn bc26(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bc26"))
        .args(args)
        .output()
        .expect("run bc26")
}

/// The JSON lines of standard output, as (event, line).
fn events(out: &Output) -> Vec<(String, String)> {
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| {
            assert!(l.starts_with("{\"event\":\""), "not an event line: {l}");
            let ev = l["{\"event\":\"".len()..]
                .split('"')
                .next()
                .unwrap()
                .to_owned();
            (ev, l.to_owned())
        })
        .collect()
}

fn uniq(p: &str) -> String {
    format!(
        "{p}-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    )
    .replace(['(', ')'], "")
}

#[test]
fn cli_runs_a_whole_session_against_the_simulator_over_a_pty() {
    let (sim, pty) = Sim::start_pty(SimConfig::default()).expect("pty");
    let b = broker();
    let topic = uniq("cli/t");
    let port = b.port.to_string();
    let out = bc26(&[
        "--serial",
        pty.to_str().unwrap(),
        "--host",
        &b.host,
        "--port",
        &port,
        "--id",
        "3",
        "--client-id",
        &uniq("cli"),
        "--keepalive",
        "30",
        "--version",
        "4",
        "--clean-session",
        "1",
        "--will",
        &format!("{topic}/will=bye"),
        "--sub",
        &topic,
        "--sub",
        &format!("{topic}/x"),
        "--pub",
        &format!("{topic}=hello, \"cli\""),
        "--qos",
        "1",
        "--listen",
        "1",
    ]);
    let ev = events(&out);
    let names: Vec<&str> = ev.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(
        names,
        [
            "opened",
            "connected",
            "subscribed",
            "subscribed",
            "published",
            "message",
            "disconnected",
            "closed"
        ],
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(ev[0].1, "{\"event\":\"opened\",\"client\":3}");
    assert_eq!(
        ev[2].1,
        format!("{{\"event\":\"subscribed\",\"client\":3,\"topic\":\"{topic}\",\"qos\":1}}")
    );
    assert!(ev[4].1.starts_with(&format!(
        "{{\"event\":\"published\",\"client\":3,\"topic\":\"{topic}\",\"msg_id\":"
    )));
    assert!(
        ev[5].1.ends_with(&format!(
            "\"topic\":\"{topic}\",\"payload\":\"hello, \\\"cli\\\"\"}}"
        )),
        "{}",
        ev[5].1
    );
    assert_eq!(out.status.code(), Some(0));
    drop(sim);
}

#[test]
fn cli_prints_payloads_that_are_not_utf8_as_hex() {
    let (sim, pty) = Sim::start_pty(SimConfig {
        echo: false,
        ..SimConfig::default()
    })
    .expect("pty");
    let b = broker();
    let topic = uniq("cli/bin");
    // An independent client leaves a retained binary message on the topic.
    let peer = Peer::new(b, &uniq("peer"));
    peer.client
        .publish(&topic, qos_of(1), true, vec![0xff, 0x00, 0x80, b'"'])
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let port = b.port.to_string();
    let out = bc26(&[
        "--serial",
        pty.to_str().unwrap(),
        "--host",
        &b.host,
        "--port",
        &port,
        "--hex",
        "--sub",
        &topic,
        "--listen",
        "1",
    ]);
    let ev = events(&out);
    let msg = ev.iter().find(|(e, _)| e == "message").expect("a message");
    assert!(
        msg.1.ends_with(&format!(
            "\"topic\":\"{topic}\",\"payload_hex\":\"ff008022\"}}"
        )),
        "{}",
        msg.1
    );
    assert_eq!(out.status.code(), Some(0));
    peer.client
        .publish(&topic, qos_of(1), true, Vec::new())
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));
    drop(sim);
}

#[test]
fn cli_refuses_bad_arguments_before_anything_reaches_the_modem() {
    let (sim, pty) = Sim::start_pty(SimConfig::default()).expect("pty");
    let p = pty.to_str().unwrap();
    let long = "t".repeat(300);
    for args in [
        vec!["--serial", p, "--host", "h", "--sub", "a\"b"],
        vec!["--serial", p, "--host", "h", "--pub", &format!("{long}=x")],
        vec!["--serial", p, "--host", "h", "--port", "0"],
        vec!["--serial", p, "--host", "h", "--qos", "3"],
        vec!["--serial", p, "--host", "h", "--id", "6"],
        vec!["--serial", p, "--host", "h\r\nAT+QMTCLOSE=0"],
        vec!["--serial", p],
        vec!["--sim", "--serial", p],
        vec!["--bogus"],
    ] {
        let out = bc26(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(!out.stderr.is_empty(), "{args:?}: no reason given");
    }
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert!(
        sim.transcript().is_empty(),
        "the modem answered something: a byte reached it"
    );
}

#[test]
fn cli_reports_a_refused_connection_and_exits_1() {
    let Some(auth) = broker().auth.as_ref() else {
        eprintln!("skipped: the broker under test has no listener that needs credentials");
        return;
    };
    let (sim, pty) = Sim::start_pty(SimConfig::default()).expect("pty");
    let port = auth.port.to_string();
    let out = bc26(&[
        "--serial",
        pty.to_str().unwrap(),
        "--host",
        &broker().host,
        "--port",
        &port,
        "--user",
        &auth.user,
        "--password",
        "wrong",
    ]);
    let ev = events(&out);
    assert_eq!(ev[0].0, "opened");
    assert_eq!(
        ev[1].1,
        "{\"event\":\"error\",\"op\":\"connect\",\"error\":\"connection refused: NotAuthorized\"}"
    );
    assert_eq!(out.status.code(), Some(1));
    drop(sim);
}

#[test]
fn cli_sim_mode_needs_no_setup() {
    let out = bc26(&["--sim", "--sub", "s/t", "--pub", "s/t=x", "--listen", "1"]);
    let names: Vec<String> = events(&out).into_iter().map(|(e, _)| e).collect();
    assert_eq!(
        names,
        [
            "opened",
            "connected",
            "subscribed",
            "published",
            "message",
            "disconnected",
            "closed"
        ]
    );
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn cli_help_describes_every_flag_and_exits_0() {
    let out = bc26(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--serial",
        "--baud",
        "--sim",
        "--trace",
        "--host",
        "--port",
        "--id",
        "--client-id",
        "--user",
        "--password",
        "--version",
        "--keepalive",
        "--clean-session",
        "--will",
        "--hex",
        "--sub",
        "--pub",
        "--qos",
        "--retain",
        "--listen",
    ] {
        assert!(
            text.contains(&format!("{flag} ")) || text.contains(&format!("{flag}\n")),
            "{flag} missing:\n{text}"
        );
    }
    assert!(text.contains("Exit status"), "{text}");
}
