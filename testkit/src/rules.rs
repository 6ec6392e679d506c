//! A rule-driven fake BC26 (the supervisor's state-machine tests): it
//! answers every line the way a healthy modem with one broker does
//! (registered, opens, connects, subscribes, acknowledges publishes; no
//! state), logs each line with the time it came, and lets a test change
//! single answers with a rule, stay silent, or send URCs at any moment. For
//! a modem that keeps state (echo, data mode, hex, open and connected), see
//! [`crate::auto`].

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;

use embassy_futures::select::{select, Either};
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_sync::signal::Signal;
use embassy_time::{Instant, Timer};

use crate::{show, Fake};

/// What the fake does with one line.
pub enum Answer {
    /// What a healthy modem answers.
    Default,
    /// These bytes instead.
    Send(Vec<u8>),
    /// Nothing.
    Nothing,
}

/// The fake's state, shared between its loop and the test.
pub struct Auto {
    /// Every unit the host sent (through CR, Ctrl+Z or ESC), trimmed of the
    /// terminator and of leading ESC/CR, with the time it came; also those a
    /// silent modem ignored.
    log: RefCell<Vec<(Instant, String)>>,
    /// While set, the fake answers nothing.
    pub silent: Cell<bool>,
    /// `+CEREG` status (1 registered).
    pub stat: Cell<u8>,
    /// Changes single answers: `Answer::Default` leaves the line to the
    /// default.
    #[allow(clippy::type_complexity)]
    rule: RefCell<Box<dyn FnMut(&str) -> Answer>>,
    inject: RefCell<VecDeque<Vec<u8>>>,
    wake: Signal<CriticalSectionRawMutex, ()>,
    start: Instant,
}

impl Default for Auto {
    fn default() -> Self {
        Self::new()
    }
}

impl Auto {
    pub fn new() -> Auto {
        Auto {
            log: RefCell::new(Vec::new()),
            silent: Cell::new(false),
            stat: Cell::new(1),
            rule: RefCell::new(Box::new(|_| Answer::Default)),
            inject: RefCell::new(VecDeque::new()),
            wake: Signal::new(),
            start: Instant::now(),
        }
    }

    /// Replaces the rule that changes single answers.
    pub fn rule(&self, f: impl FnMut(&str) -> Answer + 'static) {
        *self.rule.borrow_mut() = Box::new(f);
    }

    /// Sends `bytes` to the host now (between two answers).
    pub fn send(&self, bytes: &[u8]) {
        self.inject.borrow_mut().push_back(bytes.to_vec());
        self.wake.signal(());
    }

    /// Every line so far.
    pub fn lines(&self) -> Vec<String> {
        self.log.borrow().iter().map(|l| l.1.clone()).collect()
    }

    /// Lines from index `from` on.
    pub fn lines_from(&self, from: usize) -> Vec<String> {
        self.lines()[from..].to_vec()
    }

    /// Lines with the milliseconds since the fake started, for messages.
    pub fn dump(&self) -> String {
        self.log
            .borrow()
            .iter()
            .map(|(t, l)| {
                format!(
                    "{:>6} ms {l}",
                    t.saturating_duration_since(self.start).as_millis()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// When line `i` came.
    pub fn at(&self, i: usize) -> Instant {
        self.log.borrow()[i].0
    }

    /// How many lines came so far.
    pub fn count(&self) -> usize {
        self.log.borrow().len()
    }

    /// Waits until `f` holds for the lines (checked every millisecond).
    pub async fn wait_lines(&self, f: impl Fn(&[String]) -> bool) {
        while !f(&self.lines()) {
            Timer::after_millis(1).await;
        }
    }

    /// Answers the host for ever.
    pub async fn serve(&self, mut fake: Fake) -> ! {
        loop {
            let next = self.inject.borrow_mut().pop_front();
            if let Some(bytes) = next {
                fake.send(&bytes).await;
                continue;
            }
            let unit = match select(fake.unit(), self.wake.wait()).await {
                Either::First(u) => u,
                Either::Second(()) => continue,
            };
            let text = String::from_utf8_lossy(&unit);
            let line = text
                .trim_start_matches(['\x1b', '\r', '\n'])
                .trim_end_matches(['\r', '\x1a'])
                .to_string();
            if line.is_empty() {
                continue;
            }
            self.log.borrow_mut().push((Instant::now(), line.clone()));
            if self.silent.get() {
                continue;
            }
            let answer = (self.rule.borrow_mut())(&line);
            let reply = match answer {
                Answer::Default => self.default_answer(&line),
                Answer::Send(b) => b,
                Answer::Nothing => Vec::new(),
            };
            if !reply.is_empty() {
                fake.send(&reply).await;
            }
        }
    }

    /// What a healthy modem answers to `line`.
    pub fn default_answer(&self, line: &str) -> Vec<u8> {
        let ok = "\r\nOK\r\n";
        let after = |urc: String| format!("{ok}\r\n{urc}\r\n").into_bytes();
        let args = |p: &str| -> Vec<String> {
            line[p.len()..].split(',').map(|s| s.to_string()).collect()
        };
        if line == "AT" || line == "ATE0" || line.starts_with("AT+QMTCFG=") {
            ok.into()
        } else if line == "AT+CEREG?" {
            format!("\r\n+CEREG: 0,{}\r\n{ok}", self.stat.get()).into_bytes()
        } else if line.starts_with("AT+QMTOPEN=") {
            after(format!("+QMTOPEN: {},0", args("AT+QMTOPEN=")[0]))
        } else if line.starts_with("AT+QMTCLOSE=") {
            after(format!("+QMTCLOSE: {},0", args("AT+QMTCLOSE=")[0]))
        } else if line == "AT+QMTCONN?" {
            format!("\r\n+QMTCONN: 0,3\r\n{ok}").into_bytes()
        } else if line.starts_with("AT+QMTCONN=") {
            after(format!("+QMTCONN: {},0,0", args("AT+QMTCONN=")[0]))
        } else if line.starts_with("AT+QMTSUB=") {
            let a = args("AT+QMTSUB=");
            let qos = a.last().cloned().unwrap_or_default();
            after(format!("+QMTSUB: {},{},0,{qos}", a[0], a[1]))
        } else if line.starts_with("AT+QMTPUB=") {
            let a = args("AT+QMTPUB=");
            after(format!("+QMTPUB: {},{},0", a[0], a[1]))
        } else if line.starts_with("AT+QMTDISC=") {
            after(format!("+QMTDISC: {},0", args("AT+QMTDISC=")[0]))
        } else if line == "AT+QRST=1" {
            // The module restarts: `OK`, then `RDY` once it is up.
            after("RDY".into())
        } else {
            panic!(
                "auto fake: no default answer to {:?}",
                show(line.as_bytes())
            )
        }
    }
}
