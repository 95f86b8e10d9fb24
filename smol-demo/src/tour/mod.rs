//! The guided tour: `tailguard-demo` with no arguments.
//!
//! It starts everything it needs in this process on free ports of 127.0.0.1 and walks through
//! five patterns, each with a short explanation and a table of what was measured:
//!
//! 1. [timeouts]: a slow request head, a stalled body and a trickled body, each cut at its
//!    limit while an ordinary request is served;
//! 2. [graceful shutdown](shutdown): requests in flight finish, new ones are refused, what
//!    outlives the deadline is cut, and the server is done within the deadline;
//! 3. retry and the herd: the live [`herd`](crate::herd::live), short;
//! 4. the [circuit breaker](breaker) of one replica tripping during its outage and closing after;
//! 5. hedging against stalls: the live [`tail-at-scale`](crate::tail_at_scale::live), short,
//!    in rounds, with fixed and adaptive hedging at one budget.
//!
//! Every conclusion it prints under a table is drawn from that table
//! ([`verdict`](crate::verdict)): the best mode per measure, and whether a simpler one did as
//! well; percentiles follow [the sample rule](crate::percentile).
//!
//! It takes about 20 s (`--quick`: about 10 s) and prints plain text when stdout is not a
//! terminal.

pub mod breaker;
pub mod out;
pub mod raw;
pub mod shutdown;
pub mod timeouts;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use tailguard::shutdown::Shutdown;

use self::out::{Out, Table};
use crate::experiment::ExperimentError;
use crate::gateway::Gateway;
use crate::herd::live::{LiveHerdConfig, LiveHerdReport};
use crate::percentile;
use crate::rt::{self, Runtime};
use crate::server::{ServeReport, Server, ServerConfig};
use crate::tail_at_scale::live::LiveConfig;
use crate::tail_at_scale::measured::Measured;
use crate::tail_at_scale::repeat;
use crate::tail_at_scale::sim::Mode;

/// The tour's options (also accepted with no subcommand: `tailguard-demo --quick`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TourArgs {
    /// A shorter tour (about 10 s instead of 20 s), with fewer samples per table.
    #[arg(long)]
    pub quick: bool,
}

/// The section headings, in order.
pub const HEADINGS: [&str; 5] = [
    "1. Timeouts: every wait has a limit",
    "2. Graceful shutdown: finish what was accepted, within a deadline",
    "3. Retry and the herd: jitter and a budget",
    "4. The circuit breaker: stop calling a dead replica",
    "5. Hedging against stalls: the tail at scale",
];

/// Formats a duration in milliseconds: `503 ms`, `0.4 ms` below 10 ms.
pub fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    if ms < 10.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

/// Formats a duration in seconds, to the hundredth: `1.5s`, `0.25s`, `2s`.
pub fn secs(d: Duration) -> String {
    let text = format!("{:.2}", d.as_secs_f64());
    format!("{}s", text.trim_end_matches('0').trim_end_matches('.'))
}

/// A server started on the tour's runtime; stop it with [`RunningServer::stop`].
pub struct RunningServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Triggers its graceful shutdown.
    pub stop: Shutdown,
    /// Its `serve` task.
    pub task: smol::Task<ServeReport>,
}

impl RunningServer {
    /// Binds `config` (quietly: the tour reports for it) and serves on `rt`.
    pub fn start(
        rt: &Runtime,
        config: ServerConfig,
        gateway: Option<Gateway>,
    ) -> Result<RunningServer, ExperimentError> {
        let server = rt.block_on(Server::bind(config))?.quiet();
        let server = match gateway {
            Some(gateway) => server.with_gateway(gateway),
            None => server,
        };
        let addr = server.local_addr()?;
        let stop = Shutdown::new();
        let task = rt.spawn(server.serve(rt.executor().clone(), stop.signal()));
        Ok(RunningServer { addr, stop, task })
    }

    /// Shuts it down and waits for it.
    pub fn stop(self, rt: &Runtime) -> ServeReport {
        self.stop.trigger();
        rt.block_on(self.task)
    }
}

/// One part of the tour: prints its explanation and its table.
type Section<'a> = dyn Fn() -> Result<(), ExperimentError> + 'a;

