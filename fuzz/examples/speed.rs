//! Executions per second of the harness without libFuzzer or sanitizers:
//! `cargo run --release --example speed -- DIR` (every file in DIR, 20 times).

const ROUNDS: usize = 20;

fn main() {
    let dir = std::env::args().nth(1).expect("a corpus directory");
    let inputs: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .expect("corpus directory")
        .map(|e| std::fs::read(e.expect("entry").path()).expect("input"))
        .collect();
    let t = std::time::Instant::now();
    let mut n = 0u64;
    for _ in 0..ROUNDS {
        for i in &inputs {
            bc26_mqtt_fuzz::fuzz(i);
            n += 1;
        }
    }
    let s = t.elapsed().as_secs_f64();
    println!(
        "{n} executions of {} inputs in {s:.2} s: {:.0}/s",
        inputs.len(),
        n as f64 / s
    );
}
