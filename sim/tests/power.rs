//! The power model through the threaded simulator: a UART in light sleep loses the command
//! that wakes it, PSM_EINT wakes it at once, and the handle reads the charge meter, the power
//! state and the log of transitions. (The model's own tests, `src/model/tests/power.rs`,
//! pin every byte and instant on a fake clock.)

mod common;

use std::time::Duration;

use bc26_sim::model::PowerState;
use bc26_sim::{PowerConfig, SimConfig};
use common::{show, Term};

#[test]
fn a_sleeping_uart_loses_the_first_command_and_the_handle_reads_the_meter() {
    let mut t = Term::new(SimConfig {
        echo: false,
        power: PowerConfig {
            qsclk_at_boot: 2,
            sleep_lock: Duration::from_millis(1_000),
            ..PowerConfig::default()
        },
        ..SimConfig::default()
    });
    let events = t.handle.power_events();
    assert_eq!(t.handle.power_state(), Some(PowerState::LightSleepDrx));
    // The first AT wakes the UART and is lost: no answer.
    t.send("AT");
    assert_eq!(show(&t.drain_for(Duration::from_millis(200))), "");
    t.at("AT", "\r\nOK\r\n");
    assert_eq!(t.handle.host_transcript(), b"AT\r");
    // 1 s after the last command it sleeps again; PSM_EINT wakes it at once.
    common::wait_for("light sleep", || {
        t.handle.power_state() == Some(PowerState::LightSleepDrx)
    });
    t.handle.psm_eint();
    t.at("AT", "\r\nOK\r\n");
    let c = t.handle.charge().expect("the simulator answers");
    assert_eq!(c.counters.uart_wakes, 1);
    assert_eq!(c.counters.eint_wakes, 1);
    assert_eq!(c.counters.host_bytes_lost, 3);
    assert!(c.state(PowerState::Awake).time >= Duration::from_millis(1_000));
    assert!(c.total().attocoulombs() > 0);
    // The log: the state at the start, then each change.
    let seen: Vec<PowerState> = events.try_iter().map(|e| e.state).collect();
    assert_eq!(
        seen,
        [
            PowerState::LightSleepDrx,
            PowerState::Awake,
            PowerState::LightSleepDrx,
            PowerState::Awake
        ]
    );
}
