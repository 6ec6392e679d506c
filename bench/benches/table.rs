//! Every measurement in one table: `cargo bench --bench table` (the numbers
//! of the README, a few minutes), `cargo bench --bench table -- --short`
//! (seconds; what CI runs).

use bc26_bench::table::{machine, run, Mode};

fn main() {
    // `cargo bench` passes `--bench`; other arguments are ignored.
    let short = std::env::args().any(|a| a == "--short");
    let mode = if short { Mode::Short } else { Mode::Full };
    println!(
        "bc26-mqtt benchmarks ({} mode) on {}\n",
        if short { "short" } else { "full" },
        machine()
    );
    print!("{}", run(mode));
}
