//! The command line: flags (clap), and the checks that refuse a bad argument
//! before anything reaches the modem.

use bc26_mqtt::commands::{Connect, OpenNetwork, PublishDataMode, Subscribe, Will};
use bc26_mqtt::{ClientId, QoS};
use std::time::Duration;

use clap::{ArgGroup, Parser};

use crate::faults::{self, duration, Fault, Kind};

/// Drive a Quectel BC26's MQTT client (the AT+QMT* commands) from the command
/// line: on a real modem behind a serial adapter, or on the BC26 simulator.
///
/// It sends `AT` (until the modem answers), `ATE0`, `AT+CMEE=1`, `AT+CEREG?`
/// (until registered, 60 s at most) and `AT+CGATT?`, then configures what the
/// flags ask, opens, connects, subscribes, publishes, listens, disconnects and
/// closes.
///
/// Standard output is one JSON object per line, "event" first: opened,
/// connected, subscribed (with the granted "qos", 128 if rejected), published
/// (with "msg_id"), message ("payload", or "payload_hex" when the bytes are not
/// UTF-8), link_closed (with "code"), error (with "op" and "error"),
/// disconnected, closed. Logs go to standard error.
///
/// Exit status: 0 when every step succeeded, 1 otherwise, 2 for bad arguments
/// (refused before anything is sent to the modem).
///
/// Standard input (--stdin TOPIC): the driver's supervisor keeps the client
/// online (modem, registration, configuration, open, connect, --sub again
/// after every reconnect) and each line of input (LF or CR LF, at most 1024
/// bytes, 512 with --hex) is published on TOPIC, in order. Events: state
/// (connecting with "attempt", online, offline with "reason": link_closed
/// with "code", modem_rebooted, modem_silent, not_registered, not_connected,
/// subscription_rejected, failed with "error"; backing_off with "delay_ms";
/// resetting with "how": software, AT+QRST=1, after 3 attempts in a row
/// found the modem silent),
/// published (with "line" and "msg_id", in line order, once the broker
/// acknowledged the line at QoS 1/2, or the modem sent it at QoS 0), resent
/// (the supervisor sent stored lines again), error (with "op":"publish" and
/// "line" for a line that was not published: too long, Ctrl+Z/ESC without
/// --hex, QoS 0 while offline, QoS 0 dropped by a link loss before the
/// modem sent it, refused by the modem), message and link_closed as above;
/// each line gets exactly one published or error event; at the
/// end outbox (its high-water mark and capacity in bytes, messages left),
/// summary (lines, published, failed, undelivered, resent, connects,
/// link_losses), error with "op":"deliver" when lines were lost, then
/// disconnected and closed. Exit status 0 when every line was delivered, 1
/// when any was not (refused, too long, still in the outbox when
/// --drain-timeout ran out, or QoS 0 dropped by a link loss), saying how
/// many. QoS 1/2 lines wait in the outbox while the link is down and may
/// reach the broker twice (re-sent after a link loss); QoS 0 lines are
/// refused while the link is down (the first one waits for it to come up).
#[derive(Parser, Debug)]
#[command(name = "bc26", after_help = EXAMPLES)]
#[command(group(ArgGroup::new("modem").required(true).args(["serial", "sim"])))]
pub struct Args {
    /// The modem's serial device (a USB serial adapter, or a pseudo-terminal).
    #[arg(long, value_name = "PATH", help_heading = "Modem")]
    pub serial: Option<String>,

