//! The outbox's journal in flash (feature `flash-outbox`): QoS 1/2 messages
//! that survive a reset of the microcontroller.
//!
//! [`Journal`] keeps messages in a `NorFlash` region (`embedded-storage-async`)
//! through `sequential-storage`'s queue: each message one item, which that
//! crate writes with a CRC and removes by clearing its CRC, and whose pages it
//! erases only once every item on them is removed. The format of an item is
//! ours (10 bytes, then the topic and the payload):
//!
//! | bytes | field |
//! |---|---|
//! | 1 | format, 1 |
//! | 1 | flags: QoS (bits 0-1, 1 or 2), retain (bit 2) |
//! | 2 | msgID (little-endian, 1-65535) |
//! | 4 | stamp: the application's clock when it was stored (little-endian) |
//! | 2 | topic length |
//! | ... | topic (UTF-8), then payload |
//!
//! An item that does not decode so (a format of another version, a topic
//! that is not UTF-8) is counted ([`FlashStats::corrupted`]) and removed, so
//! that it never holds its page; an item whose CRC does not match (a write
//! cut by a power loss, a worn cell) is skipped by `sequential-storage`
//! itself, which does not tell; we count it from the reads it makes
//! ([`FlashStats::unreadable`]; docs/design.md, "Unreadable items").
//!
//! [`FlashOutbox`] puts the journal in front of a supervisor's outbox:
//!
//! - **store**: [`FlashOutbox::try_publish`] (and
//!   [`publish`](FlashOutbox::publish), which waits for room and for the
//!   outcome) journals a QoS 1/2 message, then hands it to the outbox under
//!   the msgID it was journalled with, and only then returns its
//!   [`Ticket`]. QoS 0 goes to the outbox alone, never journalled. The
//!   names and the outcomes are [`Link`]'s: `try_publish`, `publish`,
//!   `delivered`, `outcome`, `pending`, `flush` (which also waits until
//!   flash holds nothing).
//! - **ack**: [`FlashOutbox::run`] (a task) removes a message from flash
//!   once its ticket has an outcome (acknowledged by `+QMTPUB: id,msgID,0`,
//!   or refused for good). A reset between the two sends it again: at least
//!   once.
//! - **start**: [`FlashOutbox::open`] reads what flash holds, oldest first,
//!   and hands it to the outbox under the msgIDs it had; the client's msgID
//!   allocator goes on above the highest of them. What does not fit in the
//!   outbox (or in the table of `N` messages) is handed over by `run` as
//!   room frees.
//! - **pending**: [`FlashOutbox::list_pending`] lists what flash holds;
//!   [`FlashOutbox::drop_older_than`] removes what is stale by its stamp.

use core::cell::RefCell;
use core::future::poll_fn;
use core::ops::Range;
use core::task::Poll;

use embassy_futures::select::{select, select3};
use embassy_sync::blocking_mutex::Mutex as BlockingMutex;
use embassy_sync::mutex::{Mutex, MutexGuard};
use embassy_sync::signal::Signal;
use embassy_time::{Duration, Instant, Timer};
use embedded_storage_async::nor_flash::{ErrorType, MultiwriteNorFlash, NorFlash, ReadNorFlash};
use sequential_storage::cache::{Cache, Uncached};
use sequential_storage::queue::{QueueConfig, QueueStorage};

use super::outbox::PushError;
use super::{push_error, Link, Outcome, Ticket};
use crate::error::{Error, FlashError};
use crate::sync::{CriticalSectionRawMutex, RawMutex};
use crate::types::QoS;
use crate::wait::{wait, Lock, LockGuard, WaitSet};

/// Bytes of our own bookkeeping per journalled message (beside
/// `sequential-storage`'s item header).
pub const ENTRY_HEADER: usize = 10;

const FORMAT: u8 = 1;
const QOS_MASK: u8 = 0b11;
const RETAIN: u8 = 0b100;

/// The last operation of the flash that failed, kept by [`Tracked`].
#[derive(Clone, Copy)]
enum Op {
    Read,
    Write,
    Erase,
}

/// The application's flash, with the kind of its last failure kept, so
/// that a failure of `sequential-storage` says whether a read, a write or
/// an erase failed; and, while a scan runs, its reads traced to count the
/// items `sequential-storage` skips ([`Trace`]).
struct Tracked<F> {
    flash: F,
    failed: Option<Op>,
    trace: Trace,
}

/// The reads of a scan, to count the items whose CRC does not match.
/// `sequential-storage` (8.0.2, `ItemHeader::read_item`) skips
/// such an item without a word: it reads an item's data right after its
/// header, and when the CRC does not match it reads the same bytes once more
/// before it gives up and reads on (the next header, or a page's state). So
/// a data read repeated at once, right behind a header read that ends where
/// it begins, then followed by any other read, is a skipped item. (The
/// iterator holds the flash while it runs, so a read that failed once and
/// then matched, whose item the iterator returns, would be counted too when
/// the scan reads on: a glitch of the flash's reads.)
/// `tests/flash_journal.rs` pins this reading of the dependency on our
/// flash double.
#[derive(Default)]
struct Trace {
    on: bool,
    /// The last two reads (offset, length), the last one first (length 0:
    /// none).
    last: [(u32, u32); 2],
    /// The last read repeated an item's data read: skipped, if more reads
    /// follow before the iterator returns an item.
    repeated: bool,
    skipped: u32,
}

