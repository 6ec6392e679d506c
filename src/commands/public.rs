//! Which commands an application may send through
//! [`Modem::send`](crate::Modem::send), and which ones the driver owns.
//!
//! Two guards, one for typed commands and one for every line:
//!
//! - **Types.** `send` takes a [`PublicCmd`], a sealed trait: only the
//!   crate implements it, for the read and test forms, the settings the
//!   driver does not keep track of, and the general commands. A command type
//!   is owned by the driver unless it is listed in `public!` below (one
//!   line); the write forms of open, close, connect, disconnect, subscribe,
//!   unsubscribe and publish, `AT+QMTCFG="dataformat"` and `"timeout"`, and
//!   the power settings (PSM, eDRX, sleep, the sleep lock, the power
//!   reports) are not, so `send` does not compile with them. Raw lines
//!   ([`heapless::String`]) and the application's own commands
//!   ([`Custom`]) are public types too, checked by the second guard.
//! - **Lines.** Whatever type wrote it, the line is checked before a byte
//!   goes out ([`check_line`]): one command line, no control byte but its
//!   final CR, no `A/` (repeat the last line, which may be the driver's), and
//!   no command the driver owns: one entry of [`OWNED`] per command
//!   (one line marks a command owned). A refused line is
//!   [`Error::OwnedByDriver`] or a typed argument error; nothing is sent.

use atat::{AtatCmd, InternalError};

use crate::error::{Error, Field, Problem};

mod sealed {
    /// Implemented by the crate only: writes the line without panicking
    /// (0 when it does not fit).
    pub trait Sealed {
        fn put(&self, buf: &mut [u8]) -> usize;
    }
}

/// A command [`Modem::send`](crate::Modem::send) accepts: the crate's read
/// and test forms, the settings the driver does not track, the general
/// commands, a raw line ([`heapless::String`]) and the application's own
/// commands wrapped in [`Custom`]. Sealed: the write forms the driver owns
/// (open, close, connect, disconnect, subscribe, unsubscribe, publish,
/// `AT+QMTCFG="dataformat"` and `"timeout"`) do not implement it, so they
/// cannot be sent behind the driver's back:
///
/// ```compile_fail
/// # async fn f(modem: bc26_mqtt::Modem<'_>) {
/// use bc26_mqtt::{commands::ConfigureDataFormat, ClientId, DataFormat};
/// let cmd = ConfigureDataFormat {
///     client: ClientId::new(0).unwrap(),
///     send: DataFormat::Text,
///     recv: DataFormat::Text,
/// };
/// let _ = modem.send(&cmd).await; // the driver owns the data format
/// # }
/// ```
///
/// ```compile_fail
/// # async fn f(modem: bc26_mqtt::Modem<'_>) {
/// use bc26_mqtt::{commands::OpenNetwork, ClientId};
/// let cmd = OpenNetwork::new(ClientId::new(0).unwrap(), "broker", 1883).unwrap();
/// let _ = modem.send(&cmd).await; // use MqttClient::open
/// # }
/// ```
///
/// The read and test forms go through:
///
/// ```
/// # async fn f(modem: bc26_mqtt::Modem<'_>) {
/// use bc26_mqtt::{commands::{QueryDataFormat, TestOpenNetwork}, ClientId};
/// let _ = modem.send(&QueryDataFormat { client: ClientId::new(0).unwrap() }).await;
/// let _ = modem.send(&TestOpenNetwork).await;
/// # }
/// ```
#[diagnostic::on_unimplemented(
    message = "`Modem::send` does not take `{Self}`",
    label = "a command the driver owns, or a type of your own",
    note = "the driver owns the write forms of open, close, connect, disconnect, subscribe, \
            unsubscribe, publish, dataformat and timeout: use `MqttClient`'s methods",
    note = "wrap a command type of your own in `bc26_mqtt::commands::Custom`"
)]
pub trait PublicCmd: AtatCmd + sealed::Sealed {}

/// Marks the crate's command types that an application may send: one line
/// each. A command type not listed here is the driver's own.
macro_rules! public {
    ($($t:ty),* $(,)?) => {
        $(
            impl sealed::Sealed for $t {
                fn put(&self, buf: &mut [u8]) -> usize {
                    // The crate's commands write through `Line`: 0 when the
                    // line does not fit, never a panic.
                    AtatCmd::write(self, buf)
                }
            }
            impl PublicCmd for $t {}
        )*
    };
}

use super::*;

