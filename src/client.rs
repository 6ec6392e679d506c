//! The handles application tasks use: [`Modem`] for the whole modem,
//! [`MqttClient`] for one of its six MQTT clients, [`Events`] for what arrives.

use atat::AtatCmd;
use embassy_sync::pubsub::{DynSubscriber, WaitResult};
use embassy_time::{with_deadline, Duration, Instant};

use crate::channel::Payload;
use crate::commands::*;
use crate::error::{ConnackCode, Error, Field, OpenError, Problem, Stage};
use crate::state::{
    packet_deadline, Core, OpKind, OpOutcome, OpWait, PubOutcome, Shared, SlotWait, Stats,
};
use crate::types::{check_topic, limits, quoted_safe, ClientId, DataFormat, MqttVersion, QoS};
use crate::urc::{Event, Granted, SubValue};

/// The whole modem: clients, events, statistics, and any other AT command.
/// `Copy`; use it from as many tasks as you like.
#[derive(Clone, Copy)]
pub struct Modem<'a> {
    pub(crate) core: Core<'a>,
}

impl<'a> Modem<'a> {
    /// The handle of MQTT client `id` (the modem's `tcpconnectID`).
    pub fn client(&self, id: ClientId) -> MqttClient<'a> {
        MqttClient {
            core: self.core,
            id,
        }
    }

    /// A new subscription to messages and link events. At most `SUBSCRIBERS`
    /// (a [`State`](crate::State) parameter) exist at once; events that arrive
    /// while none exists are dropped and counted.
    pub fn events(&self) -> Result<Events<'a>, Error> {
        let sub = self
            .core
            .events
            .subscriber()
            .ok_or(Error::TooManySubscribers)?;
        self.core.sh.subscribers.lock(|c| c.set(c.get() + 1));
        Ok(Events {
            sub,
            sh: self.core.sh,
        })
    }

    /// What the driver has dropped or could not place so far.
    pub fn stats(&self) -> Stats {
        self.core.sh.stats.lock(|s| s.get())
    }

    /// Sends any other AT command (`AT+CEREG?`, `ATE0`, ...) through the same
    /// channel and returns its parsed answer: firmware needs no second AT
    /// client. Its deadline is the command's `MAX_TIMEOUT_MS`. Information
    /// lines with the command's own prefix (and bare lines such as an IMEI)
    /// are its answer; other `+` lines are treated as URCs. The line must fit
    /// the `LINE` buffer: atat's derived `write` panics when it does not.
    pub async fn send<C: AtatCmd>(&self, cmd: &C) -> Result<C::Response, Error> {
        let timeout = Duration::from_millis(C::MAX_TIMEOUT_MS.into());
        self.core.command(cmd, timeout).await
    }

    /// Like [`send`](Self::send), with the deadline for the final response
    /// chosen by the caller (a short one for a bare `AT` that wakes a sleeping
    /// modem, a long one for a network scan).
    pub async fn send_with_timeout<C: AtatCmd>(
        &self,
        cmd: &C,
        timeout: Duration,
    ) -> Result<C::Response, Error> {
        self.core.command(cmd, timeout).await
    }

    /// `AT+QMTOPEN?`: which clients are open, to which host and port.
    pub async fn open_links(&self) -> Result<OpenLinks, Error> {
        self.core
            .command(&QueryOpenNetworks, self.core.config().command_timeout)
            .await
    }

    /// `AT+QMTCONN?`: the MQTT state of each client.
    pub async fn connection_states(&self) -> Result<ConnectionStates, Error> {
        self.core
            .command(&QueryConnectionState, self.core.config().command_timeout)
            .await
    }
}

/// A subscription to the driver's events. Read it often: when it falls
/// `EVENTS` behind, the oldest events are overwritten and it reads
/// [`Event::Missed`]. The ingress never waits for it.
pub struct Events<'a> {
    sub: DynSubscriber<'a, Event>,
    sh: &'a Shared,
}