impl Trace {
    fn read(&mut self, at: (u32, u32), header: u32) {
        if !self.on {
            return;
        }
        if core::mem::take(&mut self.repeated) {
            self.skipped = self.skipped.wrapping_add(1);
        }
        let [prev, (o, n)] = self.last;
        self.repeated = at.1 != 0 && prev == at && n == header && o.wrapping_add(n) == at.0;
        self.last = [at, prev];
    }
}

impl<F: ErrorType> ErrorType for Tracked<F> {
    type Error = F::Error;
}

impl<F: NorFlash> ReadNorFlash for Tracked<F> {
    const READ_SIZE: usize = F::READ_SIZE;

    async fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), F::Error> {
        // `sequential-storage`'s item header: 8 bytes, in whole words.
        let word = F::READ_SIZE.max(F::WRITE_SIZE).max(1);
        let header = 8usize.next_multiple_of(word) as u32;
        self.trace.read((offset, bytes.len() as u32), header);
        let r = self.flash.read(offset, bytes).await;
        if r.is_err() {
            self.failed = Some(Op::Read);
        }
        r
    }

    fn capacity(&self) -> usize {
        self.flash.capacity()
    }
}

impl<F: NorFlash> NorFlash for Tracked<F> {
    const WRITE_SIZE: usize = F::WRITE_SIZE;
    const ERASE_SIZE: usize = F::ERASE_SIZE;

    async fn erase(&mut self, from: u32, to: u32) -> Result<(), F::Error> {
        let r = self.flash.erase(from, to).await;
        if r.is_err() {
            self.failed = Some(Op::Erase);
        }
        r
    }

    async fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), F::Error> {
        let r = self.flash.write(offset, bytes).await;
        if r.is_err() {
            self.failed = Some(Op::Write);
        }
        r
    }
}

impl<F: MultiwriteNorFlash> MultiwriteNorFlash for Tracked<F> {}

/// A journalled message, as read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournalEntry<'m> {
    /// The msgID it goes out with, every time, across resets.
    pub msg_id: u16,
    /// QoS 1 or 2.
    pub qos: QoS,
    /// The retain flag.
    pub retain: bool,
    /// The application's clock when it was stored
    /// ([`FlashOutboxConfig::clock`]).
    pub stamp: u32,
    /// The topic.
    pub topic: &'m str,
    /// The payload.
    pub payload: &'m [u8],
}

impl<'m> JournalEntry<'m> {
    fn len(&self) -> usize {
        ENTRY_HEADER + self.topic.len() + self.payload.len()
    }

    fn encode(&self, buf: &mut [u8]) -> Option<usize> {
        let len = self.len();
        let topic_len = u16::try_from(self.topic.len()).ok()?;
        let out = buf.get_mut(..len)?;
        out[0] = FORMAT;
        out[1] = self.qos.get() | if self.retain { RETAIN } else { 0 };
        out[2..4].copy_from_slice(&self.msg_id.to_le_bytes());
        out[4..8].copy_from_slice(&self.stamp.to_le_bytes());
        out[8..10].copy_from_slice(&topic_len.to_le_bytes());
        let (topic, payload) = out[ENTRY_HEADER..].split_at_mut(self.topic.len());
        topic.copy_from_slice(self.topic.as_bytes());
        payload.copy_from_slice(self.payload);
        Some(len)
    }

    /// `None` for bytes that are not an entry of ours.
    fn decode(b: &'m [u8]) -> Option<Self> {
        if b.len() < ENTRY_HEADER || b[0] != FORMAT || b[1] & !(QOS_MASK | RETAIN) != 0 {
            return None;
        }
        let qos = match b[1] & QOS_MASK {
            1 => QoS::AtLeastOnce,
            2 => QoS::ExactlyOnce,
            _ => return None,
        };
        let msg_id = u16::from_le_bytes([b[2], b[3]]);
        let topic_len = usize::from(u16::from_le_bytes([b[8], b[9]]));
        if msg_id == 0 || topic_len == 0 || ENTRY_HEADER + topic_len > b.len() {
            return None;
        }
        let (topic, payload) = b[ENTRY_HEADER..].split_at(topic_len);
        Some(Self {
            msg_id,
            qos,
            retain: b[1] & RETAIN != 0,
            stamp: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
            topic: core::str::from_utf8(topic).ok()?,
            payload,
        })
    }
}

/// What a [`Journal::scan`] does with an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// It stays.
    Keep,
    /// It is removed.
    Remove,
    /// It stays, and the scan ends.
    Stop,
}

/// Messages in a `NorFlash` region, oldest first, on `sequential-storage`'s
/// queue (the module's doc gives the format). `buf` must hold the largest
/// message (10 bytes + topic + payload); the flash must allow a word to be
/// written twice (`MultiwriteNorFlash`: a removal clears the CRC of an item
/// written before).
pub struct Journal<'b, F: MultiwriteNorFlash> {
    queue: QueueStorage<Tracked<F>, Cache<Uncached, Uncached, Uncached>>,
    buf: &'b mut [u8],
    corrupted: u32,
    unreadable: u32,
    /// Entries of ours removed so far (a scan that fails half-way removed
    /// some: counted here all the same).
    popped: u32,
}

