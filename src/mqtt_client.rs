//! [`MqttClient`]: one of the modem's six MQTT clients.

use core::future::{poll_fn, Future};
use core::task::Poll;

use atat::AtatCmd;
use embassy_futures::select::{select, Either};
use embassy_time::{Duration, Instant, Timer};

use crate::channel::{each_chunk, topic_of, Payload, Source, WriteLine};
use crate::client_table::{
    ClaimError, LinkEnd, OpKind, OpOutcome, Owner, PubOutcome, PubTicket, RecvFormat,
};
use crate::commands::*;
use crate::error::{ConnackCode, Error, Field, OpenError, Problem, Stage};
use crate::event::Granted;
use crate::state::Core;
use crate::sync::{CriticalSectionRawMutex, RawMutex};
use crate::types::{check_topic, limits, quoted_safe, ClientId, DataFormat, MqttVersion, QoS};
use crate::urc::SubValue;

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
/// clients overlap, and so do publishes (up to `INFLIGHT` of all clients
/// wait for their acknowledgement at once).
pub struct MqttClient<'a, M: RawMutex = CriticalSectionRawMutex> {
    core: Core<'a, M>,
    id: ClientId,
}

impl<M: RawMutex> Clone for MqttClient<'_, M> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<M: RawMutex> Copy for MqttClient<'_, M> {}

/// How one publish goes out: everything but its topic and payload. The
/// public `publish`, `try_publish`, `publish_data_mode` and `start_publish`
/// differ only here; a supervisor also gives the msgID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PublishOptions {
    qos: QoS,
    retain: bool,
    /// Always data mode (`>` prompt, payload, Ctrl+Z), whatever the payload.
    data_mode: bool,
    /// This msgID (a supervisor sends a message again under its first one);
    /// `None`: the client's allocator picks one.
    msg_id: Option<u16>,
    /// When every in-flight slot is busy: wait for one (`true`), or fail at
    /// once with `TooManyInFlight`.
    wait_for_slot: bool,
}

impl PublishOptions {
    /// Inline when the payload allows, the allocator's msgID, waiting for a
    /// free slot.
    pub(crate) const fn new(qos: QoS, retain: bool) -> Self {
        Self {
            qos,
            retain,
            data_mode: false,
            msg_id: None,
            wait_for_slot: true,
        }
    }

    /// Always in data mode.
    const fn data_mode(self) -> Self {
        Self {
            data_mode: true,
            ..self
        }
    }

    /// Fail at once when every in-flight slot is busy.
    const fn no_wait(self) -> Self {
        Self {
            wait_for_slot: false,
            ..self
        }
    }

    /// Under this msgID (`None`: the allocator's).
    pub(crate) const fn msg_id(self, msg_id: Option<u16>) -> Self {
        Self { msg_id, ..self }
    }
}

impl<'a, M: RawMutex> MqttClient<'a, M> {
    pub(crate) fn new(core: Core<'a, M>, id: ClientId) -> Self {
        Self { core, id }
    }

    /// The client's `tcpconnectID`.
    pub fn id(&self) -> ClientId {
        self.id
    }

