//! The cellular network as the host sees it: registration (`AT+CEREG`, set by the test with
//! `SimHandle::set_registration`) and attachment (`AT+CGATT`).

use super::{Form, Modem, Res};

/// Location fields of `+CEREG` with `<n>` = 2: tracking area code, cell id, access
/// technology 9 (E-UTRAN NB-S1). Fixed values.
const LOCATION: &str = ",\"1A2D\",\"0CF5E9A1\",9";

pub(crate) struct Network {
    /// Registration status the network gives (`<stat>`: 0 not registered, 1 home, 2 searching,
    /// 3 denied, 4 unknown, 5 roaming).
    stat: u8,
    /// `AT+CEREG=<n>`: 0 no URC, 1 `+CEREG: <stat>`, 2 with the location.
    n: u8,
    /// `AT+CGATT=0` detached the module (registration 0 until `AT+CGATT=1`).
    detached: bool,
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

    /// `+CEREG: ...` without the prefix's `<n>`: `<stat>[,<tac>,<ci>,<AcT>]`.
    fn stat_fields(&self) -> String {
        let loc = if self.n == 2 && self.registered() {
            LOCATION
        } else {
            ""
        };
        format!("{}{loc}", self.stat())
    }

    /// After a reboot: URCs off, attached (the network's status stays).
    pub(crate) fn reset(&mut self) {
        self.n = 0;
        self.detached = false;
    }
}

impl Modem {
    /// Change the registration (`stat` from the network, or `detached` by the host), with its
    /// consequences: the `+CEREG: <stat>` URC when enabled and the status changed, and, on
    /// losing registration, every link dropped with `+QMTSTAT: <id>,2`.
    pub(super) fn set_network(&mut self, stat: Option<u8>, detached: Option<bool>) {
        let before = (self.net.stat(), self.net.registered());
        if let Some(s) = stat {
            self.net.stat = s;
        }
        if let Some(d) = detached {
            self.net.detached = d;
        }
        if self.net.stat() != before.0 && self.net.n > 0 && !self.booting() {
            self.urc(format!("+CEREG: {}", self.net.stat_fields()).into_bytes());
        }
        if before.1 && !self.net.registered() {
            for id in 0..self.clients.len() {
                if self.clients[id].st.has_link() {
                    self.clients[id].drop_link();
                    self.urc(format!("+QMTSTAT: {id},2").into_bytes());
                }
            }
        }
    }

    pub(super) fn cmd_cereg(&mut self, form: Form<'_>) -> Res {
        match form {
            Form::Read => {
                let l = format!("+CEREG: {},{}", self.net.n, self.net.stat_fields());
                self.info(&[l.into_bytes()]);
            }
            Form::Test => self.info(&[b"+CEREG: (0-2)".to_vec()]),
            Form::Write(p) => {
                self.net.n = Self::one_int(p, 0, 2)? as u8;
                self.ok();
            }
            Form::Exec => return Err(()),
        }
        Ok(())
    }

    pub(super) fn cmd_cgatt(&mut self, form: Form<'_>) -> Res {
        match form {
            Form::Read => {
                let l = format!("+CGATT: {}", u8::from(self.net.registered()));
                self.info(&[l.into_bytes()]);
            }
            Form::Test => self.info(&[b"+CGATT: (0,1)".to_vec()]),
            Form::Write(p) => {
                let attach = Self::one_int(p, 0, 1)? == 1;
                self.ok();
                self.set_network(None, Some(!attach));
            }
            Form::Exec => return Err(()),
        }
        Ok(())
    }
}
