//! The ingress path on the same bytes: the driver (fake UART -> `Runner` ->
//! `Events` subscriber) against atat 0.25's stock `Ingress` + `AtDigester` +
//! derived URC parser -> `UrcChannel` subscriber. `cargo bench --bench ingress`.
//!
//! Each iteration streams a whole workload of about 400 KB (the driver first
//! answers the one command that sets the receive format, and both build
//! their state: a few microseconds), so the time per iteration over the
//! bytes is the throughput divan prints.

use bc26_bench::ingress::{run_atat, run_driver, Workload, INGRESS};
use divan::counter::BytesCount;
use divan::Bencher;

fn main() {
    divan::main();
}

/// `text-100`: text payloads of 100 bytes; `hex-1024`: hex payloads of 1024
/// bytes (2048 digits on the wire); and so on.
fn workload(name: &str) -> Workload {
    let (format, payload) = name.split_once('-').expect("FORMAT-PAYLOAD");
    let payload: usize = payload.parse().expect("payload bytes");
    let hex = format == "hex";
    let frame = if hex { 2 * payload } else { payload } + 40;
    Workload::new(400_000 / frame, payload, hex)
}

const WORKLOADS: [&str; 4] = ["text-100", "text-1024", "hex-100", "hex-1024"];

#[divan::bench(args = WORKLOADS)]
fn driver(b: Bencher, name: &str) {
    let w = workload(name);
    b.counter(BytesCount::new(w.bytes))
        .bench_local(|| run_driver(&w, INGRESS));
}

#[divan::bench(args = WORKLOADS)]
fn atat(b: Bencher, name: &str) {
    let w = workload(name);
    b.counter(BytesCount::new(w.bytes))
        .bench_local(|| run_atat(&w, INGRESS));
}

/// Text 1024-byte payloads read 1 byte, 16 bytes or up to 2,400 bytes at a
/// time (O(n): the time per byte does not grow with the frame).
#[divan::bench(args = [1, 16, INGRESS])]
fn driver_text_1024_by_read_size(b: Bencher, max_read: usize) {
    let w = Workload::new(20, 1024, false);
    b.counter(BytesCount::new(w.bytes))
        .bench_local(|| run_driver(&w, max_read));
}

/// The same through atat (which scans its buffer from the start at each read).
#[divan::bench(args = [1, 16, INGRESS])]
fn atat_text_1024_by_read_size(b: Bencher, max_read: usize) {
    let w = Workload::new(20, 1024, false);
    b.counter(BytesCount::new(w.bytes))
        .bench_local(|| run_atat(&w, max_read));
}