impl Events<'_> {
    /// The next event, waiting for one.
    pub async fn next(&mut self) -> Event {
        match self.sub.next_message().await {
            WaitResult::Message(e) => e,
            WaitResult::Lagged(n) => Event::Missed(n),
        }
    }

    /// The next event if one is queued.
    pub fn try_next(&mut self) -> Option<Event> {
        self.sub.try_next_message().map(|r| match r {
            WaitResult::Message(e) => e,
            WaitResult::Lagged(n) => Event::Missed(n),
        })
    }
}

impl Drop for Events<'_> {
    fn drop(&mut self) {
        self.sh
            .subscribers
            .lock(|c| c.set(c.get().saturating_sub(1)));
    }
}

/// A completed publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Published {
    /// The msgID the driver used (0 for QoS 0).
    pub msg_id: u16,
    /// Retransmissions the modem reported on the way (`+QMTPUB: ...,1,<n>`).
    pub retransmissions: u16,
}

/// One of the modem's six MQTT clients. `Copy`; operations of different
/// clients overlap, and so do publishes of one client (up to `INFLIGHT`).
#[derive(Clone, Copy)]
pub struct MqttClient<'a> {
    core: Core<'a>,
    id: ClientId,
}

/// Frees the operation slot when the operation ends in any way.
struct OpGuard<'c, 'a> {
    core: &'c Core<'a>,
    i: usize,
}

impl Drop for OpGuard<'_, '_> {
    fn drop(&mut self) {
        self.core.sh.with_clients(|c| c[self.i].op = OpWait::Free);
        self.core.sh.op_signals[self.i].reset();
    }
}

/// Frees a publish slot when the publish ends in any way.
struct SlotGuard<'a> {
    slot: &'a crate::state::PubSlot,
}

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        self.slot.wait.lock(|w| w.set(SlotWait::Free));
        self.slot.signal.reset();
    }
}

impl<'a> MqttClient<'a> {
    /// The client's `tcpconnectID`.
    pub fn id(&self) -> ClientId {
        self.id
    }

    fn cmd_timeout(&self) -> Duration {
        self.core.config().command_timeout
    }

    async fn cfg<C: AtatCmd>(&self, cmd: &C) -> Result<C::Response, Error> {
        self.core.command(cmd, self.cmd_timeout()).await
    }

    // ------------------------------------------------------------ AT+QMTCFG

    /// Sets the will (or clears it with `None`): `AT+QMTCFG="will"`.
    pub async fn set_will(&self, will: Option<Will<'_>>) -> Result<(), Error> {
        self.cfg(&ConfigureWill {
            client: self.id,
            will,
        })
        .await
        .map(drop)
    }

    /// Reads the will: `AT+QMTCFG="will",<id>`.
    pub async fn will(&self) -> Result<WillSetting, Error> {
        self.cfg(&QueryWill { client: self.id }).await
    }

    /// Sets the packet timeout (1-60 s), retransmissions (0-10) and timeout
    /// notice: `AT+QMTCFG="timeout"`. The driver's own deadlines for
    /// CONN/SUB/UNS/PUB results follow from then on.
    pub async fn set_timeout(
        &self,
        pkt_timeout_s: u8,
        retry_times: u8,
        notice: bool,
    ) -> Result<(), Error> {
        let cmd = ConfigureTimeout::new(self.id, pkt_timeout_s, retry_times, notice)?;
        self.cfg(&cmd).await?;
        let (_, p, r) = cmd.values();
        self.core
            .sh
            .with_clients(|c| c[self.id.index()].timeouts = Some((p, r)));
        Ok(())
    }

    /// Reads the packet timeout settings: `AT+QMTCFG="timeout",<id>`. The
    /// driver's deadlines follow the values read.
    pub async fn timeout(&self) -> Result<TimeoutSetting, Error> {
        let t = self.cfg(&QueryTimeout { client: self.id }).await?;
        self.core
            .sh
            .with_clients(|c| c[self.id.index()].timeouts = Some((t.pkt_timeout, t.retry_times)));
        Ok(t)
    }

