//! The few modem commands the application sends besides the MQTT ones, as
//! [`AtatCmd`] implementations for [`Modem::send`](bc26_mqtt::Modem::send).

use bc26_mqtt::atat::{self, AtatCmd, AtatResp, InternalError};

/// The modem answered only `OK`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Ok;
impl AtatResp for Ok {}

fn write_line(buf: &mut [u8], line: &[u8]) -> usize {
    buf[..line.len()].copy_from_slice(line);
    line.len()
}

/// A bare `AT`: is anybody there? (Also wakes a sleeping UART.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct At;

impl AtatCmd for At {
    type Response = Ok;
    /// The reference's maximum response time for `AT`.
    const MAX_TIMEOUT_MS: u32 = 300;
    fn write(&self, buf: &mut [u8]) -> usize {
        write_line(buf, b"AT\r")
    }
    fn parse(&self, resp: Result<&[u8], InternalError>) -> Result<Ok, atat::Error> {
        resp.map(|_| Ok).map_err(atat::Error::from)
    }
}

/// `ATE0`: the modem stops echoing command lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EchoOff;

impl AtatCmd for EchoOff {
    type Response = Ok;
    const MAX_TIMEOUT_MS: u32 = 300;
    fn write(&self, buf: &mut [u8]) -> usize {
        write_line(buf, b"ATE0\r")
    }
    fn parse(&self, resp: Result<&[u8], InternalError>) -> Result<Ok, atat::Error> {
        resp.map(|_| Ok).map_err(atat::Error::from)
    }
}

/// `AT+CEREG?`: EPS network registration status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GetRegistration;

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

impl AtatCmd for GetRegistration {
    type Response = Registration;
    const MAX_TIMEOUT_MS: u32 = 300;
    fn write(&self, buf: &mut [u8]) -> usize {
        write_line(buf, b"AT+CEREG?\r")
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