    /// The driver's parts, shared with every handle.
    pub(crate) fn core(&self) -> &Core<'a, M> {
        &self.core
    }

    /// The client's link was given up: free the slots of publishes dropped
    /// while their results were owed (they will not come).
    pub(crate) fn release_abandoned(&self) {
        self.core.clients.release_abandoned(self.id)
    }

    /// The next msgID of the client's allocator.
    pub(crate) fn alloc_msg_id(&self) -> u16 {
        self.core.clients.alloc_msg_id(self.id)
    }

    /// The client's msgIDs go on from `next` (a flash outbox, after a reset).
    #[cfg(feature = "flash-outbox")]
    pub(crate) fn continue_msg_ids_at(&self, next: u16) {
        self.core.clients.continue_msg_ids_at(self.id, next)
    }

    fn cmd_timeout(&self) -> Duration {
        self.core.config.command_timeout
    }

    fn cfg<'s, C: AtatCmd>(
        &'s self,
        cmd: &'s C,
    ) -> impl core::future::Future<Output = Result<C::Response, Error>> + 's {
        self.core.channel.command(cmd, self.cmd_timeout(), None)
    }

    /// A setting answered by `OK` alone: one state machine for every
    /// `set_*` (the line is written by `write`).
    async fn cfg_ok(&self, write: &dyn WriteLine) -> Result<(), Error> {
        self.core
            .channel
            .exchange(write, self.cmd_timeout(), None)
            .await
            .map(drop)
    }

    /// The checked line of a setting.
    fn setting_line<'w>(&self, setting: Setting<'w>) -> Result<ClientLine<'w>, Error> {
        let client = self.id;
        Ok(match setting {
            Setting::KeepAlive(seconds) => {
                ClientLine::KeepAlive(ConfigureKeepAlive::new(client, seconds)?)
            }
            Setting::Session(clean_session) => ClientLine::Session(ConfigureSession {
                client,
                clean_session,
            }),
            Setting::Timeout(pkt_timeout_s, retry_times, notice) => ClientLine::Timeout(
                ConfigureTimeout::new(client, pkt_timeout_s, retry_times, notice)?,
            ),
            Setting::Version(version) => ClientLine::Version(ConfigureVersion { client, version }),
            Setting::Will(will) => ClientLine::Will(ConfigureWill { client, will }),
            Setting::DataFormat(send, recv) => {
                ClientLine::DataFormat(ConfigureDataFormat { client, send, recv }, true)
            }
        })
    }

    /// Writes a setting, then follows it (the timeouts, the formats), through
    /// [`step`](Self::step): the state machine of every setting and
    /// operation. (A plain function: no state machine of its own.)
    pub(crate) fn configure<'s>(
        &'s self,
        setting: Setting<'s>,
    ) -> impl core::future::Future<Output = Result<Granted, Error>> + 's {
        self.step(Step::Configure(setting))
    }

    /// What the driver learns from a setting the modem took.
    fn follow(&self, line: &ClientLine<'_>) {
        match *line {
            ClientLine::Timeout(cmd) => {
                let (_, p, r) = cmd.values();
                self.core.clients.set_timeouts(self.id, p, r);
            }
            ClientLine::DataFormat(cmd, by_app) => self
                .core
                .clients
                .set_formats(self.id, cmd.send, cmd.recv, by_app),
            _ => {}
        }
    }

    // ------------------------------------------------------------ AT+QMTCFG

    /// Sets the will (or clears it with `None`): `AT+QMTCFG="will"`.
    pub async fn set_will(&self, will: Option<Will<'_>>) -> Result<(), Error> {
        self.configure(Setting::Will(will)).await.map(drop)
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
        self.configure(Setting::Timeout(pkt_timeout_s, retry_times, notice))
            .await
            .map(drop)
    }

    /// Reads the packet timeout settings: `AT+QMTCFG="timeout",<id>`. The
    /// driver's deadlines follow the values read.
    pub async fn timeout(&self) -> Result<TimeoutSetting, Error> {
        let t = self.cfg(&QueryTimeout { client: self.id }).await?;
        self.core
            .clients
            .set_timeouts(self.id, t.pkt_timeout, t.retry_times);
        Ok(t)
    }

    /// Sets the clean-session flag: `AT+QMTCFG="session"`.
    pub async fn set_clean_session(&self, clean: bool) -> Result<(), Error> {
        self.configure(Setting::Session(clean)).await.map(drop)
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
        self.configure(Setting::KeepAlive(seconds)).await.map(drop)
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
        self.cfg_ok(&cmd).await
    }

    /// Reads AliCloud credentials: `AT+QMTCFG="aliauth",<id>`.
    pub async fn aliauth(&self) -> Result<Option<AliAuth>, Error> {
        Ok(self.cfg(&QueryAliAuth { client: self.id }).await?.0)
    }

    /// Sets the MQTT version: `AT+QMTCFG="version"`.
    pub async fn set_version(&self, version: MqttVersion) -> Result<(), Error> {
        self.configure(Setting::Version(version)).await.map(drop)
    }

    /// Reads the MQTT version: `AT+QMTCFG="version",<id>`.
    pub async fn version(&self) -> Result<Option<MqttVersion>, Error> {
        Ok(self.cfg(&QueryVersion { client: self.id }).await?.0)
    }

    /// Sets the payload formats: `AT+QMTCFG="dataformat"`. From then on the
    /// driver hex-encodes what [`publish`](Self::publish) sends and decodes
    /// what arrives, as configured.
    ///
    /// Without this call the driver receives in hex (it configures that
    /// itself before [`open`](Self::open), see [`Config::receive_text`](crate::Config::receive_text)).
    /// Choosing [`DataFormat::Text`] for `recv` here is the application's
    /// choice: the modem does not escape text payloads, so a remote
    /// publisher's payload holding `"` CR LF followed by modem-like lines can
    /// be read as modem lines (a forged `+QMTSTAT`, `+QMTPUB` or `+QMTRECV`).
    pub async fn set_data_format(&self, send: DataFormat, recv: DataFormat) -> Result<(), Error> {
        self.configure(Setting::DataFormat(send, recv))
            .await
            .map(drop)
    }

    /// Reads the payload formats: `AT+QMTCFG="dataformat",<id>`. The driver
    /// follows the values read.
    pub async fn data_format(&self) -> Result<DataFormatSetting, Error> {
        let f = self.cfg(&QueryDataFormat { client: self.id }).await?;
        self.core
            .clients
            .set_formats(self.id, f.send, f.recv, false);
        Ok(f)
    }

    /// Sets the data-mode echo: `AT+QMTCFG="echomode"`.
    pub async fn set_echo_mode(&self, echo: bool) -> Result<(), Error> {
        let cmd = ConfigureEchoMode {
            client: self.id,
            echo,
        };
        self.cfg_ok(&cmd).await
    }

    /// Reads the data-mode echo: `AT+QMTCFG="echomode",<id>`.
    pub async fn echo_mode(&self) -> Result<bool, Error> {
        Ok(self.cfg(&QueryEchoMode { client: self.id }).await?.echo)
    }

    // ------------------------------------------------------------ operations

    /// Runs a client's command line: a setting (`OK`, then the driver
    /// follows it), or an operation that waits in the client's operation
    /// slot (`OK`, then the deferred result; progress reports do not end
    /// it). One state machine for every setting and operation, so that each
    /// costs little flash. `Err` in: refused before anything was sent.
    async fn run(&self, line: &ClientLine<'_>) -> Result<OpOutcome, Error> {
        let config = self.core.config;
        let (kind, msg_id) = match line {
            ClientLine::Open(_) => (Some(OpKind::Open), 0),
            ClientLine::Close(_) => (Some(OpKind::Close), 0),
            ClientLine::Conn(_) => (Some(OpKind::Conn), 0),
            ClientLine::Disc(_) => (Some(OpKind::Disc), 0),
            ClientLine::Sub(cmd) => (Some(OpKind::Sub), cmd.msg_id()),
            ClientLine::Uns(cmd) => (Some(OpKind::Uns), cmd.msg_id()),
            // A setting.
            _ => (None, 0),
        };
        let deadline = match kind {
            None => Duration::from_ticks(0),
            Some(OpKind::Open) => config.open_timeout,
            Some(OpKind::Close | OpKind::Disc) => config.close_timeout,
            Some(OpKind::Conn | OpKind::Sub | OpKind::Uns) => self.core.packet_deadline(self.id),
        };
        let ticket = match kind {
            Some(kind) => Some(self.core.clients.begin_op(self.id, kind, msg_id).await),
            None => None,
        };
        let owner = match ticket {
            Some(_) => Owner::Op(self.id),
            None => Owner::Nobody,
        };
        drop(
            self.core
                .channel
                .exchange_for(line, self.cmd_timeout(), owner)
                .await?,
        );
        let Some(ticket) = ticket else {
            self.follow(line);
            return Ok(OpOutcome::Code(0));
        };
        ticket.wait(Instant::now() + deadline).await
    }

    /// Receives in hex unless the application chose text (see
    /// [`Config::receive_text`](crate::Config::receive_text)): a payload can
    /// then never be read as a modem line. The setting to make first, if any
    /// (its send format as the driver knows it).
    fn reception_to_secure(&self) -> Option<ConfigureDataFormat> {
        let s = self.core.clients.settings(self.id);
        if self.core.config.receive_text || s.text_chosen || s.recv == RecvFormat::Hex {
            return None;
        }
        Some(ConfigureDataFormat {
            client: self.id,
            send: if s.send_hex {
                DataFormat::Hex
            } else {
                DataFormat::Text
            },
            recv: DataFormat::Hex,
        })
    }

    /// Opens the TCP link to the broker: `AT+QMTOPEN=<id>,"<host>",<port>`, then
    /// waits for `+QMTOPEN: <id>,<result>` (up to `Config::open_timeout`, 75 s).
    /// Other clients keep working meanwhile.
    ///
    /// Unless the application chose text reception, the driver first sets the
    /// client's receive format to hex (`AT+QMTCFG="dataformat",<id>,<send>,1`),
    /// once after start-up or a modem restart.
    pub async fn open(&self, host: &str, port: u16) -> Result<(), Error> {
        self.step(Step::Open(host, port)).await.map(drop)
    }

    /// Closes the TCP link: `AT+QMTCLOSE=<id>`, then `+QMTCLOSE: <id>,<result>`.
    pub async fn close(&self) -> Result<(), Error> {
        self.step(Step::Close).await.map(drop)
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
        debug!("connect client {}", self.id.get());
        self.step(Step::Connect(client_id, username, password))
            .await
            .map(drop)
    }

    /// Disconnects from the broker: `AT+QMTDISC=<id>`, then `+QMTDISC: <id>,<result>`.
    pub async fn disconnect(&self) -> Result<(), Error> {
        self.step(Step::Disconnect).await.map(drop)
    }

    /// Subscribes to one or more topics in one `AT+QMTSUB` and returns what the
    /// server granted for each, in order ([`Grant::Rejected`](crate::Grant::Rejected) for 128).
    pub async fn subscribe(&self, topics: &[(&str, QoS)]) -> Result<Granted, Error> {
        self.step(Step::Subscribe(topics)).await
    }

    /// Unsubscribes from one or more topics in one `AT+QMTUNS`.
    pub async fn unsubscribe(&self, topics: &[&str]) -> Result<(), Error> {
        self.step(Step::Unsubscribe(topics)).await.map(drop)
    }

    /// Runs one setting or operation of the client (see [`Step`]) to its
    /// end: the one state machine behind `configure`, `open`, `close`,
    /// `connect`, `disconnect`, `subscribe` and `unsubscribe`, so that a
    /// caller with several steps (a supervisor's bring-up) awaits one future
    /// for all of them. `Ok`: what the server granted for a subscription
    /// (empty for any other step).
    pub(crate) fn step<'s>(
        &'s self,
        step: Step<'s>,
    ) -> impl core::future::Future<Output = Result<Granted, Error>> + 's {
        // Checked (and a msgID taken) before the future's state machine:
        // bad input sends nothing.
        let line = self.client_line(step);
        let open = matches!(step, Step::Open(..));
        async move {
            // Both lines borrowed where they are (not copied into the state
            // machine's own variables).
            let line = match &line {
                Ok(l) => l,
                Err(e) => return Err(*e),
            };
            // An open first secures the reception: both lines through one
            // await. (Made here, not before the future: not copied into
            // it.)
            let first = match open {
                true => self.reception_to_secure(),
                false => None,
            }
            .map(|c| ClientLine::DataFormat(c, false));
            let mut next = first.as_ref();
            loop {
                let before = next.is_some();
                let o = self.run(next.take().unwrap_or(line)).await?;
                if !before {
                    return step_outcome(open, o);
                }
            }
        }
    }

    /// The checked line of a step (a subscription's and an unsubscription's
    /// with a msgID of the allocator's, taken once the line checked out).
    fn client_line<'s>(&self, step: Step<'s>) -> Result<ClientLine<'s>, Error> {
        let client = self.id;
        Ok(match step {
            Step::Configure(s) => self.setting_line(s)?,
            Step::Open(host, port) => ClientLine::Open(OpenNetwork::new(client, host, port)?),
            Step::Close => ClientLine::Close(CloseNetwork { client }),
            Step::Connect(id, user, password) => {
                ClientLine::Conn(Connect::new(client, id, user, password)?)
            }
            Step::Disconnect => ClientLine::Disc(Disconnect { client }),
            Step::Subscribe(topics) => {
                let cmd = Subscribe::new(client, 1, topics)?;
                ClientLine::Sub(cmd.with_msg_id(self.alloc_msg_id()))
            }
            Step::Unsubscribe(topics) => {
                let cmd = Unsubscribe::new(client, 1, topics)?;
                ClientLine::Uns(cmd.with_msg_id(self.alloc_msg_id()))
            }
        })
    }

    /// Publishes `payload` on `topic` and waits for the modem's `+QMTPUB` result
    /// (for QoS 1/2, the broker's acknowledgement).
    ///
    /// The driver picks the form: inline when the payload fits the line (700
    /// bytes on the wire) and has no `"`, CR, LF or control byte; data mode
    /// (`>` prompt, up to 1024 bytes on the wire, Ctrl+Z) otherwise. With hex
    /// send format the driver sends hex digits, so any bytes go, up to 512.
    /// When every in-flight slot (`INFLIGHT`, shared by the six clients) is
    /// busy, it waits for one: until a publish ends (each ends by its
    /// result, `+QMTSTAT`, a restart or its deadline; a dropped one keeps its
    /// slot for the deadline after it was dropped), unless the caller drops
    /// this future first. A [`PendingPublish`] kept without awaiting its
    /// result holds its slot. The AT channel is free again once the modem
    /// says `OK`: other publishes, of this client too, go out while this one
    /// waits for its acknowledgement. If the client's link closes before the
    /// line went out, it ends at once with [`Error::LinkClosed`] and sends
    /// nothing.
    pub async fn publish(
        &self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
    ) -> Result<Published, Error> {
        self.publish_with(topic, payload, PublishOptions::new(qos, retain))
            .await
    }

    /// Like [`publish`](Self::publish), but fails at once with
    /// [`Error::TooManyInFlight`] instead of waiting for a free slot.
    pub async fn try_publish(
        &self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
    ) -> Result<Published, Error> {
        let options = PublishOptions::new(qos, retain).no_wait();
        self.publish_with(topic, payload, options).await
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
        let options = PublishOptions::new(qos, retain).data_mode();
        self.publish_with(topic, payload, options).await
    }

    /// Sends a publish and returns once the modem accepted it (its `OK`):
    /// the [`PendingPublish`] then waits for the result. The AT channel is
    /// free again meanwhile, so a task can pipeline publishes (up to
    /// `INFLIGHT` of all clients wait for their result at once; this waits
    /// for a free slot). [`publish`](Self::publish) is this and
    /// [`PendingPublish::result`] in one.
    pub async fn start_publish(
        &self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
    ) -> Result<PendingPublish<'a, M>, Error> {
        self.start_from(&(topic, payload), PublishOptions::new(qos, retain))
            .await
    }

    /// The whole publish: checks, slot and msgID, line, result.
    async fn publish_with(
        &self,
        topic: &str,
        payload: &[u8],
        options: PublishOptions,
    ) -> Result<Published, Error> {
        self.start_from(&(topic, payload), options)
            .await?
            .result()
            .await
    }

    /// Checks, takes a slot and a msgID (the options' msgID if given, as a
    /// supervisor re-sends a message under its first msgID), and sends the
    /// line (and the payload in data mode), reading topic and payload from
    /// `source` as it writes them.
    pub(crate) async fn start_from(
        &self,
        source: &dyn Source,
        options: PublishOptions,
    ) -> Result<PendingPublish<'a, M>, Error> {
        let PublishOptions {
            qos,
            retain,
            data_mode: force_data_mode,
            msg_id,
            wait_for_slot,
        } = options;
        let hex = self.core.clients.settings(self.id).send_hex;
        let inline = check_source(source, hex, force_data_mode)?;
        if msg_id == Some(0) && qos != QoS::AtMostOnce {
            return Err(Error::InvalidArgument {
                field: Field::MsgId,
                problem: Problem::OutOfRange,
            });
        }

        let deadline = self.core.packet_deadline(self.id);
        let clients = self.core.clients;
        let ticket = clients
            .claim_publish(self.id, qos, msg_id, deadline, wait_for_slot)
            .await
            .map_err(|e| match e {
                ClaimError::Busy => Error::TooManyInFlight,
                ClaimError::MsgIdInUse => Error::InvalidArgument {
                    field: Field::MsgId,
                    problem: Problem::InUse,
                },
            })?;
        let id = ticket.msg_id();
        let slot = Some(ticket.index());
        let line = PublishLine {
            client: self.id,
            msg_id: id,
            qos,
            retain,
            hex,
            inline,
            source,
        };
        // One await for both forms: in data mode, the payload follows the
        // prompt.
        let payload = (!inline).then_some(Payload { source, hex });
        let owner = Owner::publish(slot);
        let send = self
            .core
            .channel
            .send_line(&line, self.cmd_timeout(), owner, false, payload);
        // A link closed (or a restart) before the line went out ends the
        // publish at once; a dropped line future is withdrawn unsent.
        let early = match select(send, ticket.wait(None)).await {
            Either::First(r) => {
                drop(r?);
                None
            }
            Either::Second(Ok(PubOutcome::LinkClosed(r))) => return Err(Error::LinkClosed(r)),
            Either::Second(Ok(PubOutcome::Rebooted)) => return Err(Error::ModemRebooted),
            // (No deadline: never `Err`.)
            Either::Second(o) => o.ok(),
        };
        Ok(PendingPublish {
            ticket,
            msg_id: id,
            deadline: Instant::now() + deadline,
            early,
        })
    }

    /// The client's link epoch (bumped each time the link ends) and how it
    /// last ended.
    pub(crate) fn link(&self) -> (u32, Option<LinkEnd>) {
        self.core.clients.link(self.id)
    }

    /// Waits until the client's link epoch differs from `since`.
    pub(crate) fn link_changed(&self, since: u32) -> impl Future<Output = u32> + '_ {
        self.core.clients.wait_link_change(self.id, since)
    }
}

