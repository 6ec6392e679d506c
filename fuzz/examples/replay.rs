//! Runs inputs through the harness without libFuzzer:
//! `cargo run --no-default-features --example replay -- FILE...` prints what
//! each did (with `BC26_FUZZ_TRACE=1`, every step); `-- --summary DIR`
//! runs every file of a corpus directory and prints how many inputs reached
//! each of the driver's counters and each operation outcome.

use std::collections::BTreeMap;

use bc26_mqtt_fuzz::{check, show, Options, Plan};

fn summary(dir: &str) -> bool {
    let mut reached: BTreeMap<&str, u32> = BTreeMap::new();
    let mut outcomes: BTreeMap<String, u32> = BTreeMap::new();
    let (mut n, mut failed) = (0, 0);
    for e in std::fs::read_dir(dir).expect("corpus directory") {
        let path = e.expect("entry").path();
        let data = std::fs::read(&path).expect("input");
        let (plan, _) = Plan::decode(&data);
        n += 1;
        let r = match check(&data, &Options::default()) {
            Ok(r) => r,
            Err(f) => {
                println!("{}: FAILED: {f}", path.display());
                failed += 1;
                continue;
            }
        };
        let s = r.stats;
        for (name, v) in [
            ("messages", r.messages),
            ("events_published", s.events_published),
            ("events_dropped", s.events_dropped),
            ("messages_dropped", s.messages_dropped),
            ("stale_results", s.stale_results),
            ("unsolicited_lines", s.unsolicited_lines),
            ("malformed_urcs", s.malformed_urcs),
            ("overflows", s.overflows),
            ("stray_responses", s.stray_responses),
            ("late_answers", s.late_answers),
            ("fences", s.fences),
            ("resyncs", s.resyncs),
            ("read_errors", s.read_errors),
            ("write_errors", s.write_errors),
            ("reboots", s.reboots),
            ("fenced_last", u32::from(r.fenced_last)),
        ] {
            *reached.entry(name).or_default() += u32::from(v > 0);
        }
        let o = r.op_outcome.unwrap_or_else(|| "-".into());
        let o = o.split(['(', ',']).next().unwrap_or("").to_owned();
        *outcomes.entry(format!("{:?}: {o}", plan.op)).or_default() += 1;
    }
    println!("{n} inputs, {failed} failed; inputs that reached each counter:");
    for (k, v) in reached {
        println!("  {k:18} {v}");
    }
    println!("operation outcomes:");
    for (k, v) in outcomes {
        println!("  {k:30} {v}");
    }
    failed == 0
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let ok = if args.first().map(String::as_str) == Some("--summary") {
        args[1..].iter().all(|d| summary(d))
    } else {
        let mut ok = true;
        for path in &args {
            let data = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
            let (plan, noise) = Plan::decode(&data);
            println!("{path}: {plan:?}");
            println!("  modem bytes: \"{}\"", show(noise));
            match check(&data, &Options::default()) {
                Ok(r) => println!("  ok: {r:?}"),
                Err(f) => {
                    println!("  FAILED: {f}");
                    ok = false;
                }
            }
        }
        ok
    };
    if !ok {
        std::process::exit(1);
    }
}
