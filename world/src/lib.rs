//! A deterministic world for the `bc26-mqtt` driver: the driver, its supervisor, an
//! application task and an event reader on a single-threaded executor; the simulated BC26
//! (`bc26_sim::model`) behind a 115200-baud UART cut into seed-chosen chunks, each at the
//! exact instant its last stop bit is complete; a broker model (`bc26_sim::broker_model`)
//! behind a network with latency; one virtual clock (an `embassy-time` driver) that jumps
//! over idle periods; one seed that decides every fault, delay and chunk. The invariants
//! are checked after every step; a failure carries its seed, the one-line command that
//! replays it, and the tail of the AT trace. See `README.md`.

mod clock;
mod exec;
mod rng;
mod trace;
mod wire;
mod world;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use bc26_mqtt::supervisor::DutyCycle;
use bc26_sim::model::{ChargeReport, Time};

impl PowerReport {
    /// Seconds from the start to the reading.
    pub fn seconds(&self) -> f64 {
        self.charge.at.since_epoch().as_secs_f64()
    }

    /// Millicoulombs in all.
    pub fn total_mc(&self) -> f64 {
        self.charge.total().millicoulombs()
    }

    /// Millicoulombs per day.
    pub fn mc_per_day(&self) -> f64 {
        self.total_mc() / (self.seconds() / 86_400.0)
    }

    /// The average current, in microamperes.
    pub fn average_ua(&self) -> f64 {
        self.total_mc() * 1000.0 / self.seconds()
    }

    /// Millicoulombs per message handed over.
    pub fn mc_per_message(&self) -> f64 {
        self.total_mc() / self.messages.max(1) as f64
    }

    /// Seconds with the radio on: RRC connected, transmitting or not.
    pub fn radio_on_s(&self) -> f64 {
        use bc26_sim::model::PowerState;
        (self.charge.state(PowerState::Transmit).time
            + self.charge.state(PowerState::Connected).time)
            .as_secs_f64()
    }

    /// Radio-on seconds per supervisor connect (a wake, in the duty cycle).
    pub fn radio_on_per_connect(&self) -> f64 {
        self.radio_on_s() / f64::from(self.connects.max(1))
    }

    /// Radio-on seconds per RRC connection set up.
    pub fn radio_on_per_rrc(&self) -> f64 {
        self.radio_on_s() / self.charge.counters.rrc_setups.max(1) as f64
    }

    /// Days a battery of `mah` milliampere-hours lasts at this rate (the module alone).
    pub fn battery_days(&self, mah: f64) -> f64 {
        mah * 3_600.0 / self.mc_per_day()
    }
}

/// A deliberately broken device, which the sweep must catch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutant {
    /// The application's outbox loses the first QoS 1/2 message after each modem restart
    /// (it says it took it, and that it was delivered): the world wraps `Link` so.
    DropAfterReboot,
    /// A back-off without a cap (`Backoff::max` 100 days).
    UncappedBackoff,
    /// A wait without a deadline: a publish's result waited for 100 years
    /// (`Config::packet_deadline`).
    NoDeadline,
}

impl Mutant {
    /// Every mutant.
    pub const ALL: [Mutant; 3] = [
        Mutant::DropAfterReboot,
        Mutant::UncappedBackoff,
        Mutant::NoDeadline,
    ];

    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Mutant::DropAfterReboot => "drop-after-reboot",
            Mutant::UncappedBackoff => "uncapped-backoff",
            Mutant::NoDeadline => "no-deadline",
        }
    }

    /// From its name.
    pub fn parse(s: &str) -> Option<Mutant> {
        Mutant::ALL.into_iter().find(|m| m.name() == s)
    }
}

