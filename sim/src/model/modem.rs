//! [`Modem`]: the BC26 as a state machine, and the one place its owners meet. It runs each
//! command on the owner it concerns (`serial.rs` the UART and AT layer, `client.rs` a
//! client, `network.rs` the registration, `power.rs` the boot), and joins the clients to
//! the MQTT codec (`mqtt.rs`) through the packet values of `packet.rs`.

use std::collections::VecDeque;

use crate::config::{SimConfig, SimFaults};
use crate::model::at::{hex_decode, Refused, Res};
use crate::model::client::{Client, ClientState, Login, OpenPlan};
use crate::model::command::{parse, Access, Command};
use crate::model::effects::{Effects, NetRequest};
use crate::model::link::{LinkId, NetAction, NetEvent};
use crate::model::mqtt::{encode, Decoder};
use crate::model::network::{Change, Network};
use crate::model::power::{Power, PowerEvent};
use crate::model::qmtcfg::Opt;
use crate::model::serial::{DataPublish, HostInput, Serial, ToHost};
use crate::model::time::Time;

/// Clients (`tcpconnectID` 0-5).
const CLIENTS: u8 = 6;
/// The longest inline `AT+QMTPUB` message, in bytes (twice as many hex digits).
const MAX_INLINE: usize = 700;

/// A simulated BC26 with no thread, socket or clock of its own.
///
/// Drive it with inputs, each at a [`Time`] that never goes back: bytes from the host
/// ([`Modem::host_bytes`], each byte at the moment its stop bit is complete), network events
/// ([`Modem::network`]), the passing of time ([`Modem::advance`], at [`Modem::poll_at`] at
/// the latest) and the faults a test injects ([`Modem::reboot`], [`Modem::set_silent`],
/// ...). After each, take its outputs: [`Modem::poll_host`] (bytes to the host) and
/// [`Modem::poll_net`] (TCP actions with encoded MQTT). The same inputs at the same times
/// give the same outputs, byte for byte: the model has no randomness and iterates nothing
/// in hash order.
///
/// ```
/// use bc26_sim::model::{Modem, Time, ToHost};
/// use bc26_sim::SimConfig;
///
/// let mut m = Modem::new(&SimConfig { echo: false, ..SimConfig::default() });
/// m.host_bytes(Time::from_millis(1), b"AT\r");
/// assert_eq!(m.poll_host(), Some(ToHost::Message(b"\r\nOK\r\n")));
/// assert_eq!(m.poll_host(), None);
/// assert_eq!(m.poll_at(), None); // nothing to do until the next input
/// ```
#[derive(Debug)]
pub struct Modem {
    default_version: u8,
    quote_cfg_strings: bool,
    faults: SimFaults,
    serial: Serial,
    power: Power,
    net: Network,
    clients: Vec<Client>,
    /// The MQTT side of each client's link: the link its decoder is for.
    decoders: Vec<(Option<LinkId>, Decoder)>,
    fx: Effects,
    actions: VecDeque<NetAction>,
    now: Time,
    links: u64,
}

impl Modem {
    /// A modem just booted (no `RDY`: it is ready at once), at [`Time::ZERO`]. It takes
    /// from `cfg`: `echo`, `result_delay`, `default_version`, `quote_cfg_strings`,
    /// `cme_errors`, `boot_time` and `faults`; the rest is the shell's (UART, pipe, TCP).
    pub fn new(cfg: &SimConfig) -> Modem {
        Modem {
            default_version: cfg.default_version,
            quote_cfg_strings: cfg.quote_cfg_strings,
            faults: cfg.faults.clone(),
            serial: Serial::new(cfg.echo, cfg.cme_errors, cfg.result_delay),
            power: Power::new(cfg.boot_time),
            net: Network::new(),
            clients: (0..CLIENTS)
                .map(|id| Client::new(id, cfg.default_version))
                .collect(),
            decoders: (0..CLIENTS).map(|_| (None, Decoder::default())).collect(),
            fx: Effects::default(),
            actions: VecDeque::new(),
            now: Time::ZERO,
            links: 0,
        }
    }

    // ------------------------------------------------------------ inputs

