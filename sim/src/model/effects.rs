//! What an owner (a client, the network) asks of the rest of the model while it handles an
//! input: packets and TCP actions for its link, and result lines for the host. The modem
//! collects them after each call, in order, and turns them into output (`modem.rs`).

use crate::model::link::LinkId;
use crate::model::packet::ToBroker;

/// A request to the network side, in the order it was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NetRequest {
    /// Open a TCP connection for `link`.
    Connect {
        link: LinkId,
        host: String,
        port: u16,
    },
    /// Send a packet on `link`.
    Send(LinkId, ToBroker),
    /// Close `link` (no DISCONNECT unless one was sent before).
    Close(LinkId),
}

/// When a line for the host goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum When {
    /// A deferred result (`+QMTOPEN: 0,0`): after `SimConfig::result_delay`.
    Result,
    /// A URC (`+QMTRECV`, `+QMTSTAT`): as soon as the lines before it have gone out.
    Urc,
}

/// The effects of one input, collected in order.
#[derive(Debug, Default)]
pub(crate) struct Effects {
    net: Vec<NetRequest>,
    lines: Vec<(When, Vec<u8>)>,
}

impl Effects {
    pub(crate) fn connect(&mut self, link: LinkId, host: String, port: u16) {
        self.net.push(NetRequest::Connect { link, host, port });
    }

    pub(crate) fn send(&mut self, link: LinkId, p: ToBroker) {
        self.net.push(NetRequest::Send(link, p));
    }

    pub(crate) fn close(&mut self, link: LinkId) {
        self.net.push(NetRequest::Close(link));
    }

    /// A deferred result line (without its framing CRLFs).
    pub(crate) fn result(&mut self, line: String) {
        self.lines.push((When::Result, line.into_bytes()));
    }

    /// An unsolicited line (without its framing CRLFs).
    pub(crate) fn urc(&mut self, line: Vec<u8>) {
        self.lines.push((When::Urc, line));
    }

    /// Everything asked so far, in order: the network requests, then the lines.
    pub(crate) fn drain(
        &mut self,
    ) -> (
        std::vec::Drain<'_, NetRequest>,
        std::vec::Drain<'_, (When, Vec<u8>)>,
    ) {
        (self.net.drain(..), self.lines.drain(..))
    }
}
