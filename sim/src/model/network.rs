//! The cellular network as the host sees it: registration (`AT+CEREG`, set by the test with
//! `SimHandle::set_registration`, its URC with the location and the PSM timers the network
//! granted) and attachment (`AT+CGATT`). Only this file changes it.

use crate::model::power::timers::bits;

/// Location fields of `+CEREG` with `<n>` = 2: tracking area code, cell id, access
/// technology 9 (E-UTRAN NB-S1). Fixed values.
const LOCATION: &str = ",\"1A2D\",\"0CF5E9A1\",9";

#[derive(Debug)]
pub(crate) struct Network {
    /// Registration status the network gives (`<stat>`: 0 not registered, 1 home, 2 searching,
    /// 3 denied, 4 unknown, 5 roaming).
    stat: u8,
    /// `AT+CEREG=<n>`: 0 no URC, 1 `+CEREG: <stat>`, 2 with the location, 3 with the reject
    /// cause (none is modelled: as 2), 4 with the PSM timers, 5 with both.
    n: u8,
    /// `AT+CGATT=0` detached the module (registration 0 until `AT+CGATT=1`).
    detached: bool,
}

/// What a change of registration means for the rest of the modem.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Change {
    /// The `+CEREG` URC to send (without its framing), if enabled and the status changed.
    pub(crate) urc: Option<Vec<u8>>,
    /// Registration was lost: every link drops.
    pub(crate) lost: bool,
}

impl Network {
    pub(crate) fn new() -> Self {
        Network {
            stat: 1,
            n: 0,
            detached: false,
        }
    }

    /// The status the host sees.
    fn stat(&self) -> u8 {
        if self.detached {
            0
        } else {
            self.stat
        }
    }

    pub(crate) fn registered(&self) -> bool {
        matches!(self.stat(), 1 | 5)
    }

    /// `+CEREG: ...` without the prefix's `<n>`: `<stat>[,<tac>,<ci>,<AcT>[,,,<T3324>,<T3412>]]`
    /// (the timers `(T3412, T3324)` are given when granted).
    fn stat_fields(&self, timers: Option<(u8, u8)>) -> String {
        if self.n < 2 || !self.registered() {
            return format!("{}", self.stat());
        }
        match timers.filter(|_| self.n >= 4) {
            Some((tau, act)) => format!(
                "{}{LOCATION},,,\"{}\",\"{}\"",
                self.stat(),
                bits(act, 8),
                bits(tau, 8)
            ),
            None => format!("{}{LOCATION}", self.stat()),
        }
    }

    /// The answer to `AT+CEREG?`.
    pub(crate) fn cereg_line(&self, timers: Option<(u8, u8)>) -> Vec<u8> {
        format!("+CEREG: {},{}", self.n, self.stat_fields(timers)).into_bytes()
    }

    /// `AT+CEREG=<n>` (0-5).
    pub(crate) fn set_urc_mode(&mut self, n: u8) {
        self.n = n.min(5);
    }

    /// `+CEREG` URCs carry the PSM timers (`<n>` 4 or 5).
    pub(crate) fn reports_timers(&self) -> bool {
        self.n >= 4
    }

    /// The URC for new PSM timers (`<n>` 4 or 5, registered), if any.
    pub(crate) fn timers_urc(&self, timers: Option<(u8, u8)>) -> Option<Vec<u8>> {
        (self.reports_timers() && self.registered())
            .then(|| format!("+CEREG: {}", self.stat_fields(timers)).into_bytes())
    }

    /// A new status from the network (`stat`) or the host (`detached`), and what it means.
    pub(crate) fn set(
        &mut self,
        stat: Option<u8>,
        detached: Option<bool>,
        timers: Option<(u8, u8)>,
    ) -> Change {
        let before = (self.stat(), self.registered());
        if let Some(s) = stat {
            self.stat = s;
        }
        if let Some(d) = detached {
            self.detached = d;
        }
        Change {
            urc: (self.stat() != before.0 && self.n > 0)
                .then(|| format!("+CEREG: {}", self.stat_fields(timers)).into_bytes()),
            lost: before.1 && !self.registered(),
        }
    }

    /// After a reboot: URCs off, attached (the network's status stays).
    pub(crate) fn reset(&mut self) {
        self.n = 0;
        self.detached = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn losing_registration_is_reported_once_and_the_urc_follows_the_mode() {
        let mut n = Network::new();
        assert!(n.registered());
        assert_eq!(
            n.set(Some(2), None, None),
            Change {
                urc: None,
                lost: true
            }
        );
        assert_eq!(n.set(Some(3), None, None), Change::default());
        n.set_urc_mode(2);
        assert_eq!(n.cereg_line(None), b"+CEREG: 2,3");
        let c = n.set(Some(5), None, None);
        assert_eq!(
            c.urc.as_deref(),
            Some(&b"+CEREG: 5,\"1A2D\",\"0CF5E9A1\",9"[..])
        );
        assert!(!c.lost);
        assert!(
            n.set(None, Some(true), None).lost,
            "detached: registration lost"
        );
        assert_eq!(n.cereg_line(None), b"+CEREG: 2,0");
        n.reset();
        assert!(n.registered());
        assert_eq!(n.cereg_line(None), b"+CEREG: 0,5");
    }

    #[test]
    fn n_4_and_5_add_the_granted_timers_active_time_first_while_registered() {
        let mut n = Network::new();
        let t = Some((0b001_00001, 0b000_00101));
        n.set_urc_mode(4);
        assert_eq!(
            n.cereg_line(t),
            b"+CEREG: 4,1,\"1A2D\",\"0CF5E9A1\",9,,,\"00000101\",\"00100001\""
        );
        assert_eq!(n.cereg_line(None), b"+CEREG: 4,1,\"1A2D\",\"0CF5E9A1\",9");
        assert_eq!(
            n.timers_urc(t).as_deref(),
            Some(&b"+CEREG: 1,\"1A2D\",\"0CF5E9A1\",9,,,\"00000101\",\"00100001\""[..])
        );
        n.set_urc_mode(3);
        assert_eq!(n.cereg_line(t), b"+CEREG: 3,1,\"1A2D\",\"0CF5E9A1\",9");
        assert_eq!(n.timers_urc(t), None, "n = 3 has no timers");
        n.set_urc_mode(5);
        let c = n.set(Some(2), None, t);
        assert_eq!(
            c.urc.as_deref(),
            Some(&b"+CEREG: 2"[..]),
            "not registered: stat alone"
        );
        assert_eq!(n.timers_urc(t), None);
    }
}
