//! `AT+QMTCFG`: the optional parameters of a client (reference: "AT+QMTCFG").
//!
//! Each option has a write form (`Configure*`) and a query form (`Query*`, the
//! parameters omitted, answered with the current value). `AT+QMTCFG=?` is
//! [`TestConfigure`].

use super::parse::{int, string, Fields};
use super::{ok_command, test_command, Line};
use crate::error::{Error, Field, Problem};
use crate::types::{check_quoted, check_topic, limits, ClientId, DataFormat, MqttVersion, QoS};
use atat::{AtatCmd, AtatResp, InternalError};
use heapless::String;

fn head(l: &mut Line<'_>, option: &[u8], client: ClientId) {
    l.raw(b"AT+QMTCFG=").quoted(option).num(client.get().into());
}

/// The fields after `"<option>"` of the `+QMTCFG: "<option>",...` line, if any.
fn cfg_fields<'a>(
    resp: Result<&'a [u8], InternalError<'a>>,
    option: &[u8],
) -> Result<Option<Fields<'a>>, atat::Error> {
    let resp = resp.map_err(super::parse_error)?;
    for body in super::parse::lines_with(resp, b"+QMTCFG:") {
        let mut f = Fields::new(body);
        if f.next() == Some(option) {
            return Ok(Some(f));
        }
    }
    Ok(None)
}

fn flag(field: Option<&[u8]>) -> Result<bool, atat::Error> {
    match int::<u8>(field)? {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(atat::Error::Parse),
    }
}

fn range(field: Field) -> Error {
    Error::InvalidArgument {
        field,
        problem: Problem::OutOfRange,
    }
}

macro_rules! query_command {
    ($(#[$doc:meta])* $name:ident, $option:literal, $resp:ty, |$f:ident| $parse:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[cfg_attr(feature = "defmt", derive(defmt::Format))]
        pub struct $name {
            /// The client.
            pub client: ClientId,
        }

        impl AtatCmd for $name {
            type Response = $resp;
            const MAX_TIMEOUT_MS: u32 = 300;
            fn write(&self, buf: &mut [u8]) -> usize {
                let mut l = Line::new(buf);
                head(&mut l, $option, self.client);
                l.finish()
            }
            fn parse(&self, resp: Result<&[u8], InternalError>) -> Result<$resp, atat::Error> {
                let $f = cfg_fields(resp, $option)?;
                $parse
            }
        }
    };
}

// ---------------------------------------------------------------- will

/// A will message: what the broker publishes if the client vanishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Will<'a> {
    qos: QoS,
    retain: bool,
    topic: &'a str,
    message: &'a str,
}

impl<'a> Will<'a> {
    /// A will on `topic` (1-255 bytes) with `message` (0-256 bytes); neither may
    /// hold `"`, CR, LF or control bytes.
    pub fn new(topic: &'a str, message: &'a str, qos: QoS, retain: bool) -> Result<Self, Error> {
        check_topic(topic).map_err(|e| retag(e, Field::WillTopic))?;
        check_quoted(message, 0, limits::WILL_MESSAGE, Field::WillMessage)?;
        Ok(Self {
            qos,
            retain,
            topic,
            message,
        })
    }
}

fn retag(e: Error, field: Field) -> Error {
    match e {
        Error::InvalidArgument { problem, .. } => Error::InvalidArgument { field, problem },
        e => e,
    }
}

/// `AT+QMTCFG="will",<id>,<will_fg>[,<will_qos>,<will_retain>,"<will_topic>","<will_msg>"]`:
/// set (or, with `None`, clear) the client's will (reference: AT+QMTCFG, "will").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ConfigureWill<'a> {
    /// The client.
    pub client: ClientId,
    /// The will, or `None` for `will_fg` 0.
    pub will: Option<Will<'a>>,
}

ok_command!(ConfigureWill<'a>, |self, l| {
    head(l, b"will", self.client);
    match &self.will {
        None => {
            l.raw(b",0");
        }
        Some(w) => {
            l.raw(b",1,").num(w.qos.get().into()).num(w.retain.into());
            l.quoted(w.topic.as_bytes()).quoted(w.message.as_bytes());
        }
    }
});