/// What one run does. Everything but the seed, the duration and the mutant follows from
/// the seed.
#[derive(Debug, Clone)]
pub struct Options {
    /// Decides everything else.
    pub seed: u64,
    /// Simulated time with faults and traffic (the run then goes on, quiet, until every
    /// message must have arrived).
    pub duration: Duration,
    /// The application publishes this often.
    pub publish_every: Duration,
    /// The backend sends a command about this often.
    pub command_every: Duration,
    /// A fault (or a burst of them) about this often.
    pub fault_every: Duration,
    /// Outbox messages in flight at once (1: order is checked).
    pub in_flight: usize,
    /// A broken device.
    pub mutant: Option<Mutant>,
    /// Keep the whole AT trace in the report (else its hash and tail only).
    pub keep_trace: bool,
    /// Tasks waiting in `Link::delivered` at once (the oldest tickets; the others are
    /// looked at with `Link::outcome`). Default 8: more than the 4 wakers a wait keeps
    /// itself, so that waiters hold each other's (five used to spin: README.md, "Found").
    pub delivery_waiters: usize,
    /// Among the faults, drop and re-create the `Supervisor` and its `Link` too (not only
    /// the application, its `Events` and the waiting tasks). On by default (it used to
    /// strand the message in flight: README.md, "Found").
    pub recreate_supervisor: bool,
    /// Poison one message of the run (from the seed, for one seed in two): the modem
    /// fails it every time (`bc26_sim::SimFaults::poison`). On by default.
    pub poison: bool,
    /// A device on a battery (the duty-cycle measurement, `bench/README.md`): no faults,
    /// QoS 1 messages and commands of fixed size, the module asleep when it may be.
    pub battery: Option<Battery>,
}

/// A device on a battery: what [`Options::battery`] sets up.
#[derive(Debug, Clone, Copy)]
pub struct Battery {
    /// The supervisor's duty cycle; `None`: always online (keep-alive 120 s, health check
    /// every 60 s, the defaults).
    pub duty_cycle: Option<DutyCycle>,
    /// The network's RRC inactivity timer.
    pub inactivity: Duration,
    /// Bytes of each message's payload.
    pub payload: usize,
    /// Always online: the keep-alive (s) and the health check, if not the defaults (120 s,
    /// 60 s; `Duration::ZERO`: no health check).
    pub keepalive: Option<(u16, Duration)>,
}

/// The power figures of a run on a battery, read when the traffic ends (`Options::duration`
/// after the start).
#[derive(Debug, Clone)]
pub struct PowerReport {
    /// The charge meter then.
    pub charge: ChargeReport,
    /// The supervisor's connects by then (a wake each, in the duty cycle).
    pub connects: u32,
    /// QoS 1 messages handed to the outbox by then.
    pub messages: u64,
}

impl Options {
    /// The run of `seed` for `days` simulated days: a publish every 10 minutes, a command
    /// about every 2 hours, a fault about every 3 hours; one message in flight for three
    /// seeds in four (order checked), four for the others.
    pub fn new(seed: u64, days: f64) -> Options {
        Options {
            seed,
            duration: Duration::from_secs_f64(days * 86_400.0),
            publish_every: Duration::from_secs(600),
            command_every: Duration::from_secs(2 * 3600),
            fault_every: Duration::from_secs(3 * 3600),
            in_flight: if seed % 4 == 3 { 4 } else { 1 },
            mutant: None,
            keep_trace: false,
            delivery_waiters: 8,
            recreate_supervisor: true,
            poison: true,
            battery: None,
        }
    }

    /// A device on a battery for `days`: a QoS 1 message of `battery.payload` bytes every
    /// hour, a QoS 1 command from the backend about every 2 hours, no faults (no poisoned
    /// message, no re-created supervisor); the module asks for PSM (T3412 10 h, T3324 10 s)
    /// and deep sleep (`AT+QSCLK=1`), its wake pin wired.
    pub fn battery(seed: u64, days: f64, battery: Battery) -> Options {
        Options {
            publish_every: Duration::from_secs(3600),
            fault_every: Duration::from_secs(100 * 365 * 86_400),
            in_flight: 1,
            recreate_supervisor: false,
            poison: false,
            battery: Some(battery),
            ..Options::new(seed, days)
        }
    }