/// A setting of `AT+QMTCFG` that [`MqttClient::configure`] writes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Setting<'w> {
    /// `"keepalive"`, seconds.
    KeepAlive(u16),
    /// `"session"`: clean session.
    Session(bool),
    /// `"timeout"`: packet timeout (s), retransmissions, timeout notice.
    Timeout(u8, u8, bool),
    /// `"version"`.
    Version(MqttVersion),
    /// `"will"` (cleared with `None`).
    Will(Option<Will<'w>>),
    /// `"dataformat"`: send, receive.
    DataFormat(DataFormat, DataFormat),
}

/// One setting or operation of a client, unchecked: what
/// [`MqttClient::step`] runs.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Step<'s> {
    /// `AT+QMTCFG`, then the driver follows it.
    Configure(Setting<'s>),
    /// `AT+QMTOPEN`: host, port (after securing the reception).
    Open(&'s str, u16),
    /// `AT+QMTCLOSE`.
    Close,
    /// `AT+QMTCONN`: client ID, user name, password.
    Connect(&'s str, Option<&'s str>, Option<&'s str>),
    /// `AT+QMTDISC`.
    Disconnect,
    /// `AT+QMTSUB` (a msgID of the client's allocator).
    Subscribe(&'s [(&'s str, QoS)]),
    /// `AT+QMTUNS` (a msgID of the client's allocator).
    Unsubscribe(&'s [&'s str]),
}