impl<'b, F: MultiwriteNorFlash> Journal<'b, F> {
    /// The journal in `range` of `flash` (whole pages, at least 2), as the
    /// flash holds it (erased flash is an empty journal). Reads it through
    /// once, which repairs what an interrupted erase left.
    pub async fn open(flash: F, range: Range<u32>, buf: &'b mut [u8]) -> Result<Self, FlashError> {
        let mut j = Self::new(flash, range, buf)?;
        j.scan(|_| Keep::Keep).await?;
        Ok(j)
    }

    /// The journal in `range` of `flash`, erased first: everything it held
    /// is lost. The way out when [`open`](Self::open) finds the region
    /// [`FlashError::Corrupted`].
    pub async fn open_erased(
        flash: F,
        range: Range<u32>,
        buf: &'b mut [u8],
    ) -> Result<Self, FlashError> {
        let mut j = Self::new(flash, range, buf)?;
        j.erase_all().await?;
        Ok(j)
    }

    fn new(flash: F, range: Range<u32>, buf: &'b mut [u8]) -> Result<Self, FlashError> {
        let page = F::ERASE_SIZE as u32;
        if range.end > flash.capacity() as u32
            || range.end < range.start
            || (range.end - range.start) / page.max(1) < 2
        {
            return Err(FlashError::Region);
        }
        let config = QueueConfig::try_new(range).map_err(|_| FlashError::Region)?;
        Ok(Self {
            queue: QueueStorage::new(
                Tracked {
                    flash,
                    failed: None,
                    trace: Trace::default(),
                },
                config,
                Cache::new_uncached(),
            ),
            buf,
            corrupted: 0,
            unreadable: 0,
            popped: 0,
        })
    }

    /// Entries found corrupted (and removed) so far.
    pub fn corrupted(&self) -> u32 {
        self.corrupted
    }

    /// Items whose CRC does not match (a write cut by a reset, a worn
    /// cell), which `sequential-storage` skips, as the last scan that read
    /// the whole region found them. They go with their page when it is
    /// erased.
    pub fn unreadable(&self) -> u32 {
        self.unreadable
    }

    /// The flash back (the journal's state is all in it).
    pub fn into_flash(self) -> F {
        self.queue.destroy().0.flash
    }

    /// Erases the whole region: every message in it is lost. The way out of
    /// [`FlashError::Corrupted`].
    pub async fn erase_all(&mut self) -> Result<(), FlashError> {
        let r = self.queue.erase_all().await;
        r.map_err(|e| self.error(e))
    }

    fn error(&mut self, e: sequential_storage::Error<F::Error>) -> FlashError {
        use sequential_storage::Error as E;
        match e {
            E::Storage { .. } => match self.queue.flash().failed.take() {
                Some(Op::Read) => FlashError::Read,
                Some(Op::Erase) => FlashError::Erase,
                _ => FlashError::Write,
            },
            E::FullStorage => FlashError::Full,
            E::ItemTooBig | E::BufferTooSmall(_) | E::BufferTooBig => FlashError::TooLarge,
            _ => FlashError::Corrupted,
        }
    }

    /// Journals `e`: durable once this returns `Ok`.
    pub async fn store(&mut self, e: &JournalEntry<'_>) -> Result<(), FlashError> {
        let len = e.encode(self.buf).ok_or(FlashError::TooLarge)?;
        let r = self.queue.push(&self.buf[..len], false).await;
        r.map_err(|e| self.error(e))
    }