public!(
    // General commands.
    Attention,
    EchoOff,
    ResetModule,
    QueryRegistration,
    // AT+QMTCFG: settings the driver does not keep track of, every query, the test form.
    ConfigureWill<'_>,
    QueryWill,
    QueryTimeout,
    ConfigureSession,
    QuerySession,
    ConfigureKeepAlive,
    QueryKeepAlive,
    ConfigureAliAuth<'_>,
    QueryAliAuth,
    ConfigureVersion,
    QueryVersion,
    QueryDataFormat,
    ConfigureEchoMode,
    QueryEchoMode,
    TestConfigure,
    // MQTT: read and test forms.
    QueryOpenNetworks,
    TestOpenNetwork,
    TestCloseNetwork,
    QueryConnectionState,
    TestConnect,
    TestDisconnect,
    TestSubscribe,
    TestUnsubscribe,
    TestPublish,
    // Power: the queries, and release assistance, which the driver never
    // sends itself. The power settings (SetPsm, SetEdrx, SetSleep,
    // ReleaseSleepLock and the report switches) are the driver's: use
    // `Modem::set_power`, `release` and `power_reports`.
    QueryPsm,
    ReadEdrx,
    QuerySleep,
    QuerySignalling,
    QueryRegistrationTimers,
    SetReleaseAssistance,
);

/// A raw command line (`"AT+CGATT?\r"`): the escape hatch for commands the
/// crate has no type for. Its answer comes back as text. The line is checked
/// like any other: too long for the line buffer, more than one line, or a
/// command the driver owns, and nothing is sent.
impl<const N: usize> sealed::Sealed for heapless::String<N> {
    fn put(&self, buf: &mut [u8]) -> usize {
        let b = self.as_bytes();
        match buf.get_mut(..b.len()) {
            Some(dst) => {
                dst.copy_from_slice(b);
                b.len()
            }
            None => 0,
        }
    }
}
impl<const N: usize> PublicCmd for heapless::String<N> {}

/// An application's own command type (an `atat` derive, say) for
/// [`Modem::send`](crate::Modem::send): `modem.send(&Custom(&GetImei))`.
/// Its line is checked like a raw line's (a command the driver owns is
/// refused, nothing sent), and its answer parsed by its own `parse`.
///
/// The driver cannot stop a panic inside the type's own `write`: atat's
/// derived `write` panics when the line does not fit the buffer it is given
/// (the `LINE` bytes of [`State`](crate::State), at least 1,024). Bound the
/// type's fields so that its line fits, or send a raw line, which is
/// measured before it is copied.
#[derive(Debug, Clone, Copy)]
pub struct Custom<'c, C: AtatCmd>(pub &'c C);

impl<C: AtatCmd> AtatCmd for Custom<'_, C> {
    type Response = C::Response;
    const MAX_TIMEOUT_MS: u32 = C::MAX_TIMEOUT_MS;
    fn write(&self, buf: &mut [u8]) -> usize {
        self.0.write(buf)
    }
    fn parse(&self, resp: Result<&[u8], InternalError>) -> Result<C::Response, atat::Error> {
        self.0.parse(resp)
    }
}

impl<C: AtatCmd> sealed::Sealed for Custom<'_, C> {
    fn put(&self, buf: &mut [u8]) -> usize {
        self.0.write(buf)
    }
}
impl<C: AtatCmd> PublicCmd for Custom<'_, C> {}

/// Writes `cmd`'s line into `buf` (never panics for the crate's types and
/// raw lines) and returns its length.
pub(crate) fn put<C: PublicCmd>(cmd: &C, buf: &mut [u8]) -> usize {
    sealed::Sealed::put(cmd, buf)
}

