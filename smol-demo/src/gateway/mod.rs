//! The gateway: every tailguard pattern around real HTTP calls to backend replicas.
//!
//! [`Gateway::fanout`] reads `n` keys and answers what came back and how. Key `k` is read
//! from replica `k mod r` first, and every read goes through the layers below, innermost first:
//!
//! | layer | what it does | from |
//! |---|---|---|
//! | keep-alive pool | one pool of at most `pool_size` HTTP/1 connections per replica, `connect_timeout` | [`client`](crate::client) |
//! | per-call timeout | each call gets `call_timeout`, waiting for a pooled connection included, and never past the fan-out's deadline; the request tells the replica the time it has left (`tailguard-timeout` header) | [`client`](crate::client), [`tailguard::deadline_header`] |
//! | overload control | per replica, off by default: an adaptive concurrency limit (`replica_limit`: Gradient2 or AIMD, in the caller's class) and client-side throttling (`throttle_k`); a call either refuses moves to the next replica, and with every replica refusing the key fails with [`KeyError::LocalLimit`], nothing sent (see below) | [`tailguard::limit`], [`tailguard::throttle`] |
//! | circuit breaker | one per replica; a call picks the first replica, from its own, whose breaker admits it, so traffic moves away from an open one; 5xx, connection errors and timeouts after sending are failures | [`tailguard::breaker`] |
//! | hedging | a backup call to the next replica when the first is slower than the adaptive delay (p95 of recent calls, or 1 − the budget's ratio if higher), within a budget of 10 % extra calls, and only on a spare pooled connection (a backup never waits for one) | [`tailguard::pipeline`] with a [`tailguard::hedge::Hedge`] |
//! | retry | up to 3 tries, the next on the next replica, after an exponential backoff with full jitter, within a shared budget of 20 % of first tries | [`tailguard::pipeline`] with a [`tailguard::retry::RetryBudget`] |
//! | deadline | every key's retries, backoff sleeps and hedges under the fan-out's deadline: none is started when less time is left than the p90 of recent calls | [`tailguard::pipeline`] |
//! | scatter-gather | every key under the fan-out's deadline, at most `fanout_concurrency` at once (a key's call timeout starts with its turn); what is not done then is reported as timed out, and the rest is answered | [`tailguard::fanout`] |
//!
//! Retry, hedging and the deadline are one [`tailguard::pipeline::Pipeline`] per
//! gateway, which composes them in its fixed order (nothing nested by hand, nothing boxed); each
//! of its attempts is one call, which picks its replica by the breakers (a routing decision
//! per attempt, so the breakers stay per replica, inside the attempt) and bounds itself by
//! `call_timeout` in the client, which knows whether the request was sent.
//!
//! Only what a replica did counts against its breaker. A call stopped by the gateway's own
//! limits before anything was sent (no pooled connection came free, or `call_timeout` ran out
//! while connecting) releases its breaker permit uncounted, is not retried, and is reported as
//! [`KeyError::Unsent`]: a burst beyond what the pools carry slows the gateway down, but
//! cannot open a healthy replica's breaker.
//!
//! ## Overload control per replica
//!
//! An attempt asks the replica it picked for its breaker's permit, then its adaptive limit's
//! (in the caller's [`Criticality`](tailguard::priority::Criticality): the
//! `tailguard-criticality` header of the gateway request, [`Gateway::fanout_as_until`]; under
//! overload sheddable calls are refused first), then its throttle's. A limit or throttle
//! refusal releases the breaker's permit uncounted and tries the next replica; when none can
//! take the call, the key fails with [`KeyError::LocalLimit`] (`replica_limit` or
//! `throttled`), not retried. The caller's class is forwarded to the replicas in the same
//! header (nothing is sent for the default class, which is what no header means). What each
//! outcome tells them:
//!
//! | what the call got | adaptive limit | throttle |
//! |---|---|---|
//! | 2xx | success (its latency a sample) | accepted |
//! | 503 or 429 (the replica refused it: overloaded) | dropped | not accepted |
//! | `call_timeout` (or the replica's 504 for it) | dropped | not accepted |
//! | another 5xx, a 4xx | ignored | accepted (the replica took the request) |
//! | no answer (connection refused or reset) | ignored | not counted |
//! | stopped by the gateway before sending, or by the caller's deadline | ignored | not counted |
//! | cancelled (a hedge won, the fan-out was cut) | ignored | not counted |
//!
//! Both are off by default: the limit starts at `replica_limit_initial` (20), below which a
//! burst's calls to a healthy replica would be refused, and the throttle, once a replica has
//! answered 503s, refuses calls for up to its two-minute window; switched on by default they
//! would change what the existing demos show. `/metrics` then has each replica's limit, calls
//! in flight, refusals by reason (`limit`, `shed`, `probe`, `throttle`) and class, and
//! throttle probability ([`Gateway::write_metrics`]).
//!
//! The fan-out's deadline is `fanout_deadline`, or the caller's when nearer
//! ([`Gateway::fanout_until`]; the server passes the deadline of a request's
//! `tailguard-timeout` header). What that deadline ends is the caller's doing too, never held
//! against a replica: a call cut in flight ([`KeyError::Deadline`], reported as timed out), or
//! a replica's `504` for it ([`KeyError::DeadlineRefused`], retried on the next replica). A
//! replica that cannot do its work within `call_timeout` itself is a failure, as a timeout is.
//!
//! A [`FanoutReport`] says how the answer was obtained: keys ok, failed and timed out, retries,
//! budget refusals, hedges sent and won, breaker rejections and which replicas served. The
//! gateway's running totals are in [`Gateway::stats`] and, in the Prometheus text format, in
//! [`Gateway::write_metrics`].
//!
//! Dropping a fan-out (a client gone, a forced shutdown) cancels every call in it, releases
//! breaker permits uncounted, and returns no connection to a pool half-used.
//!
//! ```
//! use tailguard_demo::backend::{BackendConfig, Backends, Profile};
//! use tailguard_demo::gateway::{Gateway, GatewayConfig};
//! use tailguard_demo::rt::Runtime;
//!
//! let rt = Runtime::new(2.try_into().unwrap());
//! let backends = rt.block_on(Backends::start(BackendConfig::uniform(3, Profile::default()), rt.executor()))?;
//! let gateway = Gateway::new(GatewayConfig::new(backends.addrs().to_vec()), rt.executor().clone())?;
//!
//! backends.set_down(2, true)?; // replica 2 refuses connections
//! let report = rt.block_on(gateway.fanout(9));
//! assert_eq!(report.ok, 9); // its keys were read from the others
//! assert_eq!(report.served_by[2], 0);
//! assert_eq!(report.values[4].as_deref(), Some("/key/4 from replica 1"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod args;
mod balanced;
mod config;
mod fanout;
mod metrics;
mod overload;
mod tied;

