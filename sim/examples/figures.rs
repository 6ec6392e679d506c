//! The simulator's performance figures, as `sim/README.md` reports them:
//!
//! ```sh
//! cargo run -p bc26-sim --no-default-features --example figures   # debug, as the tests run
//! ```
//!
//! - **Pacing accuracy** (115200 baud, 8N1): 11,520 bytes out (one second on the wire) and
//!   an 11,520-byte line in (plus its 9-byte answer), each timed from the inject or the
//!   write to the last byte read; five runs, how far past the wire time (never before it).
//! - **CPU per simulated second** of the threaded simulator (real time: a simulated
//!   second is a wall second): the process's CPU time (user + system, `getrusage`) over
//!   three seconds of (a) an idle line, (b) a host that writes `AT\r` and waits for its
//!   `OK`, again and again, with echo off and on.
//!
//! - **The model alone** (`bc26_sim::model::Modem` on a virtual clock, one thread, no
//!   pacing threads): CPU per simulated second of the same AT/OK loop, each byte given at
//!   the instant its stop bit is complete at 115200 baud; and a simulated year of a device
//!   that publishes QoS 1 every 10 minutes (acknowledged 50 ms later) with a 120 s
//!   keep-alive, its AT lines byte by byte at 115200 baud.
//!
//! It prints one line per figure, with the machine (cores, CPU model, load average) first.

use std::time::{Duration, Instant};

use bc26_sim::model::{Modem, NetAction, NetEvent, Time, ToHost};
use bc26_sim::{HostSide, Sim, SimConfig};

const BAUD: u32 = 115_200;
/// One second of bytes at 115200 baud, 8N1.
const N: usize = 11_520;

fn wire(n: usize) -> Duration {
    Duration::from_nanos(n as u64 * 10 * 1_000_000_000 / BAUD as u64)
}

fn paced(echo: bool) -> SimConfig {
    SimConfig {
        baud: Some(BAUD),
        echo,
        ..SimConfig::default()
    }
}

/// CPU time of the whole process so far (user + system).
fn cpu() -> Duration {
    let u = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF)
        .expect("getrusage");
    let tv = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(t.tv_sec() as u64) + Duration::from_micros(t.tv_usec() as u64)
    };
    tv(u.user_time()) + tv(u.system_time())
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    format!("{cores} cores, {model}, load average {load}")
}

fn read_until(host: &mut HostSide, end: &[u8], got: &mut Vec<u8>) {
    let mut buf = [0u8; 4096];
    while !got.ends_with(end) {
        let n = host
            .reader
            .read_blocking(&mut buf, Duration::from_secs(5))
            .expect("no answer within 5 s");
        assert!(n > 0, "EOF");
        got.extend_from_slice(&buf[..n]);
    }
}

/// 11,520 bytes injected: from the inject to the last byte read.
fn pacing_out() -> Duration {
    let (h, mut host) = Sim::start(paced(false));
    let data: Vec<u8> = (0..N).map(|i| b'a' + (i % 26) as u8).collect();
    std::thread::sleep(Duration::from_millis(20));
    let t0 = Instant::now();
    h.inject(&data);
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while got.len() < N {
        let n = host
            .reader
            .read_blocking(&mut buf, Duration::from_secs(5))
            .expect("output stalled");
        assert!(n > 0, "EOF");
        got.extend_from_slice(&buf[..n]);
    }
    let took = t0.elapsed();
    assert!(got == data, "the bytes differ");
    took
}

/// An 11,520-byte line written at once into a FIFO that holds it: from the write to the
/// last byte of the `\r\nERROR\r\n` that answers it.
fn pacing_in() -> Duration {
    let (_h, mut host) = Sim::start(SimConfig {
        uart_fifo: N,
        ..paced(false)
    });
    let mut line = b"AT".to_vec();
    line.resize(N - 1, b'X');
    line.push(b'\r');
    std::thread::sleep(Duration::from_millis(20));
    let t0 = Instant::now();
    host.writer.write_all_blocking(&line).unwrap();
    let mut got = Vec::new();
    read_until(&mut host, b"\r\nERROR\r\n", &mut got);
    t0.elapsed()
}

fn pacing(what: &str, wire: Duration, run: fn() -> Duration) {
    let mut late: Vec<Duration> = (0..5)
        .map(|_| {
            let took = run();
            assert!(took >= wire, "{what}: early: {took:?} < {wire:?}");
            took - wire
        })
        .collect();
    late.sort();
    println!(
        "pacing, {what} (wire time {wire:?}): late by min {:?}, median {:?}, max {:?} (5 runs; {:.3}% at the median)",
        late[0],
        late[2],
        late[4],
        late[2].as_secs_f64() * 100.0 / wire.as_secs_f64()
    );
}

/// CPU per simulated second while `work` runs for `span` (wall time = simulated time).
fn cpu_per_second(span: Duration, mut work: impl FnMut(Instant) -> u64) -> (f64, u64) {
    let c0 = cpu();
    let t0 = Instant::now();
    let n = work(t0 + span);
    let wall = t0.elapsed();
    let used = cpu() - c0;
    (used.as_secs_f64() / wall.as_secs_f64(), n)
}

/// The model on a virtual clock: gives it `line` byte by byte at 115200 baud from `t`, and
/// returns when the last byte was taken and the bytes the model sent meanwhile.
fn feed(m: &mut Modem, t: &mut Time, line: &[u8], out: &mut Vec<u8>) {
    for b in line {
        *t = *t + wire(1);
        m.host_bytes(*t, std::slice::from_ref(b));
        drain(m, out);
    }
}

