//! Bytes from the host: command lines (echo, line editing, dispatch), data mode, and the
//! basic commands (`AT`, `ATE0/1`, `AT+CMEE`).

use super::{Form, Modem, Res};
use crate::at::{hex_decode, int_in, Params};

const MAX_LINE: usize = 4096;
const MAX_DATA: usize = 1024;

impl Modem {
    pub(super) fn on_host(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if self.data.is_some() {
                self.data_byte(b);
                continue;
            }
            if self.echo {
                self.echo_buf.push(b);
            }
            match b {
                b'\r' => {
                    let line = std::mem::take(&mut self.line);
                    self.flush_echo();
                    if !line.is_empty() {
                        self.dispatch(&line);
                    }
                }
                b'\n' => {}
                0x08 | 0x7f => {
                    self.line.pop();
                }
                _ => {
                    if self.line.len() < MAX_LINE {
                        self.line.push(b);
                    }
                }
            }
        }
        self.flush_echo();
    }

    fn data_byte(&mut self, b: u8) {
        let dm = self.data.as_mut().expect("in data mode");
        let id = dm.id;
        let hex = self.clients[id].cfg.send_hex();
        match b {
            0x1a => {
                let dm = self.data.take().expect("in data mode");
                let payload = if hex {
                    match hex_decode(&dm.buf) {
                        Some(p) => p,
                        None => return self.error(),
                    }
                } else {
                    dm.buf
                };
                self.ok();
                self.publish(id, dm.msgid, dm.qos, dm.retain, dm.topic, payload);
            }
            0x1b => {
                // Cancel: OK, nothing is published, no +QMTPUB result.
                self.data = None;
                self.ok();
            }
            _ => {
                let limit = if hex { 2 * MAX_DATA } else { MAX_DATA };
                if dm.buf.len() < limit {
                    dm.buf.push(b);
                    if self.clients[id].cfg.echomode() {
                        self.out.send_echo(&[b]);
                    }
                }
            }
        }
    }

    fn dispatch(&mut self, line: &[u8]) {
        if let Some(prefix) = self.faults().error_on_prefix {
            if line.len() >= prefix.len()
                && line[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
            {
                return self.error();
            }
        }
        if line.len() < 2 || !line[..2].eq_ignore_ascii_case(b"AT") {
            return self.error();
        }
        let rest = &line[2..];
        if rest.is_empty() {
            return self.ok();
        }
        if rest.eq_ignore_ascii_case(b"E0") || rest.eq_ignore_ascii_case(b"E") {
            self.echo = false;
            return self.ok();
        }
        if rest.eq_ignore_ascii_case(b"E1") {
            self.echo = true;
            return self.ok();
        }
        if rest[0] != b'+' {
            return self.error();
        }
        let end = rest
            .iter()
            .position(|&c| c == b'=' || c == b'?')
            .unwrap_or(rest.len());
        let name = String::from_utf8_lossy(&rest[1..end]).to_ascii_uppercase();
        let form = match &rest[end..] {
            [] => Form::Exec,
            b"?" => Form::Read,
            b"=?" => Form::Test,
            [b'=', p @ ..] => Form::Write(p),
            _ => return self.error(),
        };
        let r = match name.as_str() {
            "CMEE" => self.cmd_cmee(form),
            "CEREG" => self.cmd_cereg(form),
            "CGATT" => self.cmd_cgatt(form),
            "QMTCFG" => self.cmd_qmtcfg(form),
            "QMTOPEN" => self.cmd_open(form),
            "QMTCLOSE" => self.cmd_close(form),
            "QMTCONN" => self.cmd_conn(form),
            "QMTDISC" => self.cmd_disc(form),
            "QMTSUB" => self.cmd_sub(form),
            "QMTUNS" => self.cmd_uns(form),
            "QMTPUB" => self.cmd_pub(form),
            _ => Err(()),
        };
        if r.is_err() {
            self.error();
        }
    }

    /// The single integer parameter of a write form, in `lo..=hi`.
    pub(super) fn one_int(p: &[u8], lo: i64, hi: i64) -> Result<i64, ()> {
        let v = Params::new(p).collect_all()?;
        if v.len() != 1 {
            return Err(());
        }
        int_in(v.first(), lo, hi)
    }

    fn cmd_cmee(&mut self, form: Form<'_>) -> Res {
        match form {
            Form::Write(p) => {
                self.cmee = Self::one_int(p, 0, 2)? as u8;
                self.ok();
            }
            Form::Read => self.info(&[format!("+CMEE: {}", self.cmee).into_bytes()]),
            Form::Test => self.info(&[b"+CMEE: (0-2)".to_vec()]),
            Form::Exec => return Err(()),
        }
        Ok(())
    }
}
