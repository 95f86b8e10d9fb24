//! The live modes interleaved request by request over the same minutes, so that a busy
//! moment of a shared machine lands on every mode alike.
//!
//! Run one after the other, each mode had the machine to itself for its own `duration`: on a
//! shared 2-core machine the deep tail then measured whatever else ran during that mode's
//! minutes (tied vs adaptive p99.9 went from 0.88× to 4.65× across four runs of the same
//! command). Interleaved, [`run_until`] starts every mode's replicas, gateway and load at
//! once, and the load generators take turns: with N modes each sends at `rate / N`, mode i
//! offset by i / `rate`, so fan-out k of the whole run goes to mode k mod N. Every mode gets
//! the `rate × duration` fan-outs a sequential run gives it, the machine sees `rate` fan-outs
//! per second throughout (as before), and the run takes N × `duration` (as before).
//!
//! **Why request by request, and why each mode has its own replicas.** Alternating slices of
//! a second or two would still give a mode a stall-free or CPU-starved slice the others did
//! not get; round-robin per request exposes every mode to the same moments, down to a few
//! milliseconds. Sharing the replicas between modes would let one mode's hedges queue behind
//! (and load) another's calls, and would mix up the replicas' counts of calls, started work
//! and cancels, which `extra_pct` and `duplicate_work_pct` are made of. So each mode gets
//! replicas of its own with the same seed, all started back to back before any gateway: a
//! replica's stalls are a function of the seed and the time since it started, so every mode's
//! replica `r` stalls at the same moments (within the milliseconds the starts take). What the
//! modes still share is what they should be compared under: the machine's CPU and the moments
//! of its load.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures_lite::future;
use tailguard::shutdown::Shutdown;

use super::live::{LiveConfig, LiveModeReport, Running};
use super::sim::Mode;
use crate::backend::Backends;
use crate::experiment::ExperimentError;
use crate::load;
use crate::rt::Exec;

/// The timeline's resolution: each mode's answered fan-outs are counted per tenth of the run.
pub const TENTHS: usize = 10;

/// Runs the config's modes interleaved (see the [module](self)) until they finish or `stop`
/// ends. When `stop` ends first, no more requests are sent and every mode reports what it
/// measured so far (`true` in the result says so). `on_mode` is called for each mode as its
/// replicas start.
pub async fn run_until(
    ex: &Exec,
    config: &LiveConfig,
    mut on_mode: impl FnMut(Mode),
    stop: impl Future<Output = ()>,
) -> Result<(Vec<LiveModeReport>, bool), ExperimentError> {
    config.validate()?;
    // Every mode's replicas first, back to back, so that their stalls line up.
    let mut backends = Vec::with_capacity(config.modes.len());
    for &mode in &config.modes {
        on_mode(mode);
        backends.push(Backends::start(config.backend_config(), ex).await?);
    }
    let mut running = Vec::with_capacity(config.modes.len());
    for (&mode, backends) in config.modes.iter().zip(backends) {
        running.push(Running::start(ex, config, mode, backends).await?);
    }

    let stop_all = Shutdown::new();
    let start = Instant::now();
    let mut span = Duration::ZERO;
    let mut loads = Vec::with_capacity(running.len());
    for (i, mode) in running.iter().enumerate() {
        let load_config = config.interleaved_load_config(mode.url.clone());
        // Mode i's turn comes i fan-outs after mode 0's.
        let offset = Duration::from_secs_f64(i as f64 / config.rate);
        span = span.max(offset + load_config.duration);
        let (ex2, signal) = (ex.clone(), stop_all.signal());
        loads.push(ex.spawn(async move {
            smol::Timer::at(start + offset).await;
            load::run_until(&ex2, &load_config, signal).await
        }));
    }

    let marks = Mutex::new(Vec::with_capacity(TENTHS));
    let interrupted = AtomicBool::new(false);
    let sample = async {
        for k in 1..=TENTHS {
            let at = start + span.mul_f64(k as f64 / TENTHS as f64);
            let ended = future::or(
                async {
                    smol::Timer::at(at).await;
                    false
                },
                async {
                    stop_all.signal().await;
                    true
                },
            )
            .await;
            if ended {
                break;
            }
            let counts: Vec<u64> = running.iter().map(Running::fanouts).collect();
            marks.lock().expect("not poisoned").push(counts);
        }
    };
    let measured = async {
        let mut out = Vec::with_capacity(loads.len());
        for load in loads {
            out.push(load.await);
        }
        out
    };
    let watch = async {
        stop.await;
        interrupted.store(true, Relaxed);
        stop_all.trigger();
        std::future::pending::<(Vec<_>, ())>().await
    };
    let (results, ()) = future::or(future::zip(measured, sample), watch).await;

    let marks = marks.into_inner().expect("not poisoned");
    let mut reports = Vec::with_capacity(running.len());
    for (i, (mode, load)) in running.into_iter().zip(results).enumerate() {
        let mut report = mode.finish(config, load).await?;
        report.timeline = timeline(&marks, i);
        reports.push(report);
    }
    Ok((reports, interrupted.load(Relaxed)))
}

/// Mode `i`'s fan-outs per tenth, from every mode's running counts at the end of each tenth.
fn timeline(marks: &[Vec<u64>], i: usize) -> Vec<u64> {
    let mut before = 0;
    marks
        .iter()
        .map(|counts| {
            let now = counts[i];
            let during = now.saturating_sub(before);
            before = now;
            during
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timeline_counts_each_tenth_from_running_totals() {
        let marks = vec![vec![3, 5], vec![7, 9], vec![7, 12]];
        assert_eq!(timeline(&marks, 0), vec![3, 4, 0]);
        assert_eq!(timeline(&marks, 1), vec![5, 4, 3]);
        assert!(timeline(&[], 0).is_empty());
    }

    #[test]
    fn an_interleaved_mode_sends_what_a_sequential_one_does_at_a_share_of_the_rate() {
        for (rate, secs, modes) in [(250.0, 5, 5), (250.0, 5, 3), (100.0, 100, 2), (7.0, 3, 3)] {
            let config = LiveConfig {
                rate,
                duration: Duration::from_secs(secs),
                modes: Mode::ALL[..modes].to_vec(),
                ..LiveConfig::default()
            };
            let url = "http://127.0.0.1:1/".to_string();
            let one = config.interleaved_load_config(url);
            assert_eq!(one.requests(), (rate * secs as f64) as u64, "{one:?}");
            assert_eq!(one.rate, rate / modes as f64);
            let expected = secs as f64 * modes as f64;
            assert!((one.duration.as_secs_f64() - expected).abs() < 1.0 / one.rate);
        }
    }
}