/// The will a client is configured with.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
// No heap to box into; returned by value once per query.
#[allow(clippy::large_enum_variant)]
pub enum WillSetting {
    /// `will_fg` 0: no will.
    Disabled,
    /// `will_fg` 1.
    Enabled {
        /// QoS of the will.
        qos: QoS,
        /// Retain flag of the will.
        retain: bool,
        /// Will topic.
        topic: String<{ limits::TOPIC }>,
        /// Will message.
        message: String<{ limits::WILL_MESSAGE }>,
    },
}
impl AtatResp for WillSetting {}

query_command!(
    /// `AT+QMTCFG="will",<id>`: read the client's will (reference: AT+QMTCFG, "will").
    QueryWill, b"will", WillSetting, |f| {
        let mut f = f.ok_or(atat::Error::Parse)?;
        if !flag(f.next())? {
            return Ok(WillSetting::Disabled);
        }
        let qos = QoS::new(int(f.next())?).map_err(|_| atat::Error::Parse)?;
        let retain = flag(f.next())?;
        let topic = string(f.next())?;
        // The reference prints the strings unquoted: the message is the rest
        // of the line, commas and all.
        let message = string(f.rest().or(Some(b"")))?;
        Ok(WillSetting::Enabled { qos, retain, topic, message })
    }
);

// ---------------------------------------------------------------- timeout

/// `AT+QMTCFG="timeout",<id>,<pkt_timeout>,<retry_times>,<timeout_notice>`:
/// how long the modem waits for a packet's acknowledgement and how often it
/// retransmits (reference: AT+QMTCFG, "timeout"). The driver's deadlines for
/// CONN/SUB/UNS/PUB follow these values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ConfigureTimeout {
    client: ClientId,
    pkt_timeout: u8,
    retry_times: u8,
    timeout_notice: bool,
}

impl ConfigureTimeout {
    /// `pkt_timeout` 1-60 s, `retry_times` 0-10; `timeout_notice` asks the
    /// modem to report a timeout while it transmits.
    pub fn new(
        client: ClientId,
        pkt_timeout: u8,
        retry_times: u8,
        timeout_notice: bool,
    ) -> Result<Self, Error> {
        if !limits::PKT_TIMEOUT.contains(&pkt_timeout) {
            return Err(range(Field::PacketTimeout));
        }
        if retry_times > limits::RETRY_TIMES_MAX {
            return Err(range(Field::RetryTimes));
        }
        Ok(Self {
            client,
            pkt_timeout,
            retry_times,
            timeout_notice,
        })
    }

    pub(crate) fn values(&self) -> (ClientId, u8, u8) {
        (self.client, self.pkt_timeout, self.retry_times)
    }
}

ok_command!(ConfigureTimeout, |self, l| {
    head(l, b"timeout", self.client);
    l.num(self.pkt_timeout.into()).num(self.retry_times.into());
    l.num(self.timeout_notice.into());
});

/// A client's packet timeout settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TimeoutSetting {
    /// Seconds the modem waits for an acknowledgement.
    pub pkt_timeout: u8,
    /// Retransmissions before it gives up.
    pub retry_times: u8,
    /// Whether it reports a timeout while transmitting.
    pub timeout_notice: bool,
}
impl AtatResp for TimeoutSetting {}

query_command!(
    /// `AT+QMTCFG="timeout",<id>`: read the packet timeout settings (reference: AT+QMTCFG, "timeout").
    QueryTimeout, b"timeout", TimeoutSetting, |f| {
        let mut f = f.ok_or(atat::Error::Parse)?;
        Ok(TimeoutSetting {
            pkt_timeout: int(f.next())?,
            retry_times: int(f.next())?,
            timeout_notice: f.next().map(|v| flag(Some(v))).transpose()?.unwrap_or(false),
        })
    }
);

// ---------------------------------------------------------------- session

/// `AT+QMTCFG="session",<id>,<clean_session>`: whether the server forgets the
/// client's subscriptions when it disconnects (reference: AT+QMTCFG, "session").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ConfigureSession {
    /// The client.
    pub client: ClientId,
    /// 1: clean session; 0: the server keeps the session (if it supports that).
    pub clean_session: bool,
}

ok_command!(ConfigureSession, |self, l| {
    head(l, b"session", self.client);
    l.num(self.clean_session.into());
});

/// A client's session setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SessionSetting {
    /// Clean session flag.
    pub clean_session: bool,
}
impl AtatResp for SessionSetting {}

