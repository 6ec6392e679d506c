//! `--stdin TOPIC`: keep the client online through the driver's supervisor
//! and publish each line of standard input as one message.
//!
//! - A thread reads standard input line by line and hands the lines to the
//!   executor through a bounded channel (so a full outbox holds the reader
//!   back), waking it with a signal.
//! - The publisher puts the lines into the supervisor's outbox in their
//!   order (`Link::try_publish`; when the outbox is full it waits for the
//!   oldest line to leave, then tries again).
//! - The acknowledger waits for the lines' outcomes in line order and
//!   reports each: `published` when the modem sent it (QoS 0) or the broker
//!   acknowledged it (QoS 1/2), an `error` event for that line when it was
//!   dropped by a link loss (QoS 0) or refused.
//! - The monitor reports the supervisor's state changes and re-sends.
//! - At the end of input everything above gets `--drain-timeout` to finish;
//!   then the supervisor stops, and the client disconnects and closes.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io::BufRead;
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
use std::sync::OnceLock;

use bc26_mqtt::commands::SleepMode;
use bc26_mqtt::commands::Will;
use bc26_mqtt::supervisor::{
    self, Backoff, DutyCycle, Link, LinkState, Mode, OfflineReason, Outcome, ResetKind,
    SupervisorConfig, SupervisorState, Ticket,
};
use bc26_mqtt::{
    DataFormat, Error, Event, Events, Modem, MqttVersion, PowerRequest, QoS, Subscription,
};
use embassy_futures::join::join;
use embassy_futures::select::{select, select3, Either, Either3};
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_sync::signal::Signal;
use embassy_time::{Duration, Instant, Timer};

use crate::args::Run;
use crate::durable::Durable;
use crate::out::{self, Ev};
use crate::session;

/// The outbox's size: lines wait here (14 bytes each besides topic and
/// payload) while the link is down.
pub const OUTBOX: usize = 16 * 1024;

/// The longest line kept: longer ones are reported, not published (the
/// modem's data mode takes at most 1024 bytes, 512 in hex).
const LINE_MAX: usize = bc26_mqtt::limits::DATA_MODE_PAYLOAD;

/// Lines read ahead of the publisher.
const READ_AHEAD: usize = 64;

/// What the reader thread hands over.
enum Input {
    Line {
        n: u64,
        bytes: Vec<u8>,
    },
    /// Longer than [`LINE_MAX`]: its length.
    TooLong {
        n: u64,
        len: usize,
    },
    /// Standard input failed.
    Failed(String),
}

/// Wakes the executor when the reader thread handed something over.
static INPUT: Signal<CriticalSectionRawMutex, ()> = Signal::new();
/// When the reader saw the end of input.
static EOF_AT: OnceLock<Instant> = OnceLock::new();
/// Wakes the drain deadline at the end of input.
static EOF: Signal<CriticalSectionRawMutex, ()> = Signal::new();

/// Reads standard input line by line (`\n`, an `\r\n` is one end of line
/// too) on a thread of its own.
fn spawn_reader() -> Receiver<Input> {
    let (tx, rx) = mpsc::sync_channel(READ_AHEAD);
    std::thread::Builder::new()
        .name("bc26-stdin".into())
        .spawn(move || read_lines(std::io::stdin().lock(), tx))
        .expect("spawn the reader thread");
    rx
}

fn read_lines(mut input: impl BufRead, tx: SyncSender<Input>) {
    let mut n = 0u64;
    loop {
        let mut line = Vec::new();
        let mut len = 0usize;
        let mut ended = false;
        let mut last = None;
        let got = loop {
            let buf = match input.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => break Err(e.to_string()),
            };
            if buf.is_empty() {
                ended = true;
                break Ok(());
            }
            let (part, used, eol) = match memchr_nl(buf) {
                Some(i) => (&buf[..i], i + 1, true),
                None => (buf, buf.len(), false),
            };
            len += part.len();
            if let Some(&b) = part.last() {
                last = Some(b);
            }
            if line.len() < LINE_MAX + 2 {
                let room = LINE_MAX + 2 - line.len();
                line.extend_from_slice(&part[..part.len().min(room)]);
            }
            input.consume(used);
            if eol {
                break Ok(());
            }
        };
        if let Err(e) = got {
            let _ = tx.send(Input::Failed(e));
            break;
        }
        if ended && len == 0 {
            break;
        }
        n += 1;
        if last == Some(b'\r') {
            // CR LF ends a line too.
            if line.len() == len {
                line.pop();
            }
            len -= 1;
        }
        let item = if len > LINE_MAX {
            Input::TooLong { n, len }
        } else {
            Input::Line { n, bytes: line }
        };
        if tx.send(item).is_err() {
            return;
        }
        INPUT.signal(());
        if ended {
            break;
        }
    }
    let _ = EOF_AT.set(Instant::now());
    // Closed before the signal: the publisher then sees the end.
    drop(tx);
    INPUT.signal(());
    EOF.signal(());
}

