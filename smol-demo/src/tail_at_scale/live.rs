//! The experiment of "The Tail at Scale", live: real replicas that stall, the real gateway,
//! real load over sockets on 127.0.0.1.
//!
//! For each mode ([`Mode::None`], [`Mode::Fixed`], [`Mode::Adaptive`]) [`run`] starts, in this
//! process:
//!
//! 1. `replicas` backend replicas ([`Backends`]) whose service time is drawn from `latency`
//!    and which **stall** like a garbage collector (`stalls`: about every `every`, for about
//!    `length`, each replica at its own times);
//! 2. the gateway ([`Gateway`]) behind an HTTP [`Server`] on a free port, hedging as the mode
//!    says: not at all, after a fixed delay (no budget in effect), or at a percentile of
//!    recent call latency within a budget of extra calls;
//! 3. the open-loop [load generator](crate::load) against `GET /fanout?keys=N` at `rate`
//!    fan-outs per second for `duration`, latency measured from each request's due time.
//!
//! Every mode starts fresh replicas with the same seed, so every mode meets the same stall
//! schedule (stalls are a function of the seed and the time since the replicas started); only
//! the hedging differs. By default the modes run at once, their requests interleaved one by
//! one over the same minutes ([`interleave`](super::interleave) says how and why), so that
//! a busy moment of a shared machine lands on every mode alike; `sequential` runs them one
//! after the other, each with the machine to itself for `duration`. A fan-out of N keys touches N replicas, so it is as slow as its slowest
//! key: the more keys, the more often one of them lands on a stalled replica. Hedging sends a
//! slow key again to the next replica.
//!
//! The result, per mode: the load's latency summary and histogram (for the CDF plot in
//! [`plot`](super::plot)), and the extra calls the replicas received beyond one per key.
//! Real timing on a shared machine is noisy: the shape (a fast median, a tail made of stalls,
//! hedging cutting the tail) is robust, the exact numbers are not.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;
use tailguard::shutdown::Shutdown;
use tailguard::ConfigError;

use super::measured::{row_json, text_table, Measured};
use super::sim::Mode;
use crate::backend::{BackendConfig, Backends, LatencyDist, Profile, Stalls};
use crate::experiment::ExperimentError;
use crate::gateway::{Balance, Gateway, GatewayConfig, HedgeMode};
use crate::load::{self, LoadConfig, LoadReport};
use crate::rt::Exec;
use crate::server::{Server, ServerConfig};
use crate::verdict::Noise;

/// Everything that defines one live run. `Default` is what `tail-at-scale` runs.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveConfig {
    /// Backend replicas.
    pub replicas: usize,
    /// Keys read by each fan-out; key `k` lives on replica `k mod replicas` first.
    pub keys: usize,
    /// A replica's service time outside stalls.
    pub latency: LatencyDist,
    /// How the replicas stall.
    pub stalls: Stalls,
    /// Fan-outs per second, in each mode.
    pub rate: f64,
    /// How long each mode's load runs.
    pub duration: Duration,
    /// The `fixed` mode's hedging delay.
    pub fixed_delay: Duration,
    /// Whether the `fixed` mode gets the `adaptive` mode's budget (`budget_ratio`), to compare
    /// the two at equal extra load; by default it has none, as in the paper.
    pub equal_budget: bool,
    /// The percentile of recent call latency the `adaptive` mode hedges at, in (0, 1).
    pub adaptive_percentile: f64,
    /// The `adaptive` mode's budget: hedges ≤ ratio × calls.
    pub budget_ratio: f64,
    /// The `tied` mode: how long after a key's first copy its second is sent.
    pub tied_delay: Duration,
    /// The `tied` mode's backup: a third copy this long after a copy started (or after the
    /// second was sent, if none has started), within the adaptive mode's budget; `None`: none.
    pub tied_backup: Option<Duration>,
    /// Learn the `tied` mode's backup delay after a start as this percentile of how long
    /// started copies ran, at most `tied_backup` (`None`: `tied_backup` itself).
    pub tied_backup_percentile: Option<f64>,
    /// Workers per replica (`None`: one per request, so requests wait only for stalls).
    pub workers: Option<usize>,
    /// Seeds the replicas' latency, errors and stalls (the same in every mode).
    pub seed: u64,
    /// The modes to run, in [`Mode::ALL`] order (all five by default).
    pub modes: Vec<Mode>,
    /// Run the modes one after the other, each with the machine to itself for `duration`,
    /// instead of interleaved over the same minutes (the default; see
    /// [`interleave`](super::interleave)).
    pub sequential: bool,
}