    /// Baud rate of the serial device.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 115200,
        help_heading = "Modem"
    )]
    pub baud: u32,

    /// Use the BC26 simulator instead of a modem, and an in-process MQTT
    /// broker unless --host names one (MQTT_HOST/MQTT_PORT, when set, name
    /// the broker instead of the in-process one).
    #[arg(long, help_heading = "Modem")]
    pub sim: bool,

    /// Show the AT traffic on standard error.
    #[arg(long, help_heading = "Modem")]
    pub trace: bool,

    /// With --sim: report the simulator's power model on standard output, a
    /// "power" event at each change of the module's power state ("at_ms",
    /// "state") and a "charge" event at the end (charge per state and in
    /// total in mC, energy in mJ at 3.3 V, counters). Without it, --sim prints
    /// the charge meter's total on standard error at the end.
    #[arg(long, help_heading = "Modem")]
    pub power: bool,

    /// The broker's host name or address (needed with --serial).
    #[arg(
        long,
        value_name = "H",
        required_unless_present = "sim",
        help_heading = "Broker"
    )]
    pub host: Option<String>,

    /// The broker's port.
    #[arg(
        long,
        value_name = "P",
        default_value_t = 1883,
        help_heading = "Broker"
    )]
    pub port: u16,

    /// The modem's MQTT client (its tcpconnectID), 0-5.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 0,
        help_heading = "MQTT client"
    )]
    pub id: u8,

    /// The MQTT client identifier [default: bc26-<pid>].
    #[arg(long, value_name = "S", help_heading = "MQTT client")]
    pub client_id: Option<String>,

    /// User name for the broker.
    #[arg(long, value_name = "U", help_heading = "MQTT client")]
    pub user: Option<String>,

    /// Password for the broker.
    #[arg(long, value_name = "P", help_heading = "MQTT client")]
    pub password: Option<String>,

    /// MQTT version: 3 (3.1) or 4 (3.1.1) [default: the modem's].
    #[arg(long, value_name = "3|4", value_parser = clap::value_parser!(u8).range(3..=4), help_heading = "MQTT client")]
    pub version: Option<u8>,

    /// Keep-alive in seconds, 0-3600 [default: the modem's].
    #[arg(long, value_name = "S", value_parser = clap::value_parser!(u16).range(0..=3600), help_heading = "MQTT client")]
    pub keepalive: Option<u16>,

    /// Clean session, 0 or 1 [default: the modem's].
    #[arg(long, value_name = "0|1", value_parser = clap::value_parser!(u8).range(0..=1), help_heading = "MQTT client")]
    pub clean_session: Option<u8>,

    /// A will, published by the broker when the link dies.
    #[arg(long, value_name = "TOPIC=MESSAGE", value_parser = topic_value, help_heading = "MQTT client")]
    pub will: Option<(String, String)>,

    /// Hex data format both ways (for payloads holding Ctrl+Z or ESC).
    #[arg(long, help_heading = "MQTT client")]
    pub hex: bool,

    /// Subscribe to TOPIC (repeatable; one AT+QMTSUB for all).
    #[arg(long, value_name = "TOPIC", help_heading = "Messages")]
    pub sub: Vec<String>,

    /// Publish PAYLOAD on TOPIC (repeatable; after the subscriptions are
    /// acknowledged).
    #[arg(long = "pub", value_name = "TOPIC=PAYLOAD", value_parser = topic_value, help_heading = "Messages")]
    pub publish: Vec<(String, String)>,

    /// QoS of subscriptions, publishes and the will, 0-2.
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=2), help_heading = "Messages")]
    pub qos: u8,

    /// Publish retained (and a retained will).
    #[arg(long, help_heading = "Messages")]
    pub retain: bool,

    /// Print the messages that arrive for SECS seconds before disconnecting.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 0,
        help_heading = "Messages"
    )]
    pub listen: u64,

    /// Keep the link up (the driver's supervisor: it reconnects,
    /// re-subscribes --sub, re-sends) and publish each line of standard
    /// input on TOPIC, in order, with --qos and --retain. QoS 1/2 lines go
    /// through the outbox and are delivered at least once across link
    /// losses. At the end of input: wait until the outbox is empty
    /// (--drain-timeout), disconnect, close. See "Standard input" below.
    #[arg(long, value_name = "TOPIC", conflicts_with = "publish", help_heading = SUP)]
    pub stdin: Option<String>,

    /// With --stdin (QoS 1/2): journal each line in FILE, which stands for
    /// the device's flash (64 KiB, created erased), before it is reported
    /// `stored`; at start, send again what FILE holds. Lines survive a kill
    /// of the process (built with the `flash` feature).
    #[cfg(feature = "flash")]
    #[arg(long, value_name = "FILE", requires = "stdin", help_heading = SUP)]
    pub flash: Option<std::path::PathBuf>,

    /// How long to wait, after the end of input, for the outbox to empty.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = duration, help_heading = SUP)]
    pub drain_timeout: Duration,

    /// Outbox messages in flight at once, 1-4. With 1 a line goes out only
    /// after the one before it was acknowledged, so lines first reach the
    /// broker in their order whatever fails. More is faster, but lines may
    /// then reach the broker out of order, even without a fault (seen: 4
    /// lanes racing for the modem).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=4), help_heading = SUP)]
    pub in_flight: u8,

    /// First delay before bringing a lost link up again (doubling, jittered).
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = duration, help_heading = SUP)]
    pub backoff_min: Duration,

    /// Longest delay between two attempts.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = duration, help_heading = SUP)]
    pub backoff_max: Duration,

    /// How often to ask AT / AT+CEREG? while waiting for the modem or the
    /// network.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = duration, help_heading = SUP)]
    pub poll_interval: Duration,

    /// While online, how often to check AT+QMTCONN? (0s: never).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = duration, help_heading = SUP)]
    pub health_check: Duration,

    /// The modem's packet timeout, 1-60 s (AT+QMTCFG="timeout").
    #[arg(long, value_name = "S", default_value_t = 10, value_parser = clap::value_parser!(u8).range(1..=60), help_heading = SUP)]
    pub pkt_timeout: u8,

    /// The modem's retransmissions, 0-10 (AT+QMTCFG="timeout").
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u8).range(0..=10), help_heading = SUP)]
    pub retries: u8,

    /// How long a command may wait for OK/ERROR.
    #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = duration, help_heading = SUP)]
    pub command_timeout: Duration,

    /// With --sim and --stdin: inject a fault of the simulator at TIME after
    /// the link first came online (repeatable). KIND is link-reset (the peer
    /// resets the link: +QMTSTAT 1), link-close:CODE (the module closes it:
    /// +QMTSTAT CODE), reboot (the module restarts: links and settings
    /// lost, RDY), silence:DURATION (a dead UART), registration-loss:DURATION
    /// (+CEREG 0, links dropped), broker-restart:DURATION (the broker stops
    /// and starts again, empty; only with the broker --sim runs itself, not
    /// with --host). Durations and times: 250ms, 2s, 1.5s, 1m. Each step is
    /// reported as a "fault" event.
    #[arg(long, value_name = "KIND@TIME", value_parser = faults::parse, requires_all = ["sim", "stdin"], help_heading = SUP)]
    pub sim_fault: Vec<Fault>,
}