    /// Visits every entry, oldest first; `f` says what becomes of it.
    /// Entries that do not decode are counted and removed.
    pub async fn scan(
        &mut self,
        mut f: impl FnMut(&JournalEntry<'_>) -> Keep,
    ) -> Result<(), FlashError> {
        self.queue.flash().trace = Trace {
            on: true,
            ..Trace::default()
        };
        let r = self.scan_inner(&mut f).await;
        let trace = core::mem::take(&mut self.queue.flash().trace);
        if matches!(r, Ok(true)) {
            self.unreadable = trace.skipped;
        }
        r.map(|_| ()).map_err(|e| self.error(e))
    }

    /// `Ok(true)` when it read the whole region.
    async fn scan_inner(
        &mut self,
        f: &mut dyn FnMut(&JournalEntry<'_>) -> Keep,
    ) -> Result<bool, sequential_storage::Error<F::Error>> {
        let mut it = self.queue.iter().await?;
        while let Some(entry) = it.next(self.buf).await? {
            let (what, ours) = match JournalEntry::decode(&entry) {
                Some(e) => (f(&e), true),
                None => {
                    self.corrupted = self.corrupted.wrapping_add(1);
                    (Keep::Remove, false)
                }
            };
            match what {
                Keep::Keep => {}
                Keep::Remove => {
                    entry.pop().await?;
                    if ours {
                        self.popped = self.popped.wrapping_add(1);
                    }
                }
                Keep::Stop => return Ok(false),
            }
        }
        Ok(true)
    }

    /// Removes the entries whose msgID `gone` says; how many.
    pub async fn remove(&mut self, gone: impl Fn(u16) -> bool) -> Result<usize, FlashError> {
        let mut n = 0;
        self.scan(|e| {
            if gone(e.msg_id) {
                n += 1;
                Keep::Remove
            } else {
                Keep::Keep
            }
        })
        .await?;
        Ok(n)
    }
}

/// How a [`FlashOutbox`] uses its flash.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct FlashOutboxConfig {
    /// The region of the flash it may use: whole pages, at least 2.
    pub range: Range<u32>,
    /// The application's clock (seconds since an epoch of its choice, an
    /// RTC's), stamped on each message so that stale ones can be found after
    /// a reset ([`FlashOutbox::drop_older_than`]). Default: always 0.
    pub clock: fn() -> u32,
    /// After a flash failure in [`FlashOutbox::run`], how long before it
    /// tries again. Default 1 s.
    pub retry: Duration,
    /// How long the removal of ended messages from flash (which may erase
    /// a page, stalling a core that runs from the same flash) may wait for
    /// a quiet moment: none of the journalled messages still owes its
    /// result. Default 5 s. A reset in between sends the ended ones again.
    pub erase_defer: Duration,
}

impl FlashOutboxConfig {
    /// The region `range`, with the defaults above.
    pub fn new(range: Range<u32>) -> Self {
        Self {
            range,
            clock: || 0,
            retry: Duration::from_secs(1),
            erase_defer: Duration::from_secs(5),
        }
    }
}

/// What a [`FlashOutbox`] did so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct FlashStats {
    /// Messages journalled (stored in flash) since open.
    pub stored: u32,
    /// Messages found in flash at open and handed to the outbox again
    /// (those handed over later by `run` included).
    pub reloaded: u32,
    /// Messages removed from flash after they ended.
    pub removed: u32,
    /// Stale messages dropped ([`FlashOutbox::drop_older_than`]).
    pub dropped: u32,
    /// Entries found corrupted (their CRC matched, they did not decode) and
    /// removed.
    pub corrupted: u32,
    /// Items whose CRC does not match (a write cut by a reset, a worn
    /// cell), skipped by `sequential-storage`, as the last scan of the
    /// whole region found them ([`Journal::unreadable`]); they go with their
    /// page.
    pub unreadable: u32,
    /// Flash failures in `run` (it tried again after `retry`).
    pub failures: u32,
    /// The last flash failure.
    pub last_failure: Option<FlashError>,
}

/// A journalled message the outbox holds: its ticket of this run.
struct Table<const N: usize> {
    slots: [Option<Ticket>; N],
    /// Flash holds messages not in `slots` (they did not fit at open).
    backlog: bool,
    stats: FlashStats,
    /// Woken when messages leave `slots` or `backlog` ends ([`flush`]).
    ///
    /// [`flush`]: FlashOutbox::flush
    emptied: WaitSet<1>,
}

impl<const N: usize> Table<N> {
    /// Flash holds none of the outbox's messages (as far as this run knows).
    fn empty(&self) -> bool {
        !self.backlog && self.slots.iter().all(Option::is_none)
    }
}

/// A message that flash holds, as [`FlashOutbox::list_pending`] lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pending<'m> {
    /// The message.
    pub entry: JournalEntry<'m>,
    /// Its ticket in this run; `None` while it waits for room in the
    /// outbox (after a reset, more than it holds).
    pub ticket: Option<Ticket>,
}

/// A supervisor's outbox with a journal in flash in front of it: QoS 1/2
/// messages survive a reset of the microcontroller (the module's doc says
/// how). Open it with [`open`](Self::open) before the first publish, spawn
/// [`run`](Self::run), and publish through it as through a [`Link`]
/// ([`try_publish`](Self::try_publish), [`publish`](Self::publish), the
/// same names and outcomes; `try_publish` is async here: it returns once the
/// message is in flash). What concerns the link itself (its state, its
/// counters) is [`link`](Self::link)'s. At most `N` journalled messages are
/// in the outbox at once.
pub struct FlashOutbox<
    'a,
    F: MultiwriteNorFlash,
    M: RawMutex = CriticalSectionRawMutex,
    const N: usize = 16,
> {
    link: Link<'a, M>,
    /// Taken before `journal`, so that nobody ever waits for `journal`
    /// itself (embassy-sync's `Mutex` keeps one waker: two tasks waiting for
    /// it would wake each other while it is held); any number wait here.
    gate: Lock<M>,
    journal: Mutex<M, Journal<'a, F>>,
    table: BlockingMutex<M, RefCell<Table<N>>>,
    changed: Signal<M, ()>,
    config: FlashOutboxConfig,
}

/// The journal, held (dropped in this order: the journal, then its gate).
struct Held<'g, 'a, F: MultiwriteNorFlash, M: RawMutex> {
    journal: MutexGuard<'g, M, Journal<'a, F>>,
    _gate: LockGuard<'g, M>,
}

impl<'a, F: MultiwriteNorFlash, M: RawMutex> core::ops::Deref for Held<'_, 'a, F, M> {
    type Target = Journal<'a, F>;

    fn deref(&self) -> &Journal<'a, F> {
        &self.journal
    }
}

impl<F: MultiwriteNorFlash, M: RawMutex> core::ops::DerefMut for Held<'_, '_, F, M> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.journal
    }
}