impl Default for LiveConfig {
    /// 8 replicas with a log-normal service time around 2 ms, each stalling for 20–60 ms about
    /// every 2 s (2 % of the time); fan-outs of 8 keys at 250/s for 5 s per mode (1,250
    /// samples: enough for p99, which needs 1,000); fixed hedging at 10 ms; adaptive hedging at
    /// p95 within a 5 % budget.
    fn default() -> Self {
        LiveConfig {
            replicas: 8,
            keys: 8,
            latency: LatencyDist::LogNormal {
                median: Duration::from_millis(2),
                sigma: 0.5,
            },
            stalls: Stalls {
                every: Duration::from_secs(2),
                length: Duration::from_millis(40),
            },
            rate: 250.0,
            duration: Duration::from_secs(5),
            fixed_delay: Duration::from_millis(10),
            equal_budget: false,
            adaptive_percentile: 0.95,
            budget_ratio: 0.05,
            tied_delay: Duration::from_millis(1),
            tied_backup: Some(crate::gateway::TIED_BACKUP_AFTER),
            tied_backup_percentile: None,
            workers: None,
            seed: 2013,
            modes: Mode::ALL.to_vec(),
            sequential: false,
        }
    }
}

/// The hedging budget of the `fixed` mode: one hedge per call is always allowed, so the budget
/// never decides anything (the paper's fixed-delay hedging had none).
const UNLIMITED_BUDGET: f64 = 1.0;

impl LiveConfig {
    /// Checks the sizes; the replicas, gateway and load check the rest when they start.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(2..=crate::backend::MAX_REPLICAS).contains(&self.replicas) {
            return Err(ConfigError::new(
                "replicas",
                format!(
                    "must be in 2..={} (a hedge goes to another replica), got {}",
                    crate::backend::MAX_REPLICAS,
                    self.replicas
                ),
            ));
        }
        if self.modes.is_empty() {
            return Err(ConfigError::new("modes", "must name at least one mode"));
        }
        if !(1..=1000).contains(&self.keys) {
            return Err(ConfigError::new(
                "keys",
                format!("must be in 1..=1000, got {}", self.keys),
            ));
        }
        if !(self.adaptive_percentile > 0.0 && self.adaptive_percentile < 1.0) {
            return Err(ConfigError::new(
                "percentile",
                format!(
                    "must be in (0, 1), like 0.95, got {}",
                    self.adaptive_percentile
                ),
            ));
        }
        self.stalls.validate()?;
        self.latency.validate()?;
        self.load_config("http://127.0.0.1:1/".into()).validate()?;
        for mode in Mode::ALL {
            self.gateway_config(vec![SocketAddr::from(([127, 0, 0, 1], 1))], mode)
                .validate()?;
        }
        Ok(())
    }

    /// The replicas of every mode: the same seed, so the same stalls.
    pub fn backend_config(&self) -> BackendConfig {
        let profile = Profile {
            latency: self.latency,
            stalls: Some(self.stalls),
            workers: self.workers,
            ..Profile::default()
        };
        BackendConfig {
            seed: self.seed,
            control: false,
            ..BackendConfig::uniform(self.replicas, profile)
        }
    }

    /// The gateway of `mode`: only the hedging differs.
    pub fn gateway_config(&self, replicas: Vec<SocketAddr>, mode: Mode) -> GatewayConfig {
        let (hedge, budget) = match mode {
            Mode::None => (HedgeMode::Off, self.budget_ratio),
            Mode::Fixed if self.equal_budget => {
                (HedgeMode::Fixed(self.fixed_delay), self.budget_ratio)
            }
            Mode::Fixed => (HedgeMode::Fixed(self.fixed_delay), UNLIMITED_BUDGET),
            Mode::Adaptive | Mode::P2c => (
                HedgeMode::Adaptive(self.adaptive_percentile),
                self.budget_ratio,
            ),
            Mode::Tied => (HedgeMode::Tied(self.tied_delay), self.budget_ratio),
        };
        let balance = if mode == Mode::P2c {
            Balance::P2c
        } else {
            Balance::Home
        };
        GatewayConfig {
            max_keys: self.keys.max(1),
            hedge,
            hedge_budget_ratio: budget,
            // A backup to the next replica, and one more to the one after: two neighbours
            // stalling at once (it happens) still leave a third.
            hedge_max_attempts: 3,
            // A fan-out waits for its slowest key: give stalls room, so the tail is measured
            // rather than cut.
            call_timeout: Duration::from_secs(1),
            fanout_deadline: Duration::from_secs(2),
            seed: Some(self.seed),
            balance,
            // A tied call holds a connection to each of two replicas for as long as it runs:
            // twice the connections, so that tying does not halve the gateway's capacity.
            pool_size: if mode == Mode::Tied {
                2 * GatewayConfig::new(Vec::new()).pool_size
            } else {
                GatewayConfig::new(Vec::new()).pool_size
            },
            ..GatewayConfig::new(replicas)
        }
    }

    /// The load of one mode of an interleaved run: the same `rate × duration` fan-outs as a
    /// sequential run, at `rate / modes` for `modes × duration`, so that the machine sees
    /// `rate` fan-outs per second in all, as it does running the modes one after the other.
    pub fn interleaved_load_config(&self, url: String) -> LoadConfig {
        let requests = self.load_config(url.clone()).requests();
        let rate = self.rate / self.modes.len().max(1) as f64;
        // Half a request's gap more, so that ⌊rate × duration⌋ is `requests` despite rounding.
        let duration = Duration::from_secs_f64((requests as f64 + 0.5) / rate);
        LoadConfig {
            rate,
            duration,
            ..self.load_config(url)
        }
    }

    fn load_config(&self, url: String) -> LoadConfig {
        LoadConfig {
            concurrency: 512,
            timeout: Duration::from_secs(3),
            ..LoadConfig::new(url, self.rate, self.duration)
        }
    }
}

