//! `AT+QMTCFG`: the eight options as one table. Each option ([`Opt`]) is a list of fields
//! with their ranges and defaults; writing, querying and the test form are derived from it.

use std::time::Duration;

use crate::model::at::{int_in, string, Param, Refused, Res};
use crate::model::packet::{topic_name_ok, Will};

/// One field of an option.
#[derive(Clone, Copy)]
enum Field {
    /// An integer in `lo..=hi`; `default` until written (`None`: unset, as the will's QoS
    /// while the will is off). `shown`: the range the test form prints, when it is not
    /// `lo..=hi` (the reference prints `(1-10)` for retry_times but accepts 0).
    /// `skippable`: the write may leave it empty (`10,,1`) to keep its value.
    Int {
        lo: i64,
        hi: i64,
        default: Option<i64>,
        shown: Option<&'static str>,
        skippable: bool,
    },
    /// A quoted string, unset until written. `shown` is its name in the test form. `topic`:
    /// it must be a topic name MQTT allows (UTF-8, no wildcard, no NUL), or no CONNECT could
    /// carry it.
    Str {
        shown: &'static str,
        nonempty: bool,
        max: usize,
        topic: bool,
    },
}

const fn int(lo: i64, hi: i64, default: i64) -> Field {
    Field::Int {
        lo,
        hi,
        default: Some(default),
        shown: None,
        skippable: false,
    }
}

const fn int_unset(lo: i64, hi: i64) -> Field {
    Field::Int {
        lo,
        hi,
        default: None,
        shown: None,
        skippable: false,
    }
}

const fn text(shown: &'static str) -> Field {
    Field::Str {
        shown,
        nonempty: false,
        max: usize::MAX,
        topic: false,
    }
}

/// The options, in the order the test form lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Opt {
    Echomode,
    Dataformat,
    Keepalive,
    Session,
    Timeout,
    Will,
    Version,
    Aliauth,
}

struct Spec {
    name: &'static str,
    fields: &'static [Field],
    /// How many fields a write must give; the others may be left out and keep their value.
    required: usize,
    /// The first field switches the others on (1: all must be given) or off (0: none may be
    /// given, and they become unset), as `"will"`'s will_fg.
    switch: bool,
}

/// The table: one entry per [`Opt`], in the same order.
const SPECS: [Spec; 8] = [
    all("echomode", &[int(0, 1, 1)]),
    all("dataformat", &[int(0, 1, 0), int(0, 1, 0)]),
    all("keepalive", &[int(0, 3600, 120)]),
    all("session", &[int(0, 1, 1)]),
    Spec {
        name: "timeout",
        fields: &[
            int(1, 60, 10),
            Field::Int {
                lo: 0,
                hi: 10,
                default: Some(3),
                shown: Some("(1-10)"),
                skippable: true,
            },
            int(0, 1, 0),
        ],
        required: 1,
        switch: false,
    },
    Spec {
        name: "will",
        fields: &[
            int(0, 1, 0),
            int_unset(0, 2),
            int_unset(0, 1),
            Field::Str {
                shown: "\"will_topic\"",
                nonempty: true,
                max: 255,
                topic: true,
            },
            text("\"will_msg\""),
        ],
        required: 1,
        switch: true,
    },
    // The default level comes from `SimConfig::default_version` (see `ClientCfg::new`).
    all("version", &[int(3, 4, 4)]),
    all(
        "aliauth",
        &[
            text("\"productkey\""),
            text("\"devicename\""),
            text("\"devicesecret\""),
        ],
    ),
];

/// An option whose fields a write must all give.
const fn all(name: &'static str, fields: &'static [Field]) -> Spec {
    Spec {
        name,
        fields,
        required: fields.len(),
        switch: false,
    }
}

impl Opt {
    pub(crate) const ALL: [Opt; 8] = [
        Opt::Echomode,
        Opt::Dataformat,
        Opt::Keepalive,
        Opt::Session,
        Opt::Timeout,
        Opt::Will,
        Opt::Version,
        Opt::Aliauth,
    ];

    fn spec(self) -> &'static Spec {
        &SPECS[self as usize]
    }

    pub(crate) fn by_name(name: &[u8]) -> Option<Opt> {
        Opt::ALL
            .into_iter()
            .find(|o| o.spec().name.as_bytes().eq_ignore_ascii_case(name))
    }

    /// Its line of the test form: `+QMTCFG: "timeout",(0-5),(1-60),(1-10),(0,1)`.
    pub(crate) fn test_line(self) -> Vec<u8> {
        let s = self.spec();
        let mut l = format!("+QMTCFG: \"{}\",(0-5)", s.name);
        for f in s.fields {
            l.push(',');
            match *f {
                Field::Int { shown: Some(r), .. } | Field::Str { shown: r, .. } => l.push_str(r),
                Field::Int { lo, hi, .. } if hi == lo + 1 => l.push_str(&format!("({lo},{hi})")),
                Field::Int { lo, hi, .. } => l.push_str(&format!("({lo}-{hi})")),
            }
        }
        l.into_bytes()
    }
}

/// A field's value.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Val {
    Unset,
    Int(i64),
    Str(Vec<u8>),
}

