//! The demo (`examples/demo.rs`), which `cargo test` builds: it ends by
//! itself, having sent a binary command through the simulator and a real
//! broker and received it byte for byte.

use std::path::PathBuf;
use std::process::Command;

fn example(name: &str) -> PathBuf {
    // target/debug/deps/demo-<hash> -> target/debug/examples/<name>
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name);
    assert!(
        path.exists(),
        "{} is not built: run `cargo test` (it builds the examples)",
        path.display()
    );
    path
}

#[test]
fn demo_ends_by_itself_within_seconds() {
    let start = std::time::Instant::now();
    let out = Command::new(example("demo")).output().expect("run demo");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("received the command, byte for byte"),
        "{text}"
    );
    assert!(text.trim_end().ends_with("done"), "{text}");
    assert!(start.elapsed() < std::time::Duration::from_secs(20));
}