    /// Bytes from the host, complete on the wire at `now`. Returns the bytes the module took:
    /// all of them, or none while it boots or its UART is silent.
    pub fn host_bytes<'b>(&mut self, now: Time, bytes: &'b [u8]) -> &'b [u8] {
        let now = self.advance_to(now);
        if self.serial.silent() {
            return &[];
        }
        let taken = self.power.admit(now, bytes);
        let mut rest = taken;
        while !rest.is_empty() {
            let (n, input) = self.serial.take(rest);
            rest = &rest[n..];
            match input {
                Some(HostInput::Line(line)) => {
                    self.line(now, &line);
                    self.serial.recycle(line);
                }
                Some(HostInput::Publish(p, payload)) => {
                    let c = &mut self.clients[p.id];
                    c.publish(
                        &mut self.fx,
                        now,
                        p.msgid,
                        (p.qos, p.retain),
                        p.topic,
                        payload,
                    );
                }
                None => continue,
            }
            // After each line, so that the output does not depend on how the bytes were cut.
            self.settle(now);
        }
        taken
    }

    /// What the network reports at `now`.
    pub fn network(&mut self, now: Time, ev: NetEvent<'_>) {
        let now = self.advance_to(now);
        let registered = self.net.registered();
        match ev {
            NetEvent::Connected(link) => {
                if let Some(c) = self.clients.get_mut(usize::from(link.client())) {
                    c.connected(&mut self.fx, link, registered);
                }
            }
            NetEvent::ConnectFailed(link, e) => {
                if let Some(c) = self.clients.get_mut(usize::from(link.client())) {
                    c.connect_failed(&mut self.fx, link, e);
                }
            }
            NetEvent::Data(link, bytes) => self.broker_bytes(now, link, bytes),
            NetEvent::Closed(link) => {
                if let Some(c) = self.clients.get_mut(usize::from(link.client())) {
                    c.link_closed(&mut self.fx, link);
                }
            }
        }
        self.settle(now);
    }

    /// Time has come to `now`: everything due by then happens (results, retransmissions,
    /// keep-alive, the end of a boot).
    pub fn advance(&mut self, now: Time) {
        self.advance_to(now);
    }

    // ------------------------------------------------------------ faults and controls

    /// Bytes to the host as if the modem had sent them, in order with its other output
    /// (lost while silent).
    pub fn inject(&mut self, now: Time, bytes: &[u8]) {
        let now = self.advance_to(now);
        self.serial.message(bytes);
        self.settle(now);
    }

    /// The module restarts at `now`: links dropped without DISCONNECT, every client, option
    /// and setting back to its default (echo on), output not yet sent and a half-received
    /// line discarded ([`ToHost::Discard`]); for `boot_time` it takes nothing from the host
    /// and sends nothing, then `\r\nRDY\r\n`.
    pub fn reboot(&mut self, now: Time) {
        let now = self.advance_to(now);
        for c in &mut self.clients {
            c.reset(&mut self.fx, self.default_version);
        }
        self.serial.reset();
        self.net.reset();
        self.power.reboot(now);
        self.settle(now);
    }

    /// A dead UART from `now` (`true`) or a live one again: while silent, bytes from the host
    /// are lost and nothing is sent (what was on its way is discarded); MQTT goes on.
    pub fn set_silent(&mut self, now: Time, silent: bool) {
        let now = self.advance_to(now);
        self.serial.set_silent(silent);
        self.settle(now);
    }

    /// The network's registration status (as `AT+CEREG?` shows it): losing registration
    /// drops every link with `+QMTSTAT: <id>,2`.
    pub fn set_registration(&mut self, now: Time, stat: u8) {
        let now = self.advance_to(now);
        let change = self.net.set(Some(stat), None);
        self.registration_changed(change);
        self.settle(now);
    }

    /// The module closes client `id`'s link (no DISCONNECT) and reports
    /// `+QMTSTAT: <id>,<code>`; nothing happens without a link.
    pub fn close_link(&mut self, now: Time, id: u8, code: u8) {
        let now = self.advance_to(now);
        if let Some(c) = self.clients.get_mut(usize::from(id)) {
            c.lose_link(&mut self.fx, code);
        }
        self.settle(now);
    }

    /// The peer resets client `id`'s link: `+QMTSTAT: <id>,1`.
    pub fn break_link(&mut self, now: Time, id: u8) {
        self.close_link(now, id, 1);
    }

    /// The fault knobs (counted ones count down as they are used).
    pub fn faults(&self) -> &SimFaults {
        &self.faults
    }

    /// Change the fault knobs.
    pub fn faults_mut(&mut self) -> &mut SimFaults {
        &mut self.faults
    }

    /// The state of client `id` (0-5); `None` for another id.
    pub fn client_state(&self, id: u8) -> Option<ClientState> {
        self.clients.get(usize::from(id)).map(Client::state)
    }

    // ------------------------------------------------------------ outputs

    /// The next piece of output to the host, in order; `None` when all was taken.
    pub fn poll_host(&mut self) -> Option<ToHost<'_>> {
        self.serial.poll()
    }

    /// The next action for the network, in order.
    pub fn poll_net(&mut self) -> Option<NetAction> {
        self.actions.pop_front()
    }

    /// When the model next needs [`Modem::advance`] (if no other input comes first); `None`:
    /// not until the next input.
    pub fn poll_at(&self) -> Option<Time> {
        let booting = self.power.booting();
        let due = if booting {
            None
        } else {
            self.serial.next_due()
        };
        self.clients
            .iter()
            .filter_map(Client::next_deadline)
            .chain(due)
            .chain(self.power.next_deadline())
            .min()
    }

    /// The latest time the model was given.
    pub fn now(&self) -> Time {
        self.now
    }

    // ------------------------------------------------------------ inside

    /// Time comes to `now` (never back), and everything due happens.
    fn advance_to(&mut self, now: Time) -> Time {
        self.now = self.now.max(now);
        self.settle(self.now);
        self.now
    }

    /// Everything due at `now` happens, what the owners asked for becomes output, and the
    /// lines due go to the host. After it, nothing is due at `now` or before (so
    /// [`Modem::poll_at`] is later, or `None`).
    fn settle(&mut self, now: Time) {
        if let Some(PowerEvent::Ready) = self.power.tick(now) {
            self.serial.message(b"\r\nRDY\r\n");
        }
        let registered = self.net.registered();
        for c in &mut self.clients {
            c.tick(&mut self.fx, now, registered);
        }
        let (net, lines) = self.fx.drain();
        for r in net {
            match r {
                NetRequest::Connect { link, host, port } => {
                    self.actions
                        .push_back(NetAction::Connect { link, host, port });
                }
                NetRequest::Send(link, p) => match encode(&p) {
                    Ok(bytes) => self.actions.push_back(NetAction::Send { link, bytes }),
                    // Unreachable from the host's bytes (commands are checked first), but
                    // never a panic: said, and not sent (the operation then times out).
                    Err(e) => eprintln!("bc26-sim: not sent, the codec refuses {p:?}: {}", e.0),
                },
                NetRequest::Close(link) => {
                    if let Some(d) = self.decoders.get_mut(usize::from(link.client())) {
                        if d.0 == Some(link) {
                            *d = (None, Decoder::default());
                        }
                    }
                    self.actions.push_back(NetAction::Close { link });
                }
            }
        }
        for (when, line) in lines {
            self.serial.defer(now, when, &line);
        }
        self.serial.flush_due(now, self.power.booting());
    }

    /// Bytes from the broker on `link`, through the codec, to the client.
    fn broker_bytes(&mut self, now: Time, link: LinkId, bytes: &[u8]) {
        let i = usize::from(link.client());
        let Some(c) = self.clients.get_mut(i) else {
            return;
        };
        if c.link() != Some(link) || !c.state().has_link() {
            return;
        }
        let d = &mut self.decoders[i];
        if d.0 != Some(link) {
            *d = (Some(link), Decoder::default());
        }
        d.1.push(bytes);
        while c.link() == Some(link) {
            match d.1.next_packet() {
                None => break,
                Some(Ok(p)) => c.on_packet(&mut self.fx, now, p, &mut self.faults),
                Some(Err(_)) => {
                    // Not MQTT: the link is unusable, as if the peer had closed it.
                    c.link_closed(&mut self.fx, link);
                    break;
                }
            }
        }
    }

    fn registration_changed(&mut self, change: Change) {
        if let Some(urc) = change.urc {
            if !self.power.booting() {
                self.fx.urc(urc);
            }
        }
        if change.lost {
            for c in &mut self.clients {
                c.lose_link(&mut self.fx, 2);
            }
        }
    }

    /// One command line from the host.
    fn line(&mut self, now: Time, line: &[u8]) {
        if let Some(prefix) = &self.faults.error_on_prefix {
            if line.len() >= prefix.len()
                && line[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
            {
                return self.serial.error();
            }
        }
        let done = parse(line).and_then(|cmd| self.run(now, cmd));
        if done.is_err() {
            self.serial.error();
        }
    }

    /// Run a command: `Err` answers `ERROR` (and nothing else happened).
    fn run(&mut self, now: Time, cmd: Command) -> Res {
        let s = &mut self.serial;
        match cmd {
            Command::At => s.ok(),
            Command::Echo(on) => {
                s.set_echo(on);
                s.ok();
            }
            Command::Cmee(Access::Write(n)) => {
                s.set_cmee(n);
                s.ok();
            }
            Command::Cmee(Access::Read) => {
                let l = format!("+CMEE: {}", s.cmee());
                s.info(&[l]);
            }
            Command::Cmee(Access::Test) => s.info(&["+CMEE: (0-2)"]),
            Command::Cereg(Access::Write(n)) => {
                self.net.set_urc_mode(n);
                s.ok();
            }
            Command::Cereg(Access::Read) => s.info(&[self.net.cereg_line()]),
            Command::Cereg(Access::Test) => s.info(&["+CEREG: (0-2)"]),
            Command::Cgatt(Access::Write(attach)) => {
                s.ok();
                let change = self.net.set(None, Some(!attach));
                self.registration_changed(change);
            }
            Command::Cgatt(Access::Read) => {
                let l = format!("+CGATT: {}", u8::from(self.net.registered()));
                s.info(&[l]);
            }
            Command::Cgatt(Access::Test) => s.info(&["+CGATT: (0,1)"]),
            Command::QmtcfgTest => {
                let lines: Vec<Vec<u8>> = Opt::ALL.iter().map(|o| o.test_line()).collect();
                s.info(&lines);
            }
            Command::Qmtcfg { opt, id, args } if args.is_empty() => {
                let line = self.clients[id].query(opt, self.quote_cfg_strings);
                s.info(line.as_slice());
            }
            Command::Qmtcfg { opt, id, args } => {
                self.clients[id].configure(opt, &args)?;
                s.ok();
            }
            Command::QmtTest(line) => s.info(&[line]),
            Command::QmtopenRead => {
                let lines: Vec<Vec<u8>> =
                    self.clients.iter().filter_map(Client::open_line).collect();
                s.info(&lines);
            }
            Command::Qmtopen { id, host, port } => {
                s.ok();
                let plan = self.open_plan(id);
                let link = self.new_link(id);
                let delay = self.faults.open_delay;
                let fx = &mut self.fx;
                self.clients[id].open(fx, now, link, (host, port), delay, plan);
            }
            Command::Qmtclose(id) => {
                s.ok();
                self.clients[id].close(&mut self.fx);
            }
            Command::QmtconnRead => {
                let lines: Vec<Vec<u8>> =
                    self.clients.iter().filter_map(Client::conn_line).collect();
                s.info(&lines);
            }
            Command::Qmtconn {
                id,
                client_id,
                username,
                password,
            } => {
                let login = Login {
                    client_id,
                    username,
                    password,
                };
                let connect = self.clients[id].connect_packet(login)?;
                // Encodable (a v3.1 client id too long, say, is not): or ERROR, nothing sent.
                encode(&connect).map_err(|_| Refused)?;
                s.ok();
                let refused = SimFaults::take(&mut self.faults.refuse_connect);
                self.clients[id].connect(&mut self.fx, now, connect, refused);
            }
            Command::Qmtdisc(id) => {
                s.ok();
                self.clients[id].disconnect(&mut self.fx, now);
            }
            Command::Qmtsub { id, msgid, filters } => {
                if !self.clients[id].connected_to_broker() {
                    return Err(Refused);
                }
                s.ok();
                self.clients[id].subscribe(&mut self.fx, now, msgid, filters);
            }
            Command::Qmtuns { id, msgid, filters } => {
                if !self.clients[id].connected_to_broker() {
                    return Err(Refused);
                }
                s.ok();
                self.clients[id].unsubscribe(&mut self.fx, now, msgid, filters);
            }
            Command::Qmtpub {
                id,
                msgid,
                qos,
                retain,
                topic,
                msg,
            } => self.publish(now, (id, msgid, qos, retain), topic, msg)?,
        }
        Ok(())
    }

    /// How an `AT+QMTOPEN` of client `id` ends: not registered, 3; a `fail_open` fault, its
    /// code (counted only when the client can open); else a TCP connect.
    fn open_plan(&mut self, id: usize) -> OpenPlan {
        if self.clients[id].state() != ClientState::Closed {
            OpenPlan::Connect // refused by the client itself: `+QMTOPEN: <id>,2`
        } else if !self.net.registered() {
            OpenPlan::Fail(3)
        } else {
            SimFaults::take(&mut self.faults.fail_open).map_or(OpenPlan::Connect, OpenPlan::Fail)
        }
    }

    fn new_link(&mut self, id: usize) -> LinkId {
        self.links += 1;
        LinkId::new(self.links - 1, id as u8)
    }

    /// `AT+QMTPUB`: inline (the message checked against the client's format) or data mode.
    fn publish(
        &mut self,
        now: Time,
        (id, msgid, qos, retain): (usize, u16, u8, bool),
        topic: String,
        msg: Option<Vec<u8>>,
    ) -> Res {
        let hex = self.clients[id].send_hex();
        let inline = match msg {
            Some(m) if hex && m.len() <= 2 * MAX_INLINE => Some(hex_decode(&m).ok_or(Refused)?),
            Some(m) if !hex && m.len() <= MAX_INLINE => Some(m),
            Some(_) => return Err(Refused),
            None => None,
        };
        if !self.clients[id].connected_to_broker() {
            return Err(Refused);
        }
        match inline {
            Some(m) => {
                self.serial.ok();
                let fx = &mut self.fx;
                self.clients[id].publish(fx, now, msgid, (qos, retain), topic, m);
            }
            None => {
                let echo = self.clients[id].echomode();
                self.serial.enter_data_mode(DataPublish {
                    id,
                    msgid,
                    qos,
                    retain,
                    topic,
                    hex,
                    echo,
                });
            }
        }
        Ok(())
    }
}
