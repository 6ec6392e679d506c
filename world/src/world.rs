//! One run: the driver, its supervisor, an application task and an event reader on the
//! executor; the simulated BC26 behind a 115200-baud UART; the broker model behind a
//! network with latency; faults from the seed; the invariants checked after every step.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::Duration as StdDuration;

use bc26_mqtt::commands::{ActiveTime, PeriodicTau, PsmTimers, SleepMode};
use bc26_mqtt::supervisor::{
    self, Backoff, Link, LinkState, Mode, Outcome, SupervisorConfig, SupervisorState, Ticket,
};
use bc26_mqtt::{ClientId, Config, Error, Event, Modem, PowerRequest, QoS, State, Subscription};
use bc26_sim::broker_model::{BrokerAction, BrokerModel};
use bc26_sim::model::{self, ChargeReport, LinkId, NetAction, NetEvent, Pacer, Time, ToHost};
use bc26_sim::{Poison, PoisonAnswer, SimConfig, Wedge};
use embassy_time::{Duration, Timer};

use crate::clock;
use crate::exec::Tasks;
use crate::rng::Rng;
use crate::trace::Trace;
use crate::wire::{Reader, Wire, Writer};
use crate::{Failure, Mutant, Options, PowerReport, Report};

const BAUD: u32 = 115_200;
const CLIENT: u8 = 0;
const CLIENT_ID: &str = "dev";
const UP: &str = "dev/up";
const CMD: &str = "dev/cmd";
const OUTBOX: usize = 4096;
static SUBS: [Subscription<'static>; 1] = [Subscription {
    topic: CMD,
    qos: QoS::AtLeastOnce,
}];

/// Rounds of polling with no time passing before the run counts as a busy loop.
const MAX_ROUNDS: u32 = 100_000;
/// Steps at one instant before the run counts as stuck.
const MAX_STEPS_AT_ONCE: u32 = 1_000_000;

fn secs(s: u64) -> StdDuration {
    StdDuration::from_secs(s)
}

fn std_of(d: Duration) -> StdDuration {
    StdDuration::from_micros(d.as_micros())
}

/// A fault, as the seed drew it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// The peer resets the TCP link (`+QMTSTAT: 0,1`).
    BreakLink,
    /// The modem closes the link with this `+QMTSTAT` code.
    CloseLink(u8),
    /// The modem restarts now.
    Reboot,
    /// The modem restarts just after the n-th next byte it takes from the host.
    RebootAtByte(u32),
    /// The UART dead for this long.
    Silence(StdDuration),
    /// Registration lost (this `+CEREG` stat) for this long.
    Registration(u8, StdDuration),
    /// The broker down for this long, keeping its state or not.
    BrokerRestart { keep: bool, down: StdDuration },
    /// The next n acknowledgements from the broker lost.
    DropAcks(u32),
    /// Packets from the broker late by this much for a while.
    LateAcks(StdDuration, StdDuration),
    /// A span of bytes lost on the line, in the next message from the modem.
    CutFromModem,
    /// The next result of a publish, subscribe or connect (`+QMTPUB`, `+QMTSUB`,
    /// `+QMTCONN: 0,0,...`) lost on the line.
    LoseResult,
    /// A span of bytes lost on the line, in the next bytes from the host.
    CutFromHost,
    /// The next read of the UART fails.
    ReadError,
    /// The next write of the UART fails.
    WriteError,
    /// The next `+QMTOPEN`s fail.
    OpenFails(u32),
    /// The next CONNACKs refuse.
    ConnectRefused(u32, u8),
    /// The modem's AT layer wedged: it answers nothing until restarted (`AT+QRST=1`
    /// still works, or only the board's reset).
    Wedged(Wedge),
    /// The application task, the event reader (its `Events`) and the tasks waiting for
    /// deliveries dropped in the middle of whatever they do, and made again.
    RecreateApp,
    /// The same, with the `Supervisor` and its `Link` (`Options::recreate_supervisor`;
    /// else it is a `RecreateApp`).
    RecreateSupervisor,
}

impl Fault {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Fault::BreakLink => "link reset",
            Fault::CloseLink(_) => "+QMTSTAT code",
            Fault::Reboot => "reboot",
            Fault::RebootAtByte(_) => "reboot at a byte",
            Fault::Silence(_) => "silence",
            Fault::Registration(..) => "registration lost",
            Fault::BrokerRestart { keep: true, .. } => "broker restart, state kept",
            Fault::BrokerRestart { keep: false, .. } => "broker restart, state lost",
            Fault::DropAcks(_) => "acks lost",
            Fault::LateAcks(..) => "acks late",
            Fault::CutFromModem => "line cut (modem to host)",
            Fault::LoseResult => "result lost on the line",
            Fault::CutFromHost => "line cut (host to modem)",
            Fault::ReadError => "UART read error",
            Fault::WriteError => "UART write error",
            Fault::OpenFails(_) => "open fails",
            Fault::ConnectRefused(..) => "CONNACK refused",
            Fault::Wedged(Wedge::ResetWorks) => "wedged (AT+QRST=1 works)",
            Fault::Wedged(Wedge::Deaf) => "wedged (the board's reset only)",
            Fault::RecreateApp => "app, events, waiters re-created",
            Fault::RecreateSupervisor => "supervisor, link, app, events re-created",
        }
    }

    /// A fault drawn from the seed. `long` makes the outages long ones (hours).
    fn draw(r: &mut Rng) -> Fault {
        let long = r.chance(1, 8);
        match r.below(18) {
            0 => Fault::BreakLink,
            1 => Fault::CloseLink(if r.chance(1, 8) {
                8 + r.below(248) as u8
            } else {
                1 + r.below(7) as u8
            }),
            2 => Fault::Reboot,
            3 => Fault::RebootAtByte(1 + r.below(200) as u32),
            4 => Fault::Silence(if long {
                secs(r.range(600, 3600))
            } else {
                StdDuration::from_millis(r.range(500, 120_000))
            }),
            5 => Fault::Registration(
                [0, 2, 3, 4][r.below(4) as usize],
                if long {
                    secs(r.range(3600, 3 * 3600))
                } else {
                    secs(r.range(5, 600))
                },
            ),
            6 => Fault::BrokerRestart {
                keep: r.chance(1, 2),
                down: if long {
                    secs(r.range(1800, 2 * 3600))
                } else {
                    StdDuration::from_millis(r.range(100, 120_000))
                },
            },
            7 => Fault::DropAcks(1 + r.below(4) as u32),
            8 => Fault::LateAcks(secs(r.range(5, 90)), secs(r.range(60, 1800))),
            9 if r.chance(1, 2) => Fault::CutFromModem,
            9 => Fault::LoseResult,
            10 => Fault::CutFromHost,
            11 => Fault::ReadError,
            12 => Fault::WriteError,
            13 => Fault::OpenFails(1 + r.below(3) as u32),
            14 => Fault::ConnectRefused(1 + r.below(3) as u32, 1 + r.below(5) as u8),
            15 => Fault::Wedged(if r.chance(1, 3) {
                Wedge::Deaf
            } else {
                Wedge::ResetWorks
            }),
            _ if r.chance(1, 2) => Fault::RecreateApp,
            _ => Fault::RecreateSupervisor,
        }
    }
}

