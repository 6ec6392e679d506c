//! The AT parser: one command line (without its CR) to a typed [`Command`], or `Err` for
//! anything the modem answers `ERROR` to whatever its state (an unknown command, a form the
//! command does not have, a parameter out of range or malformed, a topic MQTT forbids).
//! What depends on the modem's state (is the client connected? is the inline message hex?)
//! is checked when the command runs (`modem.rs`).

use crate::model::at::{int_in, string, Param, Params, Refused as Bad};
use crate::model::packet::{topic_filter_ok, topic_name_ok};
use crate::model::power::timers::parse_bits;
use crate::model::power::{EdrxRequest, PsmRequest};
use crate::model::qmtcfg::Opt;

/// A parameter's forms: set, query, test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Access<T> {
    Write(T),
    Read,
    Test,
}

/// One command line, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Command {
    /// `AT`.
    At,
    /// `AT+QRST=1`: restart the module.
    Qrst,
    /// `ATE0` (or `ATE`), `ATE1`.
    Echo(bool),
    /// `AT+CMEE`: 0-2.
    Cmee(Access<u8>),
    /// `AT+CEREG`: 0-5.
    Cereg(Access<u8>),
    /// `AT+CGATT`: 0 detach, 1 attach.
    Cgatt(Access<bool>),
    /// `AT+CPSMS=<mode>[,,,[<T3412>][,<T3324>]]`.
    Cpsms(Access<PsmRequest>),
    /// `AT+CEDRXS=<mode>[,5[,<eDRX>]]`.
    Cedrxs(Access<EdrxRequest>),
    /// `AT+CEDRXRDP` (execution), or its test form (`Access::Test`).
    Cedrxrdp(Access<()>),
    /// `AT+QSCLK`: 0-2.
    Qsclk(Access<u8>),
    /// `AT+QRELLOCK` (execution only).
    Qrellock,
    /// `AT+CSCON`: 0, 1.
    Cscon(Access<bool>),
    /// `AT+QNBIOTEVENT=<enable>,1` (the PSM event; the only one documented).
    Qnbiotevent(Access<bool>),
    /// `AT+QNBIOTRAI`: 0-2.
    Qnbiotrai(Access<u8>),
    /// `AT+QATWAKEUP`: 0, 1.
    Qatwakeup(Access<bool>),
    /// `AT+QMTCFG=?`.
    QmtcfgTest,
    /// `AT+QMTCFG="<option>",<id>[,<values>]`: a query when `args` is empty.
    Qmtcfg {
        opt: Opt,
        id: usize,
        args: Vec<Param>,
    },
    /// The test form of a QMT command other than QMTCFG: its one line, then `OK`.
    QmtTest(&'static [u8]),
    /// `AT+QMTOPEN?`.
    QmtopenRead,
    /// `AT+QMTOPEN=<id>,"<host>",<port>`.
    Qmtopen { id: usize, host: Vec<u8>, port: u16 },
    /// `AT+QMTCLOSE=<id>`.
    Qmtclose(usize),
    /// `AT+QMTCONN?`.
    QmtconnRead,
    /// `AT+QMTCONN=<id>,"<clientID>"[,"<username>"[,"<password>"]]`.
    Qmtconn {
        id: usize,
        client_id: String,
        username: Option<String>,
        password: Option<String>,
    },
    /// `AT+QMTDISC=<id>`.
    Qmtdisc(usize),
    /// `AT+QMTSUB=<id>,<msgID>,"<topic>",<qos>[,...]`.
    Qmtsub {
        id: usize,
        msgid: u16,
        filters: Vec<(String, u8)>,
    },
    /// `AT+QMTUNS=<id>,<msgID>,"<topic>"[,...]`.
    Qmtuns {
        id: usize,
        msgid: u16,
        filters: Vec<String>,
    },
    /// `AT+QMTPUB=<id>,<msgID>,<qos>,<retain>,"<topic>"[,"<msg>"]`: `msg` is what lies
    /// between the first and the last quote of the rest (quotes and commas inside are kept),
    /// still text or hex digits as the client's format says; `None`: data mode.
    Qmtpub {
        id: usize,
        msgid: u16,
        qos: u8,
        retain: bool,
        topic: String,
        msg: Option<Vec<u8>>,
    },
}

