//! The seed corpus (generated here from the repository's transcripts and a
//! few hand-made inputs), every committed corpus input through the harness,
//! and the harness's own checks shown to fail when they should.
//!
//! Regenerate the seeds after a transcript changes:
//! `BC26_FUZZ_BLESS=1 cargo test --manifest-path fuzz/Cargo.toml`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bc26_mqtt_fuzz::{check, show, Op, Options, Plan, Reception, Report, ANSWER};

const TRANSCRIPTS: [(&str, &str); 3] = [
    (
        "seed-example",
        include_str!("../../tests/transcripts/seed-example.txt"),
    ),
    (
        "bg770a-echo-on",
        include_str!("../../tests/transcripts/bg770a-echo-on.txt"),
    ),
    (
        "failures",
        include_str!("../../tests/transcripts/failures.txt"),
    ),
];

/// A transcript line's escapes decoded: the testkit's, by path (the fuzz
/// crate cannot depend on the testkit: see that file).
#[path = "../../testkit/src/escapes.rs"]
mod escapes;
use escapes::unescape;

/// The modem's bytes of a transcript (its `<` lines), in order.
fn modem_bytes(text: &str) -> Vec<u8> {
    text.lines()
        .filter_map(|l| l.strip_prefix("< "))
        .flat_map(unescape)
        .collect()
}

/// Line-wise chunks (a modem's bursts).
const LINES: u8 = 7;

/// Schedule bytes: chunking (0-6: random up to 1..4096 bytes, 7: line by
/// line), pauses 0-3, faults 0-3, events drained while the noise arrives.
fn sched(chunk: u8, pauses: u8, faults: u8, drain: bool) -> u8 {
    chunk | pauses << 3 | faults << 5 | u8::from(drain) << 7
}

fn input(mode: u8, sched: u8, seed: u16, noise: &[u8]) -> Vec<u8> {
    input2(mode, sched, seed, Op::Idle, noise)
}

/// With a second operation, on client 1.
fn input2(mode: u8, sched: u8, seed: u16, op2: Op, noise: &[u8]) -> Vec<u8> {
    let mut v = vec![mode, sched];
    v.extend_from_slice(&seed.to_le_bytes());
    v.push(op2 as u8);
    v.extend_from_slice(noise);
    v
}

fn mode(op: Op, rec: Reception) -> u8 {
    Plan::mode_byte(op, rec, false, false, false)
}

