//! Delivery: where each thing the digester framed goes. Deferred results go
//! to the clients' slots, `+QMTSTAT` ends a client's link, `+QMTRECV` goes to
//! the receive store, power URCs to the power owner's cells, and a restart
//! ends everything pending. Never waits;
//! what has nowhere to go is counted.

use crate::commands::SleepMode;
use crate::error::LinkClosedReason;
use crate::inbox::WireMessage;
use crate::power::PowerNote;
use crate::state::Core;
use crate::stats::bump;
use crate::sync::RawMutex;
use crate::types::ClientId;
use crate::urc::Deferred;

/// A deferred `+QMTxxx: <id>,...` result that starts at stream position
/// `pos`.
pub(crate) fn deferred<M: RawMutex>(core: &Core<'_, M>, d: Deferred, pos: u32) {
    let taken = match d {
        Deferred::Pub {
            client,
            msg_id,
            result,
            value,
        } => core
            .clients
            .deliver_publish(client, msg_id, result, value, pos),
        Deferred::Op {
            client,
            kind,
            msg_id,
            ref outcome,
        } => core.clients.deliver_op(client, kind, msg_id, outcome, pos),
    };
    if !taken {
        debug!("deferred result nobody waits for: dropped");
        bump!(core.stats, stale_results);
    }
}

/// `+QMTSTAT: <id>,<code>`: the client's pending operations end (but for
/// code 5), and the subscriptions hear of it.
pub(crate) fn link_closed<M: RawMutex>(
    core: &Core<'_, M>,
    client: ClientId,
    reason: LinkClosedReason,
) {
    warn!("client {} link closed: {}", client.get(), reason.code());
    core.clients.link_closed(client, reason);
    core.inbox.push_link_closed(client, reason);
}

/// `+QMTRECV`: a message for the subscriptions, if the client and topic are
/// ones the driver may deliver.
#[inline]
pub(crate) fn message<M: RawMutex>(
    core: &Core<'_, M>,
    client: u8,
    msg_id: u32,
    topic: &[u8],
    payload: &[u8],
) {
    let (Ok(client), Ok(topic)) = (ClientId::new(client), core::str::from_utf8(topic)) else {
        warn!("+QMTRECV for a client or topic the driver cannot keep: dropped");
        bump!(core.stats, malformed_urcs);
        return;
    };
    if !core.clients.accepts(client, topic) {
        warn!("+QMTRECV on a topic no subscription matches: dropped");
        bump!(core.stats, messages_filtered);
        return;
    }
    let hex = core.clients.receives_hex(client);
    core.inbox.push_message(&WireMessage {
        client,
        msg_id,
        topic,
        payload,
        hex,
    });
}

/// The modem restarted (a start-up line at stream position `pos`): the
/// command in flight and every pending operation whose line went out before
/// `pos` end at once, the driver's copy of the settings goes back to the
/// defaults, and the subscriptions hear of it.
pub(crate) fn rebooted<M: RawMutex>(core: &Core<'_, M>, pos: u32) {
    warn!("the modem restarted");
    bump!(core.stats, reboots);
    core.channel.on_reboot(pos);
    core.clients.rebooted(pos);
    let sleep = if core.config.module_sleeps {
        SleepMode::Deep
    } else {
        SleepMode::Off
    };
    core.power.rebooted(sleep, embassy_time::Instant::now());
    core.inbox.push_rebooted();
}

/// `+QNBIOTEVENT`, `+CSCON` or `+CEREG` (once the driver switched them on):
/// the latest of its kind for the subscriptions; `ENTER PSM` also tells the
/// runner that the module may be asleep.
pub(crate) fn power<M: RawMutex>(core: &Core<'_, M>, note: PowerNote) {
    debug!("power event");
    core.power.push(note);
}
