//! MQTT packets as values: the one small vocabulary shared by the modem side (clients, which
//! decide what to send and act on what arrives) and the MQTT side (`mqtt.rs`, which turns
//! them into bytes and back). Neither side imports the other; both import this.

/// A will, as `AT+QMTCFG="will"` configures it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Will {
    pub(crate) qos: u8,
    pub(crate) retain: bool,
    pub(crate) topic: String,
    pub(crate) msg: Vec<u8>,
}

/// A packet a client sends to its broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ToBroker {
    /// CONNECT at protocol level 3 (MQTT 3.1, `MQIsdp`) or 4 (MQTT 3.1.1).
    Connect {
        level: u8,
        client_id: String,
        username: Option<String>,
        password: Option<String>,
        keepalive: u16,
        clean_session: bool,
        will: Option<Will>,
    },
    Publish {
        topic: String,
        pkid: u16,
        payload: Vec<u8>,
        qos: u8,
        retain: bool,
        dup: bool,
    },
    PubAck(u16),
    PubRec(u16),
    PubRel(u16),
    PubComp(u16),
    Subscribe {
        pkid: u16,
        filters: Vec<(String, u8)>,
    },
    Unsubscribe {
        pkid: u16,
        filters: Vec<String>,
    },
    PingReq,
    Disconnect,
}

/// What a client needs to know of a packet from its broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FromBroker {
    ConnAck(u8),
    Publish {
        topic: Vec<u8>,
        pkid: u16,
        qos: u8,
        payload: Vec<u8>,
    },
    PubAck(u16),
    PubRec(u16),
    PubRel(u16),
    PubComp(u16),
    SubAck(u16, Vec<u8>),
    UnsubAck(u16),
    PingResp,
    /// A packet a broker does not send to a client (CONNECT, SUBSCRIBE, ...): ignored.
    Other,
}

/// A topic name MQTT 3.1.1 allows in a PUBLISH or a will (section 4.7): 1-65535 bytes of
/// UTF-8 (a `&str` is), no NUL, no wildcard (`+`, `#`).
pub(crate) fn topic_name_ok(t: &str) -> bool {
    !t.is_empty() && t.len() <= 65_535 && !t.contains(['\0', '+', '#'])
}

/// A topic filter MQTT 3.1.1 allows in a SUBSCRIBE or UNSUBSCRIBE (section 4.7): 1-65535
/// bytes of UTF-8, no NUL, `+` a whole level, `#` a whole level and the last one.
pub(crate) fn topic_filter_ok(f: &str) -> bool {
    if f.is_empty() || f.len() > 65_535 || f.contains('\0') {
        return false;
    }
    let levels: Vec<&str> = f.split('/').collect();
    levels.iter().enumerate().all(|(i, l)| {
        if l.contains('#') {
            *l == "#" && i == levels.len() - 1
        } else {
            !l.contains('+') || *l == "+"
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_refuse_wildcards_nul_and_empty() {
        for ok in ["a", "a/b", "/", "a//b", "$SYS/x", "é/ü"] {
            assert!(topic_name_ok(ok), "{ok}");
        }
        for bad in ["", "a/+", "#", "a/#", "a+b", "a\0b"] {
            assert!(!topic_name_ok(bad), "{bad:?}");
        }
    }

    #[test]
    fn topic_filters_allow_whole_level_wildcards_only() {
        for ok in ["a", "#", "+", "a/#", "a/+/b", "+/+", "/#", "a//+"] {
            assert!(topic_filter_ok(ok), "{ok}");
        }
        for bad in ["", "a/#/b", "a#", "a/b#", "a+", "a/+b", "##", "a\0"] {
            assert!(!topic_filter_ok(bad), "{bad:?}");
        }
    }
}