    /// Sets the clean-session flag: `AT+QMTCFG="session"`.
    pub async fn set_clean_session(&self, clean: bool) -> Result<(), Error> {
        self.cfg(&ConfigureSession {
            client: self.id,
            clean_session: clean,
        })
        .await
        .map(drop)
    }

    /// Reads the clean-session flag: `AT+QMTCFG="session",<id>`.
    pub async fn clean_session(&self) -> Result<bool, Error> {
        Ok(self
            .cfg(&QuerySession { client: self.id })
            .await?
            .clean_session)
    }

    /// Sets the keep-alive interval, 0-3600 s: `AT+QMTCFG="keepalive"`.
    pub async fn set_keepalive(&self, seconds: u16) -> Result<(), Error> {
        self.cfg(&ConfigureKeepAlive::new(self.id, seconds)?)
            .await
            .map(drop)
    }

    /// Reads the keep-alive interval: `AT+QMTCFG="keepalive",<id>`.
    pub async fn keepalive(&self) -> Result<u16, Error> {
        Ok(self.cfg(&QueryKeepAlive { client: self.id }).await?.seconds)
    }

    /// Sets AliCloud credentials: `AT+QMTCFG="aliauth"`.
    pub async fn set_aliauth(
        &self,
        product_key: &str,
        device_name: &str,
        device_secret: &str,
    ) -> Result<(), Error> {
        let cmd = ConfigureAliAuth::new(self.id, product_key, device_name, device_secret)?;
        self.cfg(&cmd).await.map(drop)
    }

    /// Reads AliCloud credentials: `AT+QMTCFG="aliauth",<id>`.
    pub async fn aliauth(&self) -> Result<Option<AliAuth>, Error> {
        Ok(self.cfg(&QueryAliAuth { client: self.id }).await?.0)
    }

    /// Sets the MQTT version: `AT+QMTCFG="version"`.
    pub async fn set_version(&self, version: MqttVersion) -> Result<(), Error> {
        self.cfg(&ConfigureVersion {
            client: self.id,
            version,
        })
        .await
        .map(drop)
    }

    /// Reads the MQTT version: `AT+QMTCFG="version",<id>`.
    pub async fn version(&self) -> Result<Option<MqttVersion>, Error> {
        Ok(self.cfg(&QueryVersion { client: self.id }).await?.0)
    }

    /// Sets the payload formats: `AT+QMTCFG="dataformat"`. From then on the
    /// driver hex-encodes what [`publish`](Self::publish) sends and decodes
    /// what arrives, as configured.
    pub async fn set_data_format(&self, send: DataFormat, recv: DataFormat) -> Result<(), Error> {
        self.cfg(&ConfigureDataFormat {
            client: self.id,
            send,
            recv,
        })
        .await?;
        self.track_format(send, recv);
        Ok(())
    }

    fn track_format(&self, send: DataFormat, recv: DataFormat) {
        self.core.sh.with_clients(|c| {
            c[self.id.index()].send_hex = send == DataFormat::Hex;
            c[self.id.index()].recv_hex = recv == DataFormat::Hex;
        });
    }

    /// Reads the payload formats: `AT+QMTCFG="dataformat",<id>`. The driver
    /// follows the values read.
    pub async fn data_format(&self) -> Result<DataFormatSetting, Error> {
        let f = self.cfg(&QueryDataFormat { client: self.id }).await?;
        self.track_format(f.send, f.recv);
        Ok(f)
    }

    /// Sets the data-mode echo: `AT+QMTCFG="echomode"`.
    pub async fn set_echo_mode(&self, echo: bool) -> Result<(), Error> {
        self.cfg(&ConfigureEchoMode {
            client: self.id,
            echo,
        })
        .await
        .map(drop)
    }

