//! An open loop on the calling task: for experiments whose requests need not be `Send`.

use std::future::Future;
use std::time::{Duration, Instant};

use futures_lite::future;
use futures_util::stream::{FuturesUnordered, StreamExt};
use tailguard::timeout::timeout_until;

/// What [`open_loop`] got back.
pub(crate) struct Finished<T> {
    /// The outputs, in the order the futures finished.
    pub(crate) outputs: Vec<T>,
    /// Futures still running when the grace ran out (dropped, so cancelled).
    pub(crate) cut: u64,
}

/// Starts `start(i)` for `i` in `0..total` at `origin + i / rate`, whatever happened before (an
/// open loop: a slow server does not slow the arrivals), and polls them all on this task. Once
/// the last has started, waits for the rest: all of them, or with a `grace`, until `grace` after
/// the last due time (or now, if later) and cuts what is still running.
pub(crate) async fn open_loop<Fut: Future>(
    origin: Instant,
    rate: f64,
    total: u64,
    grace: Option<Duration>,
    mut start: impl FnMut(u64) -> Fut,
) -> Finished<Fut::Output> {
    let due = |i: u64| origin + Duration::from_secs_f64(i as f64 / rate);
    let mut in_flight = FuturesUnordered::new();
    let mut outputs = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    let mut next = 0;
    while next < total {
        // Start everything due by now: after a late wake-up, several at once.
        let now = Instant::now();
        while next < total && due(next) <= now {
            in_flight.push(start(next));
            next += 1;
        }
        if next == total {
            break;
        }
        let wake = smol::Timer::at(due(next));
        if in_flight.is_empty() {
            wake.await;
        } else {
            let finished = future::or(in_flight.next(), async {
                wake.await;
                None
            })
            .await;
            outputs.extend(finished);
        }
    }
    let rest = async {
        while let Some(output) = in_flight.next().await {
            outputs.push(output);
        }
    };
    match grace {
        None => rest.await,
        Some(grace) => {
            let _ = timeout_until(Instant::now().max(due(total)) + grace, rest).await;
        }
    }
    Finished {
        cut: in_flight.len() as u64,
        outputs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrivals_keep_their_schedule_and_the_grace_cuts_the_rest() {
        smol::block_on(async {
            let origin = Instant::now();
            // 10 arrivals 5 ms apart; the last one never ends.
            let finished = open_loop(
                origin,
                200.0,
                10,
                Some(Duration::from_millis(50)),
                |i| async move {
                    if i == 9 {
                        future::pending::<()>().await;
                    }
                    (i, origin.elapsed())
                },
            )
            .await;
            assert_eq!((finished.outputs.len(), finished.cut), (9, 1));
            for (i, started) in finished.outputs {
                assert!(started >= Duration::from_millis(5 * i), "{i}: {started:?}");
            }
            assert!(origin.elapsed() >= Duration::from_millis(45 + 50));
        });
    }

    #[test]
    fn without_a_grace_every_future_finishes() {
        smol::block_on(async {
            let finished = open_loop(Instant::now(), 1000.0, 20, None, |i| async move {
                smol::Timer::after(Duration::from_millis(20 - i)).await;
                i
            })
            .await;
            assert_eq!(finished.cut, 0);
            let mut outputs = finished.outputs;
            outputs.sort_unstable();
            assert_eq!(outputs, (0..20).collect::<Vec<_>>());
        });
    }
}
