//! `tailguard-demo tail-at-scale`: its arguments and help, and [`run`], which checks every flag
//! before any work.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use super::live::LiveConfig;
use super::sim::{Mode, SimConfig};
use super::single;
use crate::args::{flag_error, parse_duration, parse_millis_or_duration, USAGE};
use crate::backend::Stalls;

/// One line of help for `tail-at-scale`.
pub const ABOUT: &str =
    "The Tail at Scale experiment: fan-out reads over replicas that stall, unhedged vs \
             fixed-delay vs adaptive hedging vs least-loaded (p2c) with replica-aware hedging (live, \
             or simulated with --sim)";

/// The full `tail-at-scale --help`: the model, stated.
pub const LONG_ABOUT: &str = "The Tail at Scale experiment (Dean & Barroso, 2013): a request that \
reads many keys is as slow as its slowest key, so rare stalls of single replicas become the \
common case of the whole request. Hedging (sending a slow key again to another replica) cuts \
that tail. Five modes are compared: none (no hedging); fixed (hedge each read after a fixed \
delay, 10 ms, no budget, as in the paper); adaptive (hedge at a percentile of recent latency, \
within a budget of extra reads, never earlier than the percentile the budget pays for, \
1 - budget: p95 within a 2% budget hedges at p98; the budget rationed by lateness: a hedge \
at its first chance keeps half the savings for calls still stuck at 2x, 4x ... the delay); p2c (the same adaptive \
hedging, but each read's replica picked by power of two choices over a peak-EWMA of latency, \
and each hedge sent only to a replica that is not running the read, not slow and not \
half-open); tied (tied requests, as in the paper: each read goes to two replicas, the second \
copy --tied-delay later, each naming the other, and the replica that starts one cancels the \
other in its twin's queue; a copy that started and has not answered --tied-backup, 10 ms, \
after it started is backed up on a third replica within the adaptive mode's budget, for a \
stall that begins while it runs; live, so is a key neither of whose copies has started \
--tied-backup after the second was sent, both replicas being stalled). Next to extra_pct (calls or reads sent beyond one per key), \
duplicate_work_pct counts those that started work beyond one per key, in percent of keys: a \
losing hedge, or a tied copy whose cancel came too late.

Live (the default): in this process, start replicas that stall like a garbage collector \
(default 8 replicas, service time log-normal around 2 ms, each stalling 20-60 ms about every \
2 s), the gateway behind an HTTP server, and the open-loop load generator against \
GET /fanout?keys=8, --rate x --duration fan-outs for each mode (default 250/s for 5 s: about \
27 s in all). The modes run interleaved, request by request over the same minutes: each mode's \
load runs at --rate / modes for modes x --duration, mode i offset by i / --rate, so the machine \
sees --rate fan-outs per second and a busy moment lands on every mode alike (--sequential runs \
them one after the other instead). Each mode has its own replicas with the same seed, started \
together, so every mode meets the same stalls at the same moments. Prints p50 / p90 / p99 / p99.9 / max of whole fan-outs (from each \
request's due time) and the extra calls the replicas received, and writes the latency CDF of \
every mode to an SVG file (--out, default tailguard-tail-at-scale.svg in the temporary \
directory) whose path it prints. Under the table, one sentence per percentile names the best \
mode with its extra calls, and says when a simpler mode did as well (within noise: less than \
10% or 0.5 ms apart). Real timing on a shared machine is noisy, and one run can order fixed \
and adaptive differently from the next: --repeat N runs everything N times (seeds --seed, \
--seed + 1, ...) and reports the median and range of each percentile per mode, how many runs \
each mode was lowest in, and which winners were stable. --equal-budget gives fixed hedging \
the adaptive mode's budget, to compare the two at equal extra load.