    /// Reads the data-mode echo: `AT+QMTCFG="echomode",<id>`.
    pub async fn echo_mode(&self) -> Result<bool, Error> {
        Ok(self.cfg(&QueryEchoMode { client: self.id }).await?.echo)
    }

    // ------------------------------------------------------------ operations

    /// Runs an operation that waits in the client's operation slot: one line,
    /// `OK`, then the deferred result (progress reports do not end it).
    async fn op<C: AtatCmd>(
        &self,
        cmd: &C,
        kind: OpKind,
        msg_id: u16,
        deadline: Duration,
    ) -> Result<OpOutcome, Error> {
        let i = self.id.index();
        let _op = self.core.sh.op_locks[i].lock().await;
        self.core.sh.op_signals[i].reset();
        self.core
            .sh
            .with_clients(|c| c[i].op = OpWait::Waiting { kind, msg_id });
        let _guard = OpGuard {
            core: &self.core,
            i,
        };
        self.core.command(cmd, self.cmd_timeout()).await?;
        let until = Instant::now() + deadline;
        loop {
            let outcome = with_deadline(until, self.core.sh.op_signals[i].wait())
                .await
                .map_err(|_| Error::Timeout(Stage::Result))?;
            if let OpOutcome::LinkClosed(reason) = outcome {
                return Err(Error::LinkClosed(reason));
            }
            if !outcome.is_progress() {
                return Ok(outcome);
            }
        }
    }

    /// Allocates a msgID 1-65535 unused by this client's operations in flight.
    fn alloc_msg_id(&self) -> u16 {
        let i = self.id.index();
        let slots = self.core.client_slots(i);
        self.core.sh.with_clients(|c| next_msg_id(&mut c[i], slots))
    }

    /// Opens the TCP link to the broker: `AT+QMTOPEN=<id>,"<host>",<port>`, then
    /// waits for `+QMTOPEN: <id>,<result>` (up to `Config::open_timeout`, 75 s).
    /// Other clients keep working meanwhile.
    pub async fn open(&self, host: &str, port: u16) -> Result<(), Error> {
        let cmd = OpenNetwork::new(self.id, host, port)?;
        match self
            .op(&cmd, OpKind::Open, 0, self.core.config().open_timeout)
            .await?
        {
            OpOutcome::Code(0) => Ok(()),
            OpOutcome::Code(c) => Err(Error::Open(OpenError::from_code(c))),
            _ => Err(Error::UnexpectedResponse),
        }
    }

    /// Closes the TCP link: `AT+QMTCLOSE=<id>`, then `+QMTCLOSE: <id>,<result>`.
    pub async fn close(&self) -> Result<(), Error> {
        let cmd = CloseNetwork { client: self.id };
        code_result(
            self.op(&cmd, OpKind::Close, 0, self.core.config().close_timeout)
                .await?,
        )
    }

    /// Connects to the broker: `AT+QMTCONN=<id>,"<client_id>"[,"<user>"[,"<password>"]]`,
    /// then `+QMTCONN: <id>,<result>[,<ret_code>]` within `pkt_timeout x (retry_times + 1)`.
    /// A refusal is [`Error::ConnectRefused`] with the CONNACK code.
    pub async fn connect(
        &self,
        client_id: &str,
        username: Option<&str>,
        password: Option<&str>,
    ) -> Result<(), Error> {
        let cmd = Connect::new(self.id, client_id, username, password)?;
        debug!("connect client {}", self.id.get());
        match self
            .op(
                &cmd,
                OpKind::Conn,
                0,
                packet_deadline(&self.core, cmd.client()),
            )
            .await?
        {
            OpOutcome::Conn {
                result: 0,
                ret_code: None | Some(0),
            } => Ok(()),
            OpOutcome::Conn {
                result: 0,
                ret_code: Some(c),
            } => Err(Error::ConnectRefused(ConnackCode::from_code(c))),
            OpOutcome::Conn { .. } => Err(Error::SendFailed),
            _ => Err(Error::UnexpectedResponse),
        }
    }

