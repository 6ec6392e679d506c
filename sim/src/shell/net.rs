//! The shell's network: the model's links as real TCP connections. A connect runs on a
//! thread of its own (name resolution and `connect_timeout`), each open link has a reader
//! thread, and writes happen on the modem thread (as a module's TCP stack takes them).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::mpsc::Sender;
use std::time::Duration;

use crate::model::{ConnectError, LinkId};
use crate::shell::msg::{Msg, NetMsg};

/// The open links.
pub(crate) struct Links {
    streams: BTreeMap<LinkId, TcpStream>,
    connect_timeout: Duration,
    tx: Sender<Msg>,
}

/// The TCP connect behind `AT+QMTOPEN`: a name that does not resolve, or no address that
/// accepts.
fn tcp_connect(host: &str, port: u16, timeout: Duration) -> Result<TcpStream, ConnectError> {
    let addrs: Vec<_> = (host, port)
        .to_socket_addrs()
        .map_err(|_| ConnectError::NameNotResolved)?
        .collect();
    if addrs.is_empty() {
        return Err(ConnectError::NameNotResolved);
    }
    addrs
        .iter()
        .find_map(|a| TcpStream::connect_timeout(a, timeout).ok())
        .ok_or(ConnectError::Refused)
}

impl Links {
    pub(crate) fn new(connect_timeout: Duration, tx: Sender<Msg>) -> Self {
        Links {
            streams: BTreeMap::new(),
            connect_timeout,
            tx,
        }
    }

    /// Connect `link` on a thread; the result comes back as a [`NetMsg`].
    pub(crate) fn connect(&self, link: LinkId, host: String, port: u16) {
        let tx = self.tx.clone();
        let timeout = self.connect_timeout;
        let spawned = std::thread::Builder::new()
            .name(format!("bc26-sim-open{}", link.client()))
            .spawn(move || {
                let m = match tcp_connect(&host, port, timeout) {
                    Ok(s) => NetMsg::Connected(link, s),
                    Err(e) => NetMsg::ConnectFailed(link, e),
                };
                let _ = tx.send(Msg::Net(m));
            });
        if spawned.is_err() {
            let _ = self
                .tx
                .send(Msg::Net(NetMsg::ConnectFailed(link, ConnectError::Refused)));
        }
    }

    /// A connected stream becomes `link`, with a reader thread; `false` if it cannot.
    pub(crate) fn adopt(&mut self, link: LinkId, stream: TcpStream) -> bool {
        let _ = stream.set_nodelay(true);
        let Ok(mut reader) = stream.try_clone() else {
            return false;
        };
        let tx = self.tx.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("bc26-sim-mqtt{}", link.client()))
            .spawn(move || {
                let mut buf = [0u8; 4096];
                loop {
                    let m = match reader.read(&mut buf) {
                        Ok(0) | Err(_) => NetMsg::Closed(link),
                        Ok(n) => NetMsg::Data(link, buf[..n].to_vec()),
                    };
                    let closed = matches!(m, NetMsg::Closed(_));
                    if tx.send(Msg::Net(m)).is_err() || closed {
                        return;
                    }
                }
            });
        if spawned.is_err() {
            return false;
        }
        self.streams.insert(link, stream);
        true
    }

    /// Write on `link`; `false` when it failed (the link is then gone).
    pub(crate) fn write(&mut self, link: LinkId, bytes: &[u8]) -> bool {
        let ok = self
            .streams
            .get_mut(&link)
            .is_some_and(|s| s.write_all(bytes).is_ok());
        if !ok {
            self.close(link);
        }
        ok
    }

    /// Close `link` (its reader thread ends).
    pub(crate) fn close(&mut self, link: LinkId) {
        if let Some(s) = self.streams.remove(&link) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    pub(crate) fn close_all(&mut self) {
        for (_, s) in std::mem::take(&mut self.streams) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}
