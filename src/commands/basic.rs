//! The general commands a device needs besides the MQTT ones: is the modem
//! there, echo off, is it registered, restart it. Not from the MQTT note:
//! `AT`, `ATE0` and `AT+CEREG?` are the 3GPP TS 27.007 basics every Quectel
//! module answers; `AT+QRST=1` is Quectel's (docs/at-reference.md,
//! "AT+QRST").

use atat::{AtatCmd, AtatResp, InternalError};

use super::{fixed_line as write_line, NoResponse};

/// A bare `AT`: is anybody there? (Also wakes a sleeping UART.) Answers `OK`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Attention;

impl AtatCmd for Attention {
    type Response = NoResponse;
    const MAX_TIMEOUT_MS: u32 = 300;
    fn write(&self, buf: &mut [u8]) -> usize {
        write_line(buf, b"AT")
    }
    fn parse(&self, resp: Result<&[u8], InternalError>) -> Result<NoResponse, atat::Error> {
        resp.map(|_| NoResponse).map_err(atat::Error::from)
    }
}

/// `ATE0`: the modem stops echoing command lines. Answers `OK`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct EchoOff;

impl AtatCmd for EchoOff {
    type Response = NoResponse;
    const MAX_TIMEOUT_MS: u32 = 300;
    fn write(&self, buf: &mut [u8]) -> usize {
        write_line(buf, b"ATE0")
    }
    fn parse(&self, resp: Result<&[u8], InternalError>) -> Result<NoResponse, atat::Error> {
        resp.map(|_| NoResponse).map_err(atat::Error::from)
    }
}

/// `AT+QRST=1`: the module restarts at once (a software reset). It answers
/// `OK` (when it still reads commands), then restarts: every MQTT client is
/// closed and every setting back to its default, and it says `RDY` when it
/// is up again (docs/at-reference.md, "AT+QRST").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ResetModule;

impl AtatCmd for ResetModule {
    type Response = NoResponse;
    const MAX_TIMEOUT_MS: u32 = 300;
    fn write(&self, buf: &mut [u8]) -> usize {
        write_line(buf, b"AT+QRST=1")
    }
    fn parse(&self, resp: Result<&[u8], InternalError>) -> Result<NoResponse, atat::Error> {
        resp.map(|_| NoResponse).map_err(atat::Error::from)
    }
}

/// `AT+CEREG?`: EPS network registration status, `+CEREG: <n>,<stat>[,...]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct QueryRegistration;

/// The answer to `AT+CEREG?`: `+CEREG: <n>,<stat>[,...]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Registration {
    /// The URC setting (`AT+CEREG=<n>`).
    pub n: u8,
    /// 0 not searching, 1 registered (home), 2 searching, 3 denied,
    /// 4 unknown, 5 registered (roaming).
    pub stat: u8,
}
impl AtatResp for Registration {}

impl Registration {
    /// Registered, at home or roaming: the modem can open a data link.
    pub fn registered(&self) -> bool {
        matches!(self.stat, 1 | 5)
    }
}

impl AtatCmd for QueryRegistration {
    type Response = Registration;
    const MAX_TIMEOUT_MS: u32 = 300;
    fn write(&self, buf: &mut [u8]) -> usize {
        write_line(buf, b"AT+CEREG?")
    }
    fn parse(&self, resp: Result<&[u8], InternalError>) -> Result<Registration, atat::Error> {
        let resp = resp.map_err(atat::Error::from)?;
        parse_cereg(resp).ok_or(atat::Error::Parse)
    }
}

/// The last `+CEREG: <n>,<stat>...` line of a response.
fn parse_cereg(resp: &[u8]) -> Option<Registration> {
    let text = core::str::from_utf8(resp).ok()?;
    text.split(['\r', '\n'])
        .filter_map(|l| l.trim().strip_prefix("+CEREG:"))
        .filter_map(|body| {
            let mut f = body.split(',').map(str::trim);
            let n = f.next()?.parse().ok()?;
            let stat = f.next()?.parse().ok()?;
            Some(Registration { n, stat })
        })
        .next_back()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_lines_have_their_bytes() {
        let line = |c: &dyn Fn(&mut [u8]) -> usize| {
            let mut b = [0u8; 16];
            let n = c(&mut b);
            std::string::String::from_utf8(b[..n].to_vec()).unwrap()
        };
        assert_eq!(line(&|b| Attention.write(b)), "AT\r");
        assert_eq!(line(&|b| EchoOff.write(b)), "ATE0\r");
        assert_eq!(line(&|b| QueryRegistration.write(b)), "AT+CEREG?\r");
        assert_eq!(line(&|b| ResetModule.write(b)), "AT+QRST=1\r");
    }

    #[test]
    fn cereg_read_forms() {
        let r = |s: &[u8]| parse_cereg(s);
        assert_eq!(r(b"+CEREG: 0,1"), Some(Registration { n: 0, stat: 1 }));
        assert_eq!(
            r(b"+CEREG: 2,5,\"1A2B\",\"0C3D4E5F\",9"),
            Some(Registration { n: 2, stat: 5 })
        );
        assert_eq!(r(b"+CEREG: 0,2\r\n"), Some(Registration { n: 0, stat: 2 }));
        assert!(!Registration { n: 0, stat: 2 }.registered());
        assert_eq!(r(b"+CEREG: 5"), None);
        assert_eq!(r(b""), None);
    }
}