/// The seed corpus: name -> input.
fn seeds() -> BTreeMap<String, Vec<u8>> {
    use Op::*;
    use Reception::*;
    let mut s = BTreeMap::new();
    let mut add = |name: &str, v: Vec<u8>| {
        assert!(s.insert(format!("seed-{name}"), v).is_none(), "{name}");
    };
    for (name, text) in TRANSCRIPTS {
        let bytes = modem_bytes(text);
        // Whole, byte by byte, in small chunks with pauses and faults, and
        // during a command and a prompt wait.
        add(
            &format!("{name}-idle-whole"),
            input(mode(Idle, TextConfig), sched(LINES, 0, 0, true), 0, &bytes),
        );
        add(
            &format!("{name}-idle-bytewise"),
            input(mode(Idle, TextConfig), sched(0, 0, 0, false), 0, &bytes),
        );
        add(
            &format!("{name}-idle-pauses-faults"),
            input(mode(Idle, Hex), sched(3, 1, 1, true), 7, &bytes),
        );
        add(
            &format!("{name}-keepalive"),
            input(mode(Keepalive, TextConfig), sched(4, 1, 0, true), 1, &bytes),
        );
        add(
            &format!("{name}-data-mode"),
            input(mode(DataMode, TextHexSend), sched(5, 1, 0, true), 2, &bytes),
        );
    }

    add(
        "seed-example-two-operations",
        input2(
            mode(Publish, TextConfig),
            sched(3, 1, 0, true),
            4,
            Keepalive,
            &modem_bytes(TRANSCRIPTS[0].1),
        ),
    );
    add(
        "two-operations-keepalive-data-mode",
        input2(
            mode(Keepalive, TextConfig),
            sched(LINES, 0, 0, true),
            0,
            DataMode,
            b"\r\n+QMTCFG: \"keepalive\",7\r\n\r\nOK\r\n\r\n> \r\nOK\r\n\r\n+QMTPUB: 1,1,0\r\n",
        ),
    );
    add(
        "two-operations-publish-subscribe",
        input2(
            mode(Publish, Hex),
            sched(LINES, 0, 0, true),
            0,
            Subscribe,
            b"\r\nOK\r\n\r\nOK\r\n\r\n+QMTSUB: 1,1,0,1\r\n\r\n+QMTPUB: 0,1,0\r\n",
        ),
    );
    let keepalive = b"\r\n+QMTCFG: \"keepalive\",120\r\n\r\nOK\r\n";
    add(
        "keepalive-answered",
        input(
            mode(Keepalive, TextConfig),
            sched(LINES, 0, 0, true),
            0,
            keepalive,
        ),
    );
    let mut echoed = b"AT+QMTCFG=\"keepalive\",0\r".to_vec();
    echoed.extend_from_slice(keepalive);
    add(
        "keepalive-echoed",
        input(mode(Keepalive, Hex), sched(LINES, 0, 0, true), 3, &echoed),
    );
    add(
        "keepalive-restart",
        input(
            mode(Keepalive, TextConfig),
            sched(LINES, 0, 0, true),
            0,
            b"\r\nRDY\r\n",
        ),
    );
    add(
        "data-mode-no-echo",
        input(
            mode(DataMode, TextConfig),
            sched(LINES, 0, 0, true),
            0,
            b"\r\n> \r\nOK\r\n\r\n+QMTPUB: 0,1,0\r\n",
        ),
    );
    add(
        "data-mode-echo",
        input(
            mode(DataMode, Hex),
            sched(LINES, 0, 0, true),
            0,
            b"\r\n> x\"\r\nOK\r\n+QMTPUB: 0,1,0\r\n> \r\nOK\r\n\r\n+QMTPUB: 0,1,0\r\n",
        ),
    );
    add(
        "data-mode-cancelled-slow",
        input(
            Plan::mode_byte(DataMode, TextConfig, true, true, true),
            sched(1, 2, 0, true),
            5,
            b"\r\n> \r\n> \r\nOK\r\n\r\nOK\r\n",
        ),
    );
    add(
        "open-hex-config",
        input(
            mode(Open, HexConfig),
            sched(LINES, 0, 0, true),
            0,
            b"\r\nOK\r\n\r\nOK\r\n\r\n+QMTOPEN: 0,0\r\n",
        ),
    );
    add(
        "publish-acked",
        input(
            mode(Publish, TextConfig),
            sched(LINES, 0, 0, true),
            0,
            b"\r\nOK\r\n\r\n+QMTPUB: 0,1,1,2\r\n\r\n+QMTPUB: 0,1,0\r\n",
        ),
    );
    add(
        "publish-link-closed",
        input(
            mode(Publish, TextConfig),
            sched(4, 0, 0, true),
            0,
            b"\r\nOK\r\n\r\n+QMTSTAT: 0,1\r\n",
        ),
    );
    add(
        "subscribe-granted",
        input(
            mode(Subscribe, Hex),
            sched(LINES, 0, 0, true),
            0,
            b"\r\nOK\r\n\r\n+QMTSUB: 0,1,0,1\r\n",
        ),
    );
    add(
        "open-links",
        input(
            mode(OpenLinks, TextConfig),
            sched(LINES, 0, 0, true),
            0,
            b"\r\n+QMTOPEN: 0,\"h\",1\r\n\r\n+QMTSTAT: 1,2\r\n\r\nOK\r\n",
        ),
    );
    add(
        "sequence",
        input(
            mode(Sequence, TextConfig),
            sched(LINES, 0, 0, true),
            0,
            b"\r\n+QMTCFG: \"keepalive\",60\r\n\r\nOK\r\n\r\n> \r\nOK\r\n\r\n+QMTPUB: 0,0,0\r\n\r\nOK\r\n\r\n+QMTPUB: 0,0,0\r\n",
        ),
    );
    add(
        "recv-text-quotes-crlf",
        input(
            mode(Idle, TextConfig),
            sched(LINES, 0, 0, true),
            0,
            b"\r\n+QMTRECV: 0,0,\"t\",\"a\"\r\nOK\r\n\"b\"\r\n\r\n+QMTRECV: 1,7,\"t/1\",\"x,y\"\r\n",
        ),
    );
    add(
        "recv-hex",
        input(
            mode(Idle, Hex),
            sched(2, 0, 0, true),
            0,
            b"\r\n+QMTRECV: 0,1,\"t/x\",\"48656C6C6F0D0A22\"\r\n\r\n+QMTRECV: 0,2,\"t/x\",\"4G\"\r\n",
        ),
    );
    add(
        "recv-lost-quote",
        input(
            mode(Idle, TextConfig),
            sched(4, 2, 0, true),
            9,
            b"\r\n+QMTRECV: 0,0,\"t\",\"abc\r\n\r\n+QMTSTAT: 0,1\r\n\r\n+QMTRECV: 0,0,\"t\",\"ok\"\r\n",
        ),
    );
    let mut long = b"\r\n+QMTRECV: 0,0,\"t\",\"".to_vec();
    long.extend(std::iter::repeat_n(b'a', 3000));
    long.extend_from_slice(b"\"\r\n\r\n+QMTRECV: 0,0,\"t\",\"after\"\r\n");
    add(
        "recv-too-long",
        input(mode(Idle, TextConfig), sched(6, 0, 0, true), 0, &long),
    );
    add(
        "stray-prompt-and-answers",
        input(
            mode(Idle, TextConfig),
            sched(LINES, 0, 0, true),
            0,
            b"\r\n> \r\nOK\r\n\r\nERROR\r\n\r\n+CME ERROR: 3\r\n\r\n+CEREG: 5\r\n",
        ),
    );
    add(
        "faults-and-pauses",
        input(
            mode(Keepalive, TextConfig),
            sched(2, 3, 3, true),
            11,
            b"\r\n+QMTCFG: \"keepalive\",9\r\n\r\nOK\r\n\r\n+QMTRECV: 0,0,\"t\",\"p\"\r\n",
        ),
    );
    add(
        "timeout-then-late-answer",
        input(
            Plan::mode_byte(Keepalive, TextConfig, false, true, false),
            sched(4, 3, 0, true),
            13,
            b"\r\n+QMTCFG: \"keepalive\",9\r\n\r\nOK\r\n\r\n> \r\nOK\r\n",
        ),
    );
    s
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/receive")
}

