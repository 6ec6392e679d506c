//! Runs inputs through the harness without libFuzzer and prints what each
//! did: `cargo run --example replay -- FILE...` (with `BC26_FUZZ_TRACE=1`,
//! every step).

fn main() {
    let mut failed = false;
    for path in std::env::args().skip(1) {
        let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let (plan, noise) = bc26_mqtt_fuzz::Plan::decode(&data);
        println!("{path}: {plan:?}");
        println!("  modem bytes: {:?}", bc26_mqtt_fuzz::show(noise));
        match bc26_mqtt_fuzz::check(&data, &bc26_mqtt_fuzz::Options::default()) {
            Ok(r) => println!("  ok: {r:?}"),
            Err(f) => {
                println!("  FAILED: {f}");
                failed = true;
            }
        }
    }
    if failed {
        std::process::exit(1);
    }
}