    /// Disconnects from the broker: `AT+QMTDISC=<id>`, then `+QMTDISC: <id>,<result>`.
    pub async fn disconnect(&self) -> Result<(), Error> {
        let cmd = Disconnect { client: self.id };
        code_result(
            self.op(&cmd, OpKind::Disc, 0, self.core.config().close_timeout)
                .await?,
        )
    }

    /// Subscribes to one or more topics in one `AT+QMTSUB` and returns what the
    /// server granted for each, in order ([`Grant::Rejected`](crate::Grant::Rejected) for 128).
    pub async fn subscribe(&self, topics: &[(&str, QoS)]) -> Result<Granted, Error> {
        // Check before taking a msgID, so bad input costs nothing.
        Subscribe::new(self.id, 1, topics)?;
        let msg_id = self.alloc_msg_id();
        let cmd = Subscribe::new(self.id, msg_id, topics)?;
        let deadline = packet_deadline(&self.core, self.id);
        match self.op(&cmd, OpKind::Sub, cmd.msg_id(), deadline).await? {
            OpOutcome::Sub {
                result: 0,
                value: SubValue::Granted(g),
            } => Ok(g),
            OpOutcome::Sub { .. } => Err(Error::SendFailed),
            _ => Err(Error::UnexpectedResponse),
        }
    }

    /// Unsubscribes from one or more topics in one `AT+QMTUNS`.
    pub async fn unsubscribe(&self, topics: &[&str]) -> Result<(), Error> {
        Unsubscribe::new(self.id, 1, topics)?;
        let msg_id = self.alloc_msg_id();
        let cmd = Unsubscribe::new(self.id, msg_id, topics)?;
        let deadline = packet_deadline(&self.core, self.id);
        match self.op(&cmd, OpKind::Uns, msg_id, deadline).await? {
            OpOutcome::Uns { result: 0, .. } => Ok(()),
            OpOutcome::Uns { .. } => Err(Error::SendFailed),
            _ => Err(Error::UnexpectedResponse),
        }
    }

    /// Publishes `payload` on `topic` and waits for the modem's `+QMTPUB` result
    /// (for QoS 1/2, the broker's acknowledgement).
    ///
    /// The driver picks the form: inline when the payload fits the line (700
    /// bytes on the wire) and has no `"`, CR, LF or control byte; data mode
    /// (`>` prompt, up to 1024 bytes on the wire, Ctrl+Z) otherwise. With hex
    /// send format the driver sends hex digits, so any bytes go, up to 512.
    /// The AT channel is free again once the modem says `OK`: other publishes,
    /// of this client too, go out while this one waits for its acknowledgement.
    pub async fn publish(
        &self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
    ) -> Result<Published, Error> {
        self.publish_as(topic, payload, qos, retain, false).await
    }

    /// Like [`publish`](Self::publish), but always in data mode (`>` prompt,
    /// payload, Ctrl+Z), whatever the payload.
    pub async fn publish_data_mode(
        &self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
    ) -> Result<Published, Error> {
        self.publish_as(topic, payload, qos, retain, true).await
    }

