//! The background thread: every interval, publish each shared breaker's entry and budget's
//! balance, read the fleet's, trip what the ledger says to and set each budget's remote
//! balance. The only place that talks to Redis.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tailguard::breaker::{CircuitBreaker, Metrics};
use tailguard::time::Timer;

use crate::budget::{self, BudgetSlot};
use crate::ledger::{self, Counts, Ledger, Rules, Why};
use crate::rate::{self, RateSlot};
use crate::status::Counters;
use crate::Settings;

/// A breaker as the thread sees it (any timer).
pub(crate) trait Shared: Send + 'static {
    fn name(&self) -> &str;
    fn metrics_now(&self) -> (Metrics, Instant);
    /// This instance's part of the fleet's window: what to publish, and what to judge with
    /// (see [`ledger::fleet_part`]).
    fn share_of(&self, now: Instant, instances: u64, ahead: Duration) -> (Counts, Counts);
    fn trip(&self) -> bool;
    fn crosses(&self, calls: u64, failures: u64, slow: u64) -> bool;
}

impl<T: Timer> Shared for CircuitBreaker<T> {
    fn name(&self) -> &str {
        self.state_machine().name()
    }
    fn metrics_now(&self) -> (Metrics, Instant) {
        let now = self.timer().now();
        (self.state_machine().metrics_at(now), now)
    }
    fn share_of(&self, now: Instant, instances: u64, ahead: Duration) -> (Counts, Counts) {
        ledger::fleet_part(self.state_machine(), now, instances, ahead)
    }
    fn trip(&self) -> bool {
        CircuitBreaker::trip(self)
    }
    fn crosses(&self, calls: u64, failures: u64, slow: u64) -> bool {
        self.state_machine()
            .crosses_threshold(calls, failures, slow)
    }
}

/// One shared breaker in the thread.
pub(crate) struct Slot {
    pub(crate) breaker: Box<dyn Shared>,
    pub(crate) key: String,
    pub(crate) ledger: Ledger,
    /// Instances sharing this breaker at the last sync, this one included (1 before any).
    pub(crate) instances: u64,
}

/// What the handle and the thread share.
pub(crate) struct Inner {
    pub(crate) settings: Settings,
    pub(crate) counters: Counters,
    /// Breakers handed over by `Fleet::share`, taken by the thread on its next sync.
    pub(crate) pending: Mutex<Vec<Slot>>,
    /// Budgets handed over by `Fleet::share_budget`, taken likewise.
    pub(crate) pending_budgets: Mutex<Vec<BudgetSlot>>,
    /// Rate limiters handed over by `Fleet::share_rate`, taken likewise.
    pub(crate) pending_rates: Mutex<Vec<RateSlot>>,
    /// Set to stop the thread; the condvar wakes it.
    pub(crate) stop: Mutex<bool>,
    pub(crate) wake: Condvar,
}

/// The thread's own state.
struct Worker {
    inner: Arc<Inner>,
    client: redis::Client,
    connection: Option<redis::Connection>,
    slots: Vec<Slot>,
    budgets: Vec<BudgetSlot>,
    rates: Vec<RateSlot>,
    /// When a sync last reached Redis (the thread's clock).
    last_ok: Option<Instant>,
    /// Whether an outage has been logged and not yet ended.
    in_outage: bool,
    failed_in_outage: u64,
}

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A hash read as text. Another writer's bytes are not trusted to be UTF-8: a value that is
/// not becomes `""` (unreadable, so removed like a stale one) instead of failing the whole
/// read; a field name that is not is read lossily (judged like any other, but an `HDEL` of
/// it misses: a stale one stays, ignored, until the key expires).
fn as_text(hash: HashMap<Vec<u8>, Vec<u8>>) -> HashMap<String, String> {
    hash.into_iter()
        .map(|(field, value)| {
            let field = String::from_utf8(field)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
            (field, String::from_utf8(value).unwrap_or_default())
        })
        .collect()
}

pub(crate) fn run(inner: Arc<Inner>, client: redis::Client) {
    let mut worker = Worker {
        inner,
        client,
        connection: None,
        slots: Vec::new(),
        budgets: Vec::new(),
        rates: Vec::new(),
        last_ok: None,
        in_outage: false,
        failed_in_outage: 0,
    };
    loop {
        worker.take_pending();
        worker.sync_once();
        let interval = worker.inner.settings.interval;
        let stop = worker.inner.stop.lock().unwrap_or_else(|p| p.into_inner());
        let (stop, _) = worker
            .inner
            .wake
            .wait_timeout_while(stop, interval, |stop| !*stop)
            .unwrap_or_else(|p| p.into_inner());
        if *stop {
            drop(stop);
            worker.leave();
            return;
        }
    }
}

