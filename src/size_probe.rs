//! Built only for the memory report (`.ci/sizes.sh` passes
//! `--cfg bc26_type_sizes`): the driver is generic over its lock, so a build
//! of the library lays out none of its public futures. This creates each of
//! them once, with the default lock, so that `-Zprint-type-sizes` reports
//! them (and the runner's waits on the AT channel, internal futures reached
//! only through the UART-generic runner). `.ci/sizes.py` fails when a `pub async fn` of the sources is
//! missing from the report: add a new one here.

use crate::commands::Attention;
use crate::supervisor::{Link, Supervisor};
use crate::{ClientId, DataFormat, Events, Modem, MqttVersion, PendingPublish, PowerRequest, QoS};

/// Creates (and drops) every public future of the driver.
pub fn public_futures(
    modem: Modem<'_>,
    events: &mut Events<'_>,
    pending: PendingPublish<'_>,
    link: Link<'_>,
    supervisor: Supervisor<'_>,
    buf: &mut [u8],
) {
    let Ok(id) = ClientId::new(0) else { return };
    let c = modem.client(id);
    let q = QoS::AtLeastOnce;
    drop(modem.send(&Attention));
    drop(modem.send_with_timeout(&Attention, embassy_time::Duration::from_secs(1)));
    drop(modem.open_links());
    drop(modem.connection_states());
    drop(events.next(buf));
    drop(modem.set_power(PowerRequest::new()));
    drop(modem.release());
    drop(modem.power_reports(true));
    drop(modem.psm_request());
    drop(modem.registration_timers());
    drop(modem.edrx());
    drop(c.set_will(None));
    drop(c.will());
    drop(c.set_timeout(10, 3, false));
    drop(c.timeout());
    drop(c.set_clean_session(true));
    drop(c.clean_session());
    drop(c.set_keepalive(60));
    drop(c.keepalive());
    drop(c.set_aliauth("", "", ""));
    drop(c.aliauth());
    drop(c.set_version(MqttVersion::V3_1_1));
    drop(c.version());
    drop(c.set_data_format(DataFormat::Text, DataFormat::Hex));
    drop(c.data_format());
    drop(c.set_echo_mode(false));
    drop(c.echo_mode());
    drop(c.open("", 0));
    drop(c.close());
    drop(c.connect("", None, None));
    drop(c.disconnect());
    drop(c.subscribe(&[]));
    drop(c.unsubscribe(&[]));
    drop(c.publish("", b"", q, false));
    drop(c.try_publish("", b"", q, false));
    drop(c.publish_data_mode("", b"", q, false));
    drop(c.start_publish("", b"", q, false));
    drop(pending.result());
    let mut seen = 0;
    drop(link.changed(&mut seen));
    drop(link.wait_online());
    drop(link.publish("", b"", q, false));
    drop(link.delivered(crate::supervisor::Ticket { seq: 0, msg_id: 0 }));
    drop(link.flush());
    drop(supervisor.run());
    // The runner's waits on the AT channel: reached only through the
    // runner, which is generic over the UART, so created here too.
    let ch = modem.core.channel;
    let at = embassy_time::Instant::from_ticks(0);
    drop(ch.wait());
    drop(ch.wait_step(at, false));
    drop(ch.wait_wake(at));
}
