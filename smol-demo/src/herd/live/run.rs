//! Running the live herd: a fresh backend per mode, the open-loop requests under the mode's
//! retry policy, and the measurements drawn from every call.

use std::sync::Mutex;
use std::time::Duration;

use tailguard::latency::LatencyHistogram;
use tailguard::retry::GaveUp;
use tailguard::timeout::timeout;

use super::config::{HerdMode, LiveHerdConfig};
use super::report::{HerdRun, LiveHerdReport, Window};
use crate::backend::Backends;
use crate::client::{ClientConfig, Pool};
use crate::experiment::ExperimentError;
use crate::load::open_loop::open_loop;
use crate::percentile;
use crate::rt::Exec;

/// How one call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CallOutcome {
    Ok,
    /// `503`: over capacity.
    Rejected,
    /// Connection refused: the backend was down.
    Refused,
    /// Anything else: another status, a broken connection, a timeout.
    Other,
}

/// Runs both modes in turn on `ex`. `on_mode` is called before each mode starts.
pub async fn run(
    ex: &Exec,
    config: &LiveHerdConfig,
    mut on_mode: impl FnMut(HerdMode),
) -> Result<LiveHerdReport, ExperimentError> {
    config.validate()?;
    let mut runs = Vec::with_capacity(HerdMode::ALL.len());
    for mode in HerdMode::ALL {
        on_mode(mode);
        runs.push(run_mode(ex, config, mode).await?);
    }
    Ok(LiveHerdReport { runs })
}

/// How one request ended, and when it was due and done (since the origin).
struct RequestOutcome {
    result: Result<(), GaveUp>,
    due: Duration,
    done: Duration,
}

/// Runs one mode: a fresh backend, the requests, the measurements.
pub async fn run_mode(
    ex: &Exec,
    config: &LiveHerdConfig,
    mode: HerdMode,
) -> Result<HerdRun, ExperimentError> {
    let policy = config.policy(mode)?;
    let backends = Backends::start(config.backend_config(), ex).await?;
    let origin = backends.origin();
    let pool = Pool::new(
        backends.addrs()[0],
        ClientConfig {
            connect_timeout: config.call_timeout,
            max_idle: 4 * config.capacity,
        },
        ex.clone(),
    );
    let calls: Mutex<Vec<(Duration, CallOutcome)>> = Mutex::new(Vec::new());
    let record = |outcome: CallOutcome| {
        let at = origin.elapsed();
        calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((at, outcome));
    };
    let one_request = || {
        policy.run(|| async {
            let outcome = match timeout(config.call_timeout, pool.get("/herd")).await {
                Ok(Ok(reply)) if reply.status.is_success() => CallOutcome::Ok,
                Ok(Ok(reply)) if reply.status.as_u16() == 503 => CallOutcome::Rejected,
                Ok(Err(error)) if error.is_connect() => CallOutcome::Refused,
                _ => CallOutcome::Other,
            };
            record(outcome);
            match outcome {
                CallOutcome::Ok => Ok(()),
                failed => Err(failed),
            }
        })
    };

    // Open loop: request i is due at origin + i / rate, whatever happened before. A short
    // grace for the last requests; whatever still retries then is cut (cancelled).
    let grace = config.service * 2 + Duration::from_millis(100);
    let finished = open_loop(origin, config.rate, config.requests(), Some(grace), |i| {
        let due = Duration::from_secs_f64(i as f64 / config.rate);
        let request = one_request();
        async move {
            let result = request.await.map_err(|e| e.reason());
            RequestOutcome {
                result,
                due,
                done: origin.elapsed(),
            }
        }
    })
    .await;
    backends.stop().await;

    let calls = calls.into_inner().unwrap_or_else(|e| e.into_inner());
    Ok(summarize(
        config,
        mode,
        config.requests(),
        finished.cut,
        &finished.outputs,
        &calls,
    ))
}

