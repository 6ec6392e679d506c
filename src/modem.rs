//! [`Modem`], the handle of the whole modem, and [`Events`], a subscription
//! to what arrives.

use core::cell::Cell;
use core::future::{poll_fn, Future};
use core::pin::Pin;
use core::task::{ready, Poll};

use embassy_futures::select::{select, Either};
use embassy_time::{Duration, Instant};

use crate::channel::WriteWith;
use crate::commands::power::{
    ReleaseSleepLock, SetPsm, SetPsmEvents, SetRegistrationReports, SetSignallingReports, SetSleep,
};
use crate::commands::{
    self, ConnectionStates, EdrxCycle, EdrxValues, OpenLinks, PsmSettings, PsmTimers, PublicCmd,
    QueryConnectionState, QueryOpenNetworks, QueryPsm, QueryRegistrationTimers, ReadEdrx,
    RegistrationTimers, SetEdrx, SleepMode,
};
use crate::error::Error;
use crate::event::Event;
use crate::inbox::Sub;
use crate::mqtt_client::MqttClient;
use crate::power::{PowerStatus, PowerSub};
use crate::state::Core;
use crate::stats::Stats;
use crate::sync::{CriticalSectionRawMutex, RawMutex};
use crate::types::ClientId;

/// The whole modem: clients, events, statistics, and any other AT command.
/// `Copy`; use it from as many tasks as you like.
///
/// `M` is the [`State`](crate::State)'s lock.
pub struct Modem<'a, M: RawMutex = CriticalSectionRawMutex> {
    pub(crate) core: Core<'a, M>,
}

impl<M: RawMutex> Clone for Modem<'_, M> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<M: RawMutex> Copy for Modem<'_, M> {}

