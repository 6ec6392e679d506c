//! The model's network boundary: the TCP links of its MQTT clients, as actions the model
//! asks for ([`NetAction`]) and events the network reports ([`NetEvent`]).
//!
//! The boundary carries each link's **encoded MQTT bytes**, not typed packets: the model
//! encodes what it sends and decodes what it receives (`mqtt.rs`), so a real broker behind
//! TCP (the threaded simulator) and an in-process broker model (a virtual-time world) see
//! the very same bytes, any cut of a TCP stream can be replayed, and the codec is tested by
//! every run.

/// One TCP link of one client. A client's every `AT+QMTOPEN` gets a new one (numbered from 0
/// in order, so runs are reproducible); events for a link the model no longer holds are
/// ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LinkId {
    n: u64,
    client: u8,
}

impl LinkId {
    /// Link number `n` (the model's `n`-th), of client `client`.
    pub(crate) fn new(n: u64, client: u8) -> LinkId {
        LinkId { n, client }
    }

    /// The client (`tcpconnectID` 0-5) the link belongs to.
    pub fn client(self) -> u8 {
        self.client
    }

    /// Its number (unique in one model's life).
    pub fn number(self) -> u64 {
        self.n
    }
}

/// Why a TCP connect failed (`+QMTOPEN: <id>,<result>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectError {
    /// The host name did not resolve: result 4.
    NameNotResolved,
    /// No address accepted (refused, unreachable, timed out): result -1.
    Refused,
}

/// What the model asks of the network, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetAction {
    /// Open a TCP connection to `host:port` for `link`; answer with [`NetEvent::Connected`]
    /// or [`NetEvent::ConnectFailed`].
    Connect {
        /// The new link.
        link: LinkId,
        /// As the host wrote it in `AT+QMTOPEN` (a name or an address).
        host: String,
        /// 1-65535.
        port: u16,
    },
    /// Write these bytes (whole MQTT packets) on `link`.
    Send {
        /// An open link.
        link: LinkId,
        /// Encoded MQTT.
        bytes: Vec<u8>,
    },
    /// Close `link` (the peer sees the TCP connection end; no DISCONNECT unless one was
    /// sent). No event is expected after it.
    Close {
        /// The link to close.
        link: LinkId,
    },
}

/// What the network reports to the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetEvent<'a> {
    /// The TCP connect of `link` succeeded. The model answers with [`NetAction::Close`] if it
    /// no longer wants the link.
    Connected(LinkId),
    /// The TCP connect of `link` failed.
    ConnectFailed(LinkId, ConnectError),
    /// Bytes from the broker on `link`, in order, cut anywhere.
    Data(LinkId, &'a [u8]),
    /// The peer closed or reset `link`, or writing to it failed.
    Closed(LinkId),
}