const SUP: &str = "Standard input (a supervised link)";

const EXAMPLES: &str = "\
Examples:
  bc26 --serial /dev/ttyUSB0 --host broker.hivemq.com --sub dev/cmd \\
       --pub 'dev/telemetry={\"t\":21}' --qos 1 --listen 10
  bc26 --sim --sub a/b --pub a/b=hello --listen 1        # no hardware
  tail -f app.log | bc26 --serial /dev/ttyUSB0 --host broker.hivemq.com \\
       --stdin dev/log --qos 1
  for i in $(seq 1 50); do echo $i; sleep 0.1; done |
  bc26 --sim --stdin demo/n --qos 1 --sub demo/n \\
       --backoff-min 200ms --sim-fault link-reset@1s --sim-fault reboot@2s \\
       --sim-fault broker-restart:1s@3s --trace         # recovery, no hardware";

/// `TOPIC=VALUE`.
fn topic_value(s: &str) -> Result<(String, String), String> {
    let (k, v) = s.split_once('=').ok_or("takes TOPIC=VALUE")?;
    Ok((k.to_owned(), v.to_owned()))
}

/// What the run needs, checked.
#[derive(Debug)]
pub struct Run {
    pub args: Args,
    pub id: ClientId,
    pub qos: QoS,
    pub client_id: String,
}

impl Args {
    /// Everything that goes on an AT line is checked by the driver's own
    /// constructors, before anything is sent to the modem.
    pub fn check(self) -> Result<Run, String> {
        let id = ClientId::new(self.id).map_err(|_| "--id is 0-5".to_owned())?;
        let qos = QoS::new(self.qos).map_err(|_| "--qos is 0-2".to_owned())?;
        let client_id = self
            .client_id
            .clone()
            .unwrap_or_else(|| format!("bc26-{}", std::process::id()));
        let host = self.host.as_deref().unwrap_or("127.0.0.1");
        OpenNetwork::new(id, host, self.port).map_err(|e| format!("--host/--port: {e}"))?;
        Connect::new(
            id,
            &client_id,
            self.user.as_deref(),
            self.password.as_deref(),
        )
        .map_err(|e| format!("--client-id/--user/--password: {e}"))?;
        if let Some((t, m)) = &self.will {
            Will::new(t, m, qos, self.retain).map_err(|e| format!("--will: {e}"))?;
        }
        if !self.sub.is_empty() {
            let topics: Vec<(&str, QoS)> = self.sub.iter().map(|t| (t.as_str(), qos)).collect();
            Subscribe::new(id, 1, &topics).map_err(|e| format!("--sub: {e}"))?;
        }
        if let Some(t) = &self.stdin {
            let msg_id = if qos == QoS::AtMostOnce { 0 } else { 1 };
            PublishDataMode::new(id, msg_id, qos, self.retain, t)
                .map_err(|e| format!("--stdin {t}: {e}"))?;
        }
        let restart = self
            .sim_fault
            .iter()
            .any(|f| matches!(f.kind, Kind::BrokerRestart(_)));
        if restart && self.host.is_some() {
            return Err(
                "--sim-fault broker-restart: only with the broker --sim runs (leave out --host)"
                    .into(),
            );
        }
        if self.power && !self.sim {
            return Err("--power reports the simulator's power model: only with --sim".into());
        }
        if self.backoff_min > self.backoff_max {
            return Err("--backoff-min is longer than --backoff-max".into());
        }
        for (t, p) in &self.publish {
            let msg_id = if qos == QoS::AtMostOnce { 0 } else { 1 };
            PublishDataMode::new(id, msg_id, qos, self.retain, t)
                .map_err(|e| format!("--pub {t}: {e}"))?;
            let wire = if self.hex { 2 * p.len() } else { p.len() };
            if wire > bc26_mqtt::limits::DATA_MODE_PAYLOAD {
                return Err(format!("--pub {t}: payload too long ({} bytes)", p.len()));
            }
            if !self.hex && p.bytes().any(|b| b == 0x1a || b == 0x1b) {
                return Err(format!("--pub {t}: payload holds Ctrl+Z or ESC: use --hex"));
            }
        }
        Ok(Run {
            args: self,
            id,
            qos,
            client_id,
        })
    }
}