A percentile is reported only with at least 10 samples beyond it (p99 needs 1,000 samples, \
p99.9 10,000); otherwise the table says n/a, the JSON null (next to \"samples\"), and the \
plot's lines stop at the deepest percentile their samples support.

--sim: a deterministic virtual-time simulation at the paper's scale, running tailguard's own \
scatter-gather and hedging code. 100 replicas serve a key read in 0.2 ms + Exp(mean 1 ms). \
Each replica stalls like a stop-the-world GC: pauses start at exponential intervals (mean \
2,000 s per replica) and last uniformly 200 ms to 2 s; a paused replica serves nothing (reads \
wait, reads in service freeze). A replica is paused 0.055% of the time, so a request reading \
1,000 keys, which touches nearly every replica, meets a pause about 5% of the time. Requests \
arrive as a Poisson process (mean every 2 s, the first 20 not measured) and read their keys \
by scatter-gather; attempt n of a key read goes to the key's n-th copy on another replica. \
Every mode sees the same stalls and service times; adaptive hedges at the p99 of recent \
primary latency within a 2% budget. Each replica has one worker (--workers; reads wait their \
turn, first come first served, and a read once queued runs to its end even if another \
attempt answered, as on an ordinary server); tied copies wait in each replica's TiedQueue, \
and a cancel reaches the twin's replica --cancel-delay (0.1 ms) after its copy starts. Prints p50 / p99 / p99.9 of whole-request latency and \
the extra reads per mode, and for each percentile the best mode against no hedging and \
against fixed hedging. Duration: about 18 s of CPU in a release build, shared by the five \
modes in parallel threads, so 10-15 s of wall time on 2 idle cores and more on a busy machine \
(several times longer in a debug build; fewer --requests or --keys take proportionally less); \
on a terminal, a progress line on stderr shows the modes done and the time spent.";

/// Examples and exit statuses, after `tail-at-scale --help`.
pub const AFTER_HELP: &str = "Examples:
  tailguard-demo tail-at-scale                 # about 27 s; the table and the path of the CDF plot
  tailguard-demo tail-at-scale --out cdf.svg --rate 300 --duration 10s
  tailguard-demo tail-at-scale --sim           # about 18 s of CPU (release build); deterministic
  tailguard-demo tail-at-scale --sim --requests 2000 --json
  tailguard-demo tail-at-scale --repeat 5 --equal-budget   # is the winner stable at equal cost?
  tailguard-demo tail-at-scale --sweep         # p99 / p99.9 against extra load, fixed vs adaptive

A progress line is drawn on stderr when it is a terminal. Ctrl-C (SIGINT) or SIGTERM stops a \
single run and prints what every mode measured so far (with --sequential: the modes that \
finished, and which did not; --repeat and --sweep stop without a partial report).

Exit status: 0 when every mode ran; 1 when the run failed; 2 for a refused flag (every flag is \
checked before anything runs); 130 after SIGINT, 143 after SIGTERM.";

/// Command-line arguments of `tail-at-scale`.
#[derive(Debug, Clone, clap::Args)]
#[command(about = ABOUT, long_about = LONG_ABOUT)]
pub struct Args {
    /// Run the virtual-time simulation instead of the live experiment.
    #[arg(long)]
    pub sim: bool,
    /// Print one JSON object keyed by mode (p50_ms, p99_ms, p999_ms, extra_pct, ...).
    #[arg(long)]
    pub json: bool,
    /// Seed for stalls, key placement, arrivals and service times.
    #[arg(long, default_value_t = SimConfig::default().seed)]
    pub seed: u64,
    /// Number of requests (--sim only; live runs send --rate x --duration per mode)
    /// [default: 10000].
    #[arg(long)]
    pub requests: Option<usize>,
    /// Keys read by each request [default: 8 live, 1000 with --sim].
    #[arg(long)]
    pub keys: Option<usize>,
    /// Number of replicas [default: 8 live, 100 with --sim].
    #[arg(long)]
    pub replicas: Option<usize>,
    /// Extra-load budget of the adaptive mode, as a ratio [default: 0.05 live, 0.02 with
    /// --sim].
    #[arg(long, allow_negative_numbers = true)]
    pub budget: Option<f64>,
    /// Percentile of recent latency the adaptive mode hedges at, in (0, 1), raised to
    /// 1 - --budget if below it (the most the budget pays for) [default: 0.95 live, 0.99 with
    /// --sim].
    #[arg(long, allow_negative_numbers = true)]
    pub percentile: Option<f64>,
    /// Delay of the fixed mode.
    #[arg(long, default_value = "10ms", value_parser = parse_duration)]
    pub fixed_delay: Duration,
    /// The fixed mode's delay in milliseconds (or as a duration): the old spelling of
    /// --fixed-delay.
    #[arg(long, hide = true, value_parser = parse_millis_or_duration,
          conflicts_with = "fixed_delay", allow_negative_numbers = true)]
    pub fixed_delay_ms: Option<Duration>,
    /// Fan-outs per second in each mode (live only).
    #[arg(long, default_value_t = LiveConfig::default().rate, allow_negative_numbers = true)]
    pub rate: f64,
    /// How long each mode's load runs (live only).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub duration: Duration,
    /// A replica stalls about this often (live only).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub stall_every: Duration,
    /// ... for about this long (live only).
    #[arg(long, default_value = "40ms", value_parser = parse_duration)]
    pub stall_for: Duration,
    /// Where to write the latency CDF (live only) [default: tailguard-tail-at-scale.svg in the
    /// temporary directory].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Executor threads for the live run (default: one per core).
    #[arg(long)]
    pub threads: Option<NonZeroUsize>,
    /// Run the whole experiment N times (seeds --seed, --seed + 1, ...) and report the median
    /// and range of each percentile per mode, and how often each mode was lowest.
    #[arg(long, default_value_t = NonZeroUsize::MIN)]
    pub repeat: NonZeroUsize,
    /// Give fixed hedging the adaptive mode's budget (--budget), to compare the two at equal
    /// extra load (by default fixed hedging has no budget, as in the paper).
    #[arg(long)]
    pub equal_budget: bool,
    /// Compare at equal cost: run fixed hedging at 5, 10, 20 and 40 ms and adaptive hedging
    /// within 1, 2, 5 and 10% budgets, and plot p99 and p99.9 against extra load (SVG).
    #[arg(long, conflicts_with = "repeat")]
    pub sweep: bool,
    /// Workers per replica: the most reads a replica serves at once, more waiting in its
    /// queue (where a tied copy's twin cancels it), or `unlimited` (reads wait only for
    /// stalls) [default: 1 with --sim, unlimited live].
    #[arg(long, value_parser = parse_workers)]
    pub workers: Option<Workers>,
    /// How long after a key's first tied copy the second is sent (the `tied` mode).
    #[arg(long, default_value = "1ms", value_parser = parse_duration)]
    pub tied_delay: Duration,
    /// How long a replica's cancel takes to reach the twin's replica (--sim only; live, it is
    /// a real HTTP request) [default: 0.1ms].
    #[arg(long, value_parser = parse_duration)]
    pub cancel_delay: Option<Duration>,
    /// The tied mode's backup: a third copy to a third replica when the copy that started
    /// has not answered this long after it started (live, also when neither copy has started
    /// this long after the second was sent: both replicas stalled), within the adaptive mode's
    /// budget; `off` for none [default: 10ms].
    #[arg(long, value_parser = parse_backup)]
    pub tied_backup: Option<Backup>,
    /// Live only: learn the tied mode's backup delay after a start as this percentile, in
    /// (0, 1), of how long started copies ran (at most --tied-backup; off by default).
    #[arg(long, allow_negative_numbers = true)]
    pub tied_backup_percentile: Option<f64>,
    /// The modes to run (live only), comma-separated, in report order: a live run of one
    /// or two modes can gather the 10,000 samples p99.9 needs on a small machine
    /// [default: none,fixed,adaptive,p2c,tied].
    #[arg(long, value_parser = parse_modes)]
    pub modes: Option<Modes>,
    /// Live only: run the modes one after the other, each with the machine to itself for
    /// --duration, instead of interleaved request by request over the same minutes (the
    /// default: a busy moment of a shared machine then lands on every mode alike).
    #[arg(long)]
    pub sequential: bool,
}