#[test]
fn seed_corpus_matches_its_generator() {
    let dir = corpus_dir();
    let seeds = seeds();
    if std::env::var_os("BC26_FUZZ_BLESS").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("seed-")
            {
                std::fs::remove_file(p).unwrap();
            }
        }
        for (name, bytes) in &seeds {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
    let mut on_disk = BTreeMap::new();
    for e in std::fs::read_dir(&dir).expect("fuzz/corpus/receive") {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_str().unwrap().to_owned();
        if name.starts_with("seed-") {
            on_disk.insert(name, std::fs::read(&p).unwrap());
        }
    }
    assert!(
        on_disk == seeds,
        "fuzz/corpus/receive/seed-* is out of date: run BC26_FUZZ_BLESS=1 cargo test --manifest-path fuzz/Cargo.toml"
    );
}

/// Every committed input (seeds and the regression inputs of crashes found)
/// passes the harness.
#[test]
fn every_committed_corpus_input_passes_the_harness() {
    let mut n = 0;
    for e in std::fs::read_dir(corpus_dir()).unwrap() {
        let p = e.unwrap().path();
        let data = std::fs::read(&p).unwrap();
        if let Err(f) = check(&data, &Options::default()) {
            panic!("{}: {f}", p.display());
        }
        n += 1;
    }
    assert!(n >= seeds().len());
}

fn run(name: &str) -> Report {
    let data = &seeds()[&format!("seed-{name}")];
    check(data, &Options::default()).unwrap_or_else(|f| panic!("{name}: {f}"))
}