/// What one mode measured.
#[derive(Debug, Clone, Serialize)]
pub struct LiveModeReport {
    /// The mode.
    #[serde(serialize_with = "mode_name")]
    pub mode: Mode,
    /// The gateway's hedging setting, as `serve --hedge` writes it.
    pub hedge: String,
    /// What the load generator saw: counts, errors and the latency of whole fan-outs.
    pub load: LoadReport,
    /// Fan-outs the gateway answered.
    pub fanouts: u64,
    /// Keys read (`fanouts × keys`).
    pub keys: u64,
    /// Calls the replicas received.
    pub backend_calls: u64,
    /// Calls beyond one per key, in percent of keys.
    pub extra_pct: f64,
    /// Calls the replicas started serving beyond one per key, in percent of keys: the work
    /// of losing hedges and of tied copies whose cancel came too late.
    pub duplicate_work_pct: f64,
    /// Tied copies cancelled in a replica's queue, or refused on arrival, by their twin.
    pub cancelled_copies: u64,
    /// Cancels that reached a copy already started (both ran).
    pub cancels_too_late: u64,
    /// Backup calls the gateway sent.
    pub hedges_sent: u64,
    /// Keys answered by a backup call.
    pub hedges_won: u64,
    /// Backup calls the budget refused.
    pub hedge_budget_refusals: u64,
    /// The tied mode's backups sent, for a copy that started and overran (zero in the other
    /// modes; they are among `hedges_sent`).
    pub backups_sent: u64,
    /// Keys answered by a tied backup.
    pub backups_won: u64,
    /// Tied backups the budget refused.
    pub backups_refused: u64,
    /// Of the tied backups sent, those for a key neither of whose copies had started (both
    /// replicas stalled), and of those, the ones that answered first.
    pub backups_unstarted: [u64; 2],
    /// Keys not answered (failed or cut by the fan-out's deadline).
    pub keys_missing: u64,
    /// The hedge delay the gateway used at the end of the run, in milliseconds (`None`
    /// without hedging, or before an adaptive delay had enough samples).
    pub hedge_delay_ms: Option<f64>,
    /// Interleaved runs: the fan-outs the gateway answered in each tenth of the whole run
    /// (every mode's tenths are the same moments); empty for a sequential run.
    pub timeline: Vec<u64>,
}

fn mode_name<S: serde::Serializer>(mode: &Mode, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(mode.name())
}

/// Runs the config's modes on `ex` and reports them in order: interleaved (the default, see
/// [`interleave`](super::interleave)), or one after the other with `sequential`. `on_mode` is
/// called as each mode starts (to say what is running).
pub async fn run(
    ex: &Exec,
    config: &LiveConfig,
    mut on_mode: impl FnMut(Mode),
) -> Result<Vec<LiveModeReport>, ExperimentError> {
    config.validate()?;
    if !config.sequential {
        let run = super::interleave::run_until(ex, config, on_mode, std::future::pending()).await;
        return run.map(|(reports, _)| reports);
    }
    let mut reports = Vec::with_capacity(config.modes.len());
    for &mode in &config.modes {
        on_mode(mode);
        reports.push(run_mode(ex, config, mode).await?);
    }
    Ok(reports)
}

