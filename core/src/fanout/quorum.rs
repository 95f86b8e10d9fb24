use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::{Stream, TryFuture};
use futures_util::stream::FuturesUnordered;

use super::indexed::IndexedTry;

/// Runs every future concurrently until `k` have succeeded, then drops the rest.
///
/// Resolves to the `k` outputs in the order they arrived. Fails with [`QuorumError`] as soon as
/// `k` successes are out of reach (too many failures), without waiting for the stragglers; the
/// error keeps the successes and errors seen so far. `k == 0` succeeds at once and `k` larger
/// than the number of futures fails at once, both without polling anything. Dropping the
/// returned future drops every future still running.
///
/// ```
/// use futures::future::ready;
/// use tailguard::fanout::quorum;
///
/// # futures::executor::block_on(async {
/// let writes = vec![ready(Ok(1)), ready(Err("disk full")), ready(Ok(3))];
/// assert_eq!(quorum(2, writes).await, Ok(vec![1, 3]));
///
/// let writes = vec![ready(Err("down")), ready(Err("down")), ready(Ok(3))];
/// let err = quorum(2, writes).await.unwrap_err();
/// assert_eq!(err.errors(), &["down", "down"]);
/// # });
/// ```
pub fn quorum<I>(k: usize, futures: I) -> Quorum<<I::Item as IntoFuture>::IntoFuture>
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
    Quorum {
        required: k,
        total: running.len(),
        running,
        successes: Vec::new(),
        errors: Vec::new(),
        done: false,
    }
}

/// The future of [`quorum`].
#[must_use = "futures do nothing unless polled"]
pub struct Quorum<F: TryFuture> {
    required: usize,
    total: usize,
    running: FuturesUnordered<IndexedTry<F>>,
    successes: Vec<F::Ok>,
    errors: Vec<F::Error>,
    done: bool,
}

impl<F: TryFuture> Quorum<F> {
    fn fail(&mut self) -> QuorumError<F::Ok, F::Error> {
        self.done = true;
        self.running.clear();
        QuorumError {
            required: self.required,
            total: self.total,
            successes: std::mem::take(&mut self.successes),
            errors: std::mem::take(&mut self.errors),
        }
    }
}

// Nothing inside is ever pinned in place (the futures live in `FuturesUnordered`, which pins
// them itself), so moving the combinator is fine whatever the outputs are.
impl<F: TryFuture> Unpin for Quorum<F> {}

impl<F: TryFuture> Future for Quorum<F> {
    type Output = Result<Vec<F::Ok>, QuorumError<F::Ok, F::Error>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        assert!(!this.done, "`Quorum` polled after completion");
        loop {
            if this.successes.len() >= this.required {
                this.done = true;
                this.running.clear();
                return Poll::Ready(Ok(std::mem::take(&mut this.successes)));
            }
            if this.successes.len() + this.running.len() < this.required {
                return Poll::Ready(Err(this.fail()));
            }
            match Pin::new(&mut this.running).poll_next(cx) {
                Poll::Ready(Some((_, Ok(output)))) => this.successes.push(output),
                Poll::Ready(Some((_, Err(error)))) => this.errors.push(error),
                // Unreachable: the checks above end the loop before the set runs dry.
                Poll::Ready(None) => return Poll::Ready(Err(this.fail())),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<F: TryFuture> fmt::Debug for Quorum<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Quorum")
            .field("required", &self.required)
            .field("total", &self.total)
            .field("succeeded", &self.successes.len())
            .field("failed", &self.errors.len())
            .field("running", &self.running.len())
            .finish()
    }
}

/// A [`quorum`] could no longer be reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumError<T, E> {
    required: usize,
    total: usize,
    successes: Vec<T>,
    errors: Vec<E>,
}

impl<T, E> QuorumError<T, E> {
    /// How many successes were required.
    pub fn required(&self) -> usize {
        self.required
    }

    /// How many futures there were.
    pub fn total(&self) -> usize {
        self.total
    }

    /// The successes that did arrive, in arrival order.
    pub fn successes(&self) -> &[T] {
        &self.successes
    }

    /// The errors that made the quorum unreachable, in arrival order.
    pub fn errors(&self) -> &[E] {
        &self.errors
    }

    /// The successes and the errors, owned.
    pub fn into_parts(self) -> (Vec<T>, Vec<E>) {
        (self.successes, self.errors)
    }
}

impl<T, E: fmt::Display> fmt::Display for QuorumError<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "quorum of {} out of {} unreachable: {} succeeded, {} failed",
            self.required,
            self.total,
            self.successes.len(),
            self.errors.len()
        )?;
        if let Some(last) = self.errors.last() {
            write!(f, "; last error: {last}")?;
        }
        if self.required > self.total {
            f.write_str("; ask for at most as many successes as there are calls")?;
        }
        Ok(())
    }
}

impl<T: fmt::Debug, E: std::error::Error + 'static> std::error::Error for QuorumError<T, E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.errors
            .last()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}
