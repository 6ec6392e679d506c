//! `--sim`: the simulator's charge meter, printed at the end (standard error; with
//! `--power`, a "charge" event on standard output), and with `--power` a "power" event at
//! each change of the module's power state.

use std::io::Write as _;

use bc26_sim::model::{ChargeReport, PowerTransition};
use bc26_sim::{PowerProbe, SimHandle};
use serde::Serialize;

/// The power model of the simulator the CLI runs.
pub struct Meter {
    probe: PowerProbe,
    json: bool,
}

#[derive(Serialize)]
struct PowerEv {
    event: &'static str,
    at_ms: u64,
    state: &'static str,
}

#[derive(Serialize)]
struct StateEv {
    state: &'static str,
    ms: u64,
    mc: f64,
}

#[derive(Serialize)]
struct ChargeEv {
    event: &'static str,
    seconds: f64,
    total_mc: f64,
    energy_mj: f64,
    average_ua: f64,
    states: Vec<StateEv>,
    rrc_setups: u64,
    uplink_packets: u64,
    psm_entries: u64,
    taus: u64,
    uart_wakes: u64,
    eint_wakes: u64,
    host_bytes_lost: u64,
    downlink_held: u64,
    nat_expired: u64,
}

/// One JSON line on standard output (flushed; a closed output ends nothing).
fn emit<T: Serialize>(ev: &T) {
    let line = serde_json::to_string(ev).expect("a power event always serializes");
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn power_event(t: PowerTransition) -> PowerEv {
    PowerEv {
        event: "power",
        at_ms: u64::try_from(t.at.since_epoch().as_millis()).unwrap_or(u64::MAX),
        state: t.state.name(),
    }
}

fn charge_event(c: &ChargeReport) -> ChargeEv {
    let n = c.counters;
    ChargeEv {
        event: "charge",
        seconds: c.at.since_epoch().as_secs_f64(),
        total_mc: c.total().millicoulombs(),
        energy_mj: c.energy_mj(),
        average_ua: c.average_ua(),
        states: c
            .states
            .iter()
            .map(|s| StateEv {
                state: s.state.name(),
                ms: u64::try_from(s.time.as_millis()).unwrap_or(u64::MAX),
                mc: s.charge.millicoulombs(),
            })
            .collect(),
        rrc_setups: n.rrc_setups,
        uplink_packets: n.uplink_packets,
        psm_entries: n.psm_entries,
        taus: n.taus,
        uart_wakes: n.uart_wakes,
        eint_wakes: n.eint_wakes,
        host_bytes_lost: n.host_bytes_lost,
        downlink_held: n.downlink_held,
        nat_expired: n.nat_expired,
    }
}

/// Starts watching `sim`; with `json`, a thread prints each change of power state.
pub fn start(sim: &SimHandle, json: bool) -> Meter {
    let probe = sim.power_probe();
    if json {
        let events = probe.events();
        std::thread::Builder::new()
            .name("bc26-power".into())
            .spawn(move || {
                for t in events {
                    emit(&power_event(t));
                }
            })
            .expect("spawn the power event thread");
    }
    Meter { probe, json }
}

/// The charge meter at the end: a line on standard error, and the "charge" event.
pub fn finish(m: &Meter) {
    let Some(c) = m.probe.charge() else {
        eprintln!("bc26: the simulator did not report its charge meter");
        return;
    };
    let states: Vec<String> = c
        .states
        .iter()
        .filter(|s| !s.time.is_zero())
        .map(|s| {
            format!(
                "{} {:.3} mC in {:.3} s",
                s.state.name(),
                s.charge.millicoulombs(),
                s.time.as_secs_f64()
            )
        })
        .collect();
    eprintln!(
        "bc26: charge {:.3} mC ({:.3} mJ at {:.1} V, {:.1} uA on average) over {:.3} s: {}",
        c.total().millicoulombs(),
        c.energy_mj(),
        f64::from(c.supply_mv) / 1000.0,
        c.average_ua(),
        c.at.since_epoch().as_secs_f64(),
        states.join(", ")
    );
    if m.json {
        emit(&charge_event(&c));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bc26_sim::model::{Modem, PowerState, Time};
    use bc26_sim::SimConfig;

    #[test]
    fn power_and_charge_events_put_the_event_name_first() {
        let s = serde_json::to_string(&power_event(PowerTransition {
            at: Time::from_millis(1_500),
            state: PowerState::Connected,
        }))
        .unwrap();
        assert_eq!(s, r#"{"event":"power","at_ms":1500,"state":"connected"}"#);
        let mut m = Modem::new(&SimConfig::default());
        m.advance(Time::from_millis(2_000));
        let s = serde_json::to_string(&charge_event(&m.charge())).unwrap();
        // 2 s awake at 5.1 mA.
        assert!(
            s.starts_with(r#"{"event":"charge","seconds":2.0,"total_mc":10.2,"#),
            "{s}"
        );
        assert!(
            s.contains(r#"{"state":"awake","ms":2000,"mc":10.2}"#),
            "{s}"
        );
    }
}