/// A client's command line, checked: a setting, or an operation with a
/// deferred result ([`MqttClient::run`], through [`MqttClient::step`]).
enum ClientLine<'w> {
    // A [`Setting`]'s command (`OK`, then the driver follows it).
    KeepAlive(ConfigureKeepAlive),
    Session(ConfigureSession),
    Timeout(ConfigureTimeout),
    Version(ConfigureVersion),
    Will(ConfigureWill<'w>),
    /// The command, and whether the application chose the formats.
    DataFormat(ConfigureDataFormat, bool),
    // An operation (`OK`, then its deferred result).
    Open(OpenNetwork<'w>),
    Close(CloseNetwork),
    Conn(Connect<'w>),
    Disc(Disconnect),
    Sub(Subscribe<'w>),
    Uns(Unsubscribe<'w>),
}

impl WriteLine for ClientLine<'_> {
    fn write_line(&self, b: &mut [u8]) -> usize {
        // One `Line` for every command.
        let l = &mut Line::new(b);
        match self {
            ClientLine::KeepAlive(c) => c.put(l),
            ClientLine::Session(c) => c.put(l),
            ClientLine::Timeout(c) => c.put(l),
            ClientLine::Version(c) => c.put(l),
            ClientLine::Will(c) => c.put(l),
            ClientLine::DataFormat(c, _) => c.put(l),
            ClientLine::Open(c) => c.put(l),
            ClientLine::Close(c) => c.put(l),
            ClientLine::Conn(c) => c.put(l),
            ClientLine::Disc(c) => c.put(l),
            ClientLine::Sub(c) => c.put(l),
            ClientLine::Uns(c) => c.put(l),
        }
        l.finish()
    }
}

/// A publish the modem accepted (its `OK`), whose result (`+QMTPUB`) is
/// still to come. Dropping it leaves the driver usable: its slot keeps the
/// msgID and absorbs the late result.
pub struct PendingPublish<'a, M: RawMutex = CriticalSectionRawMutex> {
    ticket: PubTicket<'a, M>,
    msg_id: u16,
    deadline: Instant,
    /// A result that came with the `OK`.
    early: Option<PubOutcome>,
}

impl<M: RawMutex> PendingPublish<'_, M> {
    /// The msgID the publish went out with (0 for QoS 0).
    pub fn msg_id(&self) -> u16 {
        self.msg_id
    }

    /// Waits for the modem's `+QMTPUB` result: for QoS 1/2 the broker's
    /// acknowledgement, within `pkt_timeout x (retry_times + 1)` plus the
    /// margin (retransmission reports do not end it).
    pub async fn result(self) -> Result<Published, Error> {
        self.finish().await
    }
}

impl<'a, M: RawMutex> PendingPublish<'a, M> {
    /// [`result`](Self::result) as the wait itself, owning the publish (not
    /// an async fn around it: a state machine less where it is awaited).
    pub(crate) fn finish(self) -> impl Future<Output = Result<Published, Error>> + 'a {
        let mut timer = Some(Timer::at(self.deadline));
        poll_fn(move |cx| {
            let o = match self.early {
                Some(o) => o,
                None => match self.ticket.poll_wait(&mut timer, cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(o) => o.map_err(|()| Error::Timeout(Stage::Result))?,
                },
            };
            Poll::Ready(published(self.msg_id, o))
        })
    }
}

