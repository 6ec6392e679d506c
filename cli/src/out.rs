//! Standard output: one JSON object per line, `"event"` first.

use std::io::Write as _;

use serde::Serialize;

/// One line of standard output. Fields are written in the order declared;
/// the ones that are `None` are left out.
#[derive(Serialize, Debug)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Ev<'a> {
    /// The client's network is open (`+QMTOPEN: id,0`).
    Opened { client: u8 },
    /// CONNACK accepted.
    Connected { client: u8 },
    /// One topic of the subscription, with the granted QoS (128: rejected).
    Subscribed { client: u8, topic: &'a str, qos: u8 },
    /// A message the broker acknowledged (QoS 1/2) or the modem sent (QoS 0).
    Published {
        client: u8,
        topic: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        line: Option<u64>,
        msg_id: u16,
    },
    /// A message from the broker.
    Message {
        client: u8,
        msg_id: u32,
        topic: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        payload: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        payload_hex: Option<String>,
    },
    /// `--stdin --flash`: a line journalled in the flash file (durable: it
    /// is sent after a restart if not acknowledged before).
    Stored { client: u8, line: u64, msg_id: u16 },
    /// `--stdin --flash`, at start: messages the flash file held, handed to
    /// the outbox again under their msgIDs.
    #[cfg(feature = "flash")]
    Reloaded { client: u8, messages: u32 },
    /// The modem closed the link (`+QMTSTAT`).
    LinkClosed { client: u8, code: u8 },
    /// A step failed.
    Error {
        op: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        line: Option<u64>,
        error: String,
    },
    /// DISCONNECT acknowledged.
    Disconnected { client: u8 },
    /// The client's network is closed.
    Closed { client: u8 },
    /// `--stdin`: the supervisor's state changed: `connecting` (with the
    /// `attempt`), `online`, `offline` (with the `reason`, and the `code` of
    /// a closed link or the `error` of a failed step), `backing_off` (with
    /// `delay_ms`).
    State {
        client: u8,
        state: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        attempt: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<&'static str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        code: Option<u8>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        delay_ms: Option<u64>,
        /// `resetting`: `software` (`AT+QRST=1`) or `hardware`.
        #[serde(skip_serializing_if = "Option::is_none")]
        how: Option<&'static str>,
    },
    /// `--stdin`: the supervisor sent `messages` outbox messages again
    /// (`total` so far).
    Resent {
        client: u8,
        messages: u32,
        total: u32,
    },
    /// `--stdin`, on exit: the outbox's high-water mark and capacity (bytes),
    /// and the messages still in it.
    Outbox {
        client: u8,
        high_water: usize,
        capacity: usize,
        messages: usize,
    },
    /// `--stdin`, on exit: what happened to the lines.
    Summary {
        client: u8,
        lines: u64,
        published: u64,
        failed: u64,
        undelivered: u64,
        resent: u32,
        connects: u32,
        link_losses: u32,
    },
    /// `--sim --stdin` without `--host`: the broker the CLI runs or chose.
    Broker {
        host: &'a str,
        port: u16,
        kind: &'a str,
    },
    /// `--sim-fault`: a fault was injected, `after_ms` after the link first
    /// came online.
    Fault { kind: &'a str, after_ms: u64 },
}

/// Writes one event line (and flushes it: a script reads it at once).
pub fn emit(ev: &Ev) {
    let line = serde_json::to_string(ev).expect("an event always serializes");
    let mut out = std::io::stdout().lock();
    // A closed standard output (`bc26 ... | head -1`) ends nothing here.
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// An `error` event for step `op`.
pub fn error(op: &str, e: &dyn std::fmt::Display) {
    emit(&Ev::Error {
        op,
        line: None,
        error: e.to_string(),
    });
}

/// A `message` event: the payload as text when it is UTF-8, else as hex.
pub fn message(m: &bc26_mqtt::Message<'_>) {
    let (payload, payload_hex) = match std::str::from_utf8(m.payload) {
        Ok(text) => (Some(text), None),
        Err(_) => (
            None,
            Some(m.payload.iter().map(|b| format!("{b:02x}")).collect()),
        ),
    };
    emit(&Ev::Message {
        client: m.client.get(),
        msg_id: m.msg_id,
        topic: m.topic,
        payload,
        payload_hex,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_name_comes_first_and_missing_fields_are_left_out() {
        let s = serde_json::to_string(&Ev::Error {
            op: "connect",
            line: None,
            error: "refused \"x\"\n".into(),
        })
        .unwrap();
        assert_eq!(
            s,
            r#"{"event":"error","op":"connect","error":"refused \"x\"\n"}"#
        );
        let s = serde_json::to_string(&Ev::LinkClosed { client: 2, code: 1 }).unwrap();
        assert_eq!(s, r#"{"event":"link_closed","client":2,"code":1}"#);
    }
}