/// The form of a `AT+<name>...` command.
enum Form<'a> {
    Exec,
    Read,
    Test,
    Write(&'a [u8]),
}

fn ok<T>(r: Result<T, ()>) -> Result<T, Bad> {
    r.map_err(|_| Bad)
}

fn params(p: &[u8]) -> Result<Vec<Param>, Bad> {
    ok(Params::new(p).collect_all())
}

fn client_id(p: Option<&Param>) -> Result<usize, Bad> {
    ok(int_in(p, 0, 5)).map(|v| v as usize)
}

/// A string parameter that must be UTF-8 (client ids, credentials, topics).
fn utf8(p: Option<&Param>) -> Result<String, Bad> {
    String::from_utf8(ok(string(p))?).map_err(|_| Bad)
}

/// A topic of at most 255 bytes that MQTT allows as a name (`name`) or as a filter.
fn topic(p: Option<&Param>, name: bool) -> Result<String, Bad> {
    let t = utf8(p)?;
    let allowed = if name {
        topic_name_ok(&t)
    } else {
        topic_filter_ok(&t)
    };
    if t.len() > 255 || !allowed {
        return Err(Bad);
    }
    Ok(t)
}

/// The single integer parameter of a write form, in `lo..=hi`.
fn one_int(p: &[u8], lo: i64, hi: i64) -> Result<i64, Bad> {
    match params(p)?.as_slice() {
        [v] => ok(int_in(Some(v), lo, hi)),
        _ => Err(Bad),
    }
}

/// A parameter with write, read and test forms; the write's value in `lo..=hi`.
fn access(form: Form<'_>, lo: i64, hi: i64) -> Result<Access<i64>, Bad> {
    Ok(match form {
        Form::Write(p) => Access::Write(one_int(p, lo, hi)?),
        Form::Read => Access::Read,
        Form::Test => Access::Test,
        Form::Exec => return Err(Bad),
    })
}

/// The test form answers `test`; the write form gives its parameters; others are refused.
fn write_or_test(form: Form<'_>, test: &'static [u8]) -> Result<Result<Vec<Param>, Command>, Bad> {
    match form {
        Form::Test => Ok(Err(Command::QmtTest(test))),
        Form::Write(p) => Ok(Ok(params(p)?)),
        Form::Exec | Form::Read => Err(Bad),
    }
}

