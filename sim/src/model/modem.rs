//! [`Modem`]: the BC26 as a state machine, and the one place its owners meet. It runs each
//! command on the owner it concerns (`serial.rs` the UART and AT layer, `client.rs` a
//! client, `network.rs` the registration, `power/` the boot, sleep, radio and charge meter,
//! `carrier.rs` the operator's NAT and the downlink that waits for a sleeping module), and
//! joins the clients to the MQTT codec (`mqtt.rs`) through the packet values of `packet.rs`.

use std::collections::VecDeque;

use crate::config::{NetworkPolicy, PoisonAnswer, SimConfig, SimFaults, Wedge};
use crate::model::at::{hex_decode, Refused, Res};
use crate::model::carrier::{Carrier, Held};
use crate::model::client::{Client, ClientState, Login, OpenPlan};
use crate::model::command::{parse, Access, Command};
use crate::model::effects::{Effects, NetRequest, When};
use crate::model::link::{LinkId, NetAction, NetEvent};
use crate::model::mqtt::{encode, Decoder};
use crate::model::network::{Change, Network};
use crate::model::power::{ChargeReport, Power, PowerState, PowerTransition, Watch};
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
    carrier: Carrier,
    clients: Vec<Client>,
    /// The MQTT side of each client's link: the link its decoder is for.
    decoders: Vec<(Option<LinkId>, Decoder)>,
    fx: Effects,
    actions: VecDeque<NetAction>,
    now: Time,
    links: u64,
}

