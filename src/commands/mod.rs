//! One struct per AT command form of the reference, each implementing
//! [`atat::AtatCmd`]. Constructors check every argument, so a value of these
//! types always makes a well-formed line. The read and test forms, and the
//! settings the driver does not keep track of, can be sent as they are with
//! [`Modem::send`](crate::Modem::send) ([`PublicCmd`]); the write forms the
//! driver owns (open, close, connect, disconnect, subscribe, unsubscribe,
//! publish, the data format and the packet timeout) cannot: use
//! [`MqttClient`](crate::MqttClient).
//!
//! The write forms answer only `OK`; their real outcome arrives later as a
//! deferred result, which [`MqttClient`](crate::MqttClient) waits for.

pub mod basic;
pub mod cfg;
pub mod mqtt;
mod parse;
pub mod power;
mod public;

pub use basic::*;
pub use cfg::*;
pub use mqtt::*;
pub use power::{
    ActiveTime, EdrxCycle, EdrxValues, PagingWindow, PeriodicTau, PsmSettings, PsmTimers, QueryPsm,
    QueryRegistrationTimers, QuerySignalling, QuerySleep, ReadEdrx, RegistrationTimers, SetEdrx,
    SetReleaseAssistance, Signalling, SleepMode,
};
pub(crate) use public::{check_line, put};
pub use public::{Custom, PublicCmd};

use atat::{AtatResp, InternalError};
use heapless::String;

/// The modem answered only `OK`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct NoResponse;
impl AtatResp for NoResponse {}

/// Longest text kept from a test command's answer.
pub const TEST_RESPONSE_LEN: usize = 512;

/// The answer to a test command (`AT+QMTxxx=?`): the modem's lines as text, one
/// per line (`+QMTOPEN: (0-5),"<host_name>",<port>`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TestResponse {
    text: String<TEST_RESPONSE_LEN>,
}
impl AtatResp for TestResponse {}

impl TestResponse {
    /// The lines, without line ends.
    pub fn lines(&self) -> impl Iterator<Item = &str> {
        self.text.split("\r\n").filter(|l| !l.is_empty())
    }

    /// The whole answer, lines separated by CR LF.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// Writes a command line into a buffer. Lines are bounded by construction of
/// the command values; a buffer that is still too small gets a truncated line
/// and `overflow`, which the channel refuses to send.
pub(crate) struct Line<'b> {
    buf: &'b mut [u8],
    pos: usize,
    overflow: bool,
}

impl<'b> Line<'b> {
    pub(crate) fn new(buf: &'b mut [u8]) -> Self {
        Self {
            buf,
            pos: 0,
            overflow: false,
        }
    }

    // Not inlined: called from every command's `write`, a call is smaller
    // than its bounds check and copy.
    #[inline(never)]
    pub(crate) fn raw(&mut self, s: &[u8]) -> &mut Self {
        let end = self.pos + s.len();
        if end > self.buf.len() {
            self.overflow = true;
        } else {
            self.buf[self.pos..end].copy_from_slice(s);
            self.pos = end;
        }
        self
    }

    /// A number's decimal digits (every number on a command line is
    /// unsigned and fits 32 bits).
    // Not inlined: a call is smaller than the separator and the digits.
    #[inline(never)]
    pub(crate) fn num(&mut self, n: u32) -> &mut Self {
        self.sep();
        // The digits from the last; ten hold any u32 (no bounds check).
        let mut tmp = [0u8; 10];
        let mut v = n;
        let mut first = 0;
        for (i, d) in tmp.iter_mut().enumerate().rev() {
            *d = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                first = i;
                break;
            }
        }
        self.raw(&tmp[first..])
    }

    pub(crate) fn comma(&mut self) -> &mut Self {
        self.raw(b",")
    }

    pub(crate) fn quoted(&mut self, s: &[u8]) -> &mut Self {
        self.sep();
        self.raw(b"\"").raw(s).raw(b"\"")
    }

    /// Values are separated by commas: a number or a quoted string that
    /// does not follow the command's `=` (or a comma written already) gets
    /// one before it. The lines' writers name no comma of their own.
    fn sep(&mut self) {
        let last = self.buf.get(self.pos.wrapping_sub(1));
        if last.is_some_and(|&b| b != b'=' && b != b',') {
            self.raw(b",");
        }
    }

    /// Ends the line with CR and returns its length (0 if it did not fit).
    #[inline(never)]
    pub(crate) fn finish(&mut self) -> usize {
        self.raw(b"\r");
        if self.overflow {
            0
        } else {
            self.pos
        }
    }
}

/// A command line of fixed text (`line`, without its CR) into `buf`: its
/// length, 0 if it does not fit. Not inlined: one copy for every command
/// whose line never changes.
#[inline(never)]
pub(crate) fn fixed_line(buf: &mut [u8], line: &[u8]) -> usize {
    Line::new(buf).raw(line).finish()
}

pub(crate) fn parse_error(e: InternalError<'_>) -> atat::Error {
    e.into()
}

/// Implements a test command (`AT+<name>=?`) whose answer is kept as text.
macro_rules! test_command {
    ($(#[$doc:meta])* $name:ident, $at:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
        #[cfg_attr(feature = "defmt", derive(defmt::Format))]
        pub struct $name;

        impl atat::AtatCmd for $name {
            type Response = $crate::commands::TestResponse;
            const MAX_TIMEOUT_MS: u32 = 300;
            fn write(&self, buf: &mut [u8]) -> usize {
                $crate::commands::fixed_line(buf, concat!("AT", $at, "=?").as_bytes())
            }
            fn parse(
                &self,
                resp: Result<&[u8], atat::InternalError>,
            ) -> Result<Self::Response, atat::Error> {
                let bytes = resp.map_err($crate::commands::parse_error)?;
                let text = core::str::from_utf8(bytes).map_err(|_| atat::Error::Parse)?;
                let mut out = heapless::String::new();
                // Keep what fits; the lines are short in every known firmware.
                for c in text.chars() {
                    if out.push(c).is_err() {
                        break;
                    }
                }
                Ok($crate::commands::TestResponse { text: out })
            }
        }
    };
}
pub(crate) use test_command;

/// Implements `AtatCmd` for a write command that answers only `OK`.
macro_rules! ok_command {
    ($name:ident $(<$lt:lifetime>)?, |$self:ident, $line:ident| $body:block) => {
        impl$(<$lt>)? $name$(<$lt>)? {
            /// Puts the line's text (without its CR) on `l`: a caller with
            /// several commands makes and finishes one `Line`.
            #[allow(dead_code)]
            pub(crate) fn put(&$self, $line: &mut $crate::commands::Line<'_>) {
                $body
            }
        }

        impl$(<$lt>)? atat::AtatCmd for $name$(<$lt>)? {
            type Response = $crate::commands::NoResponse;
            const MAX_TIMEOUT_MS: u32 = 300;
            fn write(&$self, buf: &mut [u8]) -> usize {
                let mut l = $crate::commands::Line::new(buf);
                $self.put(&mut l);
                l.finish()
            }
            fn parse(
                &self,
                resp: Result<&[u8], atat::InternalError>,
            ) -> Result<Self::Response, atat::Error> {
                resp.map_err($crate::commands::parse_error)?;
                Ok($crate::commands::NoResponse)
            }
        }
    };
}
pub(crate) use ok_command;