use std::fmt;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use tailguard::breaker::{CircuitBreaker, State};
use tailguard::hedge::Hedge;
use tailguard::limit::AdaptiveLimiter;
use tailguard::pipeline::Pipeline;
use tailguard::retry::RetryBudget;
use tailguard::throttle::Throttle;
use tailguard::time::DefaultTimer;
use tailguard::ConfigError;

pub use self::balanced::Balance;
pub use self::config::{BreakerSettings, GatewayConfig, HedgeMode};
use self::fanout::KeyClassifier;
pub use self::fanout::{FanoutReport, KeyError};
pub use self::metrics::{GatewayStats, ReplicaView};
use self::overload::Refusals;
pub use self::overload::ReplicaLimit;
pub use self::tied::BACKUP_AFTER as TIED_BACKUP_AFTER;
use crate::client::{ClientConfig, Pool};
use crate::metrics::{Counter, PolicyMetrics};
use crate::rt::Exec;

/// A gateway to a set of replicas; cheap to clone (clones share everything).
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

struct Inner {
    config: GatewayConfig,
    replicas: Vec<Replica>,
    /// Retry (within `retry_budget`), hedging (`hedge`) and the fan-out's deadline.
    pipeline: Pipeline<DefaultTimer, KeyClassifier>,
    retry_budget: RetryBudget,
    hedge: Hedge,
    /// Least-loaded replica choice, in `Balance::P2c`.
    balancer: Option<tailguard::balance::Balancer<usize>>,
    /// Tied requests, in `HedgeMode::Tied`.
    tied: Option<tailguard::tied::Tied>,
    /// Runs a tied call's copies, so that a losing copy ends on its own (see `tied.rs`).
    ex: Exec,
    totals: Totals,
    /// The header forwarding each class to the replicas, by [`Criticality::index`](tailguard::priority::Criticality::index)
    /// (none for the default class).
    class_headers: [Option<http::HeaderMap>; 3],
    /// Whether the policies report to an installed [`PolicyMetrics`] (it was installed before
    /// the gateway was built): their series then replace the gateway's own of the same name.
    policy_metrics: bool,
}