impl Modem {
    /// A modem just booted (no `RDY`: it is ready at once), registered, its radio idle, at
    /// [`Time::ZERO`]. It takes from `cfg`: `echo`, `result_delay`, `default_version`,
    /// `quote_cfg_strings`, `cme_errors`, `boot_time`, `power` and `faults`; the rest is the
    /// shell's (UART, pipe, TCP).
    pub fn new(cfg: &SimConfig) -> Modem {
        Modem {
            default_version: cfg.default_version,
            quote_cfg_strings: cfg.quote_cfg_strings,
            faults: cfg.faults.clone(),
            serial: Serial::new(cfg.echo, cfg.cme_errors, cfg.result_delay),
            power: Power::new(&cfg.power, cfg.boot_time),
            net: Network::new(),
            carrier: Carrier::default(),
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
    /// all of them, or none while it boots, its UART is silent, or its UART sleeps (light
    /// sleep: these bytes wake it and are lost, and so are those of the next
    /// `PowerConfig::uart_wake`; deep sleep: only PSM_EINT wakes it).
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
                    self.power.command(now);
                    self.line(now, &line);
                    self.serial.recycle(line);
                }
                Some(HostInput::Publish(p, payload)) => {
                    self.send_publish(now, (p.id, p.msgid, p.qos, p.retain), p.topic, payload);
                }
                None => continue,
            }
            // After each line, so that the output does not depend on how the bytes were cut.
            self.settle(now);
            if self.power.booting() {
                // `AT+QRST=1`: the module restarts; the rest of these bytes is lost.
                break;
            }
        }
        taken
    }

    /// What the network reports at `now`. A packet on a link the operator's NAT has
    /// forgotten is lost; while the module cannot be reached (PSM, eDRX outside a paging
    /// window) the event waits, and it reaches the module, in order, when it can.
    pub fn network(&mut self, now: Time, ev: NetEvent<'_>) {
        let now = self.advance_to(now);
        let link = match ev {
            NetEvent::Connected(l)
            | NetEvent::ConnectFailed(l, _)
            | NetEvent::Data(l, _)
            | NetEvent::Closed(l) => l,
        };
        let nat_idle = self.power.policy().nat_idle;
        if !self.carrier.inbound(link, now, nat_idle) {
            return self.settle(now);
        }
        if matches!(ev, NetEvent::ConnectFailed(..) | NetEvent::Closed(_)) {
            self.carrier.forget(link);
        }
        if self.carrier.holding() || !self.power.reachable(now) {
            self.carrier.hold(Held::of(&ev));
        } else {
            self.power.downlink(now);
            self.deliver(now, ev);
        }
        self.settle(now);
    }

    /// A network event reaches the module.
    fn deliver(&mut self, now: Time, ev: NetEvent<'_>) {
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
        self.restart(now, true);
    }

    /// The restart of [`reboot`](Self::reboot) (`discard`: what was not sent yet is lost)
    /// and of `AT+QRST=1` (its `OK` goes out first).
    fn restart(&mut self, now: Time, discard: bool) {
        self.faults.wedged = None;
        for c in &mut self.clients {
            c.reset(&mut self.fx, self.default_version);
        }
        if discard {
            self.serial.reset();
        } else {
            self.serial.restart();
        }
        self.net.reset();
        self.power.reboot(now);
        self.settle(now);
        self.carrier.reset();
    }

    /// A falling edge on the PSM_EINT pin at `now`: wakes a module in deep sleep (after
    /// `PowerConfig::deep_wake`, then `+QATWAKEUP` if enabled) or in light sleep (at once).
    /// The radio stays where it is (in PSM until the module sends something).
    pub fn psm_eint(&mut self, now: Time) {
        let now = self.advance_to(now);
        self.power.psm_eint(now);
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
        let change = self.net.set(Some(stat), None, self.power.granted_psm());
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

    /// The network's policy: the RRC inactivity timer, the PSM and eDRX grants, the NAT
    /// (`SimConfig::power.network` at start).
    pub fn network_policy(&self) -> &NetworkPolicy {
        self.power.policy()
    }

    /// Change the network's policy: a new grant applies from the next TAU (the next
    /// `AT+CPSMS`/`AT+CEDRXS`, or T3412), a new inactivity timer from the next packet, a new
    /// NAT timeout at once.
    pub fn network_policy_mut(&mut self) -> &mut NetworkPolicy {
        self.power.policy_mut()
    }

    // ------------------------------------------------------------ power

    /// The charge meter at [`Modem::now`]: time and charge per [`PowerState`], the total, and
    /// what the power model counted. Exact (integer nanoamperes times nanoseconds) and cheap
    /// (a copy of a few numbers).
    pub fn charge(&self) -> ChargeReport {
        let mut r = self.power.report(self.now);
        r.counters.downlink_held = self.carrier.held_total();
        r.counters.nat_expired = self.carrier.expired();
        r
    }

    /// The module's power state at [`Modem::now`].
    pub fn power_state(&self) -> PowerState {
        self.power.state()
    }

    /// The oldest change of power state not taken yet, with its time (the last 256 are
    /// kept): a log of what the module did.
    pub fn poll_power(&mut self) -> Option<PowerTransition> {
        self.power.poll_transition()
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
        let watch = Watch {
            cereg_timers: self.net.reports_timers(),
            holding: self.carrier.holding(),
        };
        self.clients
            .iter()
            .filter_map(Client::next_deadline)
            .chain(due)
            .chain(self.power.next_deadline(watch, self.now))
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
        let ticked = self.power.tick(now);
        if ticked.ready {
            self.serial.message(b"\r\nRDY\r\n");
        }
        if ticked.psm_granted {
            self.timers_changed();
        }
        loop {
            // What waited for the module, now that it can be reached (a TAU, a paging window,
            // the connection an uplink of this step set up).
            while self.carrier.holding() && !self.power.booting() && self.power.reachable(now) {
                let Some(held) = self.carrier.pop_held() else {
                    break;
                };
                self.power.downlink(now);
                self.deliver(now, held.event());
            }
            let registered = self.net.registered();
            for c in &mut self.clients {
                c.tick(&mut self.fx, now, registered);
            }
            self.drain(now);
            if !(self.carrier.holding() && !self.power.booting() && self.power.reachable(now)) {
                break;
            }
        }
        let open = self.clients.iter().any(|c| c.link().is_some());
        self.power.set_links_open(now, open);
        self.serial.flush_due(now, self.power.booting());
    }

    /// What the owners asked for becomes output: packets through the NAT (each one an uplink
    /// for the radio), then the power URCs of this step (`+CSCON: 1` of an uplink), then the
    /// result lines and URCs.
    fn drain(&mut self, now: Time) {
        let nat_idle = self.power.policy().nat_idle;
        let (net, lines) = self.fx.drain();
        for r in net {
            match r {
                NetRequest::Connect { link, host, port } => {
                    self.carrier.open(link, now);
                    self.power.uplink(now);
                    self.actions
                        .push_back(NetAction::Connect { link, host, port });
                }
                NetRequest::Send(link, p) => match encode(&p) {
                    // A packet the NAT drops never leaves: nobody hears of it.
                    Ok(bytes) => {
                        if self.carrier.outbound(link, now, nat_idle) {
                            self.power.uplink(now);
                            self.actions.push_back(NetAction::Send { link, bytes });
                        }
                    }
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
                    if self.carrier.outbound(link, now, nat_idle) {
                        // A restart drops its links without a packet.
                        if !self.power.booting() {
                            self.power.uplink(now);
                        }
                        self.actions.push_back(NetAction::Close { link });
                    }
                    self.carrier.forget(link);
                }
            }
        }
        // The power URCs of this step (+CSCON: 1 of an uplink) before its result lines.
        for urc in self.power.take_urcs() {
            self.serial.defer(now, When::Urc, &urc);
        }
        for (when, line) in lines {
            self.serial.defer(now, when, &line);
        }
    }

    /// The PSM timers granted changed: `+CEREG` with them, if `AT+CEREG=4/5`.
    fn timers_changed(&mut self) {
        if let Some(urc) = self.net.timers_urc(self.power.granted_psm()) {
            self.fx.urc(urc);
        }
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
        if let Some(w) = self.faults.wedged {
            // Read, not answered; `AT+QRST=1` alone may still restart it.
            if w == Wedge::ResetWorks && parse(line) == Ok(Command::Qrst) {
                let _ = self.run(now, Command::Qrst);
            }
            return;
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
            Command::Qrst => {
                // `OK`, then the module restarts (docs/at-reference.md, "AT+QRST").
                s.ok();
                self.restart(now, false);
            }
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
            Command::Cereg(Access::Read) => {
                s.info(&[self.net.cereg_line(self.power.granted_psm())]);
            }
            Command::Cereg(Access::Test) => s.info(&["+CEREG: (0-5)"]),
            Command::Cgatt(Access::Write(attach)) => {
                s.ok();
                let change = self.net.set(None, Some(!attach), self.power.granted_psm());
                self.registration_changed(change);
            }
            Command::Cpsms(Access::Write(req)) => {
                s.ok();
                if self.power.request_psm(now, req) {
                    self.timers_changed();
                }
            }
            Command::Cpsms(Access::Read) => s.info(&[self.power.cpsms_line()]),
            Command::Cpsms(Access::Test) => {
                s.info(&["+CPSMS: (0-2),,,(\"00000000\"-\"11111111\"),(\"00000000\"-\"11111111\")"])
            }
            Command::Cedrxs(Access::Write(req)) => {
                if !self.power.request_edrx(now, req) {
                    return Err(Refused);
                }
                s.ok();
            }
            Command::Cedrxs(Access::Read) => s.info(&self.power.cedrxs_lines()),
            Command::Cedrxs(Access::Test) => s.info(&["+CEDRXS: (0-3),(5),(\"0000\"-\"1111\")"]),
            Command::Cedrxrdp(Access::Test) => s.ok(),
            Command::Cedrxrdp(_) => s.info(&[self.power.cedrxrdp_line()]),
            Command::Qsclk(Access::Write(n)) => {
                self.power.set_qsclk(now, n);
                s.ok();
            }
            Command::Qsclk(Access::Read) => {
                let l = format!("+QSCLK: {}", self.power.qsclk());
                s.info(&[l]);
            }
            Command::Qsclk(Access::Test) => s.info(&["+QSCLK: (0-2)"]),
            Command::Qrellock => {
                self.power.release_lock(now);
                s.ok();
            }
            Command::Cscon(Access::Write(on)) => {
                self.power.set_cscon(on);
                s.ok();
            }
            Command::Cscon(Access::Read) => s.info(&[self.power.cscon_line()]),
            Command::Cscon(Access::Test) => s.info(&["+CSCON: (0,1)"]),
            Command::Qnbiotevent(Access::Write(on)) => {
                self.power.set_psm_event(on);
                s.ok();
            }
            // As the manual prints them: no information line.
            Command::Qnbiotevent(_) => s.ok(),
            Command::Qnbiotrai(Access::Write(rai)) => {
                self.power.set_rai(rai);
                s.ok();
            }
            Command::Qnbiotrai(Access::Read) => {
                let l = format!("+QNBIOTRAI: {}", self.power.rai());
                s.info(&[l]);
            }
            Command::Qnbiotrai(Access::Test) => s.info(&["+QNBIOTRAI: (0-2)"]),
            Command::Qatwakeup(Access::Write(on)) => {
                self.power.set_atwakeup(on);
                s.ok();
            }
            Command::Qatwakeup(Access::Read) => {
                let l = format!("+QATWAKEUP: {}", u8::from(self.power.atwakeup()));
                s.info(&[l]);
            }
            Command::Qatwakeup(Access::Test) => s.info(&["+QATWAKEUP: (0,1)"]),
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

    /// A publish whose message is known (inline, or the end of data mode): `OK` and the
    /// client sends it, or the answer to a poisoned message (`SimFaults::poison`).
    fn send_publish(
        &mut self,
        now: Time,
        (id, msgid, qos, retain): (usize, u16, u8, bool),
        topic: String,
        payload: Vec<u8>,
    ) {
        let poison = self.faults.poison.as_ref().and_then(|p| p.answer(&payload));
        match poison {
            Some(PoisonAnswer::Error) => self.serial.error(),
            Some(PoisonAnswer::Failed) => {
                self.serial.ok();
                self.fx.result(format!("+QMTPUB: {id},{msgid},2"));
            }
            None => {
                self.serial.ok();
                let fx = &mut self.fx;
                self.clients[id].publish(fx, now, msgid, (qos, retain), topic, payload);
            }
        }
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
            Some(m) => self.send_publish(now, (id, msgid, qos, retain), topic, m),
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