impl<'a, M: RawMutex> Modem<'a, M> {
    /// The handle of MQTT client `id` (the modem's `tcpconnectID`).
    pub fn client(&self, id: ClientId) -> MqttClient<'a, M> {
        MqttClient::new(self.core, id)
    }

    /// A new subscription to messages and link events. At most `SUBSCRIBERS`
    /// (a [`State`](crate::State) parameter) exist at once. Messages that
    /// arrive while none exists are dropped and counted
    /// ([`Stats::messages_dropped`]).
    pub fn events(&self) -> Result<Events<'a, M>, Error> {
        let sub = self
            .core
            .inbox
            .subscribe()
            .ok_or(Error::TooManySubscribers)?;
        Ok(Events {
            sub,
            power: self.core.power.subscribe(),
        })
    }

    /// What the driver has dropped, discarded or recovered from so far.
    pub fn stats(&self) -> Stats {
        self.core.stats.get()
    }

    /// Sends any other AT command (`AT+CEREG?`, `ATE0`, ...) through the same
    /// channel and returns its parsed answer: firmware needs no second AT
    /// client. Information lines with the command's own prefix (and bare
    /// lines such as an IMEI) are its answer; other `+` lines are treated as
    /// URCs.
    ///
    /// Its deadline is the command's `MAX_TIMEOUT_MS`, and at least two
    /// [`Config::quiet_gap`](crate::Config::quiet_gap)s (an incomplete frame
    /// given up after a quiet gap can hold its answer that long).
    ///
    /// It takes a [`PublicCmd`]: the crate's read and test forms, the
    /// settings the driver does not track, the general commands, a raw line
    /// (`heapless::String`, as `"AT+CGATT?\r"`) or an application's own
    /// command wrapped in [`Custom`](crate::commands::Custom). The write
    /// forms the driver owns do not compile here, and whatever wrote it, the
    /// line is checked before a byte is sent:
    ///
    /// - a command the driver owns (open, close, connect, disconnect,
    ///   subscribe, unsubscribe, publish, the data format and packet timeout
    ///   settings, the power settings; also `A/`, which repeats the last
    ///   line): [`Error::OwnedByDriver`];
    /// - a line that does not fit the `LINE` buffer:
    ///   [`Error::InvalidArgument`] with [`Field::CommandLine`] and
    ///   [`Problem::LineTooLong`] (never a panic);
    /// - more than one line, or a control byte other than the final CR:
    ///   [`Problem::ForbiddenByte`].
    ///
    /// [`Field::CommandLine`]: crate::Field::CommandLine
    /// [`Problem::LineTooLong`]: crate::Problem::LineTooLong
    /// [`Problem::ForbiddenByte`]: crate::Problem::ForbiddenByte
    pub async fn send<C: PublicCmd>(&self, cmd: &C) -> Result<C::Response, Error> {
        let timeout =
            Duration::from_millis(C::MAX_TIMEOUT_MS.into()).max(self.core.config.min_answer_wait());
        self.send_checked(cmd, timeout).await
    }

    /// Like [`send`](Self::send), with the deadline for the final response
    /// chosen by the caller (a short one for a bare `AT` that wakes a sleeping
    /// modem, a long one for a network scan). A deadline shorter than two
    /// quiet gaps may miss an answer held behind an incomplete frame.
    pub async fn send_with_timeout<C: PublicCmd>(
        &self,
        cmd: &C,
        timeout: Duration,
    ) -> Result<C::Response, Error> {
        self.send_checked(cmd, timeout).await
    }

    /// Writes the line, checks it (nothing is sent if it is refused), then
    /// exchanges it and parses the answer.
    async fn send_checked<C: PublicCmd>(
        &self,
        cmd: &C,
        timeout: Duration,
    ) -> Result<C::Response, Error> {
        let refused = Cell::new(None);
        let write = |buf: &mut [u8]| -> usize {
            let n = commands::put(cmd, buf);
            match commands::check_line(buf, n) {
                Ok(()) => n,
                Err(e) => {
                    refused.set(Some(e));
                    // The channel refuses an empty line: nothing is sent.
                    0
                }
            }
        };
        let write = WriteWith(write);
        let answer = self.core.channel.exchange(&write, timeout, None).await;
        match answer {
            Ok(a) => a.parse(|info| cmd.parse(Ok(info)).map_err(Error::from)),
            Err(e) => Err(refused.get().unwrap_or(e)),
        }
    }

    /// `AT+QMTOPEN?`: which clients are open, to which host and port.
    pub async fn open_links(&self) -> Result<OpenLinks, Error> {
        self.send_with_timeout(&QueryOpenNetworks, self.core.config.command_timeout)
            .await
    }

    /// `AT+QMTCONN?`: the MQTT state of each client.
    pub async fn connection_states(&self) -> Result<ConnectionStates, Error> {
        self.send_with_timeout(&QueryConnectionState, self.core.config.command_timeout)
            .await
    }

    // ------------------------------------------------------------ power

    /// Asks for the module's power behaviour (docs/power.md): PSM with the
    /// timers it requests (`AT+CPSMS`), eDRX (`AT+CEDRXS`), and its sleep
    /// (`AT+QSCLK`), in that order, each only if the request names it. The
    /// network decides what it grants: read it from
    /// [`Event::Registration`](crate::Event::Registration) (with
    /// [`power_reports`](Self::power_reports) on),
    /// [`registration_timers`](Self::registration_timers) or
    /// [`power`](Self::power). Stops at the first command the module
    /// refuses; what was set before it stays set.
    ///
    /// With sleep on, the driver wakes the module before each later command
    /// that may find it asleep (`Config::sleep_after`, `Config::wake_timeout`).
    pub async fn set_power(&self, req: PowerRequest) -> Result<(), Error> {
        let (ch, t) = (self.core.channel, self.core.config.command_timeout);
        if let Some(timers) = req.psm {
            drop(ch.exchange(&SetPsm { timers }, t, None).await?);
        }
        if let Some(cycle) = req.edrx {
            drop(ch.exchange(&SetEdrx { cycle }, t, None).await?);
        }
        if let Some(mode) = req.sleep {
            let r = ch.exchange(&SetSleep(mode), t, None).await.map(drop);
            // A line the module may have taken (no answer) counts as taken
            // when it turns sleep on: never assume awake a module that may
            // sleep.
            let refused = matches!(
                r,
                Err(Error::Modem(_) | Error::InvalidArgument { .. } | Error::WakeTimeout)
            );
            if r.is_ok() || (mode != SleepMode::Off && !refused) {
                self.core.power.set_sleep(mode);
            }
            r?;
        }
        Ok(())
    }

    /// `AT+QRELLOCK`: the module may sleep at once instead of 10 s after the
    /// last command. The driver then wakes it before the next command.
    pub fn release(&self) -> impl Future<Output = Result<(), Error>> + '_ {
        let core = &self.core;
        let mut line = core
            .channel
            .exchange(&ReleaseSleepLock, core.config.command_timeout, None);
        // The exchange itself, then what its `OK` means (not an async fn
        // around it: a state machine less).
        poll_fn(move |cx| {
            drop(ready!(Pin::new(&mut line).poll(cx))?);
            core.power.released();
            Poll::Ready(Ok(()))
        })
    }

    /// Switches the power URCs on (or off): `AT+CSCON=1`, `AT+QNBIOTEVENT=1,1`
    /// and `AT+CEREG=4` (`0` each when off). While on, the subscriptions get
    /// [`Event::Psm`](crate::Event::Psm),
    /// [`Event::Signalling`](crate::Event::Signalling) and
    /// [`Event::Registration`](crate::Event::Registration) with the granted
    /// timers; while off (the default, and after a module restart) those
    /// lines are counted as unsolicited and dropped.
    pub async fn power_reports(&self, on: bool) -> Result<(), Error> {
        let (ch, t) = (self.core.channel, self.core.config.command_timeout);
        if on {
            self.core.power.set_reports(true);
        }
        drop(ch.exchange(&SetSignallingReports(on), t, None).await?);
        drop(ch.exchange(&SetPsmEvents(on), t, None).await?);
        let n = if on { 4 } else { 0 };
        drop(ch.exchange(&SetRegistrationReports(n), t, None).await?);
        if !on {
            self.core.power.set_reports(false);
        }
        Ok(())
    }

    /// What the driver knows of the module's power now (no AT traffic): its
    /// sleep setting, whether it may be asleep, and the latest PSM,
    /// connection and granted timers the power URCs reported.
    pub fn power(&self) -> PowerStatus {
        let cfg = self.core.config;
        self.core.power.status(Instant::now(), cfg.sleep_after)
    }

    /// `AT+CPSMS?`: the PSM setting and the timers the module requests.
    pub async fn psm_request(&self) -> Result<PsmSettings, Error> {
        self.send_with_timeout(&QueryPsm, self.core.config.command_timeout)
            .await
    }

    /// `AT+CEREG?` in full: the registration and, with
    /// [`power_reports`](Self::power_reports) on (`<n>` 4), the PSM timers the
    /// network granted.
    pub async fn registration_timers(&self) -> Result<RegistrationTimers, Error> {
        self.send_with_timeout(&QueryRegistrationTimers, self.core.config.command_timeout)
            .await
    }

    /// `AT+CEDRXRDP`: the eDRX cycle requested and granted, and the paging
    /// time window.
    pub async fn edrx(&self) -> Result<EdrxValues, Error> {
        self.send_with_timeout(&ReadEdrx, self.core.config.command_timeout)
            .await
    }
}