    /// The same with a mutant.
    pub fn mutant(mut self, m: Option<Mutant>) -> Options {
        self.mutant = m;
        self
    }

    /// The one-line command that replays this run and prints its AT trace.
    pub fn replay_command(&self) -> String {
        let mut c = format!(
            "cargo world-replay --seed {:#x} --days {}",
            self.seed,
            self.duration.as_secs_f64() / 86_400.0
        );
        if let Some(m) = self.mutant {
            c.push_str(" --mutant ");
            c.push_str(m.name());
        }
        if !self.recreate_supervisor {
            c.push_str(" --no-recreate-supervisor");
        }
        if !self.poison {
            c.push_str(" --no-poison");
        }
        if self.delivery_waiters != 8 {
            c.push_str(&format!(" --delivery-waiters {}", self.delivery_waiters));
        }
        c
    }
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Its seed.
    pub seed: u64,
    /// Simulated time, the quiet end included.
    pub simulated: Duration,
    /// Wall-clock time it took.
    pub wall: Duration,
    /// Faults injected, and by kind.
    pub faults: u64,
    /// By kind.
    pub by_kind: BTreeMap<&'static str, u64>,
    /// QoS 1/2 messages handed to the outbox, and delivered (acknowledged, and at the
    /// broker).
    pub handed: u64,
    /// Delivered.
    pub delivered: u64,
    /// Lost: always 0 in a report (a loss is a failure).
    pub lost: u64,
    /// Copies the broker received beyond the first.
    pub duplicates: u64,
    /// QoS 0 messages handed over.
    pub qos0_handed: u64,
    /// Publishes refused (QoS 0 offline).
    pub refused: u64,
    /// QoS 0 tickets that ended `Sent`, and `Dropped`.
    pub qos0_sent: u64,
    /// Dropped.
    pub qos0_dropped: u64,
    /// The poisoned message (its number), if the seed chose one, and how its ticket ended
    /// (Debug) and after how many `AT+QMTPUB` lines.
    pub poisoned: Option<(u64, String, u32)>,
    /// Wedged modems: struck, ended by the supervisor's `AT+QRST=1`, ended by its board
    /// reset (`HardReset`), ended by a reboot fault of the world's.
    pub wedges: (u32, u32, u32, u32),
    /// Commands the backend sent, the device received (distinct), and copies beyond those.
    pub commands_sent: u64,
    /// Received.
    pub commands_received: u64,
    /// Copies.
    pub command_copies: u64,
    /// The longest the supervisor stayed offline after the last fault of a burst.
    pub worst_offline_after_fault: Duration,
    /// UART errors injected and seen by the driver.
    pub read_errors: u32,
    /// Write errors.
    pub write_errors: u32,
    /// The supervisor's counters at the end (Debug).
    pub counters: String,
    /// Generations of the supervisor's tasks (re-creations plus one).
    pub generations: u32,
    /// What the seed chose for the line: FIFO size, largest chunk.
    pub line: String,
    /// FNV-1a of the AT trace.
    pub trace_hash: u64,
    /// The whole AT trace, with `Options::keep_trace`.
    pub trace: Option<Vec<u8>>,
    /// On a battery: the power figures when the traffic ended.
    pub power: Option<PowerReport>,
    pub(crate) order_violation: Option<String>,
}

/// A run that broke an invariant (or panicked).
#[derive(Debug, Clone)]
pub struct Failure {
    /// The run.
    pub options: Options,
    /// When (simulated).
    pub at: Duration,
    /// What.
    pub what: String,
    /// The end of the AT trace.
    pub trace_tail: String,
    /// The whole AT trace, with `Options::keep_trace`.
    pub trace: Option<Vec<u8>>,
}

