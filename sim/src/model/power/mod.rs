//! The module's power: its boot, its sleep (`AT+QSCLK`, the sleep lock of each AT command,
//! `AT+QRELLOCK`, a UART that loses the bytes that wake it, PSM_EINT), its radio (RRC
//! connected, idle with DRX or eDRX paging, PSM; the network's inactivity timer, T3324 and
//! T3412 as the network grants them for `AT+CPSMS`/`AT+CEDRXS`; release assistance) and its
//! URCs (`+CSCON`, `+QNBIOTEVENT`, `+CEDRXP`, `+QATWAKEUP`), with a charge meter
//! (`meter.rs`) that integrates the current of each state over the time spent in it.
//!
//! It sees every instant the modem is given ([`Power::tick`]), every byte from the host before
//! the AT layer ([`Power::admit`]) and every packet the module sends or receives
//! ([`Power::uplink`], [`Power::downlink`]), and says when it next needs to be woken
//! ([`Power::next_deadline`]). Its state changes at known instants (the end of a
//! transmission, the inactivity timer, T3324, T3412, a sleep lock): `tick` catches up on each
//! at its own instant, so the meter is exact however late the next input comes, and only
//! the instants that show (a URC the host enabled, downlink waiting for the module) are
//! deadlines. Timings and currents: `docs/power-model.md`. Only this file changes it.

mod meter;
pub(crate) mod timers;

use std::collections::VecDeque;
use std::time::Duration;

use crate::config::{Current, EdrxGrant, NetworkPolicy, PowerConfig, PsmGrant};
use crate::model::time::Time;

use meter::Meter;
pub use meter::{Charge, ChargeReport, PowerCounters, PowerState, PowerTransition, StateCharge};
use timers::{active_time, bits, edrx_cycle, periodic_tau, ptw};

/// Transitions kept for [`Power::poll_transition`]; older ones are dropped.
const LOG: usize = 256;

/// The radio's RRC state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rrc {
    /// Connected: transmitting until `tx_until`, released at `release_at`.
    Connected {
        tx_until: Option<Time>,
        release_at: Time,
        /// Release assistance 2: release at the next downlink.
        release_on_downlink: bool,
    },
    /// Idle, paged with DRX or eDRX; PSM at `psm_at` (T3324), TAU at `tau_at` (T3412).
    Idle {
        psm_at: Option<Time>,
        tau_at: Option<Time>,
    },
    /// PSM (unreachable) until `tau_at` or an uplink.
    Psm { tau_at: Option<Time> },
}

/// What the host asked for with `AT+CPSMS` and `AT+CEDRXS`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Requests {
    psm: bool,
    tau: Option<u8>,
    act: Option<u8>,
    /// `AT+CEDRXS` mode: 0 off, 1 on, 2 on with `+CEDRXP`.
    edrx_mode: u8,
    edrx: Option<u8>,
}

/// What the network granted: T3412 and T3324 codes; eDRX cycle and paging time window codes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Grants {
    psm: Option<(u8, u8)>,
    edrx: Option<(u8, u8)>,
}

/// What [`Power::tick`] saw happen.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ticked {
    /// The boot is over: the module says `RDY`.
    pub(crate) ready: bool,
    /// The PSM timers granted changed (a `+CEREG` with timers is due when `<n>` is 4 or 5).
    pub(crate) psm_granted: bool,
}

/// The URCs the modem's other owners enable, and whether downlink waits: what makes a
/// change of the radio's state show.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Watch {
    /// `AT+CEREG=4/5`: a TAU may report new timers.
    pub(crate) cereg_timers: bool,
    /// Network events wait for the module to become reachable.
    pub(crate) holding: bool,
}

/// A write of `AT+CPSMS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PsmRequest {
    /// 0 off, 1 on, 2 off and forget the timers.
    pub(crate) mode: u8,
    /// Requested T3412 (GPRS Timer 3 code).
    pub(crate) tau: Option<u8>,
    /// Requested T3324 (GPRS Timer 2 code).
    pub(crate) act: Option<u8>,
}

/// A write of `AT+CEDRXS` (access technology 5, NB-S1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EdrxRequest {
    /// 0 off, 1 on, 2 on with `+CEDRXP`, 3 off and forget the value.
    pub(crate) mode: u8,
    /// Requested eDRX cycle (4-bit code).
    pub(crate) value: Option<u8>,
}

