use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use futures_core::Stream;
use futures_util::stream::FuturesUnordered;

use super::indexed::Indexed;
use crate::time::Timer;
use crate::timeout::{Deadline, Elapsed};

/// Runs every future concurrently until all finish or `deadline` passes, on the
/// [`DefaultTimer`](crate::time::DefaultTimer). See [`scatter_gather_with`].
#[cfg(any(feature = "async-io", feature = "futures-timer"))]
pub fn scatter_gather<I>(
    futures: I,
    deadline: impl Into<Deadline>,
) -> ScatterGather<<I::Item as IntoFuture>::IntoFuture, crate::time::DefaultTimer>
where
    I: IntoIterator,
    I::Item: IntoFuture,
{
    scatter_gather_with(crate::time::DefaultTimer::default(), futures, deadline)
}

/// Runs every future concurrently until all finish or `deadline` passes, on `timer`.
///
/// Resolves to one result per future, in the order given: `Ok(output)` for those that finished
/// in time, `Err(Elapsed)` for the rest, which are dropped (cancelled) at the deadline. Partial
/// results are the point: a search that gets 97 of 100 shards in time answers with 97.
///
/// The futures are polled before the clock is read, so a set that is all ready on the first
/// poll never touches the timer, and an output that is ready at the deadline counts. Dropping
/// the returned future drops every future still running.
///
/// ```
/// use std::time::Duration;
/// use tailguard::fanout::scatter_gather_with;
/// use tailguard::time::{ManualTimer, Timer};
/// use tailguard::timeout::Deadline;
///
/// let timer = ManualTimer::new();
/// let shard = |ms: u64| {
///     let timer = timer.clone();
///     async move {
///         timer.sleep(Duration::from_millis(ms)).await;
///         ms
///     }
/// };
/// let deadline = Deadline::after_with(timer.clone(), Duration::from_millis(50));
/// let results = timer.block_on(scatter_gather_with(
///     timer.clone(),
///     [shard(10), shard(900), shard(40)],
///     deadline,
/// ));
/// assert_eq!(results[0], Ok(10));
/// assert!(results[1].is_err()); // still running at 50 ms: cancelled
/// assert_eq!(results[2], Ok(40));
/// assert_eq!(timer.elapsed(), Duration::from_millis(50));
/// ```
pub fn scatter_gather_with<T, I>(
    timer: T,
    futures: I,
    deadline: impl Into<Deadline>,
) -> ScatterGather<<I::Item as IntoFuture>::IntoFuture, T>
where
    T: Timer,
    I: IntoIterator,
    I::Item: IntoFuture,
{
    let running: FuturesUnordered<_> = futures
        .into_iter()
        .enumerate()
        .map(|(i, f)| Indexed::new(i, f.into_future()))
        .collect();
    let mut results = Vec::with_capacity(running.len());
    results.resize_with(running.len(), || None);
    ScatterGather {
        running,
        results,
        timer,
        deadline: deadline.into().instant(),
        sleep: None,
        done: false,
    }
}

/// The future of [`scatter_gather_with`]: one `Result<output, Elapsed>` per input, in order.
#[must_use = "futures do nothing unless polled"]
pub struct ScatterGather<F: Future, T: Timer> {
    running: FuturesUnordered<Indexed<F>>,
    results: Vec<Option<F::Output>>,
    timer: T,
    deadline: Instant,
    sleep: Option<T::Sleep>,
    done: bool,
}

impl<F: Future, T: Timer> ScatterGather<F, T> {
    /// How many futures are still running.
    pub fn running(&self) -> usize {
        self.running.len()
    }

    fn collect(&mut self) -> Vec<Result<F::Output, Elapsed>> {
        self.done = true;
        self.running.clear();
        self.sleep = None;
        std::mem::take(&mut self.results)
            .into_iter()
            .map(|slot| slot.ok_or(Elapsed::new()))
            .collect()
    }
}

// Nothing inside is ever pinned in place (the futures live in `FuturesUnordered`, which pins
// them itself), so moving the combinator is fine whatever the outputs are.
impl<F: Future, T: Timer> Unpin for ScatterGather<F, T> {}

impl<F: Future, T: Timer> Future for ScatterGather<F, T> {
    type Output = Vec<Result<F::Output, Elapsed>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        assert!(!this.done, "`ScatterGather` polled after completion");
        loop {
            match Pin::new(&mut this.running).poll_next(cx) {
                Poll::Ready(Some((index, output))) => this.results[index] = Some(output),
                Poll::Ready(None) => return Poll::Ready(this.collect()),
                Poll::Pending => break,
            }
        }
        let (timer, deadline) = (&this.timer, this.deadline);
        let sleep = this
            .sleep
            .get_or_insert_with(|| timer.sleep_until(deadline));
        match Pin::new(sleep).poll(cx) {
            Poll::Ready(_) => Poll::Ready(this.collect()),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<F: Future, T: Timer> fmt::Debug for ScatterGather<F, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScatterGather")
            .field("total", &self.results.len())
            .field("running", &self.running.len())
            .field("deadline", &self.deadline)
            .finish()
    }
}
