//! `--sim-fault KIND@TIME`: the simulator's faults, injected at a time after
//! the link first came online, for a demo (and a test) of recovery.

use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use bc26_sim::broker::RestartableBroker;
use bc26_sim::SimHandle;

use crate::out::{self, Ev};

/// One `--sim-fault`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    pub kind: Kind,
    /// After the link first came online.
    pub at: Duration,
}

/// What the simulator does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The peer resets the TCP link: `+QMTSTAT: id,1`.
    LinkReset,
    /// The module closes the link: `+QMTSTAT: id,CODE`.
    LinkClose(u8),
    /// The module restarts (links dropped, settings lost, `RDY`).
    Reboot,
    /// A dead UART for this long.
    Silence(Duration),
    /// Registration lost (`+CEREG` 0, links dropped) for this long.
    RegistrationLoss(Duration),
    /// The broker stops, and starts again (empty) after this long.
    BrokerRestart(Duration),
}

/// A duration: `250ms`, `2s`, `1.5s`, `1m`; a bare number is seconds.
pub fn duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?}: not a duration (250ms, 2s, 1.5s, 1m)"))?;
    let scale = match unit {
        "ms" => 0.001,
        "s" => 1.0,
        "m" => 60.0,
        _ => return Err(format!("{s:?}: the unit is ms, s or m")),
    };
    let secs = n * scale;
    if !secs.is_finite() || !(0.0..=86_400.0 * 365.0).contains(&secs) {
        return Err(format!("{s:?}: out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// `KIND[:ARG]@TIME`.
pub fn parse(s: &str) -> Result<Fault, String> {
    let (what, at) = s
        .rsplit_once('@')
        .ok_or("takes KIND@TIME, e.g. link-reset@5s")?;
    let at = duration(at)?;
    let (name, arg) = match what.split_once(':') {
        Some((n, a)) => (n, Some(a)),
        None => (what, None),
    };
    let need = |what: &str| {
        arg.ok_or(format!(
            "{name} takes :{what}, e.g. {name}:{}",
            example(name)
        ))
    };
    let kind = match name {
        "link-reset" => Kind::LinkReset,
        "reboot" => Kind::Reboot,
        "link-close" => {
            let code: u8 = need("CODE")?
                .parse()
                .map_err(|_| "link-close:CODE: CODE is 1-255".to_owned())?;
            if code == 0 {
                return Err("link-close:CODE: CODE is 1-255".into());
            }
            Kind::LinkClose(code)
        }
        "silence" => Kind::Silence(duration(need("DURATION")?)?),
        "registration-loss" => Kind::RegistrationLoss(duration(need("DURATION")?)?),
        "broker-restart" => Kind::BrokerRestart(duration(need("DURATION")?)?),
        _ => {
            return Err(format!(
                "unknown fault {name:?}: link-reset, link-close:CODE, reboot, silence:DURATION, \
                 registration-loss:DURATION, broker-restart:DURATION"
            ))
        }
    };
    if arg.is_some() && matches!(kind, Kind::LinkReset | Kind::Reboot) {
        return Err(format!("{name} takes no argument"));
    }
    Ok(Fault { kind, at })
}

fn example(name: &str) -> &'static str {
    if name == "link-close" {
        "3"
    } else {
        "2s"
    }
}

/// One thing the fault thread does at a time.
#[derive(Debug, Clone, Copy)]
enum Step {
    LinkReset,
    LinkClose(u8),
    Reboot,
    Silent(bool),
    Registered(bool),
    Broker(bool),
}

impl Step {
    fn name(self) -> &'static str {
        match self {
            Step::LinkReset => "link-reset",
            Step::LinkClose(_) => "link-close",
            Step::Reboot => "reboot",
            Step::Silent(true) => "silence",
            Step::Silent(false) => "silence-end",
            Step::Registered(false) => "registration-loss",
            Step::Registered(true) => "registration-back",
            Step::Broker(false) => "broker-stop",
            Step::Broker(true) => "broker-start",
        }
    }
}

/// The faults' steps, in time order (a fault with a duration is two steps).
fn schedule(faults: &[Fault]) -> Vec<(Duration, Step)> {
    let mut steps = Vec::new();
    for f in faults {
        match f.kind {
            Kind::LinkReset => steps.push((f.at, Step::LinkReset)),
            Kind::LinkClose(code) => steps.push((f.at, Step::LinkClose(code))),
            Kind::Reboot => steps.push((f.at, Step::Reboot)),
            Kind::Silence(d) => {
                steps.push((f.at, Step::Silent(true)));
                steps.push((f.at + d, Step::Silent(false)));
            }
            Kind::RegistrationLoss(d) => {
                steps.push((f.at, Step::Registered(false)));
                steps.push((f.at + d, Step::Registered(true)));
            }
            Kind::BrokerRestart(d) => {
                steps.push((f.at, Step::Broker(false)));
                steps.push((f.at + d, Step::Broker(true)));
            }
        }
    }
    // Stable: steps at the same time keep the command line's order.
    steps.sort_by_key(|(at, _)| *at);
    steps
}

/// Runs the faults on a thread of their own (a broker restart blocks): waits
/// for the link's first `online` (a message on `online`), then does each step
/// at its time and reports it as a `fault` event.
pub fn spawn(
    faults: Vec<Fault>,
    client: u8,
    sim: SimHandle,
    broker: Option<RestartableBroker>,
    online: Receiver<()>,
) {
    let steps = schedule(&faults);
    std::thread::Builder::new()
        .name("bc26-faults".into())
        .spawn(move || {
            if online.recv().is_err() {
                return;
            }
            let t0 = Instant::now();
            for (at, step) in steps {
                std::thread::sleep((t0 + at).saturating_duration_since(Instant::now()));
                let after_ms = t0.elapsed().as_millis() as u64;
                match step {
                    Step::LinkReset => sim.break_link(client),
                    Step::LinkClose(code) => sim.close_link(client, code),
                    Step::Reboot => sim.reboot(),
                    Step::Silent(on) => sim.set_silent(on),
                    Step::Registered(on) => sim.set_registration(if on { 1 } else { 0 }),
                    Step::Broker(up) => {
                        let b = broker.as_ref().expect("checked: a restartable broker");
                        if up {
                            b.start()
                        } else {
                            b.stop()
                        }
                    }
                }
                out::emit(&Ev::Fault {
                    kind: step.name(),
                    after_ms,
                });
            }
            // Keep the simulator and the broker for the rest of the run.
            loop {
                std::thread::park();
            }
        })
        .expect("spawn the fault thread");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_parse_with_their_arguments_and_times() {
        assert_eq!(
            parse("link-reset@5s"),
            Ok(Fault {
                kind: Kind::LinkReset,
                at: Duration::from_secs(5)
            })
        );
        assert_eq!(
            parse("link-close:3@250ms").unwrap().kind,
            Kind::LinkClose(3)
        );
        assert_eq!(
            parse("silence:1.5s@1m"),
            Ok(Fault {
                kind: Kind::Silence(Duration::from_millis(1500)),
                at: Duration::from_secs(60)
            })
        );
        assert_eq!(
            parse("broker-restart:2@3").unwrap().kind,
            Kind::BrokerRestart(Duration::from_secs(2))
        );
        for bad in [
            "link-reset",
            "link-reset@",
            "link-reset@5x",
            "link-close@1s",
            "link-close:0@1s",
            "link-close:256@1s",
            "reboot:1s@1s",
            "silence@1s",
            "melt@1s",
            "reboot@-1s",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_fault_with_a_duration_is_two_steps_in_time_order() {
        let s = schedule(&[
            parse("broker-restart:1s@2s").unwrap(),
            parse("reboot@2500ms").unwrap(),
            parse("link-reset@0s").unwrap(),
        ]);
        let names: Vec<(u128, &str)> = s
            .iter()
            .map(|(at, step)| (at.as_millis(), step.name()))
            .collect();
        assert_eq!(
            names,
            [
                (0, "link-reset"),
                (2000, "broker-stop"),
                (2500, "reboot"),
                (3000, "broker-start")
            ]
        );
    }
}