impl Failure {
    fn new(options: Options, at: Time, what: String, trace: &trace::Trace) -> Failure {
        Failure {
            options,
            at: at.since_epoch(),
            what,
            trace_tail: trace.tail(),
            trace: trace.full().map(<[u8]>::to_vec),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "--- AT trace, the end ---")?;
        f.write_str(&self.trace_tail)?;
        writeln!(f, "--- end of the trace ---")?;
        writeln!(
            f,
            "world seed {:#x} failed at {:.6} s simulated: {}",
            self.options.seed,
            self.at.as_secs_f64(),
            self.what
        )?;
        write!(
            f,
            "replay it, with its whole AT trace: {}",
            self.options.replay_command()
        )
    }
}

/// Runs one world. A panic inside (the driver's, a counter's overflow) becomes a failure
/// too, with the seed.
pub fn run(opts: &Options) -> Result<Report, Box<Failure>> {
    let o = opts.clone();
    match std::panic::catch_unwind(move || world::run(o)) {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "a panic".into());
            Err(Box::new(Failure {
                options: opts.clone(),
                at: Duration::ZERO,
                what: format!("panicked: {msg}"),
                trace_tail: String::new(),
                trace: None,
            }))
        }
    }
}

/// A sweep's totals.
#[derive(Debug, Clone, Default)]
pub struct Totals {
    /// Runs.
    pub runs: u64,
    /// Simulated time (with faults), summed.
    pub simulated: Duration,
    /// Wall time, summed over runs.
    pub wall: Duration,
    /// Faults.
    pub faults: u64,
    /// QoS 1/2 messages handed over and delivered.
    pub handed: u64,
    /// Delivered.
    pub delivered: u64,
    /// Copies beyond the first at the broker.
    pub duplicates: u64,
    /// Commands sent and received.
    pub commands_sent: u64,
    /// Received.
    pub commands_received: u64,
    /// The worst offline time after a fault, and its seed.
    pub worst_offline_after_fault: (Duration, u64),
    /// Wedged modems: struck, ended by `AT+QRST=1`, by the board's reset, by a reboot
    /// fault.
    pub wedges: (u32, u32, u32, u32),
    /// Runs with a poisoned message (each ended refused).
    pub poisoned: u64,
}

impl Totals {
    /// Adds a run.
    pub fn add(&mut self, r: &Report, duration: Duration) {
        self.runs += 1;
        self.simulated += duration;
        self.wall += r.wall;
        self.faults += r.faults;
        self.handed += r.handed;
        self.delivered += r.delivered;
        self.duplicates += r.duplicates;
        self.commands_sent += r.commands_sent;
        self.commands_received += r.commands_received;
        self.wedges.0 += r.wedges.0;
        self.wedges.1 += r.wedges.1;
        self.wedges.2 += r.wedges.2;
        self.wedges.3 += r.wedges.3;
        self.poisoned += u64::from(r.poisoned.as_ref().is_some_and(|p| p.2 > 0));
        if r.worst_offline_after_fault > self.worst_offline_after_fault.0 {
            self.worst_offline_after_fault = (r.worst_offline_after_fault, r.seed);
        }
    }
}

impl fmt::Display for Totals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let years = self.simulated.as_secs_f64() / (365.0 * 86_400.0);
        let wall = self.wall.as_secs_f64();
        write!(
            f,
            "{} runs, {:.2} simulated device-years in {:.1} s of wall time ({:.0} simulated s per wall s); {} faults; {} QoS 1/2 messages handed over, {} delivered, 0 lost, {} duplicates at the broker; {} commands sent, {} received; worst offline after a fault {:.0} s (seed {:#x}); {} wedged modems, {} restarted by AT+QRST=1, {} by the board's reset; {} poisoned messages refused",
            self.runs,
            years,
            wall,
            self.simulated.as_secs_f64() / wall.max(1e-9),
            self.faults,
            self.handed,
            self.delivered,
            self.duplicates,
            self.commands_sent,
            self.commands_received,
            self.worst_offline_after_fault.0.as_secs_f64(),
            self.worst_offline_after_fault.1,
            self.wedges.0,
            self.wedges.1,
            self.wedges.2,
            self.poisoned,
        )
    }
}
