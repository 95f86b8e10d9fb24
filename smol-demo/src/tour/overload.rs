//! Tour section 6: overload. The [`overload`](crate::overload) experiment in virtual time: a
//! backend offered up to 4x its capacity with no limit, a fixed limit, and the adaptive limit
//! with priority shedding.

use std::time::Duration;

use super::out::{Out, Table};
use crate::experiment::ExperimentError;
use crate::overload::sim::SimConfig;
use crate::overload::{load_key, simulate, Mode};
use crate::rt::Runtime;

/// The section: what overload does to a backend, the three modes' table, and the goals.
pub fn section(out: &Out, _rt: &Runtime, quick: bool) -> Result<(), ExperimentError> {
    let config = SimConfig {
        duration: if quick {
            Duration::from_secs(3)
        } else {
            SimConfig::default().duration
        },
        ..SimConfig::default()
    };
    out.para(&format!(
        "A backend that serves {} requests at once, about {} ms each ({:.0} requests/s), is \
         offered half, once, twice and four times that, a mix of critical (10%), default (60%) \
         and sheddable (30%) requests, each with a {} ms deadline. Without a limit every request \
         queues, and past capacity the queue grows until no answer arrives in time. A fixed \
         limit at the backend's size keeps the queue short but sheds every class alike. The \
         adaptive limit learns the size from latency, and sheds sheddable work first and \
         critical work last (simulated in virtual time, {} s per load):",
        config.servers,
        config.service.as_millis(),
        config.capacity(),
        config.deadline.as_millis(),
        config.duration.as_secs()
    ));
    let report = simulate(&config);
    let mut table = Table::new([
        "mode",
        "load",
        "goodput/s",
        "p99 ms",
        "refused",
        "critical ok",
    ])
    .left_columns(1);
    for (mode, row) in Mode::ALL.iter().zip(&report.points) {
        for (load, p) in report.loads.iter().zip(row) {
            table.row([
                mode.name().to_string(),
                load_key(*load),
                format!("{:.0}", p.goodput_rps),
                p.p99_ms.map_or("n/a".into(), |v| format!("{v:.1}")),
                format!("{:.1}%", p.rejected_pct),
                format!("{:.1}%", p.critical_goodput_pct),
            ]);
        }
    }
    out.table(&table);
    let goals: Vec<String> = report
        .goals()
        .into_iter()
        .map(|(met, s)| format!("{} {s}.", if met { "Met:" } else { "Missed:" }))
        .collect();
    out.note(&format!(
        "Goodput: answers within their deadline per second. {}",
        goals.join(" ")
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_quick_section_runs_and_meets_its_goals() {
        let rt = crate::rt::Runtime::new(1.try_into().unwrap());
        super::section(&super::Out::plain(), &rt, true).unwrap();
        let config = crate::overload::sim::SimConfig {
            duration: std::time::Duration::from_secs(3),
            ..Default::default()
        };
        let report = crate::overload::simulate(&config);
        for (met, sentence) in report.goals() {
            assert!(met, "{sentence}");
        }
    }
}
