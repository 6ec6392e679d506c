//! The duty cycle: a supervisor that keeps its client offline and the module
//! asleep between wakes ([`Mode::DutyCycle`]), for a device on a battery
//! (docs/duty-cycle.md).
//!
//! ```text
//!   Asleep{until} --(the period, Link::wake, the outbox past wake_at)--> Connecting --> Online
//!        ^                                                                              |
//!        |   (the outbox delivered and the receive window over)                         |
//!        +---- AT+QRELLOCK <-- AT+QMTDISC (DISCONNECT: no will) <-----------------------+
//! ```
//!
//! Each wake brings the link up as the always-online mode does, with a
//! persistent session (clean session off, whatever
//! [`SupervisorConfig::clean_session`](super::SupervisorConfig::clean_session)
//! says: the broker keeps the
//! subscriptions and queues QoS 1/2 messages while the device sleeps),
//! sends the outbox, and stays at least [`DutyCycle::receive_window`] so
//! that what the broker queued arrives; then it disconnects (`AT+QMTDISC`:
//! an MQTT DISCONNECT, so the broker does not publish the will, and the
//! modem closes the TCP link), releases the module's sleep lock
//! (`AT+QRELLOCK`, [`Modem::release`](crate::Modem::release)) and does
//! nothing on the radio or the UART until the next wake: no keep-alive (no
//! MQTT connection exists), no health check, no polling.
//!
//! Anything that ends a wake otherwise (a link loss, a restart, a silent
//! modem, a failed bring-up) ends it as in the always-online mode: the link
//! is closed without DISCONNECT (the broker publishes the will), the
//! messages in flight go back to the outbox, the supervisor backs off (and
//! restarts a silent modem) and wakes again at once, until a wake ends as
//! planned. So a message handed to the outbox is delivered at least once
//! across sleeps, link losses and restarts, as in the always-online mode.

use core::future::poll_fn;
use core::task::Poll;

use embassy_futures::join::join;
use embassy_futures::select::{select, select3, Either3};
use embassy_sync::waitqueue::WakerRegistration;
use embassy_time::{Duration, Instant, Timer};

use super::{link_end, HardReset, Link, LinkState, OfflineReason, Supervisor};
use crate::commands::PsmTimers;
use crate::modem::Modem;
use crate::mqtt_client::Step;
use crate::sync::RawMutex;

/// How a supervisor keeps its link ([`SupervisorConfig::mode`](super::SupervisorConfig::mode)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Mode {
    /// Online all the time: keep-alive, health checks, back again after
    /// every loss (the default).
    #[default]
    AlwaysOnline,
    /// Online only for a short while at each wake, the module asleep in
    /// between.
    DutyCycle(DutyCycle),
}

/// The duty cycle's timing ([`Mode::DutyCycle`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct DutyCycle {
    /// From the start of one wake to the start of the next (unless the
    /// application or the outbox wakes it earlier).
    pub period: Duration,
    /// How long a wake stays online at least, from the moment it is
    /// connected and subscribed: what the broker queued while the device
    /// slept arrives in it. It stays longer while the outbox is not empty.
    pub receive_window: Duration,
    /// Wake as soon as the outbox holds this many messages (`0`: only the
    /// period and [`Link::wake`] wake it). Default 0.
    pub wake_at: usize,
    /// `AT+QRELLOCK` after the link is closed, so that the module sleeps at
    /// once instead of 10 s after the last command. Default `true`.
    pub release: bool,
}

impl DutyCycle {
    /// A wake every `period`, online for at least `receive_window`.
    pub const fn new(period: Duration, receive_window: Duration) -> Self {
        Self {
            period,
            receive_window,
            wake_at: 0,
            release: true,
        }
    }

    /// The same, waking early when the outbox holds `messages`.
    pub const fn wake_at(mut self, messages: usize) -> Self {
        self.wake_at = messages;
        self
    }
}

