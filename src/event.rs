//! What application tasks receive: [`Event`]s read from
//! [`Events`](crate::Events), and the grants of a subscription.

use crate::error::LinkClosedReason;
use crate::timers::PsmTimers;
use crate::types::{limits, ClientId, QoS};

/// A PUBLISH the broker sent to one of the clients (`+QMTRECV`), copied into
/// the buffer given to [`Events::next`](crate::Events::next).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Message<'b> {
    /// The client that received it.
    pub client: ClientId,
    /// The packet identifier the modem reports (0 for QoS 0). Kept wide: modems
    /// have been seen to report values above 65535.
    pub msg_id: u32,
    /// The topic.
    pub topic: &'b str,
    /// The payload bytes (hex-decoded when the client receives hex, which is
    /// the driver's default).
    pub payload: &'b [u8],
}

/// What application tasks receive from [`Events`](crate::Events).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Event<'b> {
    /// A message arrived from the broker.
    Message(Message<'b>),
    /// The modem closed a client's MQTT link (`+QMTSTAT`).
    LinkClosed {
        /// The client.
        client: ClientId,
        /// Why.
        reason: LinkClosedReason,
    },
    /// The modem restarted (`RDY` or another start-up line): every client's
    /// link and settings are gone. Operations that were pending ended with
    /// [`Error::ModemRebooted`](crate::Error::ModemRebooted).
    ModemRebooted,
    /// This many messages were lost to this subscription: the receive store
    /// was full when they arrived (reported at the next read, possibly before
    /// older messages still waiting), or the buffer given to
    /// [`Events::next`](crate::Events::next) was too small for one (reported
    /// in its place). The driver counts them too
    /// ([`Stats::messages_dropped`](crate::Stats::messages_dropped)). Link and
    /// reboot events are never the ones dropped.
    Missed(u32),
    /// The modem entered (`+QNBIOTEVENT: "ENTER PSM"`) or left (`"EXIT PSM"`)
    /// power saving mode. Power events come only once
    /// [`Modem::power_reports`](crate::Modem::power_reports) switched them on;
    /// each kind keeps its latest value for every subscription, read ahead
    /// of waiting messages, so a burst of messages never drops one (a newer
    /// event of the same kind replaces an unread one, counted in
    /// [`Stats::power_events_overwritten`](crate::Stats::power_events_overwritten)).
    Psm {
        /// Entered (true) or left PSM.
        entered: bool,
    },
    /// The RRC connection was set up (`+CSCON: 1`) or released (`+CSCON: 0`).
    Signalling {
        /// Connected.
        connected: bool,
    },
    /// The registration changed, or the network granted new PSM timers
    /// (`+CEREG: <stat>[,...]` with `AT+CEREG=4`).
    Registration {
        /// 1 registered (home), 5 roaming, 0/2/3/4 not registered.
        stat: u8,
        /// The PSM timers the network granted, when the line has them.
        psm: Option<PsmTimers>,
    },
}

/// Longest topic plus payload of a received message: a buffer of this size
/// given to [`Events::next`](crate::Events::next) holds any message.
pub const MESSAGE_MAX: usize = limits::TOPIC + limits::RECV_PAYLOAD;

/// What the server granted for one topic of a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Grant {
    /// Subscribed with this QoS.
    Granted(QoS),
    /// 128: the server rejected the subscription.
    Rejected,
}

/// Most topics one AT+QMTSUB can carry: the shortest topic entry (`,"t",0`) is
/// six bytes, and the line is at most [`limits::LINE`] bytes.
pub const MAX_SUB_TOPICS: usize = (limits::LINE - 18) / 6;

/// The granted QoS of each topic of a subscription, in the order of the request.
/// Packed two bits a topic so that a result for a long list stays small.
#[derive(Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Granted {
    len: u8,
    bits: [u8; MAX_SUB_TOPICS.div_ceil(4)],
}

impl Granted {
    pub(crate) const fn empty() -> Self {
        Self {
            len: 0,
            bits: [0; MAX_SUB_TOPICS.div_ceil(4)],
        }
    }

    pub(crate) fn push(&mut self, value: u16) -> bool {
        let code = match value {
            0..=2 => value as u8,
            _ => 3, // 128 and anything else the broker refuses with
        };
        let i = self.len as usize;
        if i >= MAX_SUB_TOPICS {
            return false;
        }
        self.bits[i / 4] |= code << ((i % 4) * 2);
        self.len += 1;
        true
    }

    /// Number of topics.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// True when the result holds no topic.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The grant of topic `i` (in request order).
    pub fn get(&self, i: usize) -> Option<Grant> {
        if i >= self.len() {
            return None;
        }
        Some(match (self.bits[i / 4] >> ((i % 4) * 2)) & 3 {
            0 => Grant::Granted(QoS::AtMostOnce),
            1 => Grant::Granted(QoS::AtLeastOnce),
            2 => Grant::Granted(QoS::ExactlyOnce),
            _ => Grant::Rejected,
        })
    }

    /// The grants in request order.
    pub fn iter(&self) -> impl Iterator<Item = Grant> + '_ {
        (0..self.len()).filter_map(|i| self.get(i))
    }
}

impl core::fmt::Debug for Granted {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}
