use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::{Stream, TryFuture};
use futures_util::stream::FuturesUnordered;

use super::indexed::IndexedTry;

/// Runs every future concurrently and resolves to the first success, dropping the others.
///
/// If every future fails, resolves to [`AllFailed`] with every error, in the order the futures
/// were given. An empty input fails at once with no errors. Dropping the returned future drops
/// every future still running.
///
/// ```
/// use tailguard::fanout::first_ok;
///
/// # futures::executor::block_on(async {
/// let replicas = vec![
///     futures::future::ready(Err("replica 0 down")),
///     futures::future::ready(Ok("from replica 1")),
/// ];
/// assert_eq!(first_ok(replicas).await, Ok("from replica 1"));
/// # });
/// ```
pub fn first_ok<I>(futures: I) -> FirstOk<<I::Item as IntoFuture>::IntoFuture>
where
    I: IntoIterator,
    I::Item: IntoFuture,
    <I::Item as IntoFuture>::IntoFuture: TryFuture,
{
    let running: FuturesUnordered<_> = futures
        .into_iter()
        .enumerate()
        .map(|(i, f)| IndexedTry::new(i, f.into_future()))
        .collect();
    let mut errors = Vec::new();
    errors.resize_with(running.len(), || None);
    FirstOk {
        running,
        errors,
        done: false,
    }
}

/// The future of [`first_ok`].
#[must_use = "futures do nothing unless polled"]
pub struct FirstOk<F: TryFuture> {
    running: FuturesUnordered<IndexedTry<F>>,
    errors: Vec<Option<F::Error>>,
    done: bool,
}

// Nothing inside is ever pinned in place (the futures live in `FuturesUnordered`, which pins
// them itself), so moving the combinator is fine whatever the outputs are.
impl<F: TryFuture> Unpin for FirstOk<F> {}

impl<F: TryFuture> Future for FirstOk<F> {
    type Output = Result<F::Ok, AllFailed<F::Error>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        assert!(!this.done, "`FirstOk` polled after completion");
        loop {
            match Pin::new(&mut this.running).poll_next(cx) {
                Poll::Ready(Some((_, Ok(output)))) => {
                    this.done = true;
                    this.running.clear();
                    return Poll::Ready(Ok(output));
                }
                Poll::Ready(Some((index, Err(error)))) => this.errors[index] = Some(error),
                Poll::Ready(None) => {
                    this.done = true;
                    let errors = std::mem::take(&mut this.errors).into_iter().flatten();
                    return Poll::Ready(Err(AllFailed {
                        errors: errors.collect(),
                    }));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<F: TryFuture> fmt::Debug for FirstOk<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FirstOk")
            .field("total", &self.errors.len())
            .field("running", &self.running.len())
            .finish()
    }
}

/// Every future given to [`first_ok`] failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllFailed<E> {
    errors: Vec<E>,
}

impl<E> AllFailed<E> {
    /// The errors, in the order the futures were given (empty if none were).
    pub fn errors(&self) -> &[E] {
        &self.errors
    }

    /// The errors, owned.
    pub fn into_errors(self) -> Vec<E> {
        self.errors
    }
}

impl<E: fmt::Display> fmt::Display for AllFailed<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.errors.first() {
            None => f.write_str("no calls were given, so none succeeded"),
            Some(first) => write!(
                f,
                "all {} calls failed (no replica could answer); first error: {first}",
                self.errors.len()
            ),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for AllFailed<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.errors
            .first()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}