impl Worker {
    fn take_pending(&mut self) {
        let mut pending = self.inner.pending.lock().unwrap_or_else(|p| p.into_inner());
        self.slots.append(&mut pending);
        drop(pending);
        let mut pending = self
            .inner
            .pending_budgets
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        self.budgets.append(&mut pending);
        drop(pending);
        let mut pending = self
            .inner
            .pending_rates
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        self.rates.append(&mut pending);
    }

    /// Whether there is anything to share.
    fn is_empty(&self) -> bool {
        self.slots.is_empty() && self.budgets.is_empty() && self.rates.is_empty()
    }

    fn connect(&mut self) -> redis::RedisResult<&mut redis::Connection> {
        if self.connection.is_none() {
            let timeout = self.inner.settings.io_timeout;
            let connection = self.client.get_connection_with_timeout(timeout)?;
            connection.set_read_timeout(Some(timeout))?;
            connection.set_write_timeout(Some(timeout))?;
            self.connection = Some(connection);
        }
        Ok(self.connection.as_mut().expect("connected above"))
    }

    fn sync_once(&mut self) {
        if self.is_empty() {
            return;
        }
        match self.exchange() {
            Ok(()) => {
                self.last_ok = Some(Instant::now());
                let counters = &self.inner.counters;
                counters.syncs.fetch_add(1, Ordering::Relaxed);
                counters.shared.store(true, Ordering::Release);
                if self.in_outage {
                    self.in_outage = false;
                    self.log(&format!(
                        "redis at {} is back after {} failed syncs; sharing again",
                        self.inner.settings.url, self.failed_in_outage
                    ));
                }
            }
            Err(error) => {
                self.connection = None;
                let counters = &self.inner.counters;
                counters.syncs_failed.fetch_add(1, Ordering::Relaxed);
                counters.shared.store(false, Ordering::Release);
                if !self.in_outage {
                    self.in_outage = true;
                    self.failed_in_outage = 0;
                    self.log(&format!(
                        "redis at {} unreachable ({error}); breakers decide locally, reconnecting every {:?}",
                        self.inner.settings.url, self.inner.settings.interval
                    ));
                }
                self.failed_in_outage += 1;
                // The others' balances are stale once no sync has reached Redis for
                // `stale_after`: every budget is alone again.
                let stale_after = self.inner.settings.stale_after;
                let alone = self.last_ok.is_none_or(|ok| ok.elapsed() > stale_after);
                if alone {
                    for slot in &self.budgets {
                        slot.budget.set_remote_balance(0);
                    }
                }
                for slot in &mut self.rates {
                    slot.apply_without_redis(alone);
                }
            }
        }
    }