fn drain(m: &mut Modem, out: &mut Vec<u8>) {
    while let Some(p) = m.poll_host() {
        if let ToHost::Echo(b) | ToHost::Message(b) = p {
            out.extend_from_slice(b);
        }
    }
}

/// CPU per simulated second of the AT/OK loop on the model alone (echo on): the host's
/// next line starts when the modem's answer is complete on the wire.
fn model_at_loop(span: Duration) -> (f64, u64) {
    let mut m = Modem::new(&SimConfig::default());
    let mut t = Time::ZERO;
    let end = Time::from_duration(span);
    let mut out = Vec::new();
    let c0 = cpu();
    let mut n = 0;
    while t < end {
        out.clear();
        feed(&mut m, &mut t, b"AT\r", &mut out);
        assert!(out.ends_with(b"\r\nOK\r\n"));
        t = t + wire(out.len() - 3); // the answer after the echo of the CR
        n += 1;
    }
    let used = cpu() - c0;
    (used.as_secs_f64() / span.as_secs_f64(), n)
}

/// A year of a device on the model alone: returns the CPU time and the publishes.
fn model_year() -> (Duration, u64) {
    const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);
    let mut m = Modem::new(&SimConfig {
        echo: false,
        ..SimConfig::default()
    });
    let mut t = Time::ZERO;
    let mut out = Vec::new();
    let c0 = cpu();
    feed(&mut m, &mut t, b"AT+QMTOPEN=0,\"broker\",1883\r", &mut out);
    let link = match m.poll_net() {
        Some(NetAction::Connect { link, .. }) => link,
        other => panic!("{other:?}"),
    };
    t = t + Duration::from_millis(50);
    m.network(t, NetEvent::Connected(link));
    feed(&mut m, &mut t, b"AT+QMTCONN=0,\"dev\"\r", &mut out);
    t = t + Duration::from_millis(50);
    m.network(t, NetEvent::Data(link, b"\x20\x02\x00\x00"));
    let payload = "x".repeat(90);
    let mut published = 0u64;
    let mut next = Time::from_duration(Duration::from_secs(600));
    while t < Time::from_duration(YEAR) {
        // Answer what the modem sent: PINGRESP to a PINGREQ, PUBACK to a QoS 1 PUBLISH.
        while let Some(a) = m.poll_net() {
            if let NetAction::Send { bytes, .. } = a {
                let reply: Vec<u8> = match bytes[0] {
                    0xc0 => b"\xd0\x00".to_vec(),
                    0x32 => {
                        let id = &bytes[bytes.len() - payload.len() - 2..][..2];
                        vec![0x40, 2, id[0], id[1]]
                    }
                    _ => continue,
                };
                t = t + Duration::from_millis(50);
                m.network(t, NetEvent::Data(link, &reply));
            }
        }
        drain(&mut m, &mut out);
        out.clear();
        match m.poll_at() {
            Some(w) if w < next => {
                t = w;
                m.advance(t);
            }
            _ => {
                t = next;
                next = next + Duration::from_secs(600);
                published += 1;
                let id = (published % 65535) + 1;
                let line = format!("AT+QMTPUB=0,{id},1,0,\"dev/t\",\"{payload}\"\r");
                feed(&mut m, &mut t, line.as_bytes(), &mut out);
            }
        }
    }
    (cpu() - c0, published)
}

fn main() {
    println!("machine: {}", machine());
    pacing("11,520 bytes out", wire(N), pacing_out);
    pacing("11,520 bytes in + 9 out", wire(N + 9), pacing_in);

    let span = Duration::from_secs(3);
    {
        let (_h, _host) = Sim::start(paced(false));
        std::thread::sleep(Duration::from_millis(50));
        let (c, _) = cpu_per_second(span, |end| {
            std::thread::sleep(end.saturating_duration_since(Instant::now()));
            0
        });
        println!("CPU per simulated second, idle line: {:.1} ms", c * 1000.0);
    }
    for echo in [false, true] {
        let (_h, mut host) = Sim::start(paced(echo));
        let answer: &[u8] = if echo {
            b"AT\r\r\nOK\r\n"
        } else {
            b"\r\nOK\r\n"
        };
        let (c, n) = cpu_per_second(span, |end| {
            let mut n = 0;
            while Instant::now() < end {
                host.writer.write_all_blocking(b"AT\r").unwrap();
                let mut got = Vec::new();
                read_until(&mut host, b"\r\nOK\r\n", &mut got);
                assert!(got == answer, "{}", got.escape_ascii());
                n += 1;
            }
            n
        });
        // Each exchange: 3 bytes in, then the answer after the CR.
        let bound = wire(3 + 6 + if echo { 1 } else { 0 }).max(wire(answer.len()));
        let per = span.as_secs_f64() / n as f64;
        println!(
            "CPU per simulated second, AT/OK loop at 115200 baud, echo {}: {:.0} ms ({} exchanges, {:.1}% of the wire bound {:?} each)",
            if echo { "on" } else { "off" },
            c * 1000.0,
            n,
            bound.as_secs_f64() * 100.0 / per,
            bound
        );
    }

    let (c, n) = model_at_loop(Duration::from_secs(60));
    println!(
        "the model alone, CPU per simulated second, AT/OK loop at 115200 baud, echo on: {:.3} ms ({n} exchanges in 60 simulated seconds)",
        c * 1000.0
    );
    let (c, n) = model_year();
    println!(
        "the model alone, a simulated year (QoS 1 publish every 10 min, keep-alive 120 s, AT lines byte by byte): {:.2} s of CPU for {n} publishes",
        c.as_secs_f64()
    );
}