/// What happens at an instant, in the order of (time, sequence).
#[derive(Debug)]
enum Ev {
    /// Host bytes complete on the line: the modem takes them.
    ToModem(Vec<u8>),
    /// Modem bytes complete on the line: the host's UART has them (unless a discard of a
    /// later generation came first).
    ToHost(Vec<u8>, u64),
    /// The modem's TCP connect reaches the broker.
    ConnectArrives(LinkId),
    /// The modem's bytes reach the broker.
    UpData(LinkId, Vec<u8>),
    /// The modem closed the link; the broker hears it.
    UpClose(LinkId),
    /// The connect's outcome reaches the modem.
    Connected(LinkId, bool),
    /// The broker's bytes reach the modem.
    DownData(LinkId, Vec<u8>),
    /// The broker closed the link; the modem hears it.
    DownClose(LinkId),
    Fault(Fault),
    /// A durational fault ends.
    SilenceEnds,
    RegistrationBack,
    BrokerBack,
    LateAcksEnd,
    /// The end of the faults: those armed and not struck yet are taken back.
    Disarm,
    /// The application publishes.
    Publish,
    /// The backend publishes a command to the device.
    Command,
}

/// A message the application handed over.
#[derive(Debug, Clone, Copy)]
struct Handed {
    /// `None`: a mutant pretended to take it.
    ticket: Option<Ticket>,
    qos: u8,
    at: Time,
}

/// What the application task and the world share.
#[derive(Default)]
pub(crate) struct AppBox {
    /// Messages to publish: (number, QoS).
    requests: std::collections::VecDeque<(u64, u8)>,
    waker: Option<Waker>,
    /// Tickets taken, for the world to record: (number, handed).
    handed: Vec<(u64, Handed)>,
    /// Tickets whose message left the outbox, and how (`None`: the mutant says it was
    /// delivered).
    ended: Vec<(u64, Option<Outcome>)>,
    /// Refused (QoS 0 offline, outbox full) or abandoned with the task.
    refused: u64,
    /// The modem rebooted since the mutant last dropped a message.
    reboot_seen: bool,
    /// Command payloads received through `Events`.
    received: Vec<Vec<u8>>,
    /// A problem the tasks saw.
    problem: Option<String>,
    /// On a battery: every payload has this many bytes.
    payload_len: Option<usize>,
    /// The supervisor had the board reset the modem (its `HardReset`) this many times,
    /// not yet done by the world.
    board_resets: u32,
}

type Shared = Rc<RefCell<AppBox>>;

fn payload(k: u64, pad: usize) -> Vec<u8> {
    let mut p = format!("m{k:010}/").into_bytes();
    p.extend((0..pad).map(|i| b'a' + (i % 26) as u8));
    p
}

fn number(p: &[u8]) -> Option<u64> {
    std::str::from_utf8(p.get(1..11)?).ok()?.parse().ok()
}

