//! The server side of tied requests: a bounded FIFO request queue with cancel-by-id.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, Instant};

use super::{Tag, Twin};
use crate::validate;
use crate::ConfigError;

/// The most requests a [`TiedQueue`] can be built to hold.
pub const MAX_QUEUE: usize = 1 << 20;

/// A bounded FIFO queue of requests in front of a server's workers, whose tagged requests can
/// be cancelled by id — the server side of [tied requests](super).
///
/// Sans-IO: the caller owns the workers and the transport. It [pushes](TiedQueue::push_at)
/// each request as it arrives, [starts](TiedQueue::start_next_at) the oldest one whenever a
/// worker is free (and sends the returned [`Start::cancel_twin`] to the twin's replica), and
/// [cancels](TiedQueue::cancel) a request by id when the twin's replica says its copy started.
///
/// Every operation is O(1) and allocates nothing: the storage for `capacity` requests and for
/// the `remember` most recent ids is reserved when the queue is built.
///
/// The queue remembers the most recent ids it started or cancelled (`remember`, by default
/// four times the capacity), so that:
/// - a cancel for a request that already started says so ([`Cancelled::TooLate`]: both copies
///   run, and the work is duplicated);
/// - a cancel that arrives *before* its request (the twin started first, and its cancel
///   overtook this copy) is kept, and the copy is refused when it arrives
///   ([`Refusal::Cancelled`]).
///
/// ```
/// use std::time::Instant;
/// use tailguard::tied::{Cancelled, Tag, TiedQueue, Twin};
///
/// let mut queue = TiedQueue::<&str, &str>::new(8).unwrap();
/// let now = Instant::now();
/// // Copy 7 of a tied pair; its twin is copy 8 on replica "b".
/// let tag = Tag::tied(7, Twin { replica: "b", id: 8 });
/// queue.push_at(now, "read key 1", Some(tag)).unwrap();
/// queue.push_at(now, "read key 2", Some(Tag::tied(9, Twin { replica: "c", id: 10 }))).unwrap();
///
/// // The twin of request 9 started on replica "c": remove 9 from this queue.
/// assert_eq!(queue.cancel(9), Cancelled::InQueue("read key 2"));
///
/// // A worker is free: start request 7 and tell replica "b" to drop copy 8.
/// let start = queue.start_next_at(now).unwrap();
/// assert_eq!(start.item, "read key 1");
/// assert_eq!(start.cancel_twin, Some(Twin { replica: "b", id: 8 }));
/// // Too late to cancel 7 now: it runs.
/// assert_eq!(queue.cancel(7), Cancelled::TooLate);
/// assert!(queue.is_empty());
/// ```
pub struct TiedQueue<T, A> {
    slots: Vec<Slot<T, A>>,
    /// Free slots, as a stack of indices.
    free: Vec<u32>,
    head: Option<u32>,
    tail: Option<u32>,
    len: usize,
    /// Queued tagged requests, by id.
    queued: HashMap<u64, u32, IdHash>,
    /// What became of the most recent ids (started, or cancelled).
    pub(super) recent: HashMap<u64, Recent, IdHash>,
    /// `recent`'s ids, oldest first, to forget the oldest beyond `remember`.
    pub(super) order: VecDeque<u64>,
    remember: usize,
    stats: QueueStats,
}

/// Hashes the queue's `u64` ids with two keyed, folded 64×64→128-bit multiplies (the mixing
/// step of foldhash and wyhash): far cheaper than std's SipHash on the queue's hot path, and
/// keyed per queue (from `fastrand`) so that a client cannot easily choose ids that collide.
/// The maps are bounded (`capacity` and `remember` entries), so even a bad spread costs time,
/// not memory.
#[derive(Clone, Copy)]
pub(super) struct IdHash {
    seeds: [u64; 2],
}

impl IdHash {
    fn new() -> Self {
        IdHash {
            seeds: [fastrand::u64(..), fastrand::u64(..)],
        }
    }
}

impl BuildHasher for IdHash {
    type Hasher = IdHasher;

    fn build_hasher(&self) -> IdHasher {
        IdHasher {
            state: self.seeds[0],
            finish_seed: self.seeds[1],
        }
    }
}