/// `--tied-backup`: after how long, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backup(pub Option<Duration>);

fn parse_backup(text: &str) -> Result<Backup, String> {
    if text == "off" {
        return Ok(Backup(None));
    }
    parse_duration(text).map(|d| Backup(Some(d)))
}

/// `--modes`: the modes to run, in report order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Modes(pub Vec<Mode>);

fn parse_modes(text: &str) -> Result<Modes, String> {
    let mut modes = Vec::new();
    for name in text.split(',').map(str::trim) {
        let Some(mode) = Mode::ALL.into_iter().find(|m| m.name() == name) else {
            return Err(format!(
                "`{name}` is not a mode: write some of none, fixed, adaptive, p2c, tied, \
                 comma-separated"
            ));
        };
        if !modes.contains(&mode) {
            modes.push(mode);
        }
    }
    // Report order, whatever the order given.
    modes.sort_by_key(|m| Mode::ALL.iter().position(|a| a == m));
    Ok(Modes(modes))
}

/// `--workers`: a count, or as many as there are reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workers {
    /// At most this many at once.
    Limit(usize),
    /// A worker for every read.
    Unlimited,
}

impl Workers {
    fn limit(self) -> Option<usize> {
        match self {
            Workers::Limit(n) => Some(n),
            Workers::Unlimited => None,
        }
    }
}

