//! The modem thread: the one thread that drives the model. It turns real time into the
//! model's [`Time`], hands it every message of the other threads, carries out its outputs
//! (bytes to the transmit thread, TCP actions on [`Links`]), and sleeps until the next
//! message or the instant the model asked for.

use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::model::{Modem, NetAction, NetEvent, PowerTransition, Time, ToHost};
use crate::shell::msg::{Msg, NetMsg};
use crate::shell::net::Links;
use crate::shell::tx::Output;

/// Longest sleep with nothing to do (the thread wakes for messages anyway).
const IDLE: Duration = Duration::from_secs(3600);

pub(crate) struct Runner {
    model: Modem,
    epoch: Instant,
    out: Output,
    links: Links,
    /// Every byte the model took from the host, for `SimHandle::host_transcript`.
    host_log: Arc<Mutex<Vec<u8>>>,
    /// Who wants the power transitions (`SimHandle::power_events`).
    power_subs: Vec<Sender<PowerTransition>>,
}

impl Runner {
    pub(crate) fn new(
        model: Modem,
        out: Output,
        links: Links,
        host_log: Arc<Mutex<Vec<u8>>>,
    ) -> Self {
        Runner {
            model,
            epoch: Instant::now(),
            out,
            links,
            host_log,
            power_subs: Vec::new(),
        }
    }

    fn now(&self) -> Time {
        Time::from_duration(self.epoch.elapsed())
    }

    pub(crate) fn run(mut self, rx: Receiver<Msg>) {
        loop {
            let wait = self
                .model
                .poll_at()
                .map_or(IDLE, |t| t.saturating_since(self.now()));
            match rx.recv_timeout(wait) {
                Ok(Msg::Shutdown) | Err(RecvTimeoutError::Disconnected) => break,
                Ok(m) => self.handle(m),
                Err(RecvTimeoutError::Timeout) => {
                    let now = self.now();
                    self.model.advance(now);
                    self.carry_out(now);
                }
            }
        }
        self.links.close_all();
    }

    fn handle(&mut self, m: Msg) {
        let now = self.now();
        let model = &mut self.model;
        match m {
            Msg::Host(bytes) => {
                let taken = model.host_bytes(now, &bytes);
                if !taken.is_empty() {
                    let mut log = self.host_log.lock().unwrap_or_else(|e| e.into_inner());
                    log.extend_from_slice(taken);
                }
            }
            Msg::Net(NetMsg::Connected(link, stream)) => {
                if self.links.adopt(link, stream) {
                    model.network(now, NetEvent::Connected(link));
                } else {
                    let e = crate::model::ConnectError::Refused;
                    model.network(now, NetEvent::ConnectFailed(link, e));
                }
            }
            Msg::Net(NetMsg::ConnectFailed(link, e)) => {
                model.network(now, NetEvent::ConnectFailed(link, e))
            }
            Msg::Net(NetMsg::Data(link, bytes)) => model.network(now, NetEvent::Data(link, &bytes)),
            Msg::Net(NetMsg::Closed(link)) => {
                self.links.close(link);
                model.network(now, NetEvent::Closed(link));
            }
            Msg::Inject(bytes) => model.inject(now, &bytes),
            Msg::BreakLink(id) => model.break_link(now, id),
            Msg::CloseLink { id, code } => model.close_link(now, id, code),
            Msg::Reboot => model.reboot(now),
            Msg::Registration(stat) => model.set_registration(now, stat),
            Msg::Silent(on) => model.set_silent(now, on),
            Msg::State(id, reply) => {
                let _ = reply.send(model.client_state(id));
            }
            Msg::SetFaults(f) => *model.faults_mut() = f,
            Msg::GetFaults(reply) => {
                let _ = reply.send(model.faults().clone());
            }
            Msg::EditFaults(current, edited) => {
                if current.send(model.faults().clone()).is_ok() {
                    if let Ok(f) = edited.recv() {
                        *model.faults_mut() = f;
                    }
                }
            }
            Msg::PsmEint => model.psm_eint(now),
            Msg::NetworkPolicy(p) => *model.network_policy_mut() = p,
            Msg::Charge(reply) => {
                model.advance(now);
                let _ = reply.send(model.charge());
            }
            Msg::PowerState(reply) => {
                model.advance(now);
                let _ = reply.send(model.power_state());
            }
            Msg::PowerEvents(tx) => self.power_subs.push(tx),
            Msg::Shutdown => {}
        }
        self.carry_out(now);
    }

    /// The model's outputs: bytes to the transmit thread, actions on the links (a write that
    /// fails is the link closed, which the model hears at once).
    fn carry_out(&mut self, now: Time) {
        if !self.power_subs.is_empty() {
            while let Some(t) = self.model.poll_power() {
                self.power_subs.retain(|s| s.send(t).is_ok());
            }
        }
        loop {
            while let Some(piece) = self.model.poll_host() {
                match piece {
                    ToHost::Echo(b) => self.out.send_echo(b),
                    ToHost::Message(b) => self.out.send(b),
                    ToHost::Discard => self.out.discard(),
                }
            }
            let mut failed = Vec::new();
            while let Some(a) = self.model.poll_net() {
                match a {
                    NetAction::Connect { link, host, port } => self.links.connect(link, host, port),
                    NetAction::Send { link, bytes } => {
                        if !self.links.write(link, &bytes) {
                            failed.push(link);
                        }
                    }
                    NetAction::Close { link } => self.links.close(link),
                }
            }
            if failed.is_empty() {
                return;
            }
            for link in failed {
                self.model.network(now, NetEvent::Closed(link));
            }
        }
    }
}