/// Parse one command line.
pub(crate) fn parse(line: &[u8]) -> Result<Command, Bad> {
    if line.len() < 2 || !line[..2].eq_ignore_ascii_case(b"AT") {
        return Err(Bad);
    }
    let rest = &line[2..];
    if rest.is_empty() {
        return Ok(Command::At);
    }
    if rest.eq_ignore_ascii_case(b"E0") || rest.eq_ignore_ascii_case(b"E") {
        return Ok(Command::Echo(false));
    }
    if rest.eq_ignore_ascii_case(b"E1") {
        return Ok(Command::Echo(true));
    }
    let Some(body) = rest.strip_prefix(b"+") else {
        return Err(Bad);
    };
    let end = body
        .iter()
        .position(|&c| c == b'=' || c == b'?')
        .unwrap_or(body.len());
    let form = match &body[end..] {
        [] => Form::Exec,
        b"?" => Form::Read,
        b"=?" => Form::Test,
        [b'=', p @ ..] => Form::Write(p),
        _ => return Err(Bad),
    };
    let name = body[..end].to_ascii_uppercase();
    match name.as_slice() {
        b"CMEE" => Ok(Command::Cmee(narrow(access(form, 0, 2)?))),
        b"CEREG" => Ok(Command::Cereg(narrow(access(form, 0, 5)?))),
        b"CGATT" => Ok(Command::Cgatt(flag(access(form, 0, 1)?))),
        b"CPSMS" => cpsms(form),
        b"CEDRXS" => cedrxs(form),
        b"CEDRXRDP" => match form {
            Form::Exec => Ok(Command::Cedrxrdp(Access::Write(()))),
            Form::Test => Ok(Command::Cedrxrdp(Access::Test)),
            _ => Err(Bad),
        },
        b"QSCLK" => Ok(Command::Qsclk(narrow(access(form, 0, 2)?))),
        b"QRST" => match form {
            Form::Write(p) => one_int(p, 1, 1).map(|_| Command::Qrst),
            _ => Err(Bad),
        },
        b"QRELLOCK" => match form {
            Form::Exec => Ok(Command::Qrellock),
            _ => Err(Bad),
        },
        b"CSCON" => Ok(Command::Cscon(flag(access(form, 0, 1)?))),
        b"QNBIOTEVENT" => qnbiotevent(form),
        b"QNBIOTRAI" => Ok(Command::Qnbiotrai(narrow(access(form, 0, 2)?))),
        b"QATWAKEUP" => Ok(Command::Qatwakeup(flag(access(form, 0, 1)?))),
        b"QMTCFG" => qmtcfg(form),
        b"QMTOPEN" => qmtopen(form),
        b"QMTCLOSE" => {
            single_id(form, b"+QMTCLOSE: (0-5)").map(|r| r.map_or_else(|t| t, Command::Qmtclose))
        }
        b"QMTCONN" => qmtconn(form),
        b"QMTDISC" => {
            single_id(form, b"+QMTDISC: (0-5)").map(|r| r.map_or_else(|t| t, Command::Qmtdisc))
        }
        b"QMTSUB" => qmtsub(form),
        b"QMTUNS" => qmtuns(form),
        b"QMTPUB" => qmtpub(form),
        _ => Err(Bad),
    }
}

fn narrow(a: Access<i64>) -> Access<u8> {
    match a {
        Access::Write(v) => Access::Write(v as u8),
        Access::Read => Access::Read,
        Access::Test => Access::Test,
    }
}

/// A 0/1 parameter as a flag.
fn flag(a: Access<i64>) -> Access<bool> {
    match a {
        Access::Write(v) => Access::Write(v == 1),
        Access::Read => Access::Read,
        Access::Test => Access::Test,
    }
}

/// A quoted timer bit string of `n` characters; an empty parameter or none is `None`.
fn timer_bits(p: Option<&Param>, n: usize) -> Result<Option<u8>, Bad> {
    match p {
        None | Some(Param::Empty) => Ok(None),
        Some(Param::Str(s)) => parse_bits(s, n).map(Some).ok_or(Bad),
        Some(Param::Int(_)) => Err(Bad),
    }
}

/// `AT+CPSMS=<mode>[,<RAU>[,<READY>[,<T3412>[,<T3324>]]]]`: the two GPRS timers do not apply
/// to NB-IoT and must be left empty.
fn cpsms(form: Form<'_>) -> Result<Command, Bad> {
    let p = match form {
        Form::Write(p) => p,
        Form::Read => return Ok(Command::Cpsms(Access::Read)),
        Form::Test => return Ok(Command::Cpsms(Access::Test)),
        Form::Exec => return Err(Bad),
    };
    let v = params(p)?;
    if v.is_empty() || v.len() > 5 || v.iter().skip(1).take(2).any(|x| *x != Param::Empty) {
        return Err(Bad);
    }
    Ok(Command::Cpsms(Access::Write(PsmRequest {
        mode: ok(int_in(v.first(), 0, 2))? as u8,
        tau: timer_bits(v.get(3), 8)?,
        act: timer_bits(v.get(4), 8)?,
    })))
}