fn parse_workers(text: &str) -> Result<Workers, String> {
    if text == "unlimited" {
        return Ok(Workers::Unlimited);
    }
    match text.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(Workers::Limit(n)),
        _ => Err(format!(
            "`{text}` is not a number of workers: write a whole number of at least 1, or unlimited"
        )),
    }
}

/// The flags of `tail-at-scale`, by the field their errors name.
const FLAGS: &[(&str, &str)] = &[
    ("replicas", "--replicas"),
    ("max_attempts", "--replicas"),
    ("keys", "--keys"),
    ("requests", "--requests"),
    ("percentile", "--percentile"),
    ("adaptive_delay", "--percentile"),
    ("budget_ratio", "--budget"),
    ("max_burst", "--budget"),
    ("fixed_delay", "--fixed-delay"),
    ("rate", "--rate"),
    ("duration", "--duration"),
    ("stall_every", "--stall-every"),
    ("stall_for", "--stall-for"),
    ("delay", "--tied-delay"),
    ("after", "--tied-backup"),
    ("modes", "--modes"),
];

impl Args {
    fn fixed_delay(&self) -> Duration {
        self.fixed_delay_ms.unwrap_or(self.fixed_delay)
    }

    /// The simulation these arguments ask for, every value checked (an error names the flag).
    pub fn config(&self) -> Result<SimConfig, String> {
        if self.tied_backup_percentile.is_some() {
            return Err("`--tied-backup-percentile` is for the live run".into());
        }
        if self.out.is_some() {
            return Err("--out is for the live run: --sim draws no plot".into());
        }
        if self.modes.is_some() {
            return Err("--modes is for the live run: --sim runs every mode".into());
        }
        if self.sequential {
            return Err("--sequential is for the live run: --sim's modes share no machine".into());
        }
        let defaults = SimConfig::default();
        let config = SimConfig {
            seed: self.seed,
            requests: self.requests.unwrap_or(defaults.requests),
            keys_per_request: self.keys.unwrap_or(defaults.keys_per_request),
            replicas: self.replicas.unwrap_or(defaults.replicas),
            budget_ratio: self.budget.unwrap_or(defaults.budget_ratio),
            adaptive_percentile: self.percentile.unwrap_or(defaults.adaptive_percentile),
            fixed_delay: self.fixed_delay(),
            equal_budget: self.equal_budget,
            workers: self.workers.map_or(defaults.workers, Workers::limit),
            tied_delay: self.tied_delay,
            cancel_delay: self.cancel_delay.unwrap_or(defaults.cancel_delay),
            tied_backup: self.tied_backup.map_or(defaults.tied_backup, |b| b.0),
            ..defaults
        };
        config.validate().map_err(|e| flag_error(&e, FLAGS))?;
        Ok(config)
    }

    /// The live run these arguments ask for.
    pub fn live_config(&self) -> Result<LiveConfig, String> {
        if let Some(p) = self.tied_backup_percentile {
            if !(p > 0.0 && p < 1.0) {
                return Err(format!(
                    "`--tied-backup-percentile` must be in (0, 1), got {p}"
                ));
            }
        }
        if self.requests.is_some() {
            return Err(
                "`--requests` is for --sim; a live run sends --rate x --duration fan-outs per mode"
                    .into(),
            );
        }
        if self.cancel_delay.is_some() {
            return Err(
                "`--cancel-delay` is for --sim; live, a cancel is a real HTTP request".into(),
            );
        }
        let defaults = LiveConfig::default();
        let config = LiveConfig {
            replicas: self.replicas.unwrap_or(defaults.replicas),
            keys: self.keys.unwrap_or(defaults.keys),
            stalls: Stalls {
                every: self.stall_every,
                length: self.stall_for,
            },
            rate: self.rate,
            duration: self.duration,
            fixed_delay: self.fixed_delay(),
            equal_budget: self.equal_budget,
            adaptive_percentile: self.percentile.unwrap_or(defaults.adaptive_percentile),
            budget_ratio: self.budget.unwrap_or(defaults.budget_ratio),
            seed: self.seed,
            workers: self.workers.map_or(defaults.workers, Workers::limit),
            tied_delay: self.tied_delay,
            tied_backup: self.tied_backup.map_or(defaults.tied_backup, |b| b.0),
            tied_backup_percentile: self.tied_backup_percentile,
            modes: self.modes.clone().map_or(defaults.modes, |m| m.0),
            sequential: self.sequential,
            ..defaults
        };
        config.validate().map_err(|e| flag_error(&e, FLAGS))?;
        // The gateway builds the hedging policies, which check the percentile and budget:
        // build each mode's now rather than after the modes before it have run.
        let ex: crate::rt::Exec = std::sync::Arc::new(smol::Executor::new());
        let replicas = vec![std::net::SocketAddr::from(([127, 0, 0, 1], 1)); config.replicas];
        for mode in Mode::ALL {
            crate::gateway::Gateway::new(config.gateway_config(replicas.clone(), mode), ex.clone())
                .map_err(|e| flag_error(&e, FLAGS))?;
        }
        Ok(config)
    }

