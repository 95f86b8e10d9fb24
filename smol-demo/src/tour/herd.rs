//! Tour section 3: retry and the herd. The live [`herd`](crate::herd::live), short: clients
//! without jitter or budget against clients with full jitter and a retry budget, at a backend
//! coming back from an outage.

use std::time::Duration;

use super::out::{Out, Table};
use crate::experiment::ExperimentError;
use crate::herd::live::{LiveHerdConfig, LiveHerdReport};
use crate::ms;
use crate::percentile;
use crate::rt::Runtime;

/// The run: [`LiveHerdConfig::short`], shorter still with `quick`.
fn config(quick: bool) -> LiveHerdConfig {
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

/// The section: what the herd is, the two kinds of clients' table, and what it shows.
pub fn section(out: &Out, rt: &Runtime, quick: bool) -> Result<(), ExperimentError> {
    let config = config(quick);
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
        ms::text(config.outage),
        config.budget_ratio * 100.0
    ));
    let report = rt.block_on(crate::herd::live::run(rt.executor(), &config, |_| {}))?;
    out.table(&table(&config, &report));
    let mut note = format!(
        "Recovery: until every {} window had at least {:.0}% of its calls succeed. Wasted \
         calls: turned away with 503, or refused. Requests ok + failed + cut = all requests \
         ({} each): cut ones were still retrying when the run ended. Latency after the return: \
         of the requests that arrived after the backend came back. ",
        ms::text(config.window),
        config.high * 100.0,
        report.runs.first().map_or(0, |r| r.requests)
    );
    note.push_str(&crate::herd::summary::live_sentences(&report, &config).join(" "));
    out.note(&note);
    Ok(())
}

/// One row per kind of client.
fn table(config: &LiveHerdConfig, report: &LiveHerdReport) -> Table {
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
                || format!("> {}", ms::text(config.after)),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_settings_are_valid() {
        for quick in [false, true] {
            assert!(config(quick).validate().is_ok());
        }
    }
}
