//! A week on a battery (issue 18; the figures: `cargo run --example battery` here, written
//! to `bench/README.md`): a device that publishes a 100-byte QoS 1 message every hour and
//! takes the commands queued while it slept, always online and in a duty cycle, on the
//! simulator's power model. The duty cycle must spend at least 20 times less charge a day;
//! its radio be on, per wake, no longer than its round trips, its receive window and the
//! network's inactivity timer; and every message and command arrive at least once.

use std::time::Duration;

use bc26_mqtt::commands::{ActiveTime, PeriodicTau, PsmTimers};
use bc26_mqtt::supervisor::{DutyCycle, OnlineTimers};
use bc26_world::{run, Battery, Options, Report};

const SEED: u64 = 0x18;
const DAYS: f64 = 7.0;
const WINDOW_S: u64 = 3;
const INACTIVITY_S: u64 = 20;

fn week(duty: bool) -> Report {
    week_with(duty, None)
}

fn week_with(duty: bool, keepalive: Option<(u16, Duration)>) -> Report {
    let b = Battery {
        duty_cycle: duty.then(|| {
            DutyCycle::new(
                embassy_time::Duration::from_secs(3600),
                embassy_time::Duration::from_secs(WINDOW_S),
            )
        }),
        inactivity: Duration::from_secs(INACTIVITY_S),
        payload: 100,
        keepalive,
    };
    run(&Options::battery(SEED, DAYS, b)).unwrap_or_else(|f| panic!("{f}"))
}

#[test]
fn a_duty_cycle_spends_twenty_times_less_a_day_and_delivers_every_message_and_command() {
    let online = week(false);
    let duty = week(true);
    for (name, r) in [("always online", &online), ("duty cycle", &duty)] {
        let p = r.power.as_ref().expect("power figures");
        println!(
            "{name}: {:.0} mC/day, {:.0} uA, {:.1} mC/message, {} connects, {} RRC set-ups, {:.1} s radio-on per connect; {} messages handed, {} delivered; {} commands sent, {} received",
            p.mc_per_day(),
            p.average_ua(),
            p.mc_per_message(),
            p.connects,
            p.charge.counters.rrc_setups,
            p.radio_on_per_connect(),
            r.handed,
            r.delivered,
            r.commands_sent,
            r.commands_received
        );
        // Every message and command at least once (the world fails a run that loses a
        // message; commands are only counted there).
        assert_eq!(r.handed, r.delivered, "{name}");
        assert!(r.handed >= 7 * 24 - 1, "{name}: {} messages", r.handed);
        assert!(r.commands_sent > 0, "{name}");
        assert_eq!(
            r.commands_received, r.commands_sent,
            "{name}: a command lost"
        );
    }
    let (o, d) = (online.power.unwrap(), duty.power.unwrap());
    let ratio = o.mc_per_day() / d.mc_per_day();
    assert!(ratio >= 20.0, "duty cycle only {ratio:.1} times less a day");
    // One wake an hour, no more (no wake is retried: no fault).
    assert!(
        (168..=170).contains(&d.connects),
        "{} wakes in a week",
        d.connects
    );
    // Radio-on per wake: the RRC set-up (2.5 s), the round trips of a wake (TCP, CONNECT,
    // SUBSCRIBE, PUBLISH, DISCONNECT: 5, at most 2 x 0.8 s each in this world), the
    // receive window and the inactivity timer.
    let bound = 2.5 + 5.0 * 1.6 + WINDOW_S as f64 + INACTIVITY_S as f64;
    assert!(
        d.radio_on_per_connect() <= bound,
        "{:.1} s radio-on per wake (bound {bound} s)",
        d.radio_on_per_connect()
    );
}

#[test]
fn always_online_timers_chosen_from_the_grant_spend_half_of_the_defaults_and_lose_nothing() {
    // The world's grant (T3324 10 s), its inactivity timer and its NAT (300 s).
    let granted = PsmTimers {
        periodic_tau: PeriodicTau::from_code(0b010_00001),
        active_time: ActiveTime::from_code(0b000_00101),
    };
    let t = OnlineTimers::choose(
        Some(granted),
        embassy_time::Duration::from_secs(INACTIVITY_S),
        embassy_time::Duration::from_secs(300),
    );
    assert!(t.reaches_psm);
    let h = Duration::from_micros(t.health_check.as_micros());
    let chosen = week_with(false, Some((t.keepalive_s, h)));
    let defaults = week(false);
    let (c, d) = (chosen.power.unwrap(), defaults.power.unwrap());
    println!(
        "always online, keep-alive {} s: {:.0} mC/day; the defaults: {:.0} mC/day",
        t.keepalive_s,
        c.mc_per_day(),
        d.mc_per_day()
    );
    assert!(c.mc_per_day() * 2.0 <= d.mc_per_day());
    assert_eq!(chosen.handed, chosen.delivered);
    assert_eq!(chosen.commands_received, chosen.commands_sent);
    // No link lost to the NAT: one connect for the week.
    assert_eq!(c.connects, 1);
    assert_eq!(c.charge.counters.nat_expired, 0);
}

#[test]
fn a_duty_cycle_under_the_sweeps_faults_loses_no_message() {
    // The short sweep's seeds and faults (link resets, every +QMTSTAT code, reboots at
    // any byte, silences, registration losses, broker restarts, lost and late
    // acknowledgements, cut lines, UART errors, failed opens, refused CONNACKs), a message
    // every 10 minutes, the supervisor in a duty cycle of an hour: every invariant holds
    // (the world fails a run that loses a message), and each message reaches the broker.
    let (mut faults, mut handed) = (0, 0);
    for seed in 1..=8u64 {
        let mut o = Options::new(seed, 20.0);
        o.battery = Some(Battery {
            duty_cycle: Some(DutyCycle::new(
                embassy_time::Duration::from_secs(3600),
                embassy_time::Duration::from_secs(WINDOW_S),
            )),
            inactivity: Duration::from_secs(INACTIVITY_S),
            payload: 100,
            keepalive: None,
        });
        let r = run(&o).unwrap_or_else(|f| panic!("{f}"));
        assert_eq!(r.handed, r.delivered, "seed {seed}");
        assert!(r.faults > 100, "seed {seed}: {} faults", r.faults);
        faults += r.faults;
        handed += r.handed;
    }
    println!("duty cycle under faults: 8 seeds x 20 days, {faults} faults, {handed} QoS 1 messages, 0 lost");
}