    /// Where the live run (or the sweep) writes its plot.
    pub fn out_path(&self) -> PathBuf {
        let name = if self.sweep {
            "tailguard-tail-at-scale-sweep.svg"
        } else {
            "tailguard-tail-at-scale.svg"
        };
        self.out
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join(name))
    }
}

/// Runs `tailguard-demo tail-at-scale`, prints the table (or JSON) on stdout, and returns the exit status: 0
/// when every mode ran, 2 for a refused flag (checked before anything runs), 1 when the run
/// failed, 130 (SIGINT) or 143 (SIGTERM) when interrupted, after printing the modes that
/// finished.
pub fn run(args: Args) -> ExitCode {
    if args.sweep || args.repeat.get() > 1 {
        return run_many(&args);
    }
    if args.sim {
        match args.config() {
            Ok(config) => single::run_sim(&args, &config),
            Err(message) => usage(&message),
        }
    } else {
        match args.live_config() {
            Ok(config) => single::run_live(&args, &config),
            Err(message) => usage(&message),
        }
    }
}

/// `--sweep` and `--repeat N`: every flag checked first (a refused one exits 2), then the runs.
fn run_many(args: &Args) -> ExitCode {
    let checked = if args.sim {
        args.config().map(drop)
    } else {
        args.live_config().map(drop)
    };
    if let Err(message) = checked {
        return usage(&message);
    }
    match super::run_many(args) {
        Ok(text) => {
            print!("{text}");
            if !text.ends_with('\n') {
                println!();
            }
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("tail-at-scale: {message}");
            ExitCode::FAILURE
        }
    }
}

fn usage(message: &str) -> ExitCode {
    eprintln!("tail-at-scale: {message}");
    ExitCode::from(USAGE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn args(flags: &[&str]) -> Args {
        let argv = std::iter::once("tail-at-scale").chain(flags.iter().copied());
        Cli::try_parse_from(argv).expect("the flags parse").args
    }

    #[test]
    fn modes_parse_in_report_order_and_unknown_ones_are_refused() {
        let modes = parse_modes("tied, adaptive,tied").unwrap();
        assert_eq!(modes.0, [Mode::Adaptive, Mode::Tied]);
        let err = parse_modes("adaptive,hedged").unwrap_err();
        assert!(err.contains("`hedged` is not a mode"), "{err}");
        let live = args(&["--modes", "tied"]).live_config().unwrap();
        assert_eq!(live.modes, [Mode::Tied]);
        assert_eq!(LiveConfig::default().modes, Mode::ALL);
        // The simulation runs every mode.
        let err = args(&["--sim", "--modes", "tied"]).config().unwrap_err();
        assert!(err.contains("--modes"), "{err}");
    }

    #[test]
    fn the_tied_backup_is_a_duration_or_off() {
        let sim = |flags: &[&str]| args(flags).config().unwrap().tied_backup;
        assert_eq!(sim(&["--sim"]), Some(Duration::from_millis(10)));
        assert_eq!(
            sim(&["--sim", "--tied-backup", "5ms"]),
            Some(Duration::from_millis(5))
        );
        assert_eq!(sim(&["--sim", "--tied-backup", "off"]), None);
        assert!(parse_backup("soon").is_err());
        let live = |flags: &[&str]| args(flags).live_config().unwrap().tied_backup;
        assert_eq!(live(&[]), Some(Duration::from_millis(10)));
        assert_eq!(
            live(&["--tied-backup", "5ms"]),
            Some(Duration::from_millis(5))
        );
        assert_eq!(live(&["--tied-backup", "off"]), None);
    }
}