/// Keep-alive and health check for the always-online mode, chosen from the
/// network's timers ([`OnlineTimers::choose`], docs/duty-cycle.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct OnlineTimers {
    /// For [`SupervisorConfig::keepalive_s`](super::SupervisorConfig::keepalive_s).
    pub keepalive_s: u16,
    /// For [`SupervisorConfig::health_check`](super::SupervisorConfig::health_check):
    /// the keep-alive (a check finds only a silent modem; the modem reports
    /// a dead link itself).
    pub health_check: Duration,
    /// The module reaches PSM between two pings (`inactivity` + T3324 is
    /// shorter than the keep-alive); `false` when the NAT leaves no such
    /// keep-alive, or PSM was not granted.
    pub reaches_psm: bool,
}

impl OnlineTimers {
    /// The longest keep-alive that keeps the link through the operator's NAT
    /// (`nat_idle`, less a tenth for a late ping; at most 3600 s, the
    /// modem's limit; at least 1 s), and a health check as long. `granted`
    /// is what the network granted (`Modem::power().granted`,
    /// `Event::Registration`), `inactivity` its RRC inactivity timer (not
    /// reported: `Event::Signalling` shows it): with the keep-alive above
    /// `inactivity` + T3324, the module reaches PSM between pings.
    pub fn choose(granted: Option<PsmTimers>, inactivity: Duration, nat_idle: Duration) -> Self {
        let most = nat_idle.as_secs().saturating_sub(nat_idle.as_secs() / 10);
        let keepalive_s = most.clamp(1, 3600) as u16;
        let active = granted.and_then(|t| t.active_time.secs());
        let reaches_psm =
            active.is_some_and(|a| inactivity.as_secs() + u64::from(a) < u64::from(keepalive_s));
        Self {
            keepalive_s,
            health_check: Duration::from_secs(u64::from(keepalive_s)),
            reaches_psm,
        }
    }
}

/// The application's request for a wake, in the supervisor's status.
pub(super) struct WakeCell {
    requested: bool,
    waker: WakerRegistration,
}

impl WakeCell {
    pub(super) const fn new() -> Self {
        Self {
            requested: false,
            waker: WakerRegistration::new(),
        }
    }
}

impl<M: RawMutex> Link<'_, M> {
    /// Duty cycle: wake now (bring the link up, send the outbox, take what
    /// the broker queued) instead of at the end of the period. A request
    /// while awake is served by the current wake (another follows at once
    /// only if the outbox is not empty when it ends). Nothing in the
    /// always-online mode.
    pub fn wake(&self) {
        self.status.with(|s| {
            let mut w = s.wake.borrow_mut();
            w.requested = true;
            w.waker.wake();
        })
    }
}

