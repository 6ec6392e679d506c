//! Runs one world and prints its whole AT trace on standard output, its report (or its
//! failure) on standard error: the command a failing run prints.
//!
//! `cargo world-replay --seed 0x1f --days 365 [--mutant no-deadline] > trace.txt`
//! (`--report-only`: no trace, the report alone)

use bc26_world::{run, Mutant, Options};

fn main() {
    let mut seed = 1u64;
    let mut days = 1.0f64;
    let mut mutant = None;
    let mut keep = true;
    let mut recreate = true;
    let mut poison = true;
    let mut waiters = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--report-only" {
            keep = false;
            continue;
        }
        if a == "--recreate-supervisor" || a == "--no-recreate-supervisor" {
            recreate = a == "--recreate-supervisor";
            continue;
        }
        if a == "--no-poison" {
            poison = false;
            continue;
        }
        let v = args.next().unwrap_or_default();
        match a.as_str() {
            "--seed" => {
                seed = match v.strip_prefix("0x") {
                    Some(h) => u64::from_str_radix(h, 16),
                    None => v.parse(),
                }
                .unwrap_or_else(|_| panic!("--seed {v}: not a number"))
            }
            "--delivery-waiters" => waiters = Some(v.parse().unwrap_or_else(|_| panic!("{v}"))),
            "--days" => days = v.parse().unwrap_or_else(|_| panic!("--days {v}")),
            "--mutant" => {
                mutant = Some(Mutant::parse(&v).unwrap_or_else(|| panic!("--mutant {v}: no such")))
            }
            _ => panic!("usage: replay --seed N --days D [--mutant NAME] [--no-recreate-supervisor] [--no-poison] [--delivery-waiters N] [--report-only]"),
        }
    }
    let mut opts = Options::new(seed, days).mutant(mutant);
    opts.keep_trace = keep;
    opts.recreate_supervisor = recreate;
    opts.poison = poison;
    if let Some(w) = waiters {
        opts.delivery_waiters = w;
    }
    match run(&opts) {
        Ok(mut r) => {
            if let Some(t) = r.trace.take() {
                use std::io::Write;
                let _ = std::io::stdout().write_all(&t);
            }
            eprintln!("{r:#?}");
        }
        Err(f) => {
            if let Some(t) = &f.trace {
                use std::io::Write;
                let _ = std::io::stdout().write_all(t);
            }
            eprintln!("{f}");
            std::process::exit(1);
        }
    }
}