/// `a × b` to 128 bits, its halves xored.
fn folded_multiply(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product as u64) ^ ((product >> 64) as u64)
}

/// The [`IdHash`] hasher: for a `u64` key, two multiplies; other input (never used by the
/// queue) is folded in eight bytes at a time.
pub(super) struct IdHasher {
    state: u64,
    finish_seed: u64,
}

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, word: u64) {
        self.state = folded_multiply(self.state ^ word, 0x9E37_79B9_7F4A_7C15);
    }

    fn finish(&self) -> u64 {
        folded_multiply(self.state ^ self.finish_seed, 0x243F_6A88_85A3_08D3)
    }
}

struct Slot<T, A> {
    /// Bumped each time the slot is freed, so that an old [`Ticket`] cannot remove a newer
    /// request.
    generation: u32,
    entry: Option<Entry<T, A>>,
}

struct Entry<T, A> {
    item: T,
    tag: Option<Tag<A>>,
    at: Instant,
    prev: Option<u32>,
    next: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Recent {
    Started,
    Cancelled,
}

/// Names one queued request for [`TiedQueue::remove`] (when the client that sent it goes away).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ticket {
    slot: u32,
    generation: u32,
}

/// A request leaving the queue for a worker, from [`TiedQueue::start_next_at`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start<T, A> {
    /// The request.
    pub item: T,
    /// Its id, if it was tagged.
    pub id: Option<u64>,
    /// The twin to cancel, if the request is tied: send the cancel to `replica` for `id`.
    /// Returned once per request: a started request cancels its twin at most once.
    pub cancel_twin: Option<Twin<A>>,
    /// How long it waited in the queue.
    pub waited: Duration,
}

/// What a cancel found, from [`TiedQueue::cancel`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cancelled<T> {
    /// The request was still queued: it was removed, and here it is, to release what it holds
    /// (answer its client, free its buffers).
    InQueue(T),
    /// The request had already started: both copies run (duplicated work).
    TooLate,
    /// No such request here (yet): the id is remembered, and a request with it arriving later
    /// is refused with [`Refusal::Cancelled`].
    NotHere,
}

/// Why [`TiedQueue::push_at`] refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The queue holds `capacity` requests already.
    Full {
        /// The queue's capacity.
        capacity: usize,
    },
    /// A request with this id is queued, or started recently.
    DuplicateId(u64),
    /// This id was cancelled (its twin started): before it arrived, or while queued.
    Cancelled(u64),
}

/// A request [`TiedQueue::push_at`] refused, handed back with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected<T> {
    /// Why.
    pub reason: Refusal,
    /// The request, untouched.
    pub item: T,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Full { capacity } => write!(f, "the queue is full ({capacity} requests)"),
            Refusal::DuplicateId(id) => write!(f, "request id {id} is already here"),
            Refusal::Cancelled(id) => {
                write!(
                    f,
                    "request {id} was cancelled by its twin before it arrived"
                )
            }
        }
    }
}

impl<T> fmt::Display for Rejected<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.reason, f)
    }
}

impl<T: fmt::Debug> std::error::Error for Rejected<T> {}

/// What a [`TiedQueue`] has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Requests accepted into the queue.
    pub queued: u64,
    /// Requests started.
    pub started: u64,
    /// Requests removed from the queue by a cancel ([`Cancelled::InQueue`]).
    pub cancelled_in_queue: u64,
    /// Cancels that came after their request started ([`Cancelled::TooLate`]).
    pub cancels_too_late: u64,
    /// Cancels for an id not here ([`Cancelled::NotHere`]).
    pub cancels_early: u64,
    /// Requests refused on arrival because their twin had cancelled them already.
    pub refused_cancelled: u64,
    /// Requests refused because the queue was full.
    pub refused_full: u64,
    /// Requests taken out by [`TiedQueue::remove`].
    pub removed: u64,
}

impl<T, A> TiedQueue<T, A> {
    /// A queue of at most `capacity` requests (in `1..=`[`MAX_QUEUE`]) remembering the
    /// `4 × capacity` most recent ids.
    pub fn new(capacity: usize) -> Result<Self, ConfigError> {
        Self::remembering(capacity, capacity.saturating_mul(4))
    }

