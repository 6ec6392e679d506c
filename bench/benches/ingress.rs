//! The ingress path on the same bytes: the driver (fake UART -> `Runner` ->
//! `Events` subscriber) against atat 0.25's stock `Ingress` + `AtDigester` +
//! derived URC parser -> `UrcChannel` subscriber. `cargo bench --bench ingress`.
//!
//! Each iteration streams a whole workload (and, for the driver, first
//! answers the one command that sets the receive format), so the time per
//! iteration divided by the bytes is the throughput divan prints.

use bc26_bench::ingress::{run_atat, run_driver, Workload, INGRESS};
use divan::counter::BytesCount;
use divan::Bencher;

fn main() {
    divan::main();
}

const WORKLOADS: [(usize, bool); 4] = [(100, false), (1024, false), (100, true), (1024, true)];

fn workload(i: usize) -> Workload {
    let (payload, hex) = WORKLOADS[i];
    Workload::new(if payload > 500 { 50 } else { 500 }, payload, hex)
}

/// 0: text 100 B, 1: text 1024 B, 2: hex 100 B, 3: hex 1024 B.
#[divan::bench(args = [0, 1, 2, 3])]
fn driver(b: Bencher, i: usize) {
    let w = workload(i);
    b.counter(BytesCount::new(w.bytes.len()))
        .bench_local(|| run_driver(&w, INGRESS));
}

/// The same workloads through atat.
#[divan::bench(args = [0, 1, 2, 3])]
fn atat(b: Bencher, i: usize) {
    let w = workload(i);
    b.counter(BytesCount::new(w.bytes.len()))
        .bench_local(|| run_atat(&w, INGRESS));
}

/// Text 1024 B payloads in 1-byte, 16-byte and whole reads (O(n)).
#[divan::bench(args = [1, 16, INGRESS])]
fn driver_1024_by_read_size(b: Bencher, max_read: usize) {
    let w = Workload::new(20, 1024, false);
    b.counter(BytesCount::new(w.bytes.len()))
        .bench_local(|| run_driver(&w, max_read));
}
