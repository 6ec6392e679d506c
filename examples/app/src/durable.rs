//! The application with its telemetry journalled in flash (feature
//! `flash-outbox`): [`run_with_flash`].
//!
//! Each telemetry message is stored in the board's flash region (the
//! driver's [`FlashOutbox`], on `sequential-storage`'s queue) before it is
//! counted as queued, and removed from flash once `+QMTPUB` says the broker
//! has it. After a reset of the microcontroller what flash still holds goes
//! out again, under the msgIDs it had: at least once, also across resets (a
//! receiver may see a message twice after a reset, and tells copies apart
//! by the payload's `seq` and `uptime_s`). The retained `online` status and
//! the replies to commands stay in the RAM outbox: they are made again after
//! a reset.

use core::ops::Range;

use bc26_mqtt::supervisor::{FlashOutbox, FlashOutboxConfig, Link, Ticket};
use bc26_mqtt::{Error, FlashError, QoS};
use embassy_futures::select::{select4, Either4};
use embedded_io_async::{Read, Write};
use embedded_storage_async::nor_flash::MultiwriteNorFlash;

use crate::{start, App, AppConfig, AppState, Device, Store};

/// Bytes of the flash outbox's buffer in [`AppState`]: the largest message
/// it journals (10 bytes of the journal's own, the topic and the payload,
/// rounded up to the flash's word): the 160-byte telemetry payload with a
/// topic of up to 80 bytes. A longer one is not stored (counted as lost).
pub const JOURNAL_BUF: usize = 256;

impl<F: MultiwriteNorFlash> Store for Option<&FlashOutbox<'_, F>> {
    async fn store(&self, link: Link<'_>, topic: &str, payload: &[u8]) -> Result<Ticket, Error> {
        match self {
            // The one place the application stores through the flash outbox.
            Some(fo) => {
                fo.try_publish(topic, payload, QoS::AtLeastOnce, false)
                    .await
            }
            None => link.try_publish(topic, payload, QoS::AtLeastOnce, false),
        }
    }
}

/// [`run`](crate::run) with the telemetry journalled in `region` of
/// `flash` (whole pages, at least 2; the board's memory map reserves it):
/// what it holds from before a reset goes out first. A region that does not
/// open is erased when it is corrupted (what it held is lost), else the
/// application runs with the outbox in RAM alone; either is logged.
pub async fn run_with_flash<
    R: Read,
    W: Write,
    D: Device,
    F: MultiwriteNorFlash,
    const INGRESS: usize,
    const LINE: usize,
    const INBOX: usize,
    const EVENTS: usize,
    const SUBSCRIBERS: usize,
    const INFLIGHT: usize,
    const OUTBOX_BYTES: usize,
>(
    state: &'static mut AppState<INGRESS, LINE, INBOX, EVENTS, SUBSCRIBERS, INFLIGHT, OUTBOX_BYTES>,
    rx: R,
    tx: W,
    config: &'static AppConfig<'static>,
    device: &mut D,
    flash: F,
    region: Range<u32>,
) -> ! {
    start!(state, rx, tx, config => modem, runner, link, supervisor, buf);
    let mut flash = flash;
    let settings = FlashOutboxConfig::new(region);
    let fo = match FlashOutbox::open(link, &mut flash, &mut buf[..], settings.clone()).await {
        Ok(fo) => Some(fo),
        Err(FlashError::Corrupted) => {
            warn!("flash outbox corrupted: erased");
            FlashOutbox::open_erased(link, &mut flash, &mut buf[..], settings)
                .await
                .inspect_err(|e| warn!("flash outbox: {}", e))
                .ok()
        }
        Err(e) => {
            warn!("flash outbox: {}; telemetry in RAM only", e);
            None
        }
    };
    if let Some(fo) = &fo {
        info!("flash outbox: {} messages from before", fo.stats().reloaded);
    }
    let journal = async {
        match &fo {
            Some(fo) => fo.run().await,
            None => core::future::pending().await,
        }
    };
    let mut app = App::new(modem, link, config, device, fo.as_ref());
    match select4(runner.run(), supervisor.run(), app.run(), journal).await {
        Either4::First(never)
        | Either4::Second(never)
        | Either4::Third(never)
        | Either4::Fourth(never) => never,
    }
}