/// A command (or command form) the driver owns.
#[derive(Debug, Clone, Copy)]
enum Owned {
    /// The write form `<name>=<...>` (not the test form `<name>=?`, not the
    /// read form `<name>?`).
    Write(&'static [u8]),
    /// Every form but the test form `<name>=?` (an action without arguments).
    Action(&'static [u8]),
    /// The write form of an `AT+QMTCFG` option (`"<option>",<id>,<value>...`,
    /// not the query `"<option>",<id>`).
    CfgWrite(&'static [u8]),
}

/// The commands the driver owns, as they begin after `AT` (upper case).
/// One line marks a command owned.
const OWNED: &[Owned] = &[
    // MQTT: the driver's operation slots, msgID allocator and link state.
    Owned::Write(b"+QMTOPEN"),
    Owned::Write(b"+QMTCLOSE"),
    Owned::Write(b"+QMTCONN"),
    Owned::Write(b"+QMTDISC"),
    Owned::Write(b"+QMTSUB"),
    Owned::Write(b"+QMTUNS"),
    Owned::Write(b"+QMTPUB"),
    // Settings the driver keeps a copy of: the receive format (the digester
    // frames +QMTRECV by it) and pkt_timeout/retry_times (its deadlines).
    Owned::CfgWrite(b"DATAFORMAT"),
    Owned::CfgWrite(b"TIMEOUT"),
    // Power: sleep mode, PSM and eDRX requests, the sleep lock and the
    // power reports: the driver tracks them (`Modem::set_power`, `release`,
    // `power_reports`) to know when the module may sleep and which URCs
    // are its events.
    Owned::Write(b"+QSCLK"),
    Owned::Write(b"+CPSMS"),
    Owned::Write(b"+CEDRXS"),
    Owned::Action(b"+QRELLOCK"),
    Owned::Write(b"+CSCON"),
    Owned::Write(b"+QNBIOTEVENT"),
    Owned::Write(b"+CEREG"),
];

/// Bytes of a command's start that are compared (spaces removed, upper case).
const HEAD: usize = 40;

/// Checks a line before it is sent through `Modem::send`: `n` bytes of
/// `buf` (0: it did not fit).
pub(crate) fn check_line(line: &[u8], n: usize) -> Result<(), Error> {
    let bad = |problem| Error::InvalidArgument {
        field: Field::CommandLine,
        problem,
    };
    if n == 0 {
        return Err(bad(Problem::LineTooLong));
    }
    let line = &line[..n];
    let body = line.strip_suffix(b"\r").unwrap_or(line);
    if body.iter().any(|&b| b < 0x20 || b == 0x7f) {
        return Err(bad(Problem::ForbiddenByte));
    }
    let mut first = true;
    let mut rest = body;
    loop {
        // One command of a line that may chain several with `;` (outside quotes).
        let mut quoted = false;
        let mut end = rest.len();
        for (i, &b) in rest.iter().enumerate() {
            match b {
                b'"' => quoted = !quoted,
                b';' if !quoted => {
                    end = i;
                    break;
                }
                _ => {}
            }
        }
        if owned(&rest[..end], first) {
            return Err(Error::OwnedByDriver);
        }
        first = false;
        if end == rest.len() {
            return Ok(());
        }
        rest = &rest[end + 1..];
    }
}

/// Whether one command of a line (`;`-separated) holds a command the driver
/// owns. `first`: the command the line starts with (`AT...`, or `A/`).
/// Every extended command in it is looked at (`+` outside quotes), since
/// basic commands may run into one without a separator (`ATE0+QMTDISC=0`).
fn owned(cmd: &[u8], first: bool) -> bool {
    if first && cmd.len() >= 2 && cmd[..2].eq_ignore_ascii_case(b"A/") {
        // Repeats the last command line, which may be the driver's.
        return true;
    }
    let mut quoted = false;
    for (i, &b) in cmd.iter().enumerate() {
        match b {
            b'"' => quoted = !quoted,
            b'+' if !quoted && owned_at(&cmd[i..]) => return true,
            _ => {}
        }
    }
    false
}

/// Whether the extended command at the start of `cmd` (`+NAME...`) is one
/// the driver owns.
fn owned_at(cmd: &[u8]) -> bool {
    // Its first bytes without spaces (outside quotes), in upper case, and
    // the commas between its arguments.
    let mut head = [0u8; HEAD];
    let mut len = 0;
    let mut commas = 0;
    let mut quoted = false;
    for &b in cmd {
        match b {
            b'"' => quoted = !quoted,
            b',' if !quoted => commas += 1,
            b' ' if !quoted => continue,
            _ => {}
        }
        if len < HEAD {
            head[len] = b.to_ascii_uppercase();
            len += 1;
        }
    }
    let h = &head[..len];
    OWNED.iter().any(|o| match *o {
        Owned::Write(name) => h
            .strip_prefix(name)
            .is_some_and(|r| r.first() == Some(&b'=') && r.get(1) != Some(&b'?')),
        Owned::Action(name) => h.strip_prefix(name).is_some_and(|r| match r.first() {
            None => true,
            Some(b'=') => r.get(1) != Some(&b'?'),
            Some(c) => !c.is_ascii_alphanumeric() && *c != b'?',
        }),
        Owned::CfgWrite(option) => {
            h.strip_prefix(b"+QMTCFG=\"")
                .and_then(|r| r.strip_prefix(option))
                .is_some_and(|r| r.first() == Some(&b'"'))
                && commas >= 2
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(s: &str) -> Result<(), Error> {
        check_line(s.as_bytes(), s.len())
    }

    #[test]
    fn owned_write_forms_are_refused_in_any_case_spacing_or_chain() {
        for line in [
            "AT+QMTOPEN=0,\"h\",1883\r",
            "at+qmtopen=6,\"host\",1883\r",
            "AT+QMTCLOSE=0\r",
            "AT+QMTCONN=0,\"c\"\r",
            "AT+QMTDISC=0\r",
            "AT+QMTSUB=0,1,\"t\",0\r",
            "AT+QMTUNS=0,1,\"t\"\r",
            "AT+QMTPUB=0,0,0,0,\"t\",\"m\"\r",
            "AT+QMTPUB=0,0,0,0,\"t\"\r",
            "AT+QMTCFG=\"dataformat\",0,0,0\r",
            "AT+QMTCFG=\"DataFormat\",0,1\r",
            "AT+QMTCFG = \"dataformat\" , 0 , 0 , 0\r",
            "AT+QMTCFG=\"timeout\",0,60,10,1\r",
            "AT+QSCLK=1\r",
            "AT+CPSMS=1,,,\"00100001\",\"00000001\"\r",
            "AT+CPSMS=0\r",
            "AT+QRELLOCK\r",
            "AT+QRELLOCK=1\r",
            "AT+CEDRXS=1,5,\"0101\"\r",
            "AT+CSCON=1\r",
            "AT+QNBIOTEVENT=1,1\r",
            "AT+CEREG=4\r",
            "AT+CEREG?;+QMTDISC=0\r",
            "AT;+QMTCFG=\"dataformat\",0,0,0\r",
            "A/\r",
            "a/",
            "ATE0+QMTDISC=0\r",
            "AT+CMEE=1+QMTCLOSE=0\r",
            "AT+QMTOPEN=",
        ] {
            assert_eq!(check(line), Err(Error::OwnedByDriver), "{line:?}");
        }
    }

    #[test]
    fn queries_test_forms_and_other_commands_go_through() {
        for line in [
            "AT\r",
            "ATE0\r",
            "AT+CEREG?\r",
            "AT+CGATT?\r",
            "AT+CGSN=1\r",
            "AT+QMTOPEN?\r",
            "AT+QMTOPEN=?\r",
            "AT+QMTCONN?\r",
            "AT+QMTPUB=?\r",
            "AT+QMTCFG=\"dataformat\",0\r",
            "AT+QMTCFG=\"timeout\",0\r",
            "AT+QMTCFG=\"keepalive\",0,120\r",
            "AT+QMTCFG=\"will\",0,1,0,0,\"w\",\"a,b\"\r",
            "AT+QMTCFG=?\r",
            "AT+QSCLK?\r",
            "AT+QSCLK=?\r",
            "AT+CPSMS?\r",
            "AT+QRELLOCK=?\r",
            "AT+CEDRXRDP\r",
            "AT+CSCON?\r",
            "AT+CEREG=?\r",
            "AT+QNBIOTRAI=1\r",
            "AT+QRST=1\r",
            "AT+CEREG?;+CGATT?\r",
            // A quoted `;` does not chain a command.
            "AT+QMTCFG=\"will\",0,1,0,0,\"w\",\"x;+QMTDISC=0\"\r",
            "hello",
        ] {
            assert_eq!(check(line), Ok(()), "{line:?}");
        }
    }

    #[test]
    fn a_line_is_one_line_of_printable_bytes_that_fit() {
        let bad = |problem| {
            Err(Error::InvalidArgument {
                field: Field::CommandLine,
                problem,
            })
        };
        for line in [
            "AT\rAT+QMTDISC=0\r",
            "AT\nAT\r",
            "AT\x1a",
            "AT\x1b\r",
            "AT\0\r",
            "AT\r\r",
        ] {
            assert_eq!(check(line), bad(Problem::ForbiddenByte), "{line:?}");
        }
        assert_eq!(check_line(b"", 0), bad(Problem::LineTooLong));
    }

    #[test]
    fn a_raw_line_longer_than_the_buffer_writes_nothing_and_does_not_panic() {
        let mut raw: heapless::String<2048> = heapless::String::new();
        raw.push_str("AT+X=\"").unwrap();
        while raw.len() < 1030 {
            raw.push('a').unwrap();
        }
        let mut buf = [0u8; 1024];
        assert_eq!(put(&raw, &mut buf), 0);
        assert!(buf.iter().all(|&b| b == 0));
        let short: heapless::String<8> = heapless::String::try_from("AT\r").unwrap();
        assert_eq!(put(&short, &mut buf), 3);
        assert_eq!(&buf[..3], b"AT\r");
    }
}