#[derive(Debug, Clone)]
pub(crate) struct Power {
    cfg: PowerConfig,
    boot_time: Duration,
    /// Booting until then.
    boot_until: Option<Time>,
    /// An attach follows the boot (a reboot; not the model's start).
    attach_after_boot: bool,
    // ---- the application processor and its UART
    qsclk: u8,
    lock_until: Option<Time>,
    /// Waking up (from light sleep by the UART, or from deep sleep by PSM_EINT) until then.
    wake_until: Option<Time>,
    /// The wake in progress is from deep sleep (`+QATWAKEUP` at its end).
    deep_waking: bool,
    links_open: bool,
    // ---- URCs the host enabled
    cscon: bool,
    psm_event: bool,
    atwakeup: bool,
    rai: u8,
    // ---- radio
    req: Requests,
    granted: Grants,
    rrc: Rrc,
    /// The earliest instant at which something changes (kept by [`Power::update`]).
    next: Option<Time>,
    // ---- outputs
    meter: Meter,
    counters: PowerCounters,
    urcs: Vec<Vec<u8>>,
    log: VecDeque<PowerTransition>,
}

impl Power {
    /// A module just booted at [`Time::ZERO`], registered, its radio idle.
    pub(crate) fn new(cfg: &PowerConfig, boot_time: Duration) -> Self {
        let mut p = Power {
            cfg: *cfg,
            boot_time,
            boot_until: None,
            attach_after_boot: false,
            qsclk: cfg.qsclk_at_boot.min(2),
            lock_until: None,
            wake_until: None,
            deep_waking: false,
            links_open: false,
            cscon: false,
            psm_event: false,
            atwakeup: false,
            rai: 0,
            req: Requests::default(),
            granted: Grants::default(),
            rrc: Rrc::Idle {
                psm_at: None,
                tau_at: None,
            },
            next: None,
            meter: Meter::new(Time::ZERO, PowerState::Awake, cfg.currents.awake),
            counters: PowerCounters::default(),
            urcs: Vec::new(),
            log: VecDeque::new(),
        };
        p.rrc = p.idle_from(Time::ZERO);
        p.update(Time::ZERO);
        p
    }

    pub(crate) fn policy(&self) -> &NetworkPolicy {
        &self.cfg.network
    }

    pub(crate) fn policy_mut(&mut self) -> &mut NetworkPolicy {
        &mut self.cfg.network
    }

    // ------------------------------------------------------------ boot

    /// The module restarts at `now`: links gone, URC settings and `AT+QSCLK` back to their
    /// defaults, the PSM/eDRX requests kept (non-volatile); an attach follows the boot.
    pub(crate) fn reboot(&mut self, now: Time) {
        self.boot_until = Some(now + self.boot_time);
        self.attach_after_boot = true;
        self.qsclk = self.cfg.qsclk_at_boot.min(2);
        self.lock_until = None;
        self.wake_until = None;
        self.deep_waking = false;
        self.links_open = false;
        self.cscon = false;
        self.psm_event = false;
        self.atwakeup = false;
        self.rai = 0;
        self.urcs.clear();
        self.rrc = self.idle_from(now);
        self.update(now);
    }

    pub(crate) fn booting(&self) -> bool {
        self.boot_until.is_some()
    }

    // ------------------------------------------------------------ the UART and the host