    /// One round trip: for every breaker, HSET our entry, PEXPIRE the key, HGETALL it; then
    /// judge, trip, and (a second round trip, only if needed) HDEL stale fields.
    fn exchange(&mut self) -> redis::RedisResult<()> {
        let inner = Arc::clone(&self.inner);
        let settings = &inner.settings;
        let me = settings.instance_id.clone();
        let ttl = i64::try_from(settings.stale_after.as_millis()).unwrap_or(i64::MAX);
        let stale_ms = u64::try_from(settings.stale_after.as_millis()).unwrap_or(u64::MAX);
        let follow_open = settings.follow_open;
        let now_ms = wall_ms();
        let mut pipe = redis::pipe();
        let mut metrics = Vec::with_capacity(self.slots.len());
        for slot in &mut self.slots {
            let (m, now) = slot.breaker.metrics_now();
            let (published, own) = slot
                .breaker
                .share_of(now, slot.instances, settings.interval);
            let entry = slot.ledger.entry(&m, published, now, now_ms);
            pipe.hset(&slot.key, &me, entry.encode()).ignore();
            pipe.pexpire(&slot.key, ttl).ignore();
            pipe.hgetall(&slot.key);
            metrics.push((m, own));
        }
        let mut owns = Vec::with_capacity(self.budgets.len());
        for slot in &self.budgets {
            let entry = slot.entry(now_ms);
            pipe.hset(&slot.key, &me, entry.encode()).ignore();
            pipe.pexpire(&slot.key, ttl).ignore();
            pipe.hgetall(&slot.key);
            owns.push(entry.units);
        }
        let mut demands = Vec::with_capacity(self.rates.len());
        for slot in &mut self.rates {
            let entry = slot.measure(now_ms);
            pipe.hset(&slot.key, &me, entry.encode()).ignore();
            pipe.pexpire(&slot.key, ttl).ignore();
            pipe.hgetall(&slot.key);
            demands.push(entry.demand_mtps);
        }
        let hashes: Vec<HashMap<Vec<u8>, Vec<u8>>> = {
            let connection = self.connect()?;
            pipe.query(connection)?
        };
        let hashes: Vec<HashMap<String, String>> = hashes.into_iter().map(as_text).collect();
        // The second round trip, if needed: stale fields to remove, openings to publish at once.
        let mut stale = redis::pipe();
        let mut any_stale = false;
        let mut peers = 0;
        let (breaker_hashes, rest) = hashes.split_at(self.slots.len().min(hashes.len()));
        let (budget_hashes, rate_hashes) = rest.split_at(self.budgets.len().min(rest.len()));
        for ((slot, own), hash) in self.rates.iter_mut().zip(demands).zip(rate_hashes) {
            let division = rate::divide(own, slot.rate_mtps(), hash, &me, now_ms, stale_ms);
            slot.apply(Some(division.share));
            peers += division.peers;
            if !division.stale.is_empty() {
                any_stale = true;
                stale.hdel(&slot.key, &division.stale).ignore();
            }
        }
        for ((slot, own), hash) in self.budgets.iter().zip(owns).zip(budget_hashes) {
            let merge = budget::merge(own, hash, &me, now_ms, stale_ms);
            slot.budget.set_remote_balance(merge.remote);
            peers += merge.peers;
            if !merge.stale.is_empty() {
                any_stale = true;
                stale.hdel(&slot.key, &merge.stale).ignore();
            }
        }
        for ((slot, (m, own)), hash) in self.slots.iter_mut().zip(&metrics).zip(breaker_hashes) {
            let breaker = &slot.breaker;
            let verdict = slot.ledger.judge(
                m,
                *own,
                hash,
                Rules {
                    me: &me,
                    now_ms,
                    stale_after_ms: stale_ms,
                    follow_open,
                },
                |c, f, s| breaker.crosses(c, f, s),
            );
            peers += verdict.peers;
            slot.instances = 1 + verdict.peers as u64;
            if !verdict.stale.is_empty() {
                any_stale = true;
                stale.hdel(&slot.key, &verdict.stale).ignore();
            }
            if let Some(why) = verdict.trip {
                if breaker.trip() {
                    let (after, now) = breaker.metrics_now();
                    slot.ledger.tripped(after.since, why);
                    if why == Why::FleetRate {
                        // Tell the others now, not at the next sync: they follow this opening.
                        let entry = slot.ledger.entry(&after, (0, 0, 0), now, now_ms);
                        any_stale = true;
                        stale.hset(&slot.key, &me, entry.encode()).ignore();
                    }
                    self.inner
                        .counters
                        .fleet_trips
                        .fetch_add(1, Ordering::Relaxed);
                    let why = match why {
                        Why::FleetRate => "the fleet's failure rate crossed its threshold",
                        Why::PeerOpened => "another instance opened its breaker",
                        Why::PeerSawRate => {
                            "another instance saw the fleet's failure rate cross its threshold"
                        }
                    };
                    (settings.log)(&format!(
                        "breaker {} opened by the fleet: {why}",
                        breaker.name()
                    ));
                }
            }
        }
        inner.counters.peers.store(peers, Ordering::Relaxed);
        if any_stale {
            let connection = self.connect()?;
            stale.query::<()>(connection)?;
        }
        Ok(())
    }

    /// On stop: remove this instance's fields (best effort, one short round trip).
    fn leave(&mut self) {
        self.take_pending();
        for slot in &self.budgets {
            slot.budget.set_remote_balance(0);
        }
        if self.is_empty() || self.in_outage {
            return;
        }
        let mut pipe = redis::pipe();
        let keys = self.slots.iter().map(|s| &s.key);
        let keys = keys.chain(self.budgets.iter().map(|s| &s.key));
        for key in keys.chain(self.rates.iter().map(|s| &s.key)) {
            pipe.hdel(key, &self.inner.settings.instance_id).ignore();
        }
        if let Ok(connection) = self.connect() {
            let _ = pipe.query::<()>(connection);
        }
    }

    fn log(&self, line: &str) {
        (self.inner.settings.log)(line);
    }
}
