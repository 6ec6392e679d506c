//! A week on a battery, always online and in a duty cycle, on the simulator's power model:
//! the tables of `bench/README.md` ("Duty cycle: a week on a battery"), in Markdown.
//!
//! `cargo run --example battery` (here, in `world/`): `--days D`, `--window S` (the duty
//! cycle's receive window), `--seed N`.

use std::time::Duration;

use bc26_mqtt::commands::{ActiveTime, PeriodicTau, PsmTimers};
use bc26_mqtt::supervisor::{DutyCycle, OnlineTimers};
use bc26_sim::model::PowerState;
use bc26_world::{run, Battery, Options, PowerReport};

const MAH: f64 = 2_400.0;

fn week(seed: u64, days: f64, duty: Option<u64>, inactivity: u64) -> (PowerReport, String) {
    week_with(seed, days, duty, inactivity, None)
}

fn week_with(
    seed: u64,
    days: f64,
    duty: Option<u64>,
    inactivity: u64,
    keepalive: Option<(u16, Duration)>,
) -> (PowerReport, String) {
    let b = Battery {
        duty_cycle: duty.map(|w| {
            DutyCycle::new(
                embassy_time::Duration::from_secs(3600),
                embassy_time::Duration::from_secs(w),
            )
        }),
        inactivity: Duration::from_secs(inactivity),
        payload: 100,
        keepalive,
    };
    let r = run(&Options::battery(seed, days, b)).unwrap_or_else(|f| panic!("{f}"));
    let note = format!(
        "{} of {} messages delivered, {} of {} commands received, {} copies at the broker",
        r.delivered, r.handed, r.commands_received, r.commands_sent, r.duplicates
    );
    (r.power.expect("power figures"), note)
}

fn main() {
    let mut seed = 0x18u64;
    let mut days = 7.0f64;
    let mut window = 3u64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let v = args.next().unwrap_or_default();
        match a.as_str() {
            "--seed" => seed = v.parse().expect("--seed N"),
            "--days" => days = v.parse().expect("--days D"),
            "--window" => window = v.parse().expect("--window S"),
            _ => panic!("usage: battery [--seed N] [--days D] [--window S]"),
        }
    }
    let (o, on) = week(seed, days, None, 20);
    let (d, dn) = week(seed, days, Some(window), 20);
    println!("Inactivity timer 20 s, {days} simulated days, seed {seed:#x}, receive window {window} s.\n");
    println!("| | always online | duty cycle | ratio |");
    println!("|---|---:|---:|---:|");
    let row = |name: &str, a: f64, b: f64, prec: usize| {
        println!(
            "| {name} | {a:.prec$} | {b:.prec$} | {:.1}x |",
            a / b.max(1e-12)
        );
    };
    row("charge per day (mC)", o.mc_per_day(), d.mc_per_day(), 0);
    row("average current (uA)", o.average_ua(), d.average_ua(), 1);
    row(
        "charge per message (mC)",
        o.mc_per_message(),
        d.mc_per_message(),
        1,
    );
    row(
        "radio on per day (s)",
        o.radio_on_s() / (o.seconds() / 86_400.0),
        d.radio_on_s() / (d.seconds() / 86_400.0),
        0,
    );
    row(
        "RRC connections per day",
        o.charge.counters.rrc_setups as f64 / (o.seconds() / 86_400.0),
        d.charge.counters.rrc_setups as f64 / (d.seconds() / 86_400.0),
        1,
    );
    println!(
        "| radio on per wake (s) | {:.1} per RRC connection | {:.1} | |",
        o.radio_on_per_rrc(),
        d.radio_on_per_connect()
    );
    println!(
        "| uplink packets per wake | {:.1} per RRC connection | {:.1} | |",
        o.charge.counters.uplink_packets as f64 / o.charge.counters.rrc_setups.max(1) as f64,
        d.charge.counters.uplink_packets as f64 / f64::from(d.connects.max(1))
    );
    println!(
        "| supervisor connects | {} | {} | |",
        o.connects, d.connects
    );
    println!(
        "| battery life on 2,400 mAh (days) | {:.0} | {:.0} | {:.1}x |",
        o.battery_days(MAH),
        d.battery_days(MAH),
        d.battery_days(MAH) / o.battery_days(MAH)
    );
    println!("\nWhere the charge goes (mC per day):\n");
    println!("| state | always online | duty cycle |");
    println!("|---|---:|---:|");
    for s in PowerState::ALL {
        let per_day =
            |p: &PowerReport| p.charge.state(s).charge.millicoulombs() / (p.seconds() / 86_400.0);
        let secs =
            |p: &PowerReport| p.charge.state(s).time.as_secs_f64() / (p.seconds() / 86_400.0);
        println!(
            "| {} | {:.1} ({:.0} s) | {:.1} ({:.0} s) |",
            s.name(),
            per_day(&o),
            secs(&o),
            per_day(&d),
            secs(&d)
        );
    }
    println!("\nDelivery: always online: {on}; duty cycle: {dn}.\n");
    println!("Always online, other keep-alives and health checks (inactivity 20 s):\n");
    println!("| keep-alive | health check | mC/day | RRC connections/day | awake s/day | battery (days) |");
    println!("|---:|---:|---:|---:|---:|---:|");
    // What `OnlineTimers::choose` picks from the grant (T3324 10 s), the inactivity timer and
    // the model's NAT (300 s).
    let granted = PsmTimers {
        periodic_tau: PeriodicTau::from_code(0b010_00001),
        active_time: ActiveTime::from_code(0b000_00101),
    };
    let chosen = OnlineTimers::choose(
        Some(granted),
        embassy_time::Duration::from_secs(20),
        embassy_time::Duration::from_secs(300),
    );
    let chosen = (chosen.keepalive_s, chosen.health_check.as_secs());
    for (k, h) in [(120u16, 60u64), (270, 60), (270, 0), chosen] {
        let (p, _) = week_with(seed, days, None, 20, Some((k, Duration::from_secs(h))));
        let per_day = p.seconds() / 86_400.0;
        println!(
            "| {k} s | {}{} | {:.0} | {:.0} | {:.0} | {:.0} |",
            if h == 0 {
                "off".to_string()
            } else {
                format!("{h} s")
            },
            if (k, h) == chosen {
                " (`OnlineTimers::choose`)"
            } else {
                ""
            },
            p.mc_per_day(),
            p.charge.counters.rrc_setups as f64 / per_day,
            p.charge.state(PowerState::Awake).time.as_secs_f64() / per_day,
            p.battery_days(MAH)
        );
    }
    println!();
    println!("Sensitivity to the network's inactivity timer (charge per day, mC; radio-on per wake or RRC connection, s; battery life, days):\n");
    println!("| inactivity | always online mC/day | duty cycle mC/day | ratio | radio on per wake (duty) | battery, always online | battery, duty cycle |");
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for t in [5u64, 10, 20, 60] {
        let (o, _) = week(seed, days, None, t);
        let (d, _) = week(seed, days, Some(window), t);
        println!(
            "| {t} s | {:.0} | {:.0} | {:.1}x | {:.1} | {:.0} | {:.0} |",
            o.mc_per_day(),
            d.mc_per_day(),
            o.mc_per_day() / d.mc_per_day(),
            d.radio_on_per_connect(),
            o.battery_days(MAH),
            d.battery_days(MAH)
        );
    }
}