    /// A queue of at most `capacity` requests that remembers the `remember` most recent ids
    /// it started or was told to cancel (both in `1..=`[`MAX_QUEUE`]; `remember` at least
    /// `capacity`).
    pub fn remembering(capacity: usize, remember: usize) -> Result<Self, ConfigError> {
        validate::count_in("capacity", capacity, 1..=MAX_QUEUE as u64, "")?;
        validate::count_in(
            "remember",
            remember,
            capacity as u64..=(4 * MAX_QUEUE) as u64,
            "at least the capacity",
        )?;
        let mut slots = Vec::with_capacity(capacity);
        slots.resize_with(capacity, || Slot {
            generation: 0,
            entry: None,
        });
        Ok(TiedQueue {
            slots,
            free: (0..capacity as u32).rev().collect(),
            head: None,
            tail: None,
            len: 0,
            queued: HashMap::with_capacity_and_hasher(capacity, IdHash::new()),
            recent: HashMap::with_capacity_and_hasher(remember + 1, IdHash::new()),
            order: VecDeque::with_capacity(remember + 1),
            remember,
            stats: QueueStats::default(),
        })
    }

    /// Requests queued now.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no request is queued.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The most requests the queue holds.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// What the queue has done so far.
    pub fn stats(&self) -> QueueStats {
        self.stats
    }

    /// Whether a request with `id` is queued now.
    pub fn contains(&self, id: u64) -> bool {
        self.queued.contains_key(&id)
    }

    /// Appends a request that arrived at `now`, tagged (`Some`, to be cancellable by id) or not.
    /// Refused, and handed back, when the queue is full, when the id is already here, or when
    /// its twin cancelled it before it arrived.
    pub fn push_at(
        &mut self,
        now: Instant,
        item: T,
        tag: Option<Tag<A>>,
    ) -> Result<Ticket, Rejected<T>> {
        if let Some(tag) = &tag {
            let refusal = match self.recent.get(&tag.id) {
                Some(Recent::Cancelled) => Some(Refusal::Cancelled(tag.id)),
                Some(Recent::Started) => Some(Refusal::DuplicateId(tag.id)),
                None if self.queued.contains_key(&tag.id) => Some(Refusal::DuplicateId(tag.id)),
                None => None,
            };
            if let Some(reason) = refusal {
                if let Refusal::Cancelled(_) = reason {
                    self.stats.refused_cancelled += 1;
                }
                return Err(Rejected { reason, item });
            }
        }
        let Some(slot) = self.free.pop() else {
            self.stats.refused_full += 1;
            return Err(Rejected {
                reason: Refusal::Full {
                    capacity: self.capacity(),
                },
                item,
            });
        };
        if let Some(tag) = &tag {
            self.queued.insert(tag.id, slot);
        }
        let s = &mut self.slots[slot as usize];
        s.entry = Some(Entry {
            item,
            tag,
            at: now,
            prev: self.tail,
            next: None,
        });
        let generation = s.generation;
        match self.tail {
            Some(tail) => self.entry_mut(tail).next = Some(slot),
            None => self.head = Some(slot),
        }
        self.tail = Some(slot);
        self.len += 1;
        self.stats.queued += 1;
        Ok(Ticket { slot, generation })
    }

    /// Takes the oldest request out for a worker at `now`, with the twin to cancel if it is
    /// tied; `None` if the queue is empty.
    pub fn start_next_at(&mut self, now: Instant) -> Option<Start<T, A>> {
        let slot = self.head?;
        let entry = self.unlink(slot);
        self.stats.started += 1;
        let (id, cancel_twin) = match entry.tag {
            Some(tag) => {
                self.queued.remove(&tag.id);
                self.note(tag.id, Recent::Started);
                (Some(tag.id), tag.twin)
            }
            None => (None, None),
        };
        Some(Start {
            item: entry.item,
            id,
            cancel_twin,
            waited: now.saturating_duration_since(entry.at),
        })
    }