/// `AT+CEDRXS=<mode>[,<AcT-type>[,<eDRX>]]`: the access technology, if given, is 5 (NB-S1).
fn cedrxs(form: Form<'_>) -> Result<Command, Bad> {
    let p = match form {
        Form::Write(p) => p,
        Form::Read => return Ok(Command::Cedrxs(Access::Read)),
        Form::Test => return Ok(Command::Cedrxs(Access::Test)),
        Form::Exec => return Err(Bad),
    };
    let v = params(p)?;
    if v.is_empty() || v.len() > 3 {
        return Err(Bad);
    }
    if !matches!(v.get(1), None | Some(Param::Empty) | Some(Param::Int(5))) {
        return Err(Bad);
    }
    Ok(Command::Cedrxs(Access::Write(EdrxRequest {
        mode: ok(int_in(v.first(), 0, 3))? as u8,
        value: timer_bits(v.get(2), 4)?,
    })))
}

/// `AT+QNBIOTEVENT=<enable>,<event>`: the event is 1 (PSM state).
fn qnbiotevent(form: Form<'_>) -> Result<Command, Bad> {
    let p = match form {
        Form::Write(p) => p,
        Form::Read => return Ok(Command::Qnbiotevent(Access::Read)),
        Form::Test => return Ok(Command::Qnbiotevent(Access::Test)),
        Form::Exec => return Err(Bad),
    };
    match params(p)?.as_slice() {
        [enable, event] => {
            ok(int_in(Some(event), 1, 1))?;
            Ok(Command::Qnbiotevent(Access::Write(
                ok(int_in(Some(enable), 0, 1))? == 1,
            )))
        }
        _ => Err(Bad),
    }
}

fn qmtcfg(form: Form<'_>) -> Result<Command, Bad> {
    let p = match form {
        Form::Test => return Ok(Command::QmtcfgTest),
        Form::Write(p) => p,
        Form::Exec | Form::Read => return Err(Bad),
    };
    let mut v = params(p)?;
    let opt = Opt::by_name(&ok(string(v.first()))?).ok_or(Bad)?;
    let id = client_id(v.get(1))?;
    let args = v.split_off(2);
    Ok(Command::Qmtcfg { opt, id, args })
}

fn qmtopen(form: Form<'_>) -> Result<Command, Bad> {
    if let Form::Read = form {
        return Ok(Command::QmtopenRead);
    }
    let v = match write_or_test(form, b"+QMTOPEN: (0-5),\"<host_name>\",<port>")? {
        Ok(v) => v,
        Err(test) => return Ok(test),
    };
    let [id, host, port] = v.as_slice() else {
        return Err(Bad);
    };
    let host = ok(string(Some(host)))?;
    if host.is_empty() || host.len() > 100 {
        return Err(Bad);
    }
    Ok(Command::Qmtopen {
        id: client_id(Some(id))?,
        host,
        port: ok(int_in(Some(port), 1, 65535))? as u16,
    })
}

/// CLOSE and DISC: `Ok(Ok(id))` for a write, `Ok(Err(test))` for the test form.
fn single_id(form: Form<'_>, test: &'static [u8]) -> Result<Result<usize, Command>, Bad> {
    match write_or_test(form, test)? {
        Ok(v) if v.len() == 1 => client_id(v.first()).map(Ok),
        Ok(_) => Err(Bad),
        Err(t) => Ok(Err(t)),
    }
}

fn qmtconn(form: Form<'_>) -> Result<Command, Bad> {
    if let Form::Read = form {
        return Ok(Command::QmtconnRead);
    }
    let test = b"+QMTCONN: (0-5),\"<clientID>\"[,\"<username>\"[,\"<password>\"]]";
    let v = match write_or_test(form, test)? {
        Ok(v) => v,
        Err(test) => return Ok(test),
    };
    if !(2..=4).contains(&v.len()) {
        return Err(Bad);
    }
    Ok(Command::Qmtconn {
        id: client_id(v.first())?,
        client_id: utf8(v.get(1))?,
        username: v.get(2).map(|p| utf8(Some(p))).transpose()?,
        password: v.get(3).map(|p| utf8(Some(p))).transpose()?,
    })
}

