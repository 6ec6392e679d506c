//! The AT trace: every byte on the UART each way, with the instant it is complete on the
//! line, and the faults and application events between them. Always hashed (FNV-1a, to
//! compare runs) and its tail kept (to show with a failure); kept whole on request.

use std::collections::VecDeque;
use std::fmt::Write as _;

use bc26_sim::model::Time;

const TAIL: usize = 48 * 1024;

pub(crate) struct Trace {
    hash: u64,
    tail: VecDeque<u8>,
    full: Option<Vec<u8>>,
    line: String,
}

impl Trace {
    pub(crate) fn new(keep: bool) -> Trace {
        Trace {
            hash: 0xcbf2_9ce4_8422_2325,
            tail: VecDeque::with_capacity(TAIL),
            full: keep.then(Vec::new),
            line: String::new(),
        }
    }

    fn emit(&mut self) {
        for &b in self.line.as_bytes() {
            self.hash = (self.hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        if self.tail.len() + self.line.len() > TAIL {
            let n = (self.tail.len() + self.line.len() - TAIL).min(self.tail.len());
            self.tail.drain(..n);
        }
        self.tail.extend(self.line.as_bytes());
        if let Some(f) = &mut self.full {
            f.extend_from_slice(self.line.as_bytes());
        }
        self.line.clear();
    }

    fn stamp(&mut self, t: Time) {
        let us = t.as_micros();
        let _ = write!(self.line, "{:>8}.{:06} ", us / 1_000_000, us % 1_000_000);
    }

    /// Bytes on the line: `>` host to modem, `<` modem to host.
    pub(crate) fn wire(&mut self, t: Time, dir: u8, bytes: &[u8]) {
        self.stamp(t);
        self.line.push(dir as char);
        self.line.push(' ');
        for &c in bytes {
            match c {
                b'\r' => self.line.push_str("\\r"),
                b'\n' => self.line.push_str("\\n"),
                b'\\' => self.line.push_str("\\\\"),
                0x20..=0x7e => self.line.push(c as char),
                _ => {
                    let _ = write!(self.line, "\\x{c:02x}");
                }
            }
        }
        self.line.push('\n');
        self.emit();
    }

    /// A note: a fault (`!`), the application or the backend (`#`).
    pub(crate) fn note(&mut self, t: Time, what: &str) {
        self.stamp(t);
        self.line.push_str(what);
        self.line.push('\n');
        self.emit();
    }

    pub(crate) fn hash(&self) -> u64 {
        self.hash
    }

    pub(crate) fn tail(&self) -> String {
        let v: Vec<u8> = self.tail.iter().copied().collect();
        let s = String::from_utf8_lossy(&v).into_owned();
        // From the first whole line.
        match s.find('\n') {
            Some(i) if self.tail.len() >= TAIL => s[i + 1..].to_string(),
            _ => s,
        }
    }

    pub(crate) fn full(&self) -> Option<&[u8]> {
        self.full.as_deref()
    }

    pub(crate) fn take_full(&mut self) -> Option<Vec<u8>> {
        self.full.take()
    }
}