impl<'a, F: MultiwriteNorFlash, M: RawMutex, const N: usize> FlashOutbox<'a, F, M, N> {
    /// Opens the journal in `config.range` of `flash` and hands what it
    /// holds to `link`'s outbox, oldest first, under the msgIDs the messages
    /// had; the client's msgIDs go on above the highest. `buf` must hold the
    /// largest message (10 bytes + topic + payload). Call it before any
    /// publish on `link`.
    pub async fn open(
        link: Link<'a, M>,
        flash: F,
        buf: &'a mut [u8],
        config: FlashOutboxConfig,
    ) -> Result<Self, FlashError> {
        let journal = Journal::open(flash, config.range.clone(), buf).await?;
        Self::start(link, journal, config).await
    }

    /// Like [`open`](Self::open) on a region erased first: everything it
    /// held is lost. The way out when `open` finds the region
    /// [`FlashError::Corrupted`] (the flash handed to `open` again: a
    /// `&mut` of the application's flash is a `NorFlash` too).
    pub async fn open_erased(
        link: Link<'a, M>,
        flash: F,
        buf: &'a mut [u8],
        config: FlashOutboxConfig,
    ) -> Result<Self, FlashError> {
        let journal = Journal::open_erased(flash, config.range.clone(), buf).await?;
        Self::start(link, journal, config).await
    }

    async fn start(
        link: Link<'a, M>,
        journal: Journal<'a, F>,
        config: FlashOutboxConfig,
    ) -> Result<Self, FlashError> {
        let this = Self {
            link,
            gate: Lock::new(),
            journal: Mutex::new(journal),
            table: BlockingMutex::new(RefCell::new(Table {
                slots: [None; N],
                backlog: true,
                stats: FlashStats::default(),
                emptied: WaitSet::new(),
            })),
            changed: Signal::new(),
            config,
        };
        let mut highest = 0u16;
        {
            let mut j = this.held_journal().await;
            j.scan(|e| {
                highest = highest.max(e.msg_id);
                Keep::Keep
            })
            .await?;
            this.load(&mut j).await?;
        }
        link.client.continue_msg_ids_at(highest.wrapping_add(1));
        Ok(this)
    }

    fn with<R>(&self, f: impl FnOnce(&mut Table<N>) -> R) -> R {
        self.table.lock(|t| f(&mut t.borrow_mut()))
    }

    /// Hands journalled messages not yet in the outbox to it, oldest first,
    /// while it and the table have room.
    /// The journal, held: its gate first, then the journal itself.
    async fn held_journal(&self) -> Held<'_, 'a, F, M> {
        let gate = self.gate.lock().await;
        let journal = self.journal.lock().await;
        Held {
            journal,
            _gate: gate,
        }
    }

    async fn load(&self, j: &mut Journal<'a, F>) -> Result<(), FlashError> {
        if !self.with(|t| t.backlog) {
            return Ok(());
        }
        let outbox = self.link.outbox;
        let mut full = false;
        j.scan(|e| {
            let (known, room) = self.with(|t| {
                (
                    t.slots.iter().flatten().any(|s| s.msg_id == e.msg_id),
                    t.slots.iter().any(Option::is_none),
                )
            });
            if known {
                return Keep::Keep;
            }
            if !room {
                full = true;
                return Keep::Stop;
            }
            match outbox.push_as(e.topic, e.payload, e.qos, e.retain, e.msg_id) {
                Ok(ticket) => {
                    self.with(|t| {
                        if let Some(slot) = t.slots.iter_mut().find(|s| s.is_none()) {
                            *slot = Some(ticket);
                        }
                        t.stats.reloaded = t.stats.reloaded.wrapping_add(1);
                    });
                    Keep::Keep
                }
                // Never fits (a smaller outbox than before the reset): it
                // can never be sent.
                Err(PushError::TooLarge) => Keep::Remove,
                // No room now, or its msgID is taken by a message stored
                // around the journal: later.
                Err(_) => {
                    full = true;
                    Keep::Stop
                }
            }
        })
        .await?;
        let (corrupted, unreadable) = (j.corrupted(), j.unreadable());
        self.with(|t| {
            t.backlog = full;
            t.stats.corrupted = corrupted;
            t.stats.unreadable = unreadable;
            t.emptied.wake();
        });
        Ok(())
    }