query_command!(
    /// `AT+QMTCFG="session",<id>`: read the session setting (reference: AT+QMTCFG, "session").
    QuerySession, b"session", SessionSetting, |f| {
        let mut f = f.ok_or(atat::Error::Parse)?;
        Ok(SessionSetting { clean_session: flag(f.next())? })
    }
);

// ---------------------------------------------------------------- keepalive

/// `AT+QMTCFG="keepalive",<id>,<keep_alive>`: the keep-alive interval in
/// seconds, 0-3600; 0 disables it (reference: AT+QMTCFG, "keepalive").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ConfigureKeepAlive {
    client: ClientId,
    seconds: u16,
}

impl ConfigureKeepAlive {
    /// `seconds` 0-3600.
    pub fn new(client: ClientId, seconds: u16) -> Result<Self, Error> {
        if seconds > limits::KEEPALIVE_MAX {
            return Err(range(Field::KeepAlive));
        }
        Ok(Self { client, seconds })
    }
}

ok_command!(ConfigureKeepAlive, |self, l| {
    head(l, b"keepalive", self.client);
    l.num(self.seconds.into());
});

/// A client's keep-alive interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct KeepAliveSetting {
    /// Seconds; 0 = disabled.
    pub seconds: u16,
}
impl AtatResp for KeepAliveSetting {}

query_command!(
    /// `AT+QMTCFG="keepalive",<id>`: read the keep-alive interval (reference: AT+QMTCFG, "keepalive").
    QueryKeepAlive, b"keepalive", KeepAliveSetting, |f| {
        let mut f = f.ok_or(atat::Error::Parse)?;
        Ok(KeepAliveSetting { seconds: int(f.next())? })
    }
);

// ---------------------------------------------------------------- aliauth

/// `AT+QMTCFG="aliauth",<id>,"<product_key>","<device_name>","<device_secret>"`:
/// AliCloud device credentials; with them AT+QMTCONN needs no user name or
/// password (reference: AT+QMTCFG, "aliauth").
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ConfigureAliAuth<'a> {
    client: ClientId,
    product_key: &'a str,
    device_name: &'a str,
    device_secret: &'a str,
}

impl core::fmt::Debug for ConfigureAliAuth<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ConfigureAliAuth")
            .field("client", &self.client)
            .field("product_key", &self.product_key)
            .field("device_name", &self.device_name)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for ConfigureAliAuth<'_> {
    fn format(&self, f: defmt::Formatter) {
        defmt::write!(
            f,
            "ConfigureAliAuth {{ client: {}, product_key: {=str}, device_name: {=str}, .. }}",
            self.client,
            self.product_key,
            self.device_name
        )
    }
}

impl<'a> ConfigureAliAuth<'a> {
    /// Each value 1-256 bytes without `"`, CR, LF or control bytes.
    pub fn new(
        client: ClientId,
        product_key: &'a str,
        device_name: &'a str,
        device_secret: &'a str,
    ) -> Result<Self, Error> {
        for s in [product_key, device_name, device_secret] {
            check_quoted(s, 1, limits::CREDENTIAL, Field::AliAuth)?;
        }
        Ok(Self {
            client,
            product_key,
            device_name,
            device_secret,
        })
    }
}

ok_command!(ConfigureAliAuth<'a>, |self, l| {
    head(l, b"aliauth", self.client);
    l.quoted(self.product_key.as_bytes());
    l.quoted(self.device_name.as_bytes());
    l.quoted(self.device_secret.as_bytes());
});

/// AliCloud credentials as the modem reports them.
#[derive(Clone, PartialEq, Eq)]
pub struct AliAuth {
    /// Product key.
    pub product_key: String<{ limits::CREDENTIAL }>,
    /// Device name.
    pub device_name: String<{ limits::CREDENTIAL }>,
    /// Device secret (not shown by `Debug`).
    pub device_secret: String<{ limits::CREDENTIAL }>,
}
impl AtatResp for AliAuth {}

#[cfg(feature = "defmt")]
impl defmt::Format for AliAuth {
    fn format(&self, f: defmt::Formatter) {
        defmt::write!(
            f,
            "AliAuth {{ product_key: {=str}, device_name: {=str}, .. }}",
            self.product_key.as_str(),
            self.device_name.as_str()
        )
    }
}