fn memchr_nl(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'\n')
}

/// The next input, waiting for it; `None` at the end.
async fn next_input(rx: &Receiver<Input>) -> Option<Input> {
    loop {
        match rx.try_recv() {
            Ok(i) => return Some(i),
            Err(TryRecvError::Disconnected) => return None,
            Err(TryRecvError::Empty) => INPUT.wait().await,
        }
    }
}

/// Waits until `--drain-timeout` after the end of input.
async fn drain_deadline(timeout: Duration) {
    loop {
        if let Some(at) = EOF_AT.get() {
            Timer::at(*at + timeout).await;
            return;
        }
        EOF.wait().await;
    }
}

/// The lines' fates, shared by the futures below.
#[derive(Default)]
struct Tally {
    /// Lines read.
    lines: Cell<u64>,
    /// Reported `published`.
    published: Cell<u64>,
    /// Refused or not publishable (each reported as an `error`).
    failed: Cell<u64>,
    /// Dropped by a link loss (QoS 0; each reported as an `error`).
    dropped: Cell<u64>,
    /// In the outbox, in line order, not yet reported.
    pending: RefCell<VecDeque<(u64, Ticket)>>,
    /// The publisher is done (end of input).
    done: Cell<bool>,
    /// The publisher stored a line, or is done.
    pushed: Signal<CriticalSectionRawMutex, ()>,
}

/// The supervisor's configuration from the flags.
fn sup_config(run: &'static Run, host: &'static str, port: u16) -> SupervisorConfig<'static> {
    let a = &run.args;
    let mut c = SupervisorConfig::new(run.id, host, port, &run.client_id);
    c.username = a.user.as_deref();
    c.password = a.password.as_deref();
    c.will = a
        .will
        .as_ref()
        .map(|(t, m)| Will::new(t, m, run.qos, a.retain).expect("checked"));
    if let Some(k) = a.keepalive {
        c.keepalive_s = k;
    }
    if let Some(cs) = a.clean_session {
        c.clean_session = cs != 0;
    }
    c.version = a.version.map(|v| {
        if v == 3 {
            MqttVersion::V3_1
        } else {
            MqttVersion::V3_1_1
        }
    });
    c.pkt_timeout_s = a.pkt_timeout;
    c.retry_times = a.retries;
    if a.hex {
        c.send_format = DataFormat::Hex;
    }
    let subs: Vec<Subscription<'static>> = a
        .sub
        .iter()
        .map(|t| Subscription::new(t.as_str(), run.qos))
        .collect();
    c.subscriptions = Box::leak(subs.into_boxed_slice());
    let d = |d: std::time::Duration| Duration::from_micros(d.as_micros() as u64);
    c.backoff = Backoff::new()
        .delays(d(a.backoff_min), d(a.backoff_max))
        .seed(std::process::id());
    c.poll_interval = d(a.poll_interval);
    c.health_check = d(a.health_check);
    c.in_flight = usize::from(a.in_flight);
    if let Some(period) = a.duty_cycle {
        c.mode = Mode::DutyCycle(DutyCycle::new(d(period), d(a.receive_window)));
    }
    c
}