/// Runs one mode: fresh replicas, a gateway and its server, the load; then stops them all.
pub async fn run_mode(
    ex: &Exec,
    config: &LiveConfig,
    mode: Mode,
) -> Result<LiveModeReport, ExperimentError> {
    let backends = Backends::start(config.backend_config(), ex).await?;
    let running = Running::start(ex, config, mode, backends).await?;
    let load = load::run(ex, &config.load_config(running.url.clone())).await;
    running.finish(config, load).await
}

/// One mode's replicas, gateway and HTTP server, serving until [`Running::finish`].
pub(super) struct Running {
    mode: Mode,
    hedge: String,
    backends: Backends,
    gateway: Gateway,
    stop: Shutdown,
    serving: smol::Task<crate::server::ServeReport>,
    /// Where the load goes: `GET /fanout?keys=N` on the gateway.
    pub(super) url: String,
}

impl Running {
    /// Starts `mode`'s gateway and server in front of `backends`.
    pub(super) async fn start(
        ex: &Exec,
        config: &LiveConfig,
        mode: Mode,
        backends: Backends,
    ) -> Result<Running, ExperimentError> {
        let gateway_config = config.gateway_config(backends.addrs().to_vec(), mode);
        let (balance, mut hedge_mode) = (gateway_config.balance, gateway_config.hedge);
        let gateway = Gateway::new(gateway_config, ex.clone())?
            .with_tied_backup(config.tied_backup, config.tied_backup_percentile)?;
        // The percentile the delay is set at: the one asked, or the budget's if higher.
        if let (HedgeMode::Adaptive(_), Some(p)) = (hedge_mode, gateway.hedge().delay_percentile())
        {
            hedge_mode = HedgeMode::Adaptive(p);
        }
        let hedge = match balance {
            Balance::Home => hedge_mode.to_string(),
            balance => format!("{balance}+{hedge_mode}"),
        };
        let server = Server::bind(ServerConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            ..ServerConfig::default()
        })
        .await?
        .with_gateway(gateway.clone())
        .quiet();
        let addr = server.local_addr()?;
        let stop = Shutdown::new();
        let serving = ex.spawn(server.serve(ex.clone(), stop.signal()));
        Ok(Running {
            mode,
            hedge,
            backends,
            gateway,
            stop,
            serving,
            url: format!("http://{addr}/fanout?keys={}", config.keys),
        })
    }

    /// Fan-outs the gateway has answered so far.
    pub(super) fn fanouts(&self) -> u64 {
        self.gateway.stats().fanouts
    }

    /// Stops the server and the replicas and reports what `load` measured against them.
    pub(super) async fn finish(
        self,
        config: &LiveConfig,
        load: Result<LoadReport, ConfigError>,
    ) -> Result<LiveModeReport, ExperimentError> {
        let Running {
            mode,
            hedge,
            backends,
            gateway,
            stop,
            serving,
            url: _,
        } = self;
        stop.trigger();
        let _ = serving.await;
        let replica_stats = backends.stats();
        let backend_calls: u64 = replica_stats.iter().map(|r| r.requests).sum();
        let started: u64 = replica_stats.iter().map(|r| r.started).sum();
        let cancelled_copies: u64 = replica_stats
            .iter()
            .map(|r| r.cancelled_in_queue + r.refused_cancelled)
            .sum();
        let cancels_too_late: u64 = replica_stats.iter().map(|r| r.cancels_too_late).sum();
        backends.stop().await;
        let load = load?;

        let stats = gateway.stats();
        let tied_backups = gateway
            .tied()
            .and_then(|t| t.backup())
            .map(|b| b.stats())
            .unwrap_or_default();
        let keys = stats.fanouts * config.keys as u64;
        let hedge_delay_ms = (mode != Mode::None)
            .then(|| gateway.hedge().delay_at(std::time::Instant::now()))
            .flatten()
            .map(crate::ms::of);
        Ok(LiveModeReport {
            mode,
            hedge,
            load,
            fanouts: stats.fanouts,
            keys,
            backend_calls,
            extra_pct: if keys == 0 {
                0.0
            } else {
                100.0 * (backend_calls as f64 - keys as f64) / keys as f64
            },
            duplicate_work_pct: super::sim::duplicate_pct(started, keys),
            cancelled_copies,
            cancels_too_late,
            hedges_sent: stats.hedge.hedges_sent,
            hedges_won: stats.hedge.hedges_won,
            hedge_budget_refusals: stats.hedge.budget_refusals,
            backups_sent: tied_backups.sent,
            backups_won: tied_backups.won,
            backups_refused: tied_backups.refused,
            backups_unstarted: [tied_backups.sent_unstarted, tied_backups.won_unstarted],
            keys_missing: stats.keys_failed + stats.keys_timed_out,
            hedge_delay_ms,
            timeline: Vec::new(),
        })
    }
}

