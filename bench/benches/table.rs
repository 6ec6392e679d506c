//! Every measurement in one table: `cargo bench --bench table` (the numbers
//! of bench/README.md, a few minutes), `cargo bench --bench table -- --short`
//! (seconds; what CI runs).
//!
//! For profiling one ingress path alone (e.g. under
//! `valgrind --tool=callgrind`):
//! `cargo bench --bench table -- --ingress driver|atat PAYLOAD text|hex [FRAMES] [RUNS] [MAX_READ]`.

use bc26_bench::ingress::{run_atat, run_driver, Workload, INGRESS};
use bc26_bench::table::{machine, run, run_id, Mode};

fn main() {
    // `cargo bench` passes `--bench`; other arguments are ignored.
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--ingress") {
        return ingress_only(&args[i + 1..]);
    }
    let short = args.iter().any(|a| a == "--short");
    let mode = if short { Mode::Short } else { Mode::Full };
    println!(
        "bc26-mqtt benchmarks ({} mode), {}, on {}\n",
        if short { "short" } else { "full" },
        run_id(),
        machine()
    );
    print!("{}", run(mode));
}

/// One ingress path on one workload, `runs` times.
fn ingress_only(a: &[String]) {
    let usage = "--ingress driver|atat PAYLOAD text|hex [FRAMES] [RUNS] [MAX_READ]";
    let path = a.first().map(String::as_str).expect(usage);
    let payload: usize = a.get(1).and_then(|s| s.parse().ok()).expect(usage);
    let hex = a.get(2).map(String::as_str).expect(usage) == "hex";
    let frames = a.get(3).and_then(|s| s.parse().ok()).unwrap_or(100);
    let runs = a.get(4).and_then(|s| s.parse().ok()).unwrap_or(1);
    let max_read = a.get(5).and_then(|s| s.parse().ok()).unwrap_or(INGRESS);
    let w = Workload::new(frames, payload, hex);
    for _ in 0..runs {
        let r = match path {
            "driver" => run_driver(&w, max_read),
            "atat" => run_atat(&w, max_read),
            _ => panic!("{usage}"),
        };
        println!(
            "{path} {}: {} messages, {:.1} MB/s, {:.1} ns/byte",
            w.name(),
            r.messages,
            r.mb_per_s(),
            r.ns_per_byte()
        );
    }
}