/// A `state` event.
fn state_event(client: u8, s: LinkState) {
    let mut ev = Ev::State {
        client,
        state: "",
        attempt: None,
        reason: None,
        code: None,
        error: None,
        delay_ms: None,
        how: None,
    };
    if let Ev::State {
        state,
        attempt,
        reason,
        code,
        error,
        delay_ms,
        how,
        ..
    } = &mut ev
    {
        match s {
            LinkState::Connecting { attempt: a } => {
                *state = "connecting";
                *attempt = Some(a);
            }
            LinkState::Online => *state = "online",
            LinkState::Offline { reason: r } => {
                *state = "offline";
                *reason = Some(match r {
                    OfflineReason::LinkClosed(why) => {
                        *code = Some(why.code());
                        "link_closed"
                    }
                    OfflineReason::ModemRebooted => "modem_rebooted",
                    OfflineReason::ModemSilent => "modem_silent",
                    OfflineReason::NotRegistered => "not_registered",
                    OfflineReason::NotConnected => "not_connected",
                    OfflineReason::SubscriptionRejected => "subscription_rejected",
                    OfflineReason::Failed(e) => {
                        *error = Some(e.to_string());
                        "failed"
                    }
                    other => {
                        *error = Some(format!("{other:?}"));
                        "other"
                    }
                });
            }
            LinkState::BackingOff { delay } => {
                *state = "backing_off";
                *delay_ms = Some(delay.as_millis());
            }
            LinkState::Resetting { how: h } => {
                *state = "resetting";
                *how = Some(match h {
                    ResetKind::Software => "software",
                    ResetKind::Hardware => "hardware",
                    _ => "other",
                });
            }
            LinkState::Asleep { until } => {
                *state = "asleep";
                *delay_ms = Some(until.saturating_duration_since(Instant::now()).as_millis());
            }
            other => *state = leak_name(other),
        }
    }
    out::emit(&ev);
}

/// A state this CLI does not know yet (the enum is non-exhaustive).
fn leak_name(s: LinkState) -> &'static str {
    Box::leak(format!("{s:?}").into_boxed_str())
}

/// Reports state changes and re-sends; tells the fault thread when the link
/// first came online.
async fn monitor(link: Link<'static>, first_online: Option<mpsc::Sender<()>>) -> ! {
    let client = link.client().get();
    let mut seen = 0u32;
    let mut resent = link.counters().resent;
    let mut first_online = first_online;
    loop {
        if let Either::First(s) = select(
            link.changed(&mut seen),
            Timer::after(Duration::from_millis(50)),
        )
        .await
        {
            state_event(client, s);
            if s == LinkState::Online {
                if let Some(tx) = first_online.take() {
                    let _ = tx.send(());
                }
            }
        }
        let now = link.counters().resent;
        if now != resent {
            out::emit(&Ev::Resent {
                client,
                messages: now.wrapping_sub(resent),
                total: now,
            });
            resent = now;
        }
    }
}

/// Prints what arrives, as the one-shot session does.
async fn printer(mut events: Events<'static>) -> ! {
    let mut buf = vec![0u8; bc26_mqtt::MESSAGE_MAX];
    loop {
        match events.next(&mut buf).await {
            Event::Message(m) => out::message(&m),
            Event::LinkClosed { client, reason } => out::emit(&Ev::LinkClosed {
                client: client.get(),
                code: reason.code(),
            }),
            Event::Missed(k) => eprintln!("bc26: missed {k} messages"),
            Event::Psm { entered } => out::emit(&Ev::Psm { entered }),
            Event::Signalling { connected } => out::emit(&Ev::Signalling { connected }),
            Event::Registration { stat, psm } => out::emit(&Ev::Registration {
                stat,
                periodic_tau_s: psm.and_then(|t| t.periodic_tau.secs()),
                active_time_s: psm.and_then(|t| t.active_time.secs()),
            }),
            _ => {}
        }
    }
}

fn line_error(n: u64, e: &dyn std::fmt::Display, tally: &Tally) {
    out::emit(&Ev::Error {
        op: "publish",
        line: Some(n),
        error: e.to_string(),
    });
    tally.failed.set(tally.failed.get() + 1);
}