    /// The bytes of `bytes` that the module takes at `now` (a suffix; the time is caught up):
    /// none while it boots; none while its UART sleeps or wakes up (the bytes are lost, and
    /// in light sleep the first of them starts the wake-up).
    pub(crate) fn admit<'b>(&mut self, now: Time, bytes: &'b [u8]) -> &'b [u8] {
        if self.booting() || bytes.is_empty() {
            return &[];
        }
        let lost = |p: &mut Power| {
            p.counters.host_bytes_lost =
                p.counters.host_bytes_lost.wrapping_add(bytes.len() as u64);
        };
        if self.wake_until.is_some() {
            lost(self);
            return &[];
        }
        match self.meter.state() {
            s if !s.uart_asleep() => bytes,
            PowerState::DeepSleep => {
                lost(self);
                &[]
            }
            _ => {
                lost(self);
                self.counters.uart_wakes = self.counters.uart_wakes.wrapping_add(1);
                let awake_at = now + self.cfg.uart_wake;
                self.wake_until = Some(awake_at);
                self.lock_until = Some(awake_at + self.cfg.sleep_lock);
                self.update(now);
                &[]
            }
        }
    }

    /// A command line came in: the sleep lock holds the module awake for `sleep_lock`.
    pub(crate) fn command(&mut self, now: Time) {
        self.lock_until = Some(now + self.cfg.sleep_lock);
        self.update(now);
    }

    /// `AT+QRELLOCK`: the sleep lock is released now.
    pub(crate) fn release_lock(&mut self, now: Time) {
        self.lock_until = None;
        self.update(now);
    }

    /// A falling edge on PSM_EINT: wakes a module in deep sleep (after `deep_wake`, losing
    /// the host's bytes meanwhile) or in light sleep (at once).
    pub(crate) fn psm_eint(&mut self, now: Time) {
        let state = self.meter.state();
        if !state.uart_asleep() {
            return;
        }
        self.counters.eint_wakes = self.counters.eint_wakes.wrapping_add(1);
        if state == PowerState::DeepSleep {
            let awake_at = now + self.cfg.deep_wake;
            self.wake_until = Some(awake_at);
            self.deep_waking = true;
            self.lock_until = Some(awake_at + self.cfg.sleep_lock);
        } else {
            self.lock_until = Some(now + self.cfg.sleep_lock);
        }
        self.update(now);
    }

    /// Whether a TCP link is open (it keeps the module out of deep sleep).
    pub(crate) fn set_links_open(&mut self, now: Time, open: bool) {
        if open != self.links_open {
            self.links_open = open;
            self.update(now);
        }
    }

    // ------------------------------------------------------------ settings

    pub(crate) fn qsclk(&self) -> u8 {
        self.qsclk
    }

    pub(crate) fn set_qsclk(&mut self, now: Time, n: u8) {
        self.qsclk = n.min(2);
        self.update(now);
    }

    /// `AT+CSCON?`: `+CSCON: <n>,<mode>`.
    pub(crate) fn cscon_line(&self) -> String {
        let mode = u8::from(matches!(self.rrc, Rrc::Connected { .. }));
        format!("+CSCON: {},{mode}", u8::from(self.cscon))
    }

    pub(crate) fn set_cscon(&mut self, on: bool) {
        self.cscon = on;
    }

    pub(crate) fn set_psm_event(&mut self, on: bool) {
        self.psm_event = on;
    }

    pub(crate) fn atwakeup(&self) -> bool {
        self.atwakeup
    }

    pub(crate) fn set_atwakeup(&mut self, on: bool) {
        self.atwakeup = on;
    }

    pub(crate) fn rai(&self) -> u8 {
        self.rai
    }

    pub(crate) fn set_rai(&mut self, rai: u8) {
        self.rai = rai.min(2);
    }

    // ------------------------------------------------------------ PSM and eDRX requests

    /// `AT+CPSMS` write: a request that differs from the last goes to the network in a TAU
    /// now (the same request again needs none). Returns whether the granted timers changed.
    pub(crate) fn request_psm(&mut self, now: Time, r: PsmRequest) -> bool {
        let before = self.req;
        match r.mode {
            1 => {
                self.req.psm = true;
                self.req.tau = r.tau.or(self.req.tau);
                self.req.act = r.act.or(self.req.act);
            }
            2 => {
                self.req.psm = false;
                self.req.tau = None;
                self.req.act = None;
            }
            _ => self.req.psm = false,
        }
        self.req != before && self.tau_now(now)
    }

    /// `AT+CPSMS?`: `+CPSMS: <mode>,,,[<T3412>],[<T3324>]`.
    pub(crate) fn cpsms_line(&self) -> String {
        let q = |c: Option<u8>| c.map_or(String::new(), |c| format!("\"{}\"", bits(c, 8)));
        format!(
            "+CPSMS: {},,,{},{}",
            u8::from(self.req.psm),
            q(self.req.tau),
            q(self.req.act)
        )
    }

    /// `AT+CEDRXS` write, a changed request sent in a TAU now; `false` (`ERROR`) when eDRX
    /// is enabled without a value known.
    pub(crate) fn request_edrx(&mut self, now: Time, r: EdrxRequest) -> bool {
        let before = self.req;
        match r.mode {
            1 | 2 => {
                let Some(v) = r.value.or(self.req.edrx) else {
                    return false;
                };
                self.req.edrx = Some(v);
            }
            3 => self.req.edrx = None,
            _ => {}
        }
        self.req.edrx_mode = if r.mode == 3 { 0 } else { r.mode };
        if self.req != before {
            self.tau_now(now);
        }
        true
    }

    /// `AT+CEDRXS?`: one line while eDRX is requested.
    pub(crate) fn cedrxs_lines(&self) -> Vec<String> {
        match (self.req.edrx_mode, self.req.edrx) {
            (1 | 2, Some(v)) => vec![format!("+CEDRXS: 5,\"{}\"", bits(v, 4))],
            _ => Vec::new(),
        }
    }

    /// `AT+CEDRXRDP`: the eDRX parameters in use, or `+CEDRXRDP: 0`.
    pub(crate) fn cedrxrdp_line(&self) -> String {
        self.edrx_params()
            .unwrap_or_else(|| "+CEDRXRDP: 0".into())
            .replacen("+CEDRXP", "+CEDRXRDP", 1)
    }

    /// `+CEDRXP: 5,"<req>","<nw>","<ptw>"` while eDRX is in use.
    fn edrx_params(&self) -> Option<String> {
        let (nw, window) = self.granted.edrx?;
        let req = self.req.edrx.map_or(String::new(), |v| bits(v, 4));
        Some(format!(
            "+CEDRXP: 5,\"{req}\",\"{}\",\"{}\"",
            bits(nw, 4),
            bits(window, 4)
        ))
    }

    /// The PSM timers granted: (T3412, T3324) codes.
    pub(crate) fn granted_psm(&self) -> Option<(u8, u8)> {
        self.granted.psm
    }

    /// What the network grants for the current requests, under its current policy.
    fn grants(&self) -> Grants {
        let p = self.policy();
        let psm = if self.req.psm {
            let want = (
                self.req.tau.unwrap_or(p.psm_default.0),
                self.req.act.unwrap_or(p.psm_default.1),
            );
            let shorter =
                |a: u8, b: u8, decode: fn(u8) -> Option<Duration>| match (decode(a), decode(b)) {
                    (Some(x), Some(y)) if y < x => b,
                    (None, Some(_)) => b,
                    _ => a,
                };
            match p.psm {
                PsmGrant::AsRequested => Some(want),
                PsmGrant::Clamp {
                    periodic_tau,
                    active_time: act,
                } => Some((
                    shorter(want.0, periodic_tau, timers::periodic_tau),
                    shorter(want.1, act, timers::active_time),
                )),
                PsmGrant::Fixed {
                    periodic_tau,
                    active_time: act,
                } => Some((periodic_tau, act)),
                PsmGrant::Refuse => None,
            }
            // An active time "deactivated" is no PSM.
            .filter(|&(_, act)| active_time(act).is_some())
        } else {
            None
        };
        let edrx = match (self.req.edrx_mode, self.req.edrx, p.edrx) {
            (1 | 2, Some(v), EdrxGrant::AsRequested) => Some((v & 0x0f, p.ptw & 0x0f)),
            (1 | 2, Some(_), EdrxGrant::Fixed(v)) => Some((v & 0x0f, p.ptw & 0x0f)),
            _ => None,
        };
        Grants { psm, edrx }
    }

    /// Ask the network again (in a TAU): the grants under the current policy. Returns
    /// whether the PSM timers changed; `+CEDRXP` goes out itself.
    fn regrant(&mut self) -> bool {
        let g = self.grants();
        let psm_changed = g.psm != self.granted.psm;
        let edrx_changed = g.edrx != self.granted.edrx;
        self.granted = g;
        if edrx_changed && self.req.edrx_mode == 2 {
            let line = self.edrx_params().unwrap_or_else(|| "+CEDRXP: 0".into());
            self.urc(line.into_bytes());
        }
        psm_changed
    }

    /// A TAU (for a new request, or T3412 expired): counted, then [`Power::signalling`].
    fn tau_now(&mut self, now: Time) -> bool {
        self.counters.taus = self.counters.taus.wrapping_add(1);
        self.signalling(now)
    }

    /// A TAU or an attach at `now`: the grants under the current policy, in the connection
    /// if there is one, else in a new one that the network releases as soon as it is done.
    /// Returns whether the PSM timers granted changed.
    fn signalling(&mut self, now: Time) -> bool {
        let changed = self.regrant();
        if !matches!(self.rrc, Rrc::Connected { .. }) {
            self.setup(now);
            let end = now + self.cfg.rrc_setup;
            self.rrc = Rrc::Connected {
                tx_until: Some(end),
                release_at: end,
                release_on_downlink: false,
            };
        }
        self.update(now);
        changed
    }

    // ------------------------------------------------------------ radio

    /// An RRC connection is set up at `now` (from idle or PSM); the caller sets the state.
    fn setup(&mut self, _now: Time) {
        if matches!(self.rrc, Rrc::Psm { .. }) {
            self.event(b"EXIT PSM");
        }
        self.counters.rrc_setups = self.counters.rrc_setups.wrapping_add(1);
        if self.cscon {
            self.urc(b"+CSCON: 1".to_vec());
        }
    }

    /// Idle from `t` (after a release, at the start): T3324 and T3412 start.
    fn idle_from(&self, t: Time) -> Rrc {
        let psm = self.granted.psm;
        let psm_at = psm.and_then(|(_, act)| active_time(act)).map(|d| t + d);
        let tau = match psm {
            Some((tau, _)) => periodic_tau(tau),
            None => Some(self.policy().periodic_tau),
        };
        Rrc::Idle {
            psm_at,
            tau_at: tau.filter(|d| !d.is_zero()).map(|d| t + d),
        }
    }

    /// The module sends a packet at `now` (a TCP connect, segment or close): from idle or
    /// PSM it sets up a connection first; the network releases it `inactivity` after the
    /// transmission (release assistance, where enabled, sooner).
    pub(crate) fn uplink(&mut self, now: Time) {
        let start = match self.rrc {
            Rrc::Connected { tx_until, .. } => tx_until.map_or(now, |t| t.max(now)),
            _ => {
                self.setup(now);
                now + self.cfg.rrc_setup
            }
        };
        self.counters.uplink_packets = self.counters.uplink_packets.wrapping_add(1);
        let tx_end = start + self.cfg.tx_per_packet;
        let rai = if self.cfg.rai_for_mqtt { self.rai } else { 0 };
        let release_at = match rai {
            1 => tx_end,
            _ => tx_end + self.policy().inactivity,
        };
        self.rrc = Rrc::Connected {
            tx_until: Some(tx_end),
            release_at,
            release_on_downlink: rai == 2,
        };
        self.update(now);
    }

    /// A packet reaches the module at `now` (it is reachable): paged from idle, or in the
    /// connection, whose inactivity timer starts again.
    pub(crate) fn downlink(&mut self, now: Time) {
        match self.rrc {
            Rrc::Connected {
                tx_until,
                release_at,
                release_on_downlink,
            } => {
                let busy = tx_until.map_or(now, |t| t.max(now));
                let release_at = if release_on_downlink {
                    busy
                } else {
                    release_at.max(busy + self.policy().inactivity)
                };
                self.rrc = Rrc::Connected {
                    tx_until,
                    release_at,
                    release_on_downlink: false,
                };
            }
            _ => {
                self.setup(now);
                let end = now + self.cfg.rrc_setup;
                self.rrc = Rrc::Connected {
                    tx_until: Some(end),
                    release_at: end + self.policy().inactivity,
                    release_on_downlink: false,
                };
            }
        }
        self.update(now);
    }

    /// Whether the network can reach the module at `now`: connected, or idle with DRX, or
    /// idle with eDRX inside a paging time window; not in PSM.
    pub(crate) fn reachable(&self, now: Time) -> bool {
        match self.rrc {
            Rrc::Connected { .. } => true,
            Rrc::Psm { .. } => false,
            Rrc::Idle { .. } => self.next_window(now).is_none_or(|t| t <= now),
        }
    }

    /// With eDRX: the start of the paging time window `now` is in, or of the next one
    /// (windows at multiples of the cycle since the epoch). `None` without eDRX.
    fn next_window(&self, now: Time) -> Option<Time> {
        let (cycle, window) = self.granted.edrx?;
        let cycle = edrx_cycle(cycle).as_nanos();
        let window = ptw(window).as_nanos();
        let t = now.since_epoch().as_nanos();
        let start = t - t % cycle;
        let at = if t < start + window {
            start
        } else {
            start + cycle
        };
        Some(Time::from_duration(Duration::from_nanos(
            u64::try_from(at).unwrap_or(u64::MAX),
        )))
    }

    // ------------------------------------------------------------ time

    /// Time has come to `now`: every change due by then happens at its own instant (the
    /// meter is exact), URCs included.
    pub(crate) fn tick(&mut self, now: Time) -> Ticked {
        let mut out = Ticked::default();
        while let Some(t) = self.next.filter(|t| *t <= now) {
            self.fire(t, &mut out);
        }
        out
    }

    /// Everything due at `t` (the earliest instant due).
    fn fire(&mut self, t: Time, out: &mut Ticked) {
        if self.boot_until.is_some_and(|b| b <= t) {
            self.boot_until = None;
            out.ready = true;
            if std::mem::take(&mut self.attach_after_boot) {
                // The attach: a connection, the grants, released when it is done.
                out.psm_granted |= self.signalling(t);
            }
        }
        if self.wake_until.is_some_and(|w| w <= t) {
            self.wake_until = None;
            if std::mem::take(&mut self.deep_waking) && self.atwakeup {
                self.urc(b"+QATWAKEUP".to_vec());
            }
        }
        if self.lock_until.is_some_and(|l| l <= t) {
            self.lock_until = None;
        }
        match self.rrc {
            Rrc::Connected {
                tx_until: Some(x),
                release_at,
                release_on_downlink,
            } if x <= t => {
                self.rrc = Rrc::Connected {
                    tx_until: None,
                    release_at,
                    release_on_downlink,
                };
            }
            Rrc::Connected {
                tx_until: None,
                release_at,
                ..
            } if release_at <= t => {
                self.rrc = self.idle_from(t);
                if self.cscon {
                    self.urc(b"+CSCON: 0".to_vec());
                }
            }
            Rrc::Idle {
                psm_at: Some(x),
                tau_at,
            } if x <= t => {
                self.rrc = Rrc::Psm { tau_at };
                self.counters.psm_entries = self.counters.psm_entries.wrapping_add(1);
                self.event(b"ENTER PSM");
            }
            Rrc::Idle {
                tau_at: Some(x), ..
            }
            | Rrc::Psm { tau_at: Some(x) }
                if x <= t =>
            {
                out.psm_granted |= self.tau_now(t);
            }
            _ => {}
        }
        self.update(t);
    }

    /// The earliest instant at which something changes (for [`Power::tick`]).
    fn next_internal(&self) -> Option<Time> {
        let radio = match self.rrc {
            Rrc::Connected {
                tx_until,
                release_at,
                ..
            } => tx_until.or(Some(release_at)),
            Rrc::Idle { psm_at, tau_at } => earliest(psm_at, tau_at),
            Rrc::Psm { tau_at } => tau_at,
        };
        let module = earliest(earliest(self.boot_until, self.wake_until), self.lock_until);
        earliest(module, radio)
    }

    /// When the modem must next be woken: the boot's end, and the radio's changes (and the
    /// next paging time window) while they show.
    pub(crate) fn next_deadline(&self, watch: Watch, now: Time) -> Option<Time> {
        let wake = self
            .wake_until
            .filter(|_| self.deep_waking && self.atwakeup);
        let shows = self.cscon
            || self.psm_event
            || self.req.edrx_mode == 2
            || watch.cereg_timers
            || watch.holding;
        let radio = if shows {
            match self.rrc {
                // The end of a transmission does not show: the release does.
                Rrc::Connected { release_at, .. } => Some(release_at),
                Rrc::Idle { psm_at, tau_at } => {
                    let window = if watch.holding {
                        self.next_window(now)
                    } else {
                        None
                    };
                    earliest(earliest(psm_at, tau_at), window)
                }
                Rrc::Psm { tau_at } => tau_at,
            }
        } else {
            None
        };
        earliest(earliest(self.boot_until, wake), radio)
    }

    // ------------------------------------------------------------ the meter

    /// The state the module is in at `t`, and its current.
    fn state_at(&self, t: Time) -> (PowerState, Current) {
        let c = &self.cfg.currents;
        if let Rrc::Connected { tx_until, .. } = self.rrc {
            return if tx_until.is_some_and(|x| t < x) {
                (PowerState::Transmit, c.transmit)
            } else {
                (PowerState::Connected, c.connected)
            };
        }
        let awake = self.booting()
            || self.qsclk == 0
            || self.lock_until.is_some_and(|l| t < l)
            || self.wake_until.is_some_and(|w| t < w);
        if awake {
            return (PowerState::Awake, c.awake);
        }
        match self.rrc {
            Rrc::Idle { .. } if self.granted.edrx.is_some() => {
                (PowerState::LightSleepEdrx, c.light_sleep_edrx)
            }
            Rrc::Idle { .. } => (PowerState::LightSleepDrx, c.light_sleep_drx),
            _ if self.qsclk == 1 && !self.links_open => (PowerState::DeepSleep, c.deep_sleep),
            _ => (PowerState::LightSleepPsm, c.light_sleep_psm),
        }
    }

    /// After every change: the meter follows the state at `t`, and the next instant of a
    /// change is known.
    fn update(&mut self, t: Time) {
        self.next = self.next_internal();
        let (s, i) = self.state_at(t);
        if self.meter.switch(t, s, i) {
            if self.log.len() == LOG {
                self.log.pop_front();
            }
            self.log.push_back(PowerTransition { at: t, state: s });
        }
    }

    /// The power state now.
    pub(crate) fn state(&self) -> PowerState {
        self.meter.state()
    }

    /// The meter's reading at `now` (the time caught up), with the counters (`network`'s
    /// added by the caller).
    pub(crate) fn report(&self, now: Time) -> ChargeReport {
        ChargeReport {
            at: now,
            supply_mv: self.cfg.supply_mv,
            states: self.meter.read(now),
            counters: self.counters,
        }
    }

    /// The oldest power transition not taken yet (at most the last 256 are kept).
    pub(crate) fn poll_transition(&mut self) -> Option<PowerTransition> {
        self.log.pop_front()
    }

    // ------------------------------------------------------------ URCs

    fn urc(&mut self, line: Vec<u8>) {
        self.urcs.push(line);
    }

    /// `+QNBIOTEVENT: "<what>"`, if enabled.
    fn event(&mut self, what: &[u8]) {
        if self.psm_event {
            let mut l = b"+QNBIOTEVENT: \"".to_vec();
            l.extend_from_slice(what);
            l.push(b'"');
            self.urc(l);
        }
    }

    /// The URCs due, in order (without their framing).
    pub(crate) fn take_urcs(&mut self) -> std::vec::Drain<'_, Vec<u8>> {
        self.urcs.drain(..)
    }
}