fn qmtsub(form: Form<'_>) -> Result<Command, Bad> {
    let test = b"+QMTSUB: (0-5),<msgID>,\"<topic>\",<qos>[,\"<topic>\",<qos>...]";
    let v = match write_or_test(form, test)? {
        Ok(v) => v,
        Err(test) => return Ok(test),
    };
    if v.len() < 4 || v.len() % 2 != 0 {
        return Err(Bad);
    }
    let filters = v[2..]
        .chunks(2)
        .map(|pair| {
            Ok((
                topic(pair.first(), false)?,
                ok(int_in(pair.get(1), 0, 2))? as u8,
            ))
        })
        .collect::<Result<Vec<_>, Bad>>()?;
    Ok(Command::Qmtsub {
        id: client_id(v.first())?,
        msgid: ok(int_in(v.get(1), 1, 65535))? as u16,
        filters,
    })
}

fn qmtuns(form: Form<'_>) -> Result<Command, Bad> {
    let v = match write_or_test(form, b"+QMTUNS: (0-5),<msgID>,\"<topic>\"")? {
        Ok(v) => v,
        Err(test) => return Ok(test),
    };
    if v.len() < 3 {
        return Err(Bad);
    }
    let filters = v[2..]
        .iter()
        .map(|t| topic(Some(t), false))
        .collect::<Result<Vec<_>, Bad>>()?;
    Ok(Command::Qmtuns {
        id: client_id(v.first())?,
        msgid: ok(int_in(v.get(1), 1, 65535))? as u16,
        filters,
    })
}