/// Puts the lines into the outbox in their order.
async fn publisher(
    link: Link<'static>,
    durable: &Durable,
    run: &'static Run,
    topic: &'static str,
    rx: &Receiver<Input>,
    tally: &Tally,
) {
    let qos = run.qos;
    let retain = run.args.retain;
    let mut ever_online = false;
    while let Some(input) = next_input(rx).await {
        let (n, bytes) = match input {
            Input::Line { n, bytes } => (n, bytes),
            Input::TooLong { n, len } => {
                tally.lines.set(n);
                let e = format!("line too long: {len} bytes, the modem takes at most {LINE_MAX}");
                line_error(n, &e, tally);
                continue;
            }
            Input::Failed(e) => {
                out::error("stdin", &e);
                tally.failed.set(tally.failed.get() + 1);
                break;
            }
        };
        tally.lines.set(n);
        // QoS 0 is refused while offline: the first line waits for the
        // link to come up (bounded by --drain-timeout after the input ends).
        if qos == QoS::AtMostOnce && !ever_online {
            link.wait_online().await;
        }
        ever_online |= link.state() == LinkState::Online;
        loop {
            match durable.store(link, topic, &bytes, qos, retain).await {
                Ok((ticket, journalled)) => {
                    if journalled {
                        out::emit(&Ev::Stored {
                            client: link.client().get(),
                            line: n,
                            msg_id: ticket.msg_id,
                        });
                    }
                    tally.pending.borrow_mut().push_back((n, ticket));
                    tally.pushed.signal(());
                    break;
                }
                Err(Error::OutboxFull) => {
                    // Room comes when a stored line leaves: wait for the
                    // oldest one still stored (lines delivered but not yet
                    // reported are gone already: waiting for them would
                    // never yield).
                    let stored = tally
                        .pending
                        .borrow()
                        .iter()
                        .map(|(_, t)| *t)
                        .find(|t| link.pending(*t));
                    match stored {
                        Some(t) => {
                            // Its outcome is the acknowledger's to report.
                            let _ = link.delivered(t).await;
                        }
                        None => Timer::after(Duration::from_millis(1)).await,
                    }
                }
                Err(e) => {
                    line_error(n, &e, tally);
                    break;
                }
            }
        }
    }
    // A duty cycle: what is left goes now, not at the end of the period.
    if run.args.duty_cycle.is_some() {
        link.wake();
    }
    tally.done.set(true);
    tally.pushed.signal(());
}

/// `--duty-cycle`: the module's power URCs on, and light sleep (its UART
/// wakes on the first bytes, which the driver sends ahead), asked for once
/// the module answers. Gives up after a few tries (the duty cycle works
/// without them).
async fn power_setup(modem: Modem<'static>) {
    for _ in 0..10 {
        let sleep = PowerRequest::new().sleep(SleepMode::Light);
        match modem.power_reports(true).await {
            Ok(()) => match modem.set_power(sleep).await {
                Ok(()) => return,
                Err(e) => eprintln!("bc26: AT+QSCLK=2: {e}"),
            },
            Err(e) => eprintln!("bc26: power reports: {e}"),
        }
        Timer::after_secs(1).await;
    }
}

/// Reports each line's outcome, in line order.
async fn acknowledger(link: Link<'static>, topic: &'static str, tally: &Tally) {
    let client = link.client().get();
    loop {
        let front = tally.pending.borrow().front().copied();
        match front {
            Some((n, ticket)) => {
                let outcome = link.delivered(ticket).await;
                tally.pending.borrow_mut().pop_front();
                let msg_id = match outcome {
                    Outcome::Sent => Some(0),
                    Outcome::Acknowledged { msg_id } => Some(msg_id),
                    _ => None,
                };
                match (msg_id, outcome) {
                    (Some(msg_id), _) => {
                        tally.published.set(tally.published.get() + 1);
                        out::emit(&Ev::Published {
                            client,
                            topic,
                            line: Some(n),
                            msg_id,
                        });
                    }
                    (None, Outcome::Dropped) => {
                        tally.dropped.set(tally.dropped.get() + 1);
                        out::emit(&Ev::Error {
                            op: "publish",
                            line: Some(n),
                            error: "dropped: the link ended before the modem sent it (QoS 0 is not sent again)".into(),
                        });
                    }
                    (None, Outcome::Refused(e)) => line_error(n, &e, tally),
                    (None, other) => line_error(n, &format!("{other:?}"), tally),
                }
            }
            None if tally.done.get() => return,
            None => tally.pushed.wait().await,
        }
    }
}