impl<M: RawMutex> core::fmt::Debug for PendingPublish<'_, M> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PendingPublish")
            .field("msg_id", &self.msg_id)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "defmt")]
impl<M: RawMutex> defmt::Format for PendingPublish<'_, M> {
    fn format(&self, f: defmt::Formatter) {
        defmt::write!(f, "PendingPublish {{ msg_id: {} }}", self.msg_id)
    }
}

/// The `AT+QMTPUB` line of a publish, written from its source.
struct PublishLine<'s> {
    client: ClientId,
    msg_id: u16,
    qos: QoS,
    retain: bool,
    hex: bool,
    inline: bool,
    source: &'s dyn Source,
}

impl AtatCmd for PublishLine<'_> {
    type Response = NoResponse;
    const MAX_TIMEOUT_MS: u32 = 300;
    fn write(&self, buf: &mut [u8]) -> usize {
        let (c, id, q, r) = (self.client, self.msg_id, self.qos, self.retain);
        let mut topic = [0u8; limits::TOPIC];
        let Some(topic) = topic_of(self.source, &mut topic) else {
            return 0;
        };
        // Checked before the slot was taken: these cannot fail.
        let payload = self.inline.then_some((self.source, self.hex));
        write_publish((c, id, q, r), topic, payload, buf)
    }
    fn parse(&self, resp: Result<&[u8], atat::InternalError>) -> Result<NoResponse, atat::Error> {
        resp.map_err(atat::Error::from)?;
        Ok(NoResponse)
    }
}