/// What [`Modem::set_power`] asks for; each part left out is not touched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PowerRequest {
    psm: Option<Option<PsmTimers>>,
    edrx: Option<Option<EdrxCycle>>,
    sleep: Option<SleepMode>,
}

impl PowerRequest {
    /// Asks for nothing.
    pub const fn new() -> Self {
        Self {
            psm: None,
            edrx: None,
            sleep: None,
        }
    }

    /// PSM on, requesting these timers (`AT+CPSMS=1,,,"<T3412>","<T3324>"`).
    pub const fn psm(mut self, timers: PsmTimers) -> Self {
        self.psm = Some(Some(timers));
        self
    }

    /// PSM off (`AT+CPSMS=0`).
    pub const fn psm_off(mut self) -> Self {
        self.psm = Some(None);
        self
    }

    /// eDRX on, requesting this cycle (`AT+CEDRXS=1,5,"<cycle>"`).
    pub const fn edrx(mut self, cycle: EdrxCycle) -> Self {
        self.edrx = Some(Some(cycle));
        self
    }

    /// eDRX off (`AT+CEDRXS=0`).
    pub const fn edrx_off(mut self) -> Self {
        self.edrx = Some(None);
        self
    }

    /// The module's sleep (`AT+QSCLK=<n>`).
    pub const fn sleep(mut self, mode: SleepMode) -> Self {
        self.sleep = Some(mode);
        self
    }
}

/// A subscription to the driver's events: messages, link closings and modem
/// restarts, in the order they arrived. The ingress never waits for it:
/// messages wait in the receive store (`INBOX` bytes of
/// [`State`](crate::State), shared by the subscriptions) until every
/// subscription has read them; when the store is full, new messages are
/// dropped, counted, and reported as [`Event::Missed`]. Link and reboot
/// events are never the ones dropped; power events have their own cells.
pub struct Events<'a, M: RawMutex = CriticalSectionRawMutex> {
    sub: Sub<'a, M>,
    power: PowerSub<'a, M>,
}

impl<M: RawMutex> Events<'_, M> {
    /// The next event, waiting for one. A message is copied into `buf`
    /// (topic, then payload); a buffer of [`MESSAGE_MAX`](crate::MESSAGE_MAX)
    /// bytes holds any. A message that does not fit `buf` is dropped for this
    /// subscription and reported as [`Event::Missed`].
    ///
    /// Power events ([`Event::Psm`], [`Event::Signalling`],
    /// [`Event::Registration`]) come ahead of the messages waiting.
    pub async fn next<'b>(&mut self, buf: &'b mut [u8]) -> Event<'b> {
        if let Some(e) = self.power.take() {
            return e;
        }
        match select(self.sub.next(buf), self.power.next()).await {
            Either::First(e) => e,
            Either::Second(e) => e,
        }
    }

    /// The next event if one is there.
    pub fn try_next<'b>(&mut self, buf: &'b mut [u8]) -> Option<Event<'b>> {
        self.power.take().or_else(|| self.sub.try_next(buf))
    }
}

impl<M: RawMutex> core::fmt::Debug for Modem<'_, M> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Modem")
            .field("stats", &self.stats())
            .finish()
    }
}

impl<M: RawMutex> core::fmt::Debug for Events<'_, M> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Events").finish_non_exhaustive()
    }
}

#[cfg(feature = "defmt")]
impl<M: RawMutex> defmt::Format for Modem<'_, M> {
    fn format(&self, f: defmt::Formatter) {
        defmt::write!(f, "Modem {{ stats: {} }}", self.stats())
    }
}

#[cfg(feature = "defmt")]
impl<M: RawMutex> defmt::Format for Events<'_, M> {
    fn format(&self, f: defmt::Formatter) {
        defmt::write!(f, "Events")
    }
}