/// The reports as one JSON object keyed by mode: every percentile (`null` without at least 10
/// samples beyond it), `samples`, `max_ms`, `extra_pct` and the counts.
pub fn to_json(reports: &[LiveModeReport]) -> serde_json::Value {
    let measured = Measured::live(reports);
    let mut object = serde_json::Map::new();
    for (r, row) in reports.iter().zip(&measured.rows) {
        let mut mode = row_json(&measured, row);
        mode.insert("hedge".into(), r.hedge.clone().into());
        for (key, value) in [
            ("requests", r.load.sent),
            ("ok", r.load.ok),
            ("errors", r.load.errors),
            ("dropped", r.load.dropped),
            ("fanouts", r.fanouts),
            ("backend_calls", r.backend_calls),
            ("hedges_sent", r.hedges_sent),
            ("hedges_won", r.hedges_won),
            ("hedge_budget_refusals", r.hedge_budget_refusals),
            ("keys_missing", r.keys_missing),
            ("cancelled_copies", r.cancelled_copies),
            ("cancels_too_late", r.cancels_too_late),
            ("backups_sent", r.backups_sent),
            ("backups_won", r.backups_won),
            ("backups_refused", r.backups_refused),
            ("backups_unstarted_sent", r.backups_unstarted[0]),
            ("backups_unstarted_won", r.backups_unstarted[1]),
        ] {
            mode.insert(key.into(), value.into());
        }
        mode.insert("hedge_delay_ms".into(), r.hedge_delay_ms.into());
        object.insert(r.mode.name().to_owned(), serde_json::Value::Object(mode));
    }
    serde_json::Value::Object(object)
}

/// The heading that states the setting.
pub fn heading(config: &LiveConfig) -> String {
    format!(
        "The Tail at Scale, live: fan-outs of {} keys over {} replicas (service {}, each \
         stalling ~{:?} about every {:?}), {} fan-outs/s for {:?} per mode, {}{}",
        config.keys,
        config.replicas,
        config.latency,
        config.stalls.length,
        config.stalls.every,
        config.rate,
        config.duration,
        if config.sequential {
            "one mode after another"
        } else {
            "the modes interleaved request by request"
        },
        if config.equal_budget {
            format!(
                "; fixed and adaptive hedging share one budget, {}% extra calls",
                config.budget_ratio * 100.0
            )
        } else {
            String::new()
        }
    )
}

/// The reports as a plain-text table under a heading that states the setting, followed by the
/// conclusions drawn from it.
pub fn table(config: &LiveConfig, reports: &[LiveModeReport]) -> String {
    let mut out = heading(config);
    out.push('\n');
    out.push_str(&rows(reports));
    for line in Measured::live(reports).sentences(Noise::LIVE, "within noise") {
        let _ = writeln!(out, "{line}");
    }
    let _ = writeln!(
        out,
        "(within noise: {}; one run varies from the next, --repeat N measures by how much)",
        Noise::LIVE.describe(" ms")
    );
    out
}

/// Just the table's rows, with their header line.
pub fn rows(reports: &[LiveModeReport]) -> String {
    let errors: Vec<String> = reports.iter().map(|r| r.load.errors.to_string()).collect();
    text_table(&Measured::live(reports), &[("errors", errors)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_budget_gives_fixed_hedging_the_adaptive_budget() {
        let addr = vec![SocketAddr::from(([127, 0, 0, 1], 1))];
        let paper = LiveConfig::default();
        assert_eq!(
            paper
                .gateway_config(addr.clone(), Mode::Fixed)
                .hedge_budget_ratio,
            UNLIMITED_BUDGET
        );
        let equal = LiveConfig {
            equal_budget: true,
            budget_ratio: 0.02,
            ..LiveConfig::default()
        };
        for mode in [Mode::Fixed, Mode::Adaptive] {
            assert_eq!(
                equal.gateway_config(addr.clone(), mode).hedge_budget_ratio,
                0.02
            );
        }
        assert!(heading(&equal).contains("share one budget, 2% extra calls"));
        assert!(equal.validate().is_ok());
    }

    #[test]
    fn the_default_run_supports_p99() {
        let config = LiveConfig::default();
        let samples = (config.rate * config.duration.as_secs_f64()) as u64;
        assert!(crate::percentile::supported(0.99, samples), "{samples}");
    }
}