/// The options of one client, with typed accessors for the rest of the modem.
#[derive(Debug, Clone)]
pub(crate) struct ClientCfg {
    vals: Vec<Vec<Val>>,
}

impl ClientCfg {
    /// Every option at its default; `version` is the MQTT level until `"version"` is written.
    pub(crate) fn new(version: u8) -> Self {
        let mut vals: Vec<Vec<Val>> = Opt::ALL
            .iter()
            .map(|o| {
                o.spec()
                    .fields
                    .iter()
                    .map(|f| match f {
                        Field::Int {
                            default: Some(d), ..
                        } => Val::Int(*d),
                        _ => Val::Unset,
                    })
                    .collect()
            })
            .collect();
        vals[Opt::Version as usize][0] = Val::Int(version as i64);
        ClientCfg { vals }
    }

    fn int(&self, o: Opt, i: usize) -> i64 {
        match self.vals[o as usize][i] {
            Val::Int(v) => v,
            _ => 0,
        }
    }

    fn bytes(&self, o: Opt, i: usize) -> Vec<u8> {
        match &self.vals[o as usize][i] {
            Val::Str(s) => s.clone(),
            _ => Vec::new(),
        }
    }

    pub(crate) fn pkt_timeout(&self) -> Duration {
        Duration::from_secs(self.int(Opt::Timeout, 0).max(1) as u64)
    }
    pub(crate) fn retry_times(&self) -> u32 {
        self.int(Opt::Timeout, 1) as u32
    }
    pub(crate) fn timeout_notice(&self) -> bool {
        self.int(Opt::Timeout, 2) == 1
    }
    pub(crate) fn clean_session(&self) -> bool {
        self.int(Opt::Session, 0) == 1
    }
    /// Keep-alive in seconds (0: off).
    pub(crate) fn keepalive(&self) -> u16 {
        self.int(Opt::Keepalive, 0) as u16
    }
    pub(crate) fn version(&self) -> u8 {
        self.int(Opt::Version, 0) as u8
    }
    pub(crate) fn send_hex(&self) -> bool {
        self.int(Opt::Dataformat, 0) == 1
    }
    pub(crate) fn recv_hex(&self) -> bool {
        self.int(Opt::Dataformat, 1) == 1
    }
    pub(crate) fn echomode(&self) -> bool {
        self.int(Opt::Echomode, 0) == 1
    }
    pub(crate) fn will(&self) -> Option<Will> {
        (self.int(Opt::Will, 0) == 1).then(|| Will {
            qos: self.int(Opt::Will, 1) as u8,
            retain: self.int(Opt::Will, 2) == 1,
            topic: String::from_utf8_lossy(&self.bytes(Opt::Will, 3)).into_owned(),
            msg: self.bytes(Opt::Will, 4),
        })
    }

    /// Apply a write (`args`: the parameters after the client id); nothing changes on error.
    pub(crate) fn write(&mut self, o: Opt, args: &[Param]) -> Res {
        let spec = o.spec();
        let given = if spec.switch {
            if int_in(args.first(), 0, 1).map_err(|_| Refused)? == 1 {
                spec.fields.len()
            } else {
                1
            }
        } else {
            args.len()
        };
        if args.len() != given || !(spec.required..=spec.fields.len()).contains(&given) {
            return Err(Refused);
        }
        let mut vals = self.vals[o as usize].clone();
        for (i, (f, arg)) in spec.fields.iter().zip(args).enumerate() {
            vals[i] = match (*f, arg) {
                (
                    Field::Int {
                        skippable: true, ..
                    },
                    Param::Empty,
                ) => continue,
                (Field::Int { lo, hi, .. }, _) => {
                    Val::Int(int_in(Some(arg), lo, hi).map_err(|_| Refused)?)
                }
                (
                    Field::Str {
                        nonempty,
                        max,
                        topic,
                        ..
                    },
                    _,
                ) => {
                    let s = string(Some(arg)).map_err(|_| Refused)?;
                    let bad_topic = topic && !std::str::from_utf8(&s).is_ok_and(topic_name_ok);
                    if (nonempty && s.is_empty()) || s.len() > max || bad_topic {
                        return Err(Refused);
                    }
                    Val::Str(s)
                }
            };
        }
        if spec.switch && given == 1 {
            vals[1..].fill(Val::Unset);
        }
        self.vals[o as usize] = vals;
        Ok(())
    }

    /// The query line, `None` while the option is unset (`"aliauth"` before it is written).
    /// `quote`: quote the string fields (`SimConfig::quote_cfg_strings`).
    pub(crate) fn query(&self, o: Opt, quote: bool) -> Option<Vec<u8>> {
        let vals = &self.vals[o as usize];
        if vals.first() == Some(&Val::Unset) {
            return None;
        }
        let mut l = format!("+QMTCFG: \"{}\"", o.spec().name).into_bytes();
        for v in vals {
            match v {
                Val::Unset => continue,
                Val::Int(i) => l.extend_from_slice(format!(",{i}").as_bytes()),
                Val::Str(s) if quote => {
                    l.extend_from_slice(b",\"");
                    l.extend_from_slice(s);
                    l.push(b'"');
                }
                Val::Str(s) => {
                    l.push(b',');
                    l.extend_from_slice(s);
                }
            }
        }
        Some(l)
    }
}
