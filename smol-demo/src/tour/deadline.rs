//! Tour section 6: deadlines. The live [`deadline`](crate::deadline::live) experiment, short:
//! one retry + hedge pipeline, blind to its callers' deadlines or aware of them.

use std::time::Duration;

use super::out::{Out, Table};
use crate::deadline::live::{run_mode, LiveConfig};
use crate::deadline::{verdict, Mode, ModeReport};
use crate::experiment::ExperimentError;
use crate::ms;
use crate::rt::Runtime;

/// The section's run: callers at 100/s for a second per mode (`quick`: 0.6 s).
fn config(quick: bool) -> LiveConfig {
    LiveConfig {
        duration: Duration::from_millis(if quick { 600 } else { 1_000 }),
        ..LiveConfig::default()
    }
}

/// The section: why a deadline must travel with the call, the two modes' table, and what it
/// shows.
pub fn section(out: &Out, rt: &Runtime, quick: bool) -> Result<(), ExperimentError> {
    let config = config(quick);
    let s = &config.scenario;
    out.para(&format!(
        "A caller that waits {} to {} for an answer does not care what happens after: work \
         done for it then is work for nobody. One pipeline (tailguard::pipeline: attempts of \
         {}, {} tries, a backup after {}) calls a replica whose service time has a heavy tail \
         ({}), for callers arriving at {}/s. Blind, the pipeline never hears the deadline: it \
         retries and hedges on its own schedule after the caller has gone. Aware, the call \
         carries it: no retry or hedge starts that the pipeline's own latency window says \
         cannot finish, everything stops at the deadline, and each attempt tells the replica \
         its remaining time (the tailguard-timeout header), so it refuses work that would \
         pass it.",
        ms::text(s.caller_deadline(0.0)),
        ms::text(s.caller_deadline(1.0)),
        ms::text(s.attempt_timeout),
        s.max_attempts,
        ms::text(s.hedge_delay),
        s.latency,
        config.rate,
    ));
    let mut reports = Vec::with_capacity(Mode::ALL.len());
    for mode in Mode::ALL {
        reports.push(rt.block_on(run_mode(rt.executor(), &config, mode))?);
    }
    out.table(&table(&reports));
    if let [blind, aware] = &reports[..] {
        out.note(&format!(
            "{} For the deterministic version with 20,000 calls: `tailguard-demo deadline --sim`.",
            verdict(blind, aware)
        ));
    }
    Ok(())
}

fn table(reports: &[ModeReport]) -> Table {
    let mut table = Table::new([
        "pipeline",
        "late attempts",
        "wasted work",
        "answered in time",
        "attempts",
    ]);
    for r in reports {
        table.row([
            r.mode.to_string(),
            format!("{:.1}%", r.late_pct),
            format!("{:.1}%", r.wasted_pct),
            format!("{:.1}%", r.success_pct),
            r.attempts.to_string(),
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