/// One backend replica as the gateway sees it.
struct Replica {
    index: usize,
    pool: Pool,
    breaker: CircuitBreaker<DefaultTimer>,
    /// Its adaptive concurrency limit (`--replica-limit`), if on.
    limiter: Option<AdaptiveLimiter>,
    /// Client-side throttling of it (`--throttle-k`), if on.
    throttle: Option<Throttle<DefaultTimer>>,
    /// Calls its throttle refused, by class (its limiter counts its own).
    refusals: Refusals,
    counts: Arc<ReplicaCounts>,
}

/// Running totals of the gateway.
#[derive(Default)]
struct Totals {
    fanouts: Counter,
    keys_ok: Counter,
    keys_failed: Counter,
    keys_timed_out: Counter,
    retries: Counter,
    retry_budget_refusals: Counter,
}

/// Running totals of one replica.
#[derive(Default)]
struct ReplicaCounts {
    ok: Counter,
    failed: Counter,
    timed_out: Counter,
    rejected: Counter,
    unsent: Counter,
    deadline: Counter,
    /// Breaker transitions, by `[from][to]` state index (see [`state_index`]).
    transitions: [[Counter; STATES.len()]; STATES.len()],
}

/// The breaker states, in label order.
const STATES: [State; 5] = [
    State::Closed,
    State::Open,
    State::HalfOpen,
    State::ForcedOpen,
    State::Disabled,
];

fn state_index(state: State) -> usize {
    STATES.iter().position(|&s| s == state).unwrap_or(0)
}

impl Gateway {
    /// Checks `config`, builds the policies, and makes a connection pool and a circuit breaker
    /// per replica; connections are made on first use, their tasks run on `ex`.
    pub fn new(config: GatewayConfig, ex: Exec) -> Result<Gateway, ConfigError> {
        config.validate()?;
        let retry_budget = RetryBudget::builder()
            .ratio(config.retry_budget_ratio)
            .min_per_second(config.retry_budget_min_per_second)
            .build()?;
        let hedge = config.hedge_policy()?;
        let pipeline = Pipeline::with_timer(DefaultTimer::default())
            .max_attempts(config.retry_attempts)
            .backoff(config.backoff()?)
            .retry_budget(retry_budget.clone())
            .hedge(hedge.clone())
            .classify(KeyClassifier)
            .build()?;
        let balancer = balanced::balancer(config.balance, config.replicas.len(), config.seed)?;
        let tied = match config.hedge {
            HedgeMode::Tied(delay) => {
                Some(tied::policy(delay, Some(tied::BACKUP_AFTER), None, &hedge)?)
            }
            _ => None,
        };
        let pool_size = NonZeroUsize::new(config.pool_size)
            .ok_or_else(|| ConfigError::new("pool_size", "must be at least 1, got 0"))?;
        let client = ClientConfig {
            connect_timeout: config.connect_timeout,
            max_idle: config.max_idle_per_replica,
        };
        let replicas = config
            .replicas
            .iter()
            .enumerate()
            .map(|(index, &addr)| {
                let counts = Arc::new(ReplicaCounts::default());
                let breaker = breaker(&config, index, counts.clone())?;
                Ok(Replica {
                    index,
                    pool: Pool::bounded(addr, client, pool_size, ex.clone()),
                    breaker,
                    limiter: overload::limiter(&config)?,
                    throttle: overload::throttle(&config, index)?,
                    refusals: Refusals::default(),
                    counts,
                })
            })
            .collect::<Result<Vec<_>, ConfigError>>()?;
        Ok(Gateway {
            inner: Arc::new(Inner {
                config,
                replicas,
                pipeline,
                retry_budget,
                hedge,
                balancer,
                tied,
                ex: ex.clone(),
                totals: Totals::default(),
                class_headers: overload::class_headers(),
                policy_metrics: PolicyMetrics::installed().is_some(),
            }),
        })
    }