    /// Cancels request `id`: removed if still queued, too late if it started; otherwise the
    /// id is remembered so that the request is refused if it arrives later.
    pub fn cancel(&mut self, id: u64) -> Cancelled<T> {
        if let Some(slot) = self.queued.remove(&id) {
            self.stats.cancelled_in_queue += 1;
            self.note(id, Recent::Cancelled);
            return Cancelled::InQueue(self.unlink(slot).item);
        }
        match self.recent.get(&id) {
            Some(Recent::Started) => {
                self.stats.cancels_too_late += 1;
                Cancelled::TooLate
            }
            Some(Recent::Cancelled) => Cancelled::NotHere,
            None => {
                self.stats.cancels_early += 1;
                self.note(id, Recent::Cancelled);
                Cancelled::NotHere
            }
        }
    }

    /// Takes out the queued request `ticket` names (its client went away), if it is still
    /// queued; it is not remembered as started or cancelled.
    pub fn remove(&mut self, ticket: Ticket) -> Option<T> {
        let s = self.slots.get(ticket.slot as usize)?;
        if s.generation != ticket.generation || s.entry.is_none() {
            return None;
        }
        let entry = self.unlink(ticket.slot);
        if let Some(tag) = &entry.tag {
            self.queued.remove(&tag.id);
        }
        self.stats.removed += 1;
        Some(entry.item)
    }

    fn entry_mut(&mut self, slot: u32) -> &mut Entry<T, A> {
        self.slots[slot as usize]
            .entry
            .as_mut()
            .expect("a linked slot holds an entry")
    }

    /// Takes the entry out of `slot` and out of the FIFO, and frees the slot.
    fn unlink(&mut self, slot: u32) -> Entry<T, A> {
        let s = &mut self.slots[slot as usize];
        let entry = s.entry.take().expect("a linked slot holds an entry");
        s.generation = s.generation.wrapping_add(1);
        match entry.prev {
            Some(prev) => self.entry_mut(prev).next = entry.next,
            None => self.head = entry.next,
        }
        match entry.next {
            Some(next) => self.entry_mut(next).prev = entry.prev,
            None => self.tail = entry.prev,
        }
        self.free.push(slot);
        self.len -= 1;
        entry
    }

    /// Remembers what became of `id`, forgetting the oldest beyond `remember`.
    fn note(&mut self, id: u64, what: Recent) {
        if self.recent.insert(id, what).is_none() {
            self.order.push_back(id);
            if self.order.len() > self.remember {
                if let Some(old) = self.order.pop_front() {
                    self.recent.remove(&old);
                }
            }
        }
    }
}

impl<T, A> fmt::Debug for TiedQueue<T, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TiedQueue")
            .field("len", &self.len)
            .field("capacity", &self.capacity())
            .field("remember", &self.remember)
            .field("stats", &self.stats)
            .finish()
    }
}

#[cfg(test)]
mod id_hash_tests {
    use super::IdHash;
    use std::collections::HashSet;
    use std::hash::BuildHasher;

    /// Distinct values of `bits(hash)` over 1,024 ids `0, stride, 2 × stride, ...`.
    fn spread(hash: &IdHash, stride: u64, bits: impl Fn(u64) -> u64) -> usize {
        (0..1024u64)
            .map(|i| bits(hash.hash_one(i.wrapping_mul(stride))))
            .collect::<HashSet<_>>()
            .len()
    }

    #[test]
    fn ids_spread_over_buckets_and_control_bytes_whatever_their_stride() {
        let hash = IdHash::new();
        // Dense ids, strided ids, and ids that differ only in high bits all spread over
        // the low bits (the bucket) and the top seven (the table's control byte).
        for stride in [1, 2, 3, 1 << 20, 1 << 32, 1 << 50] {
            // Random placement: about 647 of 1,024 buckets, and all 128 control values.
            assert!(spread(&hash, stride, |h| h & 1023) > 550, "stride {stride}");
            assert!(spread(&hash, stride, |h| h >> 57) >= 120, "stride {stride}");
        }
    }

    #[test]
    fn each_queue_keys_its_hash() {
        let (a, b) = (IdHash::new(), IdHash::new());
        assert!((0..8u64).any(|id| a.hash_one(id) != b.hash_one(id)));
        // One queue's hash is a function of the id.
        assert_eq!(a.hash_one(42u64), a.hash_one(42u64));
    }
}