    /// [`Link::try_publish`] through flash: stores a message and returns its
    /// [`Ticket`] once it is durable: QoS 1/2 in flash first (then in the
    /// outbox, under the msgID it was journalled with), QoS 0 in the outbox
    /// only, never in flash (taken only while the link is online, as by
    /// `Link::try_publish`). Errors: those of `Link::try_publish`
    /// ([`Error::OutboxFull`] also when flash or the table of `N` has no
    /// room), and [`Error::Flash`] when flash fails; then nothing was
    /// stored. It waits only for the journal (another store, or `run`'s
    /// removal, in progress), never for room.
    pub async fn try_publish(
        &self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
    ) -> Result<Ticket, Error> {
        if qos == QoS::AtMostOnce {
            return self.link.try_publish(topic, payload, qos, retain);
        }
        self.link.check(topic, payload)?;
        let mut j = self.held_journal().await;
        if !self.with(|t| t.slots.iter().any(Option::is_none)) {
            return Err(Error::OutboxFull);
        }
        // A msgID no message in the outbox or in flash holds.
        let backlog = self.with(|t| t.backlog);
        let msg_id = loop {
            let id = self.link.client.alloc_msg_id();
            if self.with(|t| t.slots.iter().flatten().any(|s| s.msg_id == id)) {
                continue;
            }
            if backlog {
                let mut held = false;
                j.scan(|e| {
                    held |= e.msg_id == id;
                    Keep::Keep
                })
                .await
                .map_err(Error::Flash)?;
                if held {
                    continue;
                }
            }
            break id;
        };
        let entry = JournalEntry {
            msg_id,
            qos,
            retain,
            stamp: (self.config.clock)(),
            topic,
            payload,
        };
        j.store(&entry).await.map_err(|e| match e {
            FlashError::Full => Error::OutboxFull,
            e => Error::Flash(e),
        })?;
        match self
            .link
            .outbox
            .push_as(topic, payload, qos, retain, msg_id)
        {
            Ok(ticket) => {
                self.with(|t| {
                    if let Some(slot) = t.slots.iter_mut().find(|s| s.is_none()) {
                        *slot = Some(ticket);
                    }
                    t.stats.stored = t.stats.stored.wrapping_add(1);
                });
                self.changed.signal(());
                Ok(ticket)
            }
            Err(e) => {
                // No room in the outbox: out of flash again. (Cut by a reset
                // now, it would be sent after it, without a ticket.)
                let _ = j.remove(|id| id == msg_id).await;
                Err(push_error(e))
            }
        }
    }

    /// [`Link::publish`] through flash: stores a message
    /// ([`try_publish`](Self::try_publish), waiting for room: in the outbox,
    /// in flash and in the table of `N`) and waits for its [`Outcome`]; an
    /// error before it was stored is [`Outcome::Refused`] (QoS 0 while the
    /// link is not online: `Refused(Error::Offline)`). Once the message is
    /// stored, dropping this future does not withdraw it.
    pub async fn publish(&self, topic: &str, payload: &[u8], qos: QoS, retain: bool) -> Outcome {
        loop {
            match self.try_publish(topic, payload, qos, retain).await {
                Ok(t) => return self.link.delivered(t).await,
                Err(Error::OutboxFull) => self.wait_room().await,
                Err(e) => return Outcome::Refused(e),
            }
        }
    }

    /// Waits until room may have freed: a journalled message that had not
    /// ended ends, `run` removes messages from flash, or `retry` passed.
    /// (Not for messages that ended already but wait for their removal
    /// (`erase_defer`, a failing flash): they would end the wait at once,
    /// and `publish` would spin without letting `run` remove them.)
    async fn wait_room(&self) {
        let outbox = self.link.outbox;
        let slots: [Option<Ticket>; N] = self.with(|t| t.slots);
        let open: [Option<Ticket>; N] =
            core::array::from_fn(|i| slots[i].filter(|tk| outbox.outcome(*tk).is_none()));
        let gone = |t: &Table<N>| (t.stats.removed, t.stats.dropped, t.stats.reloaded);
        let before = self.with(|t| gone(t));
        let removed = wait(
            |f: &mut dyn FnMut(&mut WaitSet<1>)| self.with(|t| f(&mut t.emptied)),
            |w, waker| {
                self.with(|t| {
                    let changed = (gone(t) != before).then_some(());
                    w.poll(&mut t.emptied, waker, changed)
                })
            },
        );
        select3(
            outbox.wait_any_ended(&open),
            removed,
            Timer::after(self.config.retry),
        )
        .await;
    }

