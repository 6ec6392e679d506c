//! The table of every measurement, as `cargo bench --bench table` prints it.

use std::fmt::Write as _;
use std::time::Duration;

use crate::ingress::{run_atat, run_driver, Run, Workload, INGRESS};
use crate::wire::{self, byte_time, quantile, BAUD};

/// How much to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A few seconds of wire time and small workloads (CI).
    Short,
    /// The numbers bench/README.md shows.
    Full,
}

impl Mode {
    fn pick<T>(self, short: T, full: T) -> T {
        match self {
            Mode::Short => short,
            Mode::Full => full,
        }
    }
}

/// The run: the commit measured (`git describe`, with `-dirty` when the tree
/// has changes; "no git" outside a clone) and the date (UTC), so that a
/// pasted table says what it measured and when (bench/README.md).
pub fn run_id() -> String {
    let commit = std::process::Command::new("git")
        .args(["describe", "--always", "--dirty", "--abbrev=9"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "no git".into());
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (y, m, d) = civil_date(secs / 86_400);
    format!("commit {commit}, {y:04}-{m:02}-{d:02}")
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`).
fn civil_date(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// The machine: cores, CPU model, load average.
pub fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "?".into());
    format!("{cores} cores, {cpu}, load average {load}")
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The driver and atat on one workload, runs interleaved (driver first on
/// even rounds, atat first on odd ones); the median run of each.
pub fn ingress_pair(w: &Workload, max_read: usize, rounds: usize) -> (Run, Run) {
    let (mut d, mut a) = (Vec::new(), Vec::new());
    let (mut dr, mut ar) = (None, None);
    for r in 0..rounds {
        if r % 2 == 0 {
            dr = Some(run_driver(w, max_read));
            ar = Some(run_atat(w, max_read));
        } else {
            ar = Some(run_atat(w, max_read));
            dr = Some(run_driver(w, max_read));
        }
        d.push(dr.expect("run").elapsed);
        a.push(ar.expect("run").elapsed);
    }
    let mut dr = dr.expect("at least one round");
    let mut ar = ar.expect("at least one round");
    dr.elapsed = median(&mut d);
    ar.elapsed = median(&mut a);
    (dr, ar)
}

/// Instructions one ingress path executes on a workload, counted by
/// callgrind (the same program run again under `valgrind`, collecting inside
/// `run_driver` or `run_atat` only): exact and repeatable where the clock is
/// not. `None` when valgrind is not installed.
pub fn instructions(
    path: &str,
    payload: usize,
    hex: bool,
    frames: usize,
    max_read: usize,
) -> Option<u64> {
    let exe = std::env::current_exe().ok()?;
    let out = std::process::Command::new("valgrind")
        .args([
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            &format!("--toggle-collect=bc26_bench::ingress::run_{path}"),
        ])
        .arg(exe)
        .args([
            "--ingress",
            path,
            &payload.to_string(),
            if hex { "hex" } else { "text" },
            &frames.to_string(),
            "1",
            &max_read.to_string(),
        ])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    // "==123== Collected : 14098406"
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .find_map(|l| l.split("Collected :").nth(1))
        .and_then(|n| n.trim().parse().ok())
}

struct Table {
    out: String,
}

impl Table {
    fn new() -> Self {
        let mut out = String::new();
        out.push_str("| measurement | bc26-mqtt | reference | ratio | goal |\n");
        out.push_str("|---|---|---|---|---|\n");
        Self { out }
    }

    fn row(&mut self, what: &str, ours: &str, reference: &str, ratio: &str, goal: &str) {
        let _ = writeln!(
            self.out,
            "| {what} | {ours} | {reference} | {ratio} | {goal} |"
        );
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "NOT met"
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn us(d: Duration) -> String {
    format!("{:.0} us", d.as_secs_f64() * 1e6)
}

/// Measures everything and returns the table with its notes.
pub fn run(mode: Mode) -> String {
    let mut t = Table::new();
    let mut notes = String::new();
    let rounds = mode.pick(3, 15);

    // ------------------------------------------------ ingress against atat
    let line_rate = f64::from(BAUD) / 10.0; // bytes a second
    let mut slowest_mb = f64::INFINITY;
    for (payload, hex) in [(100, false), (1024, false), (100, true), (1024, true)] {
        let frames = mode.pick(
            if payload > 500 { 40 } else { 300 },
            if payload > 500 { 400 } else { 3000 },
        );
        let w = Workload::new(frames, payload, hex);
        let (d, a) = ingress_pair(&w, INGRESS, rounds);
        slowest_mb = slowest_mb.min(d.mb_per_s());
        let ratio = d.mb_per_s() / a.mb_per_s();
        // Instructions per wire byte, when valgrind is there (200 frames).
        let counted = instructions("driver", payload, hex, 200, INGRESS)
            .zip(instructions("atat", payload, hex, 200, INGRESS));
        let per_byte = |n: u64| n as f64 / Workload::new(200, payload, hex).bytes as f64;
        let (ours_ins, ref_ins, ratio_ins, goal) = match counted {
            Some((di, ai)) => (
                format!(", {:.1} instructions/B", per_byte(di)),
                format!(", {:.1} instructions/B", per_byte(ai)),
                format!(" (instructions: {:.2}x)", ai as f64 / di as f64),
                format!(
                    ">= 1.0x: clock {}, instructions {}",
                    verdict(ratio >= 1.0),
                    verdict(ai >= di)
                ),
            ),
            None => (
                String::new(),
                String::new(),
                String::new(),
                format!(">= 1.0x: {}", verdict(ratio >= 1.0)),
            ),
        };
        t.row(
            &format!(
                "ingress, {}: reads of up to {INGRESS} B, {} B frames",
                w.name(),
                w.frame_len()
            ),
            &format!(
                "{:.1} MB/s, {:.0} msg/s{}{ours_ins}",
                d.mb_per_s(),
                d.messages_per_s(),
                if d.missed > 0 {
                    format!(", {} MISSED", d.missed)
                } else {
                    String::new()
                }
            ),
            &format!(
                "atat: {:.1} MB/s, {:.0} msg/s{ref_ins}",
                a.mb_per_s(),
                a.messages_per_s()
            ),
            &format!("{ratio:.2}x{ratio_ins}"),
            &goal,
        );
    }
    t.row(
        "ingress, slowest workload, against the line rate",
        &format!("{slowest_mb:.1} MB/s"),
        &format!("{BAUD} baud: {:.1} kB/s", line_rate / 1e3),
        &format!("{:.0}x", slowest_mb * 1e6 / line_rate),
        &format!(
            ">= 1000x: {}",
            verdict(slowest_mb * 1e6 / line_rate >= 1000.0)
        ),
    );

    // O(n): a 1024-byte payload however the reads cut it.
    let big = Workload::new(mode.pick(10, 100), 1024, false);
    let small = Workload::new(mode.pick(100, 1000), 100, false);
    let mut per_byte = Vec::new();
    for max_read in [1, 16, INGRESS] {
        let (d, a) = ingress_pair(&big, max_read, rounds.min(5));
        per_byte.push((max_read, d.ns_per_byte(), a.ns_per_byte()));
    }
    let (ds, as_) = ingress_pair(&small, 1, rounds.min(5));
    let cuts: Vec<String> = per_byte
        .iter()
        .map(|(r, d, _)| {
            format!(
                "{}: {d:.1}",
                if *r == INGRESS {
                    "whole".into()
                } else {
                    format!("{r} B")
                }
            )
        })
        .collect();
    let atat_cuts: Vec<String> = per_byte
        .iter()
        .map(|(r, _, a)| {
            format!(
                "{}: {a:.1}",
                if *r == INGRESS {
                    "whole".into()
                } else {
                    format!("{r} B")
                }
            )
        })
        .collect();
    let growth = per_byte[0].1 / ds.ns_per_byte();
    // The same ratio in instructions per byte (20 frames each), when counted.
    let per_b = |path: &str, payload: usize| {
        let bytes = Workload::new(20, payload, false).bytes as f64;
        instructions(path, payload, false, 20, 1).map(|n| n as f64 / bytes)
    };
    let counted = match (
        per_b("driver", 1024),
        per_b("driver", 100),
        per_b("atat", 1024),
        per_b("atat", 100),
    ) {
        (Some(d1), Some(d0), Some(a1), Some(a0)) => Some((d1, d0, a1, a0)),
        _ => None,
    };
    let (ins_text, linear) = match counted {
        Some((d1, d0, a1, a0)) => (
            format!(
                "; instructions/B {d1:.0} / {d0:.0} = {:.2} (atat {a1:.0} / {a0:.0} = {:.2})",
                d1 / d0,
                a1 / a0
            ),
            d1 / d0 < 1.1,
        ),
        None => (String::new(), growth < 1.5),
    };
    t.row(
        "ingress O(n): ns per byte of text 1024 B frames, by read size",
        &cuts.join(", "),
        &format!("atat: {}", atat_cuts.join(", ")),
        &format!(
            "1-byte reads, 1024 B frames / 100 B frames: ns/B {growth:.2} (atat {:.2}){ins_text}",
            per_byte[0].2 / as_.ns_per_byte()
        ),
        &format!(
            "O(n): ratio about 1 ({}): {}",
            if counted.is_some() {
                "instructions"
            } else {
                "clock"
            },
            verdict(linear)
        ),
    );
    let _ = writeln!(
        notes,
        "- Ingress: the same bytes (back-to-back `+QMTRECV` frames on a {}-byte topic) fed through a fake UART \
         (reads of up to {INGRESS} B, never more than the ingress buffer has free; `Pending` once after each read) to \
         (a) the driver: `Runner::run` -> `Events` subscriber counting `Event::Message`, and (b) atat 0.25 stock: \
         `Ingress` + `AtDigester` + a derived `AtatUrc` enum parsing `+QMTRECV` into a struct with the payload -> \
         `UrcChannel` -> subscriber counting (hex payloads decoded there, as the driver decodes them). Both under the \
         same poll loop, interleaved, median of {rounds} runs. MB = 10^6 wire bytes. Instructions (when valgrind is \
         installed): callgrind's count inside `run_driver` / `run_atat` for 200 frames (setup included: a few \
         thousand), per wire byte; the ratio is atat's count over the driver's. The clock on a shared machine \
         varies by tens of percent from run to run; the counts do not.",
        crate::ingress::TOPIC.len()
    );
    let _ = writeln!(
        notes,
        "- O(n): time per wire byte of 1024-byte text payloads read 1 byte, 16 bytes or up to {INGRESS} bytes at a \
         time; the ratio compares the cost per byte of 1-byte reads of 1024-byte frames with that of 100-byte frames \
         (about 1 when the cost is linear in the frame; atat rescans its buffer from the start at every read, so \
         its ratio grows with the frame). At 1-byte reads the cost is mostly the read itself (one poll round a \
         byte); the instruction counts (callgrind, 20 frames each) are exact where the clock is not."
    );

    // ------------------------------------------------ QoS 0 loop
    let n0 = mode.pick(40, 300);
    let reps0 = mode.pick(1, 3);
    for echo in [false, true] {
        // Driver and plain blocking host alternately; the median of each.
        let (mut ds, mut rs) = (Vec::new(), Vec::new());
        for _ in 0..reps0 {
            ds.push(wire::qos0_loop(echo, n0));
            rs.push(wire::raw_qos0_loop(echo, n0));
        }
        ds.sort_by_key(|q| q.elapsed);
        rs.sort_by_key(|q| q.elapsed);
        let (q, raw) = (ds[ds.len() / 2], rs[rs.len() / 2]);
        let bt_ms = byte_time() * 1e3;
        let on = if echo { "on" } else { "off" };
        t.row(
            &format!("QoS 0 loop, echo {on}: {n0} publishes at {BAUD} baud"),
            &format!(
                "{:.3} ms a publish: {:.1}% of the wire bound, {:.1}% of the protocol bound",
                q.per_publish() * 1e3,
                q.of_wire() * 100.0,
                q.of_protocol() * 100.0
            ),
            &format!(
                "bounds {:.3} / {:.3} ms; a blocking host without the driver: {:.3} ms ({:.1}% of protocol)",
                q.wire_bytes() * bt_ms,
                q.protocol_bytes() * bt_ms,
                raw.per_publish() * 1e3,
                raw.of_protocol() * 100.0
            ),
            &format!(
                "driver / blocking host: {:.3}",
                q.rate() / raw.rate()
            ),
            &format!(
                ">= 98% of protocol: {}",
                verdict(q.of_protocol() >= 0.98)
            ),
        );
        let _ = writeln!(
            notes,
            "- QoS 0, echo {on}: a publish puts {:.1} B on the wire host to modem (its line) and {:.1} B modem to host \
             ({}`OK` {}, `+QMTPUB: 0,0,0` 18), as the simulator counted them. One byte is 10 bits: {:.2} us. \
             Wire bound = the busier direction = max({:.1}, {:.1}) = {:.1} byte times = {:.3} ms. Protocol bound: \
             the next line may start only after the `OK`, so a publish takes the line plus the answer after its \
             last byte ({}`OK` {}) = {:.1} byte times, and never less than the modem's {:.1} bytes (one direction): \
             max({:.1}, {:.1}) = {:.1} byte times = {:.3} ms.",
            q.host_bytes,
            q.modem_bytes,
            if echo { "echo of the line, " } else { "" },
            wire::OK_LEN,
            byte_time() * 1e6,
            q.host_bytes,
            q.modem_bytes,
            q.wire_bytes(),
            q.wire_bytes() * bt_ms,
            if echo { "echo of the CR 1, " } else { "" },
            wire::OK_LEN,
            q.host_bytes + q.answer_bytes(),
            q.modem_bytes,
            q.host_bytes + q.answer_bytes(),
            q.modem_bytes,
            q.protocol_bytes(),
            q.protocol_bytes() * bt_ms,
        );
    }
    let _ = writeln!(
        notes,
        "- QoS 0 loop: one task, `start_publish` after `start_publish` (each returns at its `OK`; the result of the \
         publish two before is awaited then), timed from the `OK` of the 5th publish to the `OK` of the last, \
         median of {reps0}. The blocking host writes the same line from a plain thread and reads until `OK`: the \
         most this simulator allows (a byte reaches the other side when its stop bit is complete; what is left to \
         the bound is the hand-offs between its threads at each turn of the line: the modem sees the CR, queues \
         its `OK`, the host reads it)."
    );

    // ------------------------------------------------ six clients against one
    let delay = Duration::from_secs(1);
    let reps = mode.pick(1, 3);
    let mut one: Vec<Duration> = (0..reps).map(|_| wire::open_connect(1, delay)).collect();
    let mut six: Vec<Duration> = (0..reps).map(|_| wire::open_connect(6, delay)).collect();
    let (one, six) = (median(&mut one), median(&mut six));
    let r6 = six.as_secs_f64() / one.as_secs_f64();
    t.row(
        "six clients open + connect at once, results 1 s after each OK",
        &format!("six: {}", ms(six)),
        &format!("one: {}", ms(one)),
        &format!("{r6:.3}x"),
        &format!("<= 1.05x: {}", verdict(r6 <= 1.05)),
    );

    // ------------------------------------------------ QoS 1 pipelining
    let rtt = Duration::from_millis(200);
    let (n_saw, n_pipe) = mode.pick((5, 40), (20, 160));
    let inflight = 8; // the default State's INFLIGHT
    let saw = wire::qos1(n_saw, 1, rtt);
    let pipe = wire::qos1(n_pipe, inflight, rtt);
    let (r_saw, r_pipe) = (
        n_saw as f64 / saw.as_secs_f64(),
        n_pipe as f64 / pipe.as_secs_f64(),
    );
    t.row(
        &format!("QoS 1, 200 ms round trip: {inflight} tasks publishing (default State)"),
        &format!("{r_pipe:.1} msg/s ({n_pipe} in {})", ms(pipe)),
        &format!("stop-and-wait: {r_saw:.2} msg/s ({n_saw} in {})", ms(saw)),
        &format!("{:.2}x", r_pipe / r_saw),
        &format!(">= 4x: {}", verdict(r_pipe / r_saw >= 4.0)),
    );
    let _ = writeln!(
        notes,
        "- QoS 1: the simulator sends each `+QMTPUB` result 200 ms after the broker's PUBACK (`SimConfig::result_delay`; \
         the in-process broker answers within a millisecond, and results due later never overtake earlier ones); \
         {inflight} tasks each `publish` in a loop (the default `State` has {inflight} in-flight slots) against one \
         task doing the same (stop-and-wait). Six clients: `result_delay` = 1 s for every deferred result, each client \
         `open` (with the `dataformat` line before it) then `connect`."
    );

    // ------------------------------------------------ latency
    let samples = mode.pick(10, 100);
    for hex in [false, true] {
        let l = wire::latency(hex, samples);
        t.row(
            &format!(
                "latency, last byte of a {} `+QMTRECV` ({} B) to the subscriber",
                if hex { "hex" } else { "text" },
                l.frame_len
            ),
            &format!(
                "read to event: median {}, 90% {}",
                us(quantile(&l.read_to_event, 0.5)),
                us(quantile(&l.read_to_event, 0.9))
            ),
            &format!(
                "inject to event less wire time: median {}, 90% {}",
                us(quantile(&l.inject_to_event, 0.5)),
                us(quantile(&l.inject_to_event, 0.9))
            ),
            "",
            "(reported)",
        );
    }
    let _ = writeln!(
        notes,
        "- Latency: a 100-byte payload injected with `SimHandle::inject` into the paced simulator, the line quiet \
         before each of {samples} samples. \"read to event\": from the UART read that returned the frame's last byte \
         to `Events::next` returning it (the driver, on embassy's std executor). \"inject to event\": from `inject` to \
         `Events::next`, less the frame's time on the wire: adds the simulator's threads and the executor's wake-up."
    );

    let state = core::mem::size_of::<bc26_mqtt::State>();
    t.row(
        "the default `State` (all of the driver's memory)",
        &format!("{state} B on this host ({}-bit)", usize::BITS),
        "8 KiB on 32-bit targets",
        "",
        "asserted at compile time on 32-bit targets; `.ci/sizes.sh` reports it",
    );

    format!("{}\n{}", t.out, notes)
}

#[cfg(test)]
mod date_tests {
    use super::civil_date;

    #[test]
    fn civil_date_agrees_with_known_days() {
        assert_eq!(civil_date(0), (1970, 1, 1));
        assert_eq!(civil_date(59), (1970, 3, 1));
        assert_eq!(civil_date(11_016), (2000, 2, 29));
        assert_eq!(civil_date(20_793), (2026, 12, 6));
    }
}