/// The application: publishes what the world asks, through the outbox.
async fn app(link: Link<'_>, shared: Shared, mutant: Option<Mutant>) {
    loop {
        let (k, qos) = poll_fn(|cx| {
            let mut s = shared.borrow_mut();
            match s.requests.pop_front() {
                Some(r) => Poll::Ready(r),
                None => {
                    s.waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await;
        // The mutant: an outbox that loses the first message after a modem restart (it
        // says it took it, and that it was delivered).
        if mutant == Some(Mutant::DropAfterReboot) && qos > 0 {
            let mut s = shared.borrow_mut();
            if s.reboot_seen {
                s.reboot_seen = false;
                let at = clock::now();
                s.handed.push((
                    k,
                    Handed {
                        ticket: None,
                        qos,
                        at,
                    },
                ));
                continue;
            }
        }
        let q = [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce][usize::from(qos)];
        let pad = match shared.borrow().payload_len {
            // `m<10 digits>/`, then the padding.
            Some(n) => n.saturating_sub(12),
            None => (k % 97) as usize,
        };
        let body = payload(k, pad);
        loop {
            match link.try_publish(UP, &body, q, false) {
                Ok(t) => {
                    let at = clock::now();
                    shared.borrow_mut().handed.push((
                        k,
                        Handed {
                            ticket: Some(t),
                            qos,
                            at,
                        },
                    ));
                    break;
                }
                Err(Error::OutboxFull) => Timer::after(Duration::from_secs(60)).await,
                Err(Error::Offline) => {
                    shared.borrow_mut().refused += 1;
                    break;
                }
                Err(e) => {
                    shared.borrow_mut().problem = Some(format!("try_publish: {e:?}"));
                    break;
                }
            }
        }
    }
}

/// Reads every event; keeps command payloads.
async fn reader(modem: Modem<'_>, shared: Shared) {
    let mut events = match modem.events() {
        Ok(e) => e,
        Err(e) => {
            shared.borrow_mut().problem = Some(format!("no Events subscription: {e:?}"));
            return;
        }
    };
    let mut buf = [0u8; bc26_mqtt::MESSAGE_MAX];
    loop {
        if let Event::Message(m) = events.next(&mut buf).await {
            let p = m.payload.to_vec();
            let topic_ok = m.topic == CMD;
            let mut s = shared.borrow_mut();
            if !topic_ok {
                s.problem = Some(format!("a message on {:?}", m.topic));
            }
            s.received.push(p);
        }
    }
}

/// Line assembler for the checks on the AT trace.
#[derive(Default)]
struct Lines {
    buf: Vec<u8>,
}

impl Lines {
    fn push(&mut self, bytes: &[u8], mut f: impl FnMut(&[u8])) {
        for &b in bytes {
            if b == b'\r' || b == b'\n' {
                if !self.buf.is_empty() {
                    f(&self.buf);
                    self.buf.clear();
                }
            } else if self.buf.len() < 2048 {
                self.buf.push(b);
            }
        }
    }
}

/// A cut line: where to lose bytes in `b` so that a line loses its start (1-3 bytes of a
/// line that starts in `b`) or its end (its CR LF). Not inside a line: AT has no
/// checksum, and a line whose digits or payload changed is another valid line, which no
/// driver can tell from the real one.
fn line_edge(b: &[u8], rng: &mut Rng) -> Option<(usize, usize)> {
    let starts: Vec<usize> = (0..b.len())
        .filter(|&i| (i == 0 || b[i - 1] == b'\n') && b[i].is_ascii_alphabetic() | (b[i] == b'+'))
        .collect();
    let ends: Vec<usize> = (0..b.len()).filter(|&i| b[i] == b'\r').collect();
    let pick_start = !starts.is_empty() && (ends.is_empty() || rng.chance(1, 2));
    if pick_start {
        let a = starts[rng.below(starts.len() as u64) as usize];
        let n = 1 + rng.below(3) as usize;
        Some((a, (a + n).min(b.len())))
    } else if !ends.is_empty() {
        let a = ends[rng.below(ends.len() as u64) as usize];
        let e = if b.get(a + 1) == Some(&b'\n') {
            a + 2
        } else {
            a + 1
        };
        Some((a, e))
    } else {
        None
    }
}

/// The clock counts microseconds: an instant is rounded up to the next one (a byte is
/// never early).
fn ceil_us(t: Time) -> Time {
    let ns = t.since_epoch().as_nanos();
    Time::from_micros(u64::try_from(ns.div_ceil(1000)).unwrap_or(u64::MAX))
}

fn field(line: &[u8], prefix: &[u8], i: usize) -> Option<u32> {
    let rest = line.strip_prefix(prefix)?;
    let s = std::str::from_utf8(rest).ok()?;
    s.split(',').nth(i)?.trim().parse().ok()
}

/// The world's state, apart from the tasks.
pub(crate) struct World {
    opts: Options,
    rng: Rng,
    modem: model::Modem,
    broker: BrokerModel,
    wire: Rc<RefCell<Wire>>,
    to_modem: Pacer<Time>,
    to_host: Pacer<Time>,
    /// Generation of the modem's transmit buffer (bumped at each discard).
    tx_gen: u64,
    events: BTreeMap<(Time, u64), Ev>,
    seq: u64,
    /// Per link and direction: the last delivery (TCP keeps order).
    net_last: BTreeMap<(u64, bool), Time>,
    conn_link: BTreeMap<u64, LinkId>,
    late_acks: Option<StdDuration>,
    /// Chunking: the largest chunk on the line, each way.
    chunk_max: usize,
    reboot_at_byte: Option<u32>,
    cut_modem: bool,
    lose_result: bool,
    cut_host: bool,
    pub(crate) trace: Trace,
    shared: Shared,
    // ---- checks
    /// Durational faults going on.
    active: u32,
    /// The end of the last fault.
    calm_from: Time,
    went_offline: Option<Time>,
    pending: BTreeMap<u64, Handed>,
    /// First arrival at the broker, per message number.
    at_broker: BTreeMap<u64, Time>,
    copies: u64,
    broker_seen: usize,
    /// QoS 1/2 numbers handed over, in order, not yet at the broker.
    not_arrived: BTreeSet<u64>,
    host_lines: Lines,
    modem_lines: Lines,
    /// Per msgID: when the modem last took an `AT+QMTPUB` line with it, and when a
    /// `+QMTPUB: 0,<msgID>,0` last reached the host.
    pub_line: BTreeMap<u32, Time>,
    pub_ok: BTreeMap<u32, Time>,
    commands: BTreeSet<Vec<u8>>,
    next_msg: u64,
    next_cmd: u64,
    faults_end: Time,
    end: Time,
    pub(crate) report: Report,
    last_ticket_check: Time,
    /// How long the supervisor may stay offline after the last fault.
    pub(crate) online_bound: StdDuration,
    ticket_bound: StdDuration,
    recreate: Option<Fault>,
    /// On a battery: the charge meter when the traffic ended.
    charge_at_end: Option<ChargeReport>,
    /// The poisoned message (its number) and how the modem answers it.
    poisoned: Option<(u64, PoisonAnswer)>,
    /// Its msgID once handed over, and the `AT+QMTPUB` lines the modem took for it.
    poison_msg_id: Option<u32>,
    poison_attempts: u32,
    /// `Link::counters().link_losses` at the last check.
    link_losses: u32,
    /// The keep-alive is shorter than the simulated NAT's idle timeout (300 s): an idle
    /// link is never forgotten by the NAT, so a link loss has a fault behind it.
    nat_keeps_links: bool,
    /// Outcomes seen: QoS 1/2 acknowledged, QoS 0 sent, QoS 0 dropped, refused.
    outcomes: [u32; 4],
}

/// How long after the last fault a link loss cannot be the fault's doing (a publish's
/// failure after lost acknowledgements comes with the next message, up to 10 minutes
/// later).
const FAULT_ECHO: StdDuration = StdDuration::from_secs(30 * 60);

impl World {
    pub(crate) fn new(opts: Options) -> World {
        let mut rng = Rng::new(opts.seed);
        let fifo = [16, 64, 256][rng.below(3) as usize];
        let chunk_max = [4, 8, 16, 32, 64, 4096][rng.below(6) as usize];
        let mut cfg = SimConfig {
            boot_time: StdDuration::from_millis(rng.range(200, 5000)),
            ..SimConfig::default()
        };
        if let Some(b) = opts.battery {
            cfg.power.network.inactivity = b.inactivity;
        }
        // The poisoned message, from a generator of its own (the other draws stay as
        // they were): one seed in two, a message of the first half of the run.
        let mut prng = Rng::new(opts.seed ^ 0x9e37_79b9_7f4a_7c15);
        let messages = (opts.duration.as_secs() / opts.publish_every.as_secs().max(1)).max(2);
        let poisoned = (opts.poison && prng.chance(1, 2)).then(|| {
            let k = 1 + prng.below(messages / 2);
            let answer = if prng.chance(1, 2) {
                PoisonAnswer::Failed
            } else {
                PoisonAnswer::Error
            };
            (k, answer)
        });
        if let Some((k, answer)) = poisoned {
            cfg.faults.poison = Some(Poison {
                marker: format!("m{k:010}/").into_bytes(),
                answer,
            });
        }
        let faults_end = Time::ZERO + opts.duration;
        // The configuration each generation makes (`run_generation`: from a generator of
        // the seed's own).
        let sup = sup_config(&opts, &mut Rng::new(opts.seed));
        let drv = driver_config(None);
        // Offline bound: a failed attempt (every deadline of a bring-up, a health check to
        // notice a dead link, a close), the longest back-off, and a bring-up.
        let attempt = std_of(sup.modem_deadline)
            + std_of(sup.registration_deadline)
            + std_of(drv.command_timeout) * 8
            + std_of(drv.open_timeout)
            + std_of(drv.close_timeout)
            + secs(2 * u64::from(sup.pkt_timeout_s) * (u64::from(sup.retry_times) + 1))
            + std_of(drv.result_margin) * 2;
        let online_bound = std_of(sup.health_check) + attempt * 2 + std_of(Backoff::new().max);
        let ticket_bound = online_bound + secs(3600);
        let end = faults_end + online_bound + ticket_bound;
        let mut w = World {
            modem: model::Modem::new(&cfg),
            broker: BrokerModel::new(),
            wire: Wire::new(fifo),
            to_modem: Pacer::new(Some(BAUD), Time::ZERO).unwrap_or_else(|| unreachable!()),
            to_host: Pacer::new(Some(BAUD), Time::ZERO).unwrap_or_else(|| unreachable!()),
            tx_gen: 0,
            events: BTreeMap::new(),
            seq: 0,
            net_last: BTreeMap::new(),
            conn_link: BTreeMap::new(),
            late_acks: None,
            chunk_max,
            reboot_at_byte: None,
            cut_modem: false,
            lose_result: false,
            cut_host: false,
            trace: Trace::new(opts.keep_trace),
            shared: Rc::new(RefCell::new(AppBox::default())),
            active: 0,
            calm_from: Time::ZERO,
            went_offline: Some(Time::ZERO),
            pending: BTreeMap::new(),
            at_broker: BTreeMap::new(),
            copies: 0,
            broker_seen: 0,
            not_arrived: BTreeSet::new(),
            host_lines: Lines::default(),
            modem_lines: Lines::default(),
            pub_line: BTreeMap::new(),
            pub_ok: BTreeMap::new(),
            commands: BTreeSet::new(),
            next_msg: 1,
            next_cmd: 1,
            faults_end,
            end,
            report: Report {
                seed: opts.seed,
                line: format!("FIFO {fifo} bytes, chunks of 1 to {chunk_max} bytes"),
                ..Report::default()
            },
            last_ticket_check: Time::ZERO,
            online_bound,
            ticket_bound,
            recreate: None,
            charge_at_end: None,
            poisoned,
            poison_msg_id: None,
            poison_attempts: 0,
            link_losses: 0,
            nat_keeps_links: u64::from(sup.keepalive_s) < 300,
            outcomes: [0; 4],
            rng,
            opts,
        };
        w.shared.borrow_mut().payload_len = w.opts.battery.map(|b| b.payload);
        w.trace.note(
            Time::ZERO,
            &format!(
                "seed {:#x}: fifo {fifo}, chunks up to {chunk_max}, {sup:?}",
                w.opts.seed
            ),
        );
        if let Some((k, answer)) = poisoned {
            w.trace.note(
                Time::ZERO,
                &format!("# m{k} is poisoned: the modem answers {answer:?}"),
            );
            w.report.poisoned = Some((k, "not handed over".into(), 0));
        }
        let first = w.opts.publish_every;
        w.at(Time::ZERO + first, Ev::Publish);
        let c = w.gap(w.opts.command_every);
        w.at(Time::ZERO + c, Ev::Command);
        let f = w.gap(w.opts.fault_every);
        w.at(faults_end, Ev::Disarm);
        let first_fault = Fault::draw(&mut w.rng);
        w.at(Time::ZERO + f, Ev::Fault(first_fault));
        w
    }

    pub(crate) fn wire(&self) -> Rc<RefCell<Wire>> {
        self.wire.clone()
    }

    pub(crate) fn shared(&self) -> Shared {
        self.shared.clone()
    }

    /// When the run may end: the traffic and faults are over, and the last fault (one that
    /// began before the end and lasts past it too) is long enough ago that every message
    /// must have arrived. The next instant to look again, or `None` to end now.
    pub(crate) fn end(&self) -> Result<Option<Time>, Box<Failure>> {
        let now = clock::now();
        let quiet = self.calm_from + self.online_bound + self.ticket_bound;
        if now >= self.end && self.active == 0 && !self.armed() && now >= quiet {
            return Ok(None);
        }
        if now > self.end + secs(30 * 86_400) {
            return Err(self.fail("the world did not settle within 30 days after its end".into()));
        }
        Ok(Some(if now >= self.end && quiet > now {
            quiet
        } else if now >= self.end {
            // Quiet long enough, but a fault still goes on (or is armed): look
            // again when something happens, at the latest when the world must
            // have settled. (`quiet.max(now)` here was `now` itself: the
            // world stepped at one instant for ever.)
            self.end + secs(30 * 86_400) + secs(1)
        } else {
            self.end
        }))
    }

    /// A random gap around `mean` (from a quarter to twice and three quarters of it).
    fn gap(&mut self, mean: StdDuration) -> StdDuration {
        let m = mean.as_micros() as u64;
        StdDuration::from_micros(self.rng.range(m / 4, m * 11 / 4 + 1))
    }

    fn at(&mut self, t: Time, ev: Ev) {
        let t = ceil_us(t);
        self.seq += 1;
        self.events.insert((t, self.seq), ev);
    }

    fn fail(&self, what: String) -> Box<Failure> {
        Box::new(Failure::new(
            self.opts.clone(),
            clock::now(),
            what,
            &self.trace,
        ))
    }

    // ------------------------------------------------------------ time

    /// The next instant something happens: an event, the modem's or the broker's timer,
    /// a task's timer.
    pub(crate) fn next_time(&self) -> Option<Time> {
        [
            self.events.keys().next().map(|k| k.0),
            self.modem.poll_at(),
            self.broker.poll_at(),
            clock::next_timer(),
        ]
        .into_iter()
        .flatten()
        .min()
        .map(ceil_us)
    }

    /// Moves to `t` and makes happen everything due then (tasks are woken; the caller polls
    /// them).
    pub(crate) fn advance(&mut self, t: Time) -> Result<(), Box<Failure>> {
        clock::advance_to(t);
        let now = clock::now();
        let mut steps = 0u32;
        loop {
            steps += 1;
            if steps > MAX_STEPS_AT_ONCE {
                return Err(self.fail("stuck: events without end at one instant".into()));
            }
            let due = matches!(self.events.first_key_value(), Some((k, _)) if k.0 <= now);
            if due {
                let (_, ev) = self.events.pop_first().unwrap_or_else(|| unreachable!());
                self.happen(now, ev)?;
                continue;
            }
            if self.modem.poll_at().is_some_and(|p| p <= now) {
                self.modem.advance(now);
                self.modem_out(now);
                continue;
            }
            if self.broker.poll_at().is_some_and(|p| p <= now) {
                self.broker.advance(now);
                self.broker_out(now);
                continue;
            }
            return Ok(());
        }
    }

    /// After the tasks ran: what the driver wrote goes on the line.
    pub(crate) fn host_wrote(&mut self) {
        let now = clock::now();
        // The wake pin pulsed (before the probe it precedes).
        if std::mem::take(&mut self.wire.borrow_mut().eint) {
            self.trace.note(now, "# PSM_EINT");
            self.modem.psm_eint(now);
            self.modem_out(now);
        }
        let bytes = std::mem::take(&mut self.wire.borrow_mut().written);
        if bytes.is_empty() {
            return;
        }
        self.to_modem.schedule_n(now, bytes.len() as u64);
        let mut i = 0;
        while i < bytes.len() {
            let n = 1 + self.rng.below(self.chunk_max as u64) as usize;
            let j = (i + n).min(bytes.len());
            let t = self.to_modem.complete_before_last((bytes.len() - j) as u64);
            self.at(t, Ev::ToModem(bytes[i..j].to_vec()));
            i = j;
        }
    }

    fn happen(&mut self, now: Time, ev: Ev) -> Result<(), Box<Failure>> {
        match ev {
            Ev::ToModem(mut bytes) => {
                self.wire.borrow_mut().sent(bytes.len());
                if self.cut_host {
                    if let Some((a, b)) = line_edge(&bytes, &mut self.rng) {
                        self.cut_host = false;
                        self.trace.note(
                            now,
                            &format!("! {} bytes lost on the line to the modem", b - a),
                        );
                        bytes.drain(a..b);
                    }
                }
                self.trace.wire(now, b'>', &bytes);
                let mut rest = &bytes[..];
                if let Some(n) = self.reboot_at_byte {
                    let n = n as usize;
                    if n <= rest.len() {
                        self.reboot_at_byte = None;
                        self.take_host(now, &rest[..n]);
                        self.trace.note(now, "! the modem restarts after that byte");
                        self.wedge_ends_by_fault();
                        self.modem.reboot(now);
                        self.modem_out(now);
                        self.shared.borrow_mut().reboot_seen = true;
                        rest = &rest[n..];
                    } else {
                        self.reboot_at_byte = Some((n - rest.len()) as u32);
                    }
                }
                self.take_host(now, rest);
            }
            Ev::ToHost(bytes, gen) => {
                if gen == self.tx_gen {
                    self.trace.wire(now, b'<', &bytes);
                    let mut results = Vec::new();
                    self.modem_lines.push(&bytes, |l| {
                        if field(l, b"+QMTPUB: ", 0) == Some(u32::from(CLIENT))
                            && field(l, b"+QMTPUB: ", 2) == Some(0)
                        {
                            if let Some(m) = field(l, b"+QMTPUB: ", 1) {
                                results.push(m);
                            }
                        }
                    });
                    for m in results {
                        self.pub_ok.insert(m, now);
                    }
                    self.wire.borrow_mut().arrive(&bytes);
                }
            }
            Ev::ConnectArrives(link) => {
                let ok = self.broker.accept(now, link.number());
                if ok {
                    self.conn_link.insert(link.number(), link);
                }
                let t = self.net_time(now, link, false);
                self.at(t, Ev::Connected(link, ok));
            }
            Ev::UpData(link, bytes) => {
                self.broker.bytes(now, link.number(), &bytes);
                self.broker_out(now);
            }
            Ev::UpClose(link) => {
                self.broker.closed(now, link.number());
                self.broker_out(now);
            }
            Ev::Connected(link, ok) => {
                let e = if ok {
                    NetEvent::Connected(link)
                } else {
                    NetEvent::ConnectFailed(link, model::ConnectError::Refused)
                };
                self.modem.network(now, e);
                self.modem_out(now);
            }
            Ev::DownData(link, bytes) => {
                self.modem.network(now, NetEvent::Data(link, &bytes));
                self.modem_out(now);
            }
            Ev::DownClose(link) => {
                self.modem.network(now, NetEvent::Closed(link));
                self.modem_out(now);
            }
            Ev::Fault(f) => self.fault(now, f),
            Ev::SilenceEnds => {
                self.trace.note(now, "! the UART lives again");
                self.modem.set_silent(now, false);
                self.modem_out(now);
                self.calm(now);
            }
            Ev::RegistrationBack => {
                self.trace.note(now, "! registered again");
                self.modem.set_registration(now, 1);
                self.modem_out(now);
                self.calm(now);
            }
            Ev::BrokerBack => {
                self.trace.note(now, "! the broker runs again");
                self.broker.start();
                self.calm(now);
            }
            Ev::LateAcksEnd => {
                self.late_acks = None;
                self.calm(now);
            }
            Ev::Disarm => {
                self.trace.note(now, "! the end of the faults");
                if self.opts.battery.is_some() {
                    // The meter exactly at the end of the traffic.
                    self.modem.advance(now);
                    self.modem_out(now);
                    self.charge_at_end = Some(self.modem.charge());
                }
                let f = self.modem.faults_mut();
                f.fail_open = None;
                f.refuse_connect = None;
                f.drop_acks = 0;
                self.cut_modem = false;
                self.cut_host = false;
                self.lose_result = false;
                self.reboot_at_byte = None;
                let mut w = self.wire.borrow_mut();
                w.read_error = false;
                w.write_error = false;
            }
            Ev::Publish => {
                if now < self.faults_end {
                    let k = self.next_msg;
                    self.next_msg += 1;
                    let mut qos = match self.rng.below(10) {
                        _ if self.opts.battery.is_some() => 1,
                        0 => 0,
                        1 | 2 => 2,
                        _ => 1,
                    };
                    if self.poisoned.is_some_and(|p| p.0 == k) {
                        // The poisoned message is QoS 1/2: it must end refused, never lost.
                        qos = qos.max(1);
                    }
                    self.trace.note(
                        now,
                        &format!("# the application publishes m{k} at QoS {qos}"),
                    );
                    let mut s = self.shared.borrow_mut();
                    s.requests.push_back((k, qos));
                    if let Some(w) = s.waker.take() {
                        w.wake();
                    }
                    drop(s);
                    let g = self.opts.publish_every;
                    self.at(now + g, Ev::Publish);
                }
            }
            Ev::Command => {
                if now < self.faults_end {
                    let n = self.next_cmd;
                    self.next_cmd += 1;
                    let qos = match self.rng.below(3) as u8 {
                        _ if self.opts.battery.is_some() => 1,
                        q => q,
                    };
                    let p = format!("c{n:010}").into_bytes();
                    if self.broker.publish(now, CMD, &p, qos, false) {
                        self.trace
                            .note(now, &format!("# the backend sends c{n} at QoS {qos}"));
                        self.commands.insert(p);
                        self.report.commands_sent += 1;
                        self.broker_out(now);
                    }
                    let g = self.gap(self.opts.command_every);
                    self.at(now + g, Ev::Command);
                }
            }
        }
        Ok(())
    }

    fn take_host(&mut self, now: Time, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let wedged = self.modem.faults().wedged.is_some();
        let taken = self.modem.host_bytes(now, bytes).len();
        if wedged && self.modem.faults().wedged.is_none() {
            self.trace
                .note(now, "! AT+QRST=1 restarted the wedged modem");
            self.report.wedges.1 += 1;
            self.shared.borrow_mut().reboot_seen = true;
        }
        let mut lines = Vec::new();
        self.host_lines.push(&bytes[bytes.len() - taken..], |l| {
            if let Some(m) = field(l, b"AT+QMTPUB=", 1) {
                if field(l, b"AT+QMTPUB=", 0) == Some(u32::from(CLIENT)) {
                    lines.push(m);
                }
            }
        });
        for m in lines {
            self.pub_line.insert(m, now);
            if self.poison_msg_id == Some(m) {
                self.poison_attempts += 1;
            }
        }
        self.modem_out(now);
    }

    /// A fault ended (or an instant one happened): the offline bound counts from here.
    fn calm(&mut self, now: Time) {
        self.active = self.active.saturating_sub(1);
        self.calm_from = self.calm_from.max(now);
    }

    fn fault(&mut self, now: Time, f: Fault) {
        if now >= self.faults_end {
            return;
        }
        let f = match f {
            Fault::RecreateSupervisor if !self.opts.recreate_supervisor => Fault::RecreateApp,
            f => f,
        };
        self.report.faults += 1;
        *self.report.by_kind.entry(f.name()).or_default() += 1;
        self.trace.note(now, &format!("! fault: {f:?}"));
        self.calm_from = self.calm_from.max(now);
        match f {
            Fault::BreakLink => self.modem.break_link(now, CLIENT),
            Fault::CloseLink(code) => self.modem.close_link(now, CLIENT, code),
            Fault::Reboot => {
                self.wedge_ends_by_fault();
                self.modem.reboot(now);
                self.shared.borrow_mut().reboot_seen = true;
            }
            Fault::RebootAtByte(n) => self.reboot_at_byte = Some(n),
            Fault::Silence(d) => {
                self.active += 1;
                self.modem.set_silent(now, true);
                self.at(now + d, Ev::SilenceEnds);
            }
            Fault::Registration(stat, d) => {
                self.active += 1;
                self.modem.set_registration(now, stat);
                self.at(now + d, Ev::RegistrationBack);
            }
            Fault::BrokerRestart { keep, down } => {
                if self.broker.running() {
                    self.active += 1;
                    self.broker.stop(now, keep);
                    self.broker_out(now);
                    self.at(now + down, Ev::BrokerBack);
                }
            }
            Fault::DropAcks(n) => self.modem.faults_mut().drop_acks += n,
            Fault::LateAcks(by, d) => {
                if self.late_acks.is_none() {
                    self.active += 1;
                    self.late_acks = Some(by);
                    self.at(now + d, Ev::LateAcksEnd);
                }
            }
            Fault::CutFromModem => self.cut_modem = true,
            Fault::LoseResult => self.lose_result = true,
            Fault::CutFromHost => self.cut_host = true,
            Fault::ReadError => self.wire.borrow_mut().fail_read(),
            Fault::WriteError => self.wire.borrow_mut().write_error = true,
            Fault::OpenFails(n) => self.modem.faults_mut().fail_open = Some((n, -1)),
            Fault::ConnectRefused(n, code) => {
                self.modem.faults_mut().refuse_connect = Some((n, code))
            }
            Fault::Wedged(how) => {
                if self.modem.faults().wedged.is_none() {
                    self.report.wedges.0 += 1;
                }
                self.modem.faults_mut().wedged = Some(how);
            }
            Fault::RecreateApp => self.recreate = Some(Fault::RecreateApp),
            Fault::RecreateSupervisor => self.recreate = Some(Fault::RecreateSupervisor),
        }
        self.modem_out(now);
        // The next fault: most come alone, some in a burst of a few minutes.
        let gap = if self.rng.chance(1, 4) {
            secs(self.rng.range(1, 300))
        } else {
            self.gap(self.opts.fault_every)
        };
        let next = Fault::draw(&mut self.rng);
        // A re-creation lands in the middle of an operation: just after a publish.
        let t = if matches!(next, Fault::RecreateApp | Fault::RecreateSupervisor) {
            let p = self.opts.publish_every.as_micros() as u64;
            let base = now + gap;
            let into = base.as_micros() % p;
            base + StdDuration::from_micros(p - into)
                + StdDuration::from_millis(self.rng.range(0, 3000))
        } else {
            now + gap
        };
        self.at(t, Ev::Fault(next));
    }

    /// When a packet sent now on `link` arrives (`down`: from the broker).
    fn net_time(&mut self, now: Time, link: LinkId, down: bool) -> Time {
        let mut lat = StdDuration::from_millis(self.rng.range(30, 800));
        if down {
            if let Some(extra) = self.late_acks {
                lat += extra;
            }
        }
        let key = (link.number(), down);
        let t = (now + lat).max(self.net_last.get(&key).copied().unwrap_or(Time::ZERO));
        self.net_last.insert(key, t);
        t
    }

    /// The modem's outputs: bytes on the line to the host, packets to the network.
    fn modem_out(&mut self, now: Time) {
        let mut pieces: Vec<Option<Vec<u8>>> = Vec::new();
        while let Some(out) = self.modem.poll_host() {
            match out {
                ToHost::Echo(b) | ToHost::Message(b) => pieces.push(Some(b.to_vec())),
                ToHost::Discard => pieces.push(None),
            }
        }
        for p in pieces {
            match p {
                Some(mut b) => {
                    if self.lose_result {
                        let is_result = |l: &[u8]| {
                            l.starts_with(b"+QMTPUB: ")
                                || l.starts_with(b"+QMTSUB: ")
                                || l.starts_with(b"+QMTCONN: 0,0")
                        };
                        let mut lines = Vec::new();
                        Lines::default().push(&b, |l| lines.push(is_result(l)));
                        if lines.iter().any(|&r| r) {
                            self.lose_result = false;
                            self.trace
                                .note(now, "! the next result is lost on the line");
                            continue;
                        }
                    }
                    if self.cut_modem {
                        if let Some((a, e)) = line_edge(&b, &mut self.rng) {
                            self.cut_modem = false;
                            self.trace.note(
                                now,
                                &format!("! {} bytes lost on the line to the host", e - a),
                            );
                            b.drain(a..e);
                        }
                    }
                    self.to_host.schedule_n(now, b.len() as u64);
                    let mut i = 0;
                    while i < b.len() {
                        let n = 1 + self.rng.below(self.chunk_max as u64) as usize;
                        let j = (i + n).min(b.len());
                        let t = self.to_host.complete_before_last((b.len() - j) as u64);
                        let g = self.tx_gen;
                        self.at(t, Ev::ToHost(b[i..j].to_vec(), g));
                        i = j;
                    }
                }
                None => {
                    self.tx_gen += 1;
                    self.to_host = Pacer::new(Some(BAUD), now).unwrap_or_else(|| unreachable!());
                }
            }
        }
        while let Some(a) = self.modem.poll_net() {
            match a {
                NetAction::Connect { link, .. } => {
                    let t = self.net_time(now, link, false);
                    self.at(t, Ev::ConnectArrives(link));
                }
                NetAction::Send { link, bytes } => {
                    let t = self.net_time(now, link, false);
                    self.at(t, Ev::UpData(link, bytes));
                }
                NetAction::Close { link } => {
                    let t = self.net_time(now, link, false);
                    self.at(t, Ev::UpClose(link));
                }
            }
        }
    }

    /// The broker's outputs, to the modem through the network; its log, to the checks.
    fn broker_out(&mut self, now: Time) {
        while let Some(a) = self.broker.poll() {
            match a {
                BrokerAction::Send { conn, bytes } => {
                    if let Some(&link) = self.conn_link.get(&conn) {
                        let t = self.net_time(now, link, true);
                        self.at(t, Ev::DownData(link, bytes));
                    }
                }
                BrokerAction::Close { conn } => {
                    if let Some(link) = self.conn_link.remove(&conn) {
                        let t = self.net_time(now, link, true);
                        self.at(t, Ev::DownClose(link));
                    }
                }
            }
        }
        let log = self.broker.received();
        let new: Vec<(u64, Time)> = log[self.broker_seen..]
            .iter()
            .filter(|r| r.client_id == CLIENT_ID && r.topic == UP)
            .filter_map(|r| number(&r.payload).map(|k| (k, r.at)))
            .collect();
        self.broker_seen = log.len();
        if self.broker_seen > 10_000 {
            self.broker.clear_received();
            self.broker_seen = 0;
        }
        for (k, at) in new {
            if let std::collections::btree_map::Entry::Vacant(e) = self.at_broker.entry(k) {
                e.insert(at);
                self.not_arrived.remove(&k);
                // Order: with one message in flight, a QoS 1/2 message reaches the broker
                // only after every one handed over before it.
                if self.opts.in_flight == 1 {
                    if let Some(&first) = self.not_arrived.iter().next() {
                        if first < k {
                            self.report.order_violation.get_or_insert(format!(
                                "m{k} reached the broker before m{first}, handed over earlier"
                            ));
                        }
                    }
                }
            } else {
                self.copies += 1;
            }
        }
    }

    // ------------------------------------------------------------ checks

    /// What the tasks reported, and the invariants that need the link.
    pub(crate) fn check(&mut self, link: &Link<'_>) -> Result<(), Box<Failure>> {
        let now = clock::now();
        // A fault armed for later (the next opens fail, the next acknowledgements are lost,
        // a cut, a reboot at a byte, a UART error) counts from when it strikes.
        if self.armed() {
            self.calm_from = self.calm_from.max(now);
        }
        let (handed, ended, problem) = {
            let mut s = self.shared.borrow_mut();
            (
                std::mem::take(&mut s.handed),
                std::mem::take(&mut s.ended),
                s.problem.take(),
            )
        };
        if let Some(p) = problem {
            return Err(self.fail(p));
        }
        if let Some(v) = self.report.order_violation.clone() {
            return Err(self.fail(format!("out of order: {v}")));
        }
        let poisoned = self.poisoned.map(|p| p.0);
        for (k, h) in handed {
            if Some(k) == poisoned {
                // Never at the broker: not awaited there, and out of the order check.
                self.poison_msg_id = h.ticket.map(|t| u32::from(t.msg_id));
                self.poison_attempts = 0;
            } else if h.qos > 0 {
                self.report.handed += 1;
                if !self.at_broker.contains_key(&k) {
                    self.not_arrived.insert(k);
                }
            } else {
                self.report.qos0_handed += 1;
            }
            self.pending.insert(k, h);
            if h.ticket.is_none() {
                self.shared.borrow_mut().ended.push((k, None));
            }
        }
        let ended: Vec<(u64, Option<Outcome>)> = ended
            .into_iter()
            .chain(std::mem::take(&mut self.shared.borrow_mut().ended))
            .collect();
        for (k, o) in ended {
            let Some(h) = self.pending.remove(&k) else {
                continue;
            };
            if Some(k) == poisoned {
                self.poisoned_ended(k, &h, o, link)?;
                continue;
            }
            let msg_id = h.ticket.map_or(0, |t| t.msg_id);
            match (h.qos, o) {
                (0, Some(Outcome::Sent)) => {
                    self.outcomes[1] += 1;
                    continue;
                }
                (0, Some(Outcome::Dropped)) => {
                    self.outcomes[2] += 1;
                    continue;
                }
                (1 | 2, Some(Outcome::Acknowledged { msg_id: m })) if m == msg_id => {
                    self.outcomes[0] += 1;
                }
                // The mutant's "delivered".
                (1 | 2, None) => {}
                (q, o) => {
                    return Err(self.fail(format!(
                        "m{k} (QoS {q}, msgID {msg_id}) ended {o:?}: a QoS 1/2 message ends Acknowledged under its msgID (Refused only if the world poisoned it), a QoS 0 one Sent or Dropped"
                    )))
                }
            }
            self.report.delivered += 1;
            if !self.at_broker.contains_key(&k) {
                return Err(self.fail(format!(
                    "m{k} (QoS {}) left the outbox as delivered, but the broker never received it",
                    h.qos
                )));
            }
            if let Some(t) = h.ticket {
                let m = u32::from(t.msg_id);
                let line = self.pub_line.get(&m).copied();
                let ok = self.pub_ok.get(&m).copied();
                match (line, ok) {
                    (Some(l), Some(o)) if l >= h.at && o >= l && o <= now => {}
                    _ => {
                        return Err(self.fail(format!(
                            "m{k} delivered under msgID {m}, but no `+QMTPUB: 0,{m},0` reached the host after its `AT+QMTPUB=0,{m},...` line (line at {line:?}, result at {ok:?}, handed at {:?})",
                            h.at
                        )))
                    }
                }
            }
        }
        // The poisoned message never ends the link: with it pending and no fault for a
        // while, the link stays up.
        let losses = link.counters().link_losses;
        if losses != self.link_losses {
            self.link_losses = losses;
            let pending = poisoned.is_some_and(|k| self.pending.contains_key(&k));
            let calm = self.nat_keeps_links
                && self.active == 0
                && !self.armed()
                && now.saturating_since(self.calm_from) > FAULT_ECHO;
            if pending && calm {
                return Err(self.fail(format!(
                    "the link ended ({:?}) while the poisoned message was pending, with no fault for {:?}",
                    link.state(),
                    now.saturating_since(self.calm_from)
                )));
            }
        }
        // The outbox never exceeds its bound.
        let o = link.outbox();
        if o.bytes > o.capacity || o.high_water > o.capacity {
            return Err(self.fail(format!("the outbox holds more than its size: {o:?}")));
        }
        if let Some(charge) = self.charge_at_end.take() {
            self.report.power = Some(PowerReport {
                charge,
                connects: link.counters().connects,
                messages: self.next_msg - 1,
            });
        }
        // Online again within the bound after the last fault (asleep, in a duty cycle, is
        // as good: the supervisor comes up at its next wake).
        let state = link.state();
        if state == LinkState::Online || matches!(state, LinkState::Asleep { .. }) {
            if let Some(since) = self.went_offline.take() {
                let after = now.saturating_since(since.max(self.calm_from));
                self.report.worst_offline_after_fault =
                    self.report.worst_offline_after_fault.max(after);
            }
        } else {
            if self.went_offline.is_none() {
                self.went_offline = Some(now);
            }
            if self.active == 0 {
                let since = self.went_offline.unwrap_or(now).max(self.calm_from);
                if now.saturating_since(since) > self.online_bound {
                    return Err(self.fail(format!(
                        "offline for {:?} after the last fault (bound {:?}); state {state:?}, counters {:?}",
                        now.saturating_since(since),
                        self.online_bound,
                        link.counters()
                    )));
                }
            }
        }
        // No ticket waits for ever (checked once a simulated second).
        if now.saturating_since(self.last_ticket_check) >= secs(1) {
            self.last_ticket_check = now;
            if self.active == 0 {
                for (k, h) in &self.pending {
                    let since = h.at.max(self.calm_from);
                    if now.saturating_since(since) > self.ticket_bound {
                        return Err(self.fail(format!(
                            "m{k}'s ticket has waited {:?} since the last fault (bound {:?}); outbox {:?}, state {state:?}",
                            now.saturating_since(since),
                            self.ticket_bound,
                            link.outbox()
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    /// The end of the run: every message handed over reached the broker and left the
    /// outbox; the figures.
    pub(crate) fn finish(&mut self, link: &Link<'_>) -> Result<(), Box<Failure>> {
        self.check(link)?;
        if let Some((k, h)) = self.pending.iter().next() {
            return Err(self.fail(format!(
                "m{k} (QoS {}) still in the outbox at the end, {} pending",
                h.qos,
                self.pending.len()
            )));
        }
        if let Some(k) = self.not_arrived.iter().next() {
            return Err(self.fail(format!("m{k} never reached the broker")));
        }
        let s = self.shared.borrow();
        let got: BTreeSet<&Vec<u8>> = s.received.iter().collect();
        for p in &got {
            if !self.commands.contains(*p) {
                return Err(self.fail(format!(
                    "the device received {:?}, which the backend never sent",
                    String::from_utf8_lossy(p)
                )));
            }
        }
        // Every ticket ended once, and the counters agree: a dropped QoS 0 message is not
        // counted delivered.
        let c = link.counters();
        let [acked, sent, dropped, refused] = self.outcomes;
        if self.opts.mutant.is_none()
            && (c.delivered != acked + sent || c.qos0_dropped != dropped || c.refused != refused)
        {
            return Err(self.fail(format!(
                "the counters disagree with the tickets: {acked} acknowledged + {sent} sent, {dropped} dropped, {refused} refused; {c:?}"
            )));
        }
        let r = &mut self.report;
        r.qos0_sent = u64::from(sent);
        r.qos0_dropped = u64::from(dropped);
        r.commands_received = got.len() as u64;
        r.command_copies = s.received.len() as u64 - got.len() as u64;
        r.refused = s.refused;
        r.duplicates = self.copies;
        r.lost = 0;
        r.counters = format!("{:?}", link.counters());
        r.read_errors = self.wire.borrow().read_errors;
        r.write_errors = self.wire.borrow().write_errors;
        Ok(())
    }

    /// The poisoned message ended: refused, with the modem's answer, after at least
    /// `max_refusals` sends, never at the broker, counted.
    fn poisoned_ended(
        &mut self,
        k: u64,
        h: &Handed,
        o: Option<Outcome>,
        link: &Link<'_>,
    ) -> Result<(), Box<Failure>> {
        let answer = self.poisoned.map(|p| p.1);
        let attempts = self.poison_attempts;
        self.report.poisoned = Some((k, format!("{o:?}"), attempts));
        let max = u32::from(
            SupervisorConfig::new(
                ClientId::new(CLIENT).unwrap_or_else(|_| unreachable!()),
                "",
                0,
                "",
            )
            .max_refusals,
        );
        let right = matches!(
            (answer, o),
            (
                Some(PoisonAnswer::Failed),
                Some(Outcome::Refused(Error::SendFailed))
            ) | (
                Some(PoisonAnswer::Error),
                Some(Outcome::Refused(Error::Modem(_)))
            )
        );
        if !right || attempts < max {
            return Err(self.fail(format!(
                "the poisoned m{k} (QoS {}, answered {answer:?}) ended {o:?} after {attempts} sends: it must end Refused with the modem's answer after {max} sends at least",
                h.qos
            )));
        }
        if self.at_broker.contains_key(&k) {
            return Err(self.fail(format!("the poisoned m{k} reached the broker")));
        }
        self.outcomes[3] += 1;
        if link.counters().refused < self.outcomes[3] {
            return Err(self.fail(format!(
                "the poisoned m{k} ended refused, but Counters::refused is {}",
                link.counters().refused
            )));
        }
        Ok(())
    }

    fn armed(&self) -> bool {
        let f = self.modem.faults();
        let w = self.wire.borrow();
        f.fail_open.is_some()
            || f.refuse_connect.is_some()
            || f.wedged.is_some()
            || f.drop_acks > 0
            || self.cut_modem
            || self.cut_host
            || self.lose_result
            || self.reboot_at_byte.is_some()
            || w.read_error
            || w.write_error
    }

    /// A reboot fault is about to end a wedge (not the supervisor's doing).
    fn wedge_ends_by_fault(&mut self) {
        if self.modem.faults().wedged.is_some() {
            self.report.wedges.3 += 1;
        }
    }

    /// The board's reset of the modem, as the supervisor asked (its `HardReset`).
    pub(crate) fn board_reset(&mut self) {
        let n = std::mem::take(&mut self.shared.borrow_mut().board_resets);
        if n == 0 {
            return;
        }
        let now = clock::now();
        let wedged = self.modem.faults().wedged.is_some();
        self.trace.note(now, "! the board resets the modem");
        self.modem.reboot(now);
        self.modem_out(now);
        self.shared.borrow_mut().reboot_seen = true;
        if wedged {
            self.report.wedges.2 += 1;
        }
    }

    pub(crate) fn take_recreate(&mut self) -> Option<Fault> {
        std::mem::take(&mut self.recreate)
    }

    pub(crate) fn is_pending(&self, k: u64) -> bool {
        self.pending.contains_key(&k)
    }

    /// Tickets of messages in the outbox (handed over, not yet delivered), oldest first:
    /// those the tasks just reported too.
    pub(crate) fn pending_tickets(&self) -> Vec<(u64, Ticket)> {
        let s = self.shared.borrow();
        let fresh = s
            .handed
            .iter()
            .filter_map(|(k, h)| h.ticket.map(|t| (*k, t)));
        let mut v: Vec<(u64, Ticket)> = self
            .pending
            .iter()
            .filter_map(|(k, h)| h.ticket.map(|t| (*k, t)))
            .chain(fresh)
            .collect();
        v.sort_by_key(|e| e.0);
        v.dedup_by_key(|e| e.0);
        v
    }

    pub(crate) fn opts(&self) -> &Options {
        &self.opts
    }
}

/// The supervisor's configuration for this run (from the seed; the mutants').
pub(crate) fn sup_config(opts: &Options, rng: &mut Rng) -> SupervisorConfig<'static> {
    let mut c = SupervisorConfig::new(
        ClientId::new(CLIENT).unwrap_or_else(|_| unreachable!()),
        "broker.example",
        1883,
        CLIENT_ID,
    );
    c.keepalive_s = [60, 120, 300, 900][rng.below(4) as usize];
    c.clean_session = rng.chance(1, 2);
    c.subscriptions = &SUBS;
    c.in_flight = opts.in_flight;
    if let Some(b) = opts.battery {
        // The defaults, a persistent session, and the duty cycle if any.
        c.keepalive_s = 120;
        c.clean_session = false;
        if let Some((k, h)) = b.keepalive {
            c.keepalive_s = k;
            c.health_check = Duration::from_micros(h.as_micros() as u64);
        }
        if let Some(d) = b.duty_cycle {
            c.mode = Mode::DutyCycle(d);
        }
    }
    c.backoff = Backoff::new().seed(rng.next() as u32);
    if opts.mutant == Some(Mutant::UncappedBackoff) {
        // The mutant: a back-off whose cap is out of reach.
        c.backoff = c
            .backoff
            .delays(Duration::from_secs(2), Duration::from_secs(100 * 86_400));
    }
    c
}

/// The driver's configuration (the mutant's: a publish result waited for 100 years).
pub(crate) fn driver_config(mutant: Option<Mutant>) -> Config {
    let c = Config::new();
    if mutant == Some(Mutant::NoDeadline) {
        c.packet_deadline(Duration::from_secs(100 * 365 * 86_400))
    } else {
        c
    }
}

/// Runs one world: see [`crate::run`].
pub(crate) fn run(opts: Options) -> Result<Report, Box<Failure>> {
    clock::reset();
    let wall = std::time::Instant::now();
    let mut w = World::new(opts.clone());
    let mut state: Box<State> = Box::new(State::new());
    let (modem, runner) = bc26_mqtt::new(
        &mut *state,
        Reader(w.wire()),
        Writer(w.wire()),
        driver_config(opts.mutant),
    )
    .expect("the world's driver Config is consistent");
    // The wake pin (PSM_EINT): the world pulses the modem's when it next moves bytes.
    let pin = w.wire();
    let runner = runner.wake_pin(move || pin.borrow_mut().eint = true);
    let mut base = Tasks::new();
    base.spawn(async move {
        runner.run().await;
    });
    let mut sup: Box<SupervisorState<OUTBOX>> = Box::new(SupervisorState::new());
    let mut generation = 0u32;
    let result = loop {
        generation += 1;
        match run_generation(&mut w, &mut base, modem, &mut sup, generation) {
            Ok(true) => continue,
            Ok(false) => break Ok(()),
            Err(f) => break Err(f),
        }
    };
    result?;
    let mut r = std::mem::take(&mut w.report);
    r.simulated = clock::now().since_epoch();
    r.wall = wall.elapsed();
    r.trace_hash = w.trace.hash();
    r.trace = w.trace.take_full();
    r.generations = generation;
    Ok(r)
}

/// One generation of the supervisor, its link, the application and the event reader:
/// returns `Ok(true)` when the world re-creates them, `Ok(false)` at the end.
fn run_generation<'a: 'g, 'g>(
    w: &mut World,
    base: &mut Tasks<'a>,
    modem: Modem<'a>,
    sup: &'g mut SupervisorState<OUTBOX>,
    generation: u32,
) -> Result<bool, Box<Failure>> {
    let mut rng = Rng::new(w.opts().seed);
    let cfg = sup_config(w.opts(), &mut rng);
    let (link, supervisor) = supervisor::new(modem, sup, cfg);
    // The board's reset of the modem: the world does it at once.
    let board = w.shared();
    let supervisor = supervisor.with_hard_reset(move || {
        board.borrow_mut().board_resets += 1;
        std::future::ready(())
    });
    let mut tasks: Tasks<'g> = Tasks::new();
    let battery = w.opts().battery.is_some();
    tasks.spawn(async move {
        if battery {
            // PSM and deep sleep, asked for once the module answers.
            let timers = PsmTimers {
                periodic_tau: PeriodicTau::from_code(0b010_00001),
                active_time: ActiveTime::from_code(0b000_00101),
            };
            let req = PowerRequest::new().psm(timers).sleep(SleepMode::Deep);
            while modem.set_power(req).await.is_err() {
                Timer::after(Duration::from_secs(1)).await;
            }
        }
        supervisor.run().await;
    });
    let mut app_tasks = Vec::new();
    app_tasks.push(tasks.spawn(app(link, w.shared(), w.opts().mutant)));
    app_tasks.push(tasks.spawn(reader(modem, w.shared())));
    fn spawn_waiter<'g>(
        tasks: &mut Tasks<'g>,
        link: Link<'g>,
        k: u64,
        t: Ticket,
        shared: Shared,
    ) -> u64 {
        tasks.spawn(async move {
            let o = link.delivered(t).await;
            shared.borrow_mut().ended.push((k, Some(o)));
        })
    }
    // Tickets with a task waiting in `Link::delivered` (at most `delivery_waiters`, the
    // oldest); the others are looked at with `Link::outcome` after every step.
    let mut waited: BTreeSet<u64> = BTreeSet::new();
    if generation > 1 {
        w.trace.note(
            clock::now(),
            &format!("# generation {generation} of the tasks"),
        );
    }
    // Steps of this loop at one instant: a timer that keeps firing at the
    // instant it is armed spins without a round of polling ever growing long.
    let (mut instant, mut steps) = (clock::now(), 0u32);
    loop {
        if clock::now() == instant {
            steps += 1;
            if steps > MAX_ROUNDS {
                return Err(w.fail(format!(
                    "busy loop: {MAX_ROUNDS} steps of the world at one instant (a timer re-armed at the instant it fires?)"
                )));
            }
        } else {
            (instant, steps) = (clock::now(), 0);
        }
        // Run every woken task until none is; what they wrote goes on the line.
        let mut rounds = 0u32;
        loop {
            let a = base.poll_woken();
            let b = tasks.poll_woken();
            if !a && !b {
                break;
            }
            rounds += 1;
            if rounds > MAX_ROUNDS {
                return Err(w.fail(format!(
                    "busy loop: the tasks woke each other {MAX_ROUNDS} times with no time passing"
                )));
            }
        }
        w.host_wrote();
        w.board_reset();
        // The oldest tickets get a waiting task each; the others are polled.
        let max = w.opts().delivery_waiters;
        for (k, t) in w.pending_tickets() {
            if waited.contains(&k) {
                continue;
            }
            if waited.len() < max {
                waited.insert(k);
                app_tasks.push(spawn_waiter(&mut tasks, link, k, t, w.shared()));
            } else if let Some(o) = link.outcome(t) {
                w.shared().borrow_mut().ended.push((k, Some(o)));
            }
        }
        w.check(&link)?;
        waited.retain(|k| w.is_pending(*k));
        match w.take_recreate() {
            Some(Fault::RecreateSupervisor) => return Ok(true),
            Some(_) => {
                for id in app_tasks.drain(..) {
                    tasks.drop_task(id);
                }
                waited.clear();
                app_tasks.push(tasks.spawn(app(link, w.shared(), w.opts().mutant)));
                app_tasks.push(tasks.spawn(reader(modem, w.shared())));
                continue;
            }
            None => {}
        }
        let now = clock::now();
        let Some(end) = w.end()? else {
            w.finish(&link)?;
            return Ok(false);
        };
        let next = w.next_time().map_or(end, |t| t.min(end));
        w.advance(next.max(now))?;
    }
}