    /// The link this outbox feeds.
    pub fn link(&self) -> Link<'a, M> {
        self.link
    }

    /// [`Link::delivered`]: waits until the message of `ticket` ended, and
    /// says how. (Its removal from flash follows, in [`run`](Self::run).)
    pub async fn delivered(&self, ticket: Ticket) -> Outcome {
        self.link.delivered(ticket).await
    }

    /// [`Link::outcome`]: how the message of `ticket` ended; `None` while it
    /// is in the outbox.
    pub fn outcome(&self, ticket: Ticket) -> Option<Outcome> {
        self.link.outcome(ticket)
    }

    /// [`Link::pending`]: true while the message of `ticket` is in the
    /// outbox. (What flash holds: [`list_pending`](Self::list_pending).)
    pub fn pending(&self, ticket: Ticket) -> bool {
        self.link.pending(ticket)
    }

    /// [`Link::flush`], and more: waits until every journalled message
    /// ended and left flash (through [`run`](Self::run): spawn it), and
    /// then until the outbox is empty. Before a planned reset, so that
    /// nothing is sent twice after it. Bound it with `with_timeout` as you
    /// like: flash that keeps failing keeps what it holds.
    pub async fn flush(&self) {
        wait(
            |f: &mut dyn FnMut(&mut WaitSet<1>)| self.with(|t| f(&mut t.emptied)),
            |w, waker| {
                self.with(|t| {
                    let empty = t.empty().then_some(());
                    w.poll(&mut t.emptied, waker, empty)
                })
            },
        )
        .await;
        self.link.flush().await
    }

    /// What it did so far.
    pub fn stats(&self) -> FlashStats {
        self.with(|t| t.stats)
    }

    /// The ticket of this run of the journalled message `msg_id`, if any.
    fn ticket_of(&self, msg_id: u16) -> Option<Ticket> {
        self.with(|t| {
            t.slots
                .iter()
                .flatten()
                .find(|s| s.msg_id == msg_id)
                .copied()
        })
    }

    /// Lists what flash holds, oldest first, each with its ticket of this
    /// run.
    pub async fn list_pending(&self, mut f: impl FnMut(&Pending<'_>)) -> Result<(), FlashError> {
        let mut j = self.held_journal().await;
        j.scan(|e| {
            let ticket = self.ticket_of(e.msg_id);
            f(&Pending { entry: *e, ticket });
            Keep::Keep
        })
        .await?;
        let (corrupted, unreadable) = (j.corrupted(), j.unreadable());
        self.with(|t| {
            t.stats.corrupted = corrupted;
            t.stats.unreadable = unreadable;
        });
        Ok(())
    }

    /// Drops the messages stamped before `stamp` that are not in flight:
    /// out of the outbox ([`Outcome::Dropped`] on their tickets) and out of
    /// flash. How many left flash, counted as they leave it
    /// ([`FlashStats::dropped`]): when the flash fails half-way, the message
    /// whose removal failed is already out of the outbox but still in flash,
    /// and the next call removes and counts it (once).
    pub async fn drop_older_than(&self, stamp: u32) -> Result<usize, FlashError> {
        let outbox = self.link.outbox;
        let mut j = self.held_journal().await;
        let before = j.popped;
        let r = j
            .scan(|e| {
                if e.stamp >= stamp {
                    return Keep::Keep;
                }
                if let Some(tk) = self.ticket_of(e.msg_id) {
                    if !outbox.withdraw(tk.seq) {
                        // In flight (or ended just now): it stays.
                        return Keep::Keep;
                    }
                }
                self.with(|t| {
                    for s in t.slots.iter_mut() {
                        if s.is_some_and(|s| s.msg_id == e.msg_id) {
                            *s = None;
                        }
                    }
                });
                Keep::Remove
            })
            .await;
        let n = j.popped.wrapping_sub(before);
        // Woken once the count moved: a publish waiting for room sees it.
        self.with(|t| {
            t.stats.dropped = t.stats.dropped.wrapping_add(n);
            t.emptied.wake();
        });
        r.map(|()| n as usize)
    }

    /// Removes the messages of `ended` (msgIDs) from flash and the table
    /// (from the table only once all of them left flash; those removed
    /// before a failure are counted all the same).
    async fn remove(&self, ended: &[Option<u16>]) -> Result<usize, FlashError> {
        let mut j = self.held_journal().await;
        let before = j.popped;
        let r = j.remove(|id| ended.contains(&Some(id))).await;
        let n = j.popped.wrapping_sub(before);
        let (corrupted, unreadable) = (j.corrupted(), j.unreadable());
        self.with(|t| {
            t.stats.unreadable = unreadable;
            if r.is_ok() {
                for s in t.slots.iter_mut() {
                    if s.is_some_and(|tk| ended.contains(&Some(tk.msg_id))) {
                        *s = None;
                    }
                }
            }
            t.stats.removed = t.stats.removed.wrapping_add(n);
            t.stats.corrupted = corrupted;
            t.emptied.wake();
        });
        r.map(|_| n as usize)
    }

    /// Removes from flash, now, every journalled message that ended,
    /// without waiting for a quiet moment as [`run`](Self::run) does
    /// (`erase_defer`): before a planned reset or a standby that powers RAM
    /// down, so that what was delivered is not sent again. How many.
    pub async fn remove_ended(&self) -> Result<usize, FlashError> {
        let outbox = self.link.outbox;
        let slots: [Option<Ticket>; N] = self.with(|t| t.slots);
        let ended: [Option<u16>; N] = core::array::from_fn(|i| {
            slots[i]
                .filter(|tk| outbox.outcome(*tk).is_some())
                .map(|tk| tk.msg_id)
        });
        if ended.iter().all(Option::is_none) {
            return Ok(0);
        }
        self.remove(&ended).await
    }

    /// The journal's task: removes each message from flash once it ended,
    /// and hands the messages that did not fit at open to the outbox as room
    /// frees. Never returns; a flash failure is counted
    /// ([`FlashStats::failures`]) and tried again after `retry`.
    pub async fn run(&self) -> ! {
        let outbox = self.link.outbox;
        // When the oldest ended message still in flash ended.
        let mut first_end: Option<Instant> = None;
        loop {
            let slots: [Option<Ticket>; N] = self.with(|t| t.slots);
            let ended: [Option<u16>; N] = core::array::from_fn(|i| {
                slots[i]
                    .filter(|tk| outbox.outcome(*tk).is_some())
                    .map(|tk| tk.msg_id)
            });
            let any_ended = ended.iter().any(Option::is_some);
            // Journalled messages still in the outbox: their results are
            // owed, the modem may speak at any moment.
            let busy = slots
                .iter()
                .flatten()
                .any(|tk| outbox.outcome(*tk).is_none());
            let since = *first_end.get_or_insert_with(Instant::now);
            if !any_ended {
                first_end = None;
            }
            let deadline = since + self.config.erase_defer;
            let due = any_ended && (!busy || Instant::now() >= deadline);
            let mut failed = None;
            if due {
                match self.remove(&ended).await {
                    Ok(_) => first_end = None,
                    Err(e) => failed = Some(e),
                }
            }
            if failed.is_none() && self.with(|t| t.backlog) {
                let mut j = self.held_journal().await;
                failed = self.load(&mut j).await.err();
            }
            if let Some(e) = failed {
                warn!("flash outbox: {}", e);
                self.with(|t| {
                    t.stats.failures = t.stats.failures.wrapping_add(1);
                    t.stats.last_failure = Some(e);
                });
                Timer::after(self.config.retry).await;
                continue;
            }
            if due {
                // Look again: more may have ended meanwhile.
                continue;
            }
            let slots: [Option<Ticket>; N] = self.with(|t| t.slots);
            // The ended ones are waited for by the deadline.
            let open: [Option<Ticket>; N] =
                core::array::from_fn(|i| slots[i].filter(|tk| outbox.outcome(*tk).is_none()));
            let backlog = self.with(|t| t.backlog);
            let timer = async {
                if any_ended {
                    Timer::at(deadline).await
                } else if backlog {
                    Timer::after(self.config.retry).await
                } else {
                    poll_fn(|_| Poll::<()>::Pending).await
                }
            };
            select(
                select(self.changed.wait(), outbox.wait_any_ended(&open)),
                timer,
            )
            .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::outbox::{Outbox, OutboxMeta};
    use super::*;
    use crate::ring::RingStore;
    use embassy_sync::blocking_mutex::Mutex as BlockingMutex;
    use std::vec::Vec;

    type Cs = crate::sync::CriticalSectionRawMutex;
    type Store = BlockingMutex<Cs, RefCell<RingStore<OutboxMeta, 512>>>;

    fn outbox() -> Outbox<'static, Cs> {
        let s: &'static Store = std::boxed::Box::leak(std::boxed::Box::new(BlockingMutex::new(
            RefCell::new(RingStore::new(OutboxMeta::new())),
        )));
        Outbox::new(s)
    }

    fn read(o: &Outbox<'static, Cs>, at: usize) -> (std::string::String, Vec<u8>) {
        crate::channel::read_all(&o.source(at))
    }

    #[test]
    fn a_record_stored_under_a_given_msg_id_reads_back_as_one_push_stores() {
        let o = outbox();
        let a = o
            .push("t/a", b"one", QoS::ExactlyOnce, true, &mut || 9)
            .unwrap();
        let b = o
            .push_as("t/a", b"one", QoS::ExactlyOnce, true, 10)
            .unwrap();
        assert_eq!((a.msg_id, b.msg_id, b.seq), (9, 10, a.seq + 1));
        let (ta, tb) = (o.take().unwrap(), o.take().unwrap());
        assert_eq!(
            (ta.qos, ta.retain, ta.sends, read(&o, ta.at)),
            (tb.qos, tb.retain, tb.sends, read(&o, tb.at))
        );
        assert_eq!((ta.msg_id, tb.msg_id), (9, 10));
        o.delivered(tb.at);
        assert_eq!(o.outcome(b), Some(Outcome::Acknowledged { msg_id: 10 }));
    }

    #[test]
    fn a_msg_id_held_by_a_stored_message_is_refused_and_only_a_queued_message_is_withdrawn() {
        let o = outbox();
        let a = o.push_as("t", b"1", QoS::AtLeastOnce, false, 5).unwrap();
        assert_eq!(
            o.push_as("t", b"2", QoS::AtLeastOnce, false, 5),
            Err(PushError::InUse)
        );
        let b = o.push_as("t", b"2", QoS::AtLeastOnce, false, 6).unwrap();
        let ta = o.take().unwrap();
        assert_eq!(ta.seq, a.seq);
        assert!(!o.withdraw(a.seq), "in flight: it stays");
        assert!(o.withdraw(b.seq));
        assert_eq!(o.outcome(b), Some(Outcome::Dropped));
        assert_eq!(o.outcome(a), None);
        assert_eq!(o.stats().messages, 1);
    }

    #[test]
    fn an_entry_reads_back_as_written_and_bytes_not_ours_do_not_decode() {
        let e = JournalEntry {
            msg_id: 513,
            qos: QoS::ExactlyOnce,
            retain: true,
            stamp: 0x0102_0304,
            topic: "a/b",
            payload: b"\x00\xff,\"",
        };
        let mut buf = [0u8; 64];
        let n = e.encode(&mut buf).unwrap();
        assert_eq!(n, ENTRY_HEADER + 3 + 4);
        assert_eq!(JournalEntry::decode(&buf[..n]), Some(e));
        assert_eq!(e.encode(&mut buf[..n - 1]), None, "does not fit");
        for bad in [
            &buf[..ENTRY_HEADER - 1],
            &buf[..ENTRY_HEADER + 2], // topic cut
        ] {
            assert_eq!(JournalEntry::decode(bad), None);
        }
        let mut qos0 = buf;
        qos0[1] = 0;
        assert_eq!(JournalEntry::decode(&qos0[..n]), None);
        let mut id0 = buf;
        id0[2..4].fill(0);
        assert_eq!(JournalEntry::decode(&id0[..n]), None);
    }
}