/// The earlier of two optional instants.
fn earliest(a: Option<Time>, b: Option<Time>) -> Option<Time> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn the_radio_goes_connected_idle_psm_and_back_at_the_granted_timers() {
        let mut p = Power::new(&PowerConfig::default(), Duration::ZERO);
        p.set_qsclk(Time::ZERO, 1);
        let t0 = Time::from_millis(1_000);
        // T3412 1 h ("00100001"), T3324 10 s ("00000101"): a TAU connection at once.
        assert!(p.request_psm(
            t0,
            PsmRequest {
                mode: 1,
                tau: Some(0b001_00001),
                act: Some(0b000_00101)
            }
        ));
        assert_eq!(p.state(), PowerState::Transmit);
        p.tick(t0 + secs(3));
        // Released after the 2.5 s set-up, then idle for T3324, then PSM (deep sleep once
        // the lock of no command has passed: no command came).
        assert_eq!(p.state(), PowerState::LightSleepDrx);
        p.tick(t0 + secs(13));
        assert_eq!(p.state(), PowerState::DeepSleep);
        assert!(!p.reachable(t0 + secs(13)));
        let r = p.report(t0 + secs(13));
        assert_eq!(
            r.state(PowerState::Transmit).time,
            Duration::from_millis(2_500)
        );
        // Light sleep in idle: the second before the request, and T3324.
        assert_eq!(r.state(PowerState::LightSleepDrx).time, secs(11));
        assert_eq!(
            r.state(PowerState::DeepSleep).time,
            Duration::from_millis(500)
        );
        assert_eq!(r.counters.psm_entries, 1);
        // The periodic TAU: 1 h after the release.
        p.tick(t0 + Duration::from_millis(2_500) + secs(3_600));
        assert_eq!(p.state(), PowerState::Transmit);
        assert_eq!(p.report(t0).counters.taus, 2);
    }
}