impl core::fmt::Debug for AliAuth {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("AliAuth")
            .field("product_key", &self.product_key)
            .field("device_name", &self.device_name)
            .finish_non_exhaustive()
    }
}

/// A client's AliCloud credentials, if set.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct AliAuthSetting(pub Option<AliAuth>);
impl AtatResp for AliAuthSetting {}

query_command!(
    /// `AT+QMTCFG="aliauth",<id>`: read the AliCloud credentials (reference: AT+QMTCFG, "aliauth").
    QueryAliAuth, b"aliauth", AliAuthSetting, |f| {
        let Some(mut f) = f else { return Ok(AliAuthSetting(None)) };
        Ok(AliAuthSetting(Some(AliAuth {
            product_key: string(f.next())?,
            device_name: string(f.next())?,
            device_secret: string(f.next())?,
        })))
    }
);

// ---------------------------------------------------------------- version

/// `AT+QMTCFG="version",<id>,<version>`: the MQTT protocol version the client
/// connects with, 3 (3.1) or 4 (3.1.1) (reference: AT+QMTCFG, "version").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ConfigureVersion {
    /// The client.
    pub client: ClientId,
    /// The version.
    pub version: MqttVersion,
}

ok_command!(ConfigureVersion, |self, l| {
    head(l, b"version", self.client);
    l.num(self.version as u32);
});

/// A client's MQTT version, if the modem reports one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct VersionSetting(pub Option<MqttVersion>);
impl AtatResp for VersionSetting {}

query_command!(
    /// `AT+QMTCFG="version",<id>`: read the MQTT version (reference: AT+QMTCFG, "version").
    QueryVersion, b"version", VersionSetting, |f| {
        let Some(mut f) = f else { return Ok(VersionSetting(None)) };
        match int::<u8>(f.next())? {
            3 => Ok(VersionSetting(Some(MqttVersion::V3_1))),
            4 => Ok(VersionSetting(Some(MqttVersion::V3_1_1))),
            _ => Err(atat::Error::Parse),
        }
    }
);

// ---------------------------------------------------------------- dataformat

/// `AT+QMTCFG="dataformat",<id>,<send_format>,<recv_format>`: text or hex for
/// sent and received payloads (reference: AT+QMTCFG, "dataformat"). The driver
/// encodes and decodes hex for you.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ConfigureDataFormat {
    /// The client.
    pub client: ClientId,
    /// Format of published payloads.
    pub send: DataFormat,
    /// Format of received payloads.
    pub recv: DataFormat,
}

ok_command!(ConfigureDataFormat, |self, l| {
    head(l, b"dataformat", self.client);
    l.num(self.send as u32).num(self.recv as u32);
});

/// A client's payload formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct DataFormatSetting {
    /// Format of published payloads.
    pub send: DataFormat,
    /// Format of received payloads.
    pub recv: DataFormat,
}
impl AtatResp for DataFormatSetting {}

fn format(field: Option<&[u8]>) -> Result<DataFormat, atat::Error> {
    Ok(if flag(field)? {
        DataFormat::Hex
    } else {
        DataFormat::Text
    })
}

query_command!(
    /// `AT+QMTCFG="dataformat",<id>`: read the payload formats (reference: AT+QMTCFG, "dataformat").
    /// A modem that answers with no line reports the defaults (text, text).
    QueryDataFormat, b"dataformat", DataFormatSetting, |f| {
        let Some(mut f) = f else {
            return Ok(DataFormatSetting { send: DataFormat::Text, recv: DataFormat::Text });
        };
        Ok(DataFormatSetting { send: format(f.next())?, recv: format(f.next())? })
    }
);

// ---------------------------------------------------------------- echomode

/// `AT+QMTCFG="echomode",<id>,<echo_mode>`: whether the modem echoes the
/// payload typed in data mode (reference: AT+QMTCFG, "echomode"; the write form
/// is the reference's reading of the note).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ConfigureEchoMode {
    /// The client.
    pub client: ClientId,
    /// 1: echo (the modem's default); 0: no echo.
    pub echo: bool,
}

ok_command!(ConfigureEchoMode, |self, l| {
    head(l, b"echomode", self.client);
    l.num(self.echo.into());
});

/// A client's data-mode echo setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct EchoModeSetting {
    /// Whether data-mode input is echoed.
    pub echo: bool,
}
impl AtatResp for EchoModeSetting {}