fn summarize(
    config: &LiveHerdConfig,
    mode: HerdMode,
    requests: u64,
    cut: u64,
    outcomes: &[RequestOutcome],
    calls: &[(Duration, CallOutcome)],
) -> HerdRun {
    let count = |want: CallOutcome| calls.iter().filter(|(_, o)| *o == want).count() as u64;
    let (calls_ok, rejected, refused, other_errors) = (
        count(CallOutcome::Ok),
        count(CallOutcome::Rejected),
        count(CallOutcome::Refused),
        count(CallOutcome::Other),
    );
    let requests_ok = outcomes.iter().filter(|o| o.result.is_ok()).count() as u64;
    let budget_refusals = outcomes
        .iter()
        .filter(|o| o.result == Err(GaveUp::BudgetExhausted))
        .count() as u64;
    let timeline = timeline(config, calls);
    let back = config.warmup + config.outage;
    let after = LatencyHistogram::new();
    for o in outcomes.iter().filter(|o| o.due >= back) {
        after.record(o.done.saturating_sub(o.due));
    }
    let after_ms = |q: f64| percentile::of_ms(&after, q).map(|v| (v * 1000.0).round() / 1000.0);
    HerdRun {
        mode,
        requests,
        requests_ok,
        requests_failed: outcomes.len() as u64 - requests_ok,
        budget_refusals,
        requests_cut: cut,
        calls: calls.len() as u64,
        calls_ok,
        rejected,
        refused,
        other_errors,
        wasted_calls: rejected + refused + other_errors,
        recovery_ms: recovery(config, &timeline),
        after_samples: after.count(),
        after_p50_ms: after_ms(0.5),
        after_p90_ms: after_ms(0.9),
        after_p99_ms: after_ms(0.99),
        timeline,
    }
}

/// The windows from the backend's return to the end of the arrivals.
fn timeline(config: &LiveHerdConfig, calls: &[(Duration, CallOutcome)]) -> Vec<Window> {
    let back = config.warmup + config.outage;
    let n = (config.after.as_nanos() / config.window.as_nanos().max(1)) as usize;
    let mut windows: Vec<Window> = (0..n)
        .map(|k| Window {
            from_ms: crate::ms::of(config.window * k as u32),
            calls: 0,
            ok: 0,
        })
        .collect();
    for (at, outcome) in calls {
        let Some(since) = at.checked_sub(back) else {
            continue;
        };
        let k = (since.as_nanos() / config.window.as_nanos().max(1)) as usize;
        if let Some(w) = windows.get_mut(k) {
            w.calls += 1;
            if *outcome == CallOutcome::Ok {
                w.ok += 1;
            }
        }
    }
    windows
}

/// The start of the first window from which every window stays at or above `high`.
fn recovery(config: &LiveHerdConfig, timeline: &[Window]) -> Option<f64> {
    let last_low = timeline.iter().rposition(|w| w.success() < config.high);
    let first_good = last_low.map_or(0, |k| k + 1);
    timeline.get(first_good).map(|w| w.from_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(calls: u64, ok: u64) -> Window {
        Window {
            from_ms: 0.0,
            calls,
            ok,
        }
    }

    #[test]
    fn recovery_is_the_start_of_the_last_good_stretch() {
        let config = LiveHerdConfig::default();
        let mut timeline: Vec<Window> = [
            window(10, 1),
            window(10, 10),
            window(10, 5),
            window(0, 0),
            window(10, 9),
            window(20, 20),
        ]
        .into_iter()
        .collect();
        for (k, w) in timeline.iter_mut().enumerate() {
            w.from_ms = 100.0 * k as f64;
        }
        assert_eq!(recovery(&config, &timeline), Some(300.0));
        assert_eq!(recovery(&config, &timeline[3..]), Some(300.0));
        timeline.push(window(10, 0));
        assert_eq!(recovery(&config, &timeline), None);
        assert_eq!(recovery(&config, &[]), None);
    }

    #[test]
    fn calls_land_in_windows_after_the_return() {
        let config = LiveHerdConfig::default();
        let back = config.warmup + config.outage;
        let calls = [
            (back - Duration::from_millis(1), CallOutcome::Refused),
            (back, CallOutcome::Rejected),
            (back + Duration::from_millis(150), CallOutcome::Ok),
            (
                back + config.after + Duration::from_millis(1),
                CallOutcome::Ok,
            ),
        ];
        let t = timeline(&config, &calls);
        assert_eq!(t.len(), 25);
        assert_eq!((t[0].calls, t[0].ok), (1, 0));
        assert_eq!((t[1].calls, t[1].ok), (1, 1));
        assert_eq!(t.iter().map(|w| w.calls).sum::<u64>(), 2);
    }
}