    async fn publish_as(
        &self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
        force_data_mode: bool,
    ) -> Result<Published, Error> {
        check_topic(topic)?;
        let i = self.id.index();
        let hex = self.core.sh.with_clients(|c| c[i].send_hex);
        let wire = if hex {
            2 * payload.len()
        } else {
            payload.len()
        };
        let inline = !force_data_mode
            && wire <= limits::INLINE_PAYLOAD
            && (hex || payload.iter().all(|&b| quoted_safe(b)));
        if !inline {
            if wire > limits::DATA_MODE_PAYLOAD {
                return Err(Error::InvalidArgument {
                    field: Field::Payload,
                    problem: Problem::TooLong,
                });
            }
            if !hex && payload.iter().any(|&b| b == 0x1a || b == 0x1b) {
                return Err(Error::InvalidArgument {
                    field: Field::Payload,
                    problem: Problem::NeedsHexFormat,
                });
            }
        }

        // Claim a publish slot and a msgID in one critical section.
        let slots = self.core.client_slots(i);
        let claimed = self.core.sh.with_clients(|c| {
            let slot = slots
                .iter()
                .find(|s| s.wait.lock(|w| w.get() == SlotWait::Free))?;
            let msg_id = if qos == QoS::AtMostOnce {
                0
            } else {
                next_msg_id(&mut c[i], slots)
            };
            c[i].next_seq = c[i].next_seq.wrapping_add(1);
            let seq = c[i].next_seq;
            slot.signal.reset();
            slot.wait.lock(|w| {
                w.set(SlotWait::Waiting {
                    client: self.id.get(),
                    msg_id,
                    seq,
                    retrans: 0,
                })
            });
            Some((slot, msg_id))
        });
        let Some((slot, msg_id)) = claimed else {
            return Err(Error::TooManyInFlight);
        };
        let _slot = SlotGuard { slot };

        if inline {
            let cmd = PublishInline::new(self.id, msg_id, qos, retain, topic, payload, hex)?;
            self.core.command(&cmd, self.cmd_timeout()).await?;
        } else {
            let cmd = PublishDataMode::new(self.id, msg_id, qos, retain, topic)?;
            self.core
                .data_mode(
                    &cmd,
                    Payload {
                        bytes: payload,
                        hex,
                    },
                )
                .await?;
        }

        let until = Instant::now() + packet_deadline(&self.core, self.id);
        loop {
            let outcome = with_deadline(until, slot.signal.wait())
                .await
                .map_err(|_| Error::Timeout(Stage::Result))?;
            match outcome {
                PubOutcome::Progress => {}
                PubOutcome::Final {
                    result: 0,
                    retransmissions,
                } => {
                    return Ok(Published {
                        msg_id,
                        retransmissions,
                    })
                }
                PubOutcome::Final { .. } => return Err(Error::SendFailed),
                PubOutcome::LinkClosed(r) => return Err(Error::LinkClosed(r)),
            }
        }
    }
}

/// The next msgID 1-65535 (wrapping) that no operation or publish of the
/// client uses.
fn next_msg_id(c: &mut crate::state::ClientState, slots: &[crate::state::PubSlot]) -> u16 {
    loop {
        let id = c.next_msg_id;
        c.next_msg_id = if id == u16::MAX { 1 } else { id + 1 };
        let in_op = matches!(c.op, OpWait::Waiting { msg_id, .. } if msg_id == id);
        let in_pub = slots
            .iter()
            .any(|s| matches!(s.wait.lock(|w| w.get()), SlotWait::Waiting { msg_id, .. } if msg_id == id));
        if !in_op && !in_pub {
            return id;
        }
    }
}

fn code_result(o: OpOutcome) -> Result<(), Error> {
    match o {
        OpOutcome::Code(0) => Ok(()),
        OpOutcome::Code(_) => Err(Error::CloseFailed),
        _ => Err(Error::UnexpectedResponse),
    }
}

impl core::fmt::Debug for Modem<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Modem")
            .field("stats", &self.stats())
            .finish()
    }
}

impl core::fmt::Debug for MqttClient<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MqttClient").field("id", &self.id).finish()
    }
}

impl core::fmt::Debug for Events<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Events").finish_non_exhaustive()
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for Modem<'_> {
    fn format(&self, f: defmt::Formatter) {
        defmt::write!(f, "Modem {{ stats: {} }}", self.stats())
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for MqttClient<'_> {
    fn format(&self, f: defmt::Formatter) {
        defmt::write!(f, "MqttClient {{ id: {} }}", self.id)
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for Events<'_> {
    fn format(&self, f: defmt::Formatter) {
        defmt::write!(f, "Events")
    }
}