fn qmtpub(form: Form<'_>) -> Result<Command, Bad> {
    let p = match form {
        Form::Test => {
            return Ok(Command::QmtTest(
                b"+QMTPUB: (0-5),<msgID>,<qos>,<retain>,\"<topic>\",\"<msg>\"",
            ))
        }
        Form::Write(p) => p,
        Form::Exec | Form::Read => return Err(Bad),
    };
    let mut ps = Params::new(p);
    let mut v = Vec::with_capacity(5);
    for _ in 0..5 {
        v.push(ok(ps.next_param().ok_or(Bad)?)?);
    }
    let id = client_id(v.first())?;
    let msgid = ok(int_in(v.get(1), 0, 65535))? as u16;
    let qos = ok(int_in(v.get(2), 0, 2))? as u8;
    let retain = ok(int_in(v.get(3), 0, 1))? == 1;
    let topic = topic(v.get(4), true)?;
    if (qos == 0) != (msgid == 0) {
        return Err(Bad);
    }
    let msg = if ps.at_end() {
        None
    } else {
        let rest = crate::model::at::trim(ps.rest());
        match rest {
            [b'"', msg @ .., b'"'] => Some(msg.to_vec()),
            _ => return Err(Bad),
        }
    };
    Ok(Command::Qmtpub {
        id,
        msgid,
        qos,
        retain,
        topic,
        msg,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(line: &str) -> Result<Command, Bad> {
        parse(line.as_bytes())
    }

    #[test]
    fn basic_commands_parse_in_any_case() {
        assert_eq!(p("AT"), Ok(Command::At));
        assert_eq!(p("at"), Ok(Command::At));
        assert_eq!(p("ATE"), Ok(Command::Echo(false)));
        assert_eq!(p("ate1"), Ok(Command::Echo(true)));
        assert_eq!(p("AT+CMEE=2"), Ok(Command::Cmee(Access::Write(2))));
        assert_eq!(p("AT+cmee?"), Ok(Command::Cmee(Access::Read)));
        assert_eq!(p("AT+CEREG=?"), Ok(Command::Cereg(Access::Test)));
        assert_eq!(p("AT+CGATT=0"), Ok(Command::Cgatt(Access::Write(false))));
        for bad in [
            "A",
            "ATE2",
            "ATX",
            "AT+CMEE=3",
            "AT+CMEE",
            "AT+CMEE=1,2",
            "AT+CGATT=2",
            "AT+NOPE",
            "AT+CMEE?x",
            "xAT",
        ] {
            assert_eq!(p(bad), Err(Bad), "{bad}");
        }
    }

    #[test]
    fn qmt_commands_parse_to_their_values() {
        assert_eq!(
            p("AT+QMTOPEN=1,\"broker.example\",1883"),
            Ok(Command::Qmtopen {
                id: 1,
                host: b"broker.example".to_vec(),
                port: 1883
            })
        );
        assert_eq!(p("AT+QMTCLOSE=5"), Ok(Command::Qmtclose(5)));
        assert_eq!(p("AT+QMTDISC=?"), Ok(Command::QmtTest(b"+QMTDISC: (0-5)")));
        assert_eq!(
            p("AT+QMTCONN=0,\"c\",\"u\",\"pw\""),
            Ok(Command::Qmtconn {
                id: 0,
                client_id: "c".into(),
                username: Some("u".into()),
                password: Some("pw".into())
            })
        );
        assert_eq!(
            p("AT+QMTSUB=0,3,\"a/+\",1,\"b/#\",2"),
            Ok(Command::Qmtsub {
                id: 0,
                msgid: 3,
                filters: vec![("a/+".into(), 1), ("b/#".into(), 2)]
            })
        );
        assert_eq!(
            p("AT+QMTUNS=0,4,\"a\",\"b\""),
            Ok(Command::Qmtuns {
                id: 0,
                msgid: 4,
                filters: vec!["a".into(), "b".into()]
            })
        );
        assert_eq!(
            p("AT+QMTPUB=0,1,1,0,\"t\",\"a,\"b\"\""),
            Ok(Command::Qmtpub {
                id: 0,
                msgid: 1,
                qos: 1,
                retain: false,
                topic: "t".into(),
                msg: Some(b"a,\"b\"".to_vec())
            })
        );
        assert_eq!(
            p("AT+QMTPUB=2,0,0,1,\"t\""),
            Ok(Command::Qmtpub {
                id: 2,
                msgid: 0,
                qos: 0,
                retain: true,
                topic: "t".into(),
                msg: None
            })
        );
        assert_eq!(
            p("AT+QMTCFG=\"keepalive\",3"),
            Ok(Command::Qmtcfg {
                opt: Opt::Keepalive,
                id: 3,
                args: vec![]
            })
        );
    }

    #[test]
    fn power_commands_parse_to_their_values() {
        let psm = |mode, tau, act| Ok(Command::Cpsms(Access::Write(PsmRequest { mode, tau, act })));
        assert_eq!(
            p("AT+CPSMS=1,,,\"01000011\",\"00000001\""),
            psm(1, Some(0x43), Some(1))
        );
        assert_eq!(p("AT+CPSMS=1,,,\"00100001\""), psm(1, Some(0x21), None));
        assert_eq!(p("AT+CPSMS=0"), psm(0, None, None));
        assert_eq!(p("AT+CPSMS=2,,,,"), psm(2, None, None));
        assert_eq!(p("AT+CPSMS?"), Ok(Command::Cpsms(Access::Read)));
        let edrx = |mode, value| Ok(Command::Cedrxs(Access::Write(EdrxRequest { mode, value })));
        assert_eq!(p("AT+CEDRXS=1,5,\"0101\""), edrx(1, Some(5)));
        assert_eq!(p("AT+CEDRXS=3"), edrx(3, None));
        assert_eq!(p("AT+CEDRXRDP"), Ok(Command::Cedrxrdp(Access::Write(()))));
        assert_eq!(p("AT+QSCLK=1"), Ok(Command::Qsclk(Access::Write(1))));
        assert_eq!(p("AT+QRELLOCK"), Ok(Command::Qrellock));
        assert_eq!(p("AT+CSCON=1"), Ok(Command::Cscon(Access::Write(true))));
        assert_eq!(
            p("AT+QNBIOTEVENT=1,1"),
            Ok(Command::Qnbiotevent(Access::Write(true)))
        );
        assert_eq!(
            p("AT+QNBIOTRAI=2"),
            Ok(Command::Qnbiotrai(Access::Write(2)))
        );
        assert_eq!(
            p("AT+QATWAKEUP=0"),
            Ok(Command::Qatwakeup(Access::Write(false)))
        );
        assert_eq!(p("AT+CEREG=5"), Ok(Command::Cereg(Access::Write(5))));
        for bad in [
            "AT+CPSMS=3",
            "AT+CPSMS=",
            "AT+CPSMS",
            "AT+CPSMS=1,\"00000001\",,\"00100001\",\"00000101\"",
            "AT+CPSMS=1,,,\"0010001\",\"00000101\"",
            "AT+CPSMS=1,,,\"001000011\"",
            "AT+CPSMS=1,,,\"0010000x\"",
            "AT+CPSMS=1,,,33,5",
            "AT+CPSMS=1,,,\"00100001\",\"00000101\",1",
            "AT+CEDRXS=1,4,\"0101\"",
            "AT+CEDRXS=4",
            "AT+CEDRXS=1,5,\"101\"",
            "AT+CEDRXS=1,5,\"0101\",1",
            "AT+CEDRXRDP?",
            "AT+QSCLK=3",
            "AT+QSCLK=-1",
            "AT+QRELLOCK=1",
            "AT+QRELLOCK?",
            "AT+CSCON=2",
            "AT+QNBIOTEVENT=1",
            "AT+QNBIOTEVENT=1,2",
            "AT+QNBIOTEVENT=2,1",
            "AT+QNBIOTEVENT",
            "AT+QNBIOTRAI=3",
            "AT+QATWAKEUP=2",
            "AT+CEREG=6",
        ] {
            assert_eq!(p(bad), Err(Bad), "{bad}");
        }
    }

    #[test]
    fn parameters_a_bc26_refuses_are_refused() {
        for bad in [
            "AT+QMTOPEN=6,\"h\",1",
            "AT+QMTOPEN=0,\"h\",0",
            "AT+QMTOPEN=0,\"\",1",
            "AT+QMTOPEN=0,\"h\",1,2",
            "AT+QMTCONN=0",
            "AT+QMTSUB=0,0,\"t\",0",
            "AT+QMTSUB=0,1,\"t\",3",
            "AT+QMTSUB=0,1,\"t\"",
            "AT+QMTSUB=0,1,\"a/#/b\",0",
            "AT+QMTSUB=0,1,\"a+\",0",
            "AT+QMTUNS=0,1",
            "AT+QMTUNS=0,1,\"a/#/b\"",
            "AT+QMTPUB=0,0,1,0,\"t\",\"m\"",
            "AT+QMTPUB=0,1,0,0,\"t\",\"m\"",
            "AT+QMTPUB=0,1,1,0,\"a/+\",\"m\"",
            "AT+QMTPUB=0,1,1,0,\"#\"",
            "AT+QMTPUB=0,1,1,0,\"\",\"m\"",
            "AT+QMTPUB=0,1,1,0,\"t\",m",
            "AT+QMTPUB=0,1,1,0,\"t\",\"",
            "AT+QMTPUB=0,99999999999999999999,1,0,\"t\"",
            "AT+QMTCFG=\"nope\",0",
            "AT+QMTCFG?",
        ] {
            assert_eq!(parse(bad.as_bytes()), Err(Bad), "{bad}");
        }
        assert_eq!(parse(b"AT+QMTCONN=0,\"\xff\""), Err(Bad), "not UTF-8");
        let long = format!("AT+QMTPUB=0,1,1,0,\"{}\"", "t".repeat(256));
        assert_eq!(p(&long), Err(Bad));
    }
}