impl<M: RawMutex, R: HardReset> Supervisor<'_, M, R> {
    /// The duty cycle: wakes, each brought up, served and ended as planned,
    /// and the sleeps between them, until a wake ends otherwise; returns
    /// why, and whether the link was online (as an always-online attempt in `run` does).
    pub(super) async fn duty(&self, d: DutyCycle) -> (OfflineReason, bool) {
        let mut was_online = false;
        loop {
            let start = Instant::now();
            self.link
                .status
                .with(|s| s.wake.borrow_mut().requested = false);
            let epoch = self.client().link().0;
            if let Err(r) = self.bring_up().await {
                return (r, was_online);
            }
            was_online = true;
            if let Err(r) = self.visit(epoch, d).await {
                return (r, true);
            }
            self.sleep(d, start + d.period).await;
            self.link
                .status
                .set_state(LinkState::Connecting { attempt: 1 });
        }
    }

    /// Online: the outbox sent, the receive window waited, then a clean
    /// end: `AT+QMTDISC`, `AT+QRELLOCK`. `Err` when the link ended otherwise.
    async fn visit(&self, epoch: u32, d: DutyCycle) -> Result<(), OfflineReason> {
        let status = self.link.status;
        status.set_state(LinkState::Online);
        let send = self.lanes();
        let stay = join(
            self.link.outbox.wait_empty(),
            Timer::after(d.receive_window),
        );
        let ended = match select3(send, self.watch(epoch), stay).await {
            Either3::First(r) => Some(r),
            Either3::Second(r) => Some(r),
            Either3::Third(_) => None,
        };
        if let Some(r) = ended {
            // As online in `run`: a link end the driver saw is why.
            return Err(match self.client().link() {
                (now, Some(end)) if now != epoch => link_end(end),
                _ => r,
            });
        }
        // A message pushed at the very end may have been taken by a lane
        // that is now gone: it goes at the next wake, under its msgID.
        let dropped = self.link.outbox.requeue_all();
        if dropped > 0 {
            status.qos0_dropped(dropped);
        }
        self.client().release_abandoned();
        // A wake asked for during this one was served by it, unless a
        // message is left for the next.
        let outbox = self.link.outbox;
        status.with(|s| {
            if outbox.stats().messages == 0 {
                s.wake.borrow_mut().requested = false;
            }
        });
        let c = &self.link.client;
        // The step itself (not `disconnect`, an async fn around it: a state
        // machine less).
        if let Err(e) = c.step(Step::Disconnect).await {
            // No clean end: close the link, as after a loss (the broker
            // may publish the will), and count it so.
            warn!("disconnect before a sleep: {}", e);
            return Err(super::reason(e));
        }
        if d.release {
            let modem = Modem {
                core: *self.link.client.core(),
            };
            if let Err(e) = modem.release().await {
                // The module then sleeps 10 s later, by its own lock.
                debug!("AT+QRELLOCK: {}", e);
            }
        }
        Ok(())
    }

    /// Asleep until `until`, [`Link::wake`], or the outbox past
    /// `wake_at`: no command, no timer but this one.
    async fn sleep(&self, d: DutyCycle, until: Instant) {
        let status = self.link.status;
        status.set_state(LinkState::Asleep { until });
        let requested = poll_fn(|cx| {
            status.with(|s| {
                let mut w = s.wake.borrow_mut();
                if w.requested {
                    Poll::Ready(())
                } else {
                    w.waker.register(cx.waker());
                    Poll::Pending
                }
            })
        });
        let filled = async {
            if d.wake_at == 0 {
                poll_fn(|_| Poll::<()>::Pending).await
            } else {
                self.link.outbox.wait_stored(d.wake_at).await
            }
        };
        select(Timer::at(until), select(requested, filled)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::super::reason;
    use super::*;
    use crate::error::Error;

    #[test]
    fn online_timers_stay_under_the_nat_and_say_whether_psm_is_reached() {
        use crate::commands::{ActiveTime, PeriodicTau};
        let granted = |t3324: u8| {
            Some(PsmTimers {
                periodic_tau: PeriodicTau::from_code(0b010_00001),
                active_time: ActiveTime::from_code(t3324),
            })
        };
        let s = Duration::from_secs;
        // NAT 300 s: 270 s; T3324 10 s + 20 s inactivity < 270 s.
        let t = OnlineTimers::choose(granted(0b000_00101), s(20), s(300));
        assert_eq!((t.keepalive_s, t.health_check), (270, s(270)));
        assert!(t.reaches_psm);
        // T3324 6 min: never reached between pings of 270 s.
        assert!(!OnlineTimers::choose(granted(0b001_00110), s(20), s(300)).reaches_psm);
        // No PSM granted; a NAT that keeps links for hours: the modem's 3600 s.
        let t = OnlineTimers::choose(None, s(20), s(7440));
        assert_eq!((t.keepalive_s, t.reaches_psm), (3600, false));
        // A NAT of 1 s: still a keep-alive (0 would switch it off).
        assert_eq!(OnlineTimers::choose(None, s(20), s(1)).keepalive_s, 1);
    }

    #[test]
    fn a_module_that_does_not_wake_counts_as_a_silent_modem() {
        assert_eq!(reason(Error::WakeTimeout), OfflineReason::ModemSilent);
    }
}