/// The harness drives the driver as meant: answers reach the operation in
/// flight, messages reach the subscription, in text and in hex.
#[test]
fn well_formed_seeds_complete_their_operation() {
    let r = run("keepalive-answered");
    assert_eq!(r.op_outcome.as_deref(), Some("Ok(120)"));
    assert!(!r.fenced_last);
    let r = run("keepalive-echoed");
    assert_eq!(r.op_outcome.as_deref(), Some("Ok(120)"));
    for name in ["data-mode-no-echo", "data-mode-echo", "publish-acked"] {
        let r = run(name);
        assert_eq!(
            r.op_outcome.as_deref(),
            Some(if name == "publish-acked" {
                "Ok(Published { msg_id: 1, retransmissions: 2 })"
            } else {
                "Ok(Published { msg_id: 1, retransmissions: 0 })"
            }),
            "{name}"
        );
        assert_eq!(
            r.stats.stray_responses + r.stats.unsolicited_lines,
            0,
            "{name}: {:?}",
            r.stats
        );
    }
    assert_eq!(run("open-hex-config").op_outcome.as_deref(), Some("Ok(())"));
    assert!(run("subscribe-granted")
        .op_outcome
        .unwrap()
        .starts_with("Ok("));
    assert_eq!(
        run("publish-link-closed").op_outcome.as_deref(),
        Some("Err(LinkClosed(PeerClosed))")
    );
    assert!(run("open-links")
        .op_outcome
        .unwrap()
        .starts_with("Ok(OpenLinks("));
    let r = run("two-operations-keepalive-data-mode");
    assert_eq!(r.op_outcome.as_deref(), Some("Ok(7)"));
    assert_eq!(
        r.op2_outcome.as_deref(),
        Some("Ok(Published { msg_id: 1, retransmissions: 0 })")
    );
    let r = run("two-operations-publish-subscribe");
    assert_eq!(
        r.op_outcome.as_deref(),
        Some("Ok(Published { msg_id: 1, retransmissions: 0 })")
    );
    assert!(r.op2_outcome.unwrap().starts_with("Ok("));
    let r = run("sequence");
    assert_eq!(
        r.op_outcome.as_deref(),
        Some("Ok(60), Ok(Published { msg_id: 0, retransmissions: 0 }), Ok(Published { msg_id: 0, retransmissions: 0 })")
    );
    // The BC26 note's session: its three messages, whole and byte by byte.
    assert_eq!(run("seed-example-idle-whole").messages, 3);
    assert_eq!(run("seed-example-idle-bytewise").messages, 3);
    assert_eq!(run("recv-hex").messages, 1);
    assert_eq!(run("recv-text-quotes-crlf").messages, 2);
}

/// Over the seeds, the paths the fuzzer starts from are all reached.
#[test]
fn seeds_reach_every_recovery_path() {
    let mut total = bc26_mqtt::Stats::default();
    let (mut faults, mut pauses, mut fenced) = (0, 0, 0);
    for (name, data) in seeds() {
        let r = check(&data, &Options::default()).unwrap_or_else(|f| panic!("{name}: {f}"));
        let s = r.stats;
        total.fences += s.fences;
        total.late_answers += s.late_answers;
        total.resyncs += s.resyncs;
        total.read_errors += s.read_errors;
        total.overflows += s.overflows;
        total.stray_responses += s.stray_responses;
        total.reboots += s.reboots;
        total.malformed_urcs += s.malformed_urcs;
        total.write_errors += s.write_errors;
        faults += r.faults;
        pauses += r.pauses;
        fenced += u32::from(r.fenced_last);
    }
    assert!(
        faults > 0 && pauses > 0 && fenced > 0,
        "{faults} {pauses} {fenced}"
    );
    assert_eq!(total.read_errors, faults);
    for (what, n) in [
        ("fences", total.fences),
        ("late answers", total.late_answers),
        ("resyncs", total.resyncs),
        ("overflows", total.overflows),
        ("stray responses", total.stray_responses),
        ("reboots", total.reboots),
        ("malformed URCs", total.malformed_urcs),
    ] {
        assert!(n > 0, "no seed reaches {what}: {total:?}");
    }
}

/// The harness's last check fails when the modem does not answer the last
/// command, or gives it an answer that is not its own.
#[test]
fn the_harness_fails_when_the_last_command_is_not_answered_right() {
    let data = &seeds()["seed-keepalive-answered"];
    let f = check(data, &Options { answer: None }).unwrap_err();
    assert!(f.0.contains("gave Some(Err(Timeout(Response)))"), "{f}");
    let f = check(
        data,
        &Options {
            answer: Some(ANSWER + 1),
        },
    )
    .unwrap_err();
    assert!(f.0.contains(&format!("expected Ok({ANSWER})")), "{f}");
}

/// Any header, even an empty input, is a valid plan.
#[test]
fn short_inputs_are_valid_plans() {
    for data in [&b""[..], b"\x01", b"\x02\x07", b"\xff\xff\xff"] {
        check(data, &Options::default()).unwrap_or_else(|f| panic!("{}: {f}", show(data)));
    }
}
