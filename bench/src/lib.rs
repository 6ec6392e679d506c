//! Benchmarks of `bc26-mqtt` (see bench/README.md):
//!
//! - [`ingress`]: the driver's whole receive path against atat 0.25's stock
//!   `AtDigester` and URC parsing, on the same bytes;
//! - [`wire`]: the wire-level loops against the simulator paced at 115200
//!   baud (QoS 0 loop against the wire and protocol bounds, six clients
//!   against one, QoS 1 pipelining against stop-and-wait, latency from the
//!   last byte of a `+QMTRECV` to the subscriber);
//! - [`table`]: the table `cargo bench --bench table` prints.
//!
//! Benchmarks report; the tests here check only that each workload does
//! what it says (every message delivered, the right bytes on the wire).

pub mod exec;
pub mod ingress;
pub mod table;
pub mod wire;