/// The publish's end, from its slot's outcome.
fn published(msg_id: u16, o: PubOutcome) -> Result<Published, Error> {
    match o {
        PubOutcome::Final {
            result: 0,
            retransmissions,
        } => Ok(Published {
            msg_id,
            retransmissions,
        }),
        PubOutcome::Final { .. } => Err(Error::SendFailed),
        PubOutcome::Progress => Err(Error::UnexpectedResponse),
        PubOutcome::LinkClosed(r) => Err(Error::LinkClosed(r)),
        PubOutcome::Rebooted => Err(Error::ModemRebooted),
    }
}

/// Checks a payload against the limits of the form it needs; `Ok(true)`:
/// it goes inline.
pub(crate) fn check_payload(
    payload: &[u8],
    hex: bool,
    force_data_mode: bool,
) -> Result<bool, Error> {
    check_payload_of(&("", payload), hex, force_data_mode)
}

/// Checks the topic and the payload of `source` (read a few bytes at a
/// time: see [`Source`]); `Ok(true)`: it goes inline.
pub(crate) fn check_source(
    source: &dyn Source,
    hex: bool,
    force_data_mode: bool,
) -> Result<bool, Error> {
    let mut topic = [0u8; limits::TOPIC];
    let topic = topic_of(source, &mut topic).ok_or(Error::InvalidArgument {
        field: Field::Topic,
        problem: Problem::TooLong,
    })?;
    check_topic(topic)?;
    check_payload_of(source, hex, force_data_mode)
}