/// The whole `--stdin` run; true when every line was delivered and the
/// link ended cleanly.
pub async fn stream(
    modem: Modem<'static>,
    run: &'static Run,
    host: &'static str,
    port: u16,
    first_online: Option<mpsc::Sender<()>>,
) -> bool {
    let a = &run.args;
    let topic: &'static str = a.stdin.as_deref().expect("--stdin");
    let id = run.id;
    let n = id.get();
    let state = Box::leak(Box::new(SupervisorState::<OUTBOX>::new()));
    let (link, sup) = supervisor::new(modem, state, sup_config(run, host, port));
    let durable = match Durable::open(link, run).await {
        Ok(d) => d,
        Err(e) => {
            out::error("flash", &e);
            return false;
        }
    };
    let events = modem.events().expect("one subscriber");
    let rx = spawn_reader();
    let tally = Tally::default();
    let start = link.counters();
    let drain = Duration::from_micros(a.drain_timeout.as_micros() as u64);

    let work = async {
        let lines = join(
            publisher(link, &durable, run, topic, &rx, &tally),
            acknowledger(link, topic, &tally),
        );
        if let Either::Second(()) = select(lines, drain_deadline(drain)).await {
            eprintln!("bc26: --drain-timeout: giving up on what is left");
        }
        if a.listen > 0 {
            Timer::after_secs(a.listen).await;
        }
    };
    let setup = async {
        if a.duty_cycle.is_some() {
            power_setup(modem).await;
        }
    };
    match select3(
        join(setup, sup.run()),
        join(
            join(monitor(link, first_online), printer(events)),
            durable.run(),
        ),
        work,
    )
    .await
    {
        Either3::Third(()) => {}
        Either3::First(((), never)) => match never {},
        Either3::Second(never) => match never.1 {},
    }
    durable.finish().await;
    // The supervisor has stopped: nothing will bring the link up again.

    // Lines never read from the reader, and lines still in the outbox.
    let mut unread = 0u64;
    while let Ok(i) = rx.try_recv() {
        if let Input::Line { n, .. } | Input::TooLong { n, .. } = i {
            tally.lines.set(n);
            unread += 1;
        }
    }
    let box_stats = link.outbox();
    let left = tally.pending.borrow().len() as u64;
    let c = link.counters();
    let dropped = tally.dropped.get();
    let undelivered = left + unread;
    out::emit(&Ev::Outbox {
        client: n,
        high_water: box_stats.high_water,
        capacity: box_stats.capacity,
        messages: box_stats.messages,
    });
    out::emit(&Ev::Summary {
        client: n,
        lines: tally.lines.get(),
        published: tally.published.get(),
        failed: tally.failed.get(),
        undelivered: undelivered + dropped,
        resent: c.resent.wrapping_sub(start.resent),
        connects: c.connects.wrapping_sub(start.connects),
        link_losses: c.link_losses.wrapping_sub(start.link_losses),
    });
    let mut ok = true;
    let lost = undelivered + dropped + tally.failed.get();
    if lost > 0 {
        let e = format!(
            "{lost} of {} lines not delivered ({} refused or failed, {} left in the outbox or unread, {} QoS 0 dropped by a link loss)",
            tally.lines.get(),
            tally.failed.get(),
            undelivered,
            dropped
        );
        eprintln!("bc26: {e}");
        out::error("deliver", &e);
        ok = false;
    }

    // Disconnect and close, as the one-shot session does.
    let ending = if link.state() == LinkState::Online {
        session::Ending::Connected
    } else {
        session::Ending::Offline
    };
    session::end(modem.client(id), ending).await && ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8]) -> Vec<String> {
        let (tx, rx) = mpsc::sync_channel(1000);
        read_lines(input, tx);
        rx.try_iter()
            .map(|i| match i {
                Input::Line { n, bytes } => format!("{n}:{}", String::from_utf8(bytes).unwrap()),
                Input::TooLong { n, len } => format!("{n}: too long {len}"),
                Input::Failed(e) => format!("failed {e}"),
            })
            .collect()
    }

    #[test]
    fn lines_end_at_lf_or_crlf_and_a_last_line_needs_no_end() {
        assert_eq!(lines(b"a\nb\r\n\nc"), ["1:a", "2:b", "3:", "4:c"]);
        assert_eq!(lines(b"a\n"), ["1:a"]);
        assert!(lines(b"").is_empty());
    }

    #[test]
    fn a_line_longer_than_the_modem_takes_is_reported_with_its_length() {
        let mut input = vec![b'x'; LINE_MAX];
        input.push(b'\n');
        input.extend(vec![b'y'; 5000]);
        input.extend_from_slice(b"\r\nok\n");
        let got = lines(&input);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].len(), 2 + LINE_MAX);
        assert_eq!(got[1], "2: too long 5000");
        assert_eq!(got[2], "3:ok");
    }
}