query_command!(
    /// `AT+QMTCFG="echomode",<id>`: read the data-mode echo setting (reference: AT+QMTCFG, "echomode").
    QueryEchoMode, b"echomode", EchoModeSetting, |f| {
        let mut f = f.ok_or(atat::Error::Parse)?;
        Ok(EchoModeSetting { echo: flag(f.next())? })
    }
);

test_command!(
    /// `AT+QMTCFG=?`: the modem lists one `+QMTCFG:` line per option with its
    /// ranges (reference: AT+QMTCFG, test command).
    TestConfigure, "+QMTCFG"
);

#[cfg(test)]
mod tests {
    use super::*;

    fn line<C: AtatCmd>(c: &C) -> std::string::String {
        let mut buf = [0u8; 1024];
        let n = c.write(&mut buf);
        std::string::String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    fn id(n: u8) -> ClientId {
        ClientId::new(n).unwrap()
    }

    #[test]
    fn every_cfg_write_form_has_the_reference_bytes() {
        let w = Will::new("dev/lwt", "gone, bye", QoS::AtLeastOnce, true).unwrap();
        assert_eq!(
            line(&ConfigureWill {
                client: id(0),
                will: Some(w)
            }),
            "AT+QMTCFG=\"will\",0,1,1,1,\"dev/lwt\",\"gone, bye\"\r"
        );
        assert_eq!(
            line(&ConfigureWill {
                client: id(1),
                will: None
            }),
            "AT+QMTCFG=\"will\",1,0\r"
        );
        assert_eq!(
            line(&ConfigureTimeout::new(id(2), 60, 10, true).unwrap()),
            "AT+QMTCFG=\"timeout\",2,60,10,1\r"
        );
        assert_eq!(
            line(&ConfigureSession {
                client: id(3),
                clean_session: false
            }),
            "AT+QMTCFG=\"session\",3,0\r"
        );
        assert_eq!(
            line(&ConfigureKeepAlive::new(id(4), 3600).unwrap()),
            "AT+QMTCFG=\"keepalive\",4,3600\r"
        );
        assert_eq!(
            line(&ConfigureAliAuth::new(id(5), "pk", "dn", "ds").unwrap()),
            "AT+QMTCFG=\"aliauth\",5,\"pk\",\"dn\",\"ds\"\r"
        );
        assert_eq!(
            line(&ConfigureVersion {
                client: id(0),
                version: MqttVersion::V3_1
            }),
            "AT+QMTCFG=\"version\",0,3\r"
        );
        assert_eq!(
            line(&ConfigureDataFormat {
                client: id(0),
                send: DataFormat::Hex,
                recv: DataFormat::Text
            }),
            "AT+QMTCFG=\"dataformat\",0,1,0\r"
        );
        assert_eq!(
            line(&ConfigureEchoMode {
                client: id(0),
                echo: false
            }),
            "AT+QMTCFG=\"echomode\",0,0\r"
        );
        assert_eq!(line(&TestConfigure), "AT+QMTCFG=?\r");
    }

    #[test]
    fn every_cfg_query_form_omits_the_parameters() {
        let c = id(2);
        assert_eq!(line(&QueryWill { client: c }), "AT+QMTCFG=\"will\",2\r");
        assert_eq!(
            line(&QueryTimeout { client: c }),
            "AT+QMTCFG=\"timeout\",2\r"
        );
        assert_eq!(
            line(&QuerySession { client: c }),
            "AT+QMTCFG=\"session\",2\r"
        );
        assert_eq!(
            line(&QueryKeepAlive { client: c }),
            "AT+QMTCFG=\"keepalive\",2\r"
        );
        assert_eq!(
            line(&QueryAliAuth { client: c }),
            "AT+QMTCFG=\"aliauth\",2\r"
        );
        assert_eq!(
            line(&QueryVersion { client: c }),
            "AT+QMTCFG=\"version\",2\r"
        );
        assert_eq!(
            line(&QueryDataFormat { client: c }),
            "AT+QMTCFG=\"dataformat\",2\r"
        );
        assert_eq!(
            line(&QueryEchoMode { client: c }),
            "AT+QMTCFG=\"echomode\",2\r"
        );
    }

    #[test]
    fn every_cfg_query_answer_parses_to_its_value() {
        let c = id(0);
        let ok = |s: &'static str| Ok::<&[u8], InternalError>(s.as_bytes());
        assert_eq!(
            QueryWill { client: c }
                .parse(ok("+QMTCFG: \"will\",1,2,0,\"t/w\",\"a,b\""))
                .unwrap(),
            WillSetting::Enabled {
                qos: QoS::ExactlyOnce,
                retain: false,
                topic: "t/w".try_into().unwrap(),
                message: "a,b".try_into().unwrap()
            }
        );
        assert_eq!(
            QueryWill { client: c }
                .parse(ok("+QMTCFG: \"will\",0"))
                .unwrap(),
            WillSetting::Disabled
        );
        // Unquoted, as the reference prints it: the message keeps its comma.
        assert_eq!(
            QueryWill { client: c }
                .parse(ok("+QMTCFG: \"will\",1,1,1,dev/lwt,gone, bye"))
                .unwrap(),
            WillSetting::Enabled {
                qos: QoS::AtLeastOnce,
                retain: true,
                topic: "dev/lwt".try_into().unwrap(),
                message: "gone, bye".try_into().unwrap()
            }
        );
        assert_eq!(
            QueryTimeout { client: c }
                .parse(ok("+QMTCFG: \"timeout\",10,3,0"))
                .unwrap(),
            TimeoutSetting {
                pkt_timeout: 10,
                retry_times: 3,
                timeout_notice: false
            }
        );
        assert_eq!(
            QuerySession { client: c }
                .parse(ok("+QMTCFG: \"session\",1"))
                .unwrap(),
            SessionSetting {
                clean_session: true
            }
        );
        assert_eq!(
            QueryKeepAlive { client: c }
                .parse(ok("+QMTCFG: \"keepalive\",120"))
                .unwrap(),
            KeepAliveSetting { seconds: 120 }
        );
        let a = QueryAliAuth { client: c }
            .parse(ok("+QMTCFG: \"aliauth\",\"pk\",\"dn\",\"ds\""))
            .unwrap();
        assert_eq!(a.0.unwrap().device_secret.as_str(), "ds");
        assert_eq!(
            QueryAliAuth { client: c }.parse(ok("")).unwrap(),
            AliAuthSetting(None)
        );
        assert_eq!(
            QueryVersion { client: c }
                .parse(ok("+QMTCFG: \"version\",4"))
                .unwrap(),
            VersionSetting(Some(MqttVersion::V3_1_1))
        );
        assert_eq!(
            QueryDataFormat { client: c }
                .parse(ok("+QMTCFG: \"dataformat\",1,0"))
                .unwrap(),
            DataFormatSetting {
                send: DataFormat::Hex,
                recv: DataFormat::Text
            }
        );
        assert_eq!(
            QueryEchoMode { client: c }
                .parse(ok("+QMTCFG: \"echomode\",0"))
                .unwrap(),
            EchoModeSetting { echo: false }
        );
        assert_eq!(
            QueryKeepAlive { client: c }.parse(ok("+QMTCFG: \"session\",1")),
            Err(atat::Error::Parse)
        );
    }

    #[test]
    fn cfg_values_outside_the_reference_are_refused() {
        assert!(ConfigureKeepAlive::new(id(0), 3601).is_err());
        assert!(ConfigureTimeout::new(id(0), 0, 3, false).is_err());
        assert!(ConfigureTimeout::new(id(0), 61, 3, false).is_err());
        assert!(ConfigureTimeout::new(id(0), 10, 11, false).is_err());
        assert!(Will::new("", "m", QoS::AtMostOnce, false).is_err());
        assert!(Will::new("t", "m\"", QoS::AtMostOnce, false).is_err());
        assert!(ConfigureAliAuth::new(id(0), "p", "d", "s\r").is_err());
    }

    #[test]
    fn test_configure_keeps_every_line_as_text() {
        let r = TestConfigure
            .parse(Ok(
                b"+QMTCFG: \"echomode\",(0-5),(0,1)\r\n+QMTCFG: \"keepalive\",(0-5),(0-3600)",
            ))
            .unwrap();
        assert_eq!(r.lines().count(), 2);
        assert_eq!(
            r.lines().nth(1),
            Some("+QMTCFG: \"keepalive\",(0-5),(0-3600)")
        );
    }
}