    /// The settings it was built with.
    pub fn config(&self) -> &GatewayConfig {
        &self.inner.config
    }

    /// The circuit breaker in front of replica `replica`, if it exists (to read its state, or
    /// to force it open by hand).
    pub fn breaker(&self, replica: usize) -> Option<&CircuitBreaker<DefaultTimer>> {
        self.inner.replicas.get(replica).map(|r| &r.breaker)
    }

    /// The hedging policy (its statistics and latency window).
    pub fn hedge(&self) -> &Hedge {
        &self.inner.hedge
    }

    /// The same gateway with its tied calls' backup sent `after` (`None`: no backup) rather
    /// than 10 ms after a copy started (or after the second copy
    /// was sent, if none has started). Only before the gateway is cloned or used; a gateway
    /// not in `HedgeMode::Tied` is returned unchanged.
    ///
    /// With a `percentile` (in (0, 1)), the delay after a start is learnt: that percentile of
    /// how long started copies ran, at most `after` (see `Backup::with_learnt_after`).
    pub fn with_tied_backup(
        mut self,
        after: Option<Duration>,
        percentile: Option<f64>,
    ) -> Result<Gateway, ConfigError> {
        let HedgeMode::Tied(delay) = self.inner.config.hedge else {
            return Ok(self);
        };
        let inner = Arc::get_mut(&mut self.inner).ok_or_else(|| {
            ConfigError::new("tied_backup", "must be set before the gateway is cloned")
        })?;
        inner.tied = Some(tied::policy(delay, after, percentile, &inner.hedge)?);
        Ok(self)
    }

    /// The tied-request policy (`--hedge tied:…`), if any: its statistics and its backup's.
    pub fn tied(&self) -> Option<&tailguard::tied::Tied> {
        self.inner.tied.as_ref()
    }

    /// The adaptive concurrency limit in front of replica `replica`, if it exists and
    /// `replica_limit` is on.
    pub fn limiter(&self, replica: usize) -> Option<&AdaptiveLimiter> {
        self.inner.replicas.get(replica)?.limiter.as_ref()
    }

    /// The client-side throttle of replica `replica`, if it exists and `throttle_k` is set.
    pub fn throttle(&self, replica: usize) -> Option<&Throttle<DefaultTimer>> {
        self.inner.replicas.get(replica)?.throttle.as_ref()
    }

    /// The retry budget shared by every key.
    pub fn retry_budget(&self) -> &RetryBudget {
        &self.inner.retry_budget
    }
}

/// Replica `index`'s breaker, counting its transitions.
fn breaker(
    config: &GatewayConfig,
    index: usize,
    counts: Arc<ReplicaCounts>,
) -> Result<CircuitBreaker<DefaultTimer>, ConfigError> {
    let settings = config.breaker;
    let log = config.log_transitions;
    CircuitBreaker::builder()
        .name(&format!("replica-{index}"))
        .failure_rate(settings.failure_rate)
        .count_window(settings.window)
        .minimum_calls(settings.minimum_calls)
        .open_duration(settings.open_duration)
        .half_open_calls(settings.half_open_calls)
        // One exact window for the replica, not one per thread: a replica's calls are few.
        .stripes(0)
        .on_transition(move |transition| {
            counts.transitions[state_index(transition.from)][state_index(transition.to)].bump();
            if log {
                crate::server::log(format_args!("replica {index}: {transition}"));
            }
        })
        .build_with(DefaultTimer::default())
}

impl fmt::Debug for Gateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gateway")
            .field("replicas", &self.inner.config.replicas)
            .field("hedge", &self.inner.config.hedge)
            .finish_non_exhaustive()
    }
}