/// Runs the tour, printing as it goes; fails if a section could not run.
pub fn run(args: &TourArgs) -> ExitCode {
    let out = Out::detect();
    let started = Instant::now();
    let rt = Runtime::new(rt::default_threads());
    out.para(&format!(
        "tailguard tour: five resilience patterns, each measured live in this process over \
         real sockets on 127.0.0.1 (free ports picked by the system). About {} s; real timings \
         on a shared machine vary, so read the shapes, not the exact numbers.",
        if args.quick { 10 } else { 20 }
    ));
    let mut failed = Vec::new();
    let sections: [(&str, &Section<'_>); 5] = [
        (HEADINGS[0], &|| section_timeouts(&out, &rt)),
        (HEADINGS[1], &|| section_shutdown(&out, &rt)),
        (HEADINGS[2], &|| section_herd(&out, &rt, args.quick)),
        (HEADINGS[3], &|| section_breaker(&out, &rt, args.quick)),
        (HEADINGS[4], &|| section_hedging(&out, &rt, args.quick)),
    ];
    for (heading, section) in sections {
        out.heading(heading);
        if let Err(error) = section() {
            out.para(&format!("This part could not run: {error}"));
            failed.push(heading);
        }
    }
    drop(rt);
    out.heading("Done");
    out.para(&format!(
        "The tour took {:.1} s. Each part also runs on its own, with flags to change it: \
         `tailguard-demo serve` (the server and gateway), `backend` (flaky replicas), `load` \
         (open-loop load), `herd` and `tail-at-scale` (add --sim for the virtual-time \
         versions); `--help` on each says more.",
        started.elapsed().as_secs_f64()
    ));
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn section_timeouts(out: &Out, rt: &Runtime) -> Result<(), ExperimentError> {
    let config = timeouts::config();
    out.para(&format!(
        "A server waits on its clients in several places: for the request head, for each \
         chunk of the body, for the whole body. Without a limit on every wait, a client that \
         is slow or stalls (or an attacker doing it on purpose, as in Slowloris) holds a \
         connection forever. The demo server bounds each wait with tailguard: a read deadline \
         on the connection for the head ({}), a timeout per body chunk ({}) and one deadline \
         for the whole body ({}). Four clients at once, one of them well-behaved:",
        ms(config.header_read),
        ms(config.body_idle),
        ms(config.body_total)
    ));
    let cases = timeouts::run(rt)?;
    out.table(&timeouts::table(&cases));
    out.note(&timeouts::summary(&cases));
    Ok(())
}

fn section_shutdown(out: &Out, rt: &Runtime) -> Result<(), ExperimentError> {
    out.para(
        "Stopping a server should lose no request it accepted, and still end in bounded time. \
         On shutdown the demo server stops accepting at once, lets the requests in flight \
         finish, and closes what is left at its deadline (tailguard's Shutdown and \
         TaskTracker). Here three 600 ms requests and one 5 s request are in flight when the \
         shutdown begins, and a new client arrives 50 ms later:",
    );
    let run = shutdown::run(rt)?;
    out.table(&shutdown::table(&run));
    out.note(&format!(
        "{} of {} requests in flight finished normally; the new connection was {}; the one \
         that needed 5 s {}; the server was done {} after the shutdown began (deadline {}{}).",
        run.short
            .iter()
            .filter(|(seen, _)| matches!(seen, raw::Seen::Response(200, _)))
            .count(),
        run.short.len(),
        if run.late.0 == raw::Seen::Refused {
            "refused"
        } else {
            "not refused (unexpected)"
        },
        match &run.long.0 {
            raw::Seen::Response(200, _) => format!("finished (after {})", ms(run.long.1)),
            seen if run.long.1 + Duration::from_millis(250) >= run.deadline => format!(
                "was cut at the deadline ({} after {})",
                seen.brief(),
                ms(run.long.1)
            ),
            seen => format!(
                "ended before the deadline ({} after {})",
                seen.brief(),
                ms(run.long.1)
            ),
        },
        ms(run.stopped_after),
        ms(run.deadline),
        if run.stopped_after <= run.deadline + Duration::from_millis(250) {
            ""
        } else {
            ": later than it"
        }
    ));
    Ok(())
}

fn herd_config(quick: bool) -> LiveHerdConfig {
    if quick {
        LiveHerdConfig {
            warmup: Duration::from_millis(200),
            outage: Duration::from_millis(500),
            after: Duration::from_millis(1000),
            ..LiveHerdConfig::short()
        }
    } else {
        LiveHerdConfig::short()
    }
}

fn section_herd(out: &Out, rt: &Runtime, quick: bool) -> Result<(), ExperimentError> {
    let config = herd_config(quick);
    out.para(&format!(
        "When a backend comes back from an outage, every client that has been retrying \
         arrives at once: a thundering herd that can knock it over again. Requests arrive at \
         {}/s at a backend that serves {} calls at a time ({:.0} calls/s); it refuses \
         connections for {}. Clients that retry on a fixed schedule with no limit pile up \
         during the outage and meet the returning backend with several times its capacity. \
         Clients with full jitter and a retry budget (retries at most {:.0}% of requests) \
         fail fast during the outage instead, and leave the backend room to recover:",
        config.rate,
        config.capacity,
        config.capacity as f64 / config.service.as_secs_f64(),
        ms(config.outage),
        config.budget_ratio * 100.0
    ));
    let report = rt.block_on(crate::herd::live::run(rt.executor(), &config, |_| {}))?;
    out.table(&herd_table(&config, &report));
    let mut note = format!(
        "Recovery: until every {} window had at least {:.0}% of its calls succeed. Wasted \
         calls: turned away with 503, or refused. Requests ok + failed + cut = all requests \
         ({} each): cut ones were still retrying when the run ended. Latency after the return: \
         of the requests that arrived after the backend came back. ",
        ms(config.window),
        config.high * 100.0,
        report.runs.first().map_or(0, |r| r.requests)
    );
    note.push_str(&crate::herd::summary::live_sentences(&report, &config).join(" "));
    out.note(&note);
    Ok(())
}

fn herd_table(config: &LiveHerdConfig, report: &LiveHerdReport) -> Table {
    let mut table = Table::new([
        "clients",
        "recovery",
        "wasted calls",
        "503 / refused",
        "requests ok / failed / cut",
        "p50 after return",
        "p90",
        "p99",
    ]);
    let cell = |v: Option<f64>, n: u64| {
        v.map_or_else(|| percentile::not_available(n), |v| format!("{v:.0} ms"))
    };
    for run in &report.runs {
        table.row([
            run.mode.describe(config),
            run.recovery_ms.map_or_else(
                || format!("> {}", ms(config.after)),
                |r| format!("{r:.0} ms"),
            ),
            run.wasted_calls.to_string(),
            format!("{} / {}", run.rejected, run.refused),
            format!(
                "{} / {} / {}",
                run.requests_ok, run.requests_failed, run.requests_cut
            ),
            cell(run.after_p50_ms, run.after_samples),
            cell(run.after_p90_ms, run.after_samples),
            cell(run.after_p99_ms, run.after_samples),
        ]);
    }
    table
}

fn section_breaker(out: &Out, rt: &Runtime, quick: bool) -> Result<(), ExperimentError> {
    let plan = breaker::BreakerPlan::new(quick);
    let settings = crate::gateway::BreakerSettings::default();
    out.para(&format!(
        "A circuit breaker stops calling a replica that keeps failing, so calls go elsewhere \
         at once instead of failing first, and it lets a probe through now and then to notice \
         the replica's return. The gateway keeps one breaker per replica: it opens at {:.0}% \
         failures over the last {} calls, stays open {}, then lets {} probe calls through. \
         Fan-outs of {} keys over {} replicas at {}/s; replica {} is down from {} to {}. \
         Hedging is off here, so the breaker alone steers traffic (a failed call is retried \
         on the next replica):",
        settings.failure_rate * 100.0,
        settings.window,
        ms(plan.open_duration),
        settings.half_open_calls,
        breaker::KEYS,
        breaker::REPLICAS,
        plan.rate,
        breaker::DOWN,
        secs(plan.healthy),
        secs(plan.healthy + plan.down)
    ));
    let rows = breaker::run(rt, plan)?;
    out.table(&breaker::table(&rows));
    out.note(&breaker::summary(&rows));
    Ok(())
}

/// Rounds of the hedging section: each runs the three modes on a stall schedule of its own.
fn hedging_rounds(quick: bool) -> usize {
    if quick {
        2
    } else {
        3
    }
}

/// One round of the hedging section. Fixed and adaptive hedging share one budget (2 % extra
/// calls), so they are compared at (nearly) equal extra load; each round is long enough for p90
/// (100 samples per mode), not for p99 (1,000).
fn hedging_config(quick: bool) -> LiveConfig {
    let defaults = LiveConfig::default();
    let shared = LiveConfig {
        rate: 150.0,
        equal_budget: true,
        budget_ratio: 0.02,
        ..defaults
    };
    if quick {
        // Stalls twice as often, so that a run this short meets some.
        LiveConfig {
            duration: Duration::from_millis(750),
            stalls: crate::backend::Stalls {
                every: Duration::from_secs(1),
                ..defaults.stalls
            },
            ..shared
        }
    } else {
        LiveConfig {
            duration: Duration::from_millis(900),
            ..shared
        }
    }
}

fn section_hedging(out: &Out, rt: &Runtime, quick: bool) -> Result<(), ExperimentError> {
    let config = hedging_config(quick);
    let rounds = hedging_rounds(quick);
    out.para(&format!(
        "A request that reads from many replicas is as slow as its slowest read, so rare \
         stalls of single replicas (a garbage collection, a noisy neighbour) become common \
         for whole requests. Hedging sends a slow read again to another replica and takes \
         the first answer. {} replicas, each stalling about {} every {}; fan-outs of {} keys \
         at {}/s through the gateway over HTTP. Fixed hedging waits {}; adaptive hedging waits \
         for the p{:.0} of recent calls; both may send at most {:.0}% extra calls, so they are \
         compared at equal cost. One run varies a lot from the next, so the three modes run \
         {} rounds of {} each, every round on a stall schedule of its own (all modes of a \
         round meet the same stalls): the table gives the median and range over the rounds.",
        config.replicas,
        ms(config.stalls.length),
        secs(config.stalls.every),
        config.keys,
        config.rate,
        ms(config.fixed_delay),
        config.adaptive_percentile * 100.0,
        config.budget_ratio * 100.0,
        rounds,
        secs(config.duration)
    ));
    let mut runs = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let config = LiveConfig {
            seed: config.seed.wrapping_add(round as u64),
            ..config.clone()
        };
        runs.push(rt.block_on(crate::tail_at_scale::live::run(
            rt.executor(),
            &config,
            |_| {},
        ))?);
    }
    let measured: Vec<Measured> = runs.iter().map(|r| Measured::live(r)).collect();
    let repeated = repeat::aggregate(&measured).expect("at least one round");
    out.table(&hedging_table(&repeated));
    let path = std::env::temp_dir().join("tailguard-tour-hedging.svg");
    let pooled = crate::tail_at_scale::pool(&runs);
    let plot = crate::tail_at_scale::write_plot(&config, &pooled, &path);
    let mut note = repeated.sentences().join(" ");
    if !quick {
        note.push_str(
            " For p99 and a firmer answer: `tailguard-demo tail-at-scale --repeat 5 \
             --equal-budget`.",
        );
    }
    match plot {
        Ok(()) => {
            let _ = write!(
                note,
                " Latency CDF of the three modes, rounds pooled: {}",
                path.display()
            );
        }
        Err(error) => {
            let _ = write!(note, " (The plot could not be written: {error})");
        }
    }
    out.note(&note);
    Ok(())
}

/// The rounds' table: the percentiles some round supports, as median [min-max], and how many
/// rounds each mode was lowest in.
fn hedging_table(repeated: &repeat::Repeated) -> Table {
    let shown: Vec<usize> = (0..repeated.percentiles.len())
        .filter(|&p| repeated.rows.iter().any(|r| r.values[p].is_some()))
        .collect();
    let labels: Vec<String> = shown
        .iter()
        .map(|&p| percentile::label(repeated.percentiles[p]))
        .collect();
    let mut header = vec!["hedging".to_string()];
    header.extend(labels.iter().cloned());
    header.push("extra calls".into());
    header.push(format!("lowest in ({})", labels.join(" / ")));
    let mut table = Table::new(header);
    for r in &repeated.rows {
        let name = match r.mode {
            Mode::None => "none".to_string(),
            Mode::Fixed | Mode::Adaptive => format!("{} ({})", r.mode.name(), r.setting),
        };
        let mut row = vec![name];
        row.extend(shown.iter().map(|&p| {
            r.values[p].map_or_else(
                || percentile::not_available(r.samples),
                |s| format!("{:.1} ms [{:.1}-{:.1}]", s.median, s.min, s.max),
            )
        }));
        row.push(format!("{:.1}%", r.extra.median));
        let wins: Vec<String> = shown.iter().map(|&p| r.wins[p].to_string()).collect();
        row.push(format!("{} of {}", wins.join(" / "), repeated.runs));
        table.row(row);
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_short() {
        assert_eq!(ms(Duration::from_micros(300)), "0.3 ms");
        assert_eq!(ms(Duration::from_millis(501)), "501 ms");
        assert_eq!(secs(Duration::from_millis(250)), "0.25s");
        assert_eq!(secs(Duration::from_millis(1500)), "1.5s");
        assert_eq!(secs(Duration::from_secs(2)), "2s");
        assert_eq!(secs(Duration::ZERO), "0s");
    }

    #[test]
    fn the_tour_settings_are_valid() {
        for quick in [false, true] {
            assert!(herd_config(quick).validate().is_ok());
            assert!(hedging_config(quick).validate().is_ok());
        }
        assert!(timeouts::config().validate().is_ok());
    }
}