/// [`check_payload`] on the payload of `source`, scanned a chunk at a time.
fn check_payload_of(source: &dyn Source, hex: bool, force_data_mode: bool) -> Result<bool, Error> {
    let (start, len) = source.lens();
    let end = start + len;
    let wire = if hex { 2 * len } else { len };
    let mut safe = true;
    let mut ctrl = false;
    if !hex {
        each_chunk(source, start, end, &mut |c| {
            safe &= c.iter().all(|&b| quoted_safe(b));
            ctrl |= c.iter().any(|&b| b == 0x1a || b == 0x1b);
            true
        });
    }
    let inline = !force_data_mode && wire <= limits::INLINE_PAYLOAD && (hex || safe);
    if !inline {
        if wire > limits::DATA_MODE_PAYLOAD {
            return Err(Error::InvalidArgument {
                field: Field::Payload,
                problem: Problem::TooLong,
            });
        }
        if !hex && ctrl {
            return Err(Error::InvalidArgument {
                field: Field::Payload,
                problem: Problem::NeedsHexFormat,
            });
        }
    }
    Ok(inline)
}

/// What a step's outcome means (`open`: the step was an open): `Ok` with
/// what the server granted (empty but for a subscription). The operation
/// slot gives only a result of the step's own kind (a setting's is
/// `Code(0)`), so the outcome alone tells.
fn step_outcome(open: bool, o: OpOutcome) -> Result<Granted, Error> {
    match o {
        OpOutcome::Code(0)
        | OpOutcome::Conn {
            result: 0,
            ret_code: None | Some(0),
        }
        | OpOutcome::Uns { result: 0, .. } => Ok(Granted::empty()),
        OpOutcome::Code(c) if open => Err(Error::Open(OpenError::from_code(c))),
        OpOutcome::Code(_) => Err(Error::CloseFailed),
        OpOutcome::Conn {
            result: 0,
            ret_code: Some(c),
        } => Err(Error::ConnectRefused(ConnackCode::from_code(c))),
        OpOutcome::Sub {
            result: 0,
            value: SubValue::Granted(g),
        } => Ok(g),
        OpOutcome::Conn { .. } | OpOutcome::Sub { .. } | OpOutcome::Uns { .. } => {
            Err(Error::SendFailed)
        }
        _ => Err(Error::UnexpectedResponse),
    }
}

impl<M: RawMutex> core::fmt::Debug for MqttClient<'_, M> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MqttClient").field("id", &self.id).finish()
    }
}

#[cfg(feature = "defmt")]
impl<M: RawMutex> defmt::Format for MqttClient<'_, M> {
    fn format(&self, f: defmt::Formatter) {
        defmt::write!(f, "MqttClient {{ id: {} }}", self.id)
    }
}

/// The `AT+QMTPUB` line written from `source` (client 1, retained, msgID 9
/// but for QoS 0), for the tests of the outbox.
#[cfg(test)]
pub(crate) fn publish_line(
    source: &dyn Source,
    qos: QoS,
    hex: bool,
    inline: bool,
) -> std::vec::Vec<u8> {
    let mut buf = [0u8; 1100];
    let line = PublishLine {
        client: ClientId::new(1).unwrap(),
        msg_id: if qos == QoS::AtMostOnce { 0 } else { 9 },
        qos,
        retain: true,
        hex,
        inline,
        source,
    };
    let n = line.write(&mut buf);
    buf[..n].to_vec()
}
