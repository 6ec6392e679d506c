//! `bc26 --sim`: the simulator's charge meter at the end (standard error), and with
//! `--power` the power events and the "charge" event on standard output.

use std::process::{Command, Output};

fn bc26(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bc26"))
        .args(args)
        .output()
        .expect("run bc26")
}

fn stdout_lines(out: &Output) -> Vec<String> {
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The number after `"key":` in a JSON line.
fn number(line: &str, key: &str) -> f64 {
    let at = line.find(&format!("\"{key}\":")).expect(key) + key.len() + 3;
    line[at..]
        .split([',', '}'])
        .next()
        .unwrap()
        .parse()
        .expect("a number")
}

#[test]
fn sim_prints_the_charge_meter_and_with_power_its_events_and_a_charge_event() {
    let out = bc26(&["--sim", "--sub", "p/t", "--pub", "p/t=x", "--listen", "1"]);
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bc26: charge "), "{err}");
    assert!(
        stdout_lines(&out).iter().all(|l| !l.contains("\"power\"")),
        "no power events without --power"
    );

    let out = bc26(&[
        "--sim", "--power", "--sub", "p/t", "--pub", "p/t=x", "--listen", "1",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let lines = stdout_lines(&out);
    // The open's SYN sets the radio transmitting, and nothing else happens in one second.
    let power: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("{\"event\":\"power\""))
        .collect();
    assert!(
        power
            .iter()
            .any(|l| l.ends_with(",\"state\":\"transmit\"}")),
        "{lines:?}"
    );
    let charge = lines.last().expect("output");
    assert!(charge.starts_with("{\"event\":\"charge\","), "{charge}");
    let total = number(charge, "total_mc");
    let seconds = number(charge, "seconds");
    // At most 100 mA (transmitting) the whole time, and more than awake (5.1 mA) for it.
    assert!(
        total > 5.1 * seconds && total <= 100.0 * seconds,
        "{charge}"
    );
    assert!(number(charge, "rrc_setups") >= 1.0, "{charge}");
    assert!(
        (number(charge, "energy_mj") - 3.3 * total).abs() < 1e-6 * total,
        "{charge}"
    );

    // --power needs --sim.
    let out = bc26(&["--serial", "/dev/null", "--host", "h", "--power"]);
    assert_eq!(out.status.code(), Some(2));
}
