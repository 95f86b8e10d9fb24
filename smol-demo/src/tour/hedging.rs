//! Tour section 5: hedging against stalls. The live
//! [`tail-at-scale`](crate::tail_at_scale::live), short, in rounds, with fixed and adaptive
//! hedging at one budget.

use std::fmt::Write as _;
use std::time::Duration;

use super::out::{Out, Table};
use super::secs;
use crate::experiment::ExperimentError;
use crate::ms;
use crate::percentile;
use crate::rt::Runtime;
use crate::tail_at_scale::live::LiveConfig;
use crate::tail_at_scale::measured::Measured;
use crate::tail_at_scale::repeat;
use crate::tail_at_scale::sim::Mode;

/// Rounds of the hedging section: each runs every mode on a stall schedule of its own.
fn rounds(quick: bool) -> usize {
    if quick {
        2
    } else {
        3
    }
}

/// One round of the hedging section. Fixed and adaptive hedging share one budget (2 % extra
/// calls), so they are compared at (nearly) equal extra load; each round is long enough for p90
/// (100 samples per mode), not for p99 (1,000).
fn config(quick: bool) -> LiveConfig {
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

/// The section: why stalls make a tail, the rounds' table, the plot, and what they show.
pub fn section(out: &Out, rt: &Runtime, quick: bool) -> Result<(), ExperimentError> {
    let config = config(quick);
    let rounds = rounds(quick);
    out.para(&format!(
        "A request that reads from many replicas is as slow as its slowest read, so rare \
         stalls of single replicas (a garbage collection, a noisy neighbour) become common \
         for whole requests. Hedging sends a slow read again to another replica and takes \
         the first answer; tied requests send every read to two replicas at once (the second \
         copy 1 ms later), each copy naming its twin, and the replica that starts one cancels \
         the other in its twin's queue over HTTP (a copy that started and then stalls, its twin \
         already cancelled, is backed up on a third replica 10 ms later). {} replicas, each stalling about {} every \
         {}; fan-outs of {} keys \
         at {}/s through the gateway over HTTP. Fixed hedging waits {}; adaptive hedging waits \
         for the p{:.0} of recent calls (never earlier than the budget pays for: the percentile \
         that as many calls cross as it pays hedges for), and a hedge refused at that point \
         comes back at twice the delay, when only the calls stuck in a stall are still out; p2c adds least-loaded \
         replica choice and sends hedges only to healthy replicas not running the call. Fixed, \
         adaptive and p2c may send at most {:.0}% extra calls, so they are compared at equal \
         cost (tied sends a second copy of every read, most cancelled before they start). One run varies a lot from the next, so every mode runs \
         {} rounds of {} each, every round on a stall schedule of its own (all modes of a \
         round meet the same stalls, and run interleaved request by request over the same \
         seconds, so a busy moment of the machine lands on every mode alike): the table \
         gives the median and range over the rounds.",
        config.replicas,
        ms::text(config.stalls.length),
        secs(config.stalls.every),
        config.keys,
        config.rate,
        ms::text(config.fixed_delay),
        config.adaptive_percentile.max(1.0 - config.budget_ratio) * 100.0,
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
    out.table(&table(&repeated));
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
                " Latency CDF of every mode, rounds pooled: {}",
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
fn table(repeated: &repeat::Repeated) -> Table {
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
            Mode::Fixed | Mode::Adaptive | Mode::P2c | Mode::Tied => {
                format!("{} ({})", r.mode.name(), r.setting)
            }
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
    fn the_settings_are_valid() {
        for quick in [false, true] {
            assert!(config(quick).validate().is_ok());
        }
    }
}
