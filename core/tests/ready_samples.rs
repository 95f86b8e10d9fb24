//! Attempts that are ready at once are recorded at their time, like every other sample: the
//! windows that learn from latency (the pipeline's prediction, its adaptive attempt timeout, an
//! adaptive hedge delay) hold the recent ones however long every attempt has been ready, and
//! forget the old ones. In virtual time.

use std::future::{ready, Future};
use std::time::Duration;

use tailguard::adaptive_timeout::AdaptiveTimeout;
use tailguard::hedge::Hedge;
use tailguard::pipeline::{Attempt, Pipeline};
use tailguard::time::{ManualTimer, Timer};

const MS: Duration = Duration::from_millis(1);
/// Every window here: one second in ten slices of 100 ms.
const WINDOW: Duration = Duration::from_secs(1);
/// A ready call every 10 ms: a full window holds 90 to 100 of them.
const EVERY: Duration = Duration::from_millis(10);

/// An operation that takes `took` of virtual time.
fn taking(
    timer: &ManualTimer,
    took: Duration,
) -> impl FnMut(Attempt) -> std::pin::Pin<Box<dyn Future<Output = Result<(), ()>>>> {
    let timer = timer.clone();
    move |_| {
        let sleep = timer.sleep(took);
        Box::pin(async move {
            sleep.await;
            Ok(())
        })
    }
}

#[test]
fn a_pipeline_whose_attempts_are_all_ready_keeps_the_recent_ones_in_its_windows() {
    let timer = ManualTimer::new();
    let adaptive = AdaptiveTimeout::builder()
        .percentile(0.5)
        .floor(100 * MS)
        .min_samples(20)
        .window(WINDOW, 10)
        .build()
        .unwrap();
    let pipeline = Pipeline::with_timer(timer.clone())
        .latency_window(WINDOW, 10)
        .predict_percentile(0.5)
        .predict_min_samples(20)
        .predict_floor(100 * MS)
        .attempt_timeout_adaptive(adaptive)
        .build()
        .unwrap();
    // One attempt that waits (recorded with the time read), then three windows' worth of calls
    // that are all ready at once.
    timer
        .block_on(pipeline.call(taking(&timer, 50 * MS)))
        .unwrap();
    for _ in 0..300 {
        timer
            .block_on(pipeline.call(|_| ready(Ok::<_, ()>(()))))
            .unwrap();
        timer.advance(EVERY);
    }
    let now = timer.now();
    let held = pipeline.latency().count_at(now);
    assert!(
        (90..=100).contains(&held),
        "the window holds {held} samples"
    );
    let adaptive = pipeline.attempt_timeout_adaptive().unwrap();
    assert_eq!(adaptive.latency().count_at(now), held);
    assert_eq!(adaptive.stats().completed, 301);
    // They are what the prediction learns from: its median, not its floor.
    assert!(pipeline.predicted_latency_at(now) < MS);

    // One slow attempt does not outweigh them.
    timer
        .block_on(pipeline.call(taking(&timer, 80 * MS)))
        .unwrap();
    let now = timer.now();
    let held = pipeline.latency().count_at(now);
    assert!(
        (80..=100).contains(&held),
        "the window holds {held} samples"
    );
    assert!(pipeline.predicted_latency_at(now) < MS);
    assert_eq!(adaptive.latency().count_at(now), held);

    // And a quiet spell longer than the window forgets them all.
    timer.advance(2 * WINDOW);
    assert_eq!(pipeline.latency().count_at(timer.now()), 0);
    assert_eq!(adaptive.latency().count_at(timer.now()), 0);
}

#[test]
fn an_adaptive_hedge_delay_learns_from_primaries_that_were_ready() {
    let timer = ManualTimer::new();
    let hedge = Hedge::builder()
        .adaptive_delay(0.5)
        .min_samples(20)
        .delay_floor(2 * MS)
        .window(WINDOW, 10)
        .unbudgeted()
        .build()
        .unwrap();
    // One primary that waits, then three windows' worth that are ready at once.
    let slow = {
        let timer = timer.clone();
        hedge.run_with(timer.clone(), move |n| {
            let sleep = timer.sleep(50 * MS);
            async move {
                sleep.await;
                Ok::<_, ()>(n)
            }
        })
    };
    assert_eq!(timer.block_on(slow), Ok(1));
    for _ in 0..300 {
        let call = hedge.run_with(timer.clone(), |n| ready(Ok::<_, ()>(n)));
        assert_eq!(timer.block_on(call), Ok(1));
        timer.advance(EVERY);
    }
    let now = timer.now();
    let held = hedge.latency().unwrap().count_at(now);
    assert!(
        (90..=100).contains(&held),
        "the window holds {held} samples"
    );
    // The median primary was ready at once: the delay is the floor, learnt from the window
    // (not "no delay yet", as for a window short of samples).
    assert_eq!(hedge.delay_at(now), Some(2 * MS));
}

#[test]
fn a_pipeline_hedge_learns_its_adaptive_delay_from_primaries_that_were_ready() {
    let timer = ManualTimer::new();
    let hedge = Hedge::builder()
        .adaptive_delay(0.5)
        .min_samples(20)
        .delay_floor(2 * MS)
        .window(WINDOW, 10)
        .unbudgeted()
        .build()
        .unwrap();
    let pipeline = Pipeline::with_timer(timer.clone())
        .hedge(hedge)
        .build()
        .unwrap();
    timer
        .block_on(pipeline.call(taking(&timer, 50 * MS)))
        .unwrap();
    for _ in 0..300 {
        timer
            .block_on(pipeline.call(|_| ready(Ok::<_, ()>(()))))
            .unwrap();
        timer.advance(EVERY);
    }
    let now = timer.now();
    let hedge = pipeline.hedge().unwrap();
    let held = hedge.latency().unwrap().count_at(now);
    assert!(
        (90..=100).contains(&held),
        "the window holds {held} samples"
    );
    assert_eq!(hedge.delay_at(now), Some(2 * MS));
}
